"""Clocks callable from inside kernels.

``now_ns()`` reads CLOCK_MONOTONIC through ``clock_gettime`` (the vDSO makes it a
user-space call of roughly 20 ns; the value is comparable with Python's
``time.monotonic_ns()`` and ``time.perf_counter_ns()`` on Linux). It is emitted as a
call to the C symbol by name, so the compiled kernel stays cacheable: LLVM resolves
the symbol when the cached code is loaded, instead of baking in an address.

``cycles()`` reads the CPU's time-stamp counter (``llvm.readcyclecounter``, i.e.
RDTSC on x86-64): a few ns, but in ticks, not ns; convert with a calibration measured
in Python (``workbench.latency`` owns that).
"""
from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import kernel

__all__ = ["now_ns", "cycles", "CLOCK_MONOTONIC"]

CLOCK_MONOTONIC = 1  # Linux value of the clock id


@intrinsic
def _clock_gettime_ns(typingctx, clock_id):
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        i64 = ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, timespec)
        builder.call(fn, [builder.trunc(args[0], i32), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


@intrinsic
def _read_cycle_counter(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@kernel(inline="always")
def now_ns():
    """CLOCK_MONOTONIC in nanoseconds, from inside a kernel."""
    return _clock_gettime_ns(CLOCK_MONOTONIC)


@kernel(inline="always")
def cycles():
    """The CPU cycle counter (TSC ticks), from inside a kernel."""
    return _read_cycle_counter()
