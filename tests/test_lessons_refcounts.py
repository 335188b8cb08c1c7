"""Notebook 16's reference-count demonstration (``kernels.lessons_refcounts``).

The same helper, given nine arrays, compiled with Numba's runtime and without it
(``kernel(nrt=False)``): the compiled code of the first updates reference counts, the
second's has none, and both compute what a plain-Python model of the documented rule
computes. Speed is the notebook's and the benchmarks' business, never asserted here.
"""
from __future__ import annotations

import numpy as np
import pytest

from kernels import lessons_refcounts as krc
from workbench import asm, profiling


def _model(state, n_calls):
    """The documented rule in plain Python: for each call ``i``, find key ``i mod len`` by
    linear probing from slot ``key`` (a negative entry ends the search: absent), then add
    ``s1*s2 - s3*s4 + max(s5, s6) - min(s7, s8)`` over ``ROWS`` rows from the slot found,
    wrapping around the end."""
    cols = [[int(x) for x in a] for a in state]
    n = len(cols[0])
    total = 0
    for i in range(n_calls):
        key = i % n
        slot = None
        for probe in range(n):
            r = (key + probe) % n
            if cols[0][r] == key:
                slot = r
                break
            if cols[0][r] < 0:
                break
        if slot is None:
            continue
        for d in range(krc.ROWS):
            q = (slot + d) % n
            s = [c[q] for c in cols]
            total += s[1] * s[2] - s[3] * s[4] + max(s[5], s[6]) - min(s[7], s[8])
    return total


def _states():
    """Tables that take every path: keys in their home slot, displaced keys, absent keys
    stopped by an empty slot, and a full table without the key (the probe wraps)."""
    rng = np.random.default_rng(7)
    out = [profiling.refcount_state(16, seed=3)]
    for n in (8, 16, 64):
        keys = rng.integers(-1, n, n).astype(np.int64)        # anything: the rule decides
        out.append((keys,) + tuple(rng.integers(-500, 500, n).astype(np.int64) for _ in range(8)))
    full = np.array([1, 2, 3, 1, 5, 6, 7, 0], dtype=np.int64)  # no 4, no empty slot
    out.append((full,) + tuple(rng.integers(0, 9, 8).astype(np.int64) for _ in range(8)))
    out.append(tuple(np.zeros(1, dtype=np.int64) for _ in range(9)))   # one row
    return out


@pytest.mark.parametrize("k", range(6))
def test_both_loops_compute_the_plain_python_result(k):
    state = _states()[k]
    n_calls = 3 * len(state[0]) + 5                     # i wraps around the table
    expected = _model(state, n_calls)
    assert krc.loop_counted(*state, n_calls) == expected
    assert krc.loop_borrowed(*state, n_calls) == expected
    assert krc.loop_borrowed(*state, 0) == 0


def test_the_loops_refuse_arrays_of_other_lengths():
    good = profiling.refcount_state(8)
    for bad in ((good[0][:6],) + good[1:],                     # not a power of two
                good[:4] + (good[4][:4],) + good[5:],          # one array shorter
                tuple(np.zeros(0, dtype=np.int64) for _ in range(9))):
        for loop in (krc.loop_counted, krc.loop_borrowed):
            with pytest.raises(ValueError, match="one length, a power of two"):
                loop(*bad, 10)


def test_only_the_helper_compiled_with_the_runtime_counts_references():
    state = profiling.refcount_state(8)
    krc.loop_counted(*state, 1)
    krc.loop_borrowed(*state, 1)
    # the helper alone: an increment per array with the runtime, nothing without it
    counted = asm.refcount_calls(krc.lookup_counted)
    borrowed = asm.refcount_calls(krc.lookup_borrowed)
    assert counted["incref"] > 0 and counted["decref"] > 0, counted
    assert (borrowed["incref"], borrowed["decref"]) == (0, 0), borrowed
    # the callers: the runtime variant's module holds more, and in the nrt=False variant
    # every count left is the loop's own (its nine arguments, from Python), none in the
    # helper's code (a separate function, or inlined into the loop by LLVM)
    loop_c = asm.refcount_calls(krc.loop_counted)
    loop_b = asm.refcount_calls(krc.loop_borrowed)
    assert loop_c["incref"] > loop_b["incref"], (loop_c, loop_b)
    helpers = {k: v for k, v in loop_b["by_function"].items() if k != "loop_borrowed"}
    assert all(v == {"incref": 0, "decref": 0} for v in helpers.values()), loop_b
    assert loop_b["by_function"]["loop_borrowed"]["incref"] <= 9, loop_b   # once per argument
    assert loop_b["signature"].count("array(int64, 1d, C)") == 9


def test_refcount_loops_times_both_variants_of_the_same_work():
    state = _states()[1]
    frame = profiling.refcount_loops(state, n_calls=50, repeats=2)
    assert frame["variant"].to_list() == ["with the runtime (NRT)", "nrt=False"]
    assert frame["result"].to_list() == [_model(state, 50)] * 2
    assert (frame["ns_per_call"] > 0).all() and (frame["min_ns_per_call"] > 0).all()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="dispatcher"):
        asm.refcount_calls(len)
    with pytest.raises(ValueError, match="rows=12"):
        profiling.refcount_state(12)
    with pytest.raises(ValueError, match="n_calls"):
        profiling.refcount_loops(n_calls=0)
    with pytest.raises(ValueError, match=r"state\[2\]"):
        profiling.refcount_loops(profiling.refcount_state(8)[:2]
                                 + (np.zeros(8),) + profiling.refcount_state(8)[3:])
    with pytest.raises(ValueError, match="one length"):
        profiling.refcount_loops(tuple(np.zeros(6, dtype=np.int64) for _ in range(9)))
