"""Compile every bundled kernel once, ahead of the lessons (``python -m workbench warmup``).

Numba compiles a kernel the first time it is called with a new combination of argument
types, and keeps the machine code in its on-disk cache (``kernels.jit.kernel``:
``cache=True``). A student's first notebook therefore spends minutes compiling unless the
cache is already full. Warm-up fills it: each *group* below runs the product's own paths
(an ``Engine`` with adds, cancels, modifies and trades; a backtest with each bundled
strategy through ``workbench.backtest``, on the L3 and the L2 loop; the FIX codec and
acceptor; the feed loaders on tiny files written here; the live pipeline for a moment,
switched through every strategy; ...) on tiny inputs, so the kernels are compiled for
exactly the argument types the notebooks pass. The replay and pipeline loops are cached
per strategy and model (``workbench.backtest.loopcache``), so each combination the lessons
use is run once. A second run finds everything in the cache and takes seconds.

What the report counts, per group (from Numba's own bookkeeping):

``compiled``    kernel signatures compiled in this run and written to the cache;
``cached``      signatures loaded from the on-disk cache (no compilation);
``per_process`` compilations Numba cannot cache (kernels declared ``cache=False``, the
                loops when ``workbench.backtest.loopcache`` cannot cache them): they
                compile once per process whatever the cache holds. They are counted
                apart so that a warm run shows ``compiled == 0`` (``per_process_kernels``
                names them);
``seconds``, ``cpu_seconds`` wall and CPU time (CPU: all threads of the process).

Limits: a kernel is compiled for the types it is called with; a notebook that calls a
kernel with other types (say an int32 array where the product passes int64) compiles
that one signature on first use. Each build keeps its own cache: this warms the process's
build (bounds-checked by default); ``python -m workbench --mode lab warmup`` warms the
unchecked LabUnsafe one. ``not_cached`` (full runs
only) lists the cacheable kernels that are still not in the cache: no group reached them
(a kernel only some rare path calls).
"""
from __future__ import annotations

import gzip
import importlib
import json
import logging
import os
import pkgutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError

__all__ = ["GROUPS", "GroupReport", "WarmupReport", "warmup", "group_names"]


# ------------------------------------------------------------------------ the groups
def _book(work: Path) -> None:
    """The engine: every order type, cancels, modifies (down, up, moves, crossing),
    executions, rejects, batches, the views and the depth tools."""
    from kernels import book as kbook
    from kernels import records as R

    from .book import DEEP_PREFETCH_BOOKS, Engine, OrderBook, make_events
    from .data.order_mix import MixSettings, order_mix
    from .depth import depth_over_time, shape_table
    from .enums import EventKind, OrderType, Side, TimeInForce

    book = OrderBook("WARM", tick_size=0.01)
    for side, price, qty in [(Side.SELL, 100.02, 100), (Side.SELL, 100.03, 300), (Side.SELL, 100.01, 50),
                             (Side.BUY, 99.99, 100), (Side.BUY, 99.98, 200), (Side.BUY, 99.99, 150)]:
        book.submit(side, price, qty)
    book.submit(Side.BUY, 100.02, 120)                                     # trades
    book.submit(Side.BUY, 100.03, 1_000, tif=TimeInForce.IOC)
    book.submit(Side.SELL, 99.98, 5_000, tif=TimeInForce.FOK)              # rejected: too big
    book.submit(Side.SELL, None, 10, order_type=OrderType.MARKET)
    first = book.submit(Side.BUY, 99.00, 100).order_id
    second = book.submit(Side.BUY, 99.00, 100).order_id
    book.queue_position(second)
    book.cancel(first, qty=40)
    book.modify(first, qty=30)
    book.modify(first, qty=80)
    book.modify(second, price=99.01)
    book.submit(Side.SELL, 99.05, 60)
    book.modify(first, price=99.05)                                        # crosses
    book.execute(second, 10)
    book.cancel(123_456)                                                   # unknown id
    book.orders(), book.depth(3), book.get_bids(5), book.get_asks(5), book.fills(), book.stats()

    tiny = OrderBook("TINY", capacity=2)
    for _ in range(3):
        tiny.submit(Side.BUY, 50.00, 10)                                   # the third: no room
    tiny.submit(Side.SELL, 5_000.00, 10)

    rows, live, rng = [], [], np.random.default_rng(1)
    for order_id in range(1, 400):
        if live and rng.random() < 0.3:
            rows.append((EventKind.DELETE, live.pop(int(rng.integers(len(live)))), Side.BUY, 0, 0))
            continue
        side = int(rng.integers(2))
        ticks = int(rng.integers(-3, 40))
        price = 1_000_000 + (ticks if side == Side.SELL else -ticks) * 100
        tif = TimeInForce.IOC if rng.random() < 0.1 else TimeInForce.GTC
        rows.append((EventKind.ADD, order_id, side, price, int(rng.integers(1, 10)) * 100,
                     OrderType.LIMIT, tif))
        live.append(order_id)
    events = make_events(rows)
    engine = Engine(symbols=["WARM"], record_fills=False)
    engine.submit_many(events)
    recorded = Engine(symbols=["WARM"])
    recorded.submit_many(events)
    recorded.submit("WARM", Side.BUY, None, 500, order_type=OrderType.MARKET)
    recorded.depth("WARM", 5), recorded.orders("WARM"), recorded.stats()
    shape_table(recorded)
    depth_over_time(Engine(symbols=["WARM"]), events, "WARM", snapshots=4)

    settings = MixSettings()                                               # the demo's batches
    mix = order_mix(2_000, seed=1, settings=settings)
    target = settings.new_book("WARM", record_fills=False)
    fills = np.zeros(len(mix) + 16, dtype=R.FILL)
    target.apply(mix, fills, np.zeros(len(mix), dtype=R.RESULT))
    kbook.apply_batch_discard_fills(settings.new_book("WARM", record_fills=False).state, mix, fills,
                                    np.zeros(len(mix), dtype=np.int64))
    Engine([f"S{i}" for i in range(3)], capacity=1_000, price_levels=256).submit_many(
        order_mix(200, seed=2, settings=settings))
    # an engine of many books: the deep-prefetch batch loop (workbench.book.DEEP_PREFETCH_BOOKS)
    Engine([f"S{i}" for i in range(DEEP_PREFETCH_BOOKS)], capacity=1_000,
           price_levels=64).submit_many(order_mix(200, seed=2, settings=settings))


