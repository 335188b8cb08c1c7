"""A plain-Python limit order book: the reference the Numba kernels are checked against.

It implements the same rules as ``kernels.book`` (price-time matching; limit and market
orders; GTC, IOC and FOK; partial and full cancels; modify that keeps priority only
when quantity shrinks at the same price; execution by id; the same reject reasons, in
the same order of checks) with the most obvious data structures: a dict of orders, a
dict of price -> deque per side and a sorted list of prices. It is written to be read,
not to be fast; the benchmark runs it as the baseline the kernels are measured against.

It works in integer price units, like the kernels, and has no price window (nor does
the engine any more: it accepts every price on the tick grid). It models the feed
replay kinds too (``EV_REST``, ``EV_MOVE``, ``EV_CLEAR``: never matching, so its book may
cross). It applies the engine's input limits (``kernels.records``:
``MAX_QTY``, ``MAX_PRICE``, the reserved id ``EMPTY_KEY``) with the same reject reasons.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from kernels import records as R
from kernels.order_index import EMPTY_KEY

_EMPTY_KEY = int(EMPTY_KEY)


@dataclass
class RefOrder:
    order_id: int
    side: int
    price: int
    qty: int
    ts: int
    order_type: int = R.LIMIT
    tif: int = R.GTC
    filled: int = 0
    status: int = R.ST_NEW


@dataclass
class RefFill:
    maker_id: int
    taker_id: int
    price: int
    qty: int
    maker_leaves: int
    taker_side: int
    ts: int
    maker_ts: int


@dataclass
class RefResult:
    status: int
    reason: int
    order_id: int
    filled: int
    leaves: int
    fills: list = field(default_factory=list)


class ReferenceBook:
    """One symbol's book in plain Python (integer price units)."""

    def __init__(self, tick: int = 1, capacity: int = 10**9):
        self.tick = tick
        self.capacity = capacity
        self.orders: dict[int, RefOrder] = {}
        self.queues = ({}, {})          # side -> {price: deque[RefOrder]}
        self.prices = ([], [])          # side -> sorted prices with resting orders
        self.halted = False
        self.rejects: dict[int, int] = {}

    # ------------------------------------------------------------------ queries
    def best(self, side: int):
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == R.BUY else prices[0]

    def level_qty(self, side: int, price: int) -> int:
        return sum(o.qty for o in self.queues[side].get(price, ()))

    def levels(self, side: int):
        """[(price, qty, count)] best first."""
        prices = self.prices[side][::-1] if side == R.BUY else self.prices[side]
        return [(p, sum(o.qty for o in self.queues[side][p]), len(self.queues[side][p]))
                for p in prices]

    def resting(self):
        """Resting orders in priority order: bids best first, then asks; FIFO."""
        out = []
        for side in (R.BUY, R.SELL):
            prices = self.prices[side][::-1] if side == R.BUY else self.prices[side]
            for p in prices:
                out.extend(self.queues[side][p])
        return out

    # ---------------------------------------------------------------- internals
    def _reject(self, reason, order_id):
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        return RefResult(R.ST_REJECTED, reason, order_id, 0, 0)

    def _crosses(self, taker_side, level_price, limit):
        if limit is None:
            return True
        return level_price <= limit if taker_side == R.BUY else level_price >= limit

    def _available(self, taker_side, limit, want):
        maker = 1 - taker_side
        total = 0
        prices = self.prices[maker] if maker == R.SELL else self.prices[maker][::-1]
        for p in prices:
            if total >= want or not self._crosses(taker_side, p, limit):
                break
            total += self.level_qty(maker, p)
        return total

    def _rest(self, order: RefOrder):
        queue = self.queues[order.side].setdefault(order.price, deque())
        if not queue:
            insort(self.prices[order.side], order.price)
        queue.append(order)
        self.orders[order.order_id] = order

    def _remove(self, order: RefOrder):
        queue = self.queues[order.side][order.price]
        queue.remove(order)
        if not queue:
            del self.queues[order.side][order.price]
            prices = self.prices[order.side]
            del prices[bisect_left(prices, order.price)]
        del self.orders[order.order_id]

    def _match(self, taker_side, limit, qty, taker_id, ts, fills):
        maker = 1 - taker_side
        while qty > 0:
            best = self.best(maker)
            if best is None or not self._crosses(taker_side, best, limit):
                break
            queue = self.queues[maker][best]
            while qty > 0 and queue:
                o = queue[0]
                trade = min(qty, o.qty)
                fills.append(RefFill(o.order_id, taker_id, best, trade, o.qty - trade,
                                     taker_side, ts, o.ts))
                qty -= trade
                o.filled += trade
                o.qty -= trade
                if o.qty == 0:
                    o.status = R.ST_FILLED
                    self._remove(o)
                    if best not in self.queues[maker]:
                        break
                else:
                    o.status = R.ST_PARTIALLY_FILLED
        return qty

    def _enter(self, ts, order_id, side, price, qty, order_type, tif, prior_filled):
        fills = []
        limit = price if order_type == R.LIMIT else None
        remaining = self._match(side, limit, qty, order_id, ts, fills)
        filled = prior_filled + qty - remaining
        if remaining == 0:
            return RefResult(R.ST_FILLED, R.R_NONE, order_id, filled, 0, fills)
        if order_type == R.LIMIT and tif == R.GTC:
            status = R.ST_NEW if filled == 0 else R.ST_PARTIALLY_FILLED
            self._rest(RefOrder(order_id, side, price, remaining, ts, order_type, tif, filled, status))
            return RefResult(status, R.R_NONE, order_id, filled, remaining, fills)
        return RefResult(R.ST_CANCELLED, R.R_NONE, order_id, filled, 0, fills)

    # ------------------------------------------------------------------- events
    def add(self, order_id, side, price, qty, order_type=R.LIMIT, tif=R.GTC, ts=0):
        if side not in (R.BUY, R.SELL):
            return self._reject(R.R_INVALID_SIDE, order_id)
        if qty <= 0:
            return self._reject(R.R_NON_POSITIVE_QTY, order_id)
        if qty > R.MAX_QTY:
            return self._reject(R.R_QTY_TOO_LARGE, order_id)
        if order_type not in (R.LIMIT, R.MARKET) or tif not in (R.GTC, R.IOC, R.FOK):
            return self._reject(R.R_INVALID_TYPE, order_id)
        if self.halted:
            return self._reject(R.R_HALTED, order_id)
        if order_id in self.orders:
            return self._reject(R.R_DUPLICATE_ID, order_id)
        rests = order_type == R.LIMIT and tif == R.GTC
        if order_type == R.LIMIT:
            if price <= 0:
                return self._reject(R.R_NON_POSITIVE_PRICE, order_id)
            if price > R.MAX_PRICE:
                return self._reject(R.R_PRICE_TOO_LARGE, order_id)
            if price % self.tick:
                return self._reject(R.R_PRICE_OFF_TICK, order_id)
        if rests and len(self.orders) >= self.capacity:
            return self._reject(R.R_POOL_FULL, order_id)
        limit = price if order_type == R.LIMIT else None
        if tif == R.FOK and self._available(side, limit, qty) < qty:
            return self._reject(R.R_FOK_NOT_FILLABLE, order_id)
        return self._enter(ts, order_id, side, price, qty, order_type, tif, 0)

    def cancel(self, order_id, qty=0, delete=False):
        if qty < 0:
            return self._reject(R.R_NON_POSITIVE_QTY, order_id)
        if qty > R.MAX_QTY:
            return self._reject(R.R_QTY_TOO_LARGE, order_id)
        o = self.orders.get(order_id)
        if o is None:
            return self._reject(R.R_UNKNOWN_ORDER, order_id)
        if delete or qty <= 0 or qty >= o.qty:
            self._remove(o)
            return RefResult(R.ST_CANCELLED, R.R_NONE, order_id, o.filled, 0)
        o.qty -= qty
        return RefResult(o.status, R.R_NONE, order_id, o.filled, o.qty)

    def execute(self, order_id, qty, ts=0):
        if qty <= 0:
            return self._reject(R.R_NON_POSITIVE_QTY, order_id)
        if qty > R.MAX_QTY:
            return self._reject(R.R_QTY_TOO_LARGE, order_id)
        o = self.orders.get(order_id)
        if o is None:
            return self._reject(R.R_UNKNOWN_ORDER, order_id)
        trade = min(qty, o.qty)
        fills = [RefFill(o.order_id, 0, o.price, trade, o.qty - trade, 1 - o.side, ts, o.ts)]
        o.filled += trade
        o.qty -= trade
        if o.qty == 0:
            self._remove(o)
            return RefResult(R.ST_FILLED, R.R_NONE, order_id, trade, 0, fills)
        o.status = R.ST_PARTIALLY_FILLED
        return RefResult(R.ST_PARTIALLY_FILLED, R.R_NONE, order_id, trade, o.qty, fills)

    def modify(self, order_id, price=0, qty=0, ts=0, replay=False):
        if price < 0:
            return self._reject(R.R_NON_POSITIVE_PRICE, order_id)
        if price > R.MAX_PRICE:
            return self._reject(R.R_PRICE_TOO_LARGE, order_id)
        if qty < 0:
            return self._reject(R.R_NON_POSITIVE_QTY, order_id)
        if qty > R.MAX_QTY:
            return self._reject(R.R_QTY_TOO_LARGE, order_id)
        o = self.orders.get(order_id)
        if o is None:
            return self._reject(R.R_UNKNOWN_ORDER, order_id)
        if self.halted and not replay:
            return self._reject(R.R_HALTED, order_id)
        new_price = price if price > 0 else o.price
        new_qty = qty if qty > 0 else o.qty
        if new_price == o.price and new_qty <= o.qty:
            o.qty = new_qty
            return RefResult(o.status, R.R_NONE, order_id, o.filled, o.qty)
        if new_price % self.tick:
            return self._reject(R.R_PRICE_OFF_TICK, order_id)
        self._remove(o)
        if replay:
            status = R.ST_NEW if o.filled == 0 else R.ST_PARTIALLY_FILLED
            self._rest(RefOrder(order_id, o.side, new_price, new_qty, ts, o.order_type, o.tif,
                                o.filled, status))
            return RefResult(status, R.R_NONE, order_id, o.filled, new_qty)
        return self._enter(ts, order_id, o.side, new_price, new_qty, o.order_type, o.tif, o.filled)

    def rest(self, order_id, side, price, qty, ts=0):
        """A feed's add: rests at its price, never matches."""
        if side not in (R.BUY, R.SELL):
            return self._reject(R.R_INVALID_SIDE, order_id)
        if qty <= 0:
            return self._reject(R.R_NON_POSITIVE_QTY, order_id)
        if qty > R.MAX_QTY:
            return self._reject(R.R_QTY_TOO_LARGE, order_id)
        if price <= 0:
            return self._reject(R.R_NON_POSITIVE_PRICE, order_id)
        if price > R.MAX_PRICE:
            return self._reject(R.R_PRICE_TOO_LARGE, order_id)
        if price % self.tick:
            return self._reject(R.R_PRICE_OFF_TICK, order_id)
        if order_id in self.orders:
            return self._reject(R.R_DUPLICATE_ID, order_id)
        if len(self.orders) >= self.capacity:
            return self._reject(R.R_POOL_FULL, order_id)
        self._rest(RefOrder(order_id, side, price, qty, ts))
        return RefResult(R.ST_NEW, R.R_NONE, order_id, 0, qty)

    def move(self, order_id, price=0, qty=0, ts=0):
        """A feed's modify: less size at the same price keeps priority; a new price or
        more size re-queues at the tail; never matches, ignores halts."""
        return self.modify(order_id, price, qty, ts, replay=True)

    def clear(self, order_id):
        """A feed's book clear: every resting order goes."""
        n = len(self.orders)
        self.orders.clear()
        self.queues = ({}, {})
        self.prices = ([], [])
        return RefResult(R.ST_DONE, R.R_NONE, order_id, n, 0)

    def apply(self, kind, order_id, side, price, qty, order_type=R.LIMIT, tif=R.GTC, ts=0):
        """One EVENT's worth of fields, dispatched like ``kernels.book.apply_event``."""
        if order_id == _EMPTY_KEY:
            return self._reject(R.R_INVALID_ID, order_id)
        if kind == R.EV_ADD:
            return self.add(order_id, side, price, qty, order_type, tif, ts)
        if kind in (R.EV_CANCEL, R.EV_DELETE):
            return self.cancel(order_id, qty, delete=kind == R.EV_DELETE)
        if kind == R.EV_EXECUTE:
            return self.execute(order_id, qty, ts)
        if kind == R.EV_MODIFY:
            return self.modify(order_id, price, qty, ts)
        if kind == R.EV_REST:
            return self.rest(order_id, side, price, qty, ts)
        if kind == R.EV_MOVE:
            return self.move(order_id, price, qty, ts)
        if kind == R.EV_CLEAR:
            return self.clear(order_id)
        if kind in (R.EV_EXECUTE_HIDDEN, R.EV_CROSS):
            if qty < 0:
                return self._reject(R.R_NON_POSITIVE_QTY, order_id)
            if qty > R.MAX_QTY:
                return self._reject(R.R_QTY_TOO_LARGE, order_id)
            if price < 0:
                return self._reject(R.R_NON_POSITIVE_PRICE, order_id)
            if price > R.MAX_PRICE:
                return self._reject(R.R_PRICE_TOO_LARGE, order_id)
            return RefResult(R.ST_DONE, R.R_NONE, order_id, qty, 0)
        if kind == R.EV_HALT:
            self.halted = price < 0
            return RefResult(R.ST_DONE, R.R_NONE, order_id, 0, 0)
        return self._reject(R.R_INVALID_TYPE, order_id)
