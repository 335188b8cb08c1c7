"""Checkers of notebook 17-binary-messages-and-defi-arbitrage."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

MAX = 2**47 - 1   # kernels.amm.MAX_AMOUNT (kept literal: the module loads without the kernels)


def _fmt(units: int) -> str:
    return f"{units:,}"


def _x(units: int) -> str:
    """Micro-tokens of X as tokens: 4,038,539,469 -> '4,038.539469 X'."""
    return f"{units / 10**6:,.6f} X"


def _swap_cases():
    rng = np.random.default_rng(1717)
    cases = [(0, 10**12, 10**12, 30),             # nothing in, nothing out
             (1, 10**12, 10**12, 30),             # one micro-token into a deep pool: 0 out
             (10**6, 2_000 * 10**6, 6_000_000 * 10**6, 30),   # 1 WETH into WETH/USDC
             (10**9, 10**9, 10**9, 30),           # as much again as the reserve
             (123_456_789, 987_654_321, 55_555, 0),      # no fee
             (5 * 10**8, 10**9, 3 * 10**9, 9_999),       # a 99.99 % fee
             (MAX, MAX, MAX, 30), (MAX, 1, MAX, 5), (1, MAX, 1, 30), (7, 3, 11, 100)]
    for _ in range(400):
        r_in, r_out = (int(x) for x in rng.integers(1, MAX, 2))
        cases.append((int(rng.integers(0, MAX)), r_in, r_out, int(rng.choice([0, 1, 5, 30, 100, 3_000]))))
    for _ in range(200):
        cases.append(tuple(int(x) for x in rng.integers(1, 1_000, 3)) + (int(rng.integers(0, 10_000)),))
    return cases


@exercise("17.1", hint="only amount_in * (10_000 - fee_bps) / 10_000 counts for the curve; out = "
                       "a * g * reserve_out // (reserve_in * 10_000 + a * g) with g = 10_000 - fee_bps, in "
                       "Python integers (// rounds down)")
def check_swap_out(swap_out) -> Verdict:
    """Exercise 17.1: ``swap_out(amount_in, reserve_in, reserve_out, fee_bps)`` returns what a
    constant-product pool pays out, in integer micro-tokens, as the pool itself computes it
    (``kernels.amm.swap_out``, Uniswap V2's formula: the fee is taken from the amount paid in,
    the output is rounded down). Tried on 600 cases against the kernel, from one micro-token
    to reserves of 140 million tokens, fees from 0 to 99.99 %."""
    from workbench.defi import quote

    cases = _swap_cases()
    a, ri, ro, fee = (np.array(c, dtype=np.int64) for c in zip(*cases))
    expected = quote(a, ri, ro, fee).tolist()
    for (x, r_in, r_out, f), want in zip(cases, expected):
        got, why = _attempt(swap_out, x, r_in, r_out, f)
        where = f"swap_out({_fmt(x)}, {_fmt(r_in)}, {_fmt(r_out)}, fee_bps={f})"
        if why:
            return _verdict(False, f"{where}: {why}")
        if isinstance(got, bool) or not isinstance(got, (int, np.integer, float, np.floating)):
            return _verdict(False, f"{where} returned {got!r}: return a number of micro-tokens")
        if isinstance(got, (float, np.floating)):
            if not math.isfinite(got) or got != int(got):
                return _verdict(False, f"{where} returned {got!r}: the pool pays whole micro-tokens, "
                                       "rounded down; use integers (//), not floats")
            got = int(got)
        got = int(got)
        if got == want:
            continue
        g = 10_000 - f
        no_fee = x * r_out // (r_in + x) if x else 0
        fee_after = (x * r_out * g) // ((r_in + x) * 10_000) if x else 0
        if got == want + 1:
            return _verdict(False, f"{where}: you returned {_fmt(got)}, the pool pays {_fmt(want)}: "
                                   "round down (a pool never pays the rounding), and compute in "
                                   "integers: floats lose the last digits of large amounts")
        if got == no_fee and f:
            return _verdict(False, f"{where}: you returned {_fmt(got)}, the pool pays {_fmt(want)}: "
                                   "you left out the fee")
        if got == fee_after:
            return _verdict(False, f"{where}: you returned {_fmt(got)}, the pool pays {_fmt(want)}: "
                                   "the fee comes off the amount paid in, before the curve, not "
                                   "off the output")
        if abs(got - want) <= max(2, want * 1e-12):
            return _verdict(False, f"{where}: you returned {_fmt(got)}, the pool pays {_fmt(want)}: "
                                   "close, but not exact; compute in Python integers (//)")
        return _verdict(False, f"{where}: you returned {_fmt(got)}, the pool pays {_fmt(want)}")
    return _verdict(True, f"the pool's exact output on all {len(cases)} cases, edge cases included")


def _two_pools(x1, y1, x2, y2, fee_bps):
    """The kernel's answer for X -> Y on pool 1, Y -> X on pool 2: (size, profit), exact."""
    from kernels import arbitrage as karb
    from kernels import records as R

    pools = np.zeros(2, dtype=R.POOL)
    pools["token0"], pools["token1"], pools["fee_bps"] = 0, 1, fee_bps
    pools["reserve0"], pools["reserve1"] = (x1, x2), (y1, y2)
    cycle = np.zeros(1, dtype=R.CYCLE)
    cycle["pool"], cycle["dir"], cycle["hops"] = [(0, 1, -1)], [(0, 1, 0)], 2
    size, back, _ = karb.cycle_quote(pools, cycle, 0)
    return int(size), int(back) - int(size)


