"""The durable engine: a write-ahead journal, snapshots, crash recovery, replay to any moment.

Using it (everything goes through the engine)::

    eng = Engine(["AAPL", "MSFT"], journal="/data/j1", durability="every")
    eng.submit("AAPL", Side.BUY, 185.25, 100)     # returns once the command is on disk
    eng.snapshot()                                 # image of the state, written atomically
    eng.close()                                    # or `with Engine(...) as eng:`

    eng = Engine.recover("/data/j1")               # after a crash: the same engine
    eng.recovery                                   # RecoveryReport: snapshot, records, tail

    blob = eng.to_bytes(); Engine.from_bytes(blob) # an image in memory (pickle uses it)

Durability policies (``durability=``; details in ``workbench.journal.writer``):
``"every"`` a command is acknowledged (its call returns) after the sync that covers it;
``"batch"`` group commit (a sync every ``batch_records`` records or ``batch_us``
microseconds; the call still returns after its sync); ``"none"`` written, never synced.
``with eng.journal.deferred(): ...`` acknowledges a block of calls with one wait.

What is journaled: every command that reaches the book kernels, from every mutating
entry point (``submit``, ``cancel``, ``modify``, ``execute``, ``submit_many``,
``apply``), as applied (automatic ids and logical-clock times resolved; rejected
commands too, since they move the engine's counters), one 64-byte
``kernels.records.JOURNAL_RECORD`` each, with a sequence number, a wall time and a
CRC32C. The engine's thread only copies records into a ring; a writer thread whose
loop holds no GIL (``kernels.journal.writer_run``) writes and syncs them. The last
record of each call carries an end mark, so recovery never applies half a call.

Modules:

``writer``    ``Journal`` (the open journal of one engine), ``attach``, ``SnapshotInfo``
``reader``    ``JournalReader``: segments checked record by record; torn vs. corrupt
``recovery``  ``recover``, ``replay``, ``RecoveryReport``
``image``     an engine's image (settings, state arrays, Python state) as bytes
``files``     the directory layout, segment headers, the writer lock, atomic writes
``audit``     ``inspect`` (what a journal holds) and ``export`` (a polars frame / parquet)
``crashcheck`` the SIGKILL crash harness the tests and ``bench journal`` run
``errors``    ``JournalError``, ``JournalLockedError``, ``JournalCorruptError``,
              ``JournalWarning``, ``JournalTailWarning``

API for integrations (the FIX acceptor): ``engine.journal`` is the ``Journal``;
``journal.last_seq`` / ``durable_seq``, ``journal.wait(seq)`` (GIL released),
``journal.deferred()`` (one acknowledgement for a block of calls), ``journal.stats()``;
``journal.append(code, a, b, c, d, e)`` journals an application record (``JR_APP``:
session sequence numbers, order ownership, ...) in the same sequence as the engine's
commands, skipped by replay; ``JournalReader(dir).records()`` yields every intact
record in order (filter ``rtype == JR_APP``) for whatever must be rebuilt from it.
"""
from __future__ import annotations

from .errors import (
    JournalCorruptError, JournalError, JournalLockedError, JournalTailWarning, JournalWarning,
)
from .reader import JournalReader, TailInfo
from .recovery import RecoveryReport, recover, replay, replay_records
from .writer import DURABILITY, Journal, SnapshotInfo, attach

__all__ = [
    "Journal", "SnapshotInfo", "DURABILITY", "attach", "JournalReader", "TailInfo",
    "RecoveryReport", "recover", "replay", "replay_records", "JournalError",
    "JournalLockedError", "JournalCorruptError", "JournalWarning", "JournalTailWarning",
    "inspect", "export",
    "export_frame", "to_bytes", "from_bytes",
]


def inspect(directory) -> dict:
    """What a journal holds: records, sequence and time ranges, segments, snapshots,
    whether its tail is intact (``workbench.journal.audit.inspect``)."""
    from .audit import inspect as _inspect

    return _inspect(directory)


def export_frame(directory, until_seq: int | None = None, until_ts: int | None = None):
    """The journal's commands as a polars frame (names, prices as prices)."""
    from .audit import export_frame as _export_frame

    return _export_frame(directory, until_seq, until_ts)


def export(directory, out, until_seq: int | None = None, until_ts: int | None = None):
    """Write :func:`export_frame` to a parquet file; returns the frame."""
    from .audit import export as _export

    return _export(directory, out, until_seq, until_ts)


def to_bytes(engine) -> bytes:
    """The engine's image as bytes (``Engine.to_bytes``)."""
    from . import image

    return b"".join(image.encode(image.capture(engine)))


def from_bytes(data, cls=None):
    """The engine an image describes (``Engine.from_bytes``); ``cls`` forces the class."""
    from . import image

    return image.restore(image.decode(data), cls)
