"""``python -m workbench demo``: the headline job on embedded data (no network, no ../shared)."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the headline demo on embedded data",
                                   description="Seeded order flow through the matching engine.")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the engine demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from workbench.demo import engine_demo, format_engine_demo

    if args.orders < 1:
        raise ValueError(f"--orders={args.orders} must be at least 1")
    result = engine_demo(args.orders, seed=args.seed, progress=not args.no_progress)
    print(format_engine_demo(result))
    return 0
