"""The native per-order entries (``workbench.fastcall``) against the Python path.

``OrderBook.submit``/``cancel``/``modify`` are generated builtins that bind the arguments,
check their exact types, call the compiled kernel and build the result; everything else
is handed to the Python methods. These tests hold the native entries to the Python path's
answers on random programs with hostile arguments (run in a child process, so a crash
fails the test instead of the session), count that the native code did the common calls
itself, and check the reference counts and memory it leaves behind.
"""
from __future__ import annotations

import gc
import math
import subprocess
import sys
import tracemalloc
import types
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from kernels import records as R
from workbench import fastcall
from workbench.book import _NO_FILLS, _REASON, _STATUS, Engine, OrderBook
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce

ROOT = Path(__file__).resolve().parents[1]
_MISSING = object()


def _counting(book) -> Counter:
    """Re-install ``book``'s native entries over Python methods that count the calls
    handed to them: the calls the native code did not finish itself."""
    handed = Counter()
    engine = isinstance(book, Engine)
    fallbacks = {}
    for op in ("submit", "cancel", "modify"):
        method = (types.MethodType(getattr(Engine, op), book) if engine
                  else getattr(book, "_" + op))

        def counted(*args, _method=method, _op=op, **kwargs):
            handed[_op] += 1
            return _method(*args, **kwargs)
        fallbacks[op] = counted
        if not engine:
            setattr(book, "_" + op, counted)   # also where the Python path calls itself
    assert fastcall.install(book, engine=engine, fallbacks=fallbacks)
    return handed


# ------------------------------------------------------------------ random programs
_SIDES = [Side.BUY, Side.SELL] * 6 + ["buy", "SELL", "b", 0, 1, True, None, 1.5, np.int8(1)]
_TYPES = [OrderType.LIMIT] * 8 + [OrderType.MARKET, "limit", 0, 1, None, 2.0]
_TIFS = [TimeInForce.GTC] * 6 + [TimeInForce.IOC, TimeInForce.FOK, "ioc", 1, None, 9]


def _pick(rng, pool):
    return pool[int(rng.integers(0, len(pool)))]


def _price(rng, hostile):
    on_tick = round(float(rng.integers(9_950, 10_050)) * 0.01, 2)
    if not hostile or rng.random() < 0.5:
        return on_tick if rng.random() < 0.9 else int(on_tick)
    return _pick(rng, [on_tick + 0.004, np.float64(on_tick), None, math.nan, math.inf, -1.0,
                       0.0, 2**70, 2**63, True, "100.0", Decimal("100.25")])


def _qty(rng, hostile):
    if not hostile or rng.random() < 0.5:
        return int(rng.integers(1, 300))
    return _pick(rng, [0, -1, 2**31, 2**63, 2**64, True, 5.0, np.int64(5), None, R.MAX_QTY,
                       R.MAX_QTY + 1])


def _oid(rng, hostile):
    if not hostile or rng.random() < 0.5:
        return int(rng.integers(1, 60))
    return _pick(rng, [0, -1, 2**62, 2**62 - 1, 2**63 - 1, 2**63, 2**64, np.int64(5), True,
                       1.0, "7"])


def _call(rng, names, values, required):
    """Positional, keyword or mixed arguments for a method with parameters ``names``; now
    and then a missing required one, an extra positional, an unknown or repeated keyword."""
    given = [v for v in values]
    cut = len(given)
    while cut > required and given[cut - 1] is _MISSING:
        cut -= 1
    style = rng.random()
    if style < 0.5:    # positional, the omitted ones given as their defaults would be
        args = [None if v is _MISSING else v for v in given[:cut]]
        if rng.random() < 0.5:   # the trailing optional ones left out
            while len(args) > required and rng.random() < 0.5:
                args.pop()
        kwargs = {}
    else:              # keywords from a random point on
        split = int(rng.integers(0, len(names) + 1))
        args = [None if v is _MISSING else v for v in given[:split]]
        kwargs = {n: v for n, v in zip(names[split:], given[split:]) if v is not _MISSING}
    odd = rng.random()
    if odd < 0.02:
        args.append(1)                       # too many positionals
    elif odd < 0.04:
        kwargs["bogus"] = 1                  # an unknown keyword
    elif odd < 0.06 and args:
        kwargs[names[0]] = args[0]           # a parameter given twice
    elif odd < 0.08 and args:
        args = args[:-1]                     # maybe one required left out
    return tuple(args), kwargs