def _histogram(work: Path) -> None:
    """Clocks, HDR histograms, latency recorders and their reports."""
    from . import latency
    from .teaching import tools

    rec = latency.LatencyRecorder("warm")
    rec.record(1_000)
    rec.record_many(np.random.default_rng(0).lognormal(8, 1, 1_000).astype(np.int64))
    with rec.time():
        pass
    other = latency.LatencyRecorder("other", significant_digits=1)
    other.record_many(np.arange(1, 100, dtype=np.int64))
    rec.merge(latency.LatencyRecorder("warm"))
    rec.percentile(99), rec.percentiles([50, 99]), rec.summary(), rec.report(), rec.mean, rec.count
    latency.report({"a": rec})
    latency.histogram_cdf(rec.hist)
    latency.histogram_delta(rec.hist, None)
    latency.clock_info(n_calls=1_000, calibration_ms=1)
    tools.compare_timing_methods(n_calls=200, repeats=1)


def _ring(work: Path) -> None:
    """Rings in one process and in shared memory, the multi-producer ring, the
    sequenced-stream harness (sender and receiver compiled in one thread first, as the
    harness's child processes do: a producer thread that compiles for seconds would look
    like a dead peer to the consumer's heartbeat check)."""
    import threading

    from kernels import ring as kr
    from kernels.records import MESSAGE

    from .latency import LatencyRecorder
    from .queues import SPIN_BUDGET, MultiRing, Ring, SharedRing
    from .ring_harness import receive_sequence, send_paced, send_sequence, start_producer_thread

    ring = Ring(1 << 10)
    batch = np.zeros(64, dtype=MESSAGE)
    batch["seq"] = np.arange(64)
    ring.try_put(batch)
    ring.try_get(64)
    ring.put(batch, timeout=1.0)
    ring.get(64, timeout=1.0)
    ring.stats()
    rec = LatencyRecorder("hand-off")
    for batch_size in (1, 64):
        local = Ring(2048)
        send_sequence(local, 256, batch=batch_size)
        receive_sequence(local, 256, batch=batch_size, timeout=60)
    paced = Ring(64)
    header, slots = paced.views()
    kr.produce_paced(header, slots, 0, 0, 1_000, SPIN_BUDGET)    # compiled; sends nothing
    producer = start_producer_thread(ring, 2_000, batch=64)        # now warm: the threaded runs
    receive_sequence(ring, 2_000, timeout=60)
    producer.join()
    sender = threading.Thread(target=send_paced, args=(paced, 100), kwargs={"gap_ns": 1_000})
    sender.start()       # one message at a time, each once the ring is empty: needs the consumer
    receive_sequence(paced, 100, histogram=rec.hist, batch=1, timeout=60)
    sender.join()
    small = Ring(32)
    sender = threading.Thread(target=send_sequence, args=(small, 500))
    sender.start()
    receive_sequence(small, 500, timeout=60)
    sender.join()
    multi = MultiRing(256)
    multi.try_put(batch)
    multi.try_get(64)
    with SharedRing.create(1 << 8) as shared:
        shared.try_put(batch[:8])
        shared.try_get(8)


