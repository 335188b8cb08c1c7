"""Constant-product pools (x * y = k) with fees: swap math, pool state, swap messages, flow.

Owns the automated market maker of Uniswap V2 and its many copies: the swap output of a
pool, its price impact and fee, the pool-state array (``kernels.records.POOL``, one row per
pool), applying a stream of ``SWAP_MSG`` records to that array (with every malformed message
counted, never trusted, never a crash), and the simulated flow of swaps that produces such a
stream (:func:`simulate_flow`; ``workbench.defi`` draws its random numbers).

Units
-----
Amounts are integers in micro-tokens (``AMOUNT_SCALE`` = 10**6 per token, USDC's own
precision), fees are basis points of the amount paid in (``FEE_DENOM`` = 10 000: Uniswap
V2's 0.30 % is 30). Both reserves of a pool are in micro-tokens, so ``reserve1 / reserve0``
is the price of token0 in token1.

Swap math (Uniswap V2's, in exact integers)
-------------------------------------------
A pool holding ``x`` of the token paid in and ``y`` of the token paid out keeps ``x * y``
from falling. With ``g = FEE_DENOM - fee_bps`` only ``amount_in * g / FEE_DENOM`` counts for
the curve, and the output is rounded down::

    amount_out = floor(amount_in * g * y / (x * FEE_DENOM + amount_in * g))

so ``(x + amount_in) * (y - amount_out) >= x * y``: ``k`` never decreases, it grows by the fee
(which stays in the pool, the liquidity providers' income) and by the rounding. The output
is always below ``y``: a pool can never be emptied.

The numerator needs up to 108 bits. Numba has no 128-bit integers (and LLVM's 128-bit
division calls a runtime helper the JIT cannot link), so :func:`mul_div` takes a float64
estimate of the quotient, which is within one unit of the truth for these bounds, and
corrects it with the exact remainder: that remainder is small, so wrapping 64-bit
arithmetic computes it exactly. The bounds, checked on every input:

* amounts and reserves at most ``MAX_AMOUNT`` = 2**47 - 1 micro-tokens (140 million tokens);
* then ``amount_in * g < 2**61``, the denominator ``< 2**62`` and the quotient ``< 2**47``.

Messages
--------
:func:`apply_message` is the consumer's side: it checks a message's type, pool, tokens,
amounts, reserves and fee (a failure returns its ``SW_*`` code and changes nothing), then
recomputes the swap from its own state. When its result is the message's (amount out and
both reserves) the swap is applied (``SW_OK``); when they differ, a message was lost or
corrupted upstream, so the pool takes the message's reserves (``SW_RESYNCED``).
"""
from __future__ import annotations

import numpy as np

from .jit import kernel
from .records import (SW_BAD_AMOUNT, SW_BAD_FEE, SW_BAD_POOL, SW_BAD_RESERVE, SW_BAD_TOKEN,
                      SW_BAD_TYPE, SW_OK, SW_RESYNCED, SWAP_SWAP, SWAP_SYNC)

__all__ = [
    "AMOUNT_SCALE", "FEE_DENOM", "MAX_AMOUNT", "MAX_FEE_BPS",
    "mul_div", "swap_out", "quote_many", "price_impact", "fee_amount", "pool_swap",
    "apply_message", "apply_messages",
    "SP_START_NS", "SP_BLOCK_NS", "SP_INFORMED", "SP_SIZE_MEDIAN", "SP_SIZE_SIGMA", "SP_BAND",
    "SP_MAX_FRACTION", "N_SIM_PARAMS",
    "CORRUPT_NONE", "CORRUPT_POOL", "CORRUPT_RESERVE", "CORRUPT_AMOUNT", "CORRUPT_TOKEN",
    "simulate_flow",
]

AMOUNT_SCALE = 1_000_000       # micro-tokens per token
FEE_DENOM = 10_000             # fees in basis points
MAX_FEE_BPS = FEE_DENOM - 1    # a fee of 100 % would make every swap pay nothing
MAX_AMOUNT = 2**47 - 1         # amounts and reserves (see the module docstring)


