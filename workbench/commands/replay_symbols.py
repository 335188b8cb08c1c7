"""``python -m workbench replay-symbols``: a whole exchange replayed symbol by symbol.

    python -m workbench replay-symbols synthetic
    python -m workbench replay-symbols day.itch.gz --scheduler tcp://host:8786 --json
    python -m workbench replay-symbols glbx.mbo.dbn.zst --executor dask

Each symbol (instrument) of the file goes through the engine as its own task, locally on
threads, on a Dask LocalCluster (``--executor dask``) or on an existing cluster
(``--scheduler``); one row per symbol comes back (``workbench.scale.replay_symbols``).
"""
from __future__ import annotations

import json

from workbench.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay-symbols", help="replay every symbol of an ITCH/MBO/LOBSTER file or the "
                               "synthetic sample, one task per symbol (local or Dask)",
        description="Replay a multi-symbol event file through the engine, one task per "
                    "symbol, and print per-symbol statistics.")
    parser.add_argument("data", nargs="?", default="synthetic",
                        help="'synthetic' (the embedded 3-symbol sample), an ITCH 5.0 file, a "
                             "Databento MBO file, or a LOBSTER message file")
    parser.add_argument("--executor", default=None, choices=("local", "dask"),
                        help="local threads (default) or a Dask LocalCluster sized to this machine")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on the Dask cluster at ADDRESS (tcp://host:8786)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    import polars as pl

    from workbench.scale import replay_symbols

    if args.scheduler and args.executor:
        raise InputError("give --scheduler ADDRESS or --executor, not both")
    frame = replay_symbols(args.data, executor=args.scheduler or args.executor or "local",
                           progress=not (args.no_progress or args.json))
    if args.json:
        print(json.dumps(frame.to_dicts(), indent=2))
        return 0
    with pl.Config(tbl_rows=-1, tbl_cols=14, tbl_hide_dataframe_shape=True):
        print(frame.drop("first_ts", "last_ts"))
    return 0
