"""``parse(data) -> FixBatch``: FIX framing, validation and decoding for Python callers.

Owns the Python face of ``kernels.fix``: turning bytes / files / text into a uint8
buffer, sizing the kernels' output arrays, the serial and the parallel (chunked) scan,
dictionary validation, and the ``FixBatch`` result with its polars views. The tag index
points into ``FixBatch.buffer``; values are only materialised when asked for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from kernels.fix import decode as fix_decode
from kernels.fix import fields as fix_fields
from kernels.fix import frame as fix_frame
from kernels.fix import validate as fix_validate
from kernels.records import (
    BUY, EVENT, EXEC_REPORT, FIX_FIELD, FIX_MESSAGE, MAX_SCAN_BYTES, MD_ENTRY, MT_W, MT_X, SELL,
    SR_NONE,
)
from workbench.buffers import byte_buffer, read_only
from workbench.data.prices import PRICE_SCALE, to_price
from workbench.fix.dictionary import SESSION_REJECT_NAMES, load_dictionary

__all__ = ["FixBatch", "Workspace", "parse", "as_buffer", "symbol_keys", "reports_frame",
           "PARALLEL_MIN_BYTES"]

PARALLEL_MIN_BYTES = 1 << 16  # below this a parallel parse is not worth its threads


def as_buffer(data) -> np.ndarray:
    """bytes-like, numpy uint8, ``str`` (FIX text) or ``Path`` (a file) -> a read-only,
    C-contiguous uint8 array (``workbench.buffers``: one compiled type for every kernel;
    no copy for bytes-like and contiguous arrays)."""
    if isinstance(data, os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise ValueError(f"data={str(path)!r} is not a file")
        return read_only(np.fromfile(path, np.uint8))
    if isinstance(data, str):
        data = data.encode("latin-1")
    if isinstance(data, (np.ndarray, bytes, bytearray, memoryview)):
        return byte_buffer(data)
    raise ValueError(f"data: expected bytes, str, a Path or a uint8 array, got {type(data).__name__}")


def symbol_keys(symbols: Sequence[str]) -> np.ndarray:
    """The kernels' lookup keys for a symbol list (index = position in the list)."""
    keys = np.empty(len(symbols), np.int64)
    for i, name in enumerate(symbols):
        raw = np.frombuffer(str(name).encode("latin-1"), np.uint8)
        keys[i] = fix_fields.symbol_key(raw, 0, raw.shape[0])
    if len(set(keys.tolist())) != len(keys):
        raise ValueError(f"symbols={list(symbols)!r} contains duplicates")
    return keys


