"""Rebuilding an engine from its journal: recovery after a crash, and replay to any moment.

:func:`recover` (``Engine.recover(DIR)``): take the journal's lock, load the newest
intact snapshot, replay the journal tail after it through ``kernels.book.apply_batch``
(the kernel every batch call uses), cut off a torn or unfinished tail (reported as a
``JournalTailWarning`` and in ``engine.recovery``), and continue journaling in a new
segment. The state is bit-identical, array by array, to an engine that ran every
journaled command without interruption: the records hold the commands as applied
(ids and clock times resolved), the engine's pause counter is journaled, and the
Python-side state (next automatic id, fill log) is rebuilt from the records' flags.

:func:`replay` (``journal replay DIR --until ...``): the same rebuild, read-only (no
lock, nothing cut), stopping at a sequence number or a wall time.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kernels import book as kbook
from kernels import book_state
from kernels import journal as kj
from kernels import records as R

from . import files, image
from .errors import JournalCorruptError, JournalTailWarning, JournalWarning
from .reader import JournalReader, TailInfo

__all__ = ["RecoveryReport", "recover", "replay", "replay_records"]


@dataclass
class RecoveryReport:
    """What a recovery (or a replay) did."""

    directory: str
    snapshot_seq: int | None = None          # the snapshot it started from
    snapshots_skipped: list = field(default_factory=list)   # (path, reason): damaged ones
    replayed_records: int = 0
    replayed_events: int = 0
    last_seq: int = 0                         # the state includes sequences up to here
    tail: TailInfo | None = None              # what was cut off (recover) or found (replay)
    truncated: bool = False
    seconds: float = 0.0

    @property
    def tail_intact(self) -> bool:
        return self.tail is None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["tail"] = None if self.tail is None else self.tail.to_dict()
        out["snapshots_skipped"] = [(str(p), r) for p, r in self.snapshots_skipped]
        return out

    def __str__(self) -> str:
        start = (f"snapshot {self.snapshot_seq}" if self.snapshot_seq is not None
                 else "an empty engine")
        text = (f"{self.directory}: from {start}, replayed {self.replayed_records} record(s) "
                f"to sequence {self.last_seq} in {self.seconds:.3f} s")
        if self.tail is not None:
            text += f"; tail {'cut' if self.truncated else 'found'}: {self.tail}"
        return text


def replay_records(engine, recs: np.ndarray, buffers: dict | None = None) -> int:
    """Apply journal records to ``engine`` (no journal attached) exactly as the engine
    applied them: events through ``kernels.book.apply_batch``, the pause counter set to
    the journaled value, the fill log and automatic ids advanced by the records' flags.
    Returns the events applied."""
    from workbench.book import AUTO_ID_END

    n = len(recs)
    if n == 0:
        return 0
    buffers = {} if buffers is None else buffers
    events = buffers.get("events")
    if events is None or len(events) < n:
        events = buffers["events"] = np.empty(max(n, 1024), dtype=R.EVENT)
        buffers["mask"] = np.empty(len(events), dtype=np.bool_)
    mask = buffers["mask"]
    k, pauses, max_id = kj.extract_events(recs, 0, n, events, mask, AUTO_ID_END)
    k = int(k)
    ev = events[:k]
    st = engine.state
    counters = st.counters
    saved_pauses = int(counters[book_state.EC_OUTPUT_FULL])
    want_fills = engine._record_fills and bool(mask[:k].any())
    fills = buffers.get("fills")
    if fills is None:
        fills = buffers["fills"] = np.empty(1 << 16, dtype=R.FILL)
    results = np.empty(k, dtype=R.RESULT) if want_fills else _NO_RESULTS
    start = 0
    while start < k:
        nxt, nf = kbook.apply_batch(st, ev, fills, results, start)
        nxt, nf = int(nxt), int(nf)
        if want_fills and nf:
            per_event = results["n_fills"][start:nxt]
            keep = np.repeat(mask[start:nxt], per_event)
            if keep.any():
                engine._fill_log.append(fills[:nf][keep].copy())
        if nxt >= k:
            break
        if nxt == start and nf == 0:
            fills = buffers["fills"] = np.empty(2 * len(fills), dtype=R.FILL)
        start = nxt
    counters[book_state.EC_OUTPUT_FULL] = saved_pauses + int(pauses)
    if max_id >= engine._next_id:
        engine._next_id = int(max_id) + 1
    return k


_NO_RESULTS = np.zeros(0, dtype=R.RESULT)


def _rebuild(reader: JournalReader, cls, report: RecoveryReport, until_seq=None,
             until_ts=None, progress=None):
    """The engine as of the end of the journal (or ``until``), from the best snapshot."""
    skipped: list = []
    img = reader.snapshot_for(until_seq, until_ts, skipped)
    report.snapshots_skipped = skipped
    for path, reason in skipped:
        warnings.warn(JournalWarning(f"snapshot {path} skipped: {reason}"), stacklevel=4)
    if reader.meta is None and img is None:
        raise JournalCorruptError(f"{reader.directory}: no readable segment header or snapshot",
                                  reader.directory, 0)
    kind = reader.meta["kind"] if reader.meta else img.kind
    settings = reader.meta["settings"] if reader.meta else img.settings
    if img is not None and (img.kind != kind or img.settings != settings):
        raise JournalCorruptError(f"{reader.directory}: snapshot {img.seq} was taken of another "
                                  f"engine ({img.kind}) than the journal's ({kind})",
                                  reader.directory, None)
    source = f"{reader.directory}"
    if img is not None:
        engine = image.restore(img, cls, source)
        report.snapshot_seq = img.seq
        start = img.seq + 1
    else:
        engine = image.build_engine(kind if cls is None else cls.__name__, settings)
        start = 1
    report.last_seq = start - 1
    buffers: dict = {}
    for recs in reader.records(start, until_seq, until_ts):
        report.replayed_events += replay_records(engine, recs, buffers)
        report.replayed_records += len(recs)
        report.last_seq = int(recs["seq"][-1])
        if progress is not None:
            progress(len(recs))
    report.tail = reader.tail
    return engine


def replay(directory, until_seq: int | None = None, until_ts: int | None = None, cls=None,
           progress=None):
    """The engine as it was after sequence ``until_seq`` / at wall time ``until_ts`` (ns;
    records journaled later are left out), or at the end. Read-only: no lock, nothing
    cut (a torn tail is reported in the report's ``tail``). Returns (engine, report)."""
    start = time.perf_counter()
    reader = JournalReader(directory)
    report = RecoveryReport(str(reader.directory))
    engine = _rebuild(reader, cls, report, until_seq, until_ts, progress)
    report.seconds = time.perf_counter() - start
    return engine, report


def recover(cls, directory, durability: str | None = None, snapshot_every: int | None = None,
            journal_options: dict | None = None, progress=None, keep_until: int | None = None):
    """``cls.recover(directory)``: rebuild the engine from its journal and continue the
    journal (see the module docstring). ``durability``, ``snapshot_every`` and each of
    ``journal_options`` default to what the journal was last opened with.

    ``keep_until``: the last sequence number to keep; every record after it is cut off
    like a torn tail (and snapshots covering them are deleted). For an application
    that acknowledges in its own units (the FIX acceptor: an ExecutionReport goes out
    only after its transaction's commit record is durable), the records after its last
    commit were never acknowledged to anyone."""
    from .writer import attach

    start = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(2, "no such journal directory", str(directory))
    lock = files.DirLock(directory)
    try:
        files.remove_stale_temps(directory)  # left by writers that died mid-rename
        reader = JournalReader(directory)
        report = RecoveryReport(str(directory))
        if keep_until is not None:
            _drop_snapshots_after(reader, int(keep_until))
        engine = _rebuild(reader, cls, report, until_seq=keep_until, progress=progress)
        if keep_until is not None:
            if report.last_seq != keep_until:
                raise JournalCorruptError(
                    f"{directory}: keep_until={keep_until} but the journal's intact records "
                    f"end at {report.last_seq}", directory, None)
            report.tail = _tail_after(reader, int(keep_until))
        if report.tail is not None:
            _cut(report.tail, durable=True)
            report.truncated = True
            warnings.warn(JournalTailWarning(f"journal {directory}: cut off {report.tail}"),
                          stacklevel=3)
        # by default the journal continues with the settings it was last opened with
        last = reader.headers[-1].meta if reader.headers else {}
        policy = durability or last.get("durability", "every")
        options = {**last.get("journal_options", {}), **dict(journal_options or {})}
        if snapshot_every is None:
            snapshot_every = last.get("snapshot_every")
    except BaseException:
        lock.release()
        raise
    # continues in a new segment (it replaces an empty last one of the same sequence)
    attach(engine, directory, policy, snapshot_every, options,
           first_seq=report.last_seq + 1, lock=lock)
    report.seconds = time.perf_counter() - start
    engine.recovery = report
    return engine


def _drop_snapshots_after(reader: JournalReader, seq: int) -> None:
    """Delete the snapshots covering records after ``seq`` (they are about to be cut)."""
    keep = [s for s in reader.snapshots if s.seq <= seq]
    for entry in reader.snapshots:
        if entry.seq > seq:
            entry.path.unlink(missing_ok=True)
    if len(keep) != len(reader.snapshots):
        files.fsync_dir(reader.directory)
    reader.snapshots = keep


def _tail_after(reader: JournalReader, seq: int) -> TailInfo | None:
    """Everything after sequence ``seq`` as a tail to cut (None when nothing follows)."""
    segments = reader.segments
    position = next((k for k in range(len(segments) - 1, -1, -1)
                     if segments[k].first_seq <= seq + 1), None)
    if position is None:
        return None
    seg = segments[position]
    offset = seg.header_bytes + (seq + 1 - seg.first_seq) * files.RECORD_BYTES
    later = [s.path for s in segments[position + 1:]]
    if reader.bad_last_header is not None:
        later.append(reader.bad_last_header[0])
    size = seg.path.stat().st_size
    total = max(0, size - offset) + sum(p.stat().st_size for p in later)
    if total == 0:
        return None
    offset = min(offset, size)
    records = max(0, (size - offset) // files.RECORD_BYTES) + sum(
        max(0, (p.stat().st_size - s.header_bytes) // files.RECORD_BYTES)
        for p, s in zip(later, segments[position + 1:]))
    return TailInfo(seg.path, offset, total, records,
                    "records after the application's last commit (never acknowledged)", later)


def _cut(tail: TailInfo, durable: bool) -> None:
    """Remove a torn or unfinished tail: truncate its segment, delete later files."""
    fd = os.open(tail.segment, os.O_WRONLY)
    try:
        os.ftruncate(fd, tail.offset)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    for path in tail.later_segments:
        Path(path).unlink(missing_ok=True)
    if durable:
        files.fsync_dir(Path(tail.segment).parent)
