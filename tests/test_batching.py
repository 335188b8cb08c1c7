"""Batching (kernels.batching, workbench.batching): the simulated consumer against a plain-Python
model of the same rules (same batches, same latencies), the AIMD controller's invariants, the
same consumer on a real ring, validation at the boundary, and a fuzz of the public entry point."""
from __future__ import annotations

import bisect
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import batching as kbat
from workbench import batching

MAX = kbat.MAX_BATCH


# ------------------------------------------------------------ the plain-Python model
def reference_run(arrivals, policy, *, batch=8, min_batch=1, max_batch=256, target_us=100.0,
                  increase=4.0, decrease=0.5, max_wait_us=200.0, fixed_us=10.0, per_item_us=0.5):
    """Batches and latencies by the module docstring's rules, written from scratch: a free
    consumer takes min(queued, b) items at once when b are queued, else waits for the b-th
    arrival or the oldest's max_wait, whichever is first; a batch costs fixed + taken *
    per_item; AIMD after each batch grows on a backlog when over target, else shrinks when
    over target, clamped. Returns (rows of (start, end, first, taken, limit, backlog,
    latency, next_limit), latencies)."""
    arrivals = [int(a) for a in arrivals]
    n = len(arrivals)
    target, max_wait = target_us * 1e3, int(max_wait_us * 1e3)
    fixed, per_item = fixed_us * 1e3, per_item_us * 1e3
    low = max(float(min_batch), 1.0)
    high = min(max(float(max_batch), low), float(MAX))

    def clamp(b):
        return min(max(b, low), high)

    b_state = clamp(float(batch)) if policy == "aimd" else min(max(float(batch), 1.0), float(MAX))

    def limit():
        b = clamp(b_state) if policy == "aimd" else b_state
        return max(math.floor(b), 1)

    rows, latency = [], [0] * n
    free, head = arrivals[0], 0
    while head < n:
        lim = limit()
        start = max(free, arrivals[head])
        last = head + lim - 1
        if not (last < n and arrivals[last] <= start):
            fill = arrivals[last] if last < n else math.inf
            start = max(start, min(fill, arrivals[head] + max_wait))
        queued = bisect.bisect_right(arrivals, start) - head
        taken = min(queued, lim)
        backlog = queued - taken
        end = start + int(fixed + taken * per_item)
        for i in range(head, head + taken):
            latency[i] = end - arrivals[i]
        oldest = end - arrivals[head]
        if policy == "aimd":
            b = clamp(b_state)
            if oldest > target:
                b = b + increase if backlog > 0 else b * decrease
            b_state = clamp(b)
        rows.append((start, end, head, taken, lim, backlog, oldest, limit()))
        head += taken
        free = end
    return rows, latency


def _rows(run):
    log = run.log
    return [tuple(int(x) for x in r) for r in zip(
        log["start_ns"], log["end_ns"], log["first"], log["taken"], log["limit"], log["backlog"],
        log["latency_ns"], log["next_limit"])]


SMALL = ((4.0, 50_000.0), (4.0, 400_000.0), (4.0, 1_500_000.0), (4.0, 30_000.0))


@pytest.mark.parametrize("policy, params", [
    ("fixed", dict(batch=1)),
    ("fixed", dict(batch=16)),
    ("fixed", dict(batch=64, max_wait_us=0.0)),
    ("aimd", dict()),
    ("aimd", dict(batch=3, min_batch=2, max_batch=40, increase=1.5, decrease=0.7, target_us=60.0)),
    ("aimd", dict(max_wait_us=0.0, fixed_us=3.0, per_item_us=0.25)),
])
def test_simulation_matches_the_plain_python_model(policy, params):
    a = batching.arrivals(SMALL, seed=3)
    run = batching.simulate(policy, arrivals_ns=a, **params)
    rows, latency = reference_run(a, policy, **params)
    assert _rows(run) == rows
    assert run.latency_ns.tolist() == latency
    # every item delivered once, in order, never before its arrival plus its batch's cost
    assert int(run.log["taken"].sum()) == a.shape[0]
    assert (run.log["first"][1:] == np.cumsum(run.log["taken"])[:-1]).all()
    assert (run.latency_ns >= int(params.get("fixed_us", 10.0) * 1e3)).all()


