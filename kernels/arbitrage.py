"""Arbitrage across constant-product pools: the cycle index, the log-price graph, optimal
sizes, and the detector that runs after every swap.

Owns the layout of a pool graph's cycles (``build_cycles``: a ``CYCLE`` table and, per pool,
the cycles through it and their edges), the log-rate array (``log_rate[2 p + d]``: the log
of what one unit of the token paid into pool ``p`` in direction ``d`` buys at the margin, fee
included; one more slot, always 0, pads the two-hop cycles), the closed-form optimal size of
a cycle (:func:`cycle_optimum`), its exact integer execution (:func:`cycle_output`), the
detector (:func:`detect_pool`) and the loops that apply a stream of ``SWAP_MSG`` and detect
after each swap, from an array (:func:`process_messages`) or from an SPSC ring
(:func:`ring_process`).

Why it works
------------
Tokens are nodes, each pool two directed edges. Paying ``x`` into an edge gives
``f(x) = g * R_out * x / (R_in + g * x)`` (``g = 1 - fee``), whose marginal rate at 0 is
``g * R_out / R_in``: the edge's weight in the log-price graph is ``log g + log R_out -
log R_in``. A cycle whose weights add up to ``edge > 0`` turns one unit of its start token
into ``e**edge > 1`` at the margin: an arbitrage. A swap changes one pool's reserves, so only
the cycles through that pool can change: the detector re-adds their weights and nothing else.
``pool_edges[j]`` holds the three ``log_rate`` slots of the ``j``-th cycle through a pool
(``pool_cycles[j]``, for ``j`` in ``pool_ptr[p] .. pool_ptr[p + 1]``), built once, so the check
is three loads from a contiguous row and three from ``log_rate`` (a few hundred bytes, in L1).

Optimal size (closed form)
--------------------------
Every hop is a Moebius map ``a x / (b + c x)`` (``a = g R_out``, ``b = R_in``, ``c = g``), and
a composition of such maps is one: ``F(x) = A x / (B + C x)``, with ``(A, B, C)`` ->
``(A a, B b, C b + A c)`` per hop. The profit ``F(x) - x`` is concave and peaks where
``F'(x) = A B / (B + C x)**2 = 1``::

    x* = (sqrt(A B) - B) / C = expm1(edge / 2) / u,    profit(x*) = expm1(edge / 2)**2 / u

with ``edge = log(A / B)`` and ``u = C / B``, both updated hop by hop as ratios (so nothing
overflows and a small edge loses no digits to cancellation). The detector then executes
``floor(x*)`` through the exact integer swaps of ``kernels.amm``: the profit it records is
what the pools would really pay, rounding and fees included.

Counters (``counters``, int64, ``N_COUNTERS`` long): ``counters[code]`` per ``SW_*`` message
outcome (``kernels.records``), then the ``CT_*`` words below.
"""
from __future__ import annotations

import numpy as np

from .amm import AMOUNT_SCALE, FEE_DENOM, MAX_AMOUNT, apply_message, swap_out
from .jit import kernel
from .records import ARB_OPP, CYCLE, CYCLE_MAX_HOPS, N_SWAP_CODES, SW_OK, SW_RESYNCED
from .ring import ring_consume

__all__ = [
    "CT_CHECKED", "CT_POSITIVE", "CT_RECORDED", "CT_DROPPED", "CT_NEXT_SEQ", "CT_LOST",
    "CT_REORDERED", "N_COUNTERS", "COUNTER_NAMES",
    "build_cycles", "new_counters", "new_opportunities", "new_log_rate",
    "update_log_rate", "init_log_rate", "cycle_optimum", "cycle_output",
    "cycle_quote", "detect_pool", "process_messages", "ring_process",
]

CT_CHECKED = N_SWAP_CODES + 0    # cycles whose edge was evaluated
CT_POSITIVE = N_SWAP_CODES + 1   # ... with edge > 0 (profitable at the margin)
CT_RECORDED = N_SWAP_CODES + 2   # opportunities written (also the next free row of ``opps``)
CT_DROPPED = N_SWAP_CODES + 3    # opportunities found with ``opps`` full
CT_NEXT_SEQ = N_SWAP_CODES + 4   # next sequence number expected
CT_LOST = N_SWAP_CODES + 5       # sequence numbers skipped (lost messages)
CT_REORDERED = N_SWAP_CODES + 6  # messages at or below a sequence number already seen
N_COUNTERS = N_SWAP_CODES + 7
COUNTER_NAMES = ("cycles_checked", "cycles_positive", "recorded", "dropped", "next_seq",
                 "lost", "reordered")


