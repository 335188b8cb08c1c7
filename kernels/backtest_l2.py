"""The L2 backtest loop (price-level data such as Binance depth): queue position by a
pluggable probabilistic model (``kernels.queue_models``), everything else shared with
the L3 loop (``kernels.backtest``: latency rings, strategy signature, risk, accounting).

Input rows are ``kernels.l2book.L2_UPDATE``: depth rows (a level's new absolute size,
flags as in ``l2book``) and trade rows flagged ``L2_TRADE`` (``price``, ``qty``, ``side`` =
the aggressor's side). Exchange time is the row's ``ts`` (the capture's receive time).

Rules (after hftbacktest's exchange model; our orders never change the market's depth):

* a new own order that crosses the opposite best takes the displayed levels up to its
  limit (taker fills at each level's price); the rest rests (GTC) with ``front`` = the
  level size on its side at its price;
* a trade at an own order's price advances it (``front -= qty``) and fills it once
  ``front < 0``; a trade strictly through its price fills it in full;
* a depth row at an own order's price moves ``front`` by the queue model;
* when the opposite best moves to or through an own order's price (the market crossed
  it), the order fills in full at its price.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import carray

from . import backtest as B
from .book import address_as_pointer
from .jit import kernel
from .l2book import F_END_OF_MESSAGE, _set_level
from .latency_models import LAT_ENTRY, LAT_FEED, LAT_RESPONSE
from .queue_models import depth_update
from .records import BUY, GTC, R_PRICE_OFF_TICK, R_PRICE_OUT_OF_BAND, R_UNKNOWN_ORDER, SELL

L2_TRADE = 64  # L2_UPDATE.flags bit: the row is a trade

M_LOW = 0          # ladder origin (price units)
M_TICK = 1
M_LEVELS = 2
M_OUT_OF_WINDOW = 3
N_META = 4


class L2Book(NamedTuple):
    bids: np.ndarray      # int64[levels] market size per tick
    asks: np.ndarray
    best: np.ndarray      # int64[2] ladder index of best bid / ask (-1 empty)
    meta: np.ndarray      # int64[N_META]
    front: np.ndarray     # float64[max_orders]: estimated quantity ahead, per order log row
    traded: np.ndarray    # float64[max_orders]: traded at its level since the last depth row
    qparams: np.ndarray   # float64: queue model parameters


def l2_context(l2: L2Book) -> np.ndarray:
    out = np.zeros(2 * len(l2) + 1, dtype=np.int64)
    for i, a in enumerate(l2):
        assert a.flags.c_contiguous
        out[2 * i] = a.ctypes.data
        out[2 * i + 1] = a.shape[0]
    out[-1] = out.ctypes.data
    return out


@kernel(inline="always")
def l2_from_context(c2):
    return L2Book(
        carray(address_as_pointer(c2[0]), c2[1], np.int64),
        carray(address_as_pointer(c2[2]), c2[3], np.int64),
        carray(address_as_pointer(c2[4]), c2[5], np.int64),
        carray(address_as_pointer(c2[6]), c2[7], np.int64),
        carray(address_as_pointer(c2[8]), c2[9], np.float64),
        carray(address_as_pointer(c2[10]), c2[11], np.float64),
        carray(address_as_pointer(c2[12]), c2[13], np.float64),
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
def l2_refresh_top(c, c2):
    """Market top into the counters; True when it changed."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
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
    cn = s.cnt
    changed = (bid != cn[B.C_BID] or ask != cn[B.C_ASK] or bid_qty != cn[B.C_BID_QTY]
               or ask_qty != cn[B.C_ASK_QTY])
    cn[B.C_BID] = bid
    cn[B.C_BID_QTY] = bid_qty
    cn[B.C_ASK] = ask
    cn[B.C_ASK_QTY] = ask_qty
    if bid > 0 and ask > 0 and ask > bid:
        s.acc[B.A_MID] = 0.5 * (bid + ask)
    return changed


