"""Bokeh dashboard and HTML report of a ``BacktestResult`` (plot builders only: they read
the result's frames and stats, compute nothing).

Panels: equity / realised P&L, inventory, quotes vs mid with fills, the tick-to-trade
latency by percentile, and a stats table.
"""
from __future__ import annotations

import html
from pathlib import Path

import polars as pl


def _source(frame: pl.DataFrame, columns):
    from bokeh.models import ColumnDataSource

    # raw ns stamps exceed JavaScript's exact integers: the plots use datetimes instead
    data = {c: frame[c].to_numpy() for c in columns if c in frame.columns and c != "ts"}
    data["t"] = frame["ts"].cast(pl.Datetime("ns")).to_numpy()
    return ColumnDataSource(data)


def dashboard(result, width: int = 900):
    from bokeh.layouts import column
    from bokeh.models import DataTable, TableColumn, ColumnDataSource

    from ..latency import LatencyRecorder, percentile_plot
    from bokeh.plotting import figure

    eq = result.equity
    src = _source(eq, ["ts", "equity", "realised", "position", "mid", "bid", "ask",
                       "quote_bid", "quote_ask"])
    pnl = figure(title="P&L (mark to mid)", x_axis_type="datetime", width=width, height=250)
    pnl.line("t", "equity", source=src, legend_label="equity", line_width=2)
    pnl.line("t", "realised", source=src, legend_label="realised", color="gray")
    pnl.legend.location = "top_left"
    inv = figure(title="Inventory", x_axis_type="datetime", width=width, height=180,
                 x_range=pnl.x_range)
    inv.step("t", "position", source=src, mode="after", color="purple")
    quotes = figure(title="Quotes vs mid, fills", x_axis_type="datetime", width=width, height=300,
                    x_range=pnl.x_range)
    quotes.line("t", "mid", source=src, color="black", legend_label="mid")
    quotes.scatter("t", "quote_bid", source=src, color="green", size=2, legend_label="own bid")
    quotes.scatter("t", "quote_ask", source=src, color="red", size=2, legend_label="own ask")
    fills = result.fills
    for side, color, marker in (("buy", "green", "triangle"), ("sell", "red", "inverted_triangle")):
        part = fills.filter(pl.col("side") == side)
        quotes.scatter("t", "price", source=_source(part, ["ts", "price", "qty"]), color=color,
                       marker=marker, size=7, legend_label=f"{side} fills")
    quotes.legend.location = "top_left"
    recorder = LatencyRecorder("tick_to_trade")
    recorder.hist = result.tick_to_trade.copy()
    lat = percentile_plot({"tick-to-trade": recorder}, title="Tick-to-trade latency (in-kernel)")
    rows = [(k, _fmt(v)) for k, v in result.stats.items()]
    table = DataTable(source=ColumnDataSource({"stat": [r[0] for r in rows],
                                               "value": [r[1] for r in rows]}),
                      columns=[TableColumn(field="stat", title="stat"),
                               TableColumn(field="value", title="value")],
                      width=width, height=28 * min(len(rows), 16), index_position=None)
    return column(pnl, inv, quotes, lat, table)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def write_html(result, path: Path, title: str) -> Path:
    from bokeh.embed import file_html
    from bokeh.resources import INLINE  # BokehJS inside the file: the report opens offline

    layout = dashboard(result)
    page = file_html(layout, INLINE, title)
    summary = f"<h2>{html.escape(title)}</h2><pre>{html.escape(result.summary())}</pre>"
    page = page.replace("<body>", "<body>" + summary, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
