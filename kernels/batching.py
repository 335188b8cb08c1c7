"""Batching: a consumer that takes up to ``b`` items per wake-up, and a controller that
adapts ``b`` to the load.

Owns the batching policies (``BATCH_*`` codes), the parameter layout (``BP_*`` indices
into a float64 array) with its registries (``BATCH_PARAMS``, ``COST_PARAMS`` and
``BATCHERS``: which parameters each policy reads), the controller state (``BS_*``,
float64), the counters (``BC_*``, int64) and the kernels:

* :func:`batch_reset`, :func:`batch_limit` and :func:`batch_control` (one call per
  batch: the AIMD step), the controller as a step function over those arrays;
* :func:`batch_start`, the rule that says when a free consumer takes its next batch;
* :func:`simulate_batching`, a deterministic consumer in exchange time: arrivals from an
  array, a cost of ``fixed + taken * per_item`` per batch, one ``records.BATCH`` row per
  batch and every item's latency (no clock, no threads: reproducible and testable);
* :func:`produce_scheduled` and :func:`consume_batches`, the same consumer on a real
  SPSC ring (``kernels.ring`` layout, ``MESSAGE`` slots): a producer that publishes each
  message when it is due, stamped with its due time (so a late producer shows up as
  latency), and a consumer that applies the same start rule and controller, spinning
  ``fixed + taken * per_item`` ns as the modelled work of each batch.

Why batches: a consumer pays a fixed cost per wake-up (a system call, a network packet,
a cache refill, a lock) plus a cost per item. Taking ``b`` items per wake-up pays the
fixed cost once for ``b`` items, so the capacity is ``b / (fixed + b * per_item)``. The
price: an item waits for its batch to fill (up to ``max_wait``) and for the items ahead
of it in the batch.

The start rule (both consumers): a free consumer with ``q`` items queued takes
``min(q, b)`` of them at once when ``q >= b``; otherwise it waits until the ``b``-th item
arrives or the oldest queued item has waited ``max_wait``, whichever comes first, then
takes what is there (an empty queue: it waits for the first item and applies the rule
from there). ``max_wait = 0`` is plain draining: take what is there, up to ``b``.

The AIMD controller (``BATCH_AIMD``), after each batch: if items were left queued
behind a full batch (the load outruns ``b``), grow ``b`` by ``increase``; otherwise, if
the batch's latency (its oldest item's) exceeded the target, multiply ``b`` by
``decrease``; otherwise hold. ``b`` stays within ``[min_batch, max_batch]``. Growing on a
backlog first matters: under overload the latency is high *because* the batch is too
small, and shrinking then would collapse the throughput.
"""
from __future__ import annotations

import math

import numpy as np

from .atomics import cpu_pause, load_acquire, store_release
from .clock import now_ns
from .jit import kernel
from .registry import Entry, Param, Registry
from .ring import H_EMPTY_SPINS, H_FULL_SPINS, H_HEAD, H_MASK, H_TAIL, claim

__all__ = [
    "BATCH_FIXED", "BATCH_AIMD", "POLICY_NAMES",
    "BP_POLICY", "BP_BATCH", "BP_MIN_BATCH", "BP_MAX_BATCH", "BP_TARGET_NS", "BP_INCREASE",
    "BP_DECREASE", "BP_MAX_WAIT_NS", "BP_FIXED_NS", "BP_PER_ITEM_NS", "N_BATCH_PARAMS",
    "BS_BATCH", "BS_GROWS", "BS_SHRINKS", "N_BATCH_STATE",
    "BC_BATCHES", "BC_ITEMS", "BC_EXPECTED", "BC_BAD_SEQ", "BC_LOG_FULL", "N_BATCH_COUNTERS",
    "RB_BUDGET", "RB_IDLE", "RB_LINGER", "MAX_BATCH",
    "BATCH_PARAMS", "COST_PARAMS", "BATCHERS", "default_params",
    "batch_reset", "batch_limit", "batch_control", "batch_start", "simulate_batching",
    "produce_scheduled", "consume_batches",
]