def _fix(work: Path) -> None:
    """The FIX codec: framing, validation, decoding (serial and parallel), execution
    reports, and a logon plus orders through the asyncio acceptor on 127.0.0.1."""
    import asyncio

    from kernels.fix import fields as fix_fields

    from .bench.fix import new_order_singles
    from .book import Engine
    from .data.prices import PRICE_SCALE
    from .fix import AcceptorConfig, FixAcceptor, build_message, parse
    from .fix.encoder import encode_execution_reports, execution_reports_from_fills, format_timestamp

    order = build_message("D", [(49, "CLIENT1"), (56, "ISLD"), (34, 2), (52, "20240102-14:30:00.123"),
                                (11, "ord-1"), (55, "AAPL"), (54, "1"), (38, 100), (40, "2"),
                                (44, "185.25"), (59, "0"), (60, "20240102-14:30:00.120")])
    batch = parse(order + order.replace(b"AAPL", b"AAPM") + b"garbage\n" + order[:60], symbols=["AAPL"])
    batch.summary(), batch.messages_frame(), batch.tags_frame(), batch.events_frame(), batch.seq_gaps()
    parse(order + order, stream=True)
    data = np.frombuffer(b"".join(new_order_singles(400)), np.uint8)
    for parallel in (False, True):
        parse(data, parallel=parallel, symbols=["AAPL"]).events
    engine = Engine(["AAPL"], tick_size=0.01)
    engine.submit("AAPL", "sell", 185.25, 100)
    fills = engine.submit("AAPL", "buy", 185.30, 40).fills
    for perspective, qty in (("maker", None), ("taker", 40)):
        reports = execution_reports_from_fills(fills, perspective=perspective, order_qty=qty)
        buffer, _ = encode_execution_reports(reports, sender_comp_id="ISLD", target_comp_id="ME")
        parse(buffer).execution_reports
    one = parse(order, symbols=["AAPL"])
    span = one.fields[fix_fields.find_field(one.fields, one.messages[0], 44)]
    fix_fields.fixed_value(one.buffer, span["start"], span["end"], PRICE_SCALE)
    snapshot = build_message("W", [(49, "ISLD"), (56, "ME"), (34, 5), (52, "20240102-14:30:00.000"),
                                   (55, "AAPL"), (268, 2), (269, "0"), (270, "185.20"), (271, 300),
                                   (269, "1"), (270, "185.30"), (271, 200)])
    parse(snapshot, symbols=["AAPL"]).md_entries

    async def session() -> None:
        eng = Engine(symbols=["AAPL"], tick_size=0.01)
        acceptor = FixAcceptor(eng, AcceptorConfig(counterparties=["ME"]))
        host, port = await acceptor.start()
        try:
            reader, writer = await asyncio.open_connection(host, port)
            for seq, (msg_type, fields) in enumerate([
                    ("A", [(98, 0), (108, 30)]),
                    ("D", [(11, "s1"), (55, "AAPL"), (54, "2"), (38, 100), (40, "2"), (44, "185.25"),
                           (60, "20240102-14:30:00.000")]),
                    ("D", [(11, "b1"), (55, "AAPL"), (54, "1"), (38, 40), (40, "2"), (44, "185.30"),
                           (60, "20240102-14:30:01.000")])], start=1):
                writer.write(build_message(msg_type, [(49, "ME"), (56, "ISLD"), (34, seq),
                                                      (52, format_timestamp(time.time_ns())), *fields]))
                await writer.drain()
                reply = parse(await asyncio.wait_for(reader.read(65536), 10))
                reply.execution_reports
            writer.close()
        finally:
            await acceptor.stop()

    asyncio.run(session())


