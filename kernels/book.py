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
  and grouped Fibonacci hashing (8 consecutive ids to a line) over two parallel arrays
  (``index_keys``, ``index_slots``), at most half full, no tombstones. Keys are
  ``(order_id, symbol)``: ids may repeat across symbols. :func:`find_order` is its lookup
  over a book state.
* **Price levels: a window near the touch, an overflow beyond it.** Every positive
  price on the tick grid is accepted, whatever its distance from the touch.

  - *Window* (the hot path): per book and side, ``W`` direct-mapped ``LEVEL`` slots
    (``price_levels``, a power of two from 64 to 262,144) covering the ticks
    ``[lo, lo + W)``; tick ``t`` lives in slot ``t & (W - 1)``, a ring, so the window
    can slide without moving the levels that stay in it. Price -> level is one
    division (which is also the tick check) and a mask: add and cancel are O(1).
  - *Three-level occupancy bitmap* per window (``kernels.bitmap``): the next occupied
    tick either way in at most three count-leading/trailing-zeros instructions,
    whatever the gap, split in two searches where the ring wraps.
  - *Overflow*: levels outside the window sit in one pool shared by all books
    (``levels[EC_OVF_BASE:]``), chained per (book, side) into a doubly linked list
    sorted best first (``ovf_next``/``ovf_prev``, head and tail in ``BOOK``). A new
    far level is linked in by walking from whichever end of the list is nearer in
    price; existing far levels are reached in O(1) through their orders.
  - *Invariant*: every overflow level of a side is worse than every tick of that side's
    window, and a non-empty side has its best level in its window. So best bid and ask
    are stored handles (O(1) to read), and the next best level after the window's last
    one is simply the overflow list's head.
  - *The window follows the market* while the book is non-empty: an order better than
    the window slides it (the bid window keeps its best ``W/4`` ticks below the top,
    the ask window ``W/4`` above the bottom), moving the levels that leave it to the
    head of the overflow list; when the window's last level empties and the best is
    in the overflow, the window re-centres on it and pulls the overflow levels that
    now fit back in. Moving a level rewrites its orders' ``level`` handles: O(levels +
    orders moved), counted in ``EC_RECENTRES``; a side that empties forgets its window
    and places it on its next order.

  Costs: ladder memory is ``W x 32 B`` per side per book plus the bitmap, chosen per
  engine (``kernels.book_state.default_price_levels``: 65,536 ticks for one book, 512
  for 10,000), and the overflow pool grows with the levels actually in use (at most one
  per resting order). Within the window every operation is O(1); a new level in the
  overflow is O(k) in the overflow levels of its side (few: stub quotes, deep resting
  orders), every other overflow operation O(1).

  Rejected alternatives: a tree or sorted array of all levels (O(log n) pointer chasing
  or O(n) moves on the hot path, where real books live within a few thousand ticks of
  the touch); a hash of levels (cannot find the next best price); a ladder over the
  whole price range (``MAX_PRICE`` ticks); a window without overflow (it rejected real
  exchange orders: stub quotes, deep resting orders); a B-tree for the overflow
  (better for thousands of far levels per side, which real books do not have: the
  sorted list is simpler and O(1) for everything but a new far level); a window
  re-anchored by copying levels (a ring keeps remaining levels in place).

Orders are accepted at any price; the only price band is an opt-in **collar**
(``BOOK.collar_bps``, off by default and never applied to replayed feed events): a
limit order more than ``collar_bps`` basis points from the reference price (the last
trade, else the mid) is rejected with ``R_PRICE_OUT_OF_BAND``, as exchanges do.

Matching is price-time: an incoming order walks the opposite side best level first
and, within a level, oldest order first; every match writes one ``FILL`` at the
resting order's price. Every outcome (including rejects with their reason code) is
returned, never raised. Feed replays (``EV_REST``, ``EV_MOVE``, ``EV_CLEAR``) never
match: the exchange reports its matches as executions.

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

Calls on the hot path: a call between kernels passes the whole state (nine arrays), and
Numba's runtime makes one atomic reference-count update per array on the way in and out,
even for borrowed views: the compiled ``apply_batch`` held 472 increfs and 1,464 decrefs.
Every kernel here but the entry points is therefore compiled without the runtime
(:func:`kernel`, ``nrt=False``): the state belongs to the entry point's caller for the
whole call, so nothing below needs to count references, and none of these kernels may
allocate. Same run against the counted build (``scripts/book_before_after.py``, unchecked
build, 9 interleaved repeats, medians): flow A 1.8x, flow B 4.1x, the order mix 3.0x.
Before that, the common case of each step was inlined (``inline="always"``) into the
event kernels and only the rare case is a call: resting into a placed window (:func:`_level_at`, else
:func:`level_for`), removing an order whose level stays or is not the best
(:func:`_remove_resting`, else :func:`_level_emptied`), matching only when the opposite
best crosses (:func:`_enter`, else no :func:`_match` call). Inlining whole kernels
instead (``_match``, ``_enter`` with everything below) ran about as fast and tripled
the compile time. (Constants passed between kernels no longer make copies of the
callee: ``kernels.jit`` compiles one signature per kind of argument.) The window scans
(:func:`_win_down`, :func:`_win_up`) are calls too: inlined, each carried two bitmap
searches and their helpers into every caller (``_slide`` held four), about 11 s of the
demo's cold compilation; as calls the book's throughput stayed within the machine's noise
(three same-run comparisons: flow A 0.86x, 1.14x, 1.00x; flow B 1.01x, 1.02x).
"""
from __future__ import annotations

import numpy as np
from numba import carray

from .bitmap import bitmap_clear, bitmap_set, find_next, find_prev
from .book_state import (
    EC_ANON_FALLBACK, EC_BLOCK, EC_EVENTS, EC_FILL_SEQ, EC_FILLS, EC_FREE_HEAD, EC_HASH_SHIFT,
    EC_L0, EC_L1, EC_LIVE, EC_OUTPUT_FULL, EC_OVF_BASE, EC_OVF_FREE, EC_OVF_USED, EC_RECENTRES,
    EC_REJECTS, EC_W,
)
from .clock import now_ns
from .jit import kernel as _kernel


def kernel(fn=None, **options):
    """This module's kernels: ``kernels.jit.kernel`` compiled without Numba's runtime
    (``nrt=False``, module doc "Calls on the hot path"): no reference counting, and no
    allocation (it would not compile). The entry points build the state's views, which
    needs the runtime: they use ``_kernel`` itself."""
    return _kernel(fn, nrt=False, **options)
from .order_index import (
    EMPTY_KEY, home, index_delete, index_find, index_insert, index_peek, next_line,
)
from .pointers import address_as_pointer, borrow_c, borrow_fills
from .prefetch import prefetch, prefetch_record
from .records import (
    BUY, EV_ADD, EV_CANCEL, EV_CLEAR, EV_CROSS, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT,
    EV_MODIFY, EV_MOVE, EV_REST, FOK, GTC, IOC, LIMIT, MARKET, MAX_PRICE, MAX_QTY,
    R_DUPLICATE_ID, R_FOK_NOT_FILLABLE, R_HALTED, R_INVALID_ID, R_INVALID_SIDE, R_INVALID_TYPE,
    R_NON_POSITIVE_PRICE, R_NON_POSITIVE_QTY, R_NONE, R_OUTPUT_FULL, R_POOL_FULL,
    R_PRICE_OFF_TICK, R_PRICE_OUT_OF_BAND, R_PRICE_TOO_LARGE, R_QTY_TOO_LARGE, R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL, SELL, ST_CANCELLED, ST_DONE, ST_FILLED, ST_NEW, ST_PARTIALLY_FILLED,
    ST_REJECTED,
)
from .state_views import N_ENGINE_CONTEXT, book_borrow, engine_views

# Events between the id-index prefetch of an event and its application (prefetch_order).
PREFETCH_AHEAD = 8


# ------------------------------------------------------------------ window geometry
@kernel(inline="always")
def _bitmap_base(counters, book, side):
    """First word of the bitmap of (book, side) in ``st.bits``."""
    return (book * 2 + side) * counters[EC_BLOCK]


@kernel(inline="always")
def _window_base(counters, book, side):
    """Handle of slot 0 of the window of (book, side)."""
    return (book * 2 + side) * counters[EC_W]


@kernel(inline="always")
def _headroom(W):
    """Ticks a window keeps beyond its side's best (room for better prices)."""
    return W >> 2


