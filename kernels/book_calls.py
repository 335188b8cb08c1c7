"""One order from Python with its price as a price: the entries of the per-order path.

``OrderBook.submit(side, 101.25, 100)`` used to check and convert every argument in
Python and then call :func:`kernels.book.apply_one` with integer price units. On this
project's 2-core machine each Python bytecode costs several nanoseconds, and those checks
(the price times the scale, rounding, the tick, the limits, the id and quantity ranges)
cost about three times the kernel call itself. These entries take the values as the
caller gave them (the price as a float) and do the same checks and the conversion in
compiled code, where they cost a few nanoseconds.

Each entry either applies the order (``apply_event``, as ``apply_one`` does) or, when a
value is outside what it can settle by itself, changes nothing at all, not even a
counter, and returns :data:`CHECK`. The Python layer then runs its checked path, which
raises the ``ValueError`` naming the field and value, or applies the order with exactly
the same result (a value the checked path accepts and these refuse, such as a price
whose rounding is borderline, only costs time). ``workbench.book`` checks the Python
types before calling (a float quantity would otherwise be truncated by Numba's unboxing).

The conversion agrees with ``OrderBook.to_units`` for floats and ints: ``units = price *
scale`` rounded half-to-even, accepted when it lies in ``1..MAX_PRICE``, on the book's
tick, and within ``1e-6 * units`` of the rounded value. A test compares the two on random
and edge values.

Returns ``(code, filled, leaves)`` as ``apply_one`` does (``code = status | reason << 8 |
fills << 16``), or ``(CHECK, 0, 0)``. The entries that can trade write their fills from
slot ``nf`` of the context's fills buffer on, so the caller can hand each call's fills
out as a view of that buffer instead of copying them: ``workbench.book`` fills one
buffer call after call and starts a new one when it is full (``R_OUTPUT_FULL``, nothing
applied). ``cancel_one`` writes no fills.
"""
from __future__ import annotations

import numpy as np
from numba import carray

from .book import apply_event
from .book_state import EC_EVENTS
from .jit import kernel
from .pointers import address_as_pointer
from .records import EV_ADD, EV_CANCEL, EV_MODIFY, LIMIT, MAX_PRICE, MAX_QTY
from .state_views import N_ENGINE_CONTEXT, engine_views

__all__ = ["CHECK", "price_units", "add_priced", "cancel_one", "modify_priced"]

CHECK = -1  # nothing applied, nothing counted: run the checked Python path


@kernel(inline="always", nrt=False)
def price_units(price, scale, tick):
    """``price`` (a float) times ``scale`` as integer price units when that is a valid
    price on ``tick`` (as ``OrderBook.to_units`` decides), else -1."""
    units = price * scale
    if not (units >= 0.5 and units < MAX_PRICE + 0.5):   # NaN fails both
        return np.int64(-1)
    rounded = np.int64(round(units))
    if (rounded <= 0 or rounded > MAX_PRICE or rounded % tick != 0
            or abs(units - rounded) > 1e-6 * rounded):
        return np.int64(-1)
    return rounded


@kernel(nogil=False)
def add_priced(ctx_address, nf, ts, order_id, price, qty, book, side, order_type, tif, scale):
    """A limit order (``order_type`` must be LIMIT) at ``price`` (a float, in currency);
    its fills go to the context's fills buffer from ``nf`` on."""
    ctx = carray(address_as_pointer(ctx_address), N_ENGINE_CONTEXT, np.int64)
    engine = engine_views(ctx)
    st = engine.st
    if (book < 0 or book >= len(st.books) or order_id <= 0 or qty <= 0 or qty > MAX_QTY
            or ts < 0 or order_type != LIMIT or nf < 0 or nf > len(engine.fills)):
        return np.int64(CHECK), np.int64(0), np.int64(0)
    units = price_units(price, scale, st.books[book].tick)
    if units < 0:
        return np.int64(CHECK), np.int64(0), np.int64(0)
    if ts == 0:
        ts = st.counters[EC_EVENTS] + 1
    status, reason, _, filled, leaves, end = apply_event(
        st, engine.fills, nf, ts, order_id, units, qty, book, EV_ADD, side, order_type, tif)
    return np.int64(status | (reason << 8) | ((end - nf) << 16)), filled, leaves


@kernel(nogil=False)
def cancel_one(ctx_address, order_id, qty, book):
    """Cancel ``qty`` of a resting order (0: all of it)."""
    ctx = carray(address_as_pointer(ctx_address), N_ENGINE_CONTEXT, np.int64)
    engine = engine_views(ctx)
    st = engine.st
    if book < 0 or book >= len(st.books) or order_id <= 0 or qty < 0 or qty > MAX_QTY:
        return np.int64(CHECK), np.int64(0), np.int64(0)
    status, reason, _, filled, leaves, nf = apply_event(
        st, engine.fills, 0, st.counters[EC_EVENTS] + 1, order_id, 0, qty, book, EV_CANCEL,
        0, 0, 0)
    return np.int64(status | (reason << 8) | (nf << 16)), filled, leaves


@kernel(nogil=False)
def modify_priced(ctx_address, nf, order_id, price, qty, book, scale):
    """A new ``price`` (a float, in currency) and, unless ``qty`` is 0, a new quantity;
    fills (a move that crosses trades) go to the context's fills buffer from ``nf`` on."""
    ctx = carray(address_as_pointer(ctx_address), N_ENGINE_CONTEXT, np.int64)
    engine = engine_views(ctx)
    st = engine.st
    if (book < 0 or book >= len(st.books) or order_id <= 0 or qty < 0 or qty > MAX_QTY
            or nf < 0 or nf > len(engine.fills)):
        return np.int64(CHECK), np.int64(0), np.int64(0)
    units = price_units(price, scale, st.books[book].tick)
    if units < 0:
        return np.int64(CHECK), np.int64(0), np.int64(0)
    status, reason, _, filled, leaves, end = apply_event(
        st, engine.fills, nf, st.counters[EC_EVENTS] + 1, order_id, units, qty, book,
        EV_MODIFY, 0, 0, 0)
    return np.int64(status | (reason << 8) | ((end - nf) << 16)), filled, leaves
