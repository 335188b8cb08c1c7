"""Notebook controls and live plots for a running :class:`workbench.live.pipeline.Pipeline`.

Owns the four panels and the one-call dashboard:

* :class:`StrategyPanel`  strategy choice, its parameters, model work, risk limits;
* :class:`AdmissionPanel` controller, latency target, its gains and limits, feed rate;
* :class:`HardwarePanel`  what the machine offers (``workbench.hardware``) beside
  per-stage CPU affinity, waiting policies, batch size, control period (all live),
  ring capacity (applied by a restart button) and safe mode (needs a new Python);
* :class:`LatencyMonitor` bokeh plots in a ``jupyter_bokeh.BokehModel``: end-to-end
  percentiles over time, the latency CDF per stage, throughput and shed rate, P&L.
* :func:`dashboard` puts them together with start / pause / stop buttons and the
  safety mode in force (:func:`mode_badge`: ProductionSafe or LabUnsafe, layer by layer).

Widgets never compute: a control calls a ``Pipeline`` setter; the monitor takes a
``Sampler.sample()`` (``workbench.live.pipeline``) and ``histogram_cdf``
(``workbench.latency``) and streams them
into ``ColumnDataSource`` objects with a bounded ``rollover``. The monitor refreshes
itself from the notebook's event loop (or a thread outside Jupyter) until it is
stopped, the pipeline stops, or ``duration_s`` passed when one is given (a dashboard
runs until the person presses stop; headless runs bound it).
"""
from __future__ import annotations

import asyncio
import threading
import time

import ipywidgets as W
import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, NumeralTickFormatter
from bokeh.plotting import figure

from workbench import hardware
from workbench.plots import latency_axis
from workbench.latency import histogram_cdf
from workbench import params
from workbench.live.pipeline import STAGES, WAIT_POLICIES, Pipeline, safe_mode_status

__all__ = ["StrategyPanel", "AdmissionPanel", "HardwarePanel", "LatencyMonitor", "Dashboard",
           "dashboard", "mode_badge"]

_STYLE = {"description_width": "140px"}
_LAYOUT = W.Layout(width="380px")


def _one_two_five(low: float, high: float, current: float | None = None) -> list:
    """1-2-5 steps from ``low`` to ``high`` (plus ``current``): slider stops that never
    snap the current value (a log slider would round it and echo the rounded value)."""
    values = set()
    decade = 10.0 ** int(np.floor(np.log10(low)))
    while decade <= high:
        for m in (1, 2, 5):
            if low <= m * decade <= high:
                values.add(float(m * decade))
        decade *= 10
    if current is not None:
        values.add(float(current))
    return sorted(values)


def _stops(description, low, high, current, fmt):
    options = [(fmt(v), v) for v in _one_two_five(low, high, current)]
    return W.SelectionSlider(options=options, value=float(current), description=description,
                             style=_STYLE, layout=_LAYOUT, continuous_update=False)


def _float(description, value, *, step=None):
    return W.FloatText(value=float(value), description=description, step=step, style=_STYLE,
                       layout=_LAYOUT)


class _Panel(W.VBox):
    """A panel bound to one pipeline; ``errors`` shows rejected values."""

    def __init__(self, pipeline: Pipeline, title: str):
        self.pipeline = pipeline
        self.message = W.HTML("")
        self._body = W.VBox()
        super().__init__([W.HTML(f"<b>{title}</b>"), self._body, self.message])

    def _apply(self, call, *args, **kwargs) -> None:
        try:
            call(*args, **kwargs)
            self.message.value = ""
        except ValueError as exc:  # the pipeline validated it: show why, keep running
            self.message.value = f"<span style='color:#b00'>{exc}</span>"


