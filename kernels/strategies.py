"""Bundled backtest strategies and the helpers a strategy (bundled or user-written) uses.

Every strategy has the one signature the loop (``kernels.backtest.l3.run_l3``) calls::

    strategy(ctx, view, orders, params, actions) -> int   # actions written

* ``ctx``: a ``kernels.records.CTX`` record: ``ts`` (local ns), ``position``,
  ``cash``, ``equity`` as the strategy knows them, ``last_fill_*``, ``wake``
  (``W_MARKET``/``W_RESPONSE``, or ``W_TIMER`` when the backtest's timer is on), ``open_bid_qty``/``open_ask_qty``, ``tick``,
  ``price_scale``, ``killed`` and ``mem`` (16 floats of scratch that persist).
* ``view``: a ``VIEW`` record: ``bid``/``ask`` (price units, 0 = empty), sizes, ``mid``,
  last trade, and the own best bid/ask order with ``own_*_ahead`` = quantity ahead.
* ``orders``: ``LIVE`` array, the strategy's open orders as it knows them
  (``state`` != ``OS_FREE``).
* ``params``: float64 array (indices documented per strategy below).
* ``actions``: ``ACTION`` array; write with :func:`place`, :func:`cancel`,
  :func:`requote` and return how many were written.

A user strategy is any ``@numba.njit`` function with that signature (see notebook 06).
Bundled: :func:`mm_skew` (market making with inventory skew), :func:`avellaneda_stoikov`,
:func:`grid_mm`, :func:`momentum` (moving-average crossover or breakout),
:func:`follow_flow` (trades with the informed order flow: the one that makes money on the
embedded sample, see its docstring), and :func:`no_strategy` (never trades).
Backtest-only, not in the registry (the live pipeline has no timer and its engine refuses
post-only orders): :func:`post_only_quotes`, a timer-driven post-only (``GTX``) quoter, row
:data:`POST_ONLY_QUOTES` (``Backtest(...).strategy(POST_ONLY_QUOTES, qty=...)``).

The registry ``STRATEGIES`` (at the end) lists each one with its parameters (name, slot
in ``params``, default, range, unit); the backtester, the live pipeline, the widgets and
the CLI all read it. Adding a strategy is one function plus one row.
"""
from __future__ import annotations

import math

import numpy as np

from .jit import kernel
from .registry import Entry, Param, Registry
from .records import (A_CANCEL, A_NEW, BUY, GTC, GTX, IOC, OS_FREE, OS_PENDING_CANCEL, SELL,
                      W_MARKET, W_TIMER)


# ------------------------------------------------------------------------ helpers
@kernel(inline="always")
def place(actions, n, side, price, qty, tif):
    """Write a new limit order as action ``n``; returns the new count."""
    if n >= len(actions):
        return n
    a = actions[n]
    a.kind = A_NEW
    a.side = side
    a.price = price
    a.qty = qty
    a.tif = tif
    a.order_id = 0
    return n + 1


@kernel(inline="always")
def cancel(actions, n, order_id):
    """Write a cancel of ``order_id`` as action ``n``; returns the new count."""
    if n >= len(actions):
        return n
    a = actions[n]
    a.kind = A_CANCEL
    a.order_id = order_id
    a.side = 0
    a.price = 0
    a.qty = 0
    a.tif = GTC
    return n + 1


@kernel
def requote(orders, actions, n, side, price, qty):
    """Keep one resting order on ``side`` at ``price``: cancel the side's other orders and
    place ``qty`` if none is there yet. ``price <= 0`` cancels the whole side."""
    return requote_tif(orders, actions, n, side, price, qty, GTC)


@kernel
def requote_tif(orders, actions, n, side, price, qty, tif):
    """:func:`requote` placing its new order with time in force ``tif`` (``GTX``: post-only)."""
    have = False
    for k in range(len(orders)):
        o = orders[k]
        if o.state == OS_FREE or o.side != side or o.state == OS_PENDING_CANCEL:
            continue
        if price > 0 and o.price == price and not have:
            have = True
            continue
        n = cancel(actions, n, o.order_id)
    if not have and price > 0 and qty > 0:
        n = place(actions, n, side, price, qty, tif)
    return n


