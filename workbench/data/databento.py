"""Databento market-by-order (MBO) files -> polars frames and replay events; the MBO check.

Reads the two encodings Databento delivers MBO data in:

* **DBN** (``.dbn``, ``.dbn.zst``): the metadata header is decoded by the
  ``databento-dbn`` package (``Metadata.decode``); the records of a plain MBO file are
  read in place as the DBN MBO record layout (:data:`MBO_DTYPE`, 56 bytes, 64 with
  ``ts_out``); a zstd file, a file mixing record types and anything else go through the
  package's ``DBNDecoder`` (non-MBO records are counted and skipped; symbol-mapping
  records name instruments).
* **CSV** (gzip or plain; Databento's CSV encoding, header
  ``ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,price,size,channel_id,
  order_id,flags,ts_in_delta,sequence[,symbol]``): decimal prices (``4799.25``; an
  empty price is undefined), timestamps as integers or ISO 8601 (``pretty_ts``). Every
  line is split and checked field by field; a malformed line (wrong field count, a
  number that is not one, an unknown action or side, an rtype other than MBO's 160) is
  counted and skipped, never fatal.

Both become one polars frame (:func:`read_mbo`): names not codes (``action`` is
``add/cancel/modify/clear/trade/fill/none``, ``side`` ``bid/ask/none``), prices as prices
(``price``, null when undefined; ``price_fixed`` keeps Databento's exact fixed-point
integer, 1e-9 units, ``UNDEF_PRICE`` when undefined), ``last``/``snapshot`` flag bits as
booleans. :func:`to_events` turns the frame into the engine's ``EVENT`` rows, one book
per ``instrument_id`` (books numbered by first appearance), and :func:`load_mbo` does
both: it is the one loader ``data mbo-check``, the backtester (``--data mbo FILE``) and
``bench book`` (``mbo_events_per_sec``) consume (architecture rule 4).

The book rules (Databento's documentation)
------------------------------------------
Sources: the MBO schema, https://databento.com/docs/schemas/mbo (fields; ``price`` in
units of 1e-9; ``side`` is the order's side, or the aggressor's in a trade, or ``N``
when the source gives none); order tracking,
https://databento.com/docs/examples/order-book/order-tracking (the action table, why
trades and fills leave the book alone, ``F_LAST``); the limit order book example,
https://databento.com/docs/examples/order-book/limit-order-book (per-instrument books;
``UNDEF_PRICE``); MBO snapshots, https://databento.com/docs/conventions/mbo-snapshot.

=======  ==========================================  ==================================
action   Databento                                   event here
=======  ==========================================  ==================================
``A``    insert a new order into the book            ``EV_REST``: rests at its price,
                                                     never matches (the exchange
                                                     reports its own matches)
``C``    fully or partially cancel: the size is      ``EV_CANCEL`` with ``qty = size``
         removed, the order leaves at zero           (removes it when ``size`` >= what
                                                     rests); a 0-size cancel changes
                                                     nothing and emits no event
``M``    change price and/or size; a new price or    ``EV_MOVE`` (same rule; never
         a larger size loses priority, a smaller     matches); an undefined price keeps
         size at the same price keeps it             the price; size 0 removes the order
                                                     (``EV_DELETE``)
``R``    clear: remove every resting order of the    ``EV_CLEAR``
         instrument
``T``    an aggressor traded; does not affect the    ``EV_EXECUTE_HIDDEN`` ("recorded,
         book                                        book untouched": last price, volume
                                                     and trade count of the book, the
                                                     backtester's last trade), with
                                                     ``side`` the resting side as for
                                                     every replayed execution; a trade
                                                     with side ``N`` (no aggressor)
                                                     only counts
``F``    a resting order was filled; does not        counted only: the fill's quantity
         affect the book ("all fills will be         leaves the book through the cancel
         accompanied by cancel actions")             that accompanies it, and the trade
                                                     is already recorded by its ``T``
                                                     (recording both would count the
                                                     volume twice)
``N``    no action; may carry flags                  counted only
=======  ==========================================  ==================================

* **F_LAST**: one exchange event is normalised into several records; the last record of
  an event *for an instrument* carries ``F_LAST`` and the book is only consistent after
  it. Each F_LAST record is a *boundary*: the check reads that instrument's top of book
  there (``--bbo``), never in between.
* **F_SNAPSHOT**: a snapshot is a clear (``R``) followed by the adds of every resting
  order in priority order, all flagged ``F_SNAPSHOT | F_BAD_TS_RECV``; replayed as
  ordinary ``R``/``A`` records they rebuild the book with each level's queue order.
* **Side N**: an add without a side cannot rest: the kernel rejects it (``invalid_side``,
  counted); a cancel or a modify finds its order by id and keeps the order's side.
* **Undefined prices** (``UNDEF_PRICE`` = INT64_MAX, an empty CSV field): a clear, a
  trade or a ``N`` record may carry one; an add with one is rejected
  (``non_positive_price``, counted), as is an add at a negative price (the engine holds
  positive prices only).
* **Unknown references**: a cancel or modify of an order id the book does not hold is
  ``unknown_refs`` (the kernel's ``R_UNKNOWN_ORDER``), counted per instrument. A modify
  of an unknown order is not turned into an add.

Prices, ids, times
------------------
Databento prices are integers in 1e-9 units. The engine's ``price_scale`` is
:data:`workbench.data.prices.PRICE_SCALE` (10,000: 1e-4 units) whenever every defined
price of the file is a multiple of 1e-4 -- CME ES's tick, 0.25, is 2,500 units exactly,
and so are the ticks of most products (0.01, 0.005, 0.25, 0.5, ...) -- otherwise the
smallest power of ten up to 10**9 that represents every price exactly (ZN's 1/64 needs
10**6). Conversion is integer division with an exactness check, never a float.
Each book's tick is the greatest common divisor of its add/modify prices (``tick_size``
overrides it). Order ids (uint64) are stored bit for bit as int64: ids from 2**63 wrap
to negative numbers. ``EVENT.ts`` is ``ts_recv``, Databento's index time, by which the
records are sorted (``ts_event`` can step back across channels and in snapshots).

In the backtester (``--data mbo FILE``) our orders rest in the real queues, so their queue
position is exact, and they trade when they cross the real book. A replayed trade does
not fill them yet: the L3 loop's trade-through rule acts on executions by id
(``EV_EXECUTE``), and an MBO trade leaves the book alone (``EV_EXECUTE_HIDDEN``); the
fills' resting order ids (``F`` rows of the frame) are what such a rule would read.

Several instruments in one file: one Engine, one book per ``instrument_id`` (files that
mix venues of one instrument, ``publisher_id``, share its book). The check's JSON keeps
the top-level keys as totals over the file (``records``, ``actions``, ``unknown_refs``,
``boundaries``, ``orders``, ``events_per_sec``) with ``bids``/``asks`` of the first
instrument (the only one, usually), and adds ``instruments`` (the same keys per
instrument) when there are several; ``malformed`` and ``rejects`` (other reject
reasons) appear only when non-zero.
"""
from __future__ import annotations

