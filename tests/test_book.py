"""Order types, reject reasons, queries and the Python layer's validation."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import book as kbook
from kernels import records as R
from workbench.book import Engine, OrderBook, make_events
from workbench.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce


def small_book(**kw):
    kw.setdefault("capacity", 1000)
    kw.setdefault("price_levels", 4096)
    return OrderBook("TEST", tick_size=0.01, **kw)


def test_limit_orders_rest_and_match_price_time():
    book = small_book()
    a = book.submit(Side.SELL, 101.00, 30)
    b = book.submit(Side.SELL, 101.00, 20)
    c = book.submit(Side.SELL, 100.50, 10)
    assert [r.status for r in (a, b, c)] == [OrderStatus.NEW] * 3
    assert book.best_ask == 100.50 and book.best_bid is None
    taker = book.submit(Side.BUY, 101.00, 45)
    # best price first (c), then time priority at 101.00 (a before b)
    assert [(int(f["maker_id"]), int(f["qty"]), int(f["price"])) for f in taker.fills] == [
        (c.order_id, 10, 1_005_000), (a.order_id, 30, 1_010_000), (b.order_id, 5, 1_010_000)]
    assert taker.status == OrderStatus.FILLED and taker.filled == 45 and taker.leaves == 0
    assert book.get_asks(5) == [(101.0, 15, 1)]
    assert book.orders()["order_id"].to_list() == [b.order_id]
    assert book.orders()["filled"].to_list() == [5]


def test_limit_remainder_rests_partially_filled():
    book = small_book()
    book.submit("sell", 100.0, 10)
    r = book.submit("buy", 100.5, 25)
    assert r.status == OrderStatus.PARTIALLY_FILLED and r.filled == 10 and r.leaves == 15
    assert book.best_bid == 100.5 and book.best_ask is None


def test_market_order_walks_levels_and_cancels_remainder():
    book = small_book()
    book.submit(Side.SELL, 100.0, 10)
    book.submit(Side.SELL, 100.1, 10)
    r = book.submit(Side.BUY, None, 25, order_type=OrderType.MARKET)
    assert r.status == OrderStatus.CANCELLED and r.filled == 20 and r.leaves == 0
    assert list(r.fills["price"]) == [1_000_000, 1_001_000]
    assert book.best_ask is None and len(book) == 0


def test_ioc_fills_what_crosses_and_never_rests():
    book = small_book()
    book.submit(Side.BUY, 99.0, 10)
    book.submit(Side.BUY, 98.0, 10)
    r = book.submit(Side.SELL, 98.5, 30, tif=TimeInForce.IOC)
    assert r.filled == 10 and r.status == OrderStatus.CANCELLED and r.leaves == 0
    assert book.best_ask is None and book.best_bid == 98.0


def test_fok_all_or_nothing():
    book = small_book()
    book.submit(Side.SELL, 100.0, 10)
    book.submit(Side.SELL, 100.2, 10)
    killed = book.submit(Side.BUY, 100.1, 15, tif=TimeInForce.FOK)
    assert killed.status == OrderStatus.REJECTED and killed.reason == RejectReason.FOK_NOT_FILLABLE
    assert len(killed.fills) == 0 and book.get_asks(5) == [(100.0, 10, 1), (100.2, 10, 1)]
    done = book.submit(Side.BUY, 100.2, 15, tif=TimeInForce.FOK)
    assert done.status == OrderStatus.FILLED and done.filled == 15
    assert book.get_asks(5) == [(100.2, 5, 1)]


def test_cancel_full_and_partial():
    book = small_book()
    r = book.submit(Side.BUY, 99.0, 50)
    partial = book.cancel(r.order_id, qty=20)
    assert partial.status == OrderStatus.NEW and partial.leaves == 30
    assert book.get_bids(1) == [(99.0, 30, 1)]
    full = book.cancel(r.order_id)
    assert full.status == OrderStatus.CANCELLED and full.leaves == 0
    assert book.best_bid is None
    again = book.cancel(r.order_id)
    assert again.status == OrderStatus.REJECTED and again.reason == RejectReason.UNKNOWN_ORDER


def test_modify_priority_rules():
    book = small_book()
    first = book.submit(Side.BUY, 99.0, 10)
    second = book.submit(Side.BUY, 99.0, 10)
    # less quantity, same price: keeps its place
    book.modify(first.order_id, qty=5)
    assert book.queue_position(first.order_id) == (0, 0)
    assert book.queue_position(second.order_id) == (5, 1)
    # more quantity: goes to the back
    book.modify(first.order_id, qty=8)
    assert book.queue_position(first.order_id) == (10, 1)
    # price change: new level, and it can match
    book.submit(Side.SELL, 99.5, 3)
    moved = book.modify(second.order_id, price=99.5)
    assert moved.filled == 3 and moved.leaves == 7 and book.best_bid == 99.5


def test_execute_by_id_replays_an_exchange_execution():
    book = small_book()
    r = book.submit(Side.SELL, 100.0, 10)
    partial = book.execute(r.order_id, 4)
    assert partial.status == OrderStatus.PARTIALLY_FILLED and partial.filled == 4 and partial.leaves == 6
    f = partial.fills[0]
    assert (int(f["maker_id"]), int(f["taker_id"]), int(f["qty"]), int(f["taker_side"])) == \
        (r.order_id, 0, 4, R.BUY)
    assert book.execute(r.order_id, 6).status == OrderStatus.FILLED
    assert book.best_ask is None


def test_queries_depth_vwap_mid_spread():
    book = small_book()
    for price, qty in [(99.0, 10), (98.0, 30), (97.0, 5)]:
        book.submit(Side.BUY, price, qty)
    for price, qty in [(101.0, 20), (102.0, 10)]:
        book.submit(Side.SELL, price, qty)
    assert book.mid_price == 100.0 and book.spread == 2.0
    assert book.vwap(Side.BUY, 2) == pytest.approx((99 * 10 + 98 * 30) / 40)
    depth = book.depth(2)
    assert depth.filter(depth["side"] == "bid")["price"].to_list() == [99.0, 98.0]
    assert depth.filter(depth["side"] == "ask")["qty"].to_list() == [20, 10]
    assert book.get_best_bid() == 99.0 and book.get_best_ask() == 101.0


@pytest.mark.parametrize("reason, event, setup", [
    (RejectReason.UNKNOWN_ORDER, (R.EV_CANCEL, 999, 0, 0, 0), []),
    (RejectReason.DUPLICATE_ID, (R.EV_ADD, 1, R.BUY, 990_000, 5), [(R.EV_ADD, 1, R.BUY, 990_000, 5)]),
    (RejectReason.NON_POSITIVE_QTY, (R.EV_ADD, 2, R.BUY, 990_000, 0), []),
    (RejectReason.PRICE_OFF_TICK, (R.EV_ADD, 2, R.BUY, 990_050, 5), []),
    (RejectReason.FOK_NOT_FILLABLE, (R.EV_ADD, 2, R.BUY, 1_000_000, 5, R.LIMIT, R.FOK), []),
    (RejectReason.INVALID_SIDE, (R.EV_ADD, 2, 5, 990_000, 5), []),
    (RejectReason.INVALID_TYPE, (R.EV_ADD, 2, R.BUY, 990_000, 5, 9), []),
    (RejectReason.NON_POSITIVE_PRICE, (R.EV_ADD, 2, R.BUY, -100, 5), []),
])
def test_each_reject_reason_through_the_batched_kernel(reason, event, setup):
    book = small_book()
    if setup:
        book.submit_many(make_events(setup))
    before = book.orders()
    kind, oid, side, price, qty, *rest = event
    events = make_events([(kind, oid, 0, price, qty)])
    events["side"] = side  # bypass make_events' validation: the kernel must reject raw input
    if rest:
        events["order_type"] = rest[0]
        if len(rest) > 1:
            events["tif"] = rest[1]
    out = book.submit_many(events)
    assert int(out.results["status"][0]) == R.ST_REJECTED
    assert int(out.results["reason"][0]) == reason
    assert book.orders().equals(before)  # a reject changes nothing
    assert book.stats()["rejects"][R.REJECT_REASON_NAMES[reason]] == 1


def test_pool_full_and_halt_rejects():
    book = OrderBook("T", tick_size=0.01, capacity=2, price_levels=4096)
    assert book.submit(Side.BUY, 99.0, 1).accepted
    assert book.submit(Side.BUY, 98.0, 1).accepted
    full = book.submit(Side.BUY, 97.0, 1)
    assert full.reason == RejectReason.POOL_FULL
    # a marketable IOC needs no slot, so it still works with the pool full
    book.submit(Side.SELL, 99.0, 1, tif=TimeInForce.IOC)
    assert book.submit(Side.BUY, 97.0, 1).accepted  # the slot came back
    book = small_book()
    out = book.submit_many(make_events([(R.EV_HALT, 0, 0, -1, 0), (R.EV_ADD, 50, 0, 960_000, 1),
                                        (R.EV_HALT, 0, 0, 1, 0), (R.EV_ADD, 51, 0, 960_000, 1)]))
    assert list(out.results["reason"]) == [0, RejectReason.HALTED, 0, 0]


def test_engine_keeps_symbols_apart_and_rejects_unknown_symbols():
    eng = Engine(symbols=["AAA", "BBB"], tick_size={"AAA": 0.01, "BBB": 0.05}, capacity=100,
                 price_levels=4096)
    eng.submit("AAA", Side.BUY, 10.00, 5, order_id=7)
    eng.submit("BBB", Side.SELL, 10.00, 5, order_id=7)  # same id, other book: fine
    assert eng.best_bid("AAA") == 10.0 and eng.best_ask("AAA") is None
    assert eng.best_ask("BBB") == 10.0 and eng.best_bid("BBB") is None
    with pytest.raises(ValueError, match="tick size 0.05"):
        eng.submit("BBB", Side.BUY, 10.01, 5)
    events = make_events([(R.EV_ADD, 1, 0, 100_000, 5, R.LIMIT, R.GTC, 5)])
    assert int(eng.submit_many(events).results["reason"][0]) == RejectReason.UNKNOWN_SYMBOL
    with pytest.raises(ValueError, match="symbol='ZZZ'"):
        eng.best_bid("ZZZ")


def test_streaming_apply_pauses_on_a_full_fills_buffer_and_loses_nothing():
    book = small_book()
    rows = [(R.EV_ADD, i, R.SELL, 1_000_000, 1) for i in range(1, 11)]
    rows.append((R.EV_ADD, 100, R.BUY, 1_000_000, 10))       # would make 10 fills
    events = make_events(rows)
    fills = np.zeros(4, dtype=R.FILL)
    nxt, nf = book.apply(events, fills)
    assert (nxt, nf) == (10, 0)                  # paused before the big order; nothing lost
    assert book.stats()["output_full_pauses"] == 1
    big = np.zeros(16, dtype=R.FILL)
    nxt, nf = book.apply(events, big, start=nxt)
    assert (nxt, nf) == (11, 10) and list(big["maker_id"][:nf]) == list(range(1, 11))


def test_prices_beyond_the_window_rest_and_the_window_follows():
    book = small_book()   # a 4096-tick window = 40.96 wide
    r = book.submit(Side.BUY, 100.0, 1)
    far = book.submit(Side.BUY, 500.0, 1)   # better than the whole window: it slides
    assert far.accepted and book.best_bid == 500.0
    deep = book.submit(Side.BUY, 1.0, 1)    # worse than the window: the overflow
    assert deep.accepted
    assert [p for p, _, _ in book.get_bids(5)] == [500.0, 100.0, 1.0]
    book.cancel(far.order_id)
    book.cancel(r.order_id)
    assert book.best_bid == 1.0            # the window re-centred on the overflow's best


def test_anonymous_volume_fallback():
    book = OrderBook("T", tick_size=0.01, capacity=100, price_levels=4096, anonymous_fallback=True)
    anon = int(kbook.anon_order_id(0, R.BUY, 1_000_000))
    book.submit_many(make_events([(R.EV_ADD, anon, R.BUY, 1_000_000, 100)]))
    # a cancel and an execution of ids the engine never saw act on the anonymous volume
    out = book.submit_many(make_events([(R.EV_CANCEL, 555, R.BUY, 1_000_000, 30),
                                        (R.EV_EXECUTE, 556, R.BUY, 1_000_000, 20),
                                        (R.EV_DELETE, 557, R.BUY, 1_000_000, 10)]))
    assert list(out.results["reason"]) == [0, 0, 0]
    assert book.get_bids(1) == [(100.0, 40, 1)]
    plain = small_book()
    assert int(plain.submit_many(make_events([(R.EV_CANCEL, 555, R.BUY, 1_000_000, 30)]))
               .results["reason"][0]) == RejectReason.UNKNOWN_ORDER


@pytest.mark.parametrize("call, match", [
    (lambda b: b.submit("up", 100.0, 1), "side='up'"),
    (lambda b: b.submit(Side.BUY, 100.0, 0), "qty=0"),
    (lambda b: b.submit(Side.BUY, 100.0, 1.5), "qty=1.5"),
    (lambda b: b.submit(Side.BUY, 100.003, 1), "price=100.003"),
    (lambda b: b.submit(Side.BUY, float("nan"), 1), "price=nan"),
    (lambda b: b.submit(Side.BUY, -1.0, 1), "price=-1.0"),
    (lambda b: b.submit(Side.BUY, 100.0, 1, order_type="stop"), "order_type='stop'"),
    (lambda b: b.submit(Side.BUY, 100.0, 1, tif="day"), "tif='day'"),
    (lambda b: b.submit(Side.BUY, 100.0, 1, order_type=OrderType.MARKET), "market order"),
    (lambda b: b.cancel(-3), "order_id=-3"),
    (lambda b: b.modify(1), "new price"),
    (lambda b: b.submit_many(np.zeros(3, dtype=np.int64)), "events must be"),
])
def test_python_layer_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(small_book())


@pytest.mark.parametrize("kwargs, match", [
    (dict(symbols=[]), "symbols"),
    (dict(symbols=["A", "A"]), "duplicates"),
    (dict(tick_size=0), "tick_size"),
    (dict(tick_size=0.00001), "tick_size"),
    (dict(capacity=0), "capacity"),
    (dict(price_levels=5000), "price_levels"),
])
def test_engine_constructor_validation(kwargs, match):
    kwargs.setdefault("symbols", ["A"])
    with pytest.raises(ValueError, match=match):
        Engine(**kwargs)


def test_fills_log_as_polars():
    book = small_book()
    book.submit(Side.SELL, 100.0, 5, order_id=1)
    book.submit(Side.BUY, 100.0, 5, order_id=2)
    fills = book.fills()
    assert fills.select("maker_id", "taker_id", "price", "qty", "symbol", "taker_side").rows() == [
        (1, 2, 100.0, 5, "TEST", "buy")]


def test_automatic_ids_never_collide_with_given_ids():
    book = small_book()
    assert book.submit(Side.BUY, 99.0, 1, order_id=2).accepted
    ids = [book.submit(Side.BUY, 98.0, 1).order_id for _ in range(3)]
    assert ids == [3, 4, 5] and all(book.queue_position(i) is not None for i in ids)
