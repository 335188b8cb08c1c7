"""The tick-replay backtester (L3): market events and the strategy's own orders share
one ``kernels.book`` state, with feed / order-entry / response latency, exact FIFO
queue positions, maker/taker fees, pre-trade risk and P&L accounting.

Owns the kernels of the event loop (:func:`run_l3` is the loop; the L2 loop,
``kernels.backtest.l2``, shares its latency rings, strategy calls, risk and
accounting). The state they work on, ``BacktestState``, and the layouts of its
counters (``BC_*``), accounting (``ACC_*``), config (``G_*``) and fees (``FEE_*``) are
``kernels.backtest.state``'s; the record dtypes (``ACTION``, ``CTX``, ``VIEW``,
``LIVE``, ``PENDING``, ``RESPONSE``, ``ORDER_LOG``, ``OWN_FILL``, ``STEP``) and their
codes are ``kernels.records``'. Every kernel receives the state as its context ``c``
(``kernels.state_views.backtest_context``) and unpacks the arrays it uses, each with its
own accessor (``backtest_cnt(c)``, ``backtest_log(c)``, ...): Numba types and lowers every
view it is asked to build, so unpacking the whole state (``backtest_views``) in each of
forty kernels cost about 0.5 s of compilation per kernel.

Two clocks
----------
Exchange time is the data's ``ts``; the exchange applies market events and the
strategy's arriving orders in that time. The strategy lives in local time: it sees a
market view ``feed`` latency after the exchange produced it, its orders reach the book
``entry`` latency after it decided, and it learns about fills, acks and cancels
``response`` latency after they happened. Each of the three channels is a FIFO ring
(preallocated, time ordered: a message never overtakes the one before it, as on one
TCP connection, so sampled latencies keep the ring sorted by ``max(prev, t + lat)``).

Ordering at equal times: responses, then feed deliveries (both on the strategy
side), then order arrivals at the exchange, then the next market event. So with zero
latency the strategy reacts to event ``i`` and its order rests before event ``i + 1``
even when both carry the same ``ts``; with positive latency the order arrives after
every event stamped before its arrival time.

Wakes: the strategy is called when a market view reaches it (views are pushed only
when the best bid/ask price or size changed or a trade printed) and when a fill,
cancel or reject reaches it (acks update ``orders`` without a call). After the last market event no more wakes happen; pending orders and
responses drain.

Timer (``cfg[G_TIMER_NS]`` = N > 0, as hftbacktest's ``elapse(N)`` loop): the strategy is
also woken at ``t0 + k*N`` for k = 1, 2, ... (``t0`` = the first event's ``ts``), with
``ctx.wake = W_TIMER`` and ``ctx.ts`` = that time, after everything stamped at or before
it (responses, views, order arrivals, market events) and strictly before the last market
event: a run spanning ``D = last ts - t0`` gets ``ceil(D / N) - 1`` timer wakes
(``floor(D / N)`` unless N divides D). Orders it sends arrive ``entry`` latency later.

Post-only (``tif = GTX``): an order that would cross the opposite best when it reaches
the exchange (a buy at or above the best ask, a sell at or below the best bid; here the
book's best, own orders included, since it would match them) is rejected with
``R_POST_ONLY_WOULD_TAKE`` and never trades; otherwise it rests as a GTC order.

Queue position (L3): own orders rest in the same FIFO queues as the market's, so an
aggressive market order (``EV_ADD`` that crosses) reaches them in exact price-time
order. Replayed executions by id (LOBSTER type 4, the simulator's default) need a
rule, because the exchange never saw our orders: an execution of resting order X at
price p on side s means an aggressor traded through every order ahead of X. Hence,
before the execution is applied, each own order on side s priced better than p, and
each own order at p that sits ahead of X in the queue, is filled in full (at its own
price, as a maker). Own orders behind X are not touched. Executions of ids the book
never saw act on the anonymous volume at that price (``EC_ANON_FALLBACK``), whose
queue place is where it was created; with no such volume the rule fills nothing
(its place is unknown: conservative). This is the usual no-market-impact assumption:
our fills do not reduce the market's own recorded executions. The other way round
there is impact: an own order that crosses takes real orders' quantity out of the
replayed book, so later messages about what it consumed may be rejected by the book;
they are counted (``BC_MARKET_REJECTS``), never fatal.

Strategy signature (see ``kernels.strategies``)::

    strategy(ctx, view, orders, params, actions) -> number of actions written

``ctx`` (CTX record: local time, known position/cash/equity, last fill, scratch
``mem``), ``view`` (VIEW record: the delivered top of book and own best orders with
their queue position), ``orders`` (LIVE array: the strategy's open orders as it
knows them), ``params`` (float64 array), ``actions`` (ACTION array to fill).
"""
from __future__ import annotations

import numpy as np

