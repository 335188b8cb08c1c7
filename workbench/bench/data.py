"""Benchmark suite ``data``: LOBSTER CSV -> replay events per second, polars vs pandas;
and the market-data stores: a cached chunk of bars read from parquet and from Redis, and
live-state entries published to a Redis stream.

Both paths do the same job end to end: read a LOBSTER message file (no header, time
as text with up to 9 decimals) and produce the engine's ``EVENT`` array. The polars path
is the product's (``workbench.data.lobster.read_messages`` + ``to_events``); the pandas
path is the straightforward ``read_csv`` + column assignment baseline, checked to give
the identical array. Medians of several runs; the ratio is measured in the same run.

The files come from ``../shared/data/lobster``; when that is absent the suite says so
and measures a simulated session written in LOBSTER's format instead.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "data"
DESCRIPTION = "LOBSTER CSV -> EVENT array: events/s with polars and with pandas (same run)"

FILES = ("AMZN_2012-06-21_34200000_57600000_message_1.csv", "AAPL_2012-06-21_message_50_first_hour.csv")


def _pandas_events(path: Path) -> np.ndarray:
    import pandas as pd

    from kernels import records as R

    frame = pd.read_csv(path, header=None, names=["time", "kind", "order_id", "size", "price", "direction"],
                        dtype={"time": "float64", "kind": "int8", "order_id": "int64", "size": "int64",
                               "price": "int64", "direction": "int8"}, engine="c")
    out = np.empty(len(frame), dtype=R.EVENT)
    # 9 decimals of seconds fit float64's 15-16 digits: rounding recovers the exact ns
    out["ts"] = np.round(frame["time"].to_numpy() * 1e9).astype(np.int64)
    out["order_id"] = frame["order_id"].to_numpy()
    out["price"] = frame["price"].to_numpy()
    out["qty"] = frame["size"].to_numpy()
    out["symbol"] = 0
    out["kind"] = frame["kind"].to_numpy()
    out["side"] = np.where(frame["direction"].to_numpy() == 1, R.BUY, R.SELL)
    out["order_type"] = R.LIMIT
    out["tif"] = R.GTC
    return out


def _polars_events(path: Path) -> np.ndarray:
    from workbench.data.lobster import read_messages, to_events

    return to_events(read_messages(path))


def _synthetic_lobster(directory: Path) -> Path:
    """A simulated session written as a LOBSTER message file (when ../shared is absent)."""
    from kernels import records as R
    from workbench.data.synthetic import simulate

    ev = simulate(n_symbols=1, seed=1, rate=3.0).events
    path = directory / "SYN_2024-01-02_34200000_57600000_message_1.csv"
    seconds = ev["ts"] // 1_000_000_000
    nanos = ev["ts"] % 1_000_000_000
    direction = np.where(ev["side"] == R.BUY, 1, -1)
    with path.open("w") as fh:
        for s, ns, k, oid, q, p, d in zip(seconds, nanos, ev["kind"], ev["order_id"], ev["qty"],
                                          ev["price"], direction):
            fh.write(f"{s}.{ns:09d},{k},{oid},{q},{p},{d}\n")
    return path


def _median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> dict:
    repeats = 3 if quick else 7
    from workbench.data.samples import shared_data_dir

    shared = shared_data_dir()
    lobster = shared / "lobster" if shared else None
    paths = [lobster / name for name in FILES if lobster and (lobster / name).is_file()]
    tmp = None
    source = "../shared/data/lobster"
    if not paths:
        tmp = tempfile.TemporaryDirectory()
        paths = [_synthetic_lobster(Path(tmp.name))]
        source = "simulated session in LOBSTER format (../shared/data/lobster absent)"
    if quick:
        paths = paths[:1]
    try:
        per_file = {}
        total_events = 0
        polars_s = pandas_s = 0.0
        for path in paths:
            a, b = _polars_events(path), _pandas_events(path)  # warm-up, and a correctness check
            if a.tobytes() != b.tobytes():
                raise RuntimeError(f"polars and pandas paths disagree on {path.name}")
            p = _median_seconds(lambda: _polars_events(path), repeats)
            q = _median_seconds(lambda: _pandas_events(path), repeats)
            per_file[path.name] = {"events": len(a), "polars_s": round(p, 4), "pandas_s": round(q, 4)}
            total_events += len(a)
            polars_s += p
            pandas_s += q
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {
        "source": source,
        "events": total_events,
        "polars_events_per_s": total_events / polars_s,
        "pandas_events_per_s": total_events / pandas_s,
        "polars_vs_pandas": pandas_s / polars_s,
        "full_day_polars_ms": round(1000 * per_file[paths[0].name]["polars_s"], 2),
        "repeats": repeats,
        "files": per_file,
        **_store_keys(quick),
    }


def _percentiles_us(work, n: int) -> tuple[float, float]:
    samples = np.empty(n)
    for i in range(n):
        t = time.perf_counter_ns()
        work()
        samples[i] = time.perf_counter_ns() - t
    return float(np.percentile(samples, 50)) / 1e3, float(np.percentile(samples, 99)) / 1e3


def _store_keys(quick: bool) -> dict:
    """One year of daily bars (one cache chunk) read back through each store, and live-state
    entries published to a Redis stream, on a throwaway local redis-server (None, with the
    reason, when none can be started)."""
    import polars as pl

    from workbench.data.synthetic import synthetic_bars
    from workbench.data.yahoo import CHUNK_RULES, CHUNK_SCHEMA, CHUNK_VERSION
    from workbench.store import ParquetStore
    from workbench.store.server import start_redis_server

    n = 200 if quick else 2000
    chunk = synthetic_bars("AAA", "2024-01-01", "2025-01-01", "1d").select(
        "ts", "open", "high", "low", "close", "adj_close", "volume").with_columns(
        dividends=pl.lit(0.0), splits=pl.lit(0.0), tz=pl.lit("America/New_York"),
        currency=pl.lit("USD"), repaired=pl.lit(False)).cast(CHUNK_SCHEMA)
    key = ("yahoo", "1d", "AAA", "2024-01-01")
    out = {"store_chunk_rows": chunk.height}
    with tempfile.TemporaryDirectory() as tmp:
        local = ParquetStore(tmp)
        local.put(key, chunk, version=CHUNK_VERSION)
        local.get(key, CHUNK_RULES)
        out["parquet_get_bars_p50_us"], _ = _percentiles_us(lambda: local.get(key, CHUNK_RULES), n)
        server, reason = start_redis_server()
        if server is None:
            out.update(redis_get_bars_p50_us=None, redis_get_bars_p99_us=None,
                       redis_stream_publish_per_sec=None, redis_note=reason)
            return out
        try:
            from workbench.live.pipeline import STAGES, Pipeline
            from workbench.live.publish import Publisher, encode_entry
            from workbench.store.redis import RedisStore

            remote = RedisStore(server.url, tmp)
            remote.put(key, chunk, version=CHUNK_VERSION)
            got = remote.get(key, CHUNK_RULES)
            if got is None or got.source != "redis" or not got.frame.equals(chunk):
                raise RuntimeError("the Redis store did not give the chunk back")
            out["redis_get_bars_p50_us"], out["redis_get_bars_p99_us"] = \
                _percentiles_us(lambda: remote.get(key, CHUNK_RULES), n)
            # the publisher's own path: a real pipeline's sample and histograms, one XADD each
            # (after a short run, so the histograms hold what a live entry holds)
            p = Pipeline(rate=20_000, feed_wait_policy="sleep", wait_policy="sleep")
            if not quick:
                p.start()
                time.sleep(0.5)
                p.stop()
            publisher = Publisher(p, server.url, stream="bench", maxlen=1000)
            fields = encode_entry(p.sampler().sample(), p.totals(), p.config.target_ns, False, 0,
                                  {s: p.histogram(s) for s in STAGES})
            client = publisher.link.client
            entries = 500 if quick else 5000

            def publish():
                for _ in range(entries):
                    client.xadd(publisher.key, fields, maxlen=1000, approximate=True)
                return entries

            from workbench.bench import median_rate
            out["redis_stream_publish_per_sec"] = median_rate(publish, 3)
            out["redis_stream_entry_bytes"] = sum(len(v) for v in fields.values())
        finally:
            server.stop()
    return out
