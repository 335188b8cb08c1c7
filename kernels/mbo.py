"""Replay of a market-by-order feed (Databento MBO) with the book read at event ends.

A feed like Databento's MBO normalises one exchange event into several records and marks
the last record of an event, per instrument, with ``F_LAST``: only there is the book
consistent. ``workbench.data.databento`` converts the records into ``EVENT`` rows (feed
kinds ``EV_REST``, ``EV_CANCEL``, ``EV_MOVE``, ``EV_CLEAR``, ``EV_EXECUTE_HIDDEN``) and
the F_LAST records into *boundaries*: ``bnd_event[k]`` is how many events are applied
once boundary ``k`` is reached, ``bnd_book[k]`` the book it closes. :func:`replay_mbo`
applies the events through ``kernels.book.apply_event`` (the path every replay, the
backtester and the engine share) and writes the top of book of ``bnd_book[k]`` at each
boundary; it counts rejects per book and reason (an unknown order id is
``R_UNKNOWN_ORDER``), which the caller reports as the file's anomalies.

Nothing is allocated while it runs; every caller value used as an index is checked.
"""
from __future__ import annotations

from .book import apply_event
from .jit import kernel
from .pointers import borrow_fills
from .records import BUY, N_REJECT_REASONS, R_NONE, SELL
from .state_views import book_borrow


@kernel(inline="always")
def _top(st, book, side, px, sz, ct, k):
    """Best level of (book, side) into row ``k`` of the outputs (``BOOK.best`` is the
    handle of that level in ``st.levels``); an empty side, or a book index out of range,
    writes price 0, size 0, count 0."""
    if 0 <= book < len(st.books):
        h = st.books[book].best[side]
        if h >= 0:
            lv = st.levels[h]
            px[k] = lv.price
            sz[k] = lv.qty
            ct[k] = lv.count
            return
    px[k] = 0
    sz[k] = 0
    ct[k] = 0


@kernel
def replay_mbo(st, events, fills, bnd_event, bnd_book, bid_px, bid_sz, bid_ct, ask_px,
               ask_sz, ask_ct, rejects):
    """Apply ``events`` in order and snapshot the top of book at every boundary.

    ``bnd_event`` must be non-decreasing (a boundary at ``j`` is read after
    ``events[:j]``); the six output arrays hold one row per boundary; ``rejects`` holds
    ``n_books * N_REJECT_REASONS`` counters (``[book * N_REJECT_REASONS + reason]``,
    added to). ``fills`` is scratch: feed events never match. Returns the number of
    boundaries written, or -1 when an output is too short or ``bnd_event`` is not sorted
    (nothing applied).
    """
    nb = len(bnd_event)
    if (len(bnd_book) < nb or len(bid_px) < nb or len(bid_sz) < nb or len(bid_ct) < nb
            or len(ask_px) < nb or len(ask_sz) < nb or len(ask_ct) < nb or len(fills) < 1):
        return -1
    for k in range(1, nb):
        if bnd_event[k] < bnd_event[k - 1]:
            return -1
    st = book_borrow(st)
    fills = borrow_fills(fills)
    n_books = len(st.books)
    counted = len(rejects) >= n_books * N_REJECT_REASONS
    k = 0
    n = len(events)
    for i in range(n + 1):
        while k < nb and bnd_event[k] <= i:
            book = bnd_book[k]
            _top(st, book, BUY, bid_px, bid_sz, bid_ct, k)
            _top(st, book, SELL, ask_px, ask_sz, ask_ct, k)
            k += 1
        if i == n:
            break
        e = events[i]
        r = apply_event(st, fills, 0, e.ts, e.order_id, e.price, e.qty, e.symbol, e.kind,
                        e.side, e.order_type, e.tif)
        reason = r[1]
        if reason != R_NONE and counted and 0 <= e.symbol < n_books:
            rejects[e.symbol * N_REJECT_REASONS + reason] += 1
    return k
