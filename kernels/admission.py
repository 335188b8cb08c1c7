"""Admission control: per-message admit/shed decisions that keep end-to-end latency on target.

Owns the controller codes (``ADM_*``), the parameter layout (``AP_*`` indices into a
float64 array, so the live pipeline can copy it out of its control array) and its
registry (``ADMISSION_PARAMS``, and ``CONTROLLERS``: which parameters each reads), the
controller state layout (``AS_*``, float64), the counters (``AC_*``, int64) and the
kernels: :func:`admission_reset`, :func:`admit` (one call per message),
:func:`observe` (one call per admitted message, with its end-to-end latency) and
:func:`control_tick` (the periodic controller update; :func:`admit` calls it when due).

Every controller is a step function over those arrays, so it runs unchanged on a
synthetic latency trace in a test and inside the pipeline's consumer loop.

Controllers
-----------
``ADM_NONE``          admit everything (the baseline that shows why control is needed).
``ADM_PID``           PID on the windowed p99 error ``(p99 - target) / target`` driving
                      the admitted fraction (velocity form, so the output saturates without
                      integral wind-up), plus an emergency brake (the seed engine's
                      design): when a message has already waited longer than
                      ``brake_factor * target`` minus the mean service time, every
                      shed-able message is shed until one arrives that waited under
                      80 % of that.
``ADM_AIMD``          a concurrency limit on the backlog (messages queued behind the one
                      being decided): +``increase`` per on-target window, x``decrease``
                      per window over target (TCP's congestion avoidance).
``ADM_GRADIENT``      Netflix concurrency-limits' gradient limiter: ``limit = limit * (1-s)
                      + s * (limit * gradient + sqrt(limit))`` with ``gradient =
                      clamp(target / p99, 0.5, 1)``.
``ADM_CODEL``         CoDel-style queue-delay shedding in the server form of Facebook's
                      "Fail at Scale": if the queue did not drain below the delay target
                      during the last interval (a standing queue), shed any message that
                      waited longer than the target; otherwise only those that waited
                      longer than the interval. The delay target is the latency target
                      minus the running mean service time.
``ADM_TOKEN_BUCKET``  a static rate limit: ``rate`` tokens per second, ``burst`` deep.

Essential messages (cancels, deletes: they free capacity and risk) are always admitted
and counted apart; they do not consume tokens.
"""
from __future__ import annotations

import math

import numpy as np

from .histogram import HP_COUNT, HP_SUM, percentile, record, reset
from .jit import kernel
from .registry import Entry, Param, Registry

# ------------------------------------------------------------------ controller codes
ADM_NONE = 0
ADM_PID = 1
ADM_AIMD = 2
ADM_GRADIENT = 3
ADM_CODEL = 4
ADM_TOKEN_BUCKET = 5
N_CONTROLLERS = 6
CONTROLLER_NAMES = ("none", "pid", "aimd", "gradient", "codel", "token_bucket")

# ---------------------------------------------------------- parameters (float64 array)
AP_KIND = 0             # ADM_*
AP_TARGET_NS = 1        # end-to-end latency target (the p99 to hold)
AP_INTERVAL_NS = 2      # control window (PID/AIMD/gradient), CoDel interval
AP_KP = 3
AP_KI = 4
AP_KD = 5
AP_BRAKE_FACTOR = 6     # emergency brake at brake_factor * target (PID)
AP_MIN_ADMIT = 7        # floor of the admitted fraction (PID)
AP_INCREASE = 8         # AIMD additive increase (messages of backlog)
AP_DECREASE = 9         # AIMD multiplicative decrease (0..1)
AP_MIN_LIMIT = 10       # backlog limit range (AIMD, gradient)
AP_MAX_LIMIT = 11
AP_SMOOTHING = 12       # gradient limiter smoothing (0..1)
AP_RATE = 13            # token bucket: tokens per second
AP_BURST = 14           # token bucket depth
N_ADM_PARAMS = 16

