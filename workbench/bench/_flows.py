"""The two order flows of ``bench book`` (issue 12), built once as the engine's own
EVENT arrays, and what each consumer of the benchmark needs from them. (The leading
underscore keeps it out of ``workbench.bench.discover``: it is a helper, not a suite.)

* **Flow A** (:func:`flow_a`) has the shape of Liquibook's insert benchmark: ``n``
  limit GTC inserts alternating buy and sell, buys at ``1880 + U{0..9}`` ticks, sells
  at ``1884 + U{0..9}`` ticks, quantity ``100 * U{1..10}``; nothing is cancelled, so
  the crossing part trades and the rest piles up (about half the orders rest).
* **Flow B** (:func:`flow_b`) has the shape of exchange-core's benchmark: ``warmup``
  passive GTC adds, then ``n`` commands, about 10% GTC adds (one in three
  marketable), 3% IOC, 5% cancels and 82% moves (a price replace of +-1..10 ticks,
  quantity kept), with about ``target`` resting orders over about 750 levels; passive
  prices are uniform within +-``half_span`` ticks of the mid. Every command is valid
  where it stands: the generator replays the flow through the plain-Python reference
  book (``workbench.reference.ReferenceBook``) as it goes, so a cancel or a move names an
  order that still rests, a marketable order is priced through the opposite best, and
  a move stays passive. When the book drifts more than 5% from ``target`` a cancel
  becomes a passive add (or the other way round): the mix stays "about" the shares above
  (``tests/test_bench_flows.py`` checks them).

Both are deterministic by ``seed`` (numpy's ``default_rng``). A :class:`Flow` carries the
events (warm-up first), one label per event (what the generator meant: ``LABEL_NAMES``)
and the book settings it needs (:meth:`Flow.new_book`). Every consumer reads those very
arrays: the batched path (``OrderBook.apply``), the per-order Python path
(:func:`python_calls`: ``submit``/``cancel``/``modify``), the reference book
(:func:`reference_rows`) and Liquibook through its SWIG wheel (:func:`liquibook_commands`,
:func:`liquibook_run`). Cancels are ``EV_CANCEL`` with quantity 0 (cancel all, what
``OrderBook.cancel(order_id)`` sends) and moves ``EV_MODIFY`` with quantity 0 (keep it,
what ``OrderBook.modify(order_id, price=...)`` sends), so both paths run the same kernel
operation.

:class:`BookSummary` is the benchmark's correctness guard: best bid and ask, resting
orders and resting quantity per side, the same for every consumer (:func:`engine_summary`,
:func:`reference_summary`, :func:`liquibook_summary`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from kernels import records as R

from ..data.prices import PRICE_SCALE

__all__ = ["Flow", "flow_a", "flow_b", "LABEL_NAMES", "BookSummary", "engine_summary",
           "reference_summary", "liquibook_summary", "python_calls", "reference_rows",
           "liquibook_commands", "liquibook_run", "liquibook_available"]

# What the generator meant each event to be.
L_WARMUP, L_INSERT, L_GTC_PASSIVE, L_GTC_MARKETABLE, L_IOC, L_CANCEL, L_MOVE = range(7)
LABEL_NAMES = ("warmup", "insert", "gtc_passive", "gtc_marketable", "ioc", "cancel", "move")

TICK_UNITS = 100  # one tick of 0.01 at the default price scale (10,000)


@dataclass(frozen=True)
class Flow:
    """One benchmark flow: ``events`` (EVENT, warm-up first), ``labels`` (uint8, one per
    event, codes into ``LABEL_NAMES``) and the book it replays into."""

    name: str
    events: np.ndarray
    labels: np.ndarray
    warmup: int
    seed: int
    capacity: int
    price_levels: int = 8192
    tick_units: int = TICK_UNITS
    price_scale: int = PRICE_SCALE
    mid_ticks: int = 0          # flow B's mid (0 for flow A)

    @property
    def commands(self) -> np.ndarray:
        """The timed part: every event after the warm-up."""
        return self.events[self.warmup:]

    @property
    def tick_size(self) -> float:
        return self.tick_units / self.price_scale

    def new_book(self, record_fills: bool = False, mode=None):
        """A fresh ``OrderBook`` with this flow's settings (tick 0.01, capacity, window)."""
        from workbench.book import OrderBook

        return OrderBook(self.name, tick_size=self.tick_size, price_scale=self.price_scale,
                         capacity=self.capacity, price_levels=self.price_levels,
                         record_fills=record_fills, mode=mode)

    def prefix(self, n_commands: int) -> "Flow":
        """The warm-up and the first ``n_commands`` commands (a shorter, still valid flow)."""
        end = self.warmup + n_commands
        return Flow(self.name, self.events[:end], self.labels[:end], self.warmup, self.seed,
                    self.capacity, self.price_levels, self.tick_units, self.price_scale,
                    self.mid_ticks)


