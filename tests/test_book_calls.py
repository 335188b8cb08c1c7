"""The per-order path's compiled entries (``kernels.book_calls``) against the checked path.

``OrderBook.submit``/``cancel``/``modify`` check only Python types and leave the values,
the price's conversion and its tick to one compiled call; anything else takes the checked
Python path. These tests hold the two paths to the same answers: the conversion against
``OrderBook.to_units`` value by value, whole random programs against an engine whose
priced entries are switched off (every call then takes the checked path, the reference
here), and the fills each call hands out as views of a chunk against copies taken at the
time. ``test_fuzz_engine`` also replays random call programs, hostile values included,
against its plain-Python model.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import book_calls as kcalls
from kernels.book_state import EC_OUTPUT_FULL
from kernels import records as R
from workbench import fastcall
from workbench.book import Engine, OrderBook
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce


def _to_units_or_minus_one(book, value) -> int:
    try:
        return book.to_units(value)
    except ValueError:
        return -1


def test_the_kernels_price_conversion_is_to_units():
    """Random prices on and off a tick, integers, edge values and non-finite ones: the
    kernel's units are ``to_units``'s, and it refuses what ``to_units`` refuses."""
    rng = np.random.default_rng(7)
    for tick, scale in ((0.01, 10_000), (0.5, 10_000), (0.0001, 10_000), (0.25, 4), (5.0, 100)):
        book = OrderBook("P", tick_size=tick, price_scale=scale)
        tick_units = book.state.books[0]["tick"]
        on_tick = rng.integers(-5, 2_000_000, 3_000) * tick
        noisy = on_tick * (1 + rng.normal(0, 1e-9, on_tick.size))
        off = on_tick + tick * rng.uniform(0.001, 0.999, on_tick.size)
        edges = [0.0, -0.0, tick, tick / 2, -tick, R.MAX_PRICE / scale, R.MAX_PRICE / scale + tick,
                 (R.MAX_PRICE + 0.5) / scale, 1e300, -1e300, math.inf, -math.inf, math.nan,
                 5e-324, 0.49 / scale, 0.5 / scale, 1.5 / scale, 2.5 / scale]
        values = [float(v) for v in np.concatenate([on_tick, noisy, off])] + edges
        values += [int(v) for v in rng.integers(-3, 10_000, 300)]
        accepted = 0
        for v in values:
            got = int(kcalls.price_units(v, scale, tick_units))
            assert got == _to_units_or_minus_one(book, v), (tick, scale, v)
            accepted += got > 0
        assert accepted > 1_000          # the comparison covered both answers


def _program(rng, n):
    """A random program of submit/cancel/modify calls with plain Python types (the
    priced entries' case) and a few values only the checked path takes or refuses."""
    ops = []
    for i in range(n):
        r = rng.random()
        oid = int(rng.integers(1, 60))
        price = round(float(rng.integers(9_950, 10_050)) * 0.01, 2)
        if r < 0.5:
            tif = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)[int(rng.integers(0, 3))]
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            if rng.random() < 0.2:   # words: the fast path's ("buy", "SELL") and wrong ones
                side = ("buy", "Buy", "BUY", "sell", "Sell", "SELL", " sell ", "b")[
                    int(rng.integers(0, 8))]
            qty = int(rng.integers(1, 300))
            which = rng.random()
            if which < 0.05:
                ops.append(("submit", (side, None, qty, OrderType.MARKET, tif, None)))
            elif which < 0.1:
                ops.append(("submit", ("buy", np.float64(price), qty, "limit", "gtc", oid)))
            elif which < 0.15:
                ops.append(("submit", (side, price + 0.003, qty, OrderType.LIMIT, tif, oid)))
            elif which < 0.2:
                ops.append(("submit", (side, price, 0, OrderType.LIMIT, tif, oid)))
            elif which < 0.5:
                ops.append(("submit", (side, price, qty, OrderType.LIMIT, tif, None)))
            else:
                ops.append(("submit", (side, price, qty, OrderType.LIMIT, tif, oid)))
        elif r < 0.7:
            qty = None if rng.random() < 0.7 else int(rng.integers(0, 50))
            ops.append(("cancel", (oid, qty)))
        else:
            new_price = None if rng.random() < 0.1 else price
            qty = None if rng.random() < 0.7 else int(rng.integers(0, 400))
            ops.append(("modify", (oid, new_price, qty)))
    return ops


