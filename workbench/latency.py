"""Latency measurement for people: recorders, reports, plots and clock facts.

Owns ``LatencyRecorder`` (a named wrapper over the ``kernels.histogram`` array:
record single values, arrays, or the duration of a ``with`` block; merge; exact
count/mean/max and percentiles within the configured precision), ``report()`` and
``percentile_table()`` as polars DataFrames, the bokeh percentile plot builder,
``clock_info()``: which clock the kernels read and what it costs, measured here, and
the helpers over raw ``kernels.histogram`` arrays (``histogram_percentiles``,
``histogram_cdf``, ``histogram_delta``, ``histogram_count_within``) that the live
pipeline's views use. ``PERCENTILES`` is the one percentile set every report shows.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterable, Mapping

import numpy as np
import polars as pl

from kernels import histogram as kh

__all__ = ["LatencyRecorder", "report", "percentile_table", "percentile_plot", "clock_info",
           "PERCENTILES", "REPORT_PERCENTILES", "histogram_percentiles", "histogram_cdf",
           "histogram_delta", "histogram_count_within"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)   # the percentiles every latency report shows
REPORT_PERCENTILES = {f"p{q:g}": q for q in PERCENTILES}
# Percentiles drawn on the plot: 0, 50, 75, 87.5, ... (each step halves what is left).
_PLOT_PERCENTILES = np.array([100.0 * (1.0 - 0.5 ** k) for k in range(0, 21)] + [100.0])


class LatencyRecorder:
    """An HDR-style histogram of latencies in ns, 1 ns .. ``highest_ns``.

    ``significant_digits`` (1..4) sets the precision: every percentile is within
    ``10**-digits`` (relative) of the exact value. Recording a value costs a few ns
    in a kernel (``kernels.histogram.record``); from Python use ``record_many`` for
    arrays, the per-call overhead dominates ``record``.
    """

    def __init__(self, name: str = "latency", *, significant_digits: int = 3,
                 highest_ns: int = kh.ONE_HOUR_NS, warmup: int = 0):
        if isinstance(significant_digits, bool) or significant_digits not in (1, 2, 3, 4):
            raise ValueError(f"significant_digits must be 1, 2, 3 or 4, got {significant_digits!r}")
        if int(highest_ns) < 1 << 16:
            raise ValueError(f"highest_ns must be >= 65536, got {highest_ns}")
        if int(warmup) < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.name = name
        self.significant_digits = significant_digits
        self.warmup = int(warmup)
        self._skipped = 0
        self.hist = kh.new_histogram(kh.bits_for_significant_digits(significant_digits), int(highest_ns))

    # ----------------------------------------------------------------- record
    def record(self, latency_ns: int) -> None:
        """Count one latency (the first ``warmup`` recordings are discarded)."""
        if self._skipped < self.warmup:
            self._skipped += 1
            return
        kh.record_many(self.hist, np.array([int(latency_ns)], dtype=np.int64))

    def record_many(self, latencies_ns) -> None:
        """Count every value of an integer array (warm-up applies to the first ones)."""
        values = np.asarray(latencies_ns)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"latencies_ns must be a 1-D integer array, got {values.dtype} {values.shape}")
        skip = min(self.warmup - self._skipped, values.shape[0])
        self._skipped += skip
        kh.record_many(self.hist, np.ascontiguousarray(values[skip:], dtype=np.int64))

    @contextmanager
    def time(self):
        """``with recorder.time(): ...`` records the block's duration (perf_counter_ns)."""
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.record(time.perf_counter_ns() - start)

    def merge(self, other: "LatencyRecorder") -> "LatencyRecorder":
        """Add ``other``'s recordings into this one (same precision and range)."""
        if other.hist.shape != self.hist.shape or other.hist[kh.HP_PRECISION] != self.hist[kh.HP_PRECISION]:
            raise ValueError("can only merge recorders with the same significant_digits and highest_ns")
        kh.merge(self.hist, other.hist)
        return self

    def reset(self) -> None:
        kh.reset(self.hist)
        self._skipped = 0

    # ------------------------------------------------------------------ query
    @property
    def count(self) -> int:
        return int(self.hist[kh.HP_COUNT])

    @property
    def max(self) -> int:
        return int(self.hist[kh.HP_MAX]) if self.count else 0

    @property
    def min(self) -> int:
        return int(self.hist[kh.HP_MIN]) if self.count else 0

    @property
    def mean(self) -> float:
        return float(self.hist[kh.HP_SUM]) / self.count if self.count else float("nan")

    def percentile(self, q: float) -> int:
        """Value at percentile ``q`` (0..100) in ns."""
        if not 0.0 <= float(q) <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        return int(kh.percentile(self.hist, float(q)))

    def percentiles(self, qs: Iterable[float]) -> np.ndarray:
        qs = np.asarray(list(qs), dtype=np.float64)
        if qs.size and (qs.min() < 0 or qs.max() > 100):
            raise ValueError("percentiles must be within 0..100")
        out = np.zeros(qs.shape[0], dtype=np.int64)
        kh.percentiles(self.hist, qs, out)
        return out

    def summary(self) -> dict:
        """count, p50, p90, p99, p99.9, max (ns)."""
        values = self.percentiles(REPORT_PERCENTILES.values())
        return {"count": self.count, **dict(zip(REPORT_PERCENTILES, (int(v) for v in values))),
                "max": self.max}

    def report(self) -> pl.DataFrame:
        """One-row DataFrame: count, p50, p90, p99, p99.9, max (ns)."""
        return report(self)

    def __repr__(self) -> str:
        s = self.summary()
        return f"LatencyRecorder({self.name!r}, count={s['count']}, p50={s['p50']} ns, p99={s['p99']} ns)"


