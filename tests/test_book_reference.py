"""The Numba book against the plain-Python reference on generated order flows.

Both the batched kernel (``submit_many``) and the one-call-per-order path must give the
same results, the same fills in the same order and the same resting book as
``workbench.reference.ReferenceBook``; and the book must never be crossed, conserve
quantity and keep FIFO order within each level.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import records as R
from workbench.book import OrderBook
from workbench.reference import ReferenceBook

TICK = 100
MID = 1_000_000  # 100.00 in price units

kinds = st.sampled_from(["add"] * 6 + ["cancel", "delete", "modify", "execute", "bad"])


@st.composite
def flows(draw, max_size=120):
    n = draw(st.integers(1, max_size))
    events = np.zeros(n, dtype=R.EVENT)
    next_id = 1
    for i in range(n):
        kind = draw(kinds)
        ts = i + 1
        known = draw(st.integers(1, max(1, next_id + 1)))  # sometimes unknown
        if kind == "add":
            order_type = draw(st.sampled_from([R.LIMIT] * 6 + [R.MARKET]))
            tif = draw(st.sampled_from([R.GTC] * 5 + [R.IOC, R.FOK]))
            price = MID + TICK * draw(st.integers(-8, 8)) if order_type == R.LIMIT else 0
            oid = next_id if draw(st.integers(0, 30)) else max(1, next_id - 1)  # rare duplicate
            next_id += 1
            events[i] = (ts, oid, price, draw(st.integers(1, 40)), 0, R.EV_ADD,
                         draw(st.sampled_from([R.BUY, R.SELL])), order_type, tif)
        elif kind == "cancel":
            events[i] = (ts, known, 0, draw(st.integers(0, 30)), 0, R.EV_CANCEL, 0, 0, 0)
        elif kind == "delete":
            events[i] = (ts, known, 0, 0, 0, R.EV_DELETE, 0, 0, 0)
        elif kind == "modify":
            price = draw(st.sampled_from([0, MID + TICK * draw(st.integers(-8, 8))]))
            events[i] = (ts, known, price, draw(st.integers(0, 40)), 0, R.EV_MODIFY, 0, 0, 0)
        elif kind == "execute":
            events[i] = (ts, known, 0, draw(st.integers(1, 30)), 0, R.EV_EXECUTE, 0, 0, 0)
        else:  # malformed input the kernel must reject without side effects
            bad = draw(st.sampled_from(["qty", "tick", "side", "type", "price"]))
            fields = dict(price=MID, qty=10, side=R.BUY, order_type=R.LIMIT, tif=R.GTC)
            if bad == "qty":
                fields["qty"] = draw(st.integers(-5, 0))
            elif bad == "tick":
                fields["price"] = MID + 37
            elif bad == "side":
                fields["side"] = 7
            elif bad == "type":
                fields["tif"] = 9
            else:
                fields["price"] = -TICK
            events[i] = (ts, next_id, fields["price"], fields["qty"], 0, R.EV_ADD, fields["side"],
                         fields["order_type"], fields["tif"])
            next_id += 1
    return events


def run_reference(events):
    ref = ReferenceBook(tick=TICK)
    results, fills = [], []
    for e in events:
        r = ref.apply(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]),
                      int(e["qty"]), int(e["order_type"]), int(e["tif"]), int(e["ts"]))
        results.append((r.status, r.reason, r.filled, r.leaves))
        fills.extend((f.maker_id, f.taker_id, f.price, f.qty, f.maker_leaves, f.taker_side)
                     for f in r.fills)
    resting = [(o.order_id, o.side, o.price, o.qty, o.filled, o.ts) for o in ref.resting()]
    return ref, results, fills, resting


def engine_resting(book: OrderBook):
    from kernels import book as kbook

    out = np.zeros(len(book), dtype=R.ORDER)
    k = kbook.resting_orders(book.state, 0, out)
    return [tuple(int(x) for x in (o["order_id"], o["side"], o["price"], o["qty"], o["filled"], o["ts"]))
            for o in out[:k]]


def fill_tuples(fills):
    return [tuple(int(f[k]) for k in ("maker_id", "taker_id", "price", "qty", "maker_leaves", "taker_side"))
            for f in fills]


def check_invariants(book: OrderBook, ref: ReferenceBook):
    bid, ask = book.best_bid, book.best_ask
    assert bid is None or ask is None or bid < ask, f"crossed book: {bid} >= {ask}"
    # Levels the engine reports equal the sum of their orders, and match the reference.
    for side, getter in ((R.BUY, book.get_bids), (R.SELL, book.get_asks)):
        levels = [(round(p * book.price_scale), q, c) for p, q, c in getter(1000)]
        assert levels == ref.levels(side)
    # FIFO: within a level, priority times never decrease.
    rows = engine_resting(book)
    for a, b in zip(rows, rows[1:]):
        if a[1] == b[1] and a[2] == b[2]:
            assert a[5] <= b[5], f"FIFO broken at price {a[2]}: ts {a[5]} before {b[5]}"


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(flows())
def test_batched_kernel_matches_reference(events):
    ref, ref_results, ref_fills, ref_resting = run_reference(events)
    book = OrderBook("T", tick_size=0.01, capacity=1000, price_levels=4096)
    out = book.submit_many(events)
    got = [(int(r["status"]), int(r["reason"]), int(r["filled"]), int(r["leaves"])) for r in out.results]
    assert got == ref_results
    assert fill_tuples(out.fills) == ref_fills
    assert engine_resting(book) == ref_resting
    assert out.results["n_fills"].sum() == len(out.fills)
    check_invariants(book, ref)


@SETTINGS
@given(flows(max_size=60))
def test_single_order_path_matches_reference_event_by_event(events):
    ref = ReferenceBook(tick=TICK)
    book = OrderBook("T", tick_size=0.01, capacity=1000, price_levels=4096)
    for e in events:
        args = [int(e[k]) for k in ("kind", "order_id", "side", "price", "qty", "order_type", "tif", "ts")]
        r = ref.apply(*args)
        kind, oid, side, price, qty, otype, tif, ts = args
        got = book._call(kind, 0, oid, side, price, qty, otype, tif, ts)
        assert (int(got.status), int(got.reason), got.filled, got.leaves) == \
            (r.status, r.reason, r.filled, r.leaves)
        assert fill_tuples(got.fills) == [
            (f.maker_id, f.taker_id, f.price, f.qty, f.maker_leaves, f.taker_side) for f in r.fills]
        bid, ask = book.best_bid, book.best_ask
        assert bid is None or ask is None or bid < ask
    check_invariants(book, ref)


@SETTINGS
@given(flows())
def test_quantity_is_conserved(events):
    """Every accepted add's quantity ends up resting, filled (twice: maker and taker
    side of the same fill) or cancelled; nothing appears or vanishes."""
    adds_only = events[events["kind"] == R.EV_ADD]
    book = OrderBook("T", tick_size=0.01, capacity=1000, price_levels=4096)
    out = book.submit_many(adds_only)
    accepted = out.results["status"] != R.ST_REJECTED
    qty_in = int(adds_only["qty"][accepted].sum())
    resting = sum(q for _, q, _ in book.get_bids(1000)) + sum(q for _, q, _ in book.get_asks(1000))
    cancelled = out.results["status"] == R.ST_CANCELLED
    remainder = int((adds_only["qty"] - out.results["filled"])[cancelled].sum())
    assert qty_in == resting + 2 * int(out.fills["qty"].sum()) + remainder
