"""Batching and adaptive batching: fixed batch sizes against an AIMD controller, under a load
that steps up and down.

Owns the validated face of ``kernels.batching``: load schedules and their arrivals
(:func:`load_schedule`, :func:`arrivals`), the parameters (``BATCHING``, a
``workbench.params.ParamSet`` over the kernel's registries; :func:`policy_params`), the
cost model's capacity (:func:`capacity`), one run (:func:`simulate` in exchange time,
:func:`run_on_ring` on a real SPSC ring with a producer and a consumer thread, both
returning a :class:`BatchRun`), many runs (:func:`simulate_many`, :func:`compare`) and
their tables (:func:`phase_table`), and the controller on a given sequence of batches
(:func:`controller_trace`).

Every result is a polars frame: per batch (``BatchRun.batches``), per time window
(``BatchRun.windows``: batch size, latency p50/p99, throughput) and per phase of the
schedule (``BatchRun.phases``: also Little's law, the time-average number of items in
the system against throughput x mean latency). Times in frames are milliseconds since
the schedule's start (``t_ms``), latencies microseconds (``*_us``).
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from kernels import batching as kbat
from kernels import clock as kc
from kernels import records as R
from workbench.params import ParamSet, choice, number

__all__ = [
    "BATCHING", "DEFAULT_SCHEDULE", "MAX_ITEMS", "BatchRun", "load_schedule", "arrivals",
    "policy_params", "capacity", "simulate", "simulate_many", "compare", "phase_table",
    "controller_trace", "start_time", "run_on_ring",
]

BATCHING = ParamSet("batching", kbat.BATCH_PARAMS + kbat.COST_PARAMS, kbat.N_BATCH_PARAMS)

# (duration in ms, offered rate in items/s): quiet, busy, a burst above what small
# batches can serve, quiet again
DEFAULT_SCHEDULE: tuple[tuple[float, float], ...] = (
    (20.0, 50_000.0), (20.0, 300_000.0), (20.0, 1_200_000.0), (20.0, 50_000.0))
MAX_ITEMS = 20_000_000          # the most arrivals one run takes (memory: ~100 B per item)
MAX_SPAN_NS = 2**50             # arrival times stay far from int64 overflow (~13 days)


# ------------------------------------------------------------------------ load
def load_schedule(schedule: Iterable = DEFAULT_SCHEDULE) -> tuple[tuple[float, float], ...]:
    """``schedule`` as validated ``((duration_ms, rate_per_s), ...)`` phases."""
    if isinstance(schedule, (str, bytes, Mapping)) or not isinstance(schedule, Iterable):
        raise ValueError(f"schedule={schedule!r} must be a sequence of (duration_ms, rate_per_s)")
    phases = []
    expected = 0.0
    for i, phase in enumerate(schedule):
        if isinstance(phase, (str, bytes)) or not isinstance(phase, Sequence) or len(phase) != 2:
            raise ValueError(f"schedule[{i}]={phase!r} must be a pair (duration_ms, rate_per_s)")
        d = number(f"schedule[{i}].duration_ms", phase[0], low=1e-6, high=3_600_000.0)
        r = number(f"schedule[{i}].rate_per_s", phase[1], low=0.0, high=1e9)
        expected += d * 1e-3 * r
        phases.append((d, r))
    if not phases:
        raise ValueError("schedule=() must have at least one phase")
    if expected > MAX_ITEMS:
        raise ValueError(f"schedule={tuple(phases)!r} offers {expected:,.0f} items; at most "
                         f"{MAX_ITEMS:,} per run")
    return tuple(phases)


def _bounds_ns(schedule) -> np.ndarray:
    """Phase boundaries in ns: ``[0, end of phase 0, end of phase 1, ...]``."""
    return np.concatenate([[0], np.cumsum([round(d * 1e6) for d, _ in schedule])]).astype(np.int64)


def arrivals(schedule: Iterable = DEFAULT_SCHEDULE, *, seed: int = 0,
             process: str = "poisson") -> np.ndarray:
    """Arrival times (int64 ns from 0, sorted) of a ``schedule`` of phases.

    ``process="poisson"``: in each phase a Poisson process at its rate (the count is
    Poisson, the times uniform within the phase), reproducible from ``seed``;
    ``"even"``: evenly spaced at the rate (the first item of a phase at its start).
    """
    schedule = load_schedule(schedule)
    seed = int(number("seed", seed, low=0, integer=True))
    choice("process", process, ("poisson", "even"))
    bounds = _bounds_ns(schedule)
    rng = np.random.default_rng(seed)
    parts = []
    for (duration_ms, rate), t0, t1 in zip(schedule, bounds[:-1], bounds[1:]):
        span = int(t1 - t0)
        if process == "even":
            count = int(math.floor(rate * span * 1e-9 + 1e-9))
            parts.append(t0 + np.floor(np.arange(count) * (1e9 / rate)).astype(np.int64)
                         if count else np.zeros(0, np.int64))
        else:
            count = int(rng.poisson(rate * span * 1e-9))
            parts.append(t0 + np.sort(rng.integers(0, span, count)).astype(np.int64))
    out = np.concatenate(parts).astype(np.int64)
    if out.shape[0] == 0:
        raise ValueError(f"schedule={schedule!r} produced no arrivals (seed={seed}): raise a rate")
    return out


def _checked_arrivals(arrivals_ns) -> np.ndarray:
    a = np.asarray(arrivals_ns)
    if a.ndim != 1 or a.shape[0] == 0 or a.dtype.kind not in "iu":
        raise ValueError(f"arrivals_ns must be a non-empty 1-D integer array, got "
                         f"{a.dtype} of shape {a.shape}")
    if a.shape[0] > MAX_ITEMS:
        raise ValueError(f"arrivals_ns holds {a.shape[0]:,} items; at most {MAX_ITEMS:,} per run")
    if int(a.min()) < 0 or int(a.max()) > MAX_SPAN_NS:
        raise ValueError(f"arrivals_ns must lie in 0..{MAX_SPAN_NS} ns, got {int(a.min())}.."
                         f"{int(a.max())}")
    a = np.ascontiguousarray(a, dtype=np.int64)
    bad = np.flatnonzero(np.diff(a) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(f"arrivals_ns must be sorted: arrivals_ns[{i}]={int(a[i])} comes before "
                         f"arrivals_ns[{i - 1}]={int(a[i - 1])}")
    return a


# ------------------------------------------------------------------- parameters
def policy_params(policy: str = "aimd", **params) -> np.ndarray:
    """The kernel's parameter array for ``policy`` ('fixed' or 'aimd'): registry defaults
    overridden by ``params`` (people's units: ``target_us``, ``max_wait_us``, ...), each
    validated against its row (a ``ValueError`` naming the field and the value)."""
    choice("policy", policy, kbat.BATCHERS.names())
    p = BATCHING.to_array(params)
    p[kbat.BP_POLICY] = kbat.BATCHERS.id_of(policy)
    if p[kbat.BP_MIN_BATCH] > p[kbat.BP_MAX_BATCH]:
        raise ValueError(f"min_batch={p[kbat.BP_MIN_BATCH]:g} must be <= "
                         f"max_batch={p[kbat.BP_MAX_BATCH]:g}")
    return p


def capacity(batch: int, fixed_us: float, per_item_us: float) -> float:
    """Items per second a consumer serves with full batches of ``batch`` items, each
    costing ``fixed_us + batch * per_item_us``: ``batch / (fixed + batch * per_item)``."""
    b = number("batch", batch, low=1, high=kbat.MAX_BATCH, integer=True)
    f = number("fixed_us", fixed_us, low=0.0)
    c = number("per_item_us", per_item_us, low=0.0)
    cost_us = f + b * c
    return math.inf if cost_us == 0 else b / cost_us * 1e6


# ---------------------------------------------------------------------- one run
@dataclass
class BatchRun:
    """One batching run: what arrived, every batch (``kernels.records.BATCH`` rows) and
    every item's latency. ``clock`` is ``"simulated"`` (exchange time) or ``"ring"``."""

    policy: str
    label: str
    params: dict
    arrivals_ns: np.ndarray
    latency_ns: np.ndarray
    log: np.ndarray
    schedule: tuple | None = None
    clock: str = "simulated"
    counters: dict = field(default_factory=dict)

    @property
    def target_us(self) -> float:
        return float(self.params["target_us"])

    @property
    def done_ns(self) -> np.ndarray:
        """When each item was delivered (its batch's end)."""
        return self.arrivals_ns + self.latency_ns

    def batches(self) -> pl.DataFrame:
        """One row per batch: ``t_ms`` (taken), ``end_ms``, ``taken``, ``limit``,
        ``backlog``, ``latency_us`` (its oldest item), ``next_limit``."""
        log = self.log
        return pl.DataFrame({
            "policy": [self.label] * log.shape[0],
            "t_ms": log["start_ns"] / 1e6, "end_ms": log["end_ns"] / 1e6,
            "taken": log["taken"], "limit": log["limit"], "backlog": log["backlog"],
            "latency_us": log["latency_ns"] / 1e3, "next_limit": log["next_limit"],
        })

    def windows(self, window_ms: float = 1.0) -> pl.DataFrame:
        """Per window of ``window_ms``: ``arrivals_per_s`` (offered), ``throughput_per_s``
        (delivered), ``batch_mean`` (items per batch ending in it), ``limit_mean``,
        ``p50_us``/``p99_us``/``max_us`` of the items delivered in it (null when none)."""
        w = number("window_ms", window_ms, low=1e-3, high=1e6) * 1e6
        done = self.done_ns
        span = int(max(done.max(), self.arrivals_ns.max())) + 1
        nwin = max(int(math.ceil(span / w)), 1)
        if nwin > 1_000_000:
            raise ValueError(f"window_ms={window_ms!r} cuts this run into {nwin:,} windows; "
                             "at most 1,000,000")
        items = pl.DataFrame({"w": (done // w).astype(np.int64),
                              "latency_us": self.latency_ns / 1e3})
        per_item = items.group_by("w").agg(
            pl.len().alias("items"),
            pl.col("latency_us").quantile(0.5, "linear").alias("p50_us"),
            pl.col("latency_us").quantile(0.99, "linear").alias("p99_us"),
            pl.col("latency_us").max().alias("max_us"))
        log = self.log
        per_batch = pl.DataFrame({"w": (log["end_ns"] // w).astype(np.int64),
                                  "taken": log["taken"], "limit": log["limit"]}).group_by("w").agg(
            pl.len().alias("batches"), pl.col("taken").mean().alias("batch_mean"),
            pl.col("limit").mean().alias("limit_mean"))
        offered = np.bincount((self.arrivals_ns // w).astype(np.int64), minlength=nwin)[:nwin]
        frame = (pl.DataFrame({"w": np.arange(nwin, dtype=np.int64),
                               "arrivals_per_s": offered / (w * 1e-9)})
                 .join(per_item, on="w", how="left").join(per_batch, on="w", how="left")
                 .sort("w"))
        return frame.select(
            pl.lit(self.label).alias("policy"), (pl.col("w") * (w / 1e6)).alias("t_ms"),
            "arrivals_per_s",
            (pl.col("items").fill_null(0) / (w * 1e-9)).alias("throughput_per_s"),
            pl.col("batches").fill_null(0).cast(pl.Int64), "batch_mean", "limit_mean",
            "p50_us", "p99_us", "max_us")

    def phases(self) -> pl.DataFrame:
        """Per phase of the schedule (by arrival time; one phase when the run has no
        schedule): offered rate, items, throughput, mean batch, latency p50/p99, the share of
        items within the target, and Little's law: ``in_system`` (the time-average number
        of items arrived and not yet delivered, measured over the phase) against
        ``rate_x_latency`` (items delivered per second x their mean latency)."""
        a, done, lat = self.arrivals_ns, self.done_ns, self.latency_ns
        if self.schedule is not None:
            bounds = _bounds_ns(self.schedule)
            rates = [r for _, r in self.schedule]
        else:
            bounds = np.array([0, int(a.max()) + 1], dtype=np.int64)
            rates = [a.shape[0] / (bounds[1] * 1e-9)]
        starts = self.log["start_ns"]
        rows = []
        for k, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:])):
            mine = (a >= t0) & (a < t1)
            span_s = (t1 - t0) * 1e-9
            overlap = np.clip(np.minimum(done, t1) - np.maximum(a, t0), 0, None)
            delivered = (done >= t0) & (done < t1)
            in_batches = (starts >= t0) & (starts < t1)
            n = int(mine.sum())
            rows.append({
                "policy": self.label, "phase": k, "t_ms": t0 / 1e6, "rate_per_s": float(rates[k]),
                "items": n,
                "throughput_per_s": float(delivered.sum() / span_s),
                "batch_mean": float(self.log["taken"][in_batches].mean()) if in_batches.any() else None,
                "p50_us": float(np.percentile(lat[mine], 50) / 1e3) if n else None,
                "p99_us": float(np.percentile(lat[mine], 99) / 1e3) if n else None,
                "within_target": float((lat[mine] <= self.target_us * 1e3).mean()) if n else None,
                "in_system": float(overlap.sum() / (t1 - t0)),
                "rate_x_latency": float(delivered.sum() / span_s * lat[delivered].mean() * 1e-9)
                if delivered.any() else 0.0,
            })
        return pl.DataFrame(rows)

    def summary(self) -> dict:
        """The whole run: items, batches, mean batch, p50/p99 (us), share within target,
        throughput over the run (items/s)."""
        lat = self.latency_ns
        span = max(int(self.done_ns.max() - self.arrivals_ns.min()), 1)
        return {"policy": self.label, "clock": self.clock, "items": int(lat.shape[0]),
                "batches": int(self.log.shape[0]),
                "batch_mean": float(self.log["taken"].mean()),
                "p50_us": float(np.percentile(lat, 50) / 1e3),
                "p99_us": float(np.percentile(lat, 99) / 1e3),
                "within_target": float((lat <= self.target_us * 1e3).mean()),
                "throughput_per_s": float(lat.shape[0] / (span * 1e-9))}

    def __repr__(self) -> str:
        s = self.summary()
        return (f"BatchRun({self.label!r}, {self.clock}, {s['items']:,} items in {s['batches']:,} "
                f"batches, p99 {s['p99_us']:.1f} us)")


def _label(policy: str, p: np.ndarray) -> str:
    return f"fixed b={int(p[kbat.BP_BATCH])}" if policy == "fixed" else policy


def _inputs(policy, schedule, seed, arrivals_ns, params):
    p = policy_params(policy, **params)
    if arrivals_ns is None:
        schedule = load_schedule(schedule)
        a = arrivals(schedule, seed=seed)
    else:
        schedule = None
        a = _checked_arrivals(arrivals_ns)
    return p, schedule, a


def simulate(policy: str = "aimd", *, schedule: Iterable = DEFAULT_SCHEDULE, seed: int = 0,
             arrivals_ns=None, **params) -> BatchRun:
    """Run a batching consumer in exchange time (``kernels.batching.simulate_batching``):
    arrivals from ``schedule`` (Poisson, ``seed``) or the given sorted ``arrivals_ns``,
    batches by ``policy`` ('fixed': ``batch`` items; 'aimd': the controller), costs from
    ``fixed_us`` and ``per_item_us``. Deterministic: same inputs, same batches."""
    p, schedule, a = _inputs(policy, schedule, seed, arrivals_ns, params)
    n = a.shape[0]
    state = np.zeros(kbat.N_BATCH_STATE)
    counters = np.zeros(kbat.N_BATCH_COUNTERS, dtype=np.int64)
    latency = np.zeros(n, dtype=np.int64)
    log = np.zeros(n, dtype=R.BATCH)
    nb = int(kbat.simulate_batching(p, state, counters, a, latency, log))
    return BatchRun(policy, _label(policy, p), BATCHING.from_array(p), a, latency, log[:nb].copy(),
                    schedule, "simulated",
                    {"grows": int(state[kbat.BS_GROWS]), "shrinks": int(state[kbat.BS_SHRINKS])})


def simulate_many(batches: Iterable[int] = (1, 4, 16, 64), *, adaptive: bool = True,
                  schedule: Iterable = DEFAULT_SCHEDULE, seed: int = 0, arrivals_ns=None,
                  **params) -> list[BatchRun]:
    """One fixed run per batch size in ``batches`` and, with ``adaptive``, one AIMD run, all
    on the same arrivals. ``params`` go to every run (the fixed runs ignore the
    controller's; ``batch`` is the AIMD run's starting size)."""
    sizes = [int(number(f"batches[{i}]", b, low=1, high=kbat.MAX_BATCH, integer=True))
             for i, b in enumerate(batches)]
    if not sizes and not adaptive:
        raise ValueError("batches=() and adaptive=False: nothing to run")
    if arrivals_ns is None:
        schedule = load_schedule(schedule)
        arrivals_ns = arrivals(schedule, seed=seed)
    else:
        schedule = None
    runs = [simulate("fixed", arrivals_ns=arrivals_ns, **{**params, "batch": b}) for b in sizes]
    if adaptive:
        runs.append(simulate("aimd", arrivals_ns=arrivals_ns, **params))
    for run in runs:
        run.schedule = schedule  # the phases of the schedule the arrivals came from
    return runs


def compare(batches: Iterable[int] = (1, 4, 16, 64), *, adaptive: bool = True,
            schedule: Iterable = DEFAULT_SCHEDULE, seed: int = 0, window_ms: float = 1.0,
            **params) -> pl.DataFrame:
    """:func:`simulate_many`'s runs as one frame of windows (``BatchRun.windows``), one
    ``policy`` per run: what ``workbench.plots.batching_figure`` draws."""
    runs = simulate_many(batches, adaptive=adaptive, schedule=schedule, seed=seed, **params)
    return pl.concat([r.windows(window_ms) for r in runs])


def phase_table(runs: Iterable[BatchRun]) -> pl.DataFrame:
    """Every run's phases (``BatchRun.phases``) in one frame."""
    runs = list(runs)
    if not runs or not all(isinstance(r, BatchRun) for r in runs):
        raise ValueError("runs must be a non-empty list of BatchRun (simulate, simulate_many)")
    return pl.concat([r.phases() for r in runs])


# ------------------------------------------------------------- pieces, on their own
def controller_trace(latencies_us: Sequence[float], backlogs: Sequence[int], *,
                     taken: Sequence[int] | None = None, **params) -> np.ndarray:
    """The AIMD controller (``kernels.batching.batch_control``) fed one batch after
    another: batch ``i`` had its oldest item's latency ``latencies_us[i]`` and left
    ``backlogs[i]`` items queued. Returns the batch size state (a float) after each step;
    the batch size in force is its floor."""
    lat = np.asarray(latencies_us, dtype=np.float64)
    back = np.asarray(backlogs, dtype=np.int64)
    if lat.ndim != 1 or back.shape != lat.shape:
        raise ValueError(f"latencies_us and backlogs must be 1-D of one length, got "
                         f"{lat.shape} and {back.shape}")
    if not np.isfinite(lat).all() or (lat < 0).any() or (back < 0).any():
        raise ValueError("latencies_us must be finite and >= 0, backlogs >= 0")
    took = np.ones_like(back) if taken is None else np.asarray(taken, dtype=np.int64)
    p = policy_params("aimd", **params)
    state = np.zeros(kbat.N_BATCH_STATE)
    counters = np.zeros(kbat.N_BATCH_COUNTERS, dtype=np.int64)
    kbat.batch_reset(p, state, counters)
    out = np.empty(lat.shape[0])
    for i in range(lat.shape[0]):
        kbat.batch_control(p, state, float(lat[i] * 1e3), int(took[i]), int(back[i]))
        out[i] = state[kbat.BS_BATCH]
    return out


def start_time(arrivals: Sequence[int], head: int, free: int, limit: int, max_wait: int) -> int:
    """When a consumer free at ``free`` takes its next batch of at most ``limit`` items,
    items ``head ..`` of the sorted integer ``arrivals`` still to take, waiting at most
    ``max_wait`` for the batch to fill (``kernels.batching.batch_start``; any time unit)."""
    a = np.asarray(arrivals)
    if a.ndim != 1 or a.dtype.kind not in "iu" or not (np.diff(a) >= 0).all():
        raise ValueError(f"arrivals={arrivals!r} must be sorted integers")
    head = int(number("head", head, low=0, high=a.shape[0] - 1, integer=True))
    limit = int(number("limit", limit, low=1, high=kbat.MAX_BATCH, integer=True))
    free = int(number("free", free, low=-MAX_SPAN_NS, high=MAX_SPAN_NS, integer=True))
    max_wait = int(number("max_wait", max_wait, low=0, high=MAX_SPAN_NS, integer=True))
    return int(kbat.batch_start(a.astype(np.int64), head, a.shape[0], free, limit, max_wait))


# --------------------------------------------------------------- on the real ring
def run_on_ring(policy: str = "aimd", *, schedule: Iterable = DEFAULT_SCHEDULE, seed: int = 0,
                arrivals_ns=None, ring_capacity: int = 4096, wait_policy: str = "sleep",
                timeout_s: float = 30.0, **params) -> BatchRun:
    """The same consumer on a real SPSC ring (``workbench.queues.Ring``), in real time.

    A producer thread publishes each arrival when it is due (``produce_scheduled``: the
    message's ``ts`` is its due time, so a late producer or a full ring shows up as
    latency); a consumer thread runs ``consume_batches`` with the policy's start rule and
    controller, spinning ``fixed + taken * per_item`` as each batch's work. Both kernels
    release the GIL. When a kernel comes back with nothing to do, its thread follows
    ``wait_policy`` (``workbench.live.pipeline.WAIT_POLICIES``): ``"spin"`` calls again at
    once (lowest latency, a whole core each), ``"yield"`` gives the CPU away first,
    ``"sleep"`` (the default, polite on a shared machine) sleeps ~50 us, which every idle
    item then pays. Times come back relative to the schedule's start, like
    :func:`simulate`'s. Raises ``TimeoutError`` after ``timeout_s`` seconds.
    """
    from kernels import ring as kr
    from workbench.live.pipeline import SLEEP_S, SPIN_BUDGET, WAIT_POLICIES
    from workbench.queues import Ring

    p, schedule, a = _inputs(policy, schedule, seed, arrivals_ns, params)
    choice("wait_policy", wait_policy, WAIT_POLICIES)
    timeout_s = number("timeout_s", timeout_s, low=0.001, high=86_400.0)
    spins = SPIN_BUDGET[wait_policy]
    due = a if schedule is not None else a - a[0]  # a schedule's clock starts at 0
    n = a.shape[0]
    ring = Ring(ring_capacity, R.MESSAGE, peer_timeout=None)
    header, slots = ring.views()
    state = np.zeros(kbat.N_BATCH_STATE)
    counters = np.zeros(kbat.N_BATCH_COUNTERS, dtype=np.int64)
    kbat.batch_reset(p, state, counters)
    latency = np.full(n, -1, dtype=np.int64)
    log = np.zeros(n, dtype=R.BATCH)
    # compile (or load) both kernels before the clock starts
    kbat.produce_scheduled(header, slots, due, 0, 0, 0, 1)
    kbat.consume_batches(header, slots, p, state, counters, latency, log, 0, 1)
    errors: list[BaseException] = []
    stop = threading.Event()
    go = threading.Event()
    ready = threading.Barrier(3, timeout=timeout_s)
    clock = {"t0": 0}  # the schedule's 0 on the monotonic clock, set once both threads run
    deadline = time.monotonic() + timeout_s + int(due[-1]) / 1e9

    def idle(wait_ns: int = 0) -> None:
        if wait_policy == "yield":
            os.sched_yield()
        elif wait_policy == "sleep":
            time.sleep(max(SLEEP_S, (wait_ns - 100_000) / 1e9))

    def run(loop) -> None:
        try:
            ready.wait()
            go.wait(timeout_s)
            if not stop.is_set():
                loop(clock["t0"])
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            stop.set()

    def produce(t0: int) -> None:
        seq = 0
        while seq < n and not stop.is_set():
            seq = int(kbat.produce_scheduled(header, slots, due, seq, n, t0, spins))
            if seq < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producer: {seq} of {n} published in time")
                idle(t0 + int(due[seq]) - int(kc.now_ns()))
        ring.finish()

    def consume(t0: int) -> None:
        while counters[kbat.BC_ITEMS] < n and not stop.is_set():
            status = kbat.consume_batches(header, slots, p, state, counters, latency, log,
                                          256, spins)
            if status == kbat.RB_BUDGET:
                continue
            if status == kbat.RB_IDLE and ring.finished and kr.ring_size(header) == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer: {int(counters[kbat.BC_ITEMS])} of {n} "
                                   f"consumed in time")
            idle()

    threads = [threading.Thread(target=run, args=(produce,), name="batching-producer", daemon=True),
               threading.Thread(target=run, args=(consume,), name="batching-consumer", daemon=True)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        stop.set()
    clock["t0"] = t0 = int(kc.now_ns()) + 1_000_000  # a head start to wake both threads
    go.set()
    for t in threads:
        t.join()
    stats = ring.stats()
    ring.close()
    if errors:
        raise errors[0]
    nb = int(counters[kbat.BC_BATCHES])
    out = log[:min(nb, n)].copy()
    out["start_ns"] -= t0
    out["end_ns"] -= t0
    return BatchRun(policy, _label(policy, p) + " (ring)", BATCHING.from_array(p), due, latency,
                    out, schedule, "ring", {"grows": int(state[kbat.BS_GROWS]),
                             "shrinks": int(state[kbat.BS_SHRINKS]),
                             "bad_seq": int(counters[kbat.BC_BAD_SEQ]),
                             "full_spins": stats["full_spins"], "empty_spins": stats["empty_spins"]})
