"""VWAP from Python: the validation boundary of ``kernels.vwap``, and a speed comparison.

:func:`vwap` is the total volume-weighted average price of a trade list, :func:`rolling`
the VWAP of a trailing time window at every trade. Both check their input once here
(1-d arrays of one length, finite prices, quantities >= 0, int64 sums that cannot
overflow) and raise ``ValueError`` naming the field; the kernels then only see valid data.
Zero total volume (an empty list, or only zero quantities) has no VWAP: :func:`vwap`
returns ``None`` (as ``Engine.vwap`` does for an empty side) and :func:`rolling` gives
NaN for the rows whose window holds no volume.

Integer inputs are the engine's price units and quantities: summed exactly in int64.
``price_scale`` (e.g. ``workbench.data.prices.PRICE_SCALE``) turns the result into a
price; leave it ``None`` to get units back.

:func:`speed_table` times the SIMD kernel, its scalar twin, the exact integer kernel and
numpy on the same arrays (medians of several runs, ratios against the scalar kernel
measured in the same run), next to what ``workbench.asm`` finds in each kernel's machine
code.
"""
from __future__ import annotations

import functools
import math
import time

import numpy as np

from kernels import vwap as kv

__all__ = ["vwap", "rolling", "checked_trades", "checked_window", "trade_arrays", "speed_table", "VARIANTS"]

_INT_LIMIT = 2.0 ** 62   # the int64 sums stay below this (a margin under 2**63)


