"""LOBSTER files (NASDAQ TotalView-ITCH reconstructions) -> polars frames -> replay events.

A LOBSTER day is two row-aligned CSV files without headers:

message file, one row per book event (``read_messages``):

============  =======  ===========================================================
column        dtype    meaning
============  =======  ===========================================================
``time_s``    f64      seconds after midnight, as in the file
``ts``        i64      the same instant in integer ns after midnight (parsed from
                       the text, so no float rounding)
``kind``      i8       1 submit, 2 partial cancel, 3 delete, 4 visible execution,
                       5 hidden execution, 6 cross trade, 7 halt (same codes as
                       ``kernels.records.EV_*``)
``order_id``  i64      exchange order reference
``size``      i64      shares
``price``     i64      dollars x 10_000 (the engine's default ``price_scale``)
``direction`` i8       1 buy limit order, -1 sell limit order (for executions: the
                       side of the *resting* order)
============  =======  ===========================================================

orderbook file, one row per message (``read_orderbook``): for each level 1..L the
columns ``ask_price_i, ask_size_i, bid_price_i, bid_size_i`` (i64). Empty levels hold
LOBSTER's dummies: ask price 9_999_999_999, bid price -9_999_999_999, size 0.

Range checks (:func:`check_messages`, run by ``read_messages`` and ``to_events``): a
``ValueError`` names the field, the value and its row for anything the engine cannot
represent: a type outside 1..7, a direction other than 1/-1, the order id -2**63 (the
id index's empty marker, ``kernels.order_index.EMPTY_KEY``), a size outside
0..``MAX_QTY``, a price above ``MAX_PRICE`` or below 0 (a halt carries -1/0/1), a time
whose nanoseconds do not fit int64.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kernels import book_state
from kernels import records as R
from kernels.order_index import EMPTY_KEY

from ..errors import InputError, file_error
from .convert import to_records

EMPTY_ASK_PRICE = 9_999_999_999
EMPTY_BID_PRICE = -9_999_999_999
TICK_UNITS = 100  # one cent in LOBSTER's price units

_NAME = re.compile(
    r"(?P<ticker>[A-Za-z0-9.]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?:(?P<start>\d+)_(?P<end>\d+)_)?"
    r"(?P<what>message|orderbook)_(?P<level>\d+)"
)


@dataclass(frozen=True)
class LobsterFileInfo:
    """What a LOBSTER file name says (``AMZN_2012-06-21_34200000_57600000_message_1.csv``)."""

    ticker: str
    date: str
    kind: str
    level: int | None
    start_ms: int | None = None
    end_ms: int | None = None


def parse_filename(path: str | Path) -> LobsterFileInfo:
    name = Path(path).name
    match = _NAME.search(name)
    if not match:
        raise ValueError(f"path={str(path)!r} is not named like a LOBSTER file "
                         "(TICKER_YYYY-MM-DD_[start_end_]message|orderbook_LEVEL.csv)")
    g = match.groupdict()
    return LobsterFileInfo(
        ticker=g["ticker"], date=g["date"], kind=g["what"], level=int(g["level"]),
        start_ms=int(g["start"]) if g["start"] else None,
        end_ms=int(g["end"]) if g["end"] else None,
    )


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LOBSTER file not found: {path}")
    return path


# ------------------------------------------------ file-format errors (empty, truncated, ...)
MESSAGE_COLUMNS = ("time", "kind", "order_id", "size", "price", "direction")
_DECIMAL = re.compile(r"\d+(\.\d+)?")
_INTEGER = re.compile(r"-?\d+")
_INT8 = ("kind", "direction")


def _format_error(path: Path, what: str, columns, exc: Exception | None = None) -> InputError:
    """Name the first line of ``path`` that is not ``len(columns)`` numbers (blank, short
    or long, non-numeric, not text); called only once a fast read has failed."""
    n = len(columns)
    data = path.read_bytes()
    if not data.strip():
        return file_error(path, f"empty file (a LOBSTER {what} file has one row per message)")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    truncated = not data.endswith(b"\n")
    for line_no, raw in enumerate(lines, 1):
        last = " (the file ends mid-line: truncated?)" if truncated and line_no == len(lines) else ""
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return file_error(path, f"line {line_no} is not text (a LOBSTER {what} file is CSV)")
        if not line:
            return file_error(path, f"line {line_no} is blank")
        fields = line.split(",")
        if len(fields) != n:
            return file_error(path, f"line {line_no} has {len(fields)} fields, a LOBSTER {what} "
                                    f"file has {n}{last}")
        for column, value in zip(columns, fields):
            value = value.strip()
            if column == "time":
                if not _DECIMAL.fullmatch(value):
                    return file_error(path, f"line {line_no}: time {value!r} is not a number of "
                                            f"seconds{last}")
            elif not _INTEGER.fullmatch(value):
                return file_error(path, f"line {line_no}: {column} {value!r} is not an integer{last}")
            elif column in _INT8 and not -128 <= int(value) <= 127:
                return file_error(path, f"line {line_no}: {column} {value} is not a small integer "
                                        "code")
            elif not -2**63 <= int(value) < 2**63:
                return file_error(path, f"line {line_no}: {column} {value} does not fit in 64 bits")
    detail = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "unreadable"
    return file_error(path, f"not a LOBSTER {what} file ({detail})")


def _collect(read, path: Path, what: str, columns) -> pl.DataFrame:
    """``read()`` (a polars read of a headerless LOBSTER CSV), with every file-format
    failure turned into one :class:`InputError` naming the file, the line and the problem."""
    try:
        frame = read()
    except pl.exceptions.PolarsError as exc:
        raise _format_error(path, what, columns, exc) from None
    if frame.height == 0 or any(frame.null_count().row(0)):
        raise _format_error(path, what, columns)
    return frame


def scan_messages(path: str | Path) -> pl.LazyFrame:
    """Lazy version of :func:`read_messages`."""
    path = _existing(path)
    raw = pl.scan_csv(
        path, has_header=False,
        new_columns=["time", "kind", "order_id", "size", "price", "direction"],
        schema_overrides={"time": pl.Utf8, "kind": pl.Int8, "order_id": pl.Int64,
                          "size": pl.Int64, "price": pl.Int64, "direction": pl.Int8},
    )
    seconds = pl.col("time").str.split_exact(".", 1)
    whole = seconds.struct.field("field_0").cast(pl.Int64)
    frac = seconds.struct.field("field_1").fill_null("0").str.slice(0, 9).str.pad_end(9, "0")
    return raw.select(
        pl.col("time").cast(pl.Float64).alias("time_s"),
        (whole * 1_000_000_000 + frac.cast(pl.Int64)).alias("ts"),
        "kind", "order_id", "size", "price", "direction",
    )


def read_messages(path: str | Path) -> pl.DataFrame:
    """The message file as a frame (schema in the module docstring)."""
    frame = _collect(scan_messages(path).collect, Path(path), "message", MESSAGE_COLUMNS)
    check_messages(frame, path)
    return frame


_MAX_SECONDS = (2**63 - 1) // 1_000_000_000  # the largest time whose ns fit int64

# (field, what is wrong, the rows where it is wrong), checked in this order
_RANGE_CHECKS = (
    ("kind", "is not a LOBSTER message type (1..7)", ~pl.col("kind").is_between(1, 7)),
    ("direction", "is not 1 (buy) or -1 (sell)", ~pl.col("direction").is_in([1, -1])),
    ("order_id", "is reserved (the order index's empty marker)",
     pl.col("order_id") == int(EMPTY_KEY)),
    ("size", f"is outside 0..{R.MAX_QTY} (the engine's MAX_QTY)",
     ~pl.col("size").is_between(0, R.MAX_QTY)),
    ("price", f"is above the engine's MAX_PRICE ({R.MAX_PRICE})", pl.col("price") > R.MAX_PRICE),
    ("price", "is negative (only a halt carries -1)",
     (pl.col("price") < 0) & (pl.col("kind") != R.EV_HALT)),
    ("time_s", f"is outside 0..{_MAX_SECONDS} s", ~pl.col("time_s").is_between(0, _MAX_SECONDS)),
)


def check_messages(messages: pl.DataFrame, path: str | Path | None = None) -> None:
    """Raise ``ValueError`` naming the field, value and row of the first message the
    engine cannot represent (the list is in the module docstring)."""
    source = "messages" if path is None else str(path)
    for field, why, bad in _RANGE_CHECKS:
        if field not in messages.columns:
            if field == "time_s":
                continue  # a frame built by hand may carry only ``ts``
            raise ValueError(f"{source}: no {field!r} column")
        rows = messages.with_row_index("_row").filter(bad.fill_null(True))
        if rows.height:
            first = rows.row(0, named=True)
            where = f"row {first['_row']}" if path is None else f"line {first['_row'] + 1}"
            problem = (f"{rows.height} message row(s) where {field} {why}; first: "
                       f"{field}={first[field]} ({where})")
            raise ValueError(f"{source}: {problem}") if path is None else file_error(path, problem)


def read_orderbook(path: str | Path, levels: int | None = None) -> pl.DataFrame:
    """The orderbook file as a frame with ``ask_price_i, ask_size_i, bid_price_i, bid_size_i``."""
    path = _existing(path)
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip()
    if not first:  # an empty file, or a blank first line
        raise _format_error(path, "orderbook", ("ask_price_1", "ask_size_1", "bid_price_1", "bid_size_1"))
    n_cols = len(first.split(","))
    if n_cols % 4:
        raise file_error(path, f"{n_cols} columns; a LOBSTER orderbook file has 4 per level")
    n_levels = n_cols // 4
    if levels is not None and not 1 <= levels <= n_levels:
        raise InputError(f"levels={levels} is out of range: {path} holds {n_levels} level(s), "
                         f"so give 1..{n_levels}", path=path)
    names = [f"{field}_{i}" for i in range(1, n_levels + 1)
             for field in ("ask_price", "ask_size", "bid_price", "bid_size")]
    frame = _collect(lambda: pl.read_csv(path, has_header=False, new_columns=names,
                                         schema_overrides={n: pl.Int64 for n in names}),
                     path, "orderbook", names)
    if levels is not None:
        frame = frame.select(names[: 4 * levels])
    return frame


def orderbook_levels(orderbook: pl.DataFrame) -> int:
    return orderbook.width // 4


def to_events(messages: pl.DataFrame, symbol: int = 0) -> np.ndarray:
    """Replay events (``kernels.records.EVENT``) for one symbol's message frame, range-checked
    by :func:`check_messages` first."""
    if isinstance(symbol, (bool, np.bool_)) or not isinstance(symbol, (int, np.integer)) \
            or not 0 <= symbol < R.MAX_BOOKS:
        raise ValueError(f"symbol={symbol!r} must be a book index in 0..{R.MAX_BOOKS - 1}")
    check_messages(messages)
    frame = messages.select(
        "ts", "order_id", "price",
        pl.col("size").alias("qty"),
        pl.lit(int(symbol), pl.Int32).alias("symbol"),
        pl.col("kind"),
        pl.when(pl.col("direction") == 1).then(R.BUY).otherwise(R.SELL).cast(pl.Int8).alias("side"),
    )
    return to_records(frame, R.EVENT, defaults={"order_type": R.LIMIT, "tif": R.GTC})


def orderbook_array(orderbook: pl.DataFrame) -> np.ndarray:
    """The orderbook frame as a C-contiguous ``(rows, 4 * levels)`` int64 array."""
    return np.ascontiguousarray(orderbook.to_numpy().astype(np.int64, copy=False))


def initial_row(first_row: np.ndarray, first_event: np.void, n_levels: int) -> np.ndarray:
    """The book as it stood before the first message: the first orderbook row with
    that message's effect undone (an add removed, a cancel/execution put back)."""
    kind = int(first_event["kind"])
    side = int(first_event["side"])
    price = int(first_event["price"])
    size = int(first_event["qty"])
    book = {R.SELL: [], R.BUY: []}
    for j in range(n_levels):
        ask_p, ask_q, bid_p, bid_q = (int(x) for x in first_row[4 * j: 4 * j + 4])
        if ask_q > 0:
            book[R.SELL].append([ask_p, ask_q])
        if bid_q > 0:
            book[R.BUY].append([bid_p, bid_q])
    levels = book[side] if side in book else []
    at = next((lv for lv in levels if lv[0] == price), None)
    if kind == R.EV_ADD and at is not None:
        at[1] -= size
    elif kind in (R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE):
        if at is not None:
            at[1] += size
        else:
            levels.append([price, size])
    for s in book:
        kept = [lv for lv in book[s] if lv[1] > 0]
        kept.sort(key=lambda lv: lv[0], reverse=(s == R.BUY))
        book[s] = kept[:n_levels]
    row = np.zeros(4 * n_levels, dtype=np.int64)
    for j in range(n_levels):
        ask = book[R.SELL][j] if j < len(book[R.SELL]) else (EMPTY_ASK_PRICE, 0)
        bid = book[R.BUY][j] if j < len(book[R.BUY]) else (EMPTY_BID_PRICE, 0)
        row[4 * j: 4 * j + 4] = (ask[0], ask[1], bid[0], bid[1])
    return row


def price_levels_for(events: np.ndarray, tick_units: int) -> int:
    """The replay's price window: twice the file's busiest price range (the middle 99%
    of its prices), as a power of two. Prices beyond it still rest (the engine's
    overflow); the window only decides what is O(1)."""
    priced = events["price"][(events["kind"] != R.EV_HALT) & (events["price"] > 0)]
    if len(priced):
        lo, hi = np.percentile(priced, [0.5, 99.5])
        span = int((hi - lo) // tick_units)
    else:
        span = 0
    width = 4096
    while width < 2 * span + 1024 and width < 65_536:
        width *= 2
    return width
