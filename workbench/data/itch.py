"""NASDAQ TotalView-ITCH 5.0 files -> polars frames -> replay events, and synthetic days.

A stored ITCH day is a stream of frames, each a 2-byte big-endian length and one
message (``kernels.itch.frame`` lists the 23 types and their lengths), gzip-compressed
or plain. This module is the one loader of the format:

* :func:`read` decompresses the file (a plain file is memory-mapped), runs the first pass
  (``kernels.itch.frame.scan``: messages per type, bad frames, truncation, where the
  stock directory is) and decodes the stock directory, which names one book per stock
  locate. Nothing here loops over messages in Python.
* :meth:`ItchFeed.decode_events` turns the messages into the engine's ``EVENT`` records
  chunk by chunk (``kernels.itch.decode.decode_events``: A/F rest, E/C execute, X cancel,
  D delete, U delete + rest, P hidden trade, Q cross, H halt); :func:`load` is read +
  every chunk in one array. ``itch-check``, the backtester (``workbench.data.market``)
  and ``bench book`` all consume exactly these events.
* :func:`message_records`, :func:`messages_frame`, :func:`type_table`: the messages as
  polars frames, names instead of codes and prices as prices.
* :func:`check`: the replay check behind ``python -m workbench data itch-check``.
* :func:`write_itch` and :func:`synthetic_day`: the writer (``kernels.itch.encode``) that
  turns simulator flow into a valid ITCH file with its stock directory and system events.

Bad input never raises from the kernels: frames with a wrong length or an unknown
type are skipped and counted, a file that ends inside a frame (or a gzip stream that
ends early or is corrupt) is reported as truncated with everything before it decoded.

Prices: ITCH's Price(4) fields are dollars x 10,000, the engine's default price scale,
so they enter the engine as they are (Price(8), the MWCB levels, is x 10**8). Each
book's tick is the largest divisor of one cent dividing every price it rested at.
Timestamps are nanoseconds since midnight.
"""
from __future__ import annotations

import os
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import polars as pl

from kernels import records as R
from kernels.itch import decode as itch_decode
from kernels.itch import encode as itch_encode
from kernels.itch import frame as itch_frame
from kernels.itch import refs as itch_refs
from kernels.itch import replay as itch_replay

from ..buffers import byte_buffer
from ..errors import InputError, file_error
from .prices import PRICE_SCALE

__all__ = ["MESSAGE_NAMES", "ItchFeed", "read", "load", "from_bytes", "message_records",
           "messages_frame", "type_table", "check", "summary_lines", "write_itch",
           "synthetic_day", "looks_like_itch", "itch_market_events"]

MESSAGE_NAMES = {t: name for t, (_, name) in itch_frame.MSG_TYPES.items()}
_NAME_TYPES = {name: t for t, name in MESSAGE_NAMES.items()}
PRICE8_SCALE = 100_000_000
TICK_CAP = itch_frame.TICK_CAP
_ORDER_TYPES = ("A", "F", "E", "C", "X", "D", "U", "P")

# The fields of each message type, as the spec names them: (column, ITCH_MSG slot, code
# index for one-character fields). Slots are documented in kernels.itch.decode.
FIELDS: dict[str, tuple] = {
    "S": (("event_code", "code", 0),),
    "R": (("stock", "stock"), ("market_category", "code", 0), ("financial_status", "code", 1),
          ("round_lot_size", "shares"), ("round_lots_only", "code", 2),
          ("issue_classification", "code", 3), ("issue_subtype", "code2", 4),
          ("authenticity", "code", 6), ("short_sale_threshold", "code", 7),
          ("ipo_flag", "code", 8), ("luld_tier", "code", 9), ("etp_flag", "code", 10),
          ("etp_leverage_factor", "aux"), ("inverse_indicator", "code", 11)),
    "H": (("stock", "stock"), ("trading_state", "code", 0), ("reserved", "code", 1),
          ("reason", "mpid")),
    "Y": (("stock", "stock"), ("reg_sho_action", "code", 0)),
    "L": (("mpid", "mpid"), ("stock", "stock"), ("primary_market_maker", "code", 0),
          ("market_maker_mode", "code", 1), ("participant_state", "code", 2)),
    "V": (("level1", "price8"), ("level2", "price8_2"), ("level3", "price8_3")),
    "W": (("breached_level", "code", 0),),
    "K": (("stock", "stock"), ("release_time", "aux"), ("release_qualifier", "code", 0),
          ("ipo_price", "price")),
    "J": (("stock", "stock"), ("reference_price", "price"), ("upper_price", "price2"),
          ("lower_price", "price3"), ("extension", "aux")),
    "h": (("stock", "stock"), ("market_code", "code", 0), ("halt_action", "code", 1)),
    "A": (("ref", "ref"), ("side", "side"), ("shares", "shares"), ("stock", "stock"),
          ("price", "price")),
    "F": (("ref", "ref"), ("side", "side"), ("shares", "shares"), ("stock", "stock"),
          ("price", "price"), ("attribution", "mpid")),
    "E": (("ref", "ref"), ("shares", "shares"), ("match", "match")),
    "C": (("ref", "ref"), ("shares", "shares"), ("match", "match"),
          ("printable", "code", 0), ("price", "price")),
    "X": (("ref", "ref"), ("shares", "shares")),
    "D": (("ref", "ref"),),
    "U": (("ref", "ref"), ("new_ref", "new_ref"), ("shares", "shares"), ("price", "price")),
    "P": (("ref", "ref"), ("side", "side"), ("shares", "shares"), ("stock", "stock"),
          ("price", "price"), ("match", "match")),
    "Q": (("shares", "shares"), ("stock", "stock"), ("price", "price"), ("match", "match"),
          ("cross_type", "code", 0)),
    "B": (("match", "match"),),
    "I": (("paired_shares", "shares"), ("imbalance_shares", "aux"),
          ("imbalance_direction", "direction"), ("stock", "stock"), ("far_price", "price"),
          ("near_price", "price2"), ("reference_price", "price3"), ("cross_type", "code", 0),
          ("price_variation", "code", 1)),
    "N": (("stock", "stock"), ("interest_flag", "code", 0)),
    "O": (("stock", "stock"), ("open_eligibility", "code", 0), ("min_price", "price"),
          ("max_price", "price2"), ("near_price", "price3"), ("near_time", "aux"),
          ("lower_collar", "price4"), ("upper_collar", "price5")),
}
assert set(FIELDS) == set(MESSAGE_NAMES)