def _profit(size, x1, y1, x2, y2, fee_bps):
    from workbench.defi import quote

    if size <= 0:
        return 0
    if size > MAX - x1:
        return None
    y = quote(size, x1, y1, fee_bps)
    if y > MAX - y2:
        return None
    return quote(y, y2, x2, fee_bps) - size


@exercise("17.2", hint="each hop is a*x/(b + c*x); two of them compose to A*x/(B + C*x) with A = g*g*y1*x2, "
                       "B = x1*y2, C = g*y2 + g*g*y1 (g = 1 - fee); the profit A*x/(B+C*x) - x peaks at "
                       "x = (sqrt(A*B) - B) / C; return 0 when that is not positive")
def check_best_size(best_size) -> Verdict:
    """Exercise 17.2: ``best_size(x1, y1, x2, y2, fee_bps)`` returns the amount of X (micro-
    tokens) to pay into pool 1 (reserves ``x1`` X, ``y1`` Y) for Y, which then goes into pool 2
    (``x2`` X, ``y2`` Y) for X, that leaves the most X: 0 when no size makes a profit. The
    profit of the answer is computed with the pools' exact swaps and compared with the best
    one (the kernel's closed form), on pools from a 0.3 % to a 30 % price gap, with and
    without fees, and in the direction that loses."""
    m = 10**6
    cases = [  # (x1, y1, x2, y2, fee_bps): X = USDC, Y = WETH (micro-tokens)
        (6_000_000 * m, 2_000 * m, 3_000_000 * m, 990 * m, 30),     # pool 2 pays 1 % more for Y
        (6_000_000 * m, 2_000 * m, 3_000_000 * m, 999 * m, 30),     # a 0.1 % gap: below the fees
        (6_000_000 * m, 2_000 * m, 3_000_000 * m, 999 * m, 0),      # ... but without fees
        (6_000_000 * m, 2_000 * m, 3_000_000 * m, 1_010 * m, 30),   # the other direction wins
        (1_000 * m, 1_000 * m, 1_000 * m, 1_000 * m, 30),           # equal prices
        (50_000 * m, 20 * m, 400_000 * m, 120 * m, 100),            # a 30 % gap, 1 % fees
        (2_000_000 * m, 1_000_000 * m, 20_000 * m, 9_500 * m, 5),   # a deep and a shallow pool
        (1_234_567, 89_012, 3_456_789, 234_567, 30),                # tiny pools
    ]
    for x1, y1, x2, y2, fee in cases:
        where = f"best_size({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}, fee_bps={fee})"
        best, best_profit = _two_pools(x1, y1, x2, y2, fee)
        got, why = _attempt(best_size, x1, y1, x2, y2, fee)
        if why:
            return _verdict(False, f"{where}: {why}")
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)) \
                or not math.isfinite(got):
            return _verdict(False, f"{where} returned {got!r}: return a size in micro-tokens of X")
        if got < 0:
            return _verdict(False, f"{where} returned {got:,.0f}: a size is never negative; return 0 "
                                   "when no trade pays")
        size = int(got)
        profit = _profit(size, x1, y1, x2, y2, fee)
        if profit is None:
            return _verdict(False, f"{where} returned {size:,}: more than the pools can take")
        if best_profit <= 0:
            if size > 0 and profit <= 0:
                return _verdict(False, f"{where}: no size makes a profit here (the gap does not pay "
                                       f"the fees), but you trade {_x(size)}, which loses "
                                       f"{_x(-profit)}; return 0")
            continue
        tolerance = 2 + x2 // max(y2, 1)   # rounding: a micro-token of Y is worth x2/y2 of X
        if profit >= best_profit - tolerance:
            continue
        if size == 0:
            return _verdict(False, f"{where}: you returned 0, but paying {_x(best)} in earns "
                                   f"{_x(best_profit)}")
        return _verdict(False, f"{where}: your size, {_x(size)}, earns {_x(profit)}; the best "
                               f"size, {_x(best)}, earns {_x(best_profit)}")
    return _verdict(True, "the most profitable size on every pair of pools, and 0 where the gap "
                          "does not pay the fees")


def _triangle_markets():
    from workbench.defi import market_from_pools

    rng = np.random.default_rng(17)
    usd = {"USDC": 1.0, "WETH": 3_000.0, "WBTC": 60_000.0, "LINK": 15.0}
    markets = []
    for fees, skew in (((30, 30), 0.02), ((5, 30), 0.01), ((0, 0), 0.004), ((100, 100), 0.02),
                       ((30, 5), 0.03)):
        while True:
            rows = []
            for dex, fee in zip(("Uniswap", "Sushiswap"), fees):
                for i, a in enumerate(usd):
                    for b in list(usd)[i + 1:]:
                        depth = float(rng.uniform(2e5, 5e6))
                        move = float(np.exp(rng.uniform(-skew, skew)))
                        rows.append((dex, b, a, depth / usd[b], depth / usd[a] * move, fee))
            market = market_from_pools(usd, rows)
            frame = market.pools_frame()
            log_rate = _log_rates(frame)
            edges = [sum(log_rate[h] for h in c) for c in _triangles(frame)]
            if min(abs(e) for e in edges) > 1e-6:   # nothing on the knife's edge
                markets.append(market)
                break
    return markets


