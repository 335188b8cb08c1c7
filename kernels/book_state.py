"""The arrays of an engine's books: their declaration, the counters' layout, allocation.

Owns ``BookState`` (every array the book kernels of ``kernels.book`` touch, declared
field by field with ``kernels.state_codegen.Array``, from which ``kernels.state_views``
is generated), ``EngineState`` (a ``BookState`` and the FILL buffer one single-order
call writes: what ``kernels.book.apply_one`` reads behind one address), the engine
counters' layout (``EC_*``: slots of ``BookState.counters``) and
:func:`allocate_state`.

Contract: one ``BookState`` serves ``n_books`` books of one price-ladder window ``W``
(a power of two from ``MIN_PRICE_LEVELS`` to ``MAX_PRICE_LEVELS``) per side, plus one
shared pool of ``overflow`` levels for prices outside the windows; everything is
allocated here, once, and the kernels never allocate. A level *handle* (``ORDER.level``,
``BOOK.best``) is a position in ``levels``: ``[0, n_books * 2 * W)`` are window slots,
``[EC_OVF_BASE, EC_OVF_BASE + overflow)`` overflow nodes; handles must fit an int32. The layouts the arrays follow
belong to the modules that read them: ``kernels.bitmap`` (``bits``),
``kernels.order_index`` (``index_keys``, ``index_slots``), ``kernels.book`` (the rest).
No kernels here, so ``kernels.state_views`` can import the declarations.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import aligned
from .bitmap import MAX_BITS, MIN_BITS, bitmap_layout
from .order_index import EMPTY_KEY, index_shift, index_size
from .records import BOOK, FILL, LEVEL, N_REJECT_REASONS, ORDER
from .state_codegen import Array

# ------------------------------------------------------------- engine counters layout
EC_FREE_HEAD = 0      # first free pool slot, -1 when the pool is full
EC_LIVE = 1           # resting orders, all books
EC_FILL_SEQ = 2       # next fill sequence number
EC_EVENTS = 3         # events applied
EC_FILLS = 4          # fills written
EC_HASH_SHIFT = 5     # the order index's hash shift (kernels.order_index.index_shift)
EC_ANON_FALLBACK = 6  # 1: cancels/executions of unknown ids act on anonymous volume
EC_W = 7              # ladder window (ticks per side)
EC_L0 = 8             # bitmap words per side, level 0 (W / 64)
EC_L1 = 9             # level-1 words (W / 4096)
EC_BLOCK = 10         # bitmap words per (book, side)
EC_OUTPUT_FULL = 11   # times a batch paused for a full fills buffer
EC_OVF_BASE = 12      # handle of overflow node 0 (= n_books * 2 * W)
EC_OVF_FREE = 13      # first free overflow node, -1 when none
EC_RECENTRES = 14     # window moves (slides and pull-ins), all books
EC_OVF_USED = 15      # overflow levels in use, all books
EC_REJECTS = 16       # + reason code: reject counts
N_ENGINE_COUNTERS = EC_REJECTS + N_REJECT_REASONS + 2

# the ladder has one bitmap bit per price level
MIN_PRICE_LEVELS = MIN_BITS
MAX_PRICE_LEVELS = MAX_BITS


class BookState(NamedTuple):
    """Every array of an engine's books; passed whole to kernels."""

    pool: Array[ORDER]            # [capacity]; free slots chained through ORDER.next
    levels: Array[LEVEL]          # [n_books * 2 * W + overflow]: windows, then overflow nodes
    bits: Array[np.uint64]        # [n_books * 2 * block]: one kernels.bitmap per (book, side)
    books: Array[BOOK]            # [n_books]
    index_keys: Array[np.int64]   # [2**k]: kernels.order_index
    index_slots: Array[np.int32]  # [2**k]
    counters: Array[np.int64]     # [N_ENGINE_COUNTERS]: EC_*
    ovf_next: Array[np.int32]     # [overflow]: next worse overflow level (free-list link when free)
    ovf_prev: Array[np.int32]     # [overflow]: next better overflow level


class EngineState(NamedTuple):
    """A book state and the FILL buffer a single-order call (``apply_one``) writes."""

    st: BookState
    fills: Array[FILL]


def ladder_bytes(n_books: int, price_levels: int) -> int:
    """Bytes of the windows' levels and bitmaps for ``n_books`` books."""
    _, _, block = bitmap_layout(price_levels)
    return n_books * 2 * (price_levels * LEVEL.itemsize + block * 8)


def default_price_levels(n_books: int, budget: int = 512 << 20) -> int:
    """The window for an engine of ``n_books`` books: the largest power of two (at most
    65,536 ticks, at least 256) whose ladders fit ``budget`` bytes, so a whole exchange
    (10,000 books) gets 512-tick windows and one symbol keeps 65,536."""
    w = 65_536
    while w > 256 and ladder_bytes(n_books, w) > budget:
        w //= 2
    return w


def allocate_state(n_books: int, capacity: int, price_levels: int, ticks,
                   overflow: int | None = None) -> BookState:
    """Fresh state for ``n_books`` books with one ``tick`` (price units) each.

    ``overflow`` levels (default ``capacity``: every resting order could open its own
    far level, so the overflow pool can never run out before the order pool does).
    Validation of the arguments is the Python layer's job; this only checks the
    invariants the kernels rely on.
    """
    W = int(price_levels)
    l0, l1, block = bitmap_layout(W)
    assert capacity >= 1 and n_books >= 1
    n_ovf = int(capacity if overflow is None else overflow)
    assert n_ovf >= 1
    assert n_books * 2 * W + n_ovf < 2**31, "level handles must fit an int32"
    # every large array starts on a cache line (kernels.aligned: an ORDER would else span two)
    pool = aligned.zeros(capacity, ORDER)
    pool["next"] = np.arange(1, capacity + 1, dtype=np.int32)
    pool["next"][-1] = -1
    pool["prev"] = -1
    levels = aligned.zeros(n_books * 2 * W + n_ovf, LEVEL)
    levels["head"] = -1
    levels["tail"] = -1
    bits = aligned.zeros(n_books * 2 * block, np.uint64)
    books = aligned.zeros(n_books, BOOK)
    books["tick"] = np.asarray(ticks, dtype=np.int64)
    books["best"] = -1
    books["ovf_head"] = -1
    books["ovf_tail"] = -1
    size = index_size(capacity)
    index_keys = aligned.zeros(size, np.int64)
    index_keys[:] = EMPTY_KEY
    index_slots = aligned.zeros(size, np.int32)
    index_slots[:] = -1
    counters = np.zeros(N_ENGINE_COUNTERS, dtype=np.int64)
    counters[EC_FREE_HEAD] = 0
    counters[EC_HASH_SHIFT] = index_shift(size)
    counters[EC_W] = W
    counters[EC_L0] = l0
    counters[EC_L1] = l1
    counters[EC_BLOCK] = block
    counters[EC_OVF_BASE] = n_books * 2 * W
    counters[EC_OVF_FREE] = 0
    ovf_next = np.arange(1, n_ovf + 1, dtype=np.int32)
    ovf_next[-1] = -1
    ovf_prev = np.full(n_ovf, -1, dtype=np.int32)
    return BookState(pool, levels, bits, books, index_keys, index_slots, counters,
                     ovf_next, ovf_prev)
