"""ITCH 5.0 decoding: messages -> ``ITCH_MSG`` records, and bytes -> the engine's ``EVENT``s.

Both walks follow the framing rule of :func:`kernels.itch.frame.frame_at` (bad frames
are skipped; :func:`kernels.itch.frame.scan` counted them) and stop at the start of an
incomplete frame or when their output is full, returning where to resume: a caller
can feed a file chunk by chunk and grow an output without losing or repeating anything.

Events (:func:`decode_events`)
------------------------------
Each message names its book through its stock locate: ``locate_book[locate]`` is the
book index (``-1``: not selected, skipped; ``-2``: no stock directory message named the
locate, skipped and counted under ``DC_UNLISTED``). The order-reference table
(``kernels.itch.refs``) remembers each live order's book, side, price and shares left.

=====  ======================================================================
A, F   ``EV_REST`` (the exchange reports its own matches: an add never matches)
E      ``EV_EXECUTE`` of the executed shares at the resting order's price and side
C      ``EV_EXECUTE`` of the executed shares; ``price`` is the printed execution price
X      ``EV_CANCEL`` of the cancelled shares
D      ``EV_DELETE``
U      ``EV_DELETE`` of the original reference, then ``EV_REST`` of the new reference at
       the new price and shares, on the original's side
P      ``EV_EXECUTE_HIDDEN`` (a trade against a non-displayed order; the book is untouched)
Q      ``EV_CROSS`` (``order_id`` = match number, ``qty`` = cross shares)
H      ``EV_HALT``: ``price`` -1 halted or paused, 0 quotation only, 1 trading
=====  ======================================================================

The walk keeps the table lines of the next ``LOOKAHEAD`` order messages (each one's home
slot line and the line after it) on their way into the cache (``kernels.prefetch``): on a
day with a million live orders the table is far larger than the caches and each lookup
would otherwise wait on memory.

Every other type changes no book and makes no event. A reference that is not live
(``DC_UNKNOWN_REFS``), an add of a live reference (``DC_DUPLICATE_REFS``) and a zero
share count, zero price or bad side (``DC_BAD_VALUES``) make no event either, so the
table and the book stay in step. Events carry ``order_type`` LIMIT and ``tif`` GTC.

Records (:func:`decode_messages`, :func:`decode_at`)
----------------------------------------------------
Every field of every type, in the slots of ``kernels.records.ITCH_MSG`` (besides
``offset``, ``ts``, ``locate``, ``tracking``, ``msg_type``). Prices are in their field's
units: Price(4) is 1/10,000 dollar, Price(8) (V) 1/100,000,000. ``codes`` holds the
one-character fields in the order listed.

====  ==========================================================================
S     codes: event code
R     stock; shares: round lot size; aux: ETP leverage factor; codes: market category,
      financial status, round lots only, issue classification, issue sub-type (2),
      authenticity, short sale threshold, IPO flag, LULD reference price tier, ETP
      flag, inverse indicator
H     stock; mpid: reason (4 bytes); codes: trading state, reserved
Y     stock; codes: Reg SHO action
L     stock; mpid; codes: primary market maker, market maker mode, participant state
V     price, price2, price3: levels 1, 2, 3 (Price(8))
W     codes: breached level
K     stock; aux: IPO quotation release time (s); price: IPO price; codes: qualifier
J     stock; price: reference; price2: upper collar; price3: lower collar; aux: extension
h     stock; codes: market code, operational halt action
A, F  ref, side, shares, stock, price (F: mpid = attribution)
E     ref, shares (executed), match
C     ref, shares (executed), match, price (execution); codes: printable
X     ref, shares (cancelled)
D     ref
U     ref (original), new_ref, shares, price
P     ref, side, shares, stock, price, match
Q     shares (8 bytes), stock, price (cross), match; codes: cross type
B     match
I     shares: paired; aux: imbalance; side: imbalance direction; stock; price: far;
      price2: near; price3: current reference; codes: cross type, price variation
N     stock; codes: interest flag
O     stock; price..price5: minimum allowable, maximum allowable, near execution price,
      lower collar, upper collar; aux: near execution time; codes: open eligibility
====  ==========================================================================
"""
from __future__ import annotations

