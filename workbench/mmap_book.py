"""A book whose state lives in a file: ``np.memmap`` arrays that outlive the process.

``create(PATH, symbols=[...], ...)`` writes an engine's state arrays (every field of
``kernels.book_state.BookState``) into one file and returns a :class:`MappedEngine`: an
``Engine`` whose arrays *are* the file's pages (``np.memmap``, ``MAP_SHARED``). Every
order the kernels apply lands in the page cache at once; the process may exit, be
killed, or hand over, and ``open(PATH)`` in another process maps the same pages: the
same book, which keeps matching exactly as an in-memory engine would. ``read(PATH)``
maps it read-only for an observer (arrays, no engine), ``save(engine, PATH)`` writes an
in-memory engine out.

What is in the file, and what is not: the state arrays and the next automatic order id
(kept in the header, written before every automatic id is used). Not the fill log of
``Engine.fills()`` (a Python list in the writer's process): a reopened book starts with
an empty log. Durability is the page cache's: a process crash loses nothing, a power cut
may (``flush()`` asks the kernel to write the pages now; ``workbench.journal`` is the
route with fsync'd commits).

File layout (little-endian)::

    0   8s  magic b"HFTWBMAP"
    8   u32 format version (1)
    12  u32 header bytes (a multiple of 4096: the data area starts page-aligned)
    16  u32 n = length of the JSON metadata
    20  u32 CRC32C of the JSON
    24  u64 data bytes
    32  u32 CRC32C of bytes 0..32 (the fields above never change)
    36  u32 sealed: 1 after a clean close() (then the data CRC is valid), 0 while open
    40  u32 CRC32C of the data area (valid when sealed)
    44  u32 pid of the process that has it open for writing (0: none)
    48  i64 next automatic order id (live)
    56  8   zero
    64  n   JSON: kind, settings (the constructor arguments), layout fingerprint, and per
            array: name, dtype, shape, offset into the data area, bytes
    ... zeros up to the header bytes; then each array at its offset (64-byte aligned)

Checks on every open (``MappedBookError``, an ``InputError``, naming the file and what
is wrong; never a crash): size, magic, version, the header and JSON CRCs, the *layout
fingerprint* (dtypes, field order and counter slots of this version's ``BookState``: a
file from another layout is refused, not misread), every array's dtype, shape and
offset against what the settings allocate, the file length (truncated or extended), the
data CRC of a sealed file, and on every file the structure the kernels follow (every
order, level and overflow handle, the counters' layout, the bitmaps' summary words)
inside its array, so a damaged file of a crashed writer cannot send a kernel outside
its memory. One writer at a time: ``open(..., access="r+")`` takes an exclusive
``flock`` (a second writer gets ``MappedBookLocked``); ``access="c"`` is a private
copy-on-write view (changes never reach the file) and holds a shared lock, so no
writer changes the file under it. (Without ``fcntl``, on Windows, nothing is locked.)
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels import book_state
from kernels import journal as kj
from kernels import order_index
from kernels.bitmap import bitmap_layout

from . import fastcall
from .book import AUTO_ID_END, Engine
from .errors import InputError

try:                     # POSIX; elsewhere (Windows) a mapped book opens without a lock
    import fcntl
except ImportError:      # pragma: no cover - not on Linux
    fcntl = None

__all__ = ["MAGIC", "FORMAT_VERSION", "PAGE", "ALIGN", "MappedEngine", "MappedBookError",
           "MappedBookLocked", "BookFile", "create", "save", "open", "read", "layout_fingerprint",
           "file_layout", "check_structure"]

MAGIC = b"HFTWBMAP"
FORMAT_VERSION = 2   # 2: the order index groups 8 consecutive ids (kernels.order_index.home)
PAGE = 4096       # the data area starts on a page boundary
ALIGN = 64        # each array on a cache line
_FIXED = struct.Struct("<8sIIIIQ")          # magic .. data bytes (32 bytes, CRC'd)
_MUTABLE = struct.Struct("<IIIIq8x")        # fixed crc, sealed, data crc, pid, next id
HEADER_FIXED = _FIXED.size + _MUTABLE.size  # 64
_OFF_SEALED, _OFF_DATA_CRC, _OFF_PID, _OFF_NEXT_ID = 36, 40, 44, 48
_REFUSED_OPTIONS = ("journal", "durability", "snapshot_every", "journal_options")


class MappedBookError(InputError):
    """A mapped-book file is damaged, truncated, or from another layout or format."""


class MappedBookLocked(RuntimeError):
    """Another process has the file open for writing (or a private view pins it)."""


def _fail(path, problem: str) -> MappedBookError:
    return MappedBookError(f"{path}: {problem}", path=path)


@functools.lru_cache(maxsize=1)
def layout_fingerprint() -> str:
    """A hash of this version's state layout: each BookState field's name, dtype and
    dimensions, the engine counters' slots (``EC_*``) and the order index's empty key."""
    probe = book_state.allocate_state(1, 1, book_state.MIN_PRICE_LEVELS, [1])
    h = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for name, a in zip(probe._fields, probe):
        h.update(f"{name}:{a.dtype}:{a.ndim};".encode())
    counters = sorted((k, v) for k, v in vars(book_state).items()
                      if k.startswith("EC_") and isinstance(v, int))
    h.update(repr((counters, book_state.N_ENGINE_COUNTERS, int(order_index.EMPTY_KEY))).encode())
    return h.hexdigest()[:32]


def file_layout(engine) -> tuple[list[dict], int]:
    """The array table of ``engine``'s state as a mapped file lays it out, and the data
    area's size in bytes: each array at the next multiple of ``ALIGN`` bytes."""
    entries, offset = [], 0
    for name, a in zip(engine.state._fields, engine.state):
        entries.append({"name": name, "dtype": str(a.dtype), "shape": list(a.shape),
                        "offset": offset, "bytes": int(a.nbytes)})
        offset += -(-a.nbytes // ALIGN) * ALIGN
    return entries, offset


# ------------------------------------------------------------------------------ writing
def save(engine, path, *, overwrite: bool = False) -> Path:
    """Write ``engine``'s state into a new mapped-book file at ``path`` (sealed: it
    opens with a full data check). Atomic: a temporary file renamed into place, so
    ``path`` never holds half a book. Returns the path."""
    if not isinstance(engine, Engine):
        raise ValueError(f"engine must be a workbench Engine, got {type(engine).__name__}")
    if getattr(engine, "_journal", None) is not None:
        raise ValueError("engine has a journal: save its state with snapshot()/to_bytes(); a "
                         "mapped book is its own durability route")
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists (open it with mmap_book.open, or pass overwrite=True)",
                         path=path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {path.parent} does not exist", path=path)
    entries, data_bytes = file_layout(engine)
    meta = {"kind": "Engine", "settings": engine._settings(), "layout": layout_fingerprint(),
            "data_bytes": data_bytes, "arrays": entries, "created_ns": time.time_ns()}
    body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    header_bytes = -(-(HEADER_FIXED + len(body)) // PAGE) * PAGE
    data_crc = 0
    chunks = []
    for entry, a in zip(entries, engine.state):
        raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        pad = np.zeros(-raw.nbytes % ALIGN, dtype=np.uint8)
        for part in (raw, pad):
            if part.nbytes:
                data_crc = int(kj.crc32c(part, data_crc))
                chunks.append(part)
    fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, header_bytes, len(body),
                        int(kj.crc32c(np.frombuffer(body, np.uint8))), data_bytes)
    fixed_crc = int(kj.crc32c(np.frombuffer(fixed, np.uint8)))
    head = fixed + _MUTABLE.pack(fixed_crc, 1, data_crc, 0, int(engine._next_id)) + body
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            f.write(head + bytes(header_bytes - len(head)))
            for part in chunks:
                f.write(part.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create(path, symbols=("SYM",), *, overwrite: bool = False, mode=None, **engine_options):
    """A new mapped book at ``path``: ``Engine(symbols, **engine_options)``'s fresh
    state written out (:func:`save`), then opened for writing (:func:`open`)."""
    refused = [k for k in _REFUSED_OPTIONS if k in engine_options]
    if refused:
        raise ValueError(f"{refused}: a mapped book keeps its state in the file; a journal is "
                         "another durability route (use one or the other)")
    engine = Engine(symbols, **engine_options, mode=mode)
    save(engine, path, overwrite=overwrite)
    del engine
    return open(path, "r+", mode=mode)


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class _Header:
    path: Path
    header_bytes: int
    data_bytes: int
    sealed: bool
    data_crc: int
    pid: int
    next_id: int
    meta: dict


def _read_header(path) -> _Header:
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise _fail(path, "is a directory, not a mapped book")
        if not path.is_file():
            raise _fail(path, "not a regular file")
        with path.open("rb") as f:
            head = f.read(HEADER_FIXED)
            if len(head) < HEADER_FIXED:
                raise _fail(path, f"{size} bytes: too short for a mapped book's header "
                                  f"({HEADER_FIXED} bytes): truncated, or not a mapped book")
            magic, version, header_bytes, n, json_crc, data_bytes = _FIXED.unpack_from(head)
            if magic != MAGIC:
                raise _fail(path, f"not a mapped book (magic {magic!r} at offset 0, expected "
                                  f"{MAGIC!r})")
            if version != FORMAT_VERSION:
                raise _fail(path, f"mapped-book format version {version}; this workbench reads "
                                  f"version {FORMAT_VERSION}")
            fixed_crc, sealed, data_crc, pid, next_id = _MUTABLE.unpack_from(head, _FIXED.size)
            if int(kj.crc32c(np.frombuffer(head[:_FIXED.size], np.uint8))) != fixed_crc:
                raise _fail(path, "header damaged (CRC of bytes 0..32 does not match)")
            if header_bytes % PAGE or header_bytes < HEADER_FIXED + n:
                raise _fail(path, f"header size {header_bytes} is not a page multiple holding "
                                  f"{n} bytes of metadata")
            body = f.read(n)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", path=path) from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a mapped book") from None
    except PermissionError:
        raise InputError(f"{path}: not readable by this user", path=path) from None
    if len(body) < n or int(kj.crc32c(np.frombuffer(body, np.uint8))) != json_crc:
        raise _fail(path, f"metadata damaged or cut short (CRC mismatch at offset {HEADER_FIXED})")
    try:
        meta = json.loads(body)
    except ValueError:
        raise _fail(path, "metadata is not JSON despite a matching CRC") from None
    if not isinstance(meta, dict) or meta.get("kind") != "Engine":
        raise _fail(path, f"holds a {meta.get('kind') if isinstance(meta, dict) else '?'!r}, "
                          "not an Engine")
    if meta.get("layout") != layout_fingerprint():
        raise _fail(path, f"written with another state layout (fingerprint {meta.get('layout')}, "
                          f"this version's is {layout_fingerprint()}): rebuild it from an image "
                          "(Engine.to_bytes) or a journal of that version")
    if meta.get("data_bytes") != data_bytes:
        raise _fail(path, f"data size {data_bytes} in the header disagrees with the metadata's "
                          f"{meta.get('data_bytes')}")
    if sealed not in (0, 1):
        raise _fail(path, f"sealed flag {sealed} is neither 0 nor 1: header damaged")
    if not 1 <= next_id <= AUTO_ID_END:
        raise _fail(path, f"next order id {next_id} is outside 1..{AUTO_ID_END}: header damaged")
    expected = header_bytes + data_bytes
    if size < expected:
        raise _fail(path, f"truncated: {size:,} bytes, the layout needs {expected:,} "
                          f"({expected - size:,} missing)")
    if size > expected:
        raise _fail(path, f"{size - expected:,} bytes beyond the layout's {expected:,}: not "
                          "written by this workbench")
    return _Header(path, header_bytes, data_bytes, bool(sealed), data_crc, pid, next_id, meta)


def _template(header: _Header, mode=None) -> Engine:
    """An in-memory engine from the stored settings (its constructor validates them)."""
    settings = header.meta.get("settings")
    if not isinstance(settings, dict):
        raise _fail(header.path, "metadata has no settings")
    try:
        return Engine(**settings, mode=mode)
    except (TypeError, ValueError) as exc:
        raise _fail(header.path, f"stored settings do not build an engine: {exc}") from None


def _check_table(header: _Header, template: Engine) -> list[dict]:
    entries, data_bytes = file_layout(template)
    stored = header.meta.get("arrays")
    if not isinstance(stored, list) or [e.get("name") for e in stored if isinstance(e, dict)] \
            != [e["name"] for e in entries]:
        raise _fail(header.path, "its arrays are not this version's BookState fields")
    for want, got in zip(entries, stored):
        for key in ("dtype", "shape", "offset", "bytes"):
            if got.get(key) != want[key]:
                raise _fail(header.path, f"array {want['name']!r}: {key} {got.get(key)!r}, the "
                                         f"settings give {want[key]!r}")
    if data_bytes != header.data_bytes:
        raise _fail(header.path, f"data area {header.data_bytes} bytes, the settings give "
                                 f"{data_bytes}")
    return entries


def _views(raw: np.ndarray, header_bytes: int, entries: list[dict], template: Engine) -> dict:
    """Plain ndarray views (not memmap subclasses) of each array in the mapping."""
    out = {}
    for entry, like in zip(entries, template.state):
        start = header_bytes + entry["offset"]
        part = raw[start:start + entry["bytes"]].view(np.ndarray)
        out[entry["name"]] = part.view(like.dtype).reshape(like.shape)
    return out


def _bad(path, name, values, lo, hi, what="handle"):
    """The first value of ``values`` outside ``[lo, hi)``, as an error (None if all fit)."""
    values = np.asarray(values)
    if values.size == 0:
        return None
    bad = (values < lo) | (values >= hi)
    if bad.any():
        i = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), values.shape)
        index = i[0] if len(i) == 1 else tuple(int(k) for k in i)
        return _fail(path, f"{name}[{index}] = {values[i]} is outside [{lo}, {hi}): not a valid "
                           f"{what} (damaged data)")
    return None