@kernel(inline="always")
def floor_tick(x, tick):
    return np.int64(math.floor(x / tick)) * tick


@kernel(inline="always")
def ceil_tick(x, tick):
    return np.int64(math.ceil(x / tick)) * tick


@kernel
def quote_pair(ctx, view, orders, actions, bid_f, ask_f, qty, max_position):
    """Requote both sides around float prices ``bid_f``/``ask_f`` (price units): rounded
    outward to the tick, kept passive (never crossing the delivered book), and a side
    pulled when the position is at ``max_position``."""
    tick = ctx.tick
    bid = floor_tick(bid_f, tick)
    ask = ceil_tick(ask_f, tick)
    if bid > view.ask - tick:
        bid = view.ask - tick
    if ask < view.bid + tick:
        ask = view.bid + tick
    if max_position > 0 and ctx.position >= max_position:
        bid = 0
    if max_position > 0 and ctx.position <= -max_position:
        ask = 0
    n = requote(orders, actions, 0, BUY, bid, qty)
    return requote(orders, actions, n, SELL, ask, qty)


# ---------------------------------------------------------------- market making
MM_HALF_SPREAD_TICKS = 0
MM_QTY = 1
MM_SKEW_TICKS = 2      # reservation price shift (ticks) at a full max_position
MM_MAX_POSITION = 3
MM_N_PARAMS = 4


@kernel
def mm_skew(ctx, view, orders, params, actions):
    """Quote ``half_spread`` ticks around a reservation price that leans against the
    inventory: ``mid - skew_ticks * position / max_position`` ticks."""
    if view.bid <= 0 or view.ask <= 0:
        return 0
    tick = ctx.tick
    maxp = params[MM_MAX_POSITION]
    lean = params[MM_SKEW_TICKS] * ctx.position / maxp if maxp > 0 else 0.0
    res = view.mid - lean * tick
    half = params[MM_HALF_SPREAD_TICKS] * tick
    return quote_pair(ctx, view, orders, actions, res - half, res + half,
                      np.int64(params[MM_QTY]), maxp)


AVS_GAMMA = 0           # risk aversion
AVS_SIGMA = 1           # mid volatility, ticks per sqrt(second)
AVS_K = 2               # order-arrival decay per tick of distance
AVS_HORIZON_S = 3       # rolling horizon T - t, seconds
AVS_QTY = 4
AVS_MAX_POSITION = 5
AVS_LOT = 6             # inventory unit q = position / lot
AVS_N_PARAMS = 7


@kernel
def avellaneda_stoikov(ctx, view, orders, params, actions):
    """Avellaneda & Stoikov (2008): reservation price ``r = s - q gamma sigma^2 (T-t)``
    and total spread ``gamma sigma^2 (T-t) + 2/gamma ln(1 + gamma/k)``, in ticks, on a
    rolling horizon."""
    if view.bid <= 0 or view.ask <= 0:
        return 0
    tick = ctx.tick
    gamma = params[AVS_GAMMA]
    var = params[AVS_SIGMA] ** 2 * params[AVS_HORIZON_S]
    lot = params[AVS_LOT] if params[AVS_LOT] > 0 else 1.0
    q = ctx.position / lot
    res = view.mid - q * gamma * var * tick
    spread = gamma * var + (2.0 / gamma) * math.log(1.0 + gamma / params[AVS_K])
    half = 0.5 * spread * tick
    return quote_pair(ctx, view, orders, actions, res - half, res + half,
                      np.int64(params[AVS_QTY]), params[AVS_MAX_POSITION])


GRID_LEVELS = 0
GRID_SPACING_TICKS = 1
GRID_QTY = 2
GRID_MAX_POSITION = 3
GRID_N_PARAMS = 4