def _log_rates(frame):
    out = {}
    for name, r0, r1, fee in frame.select("pool", "reserve0", "reserve1", "fee_bps").rows():
        g = math.log(1 - fee / 10_000)
        out[(name, 0)] = g + math.log(r1) - math.log(r0)
        out[(name, 1)] = g + math.log(r0) - math.log(r1)
    return out


def _triangles(frame):
    """Every directed triangle of the frame's pools, as ((pool, direction), ...)."""
    rows = frame.select("pool", "token0", "token1").rows()
    out = []
    for p in rows:
        for q in rows:
            for r in rows:
                if len({p[0], q[0], r[0]}) < 3:
                    continue
                for d0 in (0, 1):
                    start, token = (p[1], p[2]) if d0 == 0 else (p[2], p[1])
                    hops = [(p[0], d0)]
                    for pool in (q, r):
                        if token == pool[1]:
                            hops.append((pool[0], 0))
                            token = pool[2]
                        elif token == pool[2]:
                            hops.append((pool[0], 1))
                            token = pool[1]
                        else:
                            break
                    tokens = {p[1], p[2], q[1], q[2], r[1], r[2]}
                    if len(hops) == 3 and token == start and len(tokens) == 3:
                        out.append(tuple(hops))
    return out


def _canonical(names) -> tuple:
    names = tuple(names)
    k = names.index(min(names))
    return names[k:] + names[:k]


@exercise("17.3", hint="weight each direction of a pool log(1 - fee) + log(reserve_out) - log(reserve_in); "
                       "for every three pools that chain A -> B -> C -> A, keep the triangle when its "
                       "three weights add up to more than 0 (both directions of each triangle)")
def check_profitable_triangles(profitable_triangles) -> Verdict:
    """Exercise 17.3: ``profitable_triangles(pools)`` takes a frame of pools (``pool``,
    ``token0``, ``token1``, ``reserve0``, ``reserve1``, ``fee_bps``, as ``Market.pools_frame()``
    gives) and returns every triangular arbitrage A -> B -> C -> A whose log rates, fees
    included, add up to more than 0: each as a tuple of the three pool names in trade order
    (any rotation). Compared with the detector's cycles (``workbench.defi.profitable_cycles``)
    on five markets of four tokens on two venues: fees of 0 to 1 %, gaps of 0.4 to 3 %."""
    from workbench.defi import profitable_cycles

    for i, market in enumerate(_triangle_markets()):
        frame = market.pools_frame()
        expected = {_canonical(p.split(" → ")) for p in profitable_cycles(market, hops=3)["pools"]}
        fees = sorted(set(frame["fee_bps"].to_list()))
        where = f"market {i + 1} (fees {', '.join(f'{f / 100:g} %' for f in fees)})"
        got, why = _attempt(profitable_triangles, frame.clone())
        if why:
            return _verdict(False, f"{where}: {why}")
        if got is None:
            return _verdict(False, f"{where}: your function returned None; return a list of tuples "
                                   "of pool names")
        try:
            found = {_canonical(str(n) for n in t) for t in got}
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return tuples of three pool names, got {got!r:.80}")
        if any(len(t) != 3 for t in found):
            return _verdict(False, f"{where}: every triangle has three pools, got "
                                   f"{next(t for t in found if len(t) != 3)}")
        unknown = {n for t in found for n in t} - set(frame["pool"])
        if unknown:
            return _verdict(False, f"{where}: {sorted(unknown)[:3]} are not pool names of the frame")
        if found == expected:
            continue
        missing, extra = expected - found, found - expected
        log_rate = _log_rates(frame)
        if extra:
            t = sorted(extra)[0]
            reverse = _canonical(t[::-1])
            if reverse in expected and reverse not in found:
                return _verdict(False, f"{where}: {' → '.join(t)} is the losing direction; its "
                                       f"reverse, {' → '.join(reverse)}, is the arbitrage")
            return _verdict(False, f"{where}: {' → '.join(t)} is not profitable once each pool's "
                                   "fee is paid (its weights add up to less than 0)")
        t = sorted(missing)[0]
        edge = next(sum(log_rate[h] for h in c) for c in _triangles(frame)
                    if _canonical(h[0] for h in c) == t)
        return _verdict(False, f"{where}: you missed {' → '.join(t)} (its log rates add up to "
                               f"{edge * 1e4:+.1f} bp); {len(missing)} missing in all. Both "
                               "directions of every triangle count")
    return _verdict(True, "every profitable triangle on all five markets, in its trading direction, "
                          "and none that the fees eat")
