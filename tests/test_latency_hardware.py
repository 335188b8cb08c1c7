"""workbench.latency, workbench.hardware and workbench.teaching."""
from __future__ import annotations

import math
import os
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import hardware, latency, teaching


def nearest_rank(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(Fraction(str(q)) * len(ordered) / 100)) - 1]


# ----------------------------------------------------------------------- latency
def test_report_has_the_issue_columns_and_values_within_precision():
    values = np.random.default_rng(5).lognormal(9, 1.2, 20_000).astype(np.int64)
    rec = latency.LatencyRecorder("x", significant_digits=3)
    rec.record_many(values)
    frame = rec.report()
    assert frame.columns == ["count", "p50", "p90", "p99", "p99.9", "max"]
    row = frame.row(0, named=True)
    assert row["count"] == len(values)
    assert row["max"] == values.max()
    for key, q in latency.REPORT_PERCENTILES.items():
        want = nearest_rank(values, q)
        assert want <= row[key] <= want * 1.001
    assert rec.mean == pytest.approx(values.mean())


def test_warmup_merge_and_timing_block():
    rec = latency.LatencyRecorder("warm", warmup=3)
    rec.record_many(np.array([10**9, 10**9, 10**9, 5, 6], dtype=np.int64))
    assert rec.count == 2 and rec.max == 6
    other = latency.LatencyRecorder("other")
    with other.time():
        sum(range(1000))
    assert other.count == 1 and other.max > 0
    rec.merge(other)
    assert rec.count == 3
    with pytest.raises(ValueError, match="significant_digits"):
        rec.merge(latency.LatencyRecorder(significant_digits=2))
    with pytest.raises(ValueError, match="significant_digits"):
        latency.LatencyRecorder(significant_digits=7)
    with pytest.raises(ValueError, match="integer"):
        rec.record_many(np.array([1.5]))
    with pytest.raises(ValueError, match="percentile"):
        rec.percentile(101)


def test_multi_report_plot_table_and_plot():
    a, b = latency.LatencyRecorder("a"), latency.LatencyRecorder("b")
    a.record_many(np.arange(1, 1000))
    b.record_many(np.arange(1000, 5000))
    frame = latency.report({"a": a, "b": b})
    assert frame["name"].to_list() == ["a", "b"]
    table = latency.percentile_table([a, b])
    assert table.filter(pl.col("name") == "b")["value_ns"].is_sorted()
    fig = latency.percentile_plot([a, b])
    assert len(fig.renderers) == 4
    source = fig.renderers[0].data_source
    assert list(source.data["value_ns"]) == table.filter(pl.col("name") == "a")["value_ns"].to_list()


def test_clock_info_measures_the_kernel_clocks():
    import time

    from kernels import clock

    info = latency.clock_info(n_calls=10_000, calibration_ms=5)
    values = {(c.split()[0], m): v for c, m, v in info.iter_rows()}
    # the kernel clock reads CLOCK_MONOTONIC: a call costs between 1 ns and 20 us even on a
    # busy VM, it never went backwards, and its resolution is the OS's own
    assert 1 <= values[("now_ns", "call_overhead_ns")] <= 20_000
    assert values[("now_ns", "went_backwards")] == 0
    assert values[("now_ns", "clock_getres_ns")] == pytest.approx(
        time.clock_getres(time.CLOCK_MONOTONIC) * 1e9)
    # now_ns agrees with Python's own CLOCK_MONOTONIC reading taken around it
    before = time.monotonic_ns()
    mid = clock.now_ns()
    after = time.monotonic_ns()
    assert before <= mid <= after
    # the counter's frequency agrees with an independent calibration against
    # time.perf_counter_ns (median of five 30 ms windows; 15% covers a preempted read)
    rates = []
    for _ in range(5):
        t0, c0 = time.perf_counter_ns(), clock.cycles()
        time.sleep(0.03)
        t1, c1 = time.perf_counter_ns(), clock.cycles()
        rates.append((c1 - c0) / (t1 - t0))
    assert values[("cycles", "tsc_ghz")] == pytest.approx(float(np.median(rates)), rel=0.15)


