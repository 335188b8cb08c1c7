"""Benchmark suite ``sweep``: 64 backtests run serially, with the local executor (threads)
and on a Dask ``LocalCluster`` of 2 worker processes, all in the same run.

Keys: ``serial_sec``, ``local_sec``, ``dask_sec`` (medians of ``repeats`` runs, the three
ways taking turns within each repeat so they meet the same load; the cluster is started
and warmed once before, its cost reported apart as ``dask_start_sec`` and
``dask_first_sweep_sec``), ``dask_vs_serial`` (speed-up) and ``dask_vs_local`` (time
ratio; the target is <= 1.15 on 2 cores), medians of the per-repeat ratios,
``dask_overhead_ms_per_task`` (worker time per task that was not the task:
``(dask_sec * workers - compute) / tasks``, ``compute`` being what the workers' task
stream says they spent computing), ``dask_extra_worker_ms_per_task`` (the same against
the serial run, ``(dask_sec * workers - serial_sec) / tasks``: it also counts tasks running
slower on a busy machine, ``worker_compute_vs_serial``), ``dask_scheduler_ms_per_task`` (CPU time
of the scheduler's event loop per empty task: the serial part no number of workers
removes) and ``dask_empty_task_wall_ms`` (wall time per empty task here, where the
scheduler, the client and both workers share two cores).

``scaling`` estimates 8, 32 and 128 workers by simulation: a discrete-event model
(:func:`simulate_makespan`) fed with the measured task durations (as the workers ran
them), the scheduler's cost per task, the per-task overhead and the cost of copying the
market data to a worker,
for this grid (64 tasks) and for a 4 096-task grid; ``scaling_limit`` says what bounds it.
The model is checked against the measured 2-worker run (``model_error_2_workers``).
"""
from __future__ import annotations

import heapq
import math
import statistics
import time

import numpy as np

NAME = "sweep"
DESCRIPTION = "64 backtests: serial, local threads, Dask LocalCluster of 2 workers (same run)"

WORKERS = 2
SCALE_TO = (8, 32, 128)


def simulate_makespan(durations_s, workers: int, *, scheduler_s: float, overhead_s: float,
                      copy_s: float, warm_s: float) -> float:
    """Wall time of ``durations_s`` tasks on ``workers`` workers fed by one scheduler.

    The data reaches the workers by replication in rounds (each holder copies to one more
    worker per round: ``ceil(log2(workers))`` copies of ``copy_s`` in a row); every worker
    then warms up (``warm_s``, in parallel). The scheduler handles one task at a time
    (``scheduler_s`` each, for the dispatch and the result) and gives it to the worker free
    first; a worker is busy for the task plus ``overhead_s``.
    """
    setup = math.ceil(math.log2(max(workers, 1))) * copy_s + warm_s if workers > 1 else warm_s
    free = [(setup, w) for w in range(workers)]
    heapq.heapify(free)
    scheduler = setup
    end = setup
    for d in durations_s:
        at, w = heapq.heappop(free)
        start = max(at, scheduler) + scheduler_s
        scheduler = start
        finish = start + d + overhead_s
        end = max(end, finish)
        heapq.heappush(free, (finish, w))
    return end


def _noop(x):
    return x