def _program(rng, n):
    ops = []
    for _ in range(n):
        r = rng.random()
        hostile = rng.random() < 0.25     # one call in four has odd values somewhere
        if r < 0.5:
            values = [_pick(rng, _SIDES if hostile else _SIDES[:2]), _price(rng, hostile),
                      _qty(rng, hostile), _pick(rng, _TYPES if hostile else _TYPES[:1]),
                      _pick(rng, _TIFS if hostile else _TIFS[:8]),
                      None if rng.random() < 0.4 else _oid(rng, hostile),
                      None if not hostile else _pick(rng, [None, 0, 5, -1, 2**63, 1.0])]
            names = ("side", "price", "qty", "order_type", "tif", "order_id", "ts")
            ops.append(("submit",) + _call(rng, names, values, 3))
        elif r < 0.7:
            values = [_oid(rng, hostile), _MISSING if rng.random() < 0.7 else _qty(rng, hostile)]
            ops.append(("cancel",) + _call(rng, ("order_id", "qty"), values, 1))
        else:
            values = [_oid(rng, hostile), _MISSING if rng.random() < 0.1 else _price(rng, hostile),
                      _MISSING if rng.random() < 0.7 else _qty(rng, hostile)]
            ops.append(("modify",) + _call(rng, ("order_id", "price", "qty"), values, 1))
    return ops


