"""Encoding FIX: ExecutionReports from engine fills (kernel-backed) and admin messages.

``encode_execution_report`` turns ``FILL`` (or ``EXEC_REPORT``) records into wire
ExecutionReports with correct BodyLength and CheckSum through
``kernels.fix.encode.encode_exec_reports``; ``execution_reports_from_fills`` is the step in
between, from one side's point of view. ``build_message`` renders the low-rate session
messages (Logon, Heartbeat, Reject, ...) in plain Python.
"""
from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np

from kernels.fix.encode import encode_exec_reports, put_timestamp
from kernels.records import EXEC_REPORT, FILL, SELL
from workbench.data.prices import PRICE_SCALE

__all__ = ["build_message", "checksum", "encode_execution_report", "encode_execution_reports",
           "execution_reports_from_fills"]

SOH = b"\x01"


def checksum(message_without_trailer: bytes) -> int:
    """FIX CheckSum: the byte sum mod 256."""
    return sum(message_without_trailer) & 255


def build_message(msg_type: str, fields: Iterable[tuple[int, object]], *,
                  begin_string: str = "FIX.4.4", delimiter: bytes = SOH) -> bytes:
    """Render one message: ``8``, ``9`` (computed), ``35``, the given fields in order, ``10``."""
    body = delimiter.join(f"{tag}={value}".encode("latin-1")
                          for tag, value in [(35, msg_type), *fields]) + delimiter
    head = f"8={begin_string}".encode() + delimiter + f"9={len(body)}".encode() + delimiter
    message = head + body
    normalised = message.replace(delimiter, SOH) if delimiter != SOH else message
    return message + f"10={checksum(normalised):03d}".encode() + delimiter


def format_timestamp(ns: int) -> str:
    """ns since the epoch -> FIX UTCTimestamp with milliseconds."""
    out = np.zeros(21, np.uint8)
    put_timestamp(out, 0, int(ns))
    return out.tobytes().decode()


