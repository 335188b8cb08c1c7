"""The "before" side of the latency lessons: plain-Python tools the notebooks measure
against the Numba "after" (``kernels.ring``, ``kernels.histogram``, ``kernels.clock``).

Owns ``compare_timing_methods`` (what each Python clock costs per call),
``LatencyTracker`` (a list-of-ints latency tracker with warm-up, usable as a context
manager or a decorator), ``PyRingBuffer`` (a pure-Python SPSC ring over a list) and
``ObjectPool`` (reuse objects instead of allocating). They are deliberately simple
and correct, so the lessons compare designs, not bugs.

Also the exercise checkers of ``13-scaling-out`` (``check_cluster_sweep``,
``check_overhead_ms``, ``check_redis_key``), of ``11-full-depth-books``
(``check_far_orders``, ``check_window_for``, ``check_size_near_touch``) and of
``12-durability-and-replay`` (``check_book_at``, ``check_group_commit``,
``check_layer_cost``): each prints right or wrong, with the reason.
"""
from __future__ import annotations

import functools
import math
import statistics
import time
from collections import deque
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable

__all__ = ["TIMING_METHODS", "compare_timing_methods", "LatencyTracker", "PyRingBuffer", "ObjectPool",
           "check_cluster_sweep", "check_overhead_ms", "check_redis_key",
           "check_far_orders", "check_window_for", "check_size_near_touch",
           "check_book_at", "check_group_commit", "check_layer_cost"]

TIMING_METHODS: dict[str, Callable[[], float | int]] = {
    "time.time": time.time,
    "time.time_ns": time.time_ns,
    "time.perf_counter": time.perf_counter,
    "time.perf_counter_ns": time.perf_counter_ns,
    "time.monotonic": time.monotonic,
    "time.monotonic_ns": time.monotonic_ns,
    "time.process_time_ns": time.process_time_ns,
}


