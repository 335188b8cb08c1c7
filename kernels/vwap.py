"""Volume-weighted average prices: a SIMD total, its scalar twin, a rolling window, a staged pass.

``VWAP = sum(price * qty) / sum(qty)``. Three compiled versions of the total show what
the compiler may and may not do with one loop:

* :func:`vwap_simd` (float64) is compiled with the ``reassoc`` and ``contract`` fast-math
  flags: the compiler may reorder the two sums, so LLVM splits each into several vector
  accumulators (4 doubles per ``ymm`` register with AVX2, several registers in flight)
  and fuses multiply and add (``vfmadd...pd``).
* :func:`vwap_scalar` (float64) is the same loop with IEEE semantics. Floating-point
  addition is not associative, so every ``num += p * q`` must wait for the previous
  one: a loop-carried dependency. LLVM keeps it scalar (``vmulsd``/``vaddsd``), one add
  latency (about 4 cycles) per trade.
* :func:`vwap_units` (int64 price units and quantities, the engine's representation)
  sums exactly in integers. Integer addition *is* associative, so it vectorises with no
  flag at all (``vpaddq``, ``vpmullq`` with AVX-512, an emulated 64-bit multiply with AVX2).
  The caller guarantees the notional fits an int64 (``workbench.vwap`` checks it).

:func:`rolling_vwap` is the VWAP of a trailing time window at every trade (exact int64
running sums: add the new trade, drop the trades that left the window; no drift).
:func:`trade_stages` runs a small analytics pass in four stages and reads the monotonic
clock (``kernels.clock.now_ns``) between them, which is how ``workbench.profiling``
times the stages of a compiled kernel: Numba has no line profiler.

Contract: 1-d arrays; zero total volume gives NaN (and zero-volume windows NaN rows).
Arrays of different lengths, or an ``out`` too short, are answered with NaN / -1, never a
read past an end. Validation of values (finite prices, quantities >= 0, no overflow) is
the Python layer's job (``workbench.vwap``).
"""
from __future__ import annotations

import numpy as np

from .clock import now_ns
from .jit import kernel

__all__ = ["vwap_simd", "vwap_scalar", "vwap_units", "rolling_vwap", "trade_stages",
           "STAGES", "FASTMATH"]

# Only what a vectorised reduction needs: reorder the adds, fuse multiply-add. No
# "nnan"/"ninf" (NaN and infinity keep their meaning) and no "arcp".
FASTMATH = frozenset({"reassoc", "contract"})


@kernel(fastmath=set(FASTMATH))
def vwap_simd(prices, qtys):
    """sum(p * q) / sum(q) of float64 arrays; sums may be reordered (vectorised)."""
    n = prices.shape[0]
    if qtys.shape[0] != n:
        return np.nan
    num = 0.0
    den = 0.0
    for i in range(n):
        num += prices[i] * qtys[i]
        den += qtys[i]
    if den == 0.0:
        return np.nan
    return num / den


@kernel
def vwap_scalar(prices, qtys):
    """sum(p * q) / sum(q) of float64 arrays in strict order (a dependency chain)."""
    n = prices.shape[0]
    if qtys.shape[0] != n:
        return np.nan
    num = 0.0
    den = 0.0
    for i in range(n):
        num += prices[i] * qtys[i]
        den += qtys[i]
    if den == 0.0:
        return np.nan
    return num / den


@kernel
def vwap_units(prices, qtys):
    """(notional, volume): exact int64 sums of p * q and q (vectorised; no fast-math)."""
    n = prices.shape[0]
    num = np.int64(0)
    den = np.int64(0)
    if qtys.shape[0] != n:
        return num, np.int64(-1)
    for i in range(n):
        num += prices[i] * qtys[i]
        den += qtys[i]
    return num, den


@kernel
def rolling_vwap(ts, prices, qtys, window_ns, out):
    """``out[i]``: VWAP of trades ``j <= i`` with ``ts[j] > ts[i] - window_ns`` (NaN
    when their volume is 0). ``ts`` non-decreasing, int64 everything. Returns the rows
    written, or -1 when the lengths disagree or ``out`` is too short."""
    n = ts.shape[0]
    if prices.shape[0] != n or qtys.shape[0] != n or out.shape[0] < n:
        return -1
    num = np.int64(0)
    den = np.int64(0)
    first = 0
    for i in range(n):
        num += prices[i] * qtys[i]
        den += qtys[i]
        edge = ts[i] - window_ns
        while first < i and ts[first] <= edge:
            num -= prices[first] * qtys[first]
            den -= qtys[first]
            first += 1
        out[i] = num / den if den != 0 else np.nan
    return n


# The stages of trade_stages, in order (marks[k] .. marks[k + 1] is STAGES[k]).
STAGES = ("volume_scan", "vwap_total", "rolling_window", "deviation")


@kernel(fastmath=set(FASTMATH))
def trade_stages(ts, prices, qtys, window_ns, out, marks):
    """An analytics pass over trades, timed per stage: ``marks[0]`` before the first
    stage and ``marks[k + 1]`` after stage ``k`` (``now_ns``; ``len(STAGES) + 1`` slots).

    Stages: the volume and the zero-quantity trades (``volume_scan``), the total VWAP
    (``vwap_total``, vectorised), the rolling VWAP into ``out`` (``rolling_window``,
    sequential) and the largest distance of a trade from its rolling VWAP
    (``deviation``). Returns ``(zero_qty_trades, vwap, max_deviation)``: NaN and -1 on
    bad shapes (nothing timed)."""
    n = ts.shape[0]
    if (prices.shape[0] != n or qtys.shape[0] != n or out.shape[0] < n
            or marks.shape[0] < 5):
        return -1, np.nan, np.nan
    marks[0] = now_ns()
    zero = 0
    volume = np.int64(0)
    for i in range(n):
        volume += qtys[i]
        zero += 1 if qtys[i] == 0 else 0
    marks[1] = now_ns()
    num = 0.0
    for i in range(n):
        num += np.float64(prices[i]) * np.float64(qtys[i])
    total = num / volume if volume != 0 else np.nan
    marks[2] = now_ns()
    rolling_vwap(ts, prices, qtys, window_ns, out)
    marks[3] = now_ns()
    worst = 0.0
    for i in range(n):
        d = abs(prices[i] - out[i])
        if d > worst:   # NaN rows (zero-volume windows) compare False: skipped
            worst = d
    marks[4] = now_ns()
    return zero, total, worst
