"""LOBSTER loading and the replay check on the real samples in ../shared/data/lobster."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from kernels import records as R
from tests.conftest import REPO, shared_path
from workbench.data import lobster
from workbench.data.lobster import initial_row
from workbench.lobster_check import lobster_check

AMZN = ("AMZN_2012-06-21_34200000_57600000_message_1.csv", "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv")
AAPL = ("AAPL_2012-06-21_message_50_first_hour.csv", "AAPL_2012-06-21_orderbook_level1_first_hour.csv")


def test_messages_schema_and_exact_timestamps():
    messages = lobster.read_messages(shared_path("lobster", AMZN[0]))
    assert messages.schema == {"time_s": pl.Float64, "ts": pl.Int64, "kind": pl.Int8, "order_id": pl.Int64,
                               "size": pl.Int64, "price": pl.Int64, "direction": pl.Int8}
    assert messages.height == 57_515
    first = messages.row(0, named=True)
    # 34200.017459617 s after midnight, parsed from the text without float rounding
    assert first["ts"] == 34_200_017_459_617 and first["kind"] == 5 and first["price"] == 2_238_200
    assert messages["ts"].is_sorted()


def test_events_carry_kind_side_and_price_units():
    messages = lobster.read_messages(shared_path("lobster", AMZN[0]))
    events = lobster.to_events(messages, symbol=3)
    assert events.dtype == R.EVENT and len(events) == messages.height
    assert (events["symbol"] == 3).all()
    assert np.array_equal(events["kind"], messages["kind"].to_numpy())
    buys = messages["direction"].to_numpy() == 1
    assert (events["side"][buys] == R.BUY).all() and (events["side"][~buys] == R.SELL).all()
    assert np.array_equal(events["price"], messages["price"].to_numpy())


def test_orderbook_columns_and_filename():
    book = lobster.read_orderbook(shared_path("lobster", AMZN[1]))
    assert book.columns == ["ask_price_1", "ask_size_1", "bid_price_1", "bid_size_1"]
    info = lobster.parse_filename(AMZN[0])
    assert (info.ticker, info.level, info.start_ms, info.end_ms) == ("AMZN", 1, 34_200_000, 57_600_000)
    with pytest.raises(ValueError, match="not named like a LOBSTER file"):
        lobster.parse_filename("prices.csv")


def test_bad_message_rows_are_reported(tmp_path):
    path = tmp_path / "X_2012-06-21_message_1.csv"
    path.write_text("34200.1,1,1,10,100000,1\n34200.2,9,2,10,100000,1\n")
    with pytest.raises(ValueError, match="kind=9"):
        lobster.read_messages(path)


def test_initial_row_undoes_the_first_message():
    row = np.array([2_239_500, 100, 2_238_100, 21], dtype=np.int64)
    add = np.zeros(1, R.EVENT)[0]
    add["kind"], add["side"], add["price"], add["qty"] = R.EV_ADD, R.BUY, 2_238_100, 21
    # the first message added the whole best bid: before it, the bid side is unknown/empty
    assert initial_row(row, add, 1).tolist() == [2_239_500, 100, lobster.EMPTY_BID_PRICE, 0]
    cancel = add.copy()
    cancel["kind"], cancel["qty"] = R.EV_DELETE, 5
    assert initial_row(row, cancel, 1).tolist() == [2_239_500, 100, 2_238_100, 26]


def test_aapl_first_hour_matches_the_file_almost_everywhere():
    result = lobster_check(shared_path("lobster", AAPL[0]), shared_path("lobster", AAPL[1]))
    assert result.rows == 91_997 and result.levels == 1
    assert result.matched + result.resyncs == result.rows
    # an independent reference replay matches 99.98% of rows
    assert result.matched / result.rows >= 0.9998


def test_amzn_day_with_gaps_does_as_well_as_the_reference_replay():
    result = lobster_check(shared_path("lobster", AMZN[0]), shared_path("lobster", AMZN[1]))
    assert result.rows == 57_515
    assert result.matched / result.rows >= 0.858
    assert result.matched_flags.sum() == result.matched


def test_lobster_check_cli_json_and_summary_line():
    messages, orderbook = (str(shared_path("lobster", name)) for name in AMZN)
    out = subprocess.run([sys.executable, "-m", "workbench", "lobster-check", messages, orderbook, "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(data) == {"rows", "matched", "unseen_depth", "mismatched", "resyncs", "levels",
                         "unrepresented_levels", "events_per_sec"}
    assert data["rows"] == 57_515 and data["events_per_sec"] > 0
    assert data["unseen_depth"] + data["mismatched"] == data["resyncs"]
    assert data["unrepresented_levels"] == 0
    text = subprocess.run([sys.executable, "-m", "workbench", "lobster-check", messages, orderbook],
                          cwd=REPO, capture_output=True, text=True, check=True)
    last = text.stdout.strip().splitlines()[-1]
    assert last == (f"rows=57515 matched={data['matched']} "
                    f"({100 * data['matched'] / 57515:.2f}%) unseen_depth={data['unseen_depth']} "
                    f"mismatched={data['mismatched']} resyncs={data['resyncs']} levels=1")


def test_mismatched_file_lengths_are_an_error(tmp_path):
    messages = tmp_path / "X_2012-06-21_message_1.csv"
    orderbook = tmp_path / "X_2012-06-21_orderbook_1.csv"
    messages.write_text("34200.1,1,1,10,1000000,1\n34200.2,1,2,10,1000100,-1\n")
    orderbook.write_text("9999999999,0,1000000,10\n")
    with pytest.raises(ValueError, match="row-aligned"):
        lobster_check(messages, orderbook)
