"""Admission controllers (kernels.admission) on synthetic latency traces: each
controller's step function against its rule, plain-Python references for the token
bucket and CoDel, a plain-Python model of every controller with its documented
defaults, and the queue simulation under overload."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import admission as kadm
from kernels.histogram import new_histogram, record

TARGET = 200_000.0
SERVICE = 5_000


def fresh(kind, target=TARGET, **overrides):
    p = kadm.default_params(kind, target)
    for k, v in overrides.items():
        p[getattr(kadm, "AP_" + k.upper())] = v
    state = np.zeros(kadm.N_ADM_STATE)
    counters = np.zeros(kadm.N_ADM_COUNTERS, dtype=np.int64)
    window = new_histogram(8, 10**10)
    kadm.admission_reset(p, state, window, 0)
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
    end = kadm.simulate_trace(p, state, counters, window, arrivals, services, shed_cost, backlog,
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
@pytest.mark.parametrize("kind", [kadm.ADM_PID, kadm.ADM_CODEL])
def test_controllers_hold_the_target_at_twice_the_capacity(kind):
    r = run_trace(kind, 2.0)
    assert r["p99"] <= 1.1 * TARGET, (kadm.CONTROLLER_NAMES[kind], r["p99"])
    assert r["goodput"] >= 0.85, (kadm.CONTROLLER_NAMES[kind], r["goodput"])
    assert 0.4 < r["shed"] < 0.65


@pytest.mark.parametrize("kind", [kadm.ADM_AIMD, kadm.ADM_GRADIENT])
def test_limit_controllers_bound_the_latency_at_twice_the_capacity(kind):
    r = run_trace(kind, 2.0)
    assert r["p99"] <= 3 * TARGET, (kadm.CONTROLLER_NAMES[kind], r["p99"])
    assert r["goodput"] >= 0.7


def test_without_control_the_queue_grows_without_bound():
    r = run_trace(kadm.ADM_NONE, 2.0)
    assert r["shed"] == 0.0
    assert r["p99"] > 100 * TARGET  # queueing, not service: the backlog keeps growing


@pytest.mark.parametrize("kind", [kadm.ADM_PID, kadm.ADM_CODEL, kadm.ADM_GRADIENT, kadm.ADM_AIMD])
def test_controllers_leave_a_light_load_alone(kind):
    r = run_trace(kind, 0.5)
    assert r["shed"] < 0.01, (kadm.CONTROLLER_NAMES[kind], r["shed"])


def test_counters_add_up_and_shed_messages_get_no_latency():
    r = run_trace(kadm.ADM_CODEL, 3.0)
    c = r["counters"]
    assert c[kadm.AC_ADMITTED] + c[kadm.AC_SHED] == r["n"]
    assert c[kadm.AC_ADMITTED] == r["admitted"].sum()
    assert np.all(r["latency"][r["admitted"] == 0] == -1)
    assert np.all(r["latency"][r["admitted"] == 1] > 0)
    assert c[kadm.AC_TICKS] > 0


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
    p, state, counters, window = fresh(kadm.ADM_TOKEN_BUCKET, rate=rate, burst=float(burst))
    kadm.admission_reset(p, state, window, int(times[0]))
    got = [bool(kadm.admit(p, state, counters, window, int(t), 0, 0, False)) for t in times]
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
    p, state, counters, window = fresh(kadm.ADM_CODEL, interval_ns=100_000.0)
    kadm.admission_reset(p, state, window, int(times[0]))
    got = [bool(kadm.admit(p, state, counters, window, int(t), d, 0, False))
           for t, d in zip(times, delays)]
    assert got == codel_reference(list(times), delays, TARGET, 100_000.0)


# ---------------------------------------------------------------- step functions
def close_window(p, state, counters, window, latencies, now):
    for v in latencies:
        record(window, v)
    assert kadm.control_tick(p, state, counters, window, now)


def test_control_tick_waits_for_the_interval():
    p, state, counters, window = fresh(kadm.ADM_AIMD)
    assert not kadm.control_tick(p, state, counters, window, int(p[kadm.AP_INTERVAL_NS]) - 1)
    assert kadm.control_tick(p, state, counters, window, int(p[kadm.AP_INTERVAL_NS]))
    assert counters[kadm.AC_TICKS] == 1


def test_aimd_increases_additively_and_decreases_multiplicatively():
    p, state, counters, window = fresh(kadm.ADM_AIMD, max_limit=1000.0)
    limit = state[kadm.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET * 2] * 100, 10**9)
    assert state[kadm.AS_LIMIT] == pytest.approx(limit * p[kadm.AP_DECREASE])
    limit = state[kadm.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET / 2] * 100, 2 * 10**9)
    assert state[kadm.AS_LIMIT] == pytest.approx(limit + p[kadm.AP_INCREASE])
    # the limit is what admits: backlog above it is shed
    now = 2 * 10**9 + 1
    assert kadm.admit(p, state, counters, window, now, 0, int(state[kadm.AS_LIMIT]), False)
    assert not kadm.admit(p, state, counters, window, now, 0, int(state[kadm.AS_LIMIT]) + 1, False)


def test_gradient_limit_shrinks_over_target_and_grows_under_it():
    p, state, counters, window = fresh(kadm.ADM_GRADIENT, max_limit=4096.0)
    limit = state[kadm.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET * 4] * 100, 10**9)
    assert state[kadm.AS_LIMIT] < limit
    limit = state[kadm.AS_LIMIT]
    close_window(p, state, counters, window, [TARGET / 4] * 100, 2 * 10**9)
    assert state[kadm.AS_LIMIT] == pytest.approx(limit + p[kadm.AP_SMOOTHING] * math.sqrt(limit))


def test_pid_fraction_follows_the_p99_error_and_the_brake_latches():
    p, state, counters, window = fresh(kadm.ADM_PID)
    close_window(p, state, counters, window, [TARGET * 2] * 100, 10**9)
    high = state[kadm.AS_FRACTION]
    assert high < 1.0
    close_window(p, state, counters, window, [TARGET * 2] * 100, 2 * 10**9)
    assert state[kadm.AS_FRACTION] < high  # the integral term keeps pushing
    low = state[kadm.AS_FRACTION]
    close_window(p, state, counters, window, [TARGET / 4] * 100, 3 * 10**9)
    assert state[kadm.AS_FRACTION] > low
    # admitted fraction: deterministic thinning
    state[kadm.AS_FRACTION] = 0.25
    decisions = [kadm.admit(p, state, counters, window, 3 * 10**9 + 1, 0, 0, False) for _ in range(400)]
    assert sum(decisions) == 100
    # emergency brake: a message late beyond the limit sheds until the queue drains
    state[kadm.AS_FRACTION] = 1.0
    now = 3 * 10**9 + 2
    assert not kadm.admit(p, state, counters, window, now, int(TARGET * 1.5), 0, False)
    assert state[kadm.AS_BRAKE] == 1 and counters[kadm.AC_BRAKES] == 1
    assert not kadm.admit(p, state, counters, window, now, int(TARGET * 0.9), 0, False)
    assert kadm.admit(p, state, counters, window, now, int(TARGET * 0.5), 0, False)
    assert state[kadm.AS_BRAKE] == 0


@pytest.mark.parametrize("kind", range(kadm.N_CONTROLLERS))
def test_essential_messages_are_always_admitted(kind):
    p, state, counters, window = fresh(kind, rate=1.0, burst=1.0)
    state[kadm.AS_FRACTION] = p[kadm.AP_MIN_ADMIT]
    state[kadm.AS_LIMIT] = 0.0
    for i in range(50):
        assert kadm.admit(p, state, counters, window, 10 + i, 10**12, 10**6, True)
    assert counters[kadm.AC_ESSENTIAL] == 50 and counters[kadm.AC_SHED] == 0


# ------------------------------------------------- every controller vs a Python model
class ControllerModel:
    """One admission controller in plain Python: the rules of ``kernels.admission``'s
    docstring with its documented defaults, step by step as a message stream sees them
    (a window closes on the first decision at or after its end; essential messages are
    admitted without a decision; the service time is a 1 % EWMA of what admitted
    messages cost)."""

    DEFAULTS = dict(kp=0.3, ki=0.1, kd=0.05, brake_factor=1.0, min_admit=0.02, increase=4.0,
                    decrease=0.8, min_limit=4.0, max_limit=65536.0, smoothing=0.2,
                    rate=100_000.0, burst=256.0)

    def __init__(self, name, target, now):
        self.name, self.target = name, float(target)
        self.interval = max(self.target, 200_000.0)
        self.__dict__.update(self.DEFAULTS)
        self.fraction, self.credit, self.error, self.error2 = 1.0, 0.0, 0.0, 0.0
        self.limit = min(max(20.0, self.min_limit), self.max_limit)
        self.next_tick = now + self.interval
        self.tokens, self.last_refill = self.burst, now
        self.brake, self.min_delay, self.standing, self.service = False, math.inf, False, 0.0
        self.window = []
        self.counts = dict(admitted=0, shed=0, essential=0, brakes=0, ticks=0)

    def _tick(self, now):
        if now < self.next_tick:
            return
        self.next_tick = now + self.interval
        self.counts["ticks"] += 1
        n = len(self.window)
        p99 = float(sorted(self.window)[math.ceil(0.99 * n) - 1]) if n else 0.0  # nearest rank
        self.window = []
        if self.name == "pid":
            e = min(max((p99 - self.target) / self.target, -1.0), 4.0) if n else -1.0
            de, dde = e - self.error, e - 2.0 * self.error + self.error2
            f = self.fraction - (self.kp * de + self.ki * e + self.kd * dde)
            self.fraction = min(max(f, self.min_admit), 1.0)
            self.error2, self.error = self.error, e
        elif self.name == "aimd":
            limit = (self.limit * self.decrease if n and p99 > self.target
                     else self.limit + self.increase)
            self.limit = min(max(limit, self.min_limit), self.max_limit)
        elif self.name == "gradient":
            gradient = min(max(self.target / p99, 0.5), 1.0) if n and p99 > 0 else 1.0
            new = self.limit * gradient + math.sqrt(self.limit)
            limit = self.limit * (1.0 - self.smoothing) + new * self.smoothing
            self.limit = min(max(limit, self.min_limit), self.max_limit)
        elif self.name == "codel":
            self.standing = self.min_delay > max(self.target - self.service, 0.0)
            self.min_delay = math.inf

    def _decide(self, now, delay, backlog):
        if self.name == "pid":
            limit = self.brake_factor * self.target - self.service
            if self.brake and delay > 0.8 * limit:
                return False
            if self.brake:
                self.brake = False  # drained below 80 % of the limit: back to the fraction
            elif delay > limit:
                self.brake = True
                self.counts["brakes"] += 1
                return False
            self.credit += self.fraction
            if self.credit < 1.0:
                return False
            self.credit -= 1.0
            return True
        if self.name in ("aimd", "gradient"):
            return backlog <= self.limit
        if self.name == "codel":
            return delay <= (max(self.target - self.service, 0.0) if self.standing
                             else self.interval)
        if self.name == "token_bucket":
            elapsed, self.last_refill = now - self.last_refill, now
            self.tokens = min(self.tokens + elapsed * self.rate * 1e-9, self.burst)
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
        return True

    def admit(self, now, delay, backlog, essential):
        self._tick(now)
        if self.name == "codel":
            self.min_delay = min(self.min_delay, delay)
        if essential:
            self.counts["essential"] += 1
            self.counts["admitted"] += 1
            return True
        ok = self._decide(now, delay, backlog)
        self.counts["admitted" if ok else "shed"] += 1
        return ok

    def observe(self, latency, service):
        self.window.append(latency)
        s = self.service
        self.service = float(service) if s == 0.0 else s + 0.01 * (service - s)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", kadm.CONTROLLER_NAMES)
def test_every_named_controller_with_its_defaults_matches_a_python_model(name, seed):
    """The kernel controller a name selects, with ``default_params``, takes exactly the
    decisions of the model, message by message, and counts them the same. Each window's
    admitted latencies are all over the target or all under it (picked per window), so
    its p99 is that value whatever the histogram's resolution."""
    assert kadm.CONTROLLER_NAMES.index(name) < kadm.N_CONTROLLERS == len(kadm.CONTROLLER_NAMES)
    rng = np.random.default_rng(seed)
    n = 4_000
    times = 1_000 + np.cumsum(rng.integers(1, 16_000, n))
    times[n // 2:] += 3 * 200_000  # an idle stretch longer than a window
    delays = rng.integers(0, 3 * int(TARGET), n)
    backlogs = rng.integers(0, 60, n)
    essential = rng.random(n) < 0.05
    services = rng.integers(500, 5_000, n)
    regimes = rng.choice([6 * int(TARGET), int(TARGET) // 4], size=n)  # per window

    p, state, counters, window = fresh(kadm.CONTROLLER_NAMES.index(name))
    kadm.admission_reset(p, state, window, int(times[0]))
    model = ControllerModel(name, TARGET, int(times[0]))
    for i in range(n):
        now, delay, backlog = int(times[i]), int(delays[i]), int(backlogs[i])
        want = model.admit(now, delay, backlog, bool(essential[i]))
        got = bool(kadm.admit(p, state, counters, window, now, delay, backlog, bool(essential[i])))
        assert got == want, (name, i)
        if got:
            latency = int(regimes[model.counts["ticks"]])
            model.observe(latency, int(services[i]))
            kadm.observe(state, window, latency, int(services[i]))
    c = model.counts
    assert [counters[kadm.AC_ADMITTED], counters[kadm.AC_SHED], counters[kadm.AC_ESSENTIAL],
            counters[kadm.AC_BRAKES], counters[kadm.AC_TICKS]] == \
        [c["admitted"], c["shed"], c["essential"], c["brakes"], c["ticks"]]
    assert c["admitted"] + c["shed"] == n and c["ticks"] > 50
    if name == "none":
        assert c["shed"] == 0
    else:  # the trace makes every controller both admit and shed
        assert 0 < c["shed"] < n - c["essential"]
    assert state[kadm.AS_FRACTION] == model.fraction and state[kadm.AS_LIMIT] == model.limit
