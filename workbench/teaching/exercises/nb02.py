"""Checkers of notebook 02-measuring-latency.

Every exercise is a computation on numbers given to it (samples, intervals), never a
timing taken while checking: the verdict is the same on any machine, however loaded.
"""
from __future__ import annotations

import math
from fractions import Fraction

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


def _exact(x) -> Fraction:
    """A number as people typed it (99.9 is 999/10, not the nearest double)."""
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


# --------------------------------------------------------------------------- 02.1
def _ranks(n: int, q) -> set[int]:
    """The nearest rank of percentile ``q`` among ``n`` samples (1-based), computed
    exactly, plus the rank a float computation can land on at an exact boundary."""
    exact = max(1, math.ceil(_exact(q) / 100 * n))
    floated = max(1, min(n, math.ceil(q / 100 * n)))
    return {exact, floated}


def _percentile_cases():
    import numpy as np

    rng = np.random.default_rng(2)
    lognormal = rng.lognormal(8, 1, 1_000).astype(np.int64)
    tail = np.concatenate([np.full(990, 1_000), np.arange(1, 11) * 100_000]).astype(np.int64)
    rng.shuffle(tail)
    return (
        ("five samples", [50, 10, 40, 20, 30], (50, 20, 21, 100, 0)),
        ("one sample", [7_000], (0, 50, 99.9, 100)),
        ("990 fast, 10 slow", tail, (99, 99.1, 99.9, 100)),
        ("1,000 lognormal samples", lognormal, (50, 90, 99, 99.9)),
        ("ties", np.array([3, 3, 3, 9, 9, 9, 9, 1], dtype=np.int64), (10, 12.5, 37.5, 40, 87.5)),
    )


@exercise("02.1", hint="sort the samples; the p-th percentile is the sample of rank ceil(p / 100 x n) (1-based, at least 1): sorted_samples[rank - 1]. No interpolation, no mean")
def check_percentile(percentile) -> Verdict:
    """Exercise 02.1: ``percentile(samples, p)`` returns the nearest-rank p-th percentile
    of latency samples: the smallest sample that at least p % of the samples do not
    exceed (always one of the samples; numpy's ``method="inverted_cdf"``). Tried on
    unsorted data, one sample, ties, a tail of ten slow samples and lognormal data,
    from p = 0 to p = 100."""
    import numpy as np

    for name, samples, qs in _percentile_cases():
        ordered = sorted(int(x) for x in samples)
        n = len(ordered)
        for q in qs:
            given = list(samples) if isinstance(samples, list) else samples.copy()
            got, why = _attempt(percentile, given, q)
            where = f"{name}, p={q}"
            if why:
                return _verdict(False, f"{where}: {why}")
            value = _number(got)
            if value is None:
                return _verdict(False, f"{where}: return one number, not {got!r}"[:200])
            ranks = sorted(_ranks(n, q))
            allowed = {ordered[r - 1] for r in ranks}
            if value in allowed:
                continue
            expected = ordered[ranks[0] - 1]
            msg = f"{where}: you returned {value:g}, the nearest-rank percentile is {expected:,}"
            mean = sum(ordered) / n
            if abs(value - mean) <= 1e-6 * max(1.0, abs(mean)):
                msg += " (that is the mean: the p-th percentile is the sample p % of the others do not exceed)"
            elif value not in set(ordered):
                if abs(value - float(np.percentile(ordered, q))) <= 1e-6 * max(1.0, value):
                    msg += (" (numpy's default interpolates between samples: a latency that "
                            "never happened; use the sample of rank ceil(p/100 x n))")
                else:
                    msg += " (which is none of the samples)"
            elif ranks[0] < n and value == ordered[ranks[0]]:
                msg += " (one rank too high: ranks start at 1, the list index at 0)"
            elif ranks[0] > 1 and value == ordered[ranks[0] - 2]:
                msg += " (one rank too low: round the rank up, ceil, not down)"
            elif [int(x) for x in samples] != ordered:
                msg += " (did you sort the samples first?)"
            return _verdict(False, msg)
    return _verdict(True, "nearest-rank percentiles: always a measured sample, right at the "
                          "boundaries (p=0, p=100, one sample, ties)")


# --------------------------------------------------------------------------- 02.2
def _co_reference(values, interval) -> list[int]:
    """HdrHistogram's recordValueWithExpectedInterval: each value, then the values the
    requests that were due during it would have seen (v - k x interval while >= interval)."""
    out = []
    for v in values:
        out.append(int(v))
        if interval > 0 and v > interval:
            missing = int(v) - interval
            while missing >= interval:
                out.append(missing)
                missing -= interval
    return out