def _data(work: Path) -> None:
    """The feed loaders and replay checks on tiny files written here: LOBSTER (the deep
    sample writer), NASDAQ ITCH 5.0 (a synthetic day), Databento MBO (DBN and CSV through
    databento-dbn), a Binance capture; bars, the simulator and the embedded samples."""
    import polars as pl

    from .data import bars as wbars
    from .data import databento, itch
    from .data.binance import check_capture
    from .data.lobster_sample import write_deep_sample
    from .data.market import load_events
    from .data.samples import load_sample, load_sample_events
    from .data.synthetic import simulate
    from .lobster_check import lobster_check

    for levels in (1, 10):
        msg, ob = write_deep_sample(work, n_levels=levels, n_messages=300, seed=7)
        lobster_check(msg, ob)
    load_events(str(msg))

    day = itch.synthetic_day(work / "day.itch.gz", n_symbols=2, messages=3_000, seed=1, group=2,
                             progress=False)
    feed = itch.load(day.path)
    feed.new_engine().submit_many(feed.events)
    itch.check(day.path, progress=False)
    itch.messages_frame(itch.message_records(day.path))
    load_events(str(day.path))

    records = databento.synthetic_mbo(1_500, n_instruments=2, seed=5)
    dbn = databento.write_dbn(work / "warm.mbo.dbn", records, {1000: "AAA", 1001: "BBB"})
    databento.check_mbo(dbn)
    databento.replay(databento.load_mbo(dbn))
    load_events(str(dbn))

    capture = _binance_capture(work / "warm_binance_spot.gz")
    check_capture(capture)
    load_events(str(capture))

    load_sample_events()
    market = simulate(n_symbols=2, seed=3, duration_s=120, rate=5.0)
    market.events_frame(), market.trades_frame()
    daily = load_sample("synthetic_daily.parquet").filter(pl.col("symbol") == "AAA").head(20)
    ticks = wbars.bars_to_ticks(daily, "1d", ticks_per_bar=8, seed=1)
    wbars.ticks_to_bars(ticks, "1d")


def _binance_capture(path: Path) -> Path:
    """A tiny, valid spot capture (``<recv_ts_ns> <json>`` lines, gzip): one REST
    snapshot, diff-depth updates in sequence, bookTickers and trades."""
    rng = np.random.default_rng(8)
    lines, t0, uid = [], 1_723_100_000_000_000_000, 1_000

    def emit(ts, doc):
        lines.append(f"{ts} {json.dumps(doc, separators=(',', ':'))}")

    mid = 60_000.0
    emit(t0, {"lastUpdateId": uid,
              "bids": [[f"{mid - 0.01 * (k + 1):.2f}", "1.00000"] for k in range(20)],
              "asks": [[f"{mid + 0.01 * (k + 1):.2f}", "1.00000"] for k in range(20)]})
    for step in range(200):
        ts = t0 + (step + 1) * 10_000_000
        first, uid = uid + 1, uid + 3
        bid = mid - 0.01 * int(rng.integers(1, 5))
        ask = mid + 0.01 * int(rng.integers(1, 5))
        emit(ts, {"stream": "btcusdt@depth@100ms", "data": {
            "e": "depthUpdate", "E": ts // 1_000_000, "U": first, "u": uid,
            "b": [[f"{bid:.2f}", f"{rng.integers(1, 9) / 10:.5f}"]],
            "a": [[f"{ask:.2f}", f"{rng.integers(1, 9) / 10:.5f}"]]}})
        if step % 5 == 0:
            emit(ts + 1, {"stream": "btcusdt@trade", "data": {
                "e": "trade", "E": ts // 1_000_000, "T": ts // 1_000_000, "t": step,
                "p": f"{mid + 0.01:.2f}", "q": "0.01000", "m": bool(step % 2)}})
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _backtest(work: Path) -> None:
    """``workbench.backtest``: every bundled strategy on the L3 loop (a short simulated
    session), risk limits, a sweep, and the L2 loop (a Binance capture). The loops are
    cached per (strategy, latency model, queue model) (``workbench.backtest.loopcache``);
    the bundled latencies (constant or sampled) share one latency kernel and the bundled
    queue models one queue kernel, so one run per strategy and loop compiles what every
    lesson's variant uses."""
    from kernels.strategies import STRATEGIES

    from .backtest import Backtest, sweep
    from .data.market import load_events
    from .data.synthetic import simulate

    events = load_events(simulate(n_symbols=1, seed=5, duration_s=120, rate=10.0))
    for name in STRATEGIES.names():
        result = (Backtest(events).strategy(name).latency(50, 100, 50)
                  .fees(maker_bps=-0.2, taker_bps=0.3).run(progress=False))
        result.summary(), result.fills, result.orders, result.stats
    (Backtest(events).strategy("mm_skew").latency(50, 100, 50)
     .risk(max_position=500, max_order_qty=500, price_band_bps=100, max_orders_per_window=5,
           rate_window_s=1).run(progress=False))
    sweep(Backtest(events).strategy("mm_skew"), {"half_spread_ticks": [1, 2]}, progress=False)
    capture = _binance_capture(work / "warm_binance_l2.gz")
    (Backtest(str(capture)).strategy("mm_skew", qty=100_000, max_position=1_000_000)
     .latency(50, 100, 50).queue_model("log").run(progress=False))


