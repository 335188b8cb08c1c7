"""Clocks callable from inside kernels, on Linux, macOS and Windows (x86-64 and arm64).

``now_ns()`` reads the monotonic clock Python's ``time.perf_counter_ns()`` and
``time.monotonic_ns()`` read, so values compare across the boundary:

* Linux and other POSIX systems: ``clock_gettime(CLOCK_MONOTONIC)`` (through the vDSO on
  Linux: a user-space call of roughly 20 ns);
* macOS: ``clock_gettime(CLOCK_UPTIME_RAW)`` (``mach_absolute_time``, what CPython's
  ``time.monotonic`` reads there);
* Windows: ``QueryPerformanceCounter`` scaled by ``QueryPerformanceFrequency`` (read once,
  at import: it is fixed at boot).

The clock ids come from Python's own ``time`` module (``time.CLOCK_MONOTONIC`` ...), never
hard-coded. Each C function is emitted as a call by symbol name, so a compiled kernel stays
cacheable: LLVM resolves the symbol when the cached code is loaded (on Windows the symbols
are registered with llvmlite at import, from ``kernel32``). ``realtime_ns()`` reads wall
time in ns since the Unix epoch (comparable with ``time.time_ns()``: ``CLOCK_REALTIME``, or
``GetSystemTimePreciseAsFileTime`` on Windows) for timestamps that outlive the process (the
journal's records); it can step when the system clock is set, so durations use ``now_ns()``.

``cycles()`` reads the CPU's counter: on x86-64 the time-stamp counter
(``llvm.readcyclecounter``, i.e. RDTSC); on arm64 the generic timer's virtual count
``CNTVCT_EL0``, read with MRS (``llvm.readcyclecounter`` there would read
``PMCCNTR_EL0``, which traps in user space unless the kernel enables it); anywhere else ``now_ns()`` itself (one tick
is one ns). Ticks convert to ns with a calibration measured in Python
(``workbench.latency`` owns that). ``cycles_ordered()`` reads the TSC with RDTSCP, which
waits for earlier instructions first, so the work being timed cannot leak past the read
(x86-64; elsewhere it is ``cycles()``).

``CLOCK_IMPL`` and ``CYCLES_IMPL`` name the implementations this process compiled
(:func:`select_impl` picks them from the platform). ``WORKBENCH_CLOCK_IMPL`` and
``WORKBENCH_CYCLES_IMPL`` force one, for tests of the other platforms' paths (use a
private ``NUMBA_CACHE_DIR`` then: the choice is compiled into the cached code).
``clock_probe()`` measures all of the above from inside compiled code (call overhead,
smallest observable step, counter ticks per ns) for the Python-side calibration report.
"""
from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import kernel

__all__ = ["now_ns", "realtime_ns", "cycles", "cycles_ordered", "clock_probe", "CLOCK_MONOTONIC",
           "PROBE_FIELDS", "HAS_RDTSCP", "CLOCK_REALTIME", "CLOCK_IMPL", "CYCLES_IMPL",
           "select_impl", "CLOCK_IMPLS", "CYCLES_IMPLS"]

CLOCK_IMPLS = ("posix", "darwin", "windows")
CYCLES_IMPLS = ("x86_64", "arm64", "clock")
ENV_CLOCK_IMPL = "WORKBENCH_CLOCK_IMPL"
ENV_CYCLES_IMPL = "WORKBENCH_CYCLES_IMPL"


def select_impl(system: str, machine: str) -> tuple[str, str]:
    """``(clock, cycles)`` implementations for ``sys.platform`` and ``platform.machine()``."""
    if system == "win32" or system.startswith("cygwin"):
        clock = "windows"
    elif system == "darwin":
        clock = "darwin"
    else:
        clock = "posix"
    m = machine.lower()
    if m in ("x86_64", "amd64", "x64"):
        cyc = "x86_64"
    elif m in ("arm64", "aarch64", "armv8", "armv8l", "aarch64_be"):
        cyc = "arm64"
    else:
        cyc = "clock"
    return clock, cyc


def _forced(env: str, choices: tuple, default: str) -> str:
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    if value not in choices:
        raise ValueError(f"{env}={value!r} must be one of {choices}")
    return value


_DEFAULT_CLOCK, _DEFAULT_CYCLES = select_impl(sys.platform, platform.machine())
CLOCK_IMPL = _forced(ENV_CLOCK_IMPL, CLOCK_IMPLS, _DEFAULT_CLOCK)
CYCLES_IMPL = _forced(ENV_CYCLES_IMPL, CYCLES_IMPLS, _DEFAULT_CYCLES)
HAS_RDTSCP = CYCLES_IMPL == "x86_64"

# clock ids, as this platform's C library numbers them (Linux's values where ``time`` has none,
# e.g. on Windows, where they are unused)
CLOCK_REALTIME = int(getattr(time, "CLOCK_REALTIME", 0))
if CLOCK_IMPL == "darwin":
    CLOCK_MONOTONIC = int(getattr(time, "CLOCK_UPTIME_RAW", 8))
else:
    CLOCK_MONOTONIC = int(getattr(time, "CLOCK_MONOTONIC", 1))

