"""The "before" side of the latency lessons: plain-Python tools the notebooks measure
against the Numba "after" (``kernels.ring``, ``kernels.histogram``, ``kernels.clock``).

Owns ``compare_timing_methods`` (what each Python clock costs per call),
``LatencyTracker`` (a list-of-ints latency tracker with warm-up, usable as a context
manager or a decorator), ``PyRingBuffer`` (a pure-Python SPSC ring over a list) and
``ObjectPool`` (reuse objects instead of allocating). They are deliberately simple
and correct, so the lessons compare designs, not bugs.
"""
from __future__ import annotations

import functools
import math
import statistics
import time
from collections import deque
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable

__all__ = ["TIMING_METHODS", "compare_timing_methods", "LatencyTracker", "PyRingBuffer", "ObjectPool"]

TIMING_METHODS: dict[str, Callable[[], float | int]] = {
    "time.time": time.time,
    "time.time_ns": time.time_ns,
    "time.perf_counter": time.perf_counter,
    "time.perf_counter_ns": time.perf_counter_ns,
    "time.monotonic": time.monotonic,
    "time.monotonic_ns": time.monotonic_ns,
    "time.process_time_ns": time.process_time_ns,
}


def compare_timing_methods(n_calls: int = 20_000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Per clock: mean call overhead (ns, best of ``repeats``) and the smallest
    non-zero step seen between consecutive reads (the practical resolution, ns)."""
    if n_calls < 2 or repeats < 1:
        raise ValueError(f"need n_calls >= 2 and repeats >= 1, got {n_calls}, {repeats}")
    results = {}
    for name, clock in TIMING_METHODS.items():
        scale = 1 if name.endswith("_ns") else 1e9
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(n_calls):
                clock()
            best = min(best, (time.perf_counter_ns() - start) / n_calls)
        reads = [clock() for _ in range(n_calls)]
        steps = [b - a for a, b in zip(reads, reads[1:]) if b > a]
        resolution = min(steps) * scale if steps else float("nan")
        results[name] = {"overhead_ns": best, "resolution_ns": resolution}
    return results


class LatencyTracker:
    """Collect latencies (ns) in a Python list, skipping the first ``warmup`` ones
    (cold caches, first-call compilation). Use as ``with tracker.measure(): ...``,
    ``tracker.record(ns)``, or decorate a function with ``@tracker.track``."""

    def __init__(self, name: str = "operation", warmup: int = 100):
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.name = name
        self.warmup = warmup
        self.seen = 0
        self.latencies_ns: list[int] = []

    def record(self, latency_ns: int) -> None:
        self.seen += 1
        if self.seen > self.warmup:
            self.latencies_ns.append(int(latency_ns))

    @contextmanager
    def measure(self):
        start = time.perf_counter_ns()
        try:
            yield self
        finally:
            self.record(time.perf_counter_ns() - start)

    def track(self, func: Callable) -> Callable:
        """Decorator: every call of ``func`` is timed into this tracker."""
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.measure():
                return func(*args, **kwargs)
        return wrapper

    def stats(self) -> dict[str, Any]:
        """count, mean, median, min, max, p50/p90/p99/p99.9 (nearest rank), in ns."""
        data = sorted(self.latencies_ns)
        n = len(data)
        if n == 0:
            return {"name": self.name, "count": 0}

        def rank(q):  # nearest-rank percentile: the ceil(q/100*n)-th smallest, exactly
            return data[min(n - 1, max(0, math.ceil(Fraction(str(q)) * n / 100) - 1))]

        return {"name": self.name, "count": n, "mean_ns": statistics.fmean(data),
                "median_ns": statistics.median(data), "min_ns": data[0], "max_ns": data[-1],
                "p50_ns": rank(50), "p90_ns": rank(90), "p99_ns": rank(99), "p99.9_ns": rank(99.9)}


class PyRingBuffer:
    """Single-producer single-consumer ring over a Python list.

    Capacity is rounded up to a power of two so the slot is ``counter & mask``;
    ``head``/``tail`` count forever (no "one slot wasted" ambiguity between full and
    empty). Thread-safe for one producer and one consumer only because the GIL
    makes each attribute write atomic: it cannot run in parallel.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = 1 << (capacity - 1).bit_length()
        self.mask = self.capacity - 1
        self.slots: list[Any] = [None] * self.capacity
        self.head = 0  # items ever pushed
        self.tail = 0  # items ever popped

    def push(self, item) -> bool:
        """Add ``item``; False (nothing stored) when full."""
        if self.head - self.tail == self.capacity:
            return False
        self.slots[self.head & self.mask] = item
        self.head += 1
        return True

    def pop(self):
        """Oldest item, or None when empty."""
        if self.tail == self.head:
            return None
        index = self.tail & self.mask
        item = self.slots[index]
        self.slots[index] = None  # drop the reference so the object can be freed
        self.tail += 1
        return item

    def __len__(self) -> int:
        return self.head - self.tail


class ObjectPool:
    """Pre-built objects handed out and taken back instead of allocated per use.

    ``acquire`` pops a pooled object (or builds a new one when the pool is dry,
    counted in ``misses``); ``release`` returns it; ``borrow()`` does both around a
    ``with`` block. Objects are reused as they are: reset them before release.
    """

    def __init__(self, factory: Callable[[], Any], size: int = 1000):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.factory = factory
        self.free = deque(factory() for _ in range(size))
        self.misses = 0

    def acquire(self):
        if self.free:
            return self.free.pop()
        self.misses += 1
        return self.factory()

    def release(self, obj) -> None:
        self.free.append(obj)

    @contextmanager
    def borrow(self):
        obj = self.acquire()
        try:
            yield obj
        finally:
            self.release(obj)

    def __len__(self) -> int:
        return len(self.free)
