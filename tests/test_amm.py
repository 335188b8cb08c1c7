"""Constant-product pools and arbitrage (kernels.amm, kernels.arbitrage, workbench.defi):
the swap math against exact rational arithmetic (fractions), k never falling, the detector
against a brute-force search of every cycle in plain Python, the closed-form optimal size
against its neighbours, the 64-byte message, malformed messages counted, and the stream
through the SPSC ring equal to the stream applied directly."""
from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb, floor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import amm as kamm
from kernels import arbitrage as karb
from kernels import records as R
from workbench import defi

MAX = kamm.MAX_AMOUNT
DENOM = kamm.FEE_DENOM


# ------------------------------------------------------------- plain-Python reference
def ref_out(a: int, r_in: int, r_out: int, fee: int) -> int:
    """floor of the constant-product output, in exact rationals."""
    eff = Fraction(a * (DENOM - fee), DENOM)
    return floor(eff * r_out / (r_in + eff))


def ref_chain(hops, amount: int) -> int:
    """``hops``: [(r_in, r_out, fee)]: the exact amount back after the swaps (-1: a hop fails).
    Python's integers (the same floor as ``ref_out``'s rationals, checked below) for speed."""
    for r_in, r_out, fee in hops:
        if amount > MAX - r_in:
            return -1
        eff = amount * (DENOM - fee)
        amount = eff * r_out // (r_in * DENOM + eff)
    return amount


def ref_best(hops) -> tuple[int, int]:
    """(size, profit) maximising ``ref_chain(hops, x) - x`` over integers: a ternary search
    on the concave real profit, then a scan around it (rounding makes the integers wobble)."""
    def profit(x):
        back = ref_chain(hops, x)
        return -10**30 if back < 0 else back - x

    lo, hi = 0, min(MAX - hops[0][0], 4 * hops[0][0])
    while hi - lo > 40:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if profit(m1) < profit(m2):
            lo = m1
        else:
            hi = m2
    return max(((x, profit(x)) for x in range(max(lo - 40, 0), hi + 41)), key=lambda t: t[1])


def wobble(hops) -> float:
    """How far the integer profit may wobble between neighbouring sizes: each hop but the
    last rounds its output down by under one unit of an intermediate token, worth the rest
    of the cycle's rate in start-token units."""
    total = 2.0
    for k in range(len(hops) - 1):
        total += 1.01 * np.prod([r_out / r_in for r_in, r_out, _ in hops[k + 1:]])
    return total


def ref_cycles(token0, token1):
    """Every simple cycle of 2 or 3 distinct pools, both directions, as ``(start,
    ((pool, dir), ...))`` with ``start`` the smallest token: a brute-force search over pool
    sequences, independent of ``build_cycles``."""
    n = len(token0)
    found = set()
    for length in (2, 3):
        for seq in itertools.permutations(range(n), length):
            for start in {token0[seq[0]], token1[seq[0]]}:
                token, hops, seen = start, [], [start]
                ok = True
                for p in seq:
                    if token == token0[p]:
                        hops.append((p, 0))
                        token = token1[p]
                    elif token == token1[p]:
                        hops.append((p, 1))
                        token = token0[p]
                    else:
                        ok = False
                        break
                    seen.append(token)
                if ok and token == start and len(set(seen[:-1])) == length and start == min(seen):
                    found.add((start, tuple(hops)))
    return found


def hops_of(pools, key):
    out = []
    for p, d in key[1]:
        r0, r1, fee = int(pools[p]["reserve0"]), int(pools[p]["reserve1"]), int(pools[p]["fee_bps"])
        out.append((r0, r1, fee) if d == 0 else (r1, r0, fee))
    return out


def cycle_key(cycle):
    return (int(cycle["start"]), tuple((int(cycle["pool"][k]), int(cycle["dir"][k]))
                                       for k in range(int(cycle["hops"]))))


def sync(pools):
    m = np.zeros(pools.shape[0], dtype=R.SWAP_MSG)
    m["seq"] = np.arange(pools.shape[0])
    m["pool"] = np.arange(pools.shape[0])
    m["reserve0"], m["reserve1"] = pools["reserve0"], pools["reserve1"]
    m["msg_type"] = R.SWAP_SYNC
    return m


