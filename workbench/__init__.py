"""hft-workbench: the Python face of the Numba kernels.

Everything users touch is importable from here; names load lazily so that
``import workbench`` (and the CLI's ``--help``) stays instant and Numba only wakes up
when a name that needs it is used.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # the order book and matching engine
    "Engine": "workbench.book", "OrderBook": "workbench.book", "OrderResult": "workbench.book",
    "BatchResult": "workbench.book", "make_events": "workbench.book",
    "Side": "workbench.enums", "OrderType": "workbench.enums", "TimeInForce": "workbench.enums",
    "OrderStatus": "workbench.enums", "RejectReason": "workbench.enums", "EventKind": "workbench.enums",
    "ReferenceBook": "workbench.reference",
    "lobster_check": "workbench.lobster_check",
    # plots
    "depth_chart": "workbench.plots", "depth_table": "workbench.plots",
    "ladder_figure": "workbench.plots", "lobster_match_plot": "workbench.plots",
    # FIX 4.4
    "FixAcceptor": "workbench.fix", "FixSession": "workbench.fix", "FixBatch": "workbench.fix",
    "encode_execution_report": "workbench.fix",
    # backtesting and the live pipeline
    "Backtest": "workbench.backtest", "BacktestResult": "workbench.backtest",
    "sweep": "workbench.backtest", "run_demo": "workbench.backtest",
    "Pipeline": "workbench.live.pipeline", "overload_sweep": "workbench.live.overload",
    "simulate_admission": "workbench.live.overload", "dashboard": "workbench.widgets",
    # latency, queues, hardware
    "LatencyRecorder": "workbench.latency",
    "Ring": "workbench.queues", "SharedRing": "workbench.queues",
    # data
    "simulate": "workbench.data.synthetic", "load_bars": "workbench.data.yahoo",
    "order_mix": "workbench.data.order_mix",
    # safety modes and what this process runs
    "Mode": "workbench.modes", "ProductionSafe": "workbench.modes", "LabUnsafe": "workbench.modes",
    "mode": "workbench.modes", "build_info": "workbench.buildinfo",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