# ------------------------------------------------------------------- policy codes
BATCH_FIXED = 0         # always the same batch size
BATCH_AIMD = 1          # additive increase under backlog, multiplicative decrease over target
POLICY_NAMES = ("fixed", "aimd")

# ---------------------------------------------------------- parameters (float64 array)
BP_POLICY = 0           # BATCH_*
BP_BATCH = 1            # the fixed batch size; AIMD's starting size
BP_MIN_BATCH = 2        # AIMD's range
BP_MAX_BATCH = 3
BP_TARGET_NS = 4        # per-batch latency target (the batch's oldest item)
BP_INCREASE = 5         # AIMD additive increase (items per backlogged batch)
BP_DECREASE = 6         # AIMD multiplicative decrease (0..1)
BP_MAX_WAIT_NS = 7      # longest the oldest queued item waits for its batch to fill
BP_FIXED_NS = 8         # cost model: per batch ...
BP_PER_ITEM_NS = 9      # ... plus per item
N_BATCH_PARAMS = 12

# ---------------------------------------------------------------- state (float64)
BS_BATCH = 0            # the batch size in force (AIMD: a float; its floor is used)
BS_GROWS = 1            # AIMD increases so far
BS_SHRINKS = 2          # AIMD decreases so far
N_BATCH_STATE = 4

# ---------------------------------------------------------------- counters (int64)
BC_BATCHES = 0          # batches taken (the next log row)
BC_ITEMS = 1            # items consumed
BC_EXPECTED = 2         # ring consumer: next sequence number expected
BC_BAD_SEQ = 3          # ring consumer: items whose seq was not the expected one
BC_LOG_FULL = 4         # batches not logged (the log array was full)
N_BATCH_COUNTERS = 8

# -------------------------------------------------- consume_batches return statuses
RB_BUDGET = 0           # took max_batches batches; call again
RB_IDLE = 1             # ring empty for max_spins attempts
RB_LINGER = 2           # waiting for a batch to fill for max_spins attempts

MAX_BATCH = 65536       # the largest batch size any policy may use
_NEVER = 2**63 - 1

# ------------------------------------------------------------------------ registries
# People type microseconds; the kernel reads nanoseconds (``scale``).
_P = {p.name: p for p in (
    Param("batch", BP_BATCH, 8.0, 1.0, MAX_BATCH, True, unit="items",
          doc="the fixed batch size; the adaptive controller's starting size"),
    Param("min_batch", BP_MIN_BATCH, 1.0, 1.0, MAX_BATCH, True, unit="items",
          doc="smallest batch the controller sets"),
    Param("max_batch", BP_MAX_BATCH, 256.0, 1.0, MAX_BATCH, True, unit="items",
          doc="largest batch the controller sets"),
    Param("target_us", BP_TARGET_NS, 100.0, 0.001, 1e9, scale=1e3, unit="us",
          doc="latency target of a batch's oldest item"),
    Param("increase", BP_INCREASE, 4.0, 0.0, MAX_BATCH, unit="items",
          doc="additive increase after a batch that left items queued"),
    Param("decrease", BP_DECREASE, 0.5, 0.0, 1.0,
          doc="multiplicative decrease after a batch over target"),
    Param("max_wait_us", BP_MAX_WAIT_NS, 200.0, 0.0, 1e9, scale=1e3, unit="us",
          doc="longest the oldest queued item waits for its batch to fill (0: never wait)"),
)}
BATCH_PARAMS = tuple(_P.values())

COST_PARAMS = (
    Param("fixed_us", BP_FIXED_NS, 10.0, 0.0, 1e6, scale=1e3, unit="us",
          doc="cost paid once per batch (wake-up, system call, packet)"),
    Param("per_item_us", BP_PER_ITEM_NS, 0.5, 0.0, 1e6, scale=1e3, unit="us",
          doc="cost paid per item of a batch"),
)


