"""Pythonic order books over the Numba matching kernels: ``Engine`` and ``OrderBook``.

``Engine(symbols=[...])`` holds many books in one set of preallocated arrays
(``kernels.book_state.BookState``); ``OrderBook(symbol)`` is the one-symbol version with the
same methods minus the symbol argument. This layer validates every argument and
raises ``ValueError`` naming the field; the kernels then only see valid data and answer
with a status and a reject reason, never an exception.

Prices cross this boundary as floats (``185.25``) and become integer price units
(``price * price_scale``) inside; quantities are integers.

The validation boundary: every public method checks its arguments before a kernel sees
them and raises ``ValueError`` naming the field and the value. Integers are Python or
numpy integers (converted exactly, never wrapped), never bools or floats; sides, order
types and times in force are enum members, their names or their integer codes; prices
are finite real numbers on the tick; quantities are 1..``kernels.records.MAX_QTY``,
order ids 1..``MAX_ORDER_ID``, prices at most ``MAX_PRICE`` units (why those limits:
``kernels.records``). Batched input (``submit_many``, ``apply``) is checked row by row
in the kernel, which rejects a bad row with a reason code; the buffers ``apply`` writes
must be writeable, of the right dtype, large enough and apart from the engine's state.

Two paths into the kernels:

* one order at a time (``submit``, ``cancel``, ``modify``, ``execute``): a single
  compiled call per order through a precomputed context, for interactive use and
  order-by-order strategies;
* ``submit_many(events)``: an array of ``kernels.records.EVENT`` records applied by one
  kernel call with no copying, the fast path for replays and simulations.

Modes (``workbench.modes``): ``mode=`` (default: ``WORKBENCH_MODE``, else ProductionSafe).
A ``LabUnsafe`` engine's ``submit`` skips the Python type checks (arguments taken as
given; the values are still checked, in the compiled entry) and a journal defaults to
durability ``"none"``.

Durability (``workbench.journal``): ``journal="DIR"`` journals every command that reaches
the kernels through two hooks, ``_apply_one`` (wrapped) and ``_apply_batch`` (replaced);
``recover``, ``snapshot``, ``close``, ``to_bytes``/``from_bytes`` and pickling delegate
there, and ``_settings()`` is what rebuilds an engine.
"""
from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Iterable, Mapping, NamedTuple, Sequence

import numba
import numpy as np
import polars as pl

from kernels import book as kbook
from kernels import book_calls as kcalls
from kernels import book_state
from kernels.state_views import engine_context
from kernels import records as R

from . import fastcall
from .data.prices import PRICE_SCALE
from .enums import EventKind, OrderStatus, OrderType, RejectReason, Side, TimeInForce

__all__ = ["Engine", "OrderBook", "OrderResult", "BatchResult", "make_events"]

_STATUS = tuple(OrderStatus(i) for i in range(len(OrderStatus)))
_REASON = tuple(RejectReason(i) for i in range(len(RejectReason)))
_NO_FILLS = np.zeros(0, dtype=R.FILL)
_NO_FILLS.flags.writeable = False


def _lookup(enum_cls) -> dict:
    table = {}
    for member in enum_cls:
        table[member] = int(member)
        table[member.name] = int(member)
        table[member.name.lower()] = int(member)
    return table


_SIDES = _lookup(Side)
_TYPES = _lookup(OrderType)
_TIFS = _lookup(TimeInForce)
# The words of _SIDES ("buy", "SELL") as members, for the per-order fast path: the same
# names the checked path takes; every other form goes to it.
_SIDE_WORDS = {word: Side(code) for word, code in _SIDES.items() if type(word) is str}
_MAX_QTY = R.MAX_QTY
_MAX_PRICE = R.MAX_PRICE
_MAX_ID = R.MAX_ORDER_ID
# Automatic order ids run 1, 2, ... below this bound and skip past explicit ids below it;
# explicit ids from it up to MAX_ORDER_ID never meet an automatic one.
AUTO_ID_END = 2**62
_LIMIT = R.LIMIT
_EV_ADD = R.EV_ADD
_EV_CANCEL = R.EV_CANCEL
_EV_MODIFY = R.EV_MODIFY
_OUTPUT_FULL = R.R_OUTPUT_FULL
_HAS_FILLS = 1 << 16  # a kernel result code at or above this carries fills
_CHECK = kcalls.CHECK  # a priced entry left the call to the checked path (nothing applied)
_INFINITIES = (float("inf"), float("-inf"))
_new_result = tuple.__new__


class OrderResult(NamedTuple):
    """What the engine did with one request."""

    order_id: int
    status: OrderStatus
    filled: int          # total filled quantity of the order so far
    leaves: int          # quantity still resting (0 when done)
    reason: RejectReason
    fills: np.ndarray    # FILL records produced by this request

    @property
    def accepted(self) -> bool:
        return self.status != OrderStatus.REJECTED

    def __repr__(self) -> str:
        reason = "" if self.reason == RejectReason.NONE else f", reason={self.reason.name}"
        return (f"OrderResult(order_id={self.order_id}, status={self.status.name}, "
                f"filled={self.filled}, leaves={self.leaves}{reason}, fills={len(self.fills)})")


@dataclass(frozen=True)
class BatchResult:
    """What ``submit_many`` did: one RESULT per event and every fill, in order."""

    results: np.ndarray
    fills: np.ndarray

    @property
    def rejected(self) -> int:
        return int(np.count_nonzero(self.results["status"] == R.ST_REJECTED))

    def reject_counts(self) -> dict[str, int]:
        reasons = self.results["reason"][self.results["status"] == R.ST_REJECTED]
        counts = np.bincount(reasons, minlength=R.N_REJECT_REASONS)
        return {R.REJECT_REASON_NAMES[i]: int(c) for i, c in enumerate(counts) if c}


# ------------------------------------------------------------------ the validation boundary
def _integer(value, field: str) -> int:
    """``value`` as an exact Python int: a Python or numpy integer, never a bool."""
    if isinstance(value, (bool, np.bool_, Enum)):
        raise ValueError(f"{field}={value!r} must be an integer, not a {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{field}={value!r} must be an integer") from None


def _entry_point(dispatcher, warm: tuple):
    """``dispatcher`` compiled for the types of ``warm`` (called once with it, the first
    time), as its compiled entry point: a call then skips the dispatcher's type
    resolution (~70 ns). One lookup per process (``_ENTRY_POINTS``), not per engine."""
    entry = _ENTRY_POINTS.get(dispatcher)
    if entry is None:
        dispatcher(*warm)
        try:
            entry = dispatcher.overloads[tuple(numba.typeof(a) for a in warm)].entry_point
        except (KeyError, AttributeError):
            entry = dispatcher
        _ENTRY_POINTS[dispatcher] = entry
        which = _NATIVE_KERNELS.get(dispatcher)
        if which is not None:   # the native entries call it from now on
            fastcall.record_kernel(dispatcher, which, warm)
    return entry


