"""Ticks <-> bars: synthetic ticks from OHLCV bars, and OHLCV bars from ticks.

``bars_to_ticks(bars, interval)`` runs the Numba bridge (:mod:`kernels.bars`) over a
frame in the :func:`workbench.data.yahoo.load_bars` schema and returns ticks
``symbol, ts (UTC, ns), price (f64), qty (i64)``. ``ticks_to_bars(ticks, interval)``
aggregates ticks with polars ``group_by_dynamic`` into ``symbol, ts, open, high, low,
close, volume``. The two are exact inverses on OHLCV: bars rebuilt from generated ticks
equal the input bars.

Bar windows: intraday bars cover ``[ts, ts + interval)``; a daily bar's ``ts`` is the
local midnight of its exchange day, so daily ticks are spread over the first 23 hours
of that local day (a DST-short day has 23) and daily bars are rebuilt on local calendar
days (``time_zone``).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from kernels import bars as kbars

# The OHLCV columns of every bar frame the workbench returns (Yahoo, the synthetic daily
# sample): one row per symbol and bar start. Yahoo's load_bars adds its session columns
# after these (session_date, exchange_tz, currency, ...: workbench.data.yahoo.YAHOO_BAR_SCHEMA).
BAR_SCHEMA = {
    "symbol": pl.Utf8,
    "ts": pl.Datetime("ns", "UTC"),
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "adj_close": pl.Float64,
    "volume": pl.Int64,
}

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86_400}
TICK_SCHEMA = {"symbol": pl.Utf8, "ts": pl.Datetime("ns", "UTC"), "price": pl.Float64,
               "qty": pl.Int64}


def _interval_ns(interval: str) -> int:
    if interval not in INTERVALS:
        raise ValueError(f"interval={interval!r} must be one of {sorted(INTERVALS)}")
    seconds = INTERVALS[interval]
    return (23 * 3600 if interval == "1d" else seconds) * 1_000_000_000


def bars_to_ticks(bars: pl.DataFrame, interval: str = "1d", ticks_per_bar: int = 20,
                  seed: int = 0) -> pl.DataFrame:
    """``ticks_per_bar`` synthetic ticks per bar (see the module docstring)."""
    if not isinstance(ticks_per_bar, int) or ticks_per_bar < 4:
        raise ValueError(f"ticks_per_bar={ticks_per_bar!r} must be an integer >= 4 "
                         "(open, two extremes, close)")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if isinstance(bars, pl.LazyFrame):
        bars = bars.collect()
    needed = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    missing = [c for c in needed if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    duration = _interval_ns(interval)
    bars = bars.select(needed).with_columns(
        pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"),
        pl.col("open", "high", "low", "close").cast(pl.Float64),
        pl.col("volume").cast(pl.Int64),
    )
    nulls = {c: bars.get_column(c).null_count() for c in needed if bars.get_column(c).null_count()}
    if nulls:
        raise ValueError(f"bars have nulls in {nulls}; drop or fill them first")
    inconsistent = bars.filter(
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("volume") < 0)
    )
    if inconsistent.height:
        row = inconsistent.row(0, named=True)
        raise ValueError(f"{inconsistent.height} bar(s) are not valid OHLCV "
                         f"(low <= open, close <= high, volume >= 0); first: {row}")
    n_bars = bars.height
    n = ticks_per_bar
    start = bars.get_column("ts").dt.epoch("ns").to_numpy()
    out_ts = np.empty(n_bars * n, dtype=np.int64)
    out_price = np.empty(n_bars * n, dtype=np.float64)
    out_qty = np.empty(n_bars * n, dtype=np.int64)
    kbars.bars_to_ticks(
        bars.get_column("open").to_numpy(), bars.get_column("high").to_numpy(),
        bars.get_column("low").to_numpy(), bars.get_column("close").to_numpy(),
        bars.get_column("volume").to_numpy(), np.ascontiguousarray(start),
        np.full(n_bars, duration, dtype=np.int64), n, seed, out_ts, out_price, out_qty,
    )
    return pl.DataFrame({
        "symbol": np.repeat(bars.get_column("symbol").to_numpy(), n),
        "ts": pl.Series(out_ts).cast(pl.Datetime("ns", "UTC")),
        "price": out_price,
        "qty": out_qty,
    }, schema=TICK_SCHEMA)


def ticks_to_bars(ticks: pl.DataFrame | pl.LazyFrame, interval: str = "1d",
                  time_zone: str = "UTC", offset: str | None = None) -> pl.DataFrame:
    """OHLCV bars of ``ticks`` (``symbol, ts, price, qty``) on ``interval`` windows.

    Windows are aligned in ``time_zone`` (the exchange's zone for daily bars) and
    shifted by ``offset`` (e.g. ``"30m"`` for hourly bars that start at :30); ``ts`` is
    returned in UTC.
    """
    _interval_ns(interval)
    lazy = ticks.lazy() if isinstance(ticks, pl.DataFrame) else ticks
    every = interval  # polars spells these the same way ("1m" is a minute there)
    rolled = (
        lazy.with_columns(pl.col("ts").dt.convert_time_zone(time_zone))
        .sort("symbol", "ts")
        .group_by_dynamic("ts", every=every, offset=offset, group_by="symbol",
                          closed="left", label="left", start_by="window")
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
        )
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
        .sort("symbol", "ts")
    )
    return rolled.collect()
