"""Reading a journal directory: segments checked record by record, snapshots listed.

:class:`JournalReader` opens a directory read-only (no lock: a live writer may be
appending) and yields its records in sequence order, checked:

* each segment header (magic, version, CRC32C, record layout);
* each record's CRC32C and its sequence number (``first_seq + i``, no gaps, also across
  segments);
* **the tail**: damage that runs to the end of the last segment (a partial record,
  a bad checksum, zeros), with no intact record after it, is a *torn tail* - what a
  crash in the middle of a write leaves. Records after the last ``JF_END`` (the last
  record of each engine call) belong to a command that never finished: an *incomplete
  tail*. Both are reported in :attr:`JournalReader.tail` and never yielded;
  ``workbench.journal.recover`` then cuts them off.
* **anything else is corruption**: a damaged record with intact ones after it, a
  damaged segment before the last one, a gap between segments, a broken header that
  is not the last file. ``JournalCorruptError`` names the segment and the byte offset;
  nothing is skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from kernels import journal as kj
from kernels import records as R

from . import files
from .errors import JournalCorruptError

__all__ = ["JournalReader", "SegmentInfo", "TailInfo", "SnapshotEntry"]

_RB = files.RECORD_BYTES


@dataclass
class SegmentInfo:
    path: Path
    first_seq: int
    header_bytes: int
    file_bytes: int
    records: int = 0              # intact records read from it (so far)
    status: str = "unread"        # ok, torn, incomplete, bad header, unread

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.records - 1

    def to_dict(self) -> dict:
        return {"name": self.path.name, "first_seq": self.first_seq,
                "last_seq": self.last_seq if self.records else None, "records": self.records,
                "bytes": self.file_bytes, "status": self.status}


@dataclass
class TailInfo:
    """What is wrong at the end of the journal (a crash mid-write)."""

    segment: Path          # where the cut starts
    offset: int            # byte offset of the first byte to cut in that segment
    bytes: int             # bytes from there to the end of the journal
    records: int           # intact records in the cut (an unfinished command's)
    reason: str
    later_segments: list[Path] = field(default_factory=list)  # whole files after it

    def to_dict(self) -> dict:
        return {"segment": self.segment.name, "offset": self.offset, "bytes": self.bytes,
                "records": self.records, "reason": self.reason,
                "later_segments": [p.name for p in self.later_segments]}

    def __str__(self) -> str:
        later = (f" and {len(self.later_segments)} later segment file(s)"
                 if self.later_segments else "")
        return (f"{self.reason}: {self.bytes} byte(s) from offset {self.offset} of "
                f"{self.segment.name}{later}")


@dataclass
class SnapshotEntry:
    seq: int
    path: Path
    bytes: int


class JournalReader:
    """A journal directory, opened read-only. ``meta``: the first segment's header
    metadata (kind, settings, durability)."""

    def __init__(self, directory):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(2, "no such journal directory", str(self.directory))
        listed = files.list_segments(self.directory)
        self.snapshots = [SnapshotEntry(seq, path, path.stat().st_size)
                          for seq, path in files.list_snapshots(self.directory)]
        self.segments: list[SegmentInfo] = []
        self.headers: list[files.SegmentHeader] = []
        self.bad_last_header: tuple[Path, str] | None = None
        for k, (first, path) in enumerate(listed):
            try:
                header = files.read_header(path)
            except JournalCorruptError as exc:
                if k == len(listed) - 1 and path.stat().st_size < 64 * 1024:
                    # a crash while the last segment was being created
                    self.bad_last_header = (path, str(exc))
                    break
                raise
            self.headers.append(header)
            self.segments.append(SegmentInfo(path, first, header.header_bytes,
                                             path.stat().st_size))
        if not self.headers and not self.snapshots:
            raise JournalCorruptError(f"{self.directory}: no journal here (no segment or "
                                      f"snapshot file)", self.directory, None)
        self.meta = self.headers[0].meta if self.headers else None
        self.tail: TailInfo | None = None
        self.last_seq = 0            # last intact record yielded or withheld
        self.last_complete_seq = 0   # last record ending a command

    # ---------------------------------------------------------------- records
    def _read(self, seg: SegmentInfo) -> tuple[np.ndarray, int]:
        with open(seg.path, "rb") as f:
            f.seek(seg.header_bytes)
            data = np.fromfile(f, dtype=np.uint8)
        n = len(data) // _RB
        return data[:n * _RB], len(data) - n * _RB

    def records(self, start_seq: int = 1, until_seq: int | None = None,
                until_ts: int | None = None) -> Iterator[np.ndarray]:
        """Yield ``JOURNAL_RECORD`` arrays of intact, complete commands in order, from
        ``start_seq``; stop after ``until_seq`` / before the first record whose wall
        time is after ``until_ts`` (ns). Sets :attr:`tail`, :attr:`last_seq` and
        :attr:`last_complete_seq` once exhausted (a stop by ``until`` leaves the tail
        unchecked)."""
        segs = self.segments
        first_index = 0
        for k, seg in enumerate(segs):
            if seg.first_seq <= start_seq:
                first_index = k
        if segs and start_seq < segs[0].first_seq:
            raise JournalCorruptError(
                f"{self.directory}: sequence {start_seq} is needed but the journal starts at "
                f"{segs[0].first_seq} (pruned, and no snapshot covers it)", segs[0].path, 0)
        expected = segs[first_index].first_seq if segs else start_seq
        carry: list[np.ndarray] = []   # records of a command not finished yet
        carry_start: tuple[SegmentInfo, int] | None = None
        self.last_seq = self.last_complete_seq = start_seq - 1
        for k in range(first_index, len(segs)):
            seg = segs[k]
            last_segment = k == len(segs) - 1
            if seg.first_seq != expected:
                prev = segs[k - 1]
                raise JournalCorruptError(
                    f"{seg.path}: starts at sequence {seg.first_seq} but {prev.path.name} "
                    f"ends at {expected - 1}: sequences {expected}..{seg.first_seq - 1} are "
                    f"missing (offset {seg.header_bytes})", seg.path, seg.header_bytes)
            data, partial = self._read(seg)
            n = len(data) // _RB
            words = data.view(np.uint64)
            good = int(kj.scan_records(words, n, seg.first_seq))
            seg.records = good
            seg.status = "ok"
            torn_reason = None
            if good < n or partial:
                offset = seg.header_bytes + good * _RB
                if good < n:
                    what = self._damage(data, good, seg.first_seq)
                else:
                    what = f"partial record ({partial} bytes)"
                later_ok = int(kj.count_valid(words, good + 1, n)) if good < n else 0
                if not last_segment or later_ok:
                    where = ("a segment before the last one" if not last_segment else
                             f"{later_ok} intact record(s) follow it")
                    raise JournalCorruptError(
                        f"{seg.path}: record {good} (sequence {seg.first_seq + good}) at byte "
                        f"offset {offset} is damaged ({what}) and {where}: this is not a torn "
                        f"tail; refusing to read past it (acknowledged commands would be "
                        f"lost)", seg.path, offset)
                torn_reason = what
                seg.status = "torn"
            recs = data.view(R.JOURNAL_RECORD)[:good]
            lo = max(0, start_seq - seg.first_seq)
            recs = recs[lo:] if lo else recs
            expected = seg.first_seq + good
            if len(recs):
                self.last_seq = int(recs["seq"][-1])
            # stop by ``until``
            stop_at = len(recs)
            if until_seq is not None and len(recs) and recs["seq"][-1] > until_seq:
                stop_at = int(np.searchsorted(recs["seq"], until_seq, side="right"))
            if until_ts is not None:
                late = np.flatnonzero(recs["wall_ns"][:stop_at] > until_ts)
                if len(late):
                    stop_at = int(late[0])
            if stop_at < len(recs):
                chunk = recs[:stop_at]
                if carry:
                    chunk = np.concatenate(carry + [chunk])
                if len(chunk):
                    yield chunk
                return
            ends = np.flatnonzero(recs["flags"] & R.JF_END)
            if len(ends):
                cut = int(ends[-1]) + 1
                out = recs[:cut]
                if carry:
                    out = np.concatenate(carry + [out])
                    carry = []
                carry_start = None
                self.last_complete_seq = int(recs["seq"][cut - 1])
                if len(out):
                    yield out
                rest = recs[cut:]
            else:
                rest = recs
            if len(rest):
                if carry_start is None:
                    carry_start = (seg, int(rest["seq"][0]) - seg.first_seq)
                carry.append(rest.copy())
            if torn_reason is not None:
                self._set_tail(carry, carry_start, (seg, good, torn_reason))
                return
        if carry or self.bad_last_header is not None:
            self._set_tail(carry, carry_start, None)

    def _set_tail(self, carry, carry_start, torn) -> None:
        """The cut: from the first record of an unfinished command if there is one, else
        from the torn bytes (or a last segment whose header is incomplete), to the end
        of the journal."""
        n_carry = sum(len(c) for c in carry)
        if carry_start is not None:
            seg, index = carry_start
            offset = seg.header_bytes + index * _RB
            reason = f"unfinished command ({n_carry} record(s) without the end mark of its call)"
            if torn is not None:
                reason += f", then {torn[2]}"
        elif torn is not None:
            seg, good, reason = torn
            offset = seg.header_bytes + good * _RB
        else:
            path, why = self.bad_last_header
            self.tail = TailInfo(path, 0, path.stat().st_size, 0,
                                 f"segment header incomplete ({why})")
            return
        position = next(i for i, s in enumerate(self.segments) if s is seg)
        later = [s.path for s in self.segments[position + 1:]]
        if self.bad_last_header is not None:
            later.append(self.bad_last_header[0])
        total = seg.file_bytes - offset + sum(p.stat().st_size for p in later)
        self.tail = TailInfo(seg.path, offset, total, n_carry, reason, later)

    @staticmethod
    def _damage(data: np.ndarray, i: int, first_seq: int) -> str:
        rec = data.view(R.JOURNAL_RECORD)[i]
        words = data.view(np.uint64)
        if not data[i * _RB:(i + 1) * _RB].any():
            return "zeros"
        if int(rec["crc"]) != int(kj.record_crc(words, i)):
            return "checksum mismatch"
        return f"sequence {int(rec['seq'])} where {first_seq + i} was expected"

    # -------------------------------------------------------------- snapshots
    def snapshot_for(self, until_seq: int | None = None, until_ts: int | None = None,
                     skipped: list | None = None):
        """The newest intact snapshot (covering at most ``until_seq`` / taken no later
        than ``until_ts``) as a decoded ``image.Image``, or None. Damaged ones are
        appended to ``skipped`` as (path, reason) and passed over."""
        from . import image

        for entry in reversed(self.snapshots):
            if until_seq is not None and entry.seq > until_seq:
                continue
            try:
                img = image.decode(np.fromfile(entry.path, dtype=np.uint8), str(entry.path))
            except (JournalCorruptError, OSError, ValueError, KeyError) as exc:
                if skipped is not None:
                    skipped.append((entry.path, str(exc)))
                continue
            if until_ts is not None and img.wall_ns > until_ts:
                continue
            return img
        return None


def directory_size(directory: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(directory) if e.is_file())
