"""The engine's validation boundary: one test per defect a hostile user found, and the limits.

Calls that used to crash the process (a segfault, not an exception) run in a child
process, so they fail here with the signal instead of killing the test run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

from kernels import book as kbook
from kernels import records as R
from kernels.order_index import EMPTY_KEY
from tests.conftest import REPO
from tests.test_fuzz_engine import check_invariants
from workbench.book import AUTO_ID_END, Engine, OrderBook, make_events
from workbench.data import lobster
from workbench.enums import OrderStatus, RejectReason, Side, TimeInForce
from workbench.reference import ReferenceBook

EMPTY = int(EMPTY_KEY)


def small_book(**kw) -> OrderBook:
    return OrderBook("T", tick_size=0.01, capacity=kw.pop("capacity", 64), price_levels=4096, **kw)


def run_isolated(code: str) -> None:
    """Run ``code`` in a fresh interpreter on the default build; it must print "ok" and exit 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SAFE", "WORKBENCH_MODE")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode < 0:
        raise AssertionError(f"the process crashed with {signal.Signals(-proc.returncode).name}"
                             f"\n{proc.stderr[-2000:]}")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


# ------------------------------------------------------------ crashes: now ValueErrors
def test_vwap_with_an_unknown_side_raises_instead_of_crashing():
    run_isolated("""
        from workbench.book import OrderBook
        book = OrderBook("T", capacity=16, price_levels=4096)
        book.submit("buy", 100.0, 5)
        try:
            book.vwap(10**6)
        except ValueError as exc:
            assert "side=1000000" in str(exc), exc
            print("ok")
    """)


def test_engine_vwap_with_side_3_raises_instead_of_crashing():
    run_isolated("""
        from workbench.book import Engine
        eng = Engine(symbols=["A", "B"], capacity=16, price_levels=4096)
        eng.submit("A", "sell", 100.0, 5)
        try:
            eng.vwap("A", 3)
        except ValueError as exc:
            assert "side=3" in str(exc), exc
            print("ok")
    """)


def test_vwap_with_side_minus_one_does_not_read_another_book():
    eng = Engine(symbols=["A", "B"], capacity=16, price_levels=4096)
    eng.submit("A", "sell", 100.0, 5)
    with pytest.raises(ValueError, match="side=-1"):
        eng.vwap("B", -1)
    assert eng.vwap("B", "sell") is None and eng.vwap("A", Side.SELL) == 100.0


def test_apply_into_a_read_only_memmap_raises_instead_of_crashing(tmp_path):
    run_isolated(f"""
        import numpy as np
        from kernels import records as R
        from workbench.book import OrderBook, make_events
        path = {str(tmp_path / "fills.bin")!r}
        np.zeros(8, R.FILL).tofile(path)
        fills = np.memmap(path, dtype=R.FILL, mode="r")
        book = OrderBook("T", capacity=16, price_levels=4096)
        events = make_events([(R.EV_ADD, 1, R.SELL, 1_000_000, 5), (R.EV_ADD, 2, R.BUY, 1_000_000, 5)])
        try:
            book.apply(events, fills)
        except ValueError as exc:
            assert "fills_out" in str(exc) and "writeable" in str(exc), exc
            assert len(book) == 0 and book.stats()["events"] == 0
            print("ok")
    """)


def test_kernel_views_check_book_and_side_in_fast_mode():
    run_isolated("""
        import numpy as np
        from kernels import book as kbook
        from kernels import records as R
        from workbench.book import Engine
        eng = Engine(symbols=["A", "B"], capacity=16, price_levels=4096)
        eng.submit("A", "sell", 100.0, 5, order_id=1)
        out = np.zeros(4, np.int64)
        for book, side in ((0, 3), (0, -1), (2, 0), (-1, 0), (10**9, 1)):
            assert kbook.top_levels(eng.state, book, side, out, out, out) == -1, (book, side)
        # outputs of different lengths: only as many as the shortest holds
        assert kbook.top_levels(eng.state, 0, 1, out, out, out[:0]) == 0
        for book in (-1, 2, 10**9):
            assert kbook.queue_position(eng.state, book, 1) == (-1, -1)
            assert kbook.resting_orders(eng.state, book, np.zeros(1, R.ORDER)) == -1
        assert kbook.resting_orders(eng.state, 0, np.zeros(0, R.ORDER)) == 0  # too short: stops
        events = np.zeros(2, R.EVENT)
        assert kbook.apply_batch(eng.state, events, np.zeros(4, R.FILL), np.zeros(0, R.RESULT), -5) == (-5, 0)
        print("ok")
    """)


