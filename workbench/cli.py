"""The command line (``python -m workbench <command>``).

Commands are discovered, not listed: every module in ``workbench.commands`` defines
``register(subparsers)`` and adds its own sub-command with a handler
(``parser.set_defaults(handler=...)``). Command modules import their heavy
dependencies inside the handler so ``--help`` stays instant.

Errors: bad input ends a command with **one line on stderr** (``error: <file or option>:
<problem>``) and exit code 2, never a traceback. This is decided here, in one place
(:func:`input_error_message`), for every command; a command only has to raise. Argument
syntax errors (argparse's) are one line too. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import linecache
import pkgutil
import sys
from pathlib import Path

import workbench.commands as _commands
from workbench.errors import InputError

_PACKAGE = Path(__file__).resolve().parent
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (and still exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m workbench",
        description="hft-workbench: Numba matching engine, data, benchmarks and demos.",
    )
    parser.add_argument(
        "--mode", choices=("safe", "lab"), default=None, dest="process_mode",
        help="safety mode for this command (workbench.modes): 'safe' = ProductionSafe, the "
             "default (bounds-checked kernels, validation, durable journals); 'lab' = "
             "LabUnsafe, the unchecked fast path (sets WORKBENCH_MODE for the command and "
             "the processes it starts)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def _raised_by_workbench(exc: BaseException) -> bool:
    """True when ``exc`` comes from a ``raise`` statement in the workbench package: the
    library's argument validation (``raise ValueError(f"x={x!r} must be ...")``), as
    opposed to a ValueError out of numpy/polars internals or a failed unpacking (bugs)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = Path(tb.tb_frame.f_code.co_filename).resolve()
    if _PACKAGE not in filename.parents:
        return False
    return linecache.getline(str(filename), tb.tb_lineno).lstrip().startswith("raise ")


def input_error_message(exc: BaseException) -> str | None:
    """The one-line message for a known input error, or None when ``exc`` is a bug.

    Known: :class:`workbench.errors.InputError` (loaders and commands raise it, naming
    the file or option); a missing, unreadable or wrong-kind path (``FileNotFoundError``,
    ``IsADirectoryError``, ``NotADirectoryError``, ``PermissionError``); and a
    ``ValueError`` raised by the workbench's own argument validation.
    """
    if isinstance(exc, InputError):
        text = str(exc)
    elif isinstance(exc, _FILE_ERRORS):
        text = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    elif isinstance(exc, ValueError) and _raised_by_workbench(exc):
        text = str(exc)
    else:
        return None
    return " ".join(text.split()) or type(exc).__name__


def _set_mode(name: str) -> dict | None:
    """Put ``--mode`` in the environment (the kernels pick their build from it when first
    imported, and child processes inherit it). Returns the variables it replaced, for
    :func:`_restore_env` once the command is done (``main`` called inside a running
    program leaves the environment as it found it); None, changing nothing, when
    ``kernels`` is already loaded with the other build."""
    import os

    previous = {k: os.environ.get(k) for k in ("WORKBENCH_MODE", "WORKBENCH_SAFE")}
    os.environ["WORKBENCH_MODE"] = name
    os.environ.pop("WORKBENCH_SAFE", None)  # the mode decides the build
    jit = sys.modules.get("kernels.jit")
    if jit is None or jit.SAFE_MODE == jit.safe_mode_enabled():
        return previous
    _restore_env(previous)   # refused: leave the environment as it was
    return None


def _restore_env(previous: dict) -> None:
    import os

    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _global_mode(argv: list[str]) -> str | None:
    """The global ``--mode`` (the options before the command), read before the parser is
    built: building it imports the registries, hence ``kernels``, whose build the mode
    decides."""
    for i, token in enumerate(argv):
        if token == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--mode="):
            return token.split("=", 1)[1]
        if not token.startswith("-"):
            return None   # the command: its own options are its own
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    wanted = _global_mode(argv)
    previous = None
    if wanted in ("safe", "lab"):
        previous = _set_mode(wanted)
        if previous is None:
            print(f"error: --mode {wanted}: this process already loaded the other build of "
                  f"the kernels; set WORKBENCH_MODE={wanted} before Python starts",
                  file=sys.stderr)
            return 2
    try:
        return _run(argv)
    finally:
        if previous is not None:
            _restore_env(previous)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except Exception as exc:
        message = input_error_message(exc)
        if message is None:
            raise  # a bug: the traceback is the useful report
        print(f"error: {message}", file=sys.stderr)
        return 2