def check_structure(arrays: dict, path="state") -> None:
    """Every handle the kernels follow inside its array, the counters' layout consistent
    with the arrays, and each bitmap's summary words matching its level-0 words.
    ``MappedBookError`` names the first violation."""
    pool, levels, books = arrays["pool"], arrays["levels"], arrays["books"]
    c, bits = arrays["counters"], arrays["bits"]
    cap, n_levels, n_books, n_ovf = len(pool), len(levels), len(books), len(arrays["ovf_next"])
    W = int(c[book_state.EC_W])
    if W < book_state.MIN_PRICE_LEVELS or W > book_state.MAX_PRICE_LEVELS or W & (W - 1):
        raise _fail(path, f"counters[EC_W] = {W} is not a price window (damaged data)")
    l0, l1, block = bitmap_layout(W)
    expected = {book_state.EC_L0: l0, book_state.EC_L1: l1, book_state.EC_BLOCK: block,
                book_state.EC_OVF_BASE: n_books * 2 * W,
                book_state.EC_HASH_SHIFT: order_index.index_shift(len(arrays["index_keys"]))}
    for slot, want in expected.items():
        if int(c[slot]) != want:
            raise _fail(path, f"counters[{slot}] = {int(c[slot])}, the arrays need {want} "
                              "(damaged data)")
    if n_levels != n_books * 2 * W + n_ovf or len(bits) != n_books * 2 * block:
        raise _fail(path, "array sizes disagree with the price window (damaged data)")
    checks = [
        ("counters[EC_FREE_HEAD]", c[book_state.EC_FREE_HEAD:book_state.EC_FREE_HEAD + 1], -1, cap),
        ("counters[EC_OVF_FREE]", c[book_state.EC_OVF_FREE:book_state.EC_OVF_FREE + 1], -1, n_ovf),
        ("pool.next", pool["next"], -1, cap), ("pool.prev", pool["prev"], -1, cap),
        ("pool.level", pool["level"], -1, n_levels), ("pool.symbol", pool["symbol"], 0, n_books),
        ("pool.side", pool["side"], 0, 2),
        ("levels.head", levels["head"], -1, cap), ("levels.tail", levels["tail"], -1, cap),
        ("levels.count", levels["count"], 0, cap + 1),
        ("books.best", books["best"], -1, n_levels), ("books.ovf_head", books["ovf_head"], -1, n_ovf),
        ("books.ovf_tail", books["ovf_tail"], -1, n_ovf), ("books.placed", books["placed"], 0, 2),
        ("books.n_levels", books["n_levels"], 0, n_levels + 1),
        ("books.n_ovf", books["n_ovf"], 0, n_ovf + 1),
        ("index_slots", arrays["index_slots"], -1, cap),
        ("ovf_next", arrays["ovf_next"], -1, n_ovf), ("ovf_prev", arrays["ovf_prev"], -1, n_ovf),
    ]
    for name, values, lo, hi in checks:
        error = _bad(path, name, values, lo, hi)
        if error is not None:
            raise error
    error = _bad(path, "books.tick", books["tick"], 1, 2**62, "tick size")
    if error is not None:
        raise error
    # the bitmaps: a summary bit is set exactly when its word below is non-zero
    blocks = bits.reshape(n_books * 2, block)
    for level, (lo_words, summary) in enumerate(((blocks[:, :l0], blocks[:, l0:l0 + l1]),
                                                 (blocks[:, l0:l0 + l1], blocks[:, l0 + l1:]))):
        want = _summary(lo_words != 0, summary.shape[1])
        if not np.array_equal(want, summary):
            k = int(np.flatnonzero((want != summary).any(axis=1))[0])
            raise _fail(path, f"bits: the level-{level + 1} summary of bitmap {k} (book {k // 2}, "
                              f"{'bid' if k % 2 == 0 else 'ask'} side) does not match its words "
                              "(damaged data)")