# ---------------------------------------------------------------------- hardware
def _cpuinfo_field(name):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def test_report_covers_every_probe_and_reasons_explain_gaps():
    frame = hardware.report()
    assert {"cpu_model", "logical_cores", "caches", "numa_nodes", "isolated_cores", "huge_pages",
            "governor", "invariant_tsc", "affinity"} <= set(frame["probe"])
    for row in frame.iter_rows(named=True):
        assert (row["value"] is not None) or row["reason"], row


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux's /proc")
def test_probes_report_this_machine_as_the_os_sees_it():
    import glob

    assert hardware.logical_cores().value == os.cpu_count()
    assert hardware.get_affinity().value == sorted(os.sched_getaffinity(0))
    assert hardware.cpu_model().value == _cpuinfo_field("model name")
    flags = (_cpuinfo_field("flags") or "").split()
    if flags:
        assert hardware.invariant_tsc().value == ("constant_tsc" in flags and "nonstop_tsc" in flags)
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    if "HugePages_Total" in meminfo:
        pages = hardware.huge_pages().value
        assert pages["total"] == int(meminfo["HugePages_Total"])
        assert pages["free"] == int(meminfo["HugePages_Free"])
    nodes = glob.glob("/sys/devices/system/node/node[0-9]*")
    if nodes:
        assert hardware.numa_nodes().value == len(nodes)
    sizes = sorted(Path(p).read_text().strip()
                   for p in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"))
    if sizes:
        assert sorted(c["size"] for c in hardware.caches().value) == sizes


def test_every_probe_degrades_on_an_empty_tree(tmp_path):
    for probe in hardware.probes(root=str(tmp_path)):
        if probe.name in ("logical_cores", "affinity"):  # syscalls, not files
            continue
        if probe.name == "cpu_model" and probe.value is not None:
            continue  # falls back to platform.processor()
        assert probe.value is None and probe.reason, probe


def test_probes_parse_a_fake_tree(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\ncore id\t: 0\nflags\t: fpu constant_tsc nonstop_tsc\n\n"
        "processor\t: 1\nmodel name\t: Test CPU 9000\ncore id\t: 0\nflags\t: fpu constant_tsc nonstop_tsc\n")
    (tmp_path / "proc/meminfo").write_text("HugePages_Total:      4\nHugePages_Free:       3\nHugepagesize:    2048 kB\n")
    cpu = tmp_path / "sys/devices/system/cpu"
    (cpu / "cpu0/cache/index0").mkdir(parents=True)
    for name, value in {"level": "1", "type": "Data", "size": "32K", "coherency_line_size": "64"}.items():
        (cpu / "cpu0/cache/index0" / name).write_text(value + "\n")
    (cpu / "isolated").write_text("2-3\n")
    root = str(tmp_path)
    assert hardware.cpu_model(root).value == "Test CPU 9000"
    assert hardware.physical_cores(root).value == 1
    assert hardware.invariant_tsc(root).value is True
    assert hardware.huge_pages(root).value == {"total": 4, "free": 3, "page_kb": 2048}
    assert hardware.caches(root).value[0]["size"] == "32K"
    assert hardware.isolated_cores(root).value == "2-3"
    assert hardware.governor(root).value is None


def test_affinity_roundtrip_and_validation():
    current = hardware.get_affinity().value
    assert current == sorted(os.sched_getaffinity(0))
    assert hardware.set_affinity(current) == current
    with pytest.raises(ValueError, match="do not exist"):
        hardware.set_affinity([10_000])
    with pytest.raises(ValueError, match="at least one"):
        hardware.set_affinity([])


# ---------------------------------------------------------------------- teaching
@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.one_of(st.integers(0, 99), st.none()), max_size=60), capacity=st.integers(1, 9))
def test_py_ring_buffer_matches_a_bounded_deque(ops, capacity):
    ring = teaching.PyRingBuffer(capacity)
    model: deque = deque()
    for op in ops:
        if op is None:
            assert ring.pop() == (model.popleft() if model else None)
        else:
            accepted = ring.push(op)
            assert accepted == (len(model) < ring.capacity)
            if accepted:
                model.append(op)
        assert len(ring) == len(model)


def test_latency_tracker_warmup_decorator_and_stats():
    tracker = teaching.LatencyTracker("t", warmup=5)
    tracker_fn = tracker.track(lambda x: x + 1)
    assert [tracker_fn(i) for i in range(25)][-1] == 25
    assert len(tracker.latencies_ns) == 20
    for v in range(1, 1001):
        tracker.record(v)
    stats = tracker.stats()
    assert stats["count"] == 1020
    assert stats["p50_ns"] == nearest_rank(tracker.latencies_ns, 50)
    assert stats["p99.9_ns"] == nearest_rank(tracker.latencies_ns, 99.9)


def test_object_pool_reuses_and_counts_misses():
    pool = teaching.ObjectPool(dict, size=2)
    a, b = pool.acquire(), pool.acquire()
    c = pool.acquire()
    assert pool.misses == 1 and len(pool) == 0
    pool.release(a)
    with pool.borrow() as again:
        assert again is a
    assert len(pool) == 1 and b is not c


def test_compare_timing_methods_measures_each_clock():
    results = teaching.compare_timing_methods(n_calls=500, repeats=1)
    assert set(results) == set(teaching.TIMING_METHODS)
    assert all(r["overhead_ns"] > 0 for r in results.values())


# ------------------------------------------------------------- lesson kernels
def test_access_kernels_match_numpy_for_any_order_and_layout():
    from kernels.access import gather_sum, notional_sum
    from kernels.records import ORDER

    rng = np.random.default_rng(1)
    values = rng.integers(0, 1000, 5000)
    for index in (np.arange(5000), np.arange(0, 5000, 7), rng.permutation(5000)):
        assert gather_sum(values, index) == values[index].sum()
    orders = np.zeros(300, dtype=ORDER)
    orders["price"] = rng.integers(1, 10**6, 300)
    orders["qty"] = rng.integers(1, 100, 300)
    expected = int((orders["price"] * orders["qty"]).sum())
    assert notional_sum(orders["price"], orders["qty"]) == expected  # strided fields (AoS)
    assert notional_sum(orders["price"].copy(), orders["qty"].copy()) == expected  # SoA