@kernel
def _fill_own(c, row, ts, qty, liquidity, price, resp_lat):
    s = B.state_from_context(c)
    o = s.log[row]
    leaves = o.qty - o.filled - qty
    B._book_fill(c, ts, o.order_id, o.side, price, qty, leaves, liquidity, o.arrival_ts, resp_lat)


@kernel
def l2_apply_depth(c, c2, u):
    """Set one level; returns its previous size (-1 when off the ladder)."""
    l2 = l2_from_context(c2)
    if u.price < 0:
        return np.int64(-1)  # an empty message's marker row
    idx = _index(l2, u.price)
    if idx < 0:
        l2.meta[M_OUT_OF_WINDOW] += 1
        return np.int64(-1)
    if u.flags & 2:  # F_SNAPSHOT_START: a snapshot restarts the book
        l2.bids[:] = 0
        l2.asks[:] = 0
        l2.best[0] = -1
        l2.best[1] = -1
    prev = l2.bids[idx] if u.side == BUY else l2.asks[idx]
    _set_level(l2.bids, l2.asks, u.side, idx, u.qty, l2.best)
    return prev


@kernel
def l2_cross_fills(c, c2, ts, resp_lat):
    """Own orders the opposite best reached or crossed fill in full at their price."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
    m = l2.meta
    k = 0
    while k < s.cnt[B.C_RESTING]:
        row = s.resting[k]
        o = s.log[row]
        hit = False
        if o.side == BUY and l2.best[1] >= 0:
            hit = m[M_LOW] + l2.best[1] * m[M_TICK] <= o.price
        elif o.side == SELL and l2.best[0] >= 0:
            hit = m[M_LOW] + l2.best[0] * m[M_TICK] >= o.price
        if hit:
            s.cnt[B.C_TRADE_THROUGH] += 1
            _fill_own(c, row, ts, o.qty - o.filled, B.LIQ_MAKER, o.price, resp_lat)
        else:
            k += 1


@kernel
def l2_trade(c, c2, u, resp_lat):
    """A market trade: advance or fill own orders on the maker side."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
    cn = s.cnt
    cn[B.C_LAST_PRICE] = u.price
    cn[B.C_LAST_QTY] = u.qty
    cn[B.C_LAST_SIDE] = u.side
    maker = 1 - u.side
    k = 0
    while k < cn[B.C_RESTING]:
        row = s.resting[k]
        o = s.log[row]
        leaves = o.qty - o.filled
        if o.side != maker:
            k += 1
            continue
        through = (maker == BUY and u.price < o.price) or (maker == SELL and u.price > o.price)
        if through:
            cn[B.C_TRADE_THROUGH] += 1
            _fill_own(c, row, u.ts, leaves, B.LIQ_MAKER, o.price, resp_lat)
            continue
        if u.price == o.price:
            l2.front[row] -= u.qty
            l2.traded[row] += u.qty
            if l2.front[row] < 0:
                take = min(leaves, np.int64(-l2.front[row]))
                if take > 0:
                    l2.front[row] += take
                    _fill_own(c, row, u.ts, take, B.LIQ_MAKER, o.price, resp_lat)
                    if take == leaves:
                        continue
        k += 1