_ENTRY_POINTS: dict = {}   # dispatcher -> its compiled entry point (one signature each)
_NATIVE_KERNELS = {kcalls.add_priced: fastcall.K_ADD, kcalls.cancel_one: fastcall.K_CANCEL,
                   kcalls.modify_priced: fastcall.K_MODIFY}


def _refer_to_checked_path(*args):
    """A priced entry's stand-in that applies nothing (``_route_through_apply_one``)."""
    return _CHECK, 0, 0


def _positive_int(value, field: str, limit: int | None = None) -> int:
    number = _integer(value, field)
    if number <= 0:
        raise ValueError(f"{field}={value!r} must be positive")
    if limit is not None and number > limit:
        raise ValueError(f"{field}={value!r} exceeds the engine's limit {limit}")
    return number


def _qty(value, field: str = "qty") -> int:
    return _positive_int(value, field, _MAX_QTY)


def _order_id(value) -> int:
    return _positive_int(value, "order_id", _MAX_ID)


def _ts(value) -> int:
    """An event time in ns: a non-negative int64 (0 or None: the engine's logical clock)."""
    if value is None:
        return 0
    number = _integer(value, "ts")
    if not 0 <= number <= _MAX_ID:
        raise ValueError(f"ts={value!r} must be in 0..{_MAX_ID} (ns)")
    return number


def _code(value, table: dict, field: str, enum_cls) -> int:
    """The integer code of an enum field: a member, its name (upper or lower case) or its
    integer value (Python or numpy). Bools, floats and other enums' members are not codes."""
    if type(value) is enum_cls:
        return table[value]
    if isinstance(value, str):
        code = table.get(str(value))
    elif isinstance(value, numbers.Integral) and not isinstance(value, (bool, Enum)):
        code = table.get(int(value))
    else:
        code = None
    if code is None:
        names = [m.name for m in enum_cls]
        raise ValueError(f"{field}={value!r} must be one of {names} (enum member, int or name)")
    return code


def _check_records(array, dtype, field: str, writeable: bool = False, min_len: int = 0) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype:
        got = getattr(array, "dtype", type(array).__name__)
        raise ValueError(f"{field} must be a numpy array of kernels.records dtype, got {got}")
    if array.ndim != 1 or not array.flags.c_contiguous:
        raise ValueError(f"{field} must be a 1-d C-contiguous array, got shape {array.shape}")
    if writeable and not array.flags.writeable:
        raise ValueError(f"{field} must be a writeable array (got a read-only one)")
    if len(array) < min_len:
        raise ValueError(f"{field} has {len(array)} slots; it needs at least {min_len}")


def _collar_bps(price_collar) -> int:
    """``price_collar`` (a fraction of the reference price, e.g. 0.1 for +-10%) in basis
    points; None or 0 turns the collar off."""
    if price_collar is None:
        return 0
    if isinstance(price_collar, (bool, np.bool_)) or not isinstance(price_collar, numbers.Real):
        raise ValueError(f"price_collar={price_collar!r} must be a number (a fraction such as "
                         f"0.1 for +-10%) or None")
    value = float(price_collar)
    if not math.isfinite(value) or value < 0 or value > 100:
        raise ValueError(f"price_collar={price_collar!r} must be a fraction in [0, 100] (0.1 "
                         f"means +-10% around the last trade) or None")
    bps = round(value * 10_000)
    if value > 0 and bps < 1:
        raise ValueError(f"price_collar={price_collar!r} is below one basis point")
    return bps


def _apply_batch(state, events, fills, results, start, logged):
    """``kernels.book.apply_batch`` (the engine's batch hook; a journal replaces it with a
    journaled one). ``logged``: the caller keeps these fills in the fill log."""
    return kbook.apply_batch(state, events, fills, results, start)


# An engine of at least this many books uses the batch loop that prefetches three stages
# deep (``kernels.book.apply_batch_deep``): a whole exchange's headers, levels and orders
# are mostly out of the caches. Fewer books keep the one-stage loop, cheaper for them.
DEEP_PREFETCH_BOOKS = 64


def _apply_batch_deep(state, events, fills, results, start, logged):
    """``kernels.book.apply_batch_deep``: the batch hook of an engine of many books."""
    return kbook.apply_batch_deep(state, events, fills, results, start)