from .. import histogram
from .. import risk as krisk
from ..book import (
    anon_order_id, apply_event, best_price, clear_others, find_order, next_level,
    queue_position,
)
from ..book_state import EC_ANON_FALLBACK
from ..clock import now_ns
from ..jit import kernel
from ..pointers import borrow_context
from ..records import (
    A_CANCEL, A_NEW, BUY, EV_ADD, EV_CLEAR, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN,
    FOK, GTC, GTX,
    IOC, LIMIT, LIQ_MAKER, LIQ_TAKER, LS_CANCELLED, LS_FILLED, LS_OPEN, LS_PENDING,
    LS_REJECTED, OS_FREE, OS_LIVE, OS_PENDING_CANCEL, OS_PENDING_NEW, R_POST_ONLY_WOULD_TAKE,
    R_UNKNOWN_ORDER, R_NONE, RSP_ACK, RSP_CANCEL_REJECTED, RSP_CANCELLED, RSP_FILL, RSP_REJECTED,
    SELL, ST_DONE, ST_REJECTED, STRATEGY_ID_BASE, W_MARKET, W_RESPONSE, W_TIMER,
)
from ..state_views import (
    backtest_acc, backtest_actions, backtest_cfg, backtest_cnt, backtest_ctx, backtest_entry,
    backtest_feed, backtest_fees, backtest_fills, backtest_hist, backtest_lat_params,
    backtest_lat_table, backtest_log, backtest_mview, backtest_orders, backtest_own_fills,
    backtest_params, backtest_resp, backtest_resting, backtest_risk_params,
    backtest_risk_state, backtest_rng, backtest_st, backtest_steps,
)
from .latency_models import LAT_ENTRY, LAT_FEED, LAT_RESPONSE
from .state import (
    ACC_AVG_PRICE, ACC_CASH, ACC_FEES, ACC_MID, ACC_REALISED, ACC_TURNOVER, BC_ASK,
    BC_ASK_QTY, BC_BID, BC_BID_QTY, BC_CANCELS, BC_DROPPED_FILLS, BC_DROPPED_STEPS,
    BC_ENTRY_HEAD, BC_ENTRY_LAST, BC_ENTRY_TAIL, BC_EVENTS, BC_EXCH_REJECTS, BC_FEED_HEAD,
    BC_FEED_LAST, BC_FEED_PUSHES, BC_FEED_TAIL, BC_FILLED_QTY, BC_FILLS, BC_KILL_SENT,
    BC_LAST_PRICE, BC_LAST_QTY, BC_LAST_SIDE, BC_MAKER_FILLS, BC_MARKET_REJECTS,
    BC_NEXT_STEP_TS, BC_NEXT_TIMER, BC_ORDERS, BC_POSITION, BC_RESP_HEAD, BC_RESP_LAST,
    BC_RESP_TAIL, BC_RESTING, BC_RISK_REJECTS, BC_STATUS, BC_STEPS, BC_TAKER_FILLS,
    BC_TIMER_WAKES, BC_TRADE_THROUGH, BC_WAKES, BT_OK, BT_RING_FULL, FEE_MAKER_BPS,
    FEE_TAKER_BPS, G_PRICE_SCALE, G_RECORD_EVERY_NS, G_TIMER_NS,
)

INF_TS = np.int64(2**62)


# ------------------------------------------------------------------------ helpers
@kernel(inline="always")
def is_own(order_id):
    return order_id >= STRATEGY_ID_BASE


@kernel
def _own_qty_at(c, side, price):
    """Quantity of own orders resting at (side, price)."""
    log = backtest_log(c)
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    q = np.int64(0)
    for k in range(cnt[BC_RESTING]):
        o = log[resting[k]]
        if o.side == side and o.price == price:
            q += o.qty - o.filled
    return q


@kernel
def _market_top(c, side):
    """(price, qty) of the best level on ``side`` holding market (not own) quantity."""
    st = backtest_st(c)
    cnt = backtest_cnt(c)
    h = st.books[0].best[side]
    while h >= 0:
        price = st.levels[h].price
        qty = st.levels[h].qty
        if cnt[BC_RESTING] > 0:
            qty -= _own_qty_at(c, side, price)
        if qty > 0:
            return price, qty
        h = next_level(st, 0, side, h)
    return np.int64(0), np.int64(0)


@kernel
def _refresh_top(c):
    """Read the market's top of book (own orders excluded: a strategy prices off the
    others' liquidity and knows its own orders) into the counters; True when changed."""
    cn = backtest_cnt(c)
    acc = backtest_acc(c)
    bid, bid_qty = _market_top(c, BUY)
    ask, ask_qty = _market_top(c, SELL)
    changed = (bid != cn[BC_BID] or ask != cn[BC_ASK] or bid_qty != cn[BC_BID_QTY]
               or ask_qty != cn[BC_ASK_QTY])
    cn[BC_BID] = bid
    cn[BC_BID_QTY] = bid_qty
    cn[BC_ASK] = ask
    cn[BC_ASK_QTY] = ask_qty
    if bid > 0 and ask > 0 and ask > bid:
        acc[ACC_MID] = 0.5 * (bid + ask)
    elif acc[ACC_MID] <= 0 and (bid > 0 or ask > 0):
        acc[ACC_MID] = np.float64(bid if bid > 0 else ask)
    return changed


@kernel
def _own_best(c, side):
    """Log row of the best-priced own order resting on ``side`` (-1 if none)."""
    log = backtest_log(c)
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    best = -1
    best_price = np.int64(0)
    for k in range(cnt[BC_RESTING]):
        row = resting[k]
        o = log[row]
        if o.side != side:
            continue
        if best < 0 or (side == BUY and o.price > best_price) or (side == SELL and o.price < best_price):
            best = row
            best_price = o.price
    return best


