"""The headline demo (``python -m workbench demo``), runnable on embedded data only.

Part one pushes a seeded, exchange-core-like order flow through the Numba matching
engine and prints throughput, in-kernel per-order latency percentiles and a summary of
the resulting book. It needs nothing but the package.
"""
from __future__ import annotations

import time

import numpy as np

from kernels import book as kbook
from kernels import records as R

from .book import OrderBook
from .enums import Side
from .data.order_mix import MixSettings, order_mix
from .latency import LatencyRecorder


def engine_demo(n_orders: int = 1_000_000, seed: int = 42, progress: bool = True) -> dict:
    """Run the order mix through the engine; returns the figures it prints."""
    settings = MixSettings()
    steps = ["generate order flow", "batched kernel", "per-order latency", "Python single orders"]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(steps), desc="engine demo", unit="step")

    def step_done():
        if bar is not None:
            bar.update(1)

    def new_book():
        return settings.new_book("DEMO", record_fills=False)

    events = order_mix(n_orders, seed=seed, settings=settings)
    step_done()

    book = new_book()
    fills = np.zeros(len(events) + 16, dtype=R.FILL)
    kbook.apply_batch(new_book().state, events[:1000], fills, np.zeros(0, R.RESULT), 0)  # load compiled code
    results = np.zeros(len(events), dtype=R.RESULT)
    start = time.perf_counter()
    applied, n_fills = book.apply(events, fills, results)
    batch_seconds = time.perf_counter() - start
    step_done()

    latency = np.zeros(len(events), dtype=np.int64)
    kbook.apply_batch_discard_fills(new_book().state, events, fills, latency)
    recorder = LatencyRecorder("in-kernel per order")
    recorder.record_many(latency)
    step_done()

    single = new_book()
    n_single = min(100_000, len(events))
    sides = (Side.BUY, Side.SELL)
    adds = [(sides[int(e["side"])], int(e["price"]) / settings.price_scale, int(e["qty"]))
            for e in events[:n_single] if e["kind"] == R.EV_ADD and e["tif"] == R.GTC]
    if adds:
        new_book().submit(*adds[0])   # loads the compiled entry, as above (not timed)
    start = time.perf_counter()
    for side, price, qty in adds:
        single.submit(side, price, qty)
    single_seconds = time.perf_counter() - start
    step_done()
    if bar is not None:
        bar.close()

    stats = book.stats()
    return {
        "orders": int(applied),
        "fills": int(n_fills),
        "rejects": int(np.count_nonzero(results["status"] == R.ST_REJECTED)),
        "batch_orders_per_sec": applied / batch_seconds,
        "python_orders_per_sec": len(adds) / single_seconds,
        "latency": recorder.summary(),
        "book": book,
        "resting_orders": stats["live_orders"],
    }


def precompile_helper() -> None:
    """What a helper process compiles while the main process compiles the demo's
    backtest loop (``workbench.parallel_compile``, on a cold cache), in an order chosen
    so that the two rarely want the same kernel at the same time:

    1. the book kernels the loop reaches last (through its market-event step): execute,
       replayed rest, clears and modify, for the book state's exact types; the main
       process starts with the strategy, the order entry and add;
    2. the backtest's market-event step itself (``kernels.backtest.l3.exchange_event``,
       for the very argument types the loop passes it);
    3. the engine demo's order-mix generator, its per-order entry and its timed batch
       loop, as the engine demo calls them; the main process, done with the loop by
       then, compiles the plain batch loop itself.

    Whatever either process compiles first, the other loads from the cache
    (``kernels.compile_claims``): a wrong guess here costs time, never a wrong result."""
    import numba
    from numba import types

    from kernels.backtest import l3
    from workbench.parallel_compile import compile_book_calls

    settings = MixSettings()
    compile_book_calls(["_execute", "_rest_replayed", "clear_others", "clear_book", "_modify"])
    event = numba.typeof(np.zeros(1, dtype=R.EVENT)).dtype
    l3.exchange_event.compile((types.int64[::1], event, types.int64))
    events = order_mix(2_000, seed=1, settings=settings)
    settings.new_book("WARM", record_fills=False).submit(Side.BUY, 100.00, 10)
    kbook.apply_batch_discard_fills(settings.new_book("WARM", record_fills=False).state, events,
                                    np.zeros(len(events) + 16, dtype=R.FILL),
                                    np.zeros(len(events), dtype=np.int64))


def format_engine_demo(result: dict) -> str:
    book: OrderBook = result["book"]
    lat = result["latency"]
    lines = [
        "== Matching engine: exchange-core-like order mix (seeded)",
        f"orders {result['orders']:,}  fills {result['fills']:,}  rejects {result['rejects']:,}",
        f"throughput, batched kernel      {result['batch_orders_per_sec']:>14,.0f} orders/s",
        f"throughput, Python submit()     {result['python_orders_per_sec']:>14,.0f} orders/s",
        "per-order latency in the kernel  "
        f"p50 {lat['p50']:,} ns  p90 {lat['p90']:,} ns  p99 {lat['p99']:,} ns  "
        f"p99.9 {lat['p99.9']:,} ns  (clock read included)",
        f"book: {result['resting_orders']:,} resting orders; best bid {book.best_bid} / "
        f"best ask {book.best_ask}; spread {book.spread:.2f}" if book.spread is not None else
        f"book: {result['resting_orders']:,} resting orders",
        "top of book (price, qty, orders):",
    ]
    bids, asks = book.get_bids(5), book.get_asks(5)
    for i in range(5):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        left = f"{b[0]:>9.2f} {b[1]:>6} {b[2]:>4}" if b else " " * 21
        right = f"{a[0]:>9.2f} {a[1]:>6} {a[2]:>4}" if a else ""
        lines.append(f"  bid {left}   |   ask {right}")
    return "\n".join(lines)