class _Books:
    """Shared machinery of ``Engine`` and ``OrderBook``: state, kernels, conversions."""

    def __init__(self, symbols: Sequence[str], tick_size, price_scale: int, capacity: int,
                 price_levels: int | None, anonymous_fallback: bool, record_fills: bool,
                 price_collar: float | None = None, journal=None, durability: str | None = None,
                 snapshot_every: int | None = None, journal_options: Mapping | None = None,
                 mode=None):
        from . import modes

        self.mode = modes.mode(mode)   # ProductionSafe / LabUnsafe (workbench.modes)
        if not isinstance(symbols, (list, tuple)):
            raise ValueError(f"symbols={symbols!r} must be a list or tuple of strings")
        symbols = list(symbols)
        if not symbols:
            raise ValueError("symbols=[] must name at least one symbol")
        if len(symbols) > R.MAX_BOOKS:
            raise ValueError(f"symbols: {len(symbols)} symbols exceed the engine's limit "
                             f"{R.MAX_BOOKS}")
        for s in symbols:
            if not isinstance(s, str) or not s:
                raise ValueError(f"symbol={s!r} must be a non-empty string")
        symbols = [str(s) for s in symbols]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols={symbols!r} contains duplicates")
        self._price_scale = _positive_int(price_scale, "price_scale", _MAX_PRICE)
        # what the native per-order entries read and write (workbench.fastcall); an
        # OrderBook's _next_id, _ctx, _chunk_ctx and _chunk_pos are views of it
        self._ctl = fastcall.new_ctl()
        self._ctl[fastcall.CTL_SCALE] = self._price_scale
        capacity = _positive_int(capacity, "capacity")
        if capacity > R.MAX_CAPACITY:
            raise ValueError(f"capacity={capacity} exceeds the pool's int32 slots "
                             f"(at most {R.MAX_CAPACITY})")
        if price_levels is None:
            price_levels = book_state.default_price_levels(len(symbols))
        price_levels = _positive_int(price_levels, "price_levels")
        if (price_levels & (price_levels - 1) or not
                book_state.MIN_PRICE_LEVELS <= price_levels <= book_state.MAX_PRICE_LEVELS):
            raise ValueError(f"price_levels={price_levels} must be a power of two in "
                             f"[{book_state.MIN_PRICE_LEVELS}, {book_state.MAX_PRICE_LEVELS}]")
        ticks = tick_size if isinstance(tick_size, Mapping) else {s: tick_size for s in symbols}
        unknown = [t for t in ticks if not isinstance(t, str) or t not in symbols]
        if unknown:
            raise ValueError(f"tick_size names unknown symbol(s) {unknown!r}")
        tick_units = [self._tick_units(ticks.get(s, 0.01), s) for s in symbols]

        self._symbols = symbols
        self._index = {s: i for i, s in enumerate(symbols)}
        self._tick_units_list = tick_units
        self._capacity = capacity
        self._price_levels = price_levels
        self.state = book_state.allocate_state(len(symbols), capacity, price_levels, tick_units)
        self.state.counters[book_state.EC_ANON_FALLBACK] = 1 if anonymous_fallback else 0
        self.state.books["collar_bps"] = _collar_bps(price_collar)
        self._record_fills = bool(record_fills)
        self._ctl[fastcall.CTL_RECORD] = self._record_fills
        self._fill_log: list[np.ndarray] = []
        self._next_id = 1  # the next automatic order id (below AUTO_ID_END)
        self._set_scratch(4096)
        self._journal = None
        many = len(symbols) >= DEEP_PREFETCH_BOOKS
        self._apply_batch = _apply_batch_deep if many else _apply_batch
        if journal is not None:  # workbench.journal: every command below is journaled
            from .journal import attach

            attach(self, journal, durability or self.mode.durability, snapshot_every,
                   journal_options)
        elif durability is not None or snapshot_every is not None or journal_options:
            raise ValueError("durability, snapshot_every and journal_options need journal=DIR")
        if not self.mode.validation:
            self._submit = self._submit_trusted   # LabUnsafe: no Python checks per order

    # views of the ctl array (workbench.fastcall), which the native entries share
    def _ctl_field(index: int):
        return property(lambda self: int(self._ctl[index]),
                        lambda self, value: self._ctl.__setitem__(index, value))

    _next_id = _ctl_field(fastcall.CTL_NEXT_ID)
    _ctx = _ctl_field(fastcall.CTL_CTX)
    _chunk_ctx = _ctl_field(fastcall.CTL_CHUNK_CTX)
    _chunk_pos = _ctl_field(fastcall.CTL_CHUNK_POS)
    del _ctl_field

    @property
    def _fill_log(self) -> list:
        return self._fill_list

    @_fill_log.setter
    def _fill_log(self, value) -> None:   # one list for the book's life: the native entries hold it
        if "_fill_list" in self.__dict__:
            self._fill_list[:] = value
        else:
            self._fill_list = list(value)

    def _chunk_outcome(self, oid, code, filled, leaves, book):
        """The result of a priced entry's call (``code >= 0``; its fills a view of the
        chunk), or (a full fills chunk, nothing applied) None after moving to a new chunk:
        the caller then calls again. The Python entries and the native ones
        (``workbench.fastcall``, for what they leave to Python) share it."""
        if code < _HAS_FILLS and code >> 8 != _OUTPUT_FULL:
            return _new_result(OrderResult, (oid, _STATUS[code & 0xFF], filled, leaves,
                                             _REASON[code >> 8], _NO_FILLS))
        if code >> 16:
            return self._fills_from_chunk(oid, code, filled, leaves)
        self._next_chunk(book)
        return None

    # ----------------------------------------------------------------- set-up helpers
    def _tick_units(self, tick, symbol) -> int:
        if isinstance(tick, (bool, np.bool_, Enum)) or not isinstance(tick, (numbers.Real, Decimal)):
            raise ValueError(f"tick_size={tick!r} for {symbol} must be a number")
        tick = float(tick)
        exact = tick * self._price_scale
        if not (math.isfinite(exact) and tick > 0):
            raise ValueError(f"tick_size={tick!r} for {symbol} must be a positive finite number")
        units = round(exact)
        if units < 1 or abs(units - exact) > 1e-6 * units:
            raise ValueError(f"tick_size={tick!r} for {symbol} must be a positive multiple of "
                             f"1/price_scale (1/{self._price_scale})")
        if units > _MAX_PRICE:
            raise ValueError(f"tick_size={tick!r} for {symbol} exceeds the engine's maximum "
                             f"price ({_MAX_PRICE} units)")
        return units

    def _set_scratch(self, size: int) -> None:
        """(Re)build the fills scratch buffer and the single-call context over it."""
        self._scratch = np.zeros(size, dtype=R.FILL)
        self._scratch_bytes = self._scratch.view(np.uint8)
        # kept alive: the kernel reads it
        self._ctx_array = engine_context(book_state.EngineState(self.state, self._scratch))
        self._ctx = int(self._ctx_array.ctypes.data)
        # book -1: a reject (apply_one) or CHECK (the priced entries) that changes nothing
        self._apply_one = self._entry("_apply_one", kbook.apply_one, (0, 0, 0, 0, -1, 0, 0, 0, 0))
        if getattr(self, "_journal", None) is not None:
            self._apply_one = self._journal.wrap_apply_one(self._apply_one)
            self._route_through_apply_one()
        else:
            # The per-order path's own entries (kernels.book_calls).
            self._add_priced = self._entry("_add_priced", kcalls.add_priced,
                                           (0, 0, 0, 1.0, 0, -1, 0, 0, 0, 1))
            self._cancel_one = self._entry("_cancel_one", kcalls.cancel_one, (0, 0, -1))
            self._modify_priced = self._entry("_modify_priced", kcalls.modify_priced,
                                              (0, 0, 1.0, 0, -1, 1))
        self._new_chunk(size)

    def _entry(self, name: str, dispatcher, warm: tuple):
        """The compiled entry point of ``dispatcher`` (called as ``(context, *warm)`` to
        compile it for those types): at once when this process has it already, else a
        stand-in that loads or compiles it on its first call and then puts it in its place
        (attribute ``name``). An engine used only for ``submit`` compiles neither the
        cancel nor the modify entry; a first ``OrderBook()`` in a warm process loads
        nothing it does not use."""
        entry = _ENTRY_POINTS.get(dispatcher)
        if entry is not None:
            return entry

        def first_call(*args):
            saved = self.state.counters.copy()   # the warm call may count a reject
            entry = _entry_point(dispatcher, (self._ctx, *warm))
            self.state.counters[:] = saved
            if self.__dict__.get(name) is first_call:   # not wrapped (journal) or replaced
                setattr(self, name, entry)
            return entry(*args)

        return first_call

    def _new_chunk(self, size: int) -> None:
        """A fresh fills chunk of ``size`` slots for the priced entries. Each call's fills
        are written after the previous call's and handed out as a view of the chunk
        (``_fills_from_chunk``), never copied: results keep their chunk alive, the engine
        moves on to a new one when this one is full."""
        self._chunk = np.zeros(size, dtype=R.FILL)
        self._chunk_ctx_array = engine_context(book_state.EngineState(self.state, self._chunk))
        self._chunk_ctx = int(self._chunk_ctx_array.ctypes.data)
        self._chunk_pos = 0
        self._ctl[fastcall.CTL_CHUNK_OBJ] = id(self._chunk)   # kept alive by self._chunk

    def _next_chunk(self, book: int) -> None:
        """After ``R_OUTPUT_FULL`` from a priced entry (nothing applied): a new chunk of the
        same size when this one holds fills already, else a larger one, as large as the
        worst case of one event in ``book``."""
        size = len(self._chunk)
        if self._chunk_pos == 0:
            b = self.state.books[book]
            size = max(2 * size, int(b["orders"].sum()) + 1)
        self._new_chunk(size)

    def _fills_from_chunk(self, order_id, code, filled, leaves) -> OrderResult:
        n = code >> 16
        p = self._chunk_pos
        fills = self._chunk[p:p + n]
        self._chunk_pos = p + n
        if self._record_fills:
            self._fill_log.append(fills)
        return _new_result(OrderResult, (order_id, _STATUS[code & 0xFF], filled, leaves,
                                         _REASON[(code >> 8) & 0xFF], fills))

    def _route_through_apply_one(self) -> None:
        """Send every single order through the ``_apply_one`` hook (a journal wraps it, a
        closed mmap book replaces it): the priced entries answer CHECK, so ``submit``,
        ``cancel`` and ``modify`` take their checked path, which calls the hook."""
        self._add_priced = self._cancel_one = self._modify_priced = _refer_to_checked_path
        self._ctl[fastcall.CTL_ON] = 0   # and the native entries hand every call to Python

    def _grow_scratch(self, book: int) -> None:
        """A scratch buffer large enough for the worst case of one event in ``book``."""
        b = self.state.books[book]
        self._set_scratch(max(2 * len(self._scratch), int(b["orders"].sum()) + 1))

    # ------------------------------------------------------------------- conversions
    @property
    def price_scale(self) -> int:
        return self._price_scale

    def _check_book(self, book) -> None:
        if type(book) is not int or not 0 <= book < len(self._symbols):
            raise ValueError(f"book={book!r} is not a book index of this engine "
                             f"(0..{len(self._symbols) - 1})")

    def to_units(self, price: float, book: int = 0, field: str = "price") -> int:
        """A price (a finite real number: int, float, numpy scalar, Decimal, Fraction) as
        integer price units, checked against the book's tick and ``MAX_PRICE``."""
        self._check_book(book)
        if (isinstance(price, (bool, np.bool_, Enum))
                or not isinstance(price, (numbers.Real, Decimal))):
            raise ValueError(f"{field}={price!r} must be a finite number")
        try:
            if isinstance(price, numbers.Integral):
                units = int(price) * self._price_scale  # exact: numpy ints never wrap
            elif isinstance(price, (float, np.floating)):
                units = float(price) * self._price_scale  # numpy floats would warn on overflow
            else:
                units = Fraction(price) * self._price_scale  # Decimal, Fraction: exact
            rounded = round(units)
        except (TypeError, ValueError, ArithmeticError):
            raise ValueError(f"{field}={price!r} must be a finite number") from None
        if rounded <= 0:
            raise ValueError(f"{field}={price!r} must be positive")
        if rounded > _MAX_PRICE:
            raise ValueError(f"{field}={price!r} exceeds the engine's maximum price "
                             f"{_MAX_PRICE / self._price_scale:g} ({_MAX_PRICE} units)")
        tick = self._tick_units_list[book]
        if abs(units - rounded) > 1e-6 * max(1.0, abs(units)) or rounded % tick:
            raise ValueError(f"{field}={price!r} is not a multiple of the tick size "
                             f"{tick / self._price_scale:g} of {self._symbols[book]}")
        return rounded

    def to_price(self, units: int) -> float:
        return units / self._price_scale

    # ------------------------------------------------------------ single-order path
    def _call(self, kind, book, order_id, side, price_units, qty, order_type, tif, ts):
        code, filled, leaves = self._apply_one(
            self._ctx, ts, order_id, price_units, qty, book, kind, side, order_type, tif)
        if code < _HAS_FILLS and code >> 8 != _OUTPUT_FULL:
            return _new_result(OrderResult, (order_id, _STATUS[code & 0xFF], filled, leaves,
                                             _REASON[code >> 8], _NO_FILLS))
        return self._finish(code, filled, leaves, kind, book, order_id, side, price_units, qty,
                            order_type, tif, ts)

    def _finish(self, code, filled, leaves, kind, book, order_id, *event) -> OrderResult:
        """The uncommon outcomes of one kernel call: fills to copy out, or a scratch
        buffer too small for this event's worst case (nothing was applied: grow, retry)."""
        if code >> 16:
            return self._result_with_fills(order_id, code, filled, leaves)
        self._grow_scratch(book)
        return self._call(kind, book, order_id, *event)

    def _result_with_fills(self, order_id, code, filled, leaves) -> OrderResult:
        # a copy of the bytes: numpy's copy of a padded structured dtype costs ~5 us, this ~1
        n = code >> 16
        fills = np.ndarray(n, R.FILL, bytearray(self._scratch_bytes[:n * R.FILL.itemsize]))
        if self._record_fills:
            self._fill_log.append(fills)
        return _new_result(OrderResult, (order_id, _STATUS[code & 0xFF], filled, leaves,
                                         _REASON[(code >> 8) & 0xFF], fills))

    # The per-order path (issue 12): one compiled call does the common case. ``_submit``,
    # ``_cancel`` and ``_modify`` check only the Python *types* here (exact int, float and
    # enum types: Numba's unboxing would truncate a float quantity or take a bool); the
    # values, the price's conversion to units and its tick are checked in the kernel
    # (``kernels.book_calls``). Anything else, and anything the kernel leaves to Python
    # (``_CHECK``, nothing applied), goes to the ``*_checked`` path: the same result, or the
    # ``ValueError`` naming the field. The book index comes last, defaulting to 0, so that
    # ``OrderBook``'s ``submit``, ``cancel`` and ``modify`` *are* these functions: a call
    # pays no Python frame of its own besides this one (~100 ns of a ~1.5 us call).
    # Since then an ``OrderBook`` of the default mode gets native builtins in their place
    # (``workbench.fastcall``): they do the typed case with no Python frame at all and
    # hand every other call to these methods, unchanged.
    def _submit(self, side, price: float | None, qty: int, order_type=OrderType.LIMIT,
                tif=TimeInForce.GTC, order_id: int | None = None, ts: int | None = None,
                book: int = 0) -> OrderResult:
        """Enter an order (limit or market; GTC, IOC or FOK) and match it.

        ``side``: ``Side`` (or ``"buy"``/``"sell"``, its int code); ``price`` in currency
        (``None`` for a market order); ``order_id``: automatic when ``None``; ``ts``: the
        event time in ns (default: the engine's event count)."""
        tp = type(price)
        if ((tp is float or tp is int) and type(side) is Side and type(qty) is int
                and type(order_type) is OrderType and type(tif) is TimeInForce
                and type(book) is int and (order_id is None or type(order_id) is int)
                and (ts is None or type(ts) is int)):
            oid = self._next_id if order_id is None else order_id
            code = _CHECK                        # automatic ids exhausted: the checked path says so
            if order_id is not None or oid < AUTO_ID_END:
                try:
                    code, filled, leaves = self._add_priced(
                        self._chunk_ctx, self._chunk_pos, ts or 0, oid, price, qty, book, side,
                        order_type, tif, self._price_scale)
                except OverflowError:            # an int beyond int64
                    code = _CHECK
            if code >= 0:
                if self._next_id <= oid < AUTO_ID_END:
                    self._next_id = oid + 1      # automatic ids never collide with given ones
                result = self._chunk_outcome(oid, code, filled, leaves, book)
                if result is not None:
                    return result
                return self._submit(side, price, qty, order_type, tif, oid, ts, book)  # new chunk
        elif type(side) is str and side in _SIDE_WORDS:   # "buy"/"sell": the fast path too
            return self._submit(_SIDE_WORDS[side], price, qty, order_type, tif, order_id, ts,
                                book)
        return self._submit_checked(book, side, price, qty, order_type, tif, order_id, ts)

    def _submit_trusted(self, side, price, qty, order_type=OrderType.LIMIT, tif=TimeInForce.GTC,
                        order_id=None, ts=None, book=0) -> OrderResult:
        """``_submit`` of ``LabUnsafe`` engines: the arguments are taken as given (sides,
        types and times in force as enum members or their int codes, prices as numbers,
        quantities as ints), without the type checks; the entry still checks the values
        and leaves a wrong one to the checked path, which raises."""
        oid = self._next_id if order_id is None else order_id
        if type(side) is str:
            side = _SIDE_WORDS.get(side, side)
        try:
            code, filled, leaves = self._add_priced(
                self._chunk_ctx, self._chunk_pos, ts or 0, oid, price, qty, book, side,
                order_type, tif, self._price_scale)
        except (TypeError, ValueError, OverflowError):
            # An argument the compiled entry cannot take as it is ("buy", None for a
            # market order's price): nothing was applied. The checked path accepts every
            # form it documents and names the field of a wrong value.
            code = _CHECK
        if code < 0:
            return self._submit_checked(book, side, price, qty, order_type, tif, order_id, ts)
        if self._next_id <= oid < AUTO_ID_END:
            self._next_id = oid + 1
        result = self._chunk_outcome(oid, code, filled, leaves, book)
        if result is not None:
            return result
        return self._submit_trusted(side, price, qty, order_type, tif, oid, ts, book)

    def _cancel(self, order_id: int, qty: int | None = None, book: int = 0) -> OrderResult:
        """Cancel a resting order, or only ``qty`` of it (keeping its queue position)."""
        if (type(order_id) is int and (qty is None or type(qty) is int and qty > 0)
                and type(book) is int):
            try:
                code, filled, leaves = self._cancel_one(self._ctx, order_id, qty or 0, book)
            except OverflowError:
                code = _CHECK
            if code >= 0:        # a cancel trades nothing: no fills, never R_OUTPUT_FULL
                return _new_result(OrderResult, (order_id, _STATUS[code & 0xFF], filled, leaves,
                                                 _REASON[code >> 8], _NO_FILLS))
        return self._cancel_checked(book, order_id, qty)

    def _modify(self, order_id: int, price: float | None = None, qty: int | None = None,
                book: int = 0) -> OrderResult:
        """New price and/or quantity. Less quantity at the same price keeps time
        priority; a new price or more quantity re-queues the order (and may match)."""
        tp = type(price)
        if ((tp is float or tp is int) and type(order_id) is int
                and (qty is None or type(qty) is int and qty > 0) and type(book) is int):
            try:
                code, filled, leaves = self._modify_priced(
                    self._chunk_ctx, self._chunk_pos, order_id, price, qty or 0, book,
                    self._price_scale)
            except OverflowError:
                code = _CHECK
            if code >= 0:
                result = self._chunk_outcome(order_id, code, filled, leaves, book)
                if result is not None:
                    return result
                return self._modify(order_id, price, qty, book)
        return self._modify_checked(book, order_id, price, qty)

    def _submit_checked(self, book, side, price, qty, order_type, tif, order_id, ts) -> OrderResult:
        # Every check in Python, cheapest first (what ``_submit`` leaves to this path):
        # a value of an unexpected type goes to the precise (slower) check.
        self._check_book(book)
        if type(side) is Side and type(order_type) is OrderType and type(tif) is TimeInForce:
            side_code, type_code, tif_code = side, order_type, tif  # IntEnums: the kernel's ints
        else:
            side_code = _code(side, _SIDES, "side", Side)
            type_code = _code(order_type, _TYPES, "order_type", OrderType)
            tif_code = _code(tif, _TIFS, "tif", TimeInForce)
        if type(qty) is not int or not 0 < qty <= _MAX_QTY:
            qty = _qty(qty)
        if type_code == _LIMIT:
            tp = type(price)
            if tp is float:
                units = price * self._price_scale
                rounded = round(units) if units == units and units not in _INFINITIES else 0
            elif tp is int:
                units = rounded = price * self._price_scale
            else:
                units = rounded = 0  # any other type: the precise check below
            if (rounded <= 0 or rounded > _MAX_PRICE or rounded % self._tick_units_list[book]
                    or abs(units - rounded) > 1e-6 * rounded):
                rounded = self.to_units(price, book)  # raises the precise error
        elif price is None or (type(price) in (int, float) and price == 0):
            rounded = 0
        else:
            raise ValueError(f"price={price!r} given for a market order (leave it None)")
        if ts is None:
            ts = 0
        elif type(ts) is not int or not 0 <= ts <= _MAX_ID:
            ts = _ts(ts)
        if order_id is None:
            order_id = self._next_id
            if order_id >= AUTO_ID_END:
                raise ValueError(f"order_id: automatic ids are exhausted (they stay below "
                                 f"{AUTO_ID_END}); pass order_id explicitly")
            self._next_id = order_id + 1
        else:
            if type(order_id) is not int or not 0 < order_id <= _MAX_ID:
                order_id = _order_id(order_id)
            if self._next_id <= order_id < AUTO_ID_END:
                self._next_id = order_id + 1  # automatic ids never collide with given ones
        # The kernel call is inlined for the common case (no fills): one Python frame less.
        code, filled, leaves = self._apply_one(self._ctx, ts, order_id, rounded,
                                               qty, book, _EV_ADD, side_code, type_code, tif_code)
        if code < _HAS_FILLS and code >> 8 != _OUTPUT_FULL:
            return _new_result(OrderResult, (order_id, _STATUS[code & 0xFF], filled, leaves,
                                             _REASON[code >> 8], _NO_FILLS))
        return self._finish(code, filled, leaves, _EV_ADD, book, order_id, side_code, rounded, qty,
                            type_code, tif_code, ts)

    def _cancel_checked(self, book, order_id, qty) -> OrderResult:
        self._check_book(book)
        if type(order_id) is not int or not 0 < order_id <= _MAX_ID:
            order_id = _order_id(order_id)
        if qty is None:
            qty = 0
        elif type(qty) is not int or not 0 < qty <= _MAX_QTY:
            qty = _qty(qty)
        return self._call(_EV_CANCEL, book, order_id, 0, 0, qty, 0, 0, 0)

    def _modify_checked(self, book, order_id, price, qty) -> OrderResult:
        self._check_book(book)
        if type(order_id) is not int or not 0 < order_id <= _MAX_ID:
            order_id = _order_id(order_id)
        if price is None:
            if qty is None:
                raise ValueError("modify needs a new price, a new qty, or both")
            units = 0
        else:
            units = self.to_units(price, book)
        if qty is None:
            qty = 0
        elif type(qty) is not int or not 0 < qty <= _MAX_QTY:
            qty = _qty(qty)
        return self._call(_EV_MODIFY, book, order_id, 0, units, qty, 0, 0, 0)

    def _execute(self, book, order_id, qty) -> OrderResult:
        order_id = _order_id(order_id)
        qty = _qty(qty)
        return self._call(R.EV_EXECUTE, book, order_id, 0, 0, qty, 0, 0, 0)

    # ------------------------------------------------------------------ batch path
    def apply(self, events: np.ndarray, fills_out: np.ndarray, results_out: np.ndarray | None = None,
              start: int = 0) -> tuple[int, int]:
        """Streaming form of ``submit_many`` with caller-owned buffers (no allocation).

        Applies ``events[start:]`` writing fills from ``fills_out[0]``; returns
        ``(next_event, fills_written)``. When ``next_event < len(events)`` the fills
        buffer is full: consume it and call again with ``start=next_event``.

        Every row is checked by the kernel (a bad one is rejected with a reason code in
        its RESULT). ``fills_out`` and ``results_out`` must be writeable 1-d arrays of
        the FILL / RESULT dtype that share no memory with ``events``, each other or the
        engine's state; ``results_out`` holds one row per event. ``ValueError`` when
        ``fills_out`` is too small for even the next event's fills (nothing applied).
        """
        _check_records(events, R.EVENT, "events")
        _check_records(fills_out, R.FILL, "fills_out", writeable=True, min_len=1)
        outputs = [("fills_out", fills_out)]
        if results_out is None:
            results_out = _NO_RESULTS
        else:
            _check_records(results_out, R.RESULT, "results_out", writeable=True,
                           min_len=len(events))
            outputs.append(("results_out", results_out))
        self._check_apart(outputs, events)
        start = _integer(start, "start")
        if not 0 <= start <= len(events):
            raise ValueError(f"start={start} outside 0..{len(events)}")
        nxt, nf = self._apply_batch(self.state, events, fills_out, results_out, start, False)
        nxt, nf = int(nxt), int(nf)
        if nxt == start < len(events):
            self.state.counters[book_state.EC_OUTPUT_FULL] -= 1  # refused: as if never called
            if self._journal is not None:
                self._journal.sync_pauses()
            raise ValueError(f"fills_out has {len(fills_out)} slots, too few for the fills of "
                             f"event {start}: nothing was applied; pass a larger buffer")
        return nxt, nf

    def _check_apart(self, outputs, events) -> None:
        """Output buffers must not overlap the input, each other or the engine's state."""
        others = [("events", events)] + [(f"the engine's state ({name})", array)
                                         for name, array in zip(self.state._fields, self.state)]
        others.append(("the engine's scratch buffer", self._scratch))
        others.append(("the engine's fills chunk", self._chunk))
        for i, (name, array) in enumerate(outputs):
            for other_name, other in others + outputs[:i]:
                if len(array) and len(other) and np.may_share_memory(array, other):
                    raise ValueError(f"{name} shares memory with {other_name}")

    def submit_many(self, events: np.ndarray) -> BatchResult:
        """Apply an EVENT array in one kernel call (zero copy); every fill is returned.
        Every row is checked by the kernel: a bad one gets a RESULT with status
        REJECTED and its reason, and changes nothing."""
        _check_records(events, R.EVENT, "events")
        results = np.zeros(len(events), dtype=R.RESULT)
        chunks = []
        buffer = np.empty(max(1024, min(len(events) * 2, 1 << 20)), dtype=R.FILL)
        start = 0
        while True:
            nxt, nf = self._apply_batch(self.state, events, buffer, results, start, True)
            if nf:
                chunks.append(buffer[:nf].copy())
            if nxt >= len(events):
                break
            if nf == 0:  # one event needs more room than the whole buffer
                buffer = np.empty(2 * len(buffer), dtype=R.FILL)
            start = nxt
        fills = np.concatenate(chunks) if chunks else np.zeros(0, dtype=R.FILL)
        if self._record_fills and len(fills):
            self._fill_log.append(fills)
        return BatchResult(results, fills)

    # ---------------------------------------------------------------------- views
    def _best(self, book, side):
        b = self.state.books[book]
        h = int(b["best"][side])
        if h < 0:
            return None
        return int(self.state.levels[h]["price"]) / self._price_scale

    def _levels(self, book, side, n) -> list[tuple[float, int, int]]:
        # a side never has more levels than it has resting orders
        n = min(_positive_int(n, "n"), max(1, int(self.state.books[book]["orders"][side])))
        prices = np.empty(n, np.int64)
        qty = np.empty(n, np.int64)
        count = np.empty(n, np.int64)
        k = kbook.top_levels(self.state, book, side, prices, qty, count)
        scale = self._price_scale
        return [(int(prices[i]) / scale, int(qty[i]), int(count[i])) for i in range(k)]

    def _depth(self, book, n) -> pl.DataFrame:
        rows = []
        for side, name in ((R.BUY, "bid"), (R.SELL, "ask")):
            for level, (price, qty, count) in enumerate(self._levels(book, side, n), start=1):
                rows.append((name, level, price, qty, count))
        return pl.DataFrame(rows, schema={"side": pl.Utf8, "level": pl.Int32, "price": pl.Float64,
                                          "qty": pl.Int64, "orders": pl.Int64}, orient="row")

    def _vwap(self, book, side, n) -> float | None:
        levels = self._levels(book, _code(side, _SIDES, "side", Side), n)
        total = sum(q for _, q, _ in levels)
        if not total:
            return None
        return sum(p * q for p, q, _ in levels) / total

    def _orders(self, book) -> pl.DataFrame:
        b = self.state.books[book]
        out = np.zeros(int(b["orders"].sum()), dtype=R.ORDER)
        k = kbook.resting_orders(self.state, book, out)
        out = out[:k]
        return pl.DataFrame({
            "order_id": out["order_id"], "side": np.where(out["side"] == R.BUY, "buy", "sell"),
            "price": out["price"] / self._price_scale, "qty": out["qty"], "filled": out["filled"],
            "ts": out["ts"],
        })

    def _queue_position(self, book, order_id) -> tuple[int, int] | None:
        qty_ahead, n_ahead = kbook.queue_position(self.state, book, _order_id(order_id))
        return None if qty_ahead < 0 else (int(qty_ahead), int(n_ahead))

    def fills(self) -> pl.DataFrame:
        """Every fill recorded so far (``record_fills=True``), prices as floats."""
        fills = np.concatenate(self._fill_log) if self._fill_log else np.zeros(0, R.FILL)
        frame = pl.DataFrame({name: np.ascontiguousarray(fills[name]) for name in R.FILL.names})
        return frame.with_columns(
            (pl.col("price") / self._price_scale).alias("price"),
            pl.col("symbol").map_elements(lambda i: self._symbols[i], return_dtype=pl.Utf8),
            pl.when(pl.col("taker_side") == R.BUY).then(pl.lit("buy")).otherwise(pl.lit("sell"))
            .alias("taker_side"),
        )

    # --------------------------------------------------------------- durability
    # The journal, snapshots and images live in workbench.journal; these are the hooks.
    @property
    def journal(self):
        """The engine's ``workbench.journal.Journal`` (None without ``journal=DIR``)."""
        return self._journal

    def snapshot(self, wait: bool = True):
        """Write a snapshot of the state into the journal directory (atomically; the copy
        is taken now, the file is written in the background). Returns its
        ``SnapshotInfo``, or a future of it with ``wait=False``."""
        if self._journal is None:
            raise ValueError("snapshot() needs a journal (journal=DIR); to_bytes() and pickle "
                             "give an image without one")
        return self._journal.snapshot(self, wait)

    def close(self) -> None:
        """Sync and close the journal (no-op without one); the engine takes no more
        commands once its journal is closed."""
        if self._journal is not None:
            self._journal.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def recover(cls, journal, durability: str | None = None, snapshot_every: int | None = None,
                journal_options: Mapping | None = None):
        """The engine a journal directory describes: last good snapshot, then the journal
        tail replayed; it keeps journaling there (``.recovery`` says what was done)."""
        from .journal import recover

        return recover(cls, journal, durability, snapshot_every, journal_options)

    def to_bytes(self) -> bytes:
        """An image of the engine (settings, state arrays, next id, fill log), no journal."""
        from .journal import to_bytes

        return to_bytes(self)

    @classmethod
    def from_bytes(cls, data):
        """The engine a ``to_bytes()`` image describes (journal-less)."""
        from .journal import from_bytes

        return from_bytes(data, cls)

    def __reduce__(self):
        return (type(self).from_bytes, (self.to_bytes(),))

    def _settings(self) -> dict:
        """The constructor arguments as JSON values: what ``workbench.journal`` stores to
        rebuild this engine (journal headers, snapshots, ``to_bytes``). A new constructor
        argument that shapes the state belongs here too."""
        scale = self._price_scale
        collar = int(self.state.books["collar_bps"][0])
        return {"symbols": list(self._symbols), "price_scale": scale,
                "tick_size": {s: u / scale for s, u in zip(self._symbols, self._tick_units_list)},
                "capacity": self._capacity, "price_levels": self._price_levels,
                "anonymous_fallback": bool(self.state.counters[book_state.EC_ANON_FALLBACK]),
                "record_fills": self._record_fills,
                "price_collar": collar / 10_000 if collar else None}

    def stats(self) -> dict:
        """Engine counters: events, fills, live orders and rejects by reason."""
        c = self.state.counters
        rejects = {R.REJECT_REASON_NAMES[i]: int(c[book_state.EC_REJECTS + i])
                   for i in range(R.N_REJECT_REASONS) if c[book_state.EC_REJECTS + i]}
        return {"events": int(c[book_state.EC_EVENTS]), "fills": int(c[book_state.EC_FILLS]),
                "live_orders": int(c[book_state.EC_LIVE]), "capacity": self._capacity,
                "rejects": rejects, "output_full_pauses": int(c[book_state.EC_OUTPUT_FULL]),
                "price_window": self._price_levels,
                "overflow_levels": int(c[book_state.EC_OVF_USED]),
                "window_moves": int(c[book_state.EC_RECENTRES])}


