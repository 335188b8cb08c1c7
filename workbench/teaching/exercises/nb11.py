"""Checkers of notebook 11-full-depth-books."""
from __future__ import annotations

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


def _prices(values) -> str:
    return ", ".join(f"{v:,.2f}" for v in sorted(values))


@exercise("11.1", hint="filter engine.orders(symbol) on abs(price - mid) > fraction * mid, mid = engine.mid_price(symbol); return the order_id column as a list")
def check_far_orders(far_orders) -> Verdict:
    """Exercise 11.1: ``far_orders(engine, symbol, fraction)`` returns the ids of the
    orders of ``symbol`` resting more than ``fraction`` x mid from the mid (stub quotes
    and other far orders). Tried on a two-book engine around $50.00 (stub quotes, orders
    exactly on the band's edge, a second book with far orders of its own) at two
    fractions."""
    from workbench.book import Engine
    from workbench.enums import Side

    eng = Engine(["HOOK", "OTHER"], tick_size=0.01, capacity=64, record_fills=False)
    placed = {}  # order id -> (symbol, price)
    for symbol, side, price in (
            ("HOOK", Side.BUY, 49.99), ("HOOK", Side.BUY, 49.98), ("HOOK", Side.BUY, 25.00),
            ("HOOK", Side.BUY, 24.00), ("HOOK", Side.BUY, 0.01), ("HOOK", Side.SELL, 50.01),
            ("HOOK", Side.SELL, 75.00), ("HOOK", Side.SELL, 75.01),
            ("HOOK", Side.SELL, 199_999.99), ("OTHER", Side.BUY, 9.99), ("OTHER", Side.BUY, 0.01),
            ("OTHER", Side.SELL, 10.01), ("OTHER", Side.SELL, 199_999.99)):
        placed[eng.submit(symbol, side, price, 100).order_id] = (symbol, price)
    mid = 50.00  # (49.99 + 50.01) / 2
    for fraction in (0.5, 0.9):
        expected = {oid for oid, (sym, px) in placed.items()
                    if sym == "HOOK" and abs(px - mid) > fraction * mid + 1e-9}
        got, why = _attempt(far_orders, eng, "HOOK", fraction)
        if why:
            return _verdict(False, f"{why}. Hint: engine.orders(symbol) and engine.mid_price(symbol)")
        if got is None:
            return _verdict(False, "your function returned None: return the far orders' ids "
                                   "(a list, a set or a polars Series)")
        if hasattr(got, "columns") and "order_id" in got.columns:
            got = got["order_id"]
        try:
            ids = {int(x) for x in got}
        except (TypeError, ValueError):
            return _verdict(False, f"return order ids (integers), not {type(got).__name__}")
        if ids == expected:
            continue
        where = f"with fraction={fraction} (mid {mid:.2f}, band +-{fraction * mid:,.2f})"
        other = ids - set(placed)
        extra = [placed[i][1] for i in ids & set(placed) if i not in expected]
        missing = [placed[i][1] for i in expected - ids]
        if other:
            return _verdict(False, f"{where}: {sorted(other)[:5]} are not order ids of the engine")
        if any(placed[i][0] == "OTHER" for i in ids):
            return _verdict(False, f"{where}: you returned orders of another book; look at "
                                   "symbol's orders only (engine.orders(symbol))")
        if extra:
            return _verdict(False, f"{where}: the order(s) at {_prices(extra)} are not far: "
                                   "far means abs(price - mid) > fraction * mid (strictly)")
        return _verdict(False, f"{where}: you missed the order(s) at {_prices(missing)}; both "
                               "sides count, and the distance is abs(price - mid)")
    return _verdict(True, "stub quotes and deep orders found, the band's edges left alone, "
                          "at both fractions")


def _window_reference(n_books: int, budget: int):
    from kernels import book_state

    w = book_state.MAX_PRICE_LEVELS
    while w >= book_state.MIN_PRICE_LEVELS:
        if book_state.ladder_bytes(n_books, w) <= budget:
            return w
        w //= 2
    return None


