"""Memory-access kernels for the memory-and-cache lesson (notebook 03).

Owns two deliberately tiny loops whose speed depends only on *how* they touch
memory: ``gather_sum`` (sum ``values[index[i]]``: sequential, strided or random
order, same arithmetic) and ``notional_sum`` (sum of ``price * qty`` over two
arrays: contiguous struct-of-arrays columns, or the strided fields of an
array-of-structs record array, which Numba compiles as a separate specialization).
"""
from __future__ import annotations

from .jit import kernel

__all__ = ["gather_sum", "notional_sum"]


@kernel
def gather_sum(values, index):
    """Sum of ``values[index[i]]`` over ``i``, in the order ``index`` gives."""
    total = 0
    for i in range(index.shape[0]):
        total += values[index[i]]
    return total


@kernel
def notional_sum(prices, quantities):
    """Sum of ``prices[i] * quantities[i]``."""
    total = 0
    for i in range(prices.shape[0]):
        total += prices[i] * quantities[i]
    return total
