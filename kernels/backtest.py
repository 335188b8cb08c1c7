"""The tick-replay backtester (L3): market events and the strategy's own orders share
one ``kernels.book`` state, with feed / order-entry / response latency, exact FIFO
queue positions, maker/taker fees, pre-trade risk and P&L accounting.

Owns the record dtypes of a backtest (``ACTION``, ``CTX``, ``VIEW``, ``LIVE``,
``PENDING``, ``RESPONSE``, ``ORDER_LOG``, ``OWN_FILL``, ``STEP``), the state bundle
``BacktestState`` and the kernels of the event loop. :func:`run_l3` is the loop.

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

Queue position (L3): own orders rest in the same FIFO queues as the market's, so an
aggressive market order (``EV_ADD`` that crosses) reaches them in exact price-time
order. Replayed executions by id (LOBSTER type 4, the simulator's default) need a
rule, because the exchange never saw our orders: an execution of resting order X at
price p on side s means an aggressor traded through every order ahead of X. Hence,
before the execution is applied, each own order on side s priced better than p, and
each own order at p that sits ahead of X in the queue, is filled in full (at its own
price, as a maker). Own orders behind X are not touched. Executions of ids the book
never saw act on the anonymous volume at that price (``C_ANON_FALLBACK``), whose
queue place is where it was created; with no such volume the rule fills nothing
(its place is unknown: conservative). This is the usual no-market-impact assumption:
our fills do not reduce the market's own recorded executions. The other way round
there is impact: an own order that crosses takes real orders' quantity out of the
replayed book, so later messages about what it consumed may be rejected by the book;
they are counted (``C_MARKET_REJECTS``), never fatal.

Strategy signature (see ``kernels.strategies``)::

    strategy(ctx, view, orders, params, actions) -> number of actions written

``ctx`` (CTX record: local time, known position/cash/equity, last fill, scratch
``mem``), ``view`` (VIEW record: the delivered top of book and own best orders with
their queue position), ``orders`` (LIVE array: the strategy's open orders as it
knows them), ``params`` (float64 array), ``actions`` (ACTION array to fill).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import carray

from . import histogram as H
from . import risk as RK
from .book import (
    BOOK, C_ANON_FALLBACK, LEVEL, BookState, address_as_pointer, anon_order_id, apply_event,
    index_find, level_index, next_level, queue_position,
)
from .clock import now_ns
from .jit import kernel
from .latency_models import LAT_ENTRY, LAT_FEED, LAT_RESPONSE
from .records import ORDER as ORDER_DT
from .records import (
    BUY, EV_ADD, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, FILL, FOK, GTC, IOC, LIMIT,
    R_UNKNOWN_ORDER, SELL, ST_REJECTED,
)

STRATEGY_ID_BASE = np.int64(1) << 62   # own order ids: STRATEGY_ID_BASE + order log index
INF_TS = np.int64(2**62)

# ----------------------------------------------------------------- action kinds
A_NEW = 1
A_CANCEL = 2

# ------------------------------------------------------- live (local) order states
OS_FREE = 0
OS_PENDING_NEW = 1
OS_LIVE = 2
OS_PENDING_CANCEL = 3

# ------------------------------------------------------------------ response kinds
RSP_ACK = 1
RSP_FILL = 2
RSP_CANCELLED = 3
RSP_REJECTED = 4
RSP_CANCEL_REJECTED = 5

# ------------------------------------------------------------------------ wake kinds
W_MARKET = 1
W_RESPONSE = 2

# ---------------------------------------------------------- order log final status
LS_PENDING = 0   # sent, not yet at the exchange (or at the end of the data)
LS_OPEN = 1      # resting at the end
LS_FILLED = 2
LS_CANCELLED = 3
LS_REJECTED = 4  # by risk (risk_reason) or the exchange (exchange_reason)

LIQ_MAKER = 0
LIQ_TAKER = 1

# ------------------------------------------------------------------------- dtypes
ACTION = np.dtype([("order_id", np.int64), ("price", np.int64), ("qty", np.int64),
                   ("kind", np.int8), ("side", np.int8), ("tif", np.int8)], align=True)

N_MEM = 16
CTX = np.dtype([
    ("ts", np.int64),             # local time of this wake (ns)
    ("exch_ts", np.int64),        # exchange time of the latest view delivered
    ("position", np.int64),       # position as the strategy knows it (from responses)
    ("cash", np.float64),         # cash as it knows it (fees included)
    ("equity", np.float64),       # cash + position * mid of the delivered view
    ("last_fill_price", np.int64),
    ("last_fill_qty", np.int64),
    ("last_fill_side", np.int64),
    ("wake", np.int64),           # W_MARKET or W_RESPONSE
    ("n_wakes", np.int64),
    ("open_bid_qty", np.int64),   # pending + resting quantity it has on each side
    ("open_ask_qty", np.int64),
    ("tick", np.int64),           # price units
    ("price_scale", np.int64),
    ("killed", np.int64),         # kill switch tripped
    ("mem", np.float64, (N_MEM,)),  # strategy scratch (moving averages, counters...)
], align=True)

VIEW = np.dtype([
    ("local_ts", np.int64),       # when it reaches the strategy
    ("exch_ts", np.int64),
    ("bid", np.int64), ("bid_qty", np.int64),   # 0 / 0 when the side is empty
    ("ask", np.int64), ("ask_qty", np.int64),
    ("mid", np.float64),          # price units; last two-sided mid
    ("last_price", np.int64), ("last_qty", np.int64), ("last_side", np.int64),  # aggressor side
    ("own_bid_id", np.int64), ("own_bid_price", np.int64), ("own_bid_leaves", np.int64),
    ("own_bid_ahead", np.int64),  # quantity ahead of the own best bid in its queue
    ("own_ask_id", np.int64), ("own_ask_price", np.int64), ("own_ask_leaves", np.int64),
    ("own_ask_ahead", np.int64),
], align=True)

LIVE = np.dtype([("order_id", np.int64), ("price", np.int64), ("qty", np.int64),
                 ("leaves", np.int64), ("filled", np.int64), ("side", np.int8),
                 ("state", np.int8), ("tif", np.int8)], align=True)

PENDING = np.dtype([("ts", np.int64), ("order_id", np.int64), ("price", np.int64),
                    ("qty", np.int64), ("kind", np.int8), ("side", np.int8), ("tif", np.int8)],
                   align=True)

RESPONSE = np.dtype([("ts", np.int64), ("order_id", np.int64), ("price", np.int64),
                     ("qty", np.int64), ("leaves", np.int64), ("fee", np.float64),
                     ("kind", np.int8), ("side", np.int8), ("reason", np.int8)], align=True)

ORDER_LOG = np.dtype([
    ("order_id", np.int64), ("submit_ts", np.int64), ("arrival_ts", np.int64),
    ("done_ts", np.int64), ("price", np.int64), ("qty", np.int64), ("filled", np.int64),
    ("queue_ahead", np.int64),    # quantity ahead when it started resting (-1: never rested)
    ("arrival_mid", np.float64),  # exchange mid when it arrived (price units)
    ("slot", np.int32),           # its row in the LIVE table while open
    ("side", np.int8), ("tif", np.int8), ("status", np.int8),
    ("risk_reason", np.int8), ("exchange_reason", np.int8),
], align=True)

OWN_FILL = np.dtype([
    ("ts", np.int64), ("known_ts", np.int64), ("order_id", np.int64), ("price", np.int64),
    ("qty", np.int64), ("position", np.int64), ("time_in_queue", np.int64),
    ("fee", np.float64), ("arrival_mid", np.float64), ("mid", np.float64),
    ("slippage_bps", np.float64), ("side", np.int8), ("liquidity", np.int8),
], align=True)

STEP = np.dtype([
    ("ts", np.int64), ("position", np.int64), ("bid", np.int64), ("ask", np.int64),
    ("quote_bid", np.int64), ("quote_ask", np.int64),
    ("mid", np.float64), ("cash", np.float64), ("equity", np.float64),
    ("realised", np.float64), ("unrealised", np.float64), ("fees", np.float64),
], align=True)

# ------------------------------------------------------------------- counters (int64)
C_STATUS = 0
C_WAKES = 1
C_FEED_PUSHES = 2
C_ORDERS = 3          # order log rows used
C_CANCELS = 4
C_FILLS = 5           # own fills (records written + dropped)
C_STEPS = 6
C_POSITION = 7        # exchange-truth position
C_NEXT_STEP_TS = 8
C_RESTING = 9         # own orders resting in the book
C_FEED_HEAD = 10
C_FEED_TAIL = 11
C_ENTRY_HEAD = 12
C_ENTRY_TAIL = 13
C_RESP_HEAD = 14
C_RESP_TAIL = 15
C_FEED_LAST = 16
C_ENTRY_LAST = 17
C_RESP_LAST = 18
C_BID = 19
C_BID_QTY = 20
C_ASK = 21
C_ASK_QTY = 22
C_LAST_PRICE = 23
C_LAST_QTY = 24
C_LAST_SIDE = 25
C_MAKER_FILLS = 26
C_TAKER_FILLS = 27
C_DROPPED_FILLS = 28
C_DROPPED_STEPS = 29
C_KILL_SENT = 30
C_EVENTS = 31         # market events applied
C_MARKET_REJECTS = 32  # market events the book rejected (unknown ids in gappy files...)
C_TRADE_THROUGH = 33   # own fills from the trade-through rule
C_FILLED_QTY = 34
C_RISK_REJECTS = 40    # + RK_* code
C_EXCH_REJECTS = 56    # + R_* code (own orders)
N_COUNTERS = 80

# status codes (C_STATUS)
BT_OK = 0
BT_RING_FULL = 1

# --------------------------------------------------------------- accounting (float64)
A_CASH = 0
A_AVG_PRICE = 1       # average entry price of the open position (currency)
A_REALISED = 2        # realised P&L after fees
A_FEES = 3
A_MID = 4             # exchange mid (price units), last two-sided
A_TURNOVER = 5        # traded notional (currency)
N_ACC = 8

# -------------------------------------------------------------------- config (int64)
G_RECORD_EVERY_NS = 0
G_PRICE_SCALE = 1
G_TICK = 2
N_CFG = 4

# fees (float64): maker and taker fee in basis points of notional (negative = rebate)
F_MAKER_BPS = 0
F_TAKER_BPS = 1


class BacktestState(NamedTuple):
    """Every array a backtest run touches; allocated once in Python."""

    st: BookState
    fills: np.ndarray        # FILL scratch for apply_event
    ctx: np.ndarray          # CTX[1]
    mview: np.ndarray        # VIEW[1]: the view last delivered
    orders: np.ndarray       # LIVE[max_open]
    actions: np.ndarray      # ACTION[max_actions]
    params: np.ndarray       # float64 strategy parameters
    log: np.ndarray          # ORDER_LOG[max_orders]
    own_fills: np.ndarray    # OWN_FILL[max_fills]
    steps: np.ndarray        # STEP[max_steps]
    feed: np.ndarray         # VIEW ring (power of two)
    entry: np.ndarray        # PENDING ring
    resp: np.ndarray         # RESPONSE ring
    resting: np.ndarray      # int64[max_open]: log rows of own orders resting in the book
    cnt: np.ndarray          # int64[N_COUNTERS]
    acc: np.ndarray          # float64[N_ACC]
    cfg: np.ndarray          # int64[N_CFG]
    fees: np.ndarray         # float64[2]
    risk_params: np.ndarray  # float64[risk.N_RISK_PARAMS]
    risk_state: np.ndarray   # int64[risk.N_RISK_STATE]
    lat_params: np.ndarray   # float64[3+]
    lat_table: np.ndarray    # int64[3, m]
    rng: np.ndarray          # int64[1]
    hist: np.ndarray         # tick-to-trade histogram (kernels.histogram)


# ------------------------------------------------------------------------ helpers
@kernel(inline="always")
def is_own(order_id):
    return order_id >= STRATEGY_ID_BASE


@kernel
def _own_qty_at(c, side, price):
    """Quantity of own orders resting at (side, price)."""
    s = state_from_context(c)
    q = np.int64(0)
    for k in range(s.cnt[C_RESTING]):
        o = s.log[s.resting[k]]
        if o.side == side and o.price == price:
            q += o.qty - o.filled
    return q


@kernel
def _market_top(c, side):
    """(price, qty) of the best level on ``side`` holding market (not own) quantity."""
    s = state_from_context(c)
    st = s.st
    b = st.books[0]
    idx = b.best[side]
    while idx >= 0:
        price = b.base + idx * b.tick
        qty = st.levels[level_index(st, 0, side, idx)].qty
        if s.cnt[C_RESTING] > 0:
            qty -= _own_qty_at(c, side, price)
        if qty > 0:
            return price, qty
        idx = next_level(st, 0, side, idx)
    return np.int64(0), np.int64(0)


@kernel
def _refresh_top(c):
    """Read the market's top of book (own orders excluded: a strategy prices off the
    others' liquidity and knows its own orders) into the counters; True when changed."""
    s = state_from_context(c)
    bid, bid_qty = _market_top(c, BUY)
    ask, ask_qty = _market_top(c, SELL)
    cn = s.cnt
    changed = (bid != cn[C_BID] or ask != cn[C_ASK] or bid_qty != cn[C_BID_QTY]
               or ask_qty != cn[C_ASK_QTY])
    cn[C_BID] = bid
    cn[C_BID_QTY] = bid_qty
    cn[C_ASK] = ask
    cn[C_ASK_QTY] = ask_qty
    if bid > 0 and ask > 0 and ask > bid:
        s.acc[A_MID] = 0.5 * (bid + ask)
    elif s.acc[A_MID] <= 0 and (bid > 0 or ask > 0):
        s.acc[A_MID] = np.float64(bid if bid > 0 else ask)
    return changed


