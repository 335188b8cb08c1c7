"""Checkers of notebook 16-memory-mapped-books-simd-and-numa."""
from __future__ import annotations

import math

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


def _rolling_cases():
    """(name, prices, qtys, window): int64 price units and quantities."""
    import numpy as np

    rng = np.random.default_rng(16)
    n = 500
    prices = rng.integers(990_000, 1_010_000, n, dtype=np.int64)
    qtys = rng.integers(1, 500, n, dtype=np.int64)
    gaps = qtys.copy()
    gaps[100:140] = 0                  # a quiet stretch: windows inside it have no volume
    return [("random trades, window 20", prices, qtys, 20),
            ("window 1 (each trade's own price)", prices, qtys, 1),
            ("a window longer than the data", prices[:30], qtys[:30], 100),
            ("40 zero-quantity trades, window 10", prices, gaps, 10),
            ("no trades at all", prices[:0], qtys[:0], 5)]


@exercise("16.1", hint="with c = cumsum of p*q and v = cumsum of q (each with a 0 in front), the window ending at i sums c[i+1] - c[max(0, i+1-window)]; divide, and give NaN where the volume is 0")
def check_rolling_vwap(rolling_vwap) -> Verdict:
    """Exercise 16.1: ``rolling_vwap(prices, qtys, window)`` returns, for every trade
    ``i``, the VWAP of the last ``window`` trades up to and including ``i`` (fewer at the
    start), as a float64 array in price units; NaN where those trades have no volume.
    Checked against the kernel ``kernels.vwap.rolling_vwap`` (through
    ``workbench.vwap.rolling`` with one trade per nanosecond, so a window of ``window``
    ns holds ``window`` trades) on random trades, window 1, a window longer than the
    data, a stretch of zero-quantity trades and no trades at all."""
    import numpy as np

    from workbench import vwap as wv

    for name, prices, qtys, window in _rolling_cases():
        expected = wv.rolling(np.arange(len(prices), dtype=np.int64), prices, qtys, window)
        got, why = _attempt(rolling_vwap, prices.copy(), qtys.copy(), window)
        if why:
            return _verdict(False, f"{name}: {why}")
        try:
            got = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            return _verdict(False, f"{name}: return an array of floats, not {type(got).__name__}")
        if got.shape != expected.shape:
            return _verdict(False, f"{name}: you returned shape {got.shape}; one value per trade "
                                   f"gives {expected.shape}")
        nan_want, nan_got = np.isnan(expected), np.isnan(got)
        if (nan_want != nan_got).any():
            i = int(np.flatnonzero(nan_want != nan_got)[0])
            if nan_want[i]:
                return _verdict(False, f"{name}: trade {i}'s window has no volume: its VWAP is "
                                       f"undefined (NaN), you gave {got[i]!r}")
            return _verdict(False, f"{name}: trade {i}'s window traded {expected[i]:.4f} on "
                                   "average; you gave NaN")
        close = np.isclose(got, expected, rtol=1e-9, atol=0.0) | nan_want
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            return _verdict(False, f"{name}: at trade {i} you gave {got[i]:.4f}, the last "
                                   f"{window} trades' VWAP is {expected[i]:.4f} (include trade "
                                   "i itself; divide notional by volume)")
    return _verdict(True, "your rolling VWAP matches the kernel on every case, zero-volume "
                          "windows included")


_BYTES_CASES = (1, 100, 1_000, 5_000, 65_536)


