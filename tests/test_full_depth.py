"""Full-depth books: every price on the tick grid, a window that follows the market.

The engine keeps a small direct-mapped window of price levels near the touch and an
overflow list beyond it (``kernels.book``). These flows are built to live mostly outside
a 64-tick window: prices spread over six orders of magnitude of ticks, and touches that
trend far from where they started. Results, fills and resting books must equal the
plain-Python reference (``workbench.reference.ReferenceBook``, which has no window), and
the window/overflow structure must keep its invariants after every flow.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import book as kbook
from kernels import book_state
from kernels import records as R
from workbench.book import Engine, OrderBook
from workbench.enums import RejectReason, Side
from workbench.reference import ReferenceBook

from tests.conftest import REPO

from .test_book_reference import engine_resting, fill_tuples, run_reference

TICK = 100            # 0.01 at price scale 10_000
WINDOW = 64           # the smallest window: most of these flows live in the overflow

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _price(draw, centre):
    """A price (units) a long way from ``centre`` more often than not: offsets of
    10**U(0, 6) ticks either side, or anywhere from 1 tick to a million."""
    how = draw(st.sampled_from(["near", "far", "far", "anywhere"]))
    if how == "near":
        ticks = centre + draw(st.integers(-6, 6))
    elif how == "far":
        exponent = draw(st.floats(0, 6))
        ticks = centre + draw(st.sampled_from([-1, 1])) * int(10 ** exponent)
    else:
        ticks = draw(st.integers(1, 1_000_000))
    return max(1, ticks) * TICK


@st.composite
def wide_flows(draw, max_size=120, trend=False, replay=False):
    """Order flows over a wide price range; ``trend``: the centre drifts by up to a
    few windows per event (a trending market); ``replay``: feed kinds too."""
    n = draw(st.integers(1, max_size))
    events = np.zeros(n, dtype=R.EVENT)
    centre = draw(st.integers(1_000, 500_000))
    drift = draw(st.integers(-3 * WINDOW, 3 * WINDOW)) if trend else 0
    kinds = ["add"] * 6 + ["cancel", "delete", "modify", "execute"]
    if replay:
        kinds += ["rest"] * 5 + ["move"] * 2 + ["clear"]
    next_id = 1
    for i in range(n):
        centre = max(10, centre + drift + (draw(st.integers(-WINDOW, WINDOW)) if trend else 0))
        kind = draw(st.sampled_from(kinds))
        ts = i + 1
        known = draw(st.integers(1, max(1, next_id)))
        side = draw(st.sampled_from([R.BUY, R.SELL]))
        if kind == "add":
            order_type = draw(st.sampled_from([R.LIMIT] * 8 + [R.MARKET]))
            tif = draw(st.sampled_from([R.GTC] * 6 + [R.IOC, R.FOK]))
            price = draw(_price(centre)) if order_type == R.LIMIT else 0
            events[i] = (ts, next_id, price, draw(st.integers(1, 40)), 0, R.EV_ADD, side,
                         order_type, tif)
            next_id += 1
        elif kind == "rest":
            events[i] = (ts, next_id, draw(_price(centre)), draw(st.integers(1, 40)), 0, R.EV_REST,
                         side, R.LIMIT, R.GTC)
            next_id += 1
        elif kind == "cancel":
            events[i] = (ts, known, 0, draw(st.integers(0, 30)), 0, R.EV_CANCEL, 0, 0, 0)
        elif kind == "delete":
            events[i] = (ts, known, 0, 0, 0, R.EV_DELETE, 0, 0, 0)
        elif kind in ("modify", "move"):
            price = draw(st.sampled_from([0, draw(_price(centre))]))
            ev = R.EV_MODIFY if kind == "modify" else R.EV_MOVE
            events[i] = (ts, known, price, draw(st.integers(0, 40)), 0, ev, 0, 0, 0)
        elif kind == "execute":
            events[i] = (ts, known, 0, draw(st.integers(1, 30)), 0, R.EV_EXECUTE, 0, 0, 0)
        else:
            events[i] = (ts, next_id, 0, 0, 0, R.EV_CLEAR, 0, 0, 0)
            next_id += 1
    return events


def check_structure(book, booki: int = 0) -> None:
    """The window/overflow invariants, read straight from the state arrays."""
    s = book.state
    c = s.counters
    W = int(c[book_state.EC_W])
    ovf = int(c[book_state.EC_OVF_BASE])
    b = s.books[booki]
    tick = int(b["tick"])
    used = 0
    for side in (R.BUY, R.SELL):
        better = (lambda p, q: p > q) if side == R.BUY else (lambda p, q: p < q)
        # walk the side best first: strictly worsening prices, each level = its orders
        h = int(b["best"][side])
        walked, prices = 0, []
        while h >= 0:
            lv = s.levels[h]
            assert lv["count"] > 0
            qty, n, slot = 0, 0, int(lv["head"])
            while slot >= 0:
                o = s.pool[slot]
                assert o["level"] == h and o["price"] == lv["price"] and o["side"] == side
                qty += int(o["qty"])
                n += 1
                slot = int(o["next"])
            assert (qty, n) == (int(lv["qty"]), int(lv["count"]))
            prices.append(int(lv["price"]))
            walked += 1
            h = kbook.next_level(s, booki, side, h)
        assert all(better(p, q) for p, q in zip(prices, prices[1:])), prices
        assert walked == int(b["n_levels"][side])
        # overflow list: sorted best first, every level worse than the whole window
        node, n_ovf, last = int(b["ovf_head"][side]), 0, None
        lo = int(b["lo"][side])
        while node >= 0:
            p = int(s.levels[ovf + node]["price"]) // tick
            assert p < lo if side == R.BUY else p >= lo + W, (side, p, lo)
            assert last is None or better(last, p)
            last, n_ovf, node = p, n_ovf + 1, int(s.ovf_next[node])
        assert n_ovf == int(b["n_ovf"][side])
        used += n_ovf
        # a non-empty side has its best level in its window
        if b["best"][side] >= 0:
            assert b["best"][side] < ovf
        else:
            assert b["n_ovf"][side] == 0 and b["orders"][side] == 0
    if len(s.books) == 1:
        assert used == int(c[book_state.EC_OVF_USED])


def _same_as_reference(events, book):
    ref, ref_results, ref_fills, ref_resting = run_reference(events)
    out = book.submit_many(events)
    got = [(int(r["status"]), int(r["reason"]), int(r["filled"]), int(r["leaves"]))
           for r in out.results]
    assert got == ref_results
    assert fill_tuples(out.fills) == ref_fills
    assert engine_resting(book) == ref_resting
    for side, getter in ((R.BUY, book.get_bids), (R.SELL, book.get_asks)):
        assert [(round(p * book.price_scale), q, c) for p, q, c in getter(10_000)] == \
            ref.levels(side)
    check_structure(book)


@SETTINGS
@given(wide_flows())
def test_prices_over_six_orders_of_magnitude_match_reference(events):
    _same_as_reference(events, OrderBook("T", tick_size=0.01, capacity=1000, price_levels=WINDOW))


@SETTINGS
@given(wide_flows(trend=True))
def test_trending_touch_matches_reference(events):
    _same_as_reference(events, OrderBook("T", tick_size=0.01, capacity=1000, price_levels=WINDOW))


@SETTINGS
@given(wide_flows(trend=True, replay=True))
def test_feed_replay_kinds_match_reference(events):
    """EV_REST / EV_MOVE / EV_CLEAR never match, so books may cross; still identical."""
    _same_as_reference(events, OrderBook("T", tick_size=0.01, capacity=1000, price_levels=WINDOW))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_flows(max_size=60, trend=True, replay=True))
def test_single_order_path_matches_reference(events):
    ref = ReferenceBook(tick=TICK)
    book = OrderBook("T", tick_size=0.01, capacity=1000, price_levels=WINDOW)
    for e in events:
        args = [int(e[k]) for k in ("kind", "order_id", "side", "price", "qty", "order_type", "tif", "ts")]
        r = ref.apply(*args)
        kind, oid, side, price, qty, otype, tif, ts = args
        got = book._call(kind, 0, oid, side, price, qty, otype, tif, ts)
        assert (int(got.status), int(got.reason), got.filled, got.leaves) == \
            (r.status, r.reason, r.filled, r.leaves)
        assert fill_tuples(got.fills) == [
            (f.maker_id, f.taker_id, f.price, f.qty, f.maker_leaves, f.taker_side) for f in r.fills]
    check_structure(book)


def test_stub_quotes_and_deep_levels_are_accepted():
    """NASDAQ stub quotes ($0.01 and $199,999.99) and a LOBSTER-like deep book around
    $585 with asks at $616, $688, $743 and $2,000 all rest and match correctly."""
    book = OrderBook("AAPL", tick_size=0.01, capacity=100, price_levels=WINDOW)
    for i, (side, px) in enumerate([(Side.BUY, 0.01), (Side.SELL, 199_999.99), (Side.BUY, 460.0),
                                    (Side.SELL, 616.0), (Side.SELL, 688.0), (Side.SELL, 743.0),
                                    (Side.SELL, 2000.0), (Side.BUY, 584.99), (Side.SELL, 585.01)]):
        assert book.submit(side, px, 10 + i).accepted
    assert (book.best_bid, book.best_ask) == (584.99, 585.01)
    assert [p for p, _, _ in book.get_asks(10)] == [585.01, 616.0, 688.0, 743.0, 2000.0, 199_999.99]
    assert [p for p, _, _ in book.get_bids(10)] == [584.99, 460.0, 0.01]
    check_structure(book)
    # a buy sweeping to $1,000 takes the asks up to $743, best first
    r = book.submit(Side.BUY, 1000.0, 10_000)
    assert [round(p, 2) for p in book.fills()["price"].to_list()] == [585.01, 616.0, 688.0, 743.0]
    assert r.leaves > 0 and book.best_bid == 1000.0 and book.best_ask == 2000.0
    check_structure(book)
    # the far bid side collapses onto the stub quote, then empties
    for oid in (8, 3):
        book.cancel(oid)
    book.cancel(r.order_id)
    assert book.best_bid == 0.01
    check_structure(book)


def test_window_follows_a_trending_market():
    """A touch that climbs 100 windows: the engine slides instead of rejecting, the
    levels left behind stay reachable, and a sell sweep finds them all."""
    book = OrderBook("T", tick_size=0.01, capacity=10_000, price_levels=WINDOW)
    prices = [round(100 + 0.01 * 37 * i, 2) for i in range(200)]  # 37 ticks a step
    for px in prices:
        assert book.submit(Side.BUY, px, 1).accepted
    s = book.state
    assert s.counters[book_state.EC_RECENTRES] > 50
    assert book.best_bid == prices[-1]
    assert [p for p, _, _ in book.get_bids(500)] == prices[::-1]
    check_structure(book)
    r = book.submit(Side.SELL, 0.01, 500)
    assert r.filled == 200 and book.best_bid is None
    assert [round(p, 2) for p in book.fills()["price"].to_list()] == prices[::-1]
    check_structure(book)


def test_price_collar_is_opt_in():
    free = OrderBook("T", tick_size=0.01)
    free.submit(Side.SELL, 100.0, 5)
    free.submit(Side.BUY, 100.0, 5)  # last trade 100.00
    assert free.submit(Side.SELL, 150.0, 1).accepted
    collared = OrderBook("T", tick_size=0.01, price_collar=0.1)
    assert collared.submit(Side.SELL, 150.0, 1).accepted  # no reference yet: no collar
    collared.submit(Side.SELL, 100.0, 5)
    collared.submit(Side.BUY, 100.0, 5)  # last trade 100.00: band 90..110
    far = collared.submit(Side.SELL, 110.01, 1)
    assert far.reason == RejectReason.PRICE_OUT_OF_BAND
    assert collared.submit(Side.SELL, 110.0, 1).accepted
    assert collared.submit(Side.BUY, 90.0, 1).accepted
    assert collared.submit(Side.BUY, 89.99, 1).reason == RejectReason.PRICE_OUT_OF_BAND
    # feed replays are never collared
    ev = np.zeros(1, dtype=R.EVENT)
    ev[0] = (1, 99, 5_000_000, 3, 0, R.EV_REST, R.SELL, R.LIMIT, R.GTC)
    assert collared.submit_many(ev).results["reason"][0] == R.R_NONE
    for bad in (-0.1, float("nan"), "10%", True):
        with pytest.raises(ValueError, match="price_collar"):
            OrderBook("T", price_collar=bad)


def test_whole_exchange_memory():
    """10,000 books with room for 300 resting orders each fit well under 2 GB, and the
    default window shrinks with the number of books (65,536 ticks for one)."""
    assert book_state.default_price_levels(1) == 65_536
    assert book_state.default_price_levels(10_000) == 512
    eng = Engine(symbols=[f"S{i:05d}" for i in range(10_000)], capacity=3_000_000,
                 record_fills=False)
    total = sum(a.nbytes for a in eng.state)
    assert total < 1 << 30, f"{total / 2**20:.0f} MiB"
    # every book takes orders at prices far apart
    n = 20_000
    ev = np.zeros(n, dtype=R.EVENT)
    rng = np.random.default_rng(0)
    ev["order_id"] = np.arange(1, n + 1)
    ev["symbol"] = np.arange(n) % 10_000
    ev["kind"] = R.EV_REST
    ev["side"] = rng.integers(0, 2, n)
    ev["price"] = np.where(ev["side"] == R.BUY, rng.integers(1, 10_000, n),
                           rng.integers(10_000, 2_000_000, n)) * 100
    ev["qty"] = 1
    out = eng.submit_many(ev)
    assert (out.results["reason"] == R.R_NONE).all()
    for booki in (0, 1, 9_999):
        check_structure(eng, booki)


def test_a_feed_clear_in_a_backtest_keeps_our_orders():
    """A feed's book reset (Databento's R, ``EV_CLEAR``) removes the feed's orders; the
    backtester's own simulated orders stay queued (they used to vanish, and the
    strategy then retried cancelling them forever at zero latency)."""
    from workbench.backtest import Backtest
    from workbench.data.market import MarketData

    book = OrderBook("T", tick_size=0.01, capacity=100, price_levels=WINDOW)
    base = int(R.STRATEGY_ID_BASE)
    ev = np.zeros(6, dtype=R.EVENT)
    rows = [(1, R.BUY, 99.0), (2, R.SELL, 101.0), (base + 1, R.BUY, 99.5), (base + 2, R.SELL, 250.0),
            (3, R.BUY, 0.5), (4, R.SELL, 100.5)]
    for i, (oid, side, px) in enumerate(rows):
        ev[i] = (i + 1, oid, round(px * 10_000), 5, 0, R.EV_REST, side, R.LIMIT, R.GTC)
    book.submit_many(ev)
    assert kbook.clear_others(book.state, 0, base) == 4
    assert sorted(book.orders()["order_id"].to_list()) == [base + 1, base + 2]
    check_structure(book)
    # the backtester: feed adds, a clear, more adds; zero latency; it must finish with
    # every own order accounted for
    rng = np.random.default_rng(3)
    n = 400
    flow = np.zeros(n, dtype=R.EVENT)
    flow["ts"] = np.arange(1, n + 1) * 1_000
    flow["order_id"] = np.arange(1, n + 1)
    flow["kind"] = R.EV_REST
    flow["side"] = rng.integers(0, 2, n)
    ticks = np.where(flow["side"] == R.BUY, 9_990 - rng.integers(0, 8, n), 10_010 + rng.integers(0, 8, n))
    flow["price"] = ticks * 100
    flow["qty"] = rng.integers(1, 20, n)
    flow["order_type"], flow["tif"] = R.LIMIT, R.GTC
    flow[n // 2]["kind"] = R.EV_CLEAR
    result = Backtest(MarketData(flow, 100, 10_000, "cleared")).strategy(
        "grid_mm", levels=3, spacing_ticks=1, qty=1).run(progress=False)
    orders = result.orders
    assert orders.height > 0
    # no cancel of ours met an order the exchange had lost
    assert "unknown_order" not in orders["exchange_reason"].to_list()


def _many_book_events(rng, n_books, n):
    """Random adds, cancels, deletes, moves and executions over ``n_books`` books, ids
    in sequence (as a feed's), prices near and far from each book's mid."""
    rows, live = [], []
    for i in range(n):
        r = rng.random()
        if r < 0.5 or not live:
            oid = i + 1
            book = int(rng.integers(0, n_books))
            side = int(rng.integers(0, 2))
            far = rng.random() < 0.05
            ticks = int(rng.integers(-3_000, 3_000)) if far else int(rng.integers(-30, 30))
            price = (10_000 + ticks + (5 if side == 1 else -5)) * 100
            kind = R.EV_REST if rng.random() < 0.5 else R.EV_ADD
            rows.append((kind, oid, side, price, int(rng.integers(1, 500)), R.LIMIT, R.GTC,
                         book, i + 1))
            live.append((oid, book, side, price))
        else:
            oid, book, side, price = live.pop(int(rng.integers(0, len(live))))
            kind = (R.EV_CANCEL, R.EV_DELETE, R.EV_MOVE, R.EV_EXECUTE)[int(rng.integers(0, 4))]
            qty = 0 if kind != R.EV_EXECUTE else int(rng.integers(1, 50))
            new_price = price + 100 * int(rng.integers(-5, 6)) if kind == R.EV_MOVE else price
            rows.append((kind, oid, side, new_price, qty, R.LIMIT, R.GTC, book, i + 1))
            if kind == R.EV_MOVE or (kind == R.EV_EXECUTE and rng.random() < 0.5):
                live.append((oid, book, side, new_price))
    out = np.zeros(len(rows), dtype=R.EVENT)   # feed kinds (REST, MOVE): no enum for them
    for i, (kind, oid, side, price, qty, order_type, tif, book, ts) in enumerate(rows):
        out[i] = (ts, oid, price, qty, book, kind, side, order_type, tif)
    return out


def test_the_deep_batch_loop_is_the_batch_loop():
    """``apply_batch_deep`` (engines of many books) gives ``apply_batch``'s results, fills
    and state, event for event, also when the fills buffer fills up mid-batch."""
    rng = np.random.default_rng(3)
    n_books = 80
    events = _many_book_events(rng, n_books, 30_000)
    # and events every check must turn away, in each of the kinds the deep loop inlines
    # (kernels.book.apply_feed_event) and the others: books out of range, the index's
    # empty key as an id, unknown kinds, sizes and prices out of range, unknown and
    # duplicate ids
    bad = rng.choice(len(events), 1_500, replace=False)
    what = rng.integers(0, 7, len(bad))
    feed_kinds = np.array([R.EV_REST, R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE, R.EV_MOVE,
                           R.EV_ADD], dtype=np.int8)
    events["kind"][bad] = feed_kinds[rng.integers(0, len(feed_kinds), len(bad))]
    events["symbol"][bad[what == 0]] = rng.choice([-1, n_books, 2**31 - 1], (what == 0).sum())
    events["order_id"][bad[what == 1]] = kbook.EMPTY_KEY
    events["kind"][bad[what == 2]] = 99
    events["qty"][bad[what == 3]] = rng.choice([-5, R.MAX_QTY + 1], (what == 3).sum())
    events["price"][bad[what == 4]] = rng.choice([-100, 0, 7, R.MAX_PRICE + 100],
                                                 (what == 4).sum())
    events["order_id"][bad[what == 5]] = 10**12 + bad[what == 5]          # unknown ids
    events["order_id"][bad[what == 6]] = events["order_id"][bad[what == 6] - 1]
    # the loops read contiguous inputs through reference-count-free views
    # (kernels.pointers.borrow_c); strided ones (every other row of a larger array) are
    # read as they are, with the same answers
    strided_events = np.zeros(2 * len(events), dtype=R.EVENT)[::2]
    strided_events[:] = events
    out = {}
    for name, fn, evs, strided in (("batch", kbook.apply_batch, events, False),
                                   ("deep", kbook.apply_batch_deep, events, False),
                                   ("strided", kbook.apply_batch_deep, strided_events, True)):
        eng = Engine([f"S{i}" for i in range(n_books)], capacity=40_000, price_levels=256,
                     record_fills=False)
        results = (np.zeros(2 * len(events), dtype=R.RESULT)[1::2] if strided
                   else np.zeros(len(events), dtype=R.RESULT))
        fills = np.zeros(64, dtype=R.FILL)
        kept, start, calls = [], 0, 0
        while start < len(evs):
            start, nf = fn(eng.state, evs, fills, results, start)
            kept.append(fills[:nf].copy())
            calls += 1
        out[name] = (results, np.concatenate(kept), eng.state, calls)
    (r1, f1, s1, c1), (r2, f2, s2, c2), (r3, f3, s3, c3) = out["batch"], out["deep"], out["strided"]
    assert c1 == c2 == c3 > 1                  # the fills buffer filled up, and resumed
    assert np.array_equal(r1, r2) and np.array_equal(f1, f2) and len(f1) > 1_000
    assert np.array_equal(r1, r3) and np.array_equal(f1, f3)
    assert (r1["status"] == R.ST_REJECTED).sum() < len(r1) // 4
    rejected = set(r1["reason"][bad].tolist())          # every check was reached
    assert {R.R_UNKNOWN_SYMBOL, R.R_INVALID_ID, R.R_INVALID_TYPE, R.R_NON_POSITIVE_QTY,
            R.R_QTY_TOO_LARGE, R.R_UNKNOWN_ORDER, R.R_DUPLICATE_ID, R.R_PRICE_OFF_TICK,
            R.R_PRICE_TOO_LARGE, R.R_NON_POSITIVE_PRICE} <= rejected
    for a, b, c in zip(s1, s2, s3):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # the prefetch stages' index peek names the slot the book's own lookup finds
    from kernels.order_index import index_find, index_peek

    st = s1
    shift = int(st.counters[kbook.EC_HASH_SHIFT])
    live = np.flatnonzero(st.index_keys != kbook.EMPTY_KEY)
    assert len(live) > 1_000
    for pos in live[:2_000]:
        oid = int(st.index_keys[pos])
        slot = index_peek(st.index_keys, st.index_slots, shift, oid)
        book = int(st.pool[slot]["symbol"])
        assert index_find(st.index_keys, st.index_slots, st.pool, shift, oid, book) == pos
        assert st.index_slots[pos] == slot
    assert index_peek(st.index_keys, st.index_slots, shift, 10**12) == -1


def test_an_engine_of_many_books_uses_the_deep_loop():
    from workbench import book as wb

    small = Engine([f"S{i}" for i in range(wb.DEEP_PREFETCH_BOOKS - 1)], price_levels=64)
    large = Engine([f"S{i}" for i in range(wb.DEEP_PREFETCH_BOOKS)], price_levels=64)
    assert small._apply_batch is wb._apply_batch and large._apply_batch is wb._apply_batch_deep


def test_read_only_events_replay_as_writable_ones():
    """``pointers.borrow_c`` leaves read-only arrays as they are (a writable view would
    drop the read-only type): read-only events replay exactly as writable ones do, in a
    child process so that a crash would fail the test."""
    code = textwrap.dedent('''
        import numpy as np
        from kernels import book as kbook, records as R
        from tests.test_full_depth import _many_book_events
        from workbench.book import Engine

        events = _many_book_events(np.random.default_rng(5), 8, 2_000)
        out = []
        for writable in (True, False):
            ev = events.copy()
            ev.flags.writeable = writable
            eng = Engine([f"S{i}" for i in range(8)], capacity=4_000, price_levels=64,
                         record_fills=False)
            res = np.zeros(len(ev), dtype=R.RESULT)
            fills = np.zeros(len(ev) * 4, dtype=R.FILL)
            out.append((kbook.apply_batch(eng.state, ev, fills, res, 0), res, eng.state))
        assert out[0][0] == out[1][0] and np.array_equal(out[0][1], out[1][1])
        assert all(np.array_equal(a, b) for a, b in zip(out[0][2], out[1][2]))
        print("same", int((out[0][1]["status"] != 0).sum()))
    ''')
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    word, n = out.stdout.split()
    assert word == "same" and int(n) > 1_000
