"""kernels.histogram: percentiles within the configured precision of exact ranks."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import histogram as kh


def exact_percentile(sorted_values, q):
    """Nearest rank: the ceil(q/100 * n)-th smallest value, in exact arithmetic."""
    n = len(sorted_values)
    rank = max(1, math.ceil(Fraction(str(q)) * n / 100))
    return int(sorted_values[min(rank, n) - 1])


QS = (0, 1, 25, 50, 90, 99, 99.9, 99.99, 100)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5000),
       precision=st.sampled_from([5, 8, 11]), shape=st.sampled_from(["lognormal", "uniform", "small"]))
def test_percentiles_within_precision_of_numpy(seed, n, precision, shape):
    rng = np.random.default_rng(seed)
    if shape == "lognormal":
        values = rng.lognormal(8, 3, n)
    elif shape == "uniform":
        values = rng.uniform(0, 1e9, n)
    else:
        values = rng.integers(0, 300, n)
    values = np.minimum(values, kh.ONE_HOUR_NS).astype(np.int64)
    h = kh.new_histogram(precision)
    kh.record_many(h, values)
    ordered = np.sort(values)
    tolerance = 2.0 ** -(precision - 1)
    for q in QS:
        got, want = kh.percentile(h, q), exact_percentile(ordered, q)
        assert want <= got <= want + want * tolerance, (q, got, want)
    assert h[kh.HP_COUNT] == n
    assert h[kh.HP_SUM] == values.sum()
    assert h[kh.HP_MAX] == values.max() and h[kh.HP_MIN] == values.min()
    assert kh.percentile(h, 100) == values.max()


def test_nearest_rank_agrees_with_numpy_inverted_cdf_where_float_is_exact():
    values = np.arange(1, 1001, dtype=np.int64)
    h = kh.new_histogram(11)
    kh.record_many(h, values)
    for q in (10, 50, 75, 90):
        assert kh.percentile(h, q) == np.percentile(values, q, method="inverted_cdf")


def test_merge_equals_recording_everything_in_one():
    rng = np.random.default_rng(3)
    a_vals, b_vals = rng.integers(0, 10**7, 3000), rng.integers(0, 10**9, 2000)
    a, b, both = kh.new_histogram(8), kh.new_histogram(8), kh.new_histogram(8)
    kh.record_many(a, a_vals)
    kh.record_many(b, b_vals)
    kh.record_many(both, np.concatenate([a_vals, b_vals]))
    kh.merge(a, b)
    assert np.array_equal(a, both)


def test_out_of_range_values_are_clamped_and_counted():
    h = kh.new_histogram(8, highest=1 << 20)
    kh.record_many(h, np.array([-5, 3, (1 << 20) + 7, 1 << 40], dtype=np.int64))
    assert h[kh.HP_BELOW_ZERO] == 1
    assert h[kh.HP_ABOVE_RANGE] == 2
    assert h[kh.HP_COUNT] == 4
    assert h[kh.HP_MAX] == 1 << 20
    assert kh.percentile(h, 0) == 0


def test_buckets_tile_the_range_without_gaps():
    for precision in (2, 8, 11):
        h = kh.new_histogram(precision)
        lo, hi = kh.bucket_bounds(h)
        assert lo[0] == 0 and np.all(lo[1:] == hi[:-1] + 1)
        assert hi[-1] >= kh.ONE_HOUR_NS
        width = hi - lo + 1
        assert np.all(width <= np.maximum(lo, 1) * 2.0 ** -(precision - 1) + 1)
    assert len(kh.new_histogram(11)) < 40_000  # 1 ns .. 1 h at 3 digits stays small


def test_reset_and_empty():
    h = kh.new_histogram(8)
    assert kh.percentile(h, 50) == 0
    kh.record_many(h, np.array([5, 6, 7], dtype=np.int64))
    kh.reset(h)
    assert np.array_equal(h, kh.new_histogram(8))


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError, match="precision"):
        kh.new_histogram(1)
    with pytest.raises(ValueError, match="highest"):
        kh.new_histogram(11, highest=100)
    assert kh.bits_for_significant_digits(3) == 11
