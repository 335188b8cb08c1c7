"""The journal directory on disk: file names, segment headers, the lock, atomic writes.

A journal is one directory::

    LOCK                                  the writer's lock (flock) and its pid
    segment-00000000000000000001.wal      records from sequence 1
    segment-00000000000000004097.wal      ... from 4097 (a new segment per size limit
                                          and per restart)
    snapshot-00000000000000003000.snap    the engine's image covering sequences <= 3000

A **segment** is a header then ``JOURNAL_RECORD`` lines (64 bytes each, from the
header's end). Header, little-endian::

    0   8s  magic b"HFTWBJNL"
    8   u32 format version (1)
    12  u32 header bytes (a multiple of 64: where the records start)
    16  i64 first sequence number
    24  i64 creation time (CLOCK_REALTIME ns)
    32  u32 n = length of the JSON metadata
    36  n   JSON: {"kind": "Engine"|"OrderBook", "settings": {constructor arguments},
                   "durability": ..., "record": {"bytes": 64, "dtype": ...}, ...}
    36+n u32 CRC32C of bytes 0 .. 36+n
    ... zeros up to the header size

Every segment carries the full settings, so any one of them rebuilds the engine.
A snapshot file is ``workbench.journal.image``'s container (the same bytes as
``Engine.to_bytes()``), written by :func:`atomic_write`: temp file, fsync, rename,
directory fsync.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels import journal as kj
from kernels import records as R

from .errors import JournalCorruptError, JournalLockedError

__all__ = [
    "SEGMENT_MAGIC", "FORMAT_VERSION", "RECORD_BYTES", "LOCK_NAME", "SegmentHeader",
    "segment_name", "snapshot_name", "list_segments", "list_snapshots", "encode_header",
    "read_header", "record_descr", "fsync_dir", "atomic_write", "remove_stale_temps",
    "DirLock", "writer_pid",
]

SEGMENT_MAGIC = b"HFTWBJNL"
FORMAT_VERSION = 1
RECORD_BYTES = R.JOURNAL_RECORD.itemsize
LOCK_NAME = "LOCK"
_FIXED = struct.Struct("<8sIIqqI")
_SEGMENT_RE = re.compile(r"^segment-(\d{20})\.wal$")
_SNAPSHOT_RE = re.compile(r"^snapshot-(\d{20})\.snap$")


def segment_name(first_seq: int) -> str:
    return f"segment-{first_seq:020d}.wal"


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:020d}.snap"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first sequence number, path) of every segment, in order."""
    out = []
    for entry in os.scandir(directory):
        m = _SEGMENT_RE.match(entry.name)
        if m and entry.is_file():
            out.append((int(m.group(1)), Path(entry.path)))
    return sorted(out)


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(covered sequence number, path) of every snapshot, oldest first."""
    out = []
    for entry in os.scandir(directory):
        m = _SNAPSHOT_RE.match(entry.name)
        if m and entry.is_file():
            out.append((int(m.group(1)), Path(entry.path)))
    return sorted(out)


def record_descr() -> str:
    """The record layout as text: a journal written with another layout is refused."""
    return str(R.JOURNAL_RECORD)


@dataclass(frozen=True)
class SegmentHeader:
    path: Path
    first_seq: int
    created_ns: int
    header_bytes: int
    meta: dict


def encode_header(first_seq: int, meta: dict, created_ns: int | None = None) -> bytes:
    body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    raw_len = _FIXED.size + len(body) + 4
    header_bytes = -(-raw_len // 64) * 64
    created = time.time_ns() if created_ns is None else created_ns
    fixed = _FIXED.pack(SEGMENT_MAGIC, FORMAT_VERSION, header_bytes, first_seq, created, len(body))
    crc = int(kj.crc32c(np.frombuffer(fixed + body, dtype=np.uint8)))
    raw = fixed + body + struct.pack("<I", crc)
    return raw + bytes(header_bytes - len(raw))


def read_header(path: Path) -> SegmentHeader:
    """A segment's header, checked (magic, version, CRC32C, record layout); a damaged one
    raises ``JournalCorruptError`` naming the file and offset 0."""
    with open(path, "rb") as f:
        head = f.read(_FIXED.size)
        if len(head) < _FIXED.size:
            raise JournalCorruptError(f"{path}: segment header truncated ({len(head)} bytes)",
                                      path, 0)
        magic, version, header_bytes, first_seq, created, n = _FIXED.unpack(head)
        if magic != SEGMENT_MAGIC:
            raise JournalCorruptError(f"{path}: not a journal segment (magic {magic!r} at "
                                      f"offset 0)", path, 0)
        if version != FORMAT_VERSION:
            raise JournalCorruptError(f"{path}: segment format version {version}, this "
                                      f"workbench reads {FORMAT_VERSION}", path, 8)
        rest = f.read(n + 4)
    if len(rest) < n + 4 or header_bytes < _FIXED.size + n + 4 or header_bytes % 64:
        raise JournalCorruptError(f"{path}: segment header truncated or malformed (offset 0)",
                                  path, 0)
    body, (crc,) = rest[:n], struct.unpack("<I", rest[n:])
    if int(kj.crc32c(np.frombuffer(head + body, dtype=np.uint8))) != crc:
        raise JournalCorruptError(f"{path}: segment header checksum mismatch (offset 0)", path, 0)
    meta = json.loads(body)
    if meta.get("record", {}).get("dtype") != record_descr():
        raise JournalCorruptError(f"{path}: written with another record layout "
                                  f"({meta.get('record')}); this workbench cannot replay it",
                                  path, _FIXED.size)
    expected = segment_name(first_seq)
    if path.name != expected:
        raise JournalCorruptError(f"{path}: header says first sequence {first_seq} "
                                  f"(file name should be {expected})", path, 16)
    return SegmentHeader(Path(path), first_seq, created, header_bytes, meta)


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created, renamed or deleted file) durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks, sync: bool = True) -> None:
    """Write ``chunks`` (bytes-like) to ``path`` atomically: a temp file beside it,
    fsync, rename over ``path``, fsync of the directory. A crash leaves either the old
    file or the new one, never a part (a leftover ``.tmp`` is ignored and removed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while len(view):
                n = os.write(fd, view)
                view = view[n:]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete temp files an interrupted :func:`atomic_write` left (call with the lock)."""
    gone = []
    for entry in os.scandir(directory):
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            Path(entry.path).unlink(missing_ok=True)
            gone.append(Path(entry.path))
    return gone


def writer_pid(directory: Path) -> int | None:
    """The pid of the process holding the journal's writer lock, or None if free."""
    lock = Path(directory) / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class DirLock:
    """The one-writer lock of a journal directory: an exclusive ``flock`` on ``LOCK``
    (released by the OS when the process dies), holding the writer's pid."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "another process"
                raise JournalLockedError(
                    f"journal {directory} is already open for writing by {who} (lock "
                    f"{self.path}); two writers on one journal are refused - close the "
                    f"other engine, or open a copy read-only (workbench.journal.replay)"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
