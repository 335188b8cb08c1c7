"""Tick-replay backtests for people.

The map of this subpackage:

* ``builder.py``: :class:`Backtest`, the fluent builder (data, strategy, latency, fees,
  queue model, risk limits) and the chunked run.
* ``results.py``: :class:`BacktestResult`, polars frames and stated statistics.
* ``sweep.py``: :func:`sweep`, a parameter grid run side by side.
* ``demo.py``: :func:`run_demo`, the headline job with its HTML report.
* ``plots.py``: the bokeh dashboard and the standalone report.

Strategies, risk limits and their parameters come from the registries next to their
kernels (``kernels.strategies.STRATEGIES``, ``kernels.risk.RISK_PARAMS``) through
``workbench.params``; market data from ``workbench.data.market.load_events``.
"""
from __future__ import annotations

from kernels.strategies import STRATEGIES

from ..data.market import MarketData, load_events
from ..params import StrategySpec, strategy_names
from .builder import Backtest
from .demo import run_demo
from .results import BacktestResult
from .sweep import sweep

__all__ = ["Backtest", "BacktestResult", "MarketData", "StrategySpec", "STRATEGIES", "load_events",
           "run_demo", "strategy_names", "sweep"]
