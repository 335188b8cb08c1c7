"""Checkers of notebook 01-order-book.

Each checker builds small books from a script, twice: one copy for the student's
function, one for the reference, which is the engine's own answer (the order is really
sent to the second copy). A student's function must only *read* the book it is given.
"""
from __future__ import annotations

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

# A book with depth on both sides, several orders per price, and one order (id 4) that
# lost its place by raising its quantity: orders() lists it behind order 5.
_SCRIPT = (
    ("add", "SELL", 100.01, 300), ("add", "SELL", 100.02, 100), ("add", "SELL", 100.02, 100),
    ("add", "SELL", 100.02, 50), ("add", "SELL", 100.02, 80), ("add", "SELL", 100.05, 400),
    ("add", "BUY", 99.99, 200), ("add", "BUY", 99.99, 300), ("add", "BUY", 99.97, 100),
    ("add", "BUY", 99.90, 1_000), ("modify", 4, 150),
)


def _book(script=_SCRIPT, cls=None):
    from workbench.book import OrderBook
    from workbench.enums import Side

    book = OrderBook("CHK", tick_size=0.01, capacity=256)
    for step in script:
        if step[0] == "add":
            book.submit(Side[step[1]], step[2], step[3])
        else:
            book.modify(step[1], qty=step[2])
    return book


def _snapshot(book):
    return book.orders().rows()


def _fmt(price) -> str:
    return "market" if price is None else f"{price:.2f}"


def _read_only(book, before, where) -> str | None:
    if _snapshot(book) != before:
        return (f"{where}: your function changed the book (it sent or cancelled orders); "
                "predict from what the book shows, without trading")
    return None


# --------------------------------------------------------------------------- 01.1
_FOK_CASES = (  # side, limit, qty; the first two tell the two classic slips apart
    ("BUY", 100.02, 500), ("BUY", 100.03, 730), ("BUY", 100.02, 730), ("BUY", 100.02, 731),
    ("BUY", 100.01, 300), ("BUY", 100.00, 1), ("BUY", 100.05, 1_130), ("BUY", 100.09, 1_131),
    ("SELL", 99.99, 500), ("SELL", 99.99, 501), ("SELL", 99.97, 600), ("SELL", 99.95, 601),
    ("SELL", 99.50, 1_600), ("SELL", 100.00, 5),
)


@exercise("01.1", hint="a buy takes asks priced <= limit (a sell: bids priced >= limit); True when their total qty >= qty. book.get_asks(1000) / get_bids(1000) give (price, qty, orders)")
def check_fok_fills(fok_fills) -> Verdict:
    """Exercise 01.1: ``fok_fills(book, side, price, qty)`` says, without sending it,
    whether a fill-or-kill order would fill now: True when the opposite side offers at
    least ``qty`` at prices at or better than the limit ``price``. Tried on buys and sells
    against a book with several orders per level, at exactly the quantity available and
    one more, at a limit between levels and one that crosses nothing."""
    from workbench.enums import Side, TimeInForce

    for side, price, qty in _FOK_CASES:
        book = _book()
        before = _snapshot(book)
        got, why = _attempt(fok_fills, book, Side[side], price, qty)
        where = f"a FOK {side.lower()} of {qty} @ {price:.2f}"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: book.get_asks(n) / get_bids(n)")
        changed = _read_only(book, before, where)
        if changed:
            return _verdict(False, changed)
        expected = _book().submit(Side[side], price, qty, tif=TimeInForce.FOK).filled == qty
        if not isinstance(got, bool) and not (hasattr(got, "dtype") and got.dtype == bool):
            return _verdict(False, f"{where}: return True or False, not {got!r}")
        if bool(got) == expected:
            continue
        levels = _book().get_asks(1000) if side == "BUY" else _book().get_bids(1000)
        reach = [(p, q) for p, q, _ in levels if (p <= price + 1e-9 if side == "BUY" else p >= price - 1e-9)]
        total = sum(q for _, q in reach)
        at_limit = sum(q for p, q in reach if abs(p - price) < 1e-9)
        msg = (f"{where}: you said {bool(got)}, but the {'asks' if side == 'BUY' else 'bids'} "
               f"at or better than {price:.2f} hold {total:,} (the engine "
               f"{'fills' if expected else 'rejects'} it)")
        notes = []
        if expected and at_limit and total - at_limit < qty:
            notes.append("the level AT the limit price counts too (<= for a buy, >= for a sell)")
        if expected and total == qty:
            notes.append("exactly enough is enough (>=, not >)")
        if not expected and total == qty - 1:
            notes.append("one share short is not enough: the whole quantity must be there")
        if not expected and not reach:
            notes.append("nothing on the other side is priced within the limit")
        if notes:
            msg += "; " + "; ".join(notes)
        return _verdict(False, msg)
    return _verdict(True, "you predicted every fill-or-kill, both sides, at the boundaries "
                          "(exactly enough, one short, the limit's own level)")