# ----------------------------------------------------------------- layout (Python)
def build_cycles(token0, token1, max_hops: int = CYCLE_MAX_HOPS):
    """Every arbitrage cycle of the pools ``(token0[p], token1[p])`` with two (cross-pool:
    the same pair on two pools) or three hops (triangular: three tokens), in both directions.

    A cycle starts at its smallest token id (every rotation is the same cycle). Returns
    ``(cycles, pool_ptr, pool_cycles, pool_edges)``: a ``CYCLE`` array, the cycles through
    pool ``p``, ``pool_cycles[pool_ptr[p]:pool_ptr[p + 1]]``, and for each of those the
    ``log_rate`` slots of its hops (``int32[:, 3]``; ``2 * n_pools``, the zero slot, after the
    last hop). The caller validates the tokens (distinct within a pool, non-negative)."""
    token0 = np.asarray(token0, dtype=np.int64)
    token1 = np.asarray(token1, dtype=np.int64)
    n_pools = token0.shape[0]
    if max_hops not in (2, 3):
        raise ValueError(f"max_hops must be 2 or 3, got {max_hops!r}")
    by_pair: dict[tuple[int, int], list[int]] = {}
    for p in range(n_pools):
        a, b = int(token0[p]), int(token1[p])
        by_pair.setdefault((min(a, b), max(a, b)), []).append(p)

    def pools_of(x, y):
        return by_pair.get((min(x, y), max(x, y)), [])

    def direction(p, frm):
        return 0 if int(token0[p]) == frm else 1

    rows = []   # (start, [(pool, dir), ...])
    for (a, b), pools in sorted(by_pair.items()):
        for p in pools:
            for q in pools:
                if p != q:
                    rows.append((a, [(p, direction(p, a)), (q, direction(q, b))]))
    if max_hops == 3:
        tokens = sorted({t for pair in by_pair for t in pair})
        neighbours = {t: sorted({y for (x, y) in by_pair if x == t} | {x for (x, y) in by_pair if y == t})
                      for t in tokens}
        for a in tokens:
            for b in neighbours[a]:
                if b <= a:
                    continue
                for c in neighbours[b]:
                    if c <= a or c == b or a not in neighbours[c]:
                        continue
                    for p in pools_of(a, b):
                        for q in pools_of(b, c):
                            for r in pools_of(c, a):
                                rows.append((a, [(p, direction(p, a)), (q, direction(q, b)),
                                                 (r, direction(r, c))]))
    cycles = np.zeros(len(rows), dtype=CYCLE)
    cycles["pool"] = -1
    members: list[list[int]] = [[] for _ in range(n_pools)]
    for i, (start, hops) in enumerate(rows):
        cycles[i]["start"] = start
        cycles[i]["hops"] = len(hops)
        for k, (p, d) in enumerate(hops):
            cycles[i]["pool"][k] = p
            cycles[i]["dir"][k] = d
        for p in sorted({p for p, _ in hops}):
            members[p].append(i)
    pool_ptr = np.zeros(n_pools + 1, dtype=np.int64)
    pool_ptr[1:] = np.cumsum([len(m) for m in members])
    pool_cycles = np.array([i for m in members for i in m], dtype=np.int32)
    slots = np.full((len(rows), CYCLE_MAX_HOPS), 2 * n_pools, dtype=np.int32)
    for i, (_, hops) in enumerate(rows):
        for k, (p, d) in enumerate(hops):
            slots[i, k] = 2 * p + d
    pool_edges = np.ascontiguousarray(slots[pool_cycles])
    return cycles, pool_ptr, pool_cycles, pool_edges


def new_log_rate(n_pools: int) -> np.ndarray:
    """``float64[2 * n_pools + 1]``: a slot per pool and direction, then the zero slot."""
    return np.zeros(2 * int(n_pools) + 1)