@exercise("16.2", hint="allocate the state (book_state.allocate_state(1, n_orders, 1024, [100])), round each array's nbytes up to mmap_book.ALIGN, add them, and add one page (mmap_book.PAGE) of header")
def check_mapped_bytes(mapped_bytes) -> Verdict:
    """Exercise 16.2: ``mapped_bytes(n_orders)`` returns the size in bytes of the file
    ``mmap_book.create`` writes for one symbol with ``capacity=n_orders`` and
    ``price_levels=1024``. Checked against files written by ``mmap_book.save`` for 1,
    100, 1,000, 5,000 and 65,536 orders."""
    import os
    import tempfile

    from workbench import mmap_book
    from workbench.book import Engine

    with tempfile.TemporaryDirectory(prefix="wb-16-check-") as tmp:
        for n in _BYTES_CASES:
            engine = Engine(["SYM"], capacity=n, price_levels=1024, record_fills=False)
            path = mmap_book.save(engine, os.path.join(tmp, f"book-{n}.map"))
            expected = os.path.getsize(path)
            got, why = _attempt(mapped_bytes, n)
            if why:
                return _verdict(False, f"n_orders={n}: {why}")
            if isinstance(got, bool) or not isinstance(got, (int, float)) or \
                    (isinstance(got, float) and not math.isfinite(got)):
                return _verdict(False, f"n_orders={n}: return a number of bytes, not {got!r}")
            if got != expected:
                data = sum(a.nbytes for a in engine.state)
                more = ""
                if got == data:
                    more = ": that is the arrays alone; add the header page and the alignment"
                elif got == data + mmap_book.PAGE:
                    more = ": each array starts on a 64-byte boundary (round its size up)"
                return _verdict(False, f"n_orders={n}: you said {got:,} bytes, the file holds "
                                       f"{expected:,}{more}")
    return _verdict(True, "byte-exact for every size; note the order index doubling at powers "
                          "of two and the ladder's fixed cost")


@exercise("16.3", hint="view = mmap_book.read(path); i = view.symbol_index(symbol); h = view.arrays['books']['best'][i, 0]; None if h < 0 else view.arrays['levels'][h]['price'] / view.price_scale")
def check_best_bid_from_file(best_bid_from_file) -> Verdict:
    """Exercise 16.3: ``best_bid_from_file(path, symbol)`` reads a mapped book's best bid
    straight from its arrays (``mmap_book.read``: no engine) and returns it as a price,
    or None when the bid side is empty. Checked on a three-symbol book that another
    engine holds open for writing (so ``mmap_book.open`` is locked out and ``read`` is
    the way in), before and after that writer trades."""
    import os
    import tempfile

    from workbench import mmap_book
    from workbench.enums import Side

    with tempfile.TemporaryDirectory(prefix="wb-16-check-") as tmp:
        path = os.path.join(tmp, "live.map")
        writer = mmap_book.create(path, ["AAA", "BBB", "CCC"], tick_size=0.01, capacity=256,
                                  price_levels=256, record_fills=False)
        try:
            for symbol, side, price in (("AAA", Side.BUY, 100.25), ("AAA", Side.BUY, 100.5),
                                        ("AAA", Side.SELL, 101.0), ("BBB", Side.SELL, 20.0),
                                        ("CCC", Side.BUY, 0.05), ("CCC", Side.BUY, 55.55)):
                writer.submit(symbol, side, price, 10)
            rounds = [("as written", None),
                      ("after the writer bought CCC at 60.00 and sold AAA into the bid",
                       lambda: (writer.submit("CCC", Side.BUY, 60.0, 5),
                                writer.submit("AAA", Side.SELL, 100.5, 10)))]
            for when, trade in rounds:
                if trade is not None:
                    trade()
                for symbol in ("AAA", "BBB", "CCC"):
                    expected = writer.best_bid(symbol)
                    got, why = _attempt(best_bid_from_file, path, symbol)
                    if why:
                        if "open elsewhere" in why:
                            why += " (mmap_book.open wants the writer's lock: use mmap_book.read)"
                        return _verdict(False, f"{symbol} {when}: {why}")
                    if expected is None:
                        if got is not None:
                            return _verdict(False, f"{symbol} {when}: the bid side is empty "
                                                   f"(best handle -1): return None, not {got!r}")
                        continue
                    try:
                        value = float(got)
                    except (TypeError, ValueError):
                        return _verdict(False, f"{symbol} {when}: return a price, not {got!r}")
                    if abs(value - expected) > 1e-9:
                        hint = ""
                        if abs(value - expected * writer.price_scale) < 1e-6:
                            hint = " (that is in price units: divide by the price scale)"
                        return _verdict(False, f"{symbol} {when}: you read {value}, the best bid "
                                               f"is {expected}{hint}")
        finally:
            writer.close()
    return _verdict(True, "read from the file's arrays, live, while another engine writes it")
