"""The flows of ``bench book`` (``workbench.bench._flows``): their statistical shape (flow A:
Liquibook's insert benchmark; flow B: exchange-core's mix), and the engine's batched and
per-order paths against the plain-Python reference book (and Liquibook's C++ through its
SWIG wheel) on a 20k-command prefix of each. No timings: speed is the benchmark's."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from kernels import book as kbook
from kernels import records as R
from workbench.bench import _flows as flows
from workbench.bench.book import _FlowRun
from workbench.reference import ReferenceBook

N = 20_000
TICK = flows.TICK_UNITS


@pytest.fixture(scope="module")
def flow_a():
    return flows.flow_a(N, seed=3)


@pytest.fixture(scope="module")
def flow_b():
    return flows.flow_b(N, seed=4)


@pytest.fixture(scope="module")
def flow_b_replay(flow_b):
    """Flow B through the reference book: resting orders and levels after every event,
    and whether each command traded."""
    ref = ReferenceBook(tick=TICK)
    resting, levels, traded = [], [], []
    for row in flows.reference_rows(flow_b.events):
        result = ref.apply(*row)
        assert result.reason == R.R_NONE, row
        resting.append(len(ref.orders))
        levels.append(len(ref.prices[0]) + len(ref.prices[1]))
        traded.append(bool(result.fills))
    return np.array(resting), np.array(levels), np.array(traded)


def _label_share(flow, name: str) -> float:
    labels = flow.labels[flow.warmup:]
    return float((labels == flows.LABEL_NAMES.index(name)).mean())


# ---------------------------------------------------------------------------- flow A
def test_flow_a_shape(flow_a):
    e = flow_a.events
    assert len(e) == N and flow_a.warmup == 0
    assert (e["kind"] == R.EV_ADD).all() and (e["tif"] == R.GTC).all()
    assert (e["order_type"] == R.LIMIT).all()
    np.testing.assert_array_equal(e["order_id"], np.arange(1, N + 1))
    np.testing.assert_array_equal(e["side"], np.arange(N) % 2)   # buy, sell, buy, ...
    ticks = e["price"] // TICK
    assert (e["price"] % TICK == 0).all()
    buys, sells = ticks[e["side"] == R.BUY], ticks[e["side"] == R.SELL]
    assert set(np.unique(buys)) == set(range(1880, 1890))
    assert set(np.unique(sells)) == set(range(1884, 1894))
    assert set(np.unique(e["qty"])) == set(range(100, 1001, 100))
    # uniform: every price and size near a tenth of its side / of the flow
    for values in (buys, sells, e["qty"]):
        shares = np.array(list(Counter(values.tolist()).values())) / len(values)
        assert np.all(np.abs(shares - 0.1) < 0.015), shares


def test_flows_are_deterministic(flow_a):
    assert flows.flow_a(N, seed=3).events.tobytes() == flow_a.events.tobytes()
    assert flows.flow_a(N, seed=5).events.tobytes() != flow_a.events.tobytes()
    small = flows.flow_b(2_000, seed=9)
    again = flows.flow_b(2_000, seed=9)
    assert small.events.tobytes() == again.events.tobytes()
    assert small.labels.tobytes() == again.labels.tobytes()
    with pytest.raises(ValueError, match="n=0"):
        flows.flow_a(0)


# ---------------------------------------------------------------------------- flow B
def test_flow_b_mix(flow_b):
    assert len(flow_b.events) == flow_b.warmup + N and flow_b.warmup == 1_000
    gtc = _label_share(flow_b, "gtc_passive") + _label_share(flow_b, "gtc_marketable")
    assert abs(gtc - 0.10) < 0.015
    assert abs(_label_share(flow_b, "gtc_marketable") / gtc - 1 / 3) < 0.07
    assert abs(_label_share(flow_b, "ioc") - 0.03) < 0.006
    assert abs(_label_share(flow_b, "cancel") - 0.05) < 0.012
    assert abs(_label_share(flow_b, "move") - 0.82) < 0.015
    # the labels are what the events do
    e, labels = flow_b.events, flow_b.labels
    name = np.array(flows.LABEL_NAMES)[labels]
    adds = np.isin(name, ["warmup", "gtc_passive", "gtc_marketable", "ioc"])
    assert (e["kind"][adds] == R.EV_ADD).all()
    assert (e["tif"][adds & (name != "ioc")] == R.GTC).all()
    assert (e["tif"][name == "ioc"] == R.IOC).all()
    assert (e["kind"][name == "cancel"] == R.EV_CANCEL).all()
    assert (e["qty"][name == "cancel"] == 0).all()
    assert (e["kind"][name == "move"] == R.EV_MODIFY).all()
    assert (e["qty"][name == "move"] == 0).all()
    assert len(np.unique(e["order_id"][adds])) == adds.sum()


def test_flow_b_prices(flow_b):
    e, mid = flow_b.events, flow_b.mid_ticks
    name = np.array(flows.LABEL_NAMES)[flow_b.labels]
    passive = np.isin(name, ["warmup", "gtc_passive"])
    ticks = e["price"][passive] // TICK
    side = e["side"][passive]
    assert (e["price"][passive] % TICK == 0).all()
    assert ((ticks < mid) | (side == R.SELL)).all()     # passive: bids below the mid,
    assert ((ticks > mid) | (side == R.BUY)).all()      # asks above it
    assert np.abs(ticks - mid).max() <= 1_250
    assert np.abs(ticks - mid).min() >= 1
    # spread over the whole +-1,250 ticks
    assert np.percentile(np.abs(ticks - mid), 90) > 1_000
    # every move is a price replace of 1..10 ticks from where the order rested
    price = {}
    for oid, p, kind in zip(e["order_id"].tolist(), e["price"].tolist(), e["kind"].tolist()):
        if kind == R.EV_ADD:
            price[oid] = p
        elif kind == R.EV_MODIFY:
            step = abs(p - price[oid]) // TICK
            assert 1 <= step <= 10, (oid, p, price[oid])
            assert abs(p // TICK - mid) <= 1_250
            price[oid] = p


def test_flow_b_book_shape(flow_b, flow_b_replay):
    resting, levels, traded = flow_b_replay
    w = flow_b.warmup
    assert resting[w - 1] == 1_000                      # the warm-up rests whole
    assert 900 <= resting[w:].min() and resting[w:].max() <= 1_100
    assert 650 <= np.median(levels[w:]) <= 950          # ~750-830 levels of ~1k orders
    name = np.array(flows.LABEL_NAMES)[flow_b.labels]
    marketable = np.isin(name, ["gtc_marketable", "ioc"])
    assert traded[marketable].mean() > 0.95              # they take liquidity
    assert not traded[np.isin(name, ["warmup", "gtc_passive", "move", "cancel"])].any()


# ------------------------------------------------------- engine vs the reference book
def _resting(orders) -> list[tuple]:
    return [(int(o["order_id"]), int(o["side"]), int(o["price"]), int(o["qty"])) for o in orders]


def _engine_resting(book) -> list[tuple]:
    out = np.zeros(int(book.state.books[0]["orders"].sum()), dtype=R.ORDER)
    k = kbook.resting_orders(book.state, 0, out)
    return _resting(out[:k])


@pytest.mark.parametrize("which", ["a", "b"])
def test_engine_agrees_with_reference(which, flow_a, flow_b):
    flow = flow_a if which == "a" else flow_b
    run = _FlowRun(flow, liquibook=flows.liquibook_available()[0])
    ref = ReferenceBook(tick=TICK)
    for row in flows.reference_rows(flow.events):
        ref.apply(*row)
    expected = [(o.order_id, o.side, o.price, o.qty) for o in ref.resting()]
    assert len(expected) > 500

    batched = run._warm_book()
    fills = np.zeros(4_096, dtype=R.FILL)     # small: the drain loop runs too
    start = 0
    while start < len(flow.commands):
        start, _ = batched.apply(flow.commands, fills, None, start)
    assert _engine_resting(batched) == expected
    assert batched.stats()["rejects"] == {}

    single = flow.new_book()
    for method, args in flows.python_calls(single, flow.events, flow.price_scale):
        result = method(*args)
        assert result.accepted, (args, result)
    assert _engine_resting(single) == expected

    summary = flows.reference_summary(ref)
    assert flows.engine_summary(batched) == summary == flows.engine_summary(single)
    assert summary.bid_orders + summary.ask_orders == len(expected)
    assert summary.best_bid < summary.best_ask


@pytest.mark.parametrize("which", ["a", "b"])
def test_liquibook_agrees_with_reference(which, flow_a, flow_b):
    pytest.importorskip("liquibook")  # in the [dev] extra where its wheel exists
    flow = flow_a if which == "a" else flow_b
    ref = ReferenceBook(tick=TICK)
    for row in flows.reference_rows(flow.events):
        ref.apply(*row)
    book, orders = flows.liquibook_run(flows.liquibook_commands(flow.events))
    assert flows.liquibook_summary(book) == flows.reference_summary(ref)


def test_the_guard_catches_a_different_book(flow_b):
    """The benchmark raises instead of reporting a rate when a consumer's book differs."""
    run = _FlowRun(flow_b.prefix(2_000), liquibook=False)
    run.time_reference()
    run.time_batched()
    assert run.check() == run.summaries["reference"]
    run.cmds = run.cmds[:-50]       # the batched path misses the last commands
    run.time_batched()
    with pytest.raises(RuntimeError, match="different books"):
        run.check()
