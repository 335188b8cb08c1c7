"""Binance websocket captures -> L2 update arrays and polars frames; book rebuild and check.

A capture is a (gzip) text file, one message a line: ``<recv_ts_ns> <raw json>``. Lines
are combined-stream messages (``{"stream": "btcusdt@depth@100ms", "data": {...}}``:
diff depth, ``bookTicker``, ``trade``/``aggTrade``) or a REST depth snapshot
(``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``). Both Binance variants are read:

* spot ``depth@100ms``: a diff carries ``U`` (first update id) and ``u`` (last); the
  next diff must start at ``U == previous u + 1``.
* USD-M futures ``depth@0ms`` (or ``@100ms``/``@250ms``): diffs also carry ``pu`` (the
  previous diff's ``u``); the next diff must have ``pu == previous u``.

Syncing follows Binance's rules: diffs with ``u <= lastUpdateId`` of the snapshot are
dropped; the first applied diff must straddle the snapshot (spot:
``U <= lastUpdateId + 1 <= u``; futures: ``U <= lastUpdateId <= u``); after that a broken
chain is a **gap**: it is counted and the book stays unsynced (nothing applied, nothing
compared) until the next snapshot in the capture.

``read_capture`` parses and sequences; ``rebuild_book`` replays the applied updates
through the Numba ladder (:func:`kernels.l2book.replay_l2`) and gives the best bid/ask
after every message; ``check_capture`` compares that with the ``bookTicker`` stream
wherever the two are comparable (the ticker's ``u`` equals the last update id applied
to the book) and returns ``snapshots, updates, gaps, bbo_rows, comparable, matched, pct``.
Prices are integers ``price * price_scale`` (default 10_000), sizes ``qty * qty_scale``
(default 10**8, Binance's 8 decimals), parsed from the decimal strings exactly.
Malformed lines are counted and reported, never fatal; a file that is no capture at all
(empty, a truncated or corrupt gzip stream, no recognisable message on any line) is an
:class:`~workbench.errors.InputError` naming the file and the problem.
"""
from __future__ import annotations

import gzip
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from kernels import l2book
from kernels import records as R

from ..errors import file_error
from .convert import from_records
from .prices import PRICE_SCALE

QTY_SCALE = 10**8


def _units(text: str, scale_digits: int) -> int:
    """Exact integer units of a decimal string (``"61837.63"`` at 4 digits -> 618376300)."""
    text = text.strip()
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > scale_digits:
        raise ValueError(f"{text!r} has more than {scale_digits} decimals")
    value = int(whole or "0") * 10**scale_digits + int((frac + "0" * scale_digits)[:scale_digits] or "0")
    return -value if negative else value


def _digits(scale: int, name: str) -> int:
    digits = round(math.log10(scale)) if scale > 0 else -1
    if scale <= 0 or 10**digits != scale:
        raise ValueError(f"{name}={scale!r} must be a power of ten")
    return digits


@dataclass
class BinanceCapture:
    """A parsed, sequenced capture."""

    updates: np.ndarray          # kernels.records.L2_UPDATE: the applied sequence (snapshots + diffs)
    depth: pl.DataFrame          # every diff level received (applied or not), as a frame
    book_ticker: pl.DataFrame    # recv_ts, update_id, bid_price, bid_qty, ask_price, ask_qty
    trades: pl.DataFrame         # recv_ts, exch_ts, trade_id, price, qty, buyer_is_maker
    market: str                  # "spot" or "futures"
    snapshots: int = 0
    diffs: int = 0               # diff messages received
    applied: int = 0             # diff messages applied to a synced book
    dropped_stale: int = 0       # diffs older than their snapshot
    gaps: int = 0
    malformed: int = 0
    malformed_examples: list = field(default_factory=list)
    price_scale: int = PRICE_SCALE
    qty_scale: int = QTY_SCALE

    def updates_frame(self) -> pl.DataFrame:
        return from_records(self.updates)


