"""``bench book``: the matching engine's speed, against the plain-Python reference book
measured in the same run.

* ``replay_events_per_sec``: the AAPL first-hour LOBSTER messages (or, without
  ``../shared``, the embedded synthetic market) through the batched kernel, looped;
* ``batch_orders_per_sec``: the exchange-core-like order mix (``workbench.data.order_mix``:
  ~1k resting orders over ~750 levels; GTC adds, IOC, cancels, moves, reductions)
  through ``kernels.book.apply_batch``;
* ``python_orders_per_sec``: the same mix, one ``OrderBook.submit/cancel/modify`` call
  per order from a Python loop;
* ``reference_orders_per_sec``: the same mix through ``workbench.reference.ReferenceBook``;
* ``p50_ns`` / ``p99_ns``: in-kernel time per order of the mix (CLOCK_MONOTONIC read
  around each event; includes one clock read, ~20 ns);
* ``mbo_events_per_sec``: a Databento MBO stream (``workbench.data.databento.synthetic_mbo``:
  adds, cancels, modifies, trades with their fills and cancels, over 4 instruments)
  written as ``.dbn.zst`` by databento-dbn, read back by the one MBO loader and replayed
  by ``data mbo-check``'s kernel (``kernels.mbo.replay_mbo``, top of book at every F_LAST);
* ``itch_parse_msgs_per_sec``, ``itch_replay_msgs_per_sec``: a synthetic NASDAQ ITCH 5.0
  day (8,000 stocks, ~50M messages; cached) decoded by the one ITCH loader, and decoded +
  applied to one engine holding every book (``workbench.bench._itch``).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from kernels import book as kbook
from kernels import records as R

from . import _itch

NAME = "book"
DESCRIPTION = "matching engine: replay, batched mix, Python single orders, reference baseline"

_AAPL = ("AAPL_2012-06-21_message_50_first_hour.csv", "AAPL_2012-06-21_orderbook_level1_first_hour.csv")


def _shared_lobster() -> tuple[Path, Path] | None:
    from workbench.data.samples import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        return None
    messages, orderbook = (shared / "lobster" / name for name in _AAPL)
    return (messages, orderbook) if messages.is_file() and orderbook.is_file() else None


def _replay_rate(repeats: int, quick: bool) -> tuple[float, str, int]:
    from workbench.data import lobster
    from workbench.lobster_check import prepare_replay

    paths = _shared_lobster()
    if paths is not None:
        events = lobster.to_events(lobster.read_messages(paths[0]))
        rows = lobster.orderbook_array(lobster.read_orderbook(paths[1]))
        source = "lobster AAPL 2012-06-21 first hour"
        make = lambda: prepare_replay(events, rows, "AAPL", capacity=8_192)  # noqa: E731  (<= 390 rest at once)
    else:
        from workbench.book import Engine
        from workbench.data.synthetic import simulate

        market = simulate(n_symbols=1, seed=0)
        events = market.events
        source = "synthetic market (no ../shared/data/lobster)"
        make = lambda: Engine(symbols=["SIM"], capacity=200_000, record_fills=False)  # noqa: E731
    if quick:
        events = events[:20_000]
    fills = np.zeros(len(events) + 16, dtype=R.FILL)
    no_results = np.zeros(0, dtype=R.RESULT)
    rates = []
    for _ in range(repeats + 1):  # the first run only loads the compiled kernel
        engine = make()
        start = time.perf_counter()
        kbook.apply_batch(engine.state, events, fills, no_results, 0)
        rates.append(len(events) / (time.perf_counter() - start))
    return statistics.median(rates[1:]), source, len(events)


def _mbo_rate(repeats: int, quick: bool) -> tuple[float, int]:
    import tempfile

    from workbench.data import databento

    records = databento.synthetic_mbo(100_000 if quick else 500_000, n_instruments=4, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        path = databento.write_dbn(Path(tmp) / "bench.dbn.zst", records, compression="zstd")
        data = databento.load_mbo(path)
    rates = [databento.replay(data).events_per_sec for _ in range(repeats + 1)]
    return statistics.median(rates[1:]), len(data.events)


def _python_calls(book, events: np.ndarray, scale: int):
    from workbench.enums import Side, TimeInForce

    calls = []
    sides = (Side.BUY, Side.SELL)
    tifs = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)
    for e in events.tolist():  # (ts, order_id, price, qty, symbol, kind, side, type, tif)
        ts, oid, price, qty, _, kind, side, _, tif = e
        if kind == R.EV_ADD:
            calls.append((book.submit, (sides[side], price / scale, qty), {"tif": tifs[tif], "order_id": oid}))
        elif kind == R.EV_DELETE:
            calls.append((book.cancel, (oid,), {}))
        else:
            calls.append((book.modify, (oid,), {"price": price / scale if price else None,
                                               "qty": qty if qty else None}))
    return calls


def _engine_bytes_10k_books(quick: bool) -> tuple[int, int]:
    """(state bytes, resident-set growth in bytes) of an Engine of 10,000 books holding
    300 resting orders each (100 with ``quick``) at prices spread from $0.01 to $20,000:
    a whole exchange in one engine."""
    from workbench.book import Engine

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    per_book = 100 if quick else 300
    n_books = 10_000
    before = rss()
    eng = Engine(symbols=[f"S{i:05d}" for i in range(n_books)], capacity=n_books * per_book,
                 record_fills=False)
    n = n_books * per_book
    rng = np.random.default_rng(11)
    ev = np.zeros(n, dtype=R.EVENT)
    ev["order_id"] = np.arange(1, n + 1)
    ev["symbol"] = np.arange(n) % n_books
    ev["kind"] = R.EV_REST
    ev["side"] = rng.integers(0, 2, n)
    mid = rng.integers(1_000, 50_000, n_books)[ev["symbol"]]  # $10..$500 in cents
    offset = np.where(rng.random(n) < 0.95, rng.integers(1, 200, n), rng.integers(200, 2_000_000, n))
    ticks = np.where(ev["side"] == R.BUY, np.maximum(1, mid - offset), mid + offset)
    ev["price"] = ticks * 100
    ev["qty"] = 100
    eng.submit_many(ev)
    live = eng.stats()["live_orders"]
    if live != n:
        raise RuntimeError(f"engine_bytes_10k_books: {live:,} of {n:,} orders rest")
    state_bytes = sum(a.nbytes for a in eng.state)
    return state_bytes, rss() - before


def run(quick: bool = False) -> dict:
    from workbench.data.order_mix import MixSettings, order_mix
    from workbench.reference import ReferenceBook

    repeats = 3 if quick else 5
    n_mix = 100_000 if quick else 1_000_000
    n_python = 20_000 if quick else 200_000
    n_reference = 10_000 if quick else 100_000
    settings = MixSettings()
    mix = order_mix(n_mix, seed=7, settings=settings)

    def new_book():
        return settings.new_book("MIX", record_fills=False)

    replay_rate, replay_source, replay_events = _replay_rate(repeats, quick)

    fills = np.zeros(n_mix + 16, dtype=R.FILL)
    no_results = np.zeros(0, dtype=R.RESULT)
    batch_rates = []
    for _ in range(repeats + 1):
        book = new_book()
        start = time.perf_counter()
        kbook.apply_batch(book.state, mix, fills, no_results, 0)
        batch_rates.append(n_mix / (time.perf_counter() - start))
    batch_rate = statistics.median(batch_rates[1:])

    python_rates = []
    for _ in range(repeats):
        book = new_book()
        calls = _python_calls(book, mix[:n_python], settings.price_scale)
        start = time.perf_counter()
        for method, args, kwargs in calls:
            method(*args, **kwargs)
        python_rates.append(n_python / (time.perf_counter() - start))
    python_rate = statistics.median(python_rates)

    reference_rates = []
    tick = round(settings.tick_size * settings.price_scale)
    rows = [(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]), int(e["qty"]),
             int(e["order_type"]), int(e["tif"]), int(e["ts"])) for e in mix[:n_reference]]
    for _ in range(repeats):
        ref = ReferenceBook(tick=tick)
        start = time.perf_counter()
        for row in rows:
            ref.apply(*row)
        reference_rates.append(n_reference / (time.perf_counter() - start))
    reference_rate = statistics.median(reference_rates)

    latency = np.zeros(n_mix, dtype=np.int64)
    p50s, p99s = [], []
    for _ in range(repeats):
        book = new_book()
        kbook.apply_batch_discard_fills(book.state, mix, fills, latency)
        p50, p99 = np.percentile(latency, [50, 99])
        p50s.append(p50)
        p99s.append(p99)

    mbo_rate, mbo_events = _mbo_rate(repeats, quick)
    engine_bytes, engine_rss = _engine_bytes_10k_books(quick)

    return {
        "replay_events_per_sec": replay_rate,
        "batch_orders_per_sec": batch_rate,
        "python_orders_per_sec": python_rate,
        "reference_orders_per_sec": reference_rate,
        "speedup_vs_reference": batch_rate / reference_rate,
        "p50_ns": float(statistics.median(p50s)),
        "p99_ns": float(statistics.median(p99s)),
        "python_speedup_vs_reference": python_rate / reference_rate,
        "replay_source": replay_source,
        "replay_events": replay_events,
        "mix_orders": n_mix,
        "mbo_events_per_sec": mbo_rate,
        "engine_bytes_10k_books": engine_bytes,
        "engine_rss_bytes_10k_books": engine_rss,
        "mbo_events": mbo_events,
        **_itch.itch_rates(quick, repeats=3),
    }
