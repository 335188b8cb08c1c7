"""Errors a user can fix: bad input, reported in one line instead of a traceback.

:class:`InputError` is the workbench's known error class for bad input: a file that is
empty, truncated, not numeric where numbers belong, wrongly shaped or in the wrong
format, or an option out of range. Its message names the input (a file path or an
option) and the problem, in one line. It subclasses ``ValueError``, so code that catches
``ValueError`` (and the library's convention that bad arguments are ``ValueError``) is
unchanged.

The command line (:func:`workbench.cli.main`) turns it into ``error: <message>`` on
stderr and exit code 2; anything else that escapes a command is a bug and keeps its
traceback (the full rule is :func:`workbench.cli.input_error_message`).
"""
from __future__ import annotations

import os

__all__ = ["InputError", "file_error"]


class InputError(ValueError):
    """Bad input; the message names the file or option and says what is wrong with it."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = None if path is None else str(path)


def file_error(path: str | os.PathLike, problem: str) -> InputError:
    """``InputError("<path>: <problem>")`` with ``.path`` set."""
    return InputError(f"{path}: {problem}", path=path)
