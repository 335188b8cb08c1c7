"""hftbacktest's models in our backtester: post-only (GTX) orders on both loops, the
no-partial-fill exchange (and all-or-none), timer wake-ups, and the side-by-side check of
our L2 loop against a plain-Python simulation of hftbacktest's documented rules on the
Binance capture (``workbench.backtest.parity``)."""
from __future__ import annotations

import math

import numba
import numpy as np
import polars as pl
import pytest

from kernels import records as R
from workbench.backtest import Backtest, parity
from workbench.data.market import MarketData

TICK = 100
BASE = 1_000_000           # 100.00 at price_scale 10_000
SCALE = 10_000
US = 1_000                 # ns


# One user strategy for every crafted case (one loop compile per data kind).
# mode 0: on its first wake with a two-sided view, send ``count`` orders (side, price,
#         qty, tif); then nothing. mode 2: the same, after a GTC order on the other side
#         at the same price.
# mode 1: on each timer wake only, send a buy IOC ten ticks below the bid it sees (it never
#         trades: the order log then holds one row per timer wake, priced off that view).
@numba.njit
def probe(ctx, view, orders, params, actions):
    if params[5] == 1.0:
        if ctx.wake != R.W_TIMER:
            return 0
        a = actions[0]
        a.kind = R.A_NEW
        a.side = R.BUY
        a.price = view.bid - 10 * ctx.tick if view.bid > 0 else ctx.tick
        a.qty = 1
        a.tif = R.IOC
        return 1
    if ctx.mem[0] != 0.0 or view.bid <= 0 or view.ask <= 0:
        return 0
    ctx.mem[0] = 1.0
    n = 0
    if params[5] == 2.0:
        a = actions[0]
        a.kind = R.A_NEW
        a.side = np.int8(1 - params[0])
        a.price = np.int64(params[1])
        a.qty = np.int64(params[2])
        a.tif = R.GTC
        n = 1
    for _ in range(np.int64(params[3])):
        a = actions[n]
        a.kind = R.A_NEW
        a.side = np.int8(params[0])
        a.price = np.int64(params[1])
        a.qty = np.int64(params[2])
        a.tif = np.int8(params[4])
        n += 1
    return n


PROBE = ("side", "price", "qty", "count", "tif", "mode")


def l2_market(rows, low=BASE - 1000 * TICK, levels=2001) -> MarketData:
    """rows of (ts, price, qty, side[, flags]); flags default to END_OF_MESSAGE (a trade
    row: pass L2F_TRADE, side = the aggressor's)."""
    ev = np.zeros(len(rows), dtype=R.L2_UPDATE)
    for i, row in enumerate(rows):
        ts, price, qty, side = row[:4]
        ev[i]["ts"], ev[i]["price"], ev[i]["qty"], ev[i]["side"] = ts, price, qty, side
        ev[i]["flags"] = row[4] if len(row) > 4 else R.L2F_END_OF_MESSAGE
        ev[i]["update_id"] = i + 1
    return MarketData(ev, TICK, SCALE, "crafted l2", kind="l2", qty_scale=1, ladder=(low, levels))


def l3_events(rows):
    """rows of (ts, order_id, price, qty, kind, side)."""
    ev = np.zeros(len(rows), dtype=R.EVENT)
    for i, (ts, oid, price, qty, kind, side) in enumerate(rows):
        ev[i]["ts"], ev[i]["order_id"], ev[i]["price"], ev[i]["qty"] = ts, oid, price, qty
        ev[i]["kind"], ev[i]["side"] = kind, side
        ev[i]["order_type"], ev[i]["tif"] = R.LIMIT, R.GTC
    return ev


def run(data, *, mode=0, side=R.BUY, price=BASE, qty=100, count=1, tif=R.GTX,
        entry_us=0.0, timer_us=None, partial_fills=True, all_or_none=False, chunk=200_000):
    bt = (Backtest(data, capacity=4096, max_fills=4096, max_orders=4096)
          .strategy(probe, param_names=PROBE, side=side, price=price, qty=qty, count=count,
                    tif=tif, mode=mode)
          .latency(0, entry_us, 0).timer(timer_us)
          .exchange(partial_fills=partial_fills, all_or_none=all_or_none))
    return bt.run(progress=False, chunk=chunk)


