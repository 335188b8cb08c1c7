"""Checkers of notebook 15-batching-and-adaptive-batching."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

# (parameters, steps of (latency of the batch's oldest item in us, items left queued))
_AIMD_CASES = (
    (dict(batch=8, target_us=100.0, increase=4.0, decrease=0.5, min_batch=1, max_batch=64),
     ((50.0, 0), (150.0, 0), (150.0, 3), (50.0, 3), (100.0, 0), (150.0, 0), (150.0, 0),
      (150.0, 0), (150.0, 0), (150.0, 0)) + ((500.0, 10),) * 20 + ((120.0, 0),)),
    (dict(batch=5, target_us=50.0, increase=1.5, decrease=0.8, min_batch=2, max_batch=16),
     ((60.0, 0), (60.0, 0), (49.0, 7), (60.0, 1), (60.0, 1), (10.0, 0), (51.0, 0), (60.0, 0),
      (60.0, 0), (60.0, 0), (60.0, 0), (90.0, 2)) + ((70.0, 5),) * 14),
)


def _number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@exercise("15.1", hint="over target with items left queued: batch + increase; over target with none "
                       "queued: batch * decrease; on or under target: batch unchanged; then clamp "
                       "to [min_batch, max_batch] and return a float (no rounding)")
def check_next_batch(next_batch) -> Verdict:
    """Exercise 15.1: ``next_batch(batch, latency_us, backlog, *, target_us, increase,
    decrease, min_batch, max_batch)`` is one step of the AIMD batch-size controller, the
    one ``kernels.batching.batch_control`` runs after every batch. Compared with that
    kernel step by step on two parameter sets (holds, shrinks, growth on a backlog, both
    clamps, latency exactly on target)."""
    from workbench.batching import controller_trace

    for params, steps in _AIMD_CASES:
        lat = [s[0] for s in steps]
        back = [s[1] for s in steps]
        ref = controller_trace(lat, back, **params)
        kw = {k: v for k, v in params.items() if k != "batch"}
        prev = float(min(max(params["batch"], params["min_batch"]), params["max_batch"]))
        for k, (latency, backlog) in enumerate(steps):
            got, why = _attempt(next_batch, prev, latency, backlog, **kw)
            if why:
                return _verdict(False, why)
            if not _number(got) or not math.isfinite(float(got)):
                return _verdict(False, f"return the new batch size as a number, not {got!r}")
            want = float(ref[k])
            if abs(float(got) - want) > 1e-9 * max(1.0, abs(want)):
                state = ("over" if latency > params["target_us"] else
                         "on" if latency == params["target_us"] else "under")
                why = ""
                if float(got) == math.floor(want) and want != math.floor(want):
                    why = " (keep the fraction: the consumer uses the floor, the controller the exact value)"
                return _verdict(False, f"batch {prev:g}, latency {latency:g} us ({state} the "
                                       f"{params['target_us']:g} us target), backlog {backlog}, "
                                       f"{kw}: the controller makes it {want:g}, you returned "
                                       f"{float(got):g}{why}")
            prev = want
    return _verdict(True, "the same batch sizes as the kernel's controller at every step: grow on "
                          "a backlog, shrink over target, hold otherwise, within the bounds")


_BATCH_CASES = (  # (rate_per_s, fixed_us, per_item_us)
    (300_000.0, 10.0, 0.5), (1_150_000.0, 10.0, 0.5), (50_000.0, 10.0, 0.5),
    (1_890_000.0, 10.0, 0.5), (2_000_000.0, 10.0, 0.5), (2_500_000.0, 10.0, 0.5),
    (1_000_000.0, 0.0, 0.5), (800_000.0, 25.0, 0.8), (10.0, 50.0, 1.0), (900_000.0, 3.0, 0.0),
)  # no rate sits exactly on a batch size's capacity: float rounding cannot decide a case


def _smallest_batch_reference(rate, fixed_us, per_item_us):
    """The smallest b <= MAX_BATCH with capacity(b) >= rate (None when there is none);
    capacity grows with b, so a bisection over the cost model finds it."""
    from kernels.batching import MAX_BATCH
    from workbench.batching import capacity

    def ok(b):
        return capacity(b, fixed_us, per_item_us) >= rate * (1 - 1e-12)

    if not ok(MAX_BATCH):
        return None
    lo, hi = 1, MAX_BATCH
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@exercise("15.2", hint="capacity(b) = b / (fixed + b * per_item) items per us; solve "
                       "capacity(b) >= rate for b: b >= rate * fixed / (1 - rate * per_item) "
                       "(rates per us), round up; None when rate * per_item >= 1")
def check_smallest_batch(smallest_batch) -> Verdict:
    """Exercise 15.2: ``smallest_batch(rate_per_s, fixed_us, per_item_us)`` returns the
    smallest fixed batch size whose capacity, ``b / (fixed + b * per_item)``, is at least
    ``rate_per_s``, or None when no batch up to ``kernels.batching.MAX_BATCH`` reaches it.
    Compared with a bisection over ``workbench.batching.capacity`` on ten cost models and
    rates, including ones no batch can serve."""
    from workbench.batching import capacity

    for rate, fixed_us, per_item_us in _BATCH_CASES:
        want = _smallest_batch_reference(rate, fixed_us, per_item_us)
        got, why = _attempt(smallest_batch, rate, fixed_us, per_item_us)
        if why:
            return _verdict(False, why)
        case = f"rate {rate:,.0f}/s, fixed {fixed_us:g} us, per item {per_item_us:g} us"
        if want is None:
            if got is not None:
                return _verdict(False, f"{case}: even {per_item_us:g} us per item alone allows at "
                                       f"most {1e6 / per_item_us:,.0f}/s if it is > 0, so no batch "
                                       f"size reaches the rate: return None, not {got!r}")
            continue
        if got is None or not _number(got) or float(got) != int(got):
            return _verdict(False, f"{case}: return a whole batch size (here {want}), not {got!r}")
        got = int(got)
        if got != want:
            have = capacity(got, fixed_us, per_item_us) if 1 <= got <= 65536 else float("nan")
            more = (f"batch {got} serves only {have:,.0f}/s" if got < want else
                    f"batch {want} already serves {capacity(want, fixed_us, per_item_us):,.0f}/s")
            return _verdict(False, f"{case}: the smallest batch is {want}, you returned {got} "
                                   f"({more})")
    return _verdict(True, "the smallest batch sizes that keep up, on all ten cost models "
                          "(and None where per-item cost alone is too slow)")


def _start_cases():
    yield [0, 1, 2, 3, 10], 0, 5, 3, 100          # a full batch already waits: now
    yield [0, 10, 20, 30], 0, 0, 3, 100           # the third item fills it at 20
    yield [0, 10, 500], 0, 0, 3, 100              # the oldest's wait runs out first: 100
    yield [50, 60], 0, 0, 1, 0                    # an empty queue: wait for the first item
    yield [0, 5], 0, 0, 4, 30                     # the stream ends short of a batch: deadline
    yield [0, 5, 300], 0, 200, 3, 100             # busy past the deadline: take what is there
    yield [0, 10], 0, 0, 2, 0                     # max_wait 0: plain draining
    yield [0, 1, 2, 100, 110, 120], 3, 50, 2, 1000  # later items: head moves on
    yield [7, 7, 7, 7], 1, 3, 3, 5                # equal times, head 1: all there at 7
    rng = np.random.default_rng(15)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        arr = np.sort(rng.integers(0, 200, n)).tolist()
        yield (arr, int(rng.integers(0, n)), int(rng.integers(0, 250)), int(rng.integers(1, 6)),
               int(rng.integers(0, 120)))


@exercise("15.3", hint="start = max(free, arrivals[head]); if arrivals[head + limit - 1] exists and is "
                       "<= start, start now; else wait until min(that arrival (if it exists), "
                       "arrivals[head] + max_wait), but never before start")
def check_start_time(start_time) -> Verdict:
    """Exercise 15.3: ``start_time(arrivals, head, free, limit, max_wait)`` says when a
    consumer free at ``free`` takes its next batch: at once if ``limit`` items are queued,
    otherwise when the ``limit``-th item arrives or the oldest has waited ``max_wait``,
    whichever is first. Compared with ``kernels.batching.batch_start`` (through
    ``workbench.batching.start_time``) on nine edge cases and 200 random ones."""
    from workbench.batching import start_time as reference

    for arr, head, free, limit, max_wait in _start_cases():
        want = reference(arr, head, free, limit, max_wait)
        got, why = _attempt(start_time, list(arr), head, free, limit, max_wait)
        if why:
            return _verdict(False, why)
        if not _number(got) or float(got) != want:
            return _verdict(False, f"arrivals {arr}, head {head}, free at {free}, limit {limit}, "
                                   f"max_wait {max_wait}: the batch starts at {want}, you returned "
                                   f"{got!r}")
    return _verdict(True, "the same start times as the kernel on every case: a full batch starts "
                          "at once, otherwise the fill or the oldest item's deadline, whichever is first")