# ------------------------------------------------------------------------ reading
def _read_file(path: Path) -> tuple[np.ndarray, str | None]:
    """The decompressed bytes of a file and the gzip problem, if any (None: clean)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        if path.stat().st_size == 0:
            return byte_buffer(b""), None
        return byte_buffer(np.memmap(path, dtype=np.uint8, mode="r")), None
    out = bytearray()
    problem = None
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 24)
            if not block:
                break
            try:
                out += d.decompress(block)
                while d.eof and d.unused_data:  # a multi-member gzip file
                    rest = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    out += d.decompress(rest)
            except zlib.error as exc:
                problem = f"corrupt gzip stream after {len(out):,} bytes ({exc})"
                break
    if problem is None and not d.eof:
        try:
            out += d.flush()
        except zlib.error:
            pass
        problem = f"gzip stream ends early (truncated file) after {len(out):,} bytes"
    return byte_buffer(bytes(out) if not out else out), problem


def looks_like_itch(path) -> bool:
    """True for a file named like ITCH (``.itch``, ``ITCH_50``...) or whose first frame is
    a 12-byte system event, as every ITCH day starts."""
    path = Path(path)
    if "itch" in path.name.lower():
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 3)
    except (OSError, zlib.error):
        return False
    return head[:3] == b"\x00\x0cS"


@dataclass
class ItchFeed:
    """One ITCH file after the first pass: its bytes, counts and books (module doc)."""

    source: str
    data: np.ndarray                 # decompressed bytes, read-only uint8
    counts: np.ndarray               # kernels.itch.frame scan counts
    per_locate: np.ndarray           # valid messages per stock locate
    directory: pl.DataFrame          # one row per stock locate named by an R message
    books: list[str]                 # book index -> stock
    book_locates: np.ndarray         # book index -> stock locate
    book_ticks: np.ndarray           # book index -> tick (price units)
    locate_book: np.ndarray          # stock locate -> book index (-1 not selected, -2 unlisted)
    gzip_problem: str | None = None
    read_seconds: float = 0.0
    scan_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_counts: np.ndarray | None = None
    events: np.ndarray | None = None  # set by load()
    price_scale: int = PRICE_SCALE
    selected_all: bool = True        # every listed stock is a book

    # ----------------------------------------------------------------- summaries
    @property
    def n_messages(self) -> int:
        return int(self.counts[itch_frame.IC_MESSAGES])

    def message_counts(self) -> dict[str, int]:
        """Valid messages per type name, in the spec's order."""
        return {name: int(self.counts[ord(t)]) for t, name in MESSAGE_NAMES.items()
                if self.counts[ord(t)]}

    def selected_message_counts(self) -> dict[str, int]:
        """Valid messages of the selected books per type name, in the spec's order, as the
        decode walk counted them (empty before :meth:`decode_events` ran). Market-wide
        messages (locate 0: system events and the like) belong to no book."""
        if self.decode_counts is None:
            return {}
        row = self.decode_counts[itch_decode.DC_TYPES:]
        return {name: int(row[ord(t)]) for t, name in MESSAGE_NAMES.items() if row[ord(t)]}

    @property
    def truncated(self) -> bool:
        return bool(self.counts[itch_frame.IC_TRUNCATED]) or self.gzip_problem is not None

    @property
    def complete(self) -> bool:
        """Starts with a start-of-messages and ends with an end-of-messages system event,
        with no truncation."""
        return (not self.truncated and self.counts[itch_frame.IC_START_OF_MESSAGES] > 0
                and self.counts[itch_frame.IC_END_OF_MESSAGES] > 0)

    def bad_frames(self) -> dict[str, object]:
        c = self.counts
        return {"bad_length": int(c[itch_frame.IC_BAD_LENGTH]),
                "unknown_type": int(c[itch_frame.IC_UNKNOWN_TYPE]),
                "skipped_bytes": int(c[itch_frame.IC_SKIPPED_BYTES]),
                "truncated": bool(c[itch_frame.IC_TRUNCATED]),
                "truncated_bytes": int(c[itch_frame.IC_TRUNCATED_BYTES]),
                "gzip": self.gzip_problem}

    def reference_problems(self) -> dict[str, int]:
        """What the decoder could not turn into events (after :meth:`decode_events`)."""
        c = self.decode_counts if self.decode_counts is not None else np.zeros(
            itch_decode.N_DECODE_COUNTS, np.int64)
        return {"unknown_refs": int(c[itch_decode.DC_UNKNOWN_REFS]),
                "duplicate_refs": int(c[itch_decode.DC_DUPLICATE_REFS]),
                "bad_values": int(c[itch_decode.DC_BAD_VALUES]),
                "overfills": int(c[itch_decode.DC_OVERFILLS]),
                "unlisted": int(c[itch_decode.DC_UNLISTED])}

    @property
    def peak_live(self) -> int:
        """Most orders live at once (after :meth:`decode_events`)."""
        if self.decode_counts is None:
            raise ValueError("peak_live is known after decode_events() or load()")
        return int(self.decode_counts[itch_decode.DC_PEAK_LIVE])

    def book_index(self, symbol) -> int:
        """A stock name, or a book index, -> book index."""
        if isinstance(symbol, (int, np.integer)) and not isinstance(symbol, bool):
            if not 0 <= int(symbol) < len(self.books):
                raise ValueError(f"symbol={symbol!r} is not a book index "
                                 f"(0..{len(self.books) - 1})")
            return int(symbol)
        if isinstance(symbol, str) and symbol in self.books:
            return self.books.index(symbol)
        shown = ", ".join(self.books[:12]) + (" ..." if len(self.books) > 12 else "")
        raise ValueError(f"symbol={symbol!r} is not in {self.source}'s stock directory ({shown})")

    # ---------------------------------------------------------------- the events
    def decode_events(self, on_chunk: Callable[[np.ndarray], None], chunk_events: int = 1 << 20,
                      progress: bool = False) -> np.ndarray:
        """Decode every book message into ``EVENT`` records, ``chunk_events`` at a time,
        calling ``on_chunk(events)`` with each chunk (a view into a reused buffer: copy
        what you keep). Returns the decoder's ``DC_*`` counts (also kept as
        ``decode_counts``)."""
        if not isinstance(chunk_events, (int, np.integer)) or chunk_events < 2:
            raise ValueError(f"chunk_events={chunk_events!r} must be an integer >= 2")
        buf = self.data
        counts = np.zeros(itch_decode.N_DECODE_COUNTS, dtype=np.int64)
        # the table starts with room for the file's adds, up to half a million live
        # orders (32 MB): a full day's table then grows once or not at all, where from a
        # small start each doubling rehashed every live order (2 ns a message of the day)
        adds = int(self.counts[ord("A")] + self.counts[ord("F")] + self.counts[ord("U")])
        table = itch_refs.new_table(min(adds, 1 << 19))
        out = np.zeros(int(chunk_events), dtype=R.EVENT)
        bar = _bar(progress, len(buf), "decode", "B")
        pos = 0
        started = time.perf_counter()
        while True:
            nxt, n, status = itch_decode.decode_events(buf, pos, len(buf), self.locate_book,
                                                       table, counts, out)
            if n:
                on_chunk(out[:n])
            if bar is not None:
                bar.update(nxt - pos)
            pos = nxt
            if status == itch_decode.DECODE_TABLE_FULL:
                table = itch_refs.grow(table)
            elif status == itch_decode.DECODE_DONE:
                break
        if bar is not None:
            bar.close()
        self.decode_seconds = time.perf_counter() - started
        self.decode_counts = counts
        return counts

    def all_events(self, progress: bool = False) -> np.ndarray:
        """Every event in one array (what :func:`load` stores as ``events``)."""
        if self.events is None:
            # a U makes two events, every other message at most one
            mine = int(self.per_locate[self.book_locates].sum())
            bound = min(2 * mine, self.n_messages + int(self.counts[ord("U")]))
            events = np.zeros(bound, dtype=R.EVENT)
            filled = 0

            def keep(chunk):
                nonlocal filled
                events[filled:filled + len(chunk)] = chunk
                filled += len(chunk)

            self.decode_events(keep, chunk_events=max(2, min(bound, 1 << 20)), progress=progress)
            self.events = events[:filled]
        return self.events

    def new_engine(self, capacity: int | None = None, price_levels: int | None = None,
                   record_fills: bool = False):
        """An ``Engine`` with one book per selected stock at its tick, room for the most
        orders the day had live at once (decode first), and ``price_levels`` per side in
        each book's window (the engine's default for this many books when None)."""
        from workbench.book import Engine

        if not self.books:
            raise InputError(f"{self.source}: no stock directory message names a book")
        if capacity is None:
            capacity = self.peak_live + 1024
        ticks = {s: int(t) / self.price_scale for s, t in zip(self.books, self.book_ticks)}
        return Engine(symbols=list(self.books), tick_size=ticks, price_scale=self.price_scale,
                      capacity=int(capacity), price_levels=price_levels, record_fills=record_fills)