def _summary(nonzero: np.ndarray, words: int) -> np.ndarray:
    """Pack each row's booleans into ``words`` uint64 words, bit j of word k = column
    64k + j (the bitmap's order)."""
    rows, n = nonzero.shape
    padded = np.zeros((rows, words * 64), dtype=bool)
    padded[:, :n] = nonzero
    packed = np.packbits(padded.reshape(rows, words, 64), axis=-1, bitorder="little")
    return packed.reshape(rows, words * 8).view("<u8").astype(np.uint64)


def _verify(header: _Header, raw: np.ndarray, arrays: dict) -> None:
    if header.sealed:
        crc = int(kj.crc32c(raw[header.header_bytes:header.header_bytes + header.data_bytes]))
        if crc != header.data_crc:
            raise _fail(header.path, f"data damaged: CRC32C {crc:#010x}, the clean close wrote "
                                     f"{header.data_crc:#010x}")
    check_structure(arrays, header.path)


def _lock(path: Path, exclusive: bool, pid_hint: int) -> int:
    try:
        fd = os.open(path, os.O_RDWR if exclusive else os.O_RDONLY)
    except PermissionError:
        raise InputError(f"{path}: not {'writable' if exclusive else 'readable'} by this user"
                         + (" (open it with access='c', or read() it)" if exclusive else ""),
                         path=path) from None
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        who = f" (pid {pid_hint})" if pid_hint else ""
        if exclusive:
            raise MappedBookLocked(f"{path}: open elsewhere{who}; one process writes a mapped "
                                   "book at a time (read() observes it without a lock)") from None
        raise MappedBookLocked(f"{path}: being written{who}; a private copy needs the writer "
                               "to close it (read() observes it live)") from None
    except OSError:
        os.close(fd)
        raise
    return fd


