"""How deep and wide a book is, and its depth over time: the numbers behind notebook 11's
tables and its depth heatmap (``workbench.plots.depth_heatmap_figure`` draws them).

* :func:`book_shape` / :func:`shape_table`: one book's (or every book's) shape now: levels
  per side and where they live (the engine's price window or its overflow), the touch,
  the farthest prices, the span in ticks, and how far from its side's best price the
  resting orders sit (quantiles in ticks, weighted by order).
* :func:`depth_over_time`: replay feed events into an engine through the engine's own
  batch path (``Engine.apply``, the kernels every replay uses) and read one book's best
  ``levels`` per side at evenly spaced times, summed into price bins: the cells of a
  depth heatmap (time x price -> resting size).

Everything is read from the engine's arrays with the book kernels' views
(``kernels.book.top_levels``); prices come out as prices, sides as names.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kernels import book as kbook
from kernels import records as R

from .book import Engine, OrderBook

__all__ = ["book_shape", "shape_table", "DepthOverTime", "depth_over_time"]

_SIDES = ((R.BUY, "bid"), (R.SELL, "ask"))


def _book_index(engine, symbol) -> tuple[int, str]:
    """(book index, name) of ``symbol`` in an Engine, or of an OrderBook's one book."""
    if isinstance(engine, OrderBook):
        if symbol is not None and symbol != engine.symbol:
            raise ValueError(f"symbol={symbol!r} but this OrderBook is {engine.symbol!r}")
        return 0, engine.symbol
    if not isinstance(engine, Engine):
        raise ValueError(f"engine must be a workbench Engine or OrderBook, got "
                         f"{type(engine).__name__}")
    if symbol is None:
        if len(engine.symbols) != 1:
            raise ValueError(f"symbol=None but the engine holds {len(engine.symbols)} books; "
                             "name one")
        symbol = engine.symbols[0]
    return engine.symbol_index(symbol), symbol


def _side_levels(engine, book: int, side: int, n: int | None = None):
    """(price units, qty, orders) arrays of one side's best ``n`` levels (all by default)."""
    if n is None:
        n = int(engine.state.books[book]["n_levels"][side])
    n = max(int(n), 0)
    prices = np.empty(n, np.int64)
    qty = np.empty(n, np.int64)
    count = np.empty(n, np.int64)
    k = kbook.top_levels(engine.state, book, side, prices, qty, count) if n else 0
    return prices[:k], qty[:k], count[:k]