def consumer(market):
    pools = market.consumer_pools()
    log_rate = karb.new_log_rate(market.n_pools)
    karb.init_log_rate(pools, log_rate)
    return pools, log_rate, karb.new_counters(), karb.new_opportunities(10_000)


def run(market, state, msgs, detect, min_usd=0.0):
    pools, log_rate, counters, opps = state
    karb.process_messages(msgs, 0, msgs.shape[0], pools, log_rate, *market.graph(),
                          market.token_usd, min_usd, opps, counters, detect)


@pytest.fixture(scope="module")
def market():
    return defi.make_market()


@pytest.fixture(scope="module")
def stream(market):
    return defi.simulate(market, 20_000, seed=3, malformed=0.003)


# ---------------------------------------------------------------------------- records
def test_swap_message_is_one_aligned_cache_line():
    assert R.SWAP_MSG.itemsize == 64 and R.POOL.itemsize == 64 and R.ARB_OPP.itemsize == 64
    for dtype in (R.SWAP_MSG, R.POOL, R.ARB_OPP):
        for name in dtype.names:
            sub, offset = dtype.fields[name][:2]
            assert offset % sub.base.alignment == 0, (dtype, name, offset)
    layout = defi.message_layout()
    assert layout["bytes"].sum() == 64 and layout["field"].to_list() == list(R.SWAP_MSG.names)


def test_encode_decode_round_trip_without_a_copy(stream):
    blob = defi.encode(stream.messages)
    assert len(blob) == 64 * stream.messages.shape[0]
    view = defi.decode(blob)
    assert np.array_equal(view, stream.messages) and not view.flags.writeable
    with pytest.raises(ValueError, match="data: 65 bytes"):
        defi.decode(blob[:65])
    with pytest.raises(ValueError, match="messages must be"):
        defi.encode(np.zeros(3, dtype=R.MESSAGE))


# -------------------------------------------------------------------------- swap math
EDGE_CASES = [(1, 1, 1, 0), (1, MAX, MAX, 0), (MAX, 1, MAX, 0), (MAX, MAX, MAX, 9_999),
              (MAX, MAX, 1, 30), (1, 1, MAX, 9_999), (10**6, 10**6, 10**6, 30), (0, 5, 5, 30),
              (MAX, 3, MAX - 1, 1), (123_456_789, MAX - 7, 99_999, 5_000)]


def check_cases(cases):
    a, ri, ro, fee = (np.array(c, dtype=np.int64) for c in zip(*cases))
    got = defi.quote(a, ri, ro, fee)
    for (x, r_in, r_out, f), out in zip(cases, got.tolist()):
        assert out == ref_out(x, r_in, r_out, f), (x, r_in, r_out, f)
        if x <= MAX - r_in:
            assert out == ref_chain([(r_in, r_out, f)], x)
        assert 0 <= out < r_out
        assert (r_in + x) * (r_out - out) >= r_in * r_out          # k never decreases
        if x:
            assert out <= ref_out(x, r_in, r_out, 0)                  # a fee never pays more


def test_swap_output_edge_cases_match_exact_rationals():
    check_cases(EDGE_CASES)


amount = st.integers(1, MAX)
case = st.tuples(st.integers(0, MAX), amount, amount, st.integers(0, kamm.MAX_FEE_BPS))
small = st.tuples(st.integers(0, 10**4), st.integers(1, 10**4), st.integers(1, 10**4),
                  st.sampled_from([0, 1, 5, 30, 100, 9_999]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(case, small), min_size=1, max_size=60))
def test_swap_output_matches_exact_rationals(cases):
    check_cases(cases)