def _bar(progress: bool, total: int, desc: str, unit: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True)


def _stock_text(values: np.ndarray) -> list[str]:
    """raw8 stock slots -> stripped text."""
    raw = np.ascontiguousarray(values, dtype=np.uint64).view("S8")
    return [s.decode("ascii", "replace").strip() for s in raw.tolist()]


def _directory(buf: np.ndarray, offsets: np.ndarray) -> pl.DataFrame:
    records = np.zeros(len(offsets), dtype=R.ITCH_MSG)
    itch_decode.decode_at(buf, offsets, records)
    table = type_table(records, "R", with_header=True)
    return (table.unique("locate", keep="first", maintain_order=True).sort("locate")
            .drop("type", "tracking", "offset", strict=False))


def from_bytes(data, symbols: Sequence[str] | None = None, source: str = "<bytes>",
               gzip_problem: str | None = None, read_seconds: float = 0.0) -> ItchFeed:
    """The first pass over ITCH bytes already in memory (module doc)."""
    buf = byte_buffer(data)
    counts = np.zeros(itch_frame.N_SCAN_COUNTS, dtype=np.int64)
    per_locate = np.zeros(itch_frame.N_LOCATES, dtype=np.int64)
    ticks = np.full(itch_frame.N_LOCATES, TICK_CAP, dtype=np.int64)
    started = time.perf_counter()
    offsets = np.zeros(4096, dtype=np.int64)
    _, n_dir = itch_frame.scan(buf, 0, len(buf), True, counts, per_locate, ticks, offsets)
    if counts[ord("R")] > len(offsets):  # rare: more directory messages than the first guess
        offsets = np.zeros(int(counts[ord("R")]), dtype=np.int64)
        counts[:] = 0
        per_locate[:] = 0
        ticks[:] = TICK_CAP
        _, n_dir = itch_frame.scan(buf, 0, len(buf), True, counts, per_locate, ticks, offsets)
    scan_seconds = time.perf_counter() - started
    directory = _directory(buf, offsets[:n_dir])
    listed = directory["locate"].to_list()
    names = directory["stock"].to_list()
    unique_names, seen = [], set()
    for locate, name in zip(listed, names):
        name = name or f"#{locate}"
        if name in seen:
            name = f"{name}#{locate}"
        seen.add(name)
        unique_names.append(name)
    directory = directory.with_columns(pl.Series("symbol", unique_names, dtype=pl.Utf8))
    by_name = dict(zip(unique_names, listed))
    if symbols is None:
        chosen = unique_names
    else:
        if isinstance(symbols, str) or not all(isinstance(s, str) for s in symbols):
            raise ValueError(f"symbols={symbols!r} must be a list of stock names")
        unknown = [s for s in symbols if s not in by_name]
        if unknown:
            shown = ", ".join(unique_names[:12]) + (" ..." if len(unique_names) > 12 else "")
            raise InputError(f"{source}: symbol(s) {', '.join(unknown)} not in the stock "
                             f"directory ({shown or 'empty'})")
        chosen = list(dict.fromkeys(symbols))
    locate_book = np.full(itch_frame.N_LOCATES, -2, dtype=np.int32)
    locate_book[listed] = -1
    book_locates = np.array([by_name[s] for s in chosen], dtype=np.int32)
    locate_book[book_locates] = np.arange(len(chosen), dtype=np.int32)
    return ItchFeed(
        source=source, data=buf, counts=counts, per_locate=per_locate, directory=directory,
        books=list(chosen), book_locates=book_locates, book_ticks=ticks[book_locates].copy(),
        locate_book=locate_book, gzip_problem=gzip_problem, read_seconds=read_seconds,
        scan_seconds=scan_seconds, selected_all=symbols is None)


