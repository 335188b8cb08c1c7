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
           "overload_figure", "depth_heatmap_figure", "batching_figure", "vwap_figure",
           "timing_bars_figure", "price_impact_figure", "pool_prices_figure",
           "opportunities_figure"]

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
    fig.legend.click_policy = "hide"
    fig.add_layout(fig.legend[0], "right")  # beside the plot: the legend never covers a level
    fig.y_range.start = 0
    return fig


def _price_label(price: float) -> str:
    """A price as people write it: at least two decimals, more only when the tick has them
    (100.00, 99.995), never a float's artefacts (100.0, 100.01999999)."""
    text = f"{price:.8f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def ladder_figure(book_or_engine, symbol: str | None = None, n: int = 10, *, width: int = 640,
                  height: int | None = None):
    """A price ladder: one row per price, best prices in the middle; bid quantity grows to
    the left (green), ask quantity to the right (red). Returns a bokeh ``row`` layout."""
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource, FactorRange, Range1d
    from bokeh.plotting import figure

    table = depth_table(book_or_engine, symbol, n)
    _, name, _ = _book_depth(book_or_engine, symbol, 1)
    table = table.with_columns(pl.col("price").map_elements(_price_label, return_dtype=pl.Utf8)
                               .alias("label"))
    # Highest price on top. A categorical axis draws its first factor at the bottom, so
    # the factors run up the page: bids worst..best, then asks best..worst.
    asks, bids = table.filter(pl.col("side") == "ask"), table.filter(pl.col("side") == "bid")
    factors = bids["label"].reverse().to_list() + asks["label"].to_list()
    y_range = FactorRange(factors=factors)
    height = height or max(200, 22 * len(factors) + 80)
    # One quantity scale for both sides, so bar lengths compare across the spread. The bid
    # side runs from the top quantity (left) to 0 (centre): an explicit range, because a
    # flipped auto range with its start pinned at 0 collapses to [0, 0] (an empty plot).
    top = 1.08 * max(table["qty"].max() or 0, 1)
    figs = []
    for side, frame, color in (("bid", bids, BID_COLOR), ("ask", asks, ASK_COLOR)):
        source = ColumnDataSource({**_columns(frame), "label": frame["label"].to_list()},
                                  name=f"{side}_source")
        x_range = Range1d(top, 0) if side == "bid" else Range1d(0, top)
        fig = figure(y_range=y_range, x_range=x_range, width=width // 2, height=height,
                     x_axis_label=f"{side} qty",
                     title=f"{name} {side}s" if side == "bid" else "asks", toolbar_location=None,
                     tooltips=[("price", "@label"), ("qty", "@qty"), ("orders", "@orders")])
        fig.hbar(y="label", left=0, right="qty", height=0.8, source=source, color=color,
                 name=f"{side}_ladder")
        fig.text(x=0, y="label", text="orders", source=source, text_font_size="9pt",
                 text_baseline="middle", x_offset=3 if side == "ask" else -3,
                 text_align="left" if side == "ask" else "right")
        if side == "bid":  # bids grow leftwards from the centre line
            fig.yaxis.visible = False
        else:
            fig.yaxis.axis_label = "price"
        figs.append(fig)
    return row(*figs)