def _live(work: Path) -> None:
    """The live pipeline (feed and consumer threads, for a moment), admission control on
    the simulated queue for every controller, the risk checks."""
    from kernels import admission as kadm
    from kernels import strategies as kstrat

    from .live.overload import simulate_admission
    from .live.pipeline import Pipeline

    for controller in kadm.CONTROLLER_NAMES:
        simulate_admission(controller, 2.0, n=2_000, target_ns=200_000)
    pipe = Pipeline(rate=20_000, controller="codel", target_ns=2_000_000, strategy="mm_skew",
                    work_ns=0.0, feed_wait_policy="sleep", wait_policy="sleep")
    try:
        pipe.set_risk(max_position=1_000)
        pipe.start()
        deadline = time.monotonic() + 60
        while pipe.totals()["received"] < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        pipe.sampler().sample()
        for name in kstrat.STRATEGIES.names():     # the consumer loop of every strategy
            pipe.set_strategy(name)                # (compiled here, before the switch)
    finally:
        pipe.stop()


def _journal(work: Path) -> None:
    """The journal: writer, durability policies, snapshots, recovery (also of a process
    killed mid-stream), replay, audit."""
    from . import journal
    from .book import Engine
    from .enums import Side
    from .journal import crashcheck

    for policy in ("none", "batch", "every"):
        eng = Engine(["SYM"], tick_size=0.01, capacity=1024, journal=work / f"j-{policy}",
                     durability=policy)
        for k in range(20):
            eng.submit("SYM", Side.BUY if k % 2 else Side.SELL, 100.00 + (0.01 if k % 2 else 0.02), 10)
        eng.snapshot()
        eng.close()
    commands = crashcheck.crash_commands(seed=5, n=120)
    path = work / "session"
    with Engine(["AAA", "BBB"], tick_size=0.01, capacity=4096, journal=path, durability="batch",
                journal_options={"segment_bytes": 8192, "keep_snapshots": 1}) as eng:
        for cmd in commands:
            crashcheck.apply_command(eng, cmd)
    journal.inspect(path)
    journal.replay(path, until_seq=50)
    Engine.recover(path).close()
    crash = work / "crash"              # notebook 12: a worker SIGKILLed mid-stream, recovered
    crashcheck.crash_once(crash, kill_after=30, seed=3, n_commands=60)
    Engine.recover(crash).close()


def _lessons(work: Path) -> None:
    """The memory-access lesson kernels (notebook 03)."""
    from kernels.access import gather_sum, notional_sum
    from kernels.records import ORDER

    values = np.arange(1_000, dtype=np.int64)
    gather_sum(values, np.arange(1_000))
    orders = np.zeros(100, dtype=ORDER)
    notional_sum(orders["price"], orders["qty"])                           # strided fields
    notional_sum(orders["price"].copy(), orders["qty"].copy())              # columns


def _vwap(work: Path) -> None:
    """VWAP variants, the staged trade loop and a memory-mapped book (notebook 16)."""
    from kernels import vwap as kv

    from . import mmap_book, profiling
    from . import vwap as wv
    from .data.order_mix import MixSettings, order_mix
    from .data.synthetic import simulate

    rng = np.random.default_rng(16)
    p, q = rng.random(1_000) * 100, rng.random(1_000) * 10
    units, lots = (p * 10_000).astype(np.int64), (q * 100).astype(np.int64)
    kv.vwap_simd(p, q), kv.vwap_scalar(p, q), kv.vwap_units(units, lots)
    kv.rolling_vwap(np.arange(1_000), units, lots, 60, np.empty(1_000))
    market = simulate(1, seed=16, duration_s=600, rate=2.0)
    ts, price_units, qty = wv.trade_arrays(market.trades)
    window = 60 * 1_000_000_000
    wv.rolling(ts, price_units, qty, window, price_scale=market.price_scale)
    wv.vwap(price_units, qty, price_scale=market.price_scale)
    wv.speed_table(2_000, repeats=1)
    profiling.profile_trade_stages(ts, price_units, qty, window, repeats=1)
    kv.trade_stages(ts, price_units, qty, np.int64(window), np.empty(len(ts)),
                    np.zeros(len(kv.STAGES) + 1, np.int64))
    mix = MixSettings()
    book = mmap_book.create(work / "mix.book", ["MIX"], tick_size=mix.tick_size, capacity=4_096,
                            price_levels=mix.price_levels, record_fills=False)
    book.submit_many(order_mix(600, seed=16)[:300])
    book.close()
    mmap_book.open(work / "mix.book", "c").best_bid("MIX")


def _batching(work: Path) -> None:
    """Batching consumers (notebook 15): fixed sizes and the adaptive controller, in
    exchange time and on a real ring."""
    from . import batching

    light = ((5.0, 50_000.0), (5.0, 300_000.0))
    runs = batching.simulate_many((1, 16), schedule=light)
    batching.phase_table(runs)
    for run in runs:
        run.windows(1.0)
    batching.simulate("aimd", schedule=light, seed=1)
    batching.run_on_ring("aimd", schedule=light, seed=1, wait_policy="sleep")