import gzip
import io
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import polars as pl

from kernels import mbo as kmbo
from kernels import records as R

from ..errors import InputError, file_error
from .prices import PRICE_SCALE

__all__ = [
    "MBO_DTYPE", "MboFile", "MboReplay", "MboCheck", "read_mbo", "to_events", "load_mbo",
    "new_engine", "replay", "check_mbo", "is_mbo_file", "synthetic_mbo", "write_dbn",
]

FIXED_SCALE = 1_000_000_000        # Databento prices: 1 unit = 1e-9
UNDEF_PRICE = 2**63 - 1            # Databento's undefined price
F_LAST = 1 << 7
F_TOB = 1 << 6
F_SNAPSHOT = 1 << 5
F_MBP = 1 << 4
F_BAD_TS_RECV = 1 << 3
RTYPE_MBO = 160

ACTION_LETTERS = "ACMRTFN"
ACTION_NAMES = ("add", "cancel", "modify", "clear", "trade", "fill", "none")
SIDE_LETTERS = "BAN"
SIDE_NAMES = ("bid", "ask", "none")
ACTION = pl.Enum(ACTION_NAMES)
SIDE = pl.Enum(SIDE_NAMES)
A_ADD, A_CANCEL, A_MODIFY, A_CLEAR, A_TRADE, A_FILL, A_NONE = range(7)
S_BID, S_ASK, S_NONE = range(3)

# The DBN MBO record (databento-dbn's MBOMsg; header then body, little-endian, packed).
MBO_DTYPE = np.dtype([
    ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
    ("ts_event", "<u8"), ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"),
    ("flags", "u1"), ("channel_id", "u1"), ("action", "u1"), ("side", "u1"),
    ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4"),
])
assert MBO_DTYPE.itemsize == 56
MBO_FIELDS = tuple(n for n in MBO_DTYPE.names if n != "length")
CSV_COLUMNS = ("ts_recv", "ts_event", "rtype", "publisher_id", "instrument_id", "action",
               "side", "price", "size", "channel_id", "order_id", "flags", "ts_in_delta",
               "sequence")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 8 << 20

_ACTION_CODE = np.full(256, -1, np.int8)
_ACTION_CODE[np.frombuffer(ACTION_LETTERS.encode(), np.uint8)] = np.arange(7)
_SIDE_CODE = np.full(256, -1, np.int8)
_SIDE_CODE[np.frombuffer(SIDE_LETTERS.encode(), np.uint8)] = np.arange(3)


# ====================================================================== reading
@dataclass
class MboFile:
    """An MBO file read: the frame (module docstring), lines or records that could not be
    read, records of other types skipped (DBN), and where it came from."""

    frame: pl.DataFrame
    malformed: int = 0
    other_records: int = 0
    source: str = ""