@kernel
def grid_mm(ctx, view, orders, params, actions):
    """A ladder of ``levels`` bids below and asks above the mid on a fixed grid of
    ``spacing`` ticks; orders that fall off the grid window are cancelled."""
    if view.bid <= 0 or view.ask <= 0:
        return 0
    tick = ctx.tick
    step = np.int64(params[GRID_SPACING_TICKS]) * tick
    levels = np.int64(params[GRID_LEVELS])
    qty = np.int64(params[GRID_QTY])
    maxp = params[GRID_MAX_POSITION]
    anchor = np.int64(math.floor(view.mid / step)) * step
    lo_bid = anchor - (levels - 1) * step
    hi_ask = anchor + levels * step
    n = 0
    for k in range(len(orders)):
        o = orders[k]
        if o.state == OS_FREE or o.state == OS_PENDING_CANCEL:
            continue
        keep = (o.side == BUY and lo_bid <= o.price <= anchor and o.price < view.ask
                and not (maxp > 0 and ctx.position >= maxp)) or \
               (o.side == SELL and anchor + step <= o.price <= hi_ask and o.price > view.bid
                and not (maxp > 0 and ctx.position <= -maxp))
        if not keep or o.price % step != 0:
            n = cancel(actions, n, o.order_id)
    for j in range(levels):
        for side in range(2):
            price = anchor - j * step if side == BUY else anchor + (j + 1) * step
            if side == BUY and (price >= view.ask or (maxp > 0 and ctx.position >= maxp)):
                continue
            if side == SELL and (price <= view.bid or (maxp > 0 and ctx.position <= -maxp)):
                continue
            found = False
            for k in range(len(orders)):
                o = orders[k]
                if o.state != OS_FREE and o.state != OS_PENDING_CANCEL and o.side == side \
                        and o.price == price:
                    found = True
                    break
            if not found:
                n = place(actions, n, side, price, qty, GTC)
    return n


MOM_FAST_ALPHA = 0     # EMA weight per market wake of the fast average
MOM_SLOW_ALPHA = 1
MOM_THRESHOLD_BPS = 2  # signal threshold
MOM_QTY = 3            # per order
MOM_MAX_POSITION = 4   # target position when the signal is on
MOM_MODE = 5           # 0: fast/slow crossover; 1: breakout of mid vs the slow average
MOM_N_PARAMS = 6


@kernel
def momentum(ctx, view, orders, params, actions):
    """Trend following with marketable IOC orders: go long ``max_position`` when the
    fast EMA of the mid is ``threshold`` bps above the slow one (mode 0) or the mid
    breaks out above the slow EMA (mode 1); short symmetrically; flat in between keeps
    the position. State lives in ``ctx.mem`` (0: fast, 1: slow, 2: initialised)."""
    if view.bid <= 0 or view.ask <= 0:
        return 0
    mid = view.mid
    if ctx.wake == 1:
        if ctx.mem[2] == 0.0:
            ctx.mem[0] = mid
            ctx.mem[1] = mid
            ctx.mem[2] = 1.0
        ctx.mem[0] += params[MOM_FAST_ALPHA] * (mid - ctx.mem[0])
        ctx.mem[1] += params[MOM_SLOW_ALPHA] * (mid - ctx.mem[1])
    signal_px = ctx.mem[0] if params[MOM_MODE] == 0 else mid
    gap_bps = (signal_px - ctx.mem[1]) / ctx.mem[1] * 1e4
    maxp = np.int64(params[MOM_MAX_POSITION])
    target = ctx.position
    if gap_bps > params[MOM_THRESHOLD_BPS]:
        target = maxp
    elif gap_bps < -params[MOM_THRESHOLD_BPS]:
        target = -maxp
    pending = ctx.open_bid_qty - ctx.open_ask_qty
    need = target - ctx.position - pending
    qty = np.int64(params[MOM_QTY])
    if need > 0:
        return place(actions, 0, BUY, view.ask, min(need, qty), IOC)
    if need < 0:
        return place(actions, 0, SELL, view.bid, min(-need, qty), IOC)
    return 0


