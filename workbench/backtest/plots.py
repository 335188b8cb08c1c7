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


_DAY_NS = 86_400 * 10**9


def _time_axis(fig, ts) -> None:
    """Real times on a datetime axis. LOBSTER and the simulator stamp events in ns after
    midnight (the session's date is not in the data): the axis then reads the time of day
    (09:30 ... 16:00) and never a date (1970-01-01 would be a lie); epoch stamps (Binance)
    keep their date."""
    from bokeh.models import DatetimeTickFormatter

    after_midnight = len(ts) == 0 or int(ts.max()) < 2 * _DAY_NS
    if after_midnight:
        fig.xaxis.formatter = DatetimeTickFormatter(
            days="%H:%M", hours="%H:%M", hourmin="%H:%M", minutes="%H:%M", minsec="%H:%M:%S",
            seconds="%H:%M:%S", milliseconds="%H:%M:%S.%3N", microseconds="%H:%M:%S.%fus",
            context=None)
        fig.xaxis.axis_label = "exchange time (time of day)"
    else:
        fig.xaxis.axis_label = "exchange time (UTC)"


def _legend_beside(fig) -> None:
    """The legend right of the plot, where it covers nothing; click an entry to hide it."""
    if fig.legend:
        legend = fig.legend[0]
        legend.click_policy = "hide"
        legend.label_text_font_size = "8pt"
        fig.add_layout(legend, "right")


def dashboard(result, width: int = 860):
    """The result's panels, stacked on one time axis, ``width`` pixels wide in all (a
    notebook's width): equal plot frames keep the time axes aligned, legends sit right
    of the plots (click one to hide its line)."""
    from bokeh.layouts import column
    from bokeh.models import DataTable, TableColumn, ColumnDataSource

    from ..latency import LatencyRecorder, percentile_plot
    from bokeh.plotting import figure

    eq = result.equity
    src = _source(eq, ["ts", "equity", "realised", "position", "mid", "bid", "ask",
                       "quote_bid", "quote_ask"])
    # frame + left axis (60) + legend (about 110) + toolbar (about 30) = width
    common = dict(x_axis_type="datetime", frame_width=max(int(width) - 200, 200),
                  min_border_left=60)
    pnl = figure(title="P&L (mark to mid)", frame_height=190, y_axis_label="P&L", **common)
    pnl.line("t", "equity", source=src, legend_label="equity", line_width=2)
    pnl.line("t", "realised", source=src, legend_label="realised", color="gray")
    inv = figure(title="Inventory", frame_height=120, x_range=pnl.x_range,
                 y_axis_label="position", **common)
    inv.step("t", "position", source=src, mode="after", color="purple", legend_label="position")
    quotes = figure(title="Quotes vs mid, fills", frame_height=240, x_range=pnl.x_range,
                    y_axis_label="price", **common)
    quotes.line("t", "mid", source=src, color="black", legend_label="mid")
    quotes.scatter("t", "quote_bid", source=src, color="green", size=2, legend_label="own bid")
    quotes.scatter("t", "quote_ask", source=src, color="red", size=2, legend_label="own ask")
    fills = result.fills
    for side, color, marker in (("buy", "green", "triangle"), ("sell", "red", "inverted_triangle")):
        part = fills.filter(pl.col("side") == side)
        quotes.scatter("t", "price", source=_source(part, ["ts", "price", "qty"]), color=color,
                       marker=marker, size=7, legend_label=f"{side} fills")
    for fig in (pnl, inv, quotes):
        _time_axis(fig, eq["ts"])
        _legend_beside(fig)
    recorder = LatencyRecorder("tick_to_trade")
    recorder.hist = result.tick_to_trade.copy()
    lat = percentile_plot({"tick-to-trade": recorder}, title="Tick-to-trade latency (in-kernel)",
                          width=min(int(width), 700))
    rows = [(k, _fmt(v)) for k, v in result.stats.items()]
    table = DataTable(source=ColumnDataSource({"stat": [r[0] for r in rows],
                                               "value": [r[1] for r in rows]}),
                      columns=[TableColumn(field="stat", title="stat"),
                               TableColumn(field="value", title="value")],
                      width=min(int(width), 700), height=28 * min(len(rows), 16),
                      index_position=None)
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


def markout_plot(summary: pl.DataFrame, width: int = 700, height: int = 320):
    """Markout per share (ticks) against the horizon, one line per strategy (and per
    liquidity when the summary has that column): the frame of
    ``workbench.backtest.markout.markout_summary``, drawn as it is. A line falling below
    zero is adverse selection; one rising is a strategy on the right side of the flow."""
    from bokeh.models import ColumnDataSource, Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    keys = [c for c in ("strategy", "liquidity") if c in summary.columns]
    fig = figure(title="Markout per share after the fills", x_axis_label="horizon (s)",
                 y_axis_label="markout (ticks per share)", width=int(width), height=int(height))
    groups = summary.partition_by(keys, maintain_order=True) if keys else [summary]
    for part, color in zip(groups, Category10[10] * (len(groups) // 10 + 1)):
        label = " ".join(str(part[k][0]) for k in keys) or "markout"
        src = ColumnDataSource({"horizon_s": part["horizon_s"].to_numpy(),
                                "markout_ticks": part["markout_ticks"].to_numpy()})
        fig.line("horizon_s", "markout_ticks", source=src, color=color, line_width=2,
                 legend_label=label)
        fig.scatter("horizon_s", "markout_ticks", source=src, color=color, size=6,
                    legend_label=label)
    fig.add_layout(Span(location=0, dimension="width", line_color="gray", line_dash="dashed"))
    _legend_beside(fig)
    return fig