import numpy as np

from kernels.itch import refs
from kernels.itch.fields import raw4, raw8, u16, u32, u48, u64
from kernels.itch.frame import FR_INCOMPLETE, FR_OK, frame_at
from kernels.prefetch import prefetch
from kernels.jit import kernel
from kernels.pointers import borrow
from kernels.records import (
    BUY, EVENT, EV_CANCEL, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT, EV_REST,
    GTC,
    ITCH_MSG, ITCH_REF, LIMIT, SELL,
)

__all__ = ["decode_events", "decode_messages", "decode_at"]

# status of the resumable walks
DECODE_DONE = 0        # every complete frame up to ``end`` was taken
DECODE_OUT_FULL = 1    # the output is full: consume it, call again from ``pos``
DECODE_TABLE_FULL = 2  # the reference table is half full: grow it (refs.rehash), call again

# decode_events counters (an int64 array of N_DECODE_COUNTS, accumulated across calls)
DC_EVENTS = 0          # events written
DC_MESSAGES = 1        # valid messages of selected books (and market-wide ones) walked
DC_UNKNOWN_REFS = 2    # E C X D U naming a reference that is not live
DC_DUPLICATE_REFS = 3  # A F U adding a reference that is live
DC_BAD_VALUES = 4      # zero shares or price, a side that is not B/S, an unknown trading state
DC_UNLISTED = 5        # messages of a locate no stock directory message named
DC_LIVE = 6            # live references in the table now
DC_PEAK_LIVE = 7       # most live references at once
DC_OVERFILLS = 8       # E C X of more shares than the order had left
DC_TYPES = 16          # counters[DC_TYPES + type byte]: DC_MESSAGES by message type
N_DECODE_COUNTS = DC_TYPES + 256

_A, _F, _E, _C, _X, _D, _U, _P, _Q, _H = 65, 70, 69, 67, 88, 68, 85, 80, 81, 72
LOOKAHEAD = 16  # messages between a table slot's prefetch and its use


@kernel
def _emit(events, n, ts, order_id, price, qty, book, kind, side):
    e = events[n]
    e.ts = ts
    e.order_id = order_id
    e.price = price
    e.qty = qty
    e.symbol = book
    e.kind = kind
    e.side = side
    e.order_type = LIMIT
    e.tif = GTC


@kernel
def _side(byte):
    if byte == 66:   # 'B'
        return BUY
    if byte == 83:   # 'S'
        return SELL
    return -1


@kernel
def _take(table, pos, qty, counters):
    """Shares executed or cancelled from the order at ``pos``; forget it when none are left."""
    r = table[pos]
    if qty >= np.int64(r.qty):
        if qty > np.int64(r.qty):
            counters[DC_OVERFILLS] += 1
        refs.delete(table, pos)
        counters[DC_LIVE] -= 1
    else:
        r.qty -= qty


