"""HDR-style log-linear latency histogram kept in one int64 array.

Owns the histogram layout and its kernels: ``record`` (a few ns, allocation-free,
callable inside any kernel), ``record_many``, ``merge``, ``percentile``,
``percentiles``, ``reset``; plus the plain-Python ``new_histogram`` and
``bucket_bounds`` that size and describe it.

Buckets: values below ``2**P`` (``P`` = precision bits) get one bucket each; above
that every power-of-two range ``[2**k, 2**(k+1))`` is cut into ``2**(P-1)`` equal
buckets. A value's bucket therefore spans at most ``value / 2**(P-1)``: the
relative error of any reported value is below ``2**-(P-1)`` (``P = 11`` gives
better than 0.1 %, i.e. three significant digits) while the whole 1 ns .. 1 hour
range fits in ~34 k counters (11 bits) or ~4.5 k (8 bits). The index is computed
with one count-leading-zeros instruction, no loop and no float.

Layout of the array ``h``: ``h[:HIST_HEADER_WORDS]`` is the header (precision, count,
sum, min, max, clamped counts, highest trackable), ``h[HIST_HEADER_WORDS:]`` the bucket
counts. One flat array means a histogram can live in shared memory, be merged with
``+`` semantics and be copied with ``h.copy()``.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import kernel

__all__ = [
    "HIST_HEADER_WORDS", "HP_PRECISION", "HP_COUNT", "HP_SUM", "HP_MIN", "HP_MAX",
    "HP_ABOVE_RANGE", "HP_BELOW_ZERO", "HP_HIGHEST", "ONE_HOUR_NS",
    "new_histogram", "bits_for_significant_digits", "bucket_count", "bucket_bounds",
    "record", "record_many", "merge", "percentile", "percentiles", "reset",
]

HIST_HEADER_WORDS = 8
HP_PRECISION = 0     # P: precision bits
HP_COUNT = 1
HP_SUM = 2           # exact sum of recorded (clamped) values, for the mean
HP_MIN = 3
HP_MAX = 4
HP_ABOVE_RANGE = 5   # values above the highest trackable (recorded as the highest)
HP_BELOW_ZERO = 6    # negative values (recorded as 0): a clock went backwards
HP_HIGHEST = 7       # highest trackable value

ONE_HOUR_NS = 3_600_000_000_000
_EMPTY_MIN = np.iinfo(np.int64).max


def bits_for_significant_digits(digits: int) -> int:
    """Precision bits giving ``digits`` significant decimal digits."""
    return 1 + math.ceil(digits * math.log2(10))


def _index_py(value: int, precision: int) -> int:
    shift = max(int(value).bit_length() - precision, 0)
    return shift * (1 << (precision - 1)) + (int(value) >> shift)


def bucket_count(precision: int, highest: int) -> int:
    """Buckets needed to cover ``0 .. highest`` at ``precision`` bits."""
    return _index_py(highest, precision) + 1


def new_histogram(precision: int = 11, highest: int = ONE_HOUR_NS) -> np.ndarray:
    """A zeroed histogram array (precision bits 2..16, highest >= 2**precision)."""
    precision, highest = int(precision), int(highest)
    if not 2 <= precision <= 16:
        raise ValueError(f"precision must be 2..16 bits, got {precision}")
    if highest < (1 << precision):
        raise ValueError(f"highest must be >= 2**precision = {1 << precision}, got {highest}")
    h = np.zeros(HIST_HEADER_WORDS + bucket_count(precision, highest), dtype=np.int64)
    h[HP_PRECISION] = precision
    h[HP_HIGHEST] = highest
    h[HP_MIN] = _EMPTY_MIN
    return h


def bucket_bounds(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) value of every bucket of ``h``, as int64 arrays."""
    precision = int(h[HP_PRECISION])
    half = 1 << (precision - 1)
    index = np.arange(h.shape[0] - HIST_HEADER_WORDS, dtype=np.int64)
    shift = np.maximum(index // half - 1, 0)
    mantissa = index - shift * half
    return mantissa << shift, ((mantissa + 1) << shift) - 1


# ------------------------------------------------------------------------ kernels
@intrinsic
def _leading_zeros(typingctx, value):
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64, ir.IntType(1)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctlz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

    return sig, codegen


@kernel(inline="always")
def _bucket_index(value, precision):
    # bit_length(value) = 64 - clz; values below 2**precision get shift 0 (exact).
    shift = max(64 - _leading_zeros(value) - precision, 0)
    return shift * (np.int64(1) << (precision - 1)) + (value >> shift)


@kernel(inline="always")
def _highest_equivalent(index, precision):
    half = np.int64(1) << (precision - 1)
    shift = max(index // half - 1, 0)
    mantissa = index - shift * half
    return ((mantissa + 1) << shift) - 1


@kernel(inline="always")
def record(h, value):
    """Count one value (ns). Negative -> 0 and above-range -> highest, both counted."""
    v = np.int64(value)
    if v < 0:
        h[HP_BELOW_ZERO] += 1
        v = 0
    elif v > h[HP_HIGHEST]:
        h[HP_ABOVE_RANGE] += 1
        v = h[HP_HIGHEST]
    h[HIST_HEADER_WORDS + _bucket_index(v, h[HP_PRECISION])] += 1
    h[HP_COUNT] += 1
    h[HP_SUM] += v
    if v > h[HP_MAX]:
        h[HP_MAX] = v
    if v < h[HP_MIN]:
        h[HP_MIN] = v


@kernel
def record_many(h, values):
    """Record every value of a 1-D integer array."""
    for i in range(values.shape[0]):
        record(h, values[i])


@kernel
def merge(dst, src):
    """Add ``src`` into ``dst`` (same precision and size; the caller checked)."""
    for i in range(HIST_HEADER_WORDS, src.shape[0]):
        dst[i] += src[i]
    dst[HP_COUNT] += src[HP_COUNT]
    dst[HP_SUM] += src[HP_SUM]
    dst[HP_ABOVE_RANGE] += src[HP_ABOVE_RANGE]
    dst[HP_BELOW_ZERO] += src[HP_BELOW_ZERO]
    if src[HP_MAX] > dst[HP_MAX]:
        dst[HP_MAX] = src[HP_MAX]
    if src[HP_MIN] < dst[HP_MIN]:
        dst[HP_MIN] = src[HP_MIN]


@kernel
def percentile(h, q):
    """Value at percentile ``q`` (0..100): the highest value equivalent to the bucket
    holding the ``ceil(q/100 * count)``-th smallest recording, capped at the max.
    0 for an empty histogram."""
    count = h[HP_COUNT]
    if count == 0:
        return np.int64(0)
    # The tiny relative nudge keeps 99.9% of 1000 at rank 999, not 1000, despite
    # the float rounding of q/100*count.
    rank = np.int64(math.ceil(q / 100.0 * count * (1.0 - 1e-12)))
    rank = min(max(rank, 1), count)
    precision = h[HP_PRECISION]
    seen = np.int64(0)
    for i in range(HIST_HEADER_WORDS, h.shape[0]):
        seen += h[i]
        if seen >= rank:
            return min(_highest_equivalent(i - HIST_HEADER_WORDS, precision), h[HP_MAX])
    return h[HP_MAX]


@kernel
def percentiles(h, qs, out):
    """``out[k] = percentile(h, qs[k])`` for every k."""
    for k in range(qs.shape[0]):
        out[k] = percentile(h, qs[k])


@kernel
def reset(h):
    """Forget everything recorded; keep precision and range."""
    highest = h[HP_HIGHEST]
    for i in range(HP_COUNT, h.shape[0]):
        h[i] = 0
    h[HP_HIGHEST] = highest
    h[HP_MIN] = np.iinfo(np.int64).max
