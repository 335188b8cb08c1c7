"""Bokeh plots of order books, replays and admission control: depth chart, price ladder,
LOBSTER match rate, controller traces and overload sweeps.

This module owns the *pictures* of the book and of the live pipeline's overload
results. Following the product rule, the builders compute nothing themselves: they
ask the workbench objects (``OrderBook.depth``, ``Engine.depth``,
``LobsterCheck.rolling_match_rate``, ``workbench.live.overload``'s runs and frames,
``workbench.depth.depth_over_time`` for the depth heatmap)
or the one table function here (``depth_table``) for the numbers and put them, as
they come, into ``ColumnDataSource``s. Every glyph that shows book data has a ``name``
(``"bid_depth"``, ``"ask_depth"``, ``"bid_ladder"``, ``"ask_ladder"``,
``"match_rate"``), so tests and callers can find its source with
``fig.select({"name": ...})``.
"""
from __future__ import annotations

from typing import Iterable

import polars as pl

from .book import Engine, OrderBook

__all__ = ["depth_table", "depth_chart", "ladder_figure", "lobster_match_plot", "trace_figure",
           "overload_figure", "depth_heatmap_figure"]

BID_COLOR = "#2ca02c"
ASK_COLOR = "#d62728"


def _book_depth(book_or_engine, symbol: str | None, n: int) -> tuple[pl.DataFrame, str, float | None]:
    """``depth(n)`` of an OrderBook, or of one symbol of an Engine; with its name and mid."""
    if isinstance(book_or_engine, OrderBook):
        if symbol is not None and symbol != book_or_engine.symbol:
            raise ValueError(f"symbol={symbol!r} but this OrderBook is {book_or_engine.symbol!r}")
        return book_or_engine.depth(n), book_or_engine.symbol, book_or_engine.mid_price
    if isinstance(book_or_engine, Engine):
        if symbol is None:
            if len(book_or_engine.symbols) != 1:
                raise ValueError(f"symbol=None but the engine holds {book_or_engine.symbols}; name one")
            symbol = book_or_engine.symbols[0]
        return book_or_engine.depth(symbol, n), symbol, book_or_engine.mid_price(symbol)
    raise ValueError(f"book_or_engine must be a workbench OrderBook or Engine, got "
                     f"{type(book_or_engine).__name__}")


def depth_table(book_or_engine, symbol: str | None = None, n: int = 20) -> pl.DataFrame:
    """The top ``n`` levels per side (``depth(n)``: side, level, price, qty, orders) plus
    ``cum_qty``: the quantity from the touch down to and including each level, i.e.
    what a market order of that size would sweep. Bids then asks, best first."""
    depth, _, _ = _book_depth(book_or_engine, symbol, n)
    return depth.with_columns(pl.col("qty").cum_sum().over("side").alias("cum_qty"))


def _columns(frame: pl.DataFrame) -> dict:
    return {name: frame[name].to_numpy() for name in frame.columns if name != "side"}