def is_mbo_file(path) -> bool:
    """True when ``path`` looks like Databento MBO data: DBN (plain or zstd) or a CSV
    (plain or gzip) whose header starts with Databento's MBO columns."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if head[:3] == b"DBN" or head[:4] == _ZSTD_MAGIC:
        return True
    if head[:2] == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(512)
        except (OSError, EOFError, zlib.error):
            return False
    first = head.split(b"\n", 1)[0].strip().decode("ascii", "replace")
    return first.startswith("ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side")


def read_mbo(path) -> MboFile:
    """Read a DBN (``.dbn``, ``.dbn.zst``) or CSV (plain or gzip) MBO file into a frame.

    A file that is no MBO data at all (empty, corrupt compression, a DBN of another
    schema with no MBO record, a CSV without Databento's header) is an ``InputError``
    naming the file; malformed lines of a CSV are counted (``MboFile.malformed``)."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise file_error(path, "empty file (no MBO records)")
    if raw[:3] == b"DBN" or raw[:4] == _ZSTD_MAGIC:
        records, symbols, malformed, other = _read_dbn(path, raw)
    else:
        if raw[:2] == _GZIP_MAGIC:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise file_error(path, f"corrupt or truncated gzip stream ({exc})") from None
        records, symbols, malformed = _read_csv(path, raw)
        other = 0
    frame = _frame(records, symbols)
    return MboFile(frame, malformed, other, str(path))


def _read_dbn(path: Path, raw: bytes):
    """(records, {instrument_id: symbol}, malformed, other records) of a DBN file."""
    import databento_dbn as dbn

    if raw[:3] == b"DBN" and len(raw) >= 8:
        meta_len = 8 + int.from_bytes(raw[4:8], "little")
        try:
            meta = dbn.Metadata.decode(raw[:meta_len])
        except Exception as exc:  # the package raises its DBNError (a plain Exception)
            raise file_error(path, f"not a valid DBN file ({exc})") from None
        fast = _dbn_in_place(raw[meta_len:], meta)
        if fast is not None:
            records, malformed = fast
            return records, _metadata_symbols(meta), malformed, 0
    compression = dbn.Compression.ZSTD if raw[:4] == _ZSTD_MAGIC else dbn.Compression.NONE
    decoder = dbn.DBNDecoder(compression=compression)
    chunks, symbols, other, meta = [], {}, 0, None
    try:
        for start in range(0, len(raw), _CHUNK):
            decoder.write(raw[start:start + _CHUNK])
            objs = decoder.decode()
            batch = []
            for obj in objs:
                if isinstance(obj, dbn.MBOMsg):
                    batch.append(bytes(obj)[:MBO_DTYPE.itemsize])
                elif isinstance(obj, dbn.Metadata):
                    meta = obj
                else:
                    other += 1
                    name = getattr(obj, "stype_in_symbol", None)
                    if name:  # a symbol-mapping record (live data)
                        symbols[int(obj.instrument_id)] = str(name)
            if batch:
                chunks.append(np.frombuffer(b"".join(batch), MBO_DTYPE))
    except Exception as exc:  # DBNError: corrupt or truncated data
        raise file_error(path, f"not a valid DBN stream ({exc})") from None
    if meta is None:
        raise file_error(path, "not a valid DBN stream (no metadata header)")
    records = np.concatenate(chunks) if chunks else np.zeros(0, MBO_DTYPE)
    if len(records) == 0:
        raise file_error(path, f"no MBO records (schema {meta.schema}, {other} other records)")
    return records, {**_metadata_symbols(meta), **symbols}, 0, other


def _dbn_in_place(body: bytes, meta):
    """(records, malformed) when ``body`` is plain MBO records of one length (the file
    of one MBO request, with or without ``ts_out``); None to decode record by record."""
    if str(getattr(meta.schema, "value", meta.schema)).lower() != "mbo" or len(body) < 2:
        return None
    size = body[0] * 4
    if size not in (56, 64):
        return None
    dtype = MBO_DTYPE if size == 56 else np.dtype(
        {"names": list(MBO_DTYPE.names), "formats": [MBO_DTYPE.fields[n][0] for n in MBO_DTYPE.names],
         "offsets": [MBO_DTYPE.fields[n][1] for n in MBO_DTYPE.names], "itemsize": 64})
    whole = len(body) // size
    records = np.frombuffer(body, dtype, count=whole)
    if not ((records["length"] == body[0]).all() and (records["rtype"] == RTYPE_MBO).all()):
        return None
    malformed = 1 if len(body) % size else 0  # a truncated last record
    return np.ascontiguousarray(records.astype(MBO_DTYPE)), malformed


def _metadata_symbols(meta) -> dict[int, str]:
    """{instrument_id: raw symbol} from the metadata's symbology mappings."""
    out = {}
    try:
        mappings = meta.mappings or {}
    except Exception:
        return out
    for raw_symbol, intervals in mappings.items():
        for interval in intervals:
            value = str(interval.get("symbol", "")) if isinstance(interval, dict) else ""
            if value.isdigit():
                out[int(value)] = str(raw_symbol)
    return out


def _read_csv(path: Path, raw: bytes):
    """(records, {instrument_id: symbol}, malformed) of Databento's CSV encoding."""
    text_end = raw.find(b"\n")
    header = (raw if text_end < 0 else raw[:text_end]).decode("utf-8", "replace").strip()
    names = [n.strip() for n in header.split(",")]
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise file_error(path, f"not Databento MBO CSV: the header lacks {missing} "
                               f"(got {header[:120]!r})")
    width = len(names)
    body = b"" if text_end < 0 else raw[text_end + 1:]
    lines = pl.read_csv(io.BytesIO(body), has_header=False, separator="\x1f", quote_char=None,
                        new_columns=["line"], schema={"line": pl.String}) \
        if body.strip() else \
        pl.DataFrame({"line": pl.Series([], dtype=pl.String)})
    lines = lines.filter(pl.col("line").str.strip_chars() != "")
    fields = pl.col("line").str.strip_chars_end("\r").str.split(",")
    frame = lines.select(fields.list.len().alias("n"),
                         *[fields.list.get(names.index(c), null_on_oob=True).alias(c)
                           for c in CSV_COLUMNS + (("symbol",) if "symbol" in names else ())])
    ints = {"rtype": pl.UInt8, "publisher_id": pl.UInt16, "instrument_id": pl.UInt32,
            "size": pl.UInt32, "channel_id": pl.UInt8, "order_id": pl.UInt64, "flags": pl.UInt8,
            "ts_in_delta": pl.Int32, "sequence": pl.UInt32}
    cols = [pl.col(c).cast(t, strict=False).alias(c) for c, t in ints.items()]
    cols += [_csv_time(c) for c in ("ts_recv", "ts_event")]
    cols += [_csv_price().alias("price"), pl.col("action"), pl.col("side"), pl.col("n")]
    if "symbol" in names:
        cols.append(pl.col("symbol"))
    parsed = frame.select(cols)
    ok = (pl.col("n") == width) & pl.col("action").is_in(list(ACTION_LETTERS)) \
        & pl.col("side").is_in(list(SIDE_LETTERS)) & (pl.col("rtype") == RTYPE_MBO)
    for c in list(ints) + ["ts_recv", "ts_event", "price"]:
        ok = ok & pl.col(c).is_not_null()
    parsed = parsed.with_columns(ok.fill_null(False).alias("ok"))
    good = parsed.filter(pl.col("ok"))
    malformed = parsed.height - good.height
    if good.height == 0:
        raise file_error(path, f"no readable MBO record ({malformed} malformed lines)")
    records = np.zeros(good.height, MBO_DTYPE)
    records["length"] = 14
    for c in MBO_FIELDS:
        if c in ("action", "side"):
            records[c] = np.frombuffer(good[c].str.join("").item().encode(), np.uint8) \
                if good.height else 0
        else:
            records[c] = good[c].to_numpy()
    symbols = {}
    if "symbol" in names and good.height:
        named = good.filter(pl.col("symbol").str.strip_chars() != "").unique(
            "instrument_id", keep="first", maintain_order=True)
        symbols = dict(zip(named["instrument_id"].to_list(), named["symbol"].str.strip_chars().to_list()))
    return records, symbols, malformed


def _csv_time(name: str) -> pl.Expr:
    """Nanoseconds since the epoch from an integer or an ISO 8601 (``pretty_ts``) field."""
    col = pl.col(name)
    as_int = col.cast(pl.UInt64, strict=False)
    as_iso = col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", strict=False) \
        .cast(pl.Int64).cast(pl.UInt64, strict=False)
    return pl.coalesce(as_int, as_iso).alias(name)


def _csv_price() -> pl.Expr:
    """Databento's decimal price as exact 1e-9 units (Int64); empty -> UNDEF_PRICE,
    anything that is not a decimal with at most 9 decimals (or overflows) -> null."""
    text = pl.col("price").str.strip_chars()
    valid = text.str.contains(r"^-?\d{1,10}(\.\d{0,9})?$")
    negative = text.str.starts_with("-")
    body = text.str.strip_prefix("-")
    whole = body.str.split(".").list.get(0, null_on_oob=True).cast(pl.Int64, strict=False)
    frac = body.str.split(".").list.get(1, null_on_oob=True).fill_null("") \
        .str.pad_end(9, "0").cast(pl.Int64, strict=False)
    limit = (UNDEF_PRICE - 1) // FIXED_SCALE  # whole part that still fits below UNDEF_PRICE
    magnitude = pl.when(whole <= limit).then(whole * FIXED_SCALE + frac)
    value = pl.when(negative).then(-magnitude).otherwise(magnitude)
    return pl.when(text == "").then(pl.lit(UNDEF_PRICE, pl.Int64)) \
        .when(valid).then(value).otherwise(pl.lit(None, pl.Int64))


def _frame(rec: np.ndarray, symbols: Mapping[int, str]) -> pl.DataFrame:
    """The people's frame of MBO records (module docstring). Records with an action or
    side outside Databento's letters, or a time beyond int64, are not MBO records: the
    DBN readers never produce them except from a corrupt file, so they fail loudly."""
    action = _ACTION_CODE[rec["action"]]
    side = _SIDE_CODE[rec["side"]]
    bad = (action < 0) | (side < 0) | (rec["ts_recv"] >= 2**63) | (rec["ts_event"] >= 2**63)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"MBO record {i}: action={bytes([rec['action'][i]])!r} "
                         f"side={bytes([rec['side'][i]])!r} ts_recv={int(rec['ts_recv'][i])} "
                         "is not a valid MBO record")
    price = rec["price"]
    undefined = price == UNDEF_PRICE
    instrument = rec["instrument_id"]
    ids = np.unique(instrument)
    names = {int(i): symbols.get(int(i)) or str(int(i)) for i in ids}
    lookup = pl.DataFrame({"instrument_id": ids, "symbol": [names[int(i)] for i in ids]},
                          schema={"instrument_id": pl.UInt32, "symbol": pl.String})
    frame = pl.DataFrame({
        "ts_recv": rec["ts_recv"].astype(np.int64),
        "ts_event": rec["ts_event"].astype(np.int64),
        "rtype": rec["rtype"],
        "publisher_id": rec["publisher_id"],
        "instrument_id": instrument,
        "action": pl.Series(action).replace_strict(list(range(7)), ACTION_NAMES,
                                                   return_dtype=ACTION),
        "side": pl.Series(side).replace_strict(list(range(3)), SIDE_NAMES, return_dtype=SIDE),
        "price": pl.Series(np.where(undefined, np.nan, price / FIXED_SCALE)).fill_nan(None),
        "size": rec["size"],
        "channel_id": rec["channel_id"],
        "order_id": rec["order_id"],
        "flags": rec["flags"],
        "ts_in_delta": rec["ts_in_delta"],
        "sequence": rec["sequence"],
        "last": (rec["flags"] & F_LAST) != 0,
        "snapshot": (rec["flags"] & F_SNAPSHOT) != 0,
        "price_fixed": price,
    })
    return frame.join(lookup, on="instrument_id", how="left", maintain_order="left")