# --------------------------------------------------------------- state (float64 array)
AS_FRACTION = 0         # PID: admitted fraction (0..1)
AS_CREDIT = 1           # PID: admission credit (deterministic thinning)
AS_PREV_ERROR = 2
AS_PREV_ERROR2 = 3
AS_LIMIT = 4            # AIMD / gradient: backlog limit
AS_NEXT_TICK_NS = 5
AS_TOKENS = 6
AS_LAST_REFILL_NS = 7
AS_BRAKE = 8            # 1 while the emergency brake is engaged
AS_MIN_DELAY = 9        # CoDel: smallest queue delay seen this interval
AS_STANDING = 10        # CoDel: 1 when the last interval had a standing queue
AS_SERVICE_NS = 11      # EWMA of admitted messages' service time (dequeue -> decision)
AS_LAST_P99 = 12        # p99 of the last closed window (0 when it was empty)
AS_LAST_MEAN = 13
N_ADM_STATE = 16

# ------------------------------------------------------------------ counters (int64)
AC_ADMITTED = 0
AC_SHED = 1
AC_ESSENTIAL = 2        # admitted without a decision (cancels)
AC_BRAKES = 3           # emergency brake engagements
AC_TICKS = 4            # controller updates
N_ADM_COUNTERS = 8

_BIG = 1e18


# ------------------------------------------------------------------------ the registry
# Every parameter once (name, AP_* slot, default, range, unit), then one row per
# controller naming the parameters it reads; a controller's id is its ADM_* code.
_P = {p.name: p for p in (
    Param("target_ns", AP_TARGET_NS, 1_000_000.0, 1.0, 1e12, unit="ns",
          doc="end-to-end latency target (the p99 to hold)"),
    Param("interval_ns", AP_INTERVAL_NS, 0.0, 0.0, 1e12, unit="ns",
          doc="control window / CoDel interval (0: max(target, 200 us))"),
    Param("kp", AP_KP, 0.3, 0.0, 100.0),
    Param("ki", AP_KI, 0.1, 0.0, 100.0),
    Param("kd", AP_KD, 0.05, 0.0, 100.0),
    Param("brake_factor", AP_BRAKE_FACTOR, 1.0, 0.0, 1000.0,
          doc="emergency brake at brake_factor * target"),
    Param("min_admit", AP_MIN_ADMIT, 0.02, 0.0, 1.0, doc="floor of the admitted fraction"),
    Param("increase", AP_INCREASE, 4.0, 0.0, 1e9, doc="additive increase (messages)"),
    Param("decrease", AP_DECREASE, 0.8, 0.0, 1.0, doc="multiplicative decrease"),
    Param("min_limit", AP_MIN_LIMIT, 4.0, 0.0, 1e9),
    Param("max_limit", AP_MAX_LIMIT, 65536.0, 0.0, 1e9),
    Param("smoothing", AP_SMOOTHING, 0.2, 0.0, 1.0),
    Param("rate", AP_RATE, 100_000.0, 0.0, 1e12, unit="1/s", doc="tokens per second"),
    Param("burst", AP_BURST, 256.0, 0.0, 1e12, doc="token bucket depth"),
)}
ADMISSION_PARAMS = tuple(_P.values())
DEFAULT_MIN_INTERVAL_NS = 200_000.0


def _rows(*names):
    return tuple(_P[n] for n in names)


CONTROLLERS = Registry("admission controller", (
    Entry("none", None, _rows("target_ns"), "admit everything"),
    Entry("pid", None, _rows("target_ns", "interval_ns", "kp", "ki", "kd", "brake_factor",
                             "min_admit"), "PID on the windowed p99 plus an emergency brake"),
    Entry("aimd", None, _rows("target_ns", "interval_ns", "increase", "decrease", "min_limit",
                              "max_limit"), "additive-increase, multiplicative-decrease limit"),
    Entry("gradient", None, _rows("target_ns", "interval_ns", "smoothing", "min_limit",
                                  "max_limit"), "Netflix's gradient concurrency limiter"),
    Entry("codel", None, _rows("target_ns", "interval_ns"), "CoDel queue-delay shedding"),
    Entry("token_bucket", None, _rows("rate", "burst"), "a static rate limit"),
))
assert CONTROLLERS.names() == CONTROLLER_NAMES


