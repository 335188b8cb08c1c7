"""A deep LOBSTER sample written by an independent model: files for ``lobster-check`` at
full depth (10, 30 or 50 levels) without ``../shared``.

:func:`write_deep_sample` plays a random flow through the plain-Python reference book
(``workbench.reference.ReferenceBook``, not the engine) and writes what it saw in
LOBSTER's format: a message file (``time,type,order_id,size,price,direction``) and the
row-aligned orderbook file (``ask_px,ask_sz,bid_px,bid_sz`` per level). The book starts
deep and wide *before* the first message, as a real file does: 600 orders within four
dollars of a $585.00 mid plus far and stub prices ($0.01, $460, $616, $688, $743,
$2,000, $199,999.99) that the file never shows whole. Cancels, deletes and executions
lean towards the visible levels, so deeper levels surface during the file: the rows
where a level enters the visible depth from beyond it are what ``lobster-check`` counts
as ``unseen_depth``.

Used by ``tests/test_lobster_full_depth.py`` and notebook 11.
"""
from __future__ import annotations

import random
from pathlib import Path

from kernels import records as R

from ..reference import ReferenceBook
from . import lobster

__all__ = ["write_deep_sample", "SAMPLE_MID", "FAR_PRICES"]

TICK = lobster.TICK_UNITS
SAMPLE_MID = 5_850_000  # $585.00 in LOBSTER's price units (1/10,000 dollar)
# resting before the file begins: a stub bid, a deep bid, deep asks and a stub offer
FAR_PRICES = ((R.BUY, 100), (R.BUY, 4_600_000), (R.SELL, 6_160_000), (R.SELL, 6_880_000),
              (R.SELL, 7_430_000), (R.SELL, 20_000_000), (R.SELL, 1_999_999_900))


def _row(ref: ReferenceBook, n_levels: int) -> list[int]:
    asks, bids = ref.levels(R.SELL), ref.levels(R.BUY)
    row = []
    for j in range(n_levels):
        a = asks[j][:2] if j < len(asks) else (lobster.EMPTY_ASK_PRICE, 0)
        b = bids[j][:2] if j < len(bids) else (lobster.EMPTY_BID_PRICE, 0)
        row += [a[0], a[1], b[0], b[1]]
    return row


def _positive_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return value


def write_deep_sample(directory, n_levels: int = 10, n_messages: int = 1500,
                      seed: int = 7, ticker: str = "XYZ") -> tuple[Path, Path]:
    """Write ``{ticker}_2012-06-21_34200000_57600000_message_{n_levels}.csv`` and its
    ``orderbook`` file into ``directory`` (module doc); returns ``(message, orderbook)``.
    Seeded: the same arguments write the same files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"directory={str(directory)!r} is not an existing directory")
    n_levels = _positive_int(n_levels, "n_levels", 1)
    n_messages = _positive_int(n_messages, "n_messages", 1)
    seed = _positive_int(seed, "seed", 0)
    if not isinstance(ticker, str) or not ticker.isalnum():
        raise ValueError(f"ticker={ticker!r} must be letters and digits (it names the files)")
    rng = random.Random(seed)
    ref = ReferenceBook(tick=TICK)
    oid = 1
    # before the file: a deep book, including far and stub prices
    for side, lo, hi in ((R.BUY, -400, -1), (R.SELL, 1, 400)):
        for _ in range(300):
            ref.add(oid, side, SAMPLE_MID + TICK * rng.randint(lo, hi), rng.randint(1, 9) * 100)
            oid += 1
    for side, price in FAR_PRICES:
        ref.add(oid, side, price, 100)
        oid += 1
    messages, rows = [], []
    t = 34_200.0
    for _ in range(n_messages):
        t += rng.random() / 10
        bid, ask = ref.best(R.BUY), ref.best(R.SELL)
        resting = list(ref.orders.values())
        u = rng.random()
        if u < 0.45 or not resting:
            side = rng.choice((R.BUY, R.SELL))
            if side == R.BUY:   # never marketable: LOBSTER submissions rest
                price = min(ask - TICK, bid + TICK * rng.randint(-30, 1))
            else:
                price = max(bid + TICK, ask + TICK * rng.randint(-1, 30))
            qty = rng.randint(1, 9) * 100
            ref.add(oid, side, price, qty)
            messages.append((t, 1, oid, qty, price, 1 if side == R.BUY else -1))
            oid += 1
        elif u < 0.85:
            # cancels and deletes, biased to the visible levels so deep levels surface
            near = [o for o in resting if abs(o.price - SAMPLE_MID) < 60 * TICK] or resting
            o = rng.choice(near)
            if rng.random() < 0.3 and o.qty > 100:
                qty = 100
                ref.cancel(o.order_id, qty)
                messages.append((t, 2, o.order_id, qty, o.price, 1 if o.side == R.BUY else -1))
            else:
                messages.append((t, 3, o.order_id, o.qty, o.price, 1 if o.side == R.BUY else -1))
                ref.cancel(o.order_id, 0, delete=True)
        else:
            side = rng.choice((R.BUY, R.SELL))
            best = ref.best(side)
            o = ref.queues[side][best][0]  # executions hit the front of the best queue
            qty = min(o.qty, rng.randint(1, 9) * 100)
            messages.append((t, 4, o.order_id, qty, o.price, 1 if side == R.BUY else -1))
            ref.execute(o.order_id, qty)
        rows.append(_row(ref, n_levels))
    stem = f"{ticker}_2012-06-21_34200000_57600000"
    msg = directory / f"{stem}_message_{n_levels}.csv"
    book = directory / f"{stem}_orderbook_{n_levels}.csv"
    msg.write_text("".join(f"{t:.9f},{k},{i},{q},{p},{d}\n" for t, k, i, q, p, d in messages))
    book.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    return msg, book