def test_out_of_range_inputs_return_minus_one_or_raise():
    bad = [(-1, 10, 10, 30), (5, 0, 10, 30), (5, 10, 0, 30), (MAX + 1, 10, 10, 30),
           (5, MAX + 1, 10, 30), (5, 10, 10, -1), (5, 10, 10, DENOM)]
    a, ri, ro, fee = (np.array(c, dtype=np.int64) for c in zip(*bad))
    out = np.zeros(len(bad), dtype=np.int64)
    kamm.quote_many(a, ri, ro, fee, out)
    assert (out == -1).all()
    with pytest.raises(ValueError, match="reserve_in=0"):
        defi.quote(5, 0, 10, 30)
    with pytest.raises(ValueError, match="fee_bps=10000"):
        defi.quote(5, 10, 10, DENOM)
    with pytest.raises(ValueError, match="amount_in must be integers"):
        defi.quote(1.5, 10, 10, 30)


def test_pool_swaps_keep_k_and_account_fees():
    pools = np.zeros(1, dtype=R.POOL)
    pools[0]["reserve0"], pools[0]["reserve1"], pools[0]["fee_bps"] = 5 * 10**12, 7 * 10**11, 30
    r, fees = [5 * 10**12, 7 * 10**11], [0, 0]
    rng = np.random.default_rng(5)
    for _ in range(300):
        d = int(rng.integers(2))
        a = int(rng.integers(1, r[d] // 20))
        k = r[0] * r[1]
        out = kamm.pool_swap(pools, 0, d, a)
        assert out == ref_out(a, r[d], r[1 - d], 30)
        r[d] += a
        r[1 - d] -= out
        fees[d] += a * 30 // DENOM
        assert r[0] * r[1] >= k
    assert [int(pools[0]["reserve0"]), int(pools[0]["reserve1"])] == r
    assert [int(pools[0]["fees0"]), int(pools[0]["fees1"])] == fees and pools[0]["swaps"] == 300
    assert kamm.pool_swap(pools, 1, 0, 10) == -1 and kamm.pool_swap(pools, 0, 2, 10) == -1
    assert kamm.pool_swap(pools, 0, 0, MAX) == -1 and int(pools[0]["reserve0"]) == r[0]


def test_price_impact_table_splits_the_cost():
    t = defi.price_impact_table(1_000.0, 3_000_000.0, [5, 30])
    expected = 100 * (1 - (1 - t["fee_pct"] / 100) * (1 - t["impact_pct"] / 100))
    assert np.allclose(t["total_cost_pct"], expected, atol=1e-3)
    for fee in (5, 30):
        part = t.filter(t["fee_bps"] == fee)
        assert part["impact_pct"].is_sorted() and part["total_cost_pct"].is_sorted()
        assert abs(part["spot_price"][0] - 3_000.0) < 1e-9


# ----------------------------------------------------------------------------- cycles
def test_build_cycles_finds_every_cycle_once():
    tokens = {f"T{i}": 1.0 for i in range(4)}
    rows = [(dex, a, b, 1_000.0, 1_000.0, 30) for dex in ("X", "Y", "Z")
            for a, b in itertools.combinations(tokens, 2)]
    mk = defi.market_from_pools(tokens, rows)
    pairs, dexes = comb(4, 2), 3
    assert (mk.cycles["hops"] == 2).sum() == pairs * dexes * (dexes - 1)
    assert (mk.cycles["hops"] == 3).sum() == comb(4, 3) * dexes**3 * 2
    keys = [cycle_key(c) for c in mk.cycles]
    assert set(keys) == ref_cycles(mk.pools["token0"], mk.pools["token1"]) and len(set(keys)) == len(keys)
    for p in range(mk.n_pools):
        through = {int(c) for c in mk.pool_cycles[mk.pool_ptr[p]:mk.pool_ptr[p + 1]]}
        assert through == {i for i, c in enumerate(mk.cycles) if p in c["pool"][:c["hops"]]}
    for j, c in enumerate(mk.pool_cycles):   # the log-rate slots the detector adds up
        hops = cycle_key(mk.cycles[c])[1]
        expected = [2 * q + d for q, d in hops] + [2 * mk.n_pools] * (3 - len(hops))
        assert mk.pool_edges[j].tolist() == expected


def random_market(seed):
    """3-4 tokens on two venues, some pairs missing, every pool mispriced by up to 3 %."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 5))
    usd = {f"T{i}": float(rng.uniform(0.5, 50)) for i in range(n)}
    rows = []
    for dex, fee in (("X", 30), ("Y", int(rng.choice([5, 30, 100])))):
        for a, b in itertools.combinations(usd, 2):
            if rng.random() < 0.8:
                depth = float(rng.uniform(2e3, 2e5))
                skew = float(np.exp(rng.uniform(-0.03, 0.03)))
                rows.append((dex, a, b, depth / usd[a], depth / usd[b] * skew, fee))
    return defi.market_from_pools(usd, rows)


@pytest.mark.parametrize("seed", range(4))
def test_detector_finds_what_brute_force_finds(seed):
    mk = random_market(seed)
    truth = ref_cycles(mk.pools["token0"], mk.pools["token1"])
    index = {cycle_key(c): i for i, c in enumerate(mk.cycles)}
    assert set(index) == truth
    rng = np.random.default_rng(100 + seed)
    recorded = 0
    for p in range(mk.n_pools):
        state = consumer(mk)
        run(mk, state, sync(mk.pools), False)
        exchange = mk.pools.copy()
        d = int(rng.integers(2))
        a = int(exchange[p]["reserve0" if d == 0 else "reserve1"] // int(rng.integers(20, 200)))
        out = kamm.pool_swap(exchange, p, d, a)
        swap = np.zeros(1, dtype=R.SWAP_MSG)
        swap[0]["seq"], swap[0]["pool"], swap[0]["msg_type"] = mk.n_pools, p, R.SWAP_SWAP
        swap[0]["token_in"] = exchange[p]["token0" if d == 0 else "token1"]
        swap[0]["token_out"] = exchange[p]["token1" if d == 0 else "token0"]
        swap[0]["amount_in"], swap[0]["amount_out"], swap[0]["fee_bps"] = a, out, exchange[p]["fee_bps"]
        swap[0]["reserve0"], swap[0]["reserve1"] = exchange[p]["reserve0"], exchange[p]["reserve1"]
        run(mk, state, swap, True)
        pools, _, counters, opps = state
        assert counters[R.SW_OK] == mk.n_pools + 1
        assert np.array_equal(pools[["reserve0", "reserve1"]], exchange[["reserve0", "reserve1"]])
        found = {cycle_key(mk.cycles[o["cycle"]]): o for o in opps[:counters[karb.CT_RECORDED]]}
        best = {key: ref_best(hops_of(exchange, key)) for key in truth if any(q == p for q, _ in key[1])}
        assert {k for k, (_, profit) in best.items() if profit >= 3} <= set(found)
        assert set(found) <= {k for k, (_, profit) in best.items() if profit >= 1}
        for key, o in found.items():
            assert o["pool"] == p and o["seq"] == mk.n_pools and o["start"] == key[0]
            assert o["profit"] == ref_chain(hops_of(exchange, key), int(o["amount_in"])) - o["amount_in"]
            assert o["profit"] >= best[key][1] - wobble(hops_of(exchange, key))
            assert o["edge"] > 0
        recorded += len(found)
    assert recorded >= 3        # the mispriced pools do leave arbitrage to find


def test_optimal_size_beats_its_neighbours():
    rng = np.random.default_rng(9)
    for _ in range(25):
        x_usd, fee1, fee2 = rng.uniform(1e3, 3e5), int(rng.choice([5, 30])), int(rng.choice([5, 30, 100]))
        price = rng.uniform(0.01, 1.0)   # Y worth less than X: a unit of Y rounded away costs < 1 X
        skew = float(np.exp(rng.uniform(0.002, 0.05)))
        rows = [("A", "X", "Y", x_usd, x_usd / price, fee1),
                ("B", "X", "Y", x_usd * rng.uniform(0.2, 5), x_usd / price * skew, fee2)]
        mk = defi.market_from_pools({"X": 1.0, "Y": price}, rows)
        for c in range(mk.cycles.shape[0]):
            q = defi.quote_cycle(mk, c)
            hops = hops_of(mk.pools, cycle_key(mk.cycles[c]))
            if q["amount_in"] == 0:        # not profitable at the margin: no size profits
                assert q["edge"] <= 0 and ref_best(hops)[1] <= 0
                continue
            x = q["amount_in"]
            assert q["profit"] == ref_chain(hops, x) - x > 0
            for factor in (0.8, 0.9, 0.99, 1.01, 1.1, 1.25):
                y = int(x * factor)
                neighbour = ref_chain(hops, y) - y
                assert q["profit"] >= neighbour - 2, (factor, q)
                if q["profit"] * (1 - factor) ** 2 > 10:   # the curvature beats the rounding
                    assert q["profit"] > neighbour, (factor, q)
            assert q["profit"] >= max(ref_chain(hops, y) - y for y in range(x - 5, x + 6)) - 2
            assert q["profit"] >= ref_best(hops)[1] - 2


# --------------------------------------------------------------------------- streams
def test_malformed_messages_are_counted_and_change_nothing(market):
    state = consumer(market)
    run(market, state, sync(market.pools), False)
    before = state[0].copy()
    good = np.zeros(1, dtype=R.SWAP_MSG)[0]
    p = 0
    good["pool"], good["msg_type"], good["fee_bps"] = p, R.SWAP_SWAP, market.pools[p]["fee_bps"]
    good["token_in"], good["token_out"] = market.pools[p]["token0"], market.pools[p]["token1"]
    good["amount_in"] = 10**6
    exchange = market.pools.copy()
    good["amount_out"] = kamm.pool_swap(exchange, p, 0, 10**6)
    good["reserve0"], good["reserve1"] = exchange[p]["reserve0"], exchange[p]["reserve1"]
    faults = {R.SW_BAD_TYPE: [("msg_type", 0), ("msg_type", 9)],
              R.SW_BAD_POOL: [("pool", -1), ("pool", market.n_pools), ("pool", 2**31 - 1)],
              R.SW_BAD_TOKEN: [("token_out", good["token_in"]), ("token_in", 99)],
              R.SW_BAD_AMOUNT: [("amount_in", 0), ("amount_in", -5), ("amount_out", -1),
                                ("amount_in", MAX + 1)],
              R.SW_BAD_RESERVE: [("reserve0", 0), ("reserve1", -3), ("reserve0", MAX + 1)],
              R.SW_BAD_FEE: [("fee_bps", 31)]}
    bad = []
    for field_values in faults.values():
        for name, value in field_values:
            m = good.copy()
            m[name] = value
            bad.append(m)
    msgs = np.array(bad + [good], dtype=R.SWAP_MSG)
    msgs["seq"] = market.n_pools + np.arange(msgs.shape[0])
    run(market, state, msgs, True)
    pools, _, counters, _ = state
    for code, values in faults.items():
        assert counters[code] == len(values), R.SWAP_CODE_NAMES[code]
    assert counters[R.SW_OK] == market.n_pools + 1 and counters[R.SW_RESYNCED] == 0
    changed = np.flatnonzero(pools != before)
    assert changed.tolist() == [p] and pools[p]["reserve0"] == exchange[p]["reserve0"]


def test_simulated_faults_are_counted_and_resynced(market, stream):
    clean = defi.simulate(market, 20_000, seed=3)
    assert clean.messages.tobytes() == defi.simulate(market, 20_000, seed=3).messages.tobytes()
    assert not np.array_equal(clean.messages, defi.simulate(market, 20_000, seed=4).messages)
    damaged = np.flatnonzero(clean.messages != stream.messages)
    assert 20 < damaged.size < 120
    result = defi.detect(market, stream.messages)
    counts = result.counts()
    assert result.malformed() == damaged.size and counts["ok"] + counts["resynced"] + damaged.size \
        == stream.messages.shape[0]
    # the next message on a damaged message's pool finds the consumer's state stale
    resync_at = set()
    for i in damaged:
        after = np.flatnonzero(clean.messages["pool"][i + 1:] == clean.messages["pool"][i])
        if after.size and i + 1 + after[0] not in set(damaged):
            resync_at.add(int(i + 1 + after[0]))
    assert counts["resynced"] == len(resync_at) and counts["lost"] == counts["reordered"] == 0
    reference = defi.detect(market, clean.messages)
    assert reference.counts()["ok"] == clean.messages.shape[0] and reference.malformed() == 0
    fields = ["reserve0", "reserve1", "fees0", "fees1", "swaps"]
    assert np.array_equal(reference.pools[fields], clean.final_pools[fields])


def test_stream_through_the_ring_equals_applied_directly(market, stream):
    direct = defi.detect(market, stream.messages, min_profit_usd=5.0)
    ring = defi.detect_through_ring(market, stream.messages, capacity=256, batch=64,
                                    min_profit_usd=5.0)
    assert ring.messages == stream.messages.shape[0]
    assert np.array_equal(ring.pools, direct.pools)
    assert np.array_equal(ring.counters, direct.counters)
    assert np.array_equal(ring.opps, direct.opps) and direct.opps.shape[0] > 10


def test_frames_show_names_and_prices(market, stream):
    frame = stream.frame()
    assert frame.height == stream.messages.shape[0] and frame["kind"][0] == "sync"
    weth = frame.filter((frame["pool"] == "WETH/USDC Uniswap") & (frame["kind"] == "swap"))
    assert weth.height > 0 and 2_000 < weth["price"].median() < 4_000
    assert frame["pool"].null_count() > 0        # the damaged pool ids have no name
    opps = defi.detect(market, stream.messages).opportunities()
    assert set(opps["kind"]) <= {"cross-pool", "triangular"} and (opps["profit_usd"] >= 10).all()
    assert opps["path"].str.contains(" → ").all()
    prices = defi.pair_prices(stream, "WETH", "USDC")
    assert set(prices["dex"]) == {"Uniswap", "Sushiswap"}
    assert ((prices["price"] / prices["market_price"] - 1).abs() < 0.05).all()


def test_bad_arguments_name_the_field(market):
    with pytest.raises(ValueError, match="n_events=0"):
        defi.simulate(market, 0)
    with pytest.raises(ValueError, match="informed=2"):
        defi.simulate(market, 10, informed=2)
    with pytest.raises(ValueError, match=r"pools\[0\].token1='ZZZ'"):
        defi.market_from_pools({"A": 1.0, "B": 2.0}, [("X", "A", "ZZZ", 1.0, 1.0, 30)])
    with pytest.raises(ValueError, match=r"pools\[0\].reserve0"):
        defi.market_from_pools({"A": 1.0, "B": 2.0}, [("X", "A", "B", 1e12, 1.0, 30)])
    with pytest.raises(ValueError, match="min_profit_usd"):
        defi.detect(market, np.zeros(0, dtype=R.SWAP_MSG), min_profit_usd=-1)
    with pytest.raises(ValueError, match="cycle=-1"):
        defi.quote_cycle(market, -1)


def test_figures_draw_the_frames_they_are_given(market, stream):
    from workbench.plots import opportunities_figure, pool_prices_figure, price_impact_figure

    table = defi.price_impact_table(1_000.0, 3_000_000.0, [5, 30])
    fig = price_impact_figure(table)
    cost = fig.select_one({"name": "cost_30"}).data_source.data
    assert list(cost["total_cost_pct"]) == table.filter(table["fee_bps"] == 30)["total_cost_pct"].to_list()
    prices = defi.pair_prices(stream, "WETH", "USDC")
    fig = pool_prices_figure(prices, "WETH in USDC")
    uni = fig.select_one({"name": "price_Uniswap"}).data_source.data
    assert list(uni["price"]) == prices.filter(prices["dex"] == "Uniswap")["price"].to_list()
    opps = defi.detect(market, stream.messages).opportunities()
    fig = opportunities_figure(opps)
    tri = fig.select_one({"name": "opps_triangular"}).data_source.data
    assert len(tri["profit_usd"]) == (opps["kind"] == "triangular").sum() > 0
    assert fig.width <= 900 and fig.right    # the legend sits beside the plot, not on it
