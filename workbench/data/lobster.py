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
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kernels import book_state
from kernels import records as R

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
    frame = scan_messages(path).collect()
    bad = frame.filter(~pl.col("kind").is_between(1, 7) | ~pl.col("direction").is_in([1, -1]))
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(f"{path}: {bad.height} message row(s) with an unknown type or direction, "
                         f"first: kind={row['kind']} direction={row['direction']}")
    return frame


def read_orderbook(path: str | Path, levels: int | None = None) -> pl.DataFrame:
    """The orderbook file as a frame with ``ask_price_i, ask_size_i, bid_price_i, bid_size_i``."""
    path = _existing(path)
    with path.open() as fh:
        first = fh.readline()
    n_cols = len(first.strip().split(","))
    if n_cols == 0 or n_cols % 4:
        raise ValueError(f"{path}: {n_cols} columns; a LOBSTER orderbook file has 4 per level")
    n_levels = n_cols // 4
    if levels is not None and levels > n_levels:
        raise ValueError(f"levels={levels} but {path} holds only {n_levels}")
    names = [f"{field}_{i}" for i in range(1, n_levels + 1)
             for field in ("ask_price", "ask_size", "bid_price", "bid_size")]
    frame = pl.read_csv(path, has_header=False, new_columns=names,
                        schema_overrides={n: pl.Int64 for n in names})
    if levels is not None:
        frame = frame.select(names[: 4 * levels])
    return frame


def orderbook_levels(orderbook: pl.DataFrame) -> int:
    return orderbook.width // 4


def to_events(messages: pl.DataFrame, symbol: int = 0) -> np.ndarray:
    """Replay events (``kernels.records.EVENT``) for one symbol's message frame."""
    frame = messages.select(
        "ts", "order_id", "price",
        pl.col("size").alias("qty"),
        pl.lit(symbol, pl.Int32).alias("symbol"),
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
    """A ladder wide enough for twice the file's price range, as a power of two."""
    priced = events["price"][(events["kind"] != R.EV_HALT) & (events["price"] > 0)]
    span = int((priced.max() - priced.min()) // tick_units) if len(priced) else 0
    width = book_state.MIN_PRICE_LEVELS
    while width < 2 * span + 1024 and width < book_state.MAX_PRICE_LEVELS:
        width *= 2
    return width