@kernel
def _own_best(c, side):
    """Log row of the best-priced own order resting on ``side`` (-1 if none)."""
    s = state_from_context(c)
    best = -1
    best_price = np.int64(0)
    for k in range(s.cnt[C_RESTING]):
        row = s.resting[k]
        o = s.log[row]
        if o.side != side:
            continue
        if best < 0 or (side == BUY and o.price > best_price) or (side == SELL and o.price < best_price):
            best = row
            best_price = o.price
    return best


@kernel
def _equity(c, mid):
    s = state_from_context(c)
    return s.acc[A_CASH] + s.cnt[C_POSITION] * (mid / s.cfg[G_PRICE_SCALE])


@kernel
def write_step(c, ts):
    s = state_from_context(c)
    n = s.cnt[C_STEPS]
    if n >= len(s.steps):
        s.cnt[C_DROPPED_STEPS] += 1
        return
    s.cnt[C_STEPS] = n + 1
    r = s.steps[n]
    scale = s.cfg[G_PRICE_SCALE]
    mid = s.acc[A_MID]
    pos = s.cnt[C_POSITION]
    r.ts = ts
    r.position = pos
    r.bid = s.cnt[C_BID]
    r.ask = s.cnt[C_ASK]
    qb = _own_best(c, BUY)
    qa = _own_best(c, SELL)
    r.quote_bid = s.log[qb].price if qb >= 0 else 0
    r.quote_ask = s.log[qa].price if qa >= 0 else 0
    r.mid = mid
    r.cash = s.acc[A_CASH]
    r.equity = _equity(c, mid)
    r.realised = s.acc[A_REALISED]
    r.unrealised = pos * (mid / scale - s.acc[A_AVG_PRICE]) if pos != 0 else 0.0
    r.fees = s.acc[A_FEES]