@kernel(inline="always")
def is_overflow(st, h):
    """True for an overflow level handle."""
    return h >= st.counters[EC_OVF_BASE]


@kernel(inline="always")
def level_price(st, h):
    """Price (units) of the level behind handle ``h``."""
    return st.levels[h].price


@kernel(inline="always")
def best_price(st, book, side):
    """Best price of a side (units), 0 when the side is empty."""
    h = st.books[book].best[side]
    return st.levels[h].price if h >= 0 else np.int64(0)


@kernel(inline="always")
def _slot_tick(b, side, W, slot):
    """Tick of window slot ``slot`` (0..W-1) of a side."""
    lo = b.lo[side]
    return lo + ((slot - (lo & (W - 1))) & (W - 1))


@kernel
def _win_down(st, book, side, t):
    """Handle of the highest occupied window tick <= ``t`` of (book, side), -1 if none."""
    c = st.counters
    W = c[EC_W]
    M = W - 1
    b = st.books[book]
    lo = b.lo[side]
    if t > lo + M:
        t = lo + M
    if t < lo:
        return -1
    s = t & M
    s0 = lo & M
    base = _bitmap_base(c, book, side)
    r = find_prev(st.bits, base, c[EC_L0], c[EC_L1], s)
    if s >= s0:
        if r >= s0:
            return _window_base(c, book, side) + r
        return -1
    if r >= 0:
        return _window_base(c, book, side) + r
    r = find_prev(st.bits, base, c[EC_L0], c[EC_L1], M)
    if r >= s0:
        return _window_base(c, book, side) + r
    return -1


@kernel
def _win_up(st, book, side, t):
    """Handle of the lowest occupied window tick >= ``t`` of (book, side), -1 if none."""
    c = st.counters
    W = c[EC_W]
    M = W - 1
    b = st.books[book]
    lo = b.lo[side]
    if t < lo:
        t = lo
    if t > lo + M:
        return -1
    s = t & M
    se = (lo + M) & M
    base = _bitmap_base(c, book, side)
    r = find_next(st.bits, base, c[EC_L0], c[EC_L1], s)
    if s <= se:
        if r >= 0 and r <= se:
            return _window_base(c, book, side) + r
        return -1
    if r >= 0:
        return _window_base(c, book, side) + r
    r = find_next(st.bits, base, c[EC_L0], c[EC_L1], 0)
    if r >= 0 and r <= se:
        return _window_base(c, book, side) + r
    return -1


@kernel
def next_level(st, book, side, h):
    """The next worse occupied level after handle ``h`` on ``side`` (-1 when none):
    the window's next occupied tick, then the overflow list."""
    c = st.counters
    ovf = c[EC_OVF_BASE]
    if h >= ovf:
        nxt = st.ovf_next[h - ovf]
        return ovf + nxt if nxt >= 0 else -1
    b = st.books[book]
    W = c[EC_W]
    t = _slot_tick(b, side, W, h - _window_base(c, book, side))
    r = _win_down(st, book, side, t - 1) if side == BUY else _win_up(st, book, side, t + 1)
    if r >= 0:
        return r
    head = b.ovf_head[side]
    return ovf + head if head >= 0 else -1


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


# --------------------------------------------------------------- moving whole levels
@kernel(inline="always")
def _better(side, p, q):
    """Is price ``p`` better than ``q`` for resting orders of ``side``?"""
    return p > q if side == BUY else p < q


@kernel
def _move_level(st, src, dst):
    """Copy level ``src`` into the empty level ``dst`` and repoint its orders."""
    a = st.levels[src]
    d = st.levels[dst]
    d.qty = a.qty
    d.price = a.price
    d.head = a.head
    d.tail = a.tail
    d.count = a.count
    slot = a.head
    while slot >= 0:
        st.pool[slot].level = dst
        slot = st.pool[slot].next
    a.qty = 0
    a.head = -1
    a.tail = -1
    a.count = 0


@kernel
def _ovf_take(st):
    """A free overflow node (caller checked one exists)."""
    c = st.counters
    node = c[EC_OVF_FREE]
    c[EC_OVF_FREE] = st.ovf_next[node]
    c[EC_OVF_USED] += 1
    return node


@kernel
def _ovf_link(st, book, side, node, after):
    """Link ``node`` into the overflow list of (book, side) after node ``after``
    (-1: as the new head)."""
    b = st.books[book]
    if after < 0:
        nxt = b.ovf_head[side]
        b.ovf_head[side] = node
    else:
        nxt = st.ovf_next[after]
        st.ovf_next[after] = node
    st.ovf_prev[node] = after
    st.ovf_next[node] = nxt
    if nxt >= 0:
        st.ovf_prev[nxt] = node
    else:
        b.ovf_tail[side] = node
    b.n_ovf[side] += 1


