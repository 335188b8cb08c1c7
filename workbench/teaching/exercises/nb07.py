"""Checkers of notebook 07-latency-and-queue-position."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

_SECOND = 1_000_000_000
_OPEN = 34_200 * _SECOND  # 09:30 in ns after midnight


def _short(why: str, lines: int = 8) -> str:
    """A compile error from numba runs to dozens of lines: keep the head of it."""
    parts = why.splitlines()
    return "\n".join(parts[:lines]) + ("\n..." if len(parts) > lines else "")


def _clock(ts: int) -> str:
    s, ns = divmod(int(ts), _SECOND)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" + (f".{ns:09d}" if ns else "")


# -------------------------------------------------------- 07.1 exact queue position
def _queue_cases():
    """(label, events, [(order_id, t)]): a hand-made level, then a simulated flow."""
    from kernels import records as R
    from workbench.data.synthetic import simulate
    from workbench.teaching.exercises.nb05 import _events

    A, C, D, X = R.EV_ADD, R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE
    B, S = R.BUY, R.SELL
    level = _events([(A, 1, B, 100.00, 300), (A, 2, B, 100.00, 200), (A, 3, B, 99.99, 400),
                     (A, 4, B, 100.00, 500), (A, 5, S, 100.01, 100), (A, 6, B, 100.00, 100),
                     (C, 1, B, 100.00, 100), (X, 1, B, 100.00, 50), (D, 2, B, 100.00, 200),
                     (A, 7, S, 100.01, 300), (X, 1, B, 100.00, 150), (A, 8, B, 100.00, 250)])
    t = level["ts"]
    hand = [(4, int(t[5])), (6, int(t[5])), (4, int(t[6])), (4, int(t[7])), (6, int(t[8])),
            (7, int(t[9])), (1, int(t[0])), (4, int(t[10])), (8, int(t[11])), (3, int(t[11])),
            (1, int(t[11])), (8, int(t[3]))]
    flow = simulate(n_symbols=1, seed=21, duration_s=300, rate=20.0).events
    rng = np.random.default_rng(7)
    picks = []
    for k in np.sort(rng.choice(np.arange(200, len(flow) - 1), 10, replace=False)):
        t_k = int(flow["ts"][k])
        eng, _ = _queue_reference(flow, None, t_k)
        resting = eng.orders("S")["order_id"].to_numpy()
        picks.append((int(resting[int(rng.integers(len(resting) // 2, len(resting)))]), t_k))
    gone = flow[(flow["kind"] == R.EV_DELETE)][len(flow) // 1000]
    picks += [(int(gone["order_id"]), int(gone["ts"])),                 # deleted just then
              (int(flow["order_id"].max()), int(flow["ts"][len(flow) // 2]))]  # not yet added
    return [("a hand-made book (partial cancels, executions and a delete ahead of you)",
             level, hand),
            (f"a simulated flow ({len(flow):,} events)", flow, picks)]


def _queue_reference(events, order_id, t):
    from workbench.book import Engine

    eng = Engine(["S"], record_fills=False, capacity=max(1024, len(events)))
    eng.submit_many(events[events["ts"] <= t])
    return eng, None if order_id is None else eng.queue_position("S", order_id)


@exercise("07.1", hint="replay the events with ts <= t into {order_id: [side, price, qty]} in arrival order (a dict keeps it); EV_CANCEL/EV_EXECUTE reduce qty and keep the place, EV_DELETE removes; sum the qty of the same side and price that came before your order")
def check_queue_ahead(queue_ahead) -> Verdict:
    """Exercise 07.1: ``queue_ahead(events, order_id, t)`` returns the quantity ahead of
    order ``order_id`` in its price level's FIFO queue after every event with ``ts <=
    t``: the remaining size of the orders at the same side and price that arrived before
    it (a partial cancel or execution shrinks an order but keeps its place), or None when
    the order is not resting then. The reference replays the events through the engine
    (``Engine.queue_position``). Tried on a hand-made book and on 12 (order, time) pairs of
    a simulated flow."""
    for label, events, picks in _queue_cases():
        for order_id, t in picks:
            eng, pos = _queue_reference(events, order_id, t)
            expected = None if pos is None else pos[0]
            got, why = _attempt(queue_ahead, events.copy(), order_id, t)
            where = f"in {label}, order {order_id} at {_clock(t)}"
            if why:
                return _verdict(False, f"{where}: {why}. Hint: events is a numpy EVENT array "
                                       "(events['ts'], events['kind'], ...)")
            if got is not None and (isinstance(got, bool) or not isinstance(got, (int, np.integer))):
                return _verdict(False, f"{where}: return a quantity (int) or None, not {got!r}")
            if got == expected:
                continue
            if expected is None:
                return _verdict(False, f"{where}: the order is not resting then (not yet added, "
                                       "or already filled/cancelled): return None, not "
                                       f"{got!r}")
            if got is None:
                return _verdict(False, f"{where}: the order is resting with {expected:,} "
                                       "ahead of it, you returned None")
            orders = eng.orders("S")
            mine = orders.filter(orders["order_id"] == order_id).row(0, named=True)
            level = orders.filter((orders["side"] == mine["side"]) &
                                  ((orders["price"] - mine["price"]).abs() < 1e-9))
            total = int(level["qty"].sum())
            if got == pos[1]:
                why = (f"that is the number of orders ahead ({pos[1]}); count their "
                       f"remaining quantity ({expected:,})")
            elif got == total - mine["qty"]:
                why = ("that is the whole level without your order; only the orders that "
                       "arrived BEFORE yours are ahead (FIFO)")
            elif got == total or got == expected + mine["qty"]:
                why = "your own order is not ahead of itself"
            elif got > expected:
                why = ("too much: partial cancels (EV_CANCEL) and executions (EV_EXECUTE) "
                       "shrink the orders ahead, and deleted ones leave the queue")
            else:
                why = ("too little: a partial cancel or an execution shrinks an order ahead "
                       "but keeps its place; it leaves the queue only at size 0")
            return _verdict(False, f"{where} ({mine['side']} {mine['price']:,.2f}): you "
                                   f"returned {got:,}, the queue ahead holds {expected:,}: {why}")
    return _verdict(True, "exact L3 queue positions: FIFO order, partial cancels and "
                          "executions ahead, and orders that are not resting")


# ------------------------------------------------------ 07.2 fill rate by queue ahead
def _orders_cases():
    import polars as pl

    hand = pl.DataFrame({
        "queue_ahead": [0, 0, 50, 99, 100, 100, 150, 300, 300, 320, -1, 40, 700, 0],
        "status": ["filled", "cancelled", "filled", "filled", "cancelled", "cancelled", "filled",
                   "cancelled", "cancelled", "filled", "rejected", "open", "cancelled",
                   "pending"]})
    rng = np.random.default_rng(3)
    n = 2_000
    ahead = rng.integers(-1, 1_500, n)
    fill_p = np.clip(1.0 - ahead / 1_000, 0.02, 0.95)
    status = np.where(ahead < 0, "rejected",
                      np.where(rng.random(n) < fill_p, "filled", "cancelled")).astype(object)
    status[rng.choice(n, 30, replace=False)] = "open"
    randomised = pl.DataFrame({"queue_ahead": ahead, "status": status.astype(str)})
    return [("a hand-made order log", hand, [0, 100, 300, 600, 1_000, 2_000]),
            ("the same log, buckets of 50", hand, [0, 50, 100, 150, 200]),
            ("2,000 random orders", randomised, [0, 100, 250, 500, 1_000, 2_000])]


def _fill_rates(orders, edges, statuses=("filled", "cancelled"), closed_right=False):
    ahead = orders["queue_ahead"].to_numpy()
    status = orders["status"].to_numpy()
    done = np.isin(status, statuses) & (ahead >= 0)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = done & ((ahead > lo) & (ahead <= hi) if closed_right else
                         (ahead >= lo) & (ahead < hi))
        n = int(inside.sum())
        out.append(None if n == 0 else float((status[inside] == "filled").sum() / n))
    return out


def _same(got, expected) -> bool:
    return len(got) == len(expected) and all(
        (g is None and e is None) or (g is not None and e is not None and abs(g - e) < 1e-9)
        for g, e in zip(got, expected))


@exercise("07.2", hint="keep the orders with queue_ahead >= 0 whose status is filled or cancelled; for each bucket edges[i] <= queue_ahead < edges[i+1] return (filled count) / (orders in it), None for an empty bucket")
def check_fill_rate_by_queue(fill_rate_by_queue) -> Verdict:
    """Exercise 07.2: ``fill_rate_by_queue(orders, edges)`` returns, for each bucket
    ``edges[i] <= queue_ahead < edges[i + 1]``, the share of orders that filled among the
    orders that rested (``queue_ahead >= 0``) and are done (status ``filled`` or
    ``cancelled``; open, pending and rejected ones have no outcome yet), None for a
    bucket without such orders. ``orders`` has the columns of ``BacktestResult.orders``.
    Tried on a hand-made log and on 2,000 random orders."""
    for label, orders, edges in _orders_cases():
        expected = _fill_rates(orders, edges)
        got, why = _attempt(fill_rate_by_queue, orders.clone(), list(edges))
        where = f"for {label} with edges {edges}"
        if why:
            return _verdict(False, f"{where}: {why}")
        try:
            values = [None if g is None or (isinstance(g, float) and math.isnan(g)) else float(g)
                      for g in got]
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return a list of fractions (None for an empty "
                                   f"bucket), not {got!r}")
        if _same(values, expected):
            continue
        shown = [None if e is None else round(e, 3) for e in expected]
        mine = [None if v is None else round(v, 3) for v in values]
        if len(values) != len(expected):
            why = f"one value per bucket: {len(edges) - 1} buckets for {len(edges)} edges"
        elif _same(values, _fill_rates(orders, edges, ("filled", "cancelled", "open",
                                                         "pending", "rejected"))):
            why = "open, pending and rejected orders have no outcome yet: count filled and cancelled only"
        elif _same(values, _fill_rates(orders, edges, closed_right=True)):
            why = "a bucket includes its left edge and excludes its right one: lo <= ahead < hi"
        elif any(v is not None and v > 1 for v in values):
            why = "return fractions (filled / orders in the bucket), not counts"
        elif any(v is not None and e is None for v, e in zip(values, expected)):
            why = "an empty bucket has no fill rate: None, not 0"
        else:
            why = "filled / (filled + cancelled) per bucket"
        return _verdict(False, f"{where}: you returned {mine}, the fill rates are {shown}: {why}")
    return _verdict(True, "fill rates per bucket of queue ahead, empty buckets and orders "
                          "without an outcome handled")


# ------------------------------------------------------ 07.3 a latency model kernel
@exercise("07.3", hint="if kind == LAT_ENTRY and ts < (34_200 + 600) * 1_000_000_000: return 10 * np.int64(params[kind]); otherwise return np.int64(params[kind])")
def check_busy_open(busy_open) -> Verdict:
    """Exercise 07.3: ``busy_open(kind, ts, params, table, rng)``, an ``@numba.njit``
    latency model: entry latency (``kind == LAT_ENTRY``) is ten times ``params[kind]``
    before 09:40:00 (the session opens at 09:30; ``ts`` is ns after midnight), every
    other latency is the constant ``params[kind]`` ns. Called directly for each kind
    around 09:40 and later in the day."""
    from kernels.backtest.latency_models import LAT_ENTRY, LAT_FEED, LAT_RESPONSE

    if not callable(busy_open):
        return _verdict(False, f"pass your latency model itself, not {type(busy_open).__name__}")
    if not hasattr(busy_open, "py_func"):
        return _verdict(False, "decorate your model with @numba.njit: the backtest loop calls "
                               "it from compiled code")
    params = np.array([50_000.0, 100_000.0, 40_000.0])
    table = np.zeros((3, 0), dtype=np.int64)
    cutoff = _OPEN + 600 * _SECOND
    names = {LAT_FEED: "feed", LAT_ENTRY: "entry", LAT_RESPONSE: "response"}
    for ts in (_OPEN, _OPEN + 1, _OPEN + 300 * _SECOND, cutoff - 1, cutoff, cutoff + 1,
               43_200 * _SECOND, 57_599 * _SECOND):
        for kind in (LAT_FEED, LAT_ENTRY, LAT_RESPONSE):
            rng = np.array([12_345], dtype=np.int64)
            base = int(params[kind])
            expected = 10 * base if kind == LAT_ENTRY and ts < cutoff else base
            got, why = _attempt(busy_open, np.int64(kind), np.int64(ts), params, table, rng)
            where = f"for {names[kind]} latency at {_clock(ts)}"
            if why:
                return _verdict(False, f"{where}: {_short(why)}")
            try:
                value = int(got)
            except (TypeError, ValueError):
                return _verdict(False, f"{where}: return nanoseconds (an integer), not {got!r}")
            if value == expected:
                continue
            if kind != LAT_ENTRY and value == 10 * base:
                why = "only the ENTRY latency (kind == LAT_ENTRY) grows at the open"
            elif kind == LAT_ENTRY and ts >= cutoff and value == 10 * base:
                why = ("the busy period ends at 09:40:00 = (34_200 + 600) * 1e9 ns after "
                       "midnight; from then on the latency is params[kind]")
            elif kind == LAT_ENTRY and ts < cutoff and value == base:
                why = ("before 09:40 the entry latency is ten times params[kind]; ts is ns "
                       "after midnight, 09:40 is (34_200 + 600) * 1_000_000_000")
            else:
                why = "return params[kind] ns, times 10 for entry before 09:40"
            return _verdict(False, f"{where} you returned {value:,} ns, expected "
                                   f"{expected:,} ns: {why}")
    return _verdict(True, "entry latency ten times slower until 09:40, every other latency "
                          "untouched")
