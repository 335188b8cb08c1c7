"""The order-id index: open addressing over two parallel arrays, from order id to pool slot.

Owns the table's sizing (:func:`index_size`, :func:`index_shift`), its hashing
(Fibonacci hashing, :func:`home`), the empty marker ``EMPTY_KEY`` and its kernels:
:func:`index_find`, :func:`index_insert` and :func:`index_delete`.

Structure and why: ``keys`` (int64) and ``slots`` (int32) of a power-of-two size,
linear probing from the key's home position, at most half full, so a probe touches one
or two cache lines. Deletion shifts followers back instead of leaving tombstones, so
probe chains stay short under the add/cancel churn of real feeds.

Hashing: ids are given out in sequence almost everywhere (the engine's automatic ids, an
exchange's order references), and the orders a book touches one after another are mostly
the newest. Plain Fibonacci hashing puts consecutive ids in unrelated lines, so each add
or cancel of a large book waited on a key line, a slot line and the order (~100 ns a
call at 150,000 resting orders). :func:`home` keeps each group of 8 consecutive ids in
one line of keys (in id order; 16 to a line of slots) and spreads the groups with
Fibonacci hashing of the group number. Keys that differ only in their low three bits
never collide; any other pattern (strides, ids that share low bits) spreads as before, at
worst one key per line as plain Fibonacci hashing gives. Measured in one process each,
same session, three alternating runs per tree: an add and a cancel of one order on a
table for 1M orders 455 -> 342 ns; flow A through ``OrderBook.submit`` 2.79-2.92M ->
4.45-4.74M orders/s, batched 19.8-21.0M -> 22.6-23.3M; flow B, whose table fits the
cache, batched 23.3-23.7M -> 22.9-23.4M (the medians 2.5 % apart: ``home``'s few more
operations) and through ``submit`` unchanged; the ITCH day's replay within noise.
Mapped books (``workbench.mmap_book``) hold the index, so their format version changed.

Contract: an entry is ``(order_id, slot)`` where ``slot`` indexes an ``ORDER`` pool.
Keys are ``(order_id, book)``, since ids may repeat across the books of an engine: the
book is not stored in the table but read from the order the slot points to
(``pool[slot].symbol``). ``shift`` is ``index_shift(len(keys))``. Order ids are any
int64 but ``EMPTY_KEY`` (``kernels.book.apply_event`` rejects that id with
``R_INVALID_ID`` before it reaches the index: stored, it would read as an empty
position and break the probe chains of other ids). The caller inserts at the position
:func:`index_find` returned for a missing key, and only while nothing changed the table in
between.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

__all__ = ["EMPTY_KEY", "index_size", "index_shift", "home", "next_line", "index_find",
           "index_peek", "index_insert", "index_delete"]

EMPTY_KEY = np.int64(-(2**63))

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
GROUP_BITS = 3           # 8 consecutive ids per group: 8 int64 keys fill one cache line
GROUP = 1 << GROUP_BITS  # (index_size is at least 16, so a table holds two groups or more)


def index_size(capacity: int) -> int:
    """Table size for a pool of ``capacity`` orders: a power of two, at most half full."""
    return 1 << max(4, int(2 * capacity - 1).bit_length())


def index_shift(size: int) -> int:
    """The hash shift of a table of ``size`` (a power of two): 64 - log2(size)."""
    return 64 - (int(size).bit_length() - 1)


@kernel(inline="always")
def home(order_id, shift):
    """The position where probing for ``order_id`` starts: the ids of one group (``GROUP``
    consecutive ids, ``id >> GROUP_BITS``) share one 64-byte line of keys, in id order,
    and the groups are spread over the table by Fibonacci hashing (module doc)."""
    u = np.uint64(order_id)
    group = ((u >> np.uint64(GROUP_BITS)) * _GOLDEN) >> np.uint64(shift + GROUP_BITS)
    return np.int64((group << np.uint64(GROUP_BITS)) | (u & np.uint64(GROUP - 1)))


@kernel(inline="always")
def next_line(pos, size):
    """The first position of the line of keys after ``pos``'s (a line holds one
    ``GROUP`` of keys and the table starts on a line), in a table of ``size``: where a
    probe, or a deletion's backward shift, goes on past ``pos``'s line."""
    return ((pos | (GROUP - 1)) + 1) & (size - 1)


@kernel(inline="always")
def index_find(keys, slots, pool, shift, order_id, book):
    """Table position of (order_id, book) if present, else ``-1 - first_empty_position``."""
    mask = len(keys) - 1
    h = home(order_id, shift)
    while True:
        k = keys[h]
        if k == EMPTY_KEY:
            return -1 - h
        if k == order_id and pool[slots[h]].symbol == book:
            return h
        h = (h + 1) & mask


@kernel(inline="always")
def index_peek(keys, slots, shift, order_id):
    """The pool slot of the first entry keyed ``order_id``, or -1: :func:`index_find`
    without the check of the entry's book, so it reads only the index (for prefetch
    hints, which may name the wrong order when two books share an id, never for a
    lookup that acts)."""
    mask = len(keys) - 1
    h = home(order_id, shift)
    while True:
        k = keys[h]
        if k == EMPTY_KEY:
            return -1
        if k == order_id:
            return slots[h]
        h = (h + 1) & mask


@kernel(inline="always")
def index_insert(keys, slots, pos, order_id, slot):
    """Store (order_id -> slot) at ``pos``, a position :func:`index_find` returned as
    ``-1 - pos`` for that id."""
    keys[pos] = order_id
    slots[pos] = slot


@kernel(nrt=False)   # no reference counts: the book's own kernels call it (kernels.book)
def index_delete(keys, slots, shift, pos):
    """Remove the entry at ``pos``, shifting back the followers that probed past it."""
    mask = len(keys) - 1
    i = pos
    j = pos
    while True:
        j = (j + 1) & mask
        k = keys[j]
        if k == EMPTY_KEY:
            break
        h = home(k, shift)
        if i <= j:
            stays = i < h <= j
        else:
            stays = h > i or h <= j
        if not stays:
            keys[i] = k
            slots[i] = slots[j]
            i = j
    keys[i] = EMPTY_KEY
    slots[i] = -1