def test_fixed_batches_never_exceed_their_size_and_pay_the_fixed_cost_per_batch():
    a = batching.arrivals(SMALL, seed=1)
    for b in (1, 4, 32):
        run = batching.simulate("fixed", arrivals_ns=a, batch=b, fixed_us=10.0, per_item_us=0.5)
        log = run.log
        assert (log["taken"] <= b).all() and (log["limit"] == b).all()
        assert ((log["end_ns"] - log["start_ns"]) == 10_000 + 500 * log["taken"]).all()
        assert (log["start_ns"][1:] >= log["end_ns"][:-1]).all()  # one consumer


# --------------------------------------------------------------- the controller
def test_controller_grows_on_a_backlog_shrinks_over_target_and_holds_otherwise():
    p = dict(batch=8, target_us=100.0, increase=4.0, decrease=0.5, min_batch=2, max_batch=20)
    trace = batching.controller_trace(
        [150, 150, 50, 50, 150, 150, 150, 150, 100, 900, 900, 900, 900, 900],
        [3, 3, 7, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9], **p)
    assert trace.tolist() == [12, 16, 16, 16, 8, 4, 2, 2, 2, 6, 10, 14, 18, 20]


@settings(max_examples=60, deadline=None)
@given(lat=st.lists(st.floats(0, 1e4), min_size=1, max_size=60),
       back=st.lists(st.integers(0, 50), min_size=60, max_size=60),
       lo=st.integers(1, 50), span=st.integers(0, 300), start=st.integers(1, 500),
       inc=st.floats(0, 64), dec=st.floats(0, 1), target=st.floats(0.001, 5e3))
def test_controller_stays_in_bounds_and_moves_the_right_way(lat, back, lo, span, start, inc, dec,
                                                            target):
    back = back[:len(lat)]
    hi = lo + span
    trace = batching.controller_trace(lat, back, batch=start, min_batch=lo, max_batch=hi,
                                      increase=inc, decrease=dec, target_us=target)
    assert ((trace >= lo) & (trace <= hi)).all()
    prev = min(max(start, lo), hi)
    for b, latency, backlog in zip(trace, lat, back):
        if latency > target and backlog > 0:
            assert b >= prev
        elif latency > target:
            assert b <= prev
        else:
            assert b == prev
        prev = b


def test_adaptive_grows_under_load_shrinks_when_it_drops_and_holds_the_target():
    runs = batching.simulate_many((1, 4, 16, 64))
    adaptive = runs[-1]
    target = adaptive.target_us
    log = adaptive.log
    assert ((log["limit"] >= 1) & (log["limit"] <= 256)).all()
    phase = log["start_ns"] // 20_000_000
    mean_limit = [log["limit"][phase == k].mean() for k in range(4)]
    assert mean_limit[2] > 3 * mean_limit[1] > 3 * mean_limit[0]  # grows with the load ...
    assert mean_limit[3] < mean_limit[2] / 5                          # ... and shrinks after it
    # steady state (2 ms after each step): every window within the target; each fixed batch
    # size misses it in some phase (small ones drown in the burst, big ones wait to fill)
    w = adaptive.windows(1.0)
    steady = w.filter((pl.col("t_ms") % 20 >= 2) & pl.col("p99_us").is_not_null())
    assert steady["p99_us"].max() <= target
    for run in runs[:-1]:
        assert run.phases()["p99_us"].max() > target, run.label


def _time_in_system(arrivals, done, t0, t1):
    """The integral of N(t) (arrived, not yet delivered) over [t0, t1), by an event sweep."""
    times = np.concatenate([arrivals, done])
    steps = np.concatenate([np.ones(arrivals.shape[0]), -np.ones(done.shape[0])])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(steps[order])
    edges = np.clip(np.append(times, times[-1]), t0, t1)
    return float((level * np.diff(edges)).sum())


def test_phases_windows_and_littles_law_add_up():
    run = batching.simulate("aimd", seed=5)
    n = run.arrivals_ns.shape[0]
    w = run.windows(0.5)
    assert w["batches"].sum() == run.log.shape[0]
    assert round(w["throughput_per_s"].sum() * 0.5e-3) == n
    assert round(w["arrivals_per_s"].sum() * 0.5e-3) == n
    ph = run.phases()
    assert ph["items"].sum() == n and ph.height == len(batching.DEFAULT_SCHEDULE)
    bounds = np.cumsum([0.0] + [d * 1e6 for d, _ in batching.DEFAULT_SCHEDULE])
    for row, t0, t1 in zip(ph.iter_rows(named=True), bounds[:-1], bounds[1:]):
        swept = _time_in_system(run.arrivals_ns, run.done_ns, t0, t1) / (t1 - t0)
        assert row["in_system"] == pytest.approx(swept, rel=1e-9)
        # Little's law: for a consumer that keeps up, L = lambda x W within the phase's edges
        assert row["in_system"] == pytest.approx(row["rate_x_latency"], rel=0.1)
        assert row["rate_per_s"] == pytest.approx(row["throughput_per_s"], rel=0.1)


