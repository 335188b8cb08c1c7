"""The L3 limit order book and price-time matching engine, for many symbols at once.

State (``BookState``) is a handful of preallocated arrays shared by every book of an
engine; nothing is allocated while orders flow.

Structures and why
------------------
* **Order pool** (``pool``, ``kernels.records.ORDER``, one 64-byte cache line per
  order) with an intrusive **free list** threaded through ``ORDER.next``: taking or
  returning a slot is two stores, and an order's fields share one cache line.
* **Order-id index**: open addressing with linear probing and Fibonacci hashing over
  two parallel arrays (``index_keys`` int64, ``index_slots`` int32), at most half full.
  Deletion shifts followers back instead of leaving tombstones, so probe chains stay
  short under the add/cancel churn of real feeds. Keys are ``(order_id, symbol)``:
  ids may repeat across symbols.
* **Price ladder per book and side**: a direct-mapped array of ``LEVEL`` records, one
  per tick, over a window of ``W`` ticks (``price_levels``, a power of two from 4096 to
  262144) anchored around the first price the book sees, and re-anchored whenever the
  book empties. Each level holds a doubly linked FIFO of its orders (head, tail), its
  total quantity and order count. Price -> level is one subtraction and one division,
  so add and cancel are O(1).
* **Three-level occupancy bitmap** per book and side (one bit per tick; one bit per
  64-tick word; one bit per 4096 ticks in a single word). Best bid and best ask are
  stored, so reading them is O(1); when the best level empties, the next one is found
  with at most three count-leading/trailing-zeros instructions, whatever the gap.

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
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros
from numba.extending import intrinsic

from .clock import now_ns
from .jit import kernel
from .records import (
    BUY, EV_ADD, EV_CANCEL, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT,
    EV_MODIFY, FILL, FOK, GTC, IOC, LIMIT, MARKET, N_REJECT_REASONS, ORDER, R_DUPLICATE_ID,
    R_FOK_NOT_FILLABLE, R_HALTED, R_INVALID_SIDE, R_INVALID_TYPE, R_NON_POSITIVE_PRICE,
    R_NON_POSITIVE_QTY, R_NONE, R_OUTPUT_FULL, R_POOL_FULL, R_PRICE_OFF_TICK,
    R_PRICE_OUT_OF_BAND, R_UNKNOWN_ORDER, R_UNKNOWN_SYMBOL, SELL, ST_CANCELLED, ST_DONE,
    ST_FILLED, ST_NEW, ST_PARTIALLY_FILLED, ST_REJECTED,
)

# ------------------------------------------------------------------ book-internal dtypes
LEVEL = np.dtype(
    [("qty", np.int64), ("head", np.int32), ("tail", np.int32), ("count", np.int32)],
    align=True,
)

BOOK = np.dtype(
    [
        ("base", np.int64),            # price (units) of ladder index 0
        ("tick", np.int64),            # tick size in price units
        ("orders", np.int64, (2,)),    # resting orders per side
        ("last_price", np.int64),
        ("volume", np.int64),          # traded quantity (book matches + replayed trades)
        ("trades", np.int64),
        ("best", np.int32, (2,)),      # ladder index of best bid / best ask, -1 if none
        ("n_levels", np.int32, (2,)),  # occupied levels per side
        ("anchored", np.int8),         # ladder window placed?
        ("halted", np.int8),
    ],
    align=True,
)

# --------------------------------------------------------------- engine counters layout
C_FREE_HEAD = 0      # first free pool slot, -1 when the pool is full
C_LIVE = 1           # resting orders, all books
C_FILL_SEQ = 2       # next fill sequence number
C_EVENTS = 3         # events applied
C_FILLS = 4          # fills written
C_HASH_SHIFT = 5     # 64 - log2(index size)
C_ANON_FALLBACK = 6  # 1: cancels/executions of unknown ids act on anonymous volume
C_W = 7              # ladder window (ticks per side)
C_L0 = 8             # bitmap words per side, level 0 (W / 64)
C_L1 = 9             # level-1 words (W / 4096)
C_BLOCK = 10         # bitmap words per (book, side)
C_OUTPUT_FULL = 11   # times a batch paused for a full fills buffer
C_REJECTS = 16       # + reason code: reject counts
N_COUNTERS = C_REJECTS + N_REJECT_REASONS + 2

EMPTY_KEY = np.int64(-(2**63))
MIN_PRICE_LEVELS = 4096
MAX_PRICE_LEVELS = 262144

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class BookState(NamedTuple):
    """Every array of an engine's books; passed whole to kernels."""

    pool: np.ndarray         # ORDER[capacity]
    levels: np.ndarray       # LEVEL[n_books * 2 * W]
    bits: np.ndarray         # uint64[n_books * 2 * block]
    books: np.ndarray        # BOOK[n_books]
    index_keys: np.ndarray   # int64[2**k]
    index_slots: np.ndarray  # int32[2**k]
    counters: np.ndarray     # int64[N_COUNTERS]