FF_QTY = 0             # per order
FF_MAX_POSITION = 1    # |position| it never exceeds (in-flight orders included)
FF_FLOW_TAU_S = 2      # decay time of the flow signal, seconds
FF_QUOTE_FLOW = 3      # |flow| from which it rests a quote on the flow's side
FF_TAKE_FLOW = 4       # |flow| from which it also takes at the touch (0: never takes)
FF_N_PARAMS = 5


@kernel
def _rest_at(orders, actions, n, side, price, qty):
    """:func:`requote` for resting orders only: keep one ``GTC`` order on ``side`` at
    ``price`` (``price <= 0``: none), leaving in-flight ``IOC`` orders alone."""
    have = False
    for k in range(len(orders)):
        o = orders[k]
        if o.state == OS_FREE or o.side != side or o.state == OS_PENDING_CANCEL or o.tif == IOC:
            continue
        if price > 0 and o.price == price and not have:
            have = True
            continue
        n = cancel(actions, n, o.order_id)
    if not have and price > 0 and qty > 0:
        n = place(actions, n, side, price, qty, GTC)
    return n


@kernel
def _in_flight_ioc(orders, side):
    """Quantity of own ``IOC`` orders on ``side`` not answered yet."""
    q = np.int64(0)
    for k in range(len(orders)):
        o = orders[k]
        if o.state != OS_FREE and o.side == side and o.tif == IOC:
            q += o.leaves
    return q


@kernel
def follow_flow(ctx, view, orders, params, actions):
    """Trade with the informed order flow, never against it.

    The signal, ``flow``: the net count of marketable executions the strategy has seen
    (an execution whose aggressor bought +1, sold -1; read from the view's last trade,
    so a repeat of the very same price, quantity and side is not counted), decaying
    with time constant ``flow_tau_s``. Then:

    * ``flow >= quote_flow``: rest one bid of ``qty`` at the best bid (kept in its queue
      while the flow stays); ``flow <= -quote_flow``: one ask at the best ask. No quote
      on the other side, and none at all while the flow is balanced.
    * ``flow >= take_flow`` (``take_flow > 0``): also buy ``qty`` at the best ask with an
      ``IOC`` order on each market update; ``flow <= -take_flow``: sell at the best bid.
    * ``|position|`` never exceeds ``max_position`` (resting and in-flight orders
      included); the position is carried until the flow turns the other way.

    Why it makes money where a naive market maker loses (notebook 06, the README): in the
    simulated market a marketable order buys with a probability that grows with the gap
    between the latent fundamental and the book's mid, and the book catches up with the
    fundamental only slowly. A run of marketable buys therefore announces a mid that
    keeps rising for tens of seconds. A quote on the side being hit is filled by exactly
    that flow (adverse selection: its markouts fall with the horizon); this strategy's
    fills are on the other side of it: its resting bid is filled by the sellers trading
    *against* the information, and its taker orders join the information. Measured
    (``workbench.backtest.markout``): its markouts rise with the horizon, while a
    market maker quoting both sides sees them fall. State in ``ctx.mem``: 0 the flow,
    1 the local time it was last decayed to, 2 initialised, 3-5 the last trade seen."""
    if view.bid <= 0 or view.ask <= 0:
        return 0
    m = ctx.mem
    if m[2] == 0.0:            # the trade printed before the first wake is not counted
        m[1] = ctx.ts
        m[2] = 1.0
        m[3] = view.last_price
        m[4] = view.last_qty
        m[5] = view.last_side
    dt = (ctx.ts - m[1]) * 1e-9
    if dt > 0.0:
        m[0] *= math.exp(-dt / params[FF_FLOW_TAU_S])
        m[1] = ctx.ts
    if view.last_qty > 0 and (view.last_price != m[3] or view.last_qty != m[4]
                              or view.last_side != m[5]):
        m[0] += 1.0 if view.last_side == BUY else -1.0
        m[3] = view.last_price
        m[4] = view.last_qty
        m[5] = view.last_side
    flow = m[0]
    qty = np.int64(params[FF_QTY])
    maxp = np.int64(params[FF_MAX_POSITION])
    quote = params[FF_QUOTE_FLOW]
    take = params[FF_TAKE_FLOW]
    pos = ctx.position
    n = 0
    # taking first: its room counts everything already open on that side
    took = -1
    if take > 0 and ctx.wake == W_MARKET:
        if flow >= take and maxp - pos - ctx.open_bid_qty > 0:
            n = place(actions, n, BUY, view.ask, min(qty, maxp - pos - ctx.open_bid_qty), IOC)
            took = BUY
        elif flow <= -take and maxp + pos - ctx.open_ask_qty > 0:
            n = place(actions, n, SELL, view.bid, min(qty, maxp + pos - ctx.open_ask_qty), IOC)
            took = SELL
    # the resting quote on the flow's side (kept in its queue; none new beside a take)
    room_buy = maxp - pos - _in_flight_ioc(orders, BUY)
    room_sell = maxp + pos - _in_flight_ioc(orders, SELL)
    bid = view.bid if flow >= quote and room_buy > 0 else 0
    ask = view.ask if flow <= -quote and room_sell > 0 else 0
    n = _rest_at(orders, actions, n, BUY, bid, 0 if took == BUY else min(qty, room_buy))
    return _rest_at(orders, actions, n, SELL, ask, 0 if took == SELL else min(qty, room_sell))


