"""The yfinance loader and its parquet cache, driven by recorded Yahoo responses.

yfinance itself runs: it gets a ``requests`` session whose transport answers from
``../shared/data/yahoo_chart`` (``recorded_session``), so URL building, JSON parsing,
time zones, actions and price repair are yfinance's real code paths. No test touches the
network.

Cases the recorded set lacks are written in the same format under
``tests/data/yahoo_chart`` (constructed, not recordings; each file's ``note`` says so):
a London listing quoted in pence with one day in pounds (the 100x mix-up yfinance's
repair fixes and marks), a Johannesburg listing in cents with one price 100x off (fixed
crudely, unmarked by yfinance), and Bitcoin over a weekend.
"""
from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_path
from workbench.data import yahoo
from workbench.data.cache import VERSION_KEY, ParquetCache
from workbench.data.yahoo import YAHOO_BAR_SCHEMA, MissingDataError, load_bars, recorded_session

NOW = datetime(2020, 12, 1, tzinfo=timezone.utc)
CONSTRUCTED = Path(__file__).parent / "data" / "yahoo_chart"   # our own files, always present


@pytest.fixture
def session():
    return recorded_session(shared_path("yahoo_chart"))


@pytest.fixture
def constructed():
    return recorded_session(CONSTRUCTED)


def chart_meta_and_rows(path: Path):
    """A recorded response read without yfinance: (meta, [(timestamp, close, adjclose)])."""
    result = json.loads(path.read_text())["response"]["bodyJson"]["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    adj = result["indicators"]["adjclose"][0]["adjclose"]
    return result["meta"], list(zip(result.get("timestamp") or [], quote["close"], adj))


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
    assert adj.schema == pl.Schema(YAHOO_BAR_SCHEMA) and raw.schema == pl.Schema(YAHOO_BAR_SCHEMA)
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
    # yfinance's repair (on by default) checks the split and the dividend adjustment and
    # leaves Yahoo's correct values alone: the same bars as with repair off, none marked
    for frame, adjusted in ((adj, True), (raw, False)):
        unrepaired = load_bars("AAPL", "2020-01-01", "2020-11-07", adjusted=adjusted, repair=False,
                               cache_dir=cache_dir, session=session, now=NOW)
        assert not frame["repaired"].any() and not unrepaired["repaired"].any()
        assert frame.equals(unrepaired)
    assert set(adj["currency"]) == {"USD"} and set(adj["exchange_tz"]) == {"America/New_York"}
    # New York sessions: the bar of 2 Jan opens at local midnight (05:00 UTC in winter,
    # 04:00 in summer), and its session date is the New York date
    assert adj["session_date"].to_list() == [
        t.astimezone(ZoneInfo("America/New_York")).date() for t in adj["ts"].to_list()]
    assert adj["session_date"][0] == date(2020, 1, 2) and adj["session_date"][-1] == date(2020, 11, 6)


def test_weekend_is_empty_and_the_empty_chunk_is_cached(session, cache_dir):
    now = datetime(2025, 2, 10, tzinfo=timezone.utc)
    frame = load_bars("AAPL", "2025-02-01", "2025-02-03", interval="1m", cache_dir=cache_dir,
                      session=session, now=now)
    assert frame.is_empty() and frame.schema == pl.Schema(YAHOO_BAR_SCHEMA)
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


# the recorded non-US listings, FX and a future: (symbol, its file under yahoo_chart)
LISTINGS = [(s, f"chart-{s}-2020-01-01-to-2020-01-03.json")
            for s in ("AZT.OL", "ORSTED.CO", "WSKT.JK", "0P000071W8.TO", "EURUSD=X", "GC=F")]


def test_session_date_currency_and_zone_come_from_the_exchange(session, cache_dir):
    frame = load_bars([s for s, _ in LISTINGS], "2020-01-01", "2020-01-04", cache_dir=cache_dir,
                      session=session, now=NOW)
    assert frame.schema == pl.Schema(YAHOO_BAR_SCHEMA)
    for symbol, name in LISTINGS:
        meta, rows = chart_meta_and_rows(shared_path("yahoo_chart", name))
        zone = ZoneInfo(meta["exchangeTimezoneName"])
        mine = frame.filter(pl.col("symbol") == symbol)
        # independent of yfinance: Yahoo stamps a daily bar with a time inside its session;
        # that instant's date on the exchange's clock is the trading date
        expected = [datetime.fromtimestamp(t, zone).date() for t, _, _ in rows]
        assert mine["session_date"].to_list() == expected, symbol
        assert mine["adj_close"].to_list() == pytest.approx([a for _, _, a in rows]), symbol
        assert set(mine["exchange_tz"]) == {meta["exchangeTimezoneName"]}
        assert set(mine["currency"]) == {meta["currency"]} and not mine["minor_unit"].any()
        assert not mine["repaired"].any()
    got = {r["symbol"]: (r["currency"], r["exchange_tz"]) for r in frame.iter_rows(named=True)}
    assert got == {"AZT.OL": ("NOK", "Europe/Oslo"), "ORSTED.CO": ("DKK", "Europe/Copenhagen"),
                   "WSKT.JK": ("IDR", "Asia/Jakarta"), "0P000071W8.TO": ("CAD", "America/Toronto"),
                   "EURUSD=X": ("USD", "Europe/London"), "GC=F": ("USD", "America/New_York")}
    # the trap the column removes: east of London the session's bar is stamped on the
    # previous UTC day, so grouping by the UTC date puts 2 Jan on 1 Jan
    for symbol in ("AZT.OL", "ORSTED.CO", "WSKT.JK"):
        row = frame.filter(pl.col("symbol") == symbol).row(0, named=True)
        assert row["session_date"] == date(2020, 1, 2) and row["ts"].date() == date(2020, 1, 1)
    by_day = frame.group_by("session_date").agg(pl.col("symbol").n_unique()).sort("session_date")
    assert by_day.rows() == [(date(2020, 1, 1), 1), (date(2020, 1, 2), 6), (date(2020, 1, 3), 1)]


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
        # right place and format version, no row-count note
        spoil(pl.read_parquet(path)).write_parquet(path, metadata={VERSION_KEY: str(yahoo.CHUNK_VERSION)})
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
    def fetch(symbol, interval, a, b, session, yf_cache, repair):
        frame = pl.DataFrame({"ts": [datetime(2020, 1, 2, 5, tzinfo=timezone.utc)], "open": [1.0],
                              "high": [1.0], "low": [float("nan")], "close": [1.0], "adj_close": [1.0],
                              "volume": [10], "dividends": [0.0], "splits": [0.0],
                              "tz": ["America/New_York"], "currency": ["USD"], "repaired": [False]})
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
    (dict(symbols="AAPL", start="2020-01-01", end="2020-02-01", repair="yes"), "repair"),
    (dict(symbols="AAPL", start="2020-01-01", end="2020-02-01", major_units=1), "major_units"),
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
    frame = yahoo.from_yfinance_frame(csv, name, currency="USD")
    assert frame.schema == pl.Schema(yahoo.CHUNK_SCHEMA)
    assert set(frame["currency"]) == {"USD"} and not frame["repaired"].any()  # no Repaired? column
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
                        "tz": ["America/New_York"], "currency": ["USD"], "repaired": [False]}
                       ).cast(yahoo.CHUNK_SCHEMA)
    assert yahoo.chunk_rules("CL=F").check(row) is None
    assert "not finite and > 0" in yahoo.chunk_rules("AAPL").check(row)
    nan = row.with_columns(pl.lit(float("nan")).alias("close"))
    assert "not finite" in yahoo.chunk_rules("CL=F").check(nan)


