"""Lesson 16's machinery: the memory-mapped book, the VWAP kernels, the asm verdict, profiling,
the NUMA probe.

* A mapped book written by one process (killed with SIGKILL, or closed) is opened by this one:
  array by array it equals an in-memory engine fed the same events, and keeps matching it on
  further events; a third process reads it.
* Damaged, truncated, extended and mismatched files are refused with a clear error; every
  opener runs in a subprocess, so a segmentation fault fails the test instead of the suite.
* The VWAP kernels against numpy / plain-Python references (hypothesis, small budget), with
  empty input and zero volume; the asm verdict on this CPU; stage timings and perf output.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import book_state
from kernels import vwap as kv
from kernels.jit import SAFE_MODE
from workbench import asm, hardware, mmap_book, profiling
from workbench import vwap as wv
from workbench.book import Engine
from workbench.errors import InputError
from workbench.data.order_mix import MixSettings, order_mix

REPO = Path(__file__).resolve().parents[1]
MIX = MixSettings()
ARGS = dict(tick_size=MIX.tick_size, capacity=2_048, price_levels=1_024, record_fills=False)
N_EVENTS = 4_000
SEED = 7


def _run(code: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _same_arrays(a_state, b_state) -> list[str]:
    """The names of the state arrays whose bytes differ."""
    return [name for name, a, b in zip(a_state._fields, a_state, b_state)
            if not np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))]


def _same_records(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and all(np.array_equal(a[f], b[f]) for f in a.dtype.names)


@pytest.fixture(scope="module")
def flow():
    return order_mix(N_EVENTS, seed=SEED, settings=MIX)


# ====================================================================== the book across processes
WRITER = f"""
import os, signal, sys
from workbench import mmap_book
from workbench.data.order_mix import MixSettings, order_mix
flow = order_mix({N_EVENTS}, seed={SEED}, settings=MixSettings())
for path, closes in ((sys.argv[1], True), (sys.argv[2], False)):
    book = mmap_book.create(path, ["MIX"], **{ARGS!r})
    book.submit_many(flow[:{N_EVENTS // 2}])
    book.submit("MIX", "buy", 99.0, 10, order_id=1_000_000)
    if closes:
        book.close()
sys.stdout.write("written\\n")
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""

READER = """
import json, sys
from workbench import mmap_book
seen = []
for path in sys.argv[1:]:
    view = mmap_book.read(path)
    best = view.arrays["books"]["best"][0]
    levels = view.arrays["levels"]
    seen.append({"sealed": view.sealed, "next_id": view.next_id,
                 "bid": None if best[0] < 0 else int(levels[best[0]]["price"]),
                 "ask": None if best[1] < 0 else int(levels[best[1]]["price"]),
                 "resting": int(view.arrays["counters"][1])})
print(json.dumps(seen))
"""


def test_a_book_written_by_a_killed_process_is_the_same_book_here(tmp_path, flow):
    closed, killed = tmp_path / "closed.book", tmp_path / "killed.book"
    proc = _run(WRITER, closed, killed)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "written\n", proc.stderr

    expected = []
    for path, sealed in ((closed, True), (killed, False)):
        twin = Engine(["MIX"], **ARGS)
        twin.submit_many(flow[:N_EVENTS // 2])
        twin.submit("MIX", "buy", 99.0, 10, order_id=1_000_000)
        book = mmap_book.open(path)
        try:
            assert book.sealed_on_open is sealed
            assert _same_arrays(book.state, twin.state) == []
            assert book._next_id == twin._next_id == 1_000_001
            # further orders: the mapped book and the in-memory one stay identical
            mine, ref = book.submit_many(flow[N_EVENTS // 2:]), twin.submit_many(flow[N_EVENTS // 2:])
            assert _same_records(mine.results, ref.results) and _same_records(mine.fills, ref.fills)
            assert len(ref.fills) > 0 and ref.rejected == 0
            for side, price in (("buy", 100.5), ("sell", 99.5), ("buy", 98.0)):
                a, b = book.submit("MIX", side, price, 7), twin.submit("MIX", side, price, 7)
                assert (a.order_id, a.status, a.filled, a.leaves) == (b.order_id, b.status, b.filled,
                                                                       b.leaves)
                assert _same_records(a.fills, b.fills)
            assert _same_arrays(book.state, twin.state) == []
            expected.append({"bid": round(twin.best_bid("MIX") * twin.price_scale),
                             "ask": round(twin.best_ask("MIX") * twin.price_scale),
                             "resting": twin.stats()["live_orders"], "next_id": twin._next_id,
                             "sealed": True})
        finally:
            book.close()
    seen = _run(READER, closed, killed)   # a third process, after the close
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout) == expected


def test_a_private_view_never_reaches_the_file_and_locks_keep_one_writer(tmp_path, flow):
    path = tmp_path / "book.map"
    writer = mmap_book.create(path, ["MIX"], **ARGS)
    writer.submit_many(flow[:1_000])
    bid = writer.best_bid("MIX")
    with pytest.raises(mmap_book.MappedBookLocked, match="open elsewhere"):
        mmap_book.open(path)
    with pytest.raises(mmap_book.MappedBookLocked, match="being written"):
        mmap_book.open(path, "c")
    live = mmap_book.read(path)                      # an observer needs no lock
    events = int(live.arrays["counters"][book_state.EC_EVENTS])
    writer.submit("MIX", "buy", bid + 0.01, 5)       # ... and sees the writer's next order
    assert live.arrays["counters"][book_state.EC_EVENTS] == events + 1
    top = live.arrays["books"]["best"][0, 0]
    final_bid = writer.best_bid("MIX")
    assert live.arrays["levels"][top]["price"] == round(final_bid * live.price_scale)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.submit("MIX", "buy", 99.0, 1)
    assert writer.best_bid("MIX") == final_bid      # queries work on its copy

    private = mmap_book.open(path, "c")
    private.submit("MIX", "sell", 1.0, 10**6, order_id=10**9)   # sweeps every bid, in private
    assert private.best_bid("MIX") is None
    assert mmap_book.read(path).arrays["books"]["best"][0, 0] == top
    private.close()
    again = mmap_book.open(path)
    assert again.sealed_on_open and again.best_bid("MIX") == final_bid
    again.close()


def test_create_refuses_what_a_mapped_book_cannot_be(tmp_path):
    path = tmp_path / "x.map"
    with pytest.raises(ValueError, match="journal"):
        mmap_book.create(path, ["A"], journal=tmp_path / "j")
    with pytest.raises(ValueError, match="capacity"):
        mmap_book.create(path, ["A"], capacity=0)
    mmap_book.create(path, ["A"], capacity=16, price_levels=64).close()
    with pytest.raises(InputError, match="exists"):
        mmap_book.create(path, ["A"], capacity=16, price_levels=64)
    with pytest.raises(TypeError, match="create"):
        mmap_book.MappedEngine(["A"])
    with pytest.raises(ValueError, match="access"):
        mmap_book.open(path, "w")
    restored = Engine.from_bytes(mmap_book.open(path).to_bytes())   # images restore as Engines
    assert type(restored) is Engine and restored.symbols == ["A"]


# ====================================================================== damaged files
OPENER = """
import json, sys
from workbench import mmap_book
out = {}
for path in sys.argv[1:]:
    for name, fn in (("open", lambda p: mmap_book.open(p, "c")), ("read", mmap_book.read)):
        try:
            fn(path)
            out[f"{path}|{name}"] = ["opened", ""]
        except Exception as exc:
            out[f"{path}|{name}"] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


def _rewrite_meta(data: bytes, edit) -> bytes:
    """The file with its JSON metadata edited and every CRC made valid again: a file that
    passes the checksums but describes something else."""
    from kernels import journal as kj

    head = bytearray(data[:mmap_book.HEADER_FIXED])
    n = int.from_bytes(head[16:20], "little")
    meta = json.loads(data[64:64 + n])
    edit(meta)
    body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    assert 64 + len(body) <= int.from_bytes(head[12:16], "little")
    head[16:20] = len(body).to_bytes(4, "little")
    head[20:24] = int(kj.crc32c(np.frombuffer(body, np.uint8))).to_bytes(4, "little")
    head[32:36] = int(kj.crc32c(np.frombuffer(bytes(head[:32]), np.uint8))).to_bytes(4, "little")
    rest = data[64 + n:]
    pad = n - len(body)
    return bytes(head) + body + (bytes(pad) + rest if pad >= 0 else rest[-pad:])


def test_damaged_or_mismatched_files_are_refused_clearly_in_a_subprocess(tmp_path, flow):
    good_path = tmp_path / "good.map"
    book = mmap_book.create(good_path, ["MIX"], **ARGS)
    book.submit_many(flow[:1_500])
    book.close()
    good = good_path.read_bytes()
    header = int.from_bytes(good[12:16], "little")
    entries, _ = mmap_book.file_layout(book)
    at = {e["name"]: header + e["offset"] for e in entries}

    def unsealed(data: bytes) -> bytes:   # a writer that died: no data CRC to catch damage
        return data[:36] + (0).to_bytes(4, "little") + data[40:]

    def poke(data: bytes, offset: int, raw: bytes) -> bytes:
        return data[:offset] + raw + data[offset + len(raw):]

    best_off = at["books"] + book.state.books.dtype.fields["best"][1]
    cases = {
        "empty": (b"", "too short"),
        "cut in the header": (good[:40], "too short"),
        "truncated": (good[:-100], "truncated"),
        "extended": (good + bytes(64), "beyond the layout"),
        "bad magic": (b"NOTABOOK" + good[8:], "not a mapped book"),
        "version 9": (good[:8] + (9).to_bytes(4, "little") + good[12:], "format version 9"),
        "fixed header damaged": (poke(good, 24, bytes([good[24] ^ 0xFF])), "header damaged"),
        "metadata damaged": (poke(good, 100, b"#"), "metadata damaged"),
        "data byte flipped (sealed)": (poke(good, at["pool"] + 9, bytes([good[at["pool"] + 9] ^ 1])),
                                       "data damaged"),
        "another layout": (_rewrite_meta(good, lambda m: m.update(layout="0" * 32)),
                           "another state layout"),
        "settings disagree with the arrays": (
            _rewrite_meta(good, lambda m: m["settings"].update(capacity=4_096)), "array 'pool'"),
        "settings that build no engine": (
            _rewrite_meta(good, lambda m: m["settings"].update(price_levels=1_000)),
            "do not build an engine"),
        "handle out of range (unsealed)": (unsealed(poke(good, best_off, (10**6).to_bytes(4, "little"))),
                                           "books.best"),
        "bitmap summary damaged (unsealed)": (
            unsealed(poke(good, at["bits"] + 8 * 16, (1 << 63).to_bytes(8, "little"))), "summary"),
        "counters damaged (unsealed)": (
            unsealed(poke(good, at["counters"] + 8 * book_state.EC_W, (3).to_bytes(8, "little"))),
            "not a price window"),
        "next id damaged": (poke(good, 48, (-5).to_bytes(8, "little", signed=True)), "next order id"),
        "unsealed but intact": (unsealed(good), None),
    }
    paths = []
    for k, (name, (data, _)) in enumerate(cases.items()):
        p = tmp_path / f"case{k}.map"
        p.write_bytes(data)
        paths.append(p)
    (tmp_path / "adir.map").mkdir()
    extra = {"a directory": (tmp_path / "adir.map", "directory"),
             "no such file": (tmp_path / "missing.map", "no such file")}
    proc = _run(OPENER, *paths, *(p for p, _ in extra.values()))
    assert proc.returncode == 0, f"the opener died ({proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout)
    expectations = [(name, p, want) for (name, (_, want)), p in zip(cases.items(), paths)]
    expectations += [(name, p, want) for name, (p, want) in extra.items()]
    for name, p, want in expectations:
        for how in ("open", "read"):
            kind, message = out[f"{p}|{how}"]
            if want is None:
                assert kind == "opened", f"{name} ({how}): {kind}: {message}"
                continue
            assert kind in ("MappedBookError", "InputError"), f"{name} ({how}): {kind}: {message}"
            assert want in message and str(p) in message, f"{name} ({how}): {message}"


def test_the_file_size_is_the_header_page_plus_the_aligned_arrays(tmp_path):
    for capacity in (1, 1_000, 1_025):
        engine = Engine(["A", "B"], capacity=capacity, price_levels=256, record_fills=False)
        path = mmap_book.save(engine, tmp_path / f"{capacity}.map")
        arrays = sum(-(-a.nbytes // 64) * 64 for a in engine.state)
        assert path.stat().st_size == mmap_book.PAGE + arrays


# ====================================================================== VWAP
def _py_vwap(prices, qtys):
    """Plain Python, exact (fractions): None without volume."""
    from fractions import Fraction

    volume = sum(int(q) if isinstance(q, (int, np.integer)) else Fraction(float(q)) for q in qtys)
    if volume == 0:
        return None
    notional = sum((int(p) if isinstance(p, (int, np.integer)) else Fraction(float(p)))
                   * (int(q) if isinstance(q, (int, np.integer)) else Fraction(float(q)))
                   for p, q in zip(prices, qtys))
    return float(notional / volume)


trades_f = st.lists(st.tuples(st.floats(0.01, 1e5), st.one_of(st.just(0.0), st.floats(1e-3, 1e6))),
                    max_size=60)
trades_i = st.lists(st.tuples(st.integers(1, 10**9), st.integers(0, 10**6)), max_size=60)


@settings(max_examples=40, deadline=None)
@given(trades_f)
def test_float_vwap_matches_an_exact_reference(trades):
    p = np.array([t[0] for t in trades], dtype=np.float64)
    q = np.array([t[1] for t in trades], dtype=np.float64)
    want = _py_vwap(p, q)
    for got in (wv.vwap(p, q), (None if np.isnan(v := kv.vwap_scalar(p, q)) else v)):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, rel=1e-12)
    numpy = float(np.dot(p, q) / q.sum()) if q.sum() > 0 else None
    assert (numpy is None) == (want is None)


@settings(max_examples=40, deadline=None)
@given(trades_i)
def test_integer_vwap_is_exact(trades):
    p = np.array([t[0] for t in trades], dtype=np.int64)
    q = np.array([t[1] for t in trades], dtype=np.int64)
    num, den = kv.vwap_units(p, q)
    assert int(num) == sum(int(a) * int(b) for a, b in trades) and int(den) == sum(b for _, b in trades)
    want = _py_vwap(p, q)
    got = wv.vwap(p, q, price_scale=100)
    assert (got is None) if want is None else got == pytest.approx(want / 100, rel=1e-14)


def test_empty_and_zero_volume_have_no_vwap_and_bad_input_is_named():
    assert wv.vwap([], []) is None
    assert wv.vwap([100, 101], [0, 0]) is None
    assert wv.vwap(np.array([1.5]), np.array([0.0])) is None
    assert np.isnan(kv.vwap_simd(np.zeros(0), np.zeros(0)))
    assert np.isnan(kv.vwap_simd(np.ones(3), np.ones(2)))          # lengths differ: no read past
    assert kv.vwap_units(np.ones(3, np.int64), np.ones(2, np.int64))[1] == -1
    out = wv.rolling([1, 2, 3], [100, 100, 200], [0, 0, 5], 10)
    assert np.isnan(out[:2]).all() and out[2] == 200
    for args, match in ((([1.0, 2.0], [1.0]), "one per trade"),
                        (([1.0, float("nan")], [1.0, 1.0]), r"prices\[1\]"),
                        (([1.0, 2.0], [1.0, -1.0]), r"qtys\[1\]"),
                        (([[1.0]], [[1.0]]), "1-d"),
                        ((["a"], [1]), "numbers"),
                        (([2**40, 1], [2**30, 1]), "overflow")):
        with pytest.raises(ValueError, match=match):
            wv.vwap(*args)
    with pytest.raises(ValueError, match="earlier"):
        wv.rolling([2, 1], [1, 1], [1, 1], 5)
    with pytest.raises(ValueError, match="window_ns"):
        wv.rolling([1, 2], [1, 1], [1, 1], 0)
    with pytest.raises(ValueError, match="integer"):
        wv.rolling([1, 2], [1.5, 1.0], [1, 1], 5)
    assert kv.rolling_vwap(np.arange(3), np.ones(3, np.int64), np.ones(3, np.int64), 2,
                           np.empty(2)) == -1                      # out too short: refused


def _py_rolling(ts, p, q, window):
    out = []
    for i in range(len(ts)):
        inside = [j for j in range(i + 1) if ts[j] > ts[i] - window]
        vol = sum(q[j] for j in inside)
        out.append(float("nan") if vol == 0 else sum(p[j] * q[j] for j in inside) / vol)
    return np.array(out, dtype=np.float64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10**7), st.integers(0, 1_000)),
                max_size=50), st.integers(1, 200))
def test_rolling_vwap_matches_a_plain_python_window(rows, window):
    ts = np.cumsum([r[0] for r in rows]).astype(np.int64)
    p = np.array([r[1] for r in rows], dtype=np.int64)
    q = np.array([r[2] for r in rows], dtype=np.int64)
    got = wv.rolling(ts, p, q, window)
    want = _py_rolling(ts.tolist(), p.tolist(), q.tolist(), window)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-12, atol=0)


# ====================================================================== what LLVM emitted
def test_the_asm_verdict_separates_the_simd_loop_from_the_dependency_chain():
    p = q = np.ones(64)
    simd, scalar = asm.vector_report(kv.vwap_simd, (p, q)), asm.vector_report(kv.vwap_scalar, (p, q))
    assert not scalar.vectorised and scalar.packed == 0 and scalar.scalar > 0
    assert simd.function == "vwap_simd" and "float64" in simd.signature
    host = asm.host_simd()
    if host["isa"] != "x86-64" or not host["avx2"]:
        pytest.skip(f"the SIMD assertion is for x86-64 with AVX2; this CPU is {host['isa']} "
                    f"{host['cpu_name']} with {host['simd_features']}")
    # in either build: LLVM deletes the bounds checks of ``for i in range(n)`` over arrays of
    # length n (the checked build is the default), so the loop still vectorises
    assert bool(simd.note) == SAFE_MODE
    assert simd.vectorised and simd.width_bits >= 256, simd
    assert any(e.startswith(("vfmadd", "vaddpd", "vmulpd")) for e in simd.examples), simd.examples
    units = asm.vector_report(kv.vwap_units, (np.ones(8, np.int64), np.ones(8, np.int64)))
    assert units.vectorised   # integer sums need no fast-math to vectorise


def test_classify_reads_both_instruction_sets():
    x86 = "vfmadd231pd\t(%rdx), %ymm1, %ymm2\n vaddsd\t%xmm1, %xmm2, %xmm2\n vmovups %zmm0, (%rax)"
    assert asm.classify(x86, "x86-64")[:3] == (1, 1, 256)
    arm = "\tfmla\tv0.2d, v1.2d, v2.2d\n\tfadd\td0, d0, d1\n\tldr\tq0, [x0]"
    assert asm.classify(arm, "arm64")[:3] == (1, 1, 128)
    with pytest.raises(ValueError, match="dispatcher"):
        asm.vector_report(len)


# ====================================================================== profiling
def test_stage_profile_covers_the_kernel_and_its_results_are_right():
    rng = np.random.default_rng(3)
    n = 5_000
    ts = np.cumsum(rng.integers(0, 1_000, n)).astype(np.int64)
    p, q = rng.integers(9_000, 11_000, n, dtype=np.int64), rng.integers(0, 50, n, dtype=np.int64)
    frame = profiling.profile_trade_stages(ts, p, q, 50_000, repeats=3)
    assert frame["stage"].to_list() == [*kv.STAGES, "outside the stages"]
    assert (frame["median_ns"] >= 0).all() and frame["ns_per_item"].null_count() == 0
    out, marks = np.empty(n), np.zeros(len(kv.STAGES) + 1, np.int64)
    zero, total, worst = kv.trade_stages(ts, p, q, np.int64(50_000), out, marks)
    rolling = wv.rolling(ts, p, q, 50_000)
    assert zero == int((q == 0).sum()) and total == pytest.approx(wv.vwap(p, q), rel=1e-12)
    assert worst == pytest.approx(np.nanmax(np.abs(p - rolling)), rel=1e-12)
    assert (np.diff(marks) >= 0).all() and np.array_equal(out, rolling, equal_nan=True)
    with pytest.raises(ValueError, match=r"\[runs, 3\]"):
        profiling.stage_frame(np.zeros((2, 2)), ["a", "b"])


def test_perf_counters_report_every_event_or_say_why_not(monkeypatch):
    with profiling.perf_counters(("task-clock", "cycles")) as pc:
        kv.vwap_simd(np.ones(1_000), np.ones(1_000))
    frame = pc.frame
    assert frame["event"].to_list() == ["task-clock", "cycles"]
    if pc.available:
        assert frame["status"][0] == "ok" and frame["value"][0] > 0
    else:
        assert all(s.startswith("unavailable") for s in frame["status"])
    monkeypatch.setattr(profiling.shutil, "which", lambda name: None)
    with profiling.perf_counters(("task-clock",)) as missing:
        pass
    assert not missing.available and "not installed" in missing.frame["status"][0]
    recorded = ("Events enabled\n12.5,msec,task-clock,1,100.00,0.4,CPUs utilized\n"
                "<not supported>,,cycles,0,100.00,,\n")
    assert profiling._parse_perf(recorded, ("task-clock", "cycles", "instructions")) == [
        ("task-clock", 12.5, "msec", "ok"),
        ("cycles", None, "", "not supported here (VM or hidden by the kernel)"),
        ("instructions", None, "", "not reported by perf")]


# ====================================================================== NUMA
def test_numa_topology_from_a_fake_tree_and_from_this_machine(tmp_path):
    for node, cpus, dist in ((0, "0-3,8", "10 21"), (1, "4-7", "21 10")):
        d = tmp_path / f"sys/devices/system/node/node{node}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "distance").write_text(dist + "\n")
        (d / "meminfo").write_text(f"Node {node} MemTotal:       1024 kB\nNode {node} MemFree:  512 kB\n")
    topo = hardware.numa_topology(str(tmp_path))
    assert topo.value == [
        {"node": 0, "cpus": [0, 1, 2, 3, 8], "mem_total_kb": 1024, "mem_free_kb": 512,
         "distances": [10, 21]},
        {"node": 1, "cpus": [4, 5, 6, 7], "mem_total_kb": 1024, "mem_free_kb": 512,
         "distances": [21, 10]}]
    assert hardware.numa_topology(str(tmp_path / "none")).value is None
    here = hardware.numa_topology()
    if Path("/sys/devices/system/node").is_dir():
        listed = sorted(p.name for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
        assert [f"node{n['node']}" for n in here.value] == listed
        cpus = sorted(c for n in here.value for c in (n["cpus"] or []))
        assert set(os.sched_getaffinity(0)) <= set(cpus)
    cpu = hardware.current_cpu()
    if cpu.known:
        assert 0 <= cpu.value < (os.cpu_count() or 1)


# ====================================================================== the lesson's figures
def test_the_figures_show_the_numbers_they_are_given_and_fit_the_notebook():
    import polars as pl

    from workbench.plots import timing_bars_figure, vwap_figure

    ts = np.array([34_200, 34_260, 34_320], dtype=np.int64) * 10**9
    fig = vwap_figure(ts, np.array([100.0, 100.5, 99.75]), np.array([100.0, 100.2, 100.1]))
    trades = fig.select_one({"name": "trades"}).data_source.data
    line = fig.select_one({"name": "vwap"}).data_source.data
    assert list(trades["price"]) == [100.0, 100.5, 99.75] and list(line["vwap"]) == [100.0, 100.2, 100.1]
    assert list(trades["t"]) == [34_200_000.0, 34_260_000.0, 34_320_000.0]   # ms for the datetime axis
    assert fig.width <= 900 and fig.legend[0] in fig.right                   # legend beside the data
    frame = pl.DataFrame({"stage": ["a", "b"], "median_ns": [5.0, 7.5]})
    bars = timing_bars_figure(frame, "stage", "median_ns", title="t")
    source = bars.select_one({"name": "bars"}).data_source.data
    assert source["label"] == ["a", "b"] and source["value"] == [5.0, 7.5] and bars.width <= 900
    assert list(bars.y_range.factors) == ["b", "a"]                          # first row on top
    with pytest.raises(ValueError, match="columns"):
        timing_bars_figure(frame, "stage", "p99", title="t")
