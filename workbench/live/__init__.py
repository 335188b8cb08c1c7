"""The live pipeline and its overload harness.

``workbench.live.pipeline`` owns :class:`Pipeline` (a feed thread and a nogil consumer
thread: feed -> ring -> admission -> book + strategy + risk -> latency histograms,
tuned while it runs), :class:`PipelineConfig`, :class:`Sampler`,
:func:`live_pipelines`, :func:`safe_mode_status` and the name tables the widgets
offer. ``workbench.live.overload`` owns :func:`measure_capacity`,
:func:`overload_run`, :func:`overload_sweep` and :func:`simulate_admission`.
Both validate their arguments with ``workbench.params``.

Elsewhere: the figures of overload results are in ``workbench.plots``, the helpers
over raw latency histograms in ``workbench.latency``, the widgets and dashboard in
``workbench.widgets``.

The names users reach for are importable from here::

    from workbench.live import Pipeline
"""
from __future__ import annotations

from workbench.live.overload import (
    measure_capacity, overload_run, overload_sweep, simulate_admission,
)
from workbench.live.pipeline import (
    Pipeline, PipelineConfig, Sampler, live_pipelines, safe_mode_status,
)

__all__ = [
    "Pipeline", "PipelineConfig", "Sampler", "live_pipelines", "safe_mode_status",
    "measure_capacity", "overload_run", "overload_sweep", "simulate_admission",
]
