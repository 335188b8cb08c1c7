"""Replaying decoded feed events into an engine, with the top of every book tracked.

:func:`replay` applies ``EVENT`` records (one book per stock locate, ``symbol`` = book)
through ``kernels.book.apply_feed_event`` (``apply_event`` with the feed kinds inlined)
one at a time. After the last event of each run of events with the same timestamp and book
that moved it (rests, cancels, deletes, executions) it reads that book's best bid and ask
(price and shares: O(1), the book keeps its best level): a feed's book is consistent once
every message of an instant is applied (an order replace is a delete and a rest; an
aggressive order shows as several executions with one timestamp), so no half-applied state
is reported. When the top changed it writes a ``BOOK_TOP`` row for books whose ``emit``
flag is set, and it counts the runs that leave a book crossed (best bid >= best ask) and
the books that ever were.

Nothing is allocated: the caller passes the output rows and the per-book state
(``last``: the top each book had, as 4 int64 ``bid_price, bid_qty, ask_price, ask_qty``;
``crossed`` flags). It stops before an event when ``tops`` might lack room for its row,
so a caller drains the rows and resumes without losing one.
"""
from __future__ import annotations

import numpy as np

from kernels.book import apply_feed_event, prefetch_deep
from kernels.jit import kernel
from kernels.pointers import borrow, borrow_fills
from kernels.records import (
    BOOK_TOP, BUY, EVENT, EV_CANCEL, EV_DELETE, EV_EXECUTE, EV_REST, R_OUTPUT_FULL, SELL,
    ST_REJECTED,
)
from kernels.state_views import book_borrow

__all__ = ["replay"]

# counters (int64 array of N_REPLAY_COUNTS, accumulated across calls)
RC_EVENTS = 0          # events applied
RC_REJECTED = 1        # events the engine rejected (reasons: the engine's counters)
RC_TOP_CHANGES = 2     # tops that changed (rows written or not)
RC_CROSSED_EVENTS = 3  # instants (runs of one book's events) after which it was crossed
RC_CROSSED_BOOKS = 4   # books crossed at least once
RC_ROWS = 5            # BOOK_TOP rows written
RC_PENDING = 6         # 1: the last call ended inside an instant that moved its book
N_REPLAY_COUNTS = 8

# The replay prefetches three stages deep (``kernels.book.prefetch_deep``). On the 8,000-book
# synthetic day (51M events) the kernel alone went from 300 to 230 ns an event (same session,
# one process per tree; distances 16/8/3 and 32/16/6 measured within noise of 24/12/4).

REPLAY_DONE = 0
REPLAY_TOPS_FULL = 1   # ``tops`` is full: drain it and call again from the returned index


@kernel
def _top(st, book, side):
    h = st.books[book].best[side]
    if h < 0:
        return np.int64(-1), np.int64(0)
    lv = st.levels[h]
    return lv.price, lv.qty


@kernel
def replay(st, events, start, stop, fills, last, emit, crossed, tops, counters):
    """Apply ``events[start:stop]`` (module doc). ``fills``: scratch for one event's
    fills (at least one slot); ``last`` (int64, ``n_books x 4``), ``emit`` and ``crossed``
    (uint8, ``n_books``) persist across calls. Returns ``(next_event, rows_written, status)``."""
    st = book_borrow(st)
    fills = borrow_fills(fills)
    events = borrow(events, EVENT)
    last = borrow(last, np.int64)
    emit = borrow(emit, np.uint8)
    crossed = borrow(crossed, np.uint8)
    tops = borrow(tops, BOOK_TOP)
    counters = borrow(counters, np.int64)
    n_books = len(st.books)
    stop = min(stop, len(events))
    n = 0
    dirty = counters[RC_PENDING] != 0
    for i in range(max(start, 0), stop):
        prefetch_deep(st, events, i, stop)   # three stages (kernels.book.prefetch_deep)
        e = events[i]
        book = e.symbol
        kind = e.kind
        if 0 <= book < n_books and emit[book] != 0 and n >= len(tops):
            counters[RC_PENDING] = 1 if dirty else 0
            return i, n, REPLAY_TOPS_FULL
        r = apply_feed_event(st, fills, 0, e.ts, e.order_id, e.price, e.qty, book, kind,
                             e.side, e.order_type, e.tif)
        counters[RC_EVENTS] += 1
        if r[0] == ST_REJECTED:
            counters[RC_REJECTED] += 1
            if r[1] == R_OUTPUT_FULL:  # cannot happen with a fresh fills slot per event
                continue
        if kind == EV_REST or kind == EV_CANCEL or kind == EV_DELETE or kind == EV_EXECUTE:
            dirty = True
        if i + 1 < len(events) and events[i + 1].ts == e.ts and events[i + 1].symbol == book:
            continue  # the instant goes on for this book
        if not dirty or book < 0 or book >= n_books:
            dirty = False
            continue
        dirty = False
        bid, bid_qty = _top(st, book, BUY)
        ask, ask_qty = _top(st, book, SELL)
        if bid >= 0 and ask >= 0 and bid >= ask:
            counters[RC_CROSSED_EVENTS] += 1
            if crossed[book] == 0:
                crossed[book] = 1
                counters[RC_CROSSED_BOOKS] += 1
        if (bid == last[book, 0] and bid_qty == last[book, 1] and ask == last[book, 2]
                and ask_qty == last[book, 3]):
            continue
        last[book, 0] = bid
        last[book, 1] = bid_qty
        last[book, 2] = ask
        last[book, 3] = ask_qty
        counters[RC_TOP_CHANGES] += 1
        if emit[book] != 0:
            t = tops[n]
            t.ts = e.ts
            t.book = book
            t.bid_price = bid
            t.bid_qty = bid_qty
            t.ask_price = ask
            t.ask_qty = ask_qty
            n += 1
            counters[RC_ROWS] += 1
    counters[RC_PENDING] = 1 if dirty else 0
    return stop, n, REPLAY_DONE
