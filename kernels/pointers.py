"""Arrays from raw addresses: the plumbing that keeps reference counts off the hot path.

Owns :func:`address_as_pointer` (an int64 address as a ``void*``), :func:`borrow`
(a view of an array rebuilt from its address), :func:`borrow_fills` (the same for a
``FILL`` buffer), :func:`pack_context` (arrays' addresses and shapes packed into one
int64 array, a *context*: the layout ``kernels.state_views`` generates per state) and
:func:`borrow_context` (a view of a context from the address it stores).

Why: Numba increments and decrements an atomic reference count on every array each
time it crosses a non-inlined function boundary. With the book's seven state arrays
and a few call levels per event that costs ~4x the matching work itself; with the
backtest's ~30 arrays each helper call cost ~400 ns. A view built from a raw address
carries no reference count, so those operations become a null check.

Contract: a view is valid only while the caller keeps the original array alive (a
kernel's own argument always is, for the duration of the call; a context's arrays are
kept alive by whoever packed it). Views have the shape of the C-contiguous array they
view; a view never owns or frees memory.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.extending import intrinsic, overload
from numba.np import numpy_support

from .jit import kernel
from .records import FILL

__all__ = ["address_as_pointer", "borrow", "borrow_fills", "borrow_c", "pack_context",
           "borrow_context"]


@intrinsic
def address_as_pointer(typingctx, address):
    """An int64 address as a ``void*`` for ``numba.carray`` (no reference count)."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


@kernel
def borrow(a, dtype):
    """A reference-count-free view of ``a`` (C-contiguous) as ``dtype`` records."""
    return carray(address_as_pointer(np.int64(a.ctypes.data)), a.shape, dtype)


def borrow_c(a):
    """In a kernel: a reference-count-free view of the 1-d array ``a`` when it is
    C-contiguous (its type says so at compile time), else ``a`` itself.

    Why: a kernel that passes an array argument on to an inlined helper has Numba
    increment and decrement the array's reference count around each use, an atomic
    operation on a shared counter; inside a loop over events that is two or three
    atomics per event (a fifth of the ITCH replay's time). A borrowed view has no
    counter, so those operations compile away. Valid while the caller holds ``a``, which
    a kernel's own argument always is. Any other layout (a strided or reversed slice)
    keeps its counted reference: a contiguous view of it would read the wrong records. So
    does a read-only or unaligned array: the view's type is writable and aligned, so it
    would drop the read-only type (which makes Numba refuse ``a[i] = ...``) or allow
    aligned loads of unaligned data."""
    raise TypeError("borrow_c is only callable from compiled kernels")


@overload(borrow_c)
def _borrow_c(a):
    if (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.mutable
            and a.aligned):
        dtype = numpy_support.as_dtype(a.dtype)

        def view(a):
            return carray(address_as_pointer(np.int64(a.ctypes.data)), a.shape, dtype)

        return view
    if isinstance(a, types.Array):
        return lambda a: a
    return None


@kernel
def borrow_fills(fills):
    """A reference-count-free view of a FILL buffer."""
    return borrow(fills, FILL)


def pack_context(fields) -> np.ndarray:
    """One int64 array holding, for each ``(name, array, dtype, ndim)`` of ``fields`` in
    order, the array's address then its ``ndim`` extents, and last its own address.

    The caller keeps every array and the context alive while a kernel reads it."""
    fields = tuple(fields)
    out = np.zeros(sum(1 + ndim for _, _, _, ndim in fields) + 1, dtype=np.int64)
    j = 0
    for name, a, dtype, ndim in fields:
        if a.ndim != ndim or a.dtype != np.dtype(dtype) or not a.flags.c_contiguous:
            raise ValueError(f"{name}: need a C-contiguous {ndim}-D array of "
                             f"{np.dtype(dtype)}, got a {a.ndim}-D array of {a.dtype}")
        out[j] = a.ctypes.data
        out[j + 1:j + 1 + ndim] = a.shape
        j += 1 + ndim
    out[-1] = out.ctypes.data
    return out


@kernel(inline="always")
def borrow_context(context):
    """A reference-count-free view of a state context (``kernels.state_views``): every
    context stores its own address in its last slot."""
    return carray(address_as_pointer(context[len(context) - 1]), len(context), np.int64)
