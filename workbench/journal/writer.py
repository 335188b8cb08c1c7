"""``Journal``: one engine's write-ahead journal, being written.

An engine built with ``journal="DIR"`` (or rebuilt by ``Engine.recover("DIR")``) owns one
``Journal``. The engine's thread stays the only producer: each mutating call applies
its command through the book kernels, then copies the record(s) into the journal's
ring (``kernels.journal.push_one`` / ``push_events``: a copy and a release store) and,
by the durability policy, waits for the writer. The writer is a daemon thread that
calls ``kernels.journal.writer_run`` once: the loop that writes and syncs runs without
the GIL, and returns to Python only to open the next segment, or to stop or fail.

Durability (``durability=``):

``"every"``  a command is acknowledged (its call returns) only after the sync that
             covers it; the writer syncs as soon as it has drained the ring, so commands
             arriving during a sync share the next one. A batch call (``submit_many``,
             ``apply``) is one command: one sync covers the batch.
``"batch"``  group commit: the writer syncs when ``batch_records`` records are unsynced
             or the oldest unsynced one is ``batch_us`` old; a call still returns only
             after the sync that covers it, so a lone caller waits up to ``batch_us``.
             It pays off with many commands per wait (batch calls, ``deferred()``).
``"none"``   records are written (to the OS page cache: they survive a crash of the
             process, not of the machine) and never synced; calls do not wait.

In ``"every"`` and ``"batch"`` nothing acknowledged is ever lost. ``deferred()``
acknowledges a whole block of calls at once (one wait at its end): the FIX acceptor
sends its ExecutionReports after it. A failed write or sync (disk full, I/O error) is
final: the journal raises ``JournalError`` from then on and the engine refuses
commands; ``Engine.recover(DIR)`` rebuilds it from disk with every acknowledged command.

Snapshots: ``snapshot()`` copies the engine's image (``workbench.journal.image``) in the
caller's thread and writes it in the background (temp file, fsync, rename, directory
fsync) once the journal covers its sequence number; ``snapshot_every=N`` takes one every
N records. The newest ``keep_snapshots`` are kept; older ones and every segment whose
records they all cover are deleted.
"""
from __future__ import annotations

import concurrent.futures as cf
import errno
import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from kernels import aligned
from kernels import book as kbook
from kernels import book_state
from kernels import journal as kj
from kernels import records as R

from . import files, image
from .errors import JournalError

__all__ = ["Journal", "SnapshotInfo", "DURABILITY", "DEFAULTS", "attach", "journal_options"]