# ------------------------------------------------------------------- on the ring
def test_the_same_consumer_on_a_real_ring_takes_every_message_once():
    schedule = ((3.0, 20_000.0), (3.0, 150_000.0), (3.0, 20_000.0))
    run = batching.run_on_ring("aimd", schedule=schedule, seed=2, wait_policy="sleep",
                               ring_capacity=1024, timeout_s=60.0)
    a = batching.arrivals(schedule, seed=2)
    n = a.shape[0]
    assert run.clock == "ring" and run.arrivals_ns.tolist() == a.tolist()
    assert run.counters["bad_seq"] == 0
    log = run.log
    assert int(log["taken"].sum()) == n
    assert (log["first"] == np.concatenate([[0], np.cumsum(log["taken"])[:-1]])).all()
    assert ((log["taken"] >= 1) & (log["taken"] <= log["limit"])).all()
    assert ((log["limit"] >= 1) & (log["limit"] <= 256)).all()
    # each batch spun at least its modelled cost; each item waited at least that long
    assert ((log["end_ns"] - log["start_ns"]) >= 10_000 + 500 * log["taken"]).all()
    assert (run.latency_ns >= 10_500).all()
    assert run.windows(1.0)["batches"].sum() == log.shape[0]


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("call, match", [
    (lambda: batching.simulate("lifo"), "policy='lifo'"),
    (lambda: batching.simulate("fixed", batch=0), "batch=0 must be >= 1"),
    (lambda: batching.simulate("fixed", batch=2.5), "batch=2.5 must be a whole number"),
    (lambda: batching.simulate("aimd", target_us=-1), "target_us=-1 must be >="),
    (lambda: batching.simulate("aimd", decrease=1.5), "decrease=1.5 must be <= 1"),
    (lambda: batching.simulate("aimd", increase=float("nan")), "increase=nan must be finite"),
    (lambda: batching.simulate("aimd", min_batch=9, max_batch=4), "min_batch=9 must be <= max_batch=4"),
    (lambda: batching.simulate("aimd", speed=3), "has no parameter"),
    (lambda: batching.simulate("aimd", seed=-1), "seed=-1"),
    (lambda: batching.simulate(schedule=((10, 1000), (0, 5))), r"schedule\[1\].duration_ms=0"),
    (lambda: batching.simulate(schedule=((10, -5),)), r"schedule\[0\].rate_per_s=-5"),
    (lambda: batching.simulate(schedule=((10, 5, 1),)), r"schedule\[0\]="),
    (lambda: batching.simulate(schedule="fast"), "schedule='fast'"),
    (lambda: batching.simulate(schedule=()), "at least one phase"),
    (lambda: batching.simulate(schedule=((1e6, 1e9),)), "at most"),
    (lambda: batching.simulate(arrivals_ns=[5, 3, 9]), r"arrivals_ns\[1\]=3"),
    (lambda: batching.simulate(arrivals_ns=[]), "non-empty"),
    (lambda: batching.simulate(arrivals_ns=[-1, 2]), "must lie in"),
    (lambda: batching.simulate(arrivals_ns=[0.5, 1.0]), "integer"),
    (lambda: batching.simulate().windows(0), "window_ms=0"),
    (lambda: batching.simulate_many((4, 0)), r"batches\[1\]=0"),
    (lambda: batching.capacity(0, 10, 0.5), "batch=0"),
    (lambda: batching.controller_trace([1, 2], [0]), "one length"),
    (lambda: batching.start_time([3, 1], 0, 0, 1, 0), "sorted"),
    (lambda: batching.start_time([1, 3], 2, 0, 1, 0), "head=2"),
    (lambda: batching.run_on_ring(wait_policy="busy"), "wait_policy='busy'"),
    (lambda: batching.run_on_ring(ring_capacity=1000), "capacity must be a power of two"),
])
def test_bad_input_is_refused_naming_the_field_and_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_capacity_is_the_cost_model():
    assert batching.capacity(1, 10.0, 0.5) == pytest.approx(1e6 / 10.5)
    assert batching.capacity(64, 10.0, 0.5) == pytest.approx(64e6 / 42.0)
    assert batching.capacity(4, 0.0, 0.0) == math.inf