def read(path, symbols: Sequence[str] | None = None) -> ItchFeed:
    """Read an ITCH file (gzip or plain) and run the first pass; ``symbols`` (stock
    names) selects the books, all of the directory by default."""
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such ITCH file")
    started = time.perf_counter()
    buf, problem = _read_file(path)
    return from_bytes(buf, symbols, source=str(path), gzip_problem=problem,
                      read_seconds=time.perf_counter() - started)


def load(path, symbols: Sequence[str] | None = None, progress: bool = False) -> ItchFeed:
    """The loader: :func:`read`, then every book message as ``EVENT`` records in
    ``feed.events`` (``symbol`` = book index, prices in units of 1/10,000 dollar)."""
    feed = path if isinstance(path, ItchFeed) else read(path, symbols)
    feed.all_events(progress=progress)
    return feed


def itch_market_events(path, symbol) -> tuple[np.ndarray, int, str]:
    """One stock's events as book 0, its tick and a label: what ``workbench.data.market``
    replays for ``Backtest(path, symbol=...)`` (a stock name, or a book index)."""
    everything = read(path)
    name = everything.books[everything.book_index(symbol)] if everything.books else symbol
    feed = load(from_bytes(everything.data, [name], source=everything.source,
                           gzip_problem=everything.gzip_problem))
    events = feed.events.copy()
    if len(events) == 0:
        raise InputError(f"{feed.source}: no book messages for {name}")
    events["symbol"] = 0
    return events, int(feed.book_ticks[0]), f"ITCH {Path(feed.source).name} {name}"


# ------------------------------------------------------------------ message frames
def message_records(source, symbols: Sequence[str] | None = None) -> np.ndarray:
    """Every valid message (of the selected stocks, plus the market-wide ones) as
    ``ITCH_MSG`` records; ``source`` is a path, bytes or an :class:`ItchFeed`."""
    if isinstance(source, ItchFeed):
        feed = source
    elif isinstance(source, (str, os.PathLike)):
        feed = read(source, symbols)
    else:
        feed = from_bytes(source, symbols)
    keep = np.zeros(itch_frame.N_LOCATES, dtype=np.uint8)
    if feed.selected_all:
        keep[:] = 1
    else:
        keep[0] = 1  # market-wide messages
        keep[feed.book_locates] = 1
    bound = int(feed.per_locate[keep.astype(bool)].sum())
    out = np.zeros(bound, dtype=R.ITCH_MSG)
    _, n, _ = itch_decode.decode_messages(feed.data, 0, len(feed.data), keep, out)
    return out[:n]


def _codes_text(records: np.ndarray, index: int, width: int = 1) -> list[str | None]:
    codes = np.ascontiguousarray(records["codes"][:, index:index + width])
    raw = codes.view(f"S{width}").reshape(-1)
    return [s.decode("ascii", "replace") for s in raw.tolist()]


def _column(records: np.ndarray, t: str, slot: str, arg=None) -> pl.Series | list:
    if slot == "code":
        return _codes_text(records, arg)
    if slot == "code2":
        return _codes_text(records, arg, 2)
    if slot == "stock":
        return _stock_text(records["stock"])
    if slot == "mpid":
        raw = np.ascontiguousarray(records["mpid"], dtype=np.uint32).view("S4")
        return [s.decode("ascii", "replace").strip() for s in raw.tolist()]
    if slot == "side":
        return np.where(records["side"] == ord("B"), "buy",
                        np.where(records["side"] == ord("S"), "sell", "?")).tolist()
    if slot == "direction":
        return [chr(c) for c in records["side"].tolist()]
    if (slot in ("ref", "new_ref", "match") or (slot == "shares" and t in "QI")
            or (slot == "aux" and t in "IO")):  # the spec's 8-byte unsigned integers
        return pl.Series(np.ascontiguousarray(records[slot]).view(np.uint64))
    if slot.startswith("price8"):
        name = {"price8": "price", "price8_2": "price2", "price8_3": "price3"}[slot]
        return pl.Series(np.ascontiguousarray(records[name]).view(np.uint64) / PRICE8_SCALE)
    if slot.startswith("price"):
        return pl.Series(records[slot] / PRICE_SCALE)
    return pl.Series(np.ascontiguousarray(records[slot]))


def type_table(records: np.ndarray, msg_type: str, with_header: bool = True) -> pl.DataFrame:
    """The messages of one type (a type character or name) with the spec's field names:
    stock locate, tracking number and time first (``with_header``), then the type's own
    fields; prices as dollars, one-character codes as text."""
    t = _NAME_TYPES.get(msg_type, msg_type)
    if t not in FIELDS:
        raise ValueError(f"msg_type={msg_type!r} is not an ITCH 5.0 type ({', '.join(FIELDS)} "
                         f"or {', '.join(_NAME_TYPES)})")
    mine = records[records["msg_type"] == ord(t)]
    columns: dict[str, object] = {}
    if with_header:
        columns["offset"] = pl.Series(mine["offset"])
        columns["locate"] = pl.Series(mine["locate"])
        columns["tracking"] = pl.Series(mine["tracking"])
        columns["ts"] = pl.Series(mine["ts"])
    for spec in FIELDS[t]:
        columns[spec[0]] = _column(mine, t, spec[1], spec[2] if len(spec) > 2 else None)
    return pl.DataFrame(columns)