# --------------------------------------------------------------------------- 01.2
_FILL_CASES = (  # side, limit, qty
    ("BUY", 100.02, 450), ("BUY", 100.02, 1_000), ("BUY", 100.01, 120), ("BUY", 100.00, 50),
    ("BUY", 100.05, 700), ("SELL", 99.99, 250), ("SELL", 99.97, 650), ("SELL", 99.95, 2_000),
)


def _fills_of(result, price_scale):
    return [(int(f["maker_id"]), round(int(f["price"]) / price_scale, 6), int(f["qty"]))
            for f in result.fills]


@exercise("01.2", hint="walk book.orders() (bids best first, then asks best first, each price in queue order): take the opposite side's orders while their price is within the limit, min(their qty, what is left) each, at the RESTING order's price")
def check_predict_fills(predict_fills) -> Verdict:
    """Exercise 01.2: ``predict_fills(book, side, price, qty)`` lists the fills a limit
    order would make, as ``(maker_id, price, qty)`` in the order they happen, from the
    book's L3 view (``book.orders()``) alone: best price first, oldest order first at a
    price, each fill at the resting order's price. Checked against the engine's own fills
    on a book where one order lost its place by raising its quantity."""
    from workbench.enums import Side

    for side, price, qty in _FILL_CASES:
        book = _book()
        before = _snapshot(book)
        got, why = _attempt(predict_fills, book, Side[side], price, qty)
        where = f"a {side.lower()} of {qty} @ {price:.2f}"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: book.orders() is a polars frame "
                                   "(order_id, side, price, qty, ...)")
        changed = _read_only(book, before, where)
        if changed:
            return _verdict(False, changed)
        ref = _book()
        expected = _fills_of(ref.submit(Side[side], price, qty), ref.price_scale)
        try:
            mine = [(int(m), round(float(p), 6), int(q)) for m, p, q in got]
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return a list of (maker_id, price, qty) tuples, "
                                   f"not {got!r}"[:300])
        if mine == expected:
            continue
        makers = [m for m, _, _ in mine]
        if 4 in makers and 5 in makers and makers.index(4) < makers.index(5):
            return _verdict(False, f"{where}: you filled order 4 before order 5, but order 4 "
                                   "raised its quantity and went to the back of its queue: "
                                   "follow the row order of orders(), not the order ids")
        if sorted(mine) == sorted(expected):
            return _verdict(False, f"{where}: the right fills in the wrong order: {mine} but the "
                                   f"engine fills {expected}: best price first, then queue "
                                   "order (the order orders() lists them in)")
        if [(m, q) for m, _, q in mine] == [(m, q) for m, _, q in expected]:
            return _verdict(False, f"{where}: right orders and quantities, wrong prices "
                                   f"{[p for _, p, _ in mine]}: a fill trades at the RESTING "
                                   f"order's price {[p for _, p, _ in expected]}, not the limit")
        if sum(q for _, _, q in mine) > qty:
            return _verdict(False, f"{where}: your fills add up to {sum(q for _, _, q in mine):,}, "
                                   f"more than the order's {qty:,}")
        return _verdict(False, f"{where}: you predicted {mine}, the engine fills {expected}")
    return _verdict(True, "every fill predicted from the L3 view: price first, then time, at "
                          "the maker's price, with the modified order behind its level")


