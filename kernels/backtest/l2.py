"""The L2 backtest loop (price-level data such as Binance depth): queue position by a
pluggable probabilistic model (``kernels.backtest.queue_models``), everything else shared
with the L3 loop (``kernels.backtest.l3``: latency rings, strategy signature, risk,
accounting).

Owns the kernels of the L2 loop (:func:`run_l2`). Its own state is ``L2State``
(``kernels.backtest.state``: price ladders, per-order queue estimates), passed next to
the ``BacktestState`` as a second context (``kernels.state_views.l2_context``).

Input rows are ``kernels.records.L2_UPDATE``: depth rows (a level's new absolute size,
``L2F_*`` flags) and trade rows flagged ``L2F_TRADE`` (``price``, ``qty``, ``side`` = the
aggressor's side). Exchange time is the row's ``ts`` (the capture's receive time).

Rules (after hftbacktest's exchange model; our orders never change the market's depth):

* a new own order that crosses the opposite best takes the displayed levels up to its
  limit (taker fills at each level's price); the rest rests (GTC) with ``front`` = the
  level size on its side at its price;
* a trade at an own order's price advances it (``front -= qty``) and fills it once
  ``front < 0``; a trade strictly through its price fills it in full;
* a depth row at an own order's price moves ``front`` by the queue model;
* when the opposite best moves to or through an own order's price (the market crossed
  it), the order fills in full at its price;
* a post-only order (``GTX``) that would cross the opposite best on arrival is rejected
  (``R_POST_ONLY_WOULD_TAKE``), otherwise it rests like a GTC order.

Fill rules (``cfg[G_FILL_MODE]``, ``FM_*`` in ``kernels.backtest.state``); crossings and
trades through the price fill in full under all three:

* ``FM_PARTIAL`` (default): the rules above; a queue fill takes ``min(leaves,
  floor(-front))`` and leaves ``front`` at what the trade did not consume;
* ``FM_NO_PARTIAL`` (hftbacktest's ``NoPartialFillExchange``): once ``floor(-front) >= 1``
  after a trade at its price, the whole order fills; a crossing new order takes its whole
  quantity at the best opposite price, whatever the size displayed there;
* ``FM_ALL_OR_NONE``: a queue fill happens only when ``floor(-front) >= leaves`` (else no
  fill on that trade; ``front`` keeps counting down); a crossing new order fills only when
  the displayed levels up to its limit hold all of it, else it is cancelled (any TIF: it
  never rests crossed).

Timer wakes, ordering at equal times and the strategy interface: ``kernels.backtest.l3``.
"""
from __future__ import annotations

import numpy as np

from .. import histogram
from .. import risk as krisk
from ..clock import now_ns
from ..jit import kernel
from ..l2book import apply_depth
from ..pointers import borrow_context
from ..records import (
    A_NEW, BUY, GTC, GTX, L2F_END_OF_MESSAGE, L2F_SNAPSHOT_START, L2F_TRADE, LIQ_MAKER, LIQ_TAKER,
    LS_CANCELLED, LS_OPEN, R_POST_ONLY_WOULD_TAKE, R_PRICE_OFF_TICK, R_PRICE_OUT_OF_BAND,
    R_UNKNOWN_ORDER, RSP_ACK, RSP_CANCEL_REJECTED, RSP_CANCELLED, SELL,
    STRATEGY_ID_BASE,
)
from ..state_views import (
    backtest_acc, backtest_actions, backtest_cfg, backtest_cnt, backtest_ctx, backtest_entry,
    backtest_feed, backtest_hist, backtest_lat_params, backtest_lat_table, backtest_log,
    backtest_mview, backtest_orders, backtest_params, backtest_resting, backtest_risk_params,
    backtest_rng, l2_views,
)
from . import l3
from .latency_models import LAT_ENTRY, LAT_FEED, LAT_RESPONSE
from .queue_models import depth_update
from .state import (
    ACC_MID, BC_ASK, BC_ASK_QTY, BC_BID, BC_BID_QTY, BC_CANCELS, BC_ENTRY_HEAD, BC_EVENTS,
    BC_EXCH_REJECTS, BC_LAST_PRICE, BC_LAST_QTY, BC_LAST_SIDE, BC_NEXT_STEP_TS, BC_RESTING,
    BC_STATUS,
    BC_NEXT_TIMER, BC_TRADE_THROUGH, BC_WAKES, BT_OK, FM_ALL_OR_NONE, FM_NO_PARTIAL,
    G_FILL_MODE, G_RECORD_EVERY_NS, G_TIMER_NS, M_LEVELS, M_LOW, M_OUT_OF_WINDOW, M_TICK,
)