def messages_frame(records: np.ndarray) -> pl.DataFrame:
    """``ITCH_MSG`` records as one frame: ``offset, ts`` (ns since midnight), ``time`` (the
    time of day; null past 24 h), ``type`` (a name), ``locate, tracking, stock, ref,
    new_ref, match, side`` (buy/sell), ``shares, price`` (dollars), ``mpid``; a field the
    message type has not is null."""
    types = records["msg_type"]
    type_chr = np.array([chr(c) for c in range(256)], dtype=object)[types]

    def where(field_types: str):
        return np.isin(types, np.frombuffer(field_types.encode(), dtype=np.uint8))

    def masked(values, mask):
        return pl.Series(values).set(pl.Series(~mask), None) if len(values) else pl.Series(values)

    stock = np.array(_stock_text(records["stock"]), dtype=object)
    has_stock = where("RHYLKJhAFPQINO")
    price = records["price"] / PRICE_SCALE
    frame = pl.DataFrame({
        "offset": records["offset"],
        "ts": records["ts"],
        "type": [MESSAGE_NAMES.get(t, "?") for t in type_chr.tolist()],
        "locate": records["locate"],
        "tracking": records["tracking"],
        "stock": masked(stock.tolist(), has_stock),
        "ref": masked(np.ascontiguousarray(records["ref"]).view(np.uint64), where("AFECXDUP")),
        "new_ref": masked(np.ascontiguousarray(records["new_ref"]).view(np.uint64), where("U")),
        "match": masked(np.ascontiguousarray(records["match"]).view(np.uint64), where("ECPQB")),
        "side": masked(np.where(records["side"] == ord("B"), "buy", "sell").tolist(), where("AFP")),
        "shares": masked(records["shares"], where("AFECXUPQ")),
        "price": masked(price, where("AFCUPQ")),
        "mpid": masked([s.decode("ascii", "replace").strip() for s in np.ascontiguousarray(
            records["mpid"], dtype=np.uint32).view("S4").tolist()], where("FL")),
    })
    # a 6-byte timestamp reaches 78 hours: past midnight + 24 h there is no time of day
    return frame.with_columns(pl.col("ts").cast(pl.Time, strict=False).alias("time")).select(
        "offset", "ts", "time", *[c for c in frame.columns if c not in ("offset", "ts")])


# --------------------------------------------------------------------- the check
def replay_cached() -> bool:
    """Whether the check's replay kernel is in Numba's on-disk cache (False on a new
    machine: ``itch-check`` then compiles it in a helper process, :func:`precompile_replay`)."""
    from kernels.compile_claims import on_disk

    return on_disk(itch_replay.replay) is not False


def precompile_replay() -> None:
    """The helper task of a cold ``itch-check`` (``workbench.parallel_compile``): the
    replay kernel, with the book kernels it links, compiled by replaying no events into a
    one-book engine through the arrays :func:`check` passes (same types, so the same
    signature), while the main process compiles the book kernels the replay calls
    (``parallel_compile.compile_book_calls``, in the opposite order) and then the first
    pass and the decoder. The kernel inlines the feed kinds' bodies
    (``kernels.book.apply_feed_event``): with the book kernels it calls, it compiles for
    about 25 s, the first pass and the decoder for about 4. A cold ``itch-check`` of the
    ITCH sample took 24.2 s before that inlining, 33.0 s after it in one process, 15.3
    and 16.2 s with this helper (two cores, empty cache, same session)."""
    from workbench.book import Engine

    engine = Engine(symbols=["HELPER"], tick_size=0.01, price_scale=PRICE_SCALE, capacity=16)
    last = np.zeros((1, 4), dtype=np.int64)
    flags = np.zeros(1, dtype=np.uint8)
    itch_replay.replay(engine.state, np.zeros(0, dtype=R.EVENT), 0, 0, np.zeros(16, dtype=R.FILL),
                       last, flags, flags.copy(), np.zeros(1, dtype=R.BOOK_TOP),
                       np.zeros(itch_replay.N_REPLAY_COUNTS, dtype=np.int64))


