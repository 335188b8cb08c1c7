"""An engine's image: its settings, every state array and its Python-side state, as bytes.

One container serves ``Engine.to_bytes()`` / ``Engine.from_bytes()``, pickling, and the
journal's snapshot files. :func:`capture` copies what an engine is made of (cheap: a
memcpy per array, so a snapshot can be encoded and written in the background);
:func:`encode` lays it out; :func:`decode` checks and reads it back; :func:`restore`
builds the engine.

What is captured, generically: every field of ``kernels.book_state.BookState`` (the
arrays are iterated by name, so a new state array is captured without a change here),
the constructor arguments (``_Books._settings()``), the next automatic order id and the
fill log. Restoring builds a fresh engine from the settings and copies each array into
it; an array whose dtype or shape differs from this version's (an image written by
another version of the book) is refused, naming the field.

Layout (little-endian)::

    0   8s  magic b"HFTWBIMG"
    8   u32 format version (1)
    12  u32 n = length of the JSON metadata
    16  u32 CRC32C of the JSON
    20  u32 0
    24  n   JSON: kind, settings, seq (journal sequence covered, 0 outside a journal),
            wall_ns, python state, and per array: name, dtype text, shape, offset,
            bytes, CRC32C
    ... zeros up to a multiple of 64: the data area
    each array's bytes at its offset into the data area (64-byte aligned)
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from kernels import journal as kj
from kernels import records as R

from .errors import JournalCorruptError

__all__ = ["IMAGE_MAGIC", "Image", "capture", "encode", "decode", "restore", "build_engine",
           "state_arrays", "FILL_LOG"]

IMAGE_MAGIC = b"HFTWBIMG"
IMAGE_VERSION = 1
FILL_LOG = "fill_log"  # the name of the fill log among the arrays (not a BookState field)
_FIXED = struct.Struct("<8sIIII")


@dataclass
class Image:
    """What an engine is made of (arrays owned by the image, not shared with the engine)."""

    kind: str                      # "Engine" or "OrderBook"
    settings: dict                 # constructor arguments (JSON values)
    arrays: dict[str, np.ndarray]  # BookState fields by name, and FILL_LOG
    python: dict                   # next_id, ...
    seq: int = 0                   # last journal sequence number the state includes
    wall_ns: int = 0               # that record's wall time (0: none)
    extra: dict = field(default_factory=dict)


def state_arrays(engine) -> dict[str, np.ndarray]:
    """The engine's BookState arrays by field name (views, not copies)."""
    return dict(zip(engine.state._fields, engine.state))


def capture(engine, seq: int = 0, wall_ns: int = 0) -> Image:
    """A copy of everything the engine is made of."""
    arrays = {name: _raw_copy(a) for name, a in state_arrays(engine).items()}
    log = engine._fill_log
    arrays[FILL_LOG] = np.concatenate(log) if log else np.zeros(0, dtype=R.FILL)
    return Image(type(engine).__name__, engine._settings(), arrays,
                 {"next_id": int(engine._next_id)}, int(seq), int(wall_ns))