@kernel
def decode_events(buf, start, end, locate_book, table, counters, events):
    """Decode the book messages of ``buf[start:end]`` into ``events`` (module doc).

    ``locate_book`` (int32, 65,536) maps locates to books; ``table`` is the order-reference
    table (``ITCH_REF``, a power of two; keep it across calls); ``counters`` the
    ``DC_*`` row. Returns ``(pos, n_events, status)``: resume from ``pos``; ``status`` is
    ``DECODE_DONE``, ``DECODE_OUT_FULL`` or ``DECODE_TABLE_FULL`` (nothing of the message
    at ``pos`` was applied).
    """
    # refcount-free views (kernels.pointers): every helper call would otherwise pay
    # atomic reference-count updates on each array it is given
    buf = borrow(buf, np.uint8)
    locate_book = borrow(locate_book, np.int32)
    table = borrow(table, ITCH_REF)
    counters = borrow(counters, np.int64)
    events = borrow(events, EVENT)
    end = min(end, len(buf))
    pos = max(start, 0)
    cap = len(events)
    limit = len(table) // 2
    shift = refs.hash_shift(table)
    n = 0
    ahead = pos   # the frame whose table slot is prefetched next
    n_ahead = 0   # frames between pos and ahead
    while True:
        # keep the table slots of the next LOOKAHEAD order messages on their way to the cache
        while n_ahead < LOOKAHEAD:
            st2, nxt2 = frame_at(buf, ahead, end)
            if st2 == FR_INCOMPLETE:
                break
            if st2 == FR_OK:
                t2 = buf[ahead + 2]
                if (t2 == _A or t2 == _F or t2 == _E or t2 == _C or t2 == _X or t2 == _D
                        or t2 == _U):
                    h = refs.home(u64(buf, ahead + 13), shift)
                    prefetch(table, h)
                    # and the next line: a probe or a delete's backward shift reads on
                    # past an entry (two to a line; measured: 52 -> 44 ns a message)
                    prefetch(table, ((h | 1) + 1) & (len(table) - 1))
            ahead = nxt2
            n_ahead += 1
        status, nxt = frame_at(buf, pos, end)
        n_ahead -= 1
        if status == FR_INCOMPLETE:
            counters[DC_EVENTS] += n
            return pos, n, DECODE_DONE
        if status != FR_OK:
            pos = nxt
            continue
        if n + 2 > cap:
            counters[DC_EVENTS] += n
            return pos, n, DECODE_OUT_FULL
        p = pos + 2
        t = buf[p]
        locate = u16(buf, p + 1)
        book = locate_book[locate]
        if book < 0:
            if book == -2 and locate != 0:
                counters[DC_UNLISTED] += 1
            pos = nxt
            continue
        counters[DC_MESSAGES] += 1
        counters[DC_TYPES + t] += 1
        ts = u48(buf, p + 5)
        if t == _A or t == _F:
            ref = u64(buf, p + 11)
            side = _side(buf[p + 19])
            shares = u32(buf, p + 20)
            price = u32(buf, p + 32)
            if side < 0 or shares == 0 or price == 0:
                counters[DC_BAD_VALUES] += 1
            else:
                at = refs.find(table, ref, book)
                if at >= 0:
                    counters[DC_DUPLICATE_REFS] += 1
                else:
                    if counters[DC_LIVE] >= limit:
                        counters[DC_MESSAGES] -= 1
                        counters[DC_EVENTS] += n
                        return pos, n, DECODE_TABLE_FULL
                    refs.insert(table, ref, book, side, price, shares, 0)
                    counters[DC_LIVE] += 1
                    if counters[DC_LIVE] > counters[DC_PEAK_LIVE]:
                        counters[DC_PEAK_LIVE] = counters[DC_LIVE]
                    _emit(events, n, ts, ref, price, shares, book, EV_REST, side)
                    n += 1
        elif t == _E or t == _C or t == _X or t == _D:
            ref = u64(buf, p + 11)
            at = refs.find(table, ref, book)
            if at < 0:
                counters[DC_UNKNOWN_REFS] += 1
            else:
                r = table[at]
                if t == _D:
                    _emit(events, n, ts, ref, np.int64(r.price), np.int64(r.qty), book,
                          EV_DELETE, r.side)
                    n += 1
                    refs.delete(table, at)
                    counters[DC_LIVE] -= 1
                else:
                    shares = u32(buf, p + 19)
                    if shares == 0:
                        counters[DC_BAD_VALUES] += 1
                    else:
                        if t == _X:
                            _emit(events, n, ts, ref, np.int64(r.price), shares, book,
                                  EV_CANCEL, r.side)
                        elif t == _C:
                            _emit(events, n, ts, ref, u32(buf, p + 32), shares, book,
                                  EV_EXECUTE, r.side)
                        else:
                            _emit(events, n, ts, ref, np.int64(r.price), shares, book, EV_EXECUTE,
                                  r.side)
                        n += 1
                        _take(table, at, shares, counters)
        elif t == _U:
            old = u64(buf, p + 11)
            new = u64(buf, p + 19)
            shares = u32(buf, p + 27)
            price = u32(buf, p + 31)
            at = refs.find(table, old, book)
            if at < 0:
                counters[DC_UNKNOWN_REFS] += 1
            elif shares == 0 or price == 0:
                counters[DC_BAD_VALUES] += 1
            else:
                r = table[at]
                side = r.side
                _emit(events, n, ts, old, np.int64(r.price), np.int64(r.qty), book, EV_DELETE, side)
                n += 1
                refs.delete(table, at)
                at = refs.find(table, new, book)
                if at >= 0:
                    counters[DC_DUPLICATE_REFS] += 1
                    counters[DC_LIVE] -= 1
                else:
                    refs.insert(table, new, book, side, price, shares, 0)
                    _emit(events, n, ts, new, price, shares, book, EV_REST, side)
                    n += 1
        elif t == _P:
            side = _side(buf[p + 19])
            if side < 0:
                counters[DC_BAD_VALUES] += 1
            else:
                _emit(events, n, ts, u64(buf, p + 11), u32(buf, p + 32), u32(buf, p + 20),
                      book, EV_EXECUTE_HIDDEN, side)
                n += 1
        elif t == _Q:
            _emit(events, n, ts, u64(buf, p + 31), u32(buf, p + 27), u64(buf, p + 11), book,
                  EV_CROSS, BUY)
            n += 1
        elif t == _H:
            state = buf[p + 19]
            code = 2
            if state == 72 or state == 80:   # 'H' halted, 'P' paused
                code = -1
            elif state == 81:                # 'Q' quotation only
                code = 0
            elif state == 84:                # 'T' trading
                code = 1
            if code == 2:
                counters[DC_BAD_VALUES] += 1
            else:
                _emit(events, n, ts, 0, code, 0, book, EV_HALT, BUY)
                n += 1
        pos = nxt
    return pos, n, DECODE_DONE  # not reached: the walk ends on an incomplete frame