def allocate_state(n_books: int, capacity: int, price_levels: int, ticks) -> BookState:
    """Fresh state for ``n_books`` books with one ``tick`` (price units) each.

    Validation of the arguments is the Python layer's job; this only checks the
    invariants the kernels rely on.
    """
    W = int(price_levels)
    assert MIN_PRICE_LEVELS <= W <= MAX_PRICE_LEVELS and W & (W - 1) == 0, W
    assert capacity >= 1 and n_books >= 1
    l0, l1 = W // 64, W // 4096
    block = l0 + l1 + 1
    pool = np.zeros(capacity, dtype=ORDER)
    pool["next"] = np.arange(1, capacity + 1, dtype=np.int32)
    pool["next"][-1] = -1
    pool["prev"] = -1
    levels = np.zeros(n_books * 2 * W, dtype=LEVEL)
    levels["head"] = -1
    levels["tail"] = -1
    bits = np.zeros(n_books * 2 * block, dtype=np.uint64)
    books = np.zeros(n_books, dtype=BOOK)
    books["tick"] = np.asarray(ticks, dtype=np.int64)
    books["best"] = -1
    size = 1 << max(4, int(2 * capacity - 1).bit_length())
    index_keys = np.full(size, EMPTY_KEY, dtype=np.int64)
    index_slots = np.full(size, -1, dtype=np.int32)
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    counters[C_FREE_HEAD] = 0
    counters[C_HASH_SHIFT] = 64 - (size.bit_length() - 1)
    counters[C_W] = W
    counters[C_L0] = l0
    counters[C_L1] = l1
    counters[C_BLOCK] = block
    return BookState(pool, levels, bits, books, index_keys, index_slots, counters)


# ------------------------------------------------------------------------- bit helpers
@kernel(inline="always")
def _bit(b):
    return _ONE << np.uint64(b)


@kernel(inline="always")
def _highest(word):
    return 63 - np.int64(leading_zeros(word))


@kernel(inline="always")
def _lowest(word):
    return np.int64(trailing_zeros(word))


@kernel(inline="always")
def _mask_upto(b):
    """Bits 0..b inclusive."""
    if b >= 63:
        return _ALL
    return (_ONE << np.uint64(b + 1)) - _ONE


@kernel(inline="always")
def _mask_from(b):
    """Bits b..63."""
    return _ALL << np.uint64(b)


@kernel(inline="always")
def _bits_base(counters, book, side):
    return (book * 2 + side) * counters[C_BLOCK]


@kernel(inline="always")
def _bitmap_set(bits, counters, book, side, i):
    base = _bits_base(counters, book, side)
    n0 = counters[C_L0]
    n1 = counters[C_L1]
    w = i >> 6
    old = bits[base + w]
    bits[base + w] = old | _bit(i & 63)
    if old == 0:
        w1 = w >> 6
        old1 = bits[base + n0 + w1]
        bits[base + n0 + w1] = old1 | _bit(w & 63)
        if old1 == 0:
            bits[base + n0 + n1] = bits[base + n0 + n1] | _bit(w1)


@kernel(inline="always")
def _bitmap_clear(bits, counters, book, side, i):
    base = _bits_base(counters, book, side)
    n0 = counters[C_L0]
    n1 = counters[C_L1]
    w = i >> 6
    word = bits[base + w] & ~_bit(i & 63)
    bits[base + w] = word
    if word == 0:
        w1 = w >> 6
        word1 = bits[base + n0 + w1] & ~_bit(w & 63)
        bits[base + n0 + w1] = word1
        if word1 == 0:
            bits[base + n0 + n1] = bits[base + n0 + n1] & ~_bit(w1)


