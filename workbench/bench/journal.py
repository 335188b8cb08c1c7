"""``bench journal``: what durability costs, against SQLite in WAL mode in the same run.

One order stream (the exchange-core-like mix of ``workbench.data.order_mix``) fed in
calls of ``CALL_ORDERS`` orders (``OrderBook.apply``: one call = one command = one
acknowledgement), on the same disk (``WORKBENCH_BENCH_DIR``, default the temp dir):

* ``orders_per_sec_off`` / ``_none``: no journal / journaled, never synced.
* ``orders_per_sec_every``: each call returns after the sync that covers it (one
  ``fdatasync`` per call at most; the writer coalesces what is queued).
* ``orders_per_sec_batch``: group commit (``durability="batch"``: a sync every
  ``BATCH_RECORDS`` records or ``BATCH_US`` us). The producer does not block per call
  (``journal.deferred()``); each call is acknowledged when the sync covering it lands
  (observed between calls, as an event loop would), the stream's end waits for the
  last one. ``orders_per_sec_batch_sync_calls``: the same policy with each call
  waiting for its sync.
* ``ack_p50_ns_<policy>`` / ``ack_p99_ns_<policy>``: per order, from the start of the
  call that carried it to its acknowledgement, in those runs;
  ``single_ack_p50_ns_<policy>`` / ``p99``: one ``submit`` per order, its call time.
* SQLite in WAL mode, the same orders inserted in the same run, as the baseline, two ways:

  - ``sqlite_wal_orders_per_sec`` (``synchronous=FULL``) and
    ``sqlite_wal_normal_orders_per_sec`` (``NORMAL``): **one transaction per order**
    (autocommit). This is what a service gets that acknowledges each order once SQLite
    holds it: SQLite has no group commit across transactions, so under FULL each
    acknowledged order costs its own sync, the durability of ``every``/``batch``
    (NORMAL syncs only at checkpoints: the durability of ``none``).
    ``SQLITE_PER_ORDER`` orders (a sync per order is slow). ``speedup_vs_sqlite`` =
    batch / FULL, ``speedup_none_vs_sqlite_normal`` = none / NORMAL.
  - ``sqlite_wal_batched_orders_per_sec`` / ``sqlite_wal_normal_batched_orders_per_sec``:
    **one transaction per call** of ``CALL_ORDERS`` rows, the application doing its own
    group commit, a sync per transaction under FULL: the strict like-for-like pair of
    this bench's calls. ``speedup_vs_sqlite_batched`` = batch / that FULL rate,
    ``speedup_every_vs_sqlite_batched`` = every / it (one sync per call on both sides).

  SQLite only stores the rows; the engine also matches them.
* ``recovery_sec_10m``: ``OrderBook.recover`` of a journal of 10M orders (no snapshot:
  every record read, checked and replayed); ``--quick`` journals fewer and says so.
* ``crash_kill_points`` / ``crash_failures``: ``workbench.journal.crashcheck`` with
  200 SIGKILLs (20 with ``--quick``).

Figures are medians of several runs; the machine's other load moves them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

NAME = "journal"
DESCRIPTION = "durable engine: orders/s and ack latency per durability policy, recovery, SQLite WAL"

CALL_ORDERS = 4096
SQLITE_PER_ORDER = 2_000
BATCH_RECORDS = 16_384
BATCH_US = 1_000


def _root() -> Path:
    base = os.environ.get("WORKBENCH_BENCH_DIR") or None
    return Path(tempfile.mkdtemp(prefix="wb-bench-journal-", dir=base))


def _book(settings, directory: Path | None, durability: str | None, **options):
    from workbench.book import OrderBook

    kw = dict(tick_size=settings.tick_size, price_scale=settings.price_scale,
              capacity=settings.capacity, price_levels=settings.price_levels,
              record_fills=False)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        kw.update(journal=directory, durability=durability, journal_options=options or None)
    return OrderBook("MIX", **kw)


def _stream(book, mix, fills, pipelined: bool):
    """Feed ``mix`` in calls; returns (elapsed s, per-call ack latencies in ns)."""
    n = len(mix)
    calls = range(0, n, CALL_ORDERS)
    starts = np.zeros(len(calls), dtype=np.int64)
    acks = np.zeros(len(calls), dtype=np.int64)
    seqs = np.zeros(len(calls), dtype=np.int64)
    journal = book.journal
    block = journal.deferred() if pipelined else contextlib.nullcontext()
    acked = 0
    t0 = time.perf_counter_ns()
    with block:
        for c, i in enumerate(calls):
            starts[c] = time.perf_counter_ns()
            events = mix[i:i + CALL_ORDERS]
            s = 0
            while s < len(events):
                s, _ = book.apply(events, fills, None, s)
            now = time.perf_counter_ns()
            if not pipelined:
                acks[c] = now
                continue
            seqs[c] = journal.last_seq
            durable = journal.durable_seq
            while acked <= c and seqs[acked] <= durable:
                acks[acked] = now
                acked += 1
    end = time.perf_counter_ns()
    if pipelined:
        acks[acked:] = end  # the block's end waited for the last sync
    return (end - t0) / 1e9, acks - starts


def _policy_runs(settings, mix, root: Path, repeats: int, bar) -> dict:
    from kernels import records as R

    fills = np.zeros(1 << 16, dtype=R.FILL)
    runs = {
        "off": (None, False, {}),
        "none": ("none", False, {}),
        "every": ("every", False, {}),
        "batch": ("batch", True, {"batch_records": BATCH_RECORDS, "batch_us": BATCH_US}),
        "batch_sync_calls": ("batch", False, {"batch_records": BATCH_RECORDS,
                                              "batch_us": BATCH_US}),
    }
    out: dict = {}
    syncs: dict = {}
    for name, (durability, pipelined, options) in runs.items():
        rates, p50, p99, per_sync = [], [], [], []
        for r in range(repeats + 1):  # the first run warms the kernels and the disk
            directory = None if durability is None else root / f"{name}-{r}"
            book = _book(settings, directory, durability, **options)
            elapsed, lat = _stream(book, mix, fills, pipelined) if durability else \
                _stream_off(book, mix, fills)
            if book.journal is not None:
                per_sync.append(book.journal.stats()["records_per_sync"])
            book.close()
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
            if r:
                rates.append(len(mix) / elapsed)
                p50.append(float(np.percentile(lat, 50)))
                p99.append(float(np.percentile(lat, 99)))
            bar.update(1)
        out[f"orders_per_sec_{name}"] = statistics.median(rates)
        if durability is not None and name != "batch_sync_calls":
            out[f"ack_p50_ns_{name}"] = statistics.median(p50)
            out[f"ack_p99_ns_{name}"] = statistics.median(p99)
        if per_sync:
            syncs[name] = statistics.median(per_sync)
    out["records_per_sync"] = syncs
    return out


def _stream_off(book, mix, fills):
    t0 = time.perf_counter_ns()
    starts, ends = [], []
    for i in range(0, len(mix), CALL_ORDERS):
        starts.append(time.perf_counter_ns())
        events = mix[i:i + CALL_ORDERS]
        s = 0
        while s < len(events):
            s, _ = book.apply(events, fills, None, s)
        ends.append(time.perf_counter_ns())
    return (time.perf_counter_ns() - t0) / 1e9, np.array(ends) - np.array(starts)


def _single_acks(settings, mix, root: Path, n: int, bar) -> dict:
    """One ``submit`` per order (adds of the mix), its call time, per policy."""
    from kernels import records as R

    from workbench.enums import OrderType, Side, TimeInForce

    adds = mix[mix["kind"] == R.EV_ADD][:n]
    sides = (Side.BUY, Side.SELL)   # typed: both modes' fast path
    scale = settings.price_scale
    orders = [(sides[int(e["side"])], int(e["price"]) / scale, int(e["qty"])) for e in adds]
    out = {}
    for name in ("none", "batch", "every"):
        directory = root / f"single-{name}"
        book = _book(settings, directory, name, batch_records=BATCH_RECORDS, batch_us=BATCH_US)
        lat = np.zeros(len(orders), dtype=np.int64)
        for i, (side, price, qty) in enumerate(orders):
            t = time.perf_counter_ns()
            book.submit(side, price, qty, OrderType.LIMIT, TimeInForce.IOC)
            lat[i] = time.perf_counter_ns() - t
        book.close()
        shutil.rmtree(directory, ignore_errors=True)
        out[f"single_ack_p50_ns_{name}"] = float(np.percentile(lat, 50))
        out[f"single_ack_p99_ns_{name}"] = float(np.percentile(lat, 99))
        bar.update(1)
    return out


def _sqlite(mix, root: Path, synchronous: str, repeats: int, bar, per_txn: int = CALL_ORDERS
            ) -> float:
    """Orders/s inserting ``mix`` into SQLite in WAL mode, ``per_txn`` rows per transaction."""
    rows = mix.tolist()  # (ts, order_id, price, qty, symbol, kind, side, type, tif)
    rates = []
    for r in range(repeats + 1):
        path = root / f"sqlite-{synchronous}-{r}.db"
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("CREATE TABLE orders (seq INTEGER PRIMARY KEY, ts INTEGER, order_id INTEGER, "
                    "price INTEGER, qty INTEGER, symbol INTEGER, kind INTEGER, side INTEGER, "
                    "order_type INTEGER, tif INTEGER)")
        sql = ("INSERT INTO orders (ts, order_id, price, qty, symbol, kind, side, order_type, "
               "tif) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        t0 = time.perf_counter()
        for i in range(0, len(rows), per_txn):
            con.execute("BEGIN")
            con.executemany(sql, rows[i:i + per_txn])
            con.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        con.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        if r:
            rates.append(len(rows) / elapsed)
        bar.update(1)
    return statistics.median(rates)


def _recovery(settings, n: int, root: Path, repeats: int, bar) -> tuple[float, int]:
    from workbench.book import OrderBook
    from workbench.data.order_mix import order_mix
    from kernels import records as R

    mix = order_mix(n, seed=11, settings=settings)
    directory = root / "recovery"
    book = _book(settings, directory, "none")
    fills = np.zeros(1 << 16, dtype=R.FILL)
    step = 1 << 16
    for i in range(0, n, step):
        events = mix[i:i + step]
        s = 0
        while s < len(events):
            s, _ = book.apply(events, fills, None, s)
    book.close()
    del mix
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        recovered = OrderBook.recover(directory, durability="none")
        times.append(time.perf_counter() - t0)
        if recovered.recovery.last_seq != n:
            raise RuntimeError(f"recovery replayed {recovered.recovery.last_seq} of {n} records")
        recovered.close()  # its new, empty segment is replaced by the next recovery's
        bar.update(1)
    shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(times), n


def run(quick: bool = False) -> dict:
    from tqdm.auto import tqdm

    from workbench.data.order_mix import MixSettings, order_mix
    from workbench.journal.crashcheck import run_crash_check

    repeats = 3 if quick else 5
    n = 200_000 if quick else 2_000_000
    n_sqlite = 100_000 if quick else 400_000
    n_per_order = SQLITE_PER_ORDER // 4 if quick else SQLITE_PER_ORDER
    n_single = 300 if quick else 2_000
    n_recovery = 1_000_000 if quick else 10_000_000
    kill_points = 20 if quick else 200
    settings = MixSettings()
    mix = order_mix(n, seed=7, settings=settings)
    root = _root()
    out: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tqdm(total=5 * (repeats + 1) + 3 + 4 * (repeats + 1) + 3,
                      desc="bench journal", leave=False) as bar:
                out.update(_policy_runs(settings, mix, root, repeats, bar))
                out.update(_single_acks(settings, mix, root, n_single, bar))
                for sync, key in (("FULL", "sqlite_wal_batched_orders_per_sec"),
                                  ("NORMAL", "sqlite_wal_normal_batched_orders_per_sec")):
                    out[key] = _sqlite(mix[:n_sqlite], root, sync, repeats, bar)
                for sync, key in (("FULL", "sqlite_wal_orders_per_sec"),
                                  ("NORMAL", "sqlite_wal_normal_orders_per_sec")):
                    out[key] = _sqlite(mix[:n_per_order], root, sync, repeats, bar, per_txn=1)
                seconds, done = _recovery(settings, n_recovery, root, 3, bar)
        crash = run_crash_check(points=kill_points, seed=2024, n_commands=200,
                                durability="every", workdir=root, progress=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    batch = out["orders_per_sec_batch"]
    out["speedup_vs_sqlite"] = batch / out["sqlite_wal_orders_per_sec"]
    out["speedup_vs_sqlite_batched"] = batch / out["sqlite_wal_batched_orders_per_sec"]
    out["speedup_every_vs_sqlite_batched"] = (out["orders_per_sec_every"]
                                              / out["sqlite_wal_batched_orders_per_sec"])
    out["speedup_none_vs_sqlite_normal"] = (out["orders_per_sec_none"]
                                            / out["sqlite_wal_normal_orders_per_sec"])
    out["sqlite_orders_per_order_txn"] = n_per_order
    out["sqlite_orders_batched"] = n_sqlite
    out["recovery_sec_10m"] = seconds * (10_000_000 / done)
    out["recovery_orders"] = done
    out["recovery_extrapolated"] = done != 10_000_000
    out["recovery_orders_per_sec"] = done / seconds
    summary = crash.summary()
    out["crash_kill_points"] = summary["kill_points"]
    out["crash_failures"] = summary["failures"]
    out["crash_outcomes"] = summary["outcomes"]
    out["orders"] = n
    out["orders_per_call"] = CALL_ORDERS
    out["batch_policy"] = f"{BATCH_RECORDS} records or {BATCH_US} us"
    out["disk"] = str(Path(os.environ.get("WORKBENCH_BENCH_DIR") or tempfile.gettempdir()))
    return out
