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
  around each event; includes one clock read, ~20 ns).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from kernels import book as kbook
from kernels import records as R

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
    }