@kernel(inline="always")
def _find_prev(bits, counters, book, side, i):
    """Highest occupied ladder index <= i, or -1."""
    if i < 0:
        return -1
    base = _bits_base(counters, book, side)
    n0 = counters[C_L0]
    n1 = counters[C_L1]
    w = i >> 6
    word = bits[base + w] & _mask_upto(i & 63)
    if word != 0:
        return (w << 6) + _highest(word)
    w1 = w >> 6
    b1 = w & 63
    if b1 > 0:
        word1 = bits[base + n0 + w1] & _mask_upto(b1 - 1)
        if word1 != 0:
            l0w = (w1 << 6) + _highest(word1)
            return (l0w << 6) + _highest(bits[base + l0w])
    if w1 > 0:
        word2 = bits[base + n0 + n1] & _mask_upto(w1 - 1)
        if word2 != 0:
            l1w = _highest(word2)
            l0w = (l1w << 6) + _highest(bits[base + n0 + l1w])
            return (l0w << 6) + _highest(bits[base + l0w])
    return -1


@kernel(inline="always")
def _find_next(bits, counters, book, side, i):
    """Lowest occupied ladder index >= i, or -1."""
    if i >= counters[C_W]:
        return -1
    base = _bits_base(counters, book, side)
    n0 = counters[C_L0]
    n1 = counters[C_L1]
    w = i >> 6
    word = bits[base + w] & _mask_from(i & 63)
    if word != 0:
        return (w << 6) + _lowest(word)
    w1 = w >> 6
    b1 = w & 63
    if b1 < 63:
        word1 = bits[base + n0 + w1] & _mask_from(b1 + 1)
        if word1 != 0:
            l0w = (w1 << 6) + _lowest(word1)
            return (l0w << 6) + _lowest(bits[base + l0w])
    if w1 < 63:
        word2 = bits[base + n0 + n1] & _mask_from(w1 + 1)
        if word2 != 0:
            l1w = _lowest(word2)
            l0w = (l1w << 6) + _lowest(bits[base + n0 + l1w])
            return (l0w << 6) + _lowest(bits[base + l0w])
    return -1


@kernel(inline="always")
def next_level(st, book, side, idx):
    """The next worse occupied level after ``idx`` on ``side`` (-1 when none)."""
    if side == BUY:
        return _find_prev(st.bits, st.counters, book, side, idx - 1)
    return _find_next(st.bits, st.counters, book, side, idx + 1)


@kernel(inline="always")
def level_index(st, book, side, idx):
    """Position of ladder slot ``idx`` of (book, side) in ``st.levels``."""
    return (book * 2 + side) * st.counters[C_W] + idx


# ------------------------------------------------------------------------ order index
@kernel(inline="always")
def _home(order_id, shift):
    return np.int64((np.uint64(order_id) * _GOLDEN) >> np.uint64(shift))


@kernel(inline="always")
def index_find(st, order_id, book):
    """Table position of (order_id, book) if present, else ``-1 - first_empty_position``."""
    keys = st.index_keys
    mask = len(keys) - 1
    h = _home(order_id, st.counters[C_HASH_SHIFT])
    while True:
        k = keys[h]
        if k == EMPTY_KEY:
            return -1 - h
        if k == order_id and st.pool[st.index_slots[h]].symbol == book:
            return h
        h = (h + 1) & mask


@kernel
def _index_delete(st, pos):
    keys = st.index_keys
    slots = st.index_slots
    mask = len(keys) - 1
    shift = st.counters[C_HASH_SHIFT]
    i = pos
    j = pos
    while True:
        j = (j + 1) & mask
        k = keys[j]
        if k == EMPTY_KEY:
            break
        home = _home(k, shift)
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            keys[i] = k
            slots[i] = slots[j]
            i = j
    keys[i] = EMPTY_KEY
    slots[i] = -1


@kernel
def anon_order_id(book, side, price):
    """The id under which anonymous (pre-existing, id-less) volume at a price rests."""
    return -(((book * 2 + side) << 44) | price) - 1