@kernel
def _ovf_unlink(st, book, side, node):
    """Unlink ``node`` from its list and return it to the free pool."""
    b = st.books[book]
    c = st.counters
    prv = st.ovf_prev[node]
    nxt = st.ovf_next[node]
    if prv >= 0:
        st.ovf_next[prv] = nxt
    else:
        b.ovf_head[side] = nxt
    if nxt >= 0:
        st.ovf_prev[nxt] = prv
    else:
        b.ovf_tail[side] = prv
    b.n_ovf[side] -= 1
    st.ovf_prev[node] = -1
    st.ovf_next[node] = c[EC_OVF_FREE]
    c[EC_OVF_FREE] = node
    c[EC_OVF_USED] -= 1


@kernel
def _evict(st, book, side, h, after):
    """Move window level ``h`` to the overflow, linked after node ``after``; returns
    its node. The caller guarantees order (evicted levels are worse than the window,
    better than the rest of the overflow)."""
    c = st.counters
    node = _ovf_take(st)
    _move_level(st, h, c[EC_OVF_BASE] + node)
    bitmap_clear(st.bits, _bitmap_base(c, book, side), c[EC_L0], c[EC_L1],
                 h - _window_base(c, book, side))
    _ovf_link(st, book, side, node, after)
    return node


@kernel
def _slide(st, book, side, t):
    """Move the window of (book, side) so that tick ``t`` (better than every tick in
    it) lands ``W/4`` from its better edge; the levels left behind go to the head of
    the overflow, in order."""
    c = st.counters
    W = c[EC_W]
    b = st.books[book]
    after = -1
    if side == BUY:
        new_lo = t - (W - 1 - _headroom(W))
        h = _win_down(st, book, side, new_lo - 1)
        while h >= 0:
            after = _evict(st, book, side, h, after)
            h = _win_down(st, book, side, new_lo - 1)
    else:
        new_lo = t - _headroom(W)
        h = _win_up(st, book, side, new_lo + W)
        while h >= 0:
            after = _evict(st, book, side, h, after)
            h = _win_up(st, book, side, new_lo + W)
    b.lo[side] = new_lo
    c[EC_RECENTRES] += 1


@kernel
def _pull_in(st, book, side):
    """The window of (book, side) is empty and the overflow is not: re-centre the
    window on the overflow's best level and move every overflow level that fits into
    it. Returns the new best handle."""
    c = st.counters
    W = c[EC_W]
    M = W - 1
    b = st.books[book]
    ovf = c[EC_OVF_BASE]
    tick = b.tick
    t = st.levels[ovf + b.ovf_head[side]].price // tick
    if side == BUY:
        lo = t - (W - 1 - _headroom(W))
    else:
        lo = t - _headroom(W)
    b.lo[side] = lo
    wbase = _window_base(c, book, side)
    bbase = _bitmap_base(c, book, side)
    best = -1
    while b.ovf_head[side] >= 0:
        node = b.ovf_head[side]
        tt = st.levels[ovf + node].price // tick
        if tt < lo or tt > lo + M:
            break
        h = wbase + (tt & M)
        _move_level(st, ovf + node, h)
        bitmap_set(st.bits, bbase, c[EC_L0], c[EC_L1], tt & M)
        _ovf_unlink(st, book, side, node)
        if best < 0:
            best = h
    c[EC_RECENTRES] += 1
    return best


@kernel
def _ovf_find(st, book, side, price, create):
    """Handle of the overflow level at ``price`` of (book, side); with ``create`` a
    new empty one is linked in its sorted place when absent (-1 otherwise)."""
    c = st.counters
    ovf = c[EC_OVF_BASE]
    b = st.books[book]
    head = b.ovf_head[side]
    tail = b.ovf_tail[side]
    after = -1
    if head >= 0:
        hp = st.levels[ovf + head].price
        tp = st.levels[ovf + tail].price
        # walk from the nearer end (prices only grow worse from head to tail)
        if abs(price - hp) <= abs(tp - price):
            node = head
            after = -1
            while node >= 0:
                p = st.levels[ovf + node].price
                if p == price:
                    return ovf + node
                if _better(side, price, p):
                    break
                after = node
                node = st.ovf_next[node]
        else:
            node = tail
            while node >= 0:
                p = st.levels[ovf + node].price
                if p == price:
                    return ovf + node
                if _better(side, p, price):
                    break
                node = st.ovf_prev[node]
            after = node
    if not create:
        return -1
    node = _ovf_take(st)
    lv = st.levels[ovf + node]
    lv.price = price
    lv.qty = 0
    lv.head = -1
    lv.tail = -1
    lv.count = 0
    _ovf_link(st, book, side, node, after)
    return ovf + node


@kernel
def find_level(st, book, side, price):
    """Handle of the occupied level at ``price`` of (book, side), -1 if none (or the
    price is not on the tick grid)."""
    if book < 0 or book >= len(st.books) or (side != BUY and side != SELL) or price <= 0:
        return -1
    b = st.books[book]
    if b.placed[side] == 0 or price % b.tick != 0:
        return -1
    c = st.counters
    W = c[EC_W]
    t = price // b.tick
    lo = b.lo[side]
    if lo <= t and t < lo + W:
        h = _window_base(c, book, side) + (t & (W - 1))
        return h if st.levels[h].count > 0 else -1
    return _ovf_find(st, book, side, price, False)


@kernel(inline="always")
def _level_at(st, book, side, price, t):
    """:func:`level_for`'s common case, inlined into the hot paths: the side's window is
    placed and holds tick ``t``; anything else is the call."""
    c = st.counters
    W = c[EC_W]
    b = st.books[book]
    lo = b.lo[side]
    if b.placed[side] != 0 and lo <= t and t < lo + W:
        h = _window_base(c, book, side) + (t & (W - 1))
        lv = st.levels[h]
        if lv.count == 0:
            lv.price = price
        return h
    return level_for(st, book, side, price, t)


@kernel
def level_for(st, book, side, price, t):
    """Handle of the level at ``price`` (a multiple of the tick; ``t = price // tick``,
    which the caller computed for its tick check) of (book, side), created (and the
    window placed or slid) when needed. The caller checked that a free overflow node
    exists (``can_rest``)."""
    c = st.counters
    W = c[EC_W]
    b = st.books[book]
    if b.placed[side] == 0:
        b.lo[side] = t - (W - 1 - _headroom(W)) if side == BUY else t - _headroom(W)
        b.placed[side] = 1
    lo = b.lo[side]
    if t < lo:
        if side == BUY:
            return _ovf_find(st, book, side, price, True)
        _slide(st, book, side, t)
    elif t >= lo + W:
        if side == SELL:
            return _ovf_find(st, book, side, price, True)
        _slide(st, book, side, t)
    h = _window_base(c, book, side) + (t & (W - 1))
    lv = st.levels[h]
    if lv.count == 0:
        lv.price = price
    return h