def _check_n(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}={n!r} must be a positive integer")
    return int(n)


def flow_a(n: int = 300_000, seed: int = 1) -> Flow:
    """Liquibook's insert benchmark shape: ``n`` alternating buy/sell limit GTC inserts,
    buys 1880+U{0..9} ticks, sells 1884+U{0..9} ticks, quantity 100*U{1..10}."""
    n = _check_n(n, "n")
    rng = np.random.default_rng(seed)
    events = np.zeros(n, dtype=R.EVENT)
    side = (np.arange(n) % 2).astype(np.int8)          # BUY (0) first, then SELL (1)
    base = np.where(side == R.BUY, 1880, 1884)
    events["ts"] = np.arange(1, n + 1)
    events["order_id"] = np.arange(1, n + 1)
    events["price"] = (base + rng.integers(0, 10, n)) * TICK_UNITS
    events["qty"] = 100 * rng.integers(1, 11, n)
    events["kind"] = R.EV_ADD
    events["side"] = side
    events["order_type"] = R.LIMIT
    events["tif"] = R.GTC
    labels = np.full(n, L_INSERT, dtype=np.uint8)
    # every order may rest; a power of two above n keeps the pool and index sizes plain
    capacity = max(1024, 1 << int(n).bit_length())
    return Flow("FLOWA", events, labels, 0, seed, capacity)