def _array(values, field: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{field} must be 1-d, got shape {a.shape}")
    if a.dtype.kind not in "iuf" or a.dtype == np.bool_:
        raise ValueError(f"{field} must hold numbers, got dtype {a.dtype}")
    return a


def _pair(prices, qtys) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both arrays checked; ``(p, q, exact)`` with ``exact`` for an all-integer pair
    (int64 arrays) else float64 arrays."""
    p, q = _array(prices, "prices"), _array(qtys, "qtys")
    if len(p) != len(q):
        raise ValueError(f"prices has {len(p)} values and qtys {len(q)}: one per trade")
    exact = p.dtype.kind in "iu" and q.dtype.kind in "iu"
    if exact:
        p, q = _as_int64(p, "prices"), _as_int64(q, "qtys")
    else:
        p = np.ascontiguousarray(p, dtype=np.float64)
        q = np.ascontiguousarray(q, dtype=np.float64)
        for a, field in ((p, "prices"), (q, "qtys")):
            if not np.isfinite(a).all():
                i = int(np.flatnonzero(~np.isfinite(a))[0])
                raise ValueError(f"{field}[{i}]={a[i]!r} must be finite")
    if len(q) and q.min() < 0:
        i = int(np.argmin(q))
        raise ValueError(f"qtys[{i}]={q[i]!r} must be >= 0 (a traded quantity)")
    if exact and len(p) and float(np.abs(p).max()) * float(q.sum(dtype=np.float64)) >= _INT_LIMIT:
        raise ValueError("prices x qtys could overflow the exact int64 sums (max |price| x "
                         "total qty >= 2**62): pass float64 arrays instead")
    return p, q, exact


def _as_int64(a: np.ndarray, field: str) -> np.ndarray:
    if a.dtype == np.uint64 and len(a) and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{field} holds values above int64's range")
    return np.ascontiguousarray(a, dtype=np.int64)


def vwap(prices, qtys, price_scale: int | None = None) -> float | None:
    """The VWAP of trades ``(prices[i], qtys[i])``, or ``None`` when the volume is 0.

    int arrays: exact int64 sums (``kernels.vwap.vwap_units``); float arrays: the
    vectorised float64 kernel (``vwap_simd``). ``price_scale``: divide the result by it."""
    p, q, exact = _pair(prices, qtys)
    scale = _scale(price_scale)
    if exact:
        num, den = kv.vwap_units(p, q)
        return None if den == 0 else (int(num) / int(den)) / scale   # Python ints: one rounding
    value = kv.vwap_simd(p, q)
    return None if math.isnan(value) else float(value) / scale


def _scale(price_scale) -> float:
    if price_scale is None:
        return 1.0
    if isinstance(price_scale, bool) or not isinstance(price_scale, (int, np.integer)) \
            or price_scale <= 0:
        raise ValueError(f"price_scale={price_scale!r} must be a positive integer or None")
    return float(price_scale)


def checked_trades(ts, prices, qtys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ts, prices, qtys)`` as int64 arrays, checked: integer nanoseconds in time order,
    integer price units and quantities >= 0, one of each per trade, int64 sums safe."""
    t = _array(ts, "ts")
    if t.dtype.kind not in "iu":
        raise ValueError(f"ts must be integer nanoseconds, got dtype {t.dtype}")
    p, q, exact = _pair(prices, qtys)
    if not exact:
        raise ValueError("prices and qtys must be integers here (price units: exact running "
                         "sums); convert prices with Engine.to_units or * price_scale")
    if len(t) != len(p):
        raise ValueError(f"ts has {len(t)} values and prices {len(p)}: one per trade")
    t = _as_int64(t, "ts")
    if len(t) > 1 and (np.diff(t) < 0).any():
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise ValueError(f"ts[{i}]={t[i]} is earlier than ts[{i - 1}]={t[i - 1]}: sort the "
                         "trades by time")
    return t, p, q


def checked_window(window_ns) -> np.int64:
    if isinstance(window_ns, bool) or not isinstance(window_ns, (int, np.integer)) \
            or window_ns <= 0:
        raise ValueError(f"window_ns={window_ns!r} must be a positive integer (ns)")
    return np.int64(window_ns)


def rolling(ts, prices, qtys, window_ns: int, price_scale: int | None = None) -> np.ndarray:
    """At every trade ``i``, the VWAP of trades ``j <= i`` with ``ts[j] > ts[i] -
    window_ns`` (float64, NaN where that window traded no volume). ``ts``: int
    nanoseconds, non-decreasing; prices and quantities: integers (price units)."""
    t, p, q = checked_trades(ts, prices, qtys)
    window = checked_window(window_ns)
    scale = _scale(price_scale)
    out = np.empty(len(t), dtype=np.float64)
    kv.rolling_vwap(t, p, q, window, out)
    return out / scale if scale != 1.0 else out


def trade_arrays(trades) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ts, price, qty)`` int64 arrays of FILL records (``kernels.records.FILL``:
    ``SimulatedMarket.trades``, ``BatchResult.fills``), sorted by time."""
    names = getattr(getattr(trades, "dtype", None), "names", None) or ()
    if not {"ts", "price", "qty"} <= set(names):
        raise ValueError("trades must be FILL records (fields ts, price, qty)")
    order = np.argsort(trades["ts"], kind="stable")
    return tuple(np.ascontiguousarray(trades[f][order], dtype=np.int64)
                 for f in ("ts", "price", "qty"))


# name -> (what it is, the kernel behind it or None for numpy)
VARIANTS = {
    "simd (float64, reassoc)": ("kernels.vwap.vwap_simd", kv.vwap_simd),
    "scalar (float64, strict)": ("kernels.vwap.vwap_scalar", kv.vwap_scalar),
    "exact (int64 units)": ("kernels.vwap.vwap_units", kv.vwap_units),
    "numpy (p*q).sum() / q.sum()": ("numpy's own loops: a temporary, three passes", None),
    "numpy dot (BLAS) / sum": ("np.dot(p, q) / q.sum(): OpenBLAS, may start threads", None),
}


def speed_table(n: int = 1_000_000, repeats: int = 7, seed: int = 0):
    """Time every variant of :data:`VARIANTS` on ``n`` trades (median of ``repeats``
    runs, after one warm-up each) and say whether its loop vectorised
    (``workbench.asm.vector_report``). Columns: variant, source, median_us, ns_per_trade,
    speedup_vs_scalar, vectorised, vector_bits, vwap."""
    import numba
    import polars as pl

    from . import asm

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    units = rng.integers(990_000, 1_010_000, n, dtype=np.int64)   # $99-101 in 1e-4 units
    qty_i = rng.integers(1, 1_000, n, dtype=np.int64)
    price_f, qty_f = units / 10_000.0, qty_i.astype(np.float64)
    kernels = {  # name -> (kernel or None for numpy, its arguments)
        "simd (float64, reassoc)": (kv.vwap_simd, (price_f, qty_f)),
        "scalar (float64, strict)": (kv.vwap_scalar, (price_f, qty_f)),
        "exact (int64 units)": (kv.vwap_units, (units, qty_i)),
        "numpy (p*q).sum() / q.sum()": (None, (price_f, qty_f)),
        "numpy dot (BLAS) / sum": (None, (price_f, qty_f)),
    }
    rows = []
    for name, (dispatcher, args) in kernels.items():
        numpy_fn = _numpy_dot_vwap if "dot" in name else _numpy_vwap
        call = functools.partial(dispatcher if dispatcher is not None else numpy_fn, *args)
        result = call()   # warm-up (compiles or loads from the cache)
        value = float(result[0] / result[1]) / 10_000.0 if isinstance(result, tuple) else result
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - t0)
        report = None
        if dispatcher is not None:
            report = asm.vector_report(dispatcher, tuple(numba.typeof(a) for a in args))
        rows.append({"variant": name, "source": VARIANTS[name][0],
                     "median_us": float(np.median(times)) / 1e3,
                     "ns_per_trade": float(np.median(times)) / n,
                     "vectorised": None if report is None else report.vectorised,
                     "vector_bits": None if report is None else report.width_bits,
                     "vwap": float(value)})
    frame = pl.DataFrame(rows)
    scalar = frame.filter(pl.col("variant") == "scalar (float64, strict)")["median_us"][0]
    return frame.with_columns((scalar / pl.col("median_us")).alias("speedup_vs_scalar")).select(
        "variant", "source", "median_us", "ns_per_trade", "speedup_vs_scalar", "vectorised",
        "vector_bits", "vwap")


def _numpy_vwap(prices, qtys) -> float:
    return float((prices * qtys).sum() / qtys.sum())


def _numpy_dot_vwap(prices, qtys) -> float:
    return float(np.dot(prices, qtys) / qtys.sum())
