"""``python -m workbench bench <suite> [--json] [--quick]``: run benchmark suites."""
from __future__ import annotations

import json

from workbench.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run a benchmark suite (book, ipc, fix, data, ... or all)",
        description="Run a benchmark suite; figures are medians of several runs.",
    )
    parser.add_argument("suite", help="suite name, or 'all'")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.set_defaults(handler=_run)


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _run(args) -> int:
    from workbench.bench import discover

    suites = discover()
    names = sorted(suites) if args.suite == "all" else [args.suite]
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise InputError(f"unknown bench suite {unknown[0]!r}; choose from {sorted(suites)} or 'all'")
    results = {name: suites[name].run(quick=args.quick) for name in names}
    if args.json:
        print(json.dumps(results if args.suite == "all" else results[names[0]], indent=2))
        return 0
    for name, result in results.items():
        print(f"== bench {name}: {suites[name].DESCRIPTION}")
        width = max(len(k) for k in result) if result else 0
        for key, value in result.items():
            print(f"  {key:<{width}}  {_format_value(value)}")
    return 0
