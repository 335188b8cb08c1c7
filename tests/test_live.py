"""The live pipeline (workbench.live, kernels.pipeline) and its widgets, headless:
messages flow through admission, book and strategy; the control array carries
parameter changes into the running consumer; panels write the control array and the
monitor fills its ColumnDataSources; start/stop leaves no threads behind."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kernels import admission as kadm
from kernels import pipeline as kpipe
from kernels.histogram import HP_COUNT
from kernels.strategies import STRATEGIES
from tests.conftest import REPO
from workbench.latency import histogram_cdf
from workbench.live.overload import overload_run, simulate_admission
from workbench.live.pipeline import Pipeline, live_pipelines, safe_mode_status

FAST = dict(rate=20_000, work_ns=500.0, target_ns=2_000_000.0, feed_wait_policy="sleep",
            wait_policy="sleep")


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("wb-")]


def shm_entries():
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture
def pipe():
    p = Pipeline(**FAST)
    yield p
    p.stop()


def test_messages_flow_through_book_strategy_and_histograms(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.totals()["received"] > 5_000 and pipe.totals()["orders"] > 0)
    pipe.stop()
    t = pipe.totals()
    assert t["received"] == t["admitted"] + t["shed"]
    assert t["received"] <= t["published"]
    # every admitted message is timed end to end; every message through the book stage
    e2e = pipe.histogram("end_to_end")
    assert e2e[HP_COUNT] == t["admitted"]
    assert pipe.histogram("book")[HP_COUNT] == t["received"]
    assert t["strategy_wakes"] > 0 and t["orders"] > 0
    assert t["book_rejects"] < 0.01 * t["received"]  # the simulator's flow is valid
    # the strategy's own orders rest in the same book and its P&L is marked to the mid
    pnl = pipe.pnl()
    assert pnl["mid"] > 0 and np.isfinite(pnl["equity"])
    assert pipe.errors == []


def test_parameters_reach_the_running_consumer_within_a_second(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.totals()["received"] > 1_000)
    before = int(pipe.control[kpipe.CT_GENERATION])
    pipe.set_admission("codel", target_ns=750_000.0)
    pipe.set_strategy(half_spread_ticks=3)
    pipe.set_work(1_500)
    assert pipe.control[kpipe.CT_GENERATION] == before + 3
    t0 = time.monotonic()
    assert wait_for(lambda: pipe.counters[kpipe.PC_GENERATION] == before + 3, timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    active = pipe.active
    assert active[kpipe.CT_ADMISSION + kadm.AP_KIND] == kadm.ADM_CODEL
    assert active[kpipe.CT_ADMISSION + kadm.AP_TARGET_NS] == 750_000.0
    assert active[kpipe.CT_STRATEGY_PARAMS + 0] == 3.0  # mm_skew half_spread_ticks
    assert active[kpipe.CT_WORK_NS] == 1_500


def test_kill_switch_cancels_resting_orders_and_can_be_rearmed(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.counters[kpipe.PC_OPEN_ORDERS] > 0)
    pipe.set_risk(kill=1)
    assert wait_for(lambda: pipe.totals()["killed"])
    assert wait_for(lambda: pipe.counters[kpipe.PC_OPEN_ORDERS] == 0)
    orders = pipe.totals()["orders"]
    time.sleep(0.2)
    assert pipe.totals()["orders"] == orders  # no new orders while killed
    pipe.set_risk(kill=0)
    pipe.reset_kill_switch()
    assert wait_for(lambda: pipe.totals()["orders"] > orders)


def test_switching_strategy_cancels_the_old_ones_orders(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.counters[kpipe.PC_OPEN_ORDERS] > 0)
    cancels = pipe.totals()["cancels"]
    pipe.set_strategy("momentum")
    assert wait_for(lambda: pipe.counters[kpipe.PC_GENERATION] == pipe.control[kpipe.CT_GENERATION])
    assert pipe.totals()["cancels"] > cancels


def test_pause_stops_the_flow_and_resume_restarts_it(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.totals()["received"] > 1_000)
    pipe.pause()
    time.sleep(0.2)
    seen = pipe.totals()["received"]
    time.sleep(0.3)
    assert pipe.totals()["received"] == seen
    pipe.resume()
    assert wait_for(lambda: pipe.totals()["received"] > seen + 1_000)


def test_start_stop_leaves_no_threads_or_shared_memory():
    shm_before = shm_entries()
    for _ in range(2):
        p = Pipeline(**FAST).start()
        assert p.running and len(pipeline_threads()) >= 2
        assert wait_for(lambda: p.totals()["received"] > 100)
        p.stop()
        assert not p.running
    assert pipeline_threads() == []
    assert live_pipelines() == []
    assert shm_entries() - shm_before == set()


def test_restart_applies_ring_capacity(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.totals()["received"] > 100)
    pipe.restart(ring_capacity=256)
    assert pipe.running and pipe.header[1] == 256
    assert wait_for(lambda: pipe.totals()["received"] > 100)


def test_replays_an_event_array_in_laps_with_fresh_ids():
    from workbench.data.order_mix import order_mix

    events = order_mix(2_000, seed=1)
    with Pipeline(events, rate=None, strategy="none", work_ns=0.0, wait_policy="sleep",
                  price_levels=8192) as p:
        assert wait_for(lambda: p.totals()["received"] > 3 * events.shape[0])
    t = p.totals()
    assert p._lap >= 2
    # lap 2+ reuse ids offset by the lap: no duplicate-id rejects
    assert t["book_rejects"] < 0.01 * t["received"]


@pytest.mark.parametrize("bad, match", [
    (dict(controller="magic"), "controller"), (dict(ring_capacity=1000), "ring_capacity"),
    (dict(rate=-5), "rate"), (dict(strategy="nope"), "strategy"),
    (dict(strategy_params={"gamma": 1}), "gamma"), (dict(risk={"max_pos": 1}), "risk"),
    (dict(wait_policy="nap"), "wait_policy"), (dict(consumer_cpus=[999]), "consumer_cpus"),
])
def test_bad_settings_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        Pipeline(**bad)


def test_bad_feed_and_live_setters_are_rejected(pipe):
    with pytest.raises(ValueError, match="EVENT"):
        Pipeline(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="kp"):
        pipe.set_admission(kp=float("nan"))
    assert pipe.config.admission == {}  # nothing half-applied


def test_overload_run_reports_the_harness_keys():
    r = overload_run("codel", 2.0, 20_000, duration_s=0.3, warmup_s=0.1, **{
        k: v for k, v in FAST.items() if k not in ("rate", "target_ns")})
    assert {"controller", "load", "p50_ns", "p99_ns", "goodput", "shed_rate"} <= set(r)
    assert r["received"] > 0 and 0.0 <= r["shed_rate"] <= 1.0 and r["p50_ns"] <= r["p99_ns"]
    assert pipeline_threads() == []


def test_histogram_cdf_is_monotone_and_ends_at_one(pipe):
    pipe.start()
    assert wait_for(lambda: pipe.totals()["admitted"] > 1_000)
    lat, frac = histogram_cdf(pipe.histogram("end_to_end"))
    assert np.all(np.diff(lat) > 0) and np.all(np.diff(frac) >= 0) and frac[-1] == 1.0


def test_simulate_admission_summarises_a_model_queue():
    r = simulate_admission("codel", 2.0, n=20_000)
    assert r["latency_ns"].shape == (20_000,) and 0.3 < r["shed_rate"] < 0.7
    assert r["p99_ns"] <= 1.1 * 200_000
    with pytest.raises(ValueError, match="controller"):
        simulate_admission("fifo", 1.0)


def _safe_mode_in_a_fresh_python(extra: dict) -> tuple[str, str]:
    """What ``safe_mode_status()`` and the kernels report in a new process started with
    ``extra`` as its only WORKBENCH_SAFE / WORKBENCH_MODE: they only count at start-up."""
    code = ("import numpy as np\n"
            "from kernels.jit import kernel\n"
            "from workbench.live.pipeline import safe_mode_status\n"
            "@kernel(cache=False)\n"
            "def read(a, i):\n"
            "    return a[i]\n"
            "try:\n"
            "    read(np.zeros(3), 10)\n"
            "    checked = 'unchecked'\n"
            "except IndexError:\n"
            "    checked = 'bounds-checked'\n"
            "print(safe_mode_status()['enabled'], checked)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SAFE", "WORKBENCH_MODE")}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    enabled, checked = out.stdout.split()
    return enabled, checked


@pytest.mark.parametrize("extra, enabled, checked", [
    ({}, "True", "bounds-checked"),                            # ProductionSafe: the default
    ({"WORKBENCH_MODE": "lab"}, "False", "unchecked"),         # LabUnsafe opts out
    ({"WORKBENCH_SAFE": "0"}, "False", "unchecked"),
    ({"WORKBENCH_SAFE": "1", "WORKBENCH_MODE": "lab"}, "True", "bounds-checked"),
])
def test_safe_mode_status_reports_what_the_kernels_do(extra, enabled, checked):
    """``enabled`` is whether an out-of-range index raises in a kernel of that process,
    decided by the environment when Python started."""
    assert _safe_mode_in_a_fresh_python(extra) == (enabled, checked)


def test_safe_mode_status_is_this_process_and_explains_the_restart():
    from kernels.jit import safe_mode_enabled

    s = safe_mode_status()
    # read once at import: flipping the variable now changes nothing
    before = os.environ.get("WORKBENCH_SAFE")
    os.environ["WORKBENCH_SAFE"] = "0" if s["enabled"] else "1"
    try:
        assert safe_mode_status()["enabled"] is s["enabled"]
    finally:
        if before is None:
            del os.environ["WORKBENCH_SAFE"]
        else:
            os.environ["WORKBENCH_SAFE"] = before
    assert s["enabled"] is safe_mode_enabled(dict(os.environ))
    assert "WORKBENCH_SAFE" in s["how"] and "restart" in s["how"]


# ------------------------------------------------------------------------- widgets
def test_panels_write_the_control_array(pipe):
    from workbench.widgets import AdmissionPanel, HardwarePanel, StrategyPanel

    adm, strat, hw = AdmissionPanel(pipe), StrategyPanel(pipe), HardwarePanel(pipe)
    g = pipe.control[kpipe.CT_GENERATION]
    adm.controller.value = "pid"
    adm.target_us.value = 5_000.0
    adm.params["kp"].value = 0.9
    assert pipe.control[kpipe.CT_ADMISSION + kadm.AP_KIND] == kadm.ADM_PID
    assert pipe.control[kpipe.CT_ADMISSION + kadm.AP_TARGET_NS] == pytest.approx(5_000_000.0)
    assert pipe.control[kpipe.CT_ADMISSION + kadm.AP_KP] == 0.9
    strat.strategy.value = "grid_mm"
    assert pipe.control[kpipe.CT_STRATEGY] == STRATEGIES.id_of("grid_mm")
    assert set(strat.params) == {"levels", "spacing_ticks", "qty", "max_position"}
    strat.params["levels"].value = 5
    assert pipe.control[kpipe.CT_STRATEGY_PARAMS + 0] == 5
    strat.max_position.value = 700
    assert pipe.control[kpipe.CT_RISK + 1] == 700
    hw.batch.value = 16
    assert pipe.control[kpipe.CT_BATCH] == 16
    hw.consumer_wait.value = "yield"
    assert pipe.config.wait_policy == "yield"
    assert pipe.control[kpipe.CT_GENERATION] > g
    adm.params["decrease"].value = -1.0  # invalid: shown, not applied
    assert "decrease" in adm.message.value and pipe.config.admission.get("decrease") is None


def test_monitor_streams_into_bounded_sources(pipe):
    from workbench.widgets import LatencyMonitor

    mon = LatencyMonitor(pipe, max_points=3)
    pipe.start()
    assert wait_for(lambda: pipe.totals()["admitted"] > 500)
    for _ in range(5):
        mon.update()
        time.sleep(0.02)
    assert len(mon.over_time.data["t"]) == 3 and len(mon.rates.data["t"]) == 3
    assert max(mon.over_time.data["p99"]) > 0
    assert len(mon.cdf["end_to_end"].data["latency"]) > 0
    assert "received" in mon.status.value


def test_dashboard_runs_until_stopped():
    from workbench.widgets import dashboard

    board = dashboard(period_s=0.05, **FAST)
    try:
        assert board.monitor.duration_s is None
        assert wait_for(lambda: board.monitor.updates >= 5, timeout=30.0)
        assert board.pipeline.running and board.monitor.running
    finally:
        board.stop()
    assert not board.monitor.running and not board.pipeline.running
    assert board.monitor.status.value.endswith("(stopped)")
    assert pipeline_threads() == []


def test_dashboard_with_a_duration_stops_on_its_own():
    from workbench.widgets import dashboard

    board = dashboard(duration_s=0.6, period_s=0.1, **FAST)
    try:
        assert board.pipeline.running and board.monitor.running
        board.pause_button.value = True
        assert board.pipeline.paused
        board.pause_button.value = False
        assert not board.pipeline.paused
        # the session ends by itself: monitor first, then the pipeline it watches
        assert wait_for(lambda: not board.monitor.running and not board.pipeline.running,
                        timeout=5.0)
        assert board.monitor.updates >= 2
    finally:
        board.stop()
    assert pipeline_threads() == []


# --------------------------------------------------------- kernels, driven directly
def _drive(p, events, max_spins=1_000):
    """Publish ``events`` through the ring and consume them, in the calling thread."""
    done = 0
    while done < events.shape[0]:
        nxt, _ = kpipe.feed_publish(p.header, p.slots, events, done, events.shape[0], 0, done, 0, 0,
                                 0.0, 64, max_spins)
        kpipe.run_pipeline(*p._strategy(), *p._consumer_args(), nxt - done, max_spins)
        done = nxt
    return p


def _resting(st, book=0):
    from kernels.book import resting_orders
    from kernels.records import ORDER

    out = np.zeros(int(st.books[book]["orders"].sum()), dtype=ORDER)
    n = resting_orders(st, book, out)
    return out[:n]


@pytest.mark.parametrize("controller", ["none", "token_bucket"])
def test_the_book_sees_every_message_whatever_admission_sheds(controller):
    """Ring encoding + consumer vs applying the same events straight to a book: the
    resting orders match exactly, also when admission sheds most messages."""
    from kernels.book import apply_batch
    from kernels.book_state import EC_ANON_FALLBACK, allocate_state
    from kernels.records import FILL, RESULT
    from workbench.data.order_mix import order_mix

    events = order_mix(3_000, seed=3)
    p = Pipeline(events, strategy="none", controller=controller, work_ns=0.0,
                 admission={"rate": 1.0, "burst": 1.0}, price_levels=8192)
    _drive(p, events)
    reference = allocate_state(1, p.config.book_capacity, 8192, [100])
    reference.counters[EC_ANON_FALLBACK] = 0
    apply_batch(reference, events, np.zeros(8192, dtype=FILL), np.zeros(len(events), dtype=RESULT), 0)
    got, want = _resting(p.book), _resting(reference)
    for field in ("order_id", "price", "qty", "side"):  # in priority order; ts is the feed clock
        assert np.array_equal(got[field], want[field]), field
    t = p.totals()
    assert t["received"] == len(events) and t["admitted"] + t["shed"] == len(events)
    if controller == "token_bucket":
        assert t["shed"] > 0.9 * len(events)


def test_own_order_bookkeeping_matches_the_book():
    """What the strategy believes rests (its LIVE table, open quantities) is what the
    book holds under its ids, and its position is the net of its fills."""
    from kernels.records import OS_FREE, STRATEGY_ID_BASE

    p = Pipeline(rate=None, strategy="grid_mm", work_ns=0.0, wait_policy="sleep",
                 strategy_params={"levels": 3, "qty": 100, "max_position": 10_000})
    p.start()
    assert wait_for(lambda: p.totals()["own_fills"] > 20)
    p.stop()
    own = _resting(p.book)
    own = own[own["order_id"] >= STRATEGY_ID_BASE]
    live = p.orders[p.orders["state"] != OS_FREE]
    assert sorted(own["order_id"]) == sorted(live["order_id"])
    assert p.counters[kpipe.PC_OPEN_ORDERS] == len(live)
    leaves = {int(o["order_id"]): int(o["qty"]) for o in own}
    assert all(leaves[int(o["order_id"])] == o["leaves"] for o in live)
    c = p.ctx[0]
    assert c["open_bid_qty"] == own["qty"][own["side"] == 0].sum()
    assert c["open_ask_qty"] == own["qty"][own["side"] == 1].sum()