# ------------------------------------------------------------------- buffers of apply()
def test_apply_does_not_write_into_immutable_bytes():
    book = small_book()
    book.submit("sell", 100.0, 5)
    raw = bytes(R.FILL.itemsize * 4)
    fills = np.frombuffer(raw, dtype=R.FILL)
    events = make_events([(R.EV_ADD, 9, R.BUY, 1_000_000, 5)])
    with pytest.raises(ValueError, match="fills_out must be a writeable"):
        book.apply(events, fills)
    assert raw == bytes(R.FILL.itemsize * 4) and book.get_asks() == [(100.0, 5, 1)]


@pytest.mark.parametrize("make, match", [
    (lambda book, n: np.zeros(n, R.FILL).view(np.int64), "fills_out must be a numpy array"),
    (lambda book, n: np.zeros((n, 2), R.FILL), "1-d"),
    (lambda book, n: np.zeros(0, R.FILL), "fills_out has 0 slots"),
    (lambda book, n: book.state.levels.view(np.uint8)[:R.FILL.itemsize * n].view(R.FILL),
     "shares memory with the engine's state"),
])
def test_apply_refuses_bad_fills_buffers(make, match):
    book = small_book()
    book.submit("sell", 100.0, 5)
    before = [a.copy() for a in book.state]
    with pytest.raises(ValueError, match=match):
        book.apply(make_events([(R.EV_ADD, 9, R.BUY, 1_000_000, 5)]), make(book, 4))
    assert all(np.array_equal(a, b) for a, b in zip(before, book.state))


def test_apply_refuses_bad_results_and_start():
    book = small_book()
    events = make_events([(R.EV_ADD, 1, R.BUY, 1_000_000, 5), (R.EV_ADD, 2, R.BUY, 1_000_000, 5)])
    fills = np.zeros(4, R.FILL)
    read_only = np.zeros(2, R.RESULT)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="results_out must be a writeable"):
        book.apply(events, fills, read_only)
    with pytest.raises(ValueError, match="results_out has 1 slots"):
        book.apply(events, fills, np.zeros(1, R.RESULT))
    over_events = events.view(np.uint8)[:2 * R.RESULT.itemsize].view(R.RESULT)
    with pytest.raises(ValueError, match="shares memory with events"):
        book.apply(events, fills, over_events)
    for start in (True, 1.0, -1, 3, None):
        with pytest.raises(ValueError, match="start"):
            book.apply(events, fills, None, start)
    assert len(book) == 0 and book.stats()["events"] == 0
    assert book.apply(events, fills, None, np.int64(1)) == (2, 0) and len(book) == 1


def test_apply_raises_when_the_fills_buffer_cannot_hold_one_event():
    book = small_book()
    for i in range(3):
        book.submit("sell", 100.0, 5, order_id=i + 1)
    events = make_events([(R.EV_ADD, 9, R.BUY, 1_000_000, 15)])
    with pytest.raises(ValueError, match="too few"):
        book.apply(events, np.zeros(2, R.FILL))  # three fills needed: it used to spin forever
    assert book.get_asks() == [(100.0, 15, 3)]
    assert book.apply(events, np.zeros(3, R.FILL)) == (1, 3)


# ------------------------------------------------------- the id index's empty marker
def test_order_id_empty_key_is_rejected_and_cannot_evict_another_order():
    book = small_book()
    out = book.submit_many(make_events([
        (R.EV_ADD, EMPTY, R.SELL, 1_000_000, 5),   # the index's empty marker as an id
        (R.EV_ADD, 7, R.SELL, 1_010_000, 5),
        (R.EV_ADD, 8, R.BUY, 1_000_000, 5),        # would fill the marker order
    ]))
    assert out.results["reason"][0] == R.R_INVALID_ID and out.results["status"][0] == R.ST_REJECTED
    assert book.stats()["rejects"] == {"invalid_id": 1}
    check_invariants(book)
    assert book.cancel(7).status == OrderStatus.CANCELLED
    assert book.cancel(8).status == OrderStatus.CANCELLED
    # every event kind refuses it
    for kind in (R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE, R.EV_MODIFY, R.EV_EXECUTE_HIDDEN):
        r = book.submit_many(make_events([(kind, EMPTY, R.SELL, 1_000_000, 5)])).results[0]
        assert r["reason"] == R.R_INVALID_ID