# ------------------------------------------------------------------- resting orders
@kernel
def _price_index(st, book, price):
    """Ladder index of ``price`` (anchoring an empty book's window), -1 if outside."""
    b = st.books[book]
    W = st.counters[C_W]
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
    slot = counters[C_FREE_HEAD]
    o = pool[slot]
    counters[C_FREE_HEAD] = o.next
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
        _bitmap_set(st.bits, counters, book, side, idx)
        b.n_levels[side] += 1
        best = b.best[side]
        if best < 0 or (side == BUY and idx > best) or (side == SELL and idx < best):
            b.best[side] = idx
    lv.tail = slot
    lv.count += 1
    lv.qty += qty
    pos = ins_pos if ins_pos >= 0 else -1 - index_find(st, order_id, book)
    st.index_keys[pos] = order_id
    st.index_slots[pos] = slot
    b.orders[side] += 1
    counters[C_LIVE] += 1
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
        _bitmap_clear(st.bits, counters, book, side, idx)
        b.n_levels[side] -= 1
        if b.best[side] == idx:
            b.best[side] = next_level(st, book, side, idx)
    if pos < 0:
        pos = index_find(st, o.order_id, book)
    _index_delete(st, pos)
    b.orders[side] -= 1
    counters[C_LIVE] -= 1
    o.prev = -1
    o.next = counters[C_FREE_HEAD]
    counters[C_FREE_HEAD] = slot
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
    f.seq = counters[C_FILL_SEQ]
    counters[C_FILL_SEQ] += 1
    counters[C_FILLS] += 1
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
        st.counters[C_OUTPUT_FULL] += 1
        st.counters[C_EVENTS] -= 1  # not applied: the caller retries it
    else:
        st.counters[C_REJECTS + reason] += 1
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
    if (order_type != LIMIT and order_type != MARKET) or (tif != GTC and tif != IOC and tif != FOK):
        return _reject(st, R_INVALID_TYPE, order_id, nf)
    b = st.books[book]
    if b.halted != 0:
        return _reject(st, R_HALTED, order_id, nf)
    probe = index_find(st, order_id, book)
    if probe >= 0:
        return _reject(st, R_DUPLICATE_ID, order_id, nf)
    rests = order_type == LIMIT and tif == GTC
    limit_idx = -1
    if order_type == LIMIT:
        if price <= 0:
            return _reject(st, R_NON_POSITIVE_PRICE, order_id, nf)
        if b.anchored != 0:
            # One division gives both the tick check and the ladder index (the base is
            # a multiple of the tick): this is the hot path of every limit order.
            offset = price - b.base
            limit_idx = offset // b.tick
            if limit_idx * b.tick != offset:
                return _reject(st, R_PRICE_OFF_TICK, order_id, nf)
            if limit_idx < 0 or limit_idx >= st.counters[C_W]:
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
    if rests and st.counters[C_FREE_HEAD] < 0:
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
    pos = index_find(st, order_id, book)
    if pos >= 0:
        return pos
    if st.counters[C_ANON_FALLBACK] != 0 and price > 0 and (side == BUY or side == SELL):
        pos = index_find(st, anon_order_id(book, side, price), book)
        if pos >= 0:
            return pos
    return -1