@kernel
def l2_entry(c, c2, resp_lat):
    """The order at the head of the entry ring reaches the exchange (L2 rules)."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
    cn = s.cnt
    m = l2.meta
    p = s.entry[cn[B.C_ENTRY_HEAD] & (len(s.entry) - 1)]
    cn[B.C_ENTRY_HEAD] += 1
    ts = p.ts
    row = p.order_id - B.STRATEGY_ID_BASE
    o = s.log[row]
    if p.kind == B.A_NEW:
        o.arrival_ts = ts
        o.arrival_mid = s.acc[B.A_MID]
        reason = 0
        if (p.price - m[M_LOW]) % m[M_TICK] != 0:
            reason = R_PRICE_OFF_TICK
        elif _index(l2, p.price) < 0:
            reason = R_PRICE_OUT_OF_BAND
        if reason != 0:
            o.status = B.LS_REJECTED
            o.exchange_reason = reason
            o.done_ts = ts
            cn[B.C_EXCH_REJECTS + reason] += 1
            B._push_response(c, ts + resp_lat, B.RSP_REJECTED, p.order_id, p.side, p.price,
                             p.qty, 0, 0.0, reason)
            return
        left = p.qty
        opp = 1 - p.side
        idx = l2.best[opp]
        while left > 0 and idx >= 0:
            price = m[M_LOW] + idx * m[M_TICK]
            if (p.side == BUY and price > p.price) or (p.side == SELL and price < p.price):
                break
            size = l2.asks[idx] if opp == SELL else l2.bids[idx]
            take = min(left, size)
            if take > 0:
                left -= take
                _fill_own(c, row, ts, take, B.LIQ_TAKER, price, resp_lat)
            # next level outward
            idx += 1 if opp == SELL else -1
            while 0 <= idx < m[M_LEVELS]:
                if (l2.asks[idx] if opp == SELL else l2.bids[idx]) > 0:
                    break
                idx += 1 if opp == SELL else -1
            if idx < 0 or idx >= m[M_LEVELS]:
                idx = -1
        if left > 0 and p.tif == GTC:
            o.status = B.LS_OPEN
            n = cn[B.C_RESTING]
            s.resting[n] = row
            cn[B.C_RESTING] = n + 1
            l2.front[row] = float(_level_qty(l2, p.side, p.price))
            l2.traded[row] = 0.0
            o.queue_ahead = np.int64(l2.front[row])
            B._push_response(c, ts + resp_lat, B.RSP_ACK, p.order_id, p.side, p.price, p.qty,
                             left, 0.0, 0)
        elif left > 0:
            o.status = B.LS_CANCELLED
            o.done_ts = ts
            B._push_response(c, ts + resp_lat, B.RSP_CANCELLED, p.order_id, p.side, p.price,
                             p.qty, 0, 0.0, 0)
    else:
        resting = False
        for k in range(cn[B.C_RESTING]):
            if s.resting[k] == row:
                resting = True
        if resting:
            B._remove_resting_row(c, row)
            o.status = B.LS_CANCELLED
            o.done_ts = ts
            cn[B.C_CANCELS] += 1
            B._push_response(c, ts + resp_lat, B.RSP_CANCELLED, p.order_id, p.side, o.price,
                             o.qty, 0, 0.0, 0)
        else:
            cn[B.C_EXCH_REJECTS + R_UNKNOWN_ORDER] += 1
            B._push_response(c, ts + resp_lat, B.RSP_CANCEL_REJECTED, p.order_id, p.side,
                             o.price, o.qty, 0, 0.0, R_UNKNOWN_ORDER)


@kernel
def l2_push_feed(c, c2, exch_ts, deliver_ts):
    """Like ``kernels.backtest.push_feed``, with the queue model's estimate as ``ahead``."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
    cn = s.cnt
    if B._ring_full(c, B.C_FEED_HEAD, B.C_FEED_TAIL, s.feed):
        return
    t = max(deliver_ts, cn[B.C_FEED_LAST])
    cn[B.C_FEED_LAST] = t
    cn[B.C_FEED_PUSHES] += 1
    v = s.feed[cn[B.C_FEED_TAIL] & (len(s.feed) - 1)]
    cn[B.C_FEED_TAIL] += 1
    v.local_ts = t
    v.exch_ts = exch_ts
    v.bid = cn[B.C_BID]
    v.bid_qty = cn[B.C_BID_QTY]
    v.ask = cn[B.C_ASK]
    v.ask_qty = cn[B.C_ASK_QTY]
    v.mid = s.acc[B.A_MID]
    v.last_price = cn[B.C_LAST_PRICE]
    v.last_qty = cn[B.C_LAST_QTY]
    v.last_side = cn[B.C_LAST_SIDE]
    for side in range(2):
        row = B._own_best(c, side)
        oid = np.int64(0)
        price = np.int64(0)
        leaves = np.int64(0)
        ahead = np.int64(-1)
        if row >= 0:
            o = s.log[row]
            oid = o.order_id
            price = o.price
            leaves = o.qty - o.filled
            ahead = np.int64(max(l2.front[row], 0.0))
        B.set_own_quote(v, side, oid, price, leaves, ahead)


