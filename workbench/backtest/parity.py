"""Side by side with hftbacktest: the same strategy through our L2 loop and through a
plain-Python, event-by-event simulation of hftbacktest's documented rules, on the same
event array.

:func:`parity_check` is the one call (a test and a notebook cell use it): it replays a
slice of an L2 capture (the very ``MarketData.events`` the backtester consumes, from
``workbench.data.market.load_events``) with :data:`kernels.strategies.POST_ONLY_QUOTES`
woken on a timer, once through ``Backtest`` and once through :func:`simulate`, and
compares every order (submit, arrival and end times, side, price, quantity, queue ahead
on arrival, filled quantity, final status, reject reason) and every fill (time, order,
side, price, quantity, maker/taker).

The reference (:func:`simulate`) is written from hftbacktest's documentation (its
``NoPartialFillExchange``/``PartialFillExchange``, ``RiskAdverseQueueModel`` and
``ProbQueueModel``, ``ConstantLatency``, ``elapse``), not from our kernels:

* market depth: a price -> size map per side (hftbacktest's ``HashMapMarketDepth``); a
  snapshot's first row clears both sides (hftbacktest's depth-clear event before a
  snapshot); the best bid/ask move as levels appear and empty;
* one timeline, four event kinds, the earliest first: local data (the strategy's copy of
  the depth, ``feed_ns`` after the exchange's), local order responses, exchange data,
  exchange order arrivals; at equal times hftbacktest's ``EventSet`` takes them in that
  order (``same_ts="hftbacktest"``);
* ``elapse(N)``: the strategy acts at ``t0 + k*N`` (``t0`` the first event) after every
  event stamped at or before it, as long as market data remains after it (hftbacktest
  also keeps elapsing after the last row while order messages are in flight; our loops
  never wake the strategy after the last market event, and the reference follows ours);
* an order reaches the exchange ``entry_ns`` after it was sent, a response reaches the
  strategy ``response_ns`` after the exchange produced it;
* a new post-only (GTX) order at or through the opposite best is expired (rejected);
  otherwise it rests with ``front`` = the size of its level on its side;
* a trade at an own order's price advances it (``front -= qty``); a trade through its
  price fills it whole; when the best bid rises to (or above) an own sell, or the best
  ask falls to an own buy, it fills whole at its price (checked after each depth row);
* a depth row at the order's price: risk-averse ``front = min(front, new size)``; the
  probabilistic models split a decrease by ``p = f(back) / (f(back) + f(front))``;
* no partial fill (``NoPartialFillExchange``): once ``floor(-front) >= 1`` the order
  fills whole; partial fills: ``min(leaves, floor(-front))``.

Where our model differs on purpose, the reference can run our rule instead (the check
then compares like with like; the report says which rules ran):

* ``same_ts``: at equal times we let an order arriving at the exchange go before a
  market event (with zero latency an order reacts to event i and rests before event
  i+1 even at the same ``ts``); hftbacktest applies the market event first. With
  non-zero latencies a tie needs an event stamped at exactly an arrival's nanosecond;
  the report counts those ties (``ties``), and the two rules agree when there are none.
* ``partial_rule``: after a partial queue fill we leave ``front`` at what the trade did
  not consume (``"consume"``: the next trade fills at most its own size); hftbacktest's
  ``PartialFillExchange`` leaves ``front`` negative, so the next trade at that price fills
  the earlier executable quantity again (``"hftbacktest"``: kept here for the comparison;
  an order fully filled that way is taken out of the book, where hftbacktest 2.x keeps a
  filled order whose fill equals its leaves and errors on its next event). Only partial
  fills are affected: ``fills="no_partial"`` is exact.

Not modelled (the parity strategy never needs them): orders other than post-only (no
taker fills), modify, market orders, fees and accounting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from kernels import records as R

__all__ = ["ParityReport", "default_capture", "parity_check", "simulate", "slice_market",
           "workbench_run"]

_INF = float("inf")
_FILLS = ("partial", "no_partial")
_QUEUES = ("risk_averse", "power", "log")

# the kernels' own codes, named as the result frames name them
_STATUS = {R.LS_PENDING: "pending", R.LS_OPEN: "open", R.LS_FILLED: "filled",
           R.LS_CANCELLED: "cancelled", R.LS_REJECTED: "rejected"}


# ---------------------------------------------------------------------------- market
def slice_market(data, rows: int = 20_000):
    """The first ``rows`` rows of an L2 market (a path or a ``MarketData``), as a
    ``MarketData`` on the same ladder: what both sides of the check replay."""
    from ..data.market import MarketData, load_events

    md = data if isinstance(data, MarketData) else load_events(str(data))
    if md.kind != "l2":
        raise ValueError(f"parity needs L2 data (a Binance capture), got {md.kind!r} data")
    if not isinstance(rows, (int, np.integer)) or rows < 2:
        raise ValueError(f"rows={rows!r} must be an integer >= 2")
    events = md.events[: int(rows)].copy()
    return MarketData(events, md.tick, md.price_scale, f"{md.name} [:{len(events)}]",
                      kind="l2", qty_scale=md.qty_scale, ladder=md.ladder)


class _Side:
    """One side of hftbacktest's hash-map depth: sizes by price and the best price."""

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.qty: dict[int, int] = {}
        self.best: int | None = None

    def clear(self) -> None:
        self.qty.clear()
        self.best = None

    def set(self, price: int, qty: int) -> int:
        """New size at ``price``; returns the previous one."""
        prev = self.qty.get(price, 0)
        if qty > 0:
            self.qty[price] = qty
            if self.best is None or (price > self.best if self.is_bid else price < self.best):
                self.best = price
        else:
            self.qty.pop(price, None)
            if price == self.best:
                pick = max if self.is_bid else min
                self.best = pick(self.qty) if self.qty else None
        return prev


