"""Checkers of notebook 09-admission-control."""
from __future__ import annotations

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


def _controller(kind: int, **values):
    """A parameter array, state, counters and window for one ``kernels.admission``
    controller, with ``values`` (AP_* name in lower case -> value) written in."""
    from kernels import admission as kadm
    from kernels import histogram as kh
    from workbench.live.pipeline import HIST_HIGHEST_NS, HIST_PRECISION

    p = kadm.default_params(kind, values.pop("target_ns", 1_000_000.0))
    for name, value in values.items():
        p[getattr(kadm, "AP_" + name.upper())] = value
    return (p, np.zeros(kadm.N_ADM_STATE), np.zeros(kadm.N_ADM_COUNTERS, dtype=np.int64),
            kh.new_histogram(HIST_PRECISION, HIST_HIGHEST_NS))


# ---------------------------------------------------------------- 09.1 token bucket
def _bucket_reference(arrivals, rate, burst):
    """The kernel's decisions (``admit`` with ``ADM_TOKEN_BUCKET``, one call per arrival)."""
    from kernels import admission as kadm

    p, state, counters, window = _controller(kadm.ADM_TOKEN_BUCKET, rate=rate, burst=burst)
    arrivals = np.asarray(arrivals, dtype=np.int64)
    kadm.admission_reset(p, state, window, arrivals[0])
    return [bool(kadm.admit(p, state, counters, window, t, 0, 0, False)) for t in arrivals]


def _bucket_levels(arrivals, rate, burst):
    """Tokens in the bucket at each decision (before taking one): for the explanation."""
    tokens, last, out = float(burst), int(arrivals[0]), []
    for t in arrivals:
        tokens = min(tokens + (int(t) - last) * rate * 1e-9, burst)
        last = int(t)
        out.append(tokens)
        if tokens >= 1.0:
            tokens -= 1.0
    return out


def _bucket_cases():
    rng = np.random.default_rng(9)
    steady = np.arange(20, dtype=np.int64) * 1_000_000                    # 1,000 msg/s
    burst = np.array([0] * 10 + [2_500_000] * 3, dtype=np.int64)          # 10 at once
    idle = np.array([0, 0, 0, 1_000_000_000, 1_000_000_000, 1_000_000_000, 1_000_000_000,
                     1_000_000_000, 1_000_000_000], dtype=np.int64)       # a quiet second
    jitter = np.cumsum(rng.exponential(700_000, 200)).astype(np.int64)    # ~1,430 msg/s
    return [
        ("20 messages 1 ms apart, rate 2,000/s, burst 2", steady, 2_000.0, 2.0),
        ("10 messages at once, then 3 more 2.5 ms later; rate 1,000/s, burst 4", burst,
         1_000.0, 4.0),
        ("3 at once, a quiet second, then 6 at once; rate 1,000/s, burst 3", idle, 1_000.0, 3.0),
        ("200 Poisson arrivals at ~1,430/s into a bucket of 1,000/s, burst 8", jitter,
         1_000.0, 8.0),
        ("the same arrivals, rate 600/s, burst 1 (fractions of a token add up)", jitter,
         600.0, 1.0),
    ]


@exercise("09.1", hint="tokens start at burst; per message: tokens = min(tokens + (t - last_t) * rate * 1e-9, burst), last_t = t; admit (and tokens -= 1) when tokens >= 1, else shed")
def check_token_bucket(token_bucket) -> Verdict:
    """Exercise 09.1: ``token_bucket(arrivals_ns, rate, burst)`` returns one decision per
    message (True: admit, False: shed) of a token bucket that refills at ``rate`` tokens
    per second up to ``burst`` tokens, starts full, and spends one token per admitted
    message. Checked against the kernel's own controller (``kernels.admission.admit``
    with ``ADM_TOKEN_BUCKET``) on steady, bursty, idle and Poisson arrivals."""
    for label, arrivals, rate, burst in _bucket_cases():
        expected = _bucket_reference(arrivals, rate, burst)
        got, why = _attempt(token_bucket, arrivals.copy(), rate, burst)
        if why:
            return _verdict(False, f"{label}: {why}")
        try:
            decisions = [bool(x) for x in got]
        except TypeError:
            return _verdict(False, f"{label}: return one True/False per message, not {got!r}")
        if len(decisions) != len(expected):
            return _verdict(False, f"{label}: {len(decisions)} decisions for {len(expected)} "
                                   "messages: decide every message")
        if decisions == expected:
            continue
        k = next(i for i, (a, b) in enumerate(zip(decisions, expected)) if a != b)
        level = _bucket_levels(arrivals, rate, burst)[k]
        t_ms = (arrivals[k] - arrivals[0]) / 1e6
        did = "admitted" if decisions[k] else "shed"
        should = "admits it" if expected[k] else "sheds it"
        extra = ""
        if not expected[k] and np.any(np.diff(arrivals[:k + 1]) * rate * 1e-9 > burst):
            extra = " (a quiet spell refills the bucket only up to burst)"
        elif expected[k] and k == 0:
            extra = " (the bucket starts full: burst tokens)"
        return _verdict(False, f"{label}: message {k} (t = {t_ms:,.3f} ms): you {did} it; "
                               f"the bucket holds {level:.2f} tokens then, so the kernel "
                               f"{should}{extra}. Admitted by the kernel: "
                               f"{sum(expected)} of {len(expected)}, by you: {sum(decisions)}")
    return _verdict(True, "the same decisions as the kernel's token bucket, bursts, quiet "
                          "spells and fractional refills included")