# --------------------------------------------------------------------------- rings
@kernel
def _ring_full(c, head, tail, ring):
    s = state_from_context(c)
    if s.cnt[tail] - s.cnt[head] >= len(ring):
        s.cnt[C_STATUS] = BT_RING_FULL
        return True
    return False


@kernel
def _push_response(c, t, kind, order_id, side, price, qty, leaves, fee, reason):
    s = state_from_context(c)
    if _ring_full(c, C_RESP_HEAD, C_RESP_TAIL, s.resp):
        return
    t = max(t, s.cnt[C_RESP_LAST])
    s.cnt[C_RESP_LAST] = t
    r = s.resp[s.cnt[C_RESP_TAIL] & (len(s.resp) - 1)]
    s.cnt[C_RESP_TAIL] += 1
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
def push_feed(c, exch_ts, deliver_ts):
    """Snapshot the market view (top of book, last trade, own best orders and their
    queue position) for delivery to the strategy at ``deliver_ts``."""
    s = state_from_context(c)
    if _ring_full(c, C_FEED_HEAD, C_FEED_TAIL, s.feed):
        return
    t = max(deliver_ts, s.cnt[C_FEED_LAST])
    s.cnt[C_FEED_LAST] = t
    s.cnt[C_FEED_PUSHES] += 1
    v = s.feed[s.cnt[C_FEED_TAIL] & (len(s.feed) - 1)]
    s.cnt[C_FEED_TAIL] += 1
    cn = s.cnt
    v.local_ts = t
    v.exch_ts = exch_ts
    v.bid = cn[C_BID]
    v.bid_qty = cn[C_BID_QTY]
    v.ask = cn[C_ASK]
    v.ask_qty = cn[C_ASK_QTY]
    v.mid = s.acc[A_MID]
    v.last_price = cn[C_LAST_PRICE]
    v.last_qty = cn[C_LAST_QTY]
    v.last_side = cn[C_LAST_SIDE]
    for side in range(2):
        row = _own_best(c, side)
        oid = np.int64(0)
        price = np.int64(0)
        leaves = np.int64(0)
        ahead = np.int64(-1)
        if row >= 0:
            oid = s.log[row].order_id
            price = s.log[row].price
            ahead, _ = queue_position(s.st, 0, oid)
            pos = index_find(s.st, oid, 0)
            leaves = s.st.pool[s.st.index_slots[pos]].qty if pos >= 0 else 0
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
    s = state_from_context(c)
    cn = s.cnt
    tr = s.resp[cn[C_RESP_HEAD] & (len(s.resp) - 1)].ts if cn[C_RESP_TAIL] > cn[C_RESP_HEAD] else INF_TS
    tf = s.feed[cn[C_FEED_HEAD] & (len(s.feed) - 1)].local_ts if cn[C_FEED_TAIL] > cn[C_FEED_HEAD] else INF_TS
    te = s.entry[cn[C_ENTRY_HEAD] & (len(s.entry) - 1)].ts if cn[C_ENTRY_TAIL] > cn[C_ENTRY_HEAD] else INF_TS
    return tr, tf, te


