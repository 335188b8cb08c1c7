"""Backtester: accounting identities, exact L3 queue position against a plain-Python FIFO
simulation, latency ordering, bit-identical reruns, each risk reject, a user strategy,
sweep, CLI and report."""
from __future__ import annotations

import json
from html import escape as html_escape

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as hs

from kernels import records as R
from workbench.backtest import Backtest, sweep

TICK = 100
BASE = 1_000_000  # 100.00 at price_scale 10_000


# A user-written strategy, as in a notebook cell: on its first wake it sends
# ``params[3]`` orders of (side=params[0], price=params[1] or the best bid, qty=params[2],
# tif=params[4]) and then does nothing.
@numba.njit
def post_once(ctx, view, orders, params, actions):
    if ctx.mem[0] != 0.0:
        return 0
    ctx.mem[0] = 1.0
    ctx.mem[1] = ctx.ts  # when it first woke (local time)
    price = np.int64(params[1]) if params[1] > 0 else view.bid
    n = 0
    for _ in range(np.int64(params[3])):
        a = actions[n]
        a.kind = R.A_NEW
        a.side = np.int8(params[0])
        a.price = price
        a.qty = np.int64(params[2])
        a.tif = np.int8(params[4])
        n += 1
    return n


POST_PARAMS = ("side", "price", "qty", "count", "tif")


def events_of(rows):
    """rows of (ts, order_id, price, qty, kind, side[, order_type, tif])."""
    ev = np.zeros(len(rows), dtype=R.EVENT)
    for i, row in enumerate(rows):
        ts, oid, price, qty, kind, side = row[:6]
        ev[i]["ts"], ev[i]["order_id"], ev[i]["price"], ev[i]["qty"] = ts, oid, price, qty
        ev[i]["kind"], ev[i]["side"] = kind, side
        ev[i]["order_type"] = row[6] if len(row) > 6 else R.LIMIT
        ev[i]["tif"] = row[7] if len(row) > 7 else R.GTC
    return ev


def post(events, *, side=R.BUY, price=0, qty=100, count=1, tif=R.GTC, latency=(0, 0, 0), **risk):
    bt = Backtest(events, capacity=4096, max_fills=4096, max_orders=4096)
    bt.strategy(post_once, param_names=POST_PARAMS, side=side, price=price, qty=qty, count=count,
                tif=tif)
    bt.latency(*latency)
    if risk:
        bt.risk(**risk)
    return bt.run(progress=False)


# ------------------------------------------------------------------ accounting
@pytest.fixture(scope="module")
def mm_result():
    bt = (Backtest("synthetic").strategy("mm_skew", half_spread_ticks=1, skew_ticks=3)
          .latency(50, 100, 50).fees(maker_bps=-0.2, taker_bps=0.3).risk(max_position=800))
    return bt.run(progress=False)


def test_accounting_identities(mm_result):
    eq, fills = mm_result.equity, mm_result.fills
    assert fills.height > 50  # the strategy trades
    # equity = cash + position * mark = realised + unrealised, on every step
    mark_value = eq["cash"] + eq["position"] * eq["mid"]
    assert np.allclose(eq["equity"], mark_value, atol=1e-6)
    assert np.allclose(eq["equity"], eq["realised"] + eq["unrealised"], atol=1e-6)
    # fills sum to the position; cash is minus what fills cost, fees included
    signed = np.where(fills["side"] == "buy", 1, -1) * fills["qty"].to_numpy()
    assert signed.sum() == mm_result.stats["final_position"] == eq["position"][-1]
    assert np.array_equal(np.cumsum(signed), fills["position"].to_numpy())
    cash = -(signed * fills["price"].to_numpy()).sum() - fills["fee"].sum()
    assert abs(cash - eq["cash"][-1]) < 1e-6
    assert abs(fills["fee"].sum() - mm_result.stats["fees"]) < 1e-9
    # maker fills earn the rebate, taker fills pay
    assert (fills.filter(pl.col("liquidity") == "maker")["fee"] <= 0).all()
    assert (fills.filter(pl.col("liquidity") == "taker")["fee"] >= 0).all()
    # the strategy learns of a fill no earlier than the response latency after it
    assert ((fills["known_ts"] - fills["ts"]) >= 50_000).all()
    assert mm_result.stats["maker_fills"] + mm_result.stats["taker_fills"] == fills.height


