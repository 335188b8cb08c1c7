"""Checkers of notebook 13-scaling-out."""
from __future__ import annotations

import math

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


@exercise("13.1", hint="frame = sweep(backtest, grid, executor=client) with the grid given, then pass that frame")
def check_cluster_sweep(frame, backtest, grid) -> Verdict:
    """Exercise 13.1: ``frame`` must be ``sweep(backtest, grid)`` as the local executor
    computes it: the same rows in grid order, the same numbers bit for bit (the timing
    columns aside). Prints right/wrong with the reason; returns the verdict."""
    from workbench.backtest import sweep
    from workbench.scale import without_timing

    if frame is None or not hasattr(frame, "columns") or not hasattr(frame, "select"):
        return _verdict(False, "pass the polars frame sweep() returned")
    keys = list(grid)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        return _verdict(False, f"the frame has no column(s) {missing}: sweep the grid {grid}")
    expected = sweep(backtest, grid, progress=False)
    if frame.height != expected.height:
        return _verdict(False, f"{frame.height} rows, but the grid has {expected.height} combinations")
    if frame.select(keys).rows() != expected.select(keys).rows():
        return _verdict(False, "the rows are not the grid's combinations in grid order")
    mine, theirs = without_timing(frame), without_timing(expected)
    if mine.columns != theirs.columns:
        return _verdict(False, f"columns differ from the local sweep's: {mine.columns}")
    differ = [c for c in mine.columns if not mine[c].equals(theirs[c])]
    if differ:
        return _verdict(False, f"{differ} differ from the local executor's results")
    return _verdict(True, f"the same {frame.height} rows as the local executor, bit for bit "
                          "(timings aside)")


@exercise("13.2", hint="(dask_sec x workers - serial_sec) / tasks x 1000")
def check_overhead_ms(answer, *, dask_sec: float, serial_sec: float, workers: int,
                      tasks: int) -> Verdict:
    """Exercise 13.2: Dask's overhead per task in milliseconds: the worker time the run
    used, ``dask_sec * workers``, minus the work itself, ``serial_sec``, per task."""
    expected = (dask_sec * workers - serial_sec) / tasks * 1000
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
        return _verdict(False, "give a number of milliseconds")
    if abs(answer - expected) <= 0.01 * abs(expected) + 1e-6:
        return _verdict(True, f"{expected:.2f} ms of each task's worker time is not the backtest")
    hint = " (in seconds? multiply by 1000)" if abs(answer * 1000 - expected) <= 0.01 * abs(expected) \
        else " (workers x wall time is what the cluster spent; the serial time is the work)"
    return _verdict(False, f"{answer!r} is not {expected:.2f}{hint}")


@exercise("13.3", hint="RedisStore.key((source, interval, symbol, chunk start)) names it: wb:v1:md:...")
def check_redis_key(answer, key=("yahoo", "1d", "AAPL", "2020-01-01")) -> Verdict:
    """Exercise 13.3: the Redis key under which the shared store keeps ``key``'s chunk."""
    from workbench.store.redis import RedisStore

    expected = RedisStore.key(key)
    if isinstance(answer, bytes):
        answer = answer.decode()
    if answer == expected:
        return _verdict(True, f"{expected}: versioned (v1), one escaped part per key part")
    return _verdict(False, f"{answer!r} is not the key; the store names keys wb:v<version>:md:"
                           "<source>:<interval>:<symbol>:<chunk start>")