# -------------------------------------------------------------------- accounting
@kernel
def _remove_resting_row(c, row):
    s = state_from_context(c)
    n = s.cnt[C_RESTING]
    for k in range(n):
        if s.resting[k] == row:
            s.resting[k] = s.resting[n - 1]
            s.cnt[C_RESTING] = n - 1
            return


@kernel
def _book_fill(c, ts, order_id, side, price, qty, leaves, liquidity, maker_ts, resp_lat):
    """Account one own fill at exchange time ``ts`` and queue its response."""
    s = state_from_context(c)
    scale = s.cfg[G_PRICE_SCALE]
    acc = s.acc
    px = price / scale
    signed = qty if side == BUY else -qty
    pos = s.cnt[C_POSITION]
    # average-cost realised P&L
    if pos == 0 or (pos > 0) == (signed > 0):
        total = abs(pos) + qty
        acc[A_AVG_PRICE] = (acc[A_AVG_PRICE] * abs(pos) + px * qty) / total
    else:
        closing = min(qty, abs(pos))
        acc[A_REALISED] += closing * (px - acc[A_AVG_PRICE]) * (1.0 if pos > 0 else -1.0)
        if qty > abs(pos):
            acc[A_AVG_PRICE] = px
        elif qty == abs(pos):
            acc[A_AVG_PRICE] = 0.0
    new_pos = pos + signed
    s.cnt[C_POSITION] = new_pos
    notional = qty * px
    fee_bps = s.fees[F_MAKER_BPS] if liquidity == LIQ_MAKER else s.fees[F_TAKER_BPS]
    fee = notional * fee_bps * 1e-4
    acc[A_CASH] -= signed * px + fee
    acc[A_REALISED] -= fee
    acc[A_FEES] += fee
    acc[A_TURNOVER] += notional
    s.cnt[C_FILLED_QTY] += qty
    if liquidity == LIQ_MAKER:
        s.cnt[C_MAKER_FILLS] += 1
    else:
        s.cnt[C_TAKER_FILLS] += 1
    row = order_id - STRATEGY_ID_BASE
    o = s.log[row]
    o.filled += qty
    if leaves == 0:
        o.status = LS_FILLED
        o.done_ts = ts
        _remove_resting_row(c, row)
    n = s.cnt[C_FILLS]
    s.cnt[C_FILLS] = n + 1
    known = max(ts + resp_lat, s.cnt[C_RESP_LAST])
    if n < len(s.own_fills):
        f = s.own_fills[n]
        f.ts = ts
        f.known_ts = known
        f.order_id = order_id
        f.price = price
        f.qty = qty
        f.position = new_pos
        f.time_in_queue = ts - maker_ts if liquidity == LIQ_MAKER else 0
        f.fee = fee
        f.arrival_mid = o.arrival_mid
        f.mid = acc[A_MID]
        am = o.arrival_mid
        if am > 0:
            f.slippage_bps = ((price - am) if side == BUY else (am - price)) / am * 1e4
        else:
            f.slippage_bps = 0.0
        f.side = side
        f.liquidity = liquidity
    else:
        s.cnt[C_DROPPED_FILLS] += 1
    _push_response(c, ts + resp_lat, RSP_FILL, order_id, side, price, qty, leaves, fee, 0)
    write_step(c, ts)