@kernel
def _index(l2, price):
    m = l2.meta
    off = price - m[M_LOW]
    if off < 0 or off % m[M_TICK] != 0 or off // m[M_TICK] >= m[M_LEVELS]:
        return -1
    return off // m[M_TICK]


@kernel
def _level_qty(l2, side, price):
    idx = _index(l2, price)
    if idx < 0:
        return np.int64(0)
    return l2.bids[idx] if side == BUY else l2.asks[idx]


@kernel
def _depth_within(l2, side, limit, need):
    """Displayed quantity on ``side`` from its best up to ``limit`` (stops once ``need``
    is reached)."""
    m = l2.meta
    total = np.int64(0)
    idx = l2.best[side]
    step = 1 if side == SELL else -1
    while 0 <= idx < m[M_LEVELS] and total < need:
        price = m[M_LOW] + idx * m[M_TICK]
        if (side == SELL and price > limit) or (side == BUY and price < limit):
            break
        total += l2.asks[idx] if side == SELL else l2.bids[idx]
        idx += step
    return total


@kernel
def l2_refresh_top(c, c2):
    """Market top into the counters; True when it changed."""
    cn = backtest_cnt(c)
    acc = backtest_acc(c)
    l2 = l2_views(c2)
    m = l2.meta
    bid = np.int64(0)
    bid_qty = np.int64(0)
    ask = np.int64(0)
    ask_qty = np.int64(0)
    if l2.best[0] >= 0:
        bid = m[M_LOW] + l2.best[0] * m[M_TICK]
        bid_qty = l2.bids[l2.best[0]]
    if l2.best[1] >= 0:
        ask = m[M_LOW] + l2.best[1] * m[M_TICK]
        ask_qty = l2.asks[l2.best[1]]
    changed = (bid != cn[BC_BID] or ask != cn[BC_ASK] or bid_qty != cn[BC_BID_QTY]
               or ask_qty != cn[BC_ASK_QTY])
    cn[BC_BID] = bid
    cn[BC_BID_QTY] = bid_qty
    cn[BC_ASK] = ask
    cn[BC_ASK_QTY] = ask_qty
    if bid > 0 and ask > 0 and ask > bid:
        acc[ACC_MID] = 0.5 * (bid + ask)
    return changed


@kernel
def _fill_own(c, row, ts, qty, liquidity, price, resp_lat):
    log = backtest_log(c)
    o = log[row]
    leaves = o.qty - o.filled - qty
    l3._book_fill(c, ts, o.order_id, o.side, price, qty, leaves, liquidity, o.arrival_ts, resp_lat)


@kernel
def l2_apply_depth(c, c2, u):
    """Set one level through the replay check's own rule (``kernels.l2book.apply_depth``);
    returns its previous size (-1 for an empty message's marker or a level off the ladder)."""
    l2 = l2_views(c2)
    m = l2.meta
    prev = apply_depth(l2.bids, l2.asks, l2.best, m[M_LOW], m[M_TICK], u)
    if prev == -2:
        m[M_OUT_OF_WINDOW] += 1
        return np.int64(-1)
    return prev


@kernel
def l2_cross_fills(c, c2, ts, resp_lat):
    """Own orders the opposite best reached or crossed fill in full at their price."""
    log = backtest_log(c)
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    l2 = l2_views(c2)
    m = l2.meta
    k = 0
    while k < cnt[BC_RESTING]:
        row = resting[k]
        o = log[row]
        hit = False
        if o.side == BUY and l2.best[1] >= 0:
            hit = m[M_LOW] + l2.best[1] * m[M_TICK] <= o.price
        elif o.side == SELL and l2.best[0] >= 0:
            hit = m[M_LOW] + l2.best[0] * m[M_TICK] >= o.price
        if hit:
            cnt[BC_TRADE_THROUGH] += 1
            _fill_own(c, row, ts, o.qty - o.filled, LIQ_MAKER, o.price, resp_lat)
        else:
            k += 1