def lobster_match_plot(check, window: int = 1000, *, max_points: int = 4000, width: int = 800,
                       height: int = 300):
    """Share of LOBSTER rows whose top levels the engine reproduced, over a trailing
    ``window`` of messages, against the time of day (a clock-time axis; the source keeps
    ``hours`` after midnight too).

    ``check`` is a ``workbench.lobster_check.LobsterCheck``; the rate is its
    ``rolling_match_rate(window)``. At most ``max_points`` points are drawn (every
    k-th message) so a long day stays light in the notebook.
    """
    from bokeh.models import ColumnDataSource, DatetimeTickFormatter, Span
    from bokeh.plotting import figure

    if getattr(check, "matched_flags", None) is None or getattr(check, "ts", None) is None:
        raise ValueError("check must be a LobsterCheck returned by lobster_check (with matched_flags and ts)")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window={window!r} must be a positive number of messages")
    if max_points < 2:
        raise ValueError(f"max_points={max_points} must be at least 2")
    rate = check.rolling_match_rate(window)
    step = max(1, -(-len(rate) // max_points))
    source = ColumnDataSource({"hours": check.ts[::step] / 3.6e12, "time": check.ts[::step] / 1e6,
                               "match_pct": 100.0 * rate[::step]}, name="match_source")
    fig = figure(title=(f"Engine vs LOBSTER: {window}-message rolling match rate; "
                        f"{check.matched_pct:.1f}% of {check.rows:,} rows overall (dashed), "
                        f"{check.resyncs:,} resyncs"),
                 width=width, height=height, x_axis_type="datetime", x_axis_label="time of day",
                 y_axis_label="rows matched (%)",
                 tooltips=[("time", "@time{%H:%M:%S.%3N}"), ("matched", "@match_pct{0.0}%")])
    fig.hover.formatters = {"@time": "datetime"}
    fig.line(x="time", y="match_pct", source=source, line_width=1.5, name="match_rate")
    # the files count ns from midnight: a clock time, not a date (no "Jan 01, 1970")
    fig.xaxis.formatter = DatetimeTickFormatter(hours="%H:%M", minutes="%H:%M", minsec="%H:%M:%S",
                                                seconds="%H:%M:%S", milliseconds="%H:%M:%S.%3N",
                                                context=None)
    fig.add_layout(Span(location=check.matched_pct, dimension="width", line_dash="dashed",
                        line_color="gray"))
    fig.y_range.end = 101
    return fig


# ------------------------------------------------------------ admission control
# Latency axes (ns) on a log scale: ticks at 1-2-5 x 10^k, fewer when the range spans many
# decades, evenly spaced ones when it spans less than half a decade (bokeh's own log ticker
# falls back to linear ticks below two decades, which bunch at the top of the axis), and
# labels with a unit ("200 us", "2 ms") instead of "2.000e+6".
_LATENCY_TICKS_JS = """
const lo = Math.max(Math.min(cb_data.start, cb_data.end), 1e-3);
const hi = Math.max(cb_data.start, cb_data.end, lo * 1.0001);
const decades = Math.log10(hi / lo);
if (decades < 0.5) {
    const step = 10 ** Math.floor(Math.log10((hi - lo) / 2));
    const m = (hi - lo) / step > 10 ? 5 : (hi - lo) / step > 4 ? 2 : 1;
    const ticks = [];
    for (let t = Math.ceil(lo / (m * step)) * m * step; t <= hi; t += m * step) ticks.push(t);
    return ticks;
}
const mantissas = decades > 3 ? [1] : decades > 1.5 ? [1, 3] : [1, 2, 5];
const every = Math.max(1, Math.ceil(decades / 6));
const ticks = [];
for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
    if (k % every) continue;
    for (const m of mantissas) {
        const t = m * 10 ** k;
        if (t >= lo && t <= hi) ticks.push(t);
    }
}
return ticks;
"""
_LATENCY_LABEL_JS = """
const a = Math.abs(tick);
const [d, unit] = a >= 1e9 ? [1e9, "s"] : a >= 1e6 ? [1e6, "ms"] : a >= 1e3 ? [1e3, "\u00b5s"] : [1, "ns"];
return (+(tick / d).toPrecision(3)) + " " + unit;
"""


def latency_axis(axis) -> None:
    """Make a log-scale axis of nanoseconds readable: 1-2-5 ticks that never bunch, and
    labels with their unit (``fig.yaxis``, ``fig.xaxis``; the live monitor uses it too)."""
    from bokeh.models import CustomJSTickFormatter, CustomJSTicker

    for a in (axis if isinstance(axis, (list, tuple)) else [axis]):
        a.ticker = CustomJSTicker(major_code=_LATENCY_TICKS_JS)
        a.formatter = CustomJSTickFormatter(code=_LATENCY_LABEL_JS)


def _legend_beside(fig) -> None:
    """The legend right of the plot (it never covers a line); click an entry to hide it."""
    if fig.legend:
        legend = fig.legend[0]
        legend.click_policy = "hide"
        legend.label_text_font_size = "8pt"
        fig.add_layout(legend, "right")


def trace_figure(runs: Iterable[dict], target_ns: float, every: int = 50, *, width: int = 860):
    """Bokeh: admitted messages' latency along the trace for each
    ``workbench.live.overload.simulate_admission`` run (every ``every``-th message, for a
    light plot: ``admitted_latency_trace``). The legend sits right of the plot: click a
    controller to hide its line."""
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    from workbench.live.overload import admitted_latency_trace

    f = figure(title="end-to-end latency of admitted messages (model queue), target dashed",
               y_axis_type="log", x_axis_label="time (ms)", y_axis_label="latency",
               width=width, height=340)
    for run, color in zip(runs, Category10[10]):
        points = admitted_latency_trace(run, every)
        f.line(points["t_ms"], points["latency_ns"], color=color,
               legend_label=f"{run['controller']} x{run['load']:g}")
    f.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    latency_axis(f.yaxis)
    _legend_beside(f)
    return f


def overload_figure(frame, target_ns: float, *, width: int = 860):
    """Bokeh: p99 and goodput against load, one line per controller, from
    ``workbench.live.overload.overload_sweep``'s frame: two plots, one above the other on
    the same load axis, legends right of them (click a controller to hide it)."""
    from bokeh.layouts import column
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    common = dict(width=width, height=260, x_axis_label="load (x capacity)")
    f1 = figure(title="p99 end to end vs load (target dashed)", y_axis_type="log",
                y_axis_label="p99 latency", **common)
    f2 = figure(title="goodput (within 1.1x target) / capacity (0.9 dotted)",
                y_axis_label="goodput / capacity", x_range=f1.x_range, **common)
    for name, color in zip(frame["controller"].unique(maintain_order=True), Category10[10]):
        part = frame.filter(frame["controller"] == name).sort("load")
        x = part["load"].to_list()
        f1.line(x, part["p99_ns"].to_list(), color=color, legend_label=name)
        f1.scatter(x, part["p99_ns"].to_list(), color=color, legend_label=name)
        f2.line(x, part["goodput_ratio"].to_list(), color=color, legend_label=name)
        f2.scatter(x, part["goodput_ratio"].to_list(), color=color, legend_label=name)
    f1.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    f2.add_layout(Span(location=0.9, dimension="width", line_dash="dotted", line_color="black"))
    latency_axis(f1.yaxis)
    for f in (f1, f2):
        _legend_beside(f)
    return column(f1, f2)


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


# ------------------------------------------------------------------------- batching
def batching_figure(windows, target_us: float, *, width: int = 860):
    """Batching runs over time, from ``workbench.batching.compare``'s frame (or
    ``BatchRun.windows`` frames concatenated): the p99 latency of each window against the
    target (dashed), the mean batch size, and the offered load, one colour per ``policy``,
    sharing the time axis. Legends sit right of the plots (click one to hide its line).
    Glyph names: ``"p99:<policy>"``, ``"batch:<policy>"``, ``"offered"``."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, FixedTicker, NumeralTickFormatter, Range1d, Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    needed = {"policy", "t_ms", "p99_us", "batch_mean", "arrivals_per_s"}
    if not hasattr(windows, "columns") or not needed <= set(windows.columns):
        raise ValueError(f"windows must be a frame with columns {sorted(needed)} "
                         "(workbench.batching.compare or BatchRun.windows)")
    # equal plot frames and left borders keep the three time axes aligned; the legend
    # column (about 150 px) comes on top of the frame
    common = dict(frame_width=max(int(width) - 230, 200), min_border_left=70,
                  tools="pan,xwheel_zoom,box_zoom,reset,save")
    # the view opens on the schedule (runs that fell behind drain long after it: pan right)
    offered = windows.filter(windows["arrivals_per_s"] > 0)["t_ms"]
    step = float(windows["t_ms"].unique().sort().diff().drop_nulls().min() or 1.0) \
        if windows.height > 1 else 1.0
    end = float(offered.max()) + step if offered.len() else step
    lat = figure(title="p99 latency per window (log scale) vs the target", y_axis_type="log",
                 y_axis_label="p99 (us)", frame_height=210, x_range=Range1d(0.0, end), **common)
    size = figure(title="mean batch size per window (log scale)", y_axis_type="log",
                  y_axis_label="items per batch", frame_height=150, x_range=lat.x_range, **common)
    load = figure(title="offered load", y_axis_label="items/s", x_axis_label="time (ms)",
                  frame_height=90, x_range=lat.x_range, **common)
    policies = windows["policy"].unique(maintain_order=True).to_list()
    for name, color in zip(policies, Category10[10] * (len(policies) // 10 + 1)):
        part = windows.filter(windows["policy"] == name)
        src = ColumnDataSource({c: part[c].to_numpy() for c in ("t_ms", "p99_us", "batch_mean")})
        lat.line("t_ms", "p99_us", source=src, color=color, line_width=1.5, legend_label=name,
                 name=f"p99:{name}")
        size.line("t_ms", "batch_mean", source=src, color=color, line_width=1.5,
                  legend_label=name, name=f"batch:{name}")
    if policies:
        first = windows.filter(windows["policy"] == policies[0])
        load.step("t_ms", "arrivals_per_s", mode="after", color="gray", name="offered",
                  source=ColumnDataSource({c: first[c].to_numpy() for c in ("t_ms", "arrivals_per_s")}))
    lat.add_layout(Span(location=target_us, dimension="width", line_dash="dashed",
                        line_color="black", line_width=1.5))
    _legend_beside(lat)
    _legend_beside(size)
    size.yaxis.ticker = FixedTicker(ticks=[2 ** k for k in range(17)])
    load.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
    return column(lat, size, load)


# ------------------------------------------------------------ VWAP and timings (lesson 16)
def vwap_figure(ts_ns, prices, rolling, *, window_label: str = "rolling VWAP", every: int = 1,
                width: int = 860, height: int = 320):
    """Trades (dots) and a rolling VWAP (line) over the session: ``ts_ns`` nanoseconds
    since midnight, ``prices`` and ``rolling`` in prices (``workbench.vwap.rolling``'s
    output). Every ``every``-th trade is drawn (a light plot); the time axis reads
    hours:minutes; the legend sits right of the plot (click to hide)."""
    from bokeh.models import ColumnDataSource, DatetimeTickFormatter
    from bokeh.plotting import figure

    every = max(1, int(every))
    t_ms = [t / 1e6 for t in ts_ns[::every]]
    fig = figure(title=f"trades and their {window_label}", x_axis_type="datetime",
                 x_axis_label="time of day", y_axis_label="price", width=width, height=height,
                 tools="pan,xwheel_zoom,box_zoom,reset,save")
    trades = ColumnDataSource({"t": t_ms, "price": list(prices[::every])}, name="trades_source")
    line = ColumnDataSource({"t": t_ms, "vwap": list(rolling[::every])}, name="vwap_source")
    fig.scatter("t", "price", source=trades, size=2, alpha=0.35, color="gray",
                legend_label="trades", name="trades")
    fig.line("t", "vwap", source=line, line_width=2, color="#1f77b4", legend_label=window_label,
             name="vwap")
    fig.xaxis.formatter = DatetimeTickFormatter(hours="%H:%M", minutes="%H:%M",
                                                seconds="%H:%M:%S", milliseconds="%H:%M:%S.%3N")
    legend = fig.legend[0]
    legend.click_policy = "hide"
    legend.label_text_font_size = "8pt"
    fig.add_layout(legend, "right")
    return fig


def timing_bars_figure(frame: pl.DataFrame, label: str, value: str, *, title: str,
                       unit: str = "ns", width: int = 860, height: int | None = None):
    """Horizontal bars of ``frame[value]`` per ``frame[label]`` (a stage profile from
    ``workbench.profiling``, a speed table from ``workbench.vwap.speed_table``), the
    first row on top; the value and its unit in the hover."""
    from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter
    from bokeh.plotting import figure

    if label not in frame.columns or value not in frame.columns:
        raise ValueError(f"frame needs columns {label!r} and {value!r}, has {frame.columns}")
    labels = [str(x) for x in frame[label].to_list()]
    source = ColumnDataSource({"label": labels, "value": frame[value].to_list()},
                              name="bars_source")
    fig = figure(title=title, y_range=FactorRange(factors=labels[::-1]), width=width,
                 height=height or 70 + 34 * len(labels), x_axis_label=f"{value} ({unit})",
                 tools="save", toolbar_location=None,
                 tooltips=[("", "@label"), (value, f"@value{{0,0.[000]}} {unit}")])
    fig.hbar(y="label", left=0, right="value", height=0.7, source=source, color="#1f77b4",
             name="bars")
    fig.x_range.start = 0
    fig.xaxis.formatter = NumeralTickFormatter(format="0,0.[00]")   # 300,000 not 3.000e+5
    return fig


# ------------------------------------------------------------------------------- DeFi
def price_impact_figure(table: pl.DataFrame, *, width: int = 860, height: int = 340):
    """What a swap costs against the pool's spot price, by its size (% of the reserve paid
    into, log axis): the total cost per fee tier (solid) and the price impact alone (dashed,
    of the first tier: the fee barely changes it), from
    ``workbench.defi.price_impact_table``. Glyph names ``"cost_<fee>"``, ``"impact"``."""
    from bokeh.models import ColumnDataSource
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    fig = figure(title="cost of a swap against the spot price, by size", x_axis_type="log",
                 y_axis_type="log", x_axis_label="size (% of the reserve paid into)",
                 y_axis_label="cost (% of the trade's value)", width=width, height=height,
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    fees = table["fee_bps"].unique(maintain_order=True).to_list()
    for fee, color in zip(fees, Category10[10]):
        part = table.filter(pl.col("fee_bps") == fee)
        source = ColumnDataSource({c: part[c].to_numpy() for c in part.columns})
        fig.line("size_pct_of_reserve", "total_cost_pct", source=source, color=color, line_width=2,
                 legend_label=f"fee {fee / 100:g} % + impact", name=f"cost_{fee}")
        fig.scatter("size_pct_of_reserve", "total_cost_pct", source=source, color=color, size=5,
                    legend_label=f"fee {fee / 100:g} % + impact")
        if fee == fees[0]:
            fig.line("size_pct_of_reserve", "impact_pct", source=source, color="black",
                     line_dash="dashed", legend_label="price impact alone", name="impact")
    _legend_beside(fig)
    return fig


def pool_prices_figure(prices: pl.DataFrame, title: str, *, width: int = 860, height: int = 360):
    """One pair's price on every venue after each swap (steps) and the market price it is
    pulled back to (dashed), from ``workbench.defi.pair_prices``. A gap between two venues
    wider than their two fees is a cross-pool arbitrage. Glyph names ``"price_<dex>"``,
    ``"market_price"``."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    fig = figure(title=title, x_axis_type="datetime", x_axis_label="time", y_axis_label="price",
                 width=width, height=height, tools="pan,xwheel_zoom,box_zoom,reset,save")
    steps = []
    for dex, color in zip(prices["dex"].unique(maintain_order=True).to_list(), Category10[10]):
        part = prices.filter(pl.col("dex") == dex)
        source = ColumnDataSource({"time": part["time"].to_numpy(), "price": part["price"].to_numpy()})
        steps.append(fig.step("time", "price", source=source, mode="after", color=color,
                              legend_label=dex, name=f"price_{dex}"))
    market = ColumnDataSource({"time": prices["time"].to_numpy(),
                               "price": prices["market_price"].to_numpy()})
    fig.line("time", "price", source=market, color="black", line_dash="dashed",
             legend_label="market", name="market_price")
    fig.add_tools(HoverTool(renderers=steps, formatters={"@time": "datetime"},
                            tooltips=[("time", "@time{%H:%M:%S}"), ("price", "@price{0,0.00[00]}")]))
    _legend_beside(fig)
    return fig