def test_lobster_loader_refuses_the_empty_marker_id(tmp_path):
    path = tmp_path / "X_2012-06-21_message_1.csv"
    path.write_text(f"34200.1,1,{EMPTY},10,1000000,1\n")
    with pytest.raises(ValueError, match=f"order_id={EMPTY}"):
        lobster.read_messages(path)
    frame = pl.DataFrame({"ts": [1], "kind": [1], "order_id": [EMPTY], "size": [10],
                          "price": [1_000_000], "direction": [1]},
                         schema_overrides={"kind": pl.Int8, "direction": pl.Int8})
    with pytest.raises(ValueError, match="order_id"):
        lobster.to_events(frame)


@pytest.mark.parametrize("row, field", [
    (f"34200.1,1,5,{R.MAX_QTY + 1},1000000,1", f"size={R.MAX_QTY + 1}"),
    ("34200.1,1,5,-3,1000000,1", "size=-3"),
    (f"34200.1,1,5,10,{R.MAX_PRICE + 1},1", f"price={R.MAX_PRICE + 1}"),
    ("34200.1,4,5,10,-100,1", "price=-100"),
    ("34200.1,1,5,10,1000000,0", "direction=0"),
])
def test_lobster_loader_range_checks_what_the_engine_cannot_represent(tmp_path, row, field):
    path = tmp_path / "X_2012-06-21_message_1.csv"
    path.write_text(f"34200.0,1,4,10,1000000,1\n{row}\n")
    with pytest.raises(ValueError, match=f"{field} \\(line 2\\)"):
        lobster.read_messages(path)


# ------------------------------------------------------------------ quantities, prices
def test_level_quantity_cannot_overflow_and_fok_sees_the_true_total():
    book = small_book()
    with pytest.raises(ValueError, match=f"qty={2**62}"):
        book.submit("sell", 100.0, 2**62)
    out = book.submit_many(make_events([(R.EV_ADD, 1, R.SELL, 1_000_000, 2**62),
                                        (R.EV_ADD, 2, R.SELL, 1_000_000, 2**62)]))
    assert list(out.results["reason"]) == [R.R_QTY_TOO_LARGE] * 2 and len(book) == 0
    # the largest quantities the engine takes add up exactly
    book.submit("sell", 100.0, R.MAX_QTY, order_id=3)
    book.submit("sell", 100.0, R.MAX_QTY, order_id=4)
    assert book.get_asks() == [(100.0, 2 * R.MAX_QTY, 2)]
    fok = book.submit("buy", 100.0, R.MAX_QTY + 0, tif=TimeInForce.FOK)
    assert fok.status == OrderStatus.FILLED and fok.filled == R.MAX_QTY


def test_batched_cancel_with_a_negative_quantity_is_rejected_not_a_full_cancel():
    book = small_book()
    book.submit("buy", 100.0, 50, order_id=1)
    out = book.submit_many(make_events([(R.EV_CANCEL, 1, 0, 0, -5)]))
    assert out.results["reason"][0] == R.R_NON_POSITIVE_QTY
    assert book.get_bids() == [(100.0, 50, 1)]
    out = book.submit_many(make_events([(R.EV_CANCEL, 1, 0, 0, 0)]))  # 0 still means all
    assert out.results["status"][0] == R.ST_CANCELLED and len(book) == 0


def test_numpy_integer_price_does_not_wrap():
    book = small_book()
    with pytest.raises(ValueError, match="price=.*exceeds the engine's maximum price"):
        book.submit("buy", np.int64(2**62), 5)
    with pytest.raises(ValueError, match="price=.*must be positive"):
        book.submit("buy", np.int64(-(2**62)), 5)
    r = book.submit("buy", np.int64(100), np.uint64(5), order_id=np.int32(3))
    assert r.order_id == 3 and book.get_bids() == [(100.0, 5, 1)]
    assert type(r.order_id) is int


@pytest.mark.parametrize("side", [True, False, np.True_, 1.0, np.float64(0.0), Side.BUY.name.title()])
def test_bools_and_floats_are_not_sides(side):
    book = small_book()
    with pytest.raises(ValueError, match="side="):
        book.submit(side, 100.0, 5)
    assert len(book) == 0