@kernel
def _equity(c, mid):
    cnt = backtest_cnt(c)
    acc = backtest_acc(c)
    cfg = backtest_cfg(c)
    return acc[ACC_CASH] + cnt[BC_POSITION] * (mid / cfg[G_PRICE_SCALE])


@kernel
def write_step(c, ts):
    log = backtest_log(c)
    steps = backtest_steps(c)
    cnt = backtest_cnt(c)
    acc = backtest_acc(c)
    cfg = backtest_cfg(c)
    n = cnt[BC_STEPS]
    if n >= len(steps):
        cnt[BC_DROPPED_STEPS] += 1
        return
    cnt[BC_STEPS] = n + 1
    r = steps[n]
    scale = cfg[G_PRICE_SCALE]
    mid = acc[ACC_MID]
    pos = cnt[BC_POSITION]
    r.ts = ts
    r.position = pos
    r.bid = cnt[BC_BID]
    r.ask = cnt[BC_ASK]
    qb = _own_best(c, BUY)
    qa = _own_best(c, SELL)
    r.quote_bid = log[qb].price if qb >= 0 else 0
    r.quote_ask = log[qa].price if qa >= 0 else 0
    r.mid = mid
    r.cash = acc[ACC_CASH]
    r.equity = _equity(c, mid)
    r.realised = acc[ACC_REALISED]
    r.unrealised = pos * (mid / scale - acc[ACC_AVG_PRICE]) if pos != 0 else 0.0
    r.fees = acc[ACC_FEES]


# --------------------------------------------------------------------------- rings
@kernel
def _ring_full(c, head, tail, ring):
    cnt = backtest_cnt(c)
    if cnt[tail] - cnt[head] >= len(ring):
        cnt[BC_STATUS] = BT_RING_FULL
        return True
    return False


@kernel
def _push_response(c, t, kind, order_id, side, price, qty, leaves, fee, reason):
    resp = backtest_resp(c)
    cnt = backtest_cnt(c)
    if _ring_full(c, BC_RESP_HEAD, BC_RESP_TAIL, resp):
        return
    t = max(t, cnt[BC_RESP_LAST])
    cnt[BC_RESP_LAST] = t
    r = resp[cnt[BC_RESP_TAIL] & (len(resp) - 1)]
    cnt[BC_RESP_TAIL] += 1
    r.ts = t
    r.kind = kind
    r.order_id = order_id
    r.side = side
    r.price = price
    r.qty = qty
    r.leaves = leaves
    r.fee = fee
    r.reason = reason


@kernel
def new_view(c, exch_ts, deliver_ts):
    """Claim the feed ring's next view for delivery at ``deliver_ts`` and fill its market
    part (times, top of book, mid, last trade) from the counters (the L3 and L2 loops
    share it). Returns its slot, or -1 when the ring is full (``BT_RING_FULL`` set)."""
    feed = backtest_feed(c)
    cnt = backtest_cnt(c)
    acc = backtest_acc(c)
    if _ring_full(c, BC_FEED_HEAD, BC_FEED_TAIL, feed):
        return -1
    t = max(deliver_ts, cnt[BC_FEED_LAST])
    cnt[BC_FEED_LAST] = t
    cnt[BC_FEED_PUSHES] += 1
    slot = cnt[BC_FEED_TAIL] & (len(feed) - 1)
    cnt[BC_FEED_TAIL] += 1
    v = feed[slot]
    v.local_ts = t
    v.exch_ts = exch_ts
    v.bid = cnt[BC_BID]
    v.bid_qty = cnt[BC_BID_QTY]
    v.ask = cnt[BC_ASK]
    v.ask_qty = cnt[BC_ASK_QTY]
    v.mid = acc[ACC_MID]
    v.last_price = cnt[BC_LAST_PRICE]
    v.last_qty = cnt[BC_LAST_QTY]
    v.last_side = cnt[BC_LAST_SIDE]
    return slot


@kernel
def push_feed(c, exch_ts, deliver_ts):
    """Snapshot the market view (top of book, last trade, own best orders and their
    queue position) for delivery to the strategy at ``deliver_ts``."""
    slot = new_view(c, exch_ts, deliver_ts)
    if slot < 0:
        return
    st = backtest_st(c)
    log = backtest_log(c)
    v = backtest_feed(c)[slot]
    for side in range(2):
        row = _own_best(c, side)
        oid = np.int64(0)
        price = np.int64(0)
        leaves = np.int64(0)
        ahead = np.int64(-1)
        if row >= 0:
            oid = log[row].order_id
            price = log[row].price
            ahead, _ = queue_position(st, 0, oid)
            pos = find_order(st, oid, 0)
            leaves = st.pool[st.index_slots[pos]].qty if pos >= 0 else 0
        set_own_quote(v, side, oid, price, leaves, ahead)


@kernel
def set_own_quote(v, side, order_id, price, leaves, ahead):
    """Show the strategy its own best order on one side (the L3 and L2 loops share it)."""
    if side == BUY:
        v.own_bid_id = order_id
        v.own_bid_price = price
        v.own_bid_leaves = leaves
        v.own_bid_ahead = ahead
    else:
        v.own_ask_id = order_id
        v.own_ask_price = price
        v.own_ask_leaves = leaves
        v.own_ask_ahead = ahead


