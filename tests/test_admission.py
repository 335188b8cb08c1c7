"""Admission controllers (kernels.admission) on synthetic latency traces: each
controller's step function against its rule, plain-Python references for the token
bucket and CoDel, and the queue simulation under overload."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import admission as A
from kernels.histogram import new_histogram, record

TARGET = 200_000.0
SERVICE = 5_000


def fresh(kind, target=TARGET, **overrides):
    p = A.default_params(kind, target)
    for k, v in overrides.items():
        p[getattr(A, "AP_" + k.upper())] = v
    state = np.zeros(A.N_ADM_STATE)
    counters = np.zeros(A.N_ADM_COUNTERS, dtype=np.int64)
    window = new_histogram(8, 10**10)
    A.admission_reset(p, state, window, 0)
    return p, state, counters, window


def trace(load, n=200_000, seed=0, service=SERVICE):
    """Poisson arrivals at ``load`` x the capacity of an exponential server."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(service / load, n)).astype(np.int64)
    services = (rng.exponential(service, n) + 1).astype(np.int64)
    return arrivals, services


def run_trace(kind, load, shed_cost=100, seed=0, **overrides):
    p, state, counters, window = fresh(kind, **overrides)
    arrivals, services = trace(load, seed=seed)
    n = arrivals.shape[0]
    backlog = np.zeros(n, dtype=np.int64)
    latency = np.zeros(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=np.int8)
    end = A.simulate_trace(p, state, counters, window, arrivals, services, shed_cost, backlog,
                           latency, admitted)
    ok = admitted == 1
    seconds = (end - arrivals[0]) / 1e9
    capacity = 1e9 / SERVICE
    return {
        "p99": float(np.percentile(latency[ok], 99)) if ok.any() else 0.0,
        "goodput": float(((latency <= 1.1 * TARGET) & ok).sum() / seconds / capacity),
        "shed": float(1 - ok.mean()), "counters": counters, "n": n, "latency": latency,
        "admitted": admitted, "backlog": backlog, "state": state,
    }


# ----------------------------------------------------------------- overload behaviour
@pytest.mark.parametrize("kind", [A.ADM_PID, A.ADM_CODEL])
def test_controllers_hold_the_target_at_twice_the_capacity(kind):
    r = run_trace(kind, 2.0)
    assert r["p99"] <= 1.1 * TARGET, (A.CONTROLLER_NAMES[kind], r["p99"])
    assert r["goodput"] >= 0.85, (A.CONTROLLER_NAMES[kind], r["goodput"])
    assert 0.4 < r["shed"] < 0.65


@pytest.mark.parametrize("kind", [A.ADM_AIMD, A.ADM_GRADIENT])
def test_limit_controllers_bound_the_latency_at_twice_the_capacity(kind):
    r = run_trace(kind, 2.0)
    assert r["p99"] <= 3 * TARGET, (A.CONTROLLER_NAMES[kind], r["p99"])
    assert r["goodput"] >= 0.7


def test_without_control_the_queue_grows_without_bound():
    r = run_trace(A.ADM_NONE, 2.0)
    assert r["shed"] == 0.0
    assert r["p99"] > 100 * TARGET  # queueing, not service: the backlog keeps growing


@pytest.mark.parametrize("kind", [A.ADM_PID, A.ADM_CODEL, A.ADM_GRADIENT, A.ADM_AIMD])
def test_controllers_leave_a_light_load_alone(kind):
    r = run_trace(kind, 0.5)
    assert r["shed"] < 0.01, (A.CONTROLLER_NAMES[kind], r["shed"])


def test_counters_add_up_and_shed_messages_get_no_latency():
    r = run_trace(A.ADM_CODEL, 3.0)
    c = r["counters"]
    assert c[A.AC_ADMITTED] + c[A.AC_SHED] == r["n"]
    assert c[A.AC_ADMITTED] == r["admitted"].sum()
    assert np.all(r["latency"][r["admitted"] == 0] == -1)
    assert np.all(r["latency"][r["admitted"] == 1] > 0)
    assert c[A.AC_TICKS] > 0


# ------------------------------------------------------------------ references
def token_bucket_reference(times, rate, burst):
    tokens, last, out = burst, times[0], []
    for t in times:
        tokens = min(tokens + (t - last) * rate * 1e-9, burst)
        last = t
        if tokens >= 1.0:
            tokens -= 1.0
            out.append(True)
        else:
            out.append(False)
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 50_000), min_size=1, max_size=300),
       st.floats(1_000, 1_000_000), st.integers(1, 20))
def test_token_bucket_matches_the_reference(gaps, rate, burst):
    times = np.cumsum(np.asarray(gaps, dtype=np.int64))
    p, state, counters, window = fresh(A.ADM_TOKEN_BUCKET, rate=rate, burst=float(burst))
    A.admission_reset(p, state, window, int(times[0]))
    got = [bool(A.admit(p, state, counters, window, int(t), 0, 0, False)) for t in times]
    assert got == token_bucket_reference(times, rate, float(burst))