@pytest.mark.parametrize("call, match", [
    (lambda b: b.submit("buy", True, 5), "price=True"),
    (lambda b: b.submit("buy", 100.0, True), "qty=True"),
    (lambda b: b.submit("buy", 100.0, np.uint64(2**64 - 1)), "qty="),
    (lambda b: b.submit("buy", 100.0, 5, order_id=True), "order_id=True"),
    (lambda b: b.submit("buy", 100.0, 5, order_id=2**63), "order_id="),
    (lambda b: b.submit("buy", 100.0, 5, ts=-1), "ts=-1"),
    (lambda b: b.submit("buy", 100.0, 5, ts=2**63), "ts="),
    (lambda b: b.submit("buy", 100.0, 5, tif=True), "tif=True"),
    (lambda b: b.submit("buy", 100.0, 5, order_type=Side.SELL), "order_type="),
    (lambda b: b.submit("buy", "x" * 10**6, 5), "price="),
    (lambda b: b.submit("buy", float("nan"), 5), "price=nan"),
    (lambda b: b.submit("buy", 2e9, 5), "maximum price"),
    (lambda b: b.cancel(1, qty=-2), "qty=-2"),
    (lambda b: b.modify(1, price=Side.SELL), "price="),
    (lambda b: b.execute(1, R.MAX_QTY + 1), "qty="),
    (lambda b: b.queue_position(2**64), "order_id="),
    (lambda b: b.get_bids(True), "n=True"),
])
def test_hostile_python_values_raise_value_errors_naming_the_field(call, match):
    book = small_book()
    before = [a.copy() for a in book.state]
    with pytest.raises(ValueError, match=match):
        call(book)
    assert all(np.array_equal(a, b) for a, b in zip(before, book.state))


def test_depth_with_a_huge_n_is_clamped_to_the_ladder():
    book = small_book()
    book.submit("buy", 100.0, 5)
    assert book.get_bids(10**30) == [(100.0, 5, 1)] and book.depth(2**70).height == 1


# ------------------------------------------------------------------------ constructor
@pytest.mark.parametrize("kwargs, match", [
    (dict(symbols="ABC"), "symbols='ABC' must be a list or tuple"),
    (dict(symbols=iter(["A"])), "must be a list or tuple"),
    (dict(symbols=["A"], tick_size=True), "tick_size=True"),
    (dict(symbols=["A"], tick_size=float("inf")), "tick_size=inf"),
    (dict(symbols=["A"], tick_size=1e15), "maximum price"),
    (dict(symbols=["A"], capacity=True), "capacity=True"),
    (dict(symbols=["A"], price_scale=10**30), "price_scale="),
    (dict(symbols=["A"], tick_size={1: 0.01}), "unknown symbol"),
])
def test_engine_constructor_refuses_hostile_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Engine(**kwargs)


# --------------------------------------------------------------------- automatic ids
def test_an_explicit_id_of_int64_max_leaves_automatic_ids_working():
    book = small_book()
    assert book.submit("buy", 100.0, 5, order_id=2**63 - 1).order_id == 2**63 - 1
    auto = book.submit("buy", 99.0, 5)
    assert auto.order_id == 1 and auto.status == OrderStatus.NEW
    assert book.cancel(2**63 - 1).status == OrderStatus.CANCELLED


def test_automatic_ids_never_overflow_they_raise_naming_order_id():
    book = small_book()
    book.submit("buy", 100.0, 5, order_id=AUTO_ID_END - 1)
    with pytest.raises(ValueError, match="order_id: automatic ids are exhausted"):
        book.submit("buy", 100.0, 5)
    assert book.submit("buy", 100.0, 5, order_id=AUTO_ID_END).status == OrderStatus.NEW