# =================================================================== conversion
@dataclass
class MboReplay:
    """An MBO file as the engine replays it: ``events`` (``kernels.records.EVENT``,
    ``symbol`` = book index) and the F_LAST boundaries (``bnd_event[k]``: events applied
    when boundary ``k`` is reached; ``bnd_book[k]``: the book it closes)."""

    events: np.ndarray
    instruments: list            # book index -> instrument_id
    symbols: list                # book index -> name (the engine's symbols)
    ticks: list                  # book index -> tick in price units
    price_scale: int
    bnd_event: np.ndarray        # int64 [boundaries]
    bnd_book: np.ndarray         # int32 [boundaries]
    bnd_ts_recv: np.ndarray      # int64 [boundaries]
    bnd_ts_event: np.ndarray     # int64 [boundaries]
    actions: np.ndarray          # int64 [books, 7]: records per action (ACTION_LETTERS order)
    records: int
    malformed: int = 0
    source: str = ""

    @property
    def n_books(self) -> int:
        return len(self.instruments)

    def book_of(self, symbol) -> int:
        """Book index of an instrument: its symbol, its instrument_id (int or digits), or
        a book position below the number of books (0: the first)."""
        if isinstance(symbol, str):
            if symbol in self.symbols:
                return self.symbols.index(symbol)
            if symbol.isdigit():
                symbol = int(symbol)
        if isinstance(symbol, (int, np.integer)) and not isinstance(symbol, bool):
            if int(symbol) in self.instruments:
                return self.instruments.index(int(symbol))
            if 0 <= int(symbol) < self.n_books:
                return int(symbol)
        choices = ", ".join(f"{s} ({i})" for s, i in zip(self.symbols, self.instruments))
        raise InputError(f"symbol={symbol!r} is not an instrument of {self.source or 'the file'} "
                         f"(instruments: {choices})")


