"""``python -m workbench backtest``: run one tick-replay backtest from the shell.

    python -m workbench backtest --data synthetic --strategy mm_skew \
        --param half_spread_ticks=2 --latency-us 50 100 50 --fees-bps -0.2 0.3 [--json] [--html report.html]
    python -m workbench backtest --data lobster AAPL_..._message_10.csv --json
    python -m workbench backtest --data binance capture.gz --queue-model log --param qty=100000
    python -m workbench backtest --sweep half_spread_ticks=1,2,3 --sweep skew_ticks=0,2 \
        [--executor dask | --scheduler tcp://host:8786] [--json]
    python -m workbench backtest --data mbo glbx-mdp3.mbo.dbn.zst --symbol ESH4 --param qty=1
    python -m workbench backtest --data itch 20191230.BX_ITCH_50.gz --symbol AAPL
"""
from __future__ import annotations

import json

from workbench.errors import InputError


def _key_value(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"--param {text!r} must look like name=value")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise InputError(f"--param {text!r}: {value!r} is not a number") from None


def register(subparsers) -> None:
    from workbench.params import RISK, strategy_names

    parser = subparsers.add_parser(
        "backtest", help="run a tick-replay backtest (L3 book, latency, queue position)",
        description="Replay market events with a strategy's orders in the same L3 book.")
    parser.add_argument("--data", nargs="+", default=["synthetic"], metavar="SOURCE",
                        help="'synthetic' (embedded sample), 'lobster MESSAGES', 'binance CAPTURE', "
                             "'mbo FILE' (Databento DBN or CSV), 'itch FILE' (NASDAQ ITCH 5.0), "
                             "or a file path")
    parser.add_argument("--symbol", default="0", help="symbol index or name (synthetic data); "
                                                      "MBO: symbol or instrument_id (default: the first)")
    parser.add_argument("--strategy", default="mm_skew",
                        help=f"one of {', '.join(strategy_names())}")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="strategy parameter (repeatable)")
    parser.add_argument("--latency-us", nargs=3, type=float, default=(50.0, 100.0, 50.0),
                        metavar=("FEED", "ENTRY", "RESPONSE"), help="latencies in microseconds")
    parser.add_argument("--fees-bps", nargs=2, type=float, default=(-0.2, 0.3),
                        metavar=("MAKER", "TAKER"), help="fees in basis points (negative = rebate)")
    parser.add_argument("--risk", action="append", default=[], metavar="LIMIT=VALUE",
                        help=f"risk limit (repeatable), one of {', '.join(RISK.names)}")
    parser.add_argument("--queue-model", default="risk_averse",
                        help="L2 data only: risk_averse, power or log (L3 queues are exact)")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="sweep a strategy parameter over values (repeatable: the grid of "
                             "all combinations); prints one row per combination")
    parser.add_argument("--executor", default=None, choices=("local", "dask"),
                        help="where a sweep runs: local threads (default) or a Dask "
                             "LocalCluster sized to this machine")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the sweep on the Dask cluster at ADDRESS (tcp://host:8786)")
    parser.add_argument("--html", default=None, help="write the HTML report here")
    parser.add_argument("--json", action="store_true", help="print the stats as JSON")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from workbench.backtest import Backtest

    symbol = int(args.symbol) if args.symbol.isdigit() else args.symbol
    data = args.data
    if len(data) == 2 and data[0] in ("lobster", "binance", "mbo", "itch"):
        data = data[1:]
    if len(data) != 1:
        raise InputError(f"--data {' '.join(args.data)!r}: give 'synthetic', 'lobster FILE', "
                         "'binance FILE', 'mbo FILE', 'itch FILE' or a file path")
    params = dict(_key_value(p) for p in args.param)
    risk = dict(_key_value(r) for r in args.risk)
    bt = (Backtest(data[0], symbol=symbol).strategy(args.strategy, **params)
          .latency(*args.latency_us).fees(*args.fees_bps).risk(**risk)
          .queue_model(args.queue_model))
    if args.sweep or args.scheduler or args.executor:
        return _sweep(bt, args)
    result = bt.run(progress=not (args.no_progress or args.json))
    if args.html:
        result.to_html(args.html)
    if args.json:
        out = {k: (float(v) if hasattr(v, "dtype") else v) for k, v in result.stats.items()}
        out["config"] = result.config
        print(json.dumps(out, indent=2))
    else:
        print(result.summary())
        if args.html:
            print(f"report written to {args.html}")
    return 0


def _grid_values(text: str) -> tuple[str, list[float]]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise InputError(f"--sweep {text!r} must look like name=v1,v2,...")
    try:
        return key.strip(), [float(v) for v in values.split(",")]
    except ValueError:
        raise InputError(f"--sweep {text!r}: the values must be numbers separated by commas") from None


def _sweep(bt, args) -> int:
    from workbench.backtest import sweep

    if args.scheduler and args.executor:
        raise InputError("give --scheduler ADDRESS or --executor, not both")
    if not args.sweep:
        raise InputError("--executor/--scheduler run a sweep: give at least one --sweep name=v1,v2")
    if args.html:
        raise InputError("--html writes one run's report: leave it out of a sweep")
    grid = dict(_grid_values(g) for g in args.sweep)
    grid = {k: [int(v) if v.is_integer() else v for v in values] for k, values in grid.items()}
    frame = sweep(bt, grid, executor=args.scheduler or args.executor or "local",
                  progress=not (args.no_progress or args.json))
    if args.json:
        print(json.dumps(frame.to_dicts(), indent=2))
    else:
        import polars as pl

        with pl.Config(tbl_rows=-1, tbl_cols=12, tbl_hide_dataframe_shape=True):
            print(frame.select(list(grid) + ["total_pnl", "sharpe", "max_drawdown", "n_fills",
                                             "fill_rate", "max_abs_position"]))
    return 0
