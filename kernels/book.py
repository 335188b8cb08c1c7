"""The L3 limit order book and price-time matching engine, for many symbols at once.

State (``kernels.book_state.BookState``) is a handful of preallocated arrays shared by
every book of an engine; nothing is allocated while orders flow. This module owns the
book and matching; the structures it is built from have their own modules.

Structures and why
------------------
* **Order pool** (``pool``, ``kernels.records.ORDER``, one 64-byte cache line per
  order) with an intrusive **free list** threaded through ``ORDER.next``: taking or
  returning a slot is two stores, and an order's fields share one cache line.
* **Order-id index** (``kernels.order_index``): open addressing with linear probing
  and Fibonacci hashing over two parallel arrays (``index_keys``, ``index_slots``), at
  most half full, no tombstones. Keys are ``(order_id, symbol)``: ids may repeat across
  symbols. :func:`find_order` is its lookup over a book state.
* **Price ladder per book and side**: a direct-mapped array of ``LEVEL`` records, one
  per tick, over a window of ``W`` ticks (``price_levels``, a power of two from 4096 to
  262144) anchored around the first price the book sees, and re-anchored whenever the
  book empties. Each level holds a doubly linked FIFO of its orders (head, tail), its
  total quantity and order count. Price -> level is one subtraction and one division,
  so add and cancel are O(1).
* **Three-level occupancy bitmap** per book and side (``kernels.bitmap``: one bit per
  tick; one bit per 64-tick word; one bit per 4096 ticks in a single word). Best bid
  and best ask are stored, so reading them is O(1); when the best level empties, the
  next one is found with at most three count-leading/trailing-zeros instructions,
  whatever the gap.

Why not a tree or sorted array of levels: a tree costs O(log n) pointer chasing on
every new level, a sorted array O(n) moves; a hash of levels cannot find the next
best price. The ladder trades memory (``W`` x 24 bytes per side) for constant time,
and real books live within a few thousand ticks of the touch. Orders priced outside
the window are rejected with ``R_PRICE_OUT_OF_BAND``, the way an exchange enforces
price collars.

Matching is price-time: an incoming order walks the opposite side best level first
and, within a level, oldest order first; every match writes one ``FILL`` at the
resting order's price. Every outcome (including rejects with their reason code) is
returned, never raised.

Input boundary
--------------
Every field of an event is range-checked here, in fast mode too, before it is used:
the book index, the order id (``kernels.order_index.EMPTY_KEY`` is the index's empty
marker: ``R_INVALID_ID``), side, order type, time in force, quantity (``R_QTY_TOO_LARGE``
above ``kernels.records.MAX_QTY``) and price (``R_PRICE_TOO_LARGE`` above ``MAX_PRICE``;
those limits are why no level quantity, liquidity sum or queue position can overflow).
Each check is one compare. The views (:func:`top_levels`, :func:`resting_orders`,
:func:`queue_position`) check the book index and side they are given and the length of
their output arrays. The building blocks they call (``next_level``, ``rest_order``,
``crossing_liquidity``, ...) trust their caller. The caller owns the buffers: the batch
paths write ``fills`` through a view without bounds checks (``workbench.book`` checks
that it is writeable and of the FILL dtype).

The batch kernels work on views of the state without reference counts
(``kernels.state_views.book_borrow``, ``kernels.pointers.borrow_fills``: the why is
there); :func:`apply_one` reads the state and its fills buffer from one address
(``kernels.state_views.engine_context``).
"""
from __future__ import annotations

import numpy as np
from numba import carray

