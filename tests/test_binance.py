"""Binance captures: parsing, U/u (and pu) sequencing, gaps, book rebuild vs bookTicker."""
from __future__ import annotations

import gzip
import json
import numpy as np
import polars as pl
import pytest

from kernels import records as R
from tests.conftest import shared_path
from workbench.data import binance
from workbench.data.binance import check_capture, read_capture, rebuild_book

CAPTURE = ("binance", "binance_spot_btcusdt_20240808.gz")


@pytest.fixture(scope="module")
def spot():
    """The shared capture, parsed once for the module."""
    return read_capture(shared_path(*CAPTURE))


@pytest.fixture(scope="module")
def spot_result(spot):
    return check_capture(spot)


def reference_bbo(capture):
    """Plain-Python rebuild: dict books, best bid/ask after every message."""
    bids, asks, out = {}, {}, []
    for u in capture.updates:
        if u["flags"] & R.L2F_SNAPSHOT_START:
            bids.clear()
            asks.clear()
        if u["price"] > 0:
            book = bids if u["side"] == R.BUY else asks
            if u["qty"]:
                book[int(u["price"])] = int(u["qty"])
            else:
                book.pop(int(u["price"]), None)
        if u["flags"] & R.L2F_END_OF_MESSAGE:
            b = max(bids) if bids else -1
            a = min(asks) if asks else -1
            out.append((int(u["update_id"]), b, bids.get(b, 0), a, asks.get(a, 0)))
    return out


def test_spot_capture_rebuild_matches_every_comparable_book_ticker(spot_result):
    result = spot_result
    assert result["market"] == "spot"
    assert result["snapshots"] == 1 and result["gaps"] == 0 and result["malformed"] == 0
    assert result["updates"] == result["diffs_received"] - result["dropped_stale"]
    assert result["bbo_rows"] > 20_000 and result["comparable"] > 300
    assert result["matched"] == result["comparable"] and result["pct"] == 100.0


def test_kernel_book_equals_the_python_reference(spot):
    capture = spot
    bbo, stats = rebuild_book(capture)
    expected = reference_bbo(capture)
    got = [(int(r["update_id"]), int(r["bid_price"]), int(r["bid_qty"]), int(r["ask_price"]),
            int(r["ask_qty"])) for r in bbo]
    assert got == expected
    assert all(b < a for _, b, _, a, _ in got)  # never crossed
    assert stats["tick"] == 100  # 0.01 USDT at price_scale 10_000


