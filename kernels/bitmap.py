"""A three-level occupancy bitmap: set, clear, and the nearest set bit either way.

Owns the bitmap's layout (:func:`bitmap_layout`) and its kernels: :func:`bitmap_set`,
:func:`bitmap_clear`, :func:`find_prev` (highest set bit <= i) and :func:`find_next`
(lowest set bit >= i). The book keeps one bitmap per (book, side), one bit per tick of
its price ladder, so when the best level empties the next one is found with at most
three count-leading/trailing-zeros instructions, whatever the gap.

Layout of one bitmap of ``n_bits`` (a power of two from ``MIN_BITS`` to ``MAX_BITS``)
in a uint64 array, from word ``base``::

    [base, base + n0)            level 0: one bit per index          (n0 = n_bits / 64)
    [base + n0, base + n0 + n1)  level 1: one bit per level-0 word   (n1 = max(1, n_bits / 4096))
    base + n0 + n1               level 2: one bit per level-1 word   (a single word)

Contract: a bit of level k + 1 is set exactly when its word of level k is non-zero;
:func:`bitmap_set` and :func:`bitmap_clear` keep that true, the finders rely on it.
Callers pass ``base``, ``n0`` and ``n1`` (the book keeps them in its counters); every
kernel here is inlined, so passing them costs nothing.
"""
from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from .jit import kernel

__all__ = ["MIN_BITS", "MAX_BITS", "bitmap_layout", "bitmap_set", "bitmap_clear", "find_prev",
           "find_next"]

MIN_BITS = 64             # one level-0 word (level 1 then has one partly used word)
MAX_BITS = 64 * 64 * 64   # level 2 is a single word

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def bitmap_layout(n_bits: int) -> tuple[int, int, int]:
    """``(n0, n1, block)``: words of level 0, of level 1, and of the whole bitmap."""
    n_bits = int(n_bits)
    assert MIN_BITS <= n_bits <= MAX_BITS and n_bits & (n_bits - 1) == 0, n_bits
    n0 = n_bits // 64
    n1 = max(1, n0 // 64)
    return n0, n1, n0 + n1 + 1


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


# ---------------------------------------------------------------------------- kernels
@kernel(inline="always")
def bitmap_set(bits, base, n0, n1, i):
    """Set bit ``i`` (and its summary bits)."""
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
def bitmap_clear(bits, base, n0, n1, i):
    """Clear bit ``i`` (and the summary bits of words it leaves empty)."""
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
def find_prev(bits, base, n0, n1, i):
    """Highest set index <= i, or -1."""
    if i < 0:
        return -1
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
def find_next(bits, base, n0, n1, i):
    """Lowest set index >= i, or -1."""
    if i >= n0 << 6:
        return -1
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