def _price_scale(fixed: np.ndarray, price_scale) -> int:
    if price_scale is not None:
        if (isinstance(price_scale, bool) or not isinstance(price_scale, (int, np.integer))
                or price_scale <= 0 or FIXED_SCALE % int(price_scale)):
            raise ValueError(f"price_scale={price_scale!r} must be a positive divisor of "
                             f"{FIXED_SCALE} (Databento's 1e-9 fixed point)")
        divisor = FIXED_SCALE // int(price_scale)
        off = fixed % divisor != 0
        if off.any():
            bad = int(fixed[np.flatnonzero(off)[0]])
            raise ValueError(f"price={bad / FIXED_SCALE!r} is not a multiple of "
                             f"1/price_scale (1/{price_scale}); pass a larger price_scale")
        return int(price_scale)
    scale = PRICE_SCALE
    while scale < FIXED_SCALE and (fixed % (FIXED_SCALE // scale)).any():
        scale *= 10
    return scale


def _ticks(book: np.ndarray, units: np.ndarray, priced: np.ndarray, n_books: int) -> list:
    ticks = [0] * n_books
    mask = priced & (units > 0)
    if mask.any():
        b = book[mask]
        u = units[mask]
        order = np.argsort(b, kind="stable")
        b, u = b[order], u[order]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        for s, g in zip(b[starts], np.gcd.reduceat(u, starts)):
            ticks[int(s)] = int(g)
    return [t if t > 0 else 1 for t in ticks]


def to_events(mbo, price_scale: int | None = None,
              tick_size: float | Mapping | None = None) -> MboReplay:
    """Replay events from an :class:`MboFile` (or its frame), by the rules of the module
    docstring. ``price_scale``: price units per currency unit (default: 10,000, or finer
    when a price needs it); ``tick_size``: one tick for every book, or
    ``{instrument_id or symbol: tick}`` (default: each book's price gcd)."""
    frame = mbo.frame if isinstance(mbo, MboFile) else mbo
    malformed = mbo.malformed if isinstance(mbo, MboFile) else 0
    source = mbo.source if isinstance(mbo, MboFile) else ""
    if not isinstance(frame, pl.DataFrame) or "price_fixed" not in frame.columns:
        raise ValueError("to_events needs an MboFile or the frame read_mbo returns")
    n = frame.height
    action = frame["action"].to_physical().to_numpy().astype(np.int64)
    side = frame["side"].to_physical().to_numpy().astype(np.int64)
    fixed = frame["price_fixed"].to_numpy()
    size = frame["size"].to_numpy().astype(np.int64)
    instrument = frame["instrument_id"].to_numpy()
    flags = frame["flags"].to_numpy()

    ids, first, inverse = np.unique(instrument, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids))
    book = rank[inverse].astype(np.int32) if n else np.zeros(0, np.int32)
    instruments = [int(i) for i in ids[order]]
    names = frame.select("instrument_id", "symbol").unique("instrument_id", keep="first")
    name_of = dict(zip(names["instrument_id"].to_list(), names["symbol"].to_list()))
    symbols = [name_of.get(i) or str(i) for i in instruments]
    if len(set(symbols)) != len(symbols):  # one symbol mapped to several instrument ids
        symbols = [f"{s} ({i})" for s, i in zip(symbols, instruments)]

    defined = fixed != UNDEF_PRICE
    scale = _price_scale(fixed[defined], price_scale)
    units = np.where(defined, fixed // (FIXED_SCALE // scale), 0)
    book_priced = (action == A_ADD) | (action == A_MODIFY)
    ticks = _ticks(book, units, book_priced & defined, len(instruments))
    if tick_size is not None:
        ticks = _tick_override(tick_size, ticks, instruments, symbols, scale)

    kinds = np.array([R.EV_REST, R.EV_CANCEL, R.EV_MOVE, R.EV_CLEAR, R.EV_EXECUTE_HIDDEN, 0, 0],
                     np.int8)
    kind = kinds[action]
    kind[(action == A_CANCEL) & (size == 0)] = 0
    kind[(action == A_MODIFY) & (size == 0)] = R.EV_DELETE
    kind[(action == A_TRADE) & (side == S_NONE)] = 0
    emit = kind != 0
    events = np.zeros(int(emit.sum()), R.EVENT)
    events["ts"] = frame["ts_recv"].to_numpy()[emit]
    events["order_id"] = frame["order_id"].to_numpy()[emit].view(np.int64)
    events["price"] = units[emit]
    events["qty"] = size[emit]
    events["symbol"] = book[emit]
    events["kind"] = kind[emit]
    book_side = np.array([R.BUY, R.SELL, -1], np.int8)[side]
    trade_side = np.array([R.SELL, R.BUY, -1], np.int8)[side]  # the resting side
    events["side"] = np.where(action == A_TRADE, trade_side, book_side)[emit]
    events["order_type"] = R.LIMIT
    events["tif"] = R.GTC

    last = (flags & F_LAST) != 0
    bnd_event = np.cumsum(emit, dtype=np.int64)[last]
    actions = np.bincount(book.astype(np.int64) * 7 + action,
                          minlength=len(instruments) * 7).reshape(len(instruments), 7)
    return MboReplay(events, instruments, symbols, ticks, scale, bnd_event,
                     book[last].astype(np.int32), frame["ts_recv"].to_numpy()[last].astype(np.int64),
                     frame["ts_event"].to_numpy()[last].astype(np.int64), actions, n, malformed,
                     source)


def _tick_override(tick_size, ticks, instruments, symbols, scale) -> list:
    items = tick_size.items() if isinstance(tick_size, Mapping) else \
        [(i, tick_size) for i in instruments]
    out = list(ticks)
    for key, value in items:
        if key in instruments:
            b = instruments.index(key)
        elif key in symbols:
            b = symbols.index(key)
        else:
            raise ValueError(f"tick_size names {key!r}, not an instrument of the file")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"tick_size={value!r} for {key!r} must be a positive number")
        units = round(value * scale)
        if units < 1 or not math.isclose(units, value * scale, rel_tol=1e-9):
            raise ValueError(f"tick_size={value!r} for {key!r} is not a multiple of "
                             f"1/price_scale (1/{scale})")
        out[b] = units
    return out


def load_mbo(path, price_scale: int | None = None, tick_size=None) -> MboReplay:
    """The one MBO loader: :func:`read_mbo` then :func:`to_events`."""
    return to_events(read_mbo(path), price_scale, tick_size)


# ======================================================================== replay
def new_engine(data: MboReplay, capacity: int | None = None):
    """An Engine with one book per instrument of ``data`` (its ticks and price scale)."""
    from ..book import Engine

    adds = int(data.actions[:, A_ADD].sum()) if data.n_books else 0
    if capacity is None:
        capacity = min(max(1024, adds + 16), 1 << 23)
    ticks = {s: t / data.price_scale for s, t in zip(data.symbols, data.ticks)}
    return Engine(symbols=list(data.symbols) or ["EMPTY"], tick_size=ticks or 0.01,
                  price_scale=data.price_scale, capacity=capacity, record_fills=False)


@dataclass
class ReplayOutcome:
    engine: object
    bbo: np.ndarray              # int64 [boundaries, 6]: bid px/sz/ct, ask px/sz/ct
    rejects: np.ndarray          # int64 [books, N_REJECT_REASONS]
    events: int
    seconds: float

    @property
    def events_per_sec(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def replay(data: MboReplay, engine=None) -> ReplayOutcome:
    """Apply every event of ``data`` to ``engine`` (a fresh :func:`new_engine` by
    default) with ``kernels.mbo.replay_mbo``, reading the top of book at each boundary."""
    engine = engine if engine is not None else new_engine(data)
    nb = len(data.bnd_event)
    out = np.zeros((6, nb), np.int64)
    rejects = np.zeros(max(1, data.n_books) * R.N_REJECT_REASONS, np.int64)
    fills = np.zeros(16, R.FILL)
    # compile (first use in this process) before the clock starts
    kmbo.replay_mbo(engine.state, data.events[:0], fills, data.bnd_event[:0], data.bnd_book[:0],
                    *out[:, :0], rejects)
    start = time.perf_counter()
    done = kmbo.replay_mbo(engine.state, data.events, fills, data.bnd_event, data.bnd_book,
                           *out, rejects)
    seconds = time.perf_counter() - start
    if done != nb:
        raise RuntimeError(f"replay_mbo wrote {done} of {nb} boundaries")
    return ReplayOutcome(engine, out.T.copy(), rejects.reshape(-1, R.N_REJECT_REASONS),
                         len(data.events), seconds)


# ========================================================================= check
@dataclass
class MboCheck:
    """What ``data mbo-check`` reports (module docstring for the JSON layout)."""

    source: str
    records: int
    malformed: int
    actions: dict
    unknown_refs: int
    boundaries: int
    orders: int
    events: int
    events_per_sec: float
    seconds: float
    price_scale: int
    rejects: dict = field(default_factory=dict)
    instruments: list = field(default_factory=list)
    bbo: pl.DataFrame = field(default=None, repr=False)

    def to_json(self) -> dict:
        first = self.instruments[0] if self.instruments else {"bids": [], "asks": []}
        out = {"records": self.records, "actions": self.actions,
               "unknown_refs": self.unknown_refs, "boundaries": self.boundaries,
               "orders": self.orders, "bids": first["bids"], "asks": first["asks"],
               "events_per_sec": self.events_per_sec}
        if len(self.instruments) > 1:
            out["instruments"] = self.instruments
        if self.malformed:
            out["malformed"] = self.malformed
        if self.rejects:
            out["rejects"] = self.rejects
        return out

    def summary_lines(self) -> list[str]:
        acts = " ".join(f"{k}={v}" for k, v in self.actions.items())
        lines = [f"  file: {self.source}",
                 f"  records: {self.records}" + (f" (malformed lines: {self.malformed})"
                                                 if self.malformed else ""),
                 f"  actions: {acts}",
                 f"  boundaries (F_LAST): {self.boundaries}",
                 f"  unknown refs: {self.unknown_refs}",
                 f"  other rejects: {self.rejects or 'none'}",
                 f"  resting orders at the end: {self.orders}",
                 f"  price scale: {self.price_scale} units per currency unit"]
        for inst in self.instruments:
            lines.append(f"  {inst['symbol']} (instrument {inst['instrument_id']}): "
                         f"{inst['records']} records, {inst['orders']} resting, tick {inst['tick']}")
            for name in ("bids", "asks"):
                levels = ", ".join(f"{p:g} x {q} ({c})" for p, q, c in inst[name]) or "empty"
                lines.append(f"    {name}: {levels}")
        lines.append(f"replayed {self.events} events in {self.seconds * 1e3:.2f} ms: "
                     f"{self.events_per_sec:,.0f} events/s")
        return lines


def _letters(counts) -> dict:
    return {letter: int(c) for letter, c in zip(ACTION_LETTERS, counts)}


def check_mbo(source, levels: int = 10, price_scale: int | None = None) -> MboCheck:
    """Replay an MBO file (a path or an :class:`MboReplay`) through the engine; counts,
    unknown references, the book at the end and the top of book at every boundary."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InputError(f"--levels {levels!r} must be a positive integer")
    data = source if isinstance(source, MboReplay) else load_mbo(source, price_scale)
    outcome = replay(data)
    engine, scale = outcome.engine, data.price_scale
    rejects = outcome.rejects
    instruments = []
    for b, (inst, sym) in enumerate(zip(data.instruments, data.symbols)):
        counts = rejects[b]
        instruments.append({
            "instrument_id": inst, "symbol": sym, "records": int(data.actions[b].sum()),
            "actions": _letters(data.actions[b]),
            "unknown_refs": int(counts[R.R_UNKNOWN_ORDER]),
            "boundaries": int((data.bnd_book == b).sum()),
            "orders": int(engine.state.books[b]["orders"].sum()),
            "bids": [[p, q, c] for p, q, c in engine.get_bids(sym, levels)],
            "asks": [[p, q, c] for p, q, c in engine.get_asks(sym, levels)],
            "tick": data.ticks[b] / scale,
        })
    total = rejects.sum(axis=0)
    other = {R.REJECT_REASON_NAMES[i]: int(c) for i, c in enumerate(total)
             if c and i != R.R_UNKNOWN_ORDER}
    bbo = outcome.bbo
    inst_ids = np.asarray(data.instruments, np.uint32)[data.bnd_book] if len(data.bnd_book) \
        else np.zeros(0, np.uint32)
    frame = pl.DataFrame({
        "ts_recv": data.bnd_ts_recv, "ts_event": data.bnd_ts_event, "instrument_id": inst_ids,
        "bid_px": pl.Series(np.where(bbo[:, 1] > 0, bbo[:, 0] / scale, np.nan)).fill_nan(None),
        "bid_sz": bbo[:, 1], "bid_ct": bbo[:, 2],
        "ask_px": pl.Series(np.where(bbo[:, 4] > 0, bbo[:, 3] / scale, np.nan)).fill_nan(None),
        "ask_sz": bbo[:, 4], "ask_ct": bbo[:, 5],
    }, schema={"ts_recv": pl.Int64, "ts_event": pl.Int64, "instrument_id": pl.UInt32,
               "bid_px": pl.Float64, "bid_sz": pl.Int64, "bid_ct": pl.Int64,
               "ask_px": pl.Float64, "ask_sz": pl.Int64, "ask_ct": pl.Int64})
    return MboCheck(
        source=data.source, records=data.records, malformed=data.malformed,
        actions=_letters(data.actions.sum(axis=0) if data.n_books else np.zeros(7, np.int64)),
        unknown_refs=int(total[R.R_UNKNOWN_ORDER]), boundaries=len(data.bnd_event),
        orders=sum(i["orders"] for i in instruments), events=len(data.events),
        events_per_sec=outcome.events_per_sec, seconds=outcome.seconds, price_scale=scale,
        rejects=other, instruments=instruments, bbo=frame)


# ============================================================ synthetic stream (bench)
def synthetic_mbo(n_records: int, n_instruments: int = 1, seed: int = 0,
                  mid: float = 4800.0, tick: float = 0.25, depth: int = 2000) -> np.ndarray:
    """A valid MBO stream of ``n_records`` records (:data:`MBO_DTYPE`), instrument ids
    from 1000: adds near a drifting mid, partial and full cancels, modifies (new price,
    more size, less size), trades (``T``, the resting order's ``F`` and the ``C`` that
    removes the filled size, one event ending in ``F_LAST``) and rare ``N`` records; about
    ``depth`` orders rest per instrument. For benchmarks; tests build their records with
    databento-dbn's own classes."""
    rng = np.random.default_rng(seed)
    m = n_records + 8
    u = rng.random(m).tolist()
    v = rng.random(m).tolist()
    inst_of = rng.integers(0, n_instruments, m).tolist()
    offsets = rng.integers(1, 40, m).tolist()
    sizes = rng.integers(1, 50, m).tolist()
    gaps = rng.integers(1, 20_000, m).tolist()
    fixed_tick = round(tick * FIXED_SCALE)
    mids = [round(mid / tick)] * n_instruments
    live = [dict() for _ in range(n_instruments)]   # order_id -> [side, ticks, size]
    ids = [[] for _ in range(n_instruments)]
    rows = []
    next_id = 1
    ts = 1_700_000_000_000_000_000
    k = 0
    while len(rows) < n_records:
        inst, r, w = inst_of[k], u[k], v[k]
        book, pool = live[inst], ids[inst]
        ts += gaps[k]
        k = (k + 1) % m
        if r < 0.02:
            mids[inst] += 1 if w < 0.5 else -1
        add_below = 0.45 if len(pool) < depth else 0.25
        if not pool or r < add_below:
            side = 1 if w < 0.5 else 0
            price = mids[inst] + offsets[k] * (1 if side else -1)
            book[next_id] = [side, price, sizes[k]]
            pool.append(next_id)
            rows.append((ts, inst, next_id, price, sizes[k], A_ADD, side, F_LAST))
            next_id += 1
            continue
        j = int(w * len(pool))
        oid = pool[j]
        side, price, size = book[oid]
        if r < 0.75:  # cancel, partial or full
            cut = size if w < 0.7 * (j + 1) / len(pool) or size == 1 else 1 + int(w * (size - 1))
            rows.append((ts, inst, oid, price, cut, A_CANCEL, side, F_LAST))
            size -= cut
        elif r < 0.87:  # modify: new price, more size or less size
            if r < 0.81:
                price += offsets[k] % 7 - 3 or 1
            elif r < 0.84:
                size += sizes[k] % 10 + 1
            elif size > 1:
                size -= 1 + (sizes[k] % (size - 1) if size > 2 else 0)
            rows.append((ts, inst, oid, price, size, A_MODIFY, side, F_LAST))
        elif r < 0.99:  # a trade against this order: T, F, C
            fill = 1 + sizes[k] % size
            rows.append((ts, inst, 0, price, fill, A_TRADE, 1 - side, 0))
            rows.append((ts, inst, oid, price, fill, A_FILL, side, 0))
            rows.append((ts, inst, oid, price, fill, A_CANCEL, side, F_LAST))
            size -= fill
        else:
            rows.append((ts, inst, 0, None, 0, A_NONE, S_NONE, F_LAST))
            continue
        if size <= 0:
            book.pop(oid)
            pool[j] = pool[-1]
            pool.pop()
        else:
            book[oid] = [side, price, size]
    rows = rows[:n_records]
    out = np.zeros(len(rows), MBO_DTYPE)
    cols = list(zip(*rows))
    out["length"] = MBO_DTYPE.itemsize // 4
    out["rtype"] = RTYPE_MBO
    out["publisher_id"] = 1
    out["ts_recv"] = cols[0]
    out["ts_event"] = np.asarray(cols[0], np.uint64) - 500
    out["instrument_id"] = np.asarray(cols[1], np.uint32) + 1000
    out["order_id"] = cols[2]
    out["price"] = [UNDEF_PRICE if p is None else p * fixed_tick for p in cols[3]]
    out["size"] = cols[4]
    out["action"] = np.frombuffer(ACTION_LETTERS.encode(), np.uint8)[list(cols[5])]
    out["side"] = np.frombuffer(SIDE_LETTERS.encode(), np.uint8)[list(cols[6])]
    out["flags"] = cols[7]
    out["sequence"] = np.arange(len(rows))
    return out


def write_dbn(path, records: np.ndarray, symbols: Mapping[int, str] | None = None,
              compression: str | None = None, dataset: str = "GLBX.MDP3") -> Path:
    """Write MBO records (:data:`MBO_DTYPE`) as a DBN file through databento-dbn's own
    encoder (``Metadata`` and ``Transcoder``); ``compression="zstd"`` writes
    ``.dbn.zst``. ``symbols`` ({instrument_id: raw symbol}) goes into the metadata's
    symbology mappings."""
    import datetime as dt
    from types import SimpleNamespace

    import databento_dbn as dbn

    if records.dtype != MBO_DTYPE:
        raise ValueError(f"records dtype {records.dtype} is not MBO_DTYPE")
    symbols = dict(symbols or {})
    day = dt.date(1970, 1, 1)
    mappings = [SimpleNamespace(raw_symbol=name, intervals=[SimpleNamespace(
        start_date=day, end_date=dt.date(2100, 1, 1), symbol=str(inst))])
        for inst, name in symbols.items()]
    start = int(records["ts_recv"][0]) if len(records) else 0
    meta = dbn.Metadata(dataset=dataset, start=start, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO,
                        symbols=list(symbols.values()), mappings=mappings)
    comp = dbn.Compression.ZSTD if compression == "zstd" else dbn.Compression.NONE
    path = Path(path)
    with open(path, "wb") as fh:
        encoder = dbn.Transcoder(fh, dbn.Encoding.DBN, comp)
        encoder.write(bytes(meta) + np.ascontiguousarray(records).tobytes())
        encoder.flush()
    return path