def opportunities_figure(opps: pl.DataFrame, *, width: int = 860, height: int = 340):
    """Each arbitrage the detector recorded: when, and its exact profit in USD (log axis),
    cross-pool and triangular apart, from ``Detection.opportunities()``. Glyph names
    ``"opps_cross-pool"``, ``"opps_triangular"``."""
    from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, NumeralTickFormatter
    from bokeh.plotting import figure

    fig = figure(title="arbitrage opportunities after each swap (exact profit at the optimal size)",
                 x_axis_type="datetime", y_axis_type="log", x_axis_label="time",
                 y_axis_label="profit (USD)", width=width, height=height,
                 tools="pan,xwheel_zoom,box_zoom,reset,save")
    dots = []
    for kind, color in (("cross-pool", "#d62728"), ("triangular", "#1f77b4")):
        part = opps.filter(pl.col("kind") == kind)
        source = ColumnDataSource({"time": part["time"].to_numpy(),
                                   "profit_usd": part["profit_usd"].to_numpy(),
                                   "path": part["path"].to_list(), "pools": part["pools"].to_list(),
                                   "size": part["size"].to_numpy(), "token": part["token"].to_list()})
        dots.append(fig.scatter("time", "profit_usd", source=source, color=color, size=4, alpha=0.5,
                                legend_label=f"{kind} ({part.height:,})", name=f"opps_{kind}"))
    fig.add_tools(HoverTool(renderers=dots, formatters={"@time": "datetime"}, tooltips=[
        ("time", "@time{%H:%M:%S}"), ("path", "@path"), ("pools", "@pools"),
        ("size", "@size{0,0.[0000]} @token"), ("profit (USD)", "@profit_usd{0,0.00}")]))
    # 1-2-5 ticks (bokeh's log ticker turns linear on a range under two decades and bunches)
    fig.yaxis.ticker = FixedTicker(ticks=[m * 10.0**e for e in range(-2, 8) for m in (1, 2, 5)])
    fig.yaxis.formatter = NumeralTickFormatter(format="$0,0")
    _legend_beside(fig)
    return fig
