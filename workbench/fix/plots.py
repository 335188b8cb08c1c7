"""Bokeh figures of the FIX gateways' measurements (``workbench.fix.gateway``).

Like every figure builder of the workbench, these compute nothing: they put the columns of
``compare_gateways``' frame, as they come, into ``ColumnDataSource``s. Glyph names
(``"throughput"``, ``"p50"``, ``"p99"``) let tests and callers find their sources with
``fig.select({"name": ...})``.
"""
from __future__ import annotations

import math

__all__ = ["gateway_figure"]

_NEEDED = ("orders_per_s", "p50_us", "p99_us")


def _one_two_five(low: float, high: float) -> list[float]:
    """Axis ticks 1, 2, 5, 10, 20, 50, ... within [low, high] (a log axis' readable marks)."""
    ticks, decade = [], 10.0 ** math.floor(math.log10(max(low, 1e-9)))
    while decade <= high:
        ticks += [m * decade for m in (1, 2, 5) if low <= m * decade <= high]
        decade *= 10
    return ticks


def gateway_figure(frame, *, label: str = "mode", title: str = "gateways", width: int = 860,
                   height: int = 300):
    """Throughput (left, orders/s) and latency (right, p50 and p99 in µs on a log axis) of
    each row of ``compare_gateways``' frame, one category per value of ``label`` (a text
    column: ``mode``, or a label the caller added, e.g. the window of a sweep). The two
    plots share the width (``width`` <= 900 fits a notebook); the latency legend sits right
    of its plot (click an entry to hide it). Hover a glyph for its numbers."""
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource, HoverTool, Legend, FixedTicker, NumeralTickFormatter, Range1d
    from bokeh.plotting import figure

    missing = [c for c in (label, *_NEEDED) if c not in getattr(frame, "columns", ())]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}: pass compare_gateways' frame "
                         f"(and label= one of its text columns)")
    if not isinstance(width, int) or not 400 <= width <= 900:
        raise ValueError(f"width={width!r} must be an integer in 400..900 (a notebook's width)")
    labels = [str(v) for v in frame[label].to_list()]
    data = {"label": labels, **{c: frame[c].to_list() for c in _NEEDED}}
    for extra in ("mean_us", "in_flight", "sessions", "logons"):
        if extra in frame.columns:
            data[extra] = frame[extra].to_list()
    source = ColumnDataSource(data, name="gateway_source")
    left_width = int(width * 0.45)
    tools = "pan,box_zoom,reset,save"
    f1 = figure(x_range=labels, width=left_width, height=height, tools=tools,
                title=f"{title}: throughput", y_axis_label="orders per second")
    bars = f1.vbar(x="label", top="orders_per_s", width=0.6, source=source, name="throughput",
                   color="#1f77b4")
    f1.add_tools(HoverTool(renderers=[bars], tooltips=[("", "@label"), ("orders/s", "@orders_per_s{0,0}")]))
    f1.y_range.start = 0
    values = [v for c in ("p50_us", "p99_us") for v in data[c] if v is not None and v > 0]
    low, high = (min(values) / 1.6, max(values) * 1.6) if values else (1.0, 1e6)
    f2 = figure(x_range=labels, y_range=Range1d(low, high), width=width - left_width, height=height,
                tools=tools, y_axis_type="log", title=f"{title}: latency per order",
                y_axis_label="latency (µs)")
    f2.yaxis.ticker = FixedTicker(ticks=_one_two_five(low, high))   # they never bunch
    f2.yaxis.formatter = NumeralTickFormatter(format="0,0")
    p50 = f2.scatter(x="label", y="p50_us", source=source, size=10, color="#2ca02c", name="p50")
    p99 = f2.scatter(x="label", y="p99_us", source=source, size=10, marker="triangle",
                     color="#d62728", name="p99")
    f2.add_tools(HoverTool(renderers=[p50, p99], tooltips=[("", "@label"), ("p50 µs", "@p50_us{0,0}"),
                                                           ("p99 µs", "@p99_us{0,0}")]))
    legend = Legend(items=[("p50", [p50]), ("p99", [p99])], click_policy="hide",
                    label_text_font_size="8pt")
    f2.add_layout(legend, "right")
    for f in (f1, f2):
        f.xaxis.major_label_orientation = 0.6 if max(map(len, labels), default=0) > 8 else 0.0
        f.xgrid.grid_line_color = None
    return row(f1, f2)