# ------------------------------------------------------- minor units, price repair, crypto
LONDON = CONSTRUCTED / "chart-WBGBP.L-2023-07-31-to-2023-08-12.json"
BITCOIN = CONSTRUCTED / "chart-BTC-USD-2023-08-03-to-2023-08-09.json"
LATER = datetime(2024, 12, 1, tzinfo=timezone.utc)


def test_a_pence_listing_is_flagged_repaired_and_converted_on_request(constructed, cache_dir):
    meta, rows = chart_meta_and_rows(LONDON)
    assert meta["currency"] == "GBp"
    sent = pl.DataFrame({"session_date": [datetime.fromtimestamp(t, ZoneInfo("Europe/London")).date()
                                          for t, _, _ in rows], "sent": [c for _, c, _ in rows]})
    # the constructed day: every price of 7 Aug is 1/100 of its neighbours (pounds)
    bad = date(2023, 8, 7)
    median = sent["sent"].median()
    assert sent.filter(pl.col("sent") < median / 50)["session_date"].to_list() == [bad]

    kwargs = dict(cache_dir=cache_dir, session=constructed, now=LATER)
    repaired = load_bars("WBGBP.L", "2023-07-31", "2023-08-12", **kwargs)
    as_sent = load_bars("WBGBP.L", "2023-07-31", "2023-08-12", repair=False, **kwargs)
    major = load_bars("WBGBP.L", "2023-07-31", "2023-08-12", major_units=True, **kwargs)
    for frame in (repaired, as_sent):
        assert frame.schema == pl.Schema(YAHOO_BAR_SCHEMA)
        assert set(frame["currency"]) == {"GBp"} and frame["minor_unit"].all()
        assert set(frame["exchange_tz"]) == {"Europe/London"}
        # BST: the session of Friday 4 Aug 2023 opens at 2023-08-03 23:00 UTC
        assert frame["session_date"].to_list() == sent["session_date"].to_list()
        friday = frame.filter(pl.col("session_date") == date(2023, 8, 4)).row(0, named=True)
        assert friday["ts"] == datetime(2023, 8, 3, 23, tzinfo=timezone.utc)
    # repair off: Yahoo's values as sent, the pound day included, nothing marked
    assert as_sent["close"].to_list() == pytest.approx(sent["sent"].to_list())
    assert not as_sent["repaired"].any()
    # repair on: that one day is scaled back to pence and marked; the rest untouched
    joined = repaired.join(sent, on="session_date")
    expected = pl.when(pl.col("session_date") == bad).then(pl.col("sent") * 100).otherwise(pl.col("sent"))
    assert joined["close"].to_list() == pytest.approx(joined.select(expected).to_series().to_list())
    assert repaired.filter(pl.col("repaired"))["session_date"].to_list() == [bad]
    day = repaired.filter(pl.col("session_date") == bad).row(0, named=True)
    assert day["low"] <= min(day["open"], day["close"]) <= max(day["open"], day["close"]) <= day["high"]
    assert day["high"] == pytest.approx(100 * as_sent.filter(pl.col("session_date") == bad)["high"][0])
    # major units: pounds, GBP, no longer flagged; volume as it was
    assert set(major["currency"]) == {"GBP"} and not major["minor_unit"].any()
    for col in ("open", "high", "low", "close", "adj_close"):
        assert major[col].to_list() == pytest.approx((repaired[col] / 100).to_list())
    assert major["volume"].equals(repaired["volume"]) and major["repaired"].equals(repaired["repaired"])
    # with a GBP-priced series the converted one is in the same unit: no 100x on mixing
    assert 1.0 < major["close"].mean() < 2.0 and 100 < repaired["close"].mean() < 200
    # repaired and as-sent chunks are cached apart, each with the current format version
    for source in ("yahoo", "yahoo-unrepaired"):
        path = ParquetCache(cache_dir).path(source, "1d", "WBGBP.L", "2023-01-01")
        assert pl.read_parquet_metadata(path)[VERSION_KEY] == str(yahoo.CHUNK_VERSION)
    n = len(constructed.log)
    offline = load_bars("WBGBP.L", "2023-07-31", "2023-08-12", offline=True, major_units=True,
                        cache_dir=cache_dir, now=LATER)
    assert offline.equals(major) and len(constructed.log) == n


