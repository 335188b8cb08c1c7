"""Big-endian accessors over a uint8 buffer: what every ITCH field is made of.

ITCH integers are unsigned big-endian of 2, 4, 6 (timestamps) or 8 bytes; text fields
are space-padded ASCII. Readers return int64 (an 8-byte value keeps its bit pattern:
values from 2**63 read as negative). ``raw8`` / ``raw4`` keep text bytes in file order
(as a little-endian machine stores them), so ``array.view("S8")`` reads them back as
text with no per-message work. Writers are the exact inverses.

Contract: the caller checked that ``i .. i + width`` lies inside the buffer (the
framing does: a message is decoded only when all of its bytes are there, and every field
offset lies inside its type's fixed length). The readers rely on it: they are compiled
without bounds checks even in the checked build (a check per byte read was about half of
the decoder's time there). The writers keep the build's checks.
"""
from __future__ import annotations

import numpy as np

from kernels.jit import kernel

__all__ = ["u16", "u32", "u48", "u64", "raw4", "raw8", "put_u16", "put_u32", "put_u48",
           "put_u64", "put_raw4", "put_raw8"]


@kernel(boundscheck=False)
def u16(buf, i):
    return (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])


@kernel(boundscheck=False)
def u32(buf, i):
    return ((np.int64(buf[i]) << 24) | (np.int64(buf[i + 1]) << 16)
            | (np.int64(buf[i + 2]) << 8) | np.int64(buf[i + 3]))


@kernel(boundscheck=False)
def u48(buf, i):
    return (u16(buf, i) << 32) | u32(buf, i + 2)


@kernel(boundscheck=False)
def u64(buf, i):
    return (u32(buf, i) << 32) | u32(buf, i + 4)


@kernel(boundscheck=False)
def raw4(buf, i):
    return np.uint32(np.uint32(buf[i]) | (np.uint32(buf[i + 1]) << np.uint32(8))
                     | (np.uint32(buf[i + 2]) << np.uint32(16))
                     | (np.uint32(buf[i + 3]) << np.uint32(24)))


@kernel(boundscheck=False)
def raw8(buf, i):
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@kernel
def put_u16(out, i, v):
    out[i] = (v >> 8) & 0xFF
    out[i + 1] = v & 0xFF


@kernel
def put_u32(out, i, v):
    out[i] = (v >> 24) & 0xFF
    out[i + 1] = (v >> 16) & 0xFF
    out[i + 2] = (v >> 8) & 0xFF
    out[i + 3] = v & 0xFF


@kernel
def put_u48(out, i, v):
    put_u16(out, i, v >> 32)
    put_u32(out, i + 2, v)


@kernel
def put_u64(out, i, v):
    put_u32(out, i, v >> 32)
    put_u32(out, i + 4, v)


@kernel
def put_raw4(out, i, v):
    for k in range(4):
        out[i + k] = (np.uint32(v) >> np.uint32(8 * k)) & np.uint32(0xFF)


@kernel
def put_raw8(out, i, v):
    for k in range(8):
        out[i + k] = (np.uint64(v) >> np.uint64(8 * k)) & np.uint64(0xFF)