def open(path, access: str = "r+", *, mode=None) -> "MappedEngine":   # noqa: A001 - the API name
    """Map the book at ``path``: ``access="r+"`` to keep trading in it (changes go to the
    file; an exclusive lock), ``"c"`` for a private what-if copy (copy-on-write; the file
    never changes; a shared lock). Checks everything the module docstring lists first."""
    if access not in ("r+", "c"):
        raise ValueError(f"access={access!r} must be 'r+' (write to the file) or 'c' (private "
                         "copy-on-write view)")
    path = Path(path)
    header = _read_header(path)
    fd = _lock(path, access == "r+", header.pid)
    try:
        header = _read_header(path)          # as it is now that nobody else writes
        template = _template(header, mode)
        entries = _check_table(header, template)
        raw = np.memmap(path, dtype=np.uint8, mode=access,
                        shape=(header.header_bytes + header.data_bytes,))
        arrays = _views(raw, header.header_bytes, entries, template)
        _verify(header, raw, arrays)
        return MappedEngine._adopt(template, path, access, raw, arrays, header, fd)
    except BaseException:
        os.close(fd)
        raise


@dataclass
class BookFile:
    """A read-only look at a mapped book (no engine, no lock): its settings, its arrays
    by ``BookState`` field name (read-only views of the live pages) and its header."""

    path: Path
    settings: dict
    arrays: dict
    sealed: bool
    next_id: int
    writer_pid: int

    @property
    def symbols(self) -> list[str]:
        return list(self.settings["symbols"])

    @property
    def price_scale(self) -> int:
        return int(self.settings["price_scale"])

    def symbol_index(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise ValueError(f"symbol={symbol!r} is not one of {self.symbols}") from None


def read(path) -> BookFile:
    """Map the book at ``path`` read-only and check it (as :func:`open` does). The
    arrays follow the file: a writer's later orders show up in them. Reads taken while
    a writer is mid-order may be torn; read between its commands."""
    header = _read_header(path)
    template = _template(header)
    entries = _check_table(header, template)
    raw = np.memmap(header.path, dtype=np.uint8, mode="r",
                    shape=(header.header_bytes + header.data_bytes,))
    arrays = _views(raw, header.header_bytes, entries, template)
    _verify(header, raw, arrays)
    return BookFile(header.path, header.meta["settings"], arrays, header.sealed,
                    header.next_id, header.pid)


# ------------------------------------------------------------------------------ the engine
class MappedEngine(Engine):
    """An ``Engine`` whose state arrays are a file's pages (build it with
    :func:`create` or :func:`open`). Everything an ``Engine`` does works; ``flush()``
    writes the pages now, ``close()`` seals the file (its data CRC and the clean flag)
    and releases it: the object then keeps a read-only in-memory copy (queries work,
    commands raise)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("build a MappedEngine with workbench.mmap_book.create(PATH, ...) or "
                        "open(PATH)")

    @classmethod
    def _adopt(cls, template: Engine, path, access, raw, arrays, header, fd) -> "MappedEngine":
        self = template
        self.__class__ = cls                 # the template becomes the mapped engine
        self.__dict__["_id_memory"] = int(self._ctl[fastcall.CTL_NEXT_ID])
        for name in ("submit", "add_order", "cancel", "modify"):
            self.__dict__.pop(name, None)    # the native entries: they keep ids in memory
        self.path = Path(path)
        self.access = access
        self.sealed_on_open = header.sealed  # False: the last writer did not close() it
        self._raw = raw
        self._id_slot = raw[_OFF_NEXT_ID:_OFF_NEXT_ID + 8].view(np.ndarray).view("<i8")
        self.state = book_state.BookState(*(arrays[name] for name in book_state.BookState._fields))
        self._set_scratch(len(self._scratch))
        self._closed = False
        if access == "r+":
            self._write_u32(_OFF_SEALED, 0)
            self._write_u32(_OFF_PID, os.getpid())
            raw.flush()
        self._release = weakref.finalize(self, os.close, fd)   # the lock lives as long as we do
        return self

    # the next automatic order id lives in the file's header
    @property
    def _next_id(self) -> int:
        slot = self.__dict__.get("_id_slot")
        return int(slot[0]) if slot is not None else self.__dict__.get("_id_memory", 1)

    @_next_id.setter
    def _next_id(self, value: int) -> None:
        slot = self.__dict__.get("_id_slot")
        if slot is None:
            self.__dict__["_id_memory"] = int(value)
        else:
            slot[0] = value

    def _write_u32(self, offset: int, value: int) -> None:
        self._raw[offset:offset + 4].view(np.ndarray).view("<u4")[0] = value

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self) -> None:
        """Ask the kernel to write the dirty pages to the file now (``msync``); a process
        crash loses nothing even without it, a power cut may."""
        if not self._closed and self.access == "r+":
            self._raw.flush()

    def close(self) -> None:
        """Seal (r+: data CRC, clean flag, ``msync``), then let the file go: the engine
        keeps an in-memory copy for queries and refuses commands."""
        if self._closed:
            return
        raw = self._raw
        if self.access == "r+":
            header_bytes, = struct.unpack_from("<I", raw[12:16].tobytes())
            crc = int(kj.crc32c(raw[header_bytes:].view(np.ndarray)))
            self._write_u32(_OFF_DATA_CRC, crc)
            self._write_u32(_OFF_PID, 0)
            self._write_u32(_OFF_SEALED, 1)
            raw.flush()
        next_id = self._next_id
        copies = [np.ascontiguousarray(a).reshape(-1).view(np.uint8).copy().view(a.dtype)
                  .reshape(a.shape) for a in self.state]
        self.__dict__["_id_slot"] = None
        self.__dict__["_id_memory"] = next_id
        self.state = book_state.BookState(*copies)
        self._set_scratch(len(self._scratch))
        self._apply_one = _closed_one
        self._route_through_apply_one()
        self._apply_batch = _closed_batch
        self._raw = None
        self._closed = True
        self._release()                      # closes the lock's descriptor

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def to_bytes(self) -> bytes:
        """An image of the book (as ``Engine.to_bytes``): it restores as a plain Engine."""
        from .journal import image

        snap = image.capture(self)
        snap.kind = "Engine"
        return b"".join(image.encode(snap))

    @classmethod
    def from_bytes(cls, data):
        """A plain in-memory ``Engine`` (an image carries no file)."""
        return Engine.from_bytes(data)

    def __reduce__(self):
        return (Engine.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"mapped {self.access}"
        return f"MappedEngine({str(self.path)!r}, {state}, symbols={self.symbols})"


def _closed_one(*args):
    raise ValueError("this mapped book is closed: open the file again (mmap_book.open) to "
                     "trade in it")


def _closed_batch(*args):
    raise ValueError("this mapped book is closed: open the file again (mmap_book.open) to "
                     "trade in it")