def _as_mapping(recorders) -> Mapping[str, LatencyRecorder]:
    if isinstance(recorders, LatencyRecorder):
        return {recorders.name: recorders}
    if isinstance(recorders, Mapping):
        return recorders
    return {r.name: r for r in recorders}


def report(recorders) -> pl.DataFrame:
    """count, p50, p90, p99, p99.9, max (ns) per recorder; a ``name`` column first
    when several are given (a dict name -> recorder, or a list)."""
    recorders = _as_mapping(recorders)
    rows = [r.summary() for r in recorders.values()]
    schema = {"count": pl.Int64, **{k: pl.Int64 for k in REPORT_PERCENTILES}, "max": pl.Int64}
    frame = pl.DataFrame(rows, schema=schema)
    if len(recorders) > 1:
        frame = frame.with_columns(pl.Series("name", list(recorders))).select(["name", *schema])
    return frame


def percentile_table(recorders) -> pl.DataFrame:
    """Long table (name, percentile, value_ns, one_over_tail) for percentile plots."""
    frames = []
    for name, rec in _as_mapping(recorders).items():
        values = rec.percentiles(_PLOT_PERCENTILES)
        tail = np.maximum(1.0 - _PLOT_PERCENTILES / 100.0, 1e-7)
        frames.append(pl.DataFrame({
            "name": [name] * len(values), "percentile": _PLOT_PERCENTILES,
            "value_ns": values, "one_over_tail": 1.0 / tail}))
    return pl.concat(frames)


def percentile_plot(recorders, title: str = "Latency by percentile", width: int = 700):
    """Bokeh HDR-style plot: latency (ns, log) against percentile (log of 1/(1-q)). The
    latency axis reads 1-2-5 ticks with their unit (``workbench.plots.latency_axis``: no
    labels bunched at the top of a narrow range); click a legend entry to hide its line."""
    from bokeh.models import ColumnDataSource, FixedTicker, HoverTool
    from bokeh.palettes import Category10_10
    from bokeh.plotting import figure

    from .plots import _legend_beside, latency_axis

    table = percentile_table(recorders)
    fig = figure(title=title, x_axis_type="log", y_axis_type="log", width=width, height=380,
                 x_axis_label="percentile", y_axis_label="latency")
    for i, name in enumerate(table["name"].unique(maintain_order=True)):
        part = table.filter(pl.col("name") == name)
        source = ColumnDataSource({c: part[c].to_numpy() for c in part.columns if c != "name"})
        fig.line("one_over_tail", "value_ns", source=source, legend_label=str(name),
                 color=Category10_10[i % 10], line_width=2)
        fig.scatter("one_over_tail", "value_ns", source=source, color=Category10_10[i % 10], size=4)
    # no tick at 1 (0 %): on a log axis it sits a third of a decade from 50 % and the two
    # labels run into each other; the line still starts there
    ticks = [2, 10, 100, 1000, 10_000, 100_000]
    fig.xaxis.ticker = FixedTicker(ticks=ticks)
    fig.xaxis.major_label_overrides = {2: "50%", 10: "90%", 100: "99%", 1000: "99.9%",
                                       10_000: "99.99%", 100_000: "99.999%"}
    latency_axis(fig.yaxis)
    fig.add_tools(HoverTool(tooltips=[("percentile", "@percentile{0.000}"), ("ns", "@value_ns")]))
    _legend_beside(fig)   # beside the plot, never over a line; click to hide
    return fig