def new_counters() -> np.ndarray:
    return np.zeros(N_COUNTERS, dtype=np.int64)


def new_opportunities(capacity: int) -> np.ndarray:
    return np.zeros(int(capacity), dtype=ARB_OPP)


# ------------------------------------------------------------------ log-price graph
@kernel
def update_log_rate(pools, p, log_rate):
    """``log_rate[2 p]`` (token0 -> token1) and ``log_rate[2 p + 1]`` after pool ``p``
    changed; ``-inf`` while a reserve is unknown (0), so no cycle through it looks profitable."""
    pool = pools[p]
    if pool.reserve0 <= 0 or pool.reserve1 <= 0:
        log_rate[2 * p] = -np.inf
        log_rate[2 * p + 1] = -np.inf
        return
    lg = np.log((FEE_DENOM - pool.fee_bps) / FEE_DENOM)
    l0 = np.log(float(pool.reserve0))
    l1 = np.log(float(pool.reserve1))
    log_rate[2 * p] = lg + l1 - l0
    log_rate[2 * p + 1] = lg + l0 - l1


@kernel
def init_log_rate(pools, log_rate):
    """Fill ``log_rate`` (``new_log_rate(n_pools)``) from every pool; the last slot is 0."""
    for p in range(pools.shape[0]):
        update_log_rate(pools, p, log_rate)
    log_rate[2 * pools.shape[0]] = 0.0


@kernel
def cycle_optimum(pools, cycle):
    """``(x*, edge)``: the size (start-token micro-tokens, float) that maximises the cycle's
    profit, from the reserves (module docstring); ``x* = 0`` when ``edge <= 0``."""
    v = 1.0   # A / B
    u = 0.0   # C / B
    for k in range(cycle.hops):
        pool = pools[cycle.pool[k]]
        if cycle.dir[k] == 0:
            r_in = float(pool.reserve0)
            r_out = float(pool.reserve1)
        else:
            r_in = float(pool.reserve1)
            r_out = float(pool.reserve0)
        g = (FEE_DENOM - pool.fee_bps) / FEE_DENOM
        u += v * g / r_in
        v *= g * r_out / r_in
    edge = np.log(v)
    if not edge > 0.0:
        return 0.0, edge
    return np.expm1(0.5 * edge) / u, edge


@kernel
def cycle_output(pools, cycle, amount_in):
    """What ``amount_in`` of the start token comes back as after the cycle's exact integer
    swaps (the pools are not changed); -1 when a hop is out of range."""
    amount = np.int64(amount_in)
    for k in range(cycle.hops):
        pool = pools[cycle.pool[k]]
        if cycle.dir[k] == 0:
            r_in = pool.reserve0
            r_out = pool.reserve1
        else:
            r_in = pool.reserve1
            r_out = pool.reserve0
        if amount > MAX_AMOUNT - r_in:
            return np.int64(-1)
        amount = swap_out(amount, r_in, r_out, pool.fee_bps)
        if amount < 0:
            return amount
    return amount


@kernel
def _optimal_amount(pools, cycle):
    """``(floor(x*), edge)``, ``x*`` clamped to ``MAX_AMOUNT``; 0 when not profitable."""
    x, edge = cycle_optimum(pools, cycle)
    if not x >= 1.0:
        return np.int64(0), edge
    if x >= MAX_AMOUNT:
        return np.int64(MAX_AMOUNT), edge
    return np.int64(x), edge


@kernel
def cycle_quote(pools, cycles, c):
    """For Python callers: ``(amount_in, amount_out, edge)`` of cycle ``c`` at its optimal
    size (``(0, 0, edge)`` when it is not profitable, ``amount_out`` -1 if a hop fails)."""
    if c < 0 or c >= cycles.shape[0]:
        return np.int64(0), np.int64(-1), np.nan
    amount, edge = _optimal_amount(pools, cycles[c])
    if amount <= 0:
        return np.int64(0), np.int64(0), edge
    return amount, cycle_output(pools, cycles[c], amount), edge