def _run(book, ops):
    out = []
    for name, args, kwargs in ops:
        try:
            r = getattr(book, name)(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            out.append((type(exc).__name__, str(exc)))
        else:
            assert type(r.fills) is np.ndarray and r.fills.dtype == R.FILL
            out.append((type(r).__name__, r.order_id, r.status, r.filled, r.leaves, r.reason,
                        r.fills.tolist(), r.fills.flags.writeable))
    return out


_SYMBOLS = ["A", "B", "C"]
_TICKS = {"A": 0.01, "B": 0.05, "C": 0.01}


def _engine_program(rng, n):
    """``_program``'s calls with a symbol first (now and then an unknown or odd one): a
    keyword when the call gives everything by keyword, else the first positional."""
    ops = []
    for name, args, kwargs in _program(rng, n):
        odd = rng.random() < 0.05
        symbol = _pick(rng, ["D", "", 0, None, b"A", "a"] if odd else _SYMBOLS)
        if not args and rng.random() < 0.5:
            kwargs = {"symbol": symbol, **kwargs}
        else:
            args = (symbol,) + args
        ops.append((name, args, kwargs))
    return ops


def _compare_books(new_book, ops, symbols) -> dict:
    """``ops`` through a native book, one on the Python entries and one on the checked
    path only (each from ``new_book()``): every answer, fill, automatic id, resting order
    and counter the same. Returns what the test checks of the run."""
    native = new_book()
    handed = _counting(native)
    python = new_book()
    python._ctl[fastcall.CTL_ON] = 0
    checked = new_book()
    checked._route_through_apply_one()
    got = _run(native, ops)
    assert got == _run(python, ops)
    assert got == _run(checked, ops)
    for other in (python, checked):
        assert native._next_id == other._next_id
        for symbol in symbols:
            assert native.orders(*symbol).equals(other.orders(*symbol))
        assert (native.state.counters == other.state.counters).all()
        assert np.array_equal(np.concatenate(native._fill_log or [np.zeros(0, R.FILL)]),
                              np.concatenate(other._fill_log or [np.zeros(0, R.FILL)]))
    calls = Counter(name for name, _, _ in ops)
    return {"calls": dict(calls), "handed": dict(handed),
            "errors": sum(1 for g in got if g[0] in ("ValueError", "TypeError")),
            "fills": sum(len(g[6]) for g in got if g[0] == "OrderResult"),
            "books": sorted({int(b) for f in native._fill_log for b in f["symbol"]})}


def compare(seed: int, n: int) -> dict:
    """One random program through ``OrderBook``s (``_compare_books``)."""
    ops = _program(np.random.default_rng(seed), n)
    return _compare_books(lambda: OrderBook("N", tick_size=0.01), ops, [()])


def compare_engines(seed: int, n: int) -> dict:
    """``compare`` for ``Engine``s of three books (two ticks), the symbol first."""
    ops = _engine_program(np.random.default_rng(seed), n)
    return _compare_books(lambda: Engine(_SYMBOLS, tick_size=_TICKS), ops,
                          [(s,) for s in _SYMBOLS])


# ---------------------------------------------------------------------------- tests
def test_this_python_has_the_native_entries():
    ok, why = fastcall.available()
    assert ok, why
    book = OrderBook("A")
    assert type(book.submit).__name__ == "builtin_function_or_method"
    assert book.add_order is book.submit
    assert book.submit.__name__ == "submit" and "Enter an order" in book.submit.__doc__


def test_random_hostile_programs_match_the_python_path_in_a_child_process():
    """Run in a child: a crash of the native code fails here with its signal."""
    code = ("import json; from tests.test_fastcall import compare, compare_engines; "
            "print(json.dumps([compare(s, 1500) for s in (1, 2, 3, 4)]"
            " + [compare_engines(s, 1500) for s in (5, 6)]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    for summary in json.loads(done.stdout.strip().splitlines()[-1]):
        calls, handed = summary["calls"], summary["handed"]
        assert summary["errors"] > 50 and summary["fills"] > 100   # both kinds of answer
        assert summary["books"] in ([0], [0, 1, 2])                # trades in every book
        for op in ("submit", "cancel", "modify"):
            # most calls were finished natively; the odd ones were handed to Python
            assert 0 < handed.get(op, 0) < 0.6 * calls[op], (op, summary)


def test_plain_calls_never_reach_python():
    """Positional, keyword and default arguments, trades with fills, a fills chunk that
    fills up (nothing applied: a new chunk, then the same call again)."""
    warm = OrderBook("W")              # the first call of each in a process loads its kernel
    warm.submit(Side.BUY, 1.0, 1), warm.modify(1, 1.01), warm.cancel(1)
    book = OrderBook("K", tick_size=0.01, record_fills=True)
    handed = _counting(book)
    book._new_chunk(3)
    book.submit(Side.SELL, 100.0, 5)
    book.submit(side=Side.SELL, price=100.01, qty=5, order_id=50)
    book.submit(Side.SELL, 100, 5, OrderType.LIMIT, TimeInForce.GTC, None, 7)
    book.submit(Side.SELL, 100.02, 5, tif=TimeInForce.GTC, ts=None)
    for k in range(6):
        book.submit(Side.SELL, 100.03, 1)
    sweep = book.submit(Side.BUY, 100.03, 100, tif=TimeInForce.IOC)   # 10 fills > chunk of 3
    assert sweep.status == OrderStatus.CANCELLED and sweep.filled == 26 and len(sweep.fills) == 10
    assert sweep.fills.base is book._chunk
    assert sum(len(f) for f in book._fill_log) == 10
    book.submit(Side.BUY, 99.0, 5, order_id=90)
    assert book.modify(90, 99.5).status == OrderStatus.NEW
    assert book.modify(order_id=90, price=99.6, qty=3).leaves == 3
    assert book.cancel(90, 1).leaves == 2 and book.cancel(order_id=90).leaves == 0
    assert book.cancel(90).reason.name == "UNKNOWN_ORDER"
    assert sum(handed.values()) == 0, handed
    assert book._next_id == 91     # past the explicit 90, as automatic ids always skip
    book.modify(1, qty=2)          # quantity only: the Python method's form
    book.submit("buy", 99.0, 1)    # a word
    assert handed["modify"] == 1 and handed["submit"] >= 1 and handed["cancel"] == 0


def test_results_and_fills_are_the_python_paths_objects():
    native, python = OrderBook("R"), OrderBook("R")
    python._ctl[fastcall.CTL_ON] = 0
    for book in (native, python):
        book.submit(Side.SELL, 100.0, 4)
        book.submit(Side.SELL, 100.0, 4)
    a, b = native.submit(Side.BUY, 100.0, 6), python.submit(Side.BUY, 100.0, 6)
    assert type(a) is type(b) and a._fields == b._fields and a[:5] == b[:5]
    for fa, fb in ((a.fills, b.fills),):
        assert fa.dtype == fb.dtype and fa.strides == fb.strides and fa.shape == fb.shape
        assert fa.flags.writeable == fb.flags.writeable and fa.flags.c_contiguous
        assert fa.base is native._chunk and fb.base is python._chunk
        assert fa.tolist() == fb.tolist()
    r = native.submit(Side.BUY, 99.0, 1)
    assert r.fills is _NO_FILLS and r.status is OrderStatus.NEW and type(r.order_id) is int


def test_no_references_or_memory_left_behind():
    book = OrderBook("M", tick_size=0.01, record_fills=False, capacity=10_000)
    watched = list(_STATUS) + list(_REASON) + [_NO_FILLS, book._chunk, book._ctl]

    def churn(n):
        for i in range(n):
            book.submit(Side.SELL, 100.0, 3)
            book.submit(Side.BUY, 100.0, 1)          # a fill
            r = book.submit(Side.BUY, 99.0, 2)
            book.modify(r.order_id, 99.5)
            book.cancel(r.order_id)
            book.cancel(r.order_id)                  # rejected
            book.submit(Side.BUY, 100.0, 2)          # takes the rest of the sell
    churn(2000)   # the chunk renews now and then: let it settle, then watch one chunk
    book._new_chunk(1_000_000)
    watched[-2] = book._chunk
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    tracemalloc.start()
    try:
        churn(200)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        churn(5000)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    after = [sys.getrefcount(o) for o in watched]
    assert after == before
    assert second - first < 64 * 1024, (first, second)   # 35,000 calls, nothing kept
    assert book.stats()["live_orders"] == 0


def test_an_engine_routes_each_symbol_natively():
    warm = Engine(["W"])
    warm.submit("W", Side.BUY, 1.0, 1), warm.modify("W", 1, 1.01), warm.cancel("W", 1)
    eng = Engine(["A", "B"], tick_size={"A": 0.01, "B": 0.5})
    handed = _counting(eng)
    assert eng.submit("B", Side.SELL, 10.5, 3).status == OrderStatus.NEW
    assert eng.submit(symbol="A", side=Side.BUY, price=10.25, qty=3).status == OrderStatus.NEW
    r = eng.submit("B", Side.BUY, 10.5, 5)
    assert (r.filled, r.leaves) == (3, 2) and r.fills["symbol"].tolist() == [1]
    assert eng.modify("A", 2, price=10.26).accepted and eng.cancel("B", 3).leaves == 0
    assert eng.best_bid("A") == 10.26 and eng.best_bid("B") is None
    assert sum(handed.values()) == 0, handed
    with pytest.raises(ValueError, match="symbol='C'"):
        eng.submit("C", Side.BUY, 10.0, 1)
    with pytest.raises(ValueError, match="tick"):
        eng.submit("B", Side.BUY, 10.25, 3)      # on A's tick, not on B's
    assert eng.add_order is eng.submit


def test_a_mapped_engine_keeps_its_python_methods(tmp_path):
    from workbench import mmap_book

    book = mmap_book.create(tmp_path / "m.book", ["M"], tick_size=0.01)
    assert type(book.submit).__name__ == "method"
    assert book.submit("M", Side.SELL, 100.0, 5).order_id == 1
    assert book._next_id == 2
    book.close()


def test_a_switched_off_book_hands_every_call_to_python():
    book = OrderBook("S")
    book._route_through_apply_one()
    handed = _counting(book)
    book._ctl[fastcall.CTL_ON] = 0      # install switched it on again: as routing leaves it
    book.submit(Side.BUY, 99.0, 1)
    book.cancel(1)
    assert handed == Counter({"submit": 1, "cancel": 1})


def test_a_lab_book_hands_odd_calls_to_its_trusted_method():
    book = OrderBook("L", mode="lab")
    assert type(book.submit).__name__ == "builtin_function_or_method"
    assert book.submit.__self__[0] == book._submit_trusted
    assert book.submit(Side.BUY, 99.0, 5).status == OrderStatus.NEW
    assert book.submit("sell", 99.0, 2).filled == 2          # handed over, and answered
    with pytest.raises(ValueError, match="qty"):
        book.submit(Side.BUY, 99.0, 0)


def test_a_subclass_or_a_journaled_book_keeps_the_python_methods(tmp_path):
    class Mine(OrderBook):
        pass

    assert type(Mine("S").submit).__name__ == "method"
    journaled = OrderBook("J", journal=tmp_path / "j", durability="none")
    assert type(journaled.submit).__name__ == "method"
    journaled.close()