def clock_info(n_calls: int = 100_000, calibration_ms: float = 20.0) -> pl.DataFrame:
    """What the kernels' clocks cost and resolve, measured now, as (clock, metric, value)."""
    from kernels import clock as kc

    if n_calls < 10 or calibration_ms <= 0:
        raise ValueError("need n_calls >= 10 and calibration_ms > 0")
    out = np.zeros(len(kc.PROBE_FIELDS), dtype=np.int64)
    kc.clock_probe(int(n_calls), int(calibration_ms * 1e6), out)
    probe = dict(zip(kc.PROBE_FIELDS, (int(v) for v in out)))
    ticks_per_ns = probe["calib_ticks"] / probe["calib_ns"] if probe["calib_ns"] else float("nan")
    res = time.clock_getres(time.CLOCK_MONOTONIC)
    rows = [
        ("now_ns (CLOCK_MONOTONIC via clock_gettime)", "call_overhead_ns", float(probe["now_ns_call_ns"])),
        ("now_ns (CLOCK_MONOTONIC via clock_gettime)", "min_observed_step_ns", float(probe["now_ns_min_step_ns"])),
        ("now_ns (CLOCK_MONOTONIC via clock_gettime)", "clock_getres_ns", res * 1e9),
        ("now_ns (CLOCK_MONOTONIC via clock_gettime)", "went_backwards", float(probe["now_ns_backwards"])),
        ("cycles (rdtsc)", "call_overhead_ns", probe["cycles_call_ticks"] / ticks_per_ns),
        ("cycles (rdtsc)", "min_observed_step_ticks", float(probe["cycles_min_step_ticks"])),
        ("cycles (rdtsc)", "tsc_ghz", ticks_per_ns),
    ]
    return pl.DataFrame(rows, schema={"clock": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}, orient="row")


# ------------------------------------------------------- raw histogram arrays
def histogram_percentiles(h: np.ndarray, qs: Iterable[float] = PERCENTILES) -> dict:
    """{q: value_ns} of a ``kernels.histogram`` array (0 when it is empty)."""
    return {q: int(kh.percentile(h, float(q))) for q in qs}


def histogram_cdf(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latency_ns, cumulative fraction) at every non-empty bucket's upper bound."""
    counts = h[kh.HIST_HEADER_WORDS:]
    nz = np.nonzero(counts)[0]
    if nz.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    _, high = kh.bucket_bounds(h)
    cum = np.cumsum(counts[nz]).astype(np.float64)
    return high[nz], cum / cum[-1]


def histogram_delta(new: np.ndarray, old: np.ndarray | None) -> np.ndarray:
    """Histogram of what was recorded between two copies of a cumulative one (a copy
    of ``new`` when ``old`` is None)."""
    d = new.copy()
    if old is not None:
        d[kh.HIST_HEADER_WORDS:] -= old[kh.HIST_HEADER_WORDS:]
    # Copies taken while the consumer records can be torn by a count or two:
    # trust the buckets, rebuild the header from them.
    np.maximum(d[kh.HIST_HEADER_WORDS:], 0, out=d[kh.HIST_HEADER_WORDS:])
    d[kh.HP_COUNT] = d[kh.HIST_HEADER_WORDS:].sum()
    return d


def histogram_count_within(h: np.ndarray, limit_ns: float) -> int:
    """Recordings at or below ``limit_ns`` (bucket resolution)."""
    _, high = kh.bucket_bounds(h)
    return int(h[kh.HIST_HEADER_WORDS:][high <= limit_ns].sum())