def _running_by_id(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` per id, in the original order."""
    out = np.zeros(len(values), np.int64)
    if len(values) == 0:
        return out
    order = np.argsort(ids, kind="stable")
    v = values[order].astype(np.int64)
    s = ids[order]
    csum = np.cumsum(v)
    new_group = np.r_[True, s[1:] != s[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(s)), 0))
    out[order] = csum - (csum[group_start] - v[group_start])
    return out


def execution_reports_from_fills(fills: np.ndarray, *, perspective: str = "maker", order_qty=None,
                                 exec_id_start: int = 1) -> np.ndarray:
    """One ``EXEC_REPORT`` per fill, for the maker's or the taker's order.

    CumQty and AvgPx run per order within ``fills``. LeavesQty: the maker's comes with
    the fill; for the taker pass ``order_qty`` (scalar or per fill; leaves = order_qty -
    cum). OrdStatus is Filled when nothing leaves, else Partially filled.
    """
    if not isinstance(fills, np.ndarray) or fills.dtype != FILL:
        raise ValueError("fills: need a numpy array of kernels.records.FILL")
    if perspective not in ("maker", "taker"):
        raise ValueError(f"perspective={perspective!r} is not one of maker, taker")
    n = fills.shape[0]
    reports = np.zeros(n, EXEC_REPORT)
    ids = fills["maker_id"] if perspective == "maker" else fills["taker_id"]
    qty = fills["qty"].astype(np.int64)
    cum = _running_by_id(ids, qty)
    notional = _running_by_id(ids, qty * fills["price"])
    if perspective == "maker":
        leaves = fills["maker_leaves"]
        side = np.where(fills["taker_side"] == SELL, 0, 1)
    else:
        if order_qty is None:
            raise ValueError("order_qty is required for the taker's reports (its leaves are not in FILL)")
        leaves = np.broadcast_to(np.asarray(order_qty, np.int64), (n,)) - cum
        if np.any(leaves < 0):
            raise ValueError("order_qty is smaller than the taker's filled quantity")
        side = fills["taker_side"]
    reports["order_id"] = ids
    reports["cl_ord_id"] = ids
    reports["exec_id"] = np.arange(exec_id_start, exec_id_start + n)
    reports["ts"] = fills["ts"]
    reports["price"] = fills["price"]
    reports["last_px"] = fills["price"]
    reports["last_qty"] = qty
    reports["cum_qty"] = cum
    reports["leaves_qty"] = leaves
    reports["order_qty"] = cum + leaves
    reports["avg_px"] = np.where(cum > 0, np.round(notional / np.maximum(cum, 1)), 0).astype(np.int64)
    reports["msg"] = -1
    reports["symbol"] = fills["symbol"]
    reports["exec_type"] = ord("F")
    reports["ord_status"] = np.where(leaves == 0, ord("2"), ord("1"))
    reports["side"] = side
    reports["order_type"] = 0
    return reports


def _scale_digits(price_scale: int) -> int:
    digits = len(str(int(price_scale))) - 1
    if price_scale <= 0 or 10 ** digits != price_scale:
        raise ValueError(f"price_scale={price_scale!r} must be a power of ten to print decimals")
    return digits


def encode_execution_reports(reports: np.ndarray, *, sender_comp_id: str, target_comp_id: str,
                             first_seq: int = 1, sending_time: int | None = None,
                             symbols: Sequence[str] = (), cl_ord_ids: Sequence[str] | None = None,
                             price_scale: int = PRICE_SCALE, begin_string: str = "FIX.4.4",
                             delimiter: bytes = SOH) -> tuple[np.ndarray, np.ndarray]:
    """``EXEC_REPORT`` records -> (buffer, offsets); message k is buffer[offsets[k]:offsets[k+1]]."""
    if not isinstance(reports, np.ndarray) or reports.dtype != EXEC_REPORT:
        raise ValueError("reports: need a numpy array of kernels.records.EXEC_REPORT")
    if delimiter not in (SOH, b"|"):
        raise ValueError(f"delimiter={delimiter!r} is not one of SOH, '|'")
    for name, value in (("sender_comp_id", sender_comp_id), ("target_comp_id", target_comp_id)):
        if not value or "\x01" in value or "|" in value:
            raise ValueError(f"{name}={value!r} must be non-empty without delimiters")
    if not isinstance(first_seq, (int, np.integer)) or first_seq < 1:
        raise ValueError(f"first_seq={first_seq!r} must be a positive integer")
    digits = _scale_digits(price_scale)
    reports = reports.copy()
    if cl_ord_ids is not None:
        if len(cl_ord_ids) != len(reports):
            raise ValueError(f"cl_ord_ids has {len(cl_ord_ids)} entries for {len(reports)} reports")
        encoded = [str(c).encode("latin-1") for c in cl_ord_ids]
        lengths = np.array([len(e) for e in encoded], np.int64)
        ends = np.cumsum(lengths)
        reports["text_start"] = ends - lengths
        reports["text_end"] = ends
        text_pool = np.frombuffer(b"".join(encoded) or b"\0", np.uint8)
        max_text = int(lengths.max()) if len(lengths) else 0
    else:
        reports["text_start"] = reports["text_end"] = 0
        text_pool = np.frombuffer(b"\0", np.uint8)  # read-only, as above: one compiled type
        max_text = 0
    sym_bytes = [str(s).encode("latin-1") for s in symbols]
    symbol_offsets = np.zeros(len(sym_bytes) + 1, np.int64)
    symbol_offsets[1:] = np.cumsum([len(b) for b in sym_bytes])
    symbol_pool = np.frombuffer(b"".join(sym_bytes) or b"\0", np.uint8)
    comp = f"49={sender_comp_id}".encode() + delimiter + f"56={target_comp_id}".encode() + delimiter
    per_message = 560 + len(comp) + max_text + max((len(b) for b in sym_bytes), default=1)
    out = np.empty(max(1, len(reports) * per_message), np.uint8)
    offsets = np.zeros(len(reports) + 1, np.int64)
    now = time.time_ns() if sending_time is None else int(sending_time)
    total = encode_exec_reports(
        reports, text_pool, symbol_pool, symbol_offsets,
        np.frombuffer(begin_string.encode(), np.uint8), np.frombuffer(comp, np.uint8),
        int(first_seq), now, int(price_scale), digits, delimiter[0], out, offsets)
    return out[:total], offsets


def encode_execution_report(records: np.ndarray, *, sender_comp_id: str, target_comp_id: str,
                            perspective: str = "maker", order_qty=None, **options) -> bytes:
    """FILL or EXEC_REPORT records -> the concatenated wire ExecutionReports (bytes).

    FILL records go through :func:`execution_reports_from_fills` (``perspective``,
    ``order_qty``); ``options`` are those of :func:`encode_execution_reports`.
    """
    if isinstance(records, np.ndarray) and records.dtype == FILL:
        records = execution_reports_from_fills(records, perspective=perspective, order_qty=order_qty)
    buffer, _ = encode_execution_reports(records, sender_comp_id=sender_comp_id,
                                         target_comp_id=target_comp_id, **options)
    return buffer.tobytes()