def default_params(kind: int = ADM_NONE, target_ns: float = 1_000_000.0) -> np.ndarray:
    """A parameter array with every registry default (plain Python); the window
    defaults to ``max(target, 200 us)``."""
    p = np.zeros(N_ADM_PARAMS, dtype=np.float64)
    for param in ADMISSION_PARAMS:
        p[param.index] = param.default * param.scale
    p[AP_KIND] = kind
    p[AP_TARGET_NS] = target_ns
    p[AP_INTERVAL_NS] = max(target_ns, DEFAULT_MIN_INTERVAL_NS)
    return p


@kernel
def admission_reset(params, state, window, now):
    """Fresh controller state and an empty latency window (counters are kept: they
    are cumulative for whoever reads them)."""
    for i in range(state.shape[0]):
        state[i] = 0.0
    reset(window)
    state[AS_FRACTION] = 1.0
    state[AS_LIMIT] = min(max(20.0, params[AP_MIN_LIMIT]), params[AP_MAX_LIMIT])  # as Netflix's
    state[AS_NEXT_TICK_NS] = now + params[AP_INTERVAL_NS]
    state[AS_TOKENS] = params[AP_BURST]
    state[AS_LAST_REFILL_NS] = now
    state[AS_MIN_DELAY] = _BIG


@kernel
def control_tick(params, state, counters, window, now):
    """Close the current window: update the controller from its latencies, then reset it.

    Does nothing before ``state[AS_NEXT_TICK_NS]``; returns True when it ran.
    """
    if now < state[AS_NEXT_TICK_NS]:
        return False
    interval = params[AP_INTERVAL_NS]
    state[AS_NEXT_TICK_NS] = now + interval
    counters[AC_TICKS] += 1
    target = params[AP_TARGET_NS]
    n = window[HP_COUNT]
    kind = np.int64(params[AP_KIND])
    p99 = 0.0
    if n > 0:
        p99 = float(percentile(window, 99.0))
        state[AS_LAST_MEAN] = window[HP_SUM] / n
    state[AS_LAST_P99] = p99
    reset(window)
    if kind == ADM_PID:
        if n > 0:
            e = min(max((p99 - target) / target, -1.0), 4.0)
        else:
            e = -1.0  # nothing admitted (all shed, or idle): open up
        de = e - state[AS_PREV_ERROR]
        dde = e - 2.0 * state[AS_PREV_ERROR] + state[AS_PREV_ERROR2]
        f = state[AS_FRACTION] - (params[AP_KP] * de + params[AP_KI] * e + params[AP_KD] * dde)
        state[AS_FRACTION] = min(max(f, params[AP_MIN_ADMIT]), 1.0)
        state[AS_PREV_ERROR2] = state[AS_PREV_ERROR]
        state[AS_PREV_ERROR] = e
    elif kind == ADM_AIMD:
        if n > 0 and p99 > target:
            lim = state[AS_LIMIT] * params[AP_DECREASE]
        else:
            lim = state[AS_LIMIT] + params[AP_INCREASE]
        state[AS_LIMIT] = min(max(lim, params[AP_MIN_LIMIT]), params[AP_MAX_LIMIT])
    elif kind == ADM_GRADIENT:
        gradient = 1.0
        if n > 0 and p99 > 0:
            gradient = min(max(target / p99, 0.5), 1.0)
        lim = state[AS_LIMIT]
        new_lim = lim * gradient + math.sqrt(lim)
        s = params[AP_SMOOTHING]
        lim = lim * (1.0 - s) + new_lim * s
        state[AS_LIMIT] = min(max(lim, params[AP_MIN_LIMIT]), params[AP_MAX_LIMIT])
    elif kind == ADM_CODEL:
        delay_target = max(target - state[AS_SERVICE_NS], 0.0)
        state[AS_STANDING] = 1.0 if state[AS_MIN_DELAY] > delay_target else 0.0
        state[AS_MIN_DELAY] = _BIG
    return True