def _rows(*names):
    return tuple(_P[n] for n in names)


BATCHERS = Registry("batching policy", (
    Entry("fixed", None, _rows("batch", "max_wait_us"), "the same batch size at every load"),
    Entry("aimd", None, _rows("batch", "min_batch", "max_batch", "target_us", "increase",
                              "decrease", "max_wait_us"),
          "grow the batch under a backlog, shrink it when a batch misses the latency target"),
))
assert BATCHERS.names() == POLICY_NAMES


def default_params(policy: int = BATCH_FIXED) -> np.ndarray:
    """A parameter array with every registry default, in kernel units (plain Python)."""
    p = np.zeros(N_BATCH_PARAMS, dtype=np.float64)
    for param in BATCH_PARAMS + COST_PARAMS:
        p[param.index] = param.default * param.scale
    p[BP_POLICY] = policy
    return p


# ------------------------------------------------------------------- the controller
@kernel(inline="always")
def _clamp_batch(b, params):
    """``b`` within ``[min_batch, max_batch]`` (and 1 .. MAX_BATCH whatever the array holds:
    a NaN counts as the bound it failed)."""
    low = params[BP_MIN_BATCH]
    if not (low >= 1.0):
        low = 1.0
    high = params[BP_MAX_BATCH]
    if not (high <= MAX_BATCH):
        high = float(MAX_BATCH)
    if high < low:
        high = min(low, float(MAX_BATCH))
    if not (b >= low):
        return low
    return min(b, high)


@kernel(inline="always")
def _fixed_batch(params):
    b = params[BP_BATCH]
    if not (b >= 1.0):
        return 1.0
    return min(b, float(MAX_BATCH))


@kernel(inline="always")
def _cost(params, index):
    """A cost parameter in ns, within 0 .. 1e12 (a NaN counts as 0)."""
    c = params[index]
    if not (c >= 0.0):
        return 0.0
    return min(c, 1e12)


@kernel
def batch_reset(params, state, counters):
    """Fresh controller state (the starting batch size) and zeroed counters."""
    for i in range(state.shape[0]):
        state[i] = 0.0
    for i in range(counters.shape[0]):
        counters[i] = 0
    if np.int64(params[BP_POLICY]) == BATCH_AIMD:
        state[BS_BATCH] = _clamp_batch(params[BP_BATCH], params)
    else:
        state[BS_BATCH] = _fixed_batch(params)


@kernel(inline="always")
def batch_limit(params, state):
    """The batch size in force: the most items the next batch takes (always >= 1)."""
    if np.int64(params[BP_POLICY]) == BATCH_AIMD:
        b = _clamp_batch(state[BS_BATCH], params)
    else:
        b = _fixed_batch(params)
    return max(np.int64(math.floor(b)), 1)


@kernel
def batch_control(params, state, latency_ns, taken, backlog):
    """One controller step after a batch of ``taken`` items whose oldest item waited
    ``latency_ns`` in all, with ``backlog`` items left queued when it was taken.

    AIMD (module docstring): grow by ``increase`` on a backlog, else shrink by
    ``decrease`` over target, else hold; clamp to ``[min_batch, max_batch]``. The fixed
    policy changes nothing. Returns the batch size now in force.
    """
    if np.int64(params[BP_POLICY]) == BATCH_AIMD:
        b = _clamp_batch(state[BS_BATCH], params)
        if latency_ns > params[BP_TARGET_NS]:
            if backlog > 0:
                b = b + params[BP_INCREASE]
                state[BS_GROWS] += 1.0
            else:
                b = b * params[BP_DECREASE]
                state[BS_SHRINKS] += 1.0
        state[BS_BATCH] = _clamp_batch(b, params)
    return batch_limit(params, state)