# ----------------------------------------------------------------------- post-only
# The market: 100.00 bid / 100.01 ask at t=0; at 10 us both move up a tick.
MOVE = [
    (0, BASE, 500, R.BUY, R.L2F_SNAPSHOT | R.L2F_SNAPSHOT_START),
    (0, BASE + TICK, 500, R.SELL, R.L2F_SNAPSHOT | R.L2F_END_OF_MESSAGE),
    (10 * US, BASE + TICK, 300, R.BUY, 0),
    (10 * US, BASE + TICK, 0, R.SELL, 0),
    (10 * US, BASE + 2 * TICK, 400, R.SELL, R.L2F_END_OF_MESSAGE),
    (50 * US, BASE - 10 * TICK, 1, R.BUY, R.L2F_END_OF_MESSAGE),
]


def plain_book_at(rows, t):
    """Plain Python: (best bid, best ask, sizes) after every depth row stamped before ``t``
    (an order arriving at t goes before events stamped t)."""
    size = {R.BUY: {}, R.SELL: {}}
    for ts, price, qty, side, *flags in rows:
        if ts >= t:
            break
        if flags and flags[0] & R.L2F_TRADE:
            continue
        if qty:
            size[side][price] = qty
        else:
            size[side].pop(price, None)
    return max(size[R.BUY], default=0), min(size[R.SELL], default=0), size


@pytest.mark.parametrize("side, price, entry_us", [
    (R.BUY, BASE + TICK, 5),    # at the ask: would take
    (R.BUY, BASE + TICK, 20),   # the ask moved away first: joins the new bid
    (R.SELL, BASE, 5),          # at the bid: would take
    (R.SELL, BASE + TICK, 5),   # at the ask: rests
    (R.SELL, BASE + TICK, 20),  # the bid moved up to it: would take
    (R.BUY, BASE, 20),          # behind the bid: rests
])
def test_l2_post_only_rejected_exactly_when_it_would_take_on_arrival(side, price, entry_us):
    r = run(l2_market(MOVE), side=side, price=price, entry_us=entry_us)
    o = r.orders.row(0, named=True)
    arrival = entry_us * US
    bid, ask, size = plain_book_at(MOVE, arrival)
    takes = (side == R.BUY and price >= ask) or (side == R.SELL and price <= bid)
    assert o["arrival_ts"] == arrival
    if takes:
        assert (o["status"], o["exchange_reason"]) == ("rejected", "post_only_would_take")
        assert r.stats["exchange_rejects"] == {"post_only_would_take": 1}
    else:
        assert o["status"] in ("open", "filled") and o["exchange_reason"] == "none"
        assert o["queue_ahead"] == size[side].get(price, 0)
    assert (r.fills["liquidity"] == "maker").all()   # never a taker
    # the same order without post-only takes when GTX is refused
    if takes:
        g = run(l2_market(MOVE), side=side, price=price, entry_us=entry_us, tif=R.GTC)
        assert g.fills.height and (g.fills["liquidity"] == "taker").all()


L3_BOOK = [(0, 1, BASE, 100, R.EV_ADD, R.BUY), (0, 2, BASE + TICK, 100, R.EV_ADD, R.SELL),
           (10 * US, 3, BASE - TICK, 100, R.EV_ADD, R.BUY)]


@pytest.mark.parametrize("side, price, tif, expect", [
    (R.BUY, BASE + TICK, R.GTX, "rejected"),
    (R.SELL, BASE, R.GTX, "rejected"),
    (R.BUY, BASE, R.GTX, "open"),
    (R.SELL, BASE + 2 * TICK, R.GTX, "open"),
    (R.BUY, BASE + TICK, R.GTC, "filled"),
])
def test_l3_post_only(side, price, tif, expect):
    r = run(l3_events(L3_BOOK), side=side, price=price, tif=tif, entry_us=5)
    o = r.orders.row(0, named=True)
    # plain Python: the resting book's best bid 100.00 and best ask 100.01 at arrival
    takes = (side == R.BUY and price >= BASE + TICK) or (side == R.SELL and price <= BASE)
    assert o["status"] == expect
    if tif == R.GTX:
        assert (o["exchange_reason"] == "post_only_would_take") == takes
        assert r.fills.height == 0
    else:
        assert r.fills["liquidity"].to_list() == ["taker"]