@pytest.mark.parametrize("code, major, per_major", [
    ("GBp", "GBP", 100), ("GBX", "GBP", 100), ("ILA", "ILS", 100), ("ZAc", "ZAR", 100),
    ("KWF", "KWD", 1000), ("USX", "USD", 100), ("USD", "USD", 1), ("", None, 1)])
def test_minor_unit_table(code, major, per_major):
    chunk = pl.DataFrame({"ts": [datetime(2023, 8, 4, 7, tzinfo=timezone.utc)], "open": [250.0],
                          "high": [260.0], "low": [240.0], "close": [255.0], "adj_close": [250.0],
                          "volume": [7], "dividends": [0.0], "splits": [0.0], "tz": ["Europe/London"],
                          "currency": [code], "repaired": [False]}).cast(yahoo.CHUNK_SCHEMA)
    kept = yahoo._session_columns(chunk, major_units=False).row(0, named=True)
    assert kept["minor_unit"] is (per_major != 1) and kept["currency"] == (code or None)
    converted = yahoo._session_columns(chunk, major_units=True).row(0, named=True)
    assert converted["currency"] == major and converted["minor_unit"] is False
    assert converted["close"] == pytest.approx(255.0 / per_major)
    assert converted["adj_close"] == pytest.approx(250.0 / per_major) and converted["volume"] == 7


