"""The live pipeline's two nogil loops: the paced feed publisher and the consumer
(ring -> admission -> engine + strategy + risk -> latency histograms).

Owns the control-array layout (``CT_*``: the float64 array Python writes to change
parameters while the pipeline runs), the pipeline counters (``PC_*``), the latency
stages (``STAGE_*``), the ring message encoding of an ``EVENT`` and two kernels:

* :func:`feed_publish` turns ``EVENT`` records into ring ``MESSAGE`` records. Paced
  (``rate > 0``), message ``s`` is *due* at ``anchor_ns + (s - anchor_seq) / rate``
  and carries that due time as its ``ts`` even when a full ring makes it late, so a
  back-pressured feed shows up as latency instead of hiding it (no coordinated
  omission). Unpaced, ``ts`` is the publish time.
* :func:`run_pipeline` consumes messages in batches. Per message: the admission
  controller (``kernels.admission``) admits or sheds it; an admitted one is applied
  to the book (``kernels.book.apply_event``); when it changed the strategy symbol's
  top of book the strategy (the backtester's signature, ``kernels.strategies``) is
  called, its orders pass ``kernels.risk.check_new_order`` and go straight into the
  same book (the pipeline is the exchange's co-located gateway: zero entry latency);
  then ``work_ns`` of simulated model work (the signal computation a real strategy
  does per update; it sets the pipeline's capacity). Stage times go to histograms:
  queue (feed time -> dequeue), book, strategy (strategy + risk + orders + model
  work) and end to end (feed time -> decision).

Every ``control_every`` messages (and whenever the ring is empty) the consumer reads
the control array: a new ``CT_GENERATION`` means Python changed parameters, which are
copied into the ``active`` array the loop uses; ``CT_COMMAND`` pauses or stops it.
Both loops spin a bounded number of times and then return to Python.
"""
from __future__ import annotations

import numpy as np

from . import admission as kadm
from .atomics import cpu_pause, load_acquire, store_release
from .book import apply_event
from .clock import now_ns
from .histogram import record
from .jit import kernel
from .pointers import borrow_fills
from .records import (
    A_CANCEL, A_NEW, BUY, EV_ADD, EV_DELETE, GTC, LIMIT, OS_FREE, OS_LIVE, R_NONE, SELL,
    ST_NEW, ST_PARTIALLY_FILLED, STRATEGY_ID_BASE, W_MARKET,
)
from .ring import H_CACHED_HEAD, H_EMPTY_SPINS, H_FULL_SPINS, H_HEAD, H_MASK, H_TAIL, claim
from .risk import RK_MAX_OPEN, RK_NONE, check_new_order, update_kill_switch
from .risk import N_RISK_PARAMS
from .state_views import book_borrow
from .strategies import MAX_STRATEGY_PARAMS

# ------------------------------------------------------------ control array layout
CT_GENERATION = 0       # Python bumps it after writing parameters
CT_COMMAND = 1          # CMD_*
CT_CONTROL_EVERY = 2    # messages between control reads
CT_BATCH = 3            # most messages taken from the ring at once
CT_WORK_NS = 4          # simulated model work per admitted message (ns)
CT_STRATEGY = 5         # strategy id: its row in kernels.strategies.STRATEGIES (0: none)
CT_SYMBOL = 6           # book index the strategy trades
CT_ADMISSION = 8        # kernels.admission parameters (N_ADM_PARAMS)
CT_STRATEGY_PARAMS = CT_ADMISSION + kadm.N_ADM_PARAMS   # 24: strategy parameters
N_STRATEGY_PARAMS = MAX_STRATEGY_PARAMS
CT_RISK = CT_STRATEGY_PARAMS + N_STRATEGY_PARAMS     # 40: kernels.risk parameters
N_CONTROL = 64

CMD_RUN = 0
CMD_PAUSE = 1
CMD_STOP = 2

NO_STRATEGY = 0         # id of the registry's "none" row

# ----------------------------------------------------------------- counters (int64)
PC_RECEIVED = 0
PC_ADMITTED = 1
PC_SHED = 2
PC_BOOK_REJECTS = 3     # market messages the book rejected (e.g. cancels of shed adds)
PC_WAKES = 4            # strategy calls
PC_ORDERS = 5           # own orders sent to the book
PC_CANCELS = 6
PC_RISK_REJECTS = 7
PC_OWN_FILLS = 8
PC_GENERATION = 9       # last control generation applied
PC_CONTROL_READS = 10
PC_BID = 11             # strategy symbol's last top of book (change detection)
PC_BID_QTY = 12
PC_ASK = 13
PC_ASK_QTY = 14
PC_OPEN_ORDERS = 15
PC_KILLED = 16
PC_LAST_DECISION_NS = 17
PC_BUSY_NS = 18         # time spent processing messages (dequeue -> done)
N_PIPE_COUNTERS = 32