@kernel
def _scan_fills(c, nf, resp_lat):
    """Book the own side of the fills just written; note the last market trade."""
    s = state_from_context(c)
    for k in range(nf):
        f = s.fills[k]
        s.cnt[C_LAST_PRICE] = f.price
        s.cnt[C_LAST_QTY] = f.qty
        s.cnt[C_LAST_SIDE] = f.taker_side
        if is_own(f.maker_id):
            _book_fill(c, f.ts, f.maker_id, 1 - f.taker_side, f.price, f.qty, f.maker_leaves,
                       LIQ_MAKER, f.maker_ts, resp_lat)
        if is_own(f.taker_id):
            # the running remainder; an IOC remainder is cancelled (and reported) after
            o = s.log[f.taker_id - STRATEGY_ID_BASE]
            leaves = o.qty - o.filled - f.qty
            _book_fill(c, f.ts, f.taker_id, f.taker_side, f.price, f.qty, leaves,
                       LIQ_TAKER, f.ts, resp_lat)


@kernel
def _ahead_of(c, own_slot, other_slot):
    """True when pool slot ``own_slot`` precedes ``other_slot`` in their level's FIFO."""
    s = state_from_context(c)
    cur = s.st.pool[own_slot].next
    while cur >= 0:
        if cur == other_slot:
            return True
        cur = s.st.pool[cur].next
    return False


@kernel
def _trade_through(c, ts, side, price, order_id, resp_lat):
    """The execution rule of the module docstring: fill own orders on ``side`` that an
    execution of ``order_id`` at ``price`` must have traded through."""
    s = state_from_context(c)
    st = s.st
    other = index_find(st, order_id, 0)
    if other < 0 and st.counters[C_ANON_FALLBACK] != 0:
        other = index_find(st, anon_order_id(0, side, price), 0)
    other_slot = st.index_slots[other] if other >= 0 else -1
    k = 0
    while k < s.cnt[C_RESTING]:
        row = s.resting[k]
        o = s.log[row]
        hit = False
        if o.side == side:
            if (side == BUY and o.price > price) or (side == SELL and o.price < price):
                hit = True
            elif o.price == price and other_slot >= 0:
                pos = index_find(st, o.order_id, 0)
                if pos >= 0 and _ahead_of(c, st.index_slots[pos], other_slot):
                    hit = True
        if hit:
            pos = index_find(st, o.order_id, 0)
            leaves = st.pool[st.index_slots[pos]].qty
            r = apply_event(st, s.fills, 0, ts, o.order_id, o.price, leaves, 0, EV_EXECUTE,
                            o.side, LIMIT, GTC)
            s.cnt[C_TRADE_THROUGH] += 1
            _scan_fills(c, r[5], resp_lat)  # removes the row from ``resting``
            # ``other_slot`` is unchanged: executing a different order never moves it
        else:
            k += 1


