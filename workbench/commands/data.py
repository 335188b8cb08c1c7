"""``python -m workbench data make-samples|fetch|info|binance-check|mbo-check|itch-check|itch-synth|get-samples``:
market data chores."""
from __future__ import annotations

import json
from pathlib import Path

from workbench.errors import InputError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="market data: samples, Yahoo cache, Binance, Databento MBO and ITCH checks",
        description="Market data chores: regenerate the samples in data/, fetch Yahoo bars "
                    "into the cache, show the cache, check a Binance capture, a Databento "
                    "MBO file or a NASDAQ ITCH 5.0 day, write a synthetic ITCH day.")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])

    samples = sub.add_parser("make-samples", help="regenerate the small parquet samples in data/")
    samples.add_argument("--out", type=Path, default=REPO_DATA, help="target directory (default: data/)")
    samples.set_defaults(handler=_make_samples)

    fetch = sub.add_parser("fetch", help="fetch Yahoo bars into the parquet cache")
    fetch.add_argument("symbols", nargs="+", help="Yahoo tickers (AAPL, EURUSD=X, ...)")
    fetch.add_argument("--interval", default="1d", help="1m, 5m, 15m, 1h or 1d (default 1d)")
    fetch.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    fetch.add_argument("--end", required=True, help="day after the last, YYYY-MM-DD")
    fetch.add_argument("--raw", action="store_true", help="raw (unadjusted) prices")
    fetch.add_argument("--offline", action="store_true", help="serve only the cache")
    fetch.add_argument("--cache-dir", default=None, help="cache root (default $WORKBENCH_CACHE_DIR "
                                                         "or the user cache dir)")
    fetch.set_defaults(handler=_fetch)

    info = sub.add_parser("info", help="what is cached: files, sizes, ages, invalid and "
                                       "quarantined files")
    info.add_argument("--cache-dir", default=None)
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=_info)

    check = sub.add_parser("binance-check", help="rebuild a Binance capture's book and compare "
                                                 "it with bookTicker")
    check.add_argument("file", type=Path, help="capture file (<recv_ts_ns> <json> per line, gzip ok)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_binance_check)

    mbo = sub.add_parser("mbo-check", help="replay a Databento MBO file (DBN or CSV) through "
                                           "the engine's books")
    mbo.add_argument("file", type=Path, help=".dbn, .dbn.zst, or Databento CSV (gzip ok)")
    mbo.add_argument("--levels", type=int, default=10, help="book levels shown per side (default 10)")
    mbo.add_argument("--json", action="store_true", help="print the result as JSON")
    mbo.add_argument("--bbo", type=Path, default=None, metavar="OUT.parquet",
                     help="write the top of book at every F_LAST record to this parquet file")
    mbo.set_defaults(handler=_mbo_check)

    itch = sub.add_parser("itch-check", help="replay a NASDAQ TotalView-ITCH 5.0 file into one "
                                             "engine, a book per stock")
    itch.add_argument("file", type=Path, help="ITCH 5.0 file with 2-byte length framing (gzip ok)")
    itch.add_argument("--symbols", default=None, metavar="A,B",
                      help="only these stocks (default: every stock of the directory)")
    itch.add_argument("--json", action="store_true", help="print the result as JSON")
    itch.add_argument("--bbo", type=Path, default=None, metavar="OUT.parquet",
                      help="write the top of book per stock whenever it changes to this parquet file")
    itch.add_argument("--no-progress", action="store_true")
    itch.set_defaults(handler=_itch_check)

    get = sub.add_parser("get-samples", help="download the public LOBSTER and Binance samples "
                                             "(checked, atomic, size and time limits)",
                         description="Download public sample data (LOBSTER's NASDAQ sample day, "
                                     "Binance's daily spot archives) into a local directory. Each "
                                     "file is checked (size, checksum, format) before it is kept; "
                                     "a bad download is quarantined.")
    get.add_argument("names", nargs="*", help="samples to fetch (default: the small default set; "
                                              "'all' for every one; see --list)")
    get.add_argument("--dir", default=None, help="target directory (default $WORKBENCH_DATA_DIR/samples "
                                                 "or the user data dir)")
    get.add_argument("--list", action="store_true", help="list the samples and exit")
    get.add_argument("--force", action="store_true", help="download again even when present")
    get.add_argument("--timeout", type=float, default=30.0, help="seconds per network operation "
                                                                 "(default 30)")
    get.add_argument("--json", action="store_true", help="print the result as JSON")
    get.set_defaults(handler=_get_samples)

    synth = sub.add_parser("itch-synth", help="write a synthetic ITCH 5.0 day from simulated flow")
    synth.add_argument("out", type=Path, help="output file (.gz: gzip)")
    synth.add_argument("--stocks", type=int, default=8000, help="stocks (default 8000)")
    synth.add_argument("--messages", type=float, default=50e6, help="about this many messages "
                                                                   "(default 50e6)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_itch_synth)


def _make_samples(args) -> int:
    from workbench.data.samples import make_samples

    written = make_samples(args.out)
    total = 0
    for path in written:
        size = path.stat().st_size
        total += size
        print(f"  {path}  {size / 1024:,.0f} KiB")
    print(f"wrote {len(written)} files, {total / 1024 / 1024:.2f} MiB")
    return 0


def _fetch(args) -> int:
    import polars as pl

    from workbench.data.yahoo import MissingDataError, load_bars

    try:
        bars = load_bars(args.symbols, args.start, args.end, interval=args.interval,
                         adjusted=not args.raw, cache_dir=args.cache_dir,
                         offline=True if args.offline else None, progress=True)
    except MissingDataError as exc:
        print(f"error: {exc}")
        return 1
    summary = bars.group_by("symbol", maintain_order=True).agg(
        pl.len().alias("bars"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"),
        pl.col("close").last().alias("last_close"))
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
        print(summary)
    return 0


def _info(args) -> int:
    import polars as pl

    from workbench.data.cache import cache_dir
    from workbench.data.yahoo import cache_info

    table = cache_info(args.cache_dir)
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir(args.cache_dir)), "files": table.to_dicts()},
                         indent=2))
        return 0
    print(f"cache dir: {cache_dir(args.cache_dir)}")
    if table.is_empty():
        print("nothing cached")
        return 0
    status = pl.col("status")
    live = status != "quarantined"
    per = table.group_by("source", "interval", "symbol", maintain_order=True).agg(
        live.sum().alias("chunks"), pl.col("rows").filter(status == "ok").sum(),
        pl.col("bytes").filter(live).sum(),
        pl.col("age_h").filter(live).min().alias("newest_h"),
        pl.col("age_h").filter(live).max().alias("oldest_h"),
        (status == "invalid").sum().alias("invalid"), (status == "quarantined").sum().alias("quarantined"))
    with pl.Config(tbl_rows=200, tbl_cols=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(per.sort("source", "interval", "symbol"))
    files = table.filter(live)
    counts = {k: table.filter(status == k).height for k in ("invalid", "quarantined")}
    print(f"{files.height} files, {files['bytes'].sum() / 1024 / 1024:.2f} MiB"
          + "".join(f", {n} {k}" for k, n in counts.items() if n))
    for row in table.filter(status == "invalid").iter_rows(named=True):
        print(f"  INVALID {row['file']}: {row['problem']} (quarantined and refetched on the next load)")
    for row in table.filter(status == "quarantined").iter_rows(named=True):
        print(f"  QUARANTINED {row['file']}: {row['problem']} (kept for inspection; delete it by hand)")
    return 0


def _mbo_check(args) -> int:
    from workbench.data.databento import check_mbo

    result = check_mbo(args.file, levels=args.levels)
    if args.bbo is not None:
        result.bbo.write_parquet(args.bbo)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print("\n".join(result.summary_lines()))
    if args.bbo is not None:
        print(f"top of book at {result.bbo.height} F_LAST records written to {args.bbo}")
    return 0


def _binance_check(args) -> int:
    from workbench.data.binance import check_capture, summary_line

    result = check_capture(args.file)
    if args.json:
        keys = ("snapshots", "updates", "gaps", "bbo_rows", "comparable", "matched", "pct", "crossed")
        print(json.dumps({k: result[k] for k in keys}))
        return 0
    for key in ("market", "diffs_received", "dropped_stale", "trades", "malformed", "out_of_window"):
        print(f"  {key}: {result[key]}")
    print(summary_line(result))
    return 0


def _itch_check(args) -> int:
    from workbench import parallel_compile
    from workbench.data.itch import check, replay_cached, summary_lines

    symbols = None
    if args.symbols is not None:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            raise InputError(f"--symbols {args.symbols!r} names no stock")
    # a first run on this machine compiles the replay kernel in a helper process; this
    # one compiles the book kernels the replay calls, in the opposite order to the
    # helper's, then the first pass and the decoder (the kernels are claimed: each is
    # compiled once, the other process loads it from the cache)
    cold = not replay_cached()
    with parallel_compile.helpers(["workbench.data.itch:precompile_replay"] if cold else []):
        if cold:
            parallel_compile.compile_book_calls(
                ["clear_book", "_rest_replayed", "_modify", "_execute", "_cancel", "_add"])
        result = check(args.file, symbols=symbols, bbo=args.bbo,
                       progress=not (args.json or args.no_progress))
    if args.json:
        print(json.dumps(result))
        return 0
    print("\n".join(summary_lines(result)))
    if args.bbo is not None:
        print(f"top of book written to {args.bbo}")
    return 0


def _get_samples(args) -> int:
    from workbench.data.get_samples import DEFAULT_SAMPLES, SAMPLES, get_samples, samples_dir

    if args.list:
        for sample in SAMPLES.values():
            mark = "*" if sample.name in DEFAULT_SAMPLES else " "
            print(f"{mark} {sample.name:30} {sample.max_bytes / 2**20:6.0f} MiB max  {sample.description}")
        print("* = default set")
        return 0
    results = get_samples(args.names or None, args.dir, force=args.force, timeout=args.timeout,
                          progress=not args.json,
                          on_result=None if args.json else lambda r: print(
                              f"  {r.status:10} {r.name}: " + ", ".join(r.notes)
                              + "".join(f"\n             {f}" for f in r.files)))
    if args.json:
        print(json.dumps({"dir": str(samples_dir(args.dir)), "samples": [r.to_json() for r in results]}))
    else:
        print(f"{len(results)} sample(s) in {samples_dir(args.dir)}")
    return 0


def _itch_synth(args) -> int:
    from workbench.data.itch import synthetic_day

    result = synthetic_day(args.out, n_symbols=args.stocks, messages=int(args.messages),
                           seed=args.seed, progress=True)
    print(f"wrote {result.messages:,} messages over {len(result.symbols):,} stocks, "
          f"{result.bytes / 1e6:,.1f} MB to {result.path}")
    return 0