# ------------------------------------------------------------------ latency stages
STAGE_QUEUE = 0
STAGE_BOOK = 1
STAGE_STRATEGY = 2
STAGE_END_TO_END = 3
N_STAGES = 4
STAGE_NAMES = ("queue", "book", "strategy", "end_to_end")

# ------------------------------------------------------------ loop return statuses
PS_BUDGET = 0           # processed max_events; call again
PS_IDLE = 1             # ring empty for max_spins attempts
PS_PAUSED = 2
PS_STOPPED = 3
PS_STRATEGY = 4         # the control array switched strategy: call again with its kernel

FEED_DONE = 0           # every event asked for was published
FEED_WAITING = 1        # paced: nothing due for max_spins attempts
FEED_FULL = 2           # ring full for max_spins attempts

ORDER_TYPE_BITS = 15


# ----------------------------------------------------------------------- the feed
@kernel
def feed_publish(header, slots, events, start, stop, id_offset, seq, anchor_seq, anchor_ns,
                 rate, batch, max_spins):
    """Publish ``events[start:stop]`` as messages ``seq, seq+1, ...``.

    ``rate`` (messages/s) > 0 paces them (see module docstring); ``id_offset`` is
    added to every order id (replaying the same events again needs fresh ids).
    Returns ``(next_event, status)`` with status ``FEED_*``.
    """
    mask = header[H_MASK]
    i = start
    spins = 0
    ns_per_msg = 1e9 / rate if rate > 0 else 0.0
    while i < stop:
        now = now_ns()
        want = min(batch, stop - i)
        if rate > 0:
            due = anchor_seq + np.int64((now - anchor_ns) * rate * 1e-9) + 1 - seq
            if due <= 0:
                spins += 1
                if spins >= max_spins:
                    return i, FEED_WAITING
                cpu_pause()
                continue
            want = min(want, due)
        n = claim(header, want)
        if n <= 0:
            header[H_FULL_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                return i, FEED_FULL
            cpu_pause()
            continue
        spins = 0
        head = header[H_HEAD]
        for k in range(n):
            e = events[i + k]
            m = slots[(head + k) & mask]
            s = seq + k
            m.seq = s
            m.ts = anchor_ns + np.int64((s - anchor_seq) * ns_per_msg) if rate > 0 else now
            m.price = e.price
            m.qty = e.qty
            m.order_id = e.order_id + id_offset if e.order_id > 0 else e.order_id
            m.symbol = e.symbol
            m.msg_type = e.kind
            m.side = e.side
            m.flags = np.int16(e.order_type) | (np.int16(e.tif) << 4)
        store_release(header, H_HEAD, head + n)
        i += n
        seq += n
    return i, FEED_DONE


# ------------------------------------------------------------ own order bookkeeping
@kernel
def _own_fill(ctx, orders, counters, order_id, side, price, qty, leaves, price_scale, is_maker):
    """Account one fill of an own order: position, cash and its LIVE row."""
    c = ctx[0]
    value = price * qty / price_scale
    if side == BUY:
        c.position += qty
        c.cash -= value
    else:
        c.position -= qty
        c.cash += value
    c.last_fill_price = price
    c.last_fill_qty = qty
    c.last_fill_side = side
    counters[PC_OWN_FILLS] += 1
    if is_maker:
        for k in range(orders.shape[0]):
            o = orders[k]
            if o.state != OS_FREE and o.order_id == order_id:
                o.leaves = leaves
                o.filled += qty
                if side == BUY:
                    c.open_bid_qty -= qty
                else:
                    c.open_ask_qty -= qty
                if leaves <= 0:
                    o.state = OS_FREE
                    counters[PC_OPEN_ORDERS] -= 1
                break


@kernel
def _account_fills(ctx, orders, counters, fills, nf, price_scale):
    """Own orders among the makers of ``fills[:nf]`` (the taker side is handled by the
    caller, who knows whether the taker was own)."""
    if counters[PC_OPEN_ORDERS] == 0:
        return
    for f in range(nf):
        fl = fills[f]
        if fl.maker_id >= STRATEGY_ID_BASE:
            maker_side = SELL if fl.taker_side == BUY else BUY
            _own_fill(ctx, orders, counters, fl.maker_id, maker_side, fl.price, fl.qty,
                      fl.maker_leaves, price_scale, True)


@kernel
def _send_actions(st, fills, ctx, view, orders, actions, n_actions, counters, rp, risk_state,
                  symbol, now, price_scale):
    """Risk-check the strategy's actions and apply them to the book at once."""
    c = ctx[0]
    for a_i in range(n_actions):
        a = actions[a_i]
        if a.kind == A_NEW:
            open_same = c.open_bid_qty if a.side == BUY else c.open_ask_qty
            reason = check_new_order(rp, risk_state, now, a.side, a.price, a.qty, c.position,
                                     open_same, view[0].mid, price_scale)
            row = -1
            if reason == RK_NONE:
                for k in range(orders.shape[0]):
                    if orders[k].state == OS_FREE:
                        row = k
                        break
                if row < 0:
                    reason = RK_MAX_OPEN
            if reason != RK_NONE:
                counters[PC_RISK_REJECTS] += 1
                continue
            oid = STRATEGY_ID_BASE + counters[PC_ORDERS]
            counters[PC_ORDERS] += 1
            status, why, _, filled, leaves, nf = apply_event(
                st, fills, 0, now, oid, a.price, a.qty, symbol, EV_ADD, a.side, LIMIT, a.tif)
            if why != R_NONE:
                counters[PC_RISK_REJECTS] += 1
                continue
            for f in range(nf):
                fl = fills[f]
                _own_fill(ctx, orders, counters, oid, a.side, fl.price, fl.qty, leaves,
                          price_scale, False)
            _account_fills(ctx, orders, counters, fills, nf, price_scale)  # self-match
            if leaves > 0 and (status == ST_NEW or status == ST_PARTIALLY_FILLED) and a.tif == GTC:
                o = orders[row]
                o.order_id = oid
                o.price = a.price
                o.qty = a.qty
                o.leaves = leaves
                o.filled = filled
                o.side = a.side
                o.tif = a.tif
                o.state = OS_LIVE
                counters[PC_OPEN_ORDERS] += 1
                if a.side == BUY:
                    c.open_bid_qty += leaves
                else:
                    c.open_ask_qty += leaves
        elif a.kind == A_CANCEL:
            for k in range(orders.shape[0]):
                o = orders[k]
                if o.state != OS_FREE and o.order_id == a.order_id:
                    apply_event(st, fills, 0, now, o.order_id, o.price, 0, symbol, EV_DELETE,
                                o.side, LIMIT, GTC)
                    if o.side == BUY:
                        c.open_bid_qty -= o.leaves
                    else:
                        c.open_ask_qty -= o.leaves
                    o.state = OS_FREE
                    counters[PC_OPEN_ORDERS] -= 1
                    counters[PC_CANCELS] += 1
                    break


@kernel
def _cancel_all(st, fills, ctx, orders, counters, symbol, now):
    c = ctx[0]
    for k in range(orders.shape[0]):
        o = orders[k]
        if o.state != OS_FREE:
            apply_event(st, fills, 0, now, o.order_id, o.price, 0, symbol, EV_DELETE, o.side,
                        LIMIT, GTC)
            o.state = OS_FREE
            counters[PC_CANCELS] += 1
    counters[PC_OPEN_ORDERS] = 0
    c.open_bid_qty = 0
    c.open_ask_qty = 0


@kernel
def _refresh_view(st, ctx, view, orders, counters, symbol, last_price, last_qty, last_side):
    """Write the strategy symbol's top of book into ``view``; True when it changed
    (or a trade printed, ``last_qty > 0``)."""
    b = st.books[symbol]
    v = view[0]
    bid = np.int64(0)
    bid_qty = np.int64(0)
    ask = np.int64(0)
    ask_qty = np.int64(0)
    if b.best[BUY] >= 0:
        bid = st.levels[b.best[BUY]].price
        bid_qty = st.levels[b.best[BUY]].qty
    if b.best[SELL] >= 0:
        ask = st.levels[b.best[SELL]].price
        ask_qty = st.levels[b.best[SELL]].qty
    changed = (bid != counters[PC_BID] or ask != counters[PC_ASK]
               or bid_qty != counters[PC_BID_QTY] or ask_qty != counters[PC_ASK_QTY]
               or last_qty > 0)
    if not changed:
        return False
    counters[PC_BID] = bid
    counters[PC_BID_QTY] = bid_qty
    counters[PC_ASK] = ask
    counters[PC_ASK_QTY] = ask_qty
    v.bid = bid
    v.bid_qty = bid_qty
    v.ask = ask
    v.ask_qty = ask_qty
    if bid > 0 and ask > bid:
        v.mid = 0.5 * (bid + ask)
    if last_qty > 0:
        v.last_price = last_price
        v.last_qty = last_qty
        v.last_side = last_side
    v.own_bid_id = 0
    v.own_bid_price = 0
    v.own_bid_leaves = 0
    v.own_ask_id = 0
    v.own_ask_price = 0
    v.own_ask_leaves = 0
    for k in range(orders.shape[0]):
        o = orders[k]
        if o.state == OS_FREE:
            continue
        if o.side == BUY and o.price > v.own_bid_price:
            v.own_bid_id = o.order_id
            v.own_bid_price = o.price
            v.own_bid_leaves = o.leaves
        elif o.side == SELL and (v.own_ask_price == 0 or o.price < v.own_ask_price):
            v.own_ask_id = o.order_id
            v.own_ask_price = o.price
            v.own_ask_leaves = o.leaves
    return True


@kernel
def _apply_control(control, active, adm_state, adm_counters, window, counters, now):
    """Copy a new parameter generation into ``active``; reset the controller when its
    kind changed. Returns the command."""
    counters[PC_CONTROL_READS] += 1
    gen = np.int64(control[CT_GENERATION])
    if gen != counters[PC_GENERATION]:
        old_kind = active[CT_ADMISSION + kadm.AP_KIND]
        for i in range(N_CONTROL):
            active[i] = control[i]
        counters[PC_GENERATION] = gen
        if active[CT_ADMISSION + kadm.AP_KIND] != old_kind:
            adm = active[CT_ADMISSION:CT_ADMISSION + kadm.N_ADM_PARAMS]
            kadm.admission_reset(adm, adm_state, window, now)
    return np.int64(control[CT_COMMAND])


@kernel
def _read_control(control, active, adm_state, adm_counters, window, counters, st, fills, ctx,
                  orders):
    """:func:`_apply_control`, and when the strategy changed, start the new one
    flat-handed: the old one's orders cancelled, its scratch memory cleared."""
    previous = active[CT_STRATEGY]
    cmd = _apply_control(control, active, adm_state, adm_counters, window, counters, now_ns())
    if active[CT_STRATEGY] != previous:
        _cancel_all(st, fills, ctx, orders, counters, np.int64(active[CT_SYMBOL]), now_ns())
        mem = ctx[0].mem
        for i in range(mem.shape[0]):
            mem[i] = 0.0
    return cmd


# ------------------------------------------------------------------- the consumer
@kernel(nrt=False)
def _book_event(st, fills, ts, order_id, price, qty, symbol, kind, side, order_type, tif):
    """One feed message into the book: ``apply_event`` as a call, compiled and cached once.
    Inlined into :func:`run_pipeline`, the whole event dispatch was compiled again into
    every strategy's cached loop (about 6 s each, cold); the call costs tens of ns per
    message, next to the two clock reads, histogram records and admission check of each."""
    return apply_event(st, fills, 0, ts, order_id, price, qty, symbol, kind, side, order_type,
                       tif)


@kernel(cache=False)
def run_pipeline(strategy, strategy_id, header, slots, st, fills, control, active, counters,
                 hists, adm_state, adm_counters, window, ctx, view, orders, actions, risk_state,
                 price_scale, max_events, max_spins):
    """Consume up to ``max_events`` messages; returns ``PS_*`` (see module docstring).

    ``strategy`` is the kernel of registry row ``strategy_id``
    (``kernels.strategies.STRATEGIES``). When the control array switches to another row
    the loop returns ``PS_STRATEGY`` and the caller passes that row's kernel. Not
    cacheable (it takes a function), so Numba compiles it once per strategy and process,
    as the backtest loops; every helper it calls is cached.
    """
    st = book_borrow(st)
    fills = borrow_fills(fills)
    h_queue = hists[STAGE_QUEUE]
    h_book = hists[STAGE_BOOK]
    h_strategy = hists[STAGE_STRATEGY]
    h_e2e = hists[STAGE_END_TO_END]
    mask = header[H_MASK]
    adm = active[CT_ADMISSION:CT_ADMISSION + kadm.N_ADM_PARAMS]
    sparams = active[CT_STRATEGY_PARAMS:CT_STRATEGY_PARAMS + N_STRATEGY_PARAMS]
    rp = active[CT_RISK:CT_RISK + N_RISK_PARAMS]
    c = ctx[0]
    done = 0
    spins = 0
    since_control = np.int64(1) << 40  # read the control array first thing
    while done < max_events:
        if since_control >= max(np.int64(active[CT_CONTROL_EVERY]), 1):
            since_control = 0
            cmd = _read_control(control, active, adm_state, adm_counters, window, counters, st,
                                fills, ctx, orders)
            if cmd == CMD_STOP:
                return PS_STOPPED
            if cmd == CMD_PAUSE:
                return PS_PAUSED
            if np.int64(active[CT_STRATEGY]) != strategy_id:
                return PS_STRATEGY
        tail = header[H_TAIL]
        head = header[H_CACHED_HEAD]
        if head <= tail:
            head = load_acquire(header, H_HEAD)
            header[H_CACHED_HEAD] = head
        n = min(head - tail, max(np.int64(active[CT_BATCH]), 1), max_events - done)
        if n <= 0:
            header[H_EMPTY_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                _read_control(control, active, adm_state, adm_counters, window, counters, st,
                              fills, ctx, orders)
                return PS_IDLE
            cpu_pause()
            continue
        spins = 0
        symbol = np.int64(active[CT_SYMBOL])
        work_ns = np.int64(active[CT_WORK_NS])
        for k in range(n):
            m = slots[(tail + k) & mask]
            t_in = now_ns()
            kind = m.msg_type
            counters[PC_RECEIVED] += 1
            queue_ns = t_in - m.ts
            backlog = head - (tail + k) - 1
            record(h_queue, queue_ns)
            # The book sees every message (a skipped update would corrupt it); admission
            # decides whether the strategy and its model run on this one (conflation).
            status, reason, oid, filled, leaves, nf = _book_event(
                st, fills, m.ts, m.order_id, m.price, m.qty, m.symbol, kind, m.side,
                m.flags & ORDER_TYPE_BITS, (m.flags >> 4) & ORDER_TYPE_BITS)
            if reason != R_NONE:
                counters[PC_BOOK_REJECTS] += 1
            mine = strategy_id != NO_STRATEGY and m.symbol == symbol
            if mine and nf > 0:
                _account_fills(ctx, orders, counters, fills, nf, price_scale)
            t_book = now_ns()
            record(h_book, t_book - t_in)
            if not kadm.admit(adm, adm_state, adm_counters, window, t_in, queue_ns, backlog, False):
                counters[PC_SHED] += 1
                counters[PC_BUSY_NS] += t_book - t_in
                continue
            counters[PC_ADMITTED] += 1
            if mine:
                last_qty = np.int64(0)
                last_price = np.int64(0)
                if nf > 0:
                    last_qty = filled
                    last_price = fills[nf - 1].price
                if _refresh_view(st, ctx, view, orders, counters, symbol, last_price, last_qty,
                                 m.side):
                    c.ts = t_book
                    c.exch_ts = m.ts
                    c.wake = W_MARKET
                    c.n_wakes += 1
                    if view[0].mid > 0:
                        c.equity = c.cash + c.position * view[0].mid / price_scale
                    if update_kill_switch(rp, risk_state, c.equity):
                        if c.killed == 0:
                            c.killed = 1
                            counters[PC_KILLED] = 1
                            _cancel_all(st, fills, ctx, orders, counters, symbol, t_book)
                    else:
                        counters[PC_WAKES] += 1
                        n_act = strategy(c, view[0], orders, sparams, actions)
                        if n_act > 0:
                            _send_actions(st, fills, ctx, view, orders, actions, n_act,
                                          counters, rp, risk_state, symbol, t_book, price_scale)
            if work_ns > 0:
                while now_ns() - t_book < work_ns:
                    pass
            t_done = now_ns()
            record(h_strategy, t_done - t_book)
            e2e = t_done - m.ts
            record(h_e2e, e2e)
            kadm.observe(adm_state, window, e2e, t_done - t_in)
            counters[PC_BUSY_NS] += t_done - t_in
            counters[PC_LAST_DECISION_NS] = t_done
        store_release(header, H_TAIL, tail + n)
        done += n
        since_control += n
    return PS_BUDGET