@kernel(inline="always")
def can_rest(st):
    """A free order slot and a free overflow node? (The overflow pool is as large as
    the order pool and every level holds an order, so the second follows from the
    first; checked anyway, it is one compare.)"""
    c = st.counters
    return c[EC_FREE_HEAD] >= 0 and c[EC_OVF_FREE] >= 0


# ------------------------------------------------------------------- resting orders
@kernel
def rest_order(st, book, side, price, order_id, qty, filled, ts, order_type, tif, status,
               ins_pos=-1, t=-1):
    """Append a new order at the tail of its level (created when needed). The caller
    checked id, price (a positive multiple of the tick) and room (``can_rest``).
    ``ins_pos``: its index insertion position when the caller already probed for it;
    ``t``: ``price // tick`` when the caller already divided (-1: divide here)."""
    if t < 0:
        t = price // st.books[book].tick
    return _rest_order(st, book, side, price, t, order_id, qty, filled, ts, order_type, tif,
                       status, ins_pos)


@kernel(inline="always")
def _rest_order(st, book, side, price, t, order_id, qty, filled, ts, order_type, tif, status,
                ins_pos):
    """:func:`rest_order` with ``t = price // tick`` given, inlined into the hot paths."""
    counters = st.counters
    h = _level_at(st, book, side, price, t)
    slot = counters[EC_FREE_HEAD]
    o = st.pool[slot]
    counters[EC_FREE_HEAD] = o.next
    o.order_id = order_id
    o.filled = filled
    o.symbol = book
    o.side = side
    o.order_type = order_type
    o.tif = tif
    _link_resting(st, slot, book, side, h, price, qty, ts, status)
    pos = ins_pos if ins_pos >= 0 else -1 - find_order(st, order_id, book)
    index_insert(st.index_keys, st.index_slots, pos, order_id, slot)
    st.books[book].orders[side] += 1
    counters[EC_LIVE] += 1
    return slot


@kernel(inline="always")
def _link_resting(st, slot, book, side, h, price, qty, ts, status):
    """Append the order in ``slot`` at the tail of level ``h`` (of ``book``, ``side``,
    at ``price``) with ``qty`` and ``ts``: its queue links and the level's (created
    when it was empty), not the index or the pool's free list."""
    pool = st.pool
    counters = st.counters
    b = st.books[book]
    o = pool[slot]
    o.price = price
    o.qty = qty
    o.ts = ts
    o.level = h
    o.status = status
    o.next = -1
    lv = st.levels[h]
    o.prev = lv.tail
    if lv.tail >= 0:
        pool[lv.tail].next = slot
    else:
        lv.head = slot
        if h < counters[EC_OVF_BASE]:
            bitmap_set(st.bits, _bitmap_base(counters, book, side), counters[EC_L0],
                       counters[EC_L1], h - _window_base(counters, book, side))
        b.n_levels[side] += 1
        best = b.best[side]
        if best < 0 or _better(side, price, st.levels[best].price):
            b.best[side] = h
    lv.tail = slot
    lv.count += 1
    lv.qty += qty


@kernel
def remove_resting(st, slot, pos):
    """Take a resting order out of its level, the index and the pool.

    ``pos`` is its index position if the caller knows it, else -1.
    """
    _remove_resting(st, slot, pos)


@kernel(inline="always")
def _remove_resting(st, slot, pos):
    """:func:`remove_resting`, inlined into the hot paths (cancel, modify, a fill)."""
    counters = st.counters
    o = st.pool[slot]
    book = o.symbol
    side = o.side
    if pos < 0:
        pos = find_order(st, o.order_id, book)
    index_delete(st.index_keys, st.index_slots, counters[EC_HASH_SHIFT], pos)
    st.books[book].orders[side] -= 1
    counters[EC_LIVE] -= 1
    _unlink_resting(st, slot)
    o.prev = -1
    o.next = counters[EC_FREE_HEAD]
    counters[EC_FREE_HEAD] = slot


@kernel(inline="always")
def _unlink_resting(st, slot):
    """Take the order in ``slot`` out of its level's queue (the level freed when it
    empties), not out of the index or the pool."""
    pool = st.pool
    counters = st.counters
    o = pool[slot]
    book = o.symbol
    side = o.side
    h = o.level
    b = st.books[book]
    lv = st.levels[h]
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
        if h < counters[EC_OVF_BASE] and b.best[side] != h:
            # the common case inline: a window level behind the best emptied (the best,
            # in the window while the side is not empty, stays)
            lv.qty = 0
            b.n_levels[side] -= 1
            bitmap_clear(st.bits, _bitmap_base(counters, book, side), counters[EC_L0],
                         counters[EC_L1], h - _window_base(counters, book, side))
        else:
            _level_emptied(st, book, side, h)


@kernel
def _level_emptied(st, book, side, h):
    """Level ``h`` of (book, side) lost its last order and is its side's best, or an
    overflow level: free it, find the next best, re-centre or forget the window."""
    counters = st.counters
    b = st.books[book]
    lv = st.levels[h]
    lv.qty = 0
    b.n_levels[side] -= 1
    ovf = counters[EC_OVF_BASE]
    if h >= ovf:
        if b.best[side] == h:  # only when the window is empty (not normally)
            nb = st.ovf_next[h - ovf]
            b.best[side] = ovf + nb if nb >= 0 else -1
        _ovf_unlink(st, book, side, h - ovf)
    else:
        bitmap_clear(st.bits, _bitmap_base(counters, book, side), counters[EC_L0],
                     counters[EC_L1], h - _window_base(counters, book, side))
        if b.best[side] == h:
            b.best[side] = next_level(st, book, side, h)
    nb = b.best[side]
    if nb >= ovf:
        b.best[side] = _pull_in(st, book, side)
    elif nb < 0:
        b.placed[side] = 0  # an empty side places its window on its next order


@kernel(inline="always")
def _reduce_resting(st, slot, pos, qty):
    """Reduce a resting order by ``qty`` (< its leaves) keeping its queue position."""
    o = st.pool[slot]
    o.qty -= qty
    st.levels[o.level].qty -= qty


# -------------------------------------------------------------------------- matching
@kernel(inline="always")
def _crosses(taker_side, level_price, limit_price):
    if limit_price <= 0:
        return True  # market order
    if taker_side == BUY:
        return level_price <= limit_price
    return level_price >= limit_price