# ------------------------------------------------------------------- strategy
class StrategyPanel(_Panel):
    """Strategy, its parameters (rebuilt when the strategy changes), model work, risk."""

    def __init__(self, pipeline: Pipeline):
        super().__init__(pipeline, "Strategy and risk")
        cfg = pipeline.config
        self.strategy = W.Dropdown(options=list(params.strategy_names()), value=cfg.strategy,
                                   description="strategy", style=_STYLE, layout=_LAYOUT)
        self.work = _stops("model work (ns)", 100, 1_000_000, cfg.work_ns, lambda v: f"{v:,.0f}")
        self.params_box = W.VBox()
        self.params: dict[str, W.FloatText] = {}
        self.max_position = _float("max position", cfg.risk.get("max_position", 0))
        self.max_loss = _float("max loss", cfg.risk.get("max_loss", 0))
        self.kill = W.ToggleButton(value=bool(cfg.risk.get("kill", 0)), description="kill switch",
                                   button_style="danger")
        self.strategy.observe(self._on_strategy, names="value")
        self.work.observe(lambda ch: self._apply(self.pipeline.set_work, ch["new"]), names="value")
        for w in (self.max_position, self.max_loss):
            w.observe(self._on_risk, names="value")
        self.kill.observe(self._on_risk, names="value")
        self._build_params()
        self._body.children = [self.strategy, self.params_box, self.work, self.max_position,
                               self.max_loss, self.kill]

    def _build_params(self) -> None:
        name = self.pipeline.config.strategy
        self.params = {}
        spec = params.strategy_spec(name)
        current = self.pipeline.config.strategy_params
        defaults = spec.defaults()
        for p in spec.param_names:
            w = _float(p, current.get(p, defaults[p]))
            w.observe(self._on_param, names="value")
            self.params[p] = w
        self.params_box.children = list(self.params.values())

    def _on_strategy(self, change) -> None:
        self._apply(self.pipeline.set_strategy, change["new"])
        self._build_params()

    def _on_param(self, change) -> None:
        name = next(k for k, w in self.params.items() if w is change["owner"])
        self._apply(self.pipeline.set_strategy, **{name: change["new"]})

    def _on_risk(self, change) -> None:
        self._apply(self.pipeline.set_risk, max_position=self.max_position.value,
                    max_loss=self.max_loss.value, kill=1.0 if self.kill.value else 0.0)
        if change["owner"] is self.kill and not change["new"]:
            self.pipeline.reset_kill_switch()


# ------------------------------------------------------------------ admission
class AdmissionPanel(_Panel):
    """Controller, its latency target and parameters, and the offered feed rate."""

    PARAMS = ("kp", "ki", "kd", "brake_factor", "interval_ns", "increase", "decrease", "rate",
              "burst")

    def __init__(self, pipeline: Pipeline):
        super().__init__(pipeline, "Admission control")
        cfg = pipeline.config
        self.controller = W.Dropdown(options=list(params.controller_names()), value=cfg.controller,
                                     description="controller", style=_STYLE, layout=_LAYOUT)
        self.target_us = _stops("p99 target (us)", 10, 100_000, cfg.target_ns / 1e3,
                                lambda v: f"{v:,.0f}")
        self.feed_rate = _stops("feed rate (msg/s)", 1_000, 5_000_000, cfg.rate or 100_000.0,
                                lambda v: f"{v:,.0f}")
        self.unpaced = W.Checkbox(value=cfg.rate is None, description="as fast as possible")
        defaults = params.admission_defaults(cfg.controller, cfg.target_ns)
        self.params = {p: _float(p, cfg.admission.get(p, defaults[p]))
                       for p in self.PARAMS}
        self.controller.observe(
            lambda ch: self._apply(self.pipeline.set_admission, ch["new"]), names="value")
        self.target_us.observe(
            lambda ch: self._apply(self.pipeline.set_admission, target_ns=ch["new"] * 1e3),
            names="value")
        self.feed_rate.observe(self._on_rate, names="value")
        self.unpaced.observe(self._on_rate, names="value")
        for name, w in self.params.items():
            w.observe(lambda ch, name=name: self._apply(self.pipeline.set_admission,
                                                        **{name: ch["new"]}), names="value")
        self._body.children = [self.controller, self.target_us, self.feed_rate, self.unpaced,
                               W.HTML("<i>controller parameters</i>"), *self.params.values()]

    def _on_rate(self, change) -> None:
        self._apply(self.pipeline.set_rate, None if self.unpaced.value else self.feed_rate.value)


