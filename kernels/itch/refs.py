"""The order-reference table: Robin Hood open addressing over ``ITCH_REF`` records.

The decoder needs, for every live order reference, its book, side, price and shares
left (E/X/D/C name only the reference; U does not repeat the side), and must forget
it when the order dies, so the table holds the live orders only (a few million on a
real day, not the hundreds of millions of references a day assigns). The writer keeps
its source orders' ITCH references in the same table.

Structure and why: one array of ``ITCH_REF`` records (key, book, side, price, shares,
value: 32 bytes, two to a cache line, so a lookup touches one line), a power-of-two
size kept at most half full (the caller grows it: :func:`rehash`), linear probing with
the Robin Hood rule (an entry never sits further from its home than the one it
displaced), and deletion by backward shift up to the first entry at its home. A lookup
for a missing key stops as soon as it meets an entry closer to its home than the probe
is to the key's, and no deletion leaves a tombstone, so the add/delete churn of a feed
never lengthens the probe chains. An entry is identified by ``(key, book)``; the book
is compared, never hashed.

Hashing: Fibonacci hashing of the whole key: the *top* ``log2(size)`` bits of
``key * 2**64 / phi`` (mod 2**64). Only the top bits mix every bit of the key; an earlier
version took bits 29 and up, which for the references of a full synthetic day (8,000
stocks, 460,000 live) gave long probe runs: the decoder spent ~210 ns a message against
~80 ns with the top bits. NASDAQ's references grow through the day, which tempts a hash
that keeps neighbouring references in neighbouring slots for cache locality; measured,
such a hash builds long runs of occupied slots that every insertion landing on an older
survivor has to shift (the table then ran 5-10x slower at a third full). Random
placement keeps probes short at any load up to one half.

Contract: the caller keeps the table at most half full before it inserts (so every
probe ends), and inserts only keys :func:`find` did not find.
"""
from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from kernels import aligned
from kernels.jit import kernel
from kernels.pointers import borrow
from kernels.records import ITCH_REF

__all__ = ["new_table", "grow", "hash_shift", "home", "find", "insert", "delete", "rehash"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIN_SIZE = 16


def new_table(live: int) -> np.ndarray:
    """An empty table with room for ``live`` orders (a power of two, at most half full)."""
    size = MIN_SIZE
    while size < 2 * max(int(live), 1):
        size *= 2
    return aligned.zeros(size, ITCH_REF)   # a 32-byte entry never spans two cache lines


def grow(table: np.ndarray) -> np.ndarray:
    """A table twice the size holding every entry of ``table``."""
    bigger = new_table(len(table))
    rehash(table, bigger)
    return bigger


@kernel
def hash_shift(table):
    """``64 - log2(len(table))``: the shift of :func:`home` for ``table`` (a power of two
    of at least ``MIN_SIZE`` slots), i.e. the leading zeros of its index mask."""
    return np.int64(leading_zeros(np.uint64(len(table) - 1)))


@kernel
def home(key, shift):
    """The slot where probing for ``key`` starts (module doc), for ``shift`` from
    :func:`hash_shift`: always below ``2 ** (64 - shift)``, the table's size."""
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@kernel
def find(table, key, book):
    """Position of ``(key, book)``, or -1."""
    mask = len(table) - 1
    shift = hash_shift(table)
    h = home(key, shift)
    d = 0
    while True:
        r = table[h]
        if r.used == 0:
            return -1
        if r.key == key and r.book == book:
            return h
        if ((h - home(r.key, shift)) & mask) < d:
            return -1  # a richer entry: the key would sit before it
        h = (h + 1) & mask
        d += 1


@kernel
def insert(table, key, book, side, price, qty, value):
    """Add an entry (the key must be absent; the table must have room); returns its slot."""
    mask = len(table) - 1
    shift = hash_shift(table)
    h = home(key, shift)
    d = 0
    placed = -1
    while True:
        r = table[h]
        if r.used == 0:
            r.key = key
            r.book = book
            r.side = side
            r.price = price
            r.qty = qty
            r.value = value
            r.used = 1
            return h if placed < 0 else placed
        rd = (h - home(r.key, shift)) & mask
        if rd < d:
            # take the slot of the richer resident and carry it on
            k2, b2, s2, p2, q2, v2 = r.key, r.book, r.side, r.price, r.qty, r.value
            r.key = key
            r.book = book
            r.side = side
            r.price = price
            r.qty = qty
            r.value = value
            if placed < 0:
                placed = h
            key, book, side, price, qty, value = k2, b2, s2, p2, q2, v2
            d = rd
        h = (h + 1) & mask
        d += 1


@kernel
def delete(table, pos):
    """Remove the entry at ``pos``: its followers that are not at their home move back."""
    mask = len(table) - 1
    shift = hash_shift(table)
    i = pos
    while True:
        j = (i + 1) & mask
        b = table[j]
        if b.used == 0 or home(b.key, shift) == j:
            break
        a = table[i]
        a.key = b.key
        a.book = b.book
        a.side = b.side
        a.price = b.price
        a.qty = b.qty
        a.value = b.value
        i = j
    table[i].used = 0


@kernel
def rehash(old, new):
    """Move every entry of ``old`` into the empty table ``new``; returns the count."""
    old = borrow(old, ITCH_REF)
    new = borrow(new, ITCH_REF)
    n = 0
    for i in range(len(old)):
        r = old[i]
        if r.used != 0:
            insert(new, r.key, r.book, r.side, r.price, r.qty, r.value)
            n += 1
    return n
