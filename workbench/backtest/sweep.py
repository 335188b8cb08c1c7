"""Parameter sweeps: one backtest per combination of a grid, run side by side.

The default executor is a thread pool: the kernels release the GIL, so threads share
the market data without copying it.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
from typing import Iterable, Mapping

import polars as pl

from ..data.market import MarketData
from .builder import Backtest

__all__ = ["sweep"]


def _grid(parameter_grid: Mapping[str, Iterable]) -> list[dict]:
    if not isinstance(parameter_grid, Mapping) or not parameter_grid:
        raise ValueError("parameter_grid must be a non-empty dict name -> list of values")
    keys = list(parameter_grid)
    values = [list(parameter_grid[k]) for k in keys]
    for k, v in zip(keys, values):
        if not v:
            raise ValueError(f"parameter_grid[{k!r}] is empty")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _run_combo(job):
    """One sweep job (module level so process pools can pickle it)."""
    backtest, combo = job
    bt = Backtest.__new__(Backtest)
    bt.__dict__.update(backtest.__dict__)
    bt._params = {**backtest._params, **combo}
    return combo, bt.run(progress=False).stats


def sweep(backtest: Backtest, parameter_grid: Mapping[str, Iterable], *, executor=None,
          max_workers: int | None = None, progress: bool = True) -> pl.DataFrame:
    """Run ``backtest`` once per combination of ``parameter_grid`` (strategy parameters)
    in parallel and return one frame: the parameters, then the stats.

    The default executor is a thread pool over all cores: the kernels release the GIL,
    so threads run side by side without copying the data. ``executor`` may be any
    ``concurrent.futures.Executor``-like object with ``map(fn, iterable)`` (a process
    pool created with ``mp_context=multiprocessing.get_context("spawn")``: forked workers
    of a process that has compiled Numba code can hang; or a distributed backend exposing
    the same call).
    """
    combos = _grid(parameter_grid)
    for c in combos:
        backtest._spec.vector({**backtest._params, **c})
    md = backtest.data  # load once, share read-only
    # compile (or load) everything once here: concurrent first calls would serialise anyway
    warm = Backtest.__new__(Backtest)
    warm.__dict__.update(backtest.__dict__)
    warm._params = {**backtest._params, **combos[0]}
    warm._data = MarketData(md.events[: min(len(md.events), 2000)], md.tick, md.price_scale,
                            md.name, md.initial_row, md.levels, md.kind, md.qty_scale, md.ladder)
    warm.run(progress=False)

    own_pool = executor is None
    if own_pool:
        executor = cf.ThreadPoolExecutor(max_workers or os.cpu_count() or 1)
    rows = []
    try:
        results = executor.map(_run_combo, [(backtest, combo) for combo in combos])
        if progress:
            from tqdm.auto import tqdm
            results = tqdm(results, total=len(combos), desc="sweep")
        for combo, stats in results:
            flat = {k: v for k, v in stats.items() if not isinstance(v, dict)}
            rows.append({**combo, **flat})
    finally:
        if own_pool:
            executor.shutdown()
    return pl.DataFrame(rows)