# ------------------------------------------------------------------- hardware
class HardwarePanel(_Panel):
    """Machine facts next to the pipeline's hardware settings."""

    def __init__(self, pipeline: Pipeline):
        super().__init__(pipeline, "Hardware")
        cfg = pipeline.config
        cpus = ["any"] + [str(c) for c in range(hardware.logical_cores().value or 1)]
        probes = hardware.report()
        rows = "".join(f"<tr><td>{r['probe']}</td><td>{r['value'] if r['value'] is not None else '(' + str(r['reason']) + ')'}</td></tr>"
                       for r in probes.iter_rows(named=True))
        self.facts = W.HTML(f"<table style='font-size:85%'>{rows}</table>")

        def cpu_value(c):
            return "any" if c is None else str(c[0])

        self.producer_cpu = W.Dropdown(options=cpus, value=cpu_value(cfg.producer_cpus),
                                       description="feed CPU", style=_STYLE, layout=_LAYOUT)
        self.consumer_cpu = W.Dropdown(options=cpus, value=cpu_value(cfg.consumer_cpus),
                                       description="consumer CPU", style=_STYLE, layout=_LAYOUT)
        self.consumer_wait = W.Dropdown(options=list(WAIT_POLICIES), value=cfg.wait_policy,
                                        description="consumer waits", style=_STYLE, layout=_LAYOUT)
        self.feed_wait = W.Dropdown(options=list(WAIT_POLICIES), value=cfg.feed_wait_policy,
                                    description="feed waits", style=_STYLE, layout=_LAYOUT)
        self.batch = W.IntSlider(value=cfg.batch, min=1, max=1024, description="batch",
                                 style=_STYLE, layout=_LAYOUT)
        self.control_every = W.IntSlider(value=cfg.control_every, min=1, max=65536,
                                         description="control every", style=_STYLE, layout=_LAYOUT)
        self.ring_capacity = W.Dropdown(options=[2 ** k for k in range(6, 21)],
                                        value=cfg.ring_capacity, description="ring capacity",
                                        style=_STYLE, layout=_LAYOUT)
        self.restart = W.Button(description="restart with ring capacity", button_style="warning")
        safe = safe_mode_status()
        self.safe_mode = W.Checkbox(value=safe["enabled"], disabled=True,
                                    description="safe mode (bounds checks)",
                                    tooltip=safe["how"])
        self.safe_note = W.HTML(f"<small>{safe['how']}</small>")
        self.producer_cpu.observe(lambda ch: self._pin("producer", ch["new"]), names="value")
        self.consumer_cpu.observe(lambda ch: self._pin("consumer", ch["new"]), names="value")
        self.consumer_wait.observe(
            lambda ch: self._apply(self.pipeline.set_wait_policy, ch["new"], "consumer"),
            names="value")
        self.feed_wait.observe(
            lambda ch: self._apply(self.pipeline.set_wait_policy, ch["new"], "producer"),
            names="value")
        self.batch.observe(lambda ch: self._apply(self.pipeline.set_batch, ch["new"]), names="value")
        self.control_every.observe(
            lambda ch: self._apply(self.pipeline.set_control_every, ch["new"]), names="value")
        self.restart.on_click(self._on_restart)
        self._body.children = [self.facts, self.producer_cpu, self.consumer_cpu, self.feed_wait,
                               self.consumer_wait, self.batch, self.control_every,
                               W.HBox([self.ring_capacity, self.restart]), self.safe_mode,
                               self.safe_note]

    def _pin(self, stage: str, value: str) -> None:
        self._apply(self.pipeline.set_affinity, stage, None if value == "any" else [int(value)])

    def _on_restart(self, _button=None) -> None:
        self._apply(self.pipeline.restart, ring_capacity=int(self.ring_capacity.value))