def _bucket_sharpe(ts, equity, bucket_s, seconds_per_year):
    """Plain Python: the last equity at or before each bucket edge, the changes between
    edges, mean / sample sd, x sqrt(buckets per year); (sharpe or None, buckets)."""
    step = int(bucket_s * 1e9)
    n = (ts[-1] - ts[0]) // step
    values, j = [], 0
    for k in range(n + 1):
        edge = ts[0] + k * step
        while j + 1 < len(ts) and ts[j + 1] <= edge:
            j += 1
        values.append(equity[j])
    changes = [b - a for a, b in zip(values, values[1:])]
    if n < 30:
        return None, n
    mean = sum(changes) / len(changes)
    sd = (sum((c - mean) ** 2 for c in changes) / (len(changes) - 1)) ** 0.5
    return mean / sd * (seconds_per_year / bucket_s) ** 0.5, n


def test_stats_and_frames(mm_result):
    s = mm_result.stats
    for key in ("total_pnl", "sharpe", "max_drawdown", "fill_rate", "mean_slippage_bps",
                "turnover", "mean_abs_position", "max_abs_position", "maker_share"):
        assert np.isfinite(s[key]), key
    assert 0 < s["fill_rate"] <= 1
    # the stated definitions, recomputed from the frames in plain Python
    from workbench.backtest.results import STAT_DEFINITIONS

    assert set(s) <= set(STAT_DEFINITIONS)
    table = mm_result.stats_table()   # every stat, its value and its definition
    assert table["stat"].to_list() == list(s)
    assert table["definition"].to_list() == [STAT_DEFINITIONS[k] for k in s]
    ts, equity = mm_result.equity["ts"].to_list(), mm_result.equity["equity"].to_list()
    equities_year = 252 * 6.5 * 3600
    sharpe, n = _bucket_sharpe(ts, equity, 60, equities_year)
    assert s["sharpe_bucket_s"] == 60 and s["sharpe_buckets"] == n == 389  # 6.5 h of 60 s
    assert s["sharpe_calendar"].startswith("equities")   # the simulator: exchange sessions
    assert s["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    other = mm_result.performance(sharpe_bucket_s=300, calendar="crypto")
    sharpe, n = _bucket_sharpe(ts, equity, 300, 365 * 24 * 3600)
    assert other["sharpe"] == pytest.approx(sharpe, rel=1e-9) and other["sharpe_buckets"] == n
    few = mm_result.performance(sharpe_bucket_s=1_000)   # 23 buckets: no number pretends
    assert _bucket_sharpe(ts, equity, 1_000, equities_year) == (None, 23)
    assert np.isnan(few["sharpe"]) and few["sharpe_buckets"] == 23
    with pytest.raises(ValueError, match="calendar"):
        mm_result.performance(calendar="weekdays")
    with pytest.raises(ValueError, match="sharpe_bucket_s"):
        mm_result.performance(sharpe_bucket_s=0)
    # drawdown: the fall from the running peak; under water from the last row at the peak
    # to the first row back at it (or to the end)
    peak, peak_ts, max_dd, longest, under = equity[0], ts[0], 0.0, 0, False
    for t, e in zip(ts, equity):
        if e >= peak:
            if under:
                longest = max(longest, t - peak_ts)
            peak, peak_ts, under = e, t, False
        else:
            max_dd, under = max(max_dd, peak - e), True
    if under:
        longest = max(longest, ts[-1] - peak_ts)
    assert s["max_drawdown"] == pytest.approx(max_dd, abs=1e-9)
    assert s["max_drawdown_duration_s"] == pytest.approx(longest / 1e9)
    fills, orders = mm_result.fills, mm_result.orders
    maker = sum(q for q, liq in zip(fills["qty"], fills["liquidity"]) if liq == "maker")
    assert s["maker_share"] == pytest.approx(maker / sum(fills["qty"]))
    assert s["maker_share"] + s["taker_share"] == pytest.approx(1.0)
    sent = sum(q for q, st in zip(orders["qty"], orders["status"]) if st != "rejected")
    assert s["sent_qty"] == sent and s["fill_rate"] == pytest.approx(sum(fills["qty"]) / sent)
    assert "Sharpe" in mm_result.summary() and "60 s x 389" in mm_result.summary()
    assert s["max_abs_position"] <= 800 + 100  # risk limit (plus one in-flight order)
    assert s["total_pnl"] == pytest.approx(mm_result.equity["equity"][-1])
    assert mm_result.latency["count"][0] > 0 and mm_result.latency["p50"][0] > 0
    orders = mm_result.orders
    assert set(orders["status"].unique()) <= {"pending", "open", "filled", "cancelled", "rejected"}
    # an order reaches the exchange exactly entry latency after the decision
    sent = orders.filter(pl.col("arrival_ts") >= 0)
    assert ((sent["arrival_ts"] - sent["submit_ts"]) == 100_000).all()


def test_rerun_is_bit_identical(mm_result):
    again = (Backtest("synthetic").strategy("mm_skew", half_spread_ticks=1, skew_ticks=3)
             .latency(50, 100, 50).fees(maker_bps=-0.2, taker_bps=0.3).risk(max_position=800)
             .run(progress=False))
    for name in ("equity", "fills", "orders"):
        assert getattr(again, name).equals(getattr(mm_result, name)), name


def test_sampled_latency_rerun_is_bit_identical():
    samples = {"feed": [10_000, 40_000, 90_000], "entry": [50_000, 200_000],
               "response": [20_000, 30_000]}

    def once():
        return (Backtest("synthetic", seed=3).strategy("mm_skew")
                .latency(samples_ns=samples).run(progress=False))

    a, b = once(), once()
    assert a.fills.height > 0
    assert a.fills.equals(b.fills) and a.orders.equals(b.orders) and a.equity.equals(b.equity)
    lat = a.orders.filter(pl.col("arrival_ts") >= 0)
    delay = (lat["arrival_ts"] - lat["submit_ts"]).to_numpy()
    # a draw is 50 or 200 us, but an order never overtakes the one sent before it (FIFO)
    assert delay.min() == 50_000 and delay.max() <= 200_000 and (delay == 200_000).any()
    assert (np.diff(lat["arrival_ts"].to_numpy()) >= 0).all()


# ------------------------------------------------------- latency and ordering
def _ladder():
    # four bids of 100 at 100.00: A and B at t=0, C at t=10us, D at t=20us; an ask far away
    return events_of([
        (0, 1, BASE, 100, R.EV_ADD, R.BUY),
        (0, 2, BASE, 100, R.EV_ADD, R.BUY),
        (10_000, 3, BASE, 100, R.EV_ADD, R.BUY),
        (20_000, 4, BASE, 100, R.EV_ADD, R.BUY),
        (30_000, 5, BASE + 50 * TICK, 100, R.EV_ADD, R.SELL),
    ])


def test_zero_latency_order_rests_before_the_next_event_even_at_equal_ts():
    r = post(_ladder(), price=BASE)
    order = r.orders.row(0, named=True)
    assert order["arrival_ts"] == 0
    assert order["queue_ahead"] == 100  # only A: it reacted to A before B (same ts) arrived


@pytest.mark.parametrize("feed_us, entry_us, ahead", [(0, 15, 300), (5, 5, 200), (0, 10, 200),
                                                      (0, 25, 400)])
def test_positive_latency_orders_arrive_after_earlier_events(feed_us, entry_us, ahead):
    r = post(_ladder(), price=BASE, latency=(feed_us, entry_us, 0))
    order = r.orders.row(0, named=True)
    assert order["submit_ts"] == feed_us * 1000           # it saw event A feed latency later
    assert order["arrival_ts"] == (feed_us + entry_us) * 1000
    # arrival at exactly an event's ts goes first (C at 10us when arriving at 10us)
    assert order["queue_ahead"] == ahead


# ------------------------------------------------- exact queue vs plain Python
def reference_fills(events, own_price, own_qty):
    """Plain-Python FIFO book of bids with one own bid entered right after event 0;
    executions by id apply the trade-through rule, market sells walk the queues."""
    levels = {}  # price -> list of [id, qty]
    own = None
    fills = []
    ahead_at_entry = None
    for i, e in enumerate(events):
        ts, oid, price, qty, kind = (int(e["ts"]), int(e["order_id"]), int(e["price"]),
                                     int(e["qty"]), int(e["kind"]))
        if kind == R.EV_ADD and e["order_type"] == R.LIMIT:
            levels.setdefault(price, []).append([oid, qty])
        elif kind == R.EV_DELETE:
            for q in levels.values():
                q[:] = [o for o in q if o[0] != oid]
        elif kind == R.EV_EXECUTE:
            queue = levels.get(price, [])
            ids = [o[0] for o in queue]
            if own is not None and own[1] > 0:
                own_pos = ids.index("own") if "own" in ids else None
                if own_price > price or (own_pos is not None and oid in ids
                                         and own_pos < ids.index(oid)):
                    fills.append((ts, own_price, own[1]))
                    levels[own_price] = [o for o in levels[own_price] if o[0] != "own"]
                    own[1] = 0
            for o in levels.get(price, []):
                if o[0] == oid:
                    o[1] -= min(qty, o[1])
            levels[price] = [o for o in levels.get(price, []) if o[1] > 0]
        elif kind == R.EV_ADD and e["order_type"] == R.MARKET:
            left = qty
            for p in sorted(levels, reverse=True):
                for o in levels[p]:
                    take = min(left, o[1])
                    if take and o[0] == "own":
                        fills.append((ts, p, take))
                    o[1] -= take  # (``o`` is ``own`` for the own order)
                    left -= take
                levels[p] = [o for o in levels[p] if o[1] > 0]
        if i == 0:
            own = ["own", own_qty]
            ahead_at_entry = sum(o[1] for o in levels.get(own_price, []))
            levels.setdefault(own_price, []).append(own)
    return fills, ahead_at_entry


@hs.composite
def flows(draw):
    n = draw(hs.integers(5, 40))
    rows = [(0, 1, BASE, 200, R.EV_ADD, R.BUY)]
    live = {1: (BASE, 200)}
    next_id = 2
    for k in range(1, n):
        ts = k * 1000
        op = draw(hs.sampled_from(["add", "add", "delete", "execute", "market"]))
        if op == "add" or not live:
            price = BASE - draw(hs.integers(0, 2)) * TICK
            qty = draw(hs.integers(1, 4)) * 100
            rows.append((ts, next_id, price, qty, R.EV_ADD, R.BUY))
            live[next_id] = (price, qty)
            next_id += 1
        elif op == "delete":
            oid = draw(hs.sampled_from(sorted(live)))
            rows.append((ts, oid, live[oid][0], live[oid][1], R.EV_DELETE, R.BUY))
            del live[oid]
        elif op == "execute":
            oid = draw(hs.sampled_from(sorted(live)))
            price, qty = live[oid]
            take = draw(hs.integers(1, qty // 100)) * 100
            rows.append((ts, oid, price, take, R.EV_EXECUTE, R.BUY))
            if take == qty:
                del live[oid]
            else:
                live[oid] = (price, qty - take)
        else:
            qty = draw(hs.integers(1, 6)) * 100
            rows.append((ts, 9_000 + k, 0, qty, R.EV_ADD, R.SELL, R.MARKET, R.IOC))
            live = {}  # ids consumed unpredictably here: stop referring to old ones
    own_level = draw(hs.integers(0, 2))
    return events_of(rows), BASE - own_level * TICK


@settings(max_examples=60, deadline=None)
@given(flows())
def test_queue_position_matches_plain_python_fifo(case):
    events, own_price = case
    r = post(events, price=own_price, qty=300)
    want, ahead = reference_fills(events, own_price, 300)
    got = list(zip(r.fills["ts"].to_list(),
                   (r.fills["price"] * 10_000).round().cast(pl.Int64).to_list(),
                   r.fills["qty"].to_list()))
    assert got == want
    assert r.orders["queue_ahead"][0] == ahead
    assert (r.fills["liquidity"] == "maker").all()


# ---------------------------------------------------------------- risk rejects
def _book():
    return events_of([(0, 1, BASE, 500, R.EV_ADD, R.BUY),
                      (1000, 2, BASE + 2 * TICK, 500, R.EV_ADD, R.SELL),
                      (2000, 3, BASE - TICK, 500, R.EV_ADD, R.BUY),
                      (3000, 4, BASE + 3 * TICK, 500, R.EV_ADD, R.SELL)])


@pytest.mark.parametrize("order, risk, reason, n_rejected", [
    (dict(qty=600), dict(max_order_qty=500), "max_order_qty", 1),
    (dict(qty=300, count=2), dict(max_position=500), "max_position", 1),
    (dict(qty=100), dict(max_notional=5_000), "max_notional", 1),
    (dict(price=BASE - 300 * TICK), dict(price_band_bps=100), "price_band", 1),
    (dict(count=5), dict(max_orders_per_window=2, rate_window_s=1), "order_rate", 3),
    (dict(count=2), dict(kill=1), "kill_switch", 2),
    (dict(qty=0), {}, "invalid_order", 1),
])
def test_each_risk_reject(order, risk, reason, n_rejected):
    r = post(_book(), **{"price": 0, **order}, **risk)
    assert r.stats["risk_rejects"] == {reason: n_rejected}
    rejected = r.orders.filter(pl.col("status") == "rejected")
    assert rejected.height == n_rejected
    assert (rejected["risk_reason"] == reason).all()
    assert (rejected["arrival_ts"] == -1).all()  # never reached the exchange


def test_kill_switch_on_loss_cancels_resting_orders():
    # two buys of 500 at the ask: one fills, one rests; the market bid collapses, the
    # loss passes max_loss, the kill switch pulls the resting bid
    ev = events_of([(0, 1, BASE + TICK, 500, R.EV_ADD, R.SELL),
                    (1000, 2, BASE + 2 * TICK, 500, R.EV_ADD, R.SELL),
                    (2000, 3, BASE - 200 * TICK, 500, R.EV_ADD, R.BUY),
                    (3000, 4, BASE - 201 * TICK, 100, R.EV_ADD, R.BUY)])
    r = post(ev, price=BASE + TICK, qty=500, count=2, max_loss=100.0)
    assert r.stats["final_position"] == 500
    assert r.stats["total_pnl"] < -100
    assert r.orders["status"].to_list() == ["filled", "cancelled"]
    assert r.stats["n_cancels"] == 1


# ---------------------------------------------------- sweep, CLI and the report
def test_sweep_runs_in_parallel_and_matches_single_runs(mm_result):
    base = (Backtest("synthetic").strategy("mm_skew", half_spread_ticks=1, skew_ticks=3)
            .latency(50, 100, 50).fees(maker_bps=-0.2, taker_bps=0.3).risk(max_position=800))
    frame = sweep(base, {"half_spread_ticks": [1, 2], "skew_ticks": [0, 3]}, progress=False,
                  max_workers=2)
    assert frame.height == 4
    row = frame.filter((pl.col("half_spread_ticks") == 1) & (pl.col("skew_ticks") == 3))
    assert row["total_pnl"][0] == mm_result.stats["total_pnl"]
    assert row["n_fills"][0] == mm_result.stats["n_fills"]


def test_cli_json(capsys):
    from workbench.cli import main

    code = main(["backtest", "--strategy", "mm_skew", "--param", "half_spread_ticks=2",
                 "--risk", "max_position=400", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["params"]["half_spread_ticks"] == 2.0
    assert out["max_abs_position"] <= 500
    assert main(["backtest", "--param", "nonsense=1"]) == 2


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="strategy"):
        Backtest("synthetic", strategy="nope")
    with pytest.raises(ValueError, match="half_spread"):
        Backtest("synthetic").strategy("mm_skew", half_spread=1)
    with pytest.raises(ValueError, match="feed_us"):
        Backtest("synthetic").latency(feed_us=-1)
    with pytest.raises(ValueError, match="max_pos"):
        Backtest("synthetic").risk(max_pos=1)
    with pytest.raises(ValueError, match="njit"):
        Backtest("synthetic").strategy(lambda *a: 0)


def test_dashboard_and_report_show_this_result(mm_result, tmp_path):
    from bokeh.models import ColumnDataSource, DataTable

    layout = mm_result.plot()
    sources = list(layout.select({"type": ColumnDataSource}))
    eq = mm_result.equity
    # the P&L panel plots the result's own equity curve, point for point, at its times
    curve = next(s for s in sources if "equity" in s.data)
    np.testing.assert_allclose(curve.data["equity"], eq["equity"].to_numpy())
    np.testing.assert_array_equal(curve.data["t"].astype("datetime64[ns]").astype(np.int64),
                                  eq["ts"].to_numpy())
    np.testing.assert_allclose(np.nan_to_num(curve.data["quote_bid"].astype(float)),
                               eq["quote_bid"].fill_null(0).to_numpy())
    # one scatter source per fill side, holding exactly that side's fills
    fills = mm_result.fills
    by_side = [s for s in sources if set(s.data) == {"t", "price", "qty"}]
    assert len(by_side) == 2
    shown_sides = sorted((list(src.data["price"]), list(src.data["qty"])) for src in by_side)
    wanted = sorted((fills.filter(pl.col("side") == side)["price"].to_list(),
                     fills.filter(pl.col("side") == side)["qty"].to_list()) for side in ("buy", "sell"))
    assert shown_sides == wanted
    # the stats table shows every stat with its value
    table = layout.select_one({"type": DataTable})
    shown = dict(zip(table.source.data["stat"], table.source.data["value"]))
    assert set(shown) == set(mm_result.stats)
    assert shown["n_fills"] == str(mm_result.stats["n_fills"])
    assert float(shown["total_pnl"].replace(",", "")) == pytest.approx(
        mm_result.stats["total_pnl"], abs=1e-4)
    # the standalone report embeds BokehJS (opens offline) and the summary line
    text = mm_result.to_html(tmp_path / "report.html").read_text()
    assert "Bokeh.embed" in text or "embed_items" in text
    assert html_escape(mm_result.summary()) in text


# ------------------------------------------------------------- bundled strategies
@pytest.mark.parametrize("name, params", [
    ("avellaneda_stoikov", {}),
    ("grid_mm", {"levels": 2, "spacing_ticks": 2}),
    ("momentum", {"mode": 0}),
    ("momentum", {"mode": 1, "threshold_bps": 3}),
])
def test_bundled_strategies_trade_and_balance(name, params):
    r = Backtest("synthetic").strategy(name, **params).latency(20, 50, 20).run(progress=False)
    eq, fills = r.equity, r.fills
    assert fills.height > 0
    signed = np.where(fills["side"] == "buy", 1, -1) * fills["qty"].to_numpy()
    assert signed.sum() == r.stats["final_position"]
    assert np.allclose(eq["equity"], eq["realised"] + eq["unrealised"], atol=1e-6)
    if name == "momentum":
        assert r.stats["taker_fills"] == fills.height  # it only sends marketable IOC orders
    if name == "grid_mm":
        assert r.orders["price"].n_unique() > 4  # a ladder of prices, not one quote


# ------------------------------------------------------------------- L2 (Binance)
@numba.njit
def always_ahead(front, back, params):
    """A user queue model: every cancel happened ahead of us (the optimistic extreme)."""
    return 0.0


def test_binance_l2_queue_models():
    from tests.conftest import shared_path

    path = str(shared_path("binance", "binance_spot_btcusdt_20240808.gz"))
    results = {}
    for model in ("risk_averse", "log", always_ahead):
        bt = (Backtest(path).strategy("mm_skew", half_spread_ticks=1, qty=100_000, skew_ticks=2,
                                      max_position=1_000_000)
              .latency(50, 100, 50).queue_model(model))
        r = bt.run(progress=False)
        results[model if isinstance(model, str) else "ahead"] = r
        signed = np.where(r.fills["side"] == "buy", 1, -1) * r.fills["qty"].to_numpy()
        assert signed.sum() == r.stats["final_position"]
        assert np.allclose(r.equity["equity"], r.equity["realised"] + r.equity["unrealised"],
                           atol=1e-9)
    assert results["log"].stats["n_fills"] > 0
    # the more cancels count as ahead, the sooner resting orders reach the front: queue
    # fills (not crossings) can only be more frequent than under the risk-averse model
    queued = {k: (r.stats["maker_fills"] - r.stats["trade_through_fills"]) for k, r in results.items()}
    assert queued["ahead"] >= queued["risk_averse"]
    assert results["log"].config["queue_model"] == "log"


def _prob_reference(model, front, back, n=2.0):
    """hftbacktest's three probability queue models, in plain Python."""
    import math

    if model == "power":
        fb, ff = back ** n, front ** n
    elif model == "log":
        fb, ff = math.log1p(max(back, 0.0)), math.log1p(max(front, 0.0))
    else:
        return 1.0
    return fb / (fb + ff) if fb + ff > 0 else 1.0


@pytest.mark.parametrize("model,kw", [("risk_averse", {}), ("power", {}), ("power", {"n": 3.5}),
                                      ("log", {})])
def test_the_bundled_queue_kernel_is_each_named_model(model, kw):
    """Every bundled queue model runs through one kernel (one compiled loop per strategy):
    its parameters pick the model, which must answer as hftbacktest's formula does."""
    from kernels.backtest import queue_models

    bt = Backtest("synthetic").queue_model(model, **kw)
    assert bt._queue_fn is queue_models.bundled_prob
    rng = np.random.default_rng(7)
    for front, back in [(0.0, 0.0), (0.0, 5.0), (5.0, 0.0), *rng.uniform(0, 1e4, (200, 2))]:
        got = queue_models.bundled_prob(float(front), float(back), bt._queue_params)
        assert got == pytest.approx(_prob_reference(model, front, back, kw.get("n", 2.0)),
                                    rel=1e-12), (front, back)


def test_switching_bundled_models_keeps_one_compiled_loop():
    """Constant latencies and samples share the bundled latency kernel, and the three
    queue models share one kernel: the builder asks the loop cache for the same loop."""
    from kernels.backtest import latency_models

    samples = {"feed": [1_000, 2_000], "entry": [3_000], "response": [500]}
    models = {Backtest("synthetic").latency(50, 100, 50)._lat_model,
              Backtest("synthetic").latency(samples_ns=samples)._lat_model}
    assert models == {latency_models.sampled_latency}
    queues = {Backtest("synthetic").queue_model(m)._queue_fn for m in ("risk_averse", "power", "log")}
    assert len(queues) == 1