@kernel
def crossing_liquidity(st, book, taker_side, limit_price, want):
    """(quantity, orders) resting on the opposite side that a taker would reach,
    walking until ``want`` quantity is covered (``limit_price`` 0: a market order)."""
    maker = 1 - taker_side
    h = st.books[book].best[maker]
    total = 0
    n_orders = 0
    while h >= 0 and total < want:
        lv = st.levels[h]
        if not _crosses(taker_side, lv.price, limit_price):
            break
        total += lv.qty
        n_orders += lv.count
        h = next_level(st, book, maker, h)
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
def _match(st, fills, nf, book, taker_side, limit_price, qty, taker_id, ts):
    """Walk the opposite side best-first; returns (unfilled quantity, fills written)."""
    maker = 1 - taker_side
    b = st.books[book]
    pool = st.pool
    while qty > 0:
        h = b.best[maker]
        if h < 0:
            break
        lv = st.levels[h]
        price = lv.price
        if not _crosses(taker_side, price, limit_price):
            break
        # this level's orders, oldest first; the best is read again only when the level
        # empties (emptying a level may move the window, and with it every handle)
        while qty > 0:
            slot = lv.head
            o = pool[slot]
            trade = min(qty, o.qty)
            nf = _write_fill(st, fills, nf, ts, slot, taker_id, price, trade, taker_side)
            qty -= trade
            o.filled += trade
            if trade == o.qty:
                last = lv.count == 1
                _remove_resting(st, slot, -1)  # takes its leaves off the level too
                o.qty = 0
                o.status = ST_FILLED
                if last:
                    break
            else:
                o.qty -= trade
                lv.qty -= trade
                o.status = ST_PARTIALLY_FILLED
    return qty, nf


@kernel(inline="always")
def _fills_room_ok(st, fills, nf, book, taker_side, limit_price, qty):
    room = len(fills) - nf
    if room >= st.books[book].orders[1 - taker_side]:
        return True
    _, n_orders = crossing_liquidity(st, book, taker_side, limit_price, qty)
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
def _outside_collar(st, book, price):
    """The opt-in collar: is ``price`` more than ``collar_bps`` from the reference (the
    last trade, else the mid; no reference, no collar)?"""
    b = st.books[book]
    ref = b.last_price
    if ref <= 0:
        if b.best[BUY] < 0 or b.best[SELL] < 0:
            return False
        ref = (st.levels[b.best[BUY]].price + st.levels[b.best[SELL]].price) // 2
    return abs(price - ref) * 10_000 > b.collar_bps * ref


@kernel(inline="always")
def _enter(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif,
           prior_filled, ins_pos, t):
    """Match a validated order, then rest or cancel what is left. ``ins_pos`` is the
    id's index insertion position probed before matching (-1 if unknown); ``t`` is
    ``price // tick`` for a limit order (its tick check divided once)."""
    limit_price = price if order_type == LIMIT else np.int64(0)
    remaining = qty
    best = st.books[book].best[1 - side]
    if best >= 0 and _crosses(side, st.levels[best].price, limit_price):
        remaining, nf = _match(st, fills, nf, book, side, limit_price, qty, order_id, ts)
    if remaining != qty:
        ins_pos = -1  # matching removed index entries: the probe is stale
    filled = prior_filled + qty - remaining
    if remaining == 0:
        return ST_FILLED, R_NONE, order_id, filled, np.int64(0), nf
    if order_type == LIMIT and tif == GTC:
        status = ST_NEW if filled == 0 else ST_PARTIALLY_FILLED
        _rest_order(st, book, side, price, t, order_id, remaining, filled, ts, order_type,
                    tif, status, ins_pos)
        return status, R_NONE, order_id, filled, remaining, nf
    return ST_CANCELLED, R_NONE, order_id, filled, np.int64(0), nf


@kernel(inline="always")
def _check_new(qty, side, order_type, tif):
    """Checks of a new order before its book is read; ``R_NONE`` or the reason."""
    if side != BUY and side != SELL:
        return R_INVALID_SIDE
    if qty <= 0:
        return R_NON_POSITIVE_QTY
    if qty > MAX_QTY:
        return R_QTY_TOO_LARGE
    if (order_type != LIMIT and order_type != MARKET) or (tif != GTC and tif != IOC and tif != FOK):
        return R_INVALID_TYPE
    return R_NONE


@kernel(inline="always")
def _limit_price_tick(price, tick):
    """Checks of a limit price: ``(R_NONE, price // tick)`` or ``(reason, -1)``. One
    division gives both the tick check and the tick index its level needs (this is on
    the path of every limit order)."""
    if price <= 0:
        return R_NON_POSITIVE_PRICE, np.int64(-1)
    if price > MAX_PRICE:
        return R_PRICE_TOO_LARGE, np.int64(-1)
    t = price // tick
    if t * tick != price:
        return R_PRICE_OFF_TICK, np.int64(-1)
    return R_NONE, t


@kernel
def _add(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif):
    reason = _check_new(qty, side, order_type, tif)
    if reason != R_NONE:
        return _reject(st, reason, order_id, nf)
    b = st.books[book]
    if b.halted != 0:
        return _reject(st, R_HALTED, order_id, nf)
    probe = find_order(st, order_id, book)
    if probe >= 0:
        return _reject(st, R_DUPLICATE_ID, order_id, nf)
    rests = order_type == LIMIT and tif == GTC
    t = np.int64(-1)
    if order_type == LIMIT:
        reason, t = _limit_price_tick(price, b.tick)
        if reason != R_NONE:
            return _reject(st, reason, order_id, nf)
        if b.collar_bps > 0 and _outside_collar(st, book, price):
            return _reject(st, R_PRICE_OUT_OF_BAND, order_id, nf)
    if rests and not can_rest(st):
        return _reject(st, R_POOL_FULL, order_id, nf)
    limit_price = price if order_type == LIMIT else np.int64(0)
    if tif == FOK:
        available, _ = crossing_liquidity(st, book, side, limit_price, qty)
        if available < qty:
            return _reject(st, R_FOK_NOT_FILLABLE, order_id, nf)
    if not _fills_room_ok(st, fills, nf, book, side, limit_price, qty):
        return _reject(st, R_OUTPUT_FULL, order_id, nf)
    return _enter(st, fills, nf, ts, order_id, price, qty, book, side, order_type, tif,
                  0, -1 - probe, t)