def check(path, symbols: Sequence[str] | None = None, bbo: str | os.PathLike | None = None,
          progress: bool = False, chunk_events: int = 1 << 20) -> dict:
    """Replay an ITCH file into one engine (a book per stock locate) and report what a
    user should know (``itch-check``): messages per type, books, orders resting at the
    end, unknown references, crossed books, bad frames, truncation, the engine's rejects
    and the speed. ``bbo``: write the top of book of every selected stock whenever it
    changes to this parquet file (``ts, symbol, bid_px, bid_sz, ask_px, ask_sz``)."""
    if bbo is not None and not Path(bbo).parent.is_dir():
        raise file_error(bbo, "its directory does not exist")
    feed = read(path, symbols)
    events = load(feed, progress=progress).events
    result = {
        "file": str(path),
        "messages": feed.message_counts(),
        "total_messages": feed.n_messages,
        "books": len(feed.books),
        "complete_day": bool(feed.complete),
        "bad_frames": feed.bad_frames(),
        **feed.reference_problems(),
        "events": int(len(events)),
    }
    if not feed.selected_all:     # --symbols: what the selected books got, type by type
        result["selected_messages"] = feed.selected_message_counts()
    replay_seconds = 0.0
    writer = _TopWriter(bbo, feed) if bbo is not None else None
    counters = np.zeros(itch_replay.N_REPLAY_COUNTS, dtype=np.int64)
    orders = 0
    rejects: dict[str, int] = {}
    if feed.books:
        engine = feed.new_engine()
        st = engine.state
        fills = np.zeros(16, dtype=R.FILL)
        n_books = len(feed.books)
        last = np.zeros((n_books, 4), dtype=np.int64)
        last[:, 0] = -1
        last[:, 2] = -1
        emit = np.full(n_books, 1 if writer is not None else 0, dtype=np.uint8)
        crossed = np.zeros(n_books, dtype=np.uint8)
        tops = np.zeros(1 << 16 if writer is not None else 1, dtype=R.BOOK_TOP)
        bar = _bar(progress, len(events), "replay", "ev")
        pos = 0
        while pos < len(events):
            stop = min(pos + chunk_events, len(events))
            started = time.perf_counter()
            nxt, n, _ = itch_replay.replay(st, events, pos, stop, fills, last, emit, crossed,
                                           tops, counters)
            replay_seconds += time.perf_counter() - started
            if n and writer is not None:
                writer.write(tops[:n])
            if bar is not None:
                bar.update(nxt - pos)
            pos = nxt
        if bar is not None:
            bar.close()
        stats = engine.stats()
        orders = stats["live_orders"]
        rejects = stats["rejects"]
    if writer is not None:
        writer.close()
    kernel_seconds = feed.scan_seconds + feed.decode_seconds + replay_seconds
    result["seconds"] = {"read": round(feed.read_seconds, 4), "scan": round(feed.scan_seconds, 4),
                         "decode": round(feed.decode_seconds, 4),
                         "replay": round(replay_seconds, 4),
                         "bbo_write": round(writer.seconds, 4) if writer is not None else 0.0}
    result.update({
        "orders_resting": int(orders),
        "crossed_books": int(counters[itch_replay.RC_CROSSED_BOOKS]),
        "crossed_events": int(counters[itch_replay.RC_CROSSED_EVENTS]),
        "top_changes": int(counters[itch_replay.RC_TOP_CHANGES]),
        "bbo_rows": int(counters[itch_replay.RC_ROWS]),
        "engine_rejects": rejects,
        "kernel_seconds": round(kernel_seconds, 4),
        "msgs_per_sec": feed.n_messages / kernel_seconds if kernel_seconds > 0 else 0.0,
    })
    return result


class _TopWriter:
    """BOOK_TOP rows -> one parquet file, streamed chunk by chunk."""

    def __init__(self, path, feed: ItchFeed):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._path = Path(path)
        if self._path.parent and not self._path.parent.is_dir():
            raise file_error(self._path, "its directory does not exist")
        self._names = pa.array(feed.books, type=pa.string())
        self._scale = float(feed.price_scale)
        self.seconds = 0.0
        self._schema = pa.schema([("ts", pa.int64()), ("symbol", pa.string()),
                                  ("bid_px", pa.float64()), ("bid_sz", pa.int64()),
                                  ("ask_px", pa.float64()), ("ask_sz", pa.int64())])
        self._pa = pa
        self._writer = pq.ParquetWriter(str(self._path), self._schema)

    def write(self, rows: np.ndarray) -> None:
        started = time.perf_counter()
        pa = self._pa
        bid_empty = rows["bid_price"] < 0
        ask_empty = rows["ask_price"] < 0
        symbols = pa.DictionaryArray.from_arrays(pa.array(rows["book"]), self._names)
        table = pa.table({
            "ts": pa.array(rows["ts"]),
            "symbol": symbols.cast(pa.string()),
            "bid_px": pa.array(rows["bid_price"] / self._scale, mask=bid_empty),
            "bid_sz": pa.array(rows["bid_qty"], mask=bid_empty),
            "ask_px": pa.array(rows["ask_price"] / self._scale, mask=ask_empty),
            "ask_sz": pa.array(rows["ask_qty"], mask=ask_empty),
        }, schema=self._schema)
        self._writer.write_table(table)
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self._writer.close()


def summary_lines(result: dict) -> list[str]:
    """``itch-check``'s text report."""
    lines = [f"file: {result['file']}"]
    lines.append("messages: " + ", ".join(f"{k} {v:,}" for k, v in result["messages"].items()))
    if "selected_messages" in result:
        lines.append("messages of the selected books: " + (", ".join(
            f"{k} {v:,}" for k, v in result["selected_messages"].items()) or "none"))
    lines.append(f"total messages: {result['total_messages']:,}  books: {result['books']:,}  "
                 f"events: {result['events']:,}  complete day: {result['complete_day']}")
    bad = result["bad_frames"]
    lines.append(f"bad frames: bad_length {bad['bad_length']:,}, unknown_type "
                 f"{bad['unknown_type']:,}, truncated {bad['truncated']} "
                 f"({bad['truncated_bytes']:,} bytes)"
                 + (f", gzip: {bad['gzip']}" if bad["gzip"] else ""))
    lines.append(f"unknown references: {result['unknown_refs']:,}  duplicate references: "
                 f"{result['duplicate_refs']:,}  bad values: {result['bad_values']:,}  "
                 f"unlisted locates: {result['unlisted']:,}")
    lines.append(f"orders resting at the end: {result['orders_resting']:,}  crossed books seen: "
                 f"{result['crossed_books']:,} ({result['crossed_events']:,} events)")
    rejects = ", ".join(f"{k} {v:,}" for k, v in result["engine_rejects"].items()) or "none"
    lines.append(f"engine rejects: {rejects}")
    if result["bbo_rows"]:
        lines.append(f"top of book rows written: {result['bbo_rows']:,}")
    t = result["seconds"]
    lines.append(f"speed: {result['msgs_per_sec']:,.0f} messages/s (scan {t['scan']:.3f} s + "
                 f"decode {t['decode']:.3f} s + replay {t['replay']:.3f} s; reading "
                 f"{t['read']:.3f} s, writing the top of book {t['bbo_write']:.3f} s)")
    return lines


# ---------------------------------------------------------------------- the writer
def _raw8(text: str) -> int:
    data = text.encode("ascii")[:8].ljust(8, b" ")
    return int.from_bytes(data, "little")