_WIN_FILETIME_TO_UNIX_100NS = 116_444_736_000_000_000   # 1601-01-01 to 1970-01-01, in 100 ns


def _windows_frequency() -> int:
    """QueryPerformanceFrequency (ticks per second), registering the kernel32 symbols the
    kernels call by name. Only on Windows (or under a test that provides them)."""
    import ctypes

    import llvmlite.binding as llvm

    if sys.platform == "win32":
        k32 = ctypes.windll.kernel32
        for name in ("QueryPerformanceCounter", "GetSystemTimePreciseAsFileTime"):
            llvm.add_symbol(name, ctypes.cast(getattr(k32, name), ctypes.c_void_p).value)
        freq = ctypes.c_int64()
        k32.QueryPerformanceFrequency(ctypes.byref(freq))
        return int(freq.value)
    # a test forcing the Windows path on another OS registers stand-ins and names the rate
    return int(os.environ.get("WORKBENCH_TEST_QPC_FREQUENCY", "10000000"))


_QPC_FREQUENCY = _windows_frequency() if CLOCK_IMPL == "windows" else 1


def _clock_gettime(builder, clock_id):
    i32 = ir.IntType(32)
    i64 = ir.IntType(64)
    timespec = ir.LiteralStructType([i64, i64])   # time_t and long are 64-bit on every 64-bit POSIX
    fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
    ts = cgutils.alloca_once(builder, timespec)
    builder.call(fn, [builder.trunc(clock_id, i32), ts])
    sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
    nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
    return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)


def _win_call_i64(builder, name):
    """Call a kernel32 function that fills one 64-bit out-parameter; return that value."""
    i64 = ir.IntType(64)
    fnty = ir.FunctionType(ir.IntType(32), [i64.as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    slot = cgutils.alloca_once(builder, i64)
    builder.store(ir.Constant(i64, 0), slot)
    builder.call(fn, [slot])
    return builder.load(slot)


def _ticks_to_ns(builder, ticks, frequency: int):
    """ticks * 1e9 / frequency without overflow: whole seconds and the remainder apart."""
    i64 = ir.IntType(64)
    f = ir.Constant(i64, frequency)
    sec = builder.sdiv(ticks, f)
    rem = builder.srem(ticks, f)
    return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)),
                       builder.sdiv(builder.mul(rem, ir.Constant(i64, 1_000_000_000)), f))


def _emit_clock(builder, clock_id, realtime: bool):
    if CLOCK_IMPL != "windows":
        return _clock_gettime(builder, clock_id)
    i64 = ir.IntType(64)
    if realtime:
        ft = _win_call_i64(builder, "GetSystemTimePreciseAsFileTime")
        unix = builder.sub(ft, ir.Constant(i64, _WIN_FILETIME_TO_UNIX_100NS))
        return builder.mul(unix, ir.Constant(i64, 100))
    return _ticks_to_ns(builder, _win_call_i64(builder, "QueryPerformanceCounter"), _QPC_FREQUENCY)


@intrinsic
def _monotonic_ns(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        return _emit_clock(builder, ir.Constant(ir.IntType(64), CLOCK_MONOTONIC), False)

    return sig, codegen


@intrinsic
def _wall_ns(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        return _emit_clock(builder, ir.Constant(ir.IntType(64), CLOCK_REALTIME), True)

    return sig, codegen


def _emit_cycles(builder):
    i64 = ir.IntType(64)
    if CYCLES_IMPL == "x86_64":
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    if CYCLES_IMPL == "arm64":
        # the system register CNTVCT_EL0 (ACLE's __arm_rsr64("cntvct_el0")): MRS, user-readable
        module = builder.module
        name = module.add_metadata([ir.MetaDataString(module, "cntvct_el0")])
        fn = cgutils.get_or_insert_function(module, ir.FunctionType(i64, [ir.MetaDataType()]),
                                            "llvm.read_volatile_register.i64")
        return builder.call(fn, [name])
    return _emit_clock(builder, ir.Constant(i64, CLOCK_MONOTONIC), False)


@intrinsic
def _read_cycle_counter(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        return _emit_cycles(builder)

    return sig, codegen


@kernel(inline="always")
def now_ns():
    """The monotonic clock in nanoseconds (``time.perf_counter_ns()``'s), from inside a kernel."""
    return _monotonic_ns()


@kernel(inline="always")
def realtime_ns():
    """CLOCK_REALTIME (wall time since the Unix epoch) in nanoseconds, from inside a kernel."""
    return _wall_ns()


@kernel(inline="always")
def cycles():
    """The CPU cycle counter (TSC ticks), from inside a kernel."""
    return _read_cycle_counter()


@intrinsic
def _read_cycle_counter_ordered(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        if not HAS_RDTSCP:
            return _emit_cycles(builder)
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
    start = _monotonic_ns()
    previous = start
    min_step = np.int64(1) << 62
    backwards = 0
    for _ in range(n_calls):
        t = _monotonic_ns()
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
    n0 = _monotonic_ns()
    n1 = n0
    while n1 - n0 < calibration_ns:
        n1 = _monotonic_ns()
    c1 = _read_cycle_counter()
    out[4] = n1 - n0
    out[5] = c1 - c0
    out[6] = backwards