# -------------------------------------------------------------------- monitor
class LatencyMonitor(W.VBox):
    """Live bokeh plots of a pipeline: percentiles over time, CDF, throughput, P&L.

    ``update()`` takes one sample and pushes it into the plots; ``start()`` repeats
    that every ``period_s`` until ``stop()``, the pipeline stopped, or ``duration_s``
    passed (``None``: no time limit). Streams keep at most ``max_points`` points
    (bokeh ``rollover``).
    """

    PERCENTILES = ("p50", "p99", "p99.9")

    def __init__(self, pipeline: Pipeline, *, period_s: float = 0.5,
                 duration_s: float | None = 120.0, max_points: int = 600, width: int = 430,
                 height: int = 210, stop_pipeline: bool = False):
        from jupyter_bokeh.widgets import BokehModel

        if (not period_s > 0 or (duration_s is not None and not duration_s > 0)
                or int(max_points) < 2):
            raise ValueError("period_s and duration_s (or None) must be > 0 and max_points "
                             f">= 2, got {period_s}, {duration_s}, {max_points}")
        self.pipeline = pipeline
        self.sampler = pipeline.sampler()
        self.period_s = float(period_s)
        self.duration_s = None if duration_s is None else float(duration_s)
        self.max_points = int(max_points)
        self.updates = 0
        self.stop_pipeline = bool(stop_pipeline)  # end the session with the monitor
        self._task = None
        self._thread = None
        self._stop = threading.Event()
        self.over_time = ColumnDataSource({"t": [], **{p: [] for p in self.PERCENTILES},
                                           "target": []})
        self.cdf = {s: ColumnDataSource({"latency": [], "fraction": []}) for s in STAGES}
        self.rates = ColumnDataSource({"t": [], "throughput": [], "admitted": [], "shed_rate": []})
        self.pnl = ColumnDataSource({"t": [], "equity": [], "position": []})
        # two plots a row fit the notebook (2 x 430 px); legends sit right of each plot
        # (click an entry to hide its line) and latency axes carry units, not 2.000e+6
        kw = dict(width=width, height=height, toolbar_location=None, min_border_left=60)
        f1 = figure(title="end-to-end latency over time", y_axis_type="log",
                    x_axis_label="time (s)", y_axis_label="latency", **kw)
        colors = ("#1f77b4", "#d62728", "#9467bd")
        for p, c in zip(self.PERCENTILES, colors):
            f1.line("t", p, source=self.over_time, color=c, legend_label=p)
        f1.line("t", "target", source=self.over_time, color="black", line_dash="dashed",
                legend_label="target")
        f2 = figure(title="latency CDF by stage", x_axis_type="log", x_axis_label="latency",
                    y_axis_label="fraction", **kw)
        for s, c in zip(STAGES, ("#7f7f7f", "#2ca02c", "#ff7f0e", "#1f77b4")):
            f2.step("latency", "fraction", source=self.cdf[s], color=c, legend_label=s)
        f3 = figure(title="throughput (msg/s)", x_axis_label="time (s)", **kw)
        f3.line("t", "throughput", source=self.rates, color="#1f77b4", legend_label="received")
        f3.line("t", "admitted", source=self.rates, color="#2ca02c", legend_label="admitted")
        f3.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
        f3s = figure(title="shed rate", x_axis_label="time (s)", y_range=(0, 1), **kw)
        f3s.line("t", "shed_rate", source=self.rates, color="#d62728")
        f3s.yaxis.formatter = NumeralTickFormatter(format="0%")
        f4 = figure(title="P&L (equity) and position", x_axis_label="time (s)", **kw)
        f4.line("t", "equity", source=self.pnl, color="#2ca02c", legend_label="equity")
        f4.line("t", "position", source=self.pnl, color="#8c564b", legend_label="position")
        latency_axis(f1.yaxis)
        latency_axis(f2.xaxis)
        for f in (f1, f2, f3, f4):
            legend = f.legend[0]
            legend.click_policy = "hide"
            legend.label_text_font_size = "8pt"
            f.add_layout(legend, "right")
        self.figures = (f1, f2, f3, f3s, f4)
        self.plots = gridplot([[f1, f2], [f3, f3s], [f4, None]], merge_tools=True)
        self.model = BokehModel(self.plots)
        self.status = W.HTML("")
        super().__init__([self.status, self.model])

    # ------------------------------------------------------------ one refresh
    def update(self) -> dict:
        """Sample the pipeline once and push the numbers into the plots."""
        s = self.sampler.sample()
        p = self.pipeline
        t = [s["t"]]
        row = {"t": t, "p50": [s["end_to_end_p50_ns"]], "p99": [s["end_to_end_p99_ns"]],
               "p99.9": [s["end_to_end_p99.9_ns"]], "target": [p.config.target_ns]}
        self.over_time.stream(row, rollover=self.max_points)
        self.rates.stream({"t": t, "throughput": [s["throughput"]],
                           "admitted": [s["admitted_per_s"]], "shed_rate": [s["shed_rate"]]},
                          rollover=self.max_points)
        self.pnl.stream({"t": t, "equity": [s["equity"]], "position": [s["position"]]},
                        rollover=self.max_points)
        for stage in STAGES:
            latency, fraction = histogram_cdf(p.histogram(stage))
            self.cdf[stage].data = {"latency": latency, "fraction": fraction}
        self.updates += 1
        self.status.value = (
            f"t={s['t']:.1f}s  received={s['received']:,}  throughput={s['throughput']:,.0f}/s  "
            f"shed={s['shed_rate']:.1%}  p99={s['end_to_end_p99_ns'] / 1e3:,.1f} us  "
            f"target={p.config.target_ns / 1e3:,.0f} us  "
            f"position={s['position']}  equity={s['equity']:,.2f}")
        return s

    # ------------------------------------------------------------ auto refresh
    @property
    def running(self) -> bool:
        return (self._task is not None and not self._task.done()) or \
            (self._thread is not None and self._thread.is_alive())

    def start(self) -> "LatencyMonitor":
        """Refresh every ``period_s`` until ``stop()``, the pipeline stopped or
        ``duration_s`` (if any) passed:
        on the notebook's event loop when there is one (plots update between cells),
        otherwise in a daemon thread."""
        if self.running:
            return self
        self._stop.clear()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._task = loop.create_task(self._run_async())
        else:
            self._thread = threading.Thread(target=self._run_thread, name="wb-latency-monitor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _keep_going(self, started: float) -> bool:
        return (not self._stop.is_set() and self.pipeline.running
                and (self.duration_s is None or time.monotonic() - started < self.duration_s))

    def _finish(self) -> None:
        if self.stop_pipeline and not self._stop.is_set():
            self.pipeline.stop()
            self.update()
        self.status.value += "  (monitor stopped)"

    async def _run_async(self) -> None:
        started = time.monotonic()
        while self._keep_going(started):
            self.update()
            await asyncio.sleep(self.period_s)
        self._finish()

    def _run_thread(self) -> None:
        started = time.monotonic()
        while self._keep_going(started):
            self.update()
            self._stop.wait(self.period_s)
        self._finish()


# ------------------------------------------------------------------ dashboard
def mode_badge() -> str:
    """The safety mode and its layers (``workbench.modes.report``) as a line of HTML."""
    from workbench.modes import report

    r = report()
    color = "#2e7d32" if r["mode"] == "ProductionSafe" else "#c62828"
    layers = (f"validation {'on' if r['validation'] else 'off'}, bounds checks "
              f"{'on' if r['bounds_checks'] else 'off'}, journal {r['journal_policy']}, "
              f"risk checks {'on' if r['risk_checks'] else 'off'}")
    return (f"<span style='margin-left:1em'><b style='color:{color}'>{r['mode']}</b> "
            f"<small>({layers})</small></span>")


class Dashboard(W.VBox):
    """Start/pause/stop, the three control panels in tabs, and the live monitor."""

    def __init__(self, pipeline: Pipeline, *, period_s: float = 0.5,
                 duration_s: float | None = None, max_points: int = 600):
        """The session runs until ``stop()`` (the stop button); with ``duration_s`` it
        also ends after that many seconds, the monitor stopping the pipeline too."""
        self.pipeline = pipeline
        self.strategy = StrategyPanel(pipeline)
        self.admission = AdmissionPanel(pipeline)
        self.hardware = HardwarePanel(pipeline)
        self.monitor = LatencyMonitor(pipeline, period_s=period_s, duration_s=duration_s,
                                      max_points=max_points, stop_pipeline=True)
        self.start_button = W.Button(description="start", button_style="success")
        self.pause_button = W.ToggleButton(description="pause")
        self.stop_button = W.Button(description="stop", button_style="danger")
        self.start_button.on_click(lambda _b: self.start())
        self.pause_button.observe(
            lambda ch: pipeline.pause() if ch["new"] else pipeline.resume(), names="value")
        self.stop_button.on_click(lambda _b: self.stop())
        tabs = W.Tab(children=[self.admission, self.strategy, self.hardware])
        for i, title in enumerate(("Admission", "Strategy", "Hardware")):
            tabs.set_title(i, title)
        self.mode = W.HTML(mode_badge())
        # controls above the plots, not beside them: the whole board fits the notebook width
        super().__init__([W.HBox([self.start_button, self.pause_button, self.stop_button,
                                  self.mode]),
                          tabs, self.monitor])

    def start(self) -> "Dashboard":
        self.pipeline.start()
        self.monitor.start()
        return self

    def stop(self) -> None:
        self.monitor.stop()
        self.pipeline.stop()
        self.monitor.update()  # the final state stays on screen
        self.monitor.status.value += "  (stopped)"


def dashboard(pipeline: Pipeline | None = None, *, start: bool = True, period_s: float = 0.5,
              duration_s: float | None = None, max_points: int = 600, **config) -> Dashboard:
    """The whole tuning dashboard in one call (a new ``Pipeline(**config)`` unless one
    is given); ``start=True`` starts the pipeline and the live plots. The session runs
    until stopped, or for ``duration_s`` seconds when given."""
    if pipeline is None:
        pipeline = Pipeline(**config)
    board = Dashboard(pipeline, period_s=period_s, duration_s=duration_s, max_points=max_points)
    return board.start() if start else board