_NO_RESULTS = np.zeros(0, dtype=R.RESULT)


class Engine(_Books):
    """Many order books in one set of arrays; every method takes the symbol first.

    >>> eng = Engine(symbols=["AAPL", "MSFT"], tick_size=0.01)
    >>> eng.submit("AAPL", Side.BUY, 185.25, 100).status
    <OrderStatus.NEW: 0>
    """

    def __init__(self, symbols: Sequence[str] = ("SYM",), tick_size: float | Mapping[str, float] = 0.01,
                 price_scale: int = PRICE_SCALE, capacity: int = 100_000,
                 price_levels: int | None = None, anonymous_fallback: bool = False,
                 record_fills: bool = True, price_collar: float | None = None, *,
                 journal=None, durability: str | None = None, snapshot_every: int | None = None,
                 journal_options: Mapping | None = None, mode=None):
        super().__init__(symbols, tick_size, price_scale, capacity, price_levels,
                         anonymous_fallback, record_fills, price_collar, journal, durability,
                         snapshot_every, journal_options, mode)
        if self._journal is None and type(self) is Engine:
            fastcall.install(self, engine=True)   # native submit, cancel, modify (as OrderBook)

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def symbol_index(self, symbol: str) -> int:
        """The book index used in EVENT/FILL records for ``symbol``."""
        try:
            return self._index[symbol]
        except (KeyError, TypeError):
            raise ValueError(f"symbol={symbol!r} is not one of {self._symbols}") from None

    def submit(self, symbol: str, side, price: float | None, qty: int,
               order_type=OrderType.LIMIT, tif=TimeInForce.GTC, order_id: int | None = None,
               ts: int | None = None) -> OrderResult:
        """Enter an order (limit or market; GTC, IOC or FOK) and match it."""
        return self._submit(side, price, qty, order_type, tif, order_id, ts,
                            self.symbol_index(symbol))

    add_order = submit

    def cancel(self, symbol: str, order_id: int, qty: int | None = None) -> OrderResult:
        """Cancel a resting order, or only ``qty`` of it (keeping its queue position)."""
        return self._cancel(order_id, qty, self.symbol_index(symbol))

    def modify(self, symbol: str, order_id: int, price: float | None = None,
               qty: int | None = None) -> OrderResult:
        """New price and/or quantity. Less quantity at the same price keeps time
        priority; a new price or more quantity re-queues the order (and may match)."""
        return self._modify(order_id, price, qty, self.symbol_index(symbol))

    def execute(self, symbol: str, order_id: int, qty: int) -> OrderResult:
        """Execute ``qty`` of a resting order by id, as an exchange's feed reports it."""
        return self._execute(self.symbol_index(symbol), order_id, qty)

    def best_bid(self, symbol: str) -> float | None:
        return self._best(self.symbol_index(symbol), R.BUY)

    def best_ask(self, symbol: str) -> float | None:
        return self._best(self.symbol_index(symbol), R.SELL)

    def mid_price(self, symbol: str) -> float | None:
        bid, ask = self.best_bid(symbol), self.best_ask(symbol)
        return None if bid is None or ask is None else (bid + ask) / 2

    def spread(self, symbol: str) -> float | None:
        bid, ask = self.best_bid(symbol), self.best_ask(symbol)
        return None if bid is None or ask is None else ask - bid

    def get_bids(self, symbol: str, n: int = 5) -> list[tuple[float, int, int]]:
        """Best ``n`` bid levels as (price, quantity, orders), best first."""
        return self._levels(self.symbol_index(symbol), R.BUY, n)

    def get_asks(self, symbol: str, n: int = 5) -> list[tuple[float, int, int]]:
        return self._levels(self.symbol_index(symbol), R.SELL, n)

    def depth(self, symbol: str, n: int = 10) -> pl.DataFrame:
        """Top ``n`` levels per side: side, level, price, qty, orders."""
        return self._depth(self.symbol_index(symbol), n)

    def vwap(self, symbol: str, side, n: int = 5) -> float | None:
        """Volume-weighted average price of the top ``n`` levels of one side."""
        return self._vwap(self.symbol_index(symbol), side, n)

    def orders(self, symbol: str) -> pl.DataFrame:
        """Resting orders in priority order (bids best first, then asks; FIFO)."""
        return self._orders(self.symbol_index(symbol))

    def queue_position(self, symbol: str, order_id: int) -> tuple[int, int] | None:
        """(quantity ahead, orders ahead) of a resting order, or None."""
        return self._queue_position(self.symbol_index(symbol), order_id)