from .bitmap import bitmap_clear, bitmap_set, find_next, find_prev
from .book_state import (
    EC_ANON_FALLBACK, EC_BLOCK, EC_EVENTS, EC_FILL_SEQ, EC_FILLS, EC_FREE_HEAD, EC_HASH_SHIFT,
    EC_L0, EC_L1, EC_LIVE, EC_OUTPUT_FULL, EC_REJECTS, EC_W,
)
from .clock import now_ns
from .jit import kernel
from .order_index import EMPTY_KEY, index_delete, index_find, index_insert
from .pointers import address_as_pointer, borrow_fills
from .records import (
    BUY, EV_ADD, EV_CANCEL, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT,
    EV_MODIFY, FOK, GTC, IOC, LIMIT, MARKET, MAX_PRICE, MAX_QTY, R_DUPLICATE_ID,
    R_FOK_NOT_FILLABLE, R_HALTED, R_INVALID_ID, R_INVALID_SIDE, R_INVALID_TYPE,
    R_NON_POSITIVE_PRICE, R_NON_POSITIVE_QTY, R_NONE, R_OUTPUT_FULL, R_POOL_FULL,
    R_PRICE_OFF_TICK, R_PRICE_OUT_OF_BAND, R_PRICE_TOO_LARGE, R_QTY_TOO_LARGE, R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL, SELL, ST_CANCELLED, ST_DONE, ST_FILLED, ST_NEW, ST_PARTIALLY_FILLED,
    ST_REJECTED,
)
from .state_views import N_ENGINE_CONTEXT, book_borrow, engine_views


# ------------------------------------------------------------------ ladder and bitmap
@kernel(inline="always")
def _bitmap_base(counters, book, side):
    """First word of the bitmap of (book, side) in ``st.bits``."""
    return (book * 2 + side) * counters[EC_BLOCK]


@kernel(inline="always")
def next_level(st, book, side, idx):
    """The next worse occupied level after ``idx`` on ``side`` (-1 when none)."""
    c = st.counters
    if side == BUY:
        return find_prev(st.bits, _bitmap_base(c, book, side), c[EC_L0], c[EC_L1], idx - 1)
    return find_next(st.bits, _bitmap_base(c, book, side), c[EC_L0], c[EC_L1], idx + 1)


@kernel(inline="always")
def level_index(st, book, side, idx):
    """Position of ladder slot ``idx`` of (book, side) in ``st.levels``."""
    return (book * 2 + side) * st.counters[EC_W] + idx


# -------------------------------------------------------------------------- order ids
@kernel(inline="always")
def find_order(st, order_id, book):
    """Index position of (order_id, book) if it rests, else ``-1 - insertion_position``
    (``kernels.order_index.index_find`` over the state's index)."""
    return index_find(st.index_keys, st.index_slots, st.pool, st.counters[EC_HASH_SHIFT],
                      order_id, book)


@kernel
def anon_order_id(book, side, price):
    """The id under which anonymous (pre-existing, id-less) volume at a price rests."""
    return -(((book * 2 + side) << 44) | price) - 1