@kernel
def l2_trade(c, c2, u, resp_lat):
    """A market trade: advance or fill own orders on the maker side."""
    log = backtest_log(c)
    resting = backtest_resting(c)
    cn = backtest_cnt(c)
    cfg = backtest_cfg(c)
    l2 = l2_views(c2)
    cn[BC_LAST_PRICE] = u.price
    cn[BC_LAST_QTY] = u.qty
    cn[BC_LAST_SIDE] = u.side
    maker = 1 - u.side
    mode = cfg[G_FILL_MODE]
    k = 0
    while k < cn[BC_RESTING]:
        row = resting[k]
        o = log[row]
        leaves = o.qty - o.filled
        if o.side != maker:
            k += 1
            continue
        through = (maker == BUY and u.price < o.price) or (maker == SELL and u.price > o.price)
        if through:
            cn[BC_TRADE_THROUGH] += 1
            _fill_own(c, row, u.ts, leaves, LIQ_MAKER, o.price, resp_lat)
            continue
        if u.price == o.price:
            l2.front[row] -= u.qty
            l2.traded[row] += u.qty
            if l2.front[row] < 0:
                take = min(leaves, np.int64(-l2.front[row]))
                if mode == FM_NO_PARTIAL and take > 0:
                    take = leaves
                elif mode == FM_ALL_OR_NONE and take < leaves:
                    take = 0
                if take > 0:
                    l2.front[row] += take
                    _fill_own(c, row, u.ts, take, LIQ_MAKER, o.price, resp_lat)
                    if take == leaves:
                        continue
        k += 1