# -------------------------------------------------------------- the start rule
@kernel
def batch_start(arrivals_ns, head, n, free_ns, limit, max_wait_ns):
    """When a consumer free at ``free_ns`` takes its next batch, items ``head ..`` of
    ``arrivals_ns[:n]`` (sorted) still to take, at most ``limit`` per batch (module
    docstring): now if ``limit`` items are queued, else when the ``limit``-th arrives or
    the oldest has waited ``max_wait_ns``, whichever is first. Returns the start time
    (``free_ns`` when ``head`` is not an item of ``arrivals_ns[:n]``)."""
    n = min(n, arrivals_ns.shape[0])
    if head < 0 or head >= n:
        return free_ns
    limit = min(max(limit, 1), MAX_BATCH)
    max_wait_ns = min(max(max_wait_ns, 0), 1_000_000_000_000_000)
    start = max(free_ns, arrivals_ns[head])
    last = head + limit - 1
    if last < n and arrivals_ns[last] <= start:
        return start  # a full batch is already waiting
    fill = arrivals_ns[last] if last < n else _NEVER
    deadline = arrivals_ns[head] + max_wait_ns
    return max(start, min(fill, deadline))


@kernel
def simulate_batching(params, state, counters, arrivals_ns, latency_out, log):
    """Run a batching consumer in exchange time over ``arrivals_ns`` (sorted, ns).

    From a fresh state (:func:`batch_reset`), batch after batch: :func:`batch_start`
    says when, the batch takes every queued item up to the limit, costs
    ``fixed + taken * per_item`` ns, and delivers all its items at its end
    (``latency_out[i] = end - arrivals_ns[i]``); then :func:`batch_control`. Writes one
    ``BATCH`` row per batch into ``log`` while it has room (``counters[BC_LOG_FULL]``
    counts the rest). Returns the number of batches.
    """
    batch_reset(params, state, counters)
    n = min(arrivals_ns.shape[0], latency_out.shape[0])
    max_wait = np.int64(_cost(params, BP_MAX_WAIT_NS))
    fixed = _cost(params, BP_FIXED_NS)
    per_item = _cost(params, BP_PER_ITEM_NS)
    free = arrivals_ns[0] if n > 0 else 0
    head = 0
    arrived = 0  # items arrived by the current start time
    nb = 0
    while head < n:
        limit = batch_limit(params, state)
        start = batch_start(arrivals_ns, head, n, free, limit, max_wait)
        if arrived < head:
            arrived = head
        while arrived < n and arrivals_ns[arrived] <= start:
            arrived += 1
        queued = arrived - head
        taken = min(queued, limit)
        backlog = queued - taken
        end = start + np.int64(fixed + taken * per_item)
        for i in range(head, head + taken):
            latency_out[i] = end - arrivals_ns[i]
        latency = end - arrivals_ns[head]
        next_limit = batch_control(params, state, latency, taken, backlog)
        if nb < log.shape[0]:
            row = log[nb]
            row.start_ns = start
            row.end_ns = end
            row.first = head
            row.taken = taken
            row.limit = limit
            row.backlog = backlog
            row.latency_ns = latency
            row.next_limit = next_limit
        else:
            counters[BC_LOG_FULL] += 1
        nb += 1
        head += taken
        free = end
    counters[BC_BATCHES] = nb
    counters[BC_ITEMS] = head
    return nb