# -------------------------------------------------- row-by-row rejects in the kernel
def test_every_out_of_range_row_gets_its_reason_code_like_the_reference():
    MAXP = R.MAX_PRICE - R.MAX_PRICE % 100
    rows = [
        (R.EV_ADD, 1, R.SELL, 1_000_000, 10),
        (R.EV_ADD, 2, R.BUY, 1_000_000, R.MAX_QTY + 1),            # qty too large
        (R.EV_ADD, 3, R.BUY, MAXP + 100, 5),                        # price too large
        (R.EV_ADD, 4, R.BUY, 2**63 - 1, 5),                         # price too large
        (R.EV_ADD, 5, R.BUY, 0, 2**63 - 1, R.MARKET),               # qty too large (market)
        (R.EV_CANCEL, 1, 0, 0, -1),                                 # negative cancel
        (R.EV_CANCEL, 1, 0, 0, 2**62),                              # qty too large
        (R.EV_EXECUTE, 1, 0, 0, R.MAX_QTY + 1),
        (R.EV_MODIFY, 1, 0, -100, 0),                               # negative price
        (R.EV_MODIFY, 1, 0, R.MAX_PRICE + 1, 0),
        (R.EV_MODIFY, 1, 0, 0, -3),
        (R.EV_MODIFY, 1, 0, 0, R.MAX_QTY + 1),
        (R.EV_EXECUTE_HIDDEN, 0, 0, 1_000_000, -1),
        (R.EV_CROSS, 0, 0, R.MAX_PRICE + 1, 10),
        (R.EV_EXECUTE_HIDDEN, 0, 0, 1_000_000, R.MAX_QTY + 1),
        (R.EV_ADD, EMPTY, R.BUY, 1_000_000, 5),
        (R.EV_MODIFY, 1, 0, 0, 4),                                  # valid: keeps priority
    ]
    events = make_events(rows)
    book = small_book()
    out = book.submit_many(events)
    want = [0, R.R_QTY_TOO_LARGE, R.R_PRICE_TOO_LARGE, R.R_PRICE_TOO_LARGE, R.R_QTY_TOO_LARGE,
            R.R_NON_POSITIVE_QTY, R.R_QTY_TOO_LARGE, R.R_QTY_TOO_LARGE, R.R_NON_POSITIVE_PRICE,
            R.R_PRICE_TOO_LARGE, R.R_NON_POSITIVE_QTY, R.R_QTY_TOO_LARGE, R.R_NON_POSITIVE_QTY,
            R.R_PRICE_TOO_LARGE, R.R_QTY_TOO_LARGE, R.R_INVALID_ID, 0]
    assert list(out.results["reason"]) == want
    ref = ReferenceBook(tick=100)
    got_ref = [ref.apply(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]),
                         int(e["qty"]), int(e["order_type"]), int(e["tif"]), int(e["ts"])).reason
               for e in events]
    assert got_ref == want
    assert book.get_asks() == [(100.0, 4, 1)]
    check_invariants(book)


def test_reject_reasons_stay_in_sync():
    assert [m.name.lower() for m in RejectReason] == list(R.REJECT_REASON_NAMES)
    assert len(RejectReason) == R.N_REJECT_REASONS
    assert RejectReason.INVALID_ID == R.R_INVALID_ID
    assert RejectReason.QTY_TOO_LARGE == R.R_QTY_TOO_LARGE
    assert RejectReason.PRICE_TOO_LARGE == R.R_PRICE_TOO_LARGE


def test_limits_keep_sums_over_the_pool_inside_int64():
    # a level, a side's liquidity and a queue position sum at most every pool order
    assert R.MAX_CAPACITY * R.MAX_QTY < 2**62
    # anonymous-volume ids stay negative, distinct and never the empty marker
    worst = kbook.anon_order_id(R.MAX_BOOKS - 1, 1, R.MAX_PRICE)
    assert EMPTY < worst < 0 and worst != kbook.anon_order_id(R.MAX_BOOKS - 1, 0, R.MAX_PRICE)


def test_make_events_names_a_field_that_does_not_fit():
    with pytest.raises(ValueError, match="order_id=.*row 1"):
        make_events([(R.EV_ADD, 1, 0, 100, 1), (R.EV_ADD, 2**63, 0, 100, 1)])
    with pytest.raises(ValueError, match="symbol="):
        make_events([(R.EV_ADD, 1, 0, 100, 1, R.LIMIT, R.GTC, 2**31)])
    with pytest.raises(ValueError, match="qty"):
        make_events([(R.EV_ADD, 1, 0, 100, True)])


def test_anonymous_fallback_ignores_prices_the_anonymous_ids_cannot_hold():
    eng = Engine(symbols=["A"], tick_size=0.01, capacity=16, price_levels=4096,
                 anonymous_fallback=True)
    anon = kbook.anon_order_id(0, R.SELL, 1_000_000)
    eng.submit_many(make_events([(R.EV_ADD, anon, R.SELL, 1_000_000, 100)]))
    # (BUY, price + 2**44) packs into the same bits as (SELL, price): it must not match
    out = eng.submit_many(make_events([(R.EV_CANCEL, 555, R.BUY, 1_000_000 + 2**44, 30),
                                       (R.EV_EXECUTE, 556, R.BUY, 1_000_000 + 2**44, 30)]))
    assert list(out.results["reason"]) == [R.R_UNKNOWN_ORDER] * 2
    assert eng.get_asks("A") == [(100.0, 100, 1)]
    out = eng.submit_many(make_events([(R.EV_CANCEL, 555, R.SELL, 1_000_000, 30)]))
    assert out.results["reason"][0] == R.R_NONE and eng.get_asks("A") == [(100.0, 70, 1)]
