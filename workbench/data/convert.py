"""The boundary between polars frames and the kernels' structured arrays.

``to_records(frame, dtype)`` is the one conversion every loader uses. Columns are read
from Arrow buffers without copying where polars allows (primitive dtype, no nulls); the
single unavoidable copy is the interleave into the record layout the kernels want
(array of structs: one cache line touches every field of an event).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Mapping

import numpy as np
import polars as pl


def to_records(frame: pl.DataFrame | pl.LazyFrame, dtype: np.dtype,
               defaults: Mapping[str, object] | None = None) -> np.ndarray:
    """Structured array of ``dtype`` from the frame's columns of the same names.

    Fields missing from the frame take ``defaults[field]``; a field that is neither in
    the frame nor in ``defaults`` is an error, as is a null in a used column.
    """
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    dtype = np.dtype(dtype)
    defaults = dict(defaults or {})
    missing = [n for n in dtype.names if n not in frame.columns and n not in defaults]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing} for dtype fields {list(dtype.names)}")
    out = np.empty(frame.height, dtype=dtype)
    for name in dtype.names:
        if name in frame.columns:
            column = frame.get_column(name)
            if column.null_count():
                raise ValueError(f"column {name!r} has {column.null_count()} null value(s)")
            out[name] = column.to_numpy()
        else:
            out[name] = defaults[name]
    return out


def from_records(records: np.ndarray) -> pl.DataFrame:
    """A polars frame with one column per (scalar) field of a structured array."""
    if records.dtype.names is None:
        raise ValueError(f"expected a structured array, got dtype {records.dtype}")
    columns = {}
    for name in records.dtype.names:
        field = records[name]
        if field.ndim == 1:
            columns[name] = np.ascontiguousarray(field)
    return pl.DataFrame(columns)


def as_date(value, name: str) -> date:
    """A ``date`` from a date, a datetime or an ISO string; ``ValueError`` naming the field."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None