_GZIP_MAGIC = b"\x1f\x8b"
_LINE_FORMAT = "one '<recv_ts_ns> <json>' message a line"


def _open(path: Path):
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("rt", encoding="utf-8", errors="replace")


def _numbered_lines(path: Path, fh):
    """``(line_no, line)`` of an open capture; a truncated or corrupt gzip stream is an
    InputError naming the file and the line it broke after."""
    line_no = 0
    try:
        for line_no, line in enumerate(fh, 1):
            yield line_no, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        where = f"after line {line_no}" if line_no else "before its first line"
        raise file_error(path, f"truncated or corrupt gzip stream {where} ({exc})") from None


def read_capture(path, price_scale: int = PRICE_SCALE, qty_scale: int = QTY_SCALE) -> BinanceCapture:
    """Parse and sequence a capture file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Binance capture not found: {path}")
    p_digits, q_digits = _digits(price_scale, "price_scale"), _digits(qty_scale, "qty_scale")
    if path.stat().st_size == 0:
        raise file_error(path, f"empty file (a Binance capture has {_LINE_FORMAT})")
    with path.open("rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
    lines_read = 0
    messages = []  # ("snapshot"|"diff", recv_ts, payload)
    tickers, trades, depth_rows = [], [], []
    malformed, examples = 0, []
    market = "spot"

    def bad(line_no, reason):
        nonlocal malformed
        malformed += 1
        if len(examples) < 5:
            examples.append(f"line {line_no}: {reason}")

    with _open(path) as fh:
        for line_no, line in _numbered_lines(path, fh):
            lines_read = line_no
            line = line.strip()
            if not line:
                continue
            stamp, _, raw = line.partition(" ")
            try:
                recv_ts = int(stamp)
                doc = json.loads(raw)
            except ValueError as exc:
                bad(line_no, f"not '<recv_ts_ns> <json>': {exc}")
                continue
            try:
                if "lastUpdateId" in doc and "bids" in doc:
                    snap = {
                        "last": int(doc["lastUpdateId"]),
                        "bids": [(_units(p, p_digits), _units(q, q_digits)) for p, q in doc["bids"]],
                        "asks": [(_units(p, p_digits), _units(q, q_digits)) for p, q in doc["asks"]],
                        "exch_ts": int(doc.get("E", 0)) * 1_000_000,
                    }
                    messages.append(("snapshot", recv_ts, snap))
                    continue
                stream = doc.get("stream", "")
                data = doc.get("data", doc)
                event = data.get("e", "")
                if event == "depthUpdate" or "@depth" in stream:
                    diff = {
                        "U": int(data["U"]), "u": int(data["u"]),
                        "pu": int(data["pu"]) if "pu" in data else -1,
                        "exch_ts": int(data.get("E", 0)) * 1_000_000,
                        "bids": [(_units(p, p_digits), _units(q, q_digits)) for p, q in data["b"]],
                        "asks": [(_units(p, p_digits), _units(q, q_digits)) for p, q in data["a"]],
                    }
                    if diff["pu"] >= 0:
                        market = "futures"
                    messages.append(("diff", recv_ts, diff))
                    for side, levels in ((R.BUY, diff["bids"]), (R.SELL, diff["asks"])):
                        for price, qty in levels:
                            depth_rows.append((recv_ts, diff["exch_ts"], diff["U"], diff["u"],
                                               diff["pu"], price, qty, side))
                elif "@bookTicker" in stream or ("b" in data and "B" in data and "a" in data and "u" in data):
                    tickers.append((recv_ts, int(data["u"]), _units(data["b"], p_digits),
                                    _units(data["B"], q_digits), _units(data["a"], p_digits),
                                    _units(data["A"], q_digits)))
                elif event in ("trade", "aggTrade"):
                    trades.append((recv_ts, int(data.get("T", data.get("E", 0))) * 1_000_000,
                                   int(data.get("t", data.get("a", -1))), _units(data["p"], p_digits),
                                   _units(data["q"], q_digits), bool(data["m"])))
                else:
                    bad(line_no, f"unknown message (stream={stream!r}, e={event!r})")
            except (KeyError, TypeError, ValueError) as exc:
                bad(line_no, f"{type(exc).__name__}: {exc}")
    if not (messages or tickers or trades):
        if lines_read == 0:
            raise file_error(path, f"empty capture (no lines; a Binance capture has {_LINE_FORMAT})")
        what = "not gzip-compressed, and " if path.suffix == ".gz" and not gzipped else ""
        first = f" (first: {examples[0]})" if examples else ""
        raise file_error(path, f"not a Binance capture: {what}none of its {lines_read} line(s) is a "
                               f"Binance message{first}")

    capture = BinanceCapture(
        updates=np.zeros(0, dtype=R.L2_UPDATE),
        depth=pl.DataFrame(depth_rows, orient="row", schema={
            "recv_ts": pl.Int64, "exch_ts": pl.Int64, "first_id": pl.Int64, "update_id": pl.Int64,
            "prev_id": pl.Int64, "price": pl.Int64, "qty": pl.Int64, "side": pl.Int8}),
        book_ticker=pl.DataFrame(tickers, orient="row", schema={
            "recv_ts": pl.Int64, "update_id": pl.Int64, "bid_price": pl.Int64, "bid_qty": pl.Int64,
            "ask_price": pl.Int64, "ask_qty": pl.Int64}),
        trades=pl.DataFrame(trades, orient="row", schema={
            "recv_ts": pl.Int64, "exch_ts": pl.Int64, "trade_id": pl.Int64, "price": pl.Int64,
            "qty": pl.Int64, "buyer_is_maker": pl.Boolean}),
        market=market, malformed=malformed, malformed_examples=examples,
        price_scale=price_scale, qty_scale=qty_scale,
    )
    _sequence(capture, messages)
    return capture


def _sequence(capture: BinanceCapture, messages) -> None:
    """Apply Binance's sync rules; fill ``capture.updates`` with what a book should apply."""
    futures = capture.market == "futures"
    capture.snapshots = sum(1 for m in messages if m[0] == "snapshot")
    capture.diffs = sum(1 for m in messages if m[0] == "diff")
    rows = []

    def emit(recv_ts, exch_ts, last, first, prev, bids, asks, flags_first, flags_all):
        levels = [(R.BUY, p, q) for p, q in bids] + [(R.SELL, p, q) for p, q in asks]
        if not levels:
            levels = [(R.BUY, -1, 0)]  # an empty message still marks a consistent book
        for k, (side, price, qty) in enumerate(levels):
            flags = flags_all | (flags_first if k == 0 else 0)
            if k == len(levels) - 1:
                flags |= R.L2F_END_OF_MESSAGE
            rows.append((recv_ts, exch_ts, last, first, prev, price, qty, 0, side, flags))

    # A state machine over messages in receive order: diffs wait in a buffer until a
    # snapshot arrives; the snapshot restarts the book and the buffer is replayed.
    state = {"synced": False, "need_straddle": False, "last": 0, "prev_u": 0}
    buffer = []

    def on_diff(recv_ts, d):
        # stale: spot drops u <= lastUpdateId; futures keeps u == lastUpdateId (it straddles)
        if d["u"] < state["last"] or (d["u"] == state["last"] and not futures):
            capture.dropped_stale += 1
            return
        if state["need_straddle"]:
            last = state["last"]
            ok = d["U"] <= last <= d["u"] if futures else d["U"] <= last + 1 <= d["u"]
            state["need_straddle"] = False
        else:
            ok = d["pu"] == state["prev_u"] if futures else d["U"] == state["prev_u"] + 1
        if not ok:
            capture.gaps += 1  # unsynced until the next snapshot
            state["synced"] = False
            return
        emit(recv_ts, d["exch_ts"], d["u"], d["U"], d["pu"], d["bids"], d["asks"], 0, 0)
        capture.applied += 1
        state["prev_u"] = d["u"]

    for kind, recv_ts, payload in messages:
        if kind == "snapshot":
            last = payload["last"]
            emit(recv_ts, payload["exch_ts"], last, last, -1, payload["bids"], payload["asks"],
                 R.L2F_SNAPSHOT_START, R.L2F_SNAPSHOT)
            state.update(synced=True, need_straddle=True, last=last, prev_u=last)
            pending, buffer[:] = list(buffer), []
            for buffered_ts, d in pending:
                if state["synced"]:
                    on_diff(buffered_ts, d)
        elif state["synced"]:
            on_diff(recv_ts, payload)
        else:
            buffer.append((recv_ts, payload))
    capture.updates = np.array(rows, dtype=R.L2_UPDATE) if rows else np.zeros(0, dtype=R.L2_UPDATE)