@kernel
def _codes(m, buf, p, first, count):
    for k in range(count):
        m.codes[k] = buf[p + first + k]


@kernel
def decode_one(buf, pos, m):
    """Fill the record ``m`` from the valid frame at ``pos`` (module doc's slots)."""
    p = pos + 2
    t = buf[p]
    m.offset = pos
    m.msg_type = t
    m.locate = u16(buf, p + 1)
    m.tracking = u16(buf, p + 3)
    m.ts = u48(buf, p + 5)
    if t == 83:                                   # S
        _codes(m, buf, p, 11, 1)
    elif t == 82:                                 # R
        m.stock = raw8(buf, p + 11)
        m.codes[0] = buf[p + 19]
        m.codes[1] = buf[p + 20]
        m.shares = u32(buf, p + 21)
        for k in range(9):                        # round lots only .. ETP flag
            m.codes[2 + k] = buf[p + 25 + k]
        m.aux = u32(buf, p + 34)
        m.codes[11] = buf[p + 38]
    elif t == 72:                                 # H
        m.stock = raw8(buf, p + 11)
        _codes(m, buf, p, 19, 2)
        m.mpid = raw4(buf, p + 21)
    elif t == 89:                                 # Y
        m.stock = raw8(buf, p + 11)
        _codes(m, buf, p, 19, 1)
    elif t == 76:                                 # L
        m.mpid = raw4(buf, p + 11)
        m.stock = raw8(buf, p + 15)
        _codes(m, buf, p, 23, 3)
    elif t == 86:                                 # V
        m.price = u64(buf, p + 11)
        m.price2 = u64(buf, p + 19)
        m.price3 = u64(buf, p + 27)
    elif t == 87:                                 # W
        _codes(m, buf, p, 11, 1)
    elif t == 75:                                 # K
        m.stock = raw8(buf, p + 11)
        m.aux = u32(buf, p + 19)
        m.codes[0] = buf[p + 23]
        m.price = u32(buf, p + 24)
    elif t == 74:                                 # J
        m.stock = raw8(buf, p + 11)
        m.price = u32(buf, p + 19)
        m.price2 = u32(buf, p + 23)
        m.price3 = u32(buf, p + 27)
        m.aux = u32(buf, p + 31)
    elif t == 104:                                # h
        m.stock = raw8(buf, p + 11)
        _codes(m, buf, p, 19, 2)
    elif t == 65 or t == 70:                      # A, F
        m.ref = u64(buf, p + 11)
        m.side = buf[p + 19]
        m.shares = u32(buf, p + 20)
        m.stock = raw8(buf, p + 24)
        m.price = u32(buf, p + 32)
        if t == 70:
            m.mpid = raw4(buf, p + 36)
    elif t == 69 or t == 67:                      # E, C
        m.ref = u64(buf, p + 11)
        m.shares = u32(buf, p + 19)
        m.match = u64(buf, p + 23)
        if t == 67:
            m.codes[0] = buf[p + 31]
            m.price = u32(buf, p + 32)
    elif t == 88:                                 # X
        m.ref = u64(buf, p + 11)
        m.shares = u32(buf, p + 19)
    elif t == 68:                                 # D
        m.ref = u64(buf, p + 11)
    elif t == 85:                                 # U
        m.ref = u64(buf, p + 11)
        m.new_ref = u64(buf, p + 19)
        m.shares = u32(buf, p + 27)
        m.price = u32(buf, p + 31)
    elif t == 80:                                 # P
        m.ref = u64(buf, p + 11)
        m.side = buf[p + 19]
        m.shares = u32(buf, p + 20)
        m.stock = raw8(buf, p + 24)
        m.price = u32(buf, p + 32)
        m.match = u64(buf, p + 36)
    elif t == 81:                                 # Q
        m.shares = u64(buf, p + 11)
        m.stock = raw8(buf, p + 19)
        m.price = u32(buf, p + 27)
        m.match = u64(buf, p + 31)
        m.codes[0] = buf[p + 39]
    elif t == 66:                                 # B
        m.match = u64(buf, p + 11)
    elif t == 73:                                 # I
        m.shares = u64(buf, p + 11)
        m.aux = u64(buf, p + 19)
        m.side = buf[p + 27]
        m.stock = raw8(buf, p + 28)
        m.price = u32(buf, p + 36)
        m.price2 = u32(buf, p + 40)
        m.price3 = u32(buf, p + 44)
        _codes(m, buf, p, 48, 2)
    elif t == 78:                                 # N
        m.stock = raw8(buf, p + 11)
        _codes(m, buf, p, 19, 1)
    elif t == 79:                                 # O
        m.stock = raw8(buf, p + 11)
        m.codes[0] = buf[p + 19]
        m.price = u32(buf, p + 20)
        m.price2 = u32(buf, p + 24)
        m.price3 = u32(buf, p + 28)
        m.aux = u64(buf, p + 32)
        m.price4 = u32(buf, p + 40)
        m.price5 = u32(buf, p + 44)


