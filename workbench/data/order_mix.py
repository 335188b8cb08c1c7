"""The benchmark order-entry mix (``kernels.flow``) as EVENT arrays, with its settings.

``order_mix(n)`` gives ``n`` events shaped like matching-engine benchmarks' flows
(about 1,000 resting orders over about 750 price levels; mostly passive GTC adds, some
marketable IOC orders, cancels, moves and reductions). Every event is valid at its
point in the flow, so a fresh book replays it without a reject.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels import book_state
from kernels import flow
from kernels import records as R

from .prices import PRICE_SCALE


@dataclass(frozen=True)
class MixSettings:
    """What the mix's book needs: replay into ``OrderBook(tick_size=..., price_levels=...)``."""

    tick_size: float = 0.01
    price_scale: int = PRICE_SCALE
    price_levels: int = 8192
    mid: float = 100.0
    half_span_ticks: int = 600     # passive orders up to this far behind the mid: ~750 levels occupied
    target_resting: int = 1_000
    p_ioc: float = 0.05
    p_cancel: float = 0.35
    p_move: float = 0.08
    p_reduce: float = 0.02
    capacity: int = 16_384         # room for the ~1k resting orders; a small index stays in cache

    def new_book(self, symbol: str = "MIX", record_fills: bool = True):
        """A fresh ``OrderBook`` with the settings the mix needs."""
        from workbench.book import OrderBook

        return OrderBook(symbol, tick_size=self.tick_size, price_scale=self.price_scale,
                         capacity=self.capacity, price_levels=self.price_levels,
                         record_fills=record_fills)


def order_mix(n: int, seed: int = 0, settings: MixSettings = MixSettings()) -> np.ndarray:
    """``n`` EVENT records of the mix for symbol 0, deterministic by ``seed``."""
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    tick = round(settings.tick_size * settings.price_scale)
    mid = round(settings.mid * settings.price_scale)
    state = book_state.allocate_state(1, n + 16, settings.price_levels, [tick])
    scratch_fills = np.zeros(n + 16, dtype=R.FILL)
    events = np.zeros(n, dtype=R.EVENT)
    live = np.zeros(n, dtype=np.int64)
    flow.generate_order_mix(state, scratch_fills, events, seed, mid, tick, settings.half_span_ticks,
                            settings.target_resting, settings.p_ioc, settings.p_cancel,
                            settings.p_move, settings.p_reduce, live)
    return events