# ------------------------------------------------------------------------ swap math
@kernel(inline="always")
def mul_div(a, b, d):
    """``floor(a * b / d)`` for ``0 <= a < 2**61``, ``0 <= b < 2**47``, ``0 < d < 2**62``
    and ``a < d`` (so the quotient is below ``b``): a float64 estimate, within one unit,
    corrected by the exact remainder ``a * b - q * d`` (``|r| < 2 d < 2**63``: exact in
    wrapping 64-bit arithmetic)."""
    q = np.int64(float(a) * float(b) / float(d))
    r = np.int64(np.uint64(a) * np.uint64(b) - np.uint64(q) * np.uint64(d))
    while r < 0:
        q -= 1
        r += d
    while r >= d:
        q += 1
        r -= d
    return q


@kernel
def swap_out(amount_in, reserve_in, reserve_out, fee_bps):
    """Output of paying ``amount_in`` into a pool holding ``reserve_in`` / ``reserve_out``
    with a fee of ``fee_bps`` (module docstring). 0 for ``amount_in == 0``; -1 when an
    input is out of range (negative, an empty reserve, above ``MAX_AMOUNT``, a fee outside
    0..``MAX_FEE_BPS``), so a caller never gets a wrong number."""
    if (amount_in < 0 or reserve_in <= 0 or reserve_out <= 0 or amount_in > MAX_AMOUNT
            or reserve_in > MAX_AMOUNT or reserve_out > MAX_AMOUNT or fee_bps < 0
            or fee_bps > MAX_FEE_BPS):
        return np.int64(-1)
    if amount_in == 0:
        return np.int64(0)
    effective = np.int64(amount_in) * (FEE_DENOM - np.int64(fee_bps))
    return mul_div(effective, np.int64(reserve_out), np.int64(reserve_in) * FEE_DENOM + effective)


@kernel
def quote_many(amount_in, reserve_in, reserve_out, fee_bps, out):
    """``out[i] = swap_out(amount_in[i], reserve_in[i], reserve_out[i], fee_bps[i])``."""
    for i in range(out.shape[0]):
        out[i] = swap_out(amount_in[i], reserve_in[i], reserve_out[i], fee_bps[i])
    return out.shape[0]


@kernel(inline="always")
def fee_amount(amount_in, fee_bps):
    """The part of ``amount_in`` the pool keeps as its fee (rounded down)."""
    return np.int64(amount_in) * np.int64(fee_bps) // FEE_DENOM


@kernel
def price_impact(amount_in, reserve_in, fee_bps):
    """The fraction of a trade's value lost to the curve alone (the fee apart): the execution
    price is ``(1 - fee) * (1 - impact)`` times the spot price ``reserve_out / reserve_in``,
    with ``impact = a / (reserve_in + a)``, ``a = amount_in * (1 - fee)``."""
    a = float(amount_in) * (FEE_DENOM - fee_bps) / FEE_DENOM
    return a / (float(reserve_in) + a)


# ------------------------------------------------------------------------ pool state
@kernel(inline="always")
def _reserves(pool, direction):
    """(reserve_in, reserve_out) of ``pool`` for a swap in ``direction``
    (0: token0 -> token1, 1: token1 -> token0)."""
    if direction == 0:
        return pool.reserve0, pool.reserve1
    return pool.reserve1, pool.reserve0


@kernel(inline="always")
def _set_reserves(pool, direction, reserve_in, reserve_out):
    if direction == 0:
        pool.reserve0 = reserve_in
        pool.reserve1 = reserve_out
    else:
        pool.reserve1 = reserve_in
        pool.reserve0 = reserve_out


@kernel
def pool_swap(pools, p, direction, amount_in):
    """The exchange's side: pay ``amount_in`` into pool ``p`` in ``direction`` and update its
    reserves, fees and swap count. Returns the amount out, or -1 (nothing changed) when the
    pool, the direction or the amount is invalid or the reserve paid into would pass
    ``MAX_AMOUNT``."""
    if p < 0 or p >= pools.shape[0] or (direction != 0 and direction != 1):
        return np.int64(-1)
    pool = pools[p]
    r_in, r_out = _reserves(pool, direction)
    if amount_in <= 0 or amount_in > MAX_AMOUNT - r_in:
        return np.int64(-1)
    out = swap_out(amount_in, r_in, r_out, pool.fee_bps)
    if out < 0:
        return out
    _set_reserves(pool, direction, r_in + amount_in, r_out - out)
    if direction == 0:
        pool.fees0 += fee_amount(amount_in, pool.fee_bps)
    else:
        pool.fees1 += fee_amount(amount_in, pool.fee_bps)
    pool.swaps += 1
    return out