def _run(book, ops):
    out = []
    for name, args in ops:
        try:
            r = getattr(book, name)(*args)
        except ValueError as exc:
            out.append(("ValueError", str(exc)))
        else:
            out.append((r.order_id, r.status, r.filled, r.leaves, r.reason, r.fills.tolist()))
    return out


def _count_applied(book) -> dict:
    """Wrap ``book``'s priced entries to count the calls they applied (not CHECK)."""
    counts = {}
    for name in ("add_priced", "cancel_one", "modify_priced"):
        entry = getattr(book, "_" + name)
        counts[name] = 0

        def counted(*args, _entry=entry, _name=name):
            out = _entry(*args)
            counts[_name] += out[0] != kcalls.CHECK
            return out
        setattr(book, "_" + name, counted)
    return counts


@pytest.mark.parametrize("mode", ["safe", "lab"])
def test_priced_entries_give_the_checked_paths_answers(mode):
    """The same random programs through the priced entries and through the checked path
    alone (entries switched off): the same results call by call, the same errors, fills,
    automatic ids, resting orders and counters."""
    rng = np.random.default_rng(12)
    for _ in range(6):
        ops = _program(rng, 400)
        fast = OrderBook("F", tick_size=0.01, mode=mode)
        checked = OrderBook("F", tick_size=0.01, mode=mode)
        checked._route_through_apply_one()
        fast._ctl[fastcall.CTL_ON] = 0   # the Python entries (tests/test_fastcall: native)
        applied = _count_applied(fast)
        assert _run(fast, ops) == _run(checked, ops)
        assert applied["add_priced"] > 100 and applied["cancel_one"] > 40
        assert applied["modify_priced"] > 40     # the comparison ran the entries
        assert fast._next_id == checked._next_id
        assert fast.orders().equals(checked.orders())
        assert (fast.state.counters == checked.state.counters).all()
        assert np.array_equal(np.concatenate(fast._fill_log or [np.zeros(0, R.FILL)]),
                              np.concatenate(checked._fill_log or [np.zeros(0, R.FILL)]))


def test_a_side_given_as_a_word_takes_the_fast_path():
    """``submit("buy", ...)`` is applied by the priced entry, not the checked path, with
    the result ``Side.BUY`` gives; other forms still go through the checked path."""
    words, members = OrderBook("W", tick_size=0.01), OrderBook("W", tick_size=0.01)
    applied = _count_applied(words)
    calls = [("buy", 100.0, 10), ("sell", 100.02, 5), ("SELL", 99.99, 12), ("BUY", 100.02, 3)]
    for side, price, qty in calls:
        member = Side.parse(side)
        assert words.submit(side, price, qty)[:5] == members.submit(member, price, qty)[:5]
    assert applied["add_priced"] == len(calls)
    assert words.orders().equals(members.orders())
    assert words.submit(1, 101.0, 1).status == OrderStatus.NEW    # a code: the checked path
    for word in ("bye", "Buy", " sell"):         # not a name in upper or lower case
        with pytest.raises(ValueError, match="side="):
            words.submit(word, 101.0, 1)


def test_fills_handed_out_as_views_never_change():
    """Each call's fills are a view of the engine's current chunk. Through many trades, a
    chunk far smaller than one sweep (``R_OUTPUT_FULL``: a new, larger chunk, nothing
    applied twice) and chunk roll-overs, every result keeps the fills it was given."""
    book = OrderBook("V", tick_size=0.01, record_fills=False)
    book._new_chunk(4)
    kept = []
    for i in range(300):
        for k in range(1 + i % 12):          # up to 12 makers, one sweep takes them all
            book.submit(Side.SELL, 100.0 + 0.01 * (k % 3), 1 + k)
        r = book.submit(Side.BUY, 100.02, 10_000, tif=TimeInForce.IOC)
        assert r.filled == sum(1 + k for k in range(1 + i % 12))
        kept.append((r, r.fills.copy()))
    for r, copy in kept:
        assert np.array_equal(r.fills, copy)
    assert sum(len(r.fills) for r, _ in kept) == sum(1 + i % 12 for i in range(300))
    assert book.stats()["live_orders"] == 0


def test_every_fill_of_a_sweep_arrives_in_the_fill_log_once():
    book = OrderBook("L", tick_size=0.01)
    book._new_chunk(2)
    for k in range(50):
        book.submit(Side.SELL, 50.0 + 0.01 * k, 2)
    r = book.submit(Side.BUY, 51.0, 100)
    assert r.status == OrderStatus.FILLED and len(r.fills) == 50
    log = np.concatenate(book._fill_log)
    assert len(log) == 50 and (log["qty"] == 2).all()
    assert list(log["maker_id"]) == list(range(1, 51))
    assert book.state.counters[EC_OUTPUT_FULL] == 1    # the chunk of 2 was replaced once