class OrderBook(_Books):
    """One symbol's limit order book with price-time matching.

    >>> book = OrderBook("AAPL", tick_size=0.01)
    >>> book.submit(Side.SELL, 101.0, 50).status
    <OrderStatus.NEW: 0>
    >>> book.submit(Side.BUY, 101.0, 20).filled
    20
    """

    def __init__(self, symbol: str = "SYM", tick_size: float = 0.01, capacity: int = 100_000,
                 price_scale: int = PRICE_SCALE, price_levels: int | None = None,
                 anonymous_fallback: bool = False, record_fills: bool = True,
                 price_collar: float | None = None, *, journal=None, durability: str | None = None,
                 snapshot_every: int | None = None, journal_options: Mapping | None = None,
                 mode=None):
        super().__init__([symbol], tick_size, price_scale, capacity, price_levels,
                         anonymous_fallback, record_fills, price_collar, journal, durability,
                         snapshot_every, journal_options, mode)
        # native submit, cancel and modify when this process can (workbench.fastcall); they
        # hand what they do not take to the Python methods (LabUnsafe: _submit_trusted)
        if not (self._journal is None and type(self) is OrderBook and fastcall.install(self)):
            if not self.mode.validation:
                self.submit = self.add_order = self._submit   # _submit_trusted (LabUnsafe)

    @property
    def symbol(self) -> str:
        return self._symbols[0]

    # The per-order path's own functions (``_Books._submit`` and co., whose book index
    # defaults to 0): no wrapper frame per call. A ``LabUnsafe`` book's ``submit`` is its
    # trusted entry (``__init__``).
    submit = _Books._submit
    add_order = _Books._submit
    cancel = _Books._cancel
    modify = _Books._modify

    def execute(self, order_id: int, qty: int) -> OrderResult:
        return self._execute(0, order_id, qty)

    @property
    def best_bid(self) -> float | None:
        return self._best(0, R.BUY)

    @property
    def best_ask(self) -> float | None:
        return self._best(0, R.SELL)

    @property
    def mid_price(self) -> float | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else (bid + ask) / 2

    @property
    def spread(self) -> float | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask - bid

    # The seed engine's getter names.
    def get_best_bid(self) -> float | None:
        return self.best_bid

    def get_best_ask(self) -> float | None:
        return self.best_ask

    def get_mid_price(self) -> float | None:
        return self.mid_price

    def get_bids(self, n: int = 5) -> list[tuple[float, int, int]]:
        return self._levels(0, R.BUY, n)

    def get_asks(self, n: int = 5) -> list[tuple[float, int, int]]:
        return self._levels(0, R.SELL, n)

    def depth(self, n: int = 10) -> pl.DataFrame:
        return self._depth(0, n)

    def vwap(self, side, n: int = 5) -> float | None:
        return self._vwap(0, side, n)

    def orders(self) -> pl.DataFrame:
        return self._orders(0)

    def queue_position(self, order_id: int) -> tuple[int, int] | None:
        return self._queue_position(0, order_id)

    def __len__(self) -> int:
        return int(self.state.books[0]["orders"].sum())

    def __repr__(self) -> str:
        return (f"OrderBook({self.symbol!r}: bid {self.best_bid} / ask {self.best_ask}, "
                f"{len(self)} resting orders)")

    def _repr_html_(self) -> str:
        bids, asks = self.get_bids(5), self.get_asks(5)
        rows = []
        for i in range(max(len(bids), len(asks))):
            b = bids[i] if i < len(bids) else ("", "", "")
            a = asks[i] if i < len(asks) else ("", "", "")
            rows.append(f"<tr><td>{b[2]}</td><td>{b[1]}</td><td><b>{b[0]}</b></td>"
                        f"<td><b>{a[0]}</b></td><td>{a[1]}</td><td>{a[2]}</td></tr>")
        head = ("<tr><th>orders</th><th>bid qty</th><th>bid</th><th>ask</th><th>ask qty</th>"
                "<th>orders</th></tr>")
        return (f"<b>OrderBook {self.symbol}</b> ({len(self)} resting orders)"
                f"<table>{head}{''.join(rows)}</table>")