PQ_OFFSET_TICKS = 0    # bid at best bid - offset, ask at best ask + offset (negative: inside)
PQ_QTY = 1
PQ_MAX_POSITION = 2    # a side is pulled once |position| reaches it (0: no limit)
PQ_N_PARAMS = 3


@kernel
def post_only_quotes(ctx, view, orders, params, actions):
    """On each timer wake only (``ctx.wake == W_TIMER``; market and response wakes do
    nothing): keep one post-only (``GTX``) bid at ``best bid - offset_ticks`` and one ask
    at ``best ask + offset_ticks`` of ``qty``, cancelling and replacing an order whose
    price moved (:func:`requote_tif`); a side is pulled at ``max_position``. A quote that
    crosses by the time it arrives is rejected, never filled as a taker. The strategy
    of the hftbacktest parity check (``workbench.backtest.parity``)."""
    if ctx.wake != W_TIMER or view.bid <= 0 or view.ask <= 0:
        return 0
    off = np.int64(params[PQ_OFFSET_TICKS]) * ctx.tick
    qty = np.int64(params[PQ_QTY])
    maxp = params[PQ_MAX_POSITION]
    bid = view.bid - off
    ask = view.ask + off
    if maxp > 0 and ctx.position >= maxp:
        bid = 0
    if maxp > 0 and ctx.position <= -maxp:
        ask = 0
    n = requote_tif(orders, actions, 0, BUY, bid, qty, GTX)
    return requote_tif(orders, actions, n, SELL, ask, qty, GTX)


@kernel
def no_strategy(ctx, view, orders, params, actions):
    """Never trades: the baseline (the pipeline without a strategy, a backtest's market alone)."""
    return 0