def flow_b(n: int = 300_000, seed: int = 2, warmup: int = 1_000, target: int = 1_000,
           half_span: int = 1_250, mid_ticks: int = 10_000) -> Flow:
    """exchange-core's benchmark shape (module doc): ``warmup`` passive GTC adds, then
    ``n`` commands (~10% GTC of which a third marketable, ~3% IOC, ~5% cancel, ~82%
    moves of +-1..10 ticks), ~``target`` resting orders, passive prices within
    +-``half_span`` ticks of ``mid_ticks``."""
    from workbench.reference import ReferenceBook

    n = _check_n(n, "n")
    warmup = _check_n(warmup, "warmup")
    target = _check_n(target, "target")
    half_span = _check_n(half_span, "half_span")
    if mid_ticks <= half_span + 10:
        raise ValueError(f"mid_ticks={mid_ticks} must exceed half_span + 10 ({half_span + 10}): "
                         f"prices stay positive")
    total = warmup + n
    rng = np.random.default_rng(seed)
    draws = rng.random((total, 4)).tolist()  # one row of uniforms per event: kind, pick, price, qty
    tick = TICK_UNITS
    lo, hi = mid_ticks - half_span, mid_ticks + half_span
    ref = ReferenceBook(tick=tick)
    orders = ref.orders
    live: list[int] = []             # resting ids, for a uniform pick
    where: dict[int, int] = {}       # id -> position in ``live``
    rows = []       # (order_id, price, qty, kind, side, tif) per event
    labels = []
    next_id = 1
    low, high = target * 0.95, target * 1.05

    def forget(oid):
        j = where.pop(oid)
        last = live.pop()
        if last != oid:
            live[j] = last
            where[last] = j

    def best_ticks(side):
        p = ref.best(side)
        return None if p is None else p // tick

    for i in range(total):
        u_kind, u_pick, u_price, u_qty = draws[i]
        if i < warmup:
            label = L_WARMUP
        elif u_kind < 0.10:
            label = L_GTC_MARKETABLE if u_kind < 0.10 / 3 else L_GTC_PASSIVE
        elif u_kind < 0.13:
            label = L_IOC
        elif u_kind < 0.18:
            label = L_CANCEL
        else:
            label = L_MOVE
        if label in (L_CANCEL, L_MOVE) and not live:
            label = L_GTC_PASSIVE
        if label == L_CANCEL and len(live) < low:
            label = L_GTC_PASSIVE
        elif label == L_GTC_PASSIVE and len(live) > high:
            label = L_CANCEL
        if label == L_WARMUP:
            side = i % 2
        elif label in (L_GTC_PASSIVE, L_GTC_MARKETABLE, L_IOC):
            side = R.BUY if u_pick < 0.5 else R.SELL
        if label in (L_GTC_MARKETABLE, L_IOC):
            opposite = best_ticks(1 - side)
            if opposite is None:  # nothing to take: a GTC rests passively, an IOC at the mid
                label = L_GTC_PASSIVE if label == L_GTC_MARKETABLE else L_IOC
                through = mid_ticks
            else:
                # through the opposite best by 0..2 ticks; small: it takes part of a level
                offset = int(u_price * 3)
                through = opposite + offset if side == R.BUY else opposite - offset
        if label in (L_WARMUP, L_GTC_PASSIVE, L_GTC_MARKETABLE, L_IOC):
            oid = next_id
            next_id += 1
            if label in (L_WARMUP, L_GTC_PASSIVE):
                offset = 1 + int(u_price * half_span)
                price = mid_ticks - offset if side == R.BUY else mid_ticks + offset
                opposite = best_ticks(1 - side)
                if opposite is not None and (price >= opposite if side == R.BUY
                                             else price <= opposite):
                    # the touch moved past the mid: stay passive behind it
                    step = 1 + offset % 10
                    price = opposite - step if side == R.BUY else opposite + step
                qty = 100 * (1 + int(u_qty * 10))
                tif = R.GTC
            else:
                price = through
                qty = 10 * (1 + int(u_qty * 20))
                tif = R.GTC if label == L_GTC_MARKETABLE else R.IOC
            result = ref.add(oid, side, price * tick, qty, R.LIMIT, tif, i + 1)
            if result.reason != R.R_NONE:
                raise RuntimeError(f"flow_b: the generator made a rejected add at event {i} "
                                   f"(reason {result.reason})")
            kind = R.EV_ADD
        else:
            oid = live[int(u_pick * len(live))]
            order = orders[oid]
            side = order.side
            tif = R.GTC
            if label == L_CANCEL:
                kind, price, qty = R.EV_CANCEL, 0, 0
                result = ref.cancel(oid, 0)
            else:
                kind, qty = R.EV_MODIFY, 0
                old = order.price // tick
                step = 1 + int(u_price * 10)
                step = step if u_qty < 0.5 else -step
                opposite = best_ticks(1 - side)
                price = old + step

                def bad(p):
                    if p < lo or p > hi:
                        return True
                    if opposite is None:
                        return False
                    return p >= opposite if side == R.BUY else p <= opposite

                if bad(price):
                    price = old - step
                    if bad(price):  # squeezed: step away from the touch, inside the span
                        price = (max(lo, old - abs(step)) if side == R.BUY
                                 else min(hi, old + abs(step)))
                result = ref.modify(oid, price * tick, 0, i + 1)
            if result.reason != R.R_NONE:
                raise RuntimeError(f"flow_b: the generator made a rejected command at event {i} "
                                   f"(reason {result.reason})")
        for fill in result.fills:
            if fill.maker_leaves == 0:
                forget(fill.maker_id)
        if kind == R.EV_CANCEL:
            forget(oid)
        elif kind == R.EV_ADD and oid in orders:
            live.append(oid)
            where[oid] = len(live) - 1
        elif kind == R.EV_MODIFY and oid not in orders:
            forget(oid)  # a move that traded away (kept passive, so it does not happen)
        rows.append((oid, price * tick if kind != R.EV_CANCEL else 0, qty, kind, side, tif))
        labels.append(label)
    rows = np.array(rows, dtype=np.int64)
    labels = np.array(labels, dtype=np.uint8)
    events = np.zeros(total, dtype=R.EVENT)
    events["ts"] = np.arange(1, total + 1)
    events["order_id"] = rows[:, 0]
    events["price"] = rows[:, 1]
    events["qty"] = rows[:, 2]
    events["kind"] = rows[:, 3]
    events["side"] = rows[:, 4]
    events["order_type"] = R.LIMIT
    events["tif"] = rows[:, 5]
    # ~1k resting orders: a small pool and index stay in cache
    capacity = max(16_384, 1 << int(4 * target).bit_length())
    return Flow("FLOWB", events, labels, warmup, seed, capacity, mid_ticks=mid_ticks)