def compare_timing_methods(n_calls: int = 20_000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Per clock: mean call overhead (ns, best of ``repeats``) and the smallest
    non-zero step seen between consecutive reads (the practical resolution, ns)."""
    if n_calls < 2 or repeats < 1:
        raise ValueError(f"need n_calls >= 2 and repeats >= 1, got {n_calls}, {repeats}")
    results = {}
    for name, clock in TIMING_METHODS.items():
        scale = 1 if name.endswith("_ns") else 1e9
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(n_calls):
                clock()
            best = min(best, (time.perf_counter_ns() - start) / n_calls)
        reads = [clock() for _ in range(n_calls)]
        steps = [b - a for a, b in zip(reads, reads[1:]) if b > a]
        resolution = min(steps) * scale if steps else float("nan")
        results[name] = {"overhead_ns": best, "resolution_ns": resolution}
    return results


class LatencyTracker:
    """Collect latencies (ns) in a Python list, skipping the first ``warmup`` ones
    (cold caches, first-call compilation). Use as ``with tracker.measure(): ...``,
    ``tracker.record(ns)``, or decorate a function with ``@tracker.track``."""

    def __init__(self, name: str = "operation", warmup: int = 100):
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.name = name
        self.warmup = warmup
        self.seen = 0
        self.latencies_ns: list[int] = []

    def record(self, latency_ns: int) -> None:
        self.seen += 1
        if self.seen > self.warmup:
            self.latencies_ns.append(int(latency_ns))

    @contextmanager
    def measure(self):
        start = time.perf_counter_ns()
        try:
            yield self
        finally:
            self.record(time.perf_counter_ns() - start)

    def track(self, func: Callable) -> Callable:
        """Decorator: every call of ``func`` is timed into this tracker."""
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.measure():
                return func(*args, **kwargs)
        return wrapper

    def stats(self) -> dict[str, Any]:
        """count, mean, median, min, max, p50/p90/p99/p99.9 (nearest rank), in ns."""
        data = sorted(self.latencies_ns)
        n = len(data)
        if n == 0:
            return {"name": self.name, "count": 0}

        def rank(q):  # nearest-rank percentile: the ceil(q/100*n)-th smallest, exactly
            return data[min(n - 1, max(0, math.ceil(Fraction(str(q)) * n / 100) - 1))]

        return {"name": self.name, "count": n, "mean_ns": statistics.fmean(data),
                "median_ns": statistics.median(data), "min_ns": data[0], "max_ns": data[-1],
                "p50_ns": rank(50), "p90_ns": rank(90), "p99_ns": rank(99), "p99.9_ns": rank(99.9)}


class PyRingBuffer:
    """Single-producer single-consumer ring over a Python list.

    Capacity is rounded up to a power of two so the slot is ``counter & mask``;
    ``head``/``tail`` count forever (no "one slot wasted" ambiguity between full and
    empty). Thread-safe for one producer and one consumer only because the GIL
    makes each attribute write atomic: it cannot run in parallel.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = 1 << (capacity - 1).bit_length()
        self.mask = self.capacity - 1
        self.slots: list[Any] = [None] * self.capacity
        self.head = 0  # items ever pushed
        self.tail = 0  # items ever popped

    def push(self, item) -> bool:
        """Add ``item``; False (nothing stored) when full."""
        if self.head - self.tail == self.capacity:
            return False
        self.slots[self.head & self.mask] = item
        self.head += 1
        return True

    def pop(self):
        """Oldest item, or None when empty."""
        if self.tail == self.head:
            return None
        index = self.tail & self.mask
        item = self.slots[index]
        self.slots[index] = None  # drop the reference so the object can be freed
        self.tail += 1
        return item

    def __len__(self) -> int:
        return self.head - self.tail


class ObjectPool:
    """Pre-built objects handed out and taken back instead of allocated per use.

    ``acquire`` pops a pooled object (or builds a new one when the pool is dry,
    counted in ``misses``); ``release`` returns it; ``borrow()`` does both around a
    ``with`` block. Objects are reused as they are: reset them before release.
    """

    def __init__(self, factory: Callable[[], Any], size: int = 1000):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.factory = factory
        self.free = deque(factory() for _ in range(size))
        self.misses = 0

    def acquire(self):
        if self.free:
            return self.free.pop()
        self.misses += 1
        return self.factory()

    def release(self, obj) -> None:
        self.free.append(obj)

    @contextmanager
    def borrow(self):
        obj = self.acquire()
        try:
            yield obj
        finally:
            self.release(obj)

    def __len__(self) -> int:
        return len(self.free)


# ------------------------------------------------------- checkers: 13-scaling-out
def _verdict(ok: bool, message: str) -> bool:
    print(("right: " if ok else "wrong: ") + message)
    return ok


def check_cluster_sweep(frame, backtest, grid) -> bool:
    """Exercise 13.1: ``frame`` must be ``sweep(backtest, grid)`` as the local executor
    computes it: the same rows in grid order, the same numbers bit for bit (the timing
    columns aside). Prints right/wrong with the reason; returns the verdict."""
    from workbench.backtest import sweep
    from workbench.scale import without_timing

    if frame is None or not hasattr(frame, "columns") or not hasattr(frame, "select"):
        return _verdict(False, "pass the polars frame sweep() returned")
    keys = list(grid)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        return _verdict(False, f"the frame has no column(s) {missing}: sweep the grid {grid}")
    expected = sweep(backtest, grid, progress=False)
    if frame.height != expected.height:
        return _verdict(False, f"{frame.height} rows, but the grid has {expected.height} combinations")
    if frame.select(keys).rows() != expected.select(keys).rows():
        return _verdict(False, "the rows are not the grid's combinations in grid order")
    mine, theirs = without_timing(frame), without_timing(expected)
    if mine.columns != theirs.columns:
        return _verdict(False, f"columns differ from the local sweep's: {mine.columns}")
    differ = [c for c in mine.columns if not mine[c].equals(theirs[c])]
    if differ:
        return _verdict(False, f"{differ} differ from the local executor's results")
    return _verdict(True, f"the same {frame.height} rows as the local executor, bit for bit "
                          "(timings aside)")


def check_overhead_ms(answer, *, dask_sec: float, serial_sec: float, workers: int,
                      tasks: int) -> bool:
    """Exercise 13.2: Dask's overhead per task in milliseconds: the worker time the run
    used, ``dask_sec * workers``, minus the work itself, ``serial_sec``, per task."""
    expected = (dask_sec * workers - serial_sec) / tasks * 1000
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
        return _verdict(False, "give a number of milliseconds")
    if abs(answer - expected) <= 0.01 * abs(expected) + 1e-6:
        return _verdict(True, f"{expected:.2f} ms of each task's worker time is not the backtest")
    hint = " (in seconds? multiply by 1000)" if abs(answer * 1000 - expected) <= 0.01 * abs(expected) \
        else " (workers x wall time is what the cluster spent; the serial time is the work)"
    return _verdict(False, f"{answer!r} is not {expected:.2f}{hint}")


def check_redis_key(answer, key=("yahoo", "1d", "AAPL", "2020-01-01")) -> bool:
    """Exercise 13.3: the Redis key under which the shared store keeps ``key``'s chunk."""
    from workbench.store.redis import RedisStore

    expected = RedisStore.key(key)
    if isinstance(answer, bytes):
        answer = answer.decode()
    if answer == expected:
        return _verdict(True, f"{expected}: versioned (v1), one escaped part per key part")
    return _verdict(False, f"{answer!r} is not the key; the store names keys wb:v<version>:md:"
                           "<source>:<interval>:<symbol>:<chunk start>")


# ------------------------------------------------- checkers: 11-full-depth-books
def _attempt(fn, *args):
    """``(result, None)``, or ``(None, why)`` when ``fn`` is not callable or raised: the
    student reads one line, never a traceback."""
    if not callable(fn):
        return None, f"pass your function itself, not {type(fn).__name__}"
    try:
        return fn(*args), None
    except Exception as exc:  # the student's code: any error is an answer to explain
        return None, f"your function raised {type(exc).__name__}: {exc}"


def _prices(values) -> str:
    return ", ".join(f"{v:,.2f}" for v in sorted(values))


def check_far_orders(far_orders) -> bool:
    """Exercise 11.1: ``far_orders(engine, symbol, fraction)`` returns the ids of the
    orders of ``symbol`` resting more than ``fraction`` x mid from the mid (stub quotes
    and other far orders). Tried on a two-book engine around $50.00 (stub quotes, orders
    exactly on the band's edge, a second book with far orders of its own) at two
    fractions."""
    from workbench.book import Engine
    from workbench.enums import Side

    eng = Engine(["HOOK", "OTHER"], tick_size=0.01, capacity=64, record_fills=False)
    placed = {}  # order id -> (symbol, price)
    for symbol, side, price in (
            ("HOOK", Side.BUY, 49.99), ("HOOK", Side.BUY, 49.98), ("HOOK", Side.BUY, 25.00),
            ("HOOK", Side.BUY, 24.00), ("HOOK", Side.BUY, 0.01), ("HOOK", Side.SELL, 50.01),
            ("HOOK", Side.SELL, 75.00), ("HOOK", Side.SELL, 75.01),
            ("HOOK", Side.SELL, 199_999.99), ("OTHER", Side.BUY, 9.99), ("OTHER", Side.BUY, 0.01),
            ("OTHER", Side.SELL, 10.01), ("OTHER", Side.SELL, 199_999.99)):
        placed[eng.submit(symbol, side, price, 100).order_id] = (symbol, price)
    mid = 50.00  # (49.99 + 50.01) / 2
    for fraction in (0.5, 0.9):
        expected = {oid for oid, (sym, px) in placed.items()
                    if sym == "HOOK" and abs(px - mid) > fraction * mid + 1e-9}
        got, why = _attempt(far_orders, eng, "HOOK", fraction)
        if why:
            return _verdict(False, f"{why}. Hint: engine.orders(symbol) and engine.mid_price(symbol)")
        if got is None:
            return _verdict(False, "your function returned None: return the far orders' ids "
                                   "(a list, a set or a polars Series)")
        if hasattr(got, "columns") and "order_id" in got.columns:
            got = got["order_id"]
        try:
            ids = {int(x) for x in got}
        except (TypeError, ValueError):
            return _verdict(False, f"return order ids (integers), not {type(got).__name__}")
        if ids == expected:
            continue
        where = f"with fraction={fraction} (mid {mid:.2f}, band +-{fraction * mid:,.2f})"
        other = ids - set(placed)
        extra = [placed[i][1] for i in ids & set(placed) if i not in expected]
        missing = [placed[i][1] for i in expected - ids]
        if other:
            return _verdict(False, f"{where}: {sorted(other)[:5]} are not order ids of the engine")
        if any(placed[i][0] == "OTHER" for i in ids):
            return _verdict(False, f"{where}: you returned orders of another book; look at "
                                   "symbol's orders only (engine.orders(symbol))")
        if extra:
            return _verdict(False, f"{where}: the order(s) at {_prices(extra)} are not far: "
                                   "far means abs(price - mid) > fraction * mid (strictly)")
        return _verdict(False, f"{where}: you missed the order(s) at {_prices(missing)}; both "
                               "sides count, and the distance is abs(price - mid)")
    return _verdict(True, "stub quotes and deep orders found, the band's edges left alone, "
                          "at both fractions")


def _window_reference(n_books: int, budget: int):
    from kernels import book_state

    w = book_state.MAX_PRICE_LEVELS
    while w >= book_state.MIN_PRICE_LEVELS:
        if book_state.ladder_bytes(n_books, w) <= budget:
            return w
        w //= 2
    return None


def check_window_for(window_for) -> bool:
    """Exercise 11.2: ``window_for(n_books, budget_bytes)`` returns the largest window
    (a power of two from ``MIN_PRICE_LEVELS`` to ``MAX_PRICE_LEVELS``) whose ladders
    (``kernels.book_state.ladder_bytes``) fit the budget, or None when none does."""
    from kernels import book_state

    cases = ((1, 64 << 20), (10_000, 512 << 20), (10_000, 100 << 20), (8_000, 1 << 30),
             (3, 1 << 40), (100_000, 1 << 20))
    for n_books, budget in cases:
        expected = _window_reference(n_books, budget)
        got, why = _attempt(window_for, n_books, budget)
        where = f"window_for({n_books:,}, {budget:,})"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: book_state.ladder_bytes(n_books, w)")
        if got == expected and (got is None or not isinstance(got, bool)):
            continue
        if expected is None:
            return _verdict(False, f"{where} returned {got!r}, but even the smallest window "
                                   f"({book_state.MIN_PRICE_LEVELS}) takes "
                                   f"{book_state.ladder_bytes(n_books, book_state.MIN_PRICE_LEVELS):,}"
                                   " bytes: return None")
        if got is None or isinstance(got, bool) or not isinstance(got, int):
            return _verdict(False, f"{where} returned {got!r}: return a window in ticks (an int)")
        if got & (got - 1) or not book_state.MIN_PRICE_LEVELS <= got <= book_state.MAX_PRICE_LEVELS:
            return _verdict(False, f"{where} returned {got:,}: the engine takes powers of two "
                                   f"from {book_state.MIN_PRICE_LEVELS} to "
                                   f"{book_state.MAX_PRICE_LEVELS:,}")
        if book_state.ladder_bytes(n_books, got) > budget:
            return _verdict(False, f"{where} returned {got:,}, whose ladders take "
                                   f"{book_state.ladder_bytes(n_books, got):,} bytes: over budget")
        return _verdict(False, f"{where} returned {got:,}, but {2 * got:,} fits too "
                               f"({book_state.ladder_bytes(n_books, 2 * got):,} bytes): "
                               "return the largest window that fits")
    return _verdict(True, "the largest window that fits, for one book to a whole exchange "
                          "(and None when nothing fits)")


def check_size_near_touch(size_near_touch) -> bool:
    """Exercise 11.3: ``size_near_touch(engine, symbol, ticks, tick_size)`` returns
    ``(bid_qty, ask_qty)``: the resting size at prices within ``ticks`` ticks of each
    side's best price, the best included. Tried on an ES-like book (tick 0.25) with a
    far level, a cent book with an empty ask side, at several depths."""
    from workbench.book import Engine
    from workbench.enums import Side

    books = {  # symbol: (tick, [(side, price in ticks, qty)])
        "ES": (0.25, [(Side.BUY, 19_196, 16), (Side.BUY, 19_195, 21), (Side.BUY, 19_195, 4),
                      (Side.BUY, 19_193, 24), (Side.BUY, 18_000, 7), (Side.SELL, 19_198, 23),
                      (Side.SELL, 19_199, 22), (Side.SELL, 19_202, 3), (Side.SELL, 40_000, 1)]),
        "CENT": (0.01, [(Side.BUY, 10_000, 300), (Side.BUY, 9_997, 200), (Side.BUY, 9_993, 100),
                        (Side.BUY, 1, 100)]),
    }
    eng = Engine(list(books), tick_size={s: t for s, (t, _) in books.items()}, capacity=64,
                 record_fills=False)
    for symbol, (tick, orders) in books.items():
        for side, ticks, qty in orders:
            eng.submit(symbol, side, round(ticks * tick, 2), qty)
    for symbol, (tick, orders) in books.items():
        best = {}
        for side, ticks, _ in orders:
            best[side] = max(best.get(side, ticks), ticks) if side == Side.BUY else \
                min(best.get(side, ticks), ticks)
        for depth in (0, 1, 3, 4, 2_000):
            expected = tuple(sum(q for s, t, q in orders if s == side and abs(t - best[side]) <= depth)
                             for side in (Side.BUY, Side.SELL))
            got, why = _attempt(size_near_touch, eng, symbol, depth, tick)
            where = f"{symbol} (tick {tick}), ticks={depth}"
            if why:
                return _verdict(False, f"{where}: {why}. Hint: engine.get_bids(symbol, n) and "
                                       "get_asks give (price, qty, orders), best first; an empty "
                                       "side gives []")
            try:
                pair = tuple(int(x) for x in got)
            except (TypeError, ValueError):
                return _verdict(False, f"{where}: return a pair (bid_qty, ask_qty), not {got!r}")
            if pair == expected:
                continue
            if pair == expected[::-1]:
                return _verdict(False, f"{where}: {pair} is (ask, bid); return (bid_qty, ask_qty)")
            return _verdict(False, f"{where}: you returned {pair}, the book holds {expected}. "
                                   "Hint: count a level when round(abs(price - best) / tick_size) "
                                   "<= ticks (round: prices are floats), the best level included")
    return _verdict(True, "the size near the touch on both sides, at every depth, far levels "
                          "and empty sides included")


# -------------------------------------------------- checkers: 12-durability-and-replay
def check_book_at(answer, directory, seq: int, symbol: str) -> bool:
    """Exercise 12.1: ``answer`` is ``(best_bid, best_ask)`` of ``symbol`` as the book was
    right after journal sequence ``seq`` (None for an empty side); the reference is
    ``workbench.journal.replay(directory, until_seq=seq)``."""
    from workbench.journal import replay

    engine, _ = replay(directory, until_seq=seq)
    expected = (engine.best_bid(symbol), engine.best_ask(symbol))
    now, _ = replay(directory)
    latest = (now.best_bid(symbol), now.best_ask(symbol))
    try:
        got = tuple(None if x is None else round(float(x), 8) for x in answer)
    except (TypeError, ValueError):
        return _verdict(False, f"give a pair (best_bid, best_ask), not {answer!r}")
    if len(got) == 2 and all((g is None and e is None) or (g is not None and e is not None
                                                           and abs(g - e) < 1e-9)
                             for g, e in zip(got, expected)):
        return _verdict(True, f"after sequence {seq}, {symbol} was {expected[0]} / {expected[1]}")
    if got == tuple(latest) and latest != expected:
        return _verdict(False, f"{got} is the book at the end of the journal; stop the replay at "
                               f"sequence {seq} (replay(directory, until_seq=...))")
    if got == expected[::-1]:
        return _verdict(False, f"{got} is (ask, bid); give (best_bid, best_ask)")
    return _verdict(False, f"{got} is not the book after sequence {seq}")


def check_group_commit(durable_submit) -> bool:
    """Exercise 12.2: ``durable_submit(engine, orders)`` submits every ``(side, price,
    qty)`` of ``orders`` into ``engine`` ("SYM", journaled with ``durability="every"``)
    and returns once all of them are on disk, with one sync for the lot (not one per
    order). Tried on a fresh journal with 200 non-crossing orders."""
    import shutil
    import tempfile

    from workbench.book import Engine

    orders = [("buy" if k % 2 == 0 else "sell", round(100 - 0.01 * (1 + k // 2), 2)
               if k % 2 == 0 else round(100 + 0.01 * (1 + k // 2), 2), 10 + k) for k in range(200)]
    directory = tempfile.mkdtemp(prefix="wb-12-check-")
    engine = Engine(["SYM"], tick_size=0.01, capacity=1024, journal=directory,
                    durability="every")
    journal = engine.journal
    blocks = []
    deferred = journal.deferred

    def counted(*args, **kwargs):   # a deferred block is group commit whatever the disk does
        blocks.append(1)
        return deferred(*args, **kwargs)

    journal.deferred = counted
    try:
        _, why = _attempt(durable_submit, engine, orders)
        if why:
            return _verdict(False, f"{why}. Hint: engine.journal.deferred()")
        resting = engine.orders("SYM").height
        stats = journal.stats()
        if resting != len(orders):
            return _verdict(False, f"{resting} of the {len(orders)} orders rest in the book: "
                                   "submit every one of them")
        if journal.durable_seq < journal.last_seq:
            return _verdict(False, f"your function returned with sequences "
                                   f"{journal.durable_seq + 1}..{journal.last_seq} not yet on "
                                   "disk: nothing is acknowledged before its sync")
        if not blocks and stats["syncs"] > 3:
            return _verdict(False, f"{stats['syncs']} syncs for {len(orders)} orders: each call "
                                   "waited for its own. Submit them inside "
                                   "`with engine.journal.deferred():` (one wait at its end)")
        return _verdict(True, f"{len(orders)} orders on disk with {stats['syncs']} sync(s) "
                              f"({stats['records_per_sync']:.0f} records per sync)")
    finally:
        del journal.deferred
        engine.close()
        shutil.rmtree(directory, ignore_errors=True)


def check_layer_cost(answer, *, off_per_sec: float, on_per_sec: float) -> bool:
    """Exercise 12.3: how much slower, in percent, a run at ``on_per_sec`` orders/s is
    than one at ``off_per_sec``: the extra time per order over the time without the
    layer, ``100 * (off / on - 1)``."""
    expected = 100 * (off_per_sec / on_per_sec - 1)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
        return _verdict(False, "give a number of percent")
    if abs(answer - expected) <= 0.01 * abs(expected) + 1e-6:
        return _verdict(True, f"{expected:.1f} % more time per order")
    drop = 100 * (1 - on_per_sec / off_per_sec)
    if abs(answer - drop) <= 0.01 * abs(drop) + 1e-6:
        return _verdict(False, f"{answer:.1f} % is the drop in throughput; the cost is the extra "
                               "time per order: (1/on - 1/off) / (1/off)")
    return _verdict(False, f"{answer!r} is not {expected:.1f}; compare the time per order "
                           "(1 / rate) with and without the layer")