# ------------------------------------------------------------------------ fuzz
@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(0, 60_000), min_size=1, max_size=300),
       policy=st.sampled_from(["fixed", "aimd"]), batch=st.integers(1, 70),
       lo=st.integers(1, 8), span=st.integers(0, 80), target=st.floats(1.0, 500.0),
       inc=st.floats(0.0, 10.0), dec=st.floats(0.0, 1.0), wait=st.floats(0.0, 300.0),
       fixed=st.floats(0.0, 30.0), per=st.floats(0.0, 3.0))
def test_fuzz_simulate_against_the_model(gaps, policy, batch, lo, span, target, inc, dec, wait,
                                         fixed, per):
    a = np.cumsum(np.asarray(gaps, dtype=np.int64))
    params = dict(batch=batch, max_wait_us=wait, fixed_us=fixed, per_item_us=per)
    if policy == "aimd":
        params.update(min_batch=lo, max_batch=lo + span, target_us=target, increase=inc,
                      decrease=dec)
    run = batching.simulate(policy, arrivals_ns=a, **params)
    rows, latency = reference_run(a, policy, **params)
    assert _rows(run) == rows
    assert run.latency_ns.tolist() == latency
    assert int(run.log["taken"].sum()) == a.shape[0]
    s = run.summary()
    assert s["items"] == a.shape[0] and s["batches"] == run.log.shape[0]


# ------------------------------------------------------------- plot and checkers
def test_batching_figure_draws_the_frame_it_is_given():
    from bokeh.embed import json_item

    from workbench.plots import batching_figure

    frame = batching.compare((4, 64), schedule=SMALL, window_ms=1.0)
    layout = batching_figure(frame, 100.0)
    json_item(layout)
    width = max(getattr(f, "frame_width", 0) or 0 for f in layout.children)
    assert width + 230 <= 900
    for name in ("fixed b=4", "fixed b=64", "aimd"):
        part = frame.filter(pl.col("policy") == name)
        (p99,) = layout.select({"name": f"p99:{name}"})
        (size,) = layout.select({"name": f"batch:{name}"})
        np.testing.assert_array_equal(p99.data_source.data["p99_us"], part["p99_us"].to_numpy())
        np.testing.assert_array_equal(size.data_source.data["batch_mean"],
                                      part["batch_mean"].to_numpy())
    with pytest.raises(ValueError, match="windows must be a frame"):
        batching_figure(pl.DataFrame({"t_ms": [0.0]}), 100.0)


def test_checkers_refuse_placeholders_and_accept_the_rules(monkeypatch, capsys):
    from workbench.teaching import check, checker

    monkeypatch.delenv(checker.ENV_HEADLESS, raising=False)
    assert not check("15.1", lambda batch, latency_us, backlog, **kw: batch)
    assert not check("15.2", lambda rate, fixed, per: 1)
    assert not check("15.3", lambda arrivals, head, free, limit, max_wait: free)
    out = capsys.readouterr().out
    assert out.count("not yet") == 3 and "Traceback" not in out

    def start_time(arrivals, head, free, limit, max_wait):
        start = max(free, arrivals[head])
        last = head + limit - 1
        if last < len(arrivals) and arrivals[last] <= start:
            return start
        fill = arrivals[last] if last < len(arrivals) else math.inf
        return max(start, min(fill, arrivals[head] + max_wait))

    assert check("15.3", start_time)


def test_kernels_take_hostile_arrays_without_touching_stray_memory():
    from kernels import records as R

    a = np.array([0, 10, 20, 5_000], dtype=np.int64)
    p = np.full(kbat.N_BATCH_PARAMS, np.nan)
    p[kbat.BP_POLICY] = kbat.BATCH_AIMD
    state = np.zeros(kbat.N_BATCH_STATE)
    counters = np.zeros(kbat.N_BATCH_COUNTERS, dtype=np.int64)
    latency = np.zeros(2, dtype=np.int64)          # shorter than the arrivals
    log = np.zeros(1, dtype=R.BATCH)               # room for one row
    nb = kbat.simulate_batching(p, state, counters, a, latency, log)
    assert nb == 2 and counters[kbat.BC_ITEMS] == 2 and counters[kbat.BC_LOG_FULL] == 1
    assert log["limit"][0] == 1                    # NaN bounds: one item per batch
    for head in (-5, 4, 99):
        assert kbat.batch_start(a, head, 4, 123, 3, 10) == 123
    assert kbat.batch_start(a, 0, 99, 0, 10**9, -7) == 0   # n, limit, max_wait clamped