def _defi(work: Path) -> None:
    """64-byte swap messages, constant-product pools and the arbitrage detector, from an
    array and through the SPSC ring (notebook 17)."""
    from kernels import amm as kamm

    from . import defi

    market = defi.make_market()
    stream = defi.simulate(market, 2_000, seed=7, malformed=0.001)
    defi.decode(defi.encode(stream.messages))
    defi.swaps_frame(market, stream.messages)
    a = 10 * kamm.AMOUNT_SCALE
    defi.quote(a, 1_000 * a, 3_000_000 * a, 30)
    kamm.price_impact(a, 1_000 * a, 30)
    defi.price_impact_table(1_000.0, 3_000_000.0, [5, 30])
    defi.detect(market, stream.messages, min_profit_usd=10.0)
    defi.detect_through_ring(market, stream.messages, min_profit_usd=10.0)
    defi.pair_prices(stream, "WETH", "USDC")
    defi.quote_cycle(market, 0)


GROUPS: dict[str, Callable[[Path], None]] = {
    "book": _book,
    "histogram": _histogram,
    "ring": _ring,
    "fix": _fix,
    "data": _data,
    "backtest": _backtest,
    "live": _live,
    "journal": _journal,
    "lessons": _lessons,
    "vwap": _vwap,
    "batching": _batching,
    "defi": _defi,
}


def group_names() -> list[str]:
    return list(GROUPS)


# ------------------------------------------------------------------------ counting
@dataclass
class GroupReport:
    name: str
    seconds: float = 0.0
    compiled: int = 0
    cached: int = 0
    per_process: int = 0
    error: str | None = None
    cpu_seconds: float = 0.0
    per_process_kernels: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out = {"seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
               "compiled": self.compiled, "cached": self.cached, "per_process": self.per_process,
               "per_process_kernels": list(self.per_process_kernels), "warnings": list(self.warnings)}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class WarmupReport:
    groups: list[GroupReport]
    seconds: float
    cache_dir: str
    not_cached: list[str] | None = None
    safe_mode: bool = False

    @property
    def ok(self) -> bool:
        return all(g.error is None for g in self.groups)

    def totals(self) -> dict:
        return {k: sum(getattr(g, k) for g in self.groups) for k in ("compiled", "cached", "per_process")}

    def to_json(self) -> dict:
        return {"groups": {g.name: g.to_json() for g in self.groups}, "seconds": round(self.seconds, 3),
                **self.totals(), "cache_dir": self.cache_dir, "safe_mode": self.safe_mode,
                "not_cached": self.not_cached, "ok": self.ok}

    def lines(self) -> list[str]:
        out = [f"{'group':10} {'seconds':>8} {'cpu s':>7} {'compiled':>9} {'cached':>7} {'per-process':>12}"]
        for g in self.groups:
            out.append(f"{g.name:10} {g.seconds:8.1f} {g.cpu_seconds:7.1f} {g.compiled:9d} {g.cached:7d} "
                       f"{g.per_process:12d}" + (f"  FAILED: {g.error}" if g.error else ""))
        t = self.totals()
        cpu = sum(g.cpu_seconds for g in self.groups)
        out.append(f"{'total':10} {self.seconds:8.1f} {cpu:7.1f} {t['compiled']:9d} {t['cached']:7d} "
                   f"{t['per_process']:12d}")
        n_warnings = sum(len(g.warnings) for g in self.groups)
        if n_warnings:
            out.append(f"{n_warnings} warning(s) raised by the lessons' code paths (see --json)")
        if self.not_cached:
            out.append(f"kernels no group reached and not in the cache ({len(self.not_cached)}): "
                       + ", ".join(self.not_cached))
        out.append(f"Numba cache: {self.cache_dir}"
                   + (" (safe mode: bounds-checked builds)" if self.safe_mode else ""))
        if t["compiled"] == 0 and self.ok:
            out.append("everything was already in the cache: the notebooks start warm")
        return out


class _Collect(logging.Handler):
    """Log records of WARNING and above, kept for the report instead of printed."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record) -> None:
        self.messages.append(f"{record.name}: {' '.join(record.getMessage().split())}")


class _Counter:
    """Numba's own counts: every real compilation fires the ``numba:compile`` event
    (cache misses only); every cache load bumps the dispatcher's ``_cache_hits``."""

    def __init__(self):
        from numba.core import event

        self.compiled = 0
        self.per_process = 0
        self.per_process_names: list[str] = []
        self.seen: dict[int, object] = {}
        counter = self

        class Listener(event.Listener):
            def on_start(self, ev):
                disp = ev.data["dispatcher"]
                module = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
                if module.split(".")[0] == "numba":
                    return          # Numba's own helpers, compiled along with a caller
                counter.seen[id(disp)] = disp
                if _cacheable(disp):
                    counter.compiled += 1
                else:
                    counter.per_process += 1
                    counter.per_process_names.append(f"{module}.{disp.py_func.__qualname__}")

            def on_end(self, ev):
                pass

        self._event = event
        self._listener = Listener()

    def __enter__(self):
        self._event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        self._event.unregister("numba:compile", self._listener)

    def hits(self) -> int:
        total = 0
        for disp in _dispatchers(self.seen):
            hits = getattr(disp, "_cache_hits", None)
            if hits:
                total += sum(hits.values())
        return total


