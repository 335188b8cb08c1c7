"""ITCH 5.0 encoding: ``ITCH_MSG`` records -> frames, and a feed-shaped order flow -> frames.

:func:`encode_messages` writes any message of any type from its ``ITCH_MSG`` record (the
slots of ``kernels.itch.decode``), each behind its 2-byte big-endian length: the exact
inverse of ``kernels.itch.decode.decode_messages``.

:func:`encode_flow` turns an ``EVENT`` flow into the order messages an exchange would
publish for it. The flow must be *feed-shaped*, as the simulator writes it with
``market_as_orders=False`` (``kernels.simulator``): every add is a LIMIT GTC order that
rests without crossing, and trades are executions of resting orders by id. Then

=================  ======================================================================
EV_ADD / EV_REST   A (every ``F_EVERY``-th: F with the MPID ``P_MPID``); a fresh reference
EV_CANCEL          X; D when it cancels everything left; every ``U_EVERY``-th partial cancel
                   is written as U to the remaining shares at the same price (the replaced
                   order loses its queue place, the book's levels are the same)
EV_DELETE          D
EV_EXECUTE         E of ``min(qty, shares left)``; C when the event's price is not the
                   resting price, and every ``C_EVERY``-th execution; after every
                   ``P_EVERY``-th execution a P (a hidden order traded at the same price)
EV_MODIFY          X when it only lowers the shares at the same price, else U
EV_EXECUTE_HIDDEN  P;  EV_CROSS: Q;  EV_HALT: H ('H' halted, 'Q' quoting, 'T' trading)
=================  ======================================================================

Order references are assigned 1, 2, 3, ... in stream order, as NASDAQ does; match
numbers likewise. The table (``kernels.itch.refs``) maps each live source order
(``order_id``, book) to its reference, price, side and shares left. An event that names
no live order, or an add that is not LIMIT GTC with a positive price and quantity, is
skipped and counted (``WS_SKIPPED``). Book ``b`` is written with stock locate
``locates[b]`` and stock ``stocks[b]`` (8 bytes in file order, ``kernels.itch.fields.raw8``).
"""
from __future__ import annotations

import numpy as np

from kernels.itch import refs
from kernels.itch.fields import put_raw4, put_raw8, put_u16, put_u32, put_u48, put_u64
from kernels.itch.frame import MSG_LENGTH
from kernels.jit import kernel
from kernels.pointers import borrow
from kernels.records import (
    EV_ADD, EV_CANCEL, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT, EV_MODIFY,
    EV_REST, EVENT, GTC, ITCH_MSG, ITCH_REF, LIMIT, SELL,
)

__all__ = ["encode_messages", "encode_flow"]

# encode_flow params (int64 array of N_FLOW_PARAMS); 0 turns a variation off
P_F_EVERY = 0   # every n-th add carries an MPID (F)
P_C_EVERY = 1   # every n-th execution is written as C (printable, same price)
P_P_EVERY = 2   # after every n-th execution, a hidden trade (P)
P_U_EVERY = 3   # every n-th partial cancel is written as U
P_MPID = 4      # the MPID of F messages, 4 bytes in file order (fields.raw4)
N_FLOW_PARAMS = 8

# encode_flow state (int64 array of N_FLOW_STATE, kept across calls)
WS_NEXT_REF = 0     # the next order reference (starts at 1)
WS_NEXT_MATCH = 1   # the next match number (starts at 1)
WS_LIVE = 2         # live source orders in the table
WS_SKIPPED = 3      # events that could not be written (module doc)
WS_MESSAGES = 4     # messages written
WS_ADDS = 5         # adds seen (for F_EVERY)
WS_EXECS = 6        # executions seen (for C_EVERY, P_EVERY)
WS_PARTIALS = 7     # partial cancels seen (for U_EVERY)
N_FLOW_STATE = 8

# status
ENC_DONE = 0
ENC_OUT_FULL = 1     # ``out`` has less room than one event's worst case: write it out, resume
ENC_TABLE_FULL = 2   # the table is half full: grow it (refs.rehash), resume

MAX_EVENT_BYTES = 2 * (2 + 36) + 2 * (2 + 44)   # the most one flow event writes (C + P)

@kernel
def _header(out, o, t, locate, tracking, ts):
    """Length prefix and common header of a message of type ``t`` at ``out[o]``; returns
    the position of the type byte."""
    put_u16(out, o, MSG_LENGTH[t])
    p = o + 2
    out[p] = t
    put_u16(out, p + 1, locate)
    put_u16(out, p + 3, tracking)
    put_u48(out, p + 5, ts)
    return p


@kernel
def _codes(out, p, first, m, count):
    for k in range(count):
        out[p + first + k] = m.codes[k]