# ------------------------------------------------------------------------ reference
@dataclass
class _Order:
    oid: int              # 0, 1, ... in the order the strategy sent them
    side: int
    price: int
    qty: int
    submit_ts: int
    arrival_ts: int = -1
    done_ts: int = -1
    filled: int = 0
    front: float = 0.0
    traded: float = 0.0   # traded at its price since the last depth row there
    queue_ahead: int = -1
    status: int = R.LS_PENDING
    reason: int = R.R_NONE
    risk_reason: int = 0


@dataclass
class _Local:
    """An open order as the strategy knows it (one slot of its order table)."""

    oid: int
    side: int
    price: int
    leaves: int
    state: int            # R.OS_*


def _pow(x: float, n: float) -> float:
    """``x ** n`` as C's ``pow``: NaN (not a complex number) for a negative base and a
    fractional exponent."""
    if x < 0 and n != int(n):
        return math.nan
    return math.pow(x, n)


def _prob(queue: str, n: float, front: float, back: float) -> float:
    if queue == "power":
        fb, ff = _pow(back, n), _pow(front, n)
    else:  # log
        fb, ff = math.log(1.0 + max(back, 0.0)), math.log(1.0 + max(front, 0.0))
    total = fb + ff
    return fb / total if total > 0 else 1.0