@pytest.mark.parametrize("tif, second", [(R.GTX, "rejected"), (R.GTC, "filled")])
def test_l3_post_only_counts_our_own_resting_order(tif, second):
    # our own sell rests at 100.01, inside the market's 100.03 ask: a post-only buy there
    # is refused (it would match it), a GTC one trades with it
    book = [(0, 1, BASE, 100, R.EV_ADD, R.BUY), (0, 2, BASE + 3 * TICK, 100, R.EV_ADD, R.SELL),
            (30 * US, 3, BASE - TICK, 100, R.EV_ADD, R.BUY)]
    r = run(l3_events(book), mode=2, side=R.BUY, price=BASE + TICK, qty=10, tif=tif, entry_us=5)
    assert r.orders["status"].to_list()[1] == second
    assert r.orders["exchange_reason"][1] == ("post_only_would_take" if tif == R.GTX else "none")


# ------------------------------------------------------------------- no partial fills
def expected_queue_fills(front, qty, trades, rule):
    """Plain Python, from hftbacktest's documentation: trades at the order's price take
    ``front`` down; ``floor(-front)`` is what may fill. partial: that much (front keeps
    what the trade did not consume); no_partial: the whole order once it is >= 1;
    all_or_none: the whole order once it covers it. Returns [(trade index, qty)]."""
    out, leaves = [], qty
    for k, q in enumerate(trades):
        front -= q
        can = math.floor(-front) if front < 0 else 0
        take = {"partial": min(leaves, can), "no_partial": leaves if can >= 1 else 0,
                "all_or_none": leaves if can >= leaves else 0}[rule]
        if take:
            out.append((k, take))
            leaves -= take
            front += take
        if not leaves:
            break
    return out


QUEUE = [
    (0, BASE, 300, R.BUY, R.L2F_SNAPSHOT | R.L2F_SNAPSHOT_START),
    (0, BASE + TICK, 500, R.SELL, R.L2F_SNAPSHOT | R.L2F_END_OF_MESSAGE),
]
TRADES = [250, 80, 100, 200]
QUEUE_TRADES = QUEUE + [(20 * US + k * US, BASE, q, R.SELL, R.L2F_TRADE)
                        for k, q in enumerate(TRADES)] + [(90 * US, BASE - 10 * TICK, 1, R.BUY)]


