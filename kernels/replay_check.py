"""Replay an exchange's messages through the book and compare with its published levels.

This is how we prove the engine on real data: LOBSTER publishes, next to every
message, the top ``L`` price levels of the book after that message (an ``(n, 4L)``
int64 array: ask price, ask size, bid price, bid size per level; empty levels carry
the dummies ``EMPTY_ASK`` / ``EMPTY_BID`` with size 0).

``replay_and_compare`` applies each message with the ordinary ``apply_event`` kernel and
compares the engine's top ``L`` levels with the file's row. Where they disagree (the
file has gaps: orders that vanish without a message, orders older than the file) it
resynchronises the engine's top ``L`` levels to the row and counts it:

* engine levels inside the range the row covers but absent from the row are cleared;
* a level short of volume gets *anonymous* volume (a resting order whose id is
  ``kernels.book.anon_order_id(book, side, price)``), which later cancels and
  executions of ids the engine never saw consume (the engine's anonymous fallback);
* a level with too much volume loses it from its anonymous order first, then from
  its newest orders.
"""
from __future__ import annotations

from .book import (
    _reduce_resting, anon_order_id, apply_event, can_rest, find_level, find_order, next_level,
    remove_resting, rest_order,
)
from .jit import kernel
from .pointers import borrow_fills
from .records import (
    BUY, EV_ADD, EV_CANCEL, EV_DELETE, EV_EXECUTE, GTC, LIMIT, R_OUTPUT_FULL, SELL, ST_NEW,
)
from .state_views import book_borrow

EMPTY_ASK = 9_999_999_999
EMPTY_BID = -9_999_999_999


@kernel
def _row_price(row, j, side):
    return row[4 * j] if side == SELL else row[4 * j + 2]


@kernel
def _row_size(row, j, side):
    return row[4 * j + 1] if side == SELL else row[4 * j + 3]


@kernel
def top_matches(st, book, row, n_levels):
    """True when the engine's top ``n_levels`` per side equal the row."""
    b = st.books[book]
    for side in (SELL, BUY):
        h = b.best[side]
        for j in range(n_levels):
            if h >= 0:
                price = st.levels[h].price
                qty = st.levels[h].qty
                h = next_level(st, book, side, h)
            else:
                price = EMPTY_ASK if side == SELL else EMPTY_BID
                qty = 0
            if _row_price(row, j, side) != price or _row_size(row, j, side) != qty:
                return False
    return True


@kernel
def _real_levels(row, n_levels, side):
    k = 0
    for j in range(n_levels):
        if _row_size(row, j, side) > 0:
            k += 1
    return k


@kernel
def _in_row(row, n_real, side, price):
    for j in range(n_real):
        if _row_price(row, j, side) == price:
            return True
    return False


@kernel
def _clear_level(st, book, side, h):
    n = st.levels[h].count
    for _ in range(n):  # the last removal may move the window: count, do not re-read
        remove_resting(st, st.levels[h].head, -1)


@kernel
def _order_of_size(st, book, side, h, qty):
    """Newest order of exactly ``qty`` at a level, or -1: when the file shows a level
    short by one order's size, that order is the likeliest to have vanished."""
    slot = st.levels[h].tail
    while slot >= 0:
        if st.pool[slot].qty == qty:
            return slot
        slot = st.pool[slot].prev
    return -1


@kernel
def _shrink_level(st, book, side, h, price, excess):
    """Take ``excess`` off a level: an order of exactly that size if there is one,
    else anonymous volume first, then newest orders."""
    exact = _order_of_size(st, book, side, h, excess)
    if exact >= 0:
        remove_resting(st, exact, -1)
        return
    pos = find_order(st, anon_order_id(book, side, price), book)
    if pos >= 0:
        slot = st.index_slots[pos]
        take = min(excess, st.pool[slot].qty)
        if take == st.pool[slot].qty:
            remove_resting(st, slot, pos)
        else:
            _reduce_resting(st, slot, pos, take)
        excess -= take
    while excess > 0:
        h = find_level(st, book, side, price)  # removals may have moved the level
        if h < 0:
            break
        slot = st.levels[h].tail
        take = min(excess, st.pool[slot].qty)
        if take == st.pool[slot].qty:
            remove_resting(st, slot, -1)
        else:
            _reduce_resting(st, slot, -1, take)
        excess -= take