# ----------------------------------------------------------------------- detector
@kernel
def detect_pool(pools, p, log_rate, cycles, pool_ptr, pool_cycles, pool_edges, token_usd,
                min_profit_usd, ts, seq, opps, counters):
    """Check every cycle through pool ``p`` (after its reserves changed) and record each
    whose exact profit at the optimal size is worth at least ``min_profit_usd`` (valued at
    ``token_usd[start]`` per token) in ``opps[counters[CT_RECORDED]]``; with ``opps`` full it
    counts ``CT_DROPPED`` instead. Allocates nothing."""
    first = pool_ptr[p]
    last = pool_ptr[p + 1]
    counters[CT_CHECKED] += last - first
    for j in range(first, last):
        edge = (log_rate[pool_edges[j, 0]] + log_rate[pool_edges[j, 1]]
                + log_rate[pool_edges[j, 2]])
        if not edge > 0.0:
            continue
        counters[CT_POSITIVE] += 1
        c = pool_cycles[j]
        cycle = cycles[c]
        amount, _ = _optimal_amount(pools, cycle)
        if amount <= 0:
            continue
        back = cycle_output(pools, cycle, amount)
        if back < 0:
            continue
        profit = back - amount
        usd = profit / AMOUNT_SCALE * token_usd[cycle.start]
        if profit <= 0 or usd < min_profit_usd:
            continue
        row = counters[CT_RECORDED]
        if row >= opps.shape[0]:
            counters[CT_DROPPED] += 1
            continue
        o = opps[row]
        o.ts = ts
        o.seq = seq
        o.amount_in = amount
        o.profit = profit
        o.profit_usd = usd
        o.edge = edge
        o.cycle = c
        o.pool = p
        o.start = cycle.start
        o.hops = cycle.hops
        counters[CT_RECORDED] = row + 1


@kernel
def _process_one(m, pools, log_rate, cycles, pool_ptr, pool_cycles, pool_edges, token_usd,
                 min_profit_usd, opps, counters, detect):
    seq = m.seq
    expected = counters[CT_NEXT_SEQ]
    if seq == expected:
        counters[CT_NEXT_SEQ] = seq + 1
    elif seq > expected:
        counters[CT_LOST] += seq - expected
        counters[CT_NEXT_SEQ] = seq + 1
    else:
        counters[CT_REORDERED] += 1
    code = apply_message(pools, m)
    counters[code] += 1
    if code == SW_OK or code == SW_RESYNCED:
        p = m.pool
        update_log_rate(pools, p, log_rate)
        if detect:
            detect_pool(pools, p, log_rate, cycles, pool_ptr, pool_cycles, pool_edges, token_usd,
                        min_profit_usd, m.ts, seq, opps, counters)


@kernel
def process_messages(msgs, start, count, pools, log_rate, cycles, pool_ptr, pool_cycles,
                     pool_edges, token_usd, min_profit_usd, opps, counters, detect):
    """Apply ``msgs[start:start+count]`` in order (``kernels.amm.apply_message``: malformed
    ones counted and skipped), keep ``log_rate`` current and, when ``detect``, run the
    detector after each applied swap. Sequence numbers are checked (``CT_LOST``,
    ``CT_REORDERED``). Returns the messages processed."""
    end = min(start + count, msgs.shape[0])
    for i in range(start, end):
        _process_one(msgs[i], pools, log_rate, cycles, pool_ptr, pool_cycles, pool_edges,
                     token_usd, min_profit_usd, opps, counters, detect)
    return max(end - start, 0)


@kernel
def ring_process(header, slots, scratch, pools, log_rate, cycles, pool_ptr, pool_cycles,
                 pool_edges, token_usd, min_profit_usd, opps, counters, detect, max_count,
                 max_spins):
    """The consumer of an SPSC ring of ``SWAP_MSG`` (``kernels.ring``): take batches of up
    to ``scratch.shape[0]`` messages and process each as :func:`process_messages` does.
    Returns the messages processed once ``max_spins`` polls in a row found the ring empty
    (Python then checks the producer's liveness and the end of the stream) or after at
    least ``max_count`` (Python then beats the consumer's heartbeat)."""
    total = 0
    while total < max_count:
        n = ring_consume(header, slots, scratch, scratch.shape[0], max_spins)
        if n <= 0:
            return total
        for i in range(n):
            _process_one(scratch[i], pools, log_rate, cycles, pool_ptr, pool_cycles, pool_edges,
                         token_usd, min_profit_usd, opps, counters, detect)
        total += n
    return total
