"""The overload harness: how the live pipeline and the admission controllers behave
beyond capacity.

Owns :func:`measure_capacity` (messages/s the consumer sustains unpaced, without
admission control), :func:`overload_run` (one controller at one load: p50/p99 of
admitted messages, goodput within 1.1x the target, shed rate), :func:`overload_sweep`
(every controller at every load, as a polars DataFrame) and, without threads or
clocks, :func:`simulate_admission` (the same controller kernels on a reproducible
single-server queue) with :func:`admitted_latency_trace` (its points for a plot).
The figures of these results are ``workbench.plots.trace_figure`` and
``workbench.plots.overload_figure``.
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np

from kernels import admission as kadm
from kernels import histogram as kh
from kernels import pipeline as kpipe
from workbench.latency import histogram_count_within, histogram_delta
from workbench.live.pipeline import HIST_HIGHEST_NS, HIST_PRECISION, Pipeline
from workbench.params import ADMISSION, choice, controller_names, number

__all__ = ["measure_capacity", "overload_run", "overload_sweep", "simulate_admission",
           "admitted_latency_trace"]


# ------------------------------------------------------------- the live pipeline
def _window(p: Pipeline, seconds: float):
    """Counters and end-to-end histogram recorded during the next ``seconds``."""
    c0, h0, t0 = p.counters.copy(), p.hists[kpipe.STAGE_END_TO_END].copy(), time.monotonic()
    time.sleep(seconds)
    c1, h1, t1 = p.counters.copy(), p.hists[kpipe.STAGE_END_TO_END].copy(), time.monotonic()
    return c1 - c0, histogram_delta(h1, h0), t1 - t0


def measure_capacity(duration_s: float = 1.0, warmup_s: float = 0.3, **config) -> float:
    """Messages/s the consumer sustains with the feed unpaced and no admission control."""
    config = {**config, "rate": None, "controller": "none"}
    with Pipeline(**config) as p:
        time.sleep(warmup_s)
        d, _, dt = _window(p, duration_s)
    return float(d[kpipe.PC_RECEIVED] / dt)


def overload_run(controller: str, load: float, capacity: float, *, duration_s: float = 1.0,
                 warmup_s: float = 0.3, target_ns: float = 1_000_000.0, events=None,
                 **config) -> dict:
    """Drive the pipeline at ``load`` x ``capacity`` under ``controller``.

    Returns controller, load, p50_ns/p99_ns (end to end, admitted messages),
    goodput (admitted messages/s that met 1.1 x the target), goodput_ratio
    (goodput / capacity), shed_rate, and the raw counts.
    """
    choice("controller", controller, controller_names())
    load = number("load", load, low=0.01)
    capacity = number("capacity", capacity, low=1.0)
    rate = load * capacity
    adm = dict(config.pop("admission", {}) or {})
    if controller == "token_bucket":
        adm.setdefault("rate", 0.95 * capacity)
    kwargs = dict(config, rate=rate, controller=controller, target_ns=target_ns, admission=adm)
    pipe = Pipeline(events, **kwargs) if events is not None else Pipeline(**kwargs)
    with pipe as p:
        time.sleep(warmup_s)
        d, h, dt = _window(p, duration_s)
    received = int(d[kpipe.PC_RECEIVED])
    admitted = int(d[kpipe.PC_ADMITTED])
    good = histogram_count_within(h, 1.1 * target_ns)
    return {
        "controller": controller, "load": float(load), "rate": rate,
        "p50_ns": int(kh.percentile(h, 50.0)), "p99_ns": int(kh.percentile(h, 99.0)),
        "goodput": good / dt, "goodput_ratio": good / dt / capacity,
        "shed_rate": float(d[kpipe.PC_SHED] / received) if received else 0.0,
        "received": received, "admitted": admitted, "seconds": dt,
    }


def overload_sweep(controllers: Iterable[str] = kadm.CONTROLLER_NAMES,
                   loads: Iterable[float] = (0.5, 1.0, 2.0, 4.0), *, duration_s: float = 1.0,
                   warmup_s: float = 0.3, target_ns: float = 1_000_000.0,
                   capacity: float | None = None, progress: bool = True, **config):
    """Every controller at every load (x capacity, measured first unless given).

    Returns ``(capacity, polars.DataFrame)`` with one :func:`overload_run` row each.
    """
    import polars as pl
    from tqdm.auto import tqdm

    controllers = [choice("controller", c, controller_names()) for c in controllers]
    loads = [number("load", x, low=0.01) for x in loads]
    if capacity is None:
        capacity = measure_capacity(duration_s=duration_s, warmup_s=warmup_s, **config)
    rows = []
    jobs = [(c, x) for c in controllers for x in loads]
    for c, x in tqdm(jobs, desc="overload", disable=not progress):
        rows.append(overload_run(c, x, capacity, duration_s=duration_s, warmup_s=warmup_s,
                                 target_ns=target_ns, **config))
    return capacity, pl.DataFrame(rows)


# ------------------------------------------------------- controllers on a model queue
def simulate_admission(controller: str, load: float, *, n: int = 100_000,
                       target_ns: float = 200_000.0, service_ns: float = 5_000.0,
                       shed_cost_ns: int = 100, seed: int = 0, **params) -> dict:
    """Run ``controller`` on a single-server queue (``kernels.admission.simulate_trace``):
    Poisson arrivals at ``load`` x capacity, exponential service times. No threads, no
    clock: the same controller code as the live pipeline, on a reproducible trace.

    Returns arrays (``arrival_ns``, ``latency_ns`` (-1 when shed), ``admitted``,
    ``backlog``) and a summary (p50/p99 of admitted, goodput as a fraction of
    capacity within 1.1x target, shed rate).
    """
    choice("controller", controller, controller_names())
    load = number("load", load, low=0.01)
    n = int(number("n", n, low=1, integer=True))
    service_ns = number("service_ns", service_ns, low=1.0)
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(service_ns / load, n)).astype(np.int64)
    services = (rng.exponential(service_ns, n) + 1).astype(np.int64)
    p = kadm.default_params(kadm.CONTROLLERS.id_of(controller), number("target_ns", target_ns, low=1.0))
    if controller == "token_bucket" and "rate" not in params:
        p[kadm.AP_RATE] = 0.95e9 / service_ns
    ADMISSION.apply(params, p)
    state = np.zeros(kadm.N_ADM_STATE)
    counters = np.zeros(kadm.N_ADM_COUNTERS, dtype=np.int64)
    window = kh.new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
    backlog = np.zeros(n, dtype=np.int64)
    latency = np.zeros(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=np.int8)
    end = kadm.simulate_trace(p, state, counters, window, arrivals, services, shed_cost_ns,
                              backlog, latency, admitted)
    ok = admitted == 1
    seconds = max((end - arrivals[0]) / 1e9, 1e-12)
    capacity = 1e9 / service_ns
    return {
        "controller": controller, "load": load,
        "p50_ns": float(np.percentile(latency[ok], 50)) if ok.any() else 0.0,
        "p99_ns": float(np.percentile(latency[ok], 99)) if ok.any() else 0.0,
        "goodput_ratio": float(((latency <= 1.1 * target_ns) & ok).sum() / seconds / capacity),
        "shed_rate": float(1.0 - ok.mean()),
        "arrival_ns": arrivals, "latency_ns": latency, "admitted": admitted, "backlog": backlog,
    }


def admitted_latency_trace(run: dict, every: int = 50) -> dict:
    """Every ``every``-th admitted message of a :func:`simulate_admission` run:
    ``{"t_ms": time since the first arrival (ms), "latency_ns": its latency}``."""
    every = int(number("every", every, low=1, integer=True))
    ok = run["admitted"] == 1
    t_ms = (run["arrival_ns"][ok] - run["arrival_ns"][0]) / 1e6
    return {"t_ms": t_ms[::every], "latency_ns": run["latency_ns"][ok][::every]}
