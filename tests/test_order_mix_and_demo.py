"""The benchmark order mix is a valid, reproducible flow; demo and bench run end to end."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from html import escape as html_escape

import numpy as np

from kernels import records as R
from tests.conftest import REPO
from workbench.data.order_mix import MixSettings, order_mix
from workbench.reference import ReferenceBook


def test_mix_is_deterministic_and_replays_without_a_reject():
    settings = MixSettings()
    a = order_mix(30_000, seed=3, settings=settings)
    assert np.array_equal(a, order_mix(30_000, seed=3, settings=settings))
    assert not np.array_equal(a, order_mix(30_000, seed=4, settings=settings))
    book = settings.new_book()
    out = book.submit_many(a)
    assert out.rejected == 0
    kinds = set(np.unique(a["kind"]).tolist())
    assert kinds == {R.EV_ADD, R.EV_DELETE, R.EV_MODIFY}
    assert (a["tif"][a["kind"] == R.EV_ADD] == R.IOC).any()
    # the book the issue describes: about a thousand resting orders over hundreds of levels
    assert 500 <= len(book) <= 2_000
    assert len(book.get_bids(5000)) + len(book.get_asks(5000)) >= 400


def test_mix_gives_the_same_fills_as_the_reference_book():
    settings = MixSettings()
    events = order_mix(5_000, seed=11, settings=settings)
    book = settings.new_book()
    fills = book.submit_many(events).fills
    ref = ReferenceBook(tick=round(settings.tick_size * settings.price_scale))
    ref_fills = []
    for e in events:
        r = ref.apply(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]), int(e["qty"]),
                      int(e["order_type"]), int(e["tif"]), int(e["ts"]))
        assert r.reason == 0
        ref_fills += [(f.maker_id, f.taker_id, f.price, f.qty) for f in r.fills]
    assert [tuple(int(f[k]) for k in ("maker_id", "taker_id", "price", "qty")) for f in fills] == ref_fills


def _number(text):
    return float(text.replace(",", ""))


def test_demo_prints_what_the_reference_book_computes(tmp_path):
    n, seed = 50_000, 42
    out = subprocess.run([sys.executable, "-m", "workbench", "demo", "--orders", str(n),
                          "--seed", str(seed), "--no-progress",
                          "--report", str(tmp_path / "report.html")],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    # the same seeded flow through the plain-Python reference book
    settings = MixSettings()
    ref = ReferenceBook(tick=round(settings.tick_size * settings.price_scale))
    n_fills = rejects = 0
    for e in order_mix(n, seed=seed, settings=settings):
        r = ref.apply(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]),
                      int(e["qty"]), int(e["order_type"]), int(e["tif"]), int(e["ts"]))
        n_fills += len(r.fills)
        rejects += r.reason != 0
    counts = re.search(r"orders ([\d,]+)\s+fills ([\d,]+)\s+rejects ([\d,]+)", out)
    assert counts, out
    assert [_number(g) for g in counts.groups()] == [n, n_fills, rejects]
    resting = re.search(r"book: ([\d,]+) resting orders", out)
    assert _number(resting.group(1)) == len(ref.resting())
    # the printed top of book, level by level: price (currency), quantity, order count
    scale = settings.price_scale
    shown = re.findall(r"bid\s+([\d.]+)\s+(\d+)\s+(\d+)\s+\|\s+ask\s+([\d.]+)\s+(\d+)\s+(\d+)", out)
    bids, asks = ref.levels(R.BUY)[:5], ref.levels(R.SELL)[:5]
    assert len(shown) == min(len(bids), len(asks)) == 5
    for row, bid, ask in zip(shown, bids, asks):
        assert (round(_number(row[0]) * scale), int(row[1]), int(row[2])) == tuple(bid)
        assert (round(_number(row[3]) * scale), int(row[4]), int(row[5])) == tuple(ask)
    # percentiles are printed in order, and throughput figures are positive numbers
    lat = re.search(r"p50 ([\d,]+) ns\s+p90 ([\d,]+) ns\s+p99 ([\d,]+) ns\s+p99.9 ([\d,]+) ns", out)
    p = [_number(g) for g in lat.groups()]
    assert 0 < p[0] <= p[1] <= p[2] <= p[3]
    rates = re.findall(r"([\d,]+) orders/s", out)
    assert len(rates) == 2 and all(_number(r) > 0 for r in rates)
    # the backtest part wrote its report, with the summary line it printed
    summary = next(line for line in out.splitlines() if line.startswith("P&L "))
    assert html_escape(summary) in (tmp_path / "report.html").read_text()


def test_bench_book_quick_reports_every_key():
    out = subprocess.run([sys.executable, "-m", "workbench", "bench", "book", "--quick", "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    for key in ("replay_events_per_sec", "batch_orders_per_sec", "python_orders_per_sec",
                "reference_orders_per_sec", "speedup_vs_reference", "p50_ns", "p99_ns"):
        assert data[key] > 0, key
    assert data["speedup_vs_reference"] == data["batch_orders_per_sec"] / data["reference_orders_per_sec"]
