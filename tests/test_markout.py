"""Markouts against a plain-Python computation (hand-made tapes and a real backtest), and
the bundled ``follow_flow`` strategy: profitable on the embedded sample because its fills
are on the right side of the informed flow, where the naive market maker's are not."""
from __future__ import annotations

import bisect
import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from workbench.backtest import Backtest
from workbench.backtest.markout import markout, markout_summary

S = 1_000_000_000
T0 = 34_200 * S


def _ref_rows(fills, mids, horizons):
    """Plain Python: per fill, the last mid at or before ts + h (None past the last mid)."""
    mts, mmid = mids["ts"].to_list(), mids["mid"].to_list()
    rows = []
    for ts, side, price, qty, mid in zip(fills["ts"], fills["side"], fills["price"],
                                         fills["qty"], fills["mid"]):
        sign = 1.0 if side == "buy" else -1.0
        row = {"edge": sign * qty * (mid - price)}
        for h in horizons:
            later = ts + int(round(h * S))
            k = bisect.bisect_right(mts, later) - 1
            m = mmid[k] if k >= 0 and later <= mts[-1] else None
            row[h] = (m, None if m is None else sign * qty * (m - price),
                      None if m is None else sign * qty * (mid - m))
        rows.append(row)
    return rows


def _tape(fills, mids, tick=0.01):
    """A result-shaped object from hand-made fills (ts, side, price, qty, mid) and mids."""
    f = pl.DataFrame(fills, schema=["ts", "side", "price", "qty", "mid"], orient="row")
    f = f.with_columns(pl.lit("maker").alias("liquidity"))
    m = pl.DataFrame(mids, schema=["ts", "mid"], orient="row")
    return SimpleNamespace(fills=f, equity=m, config={"tick": tick})


def _assert_matches(frame, rows, horizons):
    assert frame.height == len(rows)
    np.testing.assert_allclose(frame["edge"].to_numpy(), [r["edge"] for r in rows])
    for h in horizons:
        tag = f"{h:g}s"
        for col, i in ((f"mid_{tag}", 0), (f"markout_{tag}", 1), (f"adverse_{tag}", 2)):
            got = frame[col].to_list()
            want = [r[h][i] for r in rows]
            assert [g is None for g in got] == [w is None for w in want], col
            np.testing.assert_allclose([g for g in got if g is not None],
                                       [w for w in want if w is not None], err_msg=col)


