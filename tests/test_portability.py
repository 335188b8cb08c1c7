"""Every platform's clock and cycle-counter path, forced and exercised on this machine.

The implementation is picked at import (``kernels.clock.select_impl``); each other path is
forced through ``WORKBENCH_CLOCK_IMPL`` / ``WORKBENCH_CYCLES_IMPL`` in a subprocess with a
private Numba cache (the choice is compiled into the cached code). Paths whose instructions
this CPU cannot run (arm64's counter register) are compiled for their target by LLVM and
the emitted assembly is read. The Windows path runs here for real, against stand-ins for
the two kernel32 functions registered under their names.

Also: the hardware probes say "unavailable on this platform" where Linux's files or calls
are missing, instead of failing, and the ring's peer check works without ``/proc``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kernels import clock as kc
from workbench import hardware


@pytest.mark.parametrize("system, machine, expected", [
    ("linux", "x86_64", ("posix", "x86_64")),
    ("linux", "aarch64", ("posix", "arm64")),
    ("darwin", "arm64", ("darwin", "arm64")),
    ("darwin", "x86_64", ("darwin", "x86_64")),
    ("win32", "AMD64", ("windows", "x86_64")),
    ("win32", "ARM64", ("windows", "arm64")),
    ("freebsd14", "amd64", ("posix", "x86_64")),
    ("linux", "riscv64", ("posix", "clock")),
    ("linux", "ppc64le", ("posix", "clock")),
])
def test_each_platform_gets_its_implementation(system, machine, expected):
    assert kc.select_impl(system, machine) == expected


def _run(code: str, tmp_path, **env) -> dict:
    full = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **env)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=full)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_clock_fallback_for_cycles_counts_nanoseconds(tmp_path):
    out = _run("""
        import json, time
        import numpy as np
        from kernels import clock as kc
        a = time.perf_counter_ns(); c = kc.cycles(); b = time.perf_counter_ns()
        o = kc.cycles_ordered()
        probe = np.zeros(len(kc.PROBE_FIELDS), dtype=np.int64)
        kc.clock_probe(1000, 2_000_000, probe)
        p = dict(zip(kc.PROBE_FIELDS, map(int, probe)))
        print(json.dumps({"impl": kc.CYCLES_IMPL, "rdtscp": kc.HAS_RDTSCP, "within": a <= c <= b,
                          "ordered_after": o >= c, "ticks": p["calib_ticks"], "ns": p["calib_ns"]}))
    """, tmp_path, WORKBENCH_CYCLES_IMPL="clock")
    assert out["impl"] == "clock" and not out["rdtscp"]
    assert out["within"] and out["ordered_after"]
    assert abs(out["ticks"] - out["ns"]) <= 0.01 * out["ns"] + 1000  # one tick is one ns


def test_the_windows_clock_runs_against_kernel32_stand_ins(tmp_path):
    """QueryPerformanceCounter at an odd 3 MHz and GetSystemTimePreciseAsFileTime (100 ns
    since 1601), both answered from Python's clocks: the kernels must scale them into the
    same ns as ``time.perf_counter_ns()`` and ``time.time_ns()``."""
    out = _run("""
        import ctypes, json, time
        import llvmlite.binding as llvm
        FREQ = 3_000_000
        FILETIME_1970 = 116_444_736_000_000_000
        PROTO = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_int64))
        @PROTO
        def qpc(out):
            out[0] = time.perf_counter_ns() * FREQ // 1_000_000_000
            return 1
        @PROTO
        def filetime(out):
            out[0] = time.time_ns() // 100 + FILETIME_1970
            return 1
        for name, fn in (("QueryPerformanceCounter", qpc), ("GetSystemTimePreciseAsFileTime", filetime)):
            llvm.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
        from kernels import clock as kc
        a = time.perf_counter_ns(); n = kc.now_ns(); b = time.perf_counter_ns()
        w0 = time.time_ns(); w = kc.realtime_ns(); w1 = time.time_ns()
        print(json.dumps({"impl": kc.CLOCK_IMPL, "a": a, "n": n, "b": b, "w0": w0, "w": w, "w1": w1}))
    """, tmp_path, WORKBENCH_CLOCK_IMPL="windows", WORKBENCH_TEST_QPC_FREQUENCY="3000000")
    assert out["impl"] == "windows"
    tick_ns = 1e9 / 3_000_000
    assert out["a"] - tick_ns - 1 <= out["n"] <= out["b"] + 1
    assert out["w0"] - 100 <= out["w"] <= out["w1"]


def test_darwin_reads_the_clock_python_reads_there(tmp_path):
    out = _run("""
        import json
        from kernels import clock as kc
        print(json.dumps({"impl": kc.CLOCK_IMPL, "monotonic": kc.CLOCK_MONOTONIC}))
    """, tmp_path, WORKBENCH_CLOCK_IMPL="darwin")
    assert out == {"impl": "darwin", "monotonic": 8}  # CLOCK_UPTIME_RAW: mach_absolute_time


_ASSEMBLY = """
import json, sys
import llvmlite.binding as llvm
from llvmlite import ir
from kernels import clock as kc