@kernel
def encode_one(m, out, o):
    """Write the record ``m`` as one frame at ``out[o]``; returns the position after it
    (``o`` itself when ``m.msg_type`` is no ITCH type). The caller checked the room."""
    t = m.msg_type
    if MSG_LENGTH[t] == 0:
        return o
    p = _header(out, o, t, m.locate, m.tracking, m.ts)
    if t == 83:                                   # S
        _codes(out, p, 11, m, 1)
    elif t == 82:                                 # R
        put_raw8(out, p + 11, m.stock)
        out[p + 19] = m.codes[0]
        out[p + 20] = m.codes[1]
        put_u32(out, p + 21, m.shares)
        for k in range(9):
            out[p + 25 + k] = m.codes[2 + k]
        put_u32(out, p + 34, m.aux)
        out[p + 38] = m.codes[11]
    elif t == 72:                                 # H
        put_raw8(out, p + 11, m.stock)
        _codes(out, p, 19, m, 2)
        put_raw4(out, p + 21, m.mpid)
    elif t == 89:                                 # Y
        put_raw8(out, p + 11, m.stock)
        _codes(out, p, 19, m, 1)
    elif t == 76:                                 # L
        put_raw4(out, p + 11, m.mpid)
        put_raw8(out, p + 15, m.stock)
        _codes(out, p, 23, m, 3)
    elif t == 86:                                 # V
        put_u64(out, p + 11, m.price)
        put_u64(out, p + 19, m.price2)
        put_u64(out, p + 27, m.price3)
    elif t == 87:                                 # W
        _codes(out, p, 11, m, 1)
    elif t == 75:                                 # K
        put_raw8(out, p + 11, m.stock)
        put_u32(out, p + 19, m.aux)
        out[p + 23] = m.codes[0]
        put_u32(out, p + 24, m.price)
    elif t == 74:                                 # J
        put_raw8(out, p + 11, m.stock)
        put_u32(out, p + 19, m.price)
        put_u32(out, p + 23, m.price2)
        put_u32(out, p + 27, m.price3)
        put_u32(out, p + 31, m.aux)
    elif t == 104:                                # h
        put_raw8(out, p + 11, m.stock)
        _codes(out, p, 19, m, 2)
    elif t == 65 or t == 70:                      # A, F
        put_u64(out, p + 11, m.ref)
        out[p + 19] = m.side
        put_u32(out, p + 20, m.shares)
        put_raw8(out, p + 24, m.stock)
        put_u32(out, p + 32, m.price)
        if t == 70:
            put_raw4(out, p + 36, m.mpid)
    elif t == 69 or t == 67:                      # E, C
        put_u64(out, p + 11, m.ref)
        put_u32(out, p + 19, m.shares)
        put_u64(out, p + 23, m.match)
        if t == 67:
            out[p + 31] = m.codes[0]
            put_u32(out, p + 32, m.price)
    elif t == 88:                                 # X
        put_u64(out, p + 11, m.ref)
        put_u32(out, p + 19, m.shares)
    elif t == 68:                                 # D
        put_u64(out, p + 11, m.ref)
    elif t == 85:                                 # U
        put_u64(out, p + 11, m.ref)
        put_u64(out, p + 19, m.new_ref)
        put_u32(out, p + 27, m.shares)
        put_u32(out, p + 31, m.price)
    elif t == 80:                                 # P
        put_u64(out, p + 11, m.ref)
        out[p + 19] = m.side
        put_u32(out, p + 20, m.shares)
        put_raw8(out, p + 24, m.stock)
        put_u32(out, p + 32, m.price)
        put_u64(out, p + 36, m.match)
    elif t == 81:                                 # Q
        put_u64(out, p + 11, m.shares)
        put_raw8(out, p + 19, m.stock)
        put_u32(out, p + 27, m.price)
        put_u64(out, p + 31, m.match)
        out[p + 39] = m.codes[0]
    elif t == 66:                                 # B
        put_u64(out, p + 11, m.match)
    elif t == 73:                                 # I
        put_u64(out, p + 11, m.shares)
        put_u64(out, p + 19, m.aux)
        out[p + 27] = m.side
        put_raw8(out, p + 28, m.stock)
        put_u32(out, p + 36, m.price)
        put_u32(out, p + 40, m.price2)
        put_u32(out, p + 44, m.price3)
        _codes(out, p, 48, m, 2)
    elif t == 78:                                 # N
        put_raw8(out, p + 11, m.stock)
        _codes(out, p, 19, m, 1)
    elif t == 79:                                 # O
        put_raw8(out, p + 11, m.stock)
        out[p + 19] = m.codes[0]
        put_u32(out, p + 20, m.price)
        put_u32(out, p + 24, m.price2)
        put_u32(out, p + 28, m.price3)
        put_u64(out, p + 32, m.aux)
        put_u32(out, p + 40, m.price4)
        put_u32(out, p + 44, m.price5)
    return p + MSG_LENGTH[t]


