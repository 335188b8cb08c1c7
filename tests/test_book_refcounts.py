"""The book's hot path carries no reference counting.

A call between Numba kernels increfs and decrefs every array it passes (an atomic
operation each), and the book passes its whole state (nine arrays) at every step: on
``bench book``'s flow B that was most of an event's time. ``kernels.book`` compiles its
internal kernels without Numba's runtime (``kernel(nrt=False)``), so a change that brings
reference counts back (a new kernel outside that rule, an allocation in a helper) shows
here, in the compiled code of the entry points users run, rather than as a slowdown
someone must notice in a benchmark.
"""
from __future__ import annotations

import re

import numpy as np

from kernels import book as kbook
from kernels import records as R
from workbench.book import OrderBook


ENTRY_POINTS = {"apply_one", "apply_batch", "apply_batch_deep", "apply_batch_discard_fills"}


def test_the_books_kernels_are_compiled_without_reference_counts():
    """Every kernel of ``kernels.book`` but the entry points (which build the state's
    views and so need Numba's runtime) is compiled with ``_nrt=False``: no reference-count
    operation in it, and an allocation there would not even compile. A new kernel that
    forgets the rule fails here."""
    from numba.core.registry import CPUDispatcher

    from kernels import order_index

    kernels = {name: d for name, d in vars(kbook).items()
               if isinstance(d, CPUDispatcher) and d.py_func.__module__ == "kernels.book"}
    assert len(kernels) > 30 and ENTRY_POINTS <= set(kernels)
    counted = sorted(name for name, d in kernels.items()
                     if name not in ENTRY_POINTS and d.targetoptions.get("_nrt", True) is not False)
    assert counted == [], counted
    for name in ENTRY_POINTS:
        assert kernels[name].targetoptions.get("_nrt", True) is not False, name
    assert order_index.index_delete.targetoptions.get("_nrt") is False   # called by the book


def test_the_book_without_reference_counts_still_matches():
    """The same operations through both entry points (single calls, a batch) give the
    plain results: a trade, a modify, a cancel, then two crossing pairs in a batch."""
    book = OrderBook("RC", tick_size=0.01)
    assert book.submit("buy", 10.00, 5).filled == 0
    assert book.submit("sell", 10.00, 3).filled == 3
    book.modify(1, price=9.99)
    assert book.cancel(1).accepted
    ev = np.zeros(4, R.EVENT)
    ev["kind"], ev["qty"], ev["order_id"] = R.EV_ADD, 1, [11, 12, 13, 14]
    ev["price"] = book.to_units(10.00)
    ev["side"] = [R.BUY, R.SELL, R.BUY, R.SELL]
    fills = np.zeros(16, R.FILL)
    applied, n_fills = book.apply(ev, fills)
    assert (applied, n_fills) == (4, 2)
    assert book.stats()["live_orders"] == 0
