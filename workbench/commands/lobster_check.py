"""``python -m workbench lobster-check MESSAGES ORDERBOOK [--json]``: replay a LOBSTER day
through the engine and compare with the published book after every message."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lobster-check", help="replay LOBSTER messages and compare with the orderbook file",
        description="Replay a LOBSTER message file through the workbench's L3 book and compare "
                    "its top levels with the orderbook file after every message.",
    )
    parser.add_argument("messages", help="LOBSTER message CSV")
    parser.add_argument("orderbook", help="the row-aligned LOBSTER orderbook CSV")
    parser.add_argument("--levels", type=int, default=None,
                        help="compare only the first N levels (default: all in the file)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from workbench.lobster_check import lobster_check

    result = lobster_check(args.messages, args.orderbook, levels=args.levels,
                           progress=not args.json)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"replayed {result.rows:,} messages in {result.seconds:.3f} s "
          f"({result.events_per_sec:,.0f} events/s, compare and resync included)")
    if result.rejects:
        print("engine rejects: " + ", ".join(f"{k}={v}" for k, v in result.rejects.items()))
    if result.unrepresented_levels:
        print(f"levels the engine could not represent (off tick or pool full): "
              f"{result.unrepresented_levels}")
    print(f"rows that differed only by unseen depth (a level entering the file's depth from "
          f"beyond it, resting since before the file began): {result.unseen_depth:,}; "
          f"other mismatches: {result.mismatched:,}")
    print(result.summary_line())
    return 0
