"""``python -m workbench warmup [--only GROUPS] [--json]``: compile every bundled kernel
once into Numba's on-disk cache, so a notebook's first run starts in seconds
(``workbench.warmup``)."""
from __future__ import annotations

import json
from workbench.errors import InputError


def register(subparsers) -> None:
    from workbench.warmup import GROUPS  # light: the groups import their modules lazily

    parser = subparsers.add_parser(
        "warmup", help="compile every bundled kernel once (fills Numba's on-disk cache)",
        description="Run the product's own paths on tiny inputs so every bundled kernel is "
                    "compiled once and cached on disk: the notebooks then start warm. A second "
                    "run loads everything from the cache. Groups: " + ", ".join(GROUPS) + ".")
    parser.add_argument("--only", default=None, metavar="GROUP[,GROUP]",
                        help="only these groups (default: all)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON (per group: seconds, compiled, cached, "
                             "per_process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes running groups at once (default: one per CPU; 1: this "
                             "process only)")
    parser.set_defaults(handler=_warmup)


def _warmup(args) -> int:
    from workbench.warmup import parse_only, warmup

    names = parse_only(args.only)
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs={args.jobs} must be at least 1")
    report = warmup(names, progress=not args.no_progress, jobs=args.jobs)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1