@kernel
def l2_step(c, ts):
    s = B.state_from_context(c)
    if ts >= s.cnt[B.C_NEXT_STEP_TS]:
        B.write_step(c, ts)
        step = s.cfg[B.G_RECORD_EVERY_NS]
        s.cnt[B.C_NEXT_STEP_TS] = (ts // step + 1) * step


@kernel(cache=False)
def _queue_depth(prob, c, c2, side, price, prev, new):
    """Move the ``front`` estimate of own orders at (side, price) after a depth row."""
    s = B.state_from_context(c)
    l2 = l2_from_context(c2)
    for k in range(s.cnt[B.C_RESTING]):
        row = s.resting[k]
        o = s.log[row]
        if o.side == side and o.price == price:
            front = l2.front[row]
            p = prob(front, prev - front, l2.qparams)
            l2.front[row] = depth_update(front, l2.traded[row], float(prev), float(new), p)
            l2.traded[row] = 0.0


@kernel(cache=False)
def run_l2(strategy, latency, queue_prob, context, context2, events, start, stop):
    """The L2 loop; same contract as ``kernels.backtest.run_l3`` plus the queue model."""
    c = carray(address_as_pointer(context[len(context) - 1]), len(context), np.int64)
    c2 = carray(address_as_pointer(context2[len(context2) - 1]), len(context2), np.int64)
    s = B.state_from_context(c)
    n_events = len(events)
    limit_ts = events[stop].ts if stop < n_events else B.INF_TS
    lp = s.lat_params
    lt = s.lat_table
    rng = s.rng
    ctx = s.ctx[0]
    kill_watch = s.risk_params[6] > 0 or s.risk_params[7] != 0
    i = start
    dirty = False
    while s.cnt[B.C_STATUS] == B.BT_OK:
        tr, tf, te = B.next_times(c)
        t = min(tr, min(tf, te))
        tx = events[i].ts if i < stop else B.INF_TS
        if i >= stop and (t == B.INF_TS or t > limit_ts):
            break
        if t <= tx:
            if tr == t or tf == t:
                wake = True
                if tr == t:
                    wake = B.deliver_response(c)
                else:
                    B.deliver_feed(c)
                if wake and i < n_events:
                    ctx.n_wakes += 1
                    s.cnt[B.C_WAKES] += 1
                    t0 = B.now_ns()
                    n = strategy(ctx, s.mview[0], s.orders, s.params, s.actions)
                    n = min(n, len(s.actions))
                    if n > 0 or kill_watch:
                        B.submit_actions(c, n, t, latency(LAT_ENTRY, t, lp, lt, rng))
                    if n > 0:
                        B.H.record(s.hist, B.now_ns() - t0)
            else:
                l2_entry(c, c2, latency(LAT_RESPONSE, t, lp, lt, rng))
                l2_refresh_top(c, c2)
                l2_push_feed(c, c2, t, t + latency(LAT_FEED, t, lp, lt, rng))
        else:
            u = events[i]
            i += 1
            s.cnt[B.C_EVENTS] += 1
            resp = latency(LAT_RESPONSE, u.ts, lp, lt, rng)
            if u.flags & L2_TRADE:
                l2_trade(c, c2, u, resp)
                dirty = True
            else:
                prev = l2_apply_depth(c, c2, u)
                if prev >= 0 and s.cnt[B.C_RESTING] > 0:
                    _queue_depth(queue_prob, c, c2, u.side, u.price, prev, u.qty)
                if u.flags & F_END_OF_MESSAGE:
                    if s.cnt[B.C_RESTING] > 0:
                        l2_cross_fills(c, c2, u.ts, resp)
                    if l2_refresh_top(c, c2):
                        dirty = True
            if dirty and (u.flags & (F_END_OF_MESSAGE | L2_TRADE)):
                dirty = False
                l2_push_feed(c, c2, u.ts, u.ts + latency(LAT_FEED, u.ts, lp, lt, rng))
            l2_step(c, u.ts)
    return i, s.cnt[B.C_STATUS]