# ------------------------------------------------------------------ correctness guard
class BookSummary(NamedTuple):
    """A book's end state, comparable across implementations: best prices in ticks
    (None for an empty side), resting orders and resting quantity per side."""

    best_bid: int | None
    best_ask: int | None
    bid_orders: int
    ask_orders: int
    bid_qty: int
    ask_qty: int


def engine_summary(book, tick_units: int = TICK_UNITS) -> BookSummary:
    """The summary of book 0 of an ``OrderBook``/``Engine`` (its resting orders, read by
    ``kernels.book.resting_orders``)."""
    from kernels import book as kbook

    b = book.state.books[0]
    out = np.zeros(int(b["orders"].sum()), dtype=R.ORDER)
    k = kbook.resting_orders(book.state, 0, out)
    out = out[:k]
    bids, asks = out[out["side"] == R.BUY], out[out["side"] == R.SELL]
    return BookSummary(int(bids["price"].max()) // tick_units if len(bids) else None,
                       int(asks["price"].min()) // tick_units if len(asks) else None,
                       len(bids), len(asks), int(bids["qty"].sum()), int(asks["qty"].sum()))


def reference_summary(ref, tick_units: int = TICK_UNITS) -> BookSummary:
    """The summary of a ``ReferenceBook``."""
    bid_qty = ask_qty = bid_orders = ask_orders = 0
    for o in ref.orders.values():
        if o.side == R.BUY:
            bid_orders += 1
            bid_qty += o.qty
        else:
            ask_orders += 1
            ask_qty += o.qty
    bid, ask = ref.best(R.BUY), ref.best(R.SELL)
    return BookSummary(None if bid is None else bid // tick_units,
                       None if ask is None else ask // tick_units,
                       bid_orders, ask_orders, bid_qty, ask_qty)


# ---------------------------------------------------------------------- consumers
def python_calls(book, events: np.ndarray, price_scale: int = PRICE_SCALE) -> list[tuple]:
    """The events as ``(method, args)`` calls of the per-order Python path of ``book`` (an
    ``OrderBook``; limit orders only, as in the flows and the order mix):
    ``submit(side, price, qty, OrderType.LIMIT, tif, order_id)``, ``cancel(order_id)`` (a
    delete, or a cancel of everything) and ``modify(order_id, price, qty)``; prices as prices, sides and
    times in force as enum members. Positional, as :func:`reference_rows` are: the loop
    that replays them costs the same for both (a ``**kwargs`` dict per call would be the
    harness's cost, not the engine's)."""
    from workbench.enums import OrderType, Side, TimeInForce

    calls = []
    sides = (Side.BUY, Side.SELL)
    tifs = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)
    limit = OrderType.LIMIT
    for ts, oid, price, qty, _, kind, side, _, tif in events.tolist():
        if kind == R.EV_ADD:
            calls.append((book.submit, (sides[side], price / price_scale, qty, limit, tifs[tif],
                                        oid)))
        elif kind == R.EV_DELETE or (kind == R.EV_CANCEL and qty == 0):
            calls.append((book.cancel, (oid,)))     # a delete removes the whole order
        elif kind == R.EV_MODIFY:
            calls.append((book.modify, (oid, price / price_scale if price else None,
                                        qty if qty else None)))
        else:
            raise ValueError(f"python_calls: event kind {kind} is not part of the flows")
    return calls