def depth_chart(book_or_engine, symbol: str | None = None, n: int = 20, *, title: str | None = None,
                width: int = 700, height: int = 350):
    """Cumulative depth chart: bids (green) start at the best bid and step down in price
    (to the left), asks (red) start at the best ask and step up in price (to the right);
    both climb in quantity away from the touch. A dashed line marks the mid.

    The height at a price is the quantity a market order would trade to get there
    (``depth_table``'s ``cum_qty``).
    """
    from bokeh.models import ColumnDataSource, HoverTool, Span
    from bokeh.plotting import figure

    table = depth_table(book_or_engine, symbol, n)
    _, name, mid = _book_depth(book_or_engine, symbol, 1)
    fig = figure(title=title or f"{name}: cumulative depth, top {n} levels per side",
                 width=width, height=height, x_axis_label="price", y_axis_label="cumulative quantity",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    points = []
    for side, color, label in (("bid", BID_COLOR, "bids"), ("ask", ASK_COLOR, "asks")):
        source = ColumnDataSource(_columns(table.filter(pl.col("side") == side)), name=f"{side}_source")
        # Levels come best first, so "after" holds each cumulative quantity from a level's
        # price out to the next worse level, on both sides.
        fig.varea_step(x="price", y1=0, y2="cum_qty", step_mode="after", source=source,
                       fill_color=color, fill_alpha=0.25)
        fig.step(x="price", y="cum_qty", mode="after", source=source, line_color=color, line_width=2,
                 legend_label=label)
        points.append(fig.scatter(x="price", y="cum_qty", source=source, color=color, size=6,
                                  name=f"{side}_depth"))
    if mid is not None:
        fig.add_layout(Span(location=mid, dimension="height", line_dash="dashed", line_color="gray"))
    fig.add_tools(HoverTool(renderers=points, tooltips=[
        ("price", "@price{0.00[00]}"), ("level", "@level"), ("level qty", "@qty"),
        ("cumulative", "@cum_qty"), ("orders", "@orders")]))
    fig.legend.location = "top_center"
    fig.y_range.start = 0
    return fig


def ladder_figure(book_or_engine, symbol: str | None = None, n: int = 10, *, width: int = 640,
                  height: int | None = None):
    """A price ladder: one row per price, best prices in the middle; bid quantity grows to
    the left (green), ask quantity to the right (red). Returns a bokeh ``row`` layout."""
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource, FactorRange
    from bokeh.plotting import figure

    table = depth_table(book_or_engine, symbol, n)
    _, name, _ = _book_depth(book_or_engine, symbol, 1)
    table = table.with_columns(pl.col("price").cast(pl.Utf8).alias("label"))
    # Highest price on top: asks worst..best, then bids best..worst.
    asks, bids = table.filter(pl.col("side") == "ask"), table.filter(pl.col("side") == "bid")
    factors = asks["label"].reverse().to_list() + bids["label"].to_list()
    y_range = FactorRange(factors=factors)
    height = height or max(200, 22 * len(factors) + 80)
    figs = []
    for side, frame, color in (("bid", bids, BID_COLOR), ("ask", asks, ASK_COLOR)):
        source = ColumnDataSource({**_columns(frame), "label": frame["label"].to_list()},
                                  name=f"{side}_source")
        fig = figure(y_range=y_range, width=width // 2, height=height, x_axis_label=f"{side} qty",
                     title=f"{name} {side}s" if side == "bid" else "asks", toolbar_location=None,
                     tooltips=[("price", "@label"), ("qty", "@qty"), ("orders", "@orders")])
        fig.hbar(y="label", left=0, right="qty", height=0.8, source=source, color=color,
                 name=f"{side}_ladder")
        fig.text(x=0, y="label", text="orders", source=source, text_font_size="9pt",
                 text_baseline="middle", x_offset=3 if side == "ask" else -3,
                 text_align="left" if side == "ask" else "right")
        fig.x_range.start = 0
        if side == "bid":
            fig.x_range.flipped = True  # bids grow leftwards from the centre line
            fig.yaxis.visible = False
        else:
            fig.yaxis.axis_label = "price"
        figs.append(fig)
    return row(*figs)


def lobster_match_plot(check, window: int = 1000, *, max_points: int = 4000, width: int = 800,
                       height: int = 300):
    """Share of LOBSTER rows whose top levels the engine reproduced, over a trailing
    ``window`` of messages, against the time of day (hours after midnight).

    ``check`` is a ``workbench.lobster_check.LobsterCheck``; the rate is its
    ``rolling_match_rate(window)``. At most ``max_points`` points are drawn (every
    k-th message) so a long day stays light in the notebook.
    """
    from bokeh.models import ColumnDataSource, Span
    from bokeh.plotting import figure

    if getattr(check, "matched_flags", None) is None or getattr(check, "ts", None) is None:
        raise ValueError("check must be a LobsterCheck returned by lobster_check (with matched_flags and ts)")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window={window!r} must be a positive number of messages")
    if max_points < 2:
        raise ValueError(f"max_points={max_points} must be at least 2")
    rate = check.rolling_match_rate(window)
    step = max(1, -(-len(rate) // max_points))
    source = ColumnDataSource({"hours": check.ts[::step] / 3.6e12, "match_pct": 100.0 * rate[::step]},
                              name="match_source")
    fig = figure(title=(f"Engine vs LOBSTER: {window}-message rolling match rate; "
                        f"{check.matched_pct:.1f}% of {check.rows:,} rows overall (dashed), "
                        f"{check.resyncs:,} resyncs"),
                 width=width, height=height, x_axis_label="hours after midnight",
                 y_axis_label="rows matched (%)",
                 tooltips=[("hour", "@hours{0.000}"), ("matched", "@match_pct{0.0}%")])
    fig.line(x="hours", y="match_pct", source=source, line_width=1.5, name="match_rate")
    fig.add_layout(Span(location=check.matched_pct, dimension="width", line_dash="dashed",
                        line_color="gray"))
    fig.y_range.end = 101
    return fig


# ------------------------------------------------------------ admission control
def trace_figure(runs: Iterable[dict], target_ns: float, every: int = 50):
    """Bokeh: admitted messages' latency along the trace for each
    ``workbench.live.overload.simulate_admission`` run (every ``every``-th message, for a
    light plot: ``admitted_latency_trace``)."""
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    from workbench.live.overload import admitted_latency_trace

    f = figure(title="end-to-end latency of admitted messages (model queue)", y_axis_type="log",
               x_axis_label="time (ms)", y_axis_label="latency (ns)", width=760, height=320)
    for run, color in zip(runs, Category10[10]):
        points = admitted_latency_trace(run, every)
        f.line(points["t_ms"], points["latency_ns"], color=color,
               legend_label=f"{run['controller']} x{run['load']:g}")
    f.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    f.legend.location = "top_left"
    return f


def overload_figure(frame, target_ns: float):
    """Bokeh: p99 and goodput against load, one line per controller, from
    ``workbench.live.overload.overload_sweep``'s frame."""
    from bokeh.layouts import row
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    f1 = figure(title="p99 end to end vs load", y_axis_type="log", x_axis_label="load (x capacity)",
                y_axis_label="ns", width=420, height=320)
    f2 = figure(title="goodput (within 1.1x target) / capacity", x_axis_label="load (x capacity)",
                width=420, height=320)
    for name, color in zip(frame["controller"].unique(maintain_order=True), Category10[10]):
        part = frame.filter(frame["controller"] == name).sort("load")
        x = part["load"].to_list()
        f1.line(x, part["p99_ns"].to_list(), color=color, legend_label=name)
        f1.scatter(x, part["p99_ns"].to_list(), color=color)
        f2.line(x, part["goodput_ratio"].to_list(), color=color, legend_label=name)
        f2.scatter(x, part["goodput_ratio"].to_list(), color=color)
    f1.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    f2.add_layout(Span(location=0.9, dimension="width", line_dash="dotted", line_color="black"))
    f1.legend.location = f2.legend.location = "top_left"
    f1.legend.label_text_font_size = f2.legend.label_text_font_size = "8pt"
    return row(f1, f2)


# ------------------------------------------------------------------ depth heatmap
def depth_heatmap_figure(depth, *, title: str | None = None, height: int = 420):
    """A depth heatmap: time on x, price on y, the resting size of each price bin as
    colour (log scale), with the best bid (green) and best ask (red) drawn over it.

    ``depth`` is a ``workbench.depth.DepthOverTime`` (``depth_over_time``): each of its
    ``cells`` is one rectangle, from ``t0`` to ``t1`` and ``price_lo`` to ``price_hi``.
    The figure stretches to the page width. Glyph names: ``"depth_cells"``,
    ``"best_bid"``, ``"best_ask"``."""
    from bokeh.models import (ColorBar, ColumnDataSource, DatetimeTickFormatter, HoverTool,
                              LogColorMapper)
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    cells, touch = getattr(depth, "cells", None), getattr(depth, "touch", None)
    if cells is None or touch is None:
        raise ValueError("depth must be a DepthOverTime returned by workbench.depth.depth_over_time")
    source = ColumnDataSource({name: cells[name].to_numpy() for name in cells.columns},
                              name="cells_source")
    low = float(cells["qty"].min()) if cells.height else 1.0
    high = float(cells["qty"].max()) if cells.height else 10.0
    mapper = LogColorMapper(palette=Viridis256, low=max(low, 1.0), high=max(high, low + 1.0))
    fig = figure(title=title or (f"{depth.symbol}: resting size over time, best {depth.levels} "
                                 f"levels per side in {depth.price_bin:g} bins"),
                 x_axis_type="datetime", sizing_mode="stretch_width", height=height,
                 x_axis_label="time", y_axis_label="price",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    quads = fig.quad(left="t0", right="t1", bottom="price_lo", top="price_hi", source=source,
                     fill_color={"field": "qty", "transform": mapper}, line_color=None,
                     name="depth_cells")
    lines = ColumnDataSource({name: touch[name].to_numpy() for name in touch.columns},
                             name="touch_source")
    fig.step(x="time", y="best_bid", source=lines, mode="before", line_color=BID_COLOR,
             line_width=1.5, legend_label="best bid", name="best_bid")
    fig.step(x="time", y="best_ask", source=lines, mode="before", line_color=ASK_COLOR,
             line_width=1.5, legend_label="best ask", name="best_ask")
    fig.add_tools(HoverTool(renderers=[quads], formatters={"@t1": "datetime"}, tooltips=[
        ("time", "@t1{%H:%M:%S}"), ("side", "@side"),
        ("price", "@price_lo{0.00[00]} to @price_hi{0.00[00]}"), ("size", "@qty"),
        ("orders", "@orders")]))
    fig.add_layout(ColorBar(color_mapper=mapper, title="resting size"), "right")
    # feeds count ns from midnight: show the time of day only
    fig.xaxis.formatter = DatetimeTickFormatter(hours="%H:%M", minutes="%H:%M", context=None)
    fig.legend.location = "top_left"
    return fig