# ------------------------------------------------------------------------ the registry
# One row per strategy: its kernel and its parameters in ``params`` array order. A new
# strategy is one ``@njit`` function with the signature above plus one row here (or a
# ``STRATEGIES.add(Entry(...))`` from user code): the backtester, the live pipeline, the
# widgets and the CLI all read this table.
_POSITION = Param("max_position", 0, 500.0, 0.0, 1e12, True, doc="position limit the quotes respect")
STRATEGIES = Registry("strategy", (
    Entry("none", no_strategy, (), "no orders: the market alone"),
    Entry("mm_skew", mm_skew, (
        Param("half_spread_ticks", MM_HALF_SPREAD_TICKS, 1.0, 0.0, 1000.0, unit="ticks"),
        Param("qty", MM_QTY, 100.0, 1.0, 1e12, True),
        Param("skew_ticks", MM_SKEW_TICKS, 2.0, 0.0, 1000.0, unit="ticks",
              doc="reservation price shift at a full max_position"),
        _POSITION._replace(index=MM_MAX_POSITION),
    ), "market making around a reservation price skewed against inventory"),
    Entry("avellaneda_stoikov", avellaneda_stoikov, (
        Param("gamma", AVS_GAMMA, 0.1, 1e-6, 100.0, doc="risk aversion"),
        Param("sigma", AVS_SIGMA, 0.5, 0.0, 1e6, unit="ticks/sqrt(s)"),
        Param("k", AVS_K, 1.5, 1e-6, 1e6, doc="order-arrival decay per tick"),
        Param("horizon_s", AVS_HORIZON_S, 10.0, 0.0, 1e7, unit="s"),
        Param("qty", AVS_QTY, 100.0, 1.0, 1e12, True),
        _POSITION._replace(index=AVS_MAX_POSITION),
        Param("lot", AVS_LOT, 100.0, 0.0, 1e12, doc="inventory unit q = position / lot"),
    ), "Avellaneda-Stoikov optimal quotes on a rolling horizon"),
    Entry("grid_mm", grid_mm, (
        Param("levels", GRID_LEVELS, 3.0, 1.0, 64.0, True),
        Param("spacing_ticks", GRID_SPACING_TICKS, 2.0, 1.0, 1e6, True, unit="ticks"),
        Param("qty", GRID_QTY, 100.0, 1.0, 1e12, True),
        _POSITION._replace(index=GRID_MAX_POSITION, default=600.0),
    ), "a fixed price grid of resting bids and asks"),
    Entry("momentum", momentum, (
        Param("fast_alpha", MOM_FAST_ALPHA, 0.2, 0.0, 1.0),
        Param("slow_alpha", MOM_SLOW_ALPHA, 0.02, 0.0, 1.0),
        Param("threshold_bps", MOM_THRESHOLD_BPS, 2.0, 0.0, 1e4, unit="bps"),
        Param("qty", MOM_QTY, 100.0, 1.0, 1e12, True),
        _POSITION._replace(index=MOM_MAX_POSITION, default=300.0),
        Param("mode", MOM_MODE, 0.0, 0.0, 1.0, True, doc="0: EMA crossover, 1: breakout"),
    ), "EMA crossover (mode 0) or breakout (mode 1) with marketable IOC orders"),
    Entry("follow_flow", follow_flow, (
        Param("qty", FF_QTY, 100.0, 1.0, 1e12, True),
        Param("max_position", FF_MAX_POSITION, 300.0, 1.0, 1e12, True,
              doc="|position| it never exceeds, open orders included (it carries positions)"),
        Param("flow_tau_s", FF_FLOW_TAU_S, 15.0, 1e-3, 1e6, unit="s",
              doc="decay time of the flow signal (net marketable executions)"),
        Param("quote_flow", FF_QUOTE_FLOW, 3.0, 0.0, 1e6,
              doc="|flow| from which a quote rests on the flow's side"),
        Param("take_flow", FF_TAKE_FLOW, 5.0, 0.0, 1e6,
              doc="|flow| from which it also takes at the touch (0: never)"),
    ), "trades with the informed order flow: quotes only on its side, takes when it is strong"),
))
MAX_STRATEGY_PARAMS = 16   # the live pipeline's control array reserves this many slots

# backtest-only (timer wakes, post-only orders): a row outside the registry
POST_ONLY_QUOTES = Entry("post_only_quotes", post_only_quotes, (
    Param("offset_ticks", PQ_OFFSET_TICKS, 0.0, -1000.0, 1000.0, True, unit="ticks",
          doc="distance behind the best (negative: inside the spread)"),
    Param("qty", PQ_QTY, 100.0, 1.0, 1e12, True),
    _POSITION._replace(index=PQ_MAX_POSITION, default=0.0),
), "post-only quotes at the touch, requoted on each timer wake (backtest only)")