@kernel
def _rest_replayed(st, nf, ts, order_id, price, qty, book, side):
    """``EV_REST``: a feed's add rests at its price without matching (no halt check,
    no collar: the exchange accepted it)."""
    return _rest_replayed_inline(st, nf, ts, order_id, price, qty, book, side)


@kernel(inline="always")
def _rest_replayed_inline(st, nf, ts, order_id, price, qty, book, side):
    """:func:`_rest_replayed`'s body, inlined by :func:`apply_feed_event`."""
    reason = _check_new(qty, side, LIMIT, GTC)
    t = np.int64(-1)
    if reason == R_NONE:
        reason, t = _limit_price_tick(price, st.books[book].tick)
    if reason != R_NONE:
        return _reject(st, reason, order_id, nf)
    probe = find_order(st, order_id, book)
    if probe >= 0:
        return _reject(st, R_DUPLICATE_ID, order_id, nf)
    if not can_rest(st):
        return _reject(st, R_POOL_FULL, order_id, nf)
    _rest_order(st, book, side, price, t, order_id, qty, 0, ts, LIMIT, GTC, ST_NEW, -1 - probe)
    return ST_NEW, R_NONE, order_id, np.int64(0), qty, nf


@kernel(inline="always")
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
    return _cancel_inline(st, nf, kind, order_id, price, qty, book, side)


@kernel(inline="always")
def _cancel_inline(st, nf, kind, order_id, price, qty, book, side):
    """:func:`_cancel`'s body (``EV_CANCEL``, ``EV_DELETE``), inlined by
    :func:`apply_feed_event`."""
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
        _remove_resting(st, slot, pos)
        return ST_CANCELLED, R_NONE, order_id, filled, np.int64(0), nf
    _reduce_resting(st, slot, pos, qty)
    return np.int64(o.status), R_NONE, order_id, o.filled, o.qty, nf


@kernel
def _execute(st, fills, nf, ts, order_id, price, qty, book, side):
    return _execute_inline(st, fills, nf, ts, order_id, price, qty, book, side)


@kernel(inline="always")
def _execute_inline(st, fills, nf, ts, order_id, price, qty, book, side):
    """:func:`_execute`'s body (``EV_EXECUTE``), inlined by :func:`apply_feed_event`."""
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
def _modify(st, fills, nf, ts, order_id, price, qty, book, replay):
    """``EV_MODIFY`` (``replay`` False: a new price may match) and ``EV_MOVE`` (a feed's
    modify: never matches, no halt check, no collar)."""
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
    if b.halted != 0 and not replay:
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
    t = new_price // b.tick  # one division: the tick check and the level's tick index
    if t * b.tick != new_price:
        return _reject(st, R_PRICE_OFF_TICK, order_id, nf)
    if not replay and b.collar_bps > 0 and new_price != o.price and _outside_collar(
            st, book, new_price):
        return _reject(st, R_PRICE_OUT_OF_BAND, order_id, nf)
    side = o.side
    prior_filled = o.filled
    # Price change or more quantity: the order loses its time priority.
    best = b.best[1 - side]
    if replay or best < 0 or not _crosses(side, st.levels[best].price, new_price):
        # It rests again (the common move): the same pool slot and index entry, taken
        # out of its queue and appended to its new level's (no index delete and insert).
        status = ST_NEW if prior_filled == 0 else ST_PARTIALLY_FILLED
        _unlink_resting(st, slot)
        h = _level_at(st, book, side, new_price, t)
        _link_resting(st, slot, book, side, h, new_price, new_qty, ts, status)
        return status, R_NONE, order_id, prior_filled, new_qty, nf
    if not _fills_room_ok(st, fills, nf, book, side, new_price, new_qty):
        return _reject(st, R_OUTPUT_FULL, order_id, nf)
    # It trades: cancel/replace through the add path (match, then rest what is left).
    order_type = o.order_type
    tif = o.tif
    _remove_resting(st, slot, pos)
    return _enter(st, fills, nf, ts, order_id, new_price, new_qty, book, side, order_type, tif,
                  prior_filled, -1, t)


@kernel
def clear_others(st, book, keep_from):
    """``EV_CLEAR`` for a simulation that queues its own orders among a feed's: remove
    every resting order of ``book`` whose id is below ``keep_from`` (the feed's, and
    anonymous volume), keep the rest (a feed's book reset does not cancel orders the
    feed never knew); ``keep_from`` 0 keeps nothing. Returns how many it removed."""
    b = st.books[book]
    n = 0
    for side in range(2):
        h = b.best[side]
        while h >= 0:
            slot = st.levels[h].head
            emptied = False
            while slot >= 0:
                nxt = st.pool[slot].next
                if keep_from == 0 or st.pool[slot].order_id < keep_from:
                    last = st.levels[h].count == 1
                    remove_resting(st, slot, -1)
                    n += 1
                    if last:
                        emptied = True  # the window may have moved: start again
                        break
                slot = nxt
            h = b.best[side] if emptied else next_level(st, book, side, h)
    return n


@kernel
def clear_book(st, book):
    """Remove every resting order of ``book``; returns how many."""
    return clear_others(st, book, 0)