def reference_rows(events: np.ndarray) -> list[tuple]:
    """The events as ``ReferenceBook.apply`` argument tuples."""
    return [(kind, oid, side, price, qty, order_type, tif, ts)
            for ts, oid, price, qty, _, kind, side, order_type, tif in events.tolist()]


def liquibook_available() -> tuple[bool, str]:
    """Is the ``liquibook`` wheel (Liquibook's C++ through SWIG) importable? (ok, why not)"""
    try:
        import liquibook  # noqa: F401
    except ImportError as exc:
        return False, f"liquibook is not installed ({exc}); pip install liquibook"
    return True, ""


_LB_ADD, _LB_ADD_REST, _LB_MOVE, _LB_CANCEL = range(4)


def liquibook_commands(events: np.ndarray, tick_units: int = TICK_UNITS) -> list[tuple]:
    """The events as Liquibook commands ``(op, order_id, is_buy, price_ticks, qty,
    conditions)``; Liquibook prices are integer ticks. ``_LB_ADD_REST`` marks a GTC add
    that may later be moved (flows with moves only): Liquibook's ``SimpleOrder`` must be
    accepted before its own ``replace`` updates its price."""
    import liquibook as lb

    has_moves = bool((events["kind"] == R.EV_MODIFY).any())
    out = []
    for ts, oid, price, qty, _, kind, side, _, tif in events.tolist():
        if kind == R.EV_ADD:
            cond = lb.oc_immediate_or_cancel if tif == R.IOC else lb.oc_no_conditions
            op = _LB_ADD_REST if has_moves and tif == R.GTC else _LB_ADD
            out.append((op, oid, side == R.BUY, price // tick_units, qty, cond))
        elif kind == R.EV_MODIFY:
            out.append((_LB_MOVE, oid, side == R.BUY, price // tick_units, 0, 0))
        elif kind in (R.EV_DELETE, R.EV_CANCEL) and qty == 0:
            out.append((_LB_CANCEL, oid, side == R.BUY, 0, 0, 0))
        else:
            raise ValueError(f"liquibook_commands: event kind {kind} is not part of the flows")
    return out


def liquibook_run(commands: list[tuple], book=None, orders: dict | None = None):
    """Apply Liquibook commands to ``book`` (a new ``liquibook_book_OrderBook``, the
    order book without depth tracking, by default): one SWIG call per order operation,
    plus what the binding needs to keep its order object in step (a ``SimpleOrder`` is
    built per add; a movable one is ``accept()``-ed; a move is ``book.replace`` then the
    order's own ``replace``, since no callback updates it without a listener). Returns
    ``(book, orders)``: keep ``orders`` alive as long as the book."""
    import liquibook as lb

    if book is None:
        book = lb.liquibook_book_OrderBook()
    if orders is None:
        orders = {}
    new_order = lb.SimpleOrder
    add, replace, cancel = book.add, book.replace, book.cancel
    for op, oid, is_buy, price, qty, cond in commands:
        if op == _LB_MOVE:
            o = orders[oid]
            replace(o, 0, price)
            o.replace(0, price)
        elif op == _LB_CANCEL:
            cancel(orders[oid])
        else:
            o = new_order(is_buy, price, qty, 0, cond)
            orders[oid] = o
            add(o, cond)
            if op == _LB_ADD_REST:
                o.accept()
    return book, orders


def liquibook_summary(book) -> BookSummary:
    """The summary of a Liquibook order book (its bid and ask tracker maps, best first)."""
    def side(trackers):
        best, count, qty = None, 0, 0
        for key, tracker in trackers.items():
            if best is None:
                best = int(key.price())
            count += 1
            qty += int(tracker.open_qty())
        return best, count, qty

    bid, n_bid, q_bid = side(book.bids())
    ask, n_ask, q_ask = side(book.asks())
    return BookSummary(bid, ask, n_bid, n_ask, q_bid, q_ask)