_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


def _field(value, field: str, bounds: tuple[int, int], row: int) -> int:
    number = _integer(value, f"{field} (row {row})")
    if not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"{field}={value!r} (row {row}) does not fit the EVENT field "
                         f"({bounds[0]}..{bounds[1]})")
    return number


def make_events(rows: Iterable[tuple] | None = None, *, n: int | None = None) -> np.ndarray:
    """An EVENT array from tuples ``(kind, order_id, side, price_units, qty[, order_type,
    tif, symbol, ts])`` (kind/side/type/tif as enums or ints), or ``n`` zeroed records.

    Each value must fit its field (``ValueError`` naming it otherwise); values that fit
    but the engine cannot take (an id of ``EMPTY_KEY``, a quantity above ``MAX_QTY``...)
    are kept, and the kernel rejects their row with a reason code."""
    if rows is None:
        return np.zeros(0 if n is None else _integer(n, "n"), dtype=R.EVENT)
    rows = list(rows)
    out = np.zeros(len(rows), dtype=R.EVENT)
    for i, row in enumerate(rows):
        kind, order_id, side, price, qty, *rest = row
        order_type = rest[0] if len(rest) > 0 else OrderType.LIMIT
        tif = rest[1] if len(rest) > 1 else TimeInForce.GTC
        symbol = rest[2] if len(rest) > 2 else 0
        ts = rest[3] if len(rest) > 3 else i + 1
        out[i] = (_field(ts, "ts", _INT64, i), _field(order_id, "order_id", _INT64, i),
                  _field(price, "price", _INT64, i), _field(qty, "qty", _INT64, i),
                  _field(symbol, "symbol", _INT32, i), int(EventKind.parse(kind, "kind")),
                  int(Side.parse(side, "side")), int(OrderType.parse(order_type, "order_type")),
                  int(TimeInForce.parse(tif, "tif")))
    return out
