"""The yfinance loader and its parquet cache, driven by recorded Yahoo responses.

yfinance itself runs: it gets a ``requests`` session whose transport answers from
``../shared/data/yahoo_chart`` (``recorded_session``), so URL building, JSON parsing,
time zones and actions are yfinance's real code paths. No test touches the network.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_path
from workbench.data import yahoo
from workbench.data.cache import ParquetCache
from workbench.data.bars import BAR_SCHEMA
from workbench.data.yahoo import MissingDataError, load_bars, recorded_session

NOW = datetime(2020, 12, 1, tzinfo=timezone.utc)


@pytest.fixture
def session():
    return recorded_session(shared_path("yahoo_chart"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("WORKBENCH_FALLBACK", raising=False)
    return tmp_path / "cache"


def chart_requests(session):
    return [u for u in session.log if "/v8/finance/chart/" in u and "range=" not in u]


def row(frame, day):
    return frame.filter(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == day).row(0, named=True)


def test_aapl_split_raw_versus_adjusted(session, cache_dir):
    adj = load_bars("AAPL", "2020-01-01", "2020-11-07", cache_dir=cache_dir, session=session, now=NOW)
    raw = load_bars("AAPL", "2020-01-01", "2020-11-07", adjusted=False, cache_dir=cache_dir,
                    session=session, now=NOW)
    assert adj.schema == pl.Schema(BAR_SCHEMA) and raw.schema == pl.Schema(BAR_SCHEMA)
    assert adj.height == raw.height == 1 + 49  # 2 Jan, then 31 Aug .. 6 Nov
    before, after = row(raw, date(2020, 1, 2)), row(raw, date(2020, 8, 31))
    # Yahoo reports 2 Jan 2020 split-adjusted (75.0875); as traded it was 4x that
    assert before["close"] == pytest.approx(300.35, abs=0.01)
    assert before["volume"] == 135_480_400 // 4
    assert after["close"] == pytest.approx(129.04, abs=0.01)  # on/after the ex-date: no change
    a = row(adj, date(2020, 1, 2))
    assert a["close"] == a["adj_close"] == before["adj_close"]
    assert a["open"] / a["close"] == pytest.approx(before["open"] / before["close"])
    assert a["volume"] == 135_480_400
    # the 0.205 dividend (ex 6 Nov) is in adj_close before the ex-date, not from it on
    nov5, nov6 = row(raw, date(2020, 11, 5)), row(raw, date(2020, 11, 6))
    ratio5 = nov5["adj_close"] / nov5["close"]
    ratio6 = nov6["adj_close"] / nov6["close"]
    assert ratio5 / ratio6 == pytest.approx(1 - 0.205 / nov5["close"], rel=1e-4)


def test_weekend_is_empty_and_the_empty_chunk_is_cached(session, cache_dir):
    now = datetime(2025, 2, 10, tzinfo=timezone.utc)
    frame = load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", cache_dir=cache_dir,
                      session=session, now=now)
    assert frame.is_empty() and frame.schema == pl.Schema(BAR_SCHEMA)
    assert any("interval=1m" in u for u in chart_requests(session))
    again = load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", cache_dir=cache_dir,
                      offline=True, now=now)
    assert again.is_empty()


def test_fx_and_non_us_listings_keep_their_exchange_day(session, cache_dir):
    frame = load_bars(["EURUSD=X", "WSKT.JK", "ORSTED.CO", "GC=F", "0P000071W8.TO"],
                      "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    ts = {(r["symbol"], r["ts"].isoformat()) for r in frame.iter_rows(named=True)}
    # a daily bar opens at local midnight: London, Jakarta (+7), Copenhagen (+1), New York, Toronto
    assert ("EURUSD=X", "2020-01-01T00:00:00+00:00") in ts
    assert ("WSKT.JK", "2020-01-01T17:00:00+00:00") in ts
    assert ("ORSTED.CO", "2020-01-01T23:00:00+00:00") in ts
    assert ("GC=F", "2020-01-02T05:00:00+00:00") in ts
    assert ("0P000071W8.TO", "2020-01-02T05:00:00+00:00") in ts
    fx = frame.filter(pl.col("symbol") == "EURUSD=X")
    assert fx.height == 3 and fx.get_column("volume").to_list() == [0, 0, 0]
    wskt = frame.filter(pl.col("symbol") == "WSKT.JK").row(0, named=True)
    assert wskt["close"] == pytest.approx(wskt["adj_close"])  # adjusted: close is adj_close
    cached = {p.parent.name for p in (cache_dir / "yahoo" / "1d").rglob("*.parquet")}
    assert "EURUSD%3DX" in cached and "GC%3DF" in cached


def test_cached_data_is_served_offline_without_requests(session, cache_dir):
    first = load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    n = len(session.log)
    second = load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session,
                       now=NOW, offline=True)
    assert len(session.log) == n
    assert first.equals(second) and first.height == 1


def test_offline_error_names_what_is_missing(cache_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    with pytest.raises(MissingDataError) as info:
        load_bars(["MSFT", "IBM"], "2020-01-01", "2021-02-01", cache_dir=cache_dir, now=NOW)
    message = str(info.value)
    assert "MSFT 1d 2020-01-01..2021-01-01" in message and "IBM 1d 2021-01-01..2022-01-01" in message
    assert str(cache_dir) in message
    assert {m[0] for m in info.value.missing} == {"MSFT", "IBM"}


def test_no_network_falls_back_to_the_cache_then_errors(session, cache_dir):
    import requests
    from requests.adapters import BaseAdapter

    class Down(BaseAdapter):
        def send(self, request, **kwargs):
            raise requests.ConnectionError("network is unreachable")

        def close(self):
            pass

    down = requests.Session()
    down.mount("https://", Down())
    cached = load_bars("GOOG", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    # expire the chunk (fetched "long ago" but before it settled): a refetch is due and fails
    path = ParquetCache(cache_dir).path("yahoo", "1d", "GOOG", "2020-01-01")
    stamp = (NOW - timedelta(days=2)).timestamp()
    os.utime(path, (stamp, stamp))
    served = load_bars("GOOG", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=down, now=NOW)
    assert served.equals(cached)
    with pytest.raises(MissingDataError, match="QQQ 1d 2020-01-01..2021-01-01.*network"):
        load_bars("QQQ", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=down, now=NOW)


def test_fallback_to_synthetic_warns_and_fills_only_the_missing_symbol(session, cache_dir):
    load_bars("ABBV", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    with pytest.warns(UserWarning, match="synthetic"):
        frame = load_bars(["ABBV", "NOPE"], "2020-01-01", "2020-01-04", cache_dir=cache_dir,
                          offline=True, fallback="synthetic", now=NOW)
    assert set(frame.get_column("symbol")) == {"ABBV", "NOPE"}
    assert frame.filter(pl.col("symbol") == "NOPE").height == 3  # 1-3 Jan: weekdays (no holiday calendar)


def test_recent_chunks_expire_settled_chunks_do_not(session, cache_dir):
    now = datetime(2020, 1, 3, 18, tzinfo=timezone.utc)  # inside the 2020 chunk
    load_bars("SPOT", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=now)
    path = ParquetCache(cache_dir).path("yahoo", "1d", "SPOT", "2020-01-01")
    fetched = (now - timedelta(hours=1)).timestamp()
    os.utime(path, (fetched, fetched))
    # (yfinance memoises past-range responses in memory, so a refetch shows as a rewrite
    # of the cache file rather than as a new HTTP request)
    load_bars("SPOT", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=now)
    assert path.stat().st_mtime == fetched  # fresh: 1 h < 12 h
    later = now + timedelta(hours=13)
    load_bars("SPOT", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=later)
    assert path.stat().st_mtime > fetched  # expired: refetched and rewritten
    # a file written after the chunk settled never expires, however old
    settled = datetime(2021, 1, 5, tzinfo=timezone.utc).timestamp()
    os.utime(path, (settled, settled))
    load_bars("SPOT", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session,
              now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert path.stat().st_mtime == settled


def test_corrupt_cache_file_is_quarantined_never_deleted_and_refetched(session, cache_dir):
    good = load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    path = ParquetCache(cache_dir).path("yahoo", "1d", "CRON", "2020-01-01")
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(MissingDataError, match="quarantined"):  # offline, it counts as missing...
        load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, offline=True, now=NOW)
    assert not path.exists()  # ...and was moved aside, not deleted
    path.write_bytes(b"garbage again")
    again = load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    assert again.equals(good)  # online: refetched
    assert pl.read_parquet(path).height == good.height
    kept = sorted((cache_dir / "quarantine" / "yahoo" / "1d" / "CRON").glob("*.parquet"))
    assert sorted(p.read_bytes() for p in kept) == [b"PAR1 this is not parquet", b"garbage again"]


# one corrupt chunk per class: (name, how to spoil the good frame, words of the reason)
CORRUPTIONS = [
    ("price as text", lambda f: f.with_columns(pl.col("close").cast(pl.Utf8)),
     "column 'close' is String, expected Float64"),
    ("missing column", lambda f: f.drop("adj_close"), "missing column(s) ['adj_close']"),
    ("volume as float", lambda f: f.with_columns(pl.col("volume").cast(pl.Float64)),
     "column 'volume' is Float64, expected Int64"),
    ("NaN price", lambda f: f.with_columns(pl.lit(float("nan")).alias("open")),
     "column 'open' has 1 value(s) not finite and > 0"),
    ("negative price", lambda f: f.with_columns(-pl.col("low")),
     "column 'low' has 1 value(s) not finite and > 0"),
    ("zero price", lambda f: f.with_columns(pl.lit(0.0).alias("high")), "column 'high' has 1 value(s)"),
    ("infinite price", lambda f: f.with_columns(pl.lit(float("inf")).alias("adj_close")),
     "column 'adj_close' has 1 value(s) not finite and > 0 (first: inf"),
    ("negative volume", lambda f: f.with_columns(pl.lit(-5, pl.Int64).alias("volume")),
     "column 'volume' has 1 value(s) not finite and >= 0"),
    ("null", lambda f: f.with_columns(pl.lit(None, pl.Float64).alias("close")), "column 'close' has 1 null"),
    ("duplicate ts", lambda f: pl.concat([f, f]), "column 'ts' is not strictly increasing"),
    ("unsorted ts", lambda f: pl.concat([f, f.with_columns(pl.col("ts").dt.offset_by("-1d"))]),
     "column 'ts' is not strictly increasing"),
    ("zero rows", lambda f: f.clear(), "zero rows"),
    ("not parquet", None, "not a readable parquet file"),
]


@pytest.mark.parametrize("name, spoil, reason", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_invalid_chunk_is_reported_quarantined_and_refetched(name, spoil, reason, session, cache_dir,
                                                             capsys):
    import json

    from workbench.cli import main

    good = load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    path = ParquetCache(cache_dir).path("yahoo", "1d", "CRON", "2020-01-01")
    if spoil is None:
        path.write_bytes(b"PAR1\x00 not parquet at all")
    else:
        spoil(pl.read_parquet(path)).write_parquet(path)  # right place, no row-count note
    bad_bytes = path.read_bytes()

    # data info reads only: the file is marked invalid with its reason, and left in place
    info = yahoo.cache_info(cache_dir).row(0, named=True)
    assert (info["status"], info["file"]) == ("invalid", "yahoo/1d/CRON/2020-01-01.parquet")
    assert reason in info["problem"]
    assert main(["data", "info", "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 invalid" in out and f"INVALID yahoo/1d/CRON/2020-01-01.parquet: {reason}" in out
    assert path.read_bytes() == bad_bytes

    # offline: never served; quarantined with a reason file, and reported as missing
    with pytest.raises(MissingDataError, match="CRON 1d 2020-01-01..2021-01-01.*1 invalid cache file"):
        load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, offline=True, now=NOW)
    assert not path.exists()
    [moved] = (cache_dir / "quarantine" / "yahoo" / "1d" / "CRON").glob("2020-01-01.*.parquet")
    assert moved.read_bytes() == bad_bytes  # nothing lost
    note = json.loads(moved.with_name(moved.name + ".reason.json").read_text())
    assert note["original"] == "yahoo/1d/CRON/2020-01-01.parquet" and reason in note["reason"]
    assert note["bytes"] == len(bad_bytes) and note["quarantined_at"]

    # online: refetched (recorded responses), served, and the quarantined copy is kept
    again = load_bars("CRON", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    assert again.equals(good)
    assert moved.read_bytes() == bad_bytes
    table = yahoo.cache_info(cache_dir)
    assert sorted(table["status"]) == ["ok", "quarantined"]
    q = table.filter(pl.col("status") == "quarantined").row(0, named=True)
    assert (q["symbol"], q["chunk"]) == ("CRON", "2020-01-01")
    assert q["file"] == moved.relative_to(cache_dir).as_posix()
    assert reason in q["problem"]
    assert main(["data", "info", "--cache-dir", str(cache_dir), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert sorted(f["status"] for f in files) == ["ok", "quarantined"]
    assert main(["data", "info", "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 files" in out and "1 quarantined" in out and f"QUARANTINED {q['file']}: {reason}" in out


def test_an_empty_result_cached_on_purpose_stays_valid(session, cache_dir):
    now = datetime(2025, 2, 10, tzinfo=timezone.utc)
    load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", cache_dir=cache_dir,
              session=session, now=now)
    path = ParquetCache(cache_dir).path("yahoo", "1m", "AAPL", "2025-01-27")
    assert pl.read_parquet(path).is_empty()
    assert pl.read_parquet_metadata(path)["workbench.rows"] == "0"  # the writer says: empty on purpose
    info = yahoo.cache_info(cache_dir).row(0, named=True)
    assert (info["status"], info["rows"], info["problem"]) == ("ok", 0, None)
    assert load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", cache_dir=cache_dir,
                     offline=True, now=now).is_empty()
    assert not (cache_dir / "quarantine").exists()


def test_invalid_fresh_bars_are_refused_and_not_cached(cache_dir, monkeypatch):
    def fetch(symbol, interval, a, b, session, yf_cache):
        frame = pl.DataFrame({"ts": [datetime(2020, 1, 2, 5, tzinfo=timezone.utc)], "open": [1.0],
                              "high": [1.0], "low": [float("nan")], "close": [1.0], "adj_close": [1.0],
                              "volume": [10], "dividends": [0.0], "splits": [0.0],
                              "tz": ["America/New_York"]})
        return frame.cast(yahoo.CHUNK_SCHEMA)

    monkeypatch.setattr(yahoo, "_fetch_chunk", fetch)
    with pytest.raises(ValueError, match="invalid bars for XYZ 1d 2020-01-01..2021-01-01: column 'low'"):
        load_bars("XYZ", "2020-01-01", "2020-01-04", cache_dir=cache_dir, now=NOW)
    assert not list(cache_dir.rglob("*.parquet"))


def test_cache_rules_check_per_group_and_the_reserved_key():
    from workbench.data.cache import Rules

    rules = Rules({"symbol": pl.Utf8, "t": pl.Int64}, increasing="t", within="symbol")
    ok = pl.DataFrame({"symbol": ["A", "A", "B", "B"], "t": [1, 2, 1, 2]})
    assert rules.check(ok) is None  # each symbol's clock restarts
    assert "within symbol" in rules.check(ok.with_columns(pl.Series("t", [1, 2, 2, 2])))
    with pytest.raises(ValueError, match="reserved"):
        ParquetCache("/tmp").path("quarantine", "x")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    cache = ParquetCache(tmp_path)
    path = cache.path("yahoo", "1d", "X", "2020-01-01")
    cache.write(path, pl.DataFrame({"a": [1]}))

    def explode(self, fh, *args, **kwargs):
        fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", explode)
    with pytest.raises(OSError, match="disk full"):
        cache.write(path, pl.DataFrame({"a": [2]}))
    monkeypatch.undo()
    assert pl.read_parquet(path)["a"].to_list() == [1]  # the old file is untouched
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_intraday_lookback_limit_and_chunking():
    too_old = datetime(2025, 6, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="last 30 days"):
        load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", offline=False,
                  cache_dir="/nonexistent/cache", now=too_old)
    weeks = yahoo.chunks("1m", date(2025, 1, 29), date(2025, 2, 12))
    assert all((b - a).days == 7 and a.weekday() == 0 for a, b in weeks)
    assert weeks[0][0] <= date(2025, 1, 29) and weeks[-1][1] >= date(2025, 2, 12)
    assert yahoo.chunks("1h", date(2024, 12, 15), date(2025, 1, 2)) == [
        (date(2024, 12, 1), date(2025, 1, 1)), (date(2025, 1, 1), date(2025, 2, 1))]


@pytest.mark.parametrize("kwargs, field", [
    (dict(symbols=[], start="2020-01-01", end="2020-02-01"), "symbols"),
    (dict(symbols="AAPL", start="2020-01-01", end="2020-02-01", interval="2m"), "interval"),
    (dict(symbols="AAPL", start="2020-02-01", end="2020-01-01"), "end"),
    (dict(symbols="AAPL", start="yesterday", end="2020-01-01"), "start"),
    (dict(symbols="AAPL", start="2020-01-01", end="2020-02-01", fallback="zeros"), "fallback"),
])
def test_bad_arguments_are_named(kwargs, field, cache_dir):
    with pytest.raises(ValueError, match=field):
        load_bars(cache_dir=cache_dir, offline=True, **kwargs)


@pytest.mark.parametrize("name, first_utc, zone_rows", [
    ("CALM-1d-no-bad-divs.csv", "2022-01-03T05:00:00+00:00", "America/New_York"),
    ("EA-15m-no-bad-divs.csv", "2026-05-26T08:00:00+00:00", "America/New_York"),
])
def test_yfinance_history_frames_convert_with_time_zones(name, first_utc, zone_rows):
    import pandas as pd

    csv = pd.read_csv(shared_path("yfinance_history", name), index_col=0)
    csv.index = pd.to_datetime(csv.index, utc=True).tz_convert(zone_rows)
    frame = yahoo.from_yfinance_frame(csv, name)
    assert frame.schema == pl.Schema(yahoo.CHUNK_SCHEMA)
    assert frame.height == len(csv)
    assert frame["ts"][0].isoformat() == first_utc
    assert frame["tz"][0] == zone_rows
    assert np.allclose(frame["adj_close"].to_numpy(), csv["Adj Close"].to_numpy())
    assert frame.filter(pl.col("dividends") > 0).height == int((csv["Dividends"] > 0).sum())
    # daily bars sit on local midnights through both DST offsets
    if "1d" in name:
        local = frame["ts"].dt.convert_time_zone(zone_rows)
        assert (local.dt.hour() == 0).all()
        assert set(frame["ts"].dt.hour()) == {4, 5}


def test_futures_may_trade_below_zero_but_stocks_may_not():
    # WTI crude (CL=F) settled at -37.63 on 2020-04-20: a futures chunk needs only finite
    # prices; a stock's negative price is invalid; NaN is invalid for both
    ts = pl.Series("ts", [datetime(2020, 4, 20, tzinfo=timezone.utc)]).cast(pl.Datetime("ns", "UTC"))
    row = pl.DataFrame({"ts": ts, "open": [17.73], "high": [17.85], "low": [-40.32], "close": [-37.63],
                        "adj_close": [-37.63], "volume": [247_947], "dividends": [0.0], "splits": [0.0],
                        "tz": ["America/New_York"]}).cast(yahoo.CHUNK_SCHEMA)
    assert yahoo.chunk_rules("CL=F").check(row) is None
    assert "not finite and > 0" in yahoo.chunk_rules("AAPL").check(row)
    nan = row.with_columns(pl.lit(float("nan")).alias("close"))
    assert "not finite" in yahoo.chunk_rules("CL=F").check(nan)
