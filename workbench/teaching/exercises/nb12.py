"""Checkers of notebook 12-durability-and-replay."""
from __future__ import annotations

import math

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


@exercise("12.1", hint="engine, _ = workbench.journal.replay(directory, until_seq=seq); then engine.best_bid(symbol), engine.best_ask(symbol)")
def check_book_at(answer, directory, seq: int, symbol: str) -> Verdict:
    """Exercise 12.1: ``answer`` is ``(best_bid, best_ask)`` of ``symbol`` as the book was
    right after journal sequence ``seq`` (None for an empty side); the reference is
    ``workbench.journal.replay(directory, until_seq=seq)``."""
    from workbench.journal import replay

    engine, _ = replay(directory, until_seq=seq)
    expected = (engine.best_bid(symbol), engine.best_ask(symbol))
    now, _ = replay(directory)
    latest = (now.best_bid(symbol), now.best_ask(symbol))
    try:
        got = tuple(None if x is None else round(float(x), 8) for x in answer)
    except (TypeError, ValueError):
        return _verdict(False, f"give a pair (best_bid, best_ask), not {answer!r}")
    if len(got) == 2 and all((g is None and e is None) or (g is not None and e is not None
                                                           and abs(g - e) < 1e-9)
                             for g, e in zip(got, expected)):
        return _verdict(True, f"after sequence {seq}, {symbol} was {expected[0]} / {expected[1]}")
    if got == tuple(latest) and latest != expected:
        return _verdict(False, f"{got} is the book at the end of the journal; stop the replay at "
                               f"sequence {seq} (replay(directory, until_seq=...))")
    if got == expected[::-1]:
        return _verdict(False, f"{got} is (ask, bid); give (best_bid, best_ask)")
    return _verdict(False, f"{got} is not the book after sequence {seq}")


@exercise("12.2", hint="submit every order inside `with engine.journal.deferred():` so the journal waits once, at the end of the block")
def check_group_commit(durable_submit) -> Verdict:
    """Exercise 12.2: ``durable_submit(engine, orders)`` submits every ``(side, price,
    qty)`` of ``orders`` into ``engine`` ("SYM", journaled with ``durability="every"``)
    and returns once all of them are on disk, with one sync for the lot (not one per
    order). Tried on a fresh journal with 200 non-crossing orders."""
    import shutil
    import tempfile

    from workbench.book import Engine

    orders = [("buy" if k % 2 == 0 else "sell", round(100 - 0.01 * (1 + k // 2), 2)
               if k % 2 == 0 else round(100 + 0.01 * (1 + k // 2), 2), 10 + k) for k in range(200)]
    directory = tempfile.mkdtemp(prefix="wb-12-check-")
    engine = Engine(["SYM"], tick_size=0.01, capacity=1024, journal=directory,
                    durability="every")
    journal = engine.journal
    blocks = []
    deferred = journal.deferred

    def counted(*args, **kwargs):   # a deferred block is group commit whatever the disk does
        blocks.append(1)
        return deferred(*args, **kwargs)

    journal.deferred = counted
    try:
        _, why = _attempt(durable_submit, engine, orders)
        if why:
            return _verdict(False, f"{why}. Hint: engine.journal.deferred()")
        resting = engine.orders("SYM").height
        stats = journal.stats()
        if resting != len(orders):
            return _verdict(False, f"{resting} of the {len(orders)} orders rest in the book: "
                                   "submit every one of them")
        if journal.durable_seq < journal.last_seq:
            return _verdict(False, f"your function returned with sequences "
                                   f"{journal.durable_seq + 1}..{journal.last_seq} not yet on "
                                   "disk: nothing is acknowledged before its sync")
        if not blocks and stats["syncs"] > 3:
            return _verdict(False, f"{stats['syncs']} syncs for {len(orders)} orders: each call "
                                   "waited for its own. Submit them inside "
                                   "`with engine.journal.deferred():` (one wait at its end)")
        return _verdict(True, f"{len(orders)} orders on disk with {stats['syncs']} sync(s) "
                              f"({stats['records_per_sync']:.0f} records per sync)")
    finally:
        del journal.deferred
        engine.close()
        shutil.rmtree(directory, ignore_errors=True)


@exercise("12.3", hint="time per order is 1 / rate: the cost is (1/on - 1/off) / (1/off) x 100 = 100 x (off / on - 1)")
def check_layer_cost(answer, *, off_per_sec: float, on_per_sec: float) -> Verdict:
    """Exercise 12.3: how much slower, in percent, a run at ``on_per_sec`` orders/s is
    than one at ``off_per_sec``: the extra time per order over the time without the
    layer, ``100 * (off / on - 1)``."""
    expected = 100 * (off_per_sec / on_per_sec - 1)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
        return _verdict(False, "give a number of percent")
    if abs(answer - expected) <= 0.01 * abs(expected) + 1e-6:
        return _verdict(True, f"{expected:.1f} % more time per order")
    drop = 100 * (1 - on_per_sec / off_per_sec)
    if abs(answer - drop) <= 0.01 * abs(drop) + 1e-6:
        return _verdict(False, f"{answer:.1f} % is the drop in throughput; the cost is the extra "
                               "time per order: (1/on - 1/off) / (1/off)")
    return _verdict(False, f"{answer!r} is not {expected:.1f}; compare the time per order "
                           "(1 / rate) with and without the layer")
