"""Bars -> synthetic ticks: a Brownian bridge through open, the two extremes, and close.

Owns :func:`bars_to_ticks`. Every bar becomes ``n`` ticks (``n >= 4``) whose first price
is the open, last price the close, maximum exactly the high and minimum exactly the low,
with timestamps strictly inside the bar and sizes summing exactly to the bar's volume,
so rebuilding bars from the ticks gives back the input OHLCV bit for bit.

The extremes are visited in the plausible order, the one with the shorter path:
a bar that closes above its open goes open -> low -> high -> close, one that closes
below goes open -> high -> low -> close (ties: the extreme nearer the open first).
Between anchors the path is a Brownian bridge clipped to ``[low, high]`` (the legs
before an extreme stay clear of it). Deterministic
given ``seed``.
"""
from __future__ import annotations

import math

import numpy as np

from kernels.jit import kernel


@kernel(inline="always")
def _bridge(price, a, b, va, vb, scale, low, high):
    """Fill price[a+1 .. b-1] with a Brownian bridge from va (at a) to vb (at b)."""
    if b - a < 2:
        return
    span = b - a
    walk = 0.0
    # simulate the free walk first, remembering it, then pin both ends
    for i in range(a + 1, b + 1):
        walk += np.random.normal() * scale
        price[i] = walk
    end_walk = price[b]
    for i in range(a + 1, b):
        frac = (i - a) / span
        x = va + (vb - va) * frac + price[i] - frac * end_walk
        if x > high:
            x = high
        elif x < low:
            x = low
        price[i] = x
    price[b] = vb


@kernel
def bars_to_ticks(open_, high, low, close, volume, start_ns, duration_ns, n, seed,
                  out_ts, out_price, out_qty):
    """Write ``n`` ticks per bar into ``out_*`` (length ``n * n_bars``).

    ``start_ns[i]`` is bar i's open time and ``duration_ns[i]`` its length; prices are
    floats (the bars' own values are copied, never recomputed, so they round trip).
    """
    np.random.seed(seed)
    n_bars = open_.shape[0]
    for b in range(n_bars):
        base = b * n
        o = open_[b]
        h = high[b]
        lo = low[b]
        c = close[b]
        # anchor positions of the two extremes: 0 < i1 < i2 < n - 1
        i1 = 1 + int(np.random.random() * (n - 3))
        if i1 > n - 3:
            i1 = n - 3
        i2 = i1 + 1 + int(np.random.random() * (n - 2 - i1))
        if i2 > n - 2:
            i2 = n - 2
        if c > o:
            low_first = True
        elif c < o:
            low_first = False
        else:
            low_first = (o - lo) < (h - o)
        price = out_price[base:base + n]
        price[0] = o
        price[i1] = lo if low_first else h
        price[i2] = h if low_first else lo
        price[n - 1] = c
        scale = (h - lo) / math.sqrt(n) if h > lo else 0.0
        # Each leg may overshoot its ends a little but never reaches the extreme that is
        # still to come, so the first touch of the low and of the high keep their order.
        if low_first:
            _bridge(price, 0, i1, o, lo, scale, lo, o + 0.5 * (h - o))
            _bridge(price, i1, i2, lo, h, scale, lo, h)
            _bridge(price, i2, n - 1, h, c, scale, c - 0.5 * (c - lo), h)
        else:
            _bridge(price, 0, i1, o, h, scale, o - 0.5 * (o - lo), h)
            _bridge(price, i1, i2, h, lo, scale, lo, h)
            _bridge(price, i2, n - 1, lo, c, scale, lo, c + 0.5 * (h - c))
        # times: strictly increasing, strictly inside [start, start + duration)
        step = duration_ns[b] // n
        for i in range(n):
            jitter = int(np.random.random() * step) if step > 1 else 0
            out_ts[base + i] = start_ns[b] + i * step + jitter
        # volume: integer exponential weights (small, so v * w cannot overflow),
        # floors of the proportional shares, then the remainder one unit at a time
        v = volume[b]
        weight_sum = 0
        for i in range(n):
            w = 1 + int(np.random.exponential(256.0))
            out_qty[base + i] = w
            weight_sum += w
        assigned = 0
        for i in range(n):
            share = (v * out_qty[base + i]) // weight_sum
            out_qty[base + i] = share
            assigned += share
        left = v - assigned
        while left > 0:
            out_qty[base + int(np.random.random() * n) % n] += 1
            left -= 1