class Workspace:
    """Reusable output arrays for repeated parses (the hot path then allocates nothing).

    A ``FixBatch`` parsed with a workspace holds views into it: they are overwritten by
    the next parse that uses the same workspace.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def take(self, name: str, dtype, size: int) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.dtype != dtype or array.shape[0] < size:
            array = np.empty(max(int(size), 1), dtype)
            self._arrays[name] = array
        return array[:size]


def _scan_serial(buf: np.ndarray, start: int, stream: bool, ws: Workspace):
    """Serial scan into worst-case-sized outputs (a field takes >= 3 bytes, a message >= 22)."""
    n = buf.shape[0]
    msgs = ws.take("msgs", FIX_MESSAGE, (n - start) // 20 + 16)
    fields = ws.take("fields", FIX_FIELD, (n - start) // 3 + 64)
    counts = np.zeros(fix_frame.N_FIX_COUNTS, np.int64)
    n_msgs, n_fields, pos, status = fix_frame.scan_range(buf, start, n, stream, msgs, fields, counts)
    if status == fix_frame.SCAN_FULL:  # cannot happen with the sizes above; never fail silently
        raise RuntimeError("FIX scan outputs overflowed their worst-case size")
    return msgs[:n_msgs], fields[:n_fields], counts, int(pos), int(status)


def _bounds(n: int, chunks: int) -> np.ndarray:
    """Even split points of range(n) into ``chunks`` parts."""
    return (np.arange(chunks + 1, dtype=np.int64) * n) // chunks


def _chunk_starts(buf: np.ndarray, n_chunks: int) -> list[int]:
    """Split points: the first ``8=FIX`` at or after each 1/n_chunks of the buffer."""
    n = buf.shape[0]
    starts = [0]
    for c in range(1, n_chunks):
        s = int(fix_frame.find_begin(buf, c * n // n_chunks, n))
        if starts[-1] < s < n:
            starts.append(s)
    return starts


def _scan_parallel(buf: np.ndarray, n_chunks: int, ws: Workspace, validate: bool):
    """Chunked parallel scan (and validation); identical to the serial one: falls back to
    it when a message straddles a split point or a chunk's outputs overflow. Returns the
    serial scan's tuple plus whether the messages were validated."""
    n = buf.shape[0]
    starts = np.array(_chunk_starts(buf, n_chunks), np.int64)
    if starts.shape[0] < 2:
        return (*_scan_serial(buf, 0, False, ws), False)
    stops = np.append(starts[1:], n)
    lengths = stops - starts
    msg_offsets = np.zeros(len(starts) + 1, np.int64)
    msg_offsets[1:] = np.cumsum(lengths // 20 + 16)
    field_offsets = np.zeros(len(starts) + 1, np.int64)
    field_offsets[1:] = np.cumsum(lengths // 3 + 256)
    msgs = ws.take("chunk_msgs", FIX_MESSAGE, int(msg_offsets[-1]))
    fields = ws.take("chunk_fields", FIX_FIELD, int(field_offsets[-1]))
    # rows padded to two cache lines so chunks never write the same line
    counts = np.zeros((len(starts), 16), np.int64)
    results = np.zeros((len(starts), 16), np.int64)
    fix_decode.scan_chunks(buf, starts, stops, msgs, msg_offsets, fields, field_offsets, counts,
                           results, validate, *load_dictionary().tables())
    consistent = (bool(np.all(results[:-1, 2] == starts[1:]))
                  and not np.any(results[:, 3] == fix_frame.SCAN_FULL))
    if not consistent:
        return (*_scan_serial(buf, 0, False, ws), False)
    n_msgs, n_fields = fix_decode.compact_chunks(msgs, msg_offsets, fields, field_offsets, results)
    counts = counts[:, :fix_frame.N_FIX_COUNTS].sum(axis=0)
    return msgs[:n_msgs], fields[:n_fields], counts, int(results[-1, 2]), fix_frame.SCAN_DONE, validate


@dataclass
class FixBatch:
    """Parsed FIX messages over one buffer.

    ``messages`` (``FIX_MESSAGE``) and ``fields`` (``FIX_FIELD``) are the kernels' own
    arrays; field spans index ``buffer``. ``counts[FIX_R_*]`` are the framing rejects.
    """

    buffer: np.ndarray
    messages: np.ndarray
    fields: np.ndarray
    counts: np.ndarray
    validated: bool
    symbols: tuple[str, ...] = ()
    price_scale: int = PRICE_SCALE
    consumed: int = 0  # stream mode: bytes fully handled (the rest is an incomplete tail)
    workspace: Workspace | None = field(default=None, repr=False)
    n_chunks: int = 1   # > 1: decoding runs in parallel over this many message ranges
    _keys: np.ndarray = field(default=None, repr=False)

    # ---------------------------------------------------------------- summaries
    @property
    def framing_rejects(self) -> dict[str, int]:
        """Framing reject counts by reason (every reason, zeros included)."""
        return {fix_frame.FIX_REASON_NAMES[r]: int(self.counts[r])
                for r in range(1, fix_frame.N_FIX_REJECT_REASONS)}

    @property
    def validation_rejects(self) -> dict[str, int]:
        """Dictionary (session-level) rejects by reason, only reasons that occurred."""
        reasons = self.messages["reject_reason"]
        codes, numbers = np.unique(reasons[reasons != SR_NONE], return_counts=True)
        return {SESSION_REJECT_NAMES.get(int(c), f"reason_{int(c)}"): int(k) for c, k in zip(codes, numbers)}

    @property
    def valid_mask(self) -> np.ndarray:
        return self.messages["reject_reason"] == SR_NONE

    def summary(self) -> dict:
        """messages / valid / rejected and the reasons (framing and validation) that occurred."""
        framing = {k: v for k, v in self.framing_rejects.items() if v}
        reasons = {**framing, **self.validation_rejects}
        valid = int(self.valid_mask.sum())
        rejected = sum(reasons.values())
        return {"messages": valid + rejected, "valid": valid, "rejected": rejected, "reasons": reasons}

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return int(self.messages.shape[0])

    def value(self, field_index: int) -> bytes:
        f = self.fields[field_index]
        return self.buffer[f["start"]:f["end"]].tobytes()

    def message_bytes(self, i: int) -> bytes:
        m = self.messages[i]
        return self.buffer[m["start"]:m["end"]].tobytes()

    def msg_type(self, i: int) -> str:
        return fix_frame.unpack_msg_type(int(self.messages[i]["msg_type"]))

    def get(self, i: int, tag: int, default=None) -> bytes | None:
        """The raw value of the first ``tag`` in message ``i``."""
        k = fix_fields.find_field(self.fields, self.messages[i], tag)
        return default if k < 0 else self.value(k)

    def message_dict(self, i: int) -> dict[int, str]:
        """Message ``i`` as {tag: value} (last occurrence wins for repeated tags)."""
        m = self.messages[i]
        first = int(m["field_first"])
        return {int(self.fields[k]["tag"]): self.value(k).decode("latin-1")
                for k in range(first, first + int(m["field_count"]))}

    # ------------------------------------------------------------ polars views
    def messages_frame(self) -> pl.DataFrame:
        """One row per framed message."""
        m = self.messages
        seq = m["seq_num"]
        sent = m["sending_time"]
        reject = m["reject_reason"]
        return pl.DataFrame({
            "msg": np.arange(len(m), dtype=np.int64),
            "start": m["start"], "end": m["end"],
            "msg_type": [fix_frame.unpack_msg_type(int(c)) for c in m["msg_type"]],
            "seq_num": pl.Series(seq).set(pl.Series(seq == fix_fields.NO_VALUE), None),
            "sending_time": pl.Series(sent).set(pl.Series(sent == fix_fields.NO_VALUE), None)
                              .cast(pl.Datetime("ns", "UTC")),
            "sender": m["sender"],
            "n_fields": m["field_count"], "body_length": m["body_length"], "checksum": m["checksum"],
            "valid": reject == SR_NONE,
            "reject_reason": [SESSION_REJECT_NAMES.get(int(r)) if r != SR_NONE else None for r in reject],
            "reject_tag": m["reject_tag"],
        })

    def tags_frame(self, values: bool = True) -> pl.DataFrame:
        """One row per tag: message, tag, value span (and the value text if ``values``)."""
        f = self.fields
        frame = {"msg": f["msg"], "tag": f["tag"], "start": f["start"], "end": f["end"]}
        if values:
            raw = self.buffer.tobytes()
            frame["value"] = [raw[s:e].decode("latin-1") for s, e in zip(f["start"].tolist(), f["end"].tolist())]
        return pl.DataFrame(frame)

    def seq_gaps(self) -> pl.DataFrame:
        """MsgSeqNum gaps per sender: rows where seq_num != previous seq_num + 1."""
        frame = self.messages_frame().filter(pl.col("seq_num").is_not_null())
        return (frame.with_columns(expected=pl.col("seq_num").shift(1).over("sender") + 1)
                .filter(pl.col("expected").is_not_null() & (pl.col("seq_num") != pl.col("expected")))
                .select("msg", "sender", "msg_type", "expected", "seq_num", "sending_time"))

    # -------------------------------------------------------------- decoding
    @property
    def symbol_keys(self) -> np.ndarray:
        if self._keys is None:
            self._keys = symbol_keys(self.symbols)
        return self._keys

    @cached_property
    def _orders(self):
        ws = self.workspace or Workspace()
        events = ws.take("events", EVENT, len(self))
        event_msg = ws.take("event_msg", np.int64, len(self))
        if self.n_chunks > 1 and len(self) >= 4 * self.n_chunks:
            bounds = _bounds(len(self), self.n_chunks)
            counts = np.zeros(self.n_chunks, np.int64)
            fix_decode.decode_orders_chunks(self.buffer, self.messages, self.fields, bounds,
                                            self.symbol_keys, self.price_scale, events, event_msg,
                                            counts)
            if counts.sum() == len(self):  # every message an order: already contiguous
                return events, event_msg
            keep = np.concatenate([np.arange(lo, lo + k) for lo, k in zip(bounds[:-1], counts)])
            return events[keep], event_msg[keep]
        n = fix_decode.decode_orders(self.buffer, self.messages, self.fields, self.symbol_keys,
                                     self.price_scale, events, event_msg)
        return events[:n], event_msg[:n]

    @property
    def events(self) -> np.ndarray:
        """D/F/G messages (that passed validation) as engine ``EVENT`` records."""
        return self._orders[0]

    @property
    def event_msg(self) -> np.ndarray:
        """Source message index of each of ``events``."""
        return self._orders[1]

    @cached_property
    def execution_reports(self) -> np.ndarray:
        """ExecutionReports (35=8) as ``EXEC_REPORT`` records."""
        out = np.zeros(len(self), EXEC_REPORT)
        n = fix_decode.decode_exec_reports(self.buffer, self.messages, self.fields, self.symbol_keys,
                                           self.price_scale, out)
        return out[:n]

    def reports_frame(self) -> pl.DataFrame:
        """``execution_reports`` for people: prices as prices, codes as names
        (:func:`reports_frame`)."""
        return reports_frame(self.execution_reports, symbols=self.symbols,
                             price_scale=self.price_scale, buffer=self.buffer)

    @cached_property
    def _market_data(self):
        is_md = np.isin(self.messages["msg_type"], [MT_X, MT_W])
        cap = int(self.messages["field_count"][is_md].sum()) // 2 + 1
        out = np.zeros(cap, MD_ENTRY)
        n, bad = fix_decode.decode_market_data(self.buffer, self.messages, self.fields,
                                               self.symbol_keys, self.price_scale, out)
        return out[:n], int(bad)

    @property
    def md_entries(self) -> np.ndarray:
        """MarketData W/X repeating-group entries as ``MD_ENTRY`` records."""
        return self._market_data[0]

    @property
    def md_group_mismatches(self) -> int:
        """W/X messages whose entry count differed from NoMDEntries (their entries dropped)."""
        return self._market_data[1]

    def events_frame(self, raw: bool = False) -> pl.DataFrame:
        """The decoded ``EVENT`` records, one row per order command, as people read them:
        prices as prices (185.25), symbol, kind, side, order type and time in force by
        name, ``ts`` as a UTC time; ``msg`` is the message each came from. ``raw=True``: the records as the
        engine receives them (integer price units and codes)."""
        frame = pl.DataFrame({name: self.events[name] for name in EVENT.names}).with_columns(
            msg=pl.Series(self.event_msg))
        if raw:
            return frame
        from workbench.enums import EventKind, OrderType, Side, TimeInForce

        names = list(self.symbols)
        return frame.with_columns(
            pl.col("ts").cast(pl.Datetime("ns", "UTC")),
            pl.Series("price", to_price(self.events["price"], self.price_scale)),
            pl.col("symbol").replace_strict(dict(enumerate(names)), default=pl.col("symbol").cast(pl.Utf8),
                                            return_dtype=pl.Utf8),
            EventKind.name_expr("kind"), Side.name_expr("side"), OrderType.name_expr("order_type"),
            TimeInForce.name_expr("tif"))


def reports_frame(reports: np.ndarray, *, symbols: Sequence[str] = (),
                  price_scale: int = PRICE_SCALE, buffer: np.ndarray | None = None) -> pl.DataFrame:
    """``EXEC_REPORT`` records as a table people read: prices as prices (``last_px``
    185.25, not 1852500), ExecType / OrdStatus by their FIX 4.4 names (``FILLED``, not
    50), side and symbol by name, absent values as nulls. ``buffer``: the bytes the
    records were decoded from (for the ClOrdID text)."""
    if not isinstance(reports, np.ndarray) or reports.dtype != EXEC_REPORT:
        raise ValueError("reports: need a numpy array of kernels.records.EXEC_REPORT")
    d = load_dictionary()

    def number(name, price=False):
        values = reports[name]
        out = pl.Series(name, to_price(values, price_scale) if price else values)
        return out.set(pl.Series(values == fix_fields.NO_VALUE), None)

    raw = buffer.tobytes() if buffer is not None else b""
    return pl.DataFrame([
        pl.Series("order_id", reports["order_id"]),
        pl.Series("cl_ord_id", [raw[a:b].decode("latin-1") if b > a else None for a, b in
                                zip(reports["text_start"].tolist(), reports["text_end"].tolist())]
                  if buffer is not None else [None] * len(reports), dtype=pl.Utf8),
        pl.Series("symbol", [symbols[i] if 0 <= i < len(symbols) else None
                             for i in reports["symbol"].tolist()], dtype=pl.Utf8),
        pl.Series("side", [{BUY: "BUY", SELL: "SELL"}.get(s) for s in reports["side"].tolist()],
                  dtype=pl.Utf8),
        pl.Series("exec_type", [d.enum_name(150, c) for c in reports["exec_type"].tolist()],
                  dtype=pl.Utf8),
        pl.Series("ord_status", [d.enum_name(39, c) for c in reports["ord_status"].tolist()],
                  dtype=pl.Utf8),
        number("price", True), number("last_px", True), number("last_qty"),
        number("order_qty"), number("cum_qty"), number("leaves_qty"), number("avg_px", True),
    ])


def parse(data, *, validate: bool = True, parallel: bool | None = None, n_chunks: int | None = None,
          symbols: Sequence[str] = (), price_scale: int = PRICE_SCALE, stream: bool = False,
          workspace: Workspace | None = None) -> FixBatch:
    """Frame, checksum, index (and by default validate) every FIX message in ``data``.

    ``data``: bytes-like, a uint8 array, FIX text (``str``) or a ``Path``. SOH and '|'
    delimiters both work. ``parallel=None`` picks the parallel scan for buffers of 64 KiB
    and more; its result is identical to the serial one. ``symbols`` names the books
    whose index ``EVENT.symbol`` carries (unknown symbols decode as -1). ``stream=True``
    leaves an incomplete tail unparsed (``FixBatch.consumed`` says where it starts).
    ``workspace`` reuses output arrays across calls (see :class:`Workspace`).
    """
    if not isinstance(price_scale, (int, np.integer)) or price_scale <= 0:
        raise ValueError(f"price_scale={price_scale!r} must be a positive integer")
    buf = as_buffer(data)
    if buf.shape[0] > MAX_SCAN_BYTES:
        raise ValueError(f"data is {buf.shape[0]:,} bytes; parse at most {MAX_SCAN_BYTES:,} at a time")
    ws = workspace if workspace is not None else Workspace()
    if n_chunks is not None and (not isinstance(n_chunks, int) or n_chunks < 1):
        raise ValueError(f"n_chunks={n_chunks!r} must be a positive integer")
    if parallel is None:
        parallel = not stream and buf.shape[0] >= PARALLEL_MIN_BYTES
    if parallel and stream:
        raise ValueError("parallel=True cannot be combined with stream=True")
    if parallel:
        import numba
        chunks = n_chunks or max(2, numba.get_num_threads())
        msgs, fields, counts, pos, status, validated = _scan_parallel(buf, chunks, ws, validate)
    else:
        chunks = 1
        msgs, fields, counts, pos, status = _scan_serial(buf, 0, stream, ws)
        validated = False
    batch = FixBatch(buffer=buf, messages=msgs, fields=fields, counts=counts, validated=validate,
                     symbols=tuple(symbols), price_scale=int(price_scale),
                     consumed=pos if stream else buf.shape[0], workspace=workspace, n_chunks=chunks)
    if validate and not validated:
        tables = load_dictionary().tables()
        if parallel and len(msgs) >= 4 * chunks:
            fix_validate.validate_chunks(buf, msgs, fields, _bounds(len(msgs), chunks), *tables)
        else:
            fix_validate.validate(buf, msgs, fields, *tables)
    return batch