@kernel
def _level_qty_at(st, book, side, price):
    h = find_level(st, book, side, price)  # -1 for prices that name no level
    return st.levels[h].qty if h >= 0 else 0


@kernel
def _consume_unseen(st, book, side, price, qty, from_head):
    """An order the engine never saw left a level (its cancel or execution is in the
    file, its entry was not): take ``qty`` off that level's orders, oldest first for an
    execution (executions hit the front of the queue), newest first for a cancel.
    Returns the quantity taken."""
    h = find_level(st, book, side, price)
    if h < 0:
        return 0
    exact = _order_of_size(st, book, side, h, qty)
    if exact >= 0:
        remove_resting(st, exact, -1)
        return qty
    taken = 0
    while taken < qty:
        h = find_level(st, book, side, price)  # removals may have moved the level
        if h < 0:
            break
        slot = st.levels[h].head if from_head else st.levels[h].tail
        take = min(qty - taken, st.pool[slot].qty)
        if take == st.pool[slot].qty:
            remove_resting(st, slot, -1)
        else:
            _reduce_resting(st, slot, -1, take)
        taken += take
    return taken


@kernel
def _clear_crossed(st, book, side, price):
    """A LOBSTER submission never executes on entry (the exchange reports the marketable
    part as executions of resting orders), so opposite levels it would cross are stale:
    drop them. Returns the number of levels dropped."""
    b = st.books[book]
    if side != BUY and side != SELL:
        return 0
    opposite = 1 - side
    dropped = 0
    while b.best[opposite] >= 0:  # clearing the best may move the window: re-read it
        h = b.best[opposite]
        level_price = st.levels[h].price
        if (side == BUY and level_price > price) or (side == SELL and level_price < price):
            break
        _clear_level(st, book, opposite, h)
        dropped += 1
    return dropped


@kernel
def _grow_level(st, book, side, price, missing, ts):
    """Add ``missing`` anonymous volume at a level. False if the pool is full."""
    anon = anon_order_id(book, side, price)
    pos = find_order(st, anon, book)
    if pos >= 0:
        slot = st.index_slots[pos]
        st.pool[slot].qty += missing
        st.levels[st.pool[slot].level].qty += missing
        return True
    if not can_rest(st):
        return False
    rest_order(st, book, side, price, anon, missing, 0, ts, LIMIT, GTC, ST_NEW)
    return True


@kernel
def _first_worse(st, book, side, price):
    """Handle of the best level of ``side`` strictly worse than ``price``, -1 if none."""
    h = st.books[book].best[side]
    while h >= 0:
        p = st.levels[h].price
        if (side == BUY and p < price) or (side == SELL and p > price):
            return h
        h = next_level(st, book, side, h)
    return -1


@kernel
def resync_top(st, book, row, n_levels, ts):
    """Make the engine's top ``n_levels`` per side equal ``row`` (see module doc).
    Returns the number of file levels that could not be represented (off tick, or the
    pool full); 0 normally."""
    b = st.books[book]
    unrepresented = 0
    # 1. clear engine levels the row says are empty (both sides first, so that the
    #    additions below never cross a stale level of the other side)
    for side in (SELL, BUY):
        n_real = _real_levels(row, n_levels, side)
        last = _row_price(row, n_real - 1, side) if n_real == n_levels else 0
        h = b.best[side]
        while h >= 0:
            price = st.levels[h].price
            if n_real == n_levels and ((side == SELL and price > last) or
                                       (side == BUY and price < last)):
                break  # beyond what the row shows: unknown, leave it
            if _in_row(row, n_real, side, price):
                h = next_level(st, book, side, h)
            else:
                _clear_level(st, book, side, h)
                # clearing may move the window: continue from the next worse price
                h = _first_worse(st, book, side, price)
    # 2. set each shown level's volume
    for side in (SELL, BUY):
        n_real = _real_levels(row, n_levels, side)
        for j in range(n_real):
            price = _row_price(row, j, side)
            want = _row_size(row, j, side)
            if price <= 0 or price % b.tick != 0:
                unrepresented += 1
                continue
            h = find_level(st, book, side, price)
            have = st.levels[h].qty if h >= 0 else 0
            if have > want:
                _shrink_level(st, book, side, h, price, have - want)
            elif have < want:
                if not _grow_level(st, book, side, price, want - have, ts):
                    unrepresented += 1
    return unrepresented