@kernel
def admit(params, state, counters, window, now, queue_delay_ns, backlog, essential):
    """Decide one message: True to admit, False to shed.

    ``queue_delay_ns``: how long it waited (dequeue time minus feed time);
    ``backlog``: messages queued behind it; ``essential``: always admit (cancels).
    """
    control_tick(params, state, counters, window, now)
    kind = np.int64(params[AP_KIND])
    if kind == ADM_CODEL and queue_delay_ns < state[AS_MIN_DELAY]:
        state[AS_MIN_DELAY] = queue_delay_ns
    if essential:
        counters[AC_ESSENTIAL] += 1
        counters[AC_ADMITTED] += 1
        return True
    ok = True
    target = params[AP_TARGET_NS]
    if kind == ADM_PID:
        limit = params[AP_BRAKE_FACTOR] * target - state[AS_SERVICE_NS]
        if state[AS_BRAKE] != 0:
            if queue_delay_ns <= 0.8 * limit:
                state[AS_BRAKE] = 0.0  # the queue drained: back to the PID's fraction
            else:
                ok = False
        elif queue_delay_ns > limit:
            state[AS_BRAKE] = 1.0
            counters[AC_BRAKES] += 1
            ok = False
        if ok:
            credit = state[AS_CREDIT] + state[AS_FRACTION]
            if credit >= 1.0:
                credit -= 1.0
            else:
                ok = False
            state[AS_CREDIT] = credit
    elif kind == ADM_AIMD or kind == ADM_GRADIENT:
        ok = backlog <= state[AS_LIMIT]
    elif kind == ADM_CODEL:
        delay_target = max(target - state[AS_SERVICE_NS], 0.0)
        timeout = delay_target if state[AS_STANDING] != 0 else params[AP_INTERVAL_NS]
        ok = queue_delay_ns <= timeout
    elif kind == ADM_TOKEN_BUCKET:
        elapsed = now - state[AS_LAST_REFILL_NS]
        state[AS_LAST_REFILL_NS] = now
        tokens = min(state[AS_TOKENS] + elapsed * params[AP_RATE] * 1e-9, params[AP_BURST])
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            ok = False
        state[AS_TOKENS] = tokens
    if ok:
        counters[AC_ADMITTED] += 1
    else:
        counters[AC_SHED] += 1
    return ok


@kernel
def observe(state, window, latency_ns, service_ns):
    """Feed back one admitted message: its end-to-end latency into the window and its
    service time (dequeue -> decision) into the running mean."""
    record(window, latency_ns)
    s = state[AS_SERVICE_NS]
    state[AS_SERVICE_NS] = service_ns if s == 0.0 else s + 0.01 * (service_ns - s)


@kernel
def simulate_trace(params, state, counters, window, arrivals_ns, service_ns, shed_cost_ns,
                   backlog_out, latency_out, admitted_out):
    """Run a controller against a single-server FIFO queue fed by ``arrivals_ns``.

    Each message costs ``service_ns[i]`` when admitted and ``shed_cost_ns`` when shed;
    the server takes messages in order as soon as it is free. Writes each message's
    backlog at its decision, its end-to-end latency (finish - arrival; shed messages
    get -1) and whether it was admitted. Returns the time the last message finished.
    A queue simulation, not a measurement: tests and notebooks use it to see a
    controller's behaviour on controlled latency traces.
    """
    n = arrivals_ns.shape[0]
    t = arrivals_ns[0] if n > 0 else 0
    admission_reset(params, state, window, t)
    for i in range(counters.shape[0]):
        counters[i] = 0
    j = 0  # first message not yet arrived at time t
    for i in range(n):
        start = max(t, arrivals_ns[i])
        while j < n and arrivals_ns[j] <= start:
            j += 1
        backlog = j - i - 1
        backlog_out[i] = backlog
        wait = start - arrivals_ns[i]
        if admit(params, state, counters, window, start, wait, backlog, False):
            t = start + service_ns[i]
            latency_out[i] = t - arrivals_ns[i]
            admitted_out[i] = 1
            observe(state, window, t - arrivals_ns[i], service_ns[i])
        else:
            t = start + shed_cost_ns
            latency_out[i] = -1
            admitted_out[i] = 0
    return t