def _cacheable(disp) -> bool:
    from kernels.compile_claims import cacheable

    return cacheable(disp)


def _dispatchers(extra: dict | None = None) -> list:
    """Every Numba dispatcher defined in a loaded ``kernels``/``workbench`` module, plus
    ``extra`` (those seen compiling)."""
    from numba.core.dispatcher import Dispatcher

    found = dict(extra or {})
    prefixes = ("kernels.", "workbench.", "wbloop_")    # wbloop_: workbench.backtest.loopcache
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "kernels" or name.startswith(prefixes)):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher):
                found.setdefault(id(value), value)
    return list(found.values())


def _not_cached() -> list[str]:
    """Cacheable kernels (``kernels.*``) that neither compiled in this process nor have
    an index in the on-disk cache: what no group reached and nothing compiled before.
    Helpers always inlined into their callers never compile on their own and are left
    out, as are ``cache=False`` kernels (they cannot be in the cache). A kernel loaded
    from the cache brings its callees inside its own code, so a warm run cannot tell
    "reached" from the dispatchers alone: the cache's index files say it."""
    import kernels
    from kernels.compile_claims import on_disk
    from numba.core.dispatcher import Dispatcher

    missing = set()
    for info in pkgutil.walk_packages(kernels.__path__, "kernels."):
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - a module that does not import is reported
            missing.add(f"{info.name[len('kernels.'):]} (does not import: {type(exc).__name__}: {exc})")
            continue
        for attr, value in vars(module).items():
            if (not isinstance(value, Dispatcher) or value.py_func.__module__ != module.__name__
                    or value.targetoptions.get("inline", "never") != "never" or value.overloads
                    or not _cacheable(value)):
                continue
            if on_disk(value) is False:   # None: another Numba's layout, say nothing
                missing.add(f"{module.__name__[len('kernels.'):]}.{attr}")
    return sorted(missing)


def _cache_dir() -> str:
    import numba

    import kernels

    return numba.config.CACHE_DIR or f"{Path(kernels.__file__).parent} (__pycache__ beside each module)"


# ------------------------------------------------------------------------ the entry point
def parse_only(text: str | None) -> list[str]:
    """``"fix,histogram"`` -> the group names, in the order they run; InputError names
    the unknown ones."""
    if text is None:
        return group_names()
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in GROUPS]
    if unknown or not wanted:
        raise InputError(f"--only {text!r}: unknown group(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(GROUPS)}")
    return [g for g in GROUPS if g in wanted]


def _run_group(name: str, tmp: str, counter: "_Counter") -> GroupReport:
    """Run group ``name`` in a fresh folder below ``tmp`` and report what it compiled."""
    work = Path(tmp) / name
    work.mkdir()
    hits0, compiled0, per0 = counter.hits(), counter.compiled, counter.per_process
    names0 = len(counter.per_process_names)
    t0, cpu0 = time.perf_counter(), time.process_time()
    error = None
    logged = _Collect()
    logging.getLogger().addHandler(logged)
    with warnings.catch_warnings(record=True) as caught:   # reported, not printed
        warnings.simplefilter("always")
        try:
            GROUPS[name](work)
        except Exception as exc:  # noqa: BLE001 - reported, the other groups still run
            error = f"{type(exc).__name__}: {exc}"
        finally:
            logging.getLogger().removeHandler(logged)
    seen = tuple(dict.fromkeys(
        [f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught]
        + logged.messages))
    return GroupReport(
        name, time.perf_counter() - t0, counter.compiled - compiled0, counter.hits() - hits0,
        counter.per_process - per0, error, time.process_time() - cpu0,
        tuple(sorted(set(counter.per_process_names[names0:]))), seen)


# ------------------------------------------------------------------ several processes
_QUEUE_ENV = "WORKBENCH_WARMUP_QUEUE"


