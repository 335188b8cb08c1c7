"""Checkers of notebook 06-backtesting-market-making."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

_SECOND = 1_000_000_000
_TICK = 100            # price units: one cent under the default price scale
_SCALE = 10_000


# ------------------------------------------------------------ 06.1 a strategy kernel
def _short(why: str, lines: int = 8) -> str:
    """A compile error from numba runs to dozens of lines: keep the head of it."""
    parts = why.splitlines()
    return "\n".join(parts[:lines]) + ("\n..." if len(parts) > lines else "")


def _px(units: int) -> str:
    return f"{units / _SCALE:,.2f}"


def _strategy_cases():
    """(label, bid, ask, position, live orders [(id, side, price)], params)."""
    from kernels.records import BUY, SELL

    b, a = 1_000_000, 1_000_100  # 100.00 / 100.01
    return [
        ("a one-tick spread, min_edge_ticks=2, no orders yet", b, a, 0, [], (100, 300, 2)),
        ("a two-tick spread, min_edge_ticks=2", b, a + 100, 0, [], (100, 300, 2)),
        ("a one-tick spread, min_edge_ticks=2, quotes resting from before", b, a, 0,
         [(11, BUY, b), (12, SELL, a + 100)], (100, 300, 2)),
        ("a three-tick spread and a position at +limit", b, a + 200, 300,
         [(13, BUY, b - 100), (14, SELL, a + 200)], (100, 300, 2)),
        ("a three-tick spread and a position at -limit", b, a + 200, -300,
         [(15, BUY, b), (16, SELL, a + 100)], (100, 300, 2)),
        ("a two-tick spread, min_edge_ticks=3, quotes resting from before", b, a + 100, 0,
         [(17, BUY, b), (18, SELL, a + 100)], (100, 300, 3)),
        ("a five-tick spread, qty=7: the bid already at the touch, the ask stale", b, a + 400,
         50, [(19, BUY, b), (20, SELL, a + 100)], (7, 300, 1)),
        ("a one-tick spread, min_edge_ticks=1", b, a, -20, [], (100, 300, 1)),
    ]


def _resting_after(orders, actions, n):
    """{(side, price): qty} resting once the actions are applied to the live orders."""
    from kernels.records import A_CANCEL, A_NEW, OS_FREE

    live = {int(o["order_id"]): (int(o["side"]), int(o["price"]), int(o["leaves"]))
            for o in orders if o["state"] != OS_FREE}
    new, cancelled = [], set()
    for a in actions[:n]:
        if a["kind"] == A_CANCEL:
            cancelled.add(int(a["order_id"]))
        elif a["kind"] == A_NEW:
            new.append((int(a["side"]), int(a["price"]), int(a["qty"])))
    unknown = cancelled - set(live)
    out = {}
    for oid, (side, price, qty) in live.items():
        if oid not in cancelled:
            out[(side, price)] = out.get((side, price), 0) + qty
    for side, price, qty in new:
        out[(side, price)] = out.get((side, price), 0) + qty
    return out, unknown


def _describe(book) -> str:
    from kernels.records import BUY

    if not book:
        return "nothing"
    return ", ".join(f"{'bid' if s == BUY else 'ask'} {_px(p)} x {q}"
                     for (s, p), q in sorted(book.items()))


@exercise("06.1", hint="compute wide = view.ask - view.bid >= params[2] * ctx.tick; then requote each side at the touch when wide (and the position allows it), at price 0 (pull) otherwise")
def check_join_if_wide(join_if_wide) -> Verdict:
    """Exercise 06.1: ``join_if_wide(ctx, view, orders, params, actions)``, an
    ``@numba.njit`` strategy with ``params = (qty, limit, min_edge_ticks)``: join the best
    bid and ask with ``qty`` only while the spread is at least ``min_edge_ticks`` ticks, pull
    both quotes when it is narrower, stop bidding at ``position >= limit`` and asking at
    ``position <= -limit``. Called directly on eight market views (spreads of one to five
    ticks, positions at both limits, quotes resting from before); the resting quotes after
    its actions must be exactly the expected ones."""
    from kernels import records as R

    if not callable(join_if_wide):
        return _verdict(False, f"pass your strategy function itself, not "
                               f"{type(join_if_wide).__name__}")
    if not hasattr(join_if_wide, "py_func"):
        return _verdict(False, "decorate your strategy with @numba.njit: the backtest loop "
                               "calls it from compiled code")
    for label, bid, ask, position, live, params in _strategy_cases():
        io = R.strategy_io(8, 16, params, _TICK, _SCALE)
        ctx, view = io.ctx.view(np.recarray), io.view.view(np.recarray)
        ctx[0].position = position
        view[0].bid, view[0].ask = bid, ask
        view[0].bid_qty = view[0].ask_qty = 500
        view[0].mid = (bid + ask) / 2
        for k, (oid, side, price) in enumerate(live):
            io.orders[k] = (oid, price, 100, 100, 0, side, R.OS_LIVE, R.GTC)
        before = io.orders.copy()
        n, why = _attempt(join_if_wide, ctx[0], view[0], io.orders, io.params, io.actions)
        where = f"with {label} (bid {_px(bid)}, ask {_px(ask)}, position {position})"
        if why:
            return _verdict(False, f"{where}: {_short(why)}")
        try:
            n = int(n)
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return the number of actions written, not {n!r}")
        if not 0 <= n <= len(io.actions):
            return _verdict(False, f"{where}: you returned {n} actions; return how many you "
                                   "wrote into `actions` (requote returns the running count)")
        got, unknown = _resting_after(before, io.actions, n)
        if unknown:
            return _verdict(False, f"{where}: you cancelled order id(s) {sorted(unknown)} that "
                                   "are not open orders")
        qty, limit, edge = params
        wide = ask - bid >= edge * _TICK
        expected = {}
        if wide and position < limit:
            expected[(R.BUY, bid)] = 100 if any(s == R.BUY and p == bid for _, s, p in live) else qty
        if wide and position > -limit:
            expected[(R.SELL, ask)] = 100 if any(s == R.SELL and p == ask for _, s, p in live) else qty
        if got == expected:
            continue
        spread = (ask - bid) // _TICK
        if not wide and got:
            why = (f"the spread is {spread} tick(s), under min_edge_ticks={edge}: pull both "
                   "quotes (requote at price 0 cancels a side)")
        elif wide and position >= limit and any(s == R.BUY for s, _ in got):
            why = f"the position is {position} >= limit {limit}: stop bidding"
        elif wide and position <= -limit and any(s == R.SELL for s, _ in got):
            why = f"the position is {position} <= -limit {-limit}: stop asking"
        elif sum(1 for s, _ in got if s == R.BUY) > 1 or sum(1 for s, _ in got if s == R.SELL) > 1:
            why = "one quote per side: cancel the stale one (requote does it for you)"
        elif wide and any(k in got and got[k] != v for k, v in expected.items()):
            why = f"quote qty = params[0] ({qty})"
        else:
            why = (f"with a spread of {spread} tick(s) >= {edge}, join the touch: bid at "
                   f"view.bid, ask at view.ask")
        return _verdict(False, f"{where}: after your actions the book would hold "
                               f"{_describe(got)}; expected {_describe(expected)}: {why}")
    return _verdict(True, "quotes at the touch only while the spread pays, pulled when it is "
                          "narrow, and the inventory limit respected")


# -------------------------------------------------------------- 06.2 and 06.3 markouts
def _frames(fills_rows, mid_rows):
    import polars as pl

    fills = pl.DataFrame(fills_rows, schema={"ts": pl.Int64, "side": pl.Utf8,
                                             "price": pl.Float64, "qty": pl.Int64,
                                             "mid": pl.Float64}, orient="row")
    mids = pl.DataFrame(mid_rows, schema={"ts": pl.Int64, "mid": pl.Float64}, orient="row")
    return fills, mids


def _markout_cases():
    """(label, fills, mids, horizons): a hand-made tape, then a random one."""
    t0 = 34_200 * _SECOND
    tape = [(t0 - 1, 10.01), (t0, 10.02), (t0 + _SECOND, 9.99), (t0 + _SECOND + 1, 9.50),
            (t0 + 5 * _SECOND, 9.97), (t0 + 10 * _SECOND, 9.90), (t0 + 20 * _SECOND, 10.05)]
    one_buy = [(t0, "buy", 10.00, 100, 10.02)]
    mixed = one_buy + [(t0 + 2 * _SECOND, "sell", 10.00, 300, 9.99),
                       (t0 + 5 * _SECOND, "sell", 9.98, 50, 9.97),
                       (t0 + 12 * _SECOND, "buy", 9.89, 200, 9.90)]
    rng = np.random.default_rng(6)
    steps = np.cumsum(rng.integers(100_000_000, 2 * _SECOND, 400))
    mid = 50 + np.cumsum(rng.choice([-0.005, 0.0, 0.005], 400))
    walk = list(zip((t0 + steps).tolist(), mid.round(3).tolist()))
    picks = np.sort(rng.choice(np.arange(5, 380), 60, replace=False))
    rand = [(walk[i][0], "buy" if rng.random() < 0.5 else "sell",
             round(walk[i][1] + (-0.005 if rng.random() < 0.5 else 0.005), 3),
             int(rng.integers(1, 10)) * 100, walk[i][1]) for i in picks]
    return [("one buy of 100 at 10.00", *_frames(one_buy, tape), (0, 1, 10)),
            ("four fills, buys and sells", *_frames(mixed, tape), (0, 1, 5, 60)),
            ("60 fills on a random walk", *_frames(rand, walk), (0.5, 3, 30))]


def _mid_at(mids, t, forward=False):
    ts = mids["ts"].to_numpy()
    mid = mids["mid"].to_numpy()
    if forward:
        idx = np.clip(np.searchsorted(ts, t, side="left"), 0, len(ts) - 1)
    else:
        idx = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 1)
    return mid[idx]


def _signed(fills):
    return np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0) * fills["qty"].to_numpy()


def _markout_ref(fills, mids, horizon_s, forward=False, signed=True, horizon_ns=None):
    later = fills["ts"].to_numpy() + (int(round(horizon_s * _SECOND)) if horizon_ns is None
                                      else horizon_ns)
    q = _signed(fills) if signed else fills["qty"].to_numpy().astype(float)
    return float((q * (_mid_at(mids, later, forward) - fills["price"].to_numpy())).sum())


def _number(got):
    try:
        value = float(got)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


@exercise("06.2", hint="later = fills.ts + horizon_s * 1e9; mid(later) = the last mids row at or before it (polars join_asof, strategy='backward'); sum sign * qty * (mid(later) - price) with sign +1 for buys, -1 for sells")
def check_markout(markout) -> Verdict:
    """Exercise 06.2: ``markout(fills, mids, horizon_s)`` marks every fill to the mid
    ``horizon_s`` seconds after it and sums: ``sum(sign * qty * (mid(ts + h) - price))``,
    ``sign`` +1 for a buy and -1 for a sell, ``mid(t)`` the last row of ``mids`` (columns
    ``ts``, ``mid``) at or before ``t``. ``fills`` has the columns of
    ``BacktestResult.fills`` (``ts`` in ns, ``side`` "buy"/"sell", ``price``, ``qty``).
    Tried on a hand-made tape (one buy; buys and sells) and on 60 fills along a random
    walk, at horizons from 0 to 60 s."""
    for label, fills, mids, horizons in _markout_cases():
        for h in horizons:
            expected = _markout_ref(fills, mids, h)
            got, why = _attempt(markout, fills.clone(), mids.clone(), h)
            where = f"for {label} at horizon_s={h}"
            if why:
                return _verdict(False, f"{where}: {why}")
            value = _number(got)
            if value is None:
                return _verdict(False, f"{where}: return one number (the summed markout), "
                                       f"not {got!r}")
            if math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-6):
                continue
            if math.isclose(value, _markout_ref(fills, mids, h, signed=False), abs_tol=1e-6):
                why = ("a sell earns when the mid falls: multiply by -1 for sells "
                       "(sign * qty)")
            elif math.isclose(value, _markout_ref(fills, mids, h, forward=True), abs_tol=1e-6):
                why = ("you took the first mid at or after ts + h; the mid at a time is the "
                       "last one known then (at or before: join_asof strategy='backward')")
            elif h and math.isclose(value, _markout_ref(fills, mids, h, horizon_ns=int(h)),
                                    abs_tol=1e-6):
                why = "horizon_s is in seconds and ts in nanoseconds: add horizon_s * 1e9"
            elif math.isclose(value, -expected, abs_tol=1e-6):
                why = "the sign is flipped: mid(ts + h) - price, times +qty for buys"
            else:
                why = "sum sign * qty * (mid(ts + h) - price) over the fills"
            return _verdict(False, f"{where} you returned {value:,.4f}, the fills marked to "
                                   f"the mid {h} s later make {expected:,.4f}: {why}")
    return _verdict(True, "buys and sells marked to the mid known h seconds after each fill, "
                          "at every horizon")


def _break_even_ref(fills, mids, horizon_s, tick, forward=False):
    later = fills["ts"].to_numpy() + int(round(horizon_s * _SECOND))
    moved = _signed(fills) * (fills["mid"].to_numpy() - _mid_at(mids, later, forward))
    return float(moved.sum() / fills["qty"].sum() / tick)


@exercise("06.3", hint="per share: sum(sign * qty * (mid_at_fill - mid(ts + h))) / sum(qty), then / tick; mid_at_fill is the fills' own mid column, mid(ts + h) as in 06.2")
def check_break_even(break_even_ticks) -> Verdict:
    """Exercise 06.3: ``break_even_ticks(fills, mids, horizon_s, tick)`` returns how far
    the mid moves against a fill within ``horizon_s`` seconds, on average per share and in
    ticks: ``sum(sign * qty * (mid_at_fill - mid(ts + h))) / sum(qty) / tick``, with
    ``mid_at_fill`` the fills' ``mid`` column and ``mid(t)`` as in 06.2. A quote must sit
    at least that far from the mid to break even at that horizon: the smallest sensible
    ``half_spread_ticks``. Tried on the 06.2 tapes at three horizons and two tick sizes."""
    for label, fills, mids, horizons in _markout_cases():
        for h in horizons:
            for tick in (0.01, 0.005):
                expected = _break_even_ref(fills, mids, h, tick)
                got, why = _attempt(break_even_ticks, fills.clone(), mids.clone(), h, tick)
                where = f"for {label} at horizon_s={h}, tick={tick}"
                if why:
                    return _verdict(False, f"{where}: {why}")
                value = _number(got)
                if value is None:
                    return _verdict(False, f"{where}: return one number of ticks, not {got!r}")
                if math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9):
                    continue
                shares = float(fills["qty"].sum())
                if math.isclose(value, expected * tick, rel_tol=1e-6, abs_tol=1e-9):
                    why = "that is in currency: divide by tick to get ticks"
                elif math.isclose(value, expected * shares, rel_tol=1e-6, abs_tol=1e-9) or \
                        math.isclose(value, expected * shares * tick, rel_tol=1e-6, abs_tol=1e-9):
                    why = f"that is the total over all {shares:,.0f} shares: divide by sum(qty)"
                elif math.isclose(value, -expected, rel_tol=1e-6, abs_tol=1e-9):
                    why = ("the sign is flipped: count a move AGAINST the fill (the mid falling "
                           "after a buy) as positive")
                elif math.isclose(value, expected * shares / fills.height, rel_tol=1e-6,
                                  abs_tol=1e-9):
                    why = "average per share (divide by sum(qty)), not per fill"
                else:
                    why = ("sign * qty * (mid_at_fill - mid(ts + h)), summed, / sum(qty) / "
                           "tick, with mid_at_fill the fills' mid column")
                return _verdict(False, f"{where} you returned {value:,.4f} ticks, the adverse "
                                       f"move is {expected:,.4f} ticks per share: {why}")
    return _verdict(True, "the adverse move per share, in ticks: the least half spread that "
                          "pays for it")