def _raw_copy(a: np.ndarray) -> np.ndarray:
    """A byte-exact copy (``np.copy`` of a structured array skips its padding bytes)."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8).copy().view(a.dtype).reshape(a.shape)


def encode(image: Image) -> list:
    """The image as a list of bytes-like chunks (join them, or write them one by one)."""
    entries = []
    offset = 0
    for name, a in image.arrays.items():
        a = np.ascontiguousarray(a)
        raw = a.view(np.uint8).reshape(-1) if a.size else np.zeros(0, np.uint8)
        entries.append({"name": name, "dtype": str(a.dtype), "shape": list(a.shape),
                        "offset": offset, "bytes": int(raw.nbytes),
                        "crc": int(kj.crc32c(raw))})
        offset += -(-raw.nbytes // 64) * 64
    meta = {"kind": image.kind, "settings": image.settings, "seq": image.seq,
            "wall_ns": image.wall_ns, "python": image.python, "arrays": entries,
            "extra": image.extra}
    body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    head_len = -(-(_FIXED.size + len(body)) // 64) * 64
    crc = int(kj.crc32c(np.frombuffer(body, dtype=np.uint8)))
    head = _FIXED.pack(IMAGE_MAGIC, IMAGE_VERSION, len(body), crc, 0) + body
    chunks: list = [head + bytes(head_len - len(head))]
    for entry, a in zip(entries, image.arrays.values()):
        a = np.ascontiguousarray(a)
        raw = a.view(np.uint8).reshape(-1) if a.size else np.zeros(0, np.uint8)
        chunks.append(raw)
        pad = -raw.nbytes % 64
        if pad:
            chunks.append(bytes(pad))
    return chunks


def decode(data, source: str = "image") -> Image:
    """Check and read an image (bytes, bytearray, memoryview or a uint8 array); the
    arrays are copies. ``JournalCorruptError`` names ``source`` and the offset of the
    first damage."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.nbytes < _FIXED.size:
        raise JournalCorruptError(f"{source}: not an engine image ({buf.nbytes} bytes)",
                                  None, 0)
    magic, version, n, crc, _ = _FIXED.unpack(buf[:_FIXED.size].tobytes())
    if magic != IMAGE_MAGIC:
        raise JournalCorruptError(f"{source}: not an engine image (magic {magic!r} at offset 0)",
                                  None, 0)
    if version != IMAGE_VERSION:
        raise JournalCorruptError(f"{source}: image format version {version}, this workbench "
                                  f"reads {IMAGE_VERSION}", None, 8)
    body = buf[_FIXED.size:_FIXED.size + n]
    if body.nbytes < n or int(kj.crc32c(body)) != crc:
        raise JournalCorruptError(f"{source}: image metadata damaged (offset {_FIXED.size})",
                                  None, _FIXED.size)
    meta = json.loads(body.tobytes())
    data_start = -(-(_FIXED.size + n) // 64) * 64
    arrays = {}
    for e in meta["arrays"]:
        start, size = data_start + e["offset"], e["bytes"]
        raw = buf[start:start + size]
        if raw.nbytes != size or int(kj.crc32c(raw)) != e["crc"]:
            raise JournalCorruptError(f"{source}: array {e['name']!r} damaged (offset {start})",
                                      None, start)
        arrays[e["name"]] = (e["dtype"], tuple(e["shape"]), raw)
    return Image(meta["kind"], meta["settings"], arrays, meta["python"], meta["seq"],
                 meta["wall_ns"], meta.get("extra", {}))


def build_engine(kind: str, settings: dict, **options):
    """A fresh engine of ``kind`` with the stored constructor arguments (``options``: more
    keyword arguments, e.g. a journal)."""
    from workbench.book import Engine, OrderBook

    kwargs = dict(settings)
    if kind == "OrderBook":
        symbols = kwargs.pop("symbols")
        ticks = kwargs.pop("tick_size")
        return OrderBook(symbols[0], tick_size=ticks[symbols[0]], **kwargs, **options)
    if kind != "Engine":
        raise JournalCorruptError(f"unknown engine kind {kind!r} in the image", None, None)
    return Engine(**kwargs, **options)


def restore(image: Image, cls=None, source: str = "image", **options):
    """Build the engine an image describes (``cls``: force Engine or OrderBook) and copy
    every array into it. Arrays of a decoded image are (dtype text, shape, bytes)."""
    kind = image.kind if cls is None else cls.__name__
    if kind == "OrderBook" and len(image.settings["symbols"]) != 1:
        raise ValueError(f"{source}: an OrderBook holds one symbol; this image has "
                         f"{len(image.settings['symbols'])} - use Engine")
    engine = build_engine(kind, image.settings, **options)
    load_state(engine, image, source)
    return engine


def load_state(engine, image: Image, source: str = "image") -> None:
    """Copy an image's arrays and Python state into ``engine`` (same settings)."""
    targets = state_arrays(engine)
    missing = [name for name in targets if name not in image.arrays]
    extra = [name for name in image.arrays if name not in targets and name != FILL_LOG]
    if missing or extra:
        raise ValueError(f"{source}: state arrays differ from this version's (missing "
                         f"{missing}, unknown {extra}): written by another version")
    for name, target in targets.items():
        _copy_into(target, image.arrays[name], name, source)
    log = image.arrays.get(FILL_LOG)
    fills = np.zeros(0, dtype=R.FILL)
    if log is not None:
        fills = np.zeros(_shape(log)[0] if _shape(log) else 0, dtype=R.FILL)
        _copy_into(fills, log, FILL_LOG, source)
    engine._fill_log = [fills] if len(fills) else []
    engine._next_id = int(image.python["next_id"])


def _shape(item):
    return item[1] if isinstance(item, tuple) else item.shape


def _copy_into(target: np.ndarray, item, name: str, source: str) -> None:
    if isinstance(item, tuple):
        dtype_text, shape, raw = item
    else:
        dtype_text, shape, raw = str(item.dtype), item.shape, item
    if dtype_text != str(target.dtype) or tuple(shape) != target.shape:
        raise ValueError(f"{source}: state array {name!r} is {dtype_text} {tuple(shape)}; this "
                         f"engine's is {target.dtype} {target.shape} (written by another "
                         f"version, or other settings)")
    if isinstance(item, tuple):
        target.view(np.uint8).reshape(-1)[:] = raw
    else:
        target[...] = item
