"""Python enums over the kernels' integer codes (``kernels.records``).

The numbers are the kernels'; these classes give them names, reprs and parsing from
strings (``Side.parse("buy")``) for the Python layer.
"""
from __future__ import annotations

import numbers
from enum import Enum, IntEnum

from kernels import records as R


class _Parseable(IntEnum):
    @classmethod
    def parse(cls, value, field: str | None = None):
        """Accept a member, its integer value (a Python or numpy integer, never a bool or
        another enum's member), or its name (any case)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif (isinstance(value, numbers.Integral) and not isinstance(value, (bool, Enum))):
            try:
                return cls(int(value))
            except ValueError:
                pass
        choices = ", ".join(m.name for m in cls)
        raise ValueError(f"{field or cls.__name__.lower()}={value!r} is not one of {choices}")

    @classmethod
    def name_expr(cls, column: str):
        """A polars expression: the integer codes of ``column`` as member names, for
        tables people read (``frame.with_columns(RejectReason.name_expr("reason"))``).
        A code that is no member shows as its number."""
        import polars as pl

        return pl.col(column).replace_strict({int(m): m.name for m in cls},
                                             default=pl.col(column).cast(pl.Utf8),
                                             return_dtype=pl.Utf8)


class Side(_Parseable):
    BUY = R.BUY
    SELL = R.SELL


class OrderType(_Parseable):
    LIMIT = R.LIMIT
    MARKET = R.MARKET


class TimeInForce(_Parseable):
    GTC = R.GTC
    IOC = R.IOC
    FOK = R.FOK


class OrderStatus(_Parseable):
    NEW = R.ST_NEW
    PARTIALLY_FILLED = R.ST_PARTIALLY_FILLED
    FILLED = R.ST_FILLED
    CANCELLED = R.ST_CANCELLED
    REJECTED = R.ST_REJECTED
    DONE = R.ST_DONE


class EventKind(_Parseable):
    ADD = R.EV_ADD
    CANCEL = R.EV_CANCEL
    DELETE = R.EV_DELETE
    EXECUTE = R.EV_EXECUTE
    EXECUTE_HIDDEN = R.EV_EXECUTE_HIDDEN
    CROSS = R.EV_CROSS
    HALT = R.EV_HALT
    MODIFY = R.EV_MODIFY


class RejectReason(_Parseable):
    NONE = R.R_NONE
    UNKNOWN_ORDER = R.R_UNKNOWN_ORDER
    DUPLICATE_ID = R.R_DUPLICATE_ID
    NON_POSITIVE_QTY = R.R_NON_POSITIVE_QTY
    PRICE_OFF_TICK = R.R_PRICE_OFF_TICK
    POOL_FULL = R.R_POOL_FULL
    FOK_NOT_FILLABLE = R.R_FOK_NOT_FILLABLE
    PRICE_OUT_OF_BAND = R.R_PRICE_OUT_OF_BAND
    UNKNOWN_SYMBOL = R.R_UNKNOWN_SYMBOL
    INVALID_SIDE = R.R_INVALID_SIDE
    INVALID_TYPE = R.R_INVALID_TYPE
    NON_POSITIVE_PRICE = R.R_NON_POSITIVE_PRICE
    HALTED = R.R_HALTED
    OUTPUT_FULL = R.R_OUTPUT_FULL
    INVALID_ID = R.R_INVALID_ID
    QTY_TOO_LARGE = R.R_QTY_TOO_LARGE
    PRICE_TOO_LARGE = R.R_PRICE_TOO_LARGE
    POST_ONLY_WOULD_TAKE = R.R_POST_ONLY_WOULD_TAKE


assert len(RejectReason) == R.N_REJECT_REASONS
assert [m.name.lower() for m in RejectReason] == list(R.REJECT_REASON_NAMES)