def simulate(events: np.ndarray, *, tick: int, timer_ns: int, entry_ns: int,
             response_ns: int, feed_ns: int = 0, qty: int, offset_ticks: int = 0,
             max_position: int = 0, fills: str = "no_partial", queue: str = "risk_averse",
             queue_n: float = 2.0, same_ts: str = "hftbacktest",
             partial_rule: str = "hftbacktest", max_open: int = 16) -> dict:
    """Replay ``events`` (``L2_UPDATE`` rows: depth and ``L2F_TRADE`` rows, ``ts`` in ns)
    with the post-only quoter under hftbacktest's rules (module docstring), in plain
    Python. Returns ``{"orders": [...], "fills": [...], "ties": int, "timer_wakes": int}``
    (dicts with prices in price units)."""
    if fills not in _FILLS:
        raise ValueError(f"fills={fills!r} must be one of {_FILLS}")
    if queue not in _QUEUES:
        raise ValueError(f"queue={queue!r} must be one of {_QUEUES}")
    if same_ts not in ("hftbacktest", "workbench"):
        raise ValueError(f"same_ts={same_ts!r} must be 'hftbacktest' or 'workbench'")
    if partial_rule not in ("hftbacktest", "consume"):
        raise ValueError(f"partial_rule={partial_rule!r} must be 'hftbacktest' or 'consume'")
    for name, v in (("timer_ns", timer_ns), ("entry_ns", entry_ns), ("response_ns", response_ns),
                    ("feed_ns", feed_ns), ("qty", qty)):
        if not isinstance(v, (int, np.integer)) or v < 0 or (name in ("timer_ns", "qty") and v == 0):
            raise ValueError(f"{name}={v!r} must be a non-negative integer (timer_ns, qty > 0)")
    n = len(events)
    if n == 0:
        raise ValueError("no events")
    ts_col = events["ts"].tolist()
    price_col = events["price"].tolist()
    qty_col = events["qty"].tolist()
    side_col = events["side"].tolist()
    flag_col = events["flags"].tolist()
    last_ts = ts_col[-1]

    bids, asks = _Side(True), _Side(False)
    book = (bids, asks)
    orders: list[_Order] = []
    resting: dict[int, _Order] = {}           # oid -> order in the exchange's book
    fill_log: list[dict] = []
    slots: list[_Local | None] = [None] * max_open
    position = 0
    local_bid = local_ask = None               # the strategy's copy of the best prices
    feed_q: list[tuple[int, int | None, int | None]] = []   # (local ts, bid, ask), FIFO
    feed_head = 0
    entry_q: list[tuple[int, str, int]] = []   # (arrival ts, "new"/"cancel", oid), FIFO
    entry_head = 0
    resp_q: list[tuple[int, str, int, int]] = []  # (local ts, kind, oid, qty), FIFO
    resp_head = 0
    ties = 0
    timer_wakes = 0
    next_timer = ts_col[0] + timer_ns
    # tie rank per kind (lower first at equal times); the timer always last
    rank = ({"feed": 0, "resp": 1, "data": 2, "entry": 3} if same_ts == "hftbacktest"
            else {"resp": 0, "feed": 1, "entry": 2, "data": 3})

    def respond(t, kind, oid, q=0):
        resp_q.append((t + response_ns, kind, oid, q))

    def fill(o: _Order, t: int, q: int) -> None:
        o.filled += q
        fill_log.append({"ts": t, "oid": o.oid, "side": o.side, "price": o.price, "qty": q,
                         "liquidity": "maker"})
        if o.filled >= o.qty:
            o.status, o.done_ts = R.LS_FILLED, t
            resting.pop(o.oid, None)
        respond(t, "fill", o.oid, q)

    def cross_check(side_moved: int, t: int) -> None:
        """The best of ``side_moved`` improved: own orders on the other side it reached fill."""
        best = book[side_moved].best
        for o in list(resting.values()):
            if o.side == side_moved:
                continue
            if (o.side == R.SELL and o.price <= best) or (o.side == R.BUY and o.price >= best):
                fill(o, t, o.qty - o.filled)

    def exchange_row(j: int) -> None:
        t, price, q, side, flags = ts_col[j], price_col[j], qty_col[j], side_col[j], flag_col[j]
        if flags & R.L2F_TRADE:
            maker = 1 - side
            for o in list(resting.values()):
                if o.side != maker:
                    continue
                leaves = o.qty - o.filled
                if (maker == R.BUY and price < o.price) or (maker == R.SELL and price > o.price):
                    fill(o, t, leaves)                       # traded through its price
                elif price == o.price:
                    o.front -= q
                    o.traded += q
                    executable = int(math.floor(-o.front)) if o.front < 0 else 0
                    if executable < 1:
                        continue
                    if fills == "no_partial":
                        fill(o, t, leaves)
                    elif partial_rule == "consume":
                        take = min(leaves, executable)
                        o.front += take
                        fill(o, t, take)
                    else:  # hftbacktest's PartialFillExchange: front stays where it is
                        fill(o, t, leaves if executable >= leaves else executable)
        else:
            if flags & R.L2F_SNAPSHOT_START:
                bids.clear()
                asks.clear()
            if price >= 0:
                s = book[side]
                before = s.best
                prev = s.set(price, q)
                for o in resting.values():
                    if o.side == side and o.price == price:
                        if queue == "risk_averse":
                            o.front = min(o.front, float(q))
                        else:
                            chg = prev - q - o.traded
                            if chg < 0:
                                o.front = min(o.front, float(q))
                            else:
                                back = prev - o.front
                                p = _prob(queue, queue_n, o.front, back)
                                if p != p or p > 1.0:
                                    p = 1.0
                                est = o.front - (1.0 - p) * chg + min(back - p * chg, 0.0)
                                o.front = min(est, float(q))
                        o.traded = 0.0
                if s.best is not None and s.best != before and (
                        before is None or (s.best > before if side == R.BUY else s.best < before)):
                    cross_check(side, t)
        feed_q.append((t + feed_ns, bids.best, asks.best))

    def exchange_order(t: int, kind: str, oid: int) -> None:
        o = orders[oid]
        if kind == "new":
            o.arrival_ts = t
            opp = asks.best if o.side == R.BUY else bids.best
            crosses = opp is not None and (o.price >= opp if o.side == R.BUY else o.price <= opp)
            if crosses:
                o.status, o.reason, o.done_ts = R.LS_REJECTED, R.R_POST_ONLY_WOULD_TAKE, t
                respond(t, "rejected", oid)
                return
            o.front = float(book[o.side].qty.get(o.price, 0))
            o.traded = 0.0
            o.queue_ahead = int(o.front)
            o.status = R.LS_OPEN
            resting[oid] = o
            respond(t, "ack", oid)
        elif oid in resting:
            del resting[oid]
            o.status, o.done_ts = R.LS_CANCELLED, t
            respond(t, "cancelled", oid)
        else:
            respond(t, "cancel_rejected", oid)

    def local_response(kind: str, oid: int, q: int) -> None:
        nonlocal position
        k = next((i for i, sl in enumerate(slots) if sl is not None and sl.oid == oid), -1)
        if kind == "fill":
            position += q if orders[oid].side == R.BUY else -q
            if k >= 0:
                slots[k].leaves -= q
                if slots[k].leaves <= 0:
                    slots[k] = None
        elif k < 0:
            return
        elif kind == "ack":
            if slots[k].state == R.OS_PENDING_NEW:
                slots[k].state = R.OS_LIVE
        elif kind in ("cancelled", "rejected"):
            slots[k] = None
        elif kind == "cancel_rejected" and slots[k].state == R.OS_PENDING_CANCEL:
            slots[k].state = R.OS_LIVE

    def requote(t: int, side: int, price: int) -> None:
        have = False
        for sl in slots:
            if sl is None or sl.side != side or sl.state == R.OS_PENDING_CANCEL:
                continue
            if price > 0 and sl.price == price and not have:
                have = True
                continue
            sl.state = R.OS_PENDING_CANCEL
            entry_q.append((t + entry_ns, "cancel", sl.oid))
        if not have and price > 0:
            o = _Order(len(orders), side, price, qty, t)
            orders.append(o)
            free = next((i for i, sl in enumerate(slots) if sl is None), -1)
            if free < 0:
                o.status, o.risk_reason, o.done_ts = R.LS_REJECTED, 1, t
                return
            slots[free] = _Local(o.oid, side, price, qty, R.OS_PENDING_NEW)
            entry_q.append((t + entry_ns, "new", o.oid))

    def strategy(t: int) -> None:
        if local_bid is None or local_ask is None:
            return
        off = offset_ticks * tick
        bid, ask = local_bid - off, local_ask + off
        if max_position > 0 and position >= max_position:
            bid = 0
        if max_position > 0 and position <= -max_position:
            ask = 0
        requote(t, R.BUY, bid)
        requote(t, R.SELL, ask)

    i = 0
    while True:
        heads = []
        if feed_head < len(feed_q):
            heads.append((feed_q[feed_head][0], rank["feed"], "feed"))
        if resp_head < len(resp_q):
            heads.append((resp_q[resp_head][0], rank["resp"], "resp"))
        if i < n:
            heads.append((ts_col[i], rank["data"], "data"))
        if entry_head < len(entry_q):
            heads.append((entry_q[entry_head][0], rank["entry"], "entry"))
        if next_timer < last_ts:
            heads.append((next_timer, 9, "timer"))
        if not heads:
            break
        t, _, kind = min(heads)
        if kind in ("data", "entry") and i < n and entry_head < len(entry_q) \
                and ts_col[i] == entry_q[entry_head][0]:
            ties += 1
        if kind == "feed":
            _, local_bid, local_ask = feed_q[feed_head]
            feed_head += 1
        elif kind == "resp":
            _, rk, oid, q = resp_q[resp_head]
            resp_head += 1
            local_response(rk, oid, q)
        elif kind == "data":
            exchange_row(i)
            i += 1
        elif kind == "entry":
            _, ek, oid = entry_q[entry_head]
            entry_head += 1
            exchange_order(t, ek, oid)
        else:
            timer_wakes += 1
            next_timer += timer_ns
            strategy(t)
    return {"orders": [vars(o) for o in orders], "fills": fill_log, "ties": ties,
            "timer_wakes": timer_wakes}