@pytest.mark.parametrize("rule", ["partial", "no_partial", "all_or_none"])
def test_queue_fills_follow_the_fill_rule(rule):
    r = run(l2_market(QUEUE_TRADES), price=BASE, qty=100, entry_us=5,
            partial_fills=rule == "partial", all_or_none=rule == "all_or_none")
    got = [(int((ts - 20 * US) // US), q) for ts, q in zip(r.fills["ts"], r.fills["qty"])]
    assert r.orders["queue_ahead"][0] == 300
    assert got == expected_queue_fills(300, 100, TRADES, rule)
    assert (r.fills["liquidity"] == "maker").all()


# a taker: asks of 500 at 100.01 and 200 at 100.02; a GTC buy of 800 up to 100.02
TAKER = [
    (0, BASE, 300, R.BUY, R.L2F_SNAPSHOT | R.L2F_SNAPSHOT_START),
    (0, BASE + TICK, 500, R.SELL, R.L2F_SNAPSHOT),
    (0, BASE + 2 * TICK, 200, R.SELL, R.L2F_SNAPSHOT | R.L2F_END_OF_MESSAGE),
    (50 * US, BASE - 10 * TICK, 1, R.BUY),
]


@pytest.mark.parametrize("rule, fills, status", [
    ("partial", [(BASE + TICK, 500), (BASE + 2 * TICK, 200)], None),
    ("no_partial", [(BASE + TICK, 800)], "filled"),       # all of it at the best
    ("all_or_none", [], "cancelled"),                     # 700 displayed < 800
])
def test_taker_follows_the_fill_rule(rule, fills, status):
    r = run(l2_market(TAKER), price=BASE + 2 * TICK, qty=800, tif=R.GTC, entry_us=5,
            partial_fills=rule == "partial", all_or_none=rule == "all_or_none")
    at_arrival = r.fills.filter(pl.col("ts") == 5 * US)
    assert [(round(p * SCALE), q) for p, q in zip(at_arrival["price"], at_arrival["qty"])] == fills
    assert (at_arrival["liquidity"] == "taker").all()
    if status:
        assert r.orders["status"][0] == status


def test_all_or_none_taker_fills_when_the_depth_covers_it():
    r = run(l2_market(TAKER), price=BASE + 2 * TICK, qty=600, tif=R.IOC, entry_us=5,
            partial_fills=False, all_or_none=True)
    assert r.fills["qty"].to_list() == [500, 100] and r.orders["status"][0] == "filled"


def test_exchange_options_are_validated():
    with pytest.raises(ValueError, match="partial_fills='no' must be True or False"):
        Backtest("synthetic").exchange("no")
    with pytest.raises(ValueError, match="all_or_none=True needs partial_fills=False"):
        Backtest("synthetic").exchange(all_or_none=True)
    with pytest.raises(ValueError, match="every_us=-1 must be a finite number >= 0"):
        Backtest("synthetic").timer(every_us=-1)
    with pytest.raises(ValueError, match="applies to L2 data"):
        Backtest(l3_events(L3_BOOK)).exchange(partial_fills=False).run(progress=False)
    bt = Backtest("synthetic").timer(every_us=250).exchange(partial_fills=False)
    assert (bt._timer_ns, bt.describe()["fills"]) == (250_000, "no_partial")


# ----------------------------------------------------------------------------- timer
def _timer_case(kind, span_ns, every_ns, moved_at):
    """Events over ``span_ns`` (one every 70 us, plus a bid improvement stamped exactly at
    ``moved_at``); L2 rows or L3 adds."""
    stamps = sorted(set(range(0, span_ns, 70 * US)) | {span_ns}
                    | ({moved_at} if moved_at < span_ns else set()))
    if kind == "l2":
        rows = [(0, BASE, 100, R.BUY, R.L2F_SNAPSHOT | R.L2F_SNAPSHOT_START),
                (0, BASE + 5 * TICK, 100, R.SELL, R.L2F_SNAPSHOT | R.L2F_END_OF_MESSAGE)]
        rows += [(t, BASE + TICK if t == moved_at else BASE - 20 * TICK, 7, R.BUY)
                 for t in stamps if t > 0]
        return l2_market(rows)
    rows = [(0, 1, BASE, 100, R.EV_ADD, R.BUY), (0, 2, BASE + 5 * TICK, 100, R.EV_ADD, R.SELL)]
    rows += [(t, 10 + k, BASE + TICK if t == moved_at else BASE - 20 * TICK, 7, R.EV_ADD, R.BUY)
             for k, t in enumerate(stamps) if t > 0]
    return l3_events(rows)


@pytest.mark.parametrize("kind", ["l2", "l3"])
@pytest.mark.parametrize("span_us, every_us", [(1000, 100), (1050, 100), (999, 1000), (1001, 1000)])
def test_timer_wakes_at_every_interval_before_the_last_event(kind, span_us, every_us):
    moved_at = 3 * every_us * US
    r = run(_timer_case(kind, span_us * US, every_us * US, moved_at), mode=1,
            timer_us=every_us)
    # the rule: t0 + k*N for k >= 1, strictly before the last event: ceil(D/N) - 1 wakes
    # (floor(D/N) unless N divides D, where the wake at the last event is not made)
    expected = [k * every_us * US for k in range(1, math.ceil(span_us / every_us))]
    assert len(expected) == math.ceil(span_us / every_us) - 1
    assert r.orders["submit_ts"].to_list() == expected
    assert r.stats["timer_wakes"] == len(expected)
    # a wake at the very time of an event comes after it: the one at 3N sees the new bid
    seen = dict(zip(r.orders["submit_ts"].to_list(),
                    (r.orders["price"] * SCALE).round().cast(pl.Int64).to_list()))
    if moved_at in seen:
        assert seen[moved_at] == BASE + TICK - 10 * TICK
    assert all(p == BASE - 10 * TICK for t, p in seen.items() if t < moved_at)


@pytest.mark.parametrize("kind", ["l2", "l3"])
def test_timer_wakes_do_not_depend_on_the_replay_chunks(kind):
    # the builder replays in chunks; a wake due at a chunk's last event, or between chunks,
    # still comes once, after the events stamped at or before it
    data = _timer_case(kind, 1050 * US, 100 * US, 300 * US)
    whole = run(data, mode=1, timer_us=35, entry_us=7)
    for chunk in (1, 3, 7):
        pieces = run(data, mode=1, timer_us=35, entry_us=7, chunk=chunk)
        assert pieces.orders.equals(whole.orders), chunk
    assert whole.stats["timer_wakes"] == math.ceil(1050 / 35) - 1


def test_timer_off_changes_nothing():
    data = _timer_case("l2", 1000 * US, 100 * US, 300 * US)
    r = run(data, mode=1)
    assert r.orders.height == 0 and r.stats["timer_wakes"] == 0


# -------------------------------------------------- side by side with hftbacktest's rules
SAME_TS = [
    (0, BASE, 100, R.BUY, R.L2F_SNAPSHOT | R.L2F_SNAPSHOT_START),
    (0, BASE + TICK, 100, R.SELL, R.L2F_SNAPSHOT | R.L2F_END_OF_MESSAGE),
    (1500, BASE, 150, R.BUY),        # exactly when the first quotes arrive (timer 1000 + 500)
    (3000, BASE - 10 * TICK, 1, R.BUY),
]


def test_the_one_intended_difference_same_ts_arrivals():
    """Where our rule and hftbacktest's differ on purpose: an order arriving at an event's
    exact time goes first with us (it queues ahead of the 50 added then), after it in
    hftbacktest. The reference runs either rule; ours matches it under ours."""
    md = l2_market(SAME_TS)
    common = dict(timer_us=1.0, entry_us=0.5, response_us=0.0, qty=10)
    ours = parity.parity_check(md, len(SAME_TS), same_ts="workbench", **common)
    theirs = parity.parity_check(md, len(SAME_TS), same_ts="hftbacktest", **common)
    assert ours.same and ours.ties >= 1
    assert ours.ours_orders["queue_ahead"][0] == 100
    assert theirs.ref_orders["queue_ahead"][0] == 150 and not theirs.same


@pytest.fixture(scope="module")
def capture():
    from tests.conftest import shared_path
    from workbench.data.market import load_events

    md = load_events(str(shared_path("binance", "binance_spot_btcusdt_20240808.gz")))
    return parity.slice_market(md, 20_000)


@pytest.mark.parametrize("case", [
    dict(fills="no_partial"),
    dict(fills="partial", partial_rule="consume"),
    dict(fills="no_partial", offset_ticks=-1, timer_us=50_000),   # inside the spread: GTX rejects
    dict(fills="no_partial", same_ts="workbench", entry_us=700, response_us=1_300,
         feed_us=200, timer_us=20_000, max_position=300_000),
])
def test_parity_with_hftbacktest_rules_on_the_binance_capture(capture, case):
    report = parity.parity_check(capture, len(capture.events), **case)
    assert report.same, report.summary()
    # the reference's depth has no window; ours drops the rows beyond its ladder (+-2500
    # USDT around the snapshot): thousands of ticks from any price quoted, never the best
    depth = capture.events[(capture.events["flags"] & R.L2F_TRADE) == 0]
    low, levels = capture.ladder
    off = depth[(depth["price"] >= 0) & ((depth["price"] < low)
                                         | (depth["price"] >= low + levels * capture.tick))]
    quoted = report.ours_orders["price"]
    assert (np.abs(off["price"][:, None] - quoted.to_numpy()[None, :])
                               > 1000 * capture.tick).all()
    assert report.ties == 0          # so hftbacktest's and our same-time rules agree here
    o, f = report.ours_orders, report.ours_fills
    assert (f["liquidity"] == "maker").all() and f.height >= 1
    if case.get("offset_ticks") == -1:   # inside a one-tick spread: nearly always refused
        assert (o["exchange_reason"] == "post_only_would_take").sum() > 0.9 * o.height
    else:                                # it really trades: fills, cancels and replaces
        assert f.height >= 30 and (o["status"] == "cancelled").sum() >= 20
    if case["fills"] == "partial":
        assert f.height > (o["status"] == "filled").sum()   # some orders filled in pieces
    assert report.table()["same"].all()


def test_hftbacktest_partial_rule_differs_only_after_a_partial_fill(capture):
    """hftbacktest's PartialFillExchange leaves the queue estimate negative after a partial
    fill (the next trade there fills the earlier amount again); ours consumes it. Before
    the first partial fill the two agree fill for fill."""
    report = parity.parity_check(capture, len(capture.events), fills="partial")
    assert not report.same
    ours, ref = report.ours_fills, report.ref_fills
    first = next(k for k in range(min(ours.height, ref.height)) if ours.row(k) != ref.row(k))
    n = ours["n"][first]
    earlier = ours.head(first).filter(pl.col("n") == n)
    assert earlier.height >= 1                   # that order had filled in part before
    assert ref["qty"][first] > ours["qty"][first]   # and fills again what it filled then