# ------------------------------------------------------------------- 09.2 PID step
def _pid_reference(fraction, prev_error, prev_error2, p99_ns, target_ns, kp, ki, kd, min_admit):
    """The kernel's controller update (``control_tick`` with ``ADM_PID``) on a window whose
    p99 is ``p99_ns`` (None: an empty window). Returns (fraction, error)."""
    from kernels import admission as kadm
    from kernels import histogram as kh

    p, state, counters, window = _controller(kadm.ADM_PID, target_ns=target_ns, kp=kp, ki=ki,
                                             kd=kd, min_admit=min_admit)
    state[kadm.AS_FRACTION] = fraction
    state[kadm.AS_PREV_ERROR] = prev_error
    state[kadm.AS_PREV_ERROR2] = prev_error2
    state[kadm.AS_NEXT_TICK_NS] = 0.0
    if p99_ns is not None:  # 100 equal latencies: the window's p99 is exactly p99_ns
        kh.record_many(window, np.full(100, int(p99_ns), dtype=np.int64))
    assert kadm.control_tick(p, state, counters, window, 1)
    return float(state[kadm.AS_FRACTION]), float(state[kadm.AS_PREV_ERROR])


# (why, fraction, prev_error, prev_error2, p99 (None: empty window), target, kp, ki, kd, min_admit)
_PID_CASES = (
    ("on target after two late windows", 0.6, 0.5, 0.2, 200_000, 200_000, 0.3, 0.1, 0.05, 0.02),
    ("p99 three times the target", 1.0, 0.0, 0.0, 600_000, 200_000, 0.3, 0.1, 0.05, 0.02),
    ("p99 ten times the target (the error is capped at 4)", 0.9, 0.0, 0.0, 2_000_000, 200_000,
     0.3, 0.1, 0.05, 0.02),
    ("p99 a tenth of the target", 0.4, -0.2, 0.1, 20_000, 200_000, 0.3, 0.1, 0.05, 0.02),
    ("an empty window (everything shed): error -1", 0.1, 1.5, 2.0, None, 200_000, 0.3, 0.1,
     0.05, 0.02),
    ("already near the floor and late again", 0.05, 1.0, 0.5, 900_000, 200_000, 0.3, 0.1, 0.05,
     0.02),
    ("near 1 and early: the fraction cannot exceed 1", 0.97, -0.5, -0.5, 50_000, 200_000, 0.3,
     0.1, 0.05, 0.02),
    ("a large kp: the proportional term acts on the change of error", 0.5, -0.4, 0.3, 380_000,
     200_000, 2.0, 0.1, 0.05, 0.02),
    ("a large kd: the change of the change", 0.5, 0.25, 1.0, 300_000, 200_000, 0.3, 0.1, 0.8,
     0.02),
)


@exercise("09.2", hint="e = clamp((p99 - target) / target, -1, 4), or -1 for an empty window; fraction -= kp * (e - e1) + ki * e + kd * (e - 2 * e1 + e2); clamp the fraction to [min_admit, 1]; return (fraction, e)")
def check_pid_step(pid_step) -> Verdict:
    """Exercise 09.2: ``pid_step(fraction, prev_error, prev_error2, p99_ns, target_ns, kp,
    ki, kd, min_admit)`` returns ``(new_fraction, error)``: one update of the PID
    controller in velocity form, on the window's relative p99 error (clamped to -1..4;
    -1 when the window is empty, ``p99_ns=None``), the admitted fraction kept within
    ``[min_admit, 1]``. Checked against the kernel's ``control_tick`` (``ADM_PID``) on
    nine windows: on target, late, very late, early, empty, at both bounds, large gains."""
    for case in _PID_CASES:
        label, args = case[0], case[1:]
        fraction, error = _pid_reference(*args)
        got, why = _attempt(pid_step, *args)
        f0, e1, e2, p99, target, kp, ki, kd, floor = args
        call = (f"pid_step({f0}, {e1}, {e2}, {p99 if p99 is None else f'{p99:_}'}, {target:_}, "
                f"kp={kp}, ki={ki}, kd={kd}, min_admit={floor})")
        if why:
            return _verdict(False, f"{label}: {call}: {why}")
        try:
            got_f, got_e = (float(x) for x in got)
        except (TypeError, ValueError):
            return _verdict(False, f"{label}: {call} returned {got!r}; return a pair "
                                   "(new_fraction, error)")
        if abs(got_e - error) > 1e-9:
            raw = None if p99 is None else (p99 - target) / target
            if raw is not None and abs(got_e - raw) < 1e-9:
                return _verdict(False, f"{label}: {call}: error {got_e:g}, but the kernel clamps "
                                       f"it to -1..4: {error:g}")
            if p99 is None:
                return _verdict(False, f"{label}: {call}: error {got_e:g}; an empty window "
                                       "means nothing was admitted: the error is -1 (open up)")
            return _verdict(False, f"{label}: {call}: error {got_e:g}, the kernel's is "
                                   f"{error:g}: (p99 - target) / target, clamped to -1..4")
        if abs(got_f - fraction) <= 1e-9:
            continue
        out = kp * (error - e1) + ki * error + kd * (error - 2 * e1 + e2)
        if abs(got_f - (f0 - out)) <= 1e-9:
            return _verdict(False, f"{label}: {call}: fraction {got_f:.6f} is outside "
                                   f"[{floor}, 1]: clamp it ({fraction:.6f})")
        if min(abs(got_f - (f0 + out)), abs(got_f - min(max(f0 + out, floor), 1.0))) <= 1e-9:
            return _verdict(False, f"{label}: {call}: fraction {got_f:.6f}, the kernel's is "
                                   f"{fraction:.6f}: a late window (positive error) must "
                                   "LOWER the admitted fraction: subtract the PID output")
        return _verdict(False, f"{label}: {call}: fraction {got_f:.6f}, the kernel's is "
                               f"{fraction:.6f}. Velocity form: the change is kp x (e - e1) "
                               "+ ki x e + kd x (e - 2 e1 + e2)")
    return _verdict(True, f"the kernel's PID update on all {len(_PID_CASES)} windows, clamps "
                          "and empty windows included")