@kernel
def next_times(c):
    """(response, feed, entry) head times, INF_TS for an empty ring."""
    feed = backtest_feed(c)
    entry = backtest_entry(c)
    resp = backtest_resp(c)
    cn = backtest_cnt(c)
    tr = resp[cn[BC_RESP_HEAD] & (len(resp) - 1)].ts if cn[BC_RESP_TAIL] > cn[BC_RESP_HEAD] else INF_TS
    tf = feed[cn[BC_FEED_HEAD] & (len(feed) - 1)].local_ts if cn[BC_FEED_TAIL] > cn[BC_FEED_HEAD] else INF_TS
    te = entry[cn[BC_ENTRY_HEAD] & (len(entry) - 1)].ts if cn[BC_ENTRY_TAIL] > cn[BC_ENTRY_HEAD] else INF_TS
    return tr, tf, te


# ------------------------------------------------------------------------ timer
@kernel
def timer_start(c, first_ts):
    """Arm the timer at ``first_ts + N`` on the first call of a run (no-op when off)."""
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    every = cfg[G_TIMER_NS]
    if every > 0 and cnt[BC_NEXT_TIMER] == 0:
        cnt[BC_NEXT_TIMER] = first_ts + every


@kernel
def timer_fire(c, t):
    """The timer wakes the strategy at ``t``: set ``ctx`` and arm the next wake."""
    ctxs = backtest_ctx(c)
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    cnt[BC_NEXT_TIMER] = t + cfg[G_TIMER_NS]
    cnt[BC_TIMER_WAKES] += 1
    cnt[BC_WAKES] += 1
    ctx = ctxs[0]
    ctx.ts = t
    ctx.wake = W_TIMER
    ctx.n_wakes += 1


# -------------------------------------------------------------------- post-only
@kernel(inline="always")
def would_take(side, price, bid, ask):
    """True when a limit order at ``price`` on ``side`` crosses the opposite best
    (``bid``/``ask`` in price units, 0 for an empty side)."""
    if side == BUY:
        return ask > 0 and price >= ask
    return bid > 0 and price <= bid


@kernel
def reject_new(c, row, ts, p, reason, resp_lat):
    """The exchange refuses the new order ``p`` (log row ``row``) at ``ts``."""
    log = backtest_log(c)
    cnt = backtest_cnt(c)
    o = log[row]
    o.status = LS_REJECTED
    o.exchange_reason = reason
    o.done_ts = ts
    cnt[BC_EXCH_REJECTS + reason] += 1
    _push_response(c, ts + resp_lat, RSP_REJECTED, p.order_id, p.side, p.price, p.qty, 0, 0.0,
                   reason)


# -------------------------------------------------------------------- accounting
@kernel
def _remove_resting_row(c, row):
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    n = cnt[BC_RESTING]
    for k in range(n):
        if resting[k] == row:
            resting[k] = resting[n - 1]
            cnt[BC_RESTING] = n - 1
            return


@kernel
def _book_fill(c, ts, order_id, side, price, qty, leaves, liquidity, maker_ts, resp_lat):
    """Account one own fill at exchange time ``ts`` and queue its response."""
    log = backtest_log(c)
    own_fills = backtest_own_fills(c)
    cnt = backtest_cnt(c)
    acc = backtest_acc(c)
    cfg = backtest_cfg(c)
    fees = backtest_fees(c)
    scale = cfg[G_PRICE_SCALE]
    px = price / scale
    signed = qty if side == BUY else -qty
    pos = cnt[BC_POSITION]
    # average-cost realised P&L
    if pos == 0 or (pos > 0) == (signed > 0):
        total = abs(pos) + qty
        acc[ACC_AVG_PRICE] = (acc[ACC_AVG_PRICE] * abs(pos) + px * qty) / total
    else:
        closing = min(qty, abs(pos))
        acc[ACC_REALISED] += closing * (px - acc[ACC_AVG_PRICE]) * (1.0 if pos > 0 else -1.0)
        if qty > abs(pos):
            acc[ACC_AVG_PRICE] = px
        elif qty == abs(pos):
            acc[ACC_AVG_PRICE] = 0.0
    new_pos = pos + signed
    cnt[BC_POSITION] = new_pos
    notional = qty * px
    fee_bps = fees[FEE_MAKER_BPS] if liquidity == LIQ_MAKER else fees[FEE_TAKER_BPS]
    fee = notional * fee_bps * 1e-4
    acc[ACC_CASH] -= signed * px + fee
    acc[ACC_REALISED] -= fee
    acc[ACC_FEES] += fee
    acc[ACC_TURNOVER] += notional
    cnt[BC_FILLED_QTY] += qty
    if liquidity == LIQ_MAKER:
        cnt[BC_MAKER_FILLS] += 1
    else:
        cnt[BC_TAKER_FILLS] += 1
    row = order_id - STRATEGY_ID_BASE
    o = log[row]
    o.filled += qty
    if leaves == 0:
        o.status = LS_FILLED
        o.done_ts = ts
        _remove_resting_row(c, row)
    n = cnt[BC_FILLS]
    cnt[BC_FILLS] = n + 1
    known = max(ts + resp_lat, cnt[BC_RESP_LAST])
    if n < len(own_fills):
        f = own_fills[n]
        f.ts = ts
        f.known_ts = known
        f.order_id = order_id
        f.price = price
        f.qty = qty
        f.position = new_pos
        f.time_in_queue = ts - maker_ts if liquidity == LIQ_MAKER else 0
        f.fee = fee
        f.arrival_mid = o.arrival_mid
        f.mid = acc[ACC_MID]
        am = o.arrival_mid
        if am > 0:
            f.slippage_bps = ((price - am) if side == BUY else (am - price)) / am * 1e4
        else:
            f.slippage_bps = 0.0
        f.side = side
        f.liquidity = liquidity
    else:
        cnt[BC_DROPPED_FILLS] += 1
    _push_response(c, ts + resp_lat, RSP_FILL, order_id, side, price, qty, leaves, fee, 0)
    write_step(c, ts)