def book_shape(engine, symbol: str | None = None) -> dict:
    """The shape of one book now (module doc). Prices as prices (None for an empty side);
    distances in ticks from the side's best price, over resting orders."""
    book, name = _book_index(engine, symbol)
    b = engine.state.books[book]
    tick = int(b["tick"])
    scale = engine.price_scale
    out = {"symbol": name, "tick": tick / scale, "orders": int(b["orders"].sum())}
    distances, extremes = [], {}
    for side, label in _SIDES:
        prices, _, count = _side_levels(engine, book, side)
        out[f"{label}_levels"] = int(len(prices))
        out[f"{label}_overflow_levels"] = int(b["n_ovf"][side])
        extremes[label] = (int(prices[0]), int(prices[-1])) if len(prices) else None
        if len(prices):
            distances.append(np.repeat(np.abs(prices - prices[0]) // tick, count))
    bid, ask = extremes["bid"], extremes["ask"]
    out["best_bid"] = bid[0] / scale if bid else None
    out["best_ask"] = ask[0] / scale if ask else None
    out["lowest_bid"] = bid[1] / scale if bid else None
    out["highest_ask"] = ask[1] / scale if ask else None
    low = bid[1] if bid else (ask[0] if ask else None)
    high = ask[1] if ask else (bid[0] if bid else None)
    out["span_ticks"] = (high - low) // tick if low is not None else 0
    d = np.concatenate(distances) if distances else np.zeros(0, np.int64)
    for label, q in (("median", 50), ("p90", 90), ("p99", 99)):
        out[f"{label}_ticks_from_touch"] = float(np.percentile(d, q)) if len(d) else None
    out["max_ticks_from_touch"] = int(d.max()) if len(d) else None
    return out


_SHAPE_SCHEMA = {
    "symbol": pl.Utf8, "tick": pl.Float64, "orders": pl.Int64, "bid_levels": pl.Int64,
    "bid_overflow_levels": pl.Int64, "ask_levels": pl.Int64, "ask_overflow_levels": pl.Int64,
    "best_bid": pl.Float64, "best_ask": pl.Float64, "lowest_bid": pl.Float64,
    "highest_ask": pl.Float64, "span_ticks": pl.Int64, "median_ticks_from_touch": pl.Float64,
    "p90_ticks_from_touch": pl.Float64, "p99_ticks_from_touch": pl.Float64,
    "max_ticks_from_touch": pl.Int64,
}


def shape_table(engine, symbols=None) -> pl.DataFrame:
    """:func:`book_shape` of every book of ``engine`` (or of ``symbols``), one row each."""
    if symbols is None:
        symbols = [engine.symbol] if isinstance(engine, OrderBook) else engine.symbols
    rows = [book_shape(engine, s) for s in symbols]
    return pl.DataFrame(rows, schema=_SHAPE_SCHEMA, orient="row")


@dataclass
class DepthOverTime:
    """One book's depth at evenly spaced times (:func:`depth_over_time`).

    ``cells``: one row per (snapshot, side, price bin) holding resting size: ``t0``,
    ``t1`` (the interval the snapshot closes, datetimes), ``side`` (bid/ask),
    ``price_lo``, ``price_hi`` (the bin, prices), ``qty``, ``orders``.
    ``touch``: one row per snapshot: ``time``, ``best_bid``, ``best_ask`` (null when
    a side is empty), ``far_levels`` (best levels left out by ``max_ticks``)."""

    symbol: str
    cells: pl.DataFrame
    touch: pl.DataFrame
    price_bin: float
    levels: int

    @property
    def snapshots(self) -> int:
        return self.touch.height


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def depth_over_time(engine, events: np.ndarray, symbol: str | None = None, *,
                    snapshots: int = 120, levels: int = 40, price_bin: float | None = None,
                    max_ticks: int | None = None) -> DepthOverTime:
    """Apply ``events`` (``kernels.records.EVENT``, sorted by ``ts``, any books of
    ``engine``) and read ``symbol``'s best ``levels`` per side after each of
    ``snapshots`` equal slices of the events' time span. The events of one timestamp are
    never split, so no half-applied instant is read. Levels are summed into bins of
    ``price_bin`` (a price; default one tick). ``max_ticks`` leaves out levels more than
    that many ticks from their side's best price (stub quotes would stretch the price
    axis a million-fold); ``touch`` counts them in ``far_levels``. Fills the engine makes
    (an ``EV_ADD`` that crosses) are applied and discarded; feed kinds never match."""
    if not isinstance(events, np.ndarray) or events.dtype != R.EVENT or events.ndim != 1:
        raise ValueError("events must be a 1-d array of kernels.records.EVENT")
    if len(events) == 0:
        raise ValueError("events is empty: nothing to replay")
    book, name = _book_index(engine, symbol)
    snapshots = _count(snapshots, "snapshots", 1)
    levels = _count(levels, "levels", 1)
    if max_ticks is not None:
        max_ticks = _count(max_ticks, "max_ticks", 0)
    ts = events["ts"]
    if np.any(np.diff(ts) < 0):
        raise ValueError("events must be sorted by ts (a feed's order)")
    tick = int(engine.state.books[book]["tick"])
    scale = engine.price_scale
    if price_bin is None:
        bin_units = tick
    else:
        if isinstance(price_bin, bool) or not isinstance(price_bin, (int, float)) or not price_bin > 0:
            raise ValueError(f"price_bin={price_bin!r} must be a positive price")
        bin_units = round(price_bin * scale)
        if bin_units < tick or bin_units % tick:
            raise ValueError(f"price_bin={price_bin!r} must be a multiple of the tick "
                             f"{tick / scale:g} of {name}")
    edges = np.linspace(int(ts[0]), int(ts[-1]), snapshots + 1).round().astype(np.int64)
    cuts = np.searchsorted(ts, edges[1:], side="right")
    cuts[-1] = len(events)
    fills = np.zeros(4096, dtype=R.FILL)
    n_rows = snapshots * 2 * levels
    snap = np.empty(n_rows, np.int64)
    sides = np.empty(n_rows, np.int8)
    prices = np.empty(n_rows, np.int64)
    qtys = np.empty(n_rows, np.int64)
    counts = np.empty(n_rows, np.int64)
    touch = np.full((snapshots, 2), -1, np.int64)
    far = np.zeros(snapshots, np.int64)
    rows = 0
    done = 0
    for k, cut in enumerate(cuts):
        chunk = events[done:cut]
        start = 0
        while start < len(chunk):
            start, _ = engine.apply(chunk, fills, start=start)
        done = cut
        for side, _ in _SIDES:
            p, q, c = _side_levels(engine, book, side, levels)
            if len(p):
                touch[k, side] = p[0]
                if max_ticks is not None:
                    near = np.abs(p - p[0]) <= max_ticks * tick
                    far[k] += len(p) - int(near.sum())
                    p, q, c = p[near], q[near], c[near]
            n = len(p)
            snap[rows:rows + n] = k
            sides[rows:rows + n] = side
            prices[rows:rows + n] = p
            qtys[rows:rows + n] = q
            counts[rows:rows + n] = c
            rows += n
    bins = prices[:rows] // bin_units
    raw = pl.DataFrame({"snapshot": snap[:rows], "side": sides[:rows], "bin": bins,
                        "qty": qtys[:rows], "orders": counts[:rows]})
    t0 = pl.Series(edges[:-1]).cast(pl.Datetime("ns"))
    t1 = pl.Series(edges[1:]).cast(pl.Datetime("ns"))
    times = pl.DataFrame({"snapshot": np.arange(snapshots, dtype=np.int64), "t0": t0, "t1": t1})
    cells = (raw.group_by("snapshot", "side", "bin", maintain_order=True)
             .agg(pl.col("qty").sum(), pl.col("orders").sum())
             .join(times, on="snapshot", how="left")
             .select("t0", "t1",
                     pl.when(pl.col("side") == R.BUY).then(pl.lit("bid")).otherwise(pl.lit("ask"))
                     .alias("side"),
                     (pl.col("bin") * bin_units / scale).alias("price_lo"),
                     ((pl.col("bin") + 1) * bin_units / scale).alias("price_hi"),
                     "qty", "orders"))
    best = np.where(touch >= 0, touch / scale, np.nan)
    touch_frame = pl.DataFrame({"time": t1, "best_bid": pl.Series(best[:, R.BUY]).fill_nan(None),
                                "best_ask": pl.Series(best[:, R.SELL]).fill_nan(None),
                                "far_levels": far})
    return DepthOverTime(name, cells, touch_frame, bin_units / scale, levels)