@pytest.mark.parametrize("call, field", [
    (lambda b: b.submit(Side.BUY, 100.0, 5.0), "qty"),
    (lambda b: b.submit(Side.BUY, 100.0, True), "qty"),
    (lambda b: b.submit(1.0, 100.0, 5), "side"),
    (lambda b: b.submit(Side.BUY, 100.0, 5, order_id=2**64), "order_id"),
    (lambda b: b.submit(Side.BUY, 100.0, 5, order_id=-3), "order_id"),
    (lambda b: b.submit(Side.BUY, 100.0, 5, order_id=1.0), "order_id"),
    (lambda b: b.submit(Side.BUY, 100.0, 5, ts=-1), "ts"),
    (lambda b: b.submit(Side.BUY, 100.0, 2**31), "qty"),
    (lambda b: b.submit(Side.BUY, 2**80, 5), "price"),
    (lambda b: b.submit(Side.BUY, math.nan, 5), "price"),
    (lambda b: b.submit(Side.BUY, 100.005, 5), "price"),
    (lambda b: b.submit(Side.BUY, 100.0, 5, OrderType.MARKET), "price"),
    (lambda b: b.cancel(1, 0), "qty"),
    (lambda b: b.cancel(0), "order_id"),
    (lambda b: b.cancel(2**63), "order_id"),
    (lambda b: b.modify(1, 100.001), "price"),
    (lambda b: b.modify(1, -5.0), "price"),
    (lambda b: b.modify(1, 100.0, 2.0), "qty"),
    (lambda b: b.modify(1, 100.0, 0), "qty"),
])
def test_a_wrong_value_raises_naming_its_field_and_changes_nothing(call, field):
    book = OrderBook("E", tick_size=0.01)
    book.submit(Side.SELL, 101.0, 10, order_id=1)
    counters, next_id = book.state.counters.copy(), book._next_id
    with pytest.raises(ValueError, match=field):
        call(book)
    assert (book.state.counters == counters).all() and book._next_id == next_id
    assert book.best_ask == 101.0 and book.stats()["live_orders"] == 1


def test_an_engine_routes_each_symbol_to_its_book():
    eng = Engine(symbols=["A", "B"], tick_size={"A": 0.01, "B": 0.5})
    assert eng.submit("B", Side.SELL, 10.5, 3).status == OrderStatus.NEW
    with pytest.raises(ValueError, match="tick"):
        eng.submit("B", Side.BUY, 10.25, 3)      # on A's tick, not on B's
    assert eng.submit("A", Side.BUY, 10.25, 3).status == OrderStatus.NEW
    r = eng.submit("B", Side.BUY, 10.5, 5)
    assert (r.filled, r.leaves) == (3, 2) and r.fills["symbol"].tolist() == [1]
    assert eng.modify("A", 2, price=10.26).accepted
    assert eng.best_bid("A") == 10.26 and eng.best_bid("B") == 10.5


def test_a_journaled_engine_journals_every_typed_call(tmp_path):
    """A journal wraps the ``_apply_one`` hook; the priced entries stand aside for it, so
    the typed calls (the entries' case) are journaled too: the recovered engine is the
    same."""
    eng = Engine(["J"], tick_size=0.01, journal=tmp_path / "j", durability="none")
    eng.submit("J", Side.SELL, 100.0, 5)
    eng.submit("J", Side.SELL, 100.01, 5)
    assert eng.submit("J", Side.BUY, 100.01, 7).filled == 7
    eng.modify("J", 2, price=100.02)
    eng.submit("J", Side.BUY, 99.5, 4, order_id=77)
    eng.cancel("J", 77)
    eng.submit("J", Side.BUY, 99.0, 4)
    eng.close()
    back = Engine.recover(tmp_path / "j")
    assert back.orders("J").equals(eng.orders("J")) and back._next_id == eng._next_id
    assert (back.state.counters == eng.state.counters).all()
    back.close()


def test_a_closed_mapped_book_refuses_typed_calls(tmp_path):
    from workbench import mmap_book

    book = mmap_book.create(tmp_path / "m.book", ["M"], tick_size=0.01)
    book.submit("M", Side.SELL, 100.0, 5)
    book.close()
    for call in (lambda: book.submit("M", Side.BUY, 100.0, 5),
                 lambda: book.modify("M", 1, price=100.5), lambda: book.cancel("M", 1)):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert book.best_ask("M") == 100.0