@kernel
def _scan_fills(c, nf, resp_lat):
    """Book the own side of the fills just written; note the last market trade."""
    fills = backtest_fills(c)
    log = backtest_log(c)
    cnt = backtest_cnt(c)
    for k in range(nf):
        f = fills[k]
        cnt[BC_LAST_PRICE] = f.price
        cnt[BC_LAST_QTY] = f.qty
        cnt[BC_LAST_SIDE] = f.taker_side
        if is_own(f.maker_id):
            _book_fill(c, f.ts, f.maker_id, 1 - f.taker_side, f.price, f.qty, f.maker_leaves,
                       LIQ_MAKER, f.maker_ts, resp_lat)
        if is_own(f.taker_id):
            # the running remainder; an IOC remainder is cancelled (and reported) after
            o = log[f.taker_id - STRATEGY_ID_BASE]
            leaves = o.qty - o.filled - f.qty
            _book_fill(c, f.ts, f.taker_id, f.taker_side, f.price, f.qty, leaves,
                       LIQ_TAKER, f.ts, resp_lat)


@kernel
def _ahead_of(c, own_slot, other_slot):
    """True when pool slot ``own_slot`` precedes ``other_slot`` in their level's FIFO."""
    st = backtest_st(c)
    cur = st.pool[own_slot].next
    while cur >= 0:
        if cur == other_slot:
            return True
        cur = st.pool[cur].next
    return False


@kernel
def _trade_through(c, ts, side, price, order_id, resp_lat):
    """The execution rule of the module docstring: fill own orders on ``side`` that an
    execution of ``order_id`` at ``price`` must have traded through."""
    st = backtest_st(c)
    fills = backtest_fills(c)
    log = backtest_log(c)
    resting = backtest_resting(c)
    cnt = backtest_cnt(c)
    other = find_order(st, order_id, 0)
    if other < 0 and st.counters[EC_ANON_FALLBACK] != 0:
        other = find_order(st, anon_order_id(0, side, price), 0)
    other_slot = st.index_slots[other] if other >= 0 else -1
    k = 0
    while k < cnt[BC_RESTING]:
        row = resting[k]
        o = log[row]
        hit = False
        if o.side == side:
            if (side == BUY and o.price > price) or (side == SELL and o.price < price):
                hit = True
            elif o.price == price and other_slot >= 0:
                pos = find_order(st, o.order_id, 0)
                if pos >= 0 and _ahead_of(c, st.index_slots[pos], other_slot):
                    hit = True
        if hit:
            pos = find_order(st, o.order_id, 0)
            leaves = st.pool[st.index_slots[pos]].qty
            r = apply_event(st, fills, 0, ts, o.order_id, o.price, leaves, 0, EV_EXECUTE,
                            o.side, LIMIT, GTC)
            cnt[BC_TRADE_THROUGH] += 1
            _scan_fills(c, r[5], resp_lat)  # removes the row from ``resting``
            # ``other_slot`` is unchanged: executing a different order never moves it
        else:
            k += 1