@kernel(inline="always")
def apply_event(st, fills, nf, ts, order_id, price, qty, book, kind, side, order_type, tif):
    """Apply one event; fills go to ``fills[nf:]``.

    Returns ``(status, reason, order_id, filled, leaves, nf)`` where ``nf`` is the
    new count of fills written. A reject changes nothing (but the event and reject
    counters). Checks, in order: book index, order id, then per kind: side, quantity,
    order type and time in force, halt, duplicate id, price (adds); quantity (cancels,
    executions); price and quantity, 0 meaning "unchanged" (modifies); quantity and
    price (hidden and cross trades). ``R_OUTPUT_FULL`` means
    the fills buffer lacks room for the worst case of this event: nothing was
    applied; drain the buffer and retry. ``EV_CLEAR`` returns the number of orders
    it removed as ``filled``.

    Inlined (``inline="always"``) into every loop that calls it (the batch paths, the
    entries, the replays, the backtest and pipeline loops): a call passes the state's nine
    arrays and twelve scalars by value, which cost as much as a simple event. Same run,
    unchecked build: flow A +78 %, flow B +39 %, the order mix +55 % (medians; best
    repeats +33 %, +45 %, +41 %); a cold ``warmup`` of every kernel took 10 s longer
    (427 s against 417 s).
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
    if kind == EV_MODIFY or kind == EV_MOVE:
        # one call site with a run-time flag: one compiled _modify, not one per literal
        return _modify(st, fills, nf, ts, order_id, price, qty, book, kind == EV_MOVE)
    if kind == EV_REST:
        return _rest_replayed(st, nf, ts, order_id, price, qty, book, side)
    b = st.books[book]
    if kind == EV_CLEAR:
        removed = clear_book(st, book)
        return ST_DONE, R_NONE, order_id, np.int64(removed), np.int64(0), nf
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


@kernel(inline="always")
def apply_feed_event(st, fills, nf, ts, order_id, price, qty, book, kind, side, order_type,
                     tif):
    """:func:`apply_event` with the four kinds that are nearly every event of an exchange
    feed's replay (``EV_REST``, ``EV_CANCEL``, ``EV_DELETE``, ``EV_EXECUTE``) inlined
    instead of called; same checks, same answers, any other kind goes to
    :func:`apply_event`. A call between kernels passes the book state as ~65 machine
    words (nine arrays, each exploded into its fields), about 80 instructions of stores
    and reloads at every call site, and an ``EV_REST`` made two calls. The replay loops
    of many books use it (:func:`apply_batch_deep`, ``kernels.itch.replay``); every other
    loop keeps :func:`apply_event`, whose feed kinds stay calls: inlining costs each loop
    about 7 s of cold compile (Numba's inlining pass and lowering), which a Databento MBO
    replay (mostly moves, which stay calls here) and every other loop would pay for
    little. Measured on the 8,000-book synthetic ITCH day (52M events), books alone, five
    alternating processes per tree: 114.0/106.4/104.4/100.8/102.9 -> 79.4/104.4/80.0/91.7/
    90.1 ns an event (medians 104.4 -> 90.1); one call per event instead (this function
    compiled once, called from the loops): 100.7/103.8/97.0/92.5 ns."""
    if 0 <= book < len(st.books) and order_id != EMPTY_KEY:
        if kind == EV_REST:
            st.counters[EC_EVENTS] += 1
            return _rest_replayed_inline(st, nf, ts, order_id, price, qty, book, side)
        if kind == EV_DELETE or kind == EV_CANCEL:
            st.counters[EC_EVENTS] += 1
            return _cancel_inline(st, nf, kind, order_id, price, qty, book, side)
        if kind == EV_EXECUTE:
            st.counters[EC_EVENTS] += 1
            return _execute_inline(st, fills, nf, ts, order_id, price, qty, book, side)
    return apply_event(st, fills, nf, ts, order_id, price, qty, book, kind, side, order_type,
                       tif)


# ----------------------------------------------------------------------- batch paths
@kernel(inline="always")
def prefetch_order(st, order_id):
    """Ask the CPU for the id-index lines that ``order_id``'s lookup will probe first (a
    hint: it never faults). The batch loops call it ``PREFETCH_AHEAD`` events early:
    the index of a large book (flow A's 148k resting orders: 12 MB of keys and slots)
    is far larger than the caches and hashed, so each event's lookup was a cache miss the
    loop waited for; issued early, several misses are in flight at once. Same run,
    unchecked build (``scripts/book_before_after.py``, 9 repeats): flow A 2.1x, the
    order mix and flow B (small books) +3-4 %. Returns the id's home position."""
    h = home(order_id, st.counters[EC_HASH_SHIFT])
    prefetch(st.index_keys, h)
    prefetch(st.index_slots, h)
    return h


@kernel(inline="always")
def prefetch_place(st, e):
    """The second stage of a replay's deep prefetch (``kernels.itch.replay``), for an event
    whose index lines and book header :func:`prefetch_order` and a prefetch of
    ``st.books[e.symbol]`` asked for earlier: a rest's window level, or the order a
    cancel, delete or execution names."""
    book = e.symbol
    if book < 0 or book >= len(st.books):
        return
    b = st.books[book]
    for s in range(2):      # the best levels: the event may change them, a replay reads them
        if b.best[s] >= 0:
            prefetch(st.levels, b.best[s])
    if e.kind == EV_REST or e.kind == EV_ADD:
        side = e.side
        if (side == BUY or side == SELL) and b.placed[side] != 0 and b.tick > 0:
            t = e.price // b.tick
            W = st.counters[EC_W]
            lo = b.lo[side]
            if lo <= t < lo + W:
                prefetch(st.levels, _window_base(st.counters, book, side) + (t & (W - 1)))
        return
    # the index alone (its lines asked for a stage earlier): reading the order itself to
    # check its book would wait for the very line this stage asks for
    slot = index_peek(st.index_keys, st.index_slots, st.counters[EC_HASH_SHIFT], e.order_id)
    if slot >= 0:
        prefetch(st.pool, slot)


@kernel(inline="always")
def _prefetch_bit(st, book, side, h):
    """The bitmap word of window level ``h`` (of ``book``, ``side``): set when the level
    gets its first order, cleared when it loses its last."""
    c = st.counters
    s = h - _window_base(c, book, side)
    if 0 <= s < c[EC_W]:
        prefetch(st.bits, _bitmap_base(c, book, side) + (s >> 6))


@kernel(inline="always")
def prefetch_neighbours(st, e):
    """The third stage, reading what :func:`prefetch_place` asked for: for a rest, the
    order at its level's tail (the new order links after it) or, for an empty level, its
    bitmap word; for an event that names a resting order, that order's level, its
    neighbours in the level's queue and the level's bitmap word."""
    book = e.symbol
    if book < 0 or book >= len(st.books):
        return
    if e.kind == EV_REST or e.kind == EV_ADD:
        side = e.side
        b = st.books[book]
        if (side == BUY or side == SELL) and b.placed[side] != 0 and b.tick > 0:
            t = e.price // b.tick
            W = st.counters[EC_W]
            if b.lo[side] <= t < b.lo[side] + W:
                h = _window_base(st.counters, book, side) + (t & (W - 1))
                tail = st.levels[h].tail
                if tail >= 0:
                    prefetch(st.pool, tail)
                else:
                    _prefetch_bit(st, book, side, h)
        return
    slot = index_peek(st.index_keys, st.index_slots, st.counters[EC_HASH_SHIFT], e.order_id)
    if slot >= 0:
        o = st.pool[slot]
        if o.level >= 0:
            prefetch(st.levels, o.level)
            if o.side == BUY or o.side == SELL:
                _prefetch_bit(st, o.symbol, o.side, o.level)
        if o.prev >= 0:
            prefetch(st.pool, o.prev)
        if o.next >= 0:
            prefetch(st.pool, o.next)


# The deep prefetch's distances (events ahead): the index lines (for an event that removes
# or reduces an order, also the next line of keys) and both lines of the book header, then
# the best levels and the level a rest lands on or the order an event names (found from the
# index alone), then that order's level, queue neighbours and bitmap word, or the tail order
# a rest links after (measured on the 8,000-book ITCH day: module ``kernels.itch.replay``).
#
# The next line of keys: a removal's backward shift (``order_index.index_delete``) reads
# the keys after its entry until it meets an empty one, past the end of the home line when
# the entry sits at its end or its neighbours are live; that read was a miss the loop
# waited on (10 % of the profile's samples on one load). Books alone on that day, three
# alternating processes per tree each way: 102.7/100.9/101.7 and 96.8/86.1/91.4 -> 92.3/
# 90.9/74.8 and 76.8/79.1/78.4 ns an event. Tried and dropped in the same session: no
# best-level prefetch in ``apply_batch_deep`` (81.8/86.5/85.7 -> 90.7/95.8/107.9 ns); a
# 128-byte header whose first line held every field a rest, cancel or delete touches, so
# that those prefetched one line (77.6/82.4/86.7/78.7 -> 82.2/83.4/79.9/77.9 ns: noise).
DEEP_INDEX, DEEP_PLACE, DEEP_NEIGHBOURS = 24, 12, 4


@kernel(inline="always")
def prefetch_deep(st, events, i, stop):
    """The three prefetch stages for event ``i`` of ``events[:stop]``: each stage reads
    what the one before it asked for. For engines of many books (``apply_batch_deep``, the
    ITCH replay), whose headers, levels and orders are mostly out of the caches."""
    if i + DEEP_INDEX < stop:
        far = events[i + DEEP_INDEX]
        h = prefetch_order(st, far.order_id)
        if far.kind != EV_REST and far.kind != EV_ADD:
            # a removal's backward shift reads on past its entry's line of keys
            prefetch(st.index_keys, next_line(h, len(st.index_keys)))
        if 0 <= far.symbol < len(st.books):
            prefetch_record(st.books, far.symbol)     # 120 bytes: both of its lines
    if i + DEEP_PLACE < stop:
        prefetch_place(st, events[i + DEEP_PLACE])
    if i + DEEP_NEIGHBOURS < stop:
        prefetch_neighbours(st, events[i + DEEP_NEIGHBOURS])


@kernel(inline="always")
def _write_result(r, oid, status, reason, filled, leaves, n_fills):
    """One RESULT record of a batch loop."""
    r.order_id = oid
    r.status = status
    r.reason = reason
    r.filled = filled
    r.leaves = leaves
    r.n_fills = n_fills


@kernel(inline="always")
def _batch_views(st, events, fills, out):
    """A batch loop's inputs as views without reference counts (``book_borrow``,
    ``borrow_fills``, ``borrow_c``): nothing in the loop, which passes them to inlined
    helpers event after event, then counts references (an atomic update each time)."""
    return book_borrow(st), borrow_c(events), borrow_fills(fills), borrow_c(out)


@_kernel
def apply_batch(st, events, fills, results, start):
    """Apply ``events[start:]``, writing fills from ``fills[0]`` and, when ``results``
    is as long as ``events``, one RESULT per event.

    Returns ``(next_event, fills_written)``. ``next_event < len(events)`` means the
    fills buffer filled up: drain it and call again from ``next_event`` (nothing is
    lost or applied twice). A ``start`` outside ``0..len(events)`` applies nothing.
    """
    if start < 0 or start > len(events):
        return start, 0
    st, events, fills, results = _batch_views(st, events, fills, results)
    nf = 0
    want_results = len(results) >= len(events)
    n = len(events)
    for i in range(start, n):
        if i + PREFETCH_AHEAD < n:
            prefetch_order(st, events[i + PREFETCH_AHEAD].order_id)
        e = events[i]
        status, reason, oid, filled, leaves, nf2 = apply_event(
            st, fills, nf, e.ts, e.order_id, e.price, e.qty, e.symbol, e.kind, e.side,
            e.order_type, e.tif)
        if reason == R_OUTPUT_FULL:
            return i, nf
        if want_results:
            _write_result(results[i], oid, status, reason, filled, leaves, nf2 - nf)
        nf = nf2
    return len(events), nf


@_kernel
def apply_batch_deep(st, events, fills, results, start):
    """:func:`apply_batch` with the three-stage prefetch of :func:`prefetch_deep`: what an
    engine of many books uses (``workbench.book``). The one-book flows keep
    :func:`apply_batch`, whose single stage costs them less: the extra stages cost flows A
    and B 4-7 % when tried there. The loop is :func:`apply_batch`'s, written out again
    rather than shared through a flag: a run-time flag alone cost the flows in that
    earlier trial."""
    if start < 0 or start > len(events):
        return start, 0
    st, events, fills, results = _batch_views(st, events, fills, results)
    nf = 0
    want_results = len(results) >= len(events)
    n = len(events)
    for i in range(start, n):
        prefetch_deep(st, events, i, n)
        e = events[i]
        status, reason, oid, filled, leaves, nf2 = apply_feed_event(
            st, fills, nf, e.ts, e.order_id, e.price, e.qty, e.symbol, e.kind, e.side,
            e.order_type, e.tif)
        if reason == R_OUTPUT_FULL:
            return i, nf
        if want_results:
            _write_result(results[i], oid, status, reason, filled, leaves, nf2 - nf)
        nf = nf2
    return len(events), nf


@_kernel
def apply_batch_discard_fills(st, events, fills, latency_ns):
    """Apply every event, reusing ``fills`` as scratch (for callers that need the book,
    not the fills: throughput runs, state warm-up). When ``latency_ns`` is as long as
    ``events`` it receives each event's in-kernel latency (CLOCK_MONOTONIC ns).
    Returns the number of fills produced."""
    st, events, fills, latency_ns = _batch_views(st, events, fills, latency_ns)
    total = 0
    nf = 0
    timed = len(latency_ns) >= len(events)
    n = len(events)
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            prefetch_order(st, events[i + PREFETCH_AHEAD].order_id)
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
@_kernel
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
    h = st.books[book].best[side]
    k = 0
    while h >= 0 and k < n:
        lv = st.levels[h]
        out_price[k] = lv.price
        out_qty[k] = lv.qty
        out_count[k] = lv.count
        k += 1
        h = next_level(st, book, side, h)
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
        h = b.best[side]
        while h >= 0:
            slot = st.levels[h].head
            while slot >= 0 and k < len(out):
                out[k] = st.pool[slot]
                k += 1
                slot = st.pool[slot].next
            h = next_level(st, book, side, h)
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
    cur = st.levels[o.level].head
    while cur >= 0 and cur != slot:
        qty_ahead += st.pool[cur].qty
        n_ahead += 1
        cur = st.pool[cur].next
    return qty_ahead, n_ahead
