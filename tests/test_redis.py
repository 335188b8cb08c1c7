"""Redis as the shared market-data store and the live-state channel, against a real
``redis-server`` started on a free loopback port (skipped, with the reason, when none can
be started: ``make test`` installs Debian's package when it runs as root). No fake Redis.

Values are read back with pyarrow's own IPC reader, the stream with plain redis-py
commands: the tests check the format on the wire, not only our round trip.
"""
from __future__ import annotations

import io
import json
import time
import warnings
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

redis = pytest.importorskip("redis", reason="needs the redis client (the [redis] or dev extra)")

from tests.conftest import shared_path  # noqa: E402
from workbench.data import yahoo  # noqa: E402
from workbench.data.yahoo import CHUNK_RULES, load_bars, recorded_session  # noqa: E402
from workbench.store import ParquetStore, open_store  # noqa: E402
from workbench.store.redis import (FORMAT_VERSION, RedisLink, RedisStore,  # noqa: E402
                                   RedisUnavailableWarning)
from workbench.store.server import RedisServer, start_redis_server  # noqa: E402

NOW = datetime(2020, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server():
    srv, reason = start_redis_server()
    if srv is None:
        pytest.skip(f"no Redis server could be started: {reason}")
    yield srv
    srv.stop()


@pytest.fixture
def url(server):
    raw = redis.Redis.from_url(server.url)
    raw.flushdb()
    raw.close()
    return server.url


@pytest.fixture
def raw(url):
    client = redis.Redis.from_url(url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("WORKBENCH_REDIS_URL", raising=False)
    monkeypatch.delenv("WORKBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("WORKBENCH_FALLBACK", raising=False)


def bars(n=5, start=100.0):
    ts = [datetime(2020, 1, 2, 14, 30, tzinfo=timezone.utc) + timedelta(days=i) for i in range(n)]
    close = start + np.arange(n, dtype=np.float64)
    return pl.DataFrame({
        "ts": pl.Series(ts, dtype=pl.Datetime("ns", "UTC")), "open": close, "high": close + 1,
        "low": close - 1, "close": close, "adj_close": close, "volume": np.arange(n, dtype=np.int64),
        "dividends": np.zeros(n), "splits": np.zeros(n), "tz": ["America/New_York"] * n,
        "currency": ["USD"] * n, "repaired": [False] * n,
    }).cast(yahoo.CHUNK_SCHEMA)


KEY = ("yahoo", "1d", "EURUSD=X", "2020-01-01")


def test_values_are_arrow_ipc_under_versioned_keys(url, raw, tmp_path):
    import pyarrow.ipc

    store = RedisStore(url, tmp_path / "a")
    frame = bars()
    store.put(KEY, frame, fetched_at=1_700_000_000.5, version=yahoo.CHUNK_VERSION)
    rkey = f"wb:v{FORMAT_VERSION}:md:yahoo:1d:EURUSD%3DX:2020-01-01"
    assert raw.keys("*") == [rkey.encode()]
    value = raw.hgetall(rkey)
    table = pyarrow.ipc.open_stream(io.BytesIO(value[b"ipc"])).read_all()
    assert pl.from_arrow(table).equals(frame)
    assert value[b"rows"] == b"5" and float(value[b"fetched_at"]) == 1_700_000_000.5
    assert raw.ttl(rkey) == -1  # no expires_at: never expires
    got = RedisStore(url, tmp_path / "b").get(KEY, CHUNK_RULES)  # another kernel's store
    assert got.source == "redis" and got.frame.equals(frame) and got.fetched_at == 1_700_000_000.5
    assert store.keys() == [KEY]


def test_expiry_is_the_parquet_cache_freshness_rule(url, raw, tmp_path):
    rule = yahoo.INTERVALS["1m"]
    b = date(2020, 12, 7)   # the chunk ends after NOW: still changing
    fetched = NOW.timestamp()
    expires = yahoo._expires_at(fetched, rule, b)
    assert expires == fetched + 3600
    for dt, fresh in ((3599, True), (3601, False)):
        assert yahoo._chunk_is_fresh(fetched, rule, b, NOW + timedelta(seconds=dt)) is fresh
    settled = yahoo._expires_at(fetched, rule, date(2020, 11, 20))
    assert settled is None and yahoo._chunk_is_fresh(fetched, rule, date(2020, 11, 20),
                                                     NOW + timedelta(days=900))
    store = RedisStore(url, tmp_path)
    store.put(KEY, bars(), expires_at=time.time() + 30, version=yahoo.CHUNK_VERSION)
    assert 0 < raw.pttl(RedisStore.key(KEY)) <= 30_000
    store.put(("yahoo", "1d", "OLD", "2020-01-01"), bars(), expires_at=time.time() - 1)
    assert not raw.exists(RedisStore.key(("yahoo", "1d", "OLD", "2020-01-01")))  # stale: not shared
    assert ParquetStore(tmp_path).get(("yahoo", "1d", "OLD", "2020-01-01")) is not None  # kept


def test_an_invalid_entry_is_quarantined_and_counts_as_missing(url, raw, tmp_path):
    store = RedisStore(url, tmp_path)
    store.put(KEY, bars(), version=yahoo.CHUNK_VERSION)
    rkey = RedisStore.key(KEY)
    broken = bars().with_columns(pl.lit(-1.0).alias("close"))
    buf = io.BytesIO()
    broken.write_ipc_stream(buf)
    raw.hset(rkey, "ipc", buf.getvalue())
    other = RedisStore(url, tmp_path / "empty")
    assert other.get(KEY, CHUNK_RULES) is None
    assert not raw.exists(rkey)
    [moved] = raw.keys(f"wb:v{FORMAT_VERSION}:quarantine:*")
    assert b"'close'" in raw.hget(moved, "reason") and other.quarantined == [moved.decode()]
    raw.hset(rkey, mapping={"ipc": b"not arrow", "rows": "1", "fetched_at": "0",
                            "format": "arrow-ipc-stream/lz4"})
    assert other.get(KEY, CHUNK_RULES) is None and len(raw.keys("*quarantine*")) == 2


def test_a_lab_shares_one_cache(url, tmp_path):
    session = recorded_session(shared_path("yahoo_chart"))
    first = load_bars(["AAPL", "EURUSD=X"], "2020-01-01", "2020-01-04", cache_dir=tmp_path / "a",
                      session=session, now=NOW, store=url)
    # (yfinance may answer from its own in-process memory when another test fetched the
    # same chunks first; what matters is that kernel A's chunks are now in Redis)
    shared = redis.Redis.from_url(url).keys("wb:v1:md:yahoo:*")
    assert first.height > 0 and len(shared) >= 2
    # another kernel: empty local cache, offline; every chunk comes from Redis
    second = load_bars(["AAPL", "EURUSD=X"], "2020-01-01", "2020-01-04", cache_dir=tmp_path / "b",
                       offline=True, now=NOW, store=url)
    assert second.equals(first)
    assert not list((tmp_path / "b").rglob("*.parquet"))
    # and the plain parquet store of the first kernel has the same chunks
    again = load_bars(["AAPL", "EURUSD=X"], "2020-01-01", "2020-01-04", cache_dir=tmp_path / "a",
                      offline=True, now=NOW)
    assert again.equals(first)


def test_env_url_makes_redis_the_default_store(url, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REDIS_URL", url)
    store = open_store(None, tmp_path)
    assert isinstance(store, RedisStore) and store.url == url and store.root == tmp_path
    assert open_store(None, tmp_path) is store  # one per process and cache dir
    assert isinstance(open_store("parquet", tmp_path), ParquetStore)
    with pytest.raises(ValueError, match="store='memcached"):
        open_store("memcached://x", tmp_path)


def test_a_server_on_a_taken_port_is_not_mistaken_for_ours(server, tmp_path):
    """Two processes may pick the same free port at once: the one that loses the bind must
    not take the other's server (which answers) for its own. A stand-in binary that never
    binds makes the race certain: only the module's server answers on that port."""
    slow = tmp_path / "slow-redis-server"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(RuntimeError, match=f"another redis-server's \\(pid {server.process.pid}\\)"):
        RedisServer(str(slow), port=server.port, startup_timeout_s=5).start()
    assert redis.Redis.from_url(server.url).ping()  # the first server is untouched


def test_redis_down_one_warning_nothing_lost_then_reconnect(tmp_path):
    srv, reason = start_redis_server()
    if srv is None:
        pytest.skip(f"no Redis server could be started: {reason}")
    port = srv.port
    link = RedisLink(srv.url, retry_s=0.05, connect_timeout_s=0.2)
    store = RedisStore(srv.url, tmp_path, link=link)
    store.put(KEY, bars(3), version=yahoo.CHUNK_VERSION)
    srv.stop()
    with pytest.warns(RedisUnavailableWarning) as caught:
        store.put(("yahoo", "1d", "AAA", "2020-01-01"), bars(4), version=yahoo.CHUNK_VERSION)
        store.put(("yahoo", "1d", "BBB", "2020-01-01"), bars(5), expires_at=time.time() + 3600,
                  version=yahoo.CHUNK_VERSION)
        assert store.get(("yahoo", "1d", "AAA", "2020-01-01"), CHUNK_RULES).frame.equals(bars(4))
        assert store.get(KEY, CHUNK_RULES).source == "parquet"  # written before the outage
        time.sleep(0.06)
        assert store.get(KEY, CHUNK_RULES) is not None   # a retry fails quietly
    assert len(caught) == 1 and "unreachable" in str(caught[0].message)
    assert sorted(store.pending) == sorted(RedisStore.key(k) for k in
                                           (("yahoo", "1d", "AAA", "2020-01-01"),
                                            ("yahoo", "1d", "BBB", "2020-01-01")))
    back = RedisServer(port=port).start()  # the server returns where its clients look
    try:
        time.sleep(0.06)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            found = store.get(("yahoo", "1d", "BBB", "2020-01-01"), CHUNK_RULES)
        assert found.source == "redis" and found.frame.equals(bars(5))  # uploaded on reconnect
        assert not store.pending and link.up and link.outages == 1
        raw = redis.Redis.from_url(back.url)
        assert 0 < raw.pttl(RedisStore.key(("yahoo", "1d", "BBB", "2020-01-01"))) <= 3_600_000
        raw.close()
    finally:
        back.stop()


# ----------------------------------------------------------------- live state
def test_a_running_pipeline_is_watched_through_a_stream(url, raw):
    from kernels import pipeline as kpipe
    from workbench.live.pipeline import Pipeline
    from workbench.live.publish import StreamWatcher, stream_key, watch
    from workbench.widgets import LatencyMonitor

    p = Pipeline(rate=20_000, work_ns=500.0, target_ns=2_000_000.0, feed_wait_policy="sleep",
                 wait_policy="sleep")
    watcher = StreamWatcher(url, "lab")
    assert watcher.sample() is None and not watcher.running
    p.start()
    publisher = p.publish(url, stream="lab", period_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (watcher.sample() or {}).get("received"):
            time.sleep(0.02)
        first = watcher.sample()
        assert first["received"] > 0 and watcher.running
        monitor = watch(url, "lab", period_s=0.05, duration_s=1.0)  # another kernel's view
        assert isinstance(monitor, LatencyMonitor)  # the pipeline's own widget, unchanged
        shown = monitor.update()
        assert monitor.over_time.data["p99"][-1] == shown["end_to_end_p99_ns"]
        assert len(monitor.cdf["end_to_end"].data["latency"]) > 0
    finally:
        p.stop()
    publisher.stop()
    assert not publisher.running and publisher.sent >= 2 and publisher.buffered == 0
    last = watcher.sample()
    assert last["running"] is False and not watcher.running
    assert last["totals"] == json.loads(json.dumps(p.totals()))   # the final state, exactly
    assert np.array_equal(watcher.histogram("end_to_end"), p.histogram("end_to_end"))
    assert last["totals"]["received"] == int(p.counters[kpipe.PC_RECEIVED])
    # the stream itself, read with plain commands: entries in order, JSON fields
    entries = raw.xrange(stream_key("lab"))
    seqs = [json.loads(f[b"sample"])["seq"] for _, f in entries]
    assert seqs == list(range(len(seqs))) and len(seqs) == publisher.sent
    frame = watcher.frame()
    assert frame.height == len(seqs) and {"end_to_end_p99_ns", "equity", "totals_received"} <= set(frame.columns)


def test_stream_entries_wait_for_redis_and_arrive_in_order(tmp_path):
    from workbench.live.pipeline import Pipeline
    from workbench.live.publish import Publisher, StreamWatcher

    srv, reason = start_redis_server()
    if srv is None:
        pytest.skip(f"no Redis server could be started: {reason}")
    port = srv.port
    link = RedisLink(srv.url, retry_s=0.05, connect_timeout_s=0.2)
    p = Pipeline(rate=20_000)  # not started: its samples are real, just quiet
    pub = Publisher(p, link, stream="offline", period_s=0.05)
    pub.publish_once()
    srv.stop()
    with pytest.warns(RedisUnavailableWarning) as caught:
        for _ in range(3):
            pub.publish_once()
    assert len(caught) == 1 and pub.buffered == 3 and pub.sent == 1
    back = RedisServer(port=port).start()
    try:
        time.sleep(0.06)
        pub.publish_once()
        assert pub.buffered == 0 and pub.sent == 5
        seqs = [s["seq"] for s in StreamWatcher(link, "offline").entries()]
        assert seqs == [1, 2, 3, 4]  # the first entry went to the server that died
    finally:
        back.stop()


def test_engine_snapshot_round_trip(url, tmp_path):
    from workbench.book import Engine
    from workbench.enums import Side
    from workbench.live.publish import load_engine, save_engine

    if not hasattr(Engine, "to_bytes") or not hasattr(Engine, "from_bytes"):
        pytest.skip("Engine.to_bytes / Engine.from_bytes are not in workbench.book yet")
    eng = Engine(["AAA", "BBB"], tick_size=0.01)
    eng.submit("AAA", Side.BUY, 99.5, 100)
    eng.submit("AAA", Side.SELL, 100.5, 70)
    eng.submit("BBB", Side.BUY, 10.0, 5)
    assert save_engine(eng, "desk", url, cache_dir=tmp_path) == "redis"
    back = load_engine("desk", url, cache_dir=tmp_path / "elsewhere")
    for s in ("AAA", "BBB"):
        assert back.depth(s).equals(eng.depth(s)) and back.orders(s).equals(eng.orders(s))
    assert back.submit("AAA", Side.SELL, 99.5, 40).filled == 40  # it trades on
    with pytest.raises(KeyError):
        load_engine("nobody", url, cache_dir=tmp_path)