@kernel
def exchange_event(c, e, resp_lat):
    """Apply one market event at exchange time; True when the strategy's view changed."""
    s = state_from_context(c)
    traded = False
    if e.kind == EV_EXECUTE:
        if s.cnt[C_RESTING] > 0:
            _trade_through(c, e.ts, e.side, e.price, e.order_id, resp_lat)
        traded = True
        s.cnt[C_LAST_PRICE] = e.price
        s.cnt[C_LAST_QTY] = e.qty
        s.cnt[C_LAST_SIDE] = 1 - e.side
    elif e.kind == EV_EXECUTE_HIDDEN or e.kind == EV_CROSS:
        traded = True
        s.cnt[C_LAST_PRICE] = e.price
        s.cnt[C_LAST_QTY] = e.qty
        s.cnt[C_LAST_SIDE] = 1 - e.side
    r = apply_event(s.st, s.fills, 0, e.ts, e.order_id, e.price, e.qty, 0, e.kind, e.side,
                    e.order_type, e.tif)
    s.cnt[C_EVENTS] += 1
    if r[0] == ST_REJECTED:
        s.cnt[C_MARKET_REJECTS] += 1
    nf = r[5]
    if nf > 0:
        traded = True
        _scan_fills(c, nf, resp_lat)
    changed = _refresh_top(c)
    if e.ts >= s.cnt[C_NEXT_STEP_TS]:
        write_step(c, e.ts)
        step = s.cfg[G_RECORD_EVERY_NS]
        s.cnt[C_NEXT_STEP_TS] = (e.ts // step + 1) * step
    return changed or traded


@kernel
def exchange_entry(c, resp_lat):
    """The order at the head of the entry ring reaches the exchange."""
    s = state_from_context(c)
    cn = s.cnt
    p = s.entry[cn[C_ENTRY_HEAD] & (len(s.entry) - 1)]
    cn[C_ENTRY_HEAD] += 1
    ts = p.ts
    row = p.order_id - STRATEGY_ID_BASE
    o = s.log[row]
    if p.kind == A_NEW:
        o.arrival_ts = ts
        o.arrival_mid = s.acc[A_MID]
        r = apply_event(s.st, s.fills, 0, ts, p.order_id, p.price, p.qty, 0, EV_ADD, p.side,
                        LIMIT, p.tif)
        status = r[0]
        if status == ST_REJECTED:
            o.status = LS_REJECTED
            o.exchange_reason = r[1]
            o.done_ts = ts
            cn[C_EXCH_REJECTS + r[1]] += 1
            _push_response(c, ts + resp_lat, RSP_REJECTED, p.order_id, p.side, p.price, p.qty,
                           0, 0.0, r[1])
        else:
            leaves = r[4]
            if leaves > 0:
                o.status = LS_OPEN
                c_rest = cn[C_RESTING]
                s.resting[c_rest] = row
                cn[C_RESTING] = c_rest + 1
                ahead, _ = queue_position(s.st, 0, p.order_id)
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
        pos = index_find(s.st, p.order_id, 0)
        if pos >= 0:
            r = apply_event(s.st, s.fills, 0, ts, p.order_id, 0, 0, 0, EV_DELETE, p.side,
                            LIMIT, GTC)
            o.status = LS_CANCELLED
            o.done_ts = ts
            _remove_resting_row(c, row)
            cn[C_CANCELS] += 1
            _push_response(c, ts + resp_lat, RSP_CANCELLED, p.order_id, p.side, o.price, o.qty,
                           0, 0.0, 0)
        else:
            cn[C_EXCH_REJECTS + R_UNKNOWN_ORDER] += 1
            _push_response(c, ts + resp_lat, RSP_CANCEL_REJECTED, p.order_id, p.side, o.price,
                           o.qty, 0, 0.0, R_UNKNOWN_ORDER)
    changed = _refresh_top(c)
    return changed


# ------------------------------------------------------------------ strategy side
@kernel
def _free_live(c, slot):
    s = state_from_context(c)
    o = s.orders[slot]
    if o.state == OS_FREE:
        return
    if o.side == BUY:
        s.ctx[0].open_bid_qty -= o.leaves
    else:
        s.ctx[0].open_ask_qty -= o.leaves
    o.state = OS_FREE
    o.order_id = 0
    o.leaves = 0


@kernel
def deliver_response(c):
    """The response at the head of its ring reaches the strategy: update what it knows.
    Returns whether the strategy should be woken."""
    s = state_from_context(c)
    cn = s.cnt
    r = s.resp[cn[C_RESP_HEAD] & (len(s.resp) - 1)]
    cn[C_RESP_HEAD] += 1
    ctx = s.ctx[0]
    ctx.ts = r.ts
    ctx.wake = W_RESPONSE
    row = r.order_id - STRATEGY_ID_BASE
    slot = s.log[row].slot
    live = slot >= 0 and s.orders[slot].order_id == r.order_id
    if r.kind == RSP_FILL:
        scale = s.cfg[G_PRICE_SCALE]
        signed = r.qty if r.side == BUY else -r.qty
        ctx.position += signed
        ctx.cash -= signed * (r.price / scale) + r.fee
        ctx.last_fill_price = r.price
        ctx.last_fill_qty = r.qty
        ctx.last_fill_side = r.side
        if live:
            o = s.orders[slot]
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
        if live and s.orders[slot].state == OS_PENDING_NEW:
            s.orders[slot].state = OS_LIVE
    elif r.kind == RSP_CANCELLED or r.kind == RSP_REJECTED:
        if live:
            _free_live(c, slot)
    elif r.kind == RSP_CANCEL_REJECTED:
        if live and s.orders[slot].state == OS_PENDING_CANCEL:
            s.orders[slot].state = OS_LIVE
    ctx.equity = ctx.cash + ctx.position * (s.mview[0].mid / s.cfg[G_PRICE_SCALE])
    # an ack changes nothing a strategy decides on (the order was already in ``orders``):
    # no wake, which saves a strategy call per order
    return r.kind != RSP_ACK


@kernel
def deliver_feed(c):
    """The view at the head of the feed ring reaches the strategy."""
    s = state_from_context(c)
    cn = s.cnt
    v = s.feed[cn[C_FEED_HEAD] & (len(s.feed) - 1)]
    cn[C_FEED_HEAD] += 1
    s.mview[0] = v
    ctx = s.ctx[0]
    ctx.ts = v.local_ts
    ctx.exch_ts = v.exch_ts
    ctx.wake = W_MARKET
    ctx.equity = ctx.cash + ctx.position * (v.mid / s.cfg[G_PRICE_SCALE])


@kernel
def _log_order(c, now, kind, side, price, qty, tif):
    s = state_from_context(c)
    n = s.cnt[C_ORDERS]
    if n >= len(s.log):
        return -1
    s.cnt[C_ORDERS] = n + 1
    o = s.log[n]
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
    s = state_from_context(c)
    if _ring_full(c, C_ENTRY_HEAD, C_ENTRY_TAIL, s.entry):
        return False
    t = max(t, s.cnt[C_ENTRY_LAST])
    s.cnt[C_ENTRY_LAST] = t
    p = s.entry[s.cnt[C_ENTRY_TAIL] & (len(s.entry) - 1)]
    s.cnt[C_ENTRY_TAIL] += 1
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
    s = state_from_context(c)
    if order_id < STRATEGY_ID_BASE or order_id - STRATEGY_ID_BASE >= s.cnt[C_ORDERS]:
        return
    row = order_id - STRATEGY_ID_BASE
    slot = s.log[row].slot
    if slot < 0 or s.orders[slot].order_id != order_id:
        return  # already done as far as the strategy knows
    o = s.orders[slot]
    if o.state == OS_PENDING_CANCEL:
        return
    o.state = OS_PENDING_CANCEL
    _push_entry(c, now + entry_lat, A_CANCEL, order_id, o.side, o.price, o.qty, GTC)


@kernel
def submit_actions(c, n, now, entry_lat):
    """Risk-check the strategy's ``n`` actions and send what passes (order entry)."""
    s = state_from_context(c)
    ctx = s.ctx[0]
    scale = s.cfg[G_PRICE_SCALE]
    killed = RK.update_kill_switch(s.risk_params, s.risk_state, ctx.equity)
    if killed:
        ctx.killed = 1
        if s.cnt[C_KILL_SENT] == 0:
            s.cnt[C_KILL_SENT] = 1
            for slot in range(len(s.orders)):
                if s.orders[slot].state == OS_PENDING_NEW or s.orders[slot].state == OS_LIVE:
                    _send_cancel(c, now, entry_lat, s.orders[slot].order_id)
    for k in range(n):
        a = s.actions[k]
        if a.kind == A_CANCEL:
            _send_cancel(c, now, entry_lat, a.order_id)
            continue
        if a.kind != A_NEW:
            continue
        open_same = ctx.open_bid_qty if a.side == BUY else ctx.open_ask_qty
        reason = RK.check_new_order(s.risk_params, s.risk_state, now, a.side, a.price, a.qty,
                                    ctx.position, open_same, s.mview[0].mid, scale)
        slot = -1
        if reason == RK.RK_NONE:
            for j in range(len(s.orders)):
                if s.orders[j].state == OS_FREE:
                    slot = j
                    break
            if slot < 0:
                reason = RK.RK_MAX_OPEN
        row = _log_order(c, now, A_NEW, a.side, a.price, a.qty, a.tif)
        if row < 0:
            s.cnt[C_RISK_REJECTS + RK.RK_MAX_OPEN] += 1
            continue
        oid = STRATEGY_ID_BASE + row
        a.order_id = oid
        if reason != RK.RK_NONE:
            s.cnt[C_RISK_REJECTS + reason] += 1
            lo = s.log[row]
            lo.status = LS_REJECTED
            lo.risk_reason = reason
            lo.done_ts = now
            continue
        tif = a.tif if a.tif == IOC or a.tif == FOK else GTC
        if not _push_entry(c, now + entry_lat, A_NEW, oid, a.side, a.price, a.qty, tif):
            return
        s.log[row].slot = slot
        o = s.orders[slot]
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


# ------------------------------------------------------- state by address (no refcounts)
def state_context(s: BacktestState) -> np.ndarray:
    """Addresses and lengths of every array of ``s`` (BookState first), for
    :func:`state_from_context`.

    Why: Numba increments and decrements the reference count of every array passed
    to a non-inlined function, atomically; a state of ~30 arrays made each helper call
    cost ~400 ns. Arrays rebuilt from raw addresses carry no reference count, so
    those operations become a null check. The caller keeps ``s`` alive meanwhile.
    """
    arrays = (*s.st, *s[1:])
    out = np.zeros(2 * len(arrays) + 2, dtype=np.int64)
    for i, a in enumerate(arrays):
        assert a.flags.c_contiguous
        out[2 * i] = a.ctypes.data
        out[2 * i + 1] = a.shape[0]
    out[-2] = s.lat_table.shape[1]
    out[-1] = out.ctypes.data  # keep ``out`` alive with ``s``
    return out


@kernel(inline="always")
def state_from_context(c):
    st = BookState(
        carray(address_as_pointer(c[0]), c[1], ORDER_DT),
        carray(address_as_pointer(c[2]), c[3], LEVEL),
        carray(address_as_pointer(c[4]), c[5], np.uint64),
        carray(address_as_pointer(c[6]), c[7], BOOK),
        carray(address_as_pointer(c[8]), c[9], np.int64),
        carray(address_as_pointer(c[10]), c[11], np.int32),
        carray(address_as_pointer(c[12]), c[13], np.int64),
    )
    j = 14
    return BacktestState(
        st,
        carray(address_as_pointer(c[j]), c[j + 1], FILL),
        carray(address_as_pointer(c[j + 2]), c[j + 3], CTX),
        carray(address_as_pointer(c[j + 4]), c[j + 5], VIEW),
        carray(address_as_pointer(c[j + 6]), c[j + 7], LIVE),
        carray(address_as_pointer(c[j + 8]), c[j + 9], ACTION),
        carray(address_as_pointer(c[j + 10]), c[j + 11], np.float64),
        carray(address_as_pointer(c[j + 12]), c[j + 13], ORDER_LOG),
        carray(address_as_pointer(c[j + 14]), c[j + 15], OWN_FILL),
        carray(address_as_pointer(c[j + 16]), c[j + 17], STEP),
        carray(address_as_pointer(c[j + 18]), c[j + 19], VIEW),
        carray(address_as_pointer(c[j + 20]), c[j + 21], PENDING),
        carray(address_as_pointer(c[j + 22]), c[j + 23], RESPONSE),
        carray(address_as_pointer(c[j + 24]), c[j + 25], np.int64),
        carray(address_as_pointer(c[j + 26]), c[j + 27], np.int64),
        carray(address_as_pointer(c[j + 28]), c[j + 29], np.float64),
        carray(address_as_pointer(c[j + 30]), c[j + 31], np.int64),
        carray(address_as_pointer(c[j + 32]), c[j + 33], np.float64),
        carray(address_as_pointer(c[j + 34]), c[j + 35], np.float64),
        carray(address_as_pointer(c[j + 36]), c[j + 37], np.int64),
        carray(address_as_pointer(c[j + 38]), c[j + 39], np.float64),
        carray(address_as_pointer(c[j + 40]), (c[j + 41], c[len(c) - 2]), np.int64),
        carray(address_as_pointer(c[j + 42]), c[j + 43], np.int64),
        carray(address_as_pointer(c[j + 44]), c[j + 45], np.int64),
    )


# -------------------------------------------------------------------------- the loop
@kernel(cache=False)
def run_l3(strategy, latency, context, events, start, stop):
    """Run ``events[start:stop]`` (one book, index 0) with ``strategy`` and ``latency``.

    Returns ``(next_event, status)``; call again from ``next_event`` to continue (state
    persists in the arrays behind ``context``, from :func:`state_context`). When ``stop == len(events)`` pending orders and responses drain
    after the last event (no more strategy wakes). Not cacheable: it takes functions
    as arguments, so Numba compiles it once per (strategy, latency model) pair and
    process (about 1.5-2 s here); every helper it calls is cached.
    """
    c = carray(address_as_pointer(context[len(context) - 1]), len(context), np.int64)
    s = state_from_context(c)
    n_events = len(events)
    limit_ts = events[stop].ts if stop < n_events else INF_TS
    lp = s.lat_params
    lt = s.lat_table
    rng = s.rng
    i = start
    ctx = s.ctx[0]
    kill_watch = s.risk_params[RK.RP_MAX_LOSS] > 0 or s.risk_params[RK.RP_KILL] != 0
    while s.cnt[C_STATUS] == BT_OK:
        tr, tf, te = next_times(c)
        t = min(tr, min(tf, te))
        tx = events[i].ts if i < stop else INF_TS
        if i >= stop and (t == INF_TS or t > limit_ts):
            break
        if t <= tx:
            if tr == t or tf == t:
                wake = True
                if tr == t:
                    wake = deliver_response(c)
                else:
                    deliver_feed(c)
                if wake and i < n_events:
                    ctx.n_wakes += 1
                    s.cnt[C_WAKES] += 1
                    t0 = now_ns()
                    n = strategy(ctx, s.mview[0], s.orders, s.params, s.actions)
                    n = min(n, len(s.actions))
                    if n > 0 or kill_watch:
                        submit_actions(c, n, t, latency(LAT_ENTRY, t, lp, lt, rng))
                    if n > 0:
                        H.record(s.hist, now_ns() - t0)
            else:
                if exchange_entry(c, latency(LAT_RESPONSE, t, lp, lt, rng)):
                    push_feed(c, t, t + latency(LAT_FEED, t, lp, lt, rng))
        else:
            e = events[i]
            i += 1
            if exchange_event(c, e, latency(LAT_RESPONSE, e.ts, lp, lt, rng)):
                push_feed(c, e.ts, e.ts + latency(LAT_FEED, e.ts, lp, lt, rng))
    return i, s.cnt[C_STATUS]