def _raw4(text: str) -> int:
    return int.from_bytes(text.encode("ascii")[:4].ljust(4, b" "), "little")


def _system_events(codes: str, ts: int) -> np.ndarray:
    out = np.zeros(len(codes), dtype=R.ITCH_MSG)
    out["msg_type"] = ord("S")
    out["ts"] = ts
    out["codes"][:, 0] = np.frombuffer(codes.encode(), dtype=np.uint8)
    return out


def _directory_records(symbols: Sequence[str], locates: np.ndarray, ts: int) -> np.ndarray:
    out = np.zeros(len(symbols), dtype=R.ITCH_MSG)
    out["msg_type"] = ord("R")
    out["ts"] = ts
    out["locate"] = locates
    out["stock"] = [_raw8(s) for s in symbols]
    out["shares"] = 100                                   # round lot size
    out["codes"][:] = np.frombuffer(b"QNNCZ PNN1NN", dtype=np.uint8)
    return out


def _trading_records(locates: np.ndarray, stocks: np.ndarray, ts: int) -> np.ndarray:
    out = np.zeros(len(locates), dtype=R.ITCH_MSG)
    out["msg_type"] = ord("H")
    out["ts"] = ts
    out["locate"] = locates
    out["stock"] = stocks
    out["codes"][:, 0] = ord("T")
    out["codes"][:, 1] = ord(" ")
    out["mpid"] = _raw4("    ")
    return out


def _encode(records: np.ndarray) -> bytes:
    out = np.zeros(int((2 + itch_frame.MSG_LENGTH[records["msg_type"]]).sum()), dtype=np.uint8)
    n_bytes, _ = itch_encode.encode_messages(records, out)
    return out[:n_bytes].tobytes()


@dataclass
class WriteResult:
    """What :func:`write_itch` wrote."""

    path: Path
    messages: int
    bytes: int
    skipped: int                      # flow events that could not be written
    symbols: list[str] = field(default_factory=list)


class _Sink:
    """Plain or gzip output, written atomically (a temp file renamed at the end)."""

    def __init__(self, path: Path, compress: bool):
        import gzip

        self.path = path
        fd, self.tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        self._raw = os.fdopen(fd, "wb")
        self._fh = (gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=1) if compress
                    else self._raw)
        self.bytes = 0

    def write(self, data) -> None:
        self._fh.write(data)
        self.bytes += len(data)

    def close(self, ok: bool) -> None:
        if self._fh is not self._raw:
            self._fh.close()
        self._raw.close()
        if ok:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def _check_flow(events: np.ndarray, symbols: Sequence[str]) -> list[str]:
    if not isinstance(events, np.ndarray) or events.dtype != R.EVENT or events.ndim != 1:
        raise ValueError("events must be a 1-d array of kernels.records.EVENT")
    symbols = list(symbols)
    if not symbols or not all(isinstance(s, str) and s and s.isascii() and len(s) <= 8
                              for s in symbols):
        raise ValueError(f"symbols must be 1..65535 ASCII names of at most 8 characters, got "
                         f"{symbols[:5]!r}...")
    if len(symbols) > itch_frame.N_LOCATES - 1 or len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be distinct and at most 65,535")
    if len(events):
        if events["symbol"].min() < 0 or events["symbol"].max() >= len(symbols):
            raise ValueError(f"events name books outside 0..{len(symbols) - 1}")
        if events["ts"].min() < 0 or events["ts"].max() >= 86_400 * 10**9:
            raise ValueError("event ts must be ns since midnight (0 .. 86,400 s)")
    return symbols


def write_itch(path, chunks: Iterable[np.ndarray] | np.ndarray, symbols: Sequence[str], *,
               first_ts: int | None = None, last_ts: int | None = None, mpid: str = "WBNC",
               f_every: int = 7, c_every: int = 13, p_every: int = 5, u_every: int = 3,
               compress: bool | None = None, progress: bool = False,
               total_events: int | None = None) -> WriteResult:
    """Write a feed-shaped ``EVENT`` flow (book ``b`` = ``symbols[b]``, stock locate
    ``b + 1``) as an ITCH 5.0 file: start-of-messages, the stock directory, start of system
    hours, trading state 'T' for every stock, start of market hours, the flow's messages
    (``kernels.itch.encode.encode_flow``: A/F, E/C, X, D, U, P, Q, H), end of market hours,
    end of system hours, end of messages. ``chunks`` is one array or an iterable of
    time-ordered arrays (so a day never needs to be in memory at once). ``compress``:
    gzip (default: when ``path`` ends in ``.gz``). ``*_every``: the flow's variations
    (``kernels.itch.encode``; 0 turns one off)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise file_error(path, "its directory does not exist")
    for name, value in (("f_every", f_every), ("c_every", c_every), ("p_every", p_every),
                        ("u_every", u_every)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}={value!r} must be an integer >= 0 (0: never)")
    if isinstance(chunks, np.ndarray):
        chunks = [chunks]
    symbols = list(symbols)
    _check_flow(np.zeros(0, R.EVENT), symbols)
    compress = path.name.endswith(".gz") if compress is None else bool(compress)
    locates = np.arange(1, len(symbols) + 1, dtype=np.int32)
    stocks = np.array([_raw8(s) for s in symbols], dtype=np.uint64)
    params = np.zeros(itch_encode.N_FLOW_PARAMS, dtype=np.int64)
    params[itch_encode.P_F_EVERY] = f_every
    params[itch_encode.P_C_EVERY] = c_every
    params[itch_encode.P_P_EVERY] = p_every
    params[itch_encode.P_U_EVERY] = u_every
    params[itch_encode.P_MPID] = _raw4(mpid)
    state = np.zeros(itch_encode.N_FLOW_STATE, dtype=np.int64)
    state[itch_encode.WS_NEXT_REF] = 1
    state[itch_encode.WS_NEXT_MATCH] = 1
    table = itch_refs.new_table(1 << 15)
    out = np.zeros(itch_encode.MAX_EVENT_BYTES * (1 << 18), dtype=np.uint8)
    sink = _Sink(path, compress)
    ok = False
    messages = 0
    bar = _bar(progress, total_events or 0, "write itch", "ev") if total_events else None
    try:
        start_ts = 0 if first_ts is None else int(first_ts)
        head_ts = max(start_ts - 1_000_000_000, 0)
        head = np.concatenate([
            _system_events("O", head_ts), _directory_records(symbols, locates, head_ts),
            _system_events("S", head_ts), _trading_records(locates, stocks, head_ts),
            _system_events("Q", start_ts)])
        sink.write(_encode(head))
        messages += len(head)
        end_ts = start_ts
        for events in chunks:
            _check_flow(events, symbols)
            if len(events):
                end_ts = max(end_ts, int(events["ts"].max()))
            pos = 0
            while pos < len(events):
                nxt, n_bytes, status = itch_encode.encode_flow(events, pos, table, state, params,
                                                               locates, stocks, out)
                sink.write(out[:n_bytes].data)
                if bar is not None:
                    bar.update(nxt - pos)
                pos = nxt
                if status == itch_encode.ENC_TABLE_FULL:
                    table = itch_refs.grow(table)
        end_ts = max(end_ts, start_ts) if last_ts is None else int(last_ts)
        tail = np.concatenate([_system_events("M", end_ts), _system_events("E", end_ts),
                               _system_events("C", end_ts)])
        sink.write(_encode(tail))
        messages += len(tail) + int(state[itch_encode.WS_MESSAGES])
        ok = True
    finally:
        sink.close(ok)
        if bar is not None:
            bar.close()
    return WriteResult(path, messages, sink.bytes, int(state[itch_encode.WS_SKIPPED]), symbols)


def _tickers(n: int) -> list[str]:
    """``n`` distinct four-letter names (AAAA, AAAB, ...)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for i in range(n):
        name = ""
        for _ in range(4):
            name = letters[i % 26] + name
            i //= 26
        out.append(name)
    return out


