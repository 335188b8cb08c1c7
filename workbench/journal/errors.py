"""What the journal raises and warns.

``JournalError``         the journal cannot go on (a failed write or sync: disk full, I/O
                         error; the writer thread died; used after close). The engine
                         refuses further commands; ``Engine.recover(DIR)`` rebuilds it
                         from what is on disk, which holds every acknowledged command.
``JournalLockedError``   another writer holds the journal's lock file.
``JournalCorruptError``  a file of the journal is damaged where damage cannot be a torn
                         tail (a segment before the last one, a header, a gap in the
                         sequence numbers). Its message names the file and the byte
                         offset; nothing is truncated or skipped silently. It is an
                         ``InputError``, so the command line prints it as one line.
``JournalWarning``       something was passed over and the report says what (a damaged
                         snapshot skipped for an older one).
``JournalTailWarning``   recovery found a torn or incomplete tail (a crash mid-write)
                         and cut it off; the report says what was cut.
"""
from __future__ import annotations

import os

from workbench.errors import InputError

__all__ = ["JournalError", "JournalLockedError", "JournalCorruptError", "JournalWarning",
           "JournalTailWarning"]


class JournalError(RuntimeError):
    """The journal failed or cannot be used as asked."""


class JournalLockedError(JournalError):
    """Two writers on one journal: the second is refused."""


class JournalCorruptError(InputError):
    """A journal file is damaged where damage is not a torn tail."""

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 offset: int | None = None):
        super().__init__(message, path)
        self.offset = offset


class JournalWarning(UserWarning):
    """Recovery passed something over (the report names it)."""


class JournalTailWarning(JournalWarning):
    """A torn or incomplete tail was found (and, when recovering, cut off)."""
