"""The exercise checkers of notebooks 05-07 (a right answer passes, the usual wrong answers
fail with a message that names the mistake), the embedded L2 sample behind their
real-data fallbacks, and the plot fixes those notebooks rely on."""
from __future__ import annotations

import numba
import numpy as np
import polars as pl

from kernels import records as R
from kernels.backtest.latency_models import LAT_ENTRY
from kernels.strategies import requote
from workbench.teaching.exercises import nb05, nb06, nb07


def _fails(verdict, *needles):
    assert not verdict, verdict.message
    for needle in needles:
        assert needle in verdict.message, verdict.message


# ----------------------------------------------------------------------------- 05
def _dispersion(ts_ns, bin_s, empty=True, ratio="var"):
    idx = (ts_ns - ts_ns[0]) // int(bin_s * 1e9)
    counts = np.bincount(idx) if empty else np.unique(idx, return_counts=True)[1]
    return (counts.var() if ratio == "var" else counts.std()) / counts.mean()


def test_05_1_dispersion():
    assert nb05.check_dispersion(_dispersion)
    assert nb05.check_dispersion(lambda ts, b: np.bincount((ts - ts[0]) // int(b * 1e9)).var(ddof=1)
                                 / np.bincount((ts - ts[0]) // int(b * 1e9)).mean())
    _fails(nb05.check_dispersion(lambda ts, b: _dispersion(ts, b, empty=False)), "empty bins")
    _fails(nb05.check_dispersion(lambda ts, b: _dispersion(ts, b, ratio="std")), "std / mean")
    _fails(nb05.check_dispersion(lambda ts, b: 1.0), "index of dispersion is")
    _fails(nb05.check_dispersion(lambda ts, b: [1, 2]), "one number")


def _book(events, cancel_deletes=False, scale=10_000):
    orders = {}
    for e in events:
        kind, oid = int(e["kind"]), int(e["order_id"])
        if kind == R.EV_ADD:
            orders[oid] = [int(e["side"]), int(e["price"]), int(e["qty"])]
        elif kind == R.EV_DELETE or (kind == R.EV_CANCEL and cancel_deletes):
            orders.pop(oid)
        elif kind in (R.EV_CANCEL, R.EV_EXECUTE):
            orders[oid][2] -= int(e["qty"])
            if orders[oid][2] <= 0:
                del orders[oid]
    levels = {}
    for side, price, qty in orders.values():
        levels[side, price] = levels.get((side, price), 0) + qty
    bid = max((p for s, p in levels if s == R.BUY), default=None)
    ask = min((p for s, p in levels if s == R.SELL), default=None)
    return (None if bid is None else bid / scale, levels.get((R.BUY, bid), 0),
            None if ask is None else ask / scale, levels.get((R.SELL, ask), 0))


def test_05_2_best_bid_ask():
    assert nb05.check_top_of_book(_book)
    _fails(nb05.check_top_of_book(lambda ev: _book(ev, scale=1)), "integer units")
    _fails(nb05.check_top_of_book(lambda ev: _book(ev, cancel_deletes=True)),
           "sizes are not", "EV_CANCEL takes qty off")
    _fails(nb05.check_top_of_book(lambda ev: tuple(_book(ev)[i] for i in (2, 3, 0, 1))), "swapped")
    _fails(nb05.check_top_of_book(lambda ev: None), "return (bid_price")


def _first_gap(last, diffs, strict_stale=False):
    previous = None
    for k, (first, final) in enumerate(diffs):
        if final < last or (final == last and not strict_stale):
            continue
        if previous is None and not first <= last + 1 <= final:
            return k
        if previous is not None and first != previous + 1:
            return k
        previous = final
    return None


def test_05_3_first_gap():
    assert nb05.check_first_gap(_first_gap)
    _fails(nb05.check_first_gap(lambda last, diffs: _first_gap(last, diffs, strict_stale=True)),
           "older than the snapshot")
    _fails(nb05.check_first_gap(lambda last, diffs: None), "you missed it")
    _fails(nb05.check_first_gap(lambda last, diffs: 0), "not a gap")


# ----------------------------------------------------------------------------- 06
@numba.njit
def _join_if_wide(ctx, view, orders, params, actions):
    if view.bid <= 0 or view.ask <= 0:
        return 0
    wide = (view.ask - view.bid) >= params[2] * ctx.tick
    bid = view.bid if wide and ctx.position < params[1] else 0
    ask = view.ask if wide and ctx.position > -params[1] else 0
    n = requote(orders, actions, 0, R.BUY, bid, np.int64(params[0]))
    return requote(orders, actions, n, R.SELL, ask, np.int64(params[0]))


@numba.njit
def _join_always(ctx, view, orders, params, actions):
    bid = view.bid if ctx.position < params[1] else 0
    ask = view.ask if ctx.position > -params[1] else 0
    n = requote(orders, actions, 0, R.BUY, bid, np.int64(params[0]))
    return requote(orders, actions, n, R.SELL, ask, np.int64(params[0]))


@numba.njit
def _keeps_stale_quotes(ctx, view, orders, params, actions):
    if view.ask - view.bid < params[2] * ctx.tick:
        return 0  # leaves the quotes resting from before
    n = requote(orders, actions, 0, R.BUY, view.bid if ctx.position < params[1] else 0,
                np.int64(params[0]))
    return requote(orders, actions, n, R.SELL, view.ask if ctx.position > -params[1] else 0,
                   np.int64(params[0]))


@numba.njit
def _no_limit(ctx, view, orders, params, actions):
    wide = (view.ask - view.bid) >= params[2] * ctx.tick
    n = requote(orders, actions, 0, R.BUY, view.bid if wide else 0, np.int64(params[0]))
    return requote(orders, actions, n, R.SELL, view.ask if wide else 0, np.int64(params[0]))


def test_06_1_join_if_wide():
    assert nb06.check_join_if_wide(_join_if_wide)
    _fails(nb06.check_join_if_wide(_join_always), "under min_edge_ticks=2")
    _fails(nb06.check_join_if_wide(_keeps_stale_quotes), "pull both quotes")
    _fails(nb06.check_join_if_wide(_no_limit), "stop bidding")
    _fails(nb06.check_join_if_wide(_join_if_wide.py_func), "@numba.njit")


def _later_mid(fills, mids, horizon_s, strategy="backward", scale=1e9):
    return (fills.with_columns((pl.col("ts") + int(horizon_s * scale)).alias("t_later"))
            .sort("t_later")
            .join_asof(mids.select(pl.col("ts").alias("t_later"), pl.col("mid").alias("mid_later")),
                       on="t_later", strategy=strategy))


_SIGN = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)


def _markout(fills, mids, h, strategy="backward", scale=1e9, sign=True):
    later = _later_mid(fills, mids, h, strategy, scale)
    s = _SIGN if sign else 1.0
    return later.select((s * pl.col("qty") * (pl.col("mid_later") - pl.col("price"))).sum()).item()


def test_06_2_markout():
    assert nb06.check_markout(_markout)
    _fails(nb06.check_markout(lambda f, m, h: _markout(f, m, h, sign=False)), "a sell earns")
    _fails(nb06.check_markout(lambda f, m, h: _markout(f, m, h, strategy="forward")), "at or before")
    _fails(nb06.check_markout(lambda f, m, h: _markout(f, m, h, scale=1)), "horizon_s * 1e9")


def _break_even(fills, mids, h, tick):
    later = _later_mid(fills, mids, h)
    moved = later.select((_SIGN * pl.col("qty") * (pl.col("mid") - pl.col("mid_later"))).sum()).item()
    return moved / fills["qty"].sum() / tick


def test_06_3_break_even_ticks():
    assert nb06.check_break_even(_break_even)
    _fails(nb06.check_break_even(lambda f, m, h, t: _break_even(f, m, h, t) * t), "divide by tick")
    _fails(nb06.check_break_even(lambda f, m, h, t: -_break_even(f, m, h, t)), "sign is flipped")
    _fails(nb06.check_break_even(lambda f, m, h, t: _break_even(f, m, h, t) * f["qty"].sum()),
           "divide by sum(qty)")


# ----------------------------------------------------------------------------- 07
def _replay(events, t, cancel_deletes=False):
    orders = {}
    for e in events[events["ts"] <= t]:
        kind, oid = int(e["kind"]), int(e["order_id"])
        if kind == R.EV_ADD:
            orders[oid] = [int(e["side"]), int(e["price"]), int(e["qty"])]
        elif kind == R.EV_DELETE or (kind == R.EV_CANCEL and cancel_deletes):
            orders.pop(oid, None)
        elif kind in (R.EV_CANCEL, R.EV_EXECUTE):
            orders[oid][2] -= int(e["qty"])
            if orders[oid][2] <= 0:
                del orders[oid]
    return orders


def _queue_ahead(events, order_id, t, count=False, cancel_deletes=False):
    orders = _replay(events, t, cancel_deletes)
    if order_id not in orders:
        return None
    side, price, _ = orders[order_id]
    ahead = [q for oid, (s, p, q) in orders.items() if oid < order_id and s == side and p == price]
    return len(ahead) if count else sum(ahead)


def test_07_1_queue_ahead():
    assert nb07.check_queue_ahead(_queue_ahead)
    _fails(nb07.check_queue_ahead(lambda ev, oid, t: _queue_ahead(ev, oid, t, count=True)),
           "number of orders ahead")
    _fails(nb07.check_queue_ahead(lambda ev, oid, t: _queue_ahead(ev, oid, t, cancel_deletes=True)),
           "keeps its place")
    _fails(nb07.check_queue_ahead(lambda ev, oid, t: 0), "the queue ahead holds")


def _fill_rates(orders, edges, statuses=("filled", "cancelled"), empty=None):
    done = orders.filter((pl.col("queue_ahead") >= 0) & pl.col("status").is_in(list(statuses)))
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        bucket = done.filter((pl.col("queue_ahead") >= low) & (pl.col("queue_ahead") < high))
        out.append((bucket["status"] == "filled").mean() if bucket.height else empty)
    return out


def test_07_2_fill_rate_by_queue():
    assert nb07.check_fill_rate_by_queue(_fill_rates)
    _fails(nb07.check_fill_rate_by_queue(
        lambda o, e: _fill_rates(o, e, ("filled", "cancelled", "open", "pending", "rejected"))),
        "no outcome yet")
    _fails(nb07.check_fill_rate_by_queue(lambda o, e: _fill_rates(o, e, empty=0.0)), "None, not 0")
    _fails(nb07.check_fill_rate_by_queue(lambda o, e: _fill_rates(o, e)[:-1]), "one value per bucket")


@numba.njit
def _busy_open(kind, ts, params, table, rng):
    base = np.int64(params[kind])
    if kind == LAT_ENTRY and ts < (34_200 + 600) * 1_000_000_000:
        return 10 * base
    return base


@numba.njit
def _every_kind_slow(kind, ts, params, table, rng):
    base = np.int64(params[kind])
    return 10 * base if ts < (34_200 + 600) * 1_000_000_000 else base


@numba.njit
def _seconds_not_ns(kind, ts, params, table, rng):
    base = np.int64(params[kind])
    return 10 * base if kind == LAT_ENTRY and ts < 34_200 + 600 else base


def test_07_3_busy_open():
    assert nb07.check_busy_open(_busy_open)
    _fails(nb07.check_busy_open(_every_kind_slow), "only the ENTRY latency")
    _fails(nb07.check_busy_open(_seconds_not_ns), "ns after midnight")
    _fails(nb07.check_busy_open(_busy_open.py_func), "@numba.njit")


# --------------------------------------------------- the fallback data and the plots
def test_sample_l2_rebuilds_the_l3_top_of_book_exactly():
    """The L2 view of the embedded sample, replayed by the Binance ladder kernel, gives the
    L3 events' own top of book after every event (an independent aggregation)."""
    from kernels import l2book
    from workbench.data.market import load_events
    from workbench.data.samples import sample_l2
    from workbench.data.synthetic import top_of_book

    l2 = sample_l2()
    l3 = load_events("synthetic")
    assert l2.kind == "l2" and l2.tick == l3.tick
    trades = (l2.events["flags"] & R.L2F_TRADE) != 0
    assert trades.sum() == (l3.events["kind"] == R.EV_EXECUTE).sum()
    low, n_levels = l2.ladder
    out = np.zeros(int((~trades).sum()), dtype=R.BBO)
    n, off_ladder, crossed = l2book.replay_l2(l2.events, low, l2.tick, np.zeros(n_levels, np.int64),
                                              np.zeros(n_levels, np.int64), out)
    ref = top_of_book(l3.events, l3.tick)
    assert (n, off_ladder, crossed) == (len(l3.events), 0, 0)
    for field in ("bid_price", "bid_qty", "ask_price", "ask_qty"):
        np.testing.assert_array_equal(out[field][:n], ref[field])


def test_shared_dir_override_forces_the_fallback(monkeypatch, tmp_path):
    from workbench.data import samples

    monkeypatch.setenv(samples.ENV_SHARED_DIR, str(tmp_path / "absent"))
    assert samples.shared_data_dir() is None
    monkeypatch.setenv(samples.ENV_SHARED_DIR, str(tmp_path))
    assert samples.shared_data_dir() == tmp_path


def test_dashboard_reads_times_of_day_and_fits_a_notebook():
    from bokeh.models import CustomJSTicker, DatetimeTickFormatter, FixedTicker, Legend
    from bokeh.plotting import figure as Figure

    from workbench.backtest import Backtest, load_events
    from workbench.data.synthetic import simulate

    md = load_events(simulate(n_symbols=1, seed=2, duration_s=120, rate=5.0))
    layout = Backtest(md).strategy("mm_skew").latency(50, 100, 50).run(progress=False).plot()
    figs = list(layout.select({"type": Figure}))
    timed = [f for f in figs if f.xaxis[0].axis_label and "time of day" in f.xaxis[0].axis_label]
    assert len(timed) == 3  # P&L, inventory, quotes
    for fig in timed:
        fmt = fig.xaxis[0].formatter
        assert isinstance(fmt, DatetimeTickFormatter) and fmt.context is None  # no 1970 date
        assert fmt.hours == "%H:%M"
        assert fig.frame_width + fig.min_border_left + 140 <= 900  # + legend and toolbar
        assert all(isinstance(r, Legend) for r in fig.right)  # legends beside, not on, the data
        assert fig.legend[0].click_policy == "hide"
    latency = next(f for f in figs if f.xaxis[0].axis_label == "percentile")
    assert isinstance(latency.yaxis[0].ticker, CustomJSTicker)  # 1-2-5 ticks with units
    assert isinstance(latency.xaxis[0].ticker, FixedTicker) and 1 not in latency.xaxis[0].ticker.ticks
    assert all(f.width <= 900 for f in figs)