@kernel
def l2_entry(c, c2, resp_lat):
    """The order at the head of the entry ring reaches the exchange (L2 rules)."""
    log = backtest_log(c)
    entry = backtest_entry(c)
    restings = backtest_resting(c)
    cn = backtest_cnt(c)
    acc = backtest_acc(c)
    cfg = backtest_cfg(c)
    l2 = l2_views(c2)
    m = l2.meta
    p = entry[cn[BC_ENTRY_HEAD] & (len(entry) - 1)]
    cn[BC_ENTRY_HEAD] += 1
    ts = p.ts
    row = p.order_id - STRATEGY_ID_BASE
    o = log[row]
    if p.kind == A_NEW:
        o.arrival_ts = ts
        o.arrival_mid = acc[ACC_MID]
        reason = 0
        opp = 1 - p.side
        idx = l2.best[opp]
        best = m[M_LOW] + idx * m[M_TICK] if idx >= 0 else np.int64(0)
        crosses = idx >= 0 and ((p.side == BUY and p.price >= best)
                                or (p.side == SELL and p.price <= best))
        if (p.price - m[M_LOW]) % m[M_TICK] != 0:
            reason = R_PRICE_OFF_TICK
        elif _index(l2, p.price) < 0:
            reason = R_PRICE_OUT_OF_BAND
        elif p.tif == GTX and crosses:
            reason = R_POST_ONLY_WOULD_TAKE
        if reason != 0:
            l3.reject_new(c, row, ts, p, reason, resp_lat)
            return
        left = p.qty
        mode = cfg[G_FILL_MODE]
        if crosses and mode == FM_NO_PARTIAL:
            # hftbacktest's NoPartialFillExchange: all of it at the best, whatever its size
            _fill_own(c, row, ts, left, LIQ_TAKER, best, resp_lat)
            left = 0
        elif crosses and mode == FM_ALL_OR_NONE and _depth_within(l2, opp, p.price, left) < left:
            idx = -1  # not all of it: nothing trades, the order is cancelled below
        while left > 0 and idx >= 0:
            price = m[M_LOW] + idx * m[M_TICK]
            if (p.side == BUY and price > p.price) or (p.side == SELL and price < p.price):
                break
            size = l2.asks[idx] if opp == SELL else l2.bids[idx]
            take = min(left, size)
            if take > 0:
                left -= take
                _fill_own(c, row, ts, take, LIQ_TAKER, price, resp_lat)
            # next level outward
            idx += 1 if opp == SELL else -1
            while 0 <= idx < m[M_LEVELS]:
                if (l2.asks[idx] if opp == SELL else l2.bids[idx]) > 0:
                    break
                idx += 1 if opp == SELL else -1
            if idx < 0 or idx >= m[M_LEVELS]:
                idx = -1
        rests = (p.tif == GTC or p.tif == GTX) and not (crosses and mode == FM_ALL_OR_NONE)
        if left > 0 and rests:
            o.status = LS_OPEN
            n = cn[BC_RESTING]
            restings[n] = row
            cn[BC_RESTING] = n + 1
            l2.front[row] = float(_level_qty(l2, p.side, p.price))
            l2.traded[row] = 0.0
            o.queue_ahead = np.int64(l2.front[row])
            l3._push_response(c, ts + resp_lat, RSP_ACK, p.order_id, p.side, p.price, p.qty,
                              left, 0.0, 0)
        elif left > 0:
            o.status = LS_CANCELLED
            o.done_ts = ts
            l3._push_response(c, ts + resp_lat, RSP_CANCELLED, p.order_id, p.side, p.price,
                              p.qty, 0, 0.0, 0)
    else:
        resting = False
        for k in range(cn[BC_RESTING]):
            if restings[k] == row:
                resting = True
        if resting:
            l3._remove_resting_row(c, row)
            o.status = LS_CANCELLED
            o.done_ts = ts
            cn[BC_CANCELS] += 1
            l3._push_response(c, ts + resp_lat, RSP_CANCELLED, p.order_id, p.side, o.price,
                              o.qty, 0, 0.0, 0)
        else:
            cn[BC_EXCH_REJECTS + R_UNKNOWN_ORDER] += 1
            l3._push_response(c, ts + resp_lat, RSP_CANCEL_REJECTED, p.order_id, p.side,
                              o.price, o.qty, 0, 0.0, R_UNKNOWN_ORDER)


@kernel
def l2_push_feed(c, c2, exch_ts, deliver_ts):
    """Like ``kernels.backtest.l3.push_feed``, with the queue model's estimate as ``ahead``."""
    slot = l3.new_view(c, exch_ts, deliver_ts)
    if slot < 0:
        return
    log = backtest_log(c)
    l2 = l2_views(c2)
    v = backtest_feed(c)[slot]
    for side in range(2):
        row = l3._own_best(c, side)
        oid = np.int64(0)
        price = np.int64(0)
        leaves = np.int64(0)
        ahead = np.int64(-1)
        if row >= 0:
            o = log[row]
            oid = o.order_id
            price = o.price
            leaves = o.qty - o.filled
            ahead = np.int64(max(l2.front[row], 0.0))
        l3.set_own_quote(v, side, oid, price, leaves, ahead)