def run(quick: bool = False) -> dict:
    from workbench import scale
    from workbench.backtest import Backtest, sweep
    from workbench.backtest.sweep import template_of, variant
    from workbench.data.market import load_events
    from workbench.data.synthetic import simulate

    repeats = 1 if quick else 5
    side = 4 if quick else 8
    grid = {"half_spread_ticks": list(range(1, side + 1)), "skew_ticks": list(range(side))}
    n_tasks = side * side
    md = load_events(simulate(1, seed=11, duration_s=300 if quick else 900, rate=20.0))
    bt = Backtest(md).strategy("mm_skew").latency(50, 100, 50).fees(-0.2, 0.3).risk(max_position=2000)
    combos = [{"half_spread_ticks": a, "skew_ticks": b} for a in grid["half_spread_ticks"]
              for b in grid["skew_ticks"]]
    template = template_of(bt)
    variant(template, md, combos[0]).run(progress=False)  # compile here first

    task_s: list[float] = []

    def serial():
        task_s.clear()
        out = []
        for c in combos:
            t = time.perf_counter()
            out.append(variant(template, md, c).run(progress=False).stats)
            task_s.append(time.perf_counter() - t)
        return out

    from distributed import get_task_stream

    computes: list[float] = []

    def on_dask(client):
        with get_task_stream(client) as stream:
            frame = sweep(bt, grid, executor=client, progress=False)
        computes.append(sum(s["stop"] - s["start"] for d in stream.data
                            if str(d["key"]).startswith("sweep-")
                            for s in d["startstops"] if s["action"] == "compute"))
        return frame

    started = time.perf_counter()
    with scale.cluster(WORKERS, processes=True, dashboard=False) as client:
        dask_start_sec = time.perf_counter() - started
        t = time.perf_counter()
        sweep(bt, grid, executor=client, progress=False)  # workers import, compile, warm up
        dask_first_sweep_sec = time.perf_counter() - t
        # the three ways in turn, each repeat: on a shared machine they see the same load
        runs: dict[str, list[float]] = {"serial": [], "local": [], "dask": []}
        for _ in range(repeats):
            for name, work in (("serial", serial), ("local", lambda: sweep(bt, grid, progress=False)),
                               ("dask", lambda: on_dask(client))):
                t = time.perf_counter()
                out = work()
                runs[name].append(time.perf_counter() - t)
                if name == "serial":
                    serial_stats, durations = out, list(task_s)
                elif name == "local":
                    local_frame = out
                else:
                    dask_frame = out
        serial_sec, local_sec, dask_sec = (statistics.median(runs[k])
                                           for k in ("serial", "local", "dask"))
        dask_vs_local = statistics.median(d / l for d, l in zip(runs["dask"], runs["local"]))
        dask_vs_serial = statistics.median(s_ / d for s_, d in zip(runs["serial"], runs["dask"]))
        worker_compute_s = statistics.median(computes)
        noop_n = 100 if quick else 400
        noop_times, cpu_times = [], []
        for _ in range(repeats):
            cpu0 = client.run_on_scheduler(time.thread_time)  # the scheduler's event loop
            t = time.perf_counter()
            client.gather([client.submit(_noop, i, pure=False) for i in range(noop_n)])
            noop_times.append(time.perf_counter() - t)
            cpu_times.append(client.run_on_scheduler(time.thread_time) - cpu0)
        noop_wall_s = statistics.median(noop_times) / noop_n
        scheduler_s = statistics.median(cpu_times) / noop_n
        copy_times = []
        for _ in range(repeats):
            t = time.perf_counter()
            [f] = client.scatter([md], broadcast=True, hash=False)
            copy_times.append((time.perf_counter() - t) / WORKERS)
            f.release()
        copy_s = statistics.median(copy_times)
    identical = scale.without_timing(dask_frame).equals(scale.without_timing(local_frame))
    serial_rows = [{k: v for k, v in s.items() if k not in scale.TIMING_COLUMNS and not isinstance(v, dict)}
                   for s in serial_stats]
    same_as_serial = serial_rows == [{k: v for k, v in r.items() if k in serial_rows[0]}
                                     for r in scale.without_timing(local_frame).to_dicts()]

    # worker time per task that was not the task: scheduling, transfers, results, warm-up
    overhead_s = max(0.0, (dask_sec * WORKERS - worker_compute_s) / n_tasks)
    extra_s = (dask_sec * WORKERS - serial_sec) / n_tasks
    warm_s = max(0.0, dask_first_sweep_sec - dask_sec)
    # the tasks as the workers ran them (on a busy machine they run slower than serially)
    stretch = worker_compute_s / sum(durations)
    durations = [d * stretch for d in durations]
    model = dict(scheduler_s=scheduler_s, overhead_s=overhead_s, copy_s=copy_s, warm_s=0.0)
    predicted_2 = simulate_makespan(durations, WORKERS, **model)
    rng = np.random.default_rng(0)
    big = rng.choice(np.asarray(durations), size=4096).tolist()
    scaling = {}
    for w in SCALE_TO:
        est64 = simulate_makespan(durations, w, **model)
        est4k = simulate_makespan(big, w, **model)
        scaling[str(w)] = {
            "est_sec_64_tasks": round(est64, 3),
            "speedup_64_tasks": round(sum(durations) / est64, 2),
            "est_sec_4096_tasks": round(est4k, 2),
            "speedup_4096_tasks": round(sum(big) / est4k, 1),
            "efficiency_4096_tasks": round(sum(big) / est4k / w, 2),
        }
    mean_task = statistics.fmean(durations)
    saturation = mean_task / scheduler_s if scheduler_s > 0 else float("inf")
    limit = (f"{n_tasks} tasks of ~{1000 * mean_task:.0f} ms: beyond {n_tasks} workers there is "
             f"nothing left to split (and the last wave leaves workers idle well before); "
             f"for thousands of tasks the one scheduler's ~{1000 * scheduler_s:.2f} ms per task "
             f"caps it near {saturation:,.0f} busy workers ({1 / scheduler_s:,.0f} tasks/s); "
             f"each new worker first pays ~{warm_s:.1f} s to import and compile the backtest loop "
             f"(Numba cannot cache it: it takes the strategy as a function argument) and "
             f"~{1000 * copy_s:.0f} ms per copy of the market data")
    return {
        "tasks": n_tasks,
        "workers": WORKERS,
        "events_per_task": int(len(md.events)),
        "repeats": repeats,
        "serial_sec": round(serial_sec, 3),
        "local_sec": round(local_sec, 3),
        "dask_sec": round(dask_sec, 3),
        "dask_vs_serial": round(dask_vs_serial, 3),
        "dask_vs_local": round(dask_vs_local, 3),
        "dask_within_15pct_of_local": bool(dask_vs_local <= 1.15),
        "dask_overhead_ms_per_task": round(1000 * overhead_s, 2),
        "dask_extra_worker_ms_per_task": round(1000 * extra_s, 2),
        "worker_compute_vs_serial": round(stretch, 3),
        "dask_scheduler_ms_per_task": round(1000 * scheduler_s, 3),
        "dask_empty_task_wall_ms": round(1000 * noop_wall_s, 3),
        "dask_start_sec": round(dask_start_sec, 2),
        "dask_first_sweep_sec": round(dask_first_sweep_sec, 2),
        "data_copy_ms_per_worker": round(1000 * copy_s, 2),
        "task_ms_median": round(1000 * statistics.median(durations), 1),
        "identical_to_local": bool(identical),
        "local_identical_to_serial": bool(same_as_serial),
        "model_error_2_workers": round(predicted_2 / dask_sec - 1, 3),
        "scaling": scaling,
        "scaling_limit": limit,
    }