def test_crypto_sessions_include_the_weekend(constructed, cache_dir):
    meta, rows = chart_meta_and_rows(BITCOIN)
    frame = load_bars("BTC-USD", "2023-08-03", "2023-08-09", cache_dir=cache_dir, session=constructed,
                      now=LATER)
    zone = ZoneInfo(meta["exchangeTimezoneName"])
    assert meta["exchangeTimezoneName"] == "UTC"
    expected = [datetime.fromtimestamp(t, zone).date() for t, _, _ in rows]
    assert frame["session_date"].to_list() == expected == [date(2023, 8, d) for d in range(3, 9)]
    assert {d.weekday() for d in frame["session_date"]} >= {5, 6}   # Saturday and Sunday
    assert frame["close"].to_list() == pytest.approx([c for _, c, _ in rows])
    assert set(frame["currency"]) == {"USD"} and set(frame["exchange_tz"]) == {"UTC"}
    assert not frame["repaired"].any() and not frame["minor_unit"].any()
    weekend = load_bars("BTC-USD", "2023-08-05", "2023-08-07", cache_dir=cache_dir, offline=True, now=LATER)
    assert weekend["session_date"].to_list() == [date(2023, 8, 5), date(2023, 8, 6)]
    # the synthetic stand-in knows no weekend sessions: it is not a substitute for crypto
    with pytest.warns(UserWarning, match="synthetic"):
        fake = load_bars("NOPE-USD", "2023-08-05", "2023-08-07", cache_dir=cache_dir, offline=True,
                         fallback="synthetic", now=LATER)
    assert fake.is_empty() and fake.schema == pl.Schema(YAHOO_BAR_SCHEMA)


# ------------------------------------------------------------ cache format versions
def write_format_1(path: Path):
    """Rewrite a cached chunk as the previous workbench wrote it: no currency, no
    repaired column, no format version (only the row count)."""
    old = pl.read_parquet(path).drop("currency", "repaired")
    old.write_parquet(path, metadata={"workbench.rows": str(old.height)})
    return path.read_bytes()


def test_a_chunk_from_an_older_workbench_is_refetched_never_served(session, cache_dir, capsys):
    from workbench.cli import main

    good = load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    path = ParquetCache(cache_dir).path("yahoo", "1d", "AMZN", "2020-01-01")
    old_bytes = write_format_1(path)
    info = yahoo.cache_info(cache_dir).row(0, named=True)
    assert info["status"] == "outdated" and "format 1" in info["problem"]
    assert "no currency" in info["problem"]
    # offline: not served (it lacks the currency), not quarantined (it is not corrupt)
    with pytest.raises(MissingDataError, match="AMZN 1d 2020-01-01..2021-01-01.*another workbench") as e:
        load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, offline=True, now=NOW)
    assert e.value.outdated == [path] and e.value.quarantined == []
    assert path.read_bytes() == old_bytes and not (cache_dir / "quarantine").exists()
    # the synthetic fallback stands in for it (with its warning) rather than serve it
    with pytest.warns(UserWarning, match="synthetic"):
        fake = load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, offline=True,
                         now=NOW, fallback="synthetic")
    assert fake["currency"].null_count() == fake.height and not fake.equals(good)
    assert main(["data", "info", "--cache-dir", str(cache_dir)]) == 0
    assert "AMZN" in capsys.readouterr().out
    # online: refetched and rewritten in the current format
    again = load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session, now=NOW)
    assert again.equals(good) and again["currency"].to_list() == ["USD"]
    assert pl.read_parquet_metadata(path)[VERSION_KEY] == str(yahoo.CHUNK_VERSION)
    assert yahoo.cache_info(cache_dir)["status"].to_list() == ["ok"]


def test_redis_entries_carry_the_format_version_too(session, cache_dir, tmp_path):
    pytest.importorskip("redis", reason="needs the redis client (the [redis] or dev extra)")
    from workbench.store.redis import RedisStore
    from workbench.store.server import start_redis_server

    server, why = start_redis_server()
    if server is None:
        pytest.skip(f"no Redis server could be started: {why}")
    try:
        key = ("yahoo", "1d", "QQQ", "2020-01-01")
        first = load_bars("QQQ", "2020-01-01", "2020-01-04", cache_dir=cache_dir, session=session,
                          now=NOW, store=server.url)
        store = RedisStore(server.url, tmp_path / "other")
        client = store.link.client
        rkey = store.key(key)
        assert client.hget(rkey, "version") == str(yahoo.CHUNK_VERSION).encode()
        assert store.get(key, yahoo.CHUNK_RULES).source == "redis"
        # an entry as the previous workbench wrote it: the old columns, no version field
        old = store.get(key, yahoo.CHUNK_RULES).frame.drop("currency", "repaired")
        store.put(key, old)   # (no version: format 1, like the old writer)
        assert client.hget(rkey, "version") is None
        other = RedisStore(server.url, tmp_path / "third")
        assert other.get(key, yahoo.CHUNK_RULES) is None     # not served, from Redis or locally
        assert other.outdated == [rkey] and other.quarantined == [] and client.exists(rkey)
        with pytest.raises(MissingDataError, match="1 cached chunk.*another cache format"):
            load_bars("QQQ", "2020-01-01", "2020-01-04", cache_dir=tmp_path / "third", offline=True,
                      now=NOW, store=other)
        # online, the refetch overwrites it in the current format for every kernel
        again = load_bars("QQQ", "2020-01-01", "2020-01-04", cache_dir=tmp_path / "fourth",
                          session=session, now=NOW, store=server.url)
        assert again.equals(first)
        assert client.hget(rkey, "version") == str(yahoo.CHUNK_VERSION).encode()
    finally:
        server.stop()


