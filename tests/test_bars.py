"""Bars -> synthetic ticks -> bars: exact round trip, determinism, plausible paths."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import shared_path
from workbench.data.bars import bars_to_ticks, ticks_to_bars
from workbench.data.synthetic import synthetic_bars

OHLCV = ["symbol", "ts", "open", "high", "low", "close", "volume"]


def read_ohlcv_csv(name, symbol, zone):
    frame = pl.read_csv(shared_path("ohlcv", name)).rename({"": "ts"})
    ts = pl.col("ts").str.to_datetime(time_unit="ns").dt.replace_time_zone(zone).dt.convert_time_zone("UTC")
    return frame.select(
        pl.lit(symbol).alias("symbol"), ts.alias("ts"),
        pl.col("Open").cast(pl.Float64).alias("open"), pl.col("High").cast(pl.Float64).alias("high"),
        pl.col("Low").cast(pl.Float64).alias("low"), pl.col("Close").cast(pl.Float64).alias("close"),
        pl.col("Volume").cast(pl.Int64).alias("volume"))


def assert_round_trip(bars, interval, zone="UTC", offset=None, seed=0, n=12):
    ticks = bars_to_ticks(bars, interval, ticks_per_bar=n, seed=seed)
    assert ticks.height == n * bars.height
    rebuilt = ticks_to_bars(ticks, interval, time_zone=zone, offset=offset)
    expected = bars.select(OHLCV).sort("symbol", "ts")
    assert rebuilt.select(OHLCV).equals(expected), "bars rebuilt from ticks differ"
    return ticks


def test_goog_daily_round_trip_is_exact():
    bars = read_ohlcv_csv("GOOG.csv", "GOOG", "America/New_York")
    # the file has a few bars whose open/close lie outside high/low: not valid OHLCV
    valid = bars.filter((pl.col("low") <= pl.min_horizontal("open", "close"))
                        & (pl.col("high") >= pl.max_horizontal("open", "close")))
    assert valid.height > 2000
    assert_round_trip(valid, "1d", zone="America/New_York")


def test_eurusd_hourly_round_trip_is_exact():
    bars = read_ohlcv_csv("EURUSD.csv", "EURUSD", "UTC").head(3000)
    assert_round_trip(bars, "1h")


@pytest.mark.parametrize("interval, offset", [("1m", None), ("15m", None), ("1h", "30m")])
def test_synthetic_intraday_round_trip(interval, offset):
    bars = synthetic_bars(["AAA", "BBB"], "2024-03-04", "2024-03-07", interval, seed=3)
    assert_round_trip(bars, interval, offset=offset)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1000), st.floats(0, 0.2), st.floats(0, 1), st.floats(0, 1),
                          st.integers(0, 10**9)), min_size=1, max_size=20),
       st.integers(4, 40), st.integers(0, 2**31))
def test_any_valid_bars_round_trip(specs, n, seed):
    rows = []
    for i, (low, width, o, c, volume) in enumerate(specs):
        high = low * (1 + width)
        rows.append({"symbol": "X", "ts": datetime(2024, 1, 1, tzinfo=timezone.utc).replace(hour=i),
                     "open": low + o * (high - low), "high": high, "low": low,
                     "close": low + c * (high - low), "volume": volume})
    bars = pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    assert_round_trip(bars, "1h", seed=seed, n=n)


def test_ticks_are_deterministic_inside_the_bar_and_plausibly_ordered():
    bars = synthetic_bars(["AAA"], "2024-03-04", "2024-03-09", "15m", seed=1)
    a = bars_to_ticks(bars, "15m", seed=5)
    b = bars_to_ticks(bars, "15m", seed=5)
    c = bars_to_ticks(bars, "15m", seed=6)
    assert a.equals(b) and not a.equals(c)
    n = 20
    ts = a["ts"].dt.epoch("ns").to_numpy().reshape(-1, n)
    starts = bars["ts"].dt.epoch("ns").to_numpy()
    assert (np.diff(ts, axis=1) > 0).all()
    assert (ts[:, 0] >= starts).all() and (ts[:, -1] < starts + 900 * 10**9).all()
    price = a["price"].to_numpy().reshape(-1, n)
    up = (bars["close"] > bars["open"]).to_numpy()
    low_first = price.argmin(axis=1) < price.argmax(axis=1)
    assert (low_first[up]).all()  # closes up: open -> low -> high -> close
    down = (bars["close"] < bars["open"]).to_numpy()
    assert (~low_first[down]).all()
    # the bridge wanders between anchors rather than jumping straight to them
    interior = np.abs(np.diff(price, axis=1)).sum(axis=1)
    assert np.median(interior) > np.median((bars["high"] - bars["low"]).to_numpy())


def test_volume_split_is_exact_and_spread():
    bars = synthetic_bars(["AAA"], "2024-03-04", "2024-03-05", "5m", seed=2)
    ticks = bars_to_ticks(bars, "5m", ticks_per_bar=10)
    qty = ticks["qty"].to_numpy().reshape(-1, 10)
    assert np.array_equal(qty.sum(axis=1), bars["volume"].to_numpy())
    assert (qty > 0).mean() > 0.9


@pytest.mark.parametrize("change, field", [
    ({"low": 1e9}, "not valid OHLCV"), ({"volume": -1}, "not valid OHLCV"),
])
def test_invalid_bars_are_rejected(change, field):
    bars = synthetic_bars(["AAA"], "2024-03-04", "2024-03-05", "1d").with_columns(
        **{k: pl.lit(v) for k, v in change.items()})
    with pytest.raises(ValueError, match=field):
        bars_to_ticks(bars, "1d")
    with pytest.raises(ValueError, match="ticks_per_bar"):
        bars_to_ticks(bars, "1d", ticks_per_bar=3)
    with pytest.raises(ValueError, match="interval"):
        bars_to_ticks(bars, "2d")