# --------------------------------------------------------------------------- 01.3
_SWEEP_SCRIPT = (
    ("add", "SELL", 50.10, 200), ("add", "SELL", 50.10, 100), ("add", "SELL", 50.12, 500),
    ("add", "SELL", 50.15, 250), ("add", "SELL", 50.40, 1_000), ("add", "BUY", 50.05, 700),
)


def _engine(script):
    from workbench.book import Engine
    from workbench.enums import Side

    eng = Engine(["OTHER", "CHK"], tick_size=0.01, capacity=256)
    eng.submit("OTHER", Side.SELL, 10.00, 5_000)  # another book: must not be swept
    for _, side, price, qty in script:
        eng.submit("CHK", Side[side], price, qty)
    return eng


@exercise("01.3", hint="walk engine.get_asks(symbol, 1000): take min(level qty, what is left) per level, add price x taken; VWAP = cost / qty, worst = the last level's price; None when the asks hold less than qty")
def check_sweep_cost(sweep_cost) -> Verdict:
    """Exercise 01.3: ``sweep_cost(engine, symbol, qty)`` returns ``(vwap, worst_price)``
    of a market buy of ``qty`` in ``symbol``'s book, walking its asks without trading,
    or None when the asks cannot fill it all. Checked against the VWAP of the fills of
    a real market order on a copy of the engine, from a part of the first level to the
    whole side, in an engine with another book."""
    from workbench.enums import OrderType, Side

    for qty in (150, 300, 301, 1_000, 1_050, 2_050, 2_051):
        eng = _engine(_SWEEP_SCRIPT)
        before = eng.orders("CHK").rows(), eng.orders("OTHER").rows()
        got, why = _attempt(sweep_cost, eng, "CHK", qty)
        where = f"a market buy of {qty:,}"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: engine.get_asks(symbol, n)")
        if (eng.orders("CHK").rows(), eng.orders("OTHER").rows()) != before:
            return _verdict(False, f"{where}: your function changed the engine (it traded); "
                                   "walk get_asks instead")
        ref = _engine(_SWEEP_SCRIPT)
        fills = ref.submit("CHK", Side.BUY, None, qty, order_type=OrderType.MARKET).fills
        filled = int(fills["qty"].sum())
        if filled < qty:
            if got is None:
                continue
            return _verdict(False, f"{where}: the asks hold only {filled:,}; return None when "
                                   "the book cannot fill the whole quantity")
        vwap = float((fills["price"] * fills["qty"]).sum()) / filled / ref.price_scale
        worst = float(fills["price"].max()) / ref.price_scale
        if got is None:
            return _verdict(False, f"{where}: you returned None, but the asks hold enough "
                                   f"(VWAP {vwap:.4f})")
        try:
            my_vwap, my_worst = (float(x) for x in got)
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return a pair (vwap, worst_price), not {got!r}")
        if abs(my_vwap - vwap) <= 1e-6 and abs(my_worst - worst) <= 1e-9:
            continue
        if abs(my_vwap - worst) <= 1e-9 and abs(my_worst - vwap) <= 1e-6:
            return _verdict(False, f"{where}: the pair is (worst, vwap); return (vwap, worst_price)")
        if abs(my_vwap - vwap) > 1e-6:
            touched = sorted({round(float(p) / ref.price_scale, 2) for p in fills["price"]})
            plain = sum(touched) / len(touched)
            extra = (" (the plain mean of the prices: weight each price by the quantity "
                     "taken there)") if abs(my_vwap - plain) <= 1e-6 else \
                " (take only what is left at the last level, min(level qty, remaining))"
            return _verdict(False, f"{where}: VWAP {my_vwap:.4f}, the fills' VWAP is "
                                   f"{vwap:.4f}{extra}")
        return _verdict(False, f"{where}: worst price {my_worst:.2f}, but the order reaches "
                               f"{worst:.2f}")
    return _verdict(True, "the VWAP and the worst price of every sweep match the engine's "
                          "fills, and None when the side runs dry")
