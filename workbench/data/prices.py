"""Prices as integers: the one price scale and the conversions to and from currency.

The engine stores every price as an integer number of ``1 / price_scale`` currency
units (LOBSTER's convention: dollars x 10 000), so matching never compares floats.
``PRICE_SCALE`` is the default everywhere (engine, loaders, simulator, FIX, pipeline);
a source with finer prices (Binance) carries its own scale with its data. These
helpers are the only place a float price and an integer price meet.
"""
from __future__ import annotations

import numpy as np

__all__ = ["PRICE_SCALE", "to_units", "to_price", "price_expr"]

PRICE_SCALE = 10_000


def to_units(price, price_scale: int = PRICE_SCALE):
    """Currency -> integer price units (rounded to the nearest unit); arrays stay arrays."""
    if isinstance(price, np.ndarray):
        return np.rint(price * price_scale).astype(np.int64)
    return int(round(float(price) * price_scale))


def to_price(units, price_scale: int = PRICE_SCALE):
    """Integer price units -> currency (float); arrays stay arrays."""
    if isinstance(units, np.ndarray):
        return units / float(price_scale)
    return float(units) / price_scale


def price_expr(column: str, price_scale: int = PRICE_SCALE):
    """A polars expression: ``column`` in price units as currency."""
    import polars as pl

    return pl.col(column) / float(price_scale)