@kernel
def encode_messages(msgs, out):
    """Write every record of ``msgs`` as a frame into ``out`` (uint8); records of no ITCH
    type are skipped. Returns ``(bytes_written, records_written)``; it stops before the
    first record that does not fit."""
    msgs = borrow(msgs, ITCH_MSG)
    out = borrow(out, np.uint8)
    o = 0
    n = 0
    for i in range(len(msgs)):
        t = msgs[i].msg_type
        size = 2 + MSG_LENGTH[t]
        if MSG_LENGTH[t] == 0:
            continue
        if o + size > len(out):
            break
        o = encode_one(msgs[i], out, o)
        n += 1
    return o, n


# ------------------------------------------------------------------- flow -> frames
@kernel
def _flow_key(order_id, book):
    return order_id ^ (np.int64(book) << 40)


@kernel
def _order_msg(out, o, t, locate, ts, ref, side, shares, stock, price):
    p = _header(out, o, t, locate, 0, ts)
    put_u64(out, p + 11, ref)
    out[p + 19] = 83 if side == SELL else 66
    put_u32(out, p + 20, shares)
    put_raw8(out, p + 24, stock)
    put_u32(out, p + 32, price)
    return p + MSG_LENGTH[t]


@kernel
def _ref_msg(out, o, t, locate, ts, ref, shares):
    """E (with its match number written by the caller), X or D."""
    p = _header(out, o, t, locate, 0, ts)
    put_u64(out, p + 11, ref)
    if t != 68:
        put_u32(out, p + 19, shares)
    return p