def _take(queue: Path, name: str) -> bool:
    """Claim group ``name`` for this process (an ``O_EXCL`` file in the shared queue)."""
    try:
        os.close(os.open(queue / f"{name}.taken", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _report_path(queue: Path, name: str) -> Path:
    return queue / f"{name}.json"


def _save_report(queue: Path, report: GroupReport) -> None:
    tmp = queue / f"{report.name}.json.{os.getpid()}"
    tmp.write_text(json.dumps({"name": report.name, **report.to_json(),
                               "seconds": report.seconds, "cpu_seconds": report.cpu_seconds}))
    os.replace(tmp, _report_path(queue, report.name))


def _load_report(queue: Path, name: str) -> GroupReport | None:
    try:
        d = json.loads(_report_path(queue, name).read_text())
    except (OSError, ValueError):
        return None
    return GroupReport(name, d["seconds"], d["compiled"], d["cached"], d["per_process"],
                       d.get("error"), d["cpu_seconds"], tuple(d["per_process_kernels"]),
                       tuple(d["warnings"]))


def _drain(queue: Path, names, tmp: str, counter: "_Counter", done=None) -> None:
    """Run every group of ``names`` no other process has taken, saving each report."""
    for name in names:
        if _take(queue, name):
            _save_report(queue, _run_group(name, tmp, counter))
            if done is not None:
                done(name)


def helper() -> None:
    """A helper process of ``warmup(jobs=N)`` (``workbench.parallel_compile`` runs it):
    takes the groups nobody has taken yet, in order, until none is left."""
    queue = Path(os.environ[_QUEUE_ENV])
    names = (queue / "groups").read_text().split(",")
    os.environ["WORKBENCH_HEADLESS"] = "1"
    with tempfile.TemporaryDirectory(prefix="wb-warmup-") as tmp, _Counter() as counter:
        _drain(queue, names, tmp, counter)


def warmup(only=None, progress: bool = True, report_missing: bool | None = None,
           jobs: int | None = 1) -> WarmupReport:
    """Run the groups ``only`` (names; all when None) and report what each compiled.

    A failing group is reported (``GroupReport.error``) and the others still run.
    ``report_missing`` (default: when every group ran) lists the cacheable kernels still
    not in the cache (:func:`_not_cached`).

    ``jobs`` > 1 (``None``: one per CPU) runs the groups in that many processes: this one
    and helpers (``workbench.parallel_compile``), each taking the next group nobody has
    taken, all of them claiming each kernel before compiling it so that a kernel two
    groups share is compiled once. Each group's report comes from the process that ran
    it; a group whose helper died is run here.
    """
    from kernels.jit import SAFE_MODE

    from . import parallel_compile

    names = group_names() if only is None else list(only)
    for name in names:
        if name not in GROUPS:
            raise ValueError(f"unknown warm-up group {name!r}; choose from {', '.join(GROUPS)}")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs={jobs!r} must be a positive integer (or None: one per CPU)")
    n_jobs = min(parallel_compile.cores() if jobs is None else jobs, len(names))
    reports = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(names), desc="warmup", unit="group")

    def done(name):
        if bar is not None:
            bar.set_description(f"warmup {name}")
            bar.update(1)

    started = time.perf_counter()
    previous = os.environ.get("WORKBENCH_HEADLESS")
    os.environ["WORKBENCH_HEADLESS"] = "1"          # anything live stops on its own
    try:
        with tempfile.TemporaryDirectory(prefix="wb-warmup-") as tmp, _Counter() as counter:
            if n_jobs > 1 and parallel_compile.enabled(n_jobs):
                queue = Path(tmp) / "queue"
                queue.mkdir()
                (queue / "groups").write_text(",".join(names))
                os.environ[_QUEUE_ENV] = str(queue)
                try:
                    with parallel_compile.helpers(["workbench.warmup:helper"] * (n_jobs - 1),
                                                  jobs=n_jobs, grace=3600.0) as procs:
                        _drain(queue, names, tmp, counter, done)
                        while procs and any(p.poll() is None for p in procs):
                            if bar is not None:          # the helpers' groups, as they end
                                finished = sum(_report_path(queue, n).is_file() for n in names)
                                bar.update(finished - bar.n)
                            time.sleep(0.1)
                finally:
                    os.environ.pop(_QUEUE_ENV, None)
                for name in names:
                    report = _load_report(queue, name)
                    if report is None:          # its helper died: run it here
                        report = _run_group(name, tmp, counter)
                    reports.append(report)
                if bar is not None:
                    bar.update(len(names) - bar.n)
            else:
                for name in names:
                    reports.append(_run_group(name, tmp, counter))
                    done(name)
    finally:
        if previous is None:
            os.environ.pop("WORKBENCH_HEADLESS", None)
        else:
            os.environ["WORKBENCH_HEADLESS"] = previous
        if bar is not None:
            bar.close()
    if report_missing is None:
        report_missing = names == group_names()
    return WarmupReport(reports, time.perf_counter() - started, _cache_dir(),
                        _not_cached() if report_missing else None, SAFE_MODE)
