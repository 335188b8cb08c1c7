"""The command line (``python -m workbench <command>``).

Commands are discovered, not listed: every module in ``workbench.commands`` defines
``register(subparsers)`` and adds its own sub-command with a handler
(``parser.set_defaults(handler=...)``). Command modules import their heavy
dependencies inside the handler so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import workbench.commands as _commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbench",
        description="hft-workbench: Numba matching engine, data, benchmarks and demos.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