@exercise("02.2", hint="for each latency v: keep v, and if v > interval add v - interval, v - 2 x interval, ... as long as the value is >= interval")
def check_co_correct(co_correct) -> Verdict:
    """Exercise 02.2: ``co_correct(latencies_ns, interval_ns)`` corrects a coordinated
    load generator's samples for coordinated omission the way HdrHistogram does
    (``recordValueWithExpectedInterval``): every sample stays, and a sample ``v`` longer
    than the interval adds ``v - interval``, ``v - 2 x interval``, ... down to the last
    value that is still at least the interval: the latencies of the requests that
    should have been sent during the stall. Returns every value (any order)."""
    cases = (
        ("no stall", [20_000, 25_000, 18_000, 30_000], 100_000),
        ("one 1 ms stall", [20_000] * 5 + [1_000_000] + [20_000] * 5, 100_000),
        ("a stall of exactly 2 intervals", [20_000, 200_000, 20_000], 100_000),
        ("a stall of exactly 1 interval", [100_000, 20_000], 100_000),
        ("a stall just over 3 intervals", [300_001, 5], 100_000),
        ("two stalls", [50, 1_000, 60, 2_550, 40], 500),
        ("nothing measured", [], 1_000),
    )
    for name, values, interval in cases:
        got, why = _attempt(co_correct, list(values), interval)
        where = f"{name} (interval {interval:,} ns, samples {values[:6]}{'...' if len(values) > 6 else ''})"
        if why:
            return _verdict(False, f"{where}: {why}")
        try:
            mine = sorted(int(x) for x in got)
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return the corrected latencies (a list or an "
                                   f"array of ns), not {got!r}"[:300])
        expected = sorted(_co_reference(values, interval))
        if mine == expected:
            continue
        missing = sorted(set(expected) - set(mine))
        extra = sorted(set(mine) - set(expected))
        msg = f"{where}: {len(mine)} values, the correction gives {len(expected)}"
        if mine == sorted(int(v) for v in values):
            msg += ("; you returned the samples unchanged: each sample v longer than the interval "
                    "also stands for v - interval, v - 2 x interval, ... (while >= the interval)")
        elif not set(values) <= set(mine):
            msg += "; keep every measured sample too"
        elif extra and interval in extra:
            msg += (f"; you added {interval:,}, yet the corrected values stop before the "
                    "interval itself for a sample of exactly one interval (v > interval)")
        elif missing and min(missing) == interval:
            msg += (f"; you stopped before {interval:,}: add values while they are >= the "
                    "interval")
        elif missing:
            msg += f"; missing e.g. {missing[:4]}"
        elif extra:
            msg += f"; these should not be there: {extra[:4]}"
        return _verdict(False, msg)
    return _verdict(True, "every stall back-filled with the requests it delayed, boundaries "
                          "included; a percentile of these is the latency users saw")


# --------------------------------------------------------------------------- 02.3
@exercise("02.3", hint="beyond the p-th percentile lie n x (100 - p) / 100 samples; the smallest n with n x (100 - p) / 100 >= beyond is ceil(100 x beyond / (100 - p))")
def check_samples_for(samples_for) -> Verdict:
    """Exercise 02.3: ``samples_for(p, beyond)`` is the fewest samples a run needs for
    its p-th percentile to rest on at least ``beyond`` samples above it: the smallest
    ``n`` with ``n x (100 - p) / 100 >= beyond``. (With fewer, a p99.9 is the maximum
    of a handful of samples, a single unlucky pause.)"""
    cases = ((99, 10), (99.9, 10), (99.99, 10), (50, 1), (90, 1), (99.9, 1), (99.5, 10),
             (75, 3), (99.999, 5), (99.9, 7))
    for p, beyond in cases:
        got, why = _attempt(samples_for, p, beyond)
        where = f"samples_for({p}, {beyond})"
        if why:
            return _verdict(False, f"{where}: {why}")
        if (isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got)
                or got != int(got)):
            return _verdict(False, f"{where} returned {got!r}: return a whole number of samples")
        got = int(got)
        tail = 100 - _exact(p)
        expected = math.ceil(100 * beyond / tail)
        if got == expected:
            continue
        boundary = expected * tail / 100 == beyond
        if got == expected + 1 and boundary:
            continue  # a float computation lands one over at an exact boundary: not the point
        if got * tail / 100 < beyond:
            return _verdict(False, f"{where} = {got:,}: then only {float(got * tail / 100):g} "
                                   f"sample(s) lie beyond p{p}, fewer than {beyond}")
        return _verdict(False, f"{where} = {got:,}, but {expected:,} already leave {beyond} "
                               f"samples beyond p{p}: return the smallest such n")
    return _verdict(True, "p99 needs thousands of samples, p99.99 hundreds of thousands: "
                          "a tail is only as good as the samples beyond it")
