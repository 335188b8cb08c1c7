"""``bench pipeline``: the live pipeline's latency at half load, its capacity, and every
admission controller at 0.5x / 1x / 2x / 4x that capacity.

Setting (``HARNESS``): the simulator's L3 feed, the ``mm_skew`` strategy, 10 us of
simulated model work per admitted message (which sets the capacity), an end-to-end
p99 target of 5 ms. The target is that loose on purpose: on a shared 2-core machine
the OS deschedules a thread for milliseconds at a time, and a target below those
stalls measures the scheduler, not the controllers. Capacity
(``max_sustained_msgs_per_sec``) is the median of three unpaced runs without
admission control; ``end_to_end_*`` come from a paced run at half that. Overload rows
report p50/p99 of admitted messages, goodput (admitted messages/s that finished
within 1.1x the target) and the shed rate.
"""
from __future__ import annotations

import statistics
import sys

NAME = "pipeline"
DESCRIPTION = "live pipeline: half-load latency, capacity, admission controllers under overload"

HARNESS = dict(work_ns=10_000.0, strategy="mm_skew", wait_policy="spin", feed_wait_policy="sleep")
TARGET_NS = 5_000_000.0
LOADS = (0.5, 1.0, 2.0, 4.0)


def run(quick: bool = False) -> dict:
    from workbench.live.overload import measure_capacity, overload_run
    from workbench.params import controller_names

    seconds = 0.4 if quick else 1.0
    warmup = 0.2 if quick else 0.3
    repeats = 1 if quick else 3
    capacity = statistics.median(
        measure_capacity(duration_s=seconds, warmup_s=warmup, **HARNESS) for _ in range(repeats))
    half = overload_run("none", 0.5, capacity, duration_s=seconds, warmup_s=warmup,
                        target_ns=TARGET_NS, **HARNESS)
    rows = []
    for controller in controller_names():
        for load in LOADS:
            r = overload_run(controller, load, capacity, duration_s=seconds, warmup_s=warmup,
                             target_ns=TARGET_NS, **HARNESS)
            rows.append({k: r[k] for k in ("controller", "load", "p50_ns", "p99_ns", "goodput",
                                           "shed_rate")})
            print(f"  {controller:>12} x{load:<4} p99 {r['p99_ns'] / 1e6:8.2f} ms  goodput "
                  f"{r['goodput_ratio']:5.2f} of capacity  shed {r['shed_rate']:.2f}", file=sys.stderr)
    return {
        "end_to_end_p50_ns": half["p50_ns"],
        "end_to_end_p99_ns": half["p99_ns"],
        "max_sustained_msgs_per_sec": capacity,
        "overload": rows,
    }