def test_a_missing_diff_is_a_gap_and_nothing_after_it_is_compared(tmp_path, spot_result):
    lines = gzip.open(shared_path(*CAPTURE), "rt").read().splitlines()
    depth = [i for i, line in enumerate(lines) if "@depth" in line]
    dropped = depth[len(depth) // 2]
    path = tmp_path / "gap.txt"
    path.write_text("\n".join(lines[:dropped] + ["not a message", "123 {\"stream\": \"x@y\", \"data\": {}}"]
                              + lines[dropped + 1:]) + "\n")
    full = spot_result
    result = check_capture(path)
    assert result["gaps"] == 1 and result["malformed"] == 2
    assert result["updates"] < full["updates"] // 2 + 5
    assert 0 < result["comparable"] < full["comparable"]
    assert result["matched"] == result["comparable"]


def _futures_capture(path, with_gap=False):
    """A tiny USD-M futures capture: snapshot, diffs chained by pu, bookTickers."""
    def line(ts, doc):
        return f"{ts} {json.dumps(doc)}"

    def diff(U, u, pu, bids, asks):
        return {"stream": "btcusdt@depth@0ms", "data": {
            "e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": U, "u": u, "pu": pu,
            "b": bids, "a": asks}}

    def ticker(u, b, bq, a, aq):
        return {"stream": "btcusdt@bookTicker", "data": {
            "e": "bookTicker", "u": u, "s": "BTCUSDT", "b": b, "B": bq, "a": a, "A": aq}}

    out = [
        line(1, diff(90, 95, 89, [["100.0", "1"]], [])),        # stale: before the snapshot
        line(2, diff(96, 101, 95, [["100.1", "2"]], [])),       # straddles lastUpdateId=100
        line(3, {"lastUpdateId": 100, "E": 1, "T": 1,
                 "bids": [["100.0", "5"], ["99.9", "1"]], "asks": [["100.3", "4"], ["100.4", "1"]]}),
        line(4, ticker(101, "100.1", "2", "100.3", "4")),
        line(5, diff(102, 110, 101, [["100.1", "0"]], [["100.2", "3"]])),
        line(6, ticker(110, "100.0", "5", "100.2", "3")),
        line(7, ticker(109, "100.0", "5", "100.2", "3")),       # not comparable: no such update
    ]
    if with_gap:
        out.append(line(8, diff(115, 120, 112, [["100.1", "9"]], [])))  # pu != 110
        out.append(line(9, ticker(120, "100.1", "9", "100.2", "3")))
    else:
        out.append(line(8, diff(111, 120, 110, [["100.1", "9"]], [])))
        out.append(line(9, ticker(120, "100.1", "9", "100.2", "2")))   # size differs: mismatch
    path.write_text("\n".join(out) + "\n")
    return path


def test_futures_variant_uses_pu_and_counts_mismatches(tmp_path):
    result = check_capture(_futures_capture(tmp_path / "f.txt"))
    assert result["market"] == "futures"
    assert (result["snapshots"], result["updates"], result["gaps"]) == (1, 3, 0)
    assert result["dropped_stale"] == 1
    assert (result["bbo_rows"], result["comparable"], result["matched"]) == (4, 3, 2)
    gap = check_capture(_futures_capture(tmp_path / "g.txt", with_gap=True))
    assert (gap["updates"], gap["gaps"], gap["comparable"], gap["matched"]) == (2, 1, 2, 2)


def test_futures_diff_ending_at_the_snapshot_id_is_the_straddling_one(tmp_path):
    snap = {"lastUpdateId": 100, "bids": [["10.0", "1"]], "asks": [["10.2", "1"]]}
    diffs = [{"stream": "x@depth@0ms", "data": {"e": "depthUpdate", "U": 95, "u": 100, "pu": 94,
                                                "b": [["10.1", "2"]], "a": []}},
             {"stream": "x@depth@0ms", "data": {"e": "depthUpdate", "U": 101, "u": 104, "pu": 100,
                                                "b": [], "a": [["10.2", "3"]]}},
             {"stream": "x@bookTicker", "data": {"u": 104, "b": "10.1", "B": "2", "a": "10.2", "A": "3"}}]
    path = tmp_path / "f.txt"
    path.write_text("\n".join([f"1 {json.dumps(snap)}"] + [f"{i + 2} {json.dumps(d)}" for i, d in enumerate(diffs)]))
    result = check_capture(path)
    assert (result["updates"], result["gaps"], result["comparable"], result["matched"]) == (2, 0, 1, 1)


def test_prices_and_sizes_parse_exactly(spot):
    assert binance._units("61837.63000000", 4) == 618_376_300
    assert binance._units("0.00105000", 8) == 105_000
    assert binance._units("3", 8) == 300_000_000
    with pytest.raises(ValueError):
        binance._units("1.123456789", 8)
    capture = spot
    assert capture.trades.height > 9000 and capture.depth.height > 50_000
    assert capture.book_ticker["bid_price"].dtype.is_integer()


def test_cli_last_line_and_json(spot_result, capsys):
    from workbench.cli import main

    path = str(shared_path(*CAPTURE))
    assert main(["data", "binance-check", path]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    r = spot_result
    assert last == (f"snapshots=1 updates={r['updates']} gaps=0 bbo_rows={r['bbo_rows']} "
                    f"comparable={r['comparable']} matched={r['comparable']} (100.00%) crossed=0")
    assert main(["data", "binance-check", path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"snapshots", "updates", "gaps", "bbo_rows", "comparable", "matched", "pct",
                           "crossed"}
    assert result["crossed"] == 0
    assert result["matched"] == r["matched"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="capture not found"):
        read_capture(tmp_path / "nope.gz")
    assert np.all(rebuild_book(read_capture(_futures_capture(tmp_path / "f.txt")))[0]["bid_price"] > 0)


def test_the_replay_is_never_crossed_and_the_old_receive_time_sort_was(spot, spot_result):
    """The array the backtester and the check replay keeps the snapshot ahead of the diff
    that straddles it; sorting the applied updates by receive time (what the backtester
    once did) puts that diff first, the snapshot wipes it, and the book stays crossed."""
    assert spot_result["crossed"] == 0
    rows = binance.market_rows(spot)
    depth = rows[(rows["flags"] & R.L2F_TRADE) == 0]
    assert np.array_equal(depth["update_id"], spot.updates["update_id"])   # sync order kept
    assert np.all(np.diff(rows["ts"]) >= 0)
    naive = spot.updates[np.argsort(spot.updates["ts"], kind="stable")]
    _, stats = rebuild_book(spot, rows=naive)
    assert stats["crossed"] > 1_000


def test_the_backtester_replays_the_checked_array_and_its_book_is_never_crossed(spot):
    from workbench.backtest import Backtest
    from workbench.data.market import load_events

    path = shared_path(*CAPTURE)
    md = load_events(str(path))
    rows = binance.market_rows(spot)
    assert md.kind == "l2" and np.array_equal(md.events, rows)   # one array for both
    tick, low = binance.ladder_window(spot.updates, binance.LADDER_TICKS)
    assert md.ladder == (low, 2 * binance.LADDER_TICKS + 1) and md.tick == tick
    bbo, _ = rebuild_book(spot)
    r = (Backtest(str(path), record_every_s=0.05).strategy("mm_skew", half_spread_ticks=1, qty=100_000)
         .latency(50, 100, 50).run(progress=False))
    eq = r.equity.drop_nulls(["bid", "ask"])
    assert eq.height > 1_000
    scale = md.price_scale
    bid = np.round(eq["bid"].to_numpy() * scale).astype(np.int64)
    ask = np.round(eq["ask"].to_numpy() * scale).astype(np.int64)
    assert np.all(bid < ask)    # the backtester's own book, never crossed
    # and it is the checked book: each recorded top is the check's after the last message
    # at or before the record (or the one before it, when messages share a timestamp)
    ts = eq["ts"].to_numpy().astype(np.int64) if eq["ts"].dtype == pl.Int64 else \
        eq["ts"].dt.epoch("ns").to_numpy()
    idx = np.searchsorted(bbo["ts"], ts, side="right") - 1
    ok = 0
    for k, i in enumerate(idx):
        same = np.nonzero(bbo["ts"] == bbo["ts"][i])[0]
        cands = {(int(bbo["bid_price"][j]), int(bbo["ask_price"][j])) for j in range(max(0, same[0] - 1), i + 1)}
        ok += (int(bid[k]), int(ask[k])) in cands
    assert ok == len(idx)
