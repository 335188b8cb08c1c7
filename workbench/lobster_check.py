"""Prove the engine on real data: replay a LOBSTER message file through the workbench's
own L3 book and compare its top levels with the LOBSTER orderbook file after every
message (``python -m workbench lobster-check``).

The comparison and resynchronisation run in ``kernels.replay_check`` on the very
kernels every other path uses. Orders resting before the file starts exist only as
volume: the book starts from the first orderbook row with the first message undone,
as anonymous volume per level, and cancels/executions of ids the engine never saw act
on that anonymous volume at their price.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kernels import records as R
from kernels import replay_check as kreplay

from .book import Engine
from .data import lobster
from .data.prices import PRICE_SCALE


@dataclass
class LobsterCheck:
    """Outcome of a replay: how many rows matched before any resync."""

    rows: int
    matched: int
    resyncs: int
    levels: int
    events_per_sec: float
    seconds: float
    unrepresented_levels: int = 0
    unseen_depth: int = 0          # resyncs caused only by levels entering from beyond the file's depth
    rejects: dict = field(default_factory=dict)
    first_mismatches: list = field(default_factory=list)
    matched_flags: np.ndarray = field(default=None, repr=False)  # 1 where row i matched
    ts: np.ndarray = field(default=None, repr=False)             # message times, ns after midnight

    @property
    def matched_pct(self) -> float:
        return 100.0 * self.matched / self.rows if self.rows else 0.0

    @property
    def mismatched(self) -> int:
        """Rows that differed for a reason other than unseen depth (gaps in the file)."""
        return self.resyncs - self.unseen_depth

    def summary_line(self) -> str:
        return (f"rows={self.rows} matched={self.matched} ({self.matched_pct:.2f}%) "
                f"unseen_depth={self.unseen_depth} mismatched={self.mismatched} "
                f"resyncs={self.resyncs} levels={self.levels}")

    def to_json(self) -> dict:
        return {"rows": self.rows, "matched": self.matched, "unseen_depth": self.unseen_depth,
                "mismatched": self.mismatched, "resyncs": self.resyncs, "levels": self.levels,
                "unrepresented_levels": self.unrepresented_levels,
                "events_per_sec": self.events_per_sec}

    def rolling_match_rate(self, window: int = 1000) -> np.ndarray:
        """Share of matched rows over a trailing window (for plots)."""
        if int(window) < 1:
            raise ValueError(f"window={window!r} must be >= 1")
        flags = self.matched_flags.astype(np.float64)
        csum = np.concatenate(([0.0], np.cumsum(flags)))
        out = np.empty(len(flags))
        idx = np.arange(len(flags))
        lo = np.maximum(0, idx - window + 1)
        out[:] = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)
        return out


def prepare_replay(events: np.ndarray, rows: np.ndarray, symbol: str = "LOBSTER",
                   capacity: int = 1_000_000) -> Engine:
    """An engine holding the book as it stood before ``events[0]`` (the first orderbook
    row with the first message undone, as anonymous volume), ready to replay ``events``."""
    tick_units = lobster.TICK_UNITS
    engine = Engine(symbols=[symbol], tick_size=tick_units / PRICE_SCALE, price_scale=PRICE_SCALE,
                    capacity=capacity, price_levels=lobster.price_levels_for(events, tick_units),
                    anonymous_fallback=True, record_fills=False)
    n_levels = rows.shape[1] // 4
    kreplay.resync_top(engine.state, 0, lobster.initial_row(rows[0], events[0], n_levels), n_levels,
                  int(events[0]["ts"]))
    return engine


def initial_horizon(events: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """How deep the file has shown each side before ``events[0]``, the state of
    ``kernels.replay_check.extend_horizon``: the first row's depth (undoing the first
    message changes only levels inside it, or one it pushed out of view, which is
    beyond it and so stays unknown)."""
    n_levels = rows.shape[1] // 4
    horizon = np.array([kreplay.EMPTY_ASK, 0], dtype=np.int64)  # [BUY, SELL]: nothing seen
    kreplay.extend_horizon(rows[0], n_levels, horizon)
    return horizon


def lobster_check(messages_path: str | Path, orderbook_path: str | Path, *, levels: int | None = None,
                  capacity: int = 1_000_000, progress: bool = False, chunk: int = 250_000) -> LobsterCheck:
    """Replay ``messages_path`` and compare with ``orderbook_path`` after every message."""
    messages = lobster.read_messages(messages_path)
    orderbook = lobster.read_orderbook(orderbook_path, levels=levels)
    if messages.height != orderbook.height:
        raise ValueError(f"{messages_path} has {messages.height} rows but {orderbook_path} has "
                         f"{orderbook.height}; LOBSTER files are row-aligned")
    if messages.height == 0:
        raise ValueError(f"{messages_path} is empty")
    events = lobster.to_events(messages)
    rows = lobster.orderbook_array(orderbook)
    n_levels = rows.shape[1] // 4
    symbol = lobster.parse_filename(messages_path).ticker if _named(messages_path) else "LOBSTER"
    engine = prepare_replay(events, rows, symbol, capacity)
    st = engine.state
    scratch = np.zeros(capacity, dtype=R.FILL)
    flags = np.zeros(len(events), dtype=np.uint8)
    unrepresented = 0

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(events), unit="msg", desc=f"lobster-check {symbol}")
    horizon = initial_horizon(events, rows)
    kreplay.replay_and_compare(st, 0, events, rows, 0, 0, scratch, flags, horizon)  # compile / load
    matched = resyncs = unseen = 0
    started = time.perf_counter()
    position = 0
    while position < len(events):
        stop = min(position + chunk, len(events))
        m, r, u, d, reached = kreplay.replay_and_compare(st, 0, events, rows, position, stop,
                                                         scratch, flags, horizon)
        matched, resyncs, unrepresented = matched + int(m), resyncs + int(r), unrepresented + int(u)
        unseen += int(d)
        if reached != stop:
            raise RuntimeError(f"fills scratch too small at message {reached}")  # sized to capacity
        if bar is not None:
            bar.update(stop - position)
        position = stop
    seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    mismatches = np.flatnonzero(flags == 0)[:10].tolist()
    return LobsterCheck(
        rows=len(events), matched=matched, resyncs=resyncs, levels=n_levels,
        events_per_sec=len(events) / seconds if seconds > 0 else float("inf"), seconds=seconds,
        unrepresented_levels=unrepresented, unseen_depth=unseen, rejects=engine.stats()["rejects"],
        first_mismatches=mismatches, matched_flags=flags, ts=events["ts"].copy(),
    )


def _named(path) -> bool:
    try:
        lobster.parse_filename(path)
        return True
    except ValueError:
        return False