@kernel
def decode_messages(buf, start, end, keep, out):
    """Decode the valid messages of ``buf[start:end]`` whose locate has ``keep[locate]``
    set (uint8, 65,536) into ``out`` (zeroed ``ITCH_MSG`` records). Returns
    ``(pos, n, status)`` like :func:`decode_events` (``DECODE_OUT_FULL`` when ``out`` is full)."""
    buf = borrow(buf, np.uint8)
    keep = borrow(keep, np.uint8)
    out = borrow(out, ITCH_MSG)
    end = min(end, len(buf))
    pos = max(start, 0)
    n = 0
    while True:
        status, nxt = frame_at(buf, pos, end)
        if status == FR_INCOMPLETE:
            return pos, n, DECODE_DONE
        if status == FR_OK and keep[u16(buf, pos + 3)] != 0:
            if n >= len(out):
                return pos, n, DECODE_OUT_FULL
            decode_one(buf, pos, out[n])
            n += 1
        pos = nxt
    return pos, n, DECODE_DONE


@kernel
def decode_at(buf, offsets, out):
    """Decode the frames at ``offsets`` (from :func:`kernels.itch.frame.scan`) into ``out``;
    an offset that is not a valid frame inside ``buf`` leaves its record zeroed.
    Returns how many were decoded."""
    buf = borrow(buf, np.uint8)
    out = borrow(out, ITCH_MSG)
    n = 0
    for i in range(min(len(offsets), len(out))):
        pos = offsets[i]
        if pos < 0 or pos > len(buf):
            continue
        status, _ = frame_at(buf, pos, len(buf))
        if status == FR_OK:
            decode_one(buf, pos, out[i])
            n += 1
    return n