# -------------------------------------------------------------------------- messages
@kernel
def apply_message(pools, m):
    """The consumer's side: apply one ``SWAP_MSG`` to the pool table; returns its ``SW_*``
    code (module docstring). Malformed messages change nothing."""
    kind = m.msg_type
    if kind != SWAP_SWAP and kind != SWAP_SYNC:
        return SW_BAD_TYPE
    p = m.pool
    if p < 0 or p >= pools.shape[0]:
        return SW_BAD_POOL
    pool = pools[p]
    r0 = m.reserve0
    r1 = m.reserve1
    if kind == SWAP_SWAP:
        if m.token_in == pool.token0 and m.token_out == pool.token1:
            direction = 0
        elif m.token_in == pool.token1 and m.token_out == pool.token0:
            direction = 1
        else:
            return SW_BAD_TOKEN
        a = m.amount_in
        if a <= 0 or m.amount_out < 0 or a > MAX_AMOUNT or m.amount_out > MAX_AMOUNT:
            return SW_BAD_AMOUNT
    if r0 <= 0 or r1 <= 0 or r0 > MAX_AMOUNT or r1 > MAX_AMOUNT:
        return SW_BAD_RESERVE
    if kind == SWAP_SYNC:
        pool.reserve0 = r0
        pool.reserve1 = r1
        pool.last_seq = m.seq
        return SW_OK
    if m.fee_bps != pool.fee_bps:
        return SW_BAD_FEE
    pool.last_seq = m.seq
    r_in, r_out = _reserves(pool, direction)
    out = swap_out(a, r_in, r_out, pool.fee_bps)   # -1 while our reserves are unknown (0)
    if direction == 0:
        pool.fees0 += fee_amount(a, pool.fee_bps)
        same = out == m.amount_out and r_in + a == r0 and r_out - out == r1
    else:
        pool.fees1 += fee_amount(a, pool.fee_bps)
        same = out == m.amount_out and r_in + a == r1 and r_out - out == r0
    pool.swaps += 1
    pool.reserve0 = r0
    pool.reserve1 = r1
    if out >= 0 and same:
        return SW_OK
    return SW_RESYNCED


@kernel
def apply_messages(pools, msgs, counts):
    """Apply every message of ``msgs`` in order; ``counts[code] += 1`` per ``SW_*`` code
    (``counts`` holds at least ``N_SWAP_CODES`` int64). Returns how many applied
    (``SW_OK`` or ``SW_RESYNCED``)."""
    applied = 0
    for i in range(msgs.shape[0]):
        code = apply_message(pools, msgs[i])
        counts[code] += 1
        if code == SW_OK or code == SW_RESYNCED:
            applied += 1
    return applied


# --------------------------------------------------------------------- simulated flow
# simulate_flow's float64 parameters
SP_START_NS = 0       # time of the first block, ns since the epoch
SP_BLOCK_NS = 1       # time between blocks (Ethereum: 12 s)
SP_INFORMED = 2       # probability that a swap is informed (pulls its pool to the market)
SP_SIZE_MEDIAN = 3    # a noise swap's median size, as a fraction of the reserve paid into
SP_SIZE_SIGMA = 4     # log-normal spread of noise sizes
SP_BAND = 5           # informed traders act once a pool is off the market by this log distance
SP_MAX_FRACTION = 6   # no swap pays in more than this fraction of the reserve
N_SIM_PARAMS = 7

# how simulate_flow corrupts a message it emits (the swap itself happened)
CORRUPT_NONE = 0
CORRUPT_POOL = 1      # pool id past the table
CORRUPT_RESERVE = 2   # reserve0 after = 0
CORRUPT_AMOUNT = 3    # amount_in negative
CORRUPT_TOKEN = 4     # token_out = token_in