def ladder_window(updates: np.ndarray, window_ticks: int) -> tuple[int, int]:
    """``(tick, low)``: the price grid of ``updates`` (the gcd of their prices) and the
    origin of a ladder of ``2 * window_ticks + 1`` ticks centred on the first snapshot's
    mid (or on the median price when there is no two-sided snapshot)."""
    priced = updates["price"][updates["price"] > 0]
    tick = int(np.gcd.reduce(priced)) if len(priced) else 1
    snap = updates[(updates["flags"] & R.L2F_SNAPSHOT) != 0]
    ref = snap if len(snap) else updates
    bid = ref["price"][(ref["side"] == R.BUY) & (ref["qty"] > 0)]
    ask = ref["price"][(ref["side"] == R.SELL) & (ref["qty"] > 0)]
    centre = int((bid.max() + ask.min()) // 2) if len(bid) and len(ask) else int(np.median(priced))
    return tick, max(tick, (centre // tick - window_ticks) * tick)


LADDER_TICKS = 250_000  # ticks either side of the first snapshot's mid: the ladder a replay keeps


def market_rows(capture: BinanceCapture) -> np.ndarray:
    """The one event array of a capture: what the backtester, ``binance-check`` and
    :func:`rebuild_book` replay (``kernels.records.L2_UPDATE`` rows).

    The applied depth updates keep the order Binance's sync rule gave them (a snapshot
    ahead of the buffered diff that straddles it), and each takes as its time the moment
    it became applicable: a diff buffered before its snapshot arrived counts from the
    snapshot's receive time (``ts`` is the running maximum; ``exch_ts`` is untouched).
    Trades are merged in by receive time; a stable sort keeps every update's place, so
    the snapshot can never land after, and wipe, an update it covers."""
    up = capture.updates.copy()
    if len(up):
        up["ts"] = np.maximum.accumulate(up["ts"])
    tr = capture.trades
    trades = np.zeros(tr.height, dtype=R.L2_UPDATE)
    if tr.height:
        trades["ts"] = tr["recv_ts"].to_numpy()
        trades["exch_ts"] = tr["exch_ts"].to_numpy()
        trades["price"] = tr["price"].to_numpy()
        trades["qty"] = tr["qty"].to_numpy()
        trades["side"] = np.where(tr["buyer_is_maker"].to_numpy(), R.SELL, R.BUY)
        trades["flags"] = R.L2F_TRADE
        trades["prev_id"] = -1
    rows = np.concatenate([up, trades])
    return np.ascontiguousarray(rows[np.argsort(rows["ts"], kind="stable")])


def rebuild_book(capture: BinanceCapture, window_ticks: int = LADDER_TICKS,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Best bid/ask (``kernels.records.BBO``) after each applied message, plus ladder stats,
    replayed from :func:`market_rows` (or ``rows``: the same array a backtest consumes)
    through the depth rule the L2 backtester runs (``kernels.l2book.apply_depth``).

    The ladder spans ``window_ticks`` ticks either side of the first snapshot's mid; levels
    beyond (Binance sends far-away levels too) are counted as ``out_of_window``. ``crossed``
    counts the messages after which the book is crossed (0 on a correct replay).
    """
    up = capture.updates
    if len(up) == 0:
        return np.zeros(0, dtype=R.BBO), {"tick": 0, "out_of_window": 0, "crossed": 0}
    rows = market_rows(capture) if rows is None else rows
    tick, low = ladder_window(up, window_ticks)
    n_levels = 2 * window_ticks + 1
    bids = np.zeros(n_levels, dtype=np.int64)
    asks = np.zeros(n_levels, dtype=np.int64)
    depth = (rows["flags"] & R.L2F_TRADE) == 0
    out = np.zeros(int(np.count_nonzero(depth & ((rows["flags"] & R.L2F_END_OF_MESSAGE) != 0))),
                   dtype=R.BBO)
    n, out_of_window, crossed = l2book.replay_l2(rows, low, tick, bids, asks, out)
    return out[:n], {"tick": tick, "out_of_window": int(out_of_window), "crossed": int(crossed)}


def compare_book_ticker(capture: BinanceCapture, bbo: np.ndarray) -> pl.DataFrame:
    """Each bookTicker row joined to the rebuilt book after the update with the same id.

    ``comparable`` is true where such an update was applied; ``matched`` where best bid
    and ask prices and sizes all agree.
    """
    rebuilt = from_records(bbo).rename({"ts": "book_ts", "bid_price": "book_bid_price",
                                        "bid_qty": "book_bid_qty", "ask_price": "book_ask_price",
                                        "ask_qty": "book_ask_qty"})
    rebuilt = rebuilt.unique("update_id", keep="last")
    joined = capture.book_ticker.join(rebuilt, on="update_id", how="left")
    comparable = pl.col("book_bid_price").is_not_null()
    matched = comparable & (pl.col("bid_price") == pl.col("book_bid_price")) \
        & (pl.col("bid_qty") == pl.col("book_bid_qty")) \
        & (pl.col("ask_price") == pl.col("book_ask_price")) \
        & (pl.col("ask_qty") == pl.col("book_ask_qty"))
    return joined.with_columns(comparable.alias("comparable"), matched.fill_null(False).alias("matched"))


def check_capture(path, window_ticks: int = LADDER_TICKS) -> dict:
    """Rebuild the book from a capture (a path or a parsed :class:`BinanceCapture`) and
    compare it with bookTicker (module docstring). The replay is :func:`market_rows`, the
    array the backtester consumes, on the backtester's ladder."""
    capture = path if isinstance(path, BinanceCapture) else read_capture(path)
    bbo, stats = rebuild_book(capture, window_ticks)
    joined = compare_book_ticker(capture, bbo)
    comparable = int(joined.get_column("comparable").sum())
    matched = int(joined.get_column("matched").sum())
    return {
        "market": capture.market,
        "snapshots": capture.snapshots,
        "updates": capture.applied,
        "gaps": capture.gaps,
        "bbo_rows": capture.book_ticker.height,
        "comparable": comparable,
        "matched": matched,
        "pct": round(100.0 * matched / comparable, 3) if comparable else 0.0,
        "diffs_received": capture.diffs,
        "dropped_stale": capture.dropped_stale,
        "trades": capture.trades.height,
        "malformed": capture.malformed,
        "out_of_window": stats["out_of_window"],
        "crossed": stats["crossed"],
    }


def summary_line(result: dict) -> str:
    return (f"snapshots={result['snapshots']} updates={result['updates']} gaps={result['gaps']} "
            f"bbo_rows={result['bbo_rows']} comparable={result['comparable']} "
            f"matched={result['matched']} ({result['pct']:.2f}%) crossed={result['crossed']}")
