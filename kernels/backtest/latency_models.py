"""Latency models for the backtester: how long feed, order entry and responses take.

A latency model is any kernel (or user ``@numba.njit`` function) with the signature::

    latency(kind, ts, params, table, rng) -> int64 nanoseconds

``kind`` is ``LAT_FEED`` (exchange event -> the strategy sees it), ``LAT_ENTRY``
(strategy decision -> the order reaches the book) or ``LAT_RESPONSE`` (a fill/ack at
the exchange -> the strategy learns it); ``ts`` the time the message starts (ns);
``params`` a float64 array (the bundled models read ``params[kind]`` as a constant);
``table`` a 2-D int64 array of measured latencies, one row per kind (may have 0
columns); ``rng`` a 1-element int64 array holding a splitmix64 state (use
:func:`next_random` so reruns are bit-identical).

Bundled: :func:`constant_latency` and :func:`sampled_latency` (uniform draws from the
measured row of ``table``, falling back to the constant when the row is empty). The
backtester passes :func:`sampled_latency` for constants too (an empty table), so one
compiled loop per strategy (``workbench.backtest.loopcache``) serves both.
"""
from __future__ import annotations

import numpy as np

from ..jit import kernel

LAT_FEED = 0
LAT_ENTRY = 1
LAT_RESPONSE = 2
N_LAT_KINDS = 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@kernel(inline="always")
def next_random(rng):
    """Next uniform 64-bit value of the splitmix64 stream kept in ``rng[0]`` (as uint64)."""
    z = np.uint64(rng[0]) + _GOLDEN
    rng[0] = np.int64(z)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@kernel
def constant_latency(kind, ts, params, table, rng):
    """``params[kind]`` ns, always."""
    return np.int64(params[kind])


@kernel
def sampled_latency(kind, ts, params, table, rng):
    """A uniform draw from ``table[kind]`` (measured values, ns); the constant if empty."""
    m = table.shape[1]
    if m == 0:
        return np.int64(params[kind])
    j = np.int64(next_random(rng) % np.uint64(m))
    return table[kind, j]