@kernel
def simulate_flow(pools, log_usd, events_per_block, pick, u_kind, u_dir, z_size, corrupt,
                  params, out):
    """Simulate swaps on ``pools`` (updated in place) and write the stream to ``out``
    (``SWAP_MSG``, ``pools.shape[0] + pick.shape[0]`` long): first one ``SWAP_SYNC`` per pool
    (its reserves at the start), then one ``SWAP_SWAP`` per event ``i`` on pool ``pick[i]``.

    ``log_usd[b, t]`` is the log market price (USD) of token ``t`` during block ``b``
    (``events_per_block`` swaps per block). With probability ``SP_INFORMED`` (``u_kind``) a
    swap is *informed*: if its pool's price is off the market by more than ``SP_BAND`` it
    trades the pool back to the market price (an arbitrageur against a centralised
    exchange). Otherwise it is *noise*: a direction from ``u_dir`` and a log-normal size
    (``SP_SIZE_MEDIAN`` x the reserve paid into, spread ``SP_SIZE_SIGMA``, normals ``z_size``).
    Every swap pays in at most ``SP_MAX_FRACTION`` of the reserve. ``corrupt[i]``
    (``CORRUPT_*``) damages the emitted message after the swap happened, as a faulty feed
    would. The caller validates every index (``pick``, tokens) and shape. Returns the number
    of messages written."""
    n_pools = pools.shape[0]
    start = np.int64(params[SP_START_NS])
    block_ns = np.int64(params[SP_BLOCK_NS])
    step_ns = block_ns // events_per_block
    informed = params[SP_INFORMED]
    median = params[SP_SIZE_MEDIAN]
    sigma = params[SP_SIZE_SIGMA]
    band = params[SP_BAND]
    max_fraction = params[SP_MAX_FRACTION]
    for p in range(n_pools):
        m = out[p]
        m.ts = start
        m.seq = p
        m.amount_in = 0
        m.amount_out = 0
        m.reserve0 = pools[p].reserve0
        m.reserve1 = pools[p].reserve1
        m.pool = p
        m.token_in = pools[p].token0
        m.token_out = pools[p].token1
        m.fee_bps = pools[p].fee_bps
        m.msg_type = SWAP_SYNC
        m.flags = 0
    for i in range(pick.shape[0]):
        block = i // events_per_block
        p = pick[i]
        pool = pools[p]
        t0 = pool.token0
        t1 = pool.token1
        market = log_usd[block, t0] - log_usd[block, t1]     # log price of token0 in token1
        here = np.log(float(pool.reserve1)) - np.log(float(pool.reserve0))
        g = (FEE_DENOM - pool.fee_bps) / FEE_DENOM
        k = float(pool.reserve0) * float(pool.reserve1)
        if u_kind[i] < informed and abs(here - market) > band:
            if here < market:   # token0 cheap here: buy it, paying token1 in
                direction = 1
                amount = (np.sqrt(k * np.exp(market)) - float(pool.reserve1)) / g
            else:
                direction = 0
                amount = (np.sqrt(k / np.exp(market)) - float(pool.reserve0)) / g
        else:
            direction = 0 if u_dir[i] < 0.5 else 1
            r_in = pool.reserve0 if direction == 0 else pool.reserve1
            amount = float(r_in) * median * np.exp(sigma * z_size[i])
        r_in = pool.reserve0 if direction == 0 else pool.reserve1
        amount = min(amount, max_fraction * float(r_in), float(MAX_AMOUNT - r_in))
        a = np.int64(max(amount, 1.0))
        if a > MAX_AMOUNT - r_in:       # the pool is full on this side: trade the other way
            direction = 1 - direction
            r_in = pool.reserve0 if direction == 0 else pool.reserve1
            a = np.int64(max(min(float(a), max_fraction * float(r_in)), 1.0))
        amount_out = pool_swap(pools, p, direction, a)
        m = out[n_pools + i]
        m.ts = start + block * block_ns + (i % events_per_block) * step_ns
        m.seq = n_pools + i
        m.amount_in = a
        m.amount_out = amount_out
        m.reserve0 = pool.reserve0
        m.reserve1 = pool.reserve1
        m.pool = p
        m.token_in = t0 if direction == 0 else t1
        m.token_out = t1 if direction == 0 else t0
        m.fee_bps = pool.fee_bps
        m.msg_type = SWAP_SWAP
        m.flags = 0
        if amount_out < 0:   # no room for any swap (reserves at MAX_AMOUNT): a snapshot instead
            m.amount_in = 0
            m.amount_out = 0
            m.token_in = t0
            m.token_out = t1
            m.msg_type = SWAP_SYNC
        c = corrupt[i]
        if c == CORRUPT_POOL:
            m.pool = n_pools + 7
        elif c == CORRUPT_RESERVE:
            m.reserve0 = 0
        elif c == CORRUPT_AMOUNT:
            m.amount_in = -a
        elif c == CORRUPT_TOKEN:
            m.token_out = m.token_in
    return n_pools + pick.shape[0]