@kernel
def l2_step(c, ts):
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    if ts >= cnt[BC_NEXT_STEP_TS]:
        l3.write_step(c, ts)
        step = cfg[G_RECORD_EVERY_NS]
        cnt[BC_NEXT_STEP_TS] = (ts // step + 1) * step


@kernel(cache=False)
def _queue_depth(prob, c, c2, side, price, prev, new):
    """Move the ``front`` estimate of own orders at (side, price) after a depth row."""
    log = backtest_log(c)
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    l2 = l2_views(c2)
    for k in range(cnt[BC_RESTING]):
        row = resting[k]
        o = log[row]
        if o.side == side and o.price == price:
            front = l2.front[row]
            p = prob(front, prev - front, l2.qparams)
            l2.front[row] = depth_update(front, l2.traded[row], float(prev), float(new), p)
            l2.traded[row] = 0.0


@kernel(cache=False)
def run_l2(strategy, latency, queue_prob, context, context2, events, start, stop):
    """The L2 loop; same contract as ``kernels.backtest.l3.run_l3`` plus the queue model."""
    c = borrow_context(context)
    c2 = borrow_context(context2)
    ctxs = backtest_ctx(c)
    mview = backtest_mview(c)
    orders = backtest_orders(c)
    actions = backtest_actions(c)
    params = backtest_params(c)
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    risk_params = backtest_risk_params(c)
    lat_params = backtest_lat_params(c)
    lat_table = backtest_lat_table(c)
    rng = backtest_rng(c)
    hist = backtest_hist(c)
    n_events = len(events)
    limit_ts = events[stop].ts if stop < n_events else l3.INF_TS
    last_ts = events[n_events - 1].ts if n_events > 0 else l3.INF_TS
    if n_events > 0:
        l3.timer_start(c, events[0].ts)
    timer_on = cfg[G_TIMER_NS] > 0 and n_events > 0
    lp = lat_params
    lt = lat_table
    ctx = ctxs[0]
    kill_watch = risk_params[krisk.RP_MAX_LOSS] > 0 or risk_params[krisk.RP_KILL] != 0
    i = start
    dirty = False
    while cnt[BC_STATUS] == BT_OK:
        tr, tf, te = l3.next_times(c)
        t = min(tr, min(tf, te))
        # the next timer wake (none after the last market event)
        tt = cnt[BC_NEXT_TIMER] if timer_on else l3.INF_TS
        if tt >= last_ts:
            tt = l3.INF_TS
        tx = events[i].ts if i < stop else l3.INF_TS
        if i >= stop and (t == l3.INF_TS or t > limit_ts) and tt >= limit_ts:
            break
        if tt < tx and tt < t:
            # the timer: after everything stamped at or before it
            l3.timer_fire(c, tt)
            t0 = now_ns()
            n = strategy(ctx, mview[0], orders, params, actions)
            n = min(n, len(actions))
            if n > 0 or kill_watch:
                l3.submit_actions(c, n, tt, latency(LAT_ENTRY, tt, lp, lt, rng))
            if n > 0:
                histogram.record(hist, now_ns() - t0)
        elif t <= tx:
            if tr == t or tf == t:
                wake = True
                if tr == t:
                    wake = l3.deliver_response(c)
                else:
                    l3.deliver_feed(c)
                if wake and i < n_events:
                    ctx.n_wakes += 1
                    cnt[BC_WAKES] += 1
                    t0 = now_ns()
                    n = strategy(ctx, mview[0], orders, params, actions)
                    n = min(n, len(actions))
                    if n > 0 or kill_watch:
                        l3.submit_actions(c, n, t, latency(LAT_ENTRY, t, lp, lt, rng))
                    if n > 0:
                        histogram.record(hist, now_ns() - t0)
            else:
                l2_entry(c, c2, latency(LAT_RESPONSE, t, lp, lt, rng))
                l2_refresh_top(c, c2)
                l2_push_feed(c, c2, t, t + latency(LAT_FEED, t, lp, lt, rng))
        else:
            u = events[i]
            i += 1
            cnt[BC_EVENTS] += 1
            resp = latency(LAT_RESPONSE, u.ts, lp, lt, rng)
            if u.flags & L2F_TRADE:
                l2_trade(c, c2, u, resp)
                dirty = True
            else:
                prev = l2_apply_depth(c, c2, u)
                if prev >= 0 and cnt[BC_RESTING] > 0:
                    _queue_depth(queue_prob, c, c2, u.side, u.price, prev, u.qty)
                if u.flags & L2F_END_OF_MESSAGE:
                    if cnt[BC_RESTING] > 0:
                        l2_cross_fills(c, c2, u.ts, resp)
                    if l2_refresh_top(c, c2):
                        dirty = True
            if dirty and (u.flags & (L2F_END_OF_MESSAGE | L2F_TRADE)):
                dirty = False
                l2_push_feed(c, c2, u.ts, u.ts + latency(LAT_FEED, u.ts, lp, lt, rng))
            l2_step(c, u.ts)
    return i, cnt[BC_STATUS]