@kernel
def exchange_event(c, e, resp_lat):
    """Apply one market event at exchange time; True when the strategy's view changed."""
    st = backtest_st(c)
    fills = backtest_fills(c)
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    traded = False
    if e.kind == EV_EXECUTE:
        if cnt[BC_RESTING] > 0:
            _trade_through(c, e.ts, e.side, e.price, e.order_id, resp_lat)
        traded = True
        cnt[BC_LAST_PRICE] = e.price
        cnt[BC_LAST_QTY] = e.qty
        cnt[BC_LAST_SIDE] = 1 - e.side
    elif e.kind == EV_EXECUTE_HIDDEN or e.kind == EV_CROSS:
        traded = True
        cnt[BC_LAST_PRICE] = e.price
        cnt[BC_LAST_QTY] = e.qty
        cnt[BC_LAST_SIDE] = 1 - e.side
    if e.kind == EV_CLEAR:
        # the feed's book reset removes the feed's orders, never our simulated ones
        clear_others(st, 0, STRATEGY_ID_BASE)
        r = (ST_DONE, R_NONE, e.order_id, np.int64(0), np.int64(0), np.int64(0))
    else:
        r = apply_event(st, fills, 0, e.ts, e.order_id, e.price, e.qty, 0, e.kind, e.side,
                        e.order_type, e.tif)
    cnt[BC_EVENTS] += 1
    if r[0] == ST_REJECTED:
        cnt[BC_MARKET_REJECTS] += 1
    nf = r[5]
    if nf > 0:
        traded = True
        _scan_fills(c, nf, resp_lat)
    changed = _refresh_top(c)
    if e.ts >= cnt[BC_NEXT_STEP_TS]:
        write_step(c, e.ts)
        step = cfg[G_RECORD_EVERY_NS]
        cnt[BC_NEXT_STEP_TS] = (e.ts // step + 1) * step
    return changed or traded


@kernel
def exchange_entry(c, resp_lat):
    """The order at the head of the entry ring reaches the exchange."""
    st = backtest_st(c)
    fills = backtest_fills(c)
    log = backtest_log(c)
    entry = backtest_entry(c)
    resting = backtest_resting(c)
    cn = backtest_cnt(c)
    acc = backtest_acc(c)
    p = entry[cn[BC_ENTRY_HEAD] & (len(entry) - 1)]
    cn[BC_ENTRY_HEAD] += 1
    ts = p.ts
    row = p.order_id - STRATEGY_ID_BASE
    o = log[row]
    if p.kind == A_NEW:
        o.arrival_ts = ts
        o.arrival_mid = acc[ACC_MID]
        if p.tif == GTX and would_take(p.side, p.price, best_price(st, 0, BUY),
                                       best_price(st, 0, SELL)):
            reject_new(c, row, ts, p, R_POST_ONLY_WOULD_TAKE, resp_lat)
            return _refresh_top(c)
        r = apply_event(st, fills, 0, ts, p.order_id, p.price, p.qty, 0, EV_ADD, p.side,
                        LIMIT, GTC if p.tif == GTX else p.tif)
        status = r[0]
        if status == ST_REJECTED:
            reject_new(c, row, ts, p, r[1], resp_lat)
        else:
            leaves = r[4]
            if leaves > 0:
                o.status = LS_OPEN
                c_rest = cn[BC_RESTING]
                resting[c_rest] = row
                cn[BC_RESTING] = c_rest + 1
                ahead, _ = queue_position(st, 0, p.order_id)
                o.queue_ahead = ahead
            if r[5] > 0:
                _scan_fills(c, r[5], resp_lat)
            if leaves > 0:
                _push_response(c, ts + resp_lat, RSP_ACK, p.order_id, p.side, p.price, p.qty,
                               leaves, 0.0, 0)
            elif r[3] < p.qty:
                # IOC/FOK remainder cancelled (or nothing crossed)
                o.status = LS_CANCELLED
                o.done_ts = ts
                _push_response(c, ts + resp_lat, RSP_CANCELLED, p.order_id, p.side, p.price,
                               p.qty, 0, 0.0, 0)
    else:
        pos = find_order(st, p.order_id, 0)
        if pos >= 0:
            r = apply_event(st, fills, 0, ts, p.order_id, 0, 0, 0, EV_DELETE, p.side,
                            LIMIT, GTC)
            o.status = LS_CANCELLED
            o.done_ts = ts
            _remove_resting_row(c, row)
            cn[BC_CANCELS] += 1
            _push_response(c, ts + resp_lat, RSP_CANCELLED, p.order_id, p.side, o.price, o.qty,
                           0, 0.0, 0)
        else:
            cn[BC_EXCH_REJECTS + R_UNKNOWN_ORDER] += 1
            _push_response(c, ts + resp_lat, RSP_CANCEL_REJECTED, p.order_id, p.side, o.price,
                           o.qty, 0, 0.0, R_UNKNOWN_ORDER)
    changed = _refresh_top(c)
    return changed


# ------------------------------------------------------------------ strategy side
@kernel
def _free_live(c, slot):
    ctx = backtest_ctx(c)
    orders = backtest_orders(c)
    o = orders[slot]
    if o.state == OS_FREE:
        return
    if o.side == BUY:
        ctx[0].open_bid_qty -= o.leaves
    else:
        ctx[0].open_ask_qty -= o.leaves
    o.state = OS_FREE
    o.order_id = 0
    o.leaves = 0


@kernel
def deliver_response(c):
    """The response at the head of its ring reaches the strategy: update what it knows.
    Returns whether the strategy should be woken."""
    ctxs = backtest_ctx(c)
    mview = backtest_mview(c)
    orders = backtest_orders(c)
    log = backtest_log(c)
    resp = backtest_resp(c)
    cn = backtest_cnt(c)
    cfg = backtest_cfg(c)
    r = resp[cn[BC_RESP_HEAD] & (len(resp) - 1)]
    cn[BC_RESP_HEAD] += 1
    ctx = ctxs[0]
    ctx.ts = r.ts
    ctx.wake = W_RESPONSE
    row = r.order_id - STRATEGY_ID_BASE
    slot = log[row].slot
    live = slot >= 0 and orders[slot].order_id == r.order_id
    if r.kind == RSP_FILL:
        scale = cfg[G_PRICE_SCALE]
        signed = r.qty if r.side == BUY else -r.qty
        ctx.position += signed
        ctx.cash -= signed * (r.price / scale) + r.fee
        ctx.last_fill_price = r.price
        ctx.last_fill_qty = r.qty
        ctx.last_fill_side = r.side
        if live:
            o = orders[slot]
            o.filled += r.qty
            o.leaves -= r.qty
            if r.side == BUY:
                ctx.open_bid_qty -= r.qty
            else:
                ctx.open_ask_qty -= r.qty
            if r.leaves == 0 and o.leaves <= 0:
                o.leaves = 0
                _free_live(c, slot)
    elif r.kind == RSP_ACK:
        if live and orders[slot].state == OS_PENDING_NEW:
            orders[slot].state = OS_LIVE
    elif r.kind == RSP_CANCELLED or r.kind == RSP_REJECTED:
        if live:
            _free_live(c, slot)
    elif r.kind == RSP_CANCEL_REJECTED:
        if live and orders[slot].state == OS_PENDING_CANCEL:
            orders[slot].state = OS_LIVE
    ctx.equity = ctx.cash + ctx.position * (mview[0].mid / cfg[G_PRICE_SCALE])
    # an ack changes nothing a strategy decides on (the order was already in ``orders``):
    # no wake, which saves a strategy call per order
    return r.kind != RSP_ACK


@kernel
def deliver_feed(c):
    """The view at the head of the feed ring reaches the strategy."""
    ctxs = backtest_ctx(c)
    mview = backtest_mview(c)
    feed = backtest_feed(c)
    cn = backtest_cnt(c)
    cfg = backtest_cfg(c)
    v = feed[cn[BC_FEED_HEAD] & (len(feed) - 1)]
    cn[BC_FEED_HEAD] += 1
    mview[0] = v
    ctx = ctxs[0]
    ctx.ts = v.local_ts
    ctx.exch_ts = v.exch_ts
    ctx.wake = W_MARKET
    ctx.equity = ctx.cash + ctx.position * (v.mid / cfg[G_PRICE_SCALE])


@kernel
def _log_order(c, now, kind, side, price, qty, tif):
    log = backtest_log(c)
    cnt = backtest_cnt(c)
    n = cnt[BC_ORDERS]
    if n >= len(log):
        return -1
    cnt[BC_ORDERS] = n + 1
    o = log[n]
    o.order_id = STRATEGY_ID_BASE + n
    o.submit_ts = now
    o.arrival_ts = -1
    o.done_ts = -1
    o.price = price
    o.qty = qty
    o.filled = 0
    o.queue_ahead = -1
    o.arrival_mid = 0.0
    o.slot = -1
    o.side = side
    o.tif = tif
    o.status = LS_PENDING
    o.risk_reason = 0
    o.exchange_reason = 0
    return n


@kernel
def _push_entry(c, t, kind, order_id, side, price, qty, tif):
    entry = backtest_entry(c)
    cnt = backtest_cnt(c)
    if _ring_full(c, BC_ENTRY_HEAD, BC_ENTRY_TAIL, entry):
        return False
    t = max(t, cnt[BC_ENTRY_LAST])
    cnt[BC_ENTRY_LAST] = t
    p = entry[cnt[BC_ENTRY_TAIL] & (len(entry) - 1)]
    cnt[BC_ENTRY_TAIL] += 1
    p.ts = t
    p.kind = kind
    p.order_id = order_id
    p.side = side
    p.price = price
    p.qty = qty
    p.tif = tif
    return True


@kernel
def _send_cancel(c, now, entry_lat, order_id):
    orders = backtest_orders(c)
    log = backtest_log(c)
    cnt = backtest_cnt(c)
    if order_id < STRATEGY_ID_BASE or order_id - STRATEGY_ID_BASE >= cnt[BC_ORDERS]:
        return
    row = order_id - STRATEGY_ID_BASE
    slot = log[row].slot
    if slot < 0 or orders[slot].order_id != order_id:
        return  # already done as far as the strategy knows
    o = orders[slot]
    if o.state == OS_PENDING_CANCEL:
        return
    o.state = OS_PENDING_CANCEL
    _push_entry(c, now + entry_lat, A_CANCEL, order_id, o.side, o.price, o.qty, GTC)


@kernel
def submit_actions(c, n, now, entry_lat):
    """Risk-check the strategy's ``n`` actions and send what passes (order entry)."""
    ctxs = backtest_ctx(c)
    mview = backtest_mview(c)
    orders = backtest_orders(c)
    actions = backtest_actions(c)
    log = backtest_log(c)
    cnt = backtest_cnt(c)
    cfg = backtest_cfg(c)
    risk_params = backtest_risk_params(c)
    risk_state = backtest_risk_state(c)
    ctx = ctxs[0]
    scale = cfg[G_PRICE_SCALE]
    killed = krisk.update_kill_switch(risk_params, risk_state, ctx.equity)
    if killed:
        ctx.killed = 1
        if cnt[BC_KILL_SENT] == 0:
            cnt[BC_KILL_SENT] = 1
            for slot in range(len(orders)):
                if orders[slot].state == OS_PENDING_NEW or orders[slot].state == OS_LIVE:
                    _send_cancel(c, now, entry_lat, orders[slot].order_id)
    for k in range(n):
        a = actions[k]
        if a.kind == A_CANCEL:
            _send_cancel(c, now, entry_lat, a.order_id)
            continue
        if a.kind != A_NEW:
            continue
        open_same = ctx.open_bid_qty if a.side == BUY else ctx.open_ask_qty
        reason = krisk.check_new_order(risk_params, risk_state, now, a.side, a.price, a.qty,
                                    ctx.position, open_same, mview[0].mid, scale)
        slot = -1
        if reason == krisk.RK_NONE:
            for j in range(len(orders)):
                if orders[j].state == OS_FREE:
                    slot = j
                    break
            if slot < 0:
                reason = krisk.RK_MAX_OPEN
        row = _log_order(c, now, A_NEW, a.side, a.price, a.qty, a.tif)
        if row < 0:
            cnt[BC_RISK_REJECTS + krisk.RK_MAX_OPEN] += 1
            continue
        oid = STRATEGY_ID_BASE + row
        a.order_id = oid
        if reason != krisk.RK_NONE:
            cnt[BC_RISK_REJECTS + reason] += 1
            lo = log[row]
            lo.status = LS_REJECTED
            lo.risk_reason = reason
            lo.done_ts = now
            continue
        tif = a.tif if a.tif == IOC or a.tif == FOK or a.tif == GTX else GTC
        if not _push_entry(c, now + entry_lat, A_NEW, oid, a.side, a.price, a.qty, tif):
            return
        log[row].slot = slot
        o = orders[slot]
        o.order_id = oid
        o.price = a.price
        o.qty = a.qty
        o.leaves = a.qty
        o.filled = 0
        o.side = a.side
        o.tif = tif
        o.state = OS_PENDING_NEW
        if a.side == BUY:
            ctx.open_bid_qty += a.qty
        else:
            ctx.open_ask_qty += a.qty


@kernel
def finish(c, ts):
    """End of data: write a last step at ``ts``."""
    write_step(c, ts)


# -------------------------------------------------------------------------- the loop
@kernel(cache=False)
def run_l3(strategy, latency, context, events, start, stop):
    """Run ``events[start:stop]`` (one book, index 0) with ``strategy`` and ``latency``.

    Returns ``(next_event, status)``; call again from ``next_event`` to continue (state
    persists in the arrays behind ``context``, from ``kernels.state_views.backtest_context``).
    When ``stop == len(events)`` pending orders and responses drain after the last
    event (no more strategy wakes). Not cacheable: it takes functions
    as arguments, so Numba compiles it once per (strategy, latency model) pair and
    process (about 1.5-2 s here); every helper it calls is cached.
    """
    c = borrow_context(context)
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
    limit_ts = events[stop].ts if stop < n_events else INF_TS
    last_ts = events[n_events - 1].ts if n_events > 0 else INF_TS
    if n_events > 0:
        timer_start(c, events[0].ts)
    timer_on = cfg[G_TIMER_NS] > 0 and n_events > 0
    lp = lat_params
    lt = lat_table
    i = start
    ctx = ctxs[0]
    kill_watch = risk_params[krisk.RP_MAX_LOSS] > 0 or risk_params[krisk.RP_KILL] != 0
    while cnt[BC_STATUS] == BT_OK:
        tr, tf, te = next_times(c)
        t = min(tr, min(tf, te))
        # the next timer wake (none after the last market event)
        tt = cnt[BC_NEXT_TIMER] if timer_on else INF_TS
        if tt >= last_ts:
            tt = INF_TS
        tx = events[i].ts if i < stop else INF_TS
        if i >= stop and (t == INF_TS or t > limit_ts) and tt >= limit_ts:
            break
        if tt < tx and tt < t:
            # the timer: after everything stamped at or before it
            timer_fire(c, tt)
            t0 = now_ns()
            n = strategy(ctx, mview[0], orders, params, actions)
            n = min(n, len(actions))
            if n > 0 or kill_watch:
                submit_actions(c, n, tt, latency(LAT_ENTRY, tt, lp, lt, rng))
            if n > 0:
                histogram.record(hist, now_ns() - t0)
        elif t <= tx:
            if tr == t or tf == t:
                wake = True
                if tr == t:
                    wake = deliver_response(c)
                else:
                    deliver_feed(c)
                if wake and i < n_events:
                    ctx.n_wakes += 1
                    cnt[BC_WAKES] += 1
                    t0 = now_ns()
                    n = strategy(ctx, mview[0], orders, params, actions)
                    n = min(n, len(actions))
                    if n > 0 or kill_watch:
                        submit_actions(c, n, t, latency(LAT_ENTRY, t, lp, lt, rng))
                    if n > 0:
                        histogram.record(hist, now_ns() - t0)
            else:
                if exchange_entry(c, latency(LAT_RESPONSE, t, lp, lt, rng)):
                    push_feed(c, t, t + latency(LAT_FEED, t, lp, lt, rng))
        else:
            e = events[i]
            i += 1
            if exchange_event(c, e, latency(LAT_RESPONSE, e.ts, lp, lt, rng)):
                push_feed(c, e.ts, e.ts + latency(LAT_FEED, e.ts, lp, lt, rng))
    return i, cnt[BC_STATUS]