# ------------------------------------------------------------------- resting orders
@kernel
def _price_index(st, book, price):
    """Ladder index of ``price`` (anchoring an empty book's window), -1 if outside."""
    b = st.books[book]
    W = st.counters[EC_W]
    if b.anchored == 0:
        base = (price // b.tick - W // 2) * b.tick
        b.base = base if base > 0 else 0
        b.anchored = 1
    idx = (price - b.base) // b.tick
    if idx < 0 or idx >= W:
        return -1
    return idx


@kernel
def rest_order(st, book, side, idx, order_id, qty, filled, ts, order_type, tif, status, ins_pos=-1):
    """Append a new order at the tail of its level. Caller checked id and free slot.
    ``ins_pos``: its index insertion position when the caller already probed for it."""
    pool = st.pool
    counters = st.counters
    b = st.books[book]
    slot = counters[EC_FREE_HEAD]
    o = pool[slot]
    counters[EC_FREE_HEAD] = o.next
    o.order_id = order_id
    o.price = b.base + idx * b.tick
    o.qty = qty
    o.filled = filled
    o.ts = ts
    o.symbol = book
    o.level = idx
    o.side = side
    o.order_type = order_type
    o.tif = tif
    o.status = status
    o.next = -1
    lv = st.levels[level_index(st, book, side, idx)]
    o.prev = lv.tail
    if lv.tail >= 0:
        pool[lv.tail].next = slot
    else:
        lv.head = slot
        bitmap_set(st.bits, _bitmap_base(counters, book, side), counters[EC_L0],
                   counters[EC_L1], idx)
        b.n_levels[side] += 1
        best = b.best[side]
        if best < 0 or (side == BUY and idx > best) or (side == SELL and idx < best):
            b.best[side] = idx
    lv.tail = slot
    lv.count += 1
    lv.qty += qty
    pos = ins_pos if ins_pos >= 0 else -1 - find_order(st, order_id, book)
    index_insert(st.index_keys, st.index_slots, pos, order_id, slot)
    b.orders[side] += 1
    counters[EC_LIVE] += 1
    return slot


@kernel
def remove_resting(st, slot, pos):
    """Take a resting order out of its level, the index and the pool.

    ``pos`` is its index position if the caller knows it, else -1.
    """
    pool = st.pool
    counters = st.counters
    o = pool[slot]
    book = o.symbol
    side = o.side
    idx = o.level
    b = st.books[book]
    lv = st.levels[level_index(st, book, side, idx)]
    prv = o.prev
    nxt = o.next
    if prv >= 0:
        pool[prv].next = nxt
    else:
        lv.head = nxt
    if nxt >= 0:
        pool[nxt].prev = prv
    else:
        lv.tail = prv
    lv.count -= 1
    lv.qty -= o.qty
    if lv.count == 0:
        lv.qty = 0
        bitmap_clear(st.bits, _bitmap_base(counters, book, side), counters[EC_L0],
                     counters[EC_L1], idx)
        b.n_levels[side] -= 1
        if b.best[side] == idx:
            b.best[side] = next_level(st, book, side, idx)
    if pos < 0:
        pos = find_order(st, o.order_id, book)
    index_delete(st.index_keys, st.index_slots, counters[EC_HASH_SHIFT], pos)
    b.orders[side] -= 1
    counters[EC_LIVE] -= 1
    o.prev = -1
    o.next = counters[EC_FREE_HEAD]
    counters[EC_FREE_HEAD] = slot
    if b.orders[0] + b.orders[1] == 0:
        b.anchored = 0  # an empty book re-centres its window on the next order


@kernel(inline="always")
def _reduce_resting(st, slot, pos, qty):
    """Reduce a resting order by ``qty`` (< its leaves) keeping its queue position."""
    o = st.pool[slot]
    o.qty -= qty
    st.levels[level_index(st, o.symbol, o.side, o.level)].qty -= qty


# -------------------------------------------------------------------------- matching
@kernel(inline="always")
def _crosses(taker_side, level_idx, limit_idx):
    if limit_idx < 0:
        return True  # market order
    if taker_side == BUY:
        return level_idx <= limit_idx
    return level_idx >= limit_idx


@kernel
def crossing_liquidity(st, book, taker_side, limit_idx, want):
    """(quantity, orders) resting on the opposite side that a taker would reach,
    walking until ``want`` quantity is covered."""
    maker = 1 - taker_side
    idx = st.books[book].best[maker]
    total = 0
    n_orders = 0
    while idx >= 0 and total < want and _crosses(taker_side, idx, limit_idx):
        lv = st.levels[level_index(st, book, maker, idx)]
        total += lv.qty
        n_orders += lv.count
        idx = next_level(st, book, maker, idx)
    return total, n_orders


@kernel(inline="always")
def _write_fill(st, fills, nf, ts, maker_slot, taker_id, price, qty, taker_side):
    counters = st.counters
    o = st.pool[maker_slot]
    f = fills[nf]
    f.seq = counters[EC_FILL_SEQ]
    counters[EC_FILL_SEQ] += 1
    counters[EC_FILLS] += 1
    f.ts = ts
    f.maker_ts = o.ts
    f.maker_id = o.order_id
    f.taker_id = taker_id
    f.price = price
    f.qty = qty
    f.maker_leaves = o.qty - qty
    f.symbol = o.symbol
    f.taker_side = taker_side
    b = st.books[o.symbol]
    b.volume += qty
    b.trades += 1
    b.last_price = price
    return nf + 1


@kernel
def _match(st, fills, nf, book, taker_side, limit_idx, qty, taker_id, ts):
    """Walk the opposite side best-first; returns (unfilled quantity, fills written)."""
    maker = 1 - taker_side
    b = st.books[book]
    pool = st.pool
    while qty > 0:
        best = b.best[maker]
        if best < 0 or not _crosses(taker_side, best, limit_idx):
            break
        lv = st.levels[level_index(st, book, maker, best)]
        price = b.base + best * b.tick
        while qty > 0 and lv.head >= 0:
            slot = lv.head
            o = pool[slot]
            trade = min(qty, o.qty)
            nf = _write_fill(st, fills, nf, ts, slot, taker_id, price, trade, taker_side)
            qty -= trade
            o.filled += trade
            if trade == o.qty:
                remove_resting(st, slot, -1)  # takes its leaves off the level too
                o.qty = 0
                o.status = ST_FILLED
            else:
                o.qty -= trade
                lv.qty -= trade
                o.status = ST_PARTIALLY_FILLED
    return qty, nf


@kernel(inline="always")
def _fills_room_ok(st, fills, nf, book, taker_side, limit_idx, qty):
    room = len(fills) - nf
    if room >= st.books[book].orders[1 - taker_side]:
        return True
    _, n_orders = crossing_liquidity(st, book, taker_side, limit_idx, qty)
    return room >= n_orders


@kernel
def _reject(st, reason, order_id, nf):
    if reason == R_OUTPUT_FULL:
        st.counters[EC_OUTPUT_FULL] += 1
        st.counters[EC_EVENTS] -= 1  # not applied: the caller retries it
    else:
        st.counters[EC_REJECTS + reason] += 1
    return ST_REJECTED, reason, order_id, np.int64(0), np.int64(0), nf


@kernel
def _enter(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif, limit_idx,
           prior_filled, ins_pos):
    """Match a validated order, then rest or cancel what is left. ``ins_pos`` is the
    id's index insertion position probed before matching (-1 if unknown)."""
    remaining, nf = _match(st, fills, nf, book, side, limit_idx, qty, order_id, ts)
    if remaining != qty:
        ins_pos = -1  # matching removed index entries: the probe is stale
    filled = prior_filled + qty - remaining
    if remaining == 0:
        return ST_FILLED, R_NONE, order_id, filled, np.int64(0), nf
    if order_type == LIMIT and tif == GTC:
        # The ladder index still holds unless matching emptied the book (which un-anchors
        # its window, to re-centre on this order).
        b = st.books[book]
        idx = limit_idx if b.anchored != 0 and limit_idx >= 0 else _price_index(st, book, price)
        status = ST_NEW if filled == 0 else ST_PARTIALLY_FILLED
        rest_order(st, book, side, idx, order_id, remaining, filled, ts, order_type, tif, status,
                   ins_pos)
        return status, R_NONE, order_id, filled, remaining, nf
    return ST_CANCELLED, R_NONE, order_id, filled, np.int64(0), nf


@kernel
def _add(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif):
    if side != BUY and side != SELL:
        return _reject(st, R_INVALID_SIDE, order_id, nf)
    if qty <= 0:
        return _reject(st, R_NON_POSITIVE_QTY, order_id, nf)
    if qty > MAX_QTY:
        return _reject(st, R_QTY_TOO_LARGE, order_id, nf)
    if (order_type != LIMIT and order_type != MARKET) or (tif != GTC and tif != IOC and tif != FOK):
        return _reject(st, R_INVALID_TYPE, order_id, nf)
    b = st.books[book]
    if b.halted != 0:
        return _reject(st, R_HALTED, order_id, nf)
    probe = find_order(st, order_id, book)
    if probe >= 0:
        return _reject(st, R_DUPLICATE_ID, order_id, nf)
    rests = order_type == LIMIT and tif == GTC
    limit_idx = -1
    if order_type == LIMIT:
        if price <= 0:
            return _reject(st, R_NON_POSITIVE_PRICE, order_id, nf)
        if price > MAX_PRICE:
            return _reject(st, R_PRICE_TOO_LARGE, order_id, nf)
        if b.anchored != 0:
            # One division gives both the tick check and the ladder index (the base is
            # a multiple of the tick): this is the hot path of every limit order.
            offset = price - b.base
            limit_idx = offset // b.tick
            if limit_idx * b.tick != offset:
                return _reject(st, R_PRICE_OFF_TICK, order_id, nf)
            if limit_idx < 0 or limit_idx >= st.counters[EC_W]:
                return _reject(st, R_PRICE_OUT_OF_BAND, order_id, nf)
        else:
            if price % b.tick != 0:
                return _reject(st, R_PRICE_OFF_TICK, order_id, nf)
            if not rests:
                # An unanchored book is empty: nothing to match, nothing will rest.
                if tif == FOK:
                    return _reject(st, R_FOK_NOT_FILLABLE, order_id, nf)
                return ST_CANCELLED, R_NONE, order_id, np.int64(0), np.int64(0), nf
            limit_idx = _price_index(st, book, price)
            if limit_idx < 0:
                return _reject(st, R_PRICE_OUT_OF_BAND, order_id, nf)
    if rests and st.counters[EC_FREE_HEAD] < 0:
        return _reject(st, R_POOL_FULL, order_id, nf)
    if tif == FOK:
        available, _ = crossing_liquidity(st, book, side, limit_idx, qty)
        if available < qty:
            return _reject(st, R_FOK_NOT_FILLABLE, order_id, nf)
    if not _fills_room_ok(st, fills, nf, book, side, limit_idx, qty):
        return _reject(st, R_OUTPUT_FULL, order_id, nf)
    return _enter(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif,
                  limit_idx, 0, -1 - probe)


@kernel
def _find_for_update(st, order_id, book, side, price):
    """Index position of an order; with the anonymous fallback on, an unknown id acts
    on the anonymous volume resting at (side, price). -1 when neither exists."""
    pos = find_order(st, order_id, book)
    if pos >= 0:
        return pos
    if (st.counters[EC_ANON_FALLBACK] != 0 and 0 < price <= MAX_PRICE
            and (side == BUY or side == SELL)):  # anonymous ids hold the price in 44 bits
        pos = find_order(st, anon_order_id(book, side, price), book)
        if pos >= 0:
            return pos
    return -1


@kernel
def _cancel(st, nf, kind, order_id, price, qty, book, side):
    if qty < 0:  # 0 cancels the whole order; a negative size is an error, not "all"
        return _reject(st, R_NON_POSITIVE_QTY, order_id, nf)
    if qty > MAX_QTY:
        return _reject(st, R_QTY_TOO_LARGE, order_id, nf)
    pos = _find_for_update(st, order_id, book, side, price)
    if pos < 0:
        return _reject(st, R_UNKNOWN_ORDER, order_id, nf)
    slot = st.index_slots[pos]
    o = st.pool[slot]
    anonymous = o.order_id != order_id
    # A delete of a known order removes it whatever size the message carries; against
    # anonymous volume it removes only the deleted order's size.
    full = (kind == EV_DELETE and not anonymous) or qty <= 0 or qty >= o.qty
    if full:
        filled = o.filled
        remove_resting(st, slot, pos)
        return ST_CANCELLED, R_NONE, order_id, filled, np.int64(0), nf
    _reduce_resting(st, slot, pos, qty)
    return np.int64(o.status), R_NONE, order_id, o.filled, o.qty, nf


@kernel
def _execute(st, fills, nf, ts, order_id, price, qty, book, side):
    if qty <= 0:
        return _reject(st, R_NON_POSITIVE_QTY, order_id, nf)
    if qty > MAX_QTY:
        return _reject(st, R_QTY_TOO_LARGE, order_id, nf)
    pos = _find_for_update(st, order_id, book, side, price)
    if pos < 0:
        return _reject(st, R_UNKNOWN_ORDER, order_id, nf)
    if nf >= len(fills):
        return _reject(st, R_OUTPUT_FULL, order_id, nf)
    slot = st.index_slots[pos]
    o = st.pool[slot]
    trade = min(qty, o.qty)
    nf = _write_fill(st, fills, nf, ts, slot, 0, o.price, trade, 1 - o.side)
    o.filled += trade
    if trade == o.qty:
        remove_resting(st, slot, pos)
        o.qty = 0
        o.status = ST_FILLED
        return ST_FILLED, R_NONE, order_id, trade, np.int64(0), nf
    _reduce_resting(st, slot, pos, trade)
    o.status = ST_PARTIALLY_FILLED
    return ST_PARTIALLY_FILLED, R_NONE, order_id, trade, o.qty, nf


@kernel
def _modify(st, fills, nf, ts, order_id, price, qty, book):
    # 0 keeps the price or the quantity; below 0 is an error
    if price < 0:
        return _reject(st, R_NON_POSITIVE_PRICE, order_id, nf)
    if price > MAX_PRICE:
        return _reject(st, R_PRICE_TOO_LARGE, order_id, nf)
    if qty < 0:
        return _reject(st, R_NON_POSITIVE_QTY, order_id, nf)
    if qty > MAX_QTY:
        return _reject(st, R_QTY_TOO_LARGE, order_id, nf)
    pos = find_order(st, order_id, book)
    if pos < 0:
        return _reject(st, R_UNKNOWN_ORDER, order_id, nf)
    b = st.books[book]
    if b.halted != 0:
        return _reject(st, R_HALTED, order_id, nf)
    slot = st.index_slots[pos]
    o = st.pool[slot]
    new_price = price if price > 0 else o.price
    new_qty = qty if qty > 0 else o.qty
    if new_price == o.price and new_qty <= o.qty:
        # Same price, less quantity: the order keeps its place in the queue.
        if new_qty < o.qty:
            _reduce_resting(st, slot, pos, o.qty - new_qty)
        return np.int64(o.status), R_NONE, order_id, o.filled, o.qty, nf
    if new_price % b.tick != 0:
        return _reject(st, R_PRICE_OFF_TICK, order_id, nf)
    new_idx = (new_price - b.base) // b.tick
    if new_idx < 0 or new_idx >= st.counters[EC_W]:
        return _reject(st, R_PRICE_OUT_OF_BAND, order_id, nf)
    side = o.side
    if not _fills_room_ok(st, fills, nf, book, side, new_idx, new_qty):
        return _reject(st, R_OUTPUT_FULL, order_id, nf)
    # Price change or more quantity: cancel/replace, losing time priority.
    prior_filled = o.filled
    order_type = o.order_type
    tif = o.tif
    remove_resting(st, slot, pos)
    limit_idx = _price_index(st, book, new_price)
    return _enter(st, fills, nf, ts, order_id, new_price, new_qty, book, side, order_type, tif,
                  limit_idx, prior_filled, -1)


@kernel
def apply_event(st, fills, nf, ts, order_id, price, qty, book, kind, side, order_type, tif):
    """Apply one event; fills go to ``fills[nf:]``.

    Returns ``(status, reason, order_id, filled, leaves, nf)`` where ``nf`` is the
    new count of fills written. A reject changes nothing (but the event and reject
    counters). Checks, in order: book index, order id, then per kind: side, quantity,
    order type and time in force, halt, duplicate id, price (adds); quantity (cancels,
    executions); price and quantity, 0 meaning "unchanged" (modifies); quantity and
    price (hidden and cross trades). ``R_OUTPUT_FULL`` means
    the fills buffer lacks room for the worst case of this event: nothing was
    applied; drain the buffer and retry.
    """
    st.counters[EC_EVENTS] += 1
    if book < 0 or book >= len(st.books):
        return _reject(st, R_UNKNOWN_SYMBOL, order_id, nf)
    if order_id == EMPTY_KEY:
        return _reject(st, R_INVALID_ID, order_id, nf)
    if kind == EV_ADD:
        return _add(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif)
    if kind == EV_CANCEL or kind == EV_DELETE:
        return _cancel(st, nf, kind, order_id, price, qty, book, side)
    if kind == EV_EXECUTE:
        return _execute(st, fills, nf, ts, order_id, price, qty, book, side)
    if kind == EV_MODIFY:
        return _modify(st, fills, nf, ts, order_id, price, qty, book)
    b = st.books[book]
    if kind == EV_EXECUTE_HIDDEN or kind == EV_CROSS:
        if qty < 0:
            return _reject(st, R_NON_POSITIVE_QTY, order_id, nf)
        if qty > MAX_QTY:
            return _reject(st, R_QTY_TOO_LARGE, order_id, nf)
        if price < 0:
            return _reject(st, R_NON_POSITIVE_PRICE, order_id, nf)
        if price > MAX_PRICE:
            return _reject(st, R_PRICE_TOO_LARGE, order_id, nf)
        b.volume += qty
        b.trades += 1
        b.last_price = price
        return ST_DONE, R_NONE, order_id, qty, np.int64(0), nf
    if kind == EV_HALT:
        b.halted = 1 if price < 0 else 0  # LOBSTER: -1 halt, 0 quoting, 1 resume
        return ST_DONE, R_NONE, order_id, np.int64(0), np.int64(0), nf
    return _reject(st, R_INVALID_TYPE, order_id, nf)


# ----------------------------------------------------------------------- batch paths
@kernel
def apply_batch(st, events, fills, results, start):
    """Apply ``events[start:]``, writing fills from ``fills[0]`` and, when ``results``
    is as long as ``events``, one RESULT per event.

    Returns ``(next_event, fills_written)``. ``next_event < len(events)`` means the
    fills buffer filled up: drain it and call again from ``next_event`` (nothing is
    lost or applied twice). A ``start`` outside ``0..len(events)`` applies nothing.
    """
    if start < 0 or start > len(events):
        return start, 0
    st = book_borrow(st)
    fills = borrow_fills(fills)
    nf = 0
    want_results = len(results) >= len(events)
    for i in range(start, len(events)):
        e = events[i]
        status, reason, oid, filled, leaves, nf2 = apply_event(
            st, fills, nf, e.ts, e.order_id, e.price, e.qty, e.symbol, e.kind, e.side,
            e.order_type, e.tif)
        if reason == R_OUTPUT_FULL:
            return i, nf
        if want_results:
            r = results[i]
            r.order_id = oid
            r.status = status
            r.reason = reason
            r.filled = filled
            r.leaves = leaves
            r.n_fills = nf2 - nf
        nf = nf2
    return len(events), nf


@kernel
def apply_batch_discard_fills(st, events, fills, latency_ns):
    """Apply every event, reusing ``fills`` as scratch (for callers that need the book,
    not the fills: throughput runs, state warm-up). When ``latency_ns`` is as long as
    ``events`` it receives each event's in-kernel latency (CLOCK_MONOTONIC ns).
    Returns the number of fills produced."""
    st = book_borrow(st)
    fills = borrow_fills(fills)
    total = 0
    nf = 0
    timed = len(latency_ns) >= len(events)
    for i in range(len(events)):
        e = events[i]
        t0 = now_ns() if timed else 0
        while True:
            status, reason, oid, filled, leaves, nf2 = apply_event(
                st, fills, nf, e.ts, e.order_id, e.price, e.qty, e.symbol, e.kind, e.side,
                e.order_type, e.tif)
            if reason != R_OUTPUT_FULL or nf == 0:
                break
            total += nf
            nf = 0
        if timed:
            latency_ns[i] = now_ns() - t0
        nf = nf2
    return total + nf


# ---------------------------------------------------------------- single-call path
@kernel
def apply_one(ctx_address, ts, order_id, price, qty, book, kind, side, order_type, tif):
    """``apply_event`` for one event from Python, fills written from ``fills[0]``.

    ``ctx_address`` is the address of an ``engine_context`` array (the book state and
    its fills buffer): an int unboxes in a few ns where an array costs ~80. Returns
    ``(code, filled, leaves)`` with ``code = status | reason << 8 | fills << 16``: three
    values box into Python much faster than six. ``ts <= 0`` stamps the event with the
    engine's event sequence number (a logical clock).
    """
    ctx = carray(address_as_pointer(ctx_address), N_ENGINE_CONTEXT, np.int64)
    engine = engine_views(ctx)
    st = engine.st
    if ts <= 0:
        ts = st.counters[EC_EVENTS] + 1
    status, reason, _, filled, leaves, nf = apply_event(
        st, engine.fills, 0, ts, order_id, price, qty, book, kind, side, order_type, tif)
    return status | (reason << 8) | (nf << 16), filled, leaves


# ----------------------------------------------------------------------------- views
@kernel
def top_levels(st, book, side, out_price, out_qty, out_count):
    """Fill the best levels of one side, as many as the shortest output holds; returns
    how many it wrote (-1 for a book index or side out of range)."""
    if book < 0 or book >= len(st.books) or (side != BUY and side != SELL):
        return -1
    n = min(len(out_price), len(out_qty), len(out_count))
    b = st.books[book]
    idx = b.best[side]
    k = 0
    while idx >= 0 and k < n:
        lv = st.levels[level_index(st, book, side, idx)]
        out_price[k] = b.base + idx * b.tick
        out_qty[k] = lv.qty
        out_count[k] = lv.count
        k += 1
        idx = next_level(st, book, side, idx)
    return k


@kernel
def resting_orders(st, book, out):
    """Copy every resting order of ``book`` into ``out`` (ORDER records) in priority
    order: bids best price first, then asks best first, FIFO within a level.
    Returns the count written: ``out`` should hold ``orders[0] + orders[1]``, and a
    shorter one gets the first ``len(out)`` (-1 for a book index out of range)."""
    if book < 0 or book >= len(st.books):
        return -1
    b = st.books[book]
    k = 0
    for side in range(2):
        idx = b.best[side]
        while idx >= 0:
            slot = st.levels[level_index(st, book, side, idx)].head
            while slot >= 0 and k < len(out):
                out[k] = st.pool[slot]
                k += 1
                slot = st.pool[slot].next
            idx = next_level(st, book, side, idx)
    return k


@kernel
def queue_position(st, book, order_id):
    """(quantity ahead in the queue, orders ahead) of a resting order; (-1, -1) if
    the order does not rest in ``book`` (or ``book`` is out of range)."""
    if book < 0 or book >= len(st.books):
        return -1, -1
    pos = find_order(st, order_id, book)
    if pos < 0:
        return -1, -1
    slot = st.index_slots[pos]
    o = st.pool[slot]
    qty_ahead = 0
    n_ahead = 0
    cur = st.levels[level_index(st, book, o.side, o.level)].head
    while cur >= 0 and cur != slot:
        qty_ahead += st.pool[cur].qty
        n_ahead += 1
        cur = st.pool[cur].next
    return qty_ahead, n_ahead
