"""Parameter sweeps and batches of variants: one backtest per combination, run side by side.

:func:`sweep` runs a grid of strategy parameters and returns one frame (the parameters,
then the statistics, one row per combination in grid order). :func:`run_variants` (what
``Backtest.run_many`` calls) runs a list of parameter sets and returns the full
``BacktestResult`` of each, in the order given.

Where they run is the ``executor`` (``workbench.scale``): ``"local"`` (the default: a
thread pool; the kernels release the GIL, so threads share the market data without
copying it), ``"dask"`` (a LocalCluster sized to the machine), a ``distributed.Client`` or
a scheduler address. On Dask a task carries the combination and references to the
configuration and the market data (scattered once, or a parquet file in ``shared_dir``);
results are identical to the local executor's, the timing fields aside.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

import polars as pl

from ..data.market import MarketData
from .builder import Backtest

__all__ = ["sweep", "run_variants", "template_of", "variant"]


def _grid(parameter_grid: Mapping[str, Iterable]) -> list[dict]:
    if not isinstance(parameter_grid, Mapping) or not parameter_grid:
        raise ValueError("parameter_grid must be a non-empty dict name -> list of values")
    keys = list(parameter_grid)
    values = [list(parameter_grid[k]) for k in keys]
    for k, v in zip(keys, values):
        if not v:
            raise ValueError(f"parameter_grid[{k!r}] is empty")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def template_of(backtest: Backtest) -> Backtest:
    """A copy of ``backtest``'s configuration without its market data (what tasks carry;
    the data travels by reference)."""
    if not isinstance(backtest, Backtest):
        raise ValueError(f"backtest must be a workbench Backtest, got {type(backtest).__name__}")
    t = Backtest.__new__(Backtest)
    t.__dict__.update(backtest.__dict__)
    t._data = None
    t._data_arg = None
    t._data_options = {}
    return t


def variant(template: Backtest, md: MarketData, params: Mapping[str, Any]) -> Backtest:
    """``template`` on ``md`` with ``params`` over its strategy parameters."""
    bt = Backtest.__new__(Backtest)
    bt.__dict__.update(template.__dict__)
    bt._data = md
    bt._params = {**template._params, **params}
    return bt


def _head(md: MarketData, n: int = 2000) -> MarketData:
    return MarketData(md.events[: min(len(md.events), n)], md.tick, md.price_scale, md.name,
                      md.initial_row, md.levels, md.kind, md.qty_scale, md.ladder)


def _stats_task(shared, params) -> dict:
    template, md = shared
    return variant(template, md, params).run(progress=False).stats


def _result_task(shared, params):
    template, md = shared
    return variant(template, md, params).run(progress=False)


def _warm(first_params, shared) -> dict:
    """Compile (or load from Numba's cache) on a small slice, with the first combination:
    the statistics of that slice, timing aside (every worker must compute the same)."""
    from ..scale import TIMING_COLUMNS

    template, md = shared
    stats = variant(template, _head(md), first_params).run(progress=False).stats
    return {k: v for k, v in stats.items() if k not in TIMING_COLUMNS}


def _fan_out(backtest: Backtest, variants: Sequence[Mapping], task, *, executor, max_workers,
             progress: bool, shared_dir, desc: str) -> list:
    import functools

    from .. import scale

    if not isinstance(backtest, Backtest):
        raise ValueError(f"backtest must be a workbench Backtest, got {type(backtest).__name__}")
    variants = [dict(v) for v in variants]
    if not variants:
        raise ValueError("nothing to run: no parameter combinations")
    for v in variants:
        backtest._spec.vector({**backtest._params, **v})  # every combination checked up front
    md = backtest.data  # loaded once here, then shared read-only (or by reference)
    template = template_of(backtest)
    with scale.executor_session(executor, max_workers) as backend:
        data = md
        if shared_dir is not None and backend.kind == "dask":
            data = scale.write_market(md, shared_dir)
        return backend.run(task, (template, data), variants, warm=functools.partial(_warm, variants[0]),
                           progress=progress, desc=desc)


def sweep(backtest: Backtest, parameter_grid: Mapping[str, Iterable], *, executor=None,
          max_workers: int | None = None, progress: bool = True, shared_dir=None) -> pl.DataFrame:
    """Run ``backtest`` once per combination of ``parameter_grid`` (strategy parameters)
    and return one frame: the parameters, then the stats, one row per combination in
    grid order (the nested reject counts are left out; ``run_many`` keeps everything).

    ``executor``: ``"local"``/None (threads over all cores, or ``max_workers``),
    ``"dask"`` (a LocalCluster of ``max_workers`` or one worker per core, started and
    closed here), a ``distributed.Client``, a scheduler address (``"tcp://host:8786"``),
    or an executor with ``map`` (a process pool created with
    ``mp_context=multiprocessing.get_context("spawn")``: forked workers of a process that
    has compiled Numba code can hang). ``shared_dir``: on Dask, send the events as a
    parquet file in this folder (every worker must read it) instead of scattering them.
    """
    combos = _grid(parameter_grid)
    stats = _fan_out(backtest, combos, _stats_task, executor=executor, max_workers=max_workers,
                     progress=progress, shared_dir=shared_dir, desc="sweep")
    rows = []
    for combo, s in zip(combos, stats):
        flat = {k: v for k, v in s.items() if not isinstance(v, dict)}
        rows.append({**combo, **flat})
    return pl.DataFrame(rows)


def run_variants(backtest: Backtest, variants: Sequence[Mapping[str, Any]], *, executor=None,
                 max_workers: int | None = None, progress: bool = True, shared_dir=None) -> list:
    """One full ``BacktestResult`` per parameter set in ``variants`` (each over
    ``backtest``'s own parameters), in the order given; ``executor`` as for :func:`sweep`."""
    if isinstance(variants, Mapping) or not isinstance(variants, Sequence):
        raise ValueError("variants must be a list of parameter dicts, e.g. "
                         "[{'half_spread_ticks': 1}, {'half_spread_ticks': 2}]")
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping):
            raise ValueError(f"variants[{i}]={v!r} must be a dict of strategy parameters")
    return _fan_out(backtest, variants, _result_task, executor=executor, max_workers=max_workers,
                    progress=progress, shared_dir=shared_dir, desc="backtests")