DURABILITY = {"none": kj.POLICY_NONE, "batch": kj.POLICY_BATCH, "every": kj.POLICY_EVERY}
DEFAULTS = {
    "batch_records": 16_384,       # "batch": sync at most every this many records ...
    "batch_us": 1_000,             # ... or when the oldest unsynced one is this old (us)
    "segment_bytes": 64 << 20,     # a new segment file past this size
    "ring_records": 1 << 16,       # ring slots (64 bytes each)
    "keep_snapshots": 2,           # snapshots kept (older ones and their segments pruned)
}
_CHUNK = 8_192          # events per batch-kernel call when journaling (the writer overlaps)
_WAIT_SLICE_NS = 100_000_000
_NO_SNAPSHOT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot on disk: the last journal sequence number it covers."""

    seq: int
    path: Path
    bytes: int
    seconds: float


def journal_options(durability, snapshot_every, options) -> dict:
    """Validated journal settings (``ValueError`` naming the field)."""
    if durability not in DURABILITY:
        raise ValueError(f"durability={durability!r} must be one of {sorted(DURABILITY)}")
    out = dict(DEFAULTS)
    for key, value in dict(options or {}).items():
        if key not in DEFAULTS:
            raise ValueError(f"journal_options: unknown option {key!r} (known: {sorted(DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"journal_options[{key!r}]={value!r} must be a positive integer")
        out[key] = int(value)
    if out["ring_records"] & (out["ring_records"] - 1) or out["ring_records"] < 64:
        raise ValueError(f"journal_options['ring_records']={out['ring_records']} must be a "
                         f"power of two >= 64")
    if out["segment_bytes"] < 4096:
        raise ValueError(f"journal_options['segment_bytes']={out['segment_bytes']} must be at "
                         f"least 4096")
    if snapshot_every is not None:
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, (int, np.integer)) \
                or snapshot_every < 1:
            raise ValueError(f"snapshot_every={snapshot_every!r} must be a positive integer "
                             f"(records) or None")
        snapshot_every = int(snapshot_every)
    out["snapshot_every"] = snapshot_every
    out["durability"] = durability
    return out


def _entry_point(dispatcher, args):
    """The compiled function behind a kernel for these argument types (skips Numba's
    dispatcher; what ``workbench.book`` does for ``apply_one``)."""
    dispatcher(*args)
    try:
        return dispatcher.overloads[tuple(numba.typeof(a) for a in args)].entry_point
    except (KeyError, AttributeError):
        return dispatcher


class Journal:
    """The open journal of one engine (see the module docstring). Made by :func:`attach`
    (a new journal) or by ``workbench.journal.recover`` (continuing one)."""

    def __init__(self, engine, directory: Path, settings: dict, lock: files.DirLock,
                 first_seq: int):
        self.directory = Path(directory)
        self.durability = settings["durability"]
        self.kind = type(engine).__name__
        self._settings = settings
        self._policy = DURABILITY[self.durability]
        self._lock = lock
        self._engine = weakref.ref(engine)
        self._meta = {
            "kind": self.kind, "settings": engine._settings(), "durability": self.durability,
            "record": {"bytes": files.RECORD_BYTES, "dtype": files.record_descr()},
            "state_fields": list(engine.state._fields),
            "journal_options": {k: settings[k] for k in DEFAULTS},
            "snapshot_every": settings["snapshot_every"],
        }
        self._failure: str | None = None
        self._closed = False
        self._deferred = 0
        self._fd = -1
        self._segment_lock = threading.Lock()
        self._snap_pool = cf.ThreadPoolExecutor(1, thread_name_prefix="journal-snapshot")
        self._snap_future: cf.Future | None = None
        self._last_snapshot: SnapshotInfo | None = None
        self.record_fills = bool(engine._record_fills)

        cap = settings["ring_records"]
        self._j = aligned.zeros(kj.N_JCTX, np.int64)
        self._slots = aligned.zeros(cap, R.JOURNAL_RECORD)
        j = self._j
        j[kj.J_MAGIC] = kj.JOURNAL_MAGIC
        j[kj.J_POLICY] = self._policy
        j[kj.J_BATCH_RECORDS] = settings["batch_records"]
        j[kj.J_BATCH_NS] = settings["batch_us"] * 1000
        j[kj.J_CAPACITY] = cap
        j[kj.J_SLOTS_ADDR] = self._slots.ctypes.data
        j[kj.J_SEQ0] = first_seq - 1
        j[kj.J_PUBLISHED] = j[kj.J_CONSUMED] = j[kj.J_WRITTEN] = j[kj.J_DURABLE] = first_seq - 1
        j[kj.J_CACHED_CONSUMED] = first_seq - 1
        self._counters = engine.state.counters  # kept alive: the kernels read it by address
        j[kj.J_CLOCK_ADDR] = self._counters.ctypes.data + 8 * book_state.EC_EVENTS
        j[kj.J_PAUSE_ADDR] = self._counters.ctypes.data + 8 * book_state.EC_OUTPUT_FULL
        j[kj.J_PAUSE_SEEN] = self._counters[book_state.EC_OUTPUT_FULL]
        self._waits = self._policy != kj.POLICY_NONE
        j[kj.J_ACK_WAIT] = 1 if self._waits else 0
        self._snapshot_every = settings["snapshot_every"]
        j[kj.J_SNAP_AT] = (first_seq - 1 + self._snapshot_every if self._snapshot_every
                           else _NO_SNAPSHOT)
        self._jaddr = int(j.ctypes.data)

        self._open_segment(first_seq)
        # warmed with an output-full answer and no pause: it journals nothing
        self._push_one = _entry_point(kj.push_one, (self._jaddr, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                    R.ST_REJECTED | R.R_OUTPUT_FULL << 8, 0))
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(engine, Journal._finalize, weakref.ref(self))

    # ------------------------------------------------------------------ properties
    @property
    def last_seq(self) -> int:
        """Sequence number of the last record journaled (published to the writer)."""
        return int(self._j[kj.J_PUBLISHED])

    @property
    def durable_seq(self) -> int:
        """Last sequence number on disk under the policy (written, for ``"none"``)."""
        return int(self._j[kj.J_DURABLE])

    @property
    def written_seq(self) -> int:
        return int(self._j[kj.J_WRITTEN])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failure(self) -> str | None:
        """Why the journal failed (None while healthy)."""
        return self._failure

    def stats(self) -> dict:
        j = self._j
        syncs = int(j[kj.J_FSYNCS])
        return {
            "durability": self.durability, "last_seq": self.last_seq,
            "written_seq": self.written_seq, "durable_seq": self.durable_seq,
            "syncs": syncs, "writes": int(j[kj.J_WRITES]), "bytes": int(j[kj.J_BYTES]),
            "sync_mean_us": (int(j[kj.J_FSYNC_NS]) / syncs / 1e3) if syncs else 0.0,
            "sync_max_us": int(j[kj.J_FSYNC_MAX_NS]) / 1e3,
            "writer_sleeps": int(j[kj.J_SLEEPS]),
            "records_per_sync": (self.durable_seq - int(j[kj.J_SEQ0])) / syncs if syncs else 0.0,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("FAILED" if self._failure else "open")
        return (f"Journal({str(self.directory)!r}, durability={self.durability!r}, {state}, "
                f"last_seq={self.last_seq}, durable_seq={self.durable_seq})")

    # ------------------------------------------------------------------- segments
    def _open_segment(self, first_seq: int) -> None:
        """Create the segment starting at ``first_seq`` atomically (header in a temp file,
        synced, renamed; it may replace an empty leftover of the same name) and make it
        the writer's file."""
        path = self.directory / files.segment_name(first_seq)
        header = files.encode_header(first_seq, self._meta)
        if path.exists():
            old = files.read_header(path)
            if path.stat().st_size > old.header_bytes:
                raise JournalError(f"{path} already holds records; refusing to overwrite it")
        sync = self._policy != kj.POLICY_NONE
        files.atomic_write(path, [header], sync=sync)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        room = (self._settings["segment_bytes"] - len(header)) // files.RECORD_BYTES
        with self._segment_lock:
            old_fd, self._fd = self._fd, fd
            self._j[kj.J_FD] = fd
            self._j[kj.J_SEG_ROOM] = max(1, room)
        if old_fd >= 0:
            os.close(old_fd)

    def _run(self) -> None:
        """The writer thread: the kernel loop, and the segment files between its runs."""
        try:
            while True:
                rc = kj.writer_run(self._jaddr)
                if rc == kj.W_ROTATE:
                    self._open_segment(int(self._j[kj.J_CONSUMED]) + 1)
                    continue
                if rc == kj.W_FAILED:
                    self._set_failure()
                return
        except BaseException as exc:  # noqa: BLE001  (reported to every caller instead)
            err = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
            kj.mark_failed(self._jaddr, kj.OP_WRITE, err, int(self._j[kj.J_WRITTEN]) + 1)
            self._set_failure(f"{type(exc).__name__}: {exc}")

    def _set_failure(self, detail: str | None = None) -> None:
        j = self._j
        err = int(j[kj.J_FAILED])
        op = {kj.OP_WRITE: "write", kj.OP_SYNC: "sync"}.get(int(j[kj.J_FAILED_OP]), "write")
        if detail is None:
            detail = f"[Errno {err}] {os.strerror(err)}"
        self._failure = (
            f"journal {self.directory}: {op} failed at sequence {int(j[kj.J_FAILED_SEQ])} "
            f"({detail}); sequences up to {self.durable_seq} are durable. The engine refuses "
            f"further commands: rebuild it with {self.kind}.recover({str(self.directory)!r})")

    def _raise(self, applied: bool = False):
        if self._closed and self._failure is None:
            raise JournalError(f"journal {self.directory} is closed: the engine takes no more "
                               f"commands (reopen it with {self.kind}.recover(...))")
        if self._failure is None:
            self._set_failure()
        note = (" (this command was applied in memory but is not durable)" if applied else "")
        raise JournalError(self._failure + note)

    # ---------------------------------------------------------------- the hot path
    def wrap_apply_one(self, raw):
        """``raw`` (the engine's compiled ``apply_one``), journaled: same signature."""
        push = self._push_one
        jaddr = self._jaddr
        flags = R.JF_LOG_FILLS if self.record_fills else 0
        journal = self

        def apply_one(ctx, ts, order_id, price, qty, book, kind, side, order_type, tif):
            if journal._failure is not None or journal._closed:
                journal._raise()
            code, filled, leaves = raw(ctx, ts, order_id, price, qty, book, kind, side,
                                       order_type, tif)
            r = push(jaddr, ts, order_id, price, qty, book, kind, side, order_type, tif, code,
                     flags)
            if r:
                journal._after(r)
            return code, filled, leaves

        return apply_one

    def apply_batch(self, st, events, fills, results, start, logged):
        """``kernels.book.apply_batch`` journaled (the engine's ``_apply_batch`` hook):
        applies in chunks so the writer overlaps, journals exactly the applied events,
        the last one marking the end of the call; ``logged``: the call keeps its fills in
        the fill log."""
        if self._failure is not None or self._closed:
            self._raise()
        n = len(events)
        if not 0 <= start <= n:
            return kbook.apply_batch(st, events, fills, results, start)
        flags = R.JF_LOG_FILLS if (logged and self.record_fills) else 0
        wait = int(self._j[kj.J_ACK_WAIT])
        i = start
        total = 0
        while True:
            end = min(i + _CHUNK, n)
            nxt, nf = kbook.apply_batch(st, events[:end] if end < n else events,
                                        fills[total:] if total else fills, results, i)
            nxt, nf = int(nxt), int(nf)
            total += nf
            last = nxt < end or end >= n
            # A call that applied nothing (paused at ``start``) is not over: submit_many
            # retries it with a larger buffer, apply() undoes the pause (sync_pauses);
            # that record carries the end mark.
            ends = last and nxt > start
            r = kj.push_events(self._jaddr, events, i, nxt, flags, ends, wait if ends else 0)
            if r:
                self._after(r, applied=True)
            if last:
                return nxt, total
            i = end

    def sync_pauses(self) -> None:
        """Journal a change of the engine's pause counter made outside a kernel call."""
        if self._failure is not None or self._closed:
            return
        r = kj.sync_pauses(self._jaddr, int(self._j[kj.J_ACK_WAIT]))
        if r:
            self._after(r)

    def append(self, code: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0, e: int = 0,
               wait: bool | None = None) -> int:
        """Journal an application record (``kernels.records.JR_APP``): ``code`` (0..127,
        the application's own record type) and up to five integers (``a``..``d`` int64,
        ``e`` int32), e.g. the FIX acceptor's session sequence numbers or order
        ownership. Replay skips these records; ``JournalReader.records()`` yields them in
        order with everything else. Waits for durability like an engine call (``wait``
        overrides). Returns its sequence number."""
        if self._failure is not None or self._closed:
            self._raise(applied=False)
        if isinstance(code, bool) or not isinstance(code, (int, np.integer)) \
                or not 0 <= code <= 127:
            raise ValueError(f"code={code!r} must be an integer in 0..127")
        values = []
        for name, value, bits in (("a", a, 64), ("b", b, 64), ("c", c, 64), ("d", d, 64),
                                  ("e", e, 32)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise ValueError(f"{name}={value!r} must be an int{bits}")
            values.append(int(value))
        waits = int(self._j[kj.J_ACK_WAIT]) if wait is None else int(bool(wait) and self._waits)
        r = kj.push_app(self._jaddr, int(code), *values, waits)
        seq = self.last_seq
        if r:
            self._after(r, applied=False)
        return seq

    def _after(self, r: int, applied: bool = True) -> None:
        if r < 0:
            self._raise(applied)
        if r & kj.PUSH_WAIT:
            self.wait()
        if r & kj.PUSH_SNAPSHOT:
            self._auto_snapshot()

    # ------------------------------------------------------------ acknowledgements
    def wait(self, seq: int | None = None, timeout: float | None = None) -> int:
        """Block (GIL released) until ``seq`` (default: the last record) is durable under
        the policy; returns the durable sequence number. ``JournalError`` if the journal
        failed, ``TimeoutError`` after ``timeout`` seconds."""
        target = self.last_seq if seq is None else int(seq)
        if target > self.last_seq:
            raise ValueError(f"seq={seq} was never journaled (last: {self.last_seq})")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = kj.wait_durable(self._jaddr, target, _WAIT_SLICE_NS)
            if r == 0:
                return self.durable_seq
            if r < 0:
                self._raise()
            if not self._thread.is_alive() and self.durable_seq < target:
                self._raise()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"journal {self.directory}: sequence {target} not durable "
                                   f"after {timeout} s (durable: {self.durable_seq})")

    @contextmanager
    def deferred(self, wait: bool = True):
        """Calls inside the block return without waiting for their sync; the block's end
        waits once for all of them (group commit by the caller). Nothing in the block is
        acknowledged before it ends. ``wait=False``: the block's end does not wait either;
        the caller acknowledges by ``wait(seq)`` itself (the FIX acceptor does, off its
        event loop, before an ExecutionReport goes out)."""
        self._deferred += 1
        self._j[kj.J_ACK_WAIT] = 0
        try:
            yield self
        finally:
            self._deferred -= 1
            if self._deferred == 0:
                self._j[kj.J_ACK_WAIT] = 1 if self._waits else 0
        if wait and self._deferred == 0 and self._waits and not self._closed:
            self.wait()

    # ------------------------------------------------------------------- snapshots
    def snapshot(self, engine, wait: bool = True, extra: dict | None = None):
        """Write the engine's image covering every record so far. The copy is taken now;
        the file is written in the background. Returns the ``SnapshotInfo`` (``wait``) or
        a ``concurrent.futures.Future`` of it. ``extra``: JSON values stored with the
        image (``Image.extra``), taken at the same sequence number - an application's
        own state (the FIX acceptor's sessions), so pruning never loses its records."""
        if self._failure is not None or self._closed:
            self._raise()
        self.sync_pauses()
        seq = self.last_seq
        wall = 0
        if seq > int(self._j[kj.J_SEQ0]):
            slot = (seq - int(self._j[kj.J_SEQ0]) - 1) & (len(self._slots) - 1)
            wall = int(self._slots[slot]["wall_ns"])
        img = image.capture(engine, seq, wall)
        if extra:
            img.extra = dict(extra)
        if self._snapshot_every:
            self._j[kj.J_SNAP_AT] = seq + self._snapshot_every
        future = self._snap_pool.submit(self._write_snapshot, img)
        self._snap_future = future
        return future.result() if wait else future

    def _auto_snapshot(self) -> None:
        self._j[kj.J_SNAP_AT] = self.last_seq + self._snapshot_every
        if self._snap_future is not None and not self._snap_future.done():
            return  # one in flight: the next trigger takes the next one
        engine = self._engine()
        if engine is not None:
            self.snapshot(engine, wait=False)

    def _write_snapshot(self, img: image.Image) -> SnapshotInfo:
        start = time.perf_counter()
        self.wait(img.seq)  # the journal never lags a snapshot
        path = self.directory / files.snapshot_name(img.seq)
        if not path.exists():
            files.atomic_write(path, image.encode(img))
        info = SnapshotInfo(img.seq, path, path.stat().st_size, time.perf_counter() - start)
        self._last_snapshot = info
        self._prune()
        return info

    @property
    def last_snapshot(self) -> SnapshotInfo | None:
        """The newest snapshot this journal wrote (None yet)."""
        return self._last_snapshot

    def snapshot_done(self, timeout: float | None = None) -> SnapshotInfo | None:
        """Wait for the snapshot in flight (an automatic one, or ``wait=False``), if any;
        returns the newest snapshot written."""
        if self._snap_future is not None:
            self._snap_future.result(timeout)
        return self._last_snapshot

    def _prune(self) -> None:
        """Delete snapshots beyond ``keep_snapshots`` and the segments they all cover."""
        snapshots = files.list_snapshots(self.directory)
        keep = snapshots[-self._settings["keep_snapshots"]:]
        removed = False
        for _, path in snapshots[:-len(keep)] if keep else []:
            path.unlink(missing_ok=True)
            removed = True
        if keep:
            covered = keep[0][0]
            with self._segment_lock:
                segments = files.list_segments(self.directory)
                for (first, path), (next_first, _) in zip(segments, segments[1:]):
                    if next_first - 1 <= covered:
                        path.unlink(missing_ok=True)
                        removed = True
        if removed:
            files.fsync_dir(self.directory)

    # ---------------------------------------------------------------------- close
    def close(self) -> None:
        """Write and sync everything journaled, finish pending snapshots, stop the writer,
        release the lock. The engine takes no more commands afterwards."""
        if self._closed:
            return
        try:
            if self._failure is None:
                self.sync_pauses()
            if self._snap_future is not None:
                try:
                    self._snap_future.result()
                except JournalError:
                    pass
        finally:
            self._closed = True
            self._snap_pool.shutdown(wait=True)
            self._j[kj.J_STOP] = 1
            kj.wake_writer(self._jaddr)
            self._thread.join()
            with self._segment_lock:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
            self._lock.release()
            self._finalizer.detach()
        if self._failure is not None:
            self._raise()

    @staticmethod
    def _finalize(ref) -> None:
        journal = ref()
        if journal is not None and not journal._closed:
            try:
                journal.close()
            except JournalError:
                pass


def attach(engine, directory, durability: str = "every", snapshot_every: int | None = None,
           options: dict | None = None, *, first_seq: int = 1, lock=None) -> Journal:
    """Give ``engine`` a journal in ``directory`` (created if missing; it must not hold a
    journal already: use ``Engine.recover``). ``first_seq``/``lock``: continuing a
    recovered journal."""
    settings = journal_options(durability, snapshot_every, options)
    directory = Path(directory)
    if lock is None:
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"journal={str(directory)!r} is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        lock = files.DirLock(directory)
        try:
            existing = files.list_segments(directory)
            if existing:
                raise JournalError(
                    f"journal {directory} already holds a journal ({len(existing)} segment(s), "
                    f"from sequence {existing[0][0]}); continue it with "
                    f"{type(engine).__name__}.recover({str(directory)!r}) or use a new directory")
        except BaseException:
            lock.release()
            raise
    try:
        journal = Journal(engine, directory, settings, lock, first_seq)
    except BaseException:
        lock.release()
        raise
    engine._journal = journal
    engine._apply_one = journal.wrap_apply_one(engine._apply_one)
    engine._route_through_apply_one()   # every single order is journaled by the hook
    engine._apply_batch = journal.apply_batch
    return journal
