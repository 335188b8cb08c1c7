"""kernels.atomics: semantics single-threaded, and exactness under racing nogil threads."""
from __future__ import annotations

import threading

import numpy as np

from kernels.atomics import (compare_and_swap, compiler_fence, cpu_pause, fetch_add,
                             load_acquire, memory_fence, store_release)
from kernels.jit import kernel


@kernel
def _hammer(counters, n):
    """n fetch-adds on slot 0 and n CAS-loop increments on slot 1."""
    retries = 0
    for _ in range(n):
        fetch_add(counters, 0, 1)
        while True:
            old = load_acquire(counters, 1)
            if compare_and_swap(counters, 1, old, old + 1) == old:
                break
            retries += 1
            cpu_pause()
    return retries


@kernel
def _publish(data, flag, n):
    """Writer: fill data[i] then release-store the count, one item at a time."""
    for i in range(n):
        data[i] = i * 3 + 1
        compiler_fence()
        store_release(flag, 0, i + 1)
    memory_fence()


@kernel
def _observe(data, flag, n):
    """Reader: every index the flag covers must already hold its value."""
    seen = 0
    bad = 0
    while seen < n:
        visible = load_acquire(flag, 0)
        while seen < visible:
            if data[seen] != seen * 3 + 1:
                bad += 1
            seen += 1
        cpu_pause()
    return bad


def _run_threads(target, args_list):
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)


def test_single_thread_semantics():
    a = np.zeros(4, dtype=np.int64)
    assert _hammer(a, 5) == 0
    assert a.tolist() == [5, 5, 0, 0]
    a[:] = [7, 0, 0, 0]

    @kernel
    def ops(a):
        before = fetch_add(a, 0, 10)          # 7 -> 17, returns 7
        miss = compare_and_swap(a, 0, 3, 99)  # 17 != 3: unchanged, returns 17
        hit = compare_and_swap(a, 0, 17, 42)  # swaps, returns 17
        store_release(a, 2, -5)
        return before, miss, hit, load_acquire(a, 0), load_acquire(a, 2)

    assert ops(a) == (7, 17, 17, 42, -5)
    assert a.tolist() == [42, 0, -5, 0]


def test_fetch_add_and_cas_are_exact_under_racing_threads():
    counters = np.zeros(8, dtype=np.int64)
    _hammer(counters, 1)
    counters[:] = 0
    n, workers = 300_000, 3
    _run_threads(_hammer, [(counters, n)] * workers)
    assert counters[0] == n * workers  # plain += would lose updates here
    assert counters[1] == n * workers


def test_release_store_publishes_data_written_before_it():
    n = 200_000
    data = np.zeros(n, dtype=np.int64)
    flag = np.zeros(8, dtype=np.int64)
    _publish(data[:1], flag, 1)
    assert _observe(data[:1], flag, 1) == 0
    data[:] = 0
    flag[:] = 0
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("bad", _observe(data, flag, n)))
    reader.start()
    _publish(data, flag, n)
    reader.join(60)
    assert result == {"bad": 0}
    assert flag[0] == n