def test_hand_made_tape():
    mids = [(T0, 10.00), (T0 + 2 * S, 10.02), (T0 + 5 * S, 9.97), (T0 + 10 * S, 9.90),
            (T0 + 20 * S, 10.05)]
    fills = [(T0, "buy", 10.00, 100, 10.005), (T0 + 2 * S, "sell", 10.02, 300, 10.01),
             (T0 + 12 * S, "buy", 9.89, 200, 9.90), (T0 + 19 * S, "sell", 10.06, 50, 10.05)]
    r = _tape(fills, mids)
    horizons = (0, 1, 3, 8)
    frame = markout(r, horizons)
    _assert_matches(frame, _ref_rows(r.fills, r.equity, horizons), horizons)
    # by hand: the buy at 10.00, 3 s later the mid is 10.02 (the row at +2 s): +2.00
    assert frame["markout_3s"][0] == pytest.approx(100 * 0.02)
    # the sell at 10.02 (mid 10.01 just before): sold a cent above the mid, edge +3.00;
    # 8 s later (+10 s) the mid is 9.90: it earned 300 * 0.12
    assert frame["edge"][1] == pytest.approx(300 * 0.01)
    assert frame["markout_8s"][1] == pytest.approx(300 * 0.12)
    # past the last mid there is no markout (not one marked to the end of the run)
    assert frame["markout_3s"][3] is None and frame["markout_0s"][3] is not None
    # the summary, per share and in ticks
    summary = markout_summary(r, horizons)
    for h, row in zip(horizons, summary.iter_rows(named=True)):
        have = [(q, ref) for q, ref in zip(r.fills["qty"], _ref_rows(r.fills, r.equity, [h]))
                if ref[h][0] is not None]
        qty = sum(q for q, _ in have)
        assert row["n_fills"] == len(have) and row["qty"] == qty
        assert row["markout_ticks"] == pytest.approx(sum(ref[h][1] for _, ref in have) / qty / 0.01)
        assert row["adverse_ticks"] == pytest.approx(sum(ref[h][2] for _, ref in have) / qty / 0.01)
        assert row["edge_ticks"] == pytest.approx(sum(ref["edge"] for _, ref in have) / qty / 0.01)
        assert row["edge_ticks"] - row["adverse_ticks"] == pytest.approx(row["markout_ticks"])
    # another source of mids, a given tick
    finer = pl.DataFrame({"ts": [T0 + k * S // 2 for k in range(50)],
                          "mid": [10 + 0.01 * math.sin(k) for k in range(50)]})
    frame = markout(r, horizons, mids=finer)
    _assert_matches(frame, _ref_rows(r.fills, finer, horizons), horizons)
    half_tick = markout_summary(r, horizons, tick=0.005)
    np.testing.assert_allclose(half_tick["markout_ticks"], 2 * summary["markout_ticks"])
    # quantities in units of 1/1000 of the instrument (a crypto capture's qty_scale): the
    # currency columns shrink 1000-fold, the markout per instrument unit is unchanged
    milli = SimpleNamespace(fills=r.fills, equity=r.equity, config={"tick": 0.01, "qty_scale": 1000})
    np.testing.assert_allclose(markout(milli, horizons)["markout_3s"].drop_nulls(),
                               markout(r, horizons)["markout_3s"].drop_nulls() / 1000)
    np.testing.assert_allclose(markout_summary(milli, horizons)["markout_ticks"],
                               summary["markout_ticks"])


def test_no_fills_and_bad_input():
    empty = _tape([], [(T0, 10.0)])
    assert markout(empty).height == 0
    s = markout_summary(empty, (1, 10))
    assert s["n_fills"].to_list() == [0, 0] and all(math.isnan(x) for x in s["markout_ticks"])
    r = _tape([(T0, "buy", 10.0, 1, 10.0)], [(T0, 10.0)])
    for bad, match in (((-1,), "horizons_s"), ((), "empty"), ((1, 1), "repeats"),
                       ((float("nan"),), "horizons_s"), (("1",), "horizons_s")):
        with pytest.raises(ValueError, match=match):
            markout(r, bad)
    with pytest.raises(ValueError, match="mids must be"):
        markout(r, mids=pl.DataFrame({"t": [1]}))
    with pytest.raises(ValueError, match="by="):
        markout_summary(r, by="price")
    with pytest.raises(ValueError, match="tick"):
        markout_summary(SimpleNamespace(fills=r.fills, equity=r.equity, config={}))
    with pytest.raises(ValueError, match="empty"):
        markout_summary({})


@pytest.fixture(scope="module")
def runs():
    """The naive market maker and follow_flow on the embedded sample (notebook 06's
    latencies and fees)."""
    out = {}
    for name in ("mm_skew", "follow_flow"):
        out[name] = (Backtest("synthetic").strategy(name).latency(50, 100, 50)
                     .fees(maker_bps=-0.2, taker_bps=0.3).run(progress=False))
    return out


def test_markouts_of_a_backtest_match_plain_python(runs):
    horizons = (1, 10, 60)
    for result in runs.values():
        frame = markout(result, horizons)
        mids = result.equity.select("ts", "mid").filter(pl.col("mid") > 0)
        _assert_matches(frame, _ref_rows(result.fills, mids, horizons), horizons)
    by = markout_summary(runs, horizons, by="liquidity")
    assert set(by["strategy"]) == set(runs) and set(by["liquidity"]) <= {"maker", "taker"}
    total = markout_summary(runs, horizons)
    # the groups add up to the whole, per strategy and horizon
    sums = by.group_by("strategy", "horizon_s").agg(pl.col("qty", "markout").sum())
    joined = total.join(sums, on=["strategy", "horizon_s"], suffix="_parts")
    assert (joined["qty"] == joined["qty_parts"]).all()
    np.testing.assert_allclose(joined["markout"], joined["markout_parts"])


def test_follow_flow_wins_where_the_naive_market_maker_is_adversely_selected(runs):
    naive, follow = runs["mm_skew"], runs["follow_flow"]
    assert naive.stats["total_pnl"] < 0 < follow.stats["total_pnl"]
    m = markout_summary(runs, (1, 10, 60))
    naive_m = m.filter(pl.col("strategy") == "mm_skew")["markout_ticks"].to_list()
    follow_m = m.filter(pl.col("strategy") == "follow_flow")["markout_ticks"].to_list()
    # the naive quotes earn the spread at the fill and lose it as the mid moves on;
    # follow_flow pays to trade with the flow, and the mid then moves its way
    assert naive_m[0] > naive_m[1] > naive_m[2] and naive_m[2] < 0
    assert follow_m[0] < follow_m[1] < follow_m[2] and follow_m[2] > 0
    # its resting quotes are filled against the flow, without adverse selection at 10 s
    makers = markout_summary(follow, (10,), by="liquidity").filter(pl.col("liquidity") == "maker")
    assert makers["n_fills"][0] > 0 and makers["markout_ticks"][0] > 0
    # the position limit holds at every recorded row and after every fill
    limit = 300
    assert follow.equity["position"].abs().max() <= limit
    assert follow.fills["position"].abs().max() <= limit
    signed = np.where(follow.fills["side"] == "buy", 1, -1) * follow.fills["qty"].to_numpy()
    assert signed.sum() == follow.stats["final_position"]


def test_markout_plot_draws_the_summary(runs):
    from bokeh.models import ColumnDataSource

    from workbench.backtest.plots import markout_plot

    summary = markout_summary(runs, (1, 10, 60))
    fig = markout_plot(summary)
    shown = sorted((list(s.data["horizon_s"]), list(s.data["markout_ticks"]))
                   for s in fig.select({"type": ColumnDataSource}))
    wanted = sorted((part["horizon_s"].to_list(), part["markout_ticks"].to_list())
                    for part in summary.partition_by("strategy", maintain_order=True))
    assert shown == wanted