# ---------------------------------------------------------------------- comparison
def workbench_run(md, *, timer_ns: int, entry_ns: int, response_ns: int, feed_ns: int = 0,
                  qty: int, offset_ticks: int = 0, max_position: int = 0,
                  fills: str = "no_partial", queue: str = "risk_averse", queue_n: float = 2.0):
    """The same strategy and rules through ``Backtest`` (our L2 loop)."""
    from kernels.strategies import POST_ONLY_QUOTES

    from .builder import Backtest

    bt = (Backtest(md, max_orders=200_000, max_fills=200_000)
          .strategy(POST_ONLY_QUOTES, qty=qty, offset_ticks=offset_ticks,
                    max_position=max_position)
          .latency(feed_us=feed_ns / 1e3, entry_us=entry_ns / 1e3, response_us=response_ns / 1e3)
          .timer(every_us=timer_ns / 1e3)
          .exchange(partial_fills=fills == "partial"))
    if queue == "power":
        bt.queue_model("power", n=queue_n)
    else:
        bt.queue_model(queue)
    return bt.run(progress=False)


_ORDER_COLS = ("n", "submit_ts", "arrival_ts", "done_ts", "side", "price", "qty", "filled",
               "queue_ahead", "status", "exchange_reason")
_FILL_COLS = ("ts", "n", "side", "price", "qty", "liquidity")