def synthetic_day(path, n_symbols: int = 8000, messages: int = 50_000_000, *, seed: int = 0,
                  group: int = 16, stub_quotes: bool = True, progress: bool = True,
                  compress: bool | None = None) -> WriteResult:
    """A full synthetic ITCH day: the simulator's flow (``workbench.data.synthetic``,
    executions by id, about ``messages`` messages over ``n_symbols`` stocks priced
    log-uniformly from $5 to $500) simulated ``group`` stocks at a time, merged in time
    order and written by :func:`write_itch`. ``stub_quotes`` adds a market maker's stub
    quotes to every book at the open ($0.01 bid, $199,999.99 offer), resting all day."""
    from .synthetic import SESSION_SECONDS, SESSION_START_NS, simulate

    for name, value, low in (("n_symbols", n_symbols, 1), ("messages", messages, 1),
                             ("group", group, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    if n_symbols > 65_535:
        raise ValueError(f"n_symbols={n_symbols} exceeds ITCH's 65,535 stock locates")
    group = min(int(group), 64, int(n_symbols))
    symbols = _tickers(n_symbols)
    rng = np.random.default_rng(seed)
    prices = np.round(np.exp(rng.uniform(np.log(5.0), np.log(500.0), n_symbols)), 2)
    # about 1.12 events per simulated arrival, 2.5 arrivals per baseline arrival
    # (Hawkes branching 0.6), 5/3 for the intraday U shape; the writer's P messages add a
    # few percent (measured: this lands 0-5% above ``messages``)
    per_symbol = messages / n_symbols
    rate = max((per_symbol - 20.0) / (SESSION_SECONDS * 2.5 * (5.0 / 3.0) * 1.12), 1e-4)
    parts = []
    groups = range(0, n_symbols, group)
    bar = _bar(progress, n_symbols, "simulate", "stocks")
    total = 0
    for k, first in enumerate(groups):
        names = tuple(symbols[first:first + group])
        market = simulate(n_symbols=len(names), seed=seed * 1_000_003 + k, rate=rate,
                          correlation=0.0, symbols=names,
                          prices=tuple(float(p) for p in prices[first:first + group]))
        events = market.events
        events["symbol"] += first
        parts.append(events)
        total += len(events)
        if bar is not None:
            bar.update(len(names))
    if bar is not None:
        bar.close()
    if stub_quotes:
        stubs = np.zeros(2 * n_symbols, dtype=R.EVENT)
        stubs["ts"] = SESSION_START_NS
        stubs["symbol"] = np.repeat(np.arange(n_symbols, dtype=np.int32), 2)
        stubs["side"] = np.tile(np.array([R.BUY, R.SELL], dtype=np.int8), n_symbols)
        stubs["price"] = np.tile(np.array([100, 1_999_999_900], dtype=np.int64), n_symbols)
        stubs["qty"] = 100
        stubs["kind"] = R.EV_ADD
        stubs["order_id"] = (1 << 39) + stubs["side"].astype(np.int64)
        parts.insert(0, stubs)
        total += len(stubs)
    end_ns = SESSION_START_NS + int(SESSION_SECONDS * 1e9)

    def merged(window_ns: int = 60 * 10**9):
        """The parts in time order, one window of session time at a time."""
        ts_list = [p["ts"] for p in parts]
        lo = 0
        t = SESSION_START_NS
        cursors = [0] * len(parts)
        while lo < total:
            t += window_ns
            pieces = []
            for j, ts in enumerate(ts_list):
                hi = int(np.searchsorted(ts, t, side="left")) if t < end_ns + window_ns else len(ts)
                if hi > cursors[j]:
                    pieces.append(parts[j][cursors[j]:hi])
                    cursors[j] = hi
            if not pieces:
                if t > end_ns + window_ns:
                    break
                continue
            chunk = np.concatenate(pieces)
            chunk = chunk[np.argsort(chunk["ts"], kind="stable")]
            lo += len(chunk)
            yield chunk

    return write_itch(path, merged(), symbols, first_ts=SESSION_START_NS, last_ts=end_ns,
                      compress=compress, progress=progress, total_events=total)