@kernel
def _known(side, price, horizon):
    """Is ``price`` within what the replay has seen of ``side`` (``horizon``)?"""
    return price >= horizon[BUY] if side == BUY else price <= horizon[SELL]


@kernel
def only_unseen_depth(st, book, row, n_levels, horizon):
    """True when the engine's top ``n_levels`` and the row agree on every level the
    replay has seen (``horizon``: per side, the worst price up to which the file has
    shown the whole book), so that the rows differ only where a level entered the
    file's visible depth from beyond it: volume that rested before the file began."""
    b = st.books[book]
    for side in (SELL, BUY):
        h = b.best[side]
        k = 0
        j = 0
        while True:
            # next known engine level among its top n_levels
            while k < n_levels and h >= 0 and not _known(side, st.levels[h].price, horizon):
                h = next_level(st, book, side, h)
                k += 1
            while j < n_levels and (_row_size(row, j, side) <= 0 or
                                    not _known(side, _row_price(row, j, side), horizon)):
                j += 1
            engine_has = k < n_levels and h >= 0
            file_has = j < n_levels
            if engine_has != file_has:
                return False
            if not engine_has:
                break
            if (st.levels[h].price != _row_price(row, j, side)
                    or st.levels[h].qty != _row_size(row, j, side)):
                return False
            h = next_level(st, book, side, h)
            k += 1
            j += 1
    return True


@kernel
def extend_horizon(row, n_levels, horizon):
    """After a row the engine agrees with, it has seen each side down to the row's last
    level (the whole side when the row shows fewer than ``n_levels``)."""
    for side in (SELL, BUY):
        n_real = _real_levels(row, n_levels, side)
        if n_real < n_levels:
            horizon[side] = 0 if side == BUY else EMPTY_ASK
        else:
            last = _row_price(row, n_levels - 1, side)
            if side == BUY and last < horizon[BUY]:
                horizon[BUY] = last
            elif side == SELL and last > horizon[SELL]:
                horizon[SELL] = last


@kernel
def replay_and_compare(st, book, events, rows, start, stop, fills, matched_flags, horizon):
    """Apply ``events[start:stop]`` and compare each with its row (module doc).

    ``fills`` is scratch (replay fills are not kept; it must hold ``capacity`` fills
    so that no event can ever find it too small). ``matched_flags[i]`` is set to 1
    where row ``i`` matched before any resync. ``horizon`` (int64[2], kept across
    calls; start it with :func:`extend_horizon` over the first row) tracks how deep
    the file has shown each side, so that a mismatch only beyond it counts as
    *unseen depth*. Returns ``(matched, resyncs, unrepresented_levels, unseen_depth,
    next_event)``: ``unseen_depth`` of the resyncs had no other cause.
    """
    st = book_borrow(st)
    fills = borrow_fills(fills)
    n_levels = rows.shape[1] // 4
    matched = 0
    resyncs = 0
    unrepresented = 0
    unseen = 0
    for i in range(start, stop):
        e = events[i]
        if e.kind == EV_ADD:
            _clear_crossed(st, book, e.side, e.price)
        removes = e.kind == EV_CANCEL or e.kind == EV_DELETE or e.kind == EV_EXECUTE
        before = _level_qty_at(st, book, e.side, e.price) if removes else 0
        result = apply_event(st, fills, 0, e.ts, e.order_id, e.price, e.qty, book, e.kind,
                             e.side, e.order_type, e.tif)
        if result[1] == R_OUTPUT_FULL:
            return matched, resyncs, unrepresented, unseen, i
        if removes:
            # The file says ``qty`` left this level. If the engine removed less (an id it
            # never saw, or an order it holds smaller than the exchange did), the rest
            # left too: infer it from the level's other volume.
            dropped = before - _level_qty_at(st, book, e.side, e.price)
            if dropped < e.qty:
                _consume_unseen(st, book, e.side, e.price, e.qty - dropped, e.kind == EV_EXECUTE)
        row = rows[i]
        if top_matches(st, book, row, n_levels):
            matched += 1
            matched_flags[i] = 1
        else:
            if only_unseen_depth(st, book, row, n_levels, horizon):
                unseen += 1
            resyncs += 1
            unrepresented += resync_top(st, book, row, n_levels, e.ts)
        extend_horizon(row, n_levels, horizon)
    return matched, resyncs, unrepresented, unseen, stop
