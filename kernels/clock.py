"""Clocks callable from inside kernels.

``now_ns()`` reads CLOCK_MONOTONIC through ``clock_gettime`` (the vDSO makes it a
user-space call of roughly 20 ns; the value is comparable with Python's
``time.monotonic_ns()`` and ``time.perf_counter_ns()`` on Linux). It is emitted as a
call to the C symbol by name, so the compiled kernel stays cacheable: LLVM resolves
the symbol when the cached code is loaded, instead of baking in an address.
``realtime_ns()`` reads CLOCK_REALTIME the same way: wall time in ns since the Unix
epoch (comparable with ``time.time_ns()``), for timestamps that outlive the process
(the journal's records); it can step when the system clock is set, so durations are
measured with ``now_ns()``.

``cycles()`` reads the CPU's time-stamp counter (``llvm.readcyclecounter``, i.e.
RDTSC on x86-64): a few ns, but in ticks, not ns; convert with a calibration measured
in Python (``workbench.latency`` owns that).

``cycles_ordered()`` reads it with RDTSCP, which waits for earlier instructions to
finish first, so the work being timed cannot leak past the read (x86-64 only; it
falls back to ``cycles()`` elsewhere). ``clock_probe()`` is the one kernel that
measures all of the above from inside compiled code (call overhead, smallest
observable step, TSC ticks per ns) for the Python-side calibration report.
"""
from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import kernel

__all__ = ["now_ns", "realtime_ns", "cycles", "cycles_ordered", "clock_probe", "CLOCK_MONOTONIC",
           "PROBE_FIELDS", "HAS_RDTSCP", "CLOCK_REALTIME"]

CLOCK_REALTIME = 0   # Linux values of the clock ids
CLOCK_MONOTONIC = 1


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
def realtime_ns():
    """CLOCK_REALTIME (wall time since the Unix epoch) in nanoseconds, from inside a kernel."""
    return _clock_gettime_ns(CLOCK_REALTIME)


@kernel(inline="always")
def cycles():
    """The CPU cycle counter (TSC ticks), from inside a kernel."""
    return _read_cycle_counter()


HAS_RDTSCP = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _read_cycle_counter_ordered(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        if not HAS_RDTSCP:
            fnty = ir.FunctionType(i64, [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
            return builder.call(fn, [])
        # RDTSCP returns {tsc, processor id}; the id (TSC_AUX) is not needed here.
        fnty = ir.FunctionType(ir.LiteralStructType([i64, ir.IntType(32)]), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.rdtscp")
        return builder.extract_value(builder.call(fn, []), 0)

    return sig, codegen


@kernel(inline="always")
def cycles_ordered():
    """TSC ticks read with RDTSCP (waits for earlier instructions to complete)."""
    return _read_cycle_counter_ordered()


# Slots of the array ``clock_probe`` fills (ns unless named ticks).
PROBE_FIELDS = (
    "now_ns_call_ns",        # mean cost of one now_ns() call
    "now_ns_min_step_ns",    # smallest non-zero difference between two reads
    "cycles_call_ticks",     # mean cost of one cycles() call, in ticks
    "cycles_min_step_ticks",
    "calib_ns",              # span of the calibration window, by now_ns()
    "calib_ticks",           # the same span, by cycles()
    "now_ns_backwards",      # times a later now_ns() read was smaller (should be 0)
)


@kernel
def clock_probe(n_calls, calibration_ns, out):
    """Measure both clocks from inside a kernel; fills ``out[:len(PROBE_FIELDS)]``."""
    start = _clock_gettime_ns(CLOCK_MONOTONIC)
    previous = start
    min_step = np.int64(1) << 62
    backwards = 0
    for _ in range(n_calls):
        t = _clock_gettime_ns(CLOCK_MONOTONIC)
        step = t - previous
        if step < 0:
            backwards += 1
        elif step > 0 and step < min_step:
            min_step = step
        previous = t
    out[0] = (previous - start) // max(n_calls, 1)
    out[1] = min_step
    t0 = _read_cycle_counter()
    previous_ticks = t0
    min_ticks = np.int64(1) << 62
    for _ in range(n_calls):
        c = _read_cycle_counter()
        step = c - previous_ticks
        if step > 0 and step < min_ticks:
            min_ticks = step
        previous_ticks = c
    out[2] = (previous_ticks - t0) // max(n_calls, 1)
    out[3] = min_ticks
    # Calibration: spin for calibration_ns on the monotonic clock, count ticks meanwhile.
    c0 = _read_cycle_counter()
    n0 = _clock_gettime_ns(CLOCK_MONOTONIC)
    n1 = n0
    while n1 - n0 < calibration_ns:
        n1 = _clock_gettime_ns(CLOCK_MONOTONIC)
    c1 = _read_cycle_counter()
    out[4] = n1 - n0
    out[5] = c1 - c0
    out[6] = backwards