@exercise("11.2", hint="start at book_state.MAX_PRICE_LEVELS and halve while book_state.ladder_bytes(n_books, w) > budget_bytes; None below MIN_PRICE_LEVELS")
def check_window_for(window_for) -> Verdict:
    """Exercise 11.2: ``window_for(n_books, budget_bytes)`` returns the largest window
    (a power of two from ``MIN_PRICE_LEVELS`` to ``MAX_PRICE_LEVELS``) whose ladders
    (``kernels.book_state.ladder_bytes``) fit the budget, or None when none does."""
    from kernels import book_state

    cases = ((1, 64 << 20), (10_000, 512 << 20), (10_000, 100 << 20), (8_000, 1 << 30),
             (3, 1 << 40), (100_000, 1 << 20))
    for n_books, budget in cases:
        expected = _window_reference(n_books, budget)
        got, why = _attempt(window_for, n_books, budget)
        where = f"window_for({n_books:,}, {budget:,})"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: book_state.ladder_bytes(n_books, w)")
        if got == expected and (got is None or not isinstance(got, bool)):
            continue
        if expected is None:
            return _verdict(False, f"{where} returned {got!r}, but even the smallest window "
                                   f"({book_state.MIN_PRICE_LEVELS}) takes "
                                   f"{book_state.ladder_bytes(n_books, book_state.MIN_PRICE_LEVELS):,}"
                                   " bytes: return None")
        if got is None or isinstance(got, bool) or not isinstance(got, int):
            return _verdict(False, f"{where} returned {got!r}: return a window in ticks (an int)")
        if got & (got - 1) or not book_state.MIN_PRICE_LEVELS <= got <= book_state.MAX_PRICE_LEVELS:
            return _verdict(False, f"{where} returned {got:,}: the engine takes powers of two "
                                   f"from {book_state.MIN_PRICE_LEVELS} to "
                                   f"{book_state.MAX_PRICE_LEVELS:,}")
        if book_state.ladder_bytes(n_books, got) > budget:
            return _verdict(False, f"{where} returned {got:,}, whose ladders take "
                                   f"{book_state.ladder_bytes(n_books, got):,} bytes: over budget")
        return _verdict(False, f"{where} returned {got:,}, but {2 * got:,} fits too "
                               f"({book_state.ladder_bytes(n_books, 2 * got):,} bytes): "
                               "return the largest window that fits")
    return _verdict(True, "the largest window that fits, for one book to a whole exchange "
                          "(and None when nothing fits)")


@exercise("11.3", hint="engine.get_bids(symbol, n) / get_asks give (price, qty, orders) best first; add qty while round(abs(price - best) / tick_size) <= ticks")
def check_size_near_touch(size_near_touch) -> Verdict:
    """Exercise 11.3: ``size_near_touch(engine, symbol, ticks, tick_size)`` returns
    ``(bid_qty, ask_qty)``: the resting size at prices within ``ticks`` ticks of each
    side's best price, the best included. Tried on an ES-like book (tick 0.25) with a
    far level, a cent book with an empty ask side, at several depths."""
    from workbench.book import Engine
    from workbench.enums import Side

    books = {  # symbol: (tick, [(side, price in ticks, qty)])
        "ES": (0.25, [(Side.BUY, 19_196, 16), (Side.BUY, 19_195, 21), (Side.BUY, 19_195, 4),
                      (Side.BUY, 19_193, 24), (Side.BUY, 18_000, 7), (Side.SELL, 19_198, 23),
                      (Side.SELL, 19_199, 22), (Side.SELL, 19_202, 3), (Side.SELL, 40_000, 1)]),
        "CENT": (0.01, [(Side.BUY, 10_000, 300), (Side.BUY, 9_997, 200), (Side.BUY, 9_993, 100),
                        (Side.BUY, 1, 100)]),
    }
    eng = Engine(list(books), tick_size={s: t for s, (t, _) in books.items()}, capacity=64,
                 record_fills=False)
    for symbol, (tick, orders) in books.items():
        for side, ticks, qty in orders:
            eng.submit(symbol, side, round(ticks * tick, 2), qty)
    for symbol, (tick, orders) in books.items():
        best = {}
        for side, ticks, _ in orders:
            best[side] = max(best.get(side, ticks), ticks) if side == Side.BUY else \
                min(best.get(side, ticks), ticks)
        for depth in (0, 1, 3, 4, 2_000):
            expected = tuple(sum(q for s, t, q in orders if s == side and abs(t - best[side]) <= depth)
                             for side in (Side.BUY, Side.SELL))
            got, why = _attempt(size_near_touch, eng, symbol, depth, tick)
            where = f"{symbol} (tick {tick}), ticks={depth}"
            if why:
                return _verdict(False, f"{where}: {why}. Hint: engine.get_bids(symbol, n) and "
                                       "get_asks give (price, qty, orders), best first; an empty "
                                       "side gives []")
            try:
                pair = tuple(int(x) for x in got)
            except (TypeError, ValueError):
                return _verdict(False, f"{where}: return a pair (bid_qty, ask_qty), not {got!r}")
            if pair == expected:
                continue
            if pair == expected[::-1]:
                return _verdict(False, f"{where}: {pair} is (ask, bid); return (bid_qty, ask_qty)")
            return _verdict(False, f"{where}: you returned {pair}, the book holds {expected}. "
                                   "Hint: count a level when round(abs(price - best) / tick_size) "
                                   "<= ticks (round: prices are floats), the best level included")
    return _verdict(True, "the size near the touch on both sides, at every depth, far levels "
                          "and empty sides included")