def test_rules_migrate_what_can_be_derived_and_refuse_the_rest(tmp_path):
    from workbench.data.cache import Outdated, Rules

    def migrate(frame, version):  # format 1 lacked "double", which is derivable
        if version == 1:
            return frame.with_columns((pl.col("x") * 2).alias("double"))
        return "unknown format"

    rules = Rules({"x": pl.Int64, "double": pl.Int64}, increasing="x", version=2, migrate=migrate)
    cache = ParquetCache(tmp_path)
    old = cache.write(cache.path("src", "a"), pl.DataFrame({"x": [1, 2]}))            # format 1
    assert cache.read(old, rules)["double"].to_list() == [2, 4]
    new = cache.write(cache.path("src", "b"), pl.DataFrame({"x": [1], "double": [2]}), version=2)
    assert cache.read(new, rules).rows() == [(1, 2)]
    future = cache.write(cache.path("src", "c"), pl.DataFrame({"x": [1]}), version=3)
    assert cache.read(future, rules) is None and cache.outdated == [future]
    assert future.exists() and cache.quarantined == []
    _, problem = cache.validate(future, rules)
    assert isinstance(problem, Outdated) and "format 3" in problem
    # a migrated frame is still checked: a bad one is invalid (quarantined), not outdated
    bad = cache.write(cache.path("src", "d"), pl.DataFrame({"x": [2, 1]}))
    assert cache.read(bad, rules) is None and len(cache.quarantined) == 1


def test_every_row_the_repair_changed_is_marked(constructed, cache_dir):
    """yfinance fixes a lone price 100x off crudely and leaves its own ``Repaired?`` unset
    there: ``repaired`` compares each row with the response as sent."""
    meta, _ = chart_meta_and_rows(CONSTRUCTED / "chart-WBZAC.JO-2023-07-31-to-2023-08-12.json")
    result = json.loads((CONSTRUCTED / "chart-WBZAC.JO-2023-07-31-to-2023-08-12.json").read_text())
    quote = result["response"]["bodyJson"]["chart"]["result"][0]["indicators"]["quote"][0]
    kwargs = dict(cache_dir=cache_dir, session=constructed, now=LATER)
    fixed = load_bars("WBZAC.JO", "2023-07-31", "2023-08-12", **kwargs)
    as_sent = load_bars("WBZAC.JO", "2023-07-31", "2023-08-12", repair=False, **kwargs)
    assert as_sent["high"].to_list() == pytest.approx(quote["high"]) and not as_sent["repaired"].any()
    # the constructed fault: one high 100x its neighbours' (Wednesday 2 Aug)
    spike = date(2023, 8, 2)
    assert as_sent.filter(pl.col("high") > 50 * pl.col("close").median())["session_date"].to_list() == [spike]
    assert fixed.filter(pl.col("repaired"))["session_date"].to_list() == [spike]
    day = fixed.filter(pl.col("session_date") == spike).row(0, named=True)
    assert max(day["open"], day["close"]) <= day["high"] < 2 * day["close"]
    for col in ("open", "low", "close", "volume"):
        assert fixed[col].equals(as_sent[col])
    untouched = fixed.filter(pl.col("session_date") != spike)
    assert untouched["high"].equals(as_sent.filter(pl.col("session_date") != spike)["high"])
    # Johannesburg, quoted in cents: flagged, and rand on request
    assert set(fixed["currency"]) == {meta["currency"]} == {"ZAc"} and fixed["minor_unit"].all()
    assert fixed["session_date"].to_list() == [
        t.astimezone(ZoneInfo("Africa/Johannesburg")).date() for t in fixed["ts"].to_list()]
    rand = load_bars("WBZAC.JO", "2023-07-31", "2023-08-12", major_units=True, **kwargs)
    assert set(rand["currency"]) == {"ZAR"} and rand["close"].to_list() == pytest.approx(
        (fixed["close"] / 100).to_list())