@kernel
def _cancel(st, nf, kind, order_id, price, qty, book, side):
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
    pos = index_find(st, order_id, book)
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
    if new_idx < 0 or new_idx >= st.counters[C_W]:
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
    new count of fills written. A reject changes nothing. ``R_OUTPUT_FULL`` means
    the fills buffer lacks room for the worst case of this event: nothing was
    applied; drain the buffer and retry.
    """
    st.counters[C_EVENTS] += 1
    if book < 0 or book >= len(st.books):
        return _reject(st, R_UNKNOWN_SYMBOL, order_id, nf)
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
    lost or applied twice).
    """
    st = borrow_state(st)
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
    st = borrow_state(st)
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
@intrinsic
def address_as_pointer(typingctx, address):
    """An int64 address as a ``void*`` for ``numba.carray`` (no reference count)."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen



CTX_SIZE = 16  # (address, length) of the 7 state arrays and the fills buffer


def state_context(st: BookState, fills: np.ndarray) -> np.ndarray:
    """Addresses and lengths of the state arrays, for ``apply_one``.

    Why: a Python call that passes eight arrays spends ~40 ns unboxing each; passing
    one small array of addresses lets a single order cross into the kernel in ~150 ns.
    The caller must keep every array alive while the context is in use (``Engine`` owns
    both).
    """
    arrays = (*st, fills)
    assert all(a.flags.c_contiguous for a in arrays)
    ctx = np.zeros(CTX_SIZE, dtype=np.int64)
    for i, a in enumerate(arrays):
        ctx[2 * i] = a.ctypes.data
        ctx[2 * i + 1] = len(a)
    return ctx


@kernel
def state_from_context(ctx):
    st = BookState(
        carray(address_as_pointer(ctx[0]), ctx[1], ORDER),
        carray(address_as_pointer(ctx[2]), ctx[3], LEVEL),
        carray(address_as_pointer(ctx[4]), ctx[5], np.uint64),
        carray(address_as_pointer(ctx[6]), ctx[7], BOOK),
        carray(address_as_pointer(ctx[8]), ctx[9], np.int64),
        carray(address_as_pointer(ctx[10]), ctx[11], np.int32),
        carray(address_as_pointer(ctx[12]), ctx[13], np.int64),
    )
    fills = carray(address_as_pointer(ctx[14]), ctx[15], FILL)
    return st, fills


@kernel
def _borrow(a, dtype):
    return carray(address_as_pointer(np.int64(a.ctypes.data)), a.shape[0], dtype)


@kernel
def borrow_state(st):
    """Views of the state arrays without reference counts, for hot loops.

    Why: Numba increments and decrements an atomic reference count on every array
    each time it crosses a function boundary; with seven state arrays and a few call
    levels per event that costs ~4x the matching work itself. Views built from raw
    addresses carry no count. Only valid while the caller keeps ``st`` alive, which
    a kernel's own argument always is for the duration of the call.
    """
    return BookState(
        _borrow(st.pool, ORDER), _borrow(st.levels, LEVEL), _borrow(st.bits, np.uint64),
        _borrow(st.books, BOOK), _borrow(st.index_keys, np.int64),
        _borrow(st.index_slots, np.int32), _borrow(st.counters, np.int64),
    )


@kernel
def borrow_fills(fills):
    """A reference-count-free view of a FILL buffer (see ``borrow_state``)."""
    return _borrow(fills, FILL)


@kernel
def apply_one(ctx_address, ts, order_id, price, qty, book, kind, side, order_type, tif):
    """``apply_event`` for one event from Python, fills written from ``fills[0]``.

    ``ctx_address`` is the address of a ``state_context`` array: an int unboxes in a
    few ns where an array costs ~80. Returns ``(code, filled, leaves)`` with
    ``code = status | reason << 8 | fills << 16``: three values box into Python much
    faster than six. ``ts <= 0`` stamps the event with the engine's event sequence
    number (a logical clock).
    """
    ctx = carray(address_as_pointer(ctx_address), CTX_SIZE, np.int64)
    st, fills = state_from_context(ctx)
    if ts <= 0:
        ts = st.counters[C_EVENTS] + 1
    status, reason, _, filled, leaves, nf = apply_event(
        st, fills, 0, ts, order_id, price, qty, book, kind, side, order_type, tif)
    return status | (reason << 8) | (nf << 16), filled, leaves


# ----------------------------------------------------------------------------- views
@kernel
def top_levels(st, book, side, out_price, out_qty, out_count):
    """Fill the best ``len(out_price)`` levels of one side; returns how many exist."""
    b = st.books[book]
    idx = b.best[side]
    k = 0
    while idx >= 0 and k < len(out_price):
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
    Returns the count (``out`` must hold ``orders[0] + orders[1]``)."""
    b = st.books[book]
    k = 0
    for side in range(2):
        idx = b.best[side]
        while idx >= 0:
            slot = st.levels[level_index(st, book, side, idx)].head
            while slot >= 0:
                out[k] = st.pool[slot]
                k += 1
                slot = st.pool[slot].next
            idx = next_level(st, book, side, idx)
    return k


@kernel
def queue_position(st, book, order_id):
    """(quantity ahead in the queue, orders ahead) of a resting order; (-1, -1) if
    the order does not rest in ``book``."""
    pos = index_find(st, order_id, book)
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
