"""``python -m workbench info [--json]``: what this process runs (``workbench.build_info()``):
versions, the CPU the kernels are compiled for, the safety mode and its layers, the
journal's default policy."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="versions, CPU features, safety mode and journal policy",
        description="Print workbench.build_info(): versions, the host CPU as LLVM sees it, "
                    "the safety mode (WORKBENCH_MODE) and what each of its layers does here.")
    parser.add_argument("--mode", choices=("safe", "lab"), default=None,
                        help="report for this mode instead of WORKBENCH_MODE's")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from workbench.buildinfo import build_info

    info = build_info(args.mode)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "cpu_features":
            value = f"{len(value)} enabled (see --json)"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = " ".join(value)
        print(f"{key:<{width}}  {value}")
    return 0
