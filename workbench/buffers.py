"""Bytes handed to the parsing kernels (FIX, ITCH): one read-only, C-contiguous uint8 type.

Numba compiles a kernel once per argument type, and a writable array (a ``bytearray``, a
file read into memory, a caller's numpy array) is another type than a read-only one
(``bytes``, a read-only memory map). Every parser input goes through :func:`byte_buffer`,
so each scanner, validator and decoder compiles once, not twice (about 40 s of a cold
start for the FIX kernels alone).
"""
from __future__ import annotations

import numpy as np

__all__ = ["byte_buffer", "read_only"]


def byte_buffer(data) -> np.ndarray:
    """A 1-D uint8 numpy array (a memory map too) or a bytes-like object as a read-only,
    C-contiguous uint8 ndarray: no copy unless the array is not contiguous. Anything
    else (a list, a str, a number) is a ``ValueError`` naming its type."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError(f"data: need a 1-D uint8 array, got dtype={data.dtype} "
                             f"ndim={data.ndim}")
        return read_only(np.ascontiguousarray(data.view(np.ndarray)))
    try:
        return read_only(np.frombuffer(data, np.uint8))
    except TypeError:
        raise ValueError(f"data: expected bytes, a bytes-like object or a 1-D uint8 array, "
                         f"got {type(data).__name__}") from None


def read_only(array: np.ndarray) -> np.ndarray:
    """``array`` itself when it is read-only, else a read-only view of it (the caller's
    array stays writable)."""
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array
