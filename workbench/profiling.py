"""Profiling compiled kernels honestly: timed stages inside the kernel, and perf counters.

Numba has no line profiler: a compiled kernel is one native function, invisible to
``cProfile`` and ``line_profiler``, and a sampling profiler (``perf record``) sees
addresses in JIT-compiled code with no symbol map to name them. What *can* be measured:

* **Instrumented stages.** The kernel reads the monotonic clock (``kernels.clock.now_ns``,
  a vDSO call of ~20-40 ns) between its stages and writes the readings into an array:
  :func:`stage_frame` turns the readings of several runs into a frame of stage -> median
  time, and adds what the stages do not cover (the call from Python, argument checks,
  unboxing) as ``outside the stages``. The readings cost a few clock calls per run, so
  stages of a few microseconds and up are measured faithfully; shorter ones are not.
  :func:`profile_trade_stages` does this for ``kernels.vwap.trade_stages``.
* **Hardware and software counters** from Linux ``perf stat``, attached to this very
  process for exactly the measured block (``perf stat -p PID`` started with its counters
  disabled, switched on and off through its control pipe): :class:`perf_counters`. Where
  perf is not installed, is not allowed (``/proc/sys/kernel/perf_event_paranoid``) or the
  machine does not expose a counter (virtual machines often hide the hardware ones:
  ``cycles``, ``instructions``, cache misses), the frame says so row by row instead of
  guessing.
* **Calls between kernels**: :func:`refcount_loops` times the two call loops of
  ``kernels.lessons_refcounts`` (a helper given nine arrays, compiled with and without
  Numba's runtime), the same calls with and without reference counting.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from kernels import clock as kc
from kernels import vwap as kv

__all__ = ["stage_frame", "profile_trade_stages", "clock_read_ns", "perf_counters",
           "perf_available", "DEFAULT_EVENTS", "refcount_state", "refcount_loops"]

DEFAULT_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults",
                  "cycles", "instructions", "branch-misses", "cache-misses")


def clock_read_ns() -> int:
    """The cost of one ``now_ns()`` read from inside a kernel, in ns (``clock_probe``)."""
    out = np.zeros(len(kc.PROBE_FIELDS), dtype=np.int64)
    kc.clock_probe(20_000, 1_000_000, out)
    return int(out[kc.PROBE_FIELDS.index("now_ns_call_ns")])


def stage_frame(marks: np.ndarray, names: Sequence[str], wall_ns: Sequence[int] | None = None,
                items: int | None = None):
    """Stage times from clock readings: ``marks`` is ``[runs, len(names) + 1]`` (reading k
    before stage k, the last after the last stage); ``wall_ns`` the time of each whole
    call as seen from Python. Columns: stage, median_ns, min_ns, share (of the median
    call), ns_per_item (when ``items`` is given)."""
    import polars as pl

    marks = np.asarray(marks, dtype=np.int64)
    if marks.ndim != 2 or marks.shape[1] != len(names) + 1:
        raise ValueError(f"marks must be [runs, {len(names) + 1}] clock readings, got shape "
                         f"{marks.shape}")
    steps = np.diff(marks, axis=1)
    if (steps < 0).any():
        raise ValueError("marks go backwards: not readings of one monotonic clock")
    rows = [(name, float(np.median(steps[:, k])), float(steps[:, k].min()))
            for k, name in enumerate(names)]
    if wall_ns is not None:
        wall = np.asarray(wall_ns, dtype=np.int64)
        outside = wall - (marks[:, -1] - marks[:, 0])
        rows.append(("outside the stages", float(np.median(outside)), float(outside.min())))
        total = float(np.median(wall))
    else:
        total = float(np.median(marks[:, -1] - marks[:, 0]))
    frame = pl.DataFrame(rows, schema={"stage": pl.Utf8, "median_ns": pl.Float64,
                                       "min_ns": pl.Float64}, orient="row")
    frame = frame.with_columns((pl.col("median_ns") / max(total, 1.0)).alias("share"))
    if items:
        frame = frame.with_columns((pl.col("median_ns") / items).alias("ns_per_item"))
    return frame


def profile_trade_stages(ts, prices, qtys, window_ns: int, repeats: int = 7):
    """Run ``kernels.vwap.trade_stages`` ``repeats`` times on these trades (validated by
    ``workbench.vwap.rolling``'s rules) and return :func:`stage_frame` of its stages
    (``kernels.vwap.STAGES``) plus the call around them; ``ns_per_item`` is per trade."""
    from . import vwap as wv

    t, p, q = wv.checked_trades(ts, prices, qtys)
    window = wv.checked_window(window_ns)
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a positive integer")
    out = np.empty(len(t), dtype=np.float64)
    marks = np.zeros((repeats, len(kv.STAGES) + 1), dtype=np.int64)
    wall = np.zeros(repeats, dtype=np.int64)
    kv.trade_stages(t, p, q, window, out, marks[0])   # warm-up
    for r in range(repeats):
        t0 = time.perf_counter_ns()
        kv.trade_stages(t, p, q, window, out, marks[r])
        wall[r] = time.perf_counter_ns() - t0
    return stage_frame(marks, kv.STAGES, wall, items=len(t))


def refcount_state(rows: int = 1_024, seed: int = 16) -> tuple[np.ndarray, ...]:
    """Nine int64 arrays of ``rows`` entries (a power of two), the state the loops of
    ``kernels.lessons_refcounts`` hand to their helper: a key index (key ``k`` in slot
    ``k``, every eighth slot empty: -1) and eight columns of values below 1,000."""
    if (isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1
            or rows & (rows - 1)):
        raise ValueError(f"rows={rows!r} must be a positive power of two")
    rng = np.random.default_rng(seed)
    keys = np.arange(int(rows), dtype=np.int64)
    keys[7::8] = -1
    return (keys,) + tuple(rng.integers(0, 1_000, int(rows), dtype=np.int64) for _ in range(8))


def refcount_loops(state=None, n_calls: int = 100_000, repeats: int = 7):
    """Time ``kernels.lessons_refcounts``' two loops of ``n_calls`` calls to a helper given
    the nine arrays of ``state`` (default :func:`refcount_state`): the helper compiled with
    Numba's runtime (every call updates the reference count of each array on the way in
    and out) and without it (``nrt=False``). The variants run interleaved, ``repeats``
    times each after a warm-up (which compiles them); columns: variant, ns_per_call
    (median), min_ns_per_call, speedup_vs_runtime (of the medians, same run), result
    (the loop's sum: equal for both)."""
    import polars as pl

    from kernels import lessons_refcounts as krc

    for name, value in (("n_calls", n_calls), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    state = refcount_state() if state is None else tuple(state)
    if len(state) != 9:
        raise ValueError(f"state must be nine arrays, got {len(state)}")
    for k, a in enumerate(state):
        if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != 1:
            raise ValueError(f"state[{k}] must be a 1-D int64 array, got "
                             f"{getattr(a, 'dtype', type(a).__name__)}")
    n = len(state[0])
    if n < 1 or n & (n - 1) or any(len(a) != n for a in state):
        raise ValueError(f"state's arrays must have one length, a power of two; got "
                         f"{[len(a) for a in state]}")
    loops = {"with the runtime (NRT)": krc.loop_counted, "nrt=False": krc.loop_borrowed}
    results = {}
    for name, loop in loops.items():
        loop(*state, 1)                              # compiles it (once per process)
        results[name] = int(loop(*state, n_calls))   # and warms the caches
    times = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            t0 = time.perf_counter_ns()
            loop(*state, n_calls)
            times[name].append(time.perf_counter_ns() - t0)
    base = float(np.median(times["with the runtime (NRT)"]))
    rows = [{"variant": name, "ns_per_call": float(np.median(t)) / n_calls,
             "min_ns_per_call": float(min(t)) / n_calls,
             "speedup_vs_runtime": base / max(float(np.median(t)), 1.0),
             "result": results[name]} for name, t in times.items()]
    return pl.DataFrame(rows)


def perf_available() -> tuple[bool, str]:
    """``(True, "")`` when ``perf`` is installed and may watch this process, else
    ``(False, why)``."""
    if not shutil.which("perf"):
        return False, "perf is not installed (Linux: the linux-perf / linux-tools package)"
    try:
        paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        paranoid = None
    if paranoid is not None and paranoid > 2:
        return False, (f"perf_event_paranoid is {paranoid}: unprivileged users may not count "
                       "events (an admin can lower it to 2)")
    return True, ""


class perf_counters:
    """Count ``events`` with ``perf stat`` over exactly the ``with`` block::

        with perf_counters() as pc:
            kernel(...)
        pc.frame   # event, value, unit, status ("ok", "not supported", "unavailable: ...")

    Counts cover every thread of this process during the block. When perf cannot run,
    the block still runs and ``frame`` says why on every row (``available`` is False)."""

    def __init__(self, events: Sequence[str] = DEFAULT_EVENTS, timeout_s: float = 10.0):
        events = tuple(events)
        if not events or not all(isinstance(e, str) and e and "," not in e for e in events):
            raise ValueError(f"events={events!r} must be non-empty perf event names")
        self.events = events
        self.timeout_s = float(timeout_s)
        self.available, self.reason = perf_available()
        self._proc = None
        self._rows: list[tuple] = []
        self.wall_ns = 0

    def __enter__(self):
        if self.available:
            try:
                self._start()
            except (OSError, RuntimeError) as exc:
                self._stop_quietly()
                self.available, self.reason = False, f"perf stat could not start: {exc}"
        self._t0 = time.perf_counter_ns()
        return self

    def _start(self) -> None:
        ctl_r, self._ctl_w = os.pipe()
        self._ack_r, ack_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", ",".join(self.events), "-D", "-1",
                 "--control", f"fd:{ctl_r},{ack_w}", "-p", str(os.getpid())],
                pass_fds=(ctl_r, ack_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
        finally:
            os.close(ctl_r)
            os.close(ack_w)
        self._command("enable")

    def _command(self, word: str) -> None:
        os.write(self._ctl_w, word.encode() + b"\n")
        import select

        ready, _, _ = select.select([self._ack_r], [], [], self.timeout_s)
        if not ready or not os.read(self._ack_r, 16).startswith(b"ack"):
            raise RuntimeError(f"perf did not acknowledge {word!r}")

    def __exit__(self, *exc) -> None:
        self.wall_ns = time.perf_counter_ns() - self._t0
        if self._proc is None:
            self._rows = [(e, None, "", f"unavailable: {self.reason}") for e in self.events]
            return
        try:
            self._command("disable")
            self._proc.send_signal(signal.SIGINT)
            _, err = self._proc.communicate(timeout=self.timeout_s)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            self._stop_quietly()
            self._rows = [(e, None, "", f"unavailable: perf failed ({exc})") for e in self.events]
            return
        finally:
            for fd in (self._ctl_w, self._ack_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._proc = None
        self._rows = _parse_perf(err, self.events)

    def _stop_quietly(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    @property
    def frame(self):
        import polars as pl

        return pl.DataFrame(self._rows, schema={"event": pl.Utf8, "value": pl.Float64,
                                                "unit": pl.Utf8, "status": pl.Utf8},
                            orient="row")


def _parse_perf(text: str, events: Sequence[str]) -> list[tuple]:
    """perf stat's CSV (``-x,``: value, unit, event, ...) -> rows, one per event asked."""
    found = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3:
            continue
        value, unit, event = parts[0].strip(), parts[1].strip(), parts[2].strip()
        name = event.split(":")[0]
        if name not in events:
            continue
        if value.startswith("<not supported>"):
            found[name] = (name, None, unit, "not supported here (VM or hidden by the kernel)")
        elif value.startswith("<not counted>"):
            found[name] = (name, None, unit, "not counted (no counter free during the block)")
        else:
            try:
                found[name] = (name, float(value), unit, "ok")
            except ValueError:
                found[name] = (name, None, unit, f"unreadable: {value!r}")
    return [found.get(e, (e, None, "", "not reported by perf")) for e in events]