# ------------------------------------------------------------- on the real ring
@kernel
def produce_scheduled(header, slots, due_ns, next_seq, end_seq, t0, max_spins):
    """Publish messages ``next_seq .. end_seq-1`` into the ring, each once
    ``now >= t0 + due_ns[seq]``, built in its slot (``seq``, ``ts`` = its *due* time,
    ``order_id``, ``qty``); every message due at once goes out in one release.

    Returns the next sequence still to publish: short of ``end_seq`` after ``max_spins``
    attempts in a row found nothing due or the ring full (Python then waits politely
    and calls again). Sequences outside ``due_ns`` are never published.
    """
    mask = header[H_MASK]
    spins = 0
    next_seq = max(next_seq, 0)
    end_seq = min(end_seq, due_ns.shape[0])
    while next_seq < end_seq:
        free = claim(header, end_seq - next_seq)
        if free <= 0:
            header[H_FULL_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        now = now_ns()
        n = 0
        while n < free and next_seq + n < end_seq and t0 + due_ns[next_seq + n] <= now:
            n += 1
        if n == 0:
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        spins = 0
        head = header[H_HEAD]
        for k in range(n):
            s = next_seq + k
            slot = slots[(head + k) & mask]
            slot.seq = s
            slot.ts = t0 + due_ns[s]
            slot.order_id = s
            slot.qty = 1
        store_release(header, H_HEAD, head + n)
        next_seq += n
    return next_seq


@kernel
def consume_batches(header, slots, params, state, counters, latency_out, log, max_batches,
                    max_spins):
    """The batching consumer on a real ring: the start rule, the cost and the controller
    of :func:`simulate_batching`, on ``CLOCK_MONOTONIC``.

    Per batch: wait (spinning) until ``limit`` messages are readable or the oldest one's
    ``ts`` is ``max_wait`` old; take up to ``limit``; spin ``fixed + taken * per_item`` ns
    (the modelled work); stamp each message's latency ``end - ts`` into
    ``latency_out[seq]`` (when ``seq`` fits), check the sequence, release the slots, log
    one ``BATCH`` row (``first`` is the first message's ``seq``) and run
    :func:`batch_control`. The state and counters carry over between calls (start with
    :func:`batch_reset`). Returns ``RB_BUDGET`` after ``max_batches`` batches,
    ``RB_IDLE`` / ``RB_LINGER`` after ``max_spins`` fruitless attempts in a row.
    """
    mask = header[H_MASK]
    max_wait = np.int64(_cost(params, BP_MAX_WAIT_NS))
    fixed = _cost(params, BP_FIXED_NS)
    per_item = _cost(params, BP_PER_ITEM_NS)
    spins = 0
    done = 0
    while done < max_batches:
        limit = batch_limit(params, state)
        tail = header[H_TAIL]
        available = load_acquire(header, H_HEAD) - tail
        if available <= 0:
            header[H_EMPTY_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                return RB_IDLE
            cpu_pause()
            continue
        start = now_ns()
        oldest = slots[tail & mask].ts
        if available < limit and start - oldest < max_wait:
            spins += 1
            if spins >= max_spins:
                return RB_LINGER
            cpu_pause()
            continue
        spins = 0
        taken = min(available, limit)
        backlog = available - taken
        busy_until = start + np.int64(fixed + taken * per_item)
        end = now_ns()
        while end < busy_until:
            cpu_pause()
            end = now_ns()
        expected = counters[BC_EXPECTED]
        first = slots[tail & mask].seq
        for i in range(taken):
            m = slots[(tail + i) & mask]
            s = m.seq
            if s != expected:
                counters[BC_BAD_SEQ] += 1
            expected = s + 1
            if s >= 0 and s < latency_out.shape[0]:
                latency_out[s] = end - m.ts
        counters[BC_EXPECTED] = expected
        store_release(header, H_TAIL, tail + taken)
        latency = end - oldest
        next_limit = batch_control(params, state, latency, taken, backlog)
        nb = counters[BC_BATCHES]
        if nb < log.shape[0]:
            row = log[nb]
            row.start_ns = start
            row.end_ns = end
            row.first = first
            row.taken = taken
            row.limit = limit
            row.backlog = backlog
            row.latency_ns = latency
            row.next_limit = next_limit
        else:
            counters[BC_LOG_FULL] += 1
        counters[BC_BATCHES] = nb + 1
        counters[BC_ITEMS] += taken
        done += 1
    return RB_BUDGET