def _ours(result, price_scale: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    orders = result.orders.with_columns(
        (pl.col("order_id") - R.STRATEGY_ID_BASE).alias("n"),
        (pl.col("price") * price_scale).round().cast(pl.Int64))
    fills = result.fills.with_columns(
        (pl.col("order_id") - R.STRATEGY_ID_BASE).alias("n"),
        (pl.col("price") * price_scale).round().cast(pl.Int64))
    return (orders.select(_ORDER_COLS),
            fills.select(_FILL_COLS).sort("ts", "n", maintain_order=True))


def _reference(ref: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    side = {R.BUY: "buy", R.SELL: "sell"}
    o = ref["orders"]
    orders = pl.DataFrame({
        "n": [x["oid"] for x in o], "submit_ts": [x["submit_ts"] for x in o],
        "arrival_ts": [x["arrival_ts"] for x in o], "done_ts": [x["done_ts"] for x in o],
        "side": [side[x["side"]] for x in o], "price": [x["price"] for x in o],
        "qty": [x["qty"] for x in o], "filled": [x["filled"] for x in o],
        "queue_ahead": [x["queue_ahead"] for x in o],
        "status": [_STATUS[x["status"]] for x in o],
        "exchange_reason": [R.REJECT_REASON_NAMES[x["reason"]] for x in o],
    }, schema_overrides={"n": pl.Int64, "submit_ts": pl.Int64, "arrival_ts": pl.Int64,
                         "done_ts": pl.Int64, "price": pl.Int64, "qty": pl.Int64,
                         "filled": pl.Int64, "queue_ahead": pl.Int64})
    f = ref["fills"]
    fills = pl.DataFrame({
        "ts": [x["ts"] for x in f], "n": [x["oid"] for x in f],
        "side": [side[x["side"]] for x in f], "price": [x["price"] for x in f],
        "qty": [x["qty"] for x in f], "liquidity": [x["liquidity"] for x in f],
    }, schema_overrides={"ts": pl.Int64, "n": pl.Int64, "price": pl.Int64, "qty": pl.Int64})
    return orders, fills.sort("ts", "n", maintain_order=True)


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> str | None:
    if a.height != b.height:
        m = min(a.height, b.height)
        for k in range(m):
            if a.row(k) != b.row(k):
                return f"row {k}: ours {a.row(k, named=True)} vs reference {b.row(k, named=True)}"
        return f"ours has {a.height} rows, the reference {b.height}"
    for k in range(a.height):
        if a.row(k) != b.row(k):
            return f"row {k}: ours {a.row(k, named=True)} vs reference {b.row(k, named=True)}"
    return None


@dataclass
class ParityReport:
    """Both runs of :func:`parity_check`, side by side."""

    ours_orders: pl.DataFrame
    ours_fills: pl.DataFrame
    ref_orders: pl.DataFrame
    ref_fills: pl.DataFrame
    config: dict
    ties: int
    timer_wakes: tuple[int, int]           # (ours, reference)
    stats: dict = field(default_factory=dict)

    @property
    def order_difference(self) -> str | None:
        return _first_difference(self.ours_orders, self.ref_orders)

    @property
    def fill_difference(self) -> str | None:
        return _first_difference(self.ours_fills, self.ref_fills)

    @property
    def same(self) -> bool:
        """Identical orders, fills and timer wakes."""
        return (self.order_difference is None and self.fill_difference is None
                and self.timer_wakes[0] == self.timer_wakes[1])

    def table(self) -> pl.DataFrame:
        """One row per measure: ours, the reference's, and whether they agree."""
        def counts(orders, fills):
            st = orders["status"].value_counts()
            by = dict(zip(st["status"].to_list(), st["count"].to_list()))
            return {"orders": orders.height, "fills": fills.height,
                    "filled qty": int(fills["qty"].sum()) if fills.height else 0,
                    "post-only rejects": int((orders["exchange_reason"]
                                              == "post_only_would_take").sum()),
                    "cancelled": by.get("cancelled", 0), "filled orders": by.get("filled", 0)}
        a, b = counts(self.ours_orders, self.ours_fills), counts(self.ref_orders, self.ref_fills)
        a["timer wakes"], b["timer wakes"] = self.timer_wakes
        return pl.DataFrame({"measure": list(a), "workbench": list(a.values()),
                             "reference": [b[k] for k in a],
                             "same": [a[k] == b[k] for k in a]})

    def summary(self) -> str:
        rules = ", ".join(f"{k}={v}" for k, v in self.config.items())
        verdict = "identical" if self.same else "DIFFERENT"
        lines = [f"parity with hftbacktest's rules ({rules}): {verdict}",
                 f"  orders {self.ours_orders.height}, fills {self.ours_fills.height}, "
                 f"timer wakes {self.timer_wakes[0]}, arrival/event ties {self.ties}"]
        for what, diff in (("orders", self.order_difference), ("fills", self.fill_difference)):
            if diff:
                lines.append(f"  first {what} difference: {diff}")
        return "\n".join(lines)


def parity_check(data, rows: int = 20_000, *, timer_us: float = 100_000.0,
                 entry_us: float = 1_000.0, response_us: float = 1_000.0, feed_us: float = 0.0,
                 qty: int = 100_000, offset_ticks: int = 0, max_position: int = 0,
                 fills: str = "no_partial", queue: str = "risk_averse", queue_n: float = 2.0,
                 same_ts: str = "hftbacktest", partial_rule: str = "hftbacktest") -> ParityReport:
    """Run the post-only quoter (``kernels.strategies.POST_ONLY_QUOTES``, woken every
    ``timer_us``) on the first ``rows`` rows of an L2 capture (a path, e.g.
    ``../shared/data/binance/binance_spot_btcusdt_20240808.gz``, or a ``MarketData``)
    through our L2 loop and through :func:`simulate`, and compare orders and fills.

    ``fills``: ``"no_partial"`` (hftbacktest's ``NoPartialFillExchange``) or ``"partial"``;
    ``queue``: ``"risk_averse"``, ``"power"`` (``queue_n``) or ``"log"``; ``same_ts`` and
    ``partial_rule``: which side's rule the reference runs where the two models differ
    on purpose (module docstring; the defaults are hftbacktest's, so with partial fills
    pass ``partial_rule="consume"`` to compare like with like). ``qty`` in the capture's
    quantity units.

    >>> report = parity_check("../shared/data/binance/binance_spot_btcusdt_20240808.gz")
    >>> print(report.summary()); report.table()
    """
    md = slice_market(data, rows)
    to_ns = {}
    for name, v in (("timer_us", timer_us), ("entry_us", entry_us),
                    ("response_us", response_us), ("feed_us", feed_us)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}={v!r} must be a finite number >= 0")
        to_ns[name] = int(round(v * 1e3))
    if to_ns["timer_us"] <= 0:
        raise ValueError(f"timer_us={timer_us!r} must be > 0")
    common = dict(timer_ns=to_ns["timer_us"], entry_ns=to_ns["entry_us"],
                  response_ns=to_ns["response_us"], feed_ns=to_ns["feed_us"], qty=int(qty),
                  offset_ticks=int(offset_ticks), max_position=int(max_position), fills=fills,
                  queue=queue, queue_n=float(queue_n))
    ref = simulate(md.events, tick=md.tick, same_ts=same_ts, partial_rule=partial_rule, **common)
    result = workbench_run(md, **common)
    ours_o, ours_f = _ours(result, md.price_scale)
    ref_o, ref_f = _reference(ref)
    config = {"rows": len(md.events), **{k: v for k, v in common.items() if k != "queue_n"},
              "same_ts": same_ts, "partial_rule": partial_rule}
    if queue == "power":
        config["queue_n"] = float(queue_n)
    return ParityReport(ours_o, ours_f, ref_o, ref_f, config, ref["ties"],
                        (int(result.stats["timer_wakes"]), ref["timer_wakes"]), result.stats)


def default_capture() -> Path:
    """Where the spot capture the check uses lives (``../shared`` beside the checkout)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "binance" / \
        "binance_spot_btcusdt_20240808.gz"