# ------------------------------------------------------------- 09.3 the shed floor
def _shed_floor(load, service_ns, shed_cost_ns):
    """Smallest shed fraction x with load x ((1 - x) + x c / s) <= 1; None if none."""
    if load <= 1.0:
        return 0.0
    r = shed_cost_ns / service_ns
    if r >= 1.0:
        return None
    x = (1.0 - 1.0 / load) / (1.0 - r)
    return x if x <= 1.0 else None


_SHED_CASES = (
    (0.5, 5_000, 100), (1.0, 5_000, 100), (2.0, 5_000, 0), (4.0, 5_000, 0), (4.0, 5_000, 100),
    (2.0, 10_000, 2_500), (40.0, 5_000, 100), (60.0, 5_000, 100), (3.0, 1_000, 1_000),
    (0.8, 1_000, 1_000),
)


@exercise("09.3", hint="the server's work per second must not exceed 1 s: load x ((1 - x) + x x shed_cost / service) <= 1, so x >= (1 - 1/load) / (1 - shed_cost / service); 0 when load <= 1; None when x would exceed 1 (or shedding costs as much as serving)")
def check_min_shed_rate(min_shed_rate) -> Verdict:
    """Exercise 09.3: ``min_shed_rate(load, service_ns, shed_cost_ns)`` returns the
    smallest fraction of messages any controller must shed so that a server offered
    ``load`` x its capacity keeps up, when serving a message costs ``service_ns`` and
    shedding one still costs ``shed_cost_ns``; None when no fraction can (even shedding
    everything is too much work). Checked on ten loads and costs against the work
    balance load x ((1 - x) + x x shed_cost / service) <= 1."""
    for load, service, cost in _SHED_CASES:
        expected = _shed_floor(load, service, cost)
        got, why = _attempt(min_shed_rate, load, service, cost)
        call = f"min_shed_rate({load:g}, {service:_}, {cost:_})"
        if why:
            return _verdict(False, f"{call}: {why}")
        if expected is None:
            if got is None:
                continue
            why_none = ("shedding a message costs as much as serving it, so shedding saves "
                        "nothing" if cost >= service else
                        f"even shedding everything costs {load:g} x {cost / service:.3f} = "
                        f"{load * cost / service:.2f} s of work per second")
            return _verdict(False, f"{call} returned {got!r}, but no shed rate keeps up: "
                                   f"{why_none}. Return None")
        value = None if isinstance(got, bool) else got
        try:
            value = float(value)
        except (TypeError, ValueError):
            return _verdict(False, f"{call} returned {got!r}; return a fraction (0..1) or None")
        if abs(value - expected) <= 1e-9 + 1e-9 * abs(expected):
            continue
        if load <= 1 and value < 0:
            return _verdict(False, f"{call} returned {value:g}: below capacity nothing needs "
                                   "to be shed (0), a shed rate is never negative")
        if abs(value - (1 - 1 / load)) <= 1e-9:
            return _verdict(False, f"{call} returned {value:.4f}: right if shedding were free, "
                                   f"but each shed message still costs {cost:_} ns: the answer "
                                   f"is {expected:.4f}")
        if abs(value - 100 * expected) <= 1e-6:
            return _verdict(False, f"{call} returned {value:g}: a fraction (0..1), not percent")
        return _verdict(False, f"{call} returned {value:.4f}, the work balance gives "
                               f"{expected:.4f}")
    return _verdict(True, "the shed floor at every load: 0 below capacity, 1 - 1/load when "
                          "shedding is free, more when it is not, and None when nothing helps")
