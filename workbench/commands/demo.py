"""``python -m workbench demo``: the headline job on embedded data (no network, no ../shared).

1. A market-making backtest (inventory skew, feed/entry/response latency, exact L3 queue
   position, fees, risk) on the embedded synthetic session: P&L stats, events/s,
   tick-to-trade percentiles, and ``demo-report.html``. ``--data lobster MESSAGES`` or
   ``--data binance CAPTURE`` replays real data instead.
2. A seeded exchange-core-like order flow through the matching engine: throughput,
   in-kernel per-order latency percentiles and the resulting book.
"""
from __future__ import annotations

from pathlib import Path

from workbench.errors import InputError

DATA_KINDS = ("synthetic", "lobster", "binance")


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the headline demo on embedded data",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["synthetic"], metavar=("KIND", "FILE"),
                        help="synthetic (default), 'lobster MESSAGES.csv' or 'binance CAPTURE.gz'")
    parser.add_argument("--report", default="demo-report.html",
                        help="where to write the HTML report (default: demo-report.html)")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the engine demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-engine", action="store_true", help="only the backtest")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes compiling on a cold cache (default: the CPUs, at most 2 "
                             "used); 1 compiles in this process only")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    kind, *rest = args.data
    if kind not in DATA_KINDS:
        raise InputError(f"--data {kind!r} must be one of {DATA_KINDS}")
    if len(rest) > 1 or (kind == "synthetic" and rest):
        raise InputError(f"--data {' '.join(args.data)!r}: give one file, and only for lobster/binance")
    file = rest[0] if rest else None
    if file is not None and not Path(file).is_file():
        raise InputError(f"--data {kind} {file}: no such file", path=file)
    if args.orders < 1:
        raise InputError(f"--orders={args.orders} must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs={args.jobs} must be at least 1")

    from workbench import parallel_compile

    tasks = [] if args.skip_engine or not _cold() else ["workbench.demo:precompile_helper"]
    if tasks and parallel_compile.enabled(args.jobs) and not args.no_progress:
        print(f"first run on this machine: compiling the demo's kernels on "
              f"{min(args.jobs or parallel_compile.cores(), 2)} cores (cached for next time)",
              flush=True)
    with parallel_compile.helpers(tasks, jobs=args.jobs):
        from workbench.backtest import run_demo

        report = Path(args.report)
        _, summary = run_demo(data=kind, path=report, progress=not args.no_progress, file=file)
        print(summary)
        print(f"report: {report.resolve()}")
        if not args.skip_engine:
            from workbench.demo import engine_demo, format_engine_demo

            print()
            print(format_engine_demo(engine_demo(args.orders, seed=args.seed,
                                                 progress=not args.no_progress)))
    return 0


def _cold() -> bool:
    """Whether the demo's kernels are missing from Numba's cache (a new machine)."""
    from kernels import book, flow
    from kernels.backtest import l3
    from kernels.compile_claims import on_disk

    return any(on_disk(disp) is False for disp in    # None: a cache layout not known here
               (l3.exchange_event, flow.generate_order_mix, book.apply_batch_discard_fills))