def assembly(triple, emit):
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    module = ir.Module(name="probe")
    module.triple = triple
    fn = ir.Function(module, ir.FunctionType(ir.IntType(64), []), name="probe")
    builder = ir.IRBuilder(fn.append_basic_block())
    builder.ret(emit(builder))
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    return llvm.Target.from_triple(triple).create_target_machine(opt=2).emit_assembly(parsed)

out = {}
kc.CYCLES_IMPL = "arm64"
out["arm64"] = assembly("aarch64-unknown-linux-gnu", kc._emit_cycles)
kc.CYCLES_IMPL = "x86_64"
out["x86_64"] = assembly("x86_64-unknown-linux-gnu", kc._emit_cycles)
kc.CLOCK_IMPL, kc._QPC_FREQUENCY = "windows", 10_000_000
one = lambda v: (lambda b: kc._emit_clock(b, ir.Constant(ir.IntType(64), v), v == 0))
out["win_x64"] = assembly("x86_64-pc-windows-msvc", one(1))
out["win_arm64"] = assembly("aarch64-pc-windows-msvc", one(0))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def assembly(tmp_path_factory):
    """Each path compiled for its own target by LLVM (in a subprocess: LLVM aborts the
    process on a code generation error)."""
    return _run(_ASSEMBLY, tmp_path_factory.mktemp("asm"))


def test_arm64_reads_the_virtual_counter_not_the_trapping_pmu(assembly):
    arm = assembly["arm64"].lower()
    assert "mrs" in arm and "cntvct_el0" in arm and "pmccntr_el0" not in arm
    assert "rdtsc" in assembly["x86_64"].lower()


def test_windows_code_calls_kernel32_by_name(assembly):
    assert "QueryPerformanceCounter" in assembly["win_x64"] and "clock_gettime" not in assembly["win_x64"]
    assert "GetSystemTimePreciseAsFileTime" in assembly["win_arm64"]


def test_a_bad_forced_implementation_is_named(tmp_path):
    full = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), WORKBENCH_CYCLES_IMPL="sparc")
    proc = subprocess.run([sys.executable, "-c", "import kernels.clock"], capture_output=True,
                          text=True, timeout=120, env=full)
    assert proc.returncode != 0 and "WORKBENCH_CYCLES_IMPL='sparc'" in proc.stderr


def test_probes_without_linux_files_say_unavailable(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    found = {p.name: p for p in hardware.probes(str(tmp_path))}   # an empty root: no /proc, no /sys
    for name in ("physical_cores", "caches", "numa_nodes", "huge_pages", "transparent_huge_pages",
                 "governor", "invariant_tsc", "affinity"):
        probe = found[name]
        assert probe.value is None and "unavailable on this platform" in probe.reason, (name, probe)
    table = hardware.report(str(tmp_path))
    assert table.height == len(found) and table["reason"].str.contains("unavailable").sum() >= 8
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    with pytest.raises(OSError, match="unavailable on this platform"):
        hardware.set_affinity([0])


def test_peer_liveness_without_proc(monkeypatch):
    from workbench import queues

    real_isdir = os.path.isdir
    monkeypatch.setattr(queues.os.path, "isdir", lambda p: False if p == "/proc/self" else real_isdir(p))
    assert queues._pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not queues._pid_alive(child.pid)
