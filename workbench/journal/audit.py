"""Looking into a journal: :func:`inspect` (what it holds) and :func:`export` (its commands
as a polars frame / parquet file, for audit).

Both read the directory read-only (a live writer may be appending; its unfinished tail
shows as not intact). The frame has one row per record: ``seq``, ``time`` (the wall
clock when it was journaled, UTC), ``record`` (``event``; ``output_full`` for the
engine's pause counter; ``app`` for an application's record, its code in ``kind``), ``kind`` / ``side`` / ``order_type`` / ``tif`` as names,
``symbol`` as the symbol, ``order_id``, ``price`` as a price (null where the command has
none), ``qty``, the event time ``ts`` (ns) and the record's flags (``auto_id``,
``logged_fills``, ``end_of_call``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from kernels import records as R

from . import files
from .reader import JournalReader

__all__ = ["inspect", "export_frame", "export", "kind_names"]


def kind_names() -> dict[int, str]:
    """Event kind code -> name, from ``kernels.records`` (``EV_ADD`` -> ``add``)."""
    return {int(v): k[3:].lower() for k, v in vars(R).items()
            if k.startswith("EV_") and isinstance(v, int)}


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="microseconds")


def inspect(directory) -> dict:
    """Records, sequence range, wall-time range, event-time range, counts by kind,
    segments, snapshots, the writer (if one holds the lock) and whether the tail is
    intact. Raises ``JournalCorruptError`` (naming segment and offset) for damage that
    is not a torn tail."""
    reader = JournalReader(directory)
    names = kind_names()
    counts: dict[str, int] = {}
    n = events = 0
    first = last = None
    t_first = t_last = ts_first = ts_last = None
    start = reader.segments[0].first_seq if reader.segments else 1
    for recs in reader.records(start):
        n += len(recs)
        if first is None:
            first = int(recs["seq"][0])
            t_first = int(recs["wall_ns"][0])
        last = int(recs["seq"][-1])
        t_last = int(recs["wall_ns"][-1])
        ev = recs[recs["rtype"] == R.JR_EVENT]
        events += len(ev)
        if len(ev):
            lo, hi = int(ev["ts"].min()), int(ev["ts"].max())
            ts_first = lo if ts_first is None else min(ts_first, lo)
            ts_last = hi if ts_last is None else max(ts_last, hi)
            kinds, c = np.unique(ev["kind"], return_counts=True)
            for k, v in zip(kinds.tolist(), c.tolist()):
                name = names.get(k, str(k))
                counts[name] = counts.get(name, 0) + v
    meta = reader.meta or {}
    snapshots = []
    for entry in reader.snapshots:
        skipped: list = []
        ok = reader.snapshot_for(entry.seq, None, skipped)
        snapshots.append({"name": entry.path.name, "seq": entry.seq, "bytes": entry.bytes,
                          "ok": ok is not None and ok.seq == entry.seq})
    return {
        "directory": str(reader.directory),
        "kind": meta.get("kind"),
        "symbols": (meta.get("settings") or {}).get("symbols"),
        "durability": meta.get("durability"),
        "writer_pid": files.writer_pid(reader.directory),
        "records": n,
        "events": events,
        "seq_first": first,
        "seq_last": last,
        "time_first": _iso(t_first),
        "time_last": _iso(t_last),
        "event_ts_first": ts_first,
        "event_ts_last": ts_last,
        "kinds": dict(sorted(counts.items())),
        "segments": [s.to_dict() for s in reader.segments],
        "snapshots": snapshots,
        "tail_intact": reader.tail is None,
        "tail": None if reader.tail is None else reader.tail.to_dict(),
    }


def export_frame(directory, until_seq: int | None = None,
                 until_ts: int | None = None) -> pl.DataFrame:
    """Every intact record of complete commands (from the oldest segment kept), with
    names instead of codes and prices as prices."""
    reader = JournalReader(directory)
    meta = reader.meta or {}
    settings = meta.get("settings") or {}
    symbols = settings.get("symbols") or []
    scale = settings.get("price_scale", 1)
    start = reader.segments[0].first_seq if reader.segments else 1
    chunks = list(reader.records(start, until_seq, until_ts))
    recs = np.concatenate(chunks) if chunks else np.zeros(0, dtype=R.JOURNAL_RECORD)
    names = kind_names()
    is_event = recs["rtype"] == R.JR_EVENT
    kind = np.array([names.get(k, str(k)) for k in range(256)], dtype=object)
    sym = np.array(list(symbols) + ["?"], dtype=object)
    symbol_idx = np.where((recs["symbol"] >= 0) & (recs["symbol"] < len(symbols)),
                          recs["symbol"], len(symbols))
    has_side = is_event & np.isin(recs["kind"], [R.EV_ADD, R.EV_REST]
                                  if hasattr(R, "EV_REST") else [R.EV_ADD])
    frame = pl.DataFrame({
        "seq": recs["seq"],
        "time": pl.Series(recs["wall_ns"]).cast(pl.Datetime("ns", "UTC")),
        "record": np.array(["?", "event", "output_full", "app"] + ["?"] * 252,
                           dtype=object)[recs["rtype"]],
        "kind": np.where(is_event, kind[recs["kind"].astype(np.uint8)],
                         np.where(recs["rtype"] == R.JR_APP, recs["kind"].astype(str), None)),
        "symbol": np.where(is_event, sym[symbol_idx], None),
        "side": np.where(has_side, np.where(recs["side"] == R.BUY, "buy", "sell"), None),
        "order_type": np.where(has_side, np.where(recs["order_type"] == R.MARKET, "market",
                                                  "limit"), None),
        "tif": np.where(has_side, np.array(["gtc", "ioc", "fok", "?"], dtype=object)[
            np.clip(recs["tif"], 0, 3)], None),
        "order_id": recs["order_id"],
        "price": pl.Series(np.where(is_event & (recs["price"] != 0), recs["price"] / scale,
                                    np.nan)).fill_nan(None),
        "qty": recs["qty"],
        "ts": recs["ts"],
        "auto_id": (recs["flags"] & R.JF_AUTO_ID) != 0,
        "logged_fills": (recs["flags"] & R.JF_LOG_FILLS) != 0,
        "end_of_call": (recs["flags"] & R.JF_END) != 0,
    })
    return frame


def export(directory, out, until_seq: int | None = None, until_ts: int | None = None):
    """Write :func:`export_frame` to the parquet file ``out``; returns the frame."""
    frame = export_frame(directory, until_seq, until_ts)
    out = Path(out)
    frame.write_parquet(out)
    return frame