@kernel
def encode_flow(events, start, table, state, params, locates, stocks, out):
    """Write ``events[start:]`` as ITCH frames into ``out`` (module doc). ``table`` is the
    source-order table (``ITCH_REF``), ``state`` the ``WS_*`` row (``WS_NEXT_REF`` and
    ``WS_NEXT_MATCH`` start at 1), ``params`` the ``P_*`` row. Returns
    ``(next_event, bytes_written, status)`` (``ENC_*``); nothing of ``events[next_event]``
    was written when it stops early."""
    events = borrow(events, EVENT)
    table = borrow(table, ITCH_REF)
    state = borrow(state, np.int64)
    out = borrow(out, np.uint8)
    o = 0
    limit = len(table) // 2
    n_books = len(locates)
    f_every = params[P_F_EVERY]
    c_every = params[P_C_EVERY]
    p_every = params[P_P_EVERY]
    u_every = params[P_U_EVERY]
    mpid = np.uint32(params[P_MPID])
    for i in range(max(start, 0), len(events)):
        if o + MAX_EVENT_BYTES > len(out):
            return i, o, ENC_OUT_FULL
        e = events[i]
        book = e.symbol
        if book < 0 or book >= n_books or e.ts < 0 or e.ts >= (np.int64(1) << 48):
            state[WS_SKIPPED] += 1
            continue
        locate = locates[book]
        stock = stocks[book]
        ts = e.ts
        kind = e.kind
        if kind == EV_ADD or kind == EV_REST:
            if (e.order_type != LIMIT or e.tif != GTC or e.qty <= 0 or e.qty >= (1 << 32)
                    or e.price <= 0 or e.price >= (1 << 32) or (e.side != 0 and e.side != 1)):
                state[WS_SKIPPED] += 1
                continue
            key = _flow_key(e.order_id, book)
            at = refs.find(table, key, book)
            if at >= 0:
                state[WS_SKIPPED] += 1
                continue
            if state[WS_LIVE] >= limit:
                return i, o, ENC_TABLE_FULL
            ref = state[WS_NEXT_REF]
            state[WS_NEXT_REF] += 1
            refs.insert(table, key, book, e.side, e.price, e.qty, ref)
            state[WS_LIVE] += 1
            state[WS_ADDS] += 1
            if f_every > 0 and state[WS_ADDS] % f_every == 0:
                o = _order_msg(out, o, 70, locate, ts, ref, e.side, e.qty, stock, e.price)
                put_raw4(out, o - 4, mpid)
            else:
                o = _order_msg(out, o, 65, locate, ts, ref, e.side, e.qty, stock, e.price)
            state[WS_MESSAGES] += 1
            continue
        if kind == EV_EXECUTE_HIDDEN or kind == EV_CROSS or kind == EV_HALT:
            if kind == EV_HALT:
                p = _header(out, o, 72, locate, 0, ts)
                put_raw8(out, p + 11, stock)
                out[p + 19] = 72 if e.price < 0 else (81 if e.price == 0 else 84)
                out[p + 20] = 32
                put_raw4(out, p + 21, np.uint32(0x20202020))
                o = p + 25
            elif e.qty <= 0 or e.qty >= (1 << 32) or e.price < 0 or e.price >= (1 << 32):
                state[WS_SKIPPED] += 1
                continue
            elif kind == EV_CROSS:
                p = _header(out, o, 81, locate, 0, ts)
                put_u64(out, p + 11, e.qty)
                put_raw8(out, p + 19, stock)
                put_u32(out, p + 27, e.price)
                put_u64(out, p + 31, state[WS_NEXT_MATCH])
                state[WS_NEXT_MATCH] += 1
                out[p + 39] = 67  # 'C' closing cross
                o = p + 40
            else:
                o = _order_msg(out, o, 80, locate, ts, 0, e.side, e.qty, stock, e.price)
                put_u64(out, o - 8, state[WS_NEXT_MATCH])
                state[WS_NEXT_MATCH] += 1
            state[WS_MESSAGES] += 1
            continue
        # the rest name a live source order
        at = refs.find(table, _flow_key(e.order_id, book), book)
        if at < 0 or (kind != EV_CANCEL and kind != EV_DELETE and kind != EV_EXECUTE
                      and kind != EV_MODIFY):
            state[WS_SKIPPED] += 1
            continue
        r = table[at]
        ref = r.value
        if kind == EV_EXECUTE:
            if e.qty <= 0:
                state[WS_SKIPPED] += 1
                continue
            qty = min(e.qty, np.int64(r.qty))
            state[WS_EXECS] += 1
            n_exec = state[WS_EXECS]
            with_price = (e.price > 0 and e.price != np.int64(r.price) and e.price < (1 << 32)) or (
                c_every > 0 and n_exec % c_every == 0)
            p = _ref_msg(out, o, 67 if with_price else 69, locate, ts, ref, qty)
            put_u64(out, p + 23, state[WS_NEXT_MATCH])
            state[WS_NEXT_MATCH] += 1
            if with_price:
                out[p + 31] = 89  # 'Y' printable
                put_u32(out, p + 32, e.price if e.price > 0 else np.int64(r.price))
                o = p + 36
            else:
                o = p + 31
            state[WS_MESSAGES] += 1
            side = r.side
            price = np.int64(r.price)
            if qty == np.int64(r.qty):
                refs.delete(table, at)
                state[WS_LIVE] -= 1
            else:
                r.qty -= qty
            if p_every > 0 and n_exec % p_every == 0:
                o = _order_msg(out, o, 80, locate, ts, 0, side, qty, stock, price)
                put_u64(out, o - 8, state[WS_NEXT_MATCH])
                state[WS_NEXT_MATCH] += 1
                state[WS_MESSAGES] += 1
            continue
        new_price = np.int64(r.price)
        new_qty = np.int64(r.qty)
        if kind == EV_CANCEL:
            if e.qty < 0:
                state[WS_SKIPPED] += 1
                continue
            new_qty = np.int64(r.qty) - e.qty if 0 < e.qty < np.int64(r.qty) else 0
        elif kind == EV_DELETE:
            new_qty = 0
        else:  # EV_MODIFY: 0 keeps the price or the shares
            if e.price < 0 or e.qty < 0 or e.price >= (1 << 32) or e.qty >= (1 << 32):
                state[WS_SKIPPED] += 1
                continue
            if e.price > 0:
                new_price = e.price
            if e.qty > 0:
                new_qty = e.qty
        if new_qty == 0:
            p = _ref_msg(out, o, 68, locate, ts, ref, 0)
            o = p + 19
            refs.delete(table, at)
            state[WS_LIVE] -= 1
        elif new_price == np.int64(r.price) and new_qty < np.int64(r.qty) and not (
                kind == EV_CANCEL and u_every > 0 and (state[WS_PARTIALS] + 1) % u_every == 0):
            if kind == EV_CANCEL:
                state[WS_PARTIALS] += 1
            p = _ref_msg(out, o, 88, locate, ts, ref, np.int64(r.qty) - new_qty)
            o = p + 23
            r.qty = new_qty
        else:
            if kind == EV_CANCEL:
                state[WS_PARTIALS] += 1
            new_ref = state[WS_NEXT_REF]
            state[WS_NEXT_REF] += 1
            p = _header(out, o, 85, locate, 0, ts)
            put_u64(out, p + 11, ref)
            put_u64(out, p + 19, new_ref)
            put_u32(out, p + 27, new_qty)
            put_u32(out, p + 31, new_price)
            o = p + 35
            r.value = new_ref
            r.price = new_price
            r.qty = new_qty
        state[WS_MESSAGES] += 1
    return len(events), o, ENC_DONE
