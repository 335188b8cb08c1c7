"""The small generated samples kept in ``data/`` (regenerate: ``python -m workbench data make-samples``).

Everything here is synthetic and seeded, so regenerating gives the same contents:

``sim_events.parquet``   one simulated session (3 symbols, 09:30-16:00) of L3 events,
                         columns = ``kernels.records.EVENT`` fields
``sim_trades.parquet``   its trades, columns = ``kernels.records.FILL`` fields
``sim_bars_1m.parquet``  1-minute OHLCV bars of those trades (``workbench.data.bars``)
``synthetic_daily.parquet``  a year of seeded daily bars for three tickers in the
                         ``load_bars`` schema (the Yahoo loader's offline stand-in)
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl

SAMPLE_SEED = 20_240_808
SAMPLE_SYMBOLS = ("SYN0", "SYN1", "SYN2")
SAMPLE_TICKERS = ("AAA", "BBB", "CCC")


def sample_market():
    """The simulated session behind the samples (also handy in notebooks)."""
    from .synthetic import simulate

    return simulate(n_symbols=3, seed=SAMPLE_SEED, rate=0.25, symbols=SAMPLE_SYMBOLS)


def make_samples(out: str | Path) -> list[Path]:
    from .bars import ticks_to_bars
    from .synthetic import synthetic_bars

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    market = sample_market()
    written = []

    def save(frame: pl.DataFrame, name: str):
        path = out / name
        frame.write_parquet(path, compression="zstd", compression_level=19, statistics=False)
        written.append(path)

    save(market.events_frame(), "sim_events.parquet")
    trades = market.trades_frame()
    save(trades, "sim_trades.parquet")
    # the session's ns-after-midnight, placed on a (fictional) New York trading day
    day_ns = (date(2024, 8, 8).toordinal() - date(1970, 1, 1).toordinal()) * 86_400 * 10**9
    ticks = trades.select(
        pl.col("symbol").replace_strict(dict(enumerate(market.symbols)), return_dtype=pl.Utf8),
        (pl.col("ts") + day_ns).cast(pl.Datetime("ns")).dt.replace_time_zone("America/New_York")
        .dt.convert_time_zone("UTC").alias("ts"),
        (pl.col("price") / market.price_scale).alias("price"),
        pl.col("qty"),
    )
    save(ticks_to_bars(ticks, "1m", time_zone="America/New_York"), "sim_bars_1m.parquet")
    save(synthetic_bars(list(SAMPLE_TICKERS), "2024-01-01", "2025-01-01", "1d", seed=SAMPLE_SEED),
         "synthetic_daily.parquet")
    return written


def load_sample(name: str, directory: str | Path | None = None) -> pl.DataFrame:
    """One of the samples by file name (``"sim_events.parquet"``)."""
    if not directory:   # the clone's data/, else the copy inside an installed wheel
        directory = Path(__file__).resolve().parents[2] / "data"
        if not (directory / name).is_file():
            directory = Path(__file__).resolve().parent / "embedded"
    path = directory / name
    if not path.is_file():
        raise FileNotFoundError(f"sample {path} not found; run python -m workbench data make-samples")
    return pl.read_parquet(path)


ENV_SHARED_DIR = "WORKBENCH_SHARED_DIR"


def shared_data_dir() -> "Path | None":
    """``../shared/data`` beside the checkout (real data for demos), or None when absent.

    ``WORKBENCH_SHARED_DIR`` names another directory instead (a lab server's copy); one
    that does not exist means "no shared data", which is how the notebooks' fallbacks to
    the embedded samples are tried on a machine that has ``../shared``."""
    override = os.environ.get(ENV_SHARED_DIR, "").strip()
    path = Path(override) if override else Path(__file__).resolve().parents[3] / "shared" / "data"
    return path if path.is_dir() else None


def load_sample_events(directory: str | Path | None = None):
    """``sim_events.parquet`` back as a ``kernels.records.EVENT`` array, ready for an Engine."""
    from kernels import records as R

    from .convert import to_records

    return to_records(load_sample("sim_events.parquet", directory), R.EVENT)


def sample_l2(symbol: int | str = 0):
    """The embedded session as a depth feed (Binance-style L2) would publish it: a
    ``MarketData`` of kind ``"l2"`` for the L2 backtester and its queue models when no
    real capture is at hand. After every L3 event of ``symbol``, one depth row carries the
    new absolute size of the level the event touched; each execution is preceded by a
    trade row (its price and quantity, the aggressor's side). The sample replays without
    a reject, so these rows rebuild exactly the L3 events' top of book, and an L2 run can
    be compared with the exact-queue L3 run on the very same flow."""
    import numpy as np

    from kernels import records as R

    from .market import MarketData, load_events

    md = load_events("synthetic", symbol=symbol)
    ev = md.events
    orders: dict[int, tuple[int, int]] = {}      # order id -> (side, price)
    levels: dict[tuple[int, int], int] = {}      # (side, price) -> size
    rows = []
    for k, (ts, oid, price, qty, kind, side) in enumerate(zip(
            ev["ts"].tolist(), ev["order_id"].tolist(), ev["price"].tolist(),
            ev["qty"].tolist(), ev["kind"].tolist(), ev["side"].tolist())):
        if kind == R.EV_ADD:
            orders[oid] = (side, price)
            levels[(side, price)] = levels.get((side, price), 0) + qty
        elif kind in (R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE):
            side, price = orders[oid]
            if kind == R.EV_EXECUTE:
                rows.append((ts, ts, k, k, -1, price, qty, 0, 1 - side, R.L2F_TRADE))
            levels[(side, price)] -= qty
        else:
            continue
        rows.append((ts, ts, k, k, -1, price, levels[(side, price)], 0, side,
                     R.L2F_END_OF_MESSAGE))
    out = np.array(rows, dtype=R.L2_UPDATE)
    tick = md.tick
    low = (int(out["price"].min()) // tick - 1_000) * tick
    n_levels = (int(out["price"].max()) - low) // tick + 1_001
    return MarketData(out, tick, md.price_scale, md.name + " (L2 view)", kind="l2",
                      ladder=(low, n_levels))
