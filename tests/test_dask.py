"""Sweeps, batches of backtests and per-symbol replays on Dask give the local executor's
results, carry references instead of arrays, and survive a worker killed mid-sweep.

One in-process cluster (threads, TCP on the loopback) serves most tests; the fault test
starts the one cluster of worker processes (``executor="dask"``) because it kills one.
"""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import polars as pl
import pytest

distributed = pytest.importorskip("distributed", reason="needs dask[distributed] (the dev extra)")

from workbench import scale  # noqa: E402
from workbench.backtest import Backtest, sweep  # noqa: E402
from workbench.book import Engine  # noqa: E402
from workbench.data.samples import SAMPLE_SYMBOLS, load_sample_events  # noqa: E402
from workbench.data.synthetic import simulate  # noqa: E402

GRID = {"half_spread_ticks": [1, 3], "skew_ticks": [0, 2]}


@pytest.fixture(scope="module")
def client():
    with scale.cluster(2, processes=False, dashboard=True, dashboard_port=0, protocol="tcp://",
                       host="127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def bt():
    return (Backtest("synthetic").strategy("mm_skew", skew_ticks=1)
            .latency(50, 100, 50).fees(-0.2, 0.3).risk(max_position=500))


@pytest.fixture(scope="module")
def local_frame(bt):
    return sweep(bt, GRID, progress=False)


def test_sweep_on_dask_is_the_local_sweep_in_grid_order(bt, client, local_frame, capsys):
    frame = sweep(bt, GRID, executor=client, progress=True)
    out = capsys.readouterr()
    assert "Dask dashboard: http://127.0.0.1:" in out.out
    assert frame.columns == local_frame.columns
    assert frame.select("half_spread_ticks", "skew_ticks").rows() == [(1, 0), (1, 2), (3, 0), (3, 2)]
    assert scale.without_timing(frame).equals(scale.without_timing(local_frame))
    assert frame["n_fills"].min() > 0 and frame["total_pnl"].n_unique() == 4  # real, distinct runs


def test_run_many_returns_every_result_as_run_would(bt, client):
    variants = [{"half_spread_ticks": 2}, {"half_spread_ticks": 1, "skew_ticks": 3}]
    remote = bt.run_many(variants, executor=client, progress=False)
    for params, result in zip(variants, remote):
        alone = Backtest("synthetic").strategy("mm_skew", **{"skew_ticks": 1, **params}) \
            .latency(50, 100, 50).fees(-0.2, 0.3).risk(max_position=500).run(progress=False)
        assert result.fills.equals(alone.fills) and result.fills.height > 0
        assert result.orders.equals(alone.orders)
        assert result.equity.equals(alone.equity)
        assert {k: v for k, v in result.stats.items() if k not in scale.TIMING_COLUMNS} == \
            {k: v for k, v in alone.stats.items() if k not in scale.TIMING_COLUMNS}


def test_tasks_carry_references_not_the_events(bt, client, monkeypatch):
    sizes = []
    submit = type(client).submit

    def recording(self, fn, *args, **kwargs):
        sizes.append((kwargs.get("key"), len(pickle.dumps((fn, args)))))
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(type(client), "submit", recording)
    frame = sweep(bt, {"half_spread_ticks": [1, 2]}, executor=client, progress=False)
    assert frame.height == 2
    events_bytes = bt.data.events.nbytes
    assert events_bytes > 500_000
    sweep_tasks = [s for k, s in sizes if k.startswith("sweep-")]
    assert len(sweep_tasks) == 2 and max(sweep_tasks) < 4_000  # parameters and keys only
    assert any(k.startswith("warm-") for k, _ in sizes)        # one warm-up per worker


def test_events_by_parquet_path_give_the_same_sweep(bt, client, local_frame, tmp_path):
    ref = scale.write_market(bt.data, tmp_path)
    again = scale.write_market(bt.data, tmp_path)  # same content, same file: written once
    assert ref == again and len(list(tmp_path.glob("market-*.parquet"))) == 1
    md = ref.load()
    assert md.events.tobytes() == bt.data.events.tobytes() and md.name == bt.data.name
    frame = sweep(bt, GRID, executor=client, progress=False, shared_dir=tmp_path)
    assert scale.without_timing(frame).equals(scale.without_timing(local_frame))


def test_a_changed_market_file_is_refused(bt, tmp_path):
    ref = scale.write_market(bt.data, tmp_path)
    frame = pl.read_parquet(ref.path)
    meta = pl.read_parquet_metadata(ref.path)
    frame.with_columns(pl.col("qty") + 1).write_parquet(ref.path, metadata=meta)
    scale._read_market.cache_clear()
    with pytest.raises(ValueError, match="does not match the reference"):
        ref.load()


def test_whole_exchange_replay_per_symbol(client):
    events = load_sample_events()
    local = scale.replay_symbols("synthetic", progress=False)
    remote = scale.replay_symbols("synthetic", executor=client, progress=False)
    assert scale.without_timing(remote).equals(scale.without_timing(local))
    assert remote["symbol"].to_list() == list(SAMPLE_SYMBOLS)
    assert remote["events"].to_list() == np.bincount(events["symbol"]).tolist()
    # reference: one engine with every book, fed the interleaved stream (books are independent)
    eng = Engine(list(SAMPLE_SYMBOLS), tick_size=0.01, capacity=len(events) + 16,
                 price_levels=1 << 16, anonymous_fallback=True, record_fills=False)
    batch = eng.submit_many(events)
    fills = batch.fills
    for i, row in enumerate(remote.iter_rows(named=True)):
        mine = fills[fills["symbol"] == i]
        assert row["fills"] == len(mine) > 0
        assert row["traded_qty"] == int(mine["qty"].sum())
        assert row["vwap"] == pytest.approx(float((mine["price"] * mine["qty"]).sum())
                                            / mine["qty"].sum() / 10_000)
        assert row["best_bid"] == eng.best_bid(SAMPLE_SYMBOLS[i])
        assert row["best_ask"] == eng.best_ask(SAMPLE_SYMBOLS[i])


@pytest.mark.shared
def test_an_itch_day_replayed_per_symbol_is_the_whole_day_in_one_engine(client):
    from tests.conftest import shared_path
    from workbench.data import itch

    path = shared_path("itch", "ex20101224.TEST_ITCH_50.lenprefixed.gz")
    frame = scale.replay_symbols(str(path), executor=client, progress=False)
    feed = itch.load(path)
    assert frame["symbol"].to_list() == list(feed.books)
    eng = feed.new_engine()
    fills = eng.submit_many(feed.events).fills
    for i, row in enumerate(frame.iter_rows(named=True)):
        name = feed.books[i]
        assert row["events"] == int((feed.events["symbol"] == i).sum())
        assert row["resting_orders"] == eng.orders(name).height
        assert (row["best_bid"], row["best_ask"]) == (eng.best_bid(name), eng.best_ask(name))
        assert row["fills"] == int((fills["symbol"] == i).sum())


@pytest.mark.shared
def test_a_databento_mbo_file_replayed_per_instrument(client):
    from tests.conftest import shared_path
    from workbench.data import databento

    path = shared_path("databento", "esh4-glbx-mdp3-20231224.mbo.csv.gz")
    frame = scale.replay_symbols(str(path), executor=client, progress=False)
    outcome = databento.replay(databento.load_mbo(path))
    [row] = frame.iter_rows(named=True)
    assert row["symbol"] == "ESH4" and row["events"] == outcome.events
    assert row["resting_orders"] == outcome.engine.orders("ESH4").height
    assert (row["best_bid"], row["best_ask"]) == (outcome.engine.best_bid("ESH4"),
                                                  outcome.engine.best_ask("ESH4"))


def test_per_symbol_backtests_on_a_simulated_exchange(client):
    market = simulate(3, seed=5, duration_s=300, rate=3.0, market_as_orders=False)
    bt = Backtest("synthetic").strategy("mm_skew", half_spread_ticks=1).latency(20, 40, 20)
    frame = scale.replay_symbols(market, backtest=bt, executor=client, progress=False)
    assert frame["symbol"].to_list() == ["SYN0", "SYN1", "SYN2"]
    for i, name in enumerate(frame["symbol"]):
        alone = Backtest(market, symbol=i).strategy("mm_skew", half_spread_ticks=1) \
            .latency(20, 40, 20).run(progress=False).stats
        row = frame.row(i, named=True)
        assert row["total_pnl"] == alone["total_pnl"] and row["n_fills"] == alone["n_fills"]
        assert row["events"] == alone["events"]


def test_bad_executors_are_named():
    bt = Backtest("synthetic")
    with pytest.raises(ValueError, match="executor=42"):
        sweep(bt, GRID, executor=42, progress=False)
    with pytest.raises(ValueError, match="scheduler='nowhere'"):
        scale.connect("nowhere")
    with pytest.raises(ValueError, match="not reachable"):
        scale.connect("tcp://127.0.0.1:9", timeout_s=0.5)  # the discard port: refused
    mine = scale.code_fingerprint()
    with pytest.raises(RuntimeError, match="other versions"):
        scale.check_warmups([{"fingerprint": mine.replace("numba", "numba 0.1 "), "result": {}}])
    with pytest.raises(RuntimeError, match=r"different warm-up results \['n_fills'\]"):
        scale.check_warmups([{"fingerprint": mine, "result": {"n_fills": 3}},
                             {"fingerprint": mine, "result": {"n_fills": 4}}])
    with pytest.raises(ValueError, match="variants must be a list"):
        bt.run_many({"half_spread_ticks": 1})
    with pytest.raises(ValueError, match="no parameter"):
        bt.run_many([{"no_such_param": 1}])


def test_cli_sweep_on_a_scheduler_address(client, capsys):
    from workbench.cli import main

    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    code = main(["backtest", "--strategy", "mm_skew", "--sweep", "half_spread_ticks=1,3",
                 "--sweep", "skew_ticks=0,2", "--latency-us", "50", "100", "50", "--fees-bps",
                 "-0.2", "0.3", "--risk", "max_position=500", "--param", "skew_ticks=1",
                 "--scheduler", address, "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["half_spread_ticks"], r["skew_ticks"]) for r in rows] == [(1, 0), (1, 2), (3, 0), (3, 2)]


def test_cli_replay_symbols_on_a_scheduler_address(client, capsys):
    from workbench.cli import main

    assert main(["replay-symbols", "synthetic", "--scheduler", client.scheduler.address,
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    local = scale.replay_symbols("synthetic", progress=False)
    assert [r["symbol"] for r in rows] == list(SAMPLE_SYMBOLS)
    assert [r["fills"] for r in rows] == local["fills"].to_list()


def test_a_worker_killed_mid_sweep_loses_and_repeats_nothing(monkeypatch):
    """``executor="dask"``: a LocalCluster of worker processes started and closed for
    the call; one worker is SIGKILLed while it runs a sweep task."""
    market = simulate(1, seed=3, duration_s=600, rate=20.0)
    bt = Backtest(market).strategy("mm_skew").latency(50, 100, 50)
    grid = {"half_spread_ticks": [1, 2, 3], "skew_ticks": [0, 2]}
    expected = sweep(bt, grid, progress=False)
    monkeypatch.delenv(scale.ENV_SCHEDULER, raising=False)
    monkeypatch.setattr(scale, "machine_workers", lambda: 2)
    opened = []
    real_cluster = scale.cluster

    def spy(*args, **kwargs):  # the cluster executor="dask" starts: keep its client
        kwargs["dashboard"] = False
        cm = real_cluster(*args, **kwargs)

        class Wrapped:
            def __enter__(self):
                c = cm.__enter__()
                opened.append(c)
                return c

            def __exit__(self, *exc):
                return cm.__exit__(*exc)
        return Wrapped()

    monkeypatch.setattr(scale, "cluster", spy)

    frame, killed = scale.kill_worker_during(
        lambda: opened[0] if opened else None,
        lambda: sweep(bt, grid, executor="dask", progress=False))
    assert killed, "the sweep ended before a worker could be killed"
    victim, held = (killed["worker"], killed["pid"]), killed["held"]
    assert frame.height == 6 and frame.select("half_spread_ticks", "skew_ticks").n_unique() == 6
    assert scale.without_timing(frame).equals(scale.without_timing(expected))
    with pytest.raises(ProcessLookupError):
        os.kill(victim[1], 0)
    assert held  # the victim held sweep tasks: they were rerun elsewhere, once each
    assert opened[0].status == "closed"  # executor="dask" closed its cluster


def test_lesson_checkers_tell_right_from_wrong(bt, client, local_frame, capsys):
    from workbench import teaching
    from workbench.store.redis import RedisStore

    remote = sweep(bt, GRID, executor=client, progress=False)
    verdicts = [teaching.check_cluster_sweep(remote, bt, GRID),
                teaching.check_cluster_sweep(remote.with_columns(pl.col("n_fills") + 1), bt, GRID),
                teaching.check_cluster_sweep(remote.reverse(), bt, GRID),
                teaching.check_cluster_sweep(None, bt, GRID)]
    assert [bool(v) for v in verdicts] == [True, False, False, False]
    assert "['n_fills']" in verdicts[1].message and "grid order" in verdicts[2].message
    assert teaching.check_overhead_ms(7.8125, dask_sec=4.3, serial_sec=8.1, workers=2, tasks=64)
    wrong = teaching.check_overhead_ms(0.0078125, dask_sec=4.3, serial_sec=8.1, workers=2, tasks=64)
    assert not wrong and "multiply by 1000" in wrong.message
    assert teaching.check_redis_key(RedisStore.key(("yahoo", "1d", "AAPL", "2020-01-01")).encode())
    assert not teaching.check_redis_key("yahoo/1d/AAPL/2020-01-01.parquet")


def test_any_executor_with_map_still_works(bt, local_frame):
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(2) as pool:
        frame = sweep(bt, GRID, executor=pool, progress=False)
    assert scale.without_timing(frame).equals(scale.without_timing(local_frame))