def codel_reference(times, delays, target, interval, service=0.0):
    """Fail-at-Scale CoDel: after an interval whose smallest queue delay stayed above the
    target, shed what waited longer than the target; otherwise longer than the interval."""
    next_tick, min_delay, standing, out = times[0] + interval, math.inf, False, []
    for t, d in zip(times, delays):
        if t >= next_tick:
            next_tick = t + interval
            standing = min_delay > target - service
            min_delay = math.inf
        min_delay = min(min_delay, d)
        out.append(d <= ((target - service) if standing else interval))
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40_000), st.integers(0, 600_000)), min_size=1,
                max_size=300))
def test_codel_matches_the_reference(steps):
    times = np.cumsum([s[0] for s in steps]).astype(np.int64)
    delays = [s[1] for s in steps]
    p, state, counters, window = fresh(A.ADM_CODEL, interval_ns=100_000.0)
    A.admission_reset(p, state, window, int(times[0]))
    got = [bool(A.admit(p, state, counters, window, int(t), d, 0, False))
           for t, d in zip(times, delays)]
    assert got == codel_reference(list(times), delays, TARGET, 100_000.0)


# ---------------------------------------------------------------- step functions
def close_window(p, state, counters, window, latencies, now):
    for v in latencies:
        record(window, v)
    assert A.control_tick(p, state, counters, window, now)


def test_control_tick_waits_for_the_interval():
    p, state, counters, window = fresh(A.ADM_AIMD)
    assert not A.control_tick(p, state, counters, window, int(p[A.AP_INTERVAL_NS]) - 1)
    assert A.control_tick(p, state, counters, window, int(p[A.AP_INTERVAL_NS]))
    assert counters[A.AC_TICKS] == 1


def test_aimd_increases_additively_and_decreases_multiplicatively():
    p, state, counters, window = fresh(A.ADM_AIMD, max_limit=1000.0)
    limit = state[A.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET * 2] * 100, 10**9)
    assert state[A.AS_LIMIT] == pytest.approx(limit * p[A.AP_DECREASE])
    limit = state[A.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET / 2] * 100, 2 * 10**9)
    assert state[A.AS_LIMIT] == pytest.approx(limit + p[A.AP_INCREASE])
    # the limit is what admits: backlog above it is shed
    now = 2 * 10**9 + 1
    assert A.admit(p, state, counters, window, now, 0, int(state[A.AS_LIMIT]), False)
    assert not A.admit(p, state, counters, window, now, 0, int(state[A.AS_LIMIT]) + 1, False)


def test_gradient_limit_shrinks_over_target_and_grows_under_it():
    p, state, counters, window = fresh(A.ADM_GRADIENT, max_limit=4096.0)
    limit = state[A.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET * 4] * 100, 10**9)
    assert state[A.AS_LIMIT] < limit
    limit = state[A.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET / 4] * 100, 2 * 10**9)
    assert state[A.AS_LIMIT] == pytest.approx(limit + p[A.AP_SMOOTHING] * math.sqrt(limit))


def test_pid_fraction_follows_the_p99_error_and_the_brake_latches():
    p, state, counters, window = fresh(A.ADM_PID)
    close_window(p, state, counters, window, [TARGET * 2] * 100, 10**9)
    high = state[A.AS_FRACTION]
    assert high < 1.0
    close_window(p, state, counters, window, [TARGET * 2] * 100, 2 * 10**9)
    assert state[A.AS_FRACTION] < high  # the integral term keeps pushing
    low = state[A.AS_FRACTION]
    close_window(p, state, counters, window, [TARGET / 4] * 100, 3 * 10**9)
    assert state[A.AS_FRACTION] > low
    # admitted fraction: deterministic thinning
    state[A.AS_FRACTION] = 0.25
    decisions = [A.admit(p, state, counters, window, 3 * 10**9 + 1, 0, 0, False) for _ in range(400)]
    assert sum(decisions) == 100
    # emergency brake: a message late beyond the limit sheds until the queue drains
    state[A.AS_FRACTION] = 1.0
    now = 3 * 10**9 + 2
    assert not A.admit(p, state, counters, window, now, int(TARGET * 1.5), 0, False)
    assert state[A.AS_BRAKE] == 1 and counters[A.AC_BRAKES] == 1
    assert not A.admit(p, state, counters, window, now, int(TARGET * 0.9), 0, False)
    assert A.admit(p, state, counters, window, now, int(TARGET * 0.5), 0, False)
    assert state[A.AS_BRAKE] == 0


@pytest.mark.parametrize("kind", range(A.N_CONTROLLERS))
def test_essential_messages_are_always_admitted(kind):
    p, state, counters, window = fresh(kind, rate=1.0, burst=1.0)
    state[A.AS_FRACTION] = p[A.AP_MIN_ADMIT]
    state[A.AS_LIMIT] = 0.0
    for i in range(50):
        assert A.admit(p, state, counters, window, 10 + i, 10**12, 10**6, True)
    assert counters[A.AC_ESSENTIAL] == 50 and counters[A.AC_SHED] == 0


def test_default_params_name_every_controller():
    assert len(A.CONTROLLER_NAMES) == A.N_CONTROLLERS
    for kind in range(A.N_CONTROLLERS):
        p = A.default_params(kind, 1e6)
        assert p.shape == (A.N_ADM_PARAMS,) and p[A.AP_KIND] == kind
