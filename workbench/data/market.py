"""Market-data selection: whatever a user names (the embedded sample, a fresh simulation,
a LOBSTER file, a Binance capture, an ``EVENT`` array) becomes one :class:`MarketData`,
the event arrays the backtester replays.

This is the one conversion path from a source to the arrays a replay consumes: the
backtester, its checks and its benchmark all call :func:`load_events`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels import records as R

from .prices import PRICE_SCALE

__all__ = ["MarketData", "load_events", "binance_market", "itch_market", "lobster_market",
           "mbo_market", "one_symbol"]


@dataclass
class MarketData:
    """One symbol's L3 events (book index 0) and how to read its prices."""

    events: np.ndarray
    tick: int
    price_scale: int
    name: str
    initial_row: np.ndarray | None = None   # LOBSTER: the book before the first message
    levels: int = 0
    kind: str = "l3"                        # "l3": EVENT rows; "l2": L2_UPDATE rows (+ trades)
    qty_scale: int = 1                      # quantity units per unit of the instrument
    ladder: tuple = ()                      # l2: (low price units, levels)


def load_events(data="synthetic", *, symbol: int | str = 0, seed: int | None = None,
                duration_s: float | None = None, orderbook: str | Path | None = None,
                tick: int = 100, price_scale: int = PRICE_SCALE) -> MarketData:
    """Events for a backtest.

    ``data``: ``"synthetic"`` (the embedded sample session, or a fresh simulation when
    ``seed``/``duration_s`` is given), ``"lobster"`` is not enough on its own (give the
    message file path instead), a path to a LOBSTER message file (its orderbook file, when
    found beside it or given, seeds the book), a Databento MBO file (DBN or CSV, found by
    its content; ``symbol`` picks the instrument), a NASDAQ ITCH 5.0 file (named ``*itch*``
    or starting with a system event; ``symbol`` picks the stock), a Binance capture (``.gz``:
    the L2 mode), a
    ``SimulatedMarket``, a ``MarketData``, or an ``EVENT`` array (prices in units of
    ``1 / price_scale`` on a grid of ``tick`` units).
    """
    from . import synthetic

    if isinstance(data, MarketData):
        return data
    if isinstance(data, synthetic.SimulatedMarket):
        return one_symbol(data.events, symbol, data.symbols, data.tick, data.price_scale,
                           f"synthetic seed={data.seed}")
    if isinstance(data, np.ndarray):
        if data.dtype != R.EVENT:
            raise ValueError(f"events dtype {data.dtype} is not kernels.records.EVENT")
        for name, value in (("tick", tick), ("price_scale", price_scale)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        return one_symbol(data, symbol, None, tick, price_scale, "events")
    if isinstance(data, str) and data == "synthetic":
        if seed is None and duration_s is None:
            from .samples import SAMPLE_SYMBOLS, load_sample_events
            return one_symbol(load_sample_events(), symbol, SAMPLE_SYMBOLS, 100, PRICE_SCALE,
                               "embedded synthetic sample")
        market = synthetic.simulate(n_symbols=1, seed=int(seed or 0), duration_s=float(duration_s or 3600.0),
                             rate=5.0)
        return one_symbol(market.events, 0, market.symbols, market.tick, market.price_scale,
                           f"synthetic seed={market.seed}")
    if isinstance(data, str) and data in ("lobster", "binance", "mbo", "itch"):
        raise ValueError(f"data={data!r} needs a file: pass the path of the {data} file")
    path = Path(data)
    if not path.is_file():
        raise ValueError(f"data={data!r} is neither 'synthetic' nor an existing file")
    from .databento import is_mbo_file

    if is_mbo_file(path):  # DBN, or CSV with Databento's MBO header (gzip too)
        return mbo_market(path, symbol)
    from .itch import looks_like_itch

    if looks_like_itch(path):
        return itch_market(path, symbol)
    if path.suffix == ".gz" or "binance" in path.name.lower():
        return binance_market(path)
    return lobster_market(path, orderbook)


def binance_market(path: Path, window_ticks: int | None = None) -> MarketData:
    """A Binance capture as L2 rows: :func:`workbench.data.binance.market_rows`, the one
    array ``binance-check`` replays too (applied depth updates in sync order, trades merged
    by receive time), on the check's ladder."""
    from .binance import LADDER_TICKS, ladder_window, market_rows, read_capture

    window_ticks = LADDER_TICKS if window_ticks is None else window_ticks
    cap = read_capture(path)
    if len(cap.updates) == 0:
        raise ValueError(f"{path}: no depth updates could be applied (need a snapshot)")
    tick, low = ladder_window(cap.updates, window_ticks)
    return MarketData(market_rows(cap), tick, cap.price_scale, f"Binance {cap.market} {path.name}",
                      kind="l2", qty_scale=cap.qty_scale, ladder=(low, 2 * window_ticks + 1))


def mbo_market(path: Path, symbol: int | str = 0) -> MarketData:
    """One instrument of a Databento MBO file (DBN or CSV) from the one MBO loader
    (``workbench.data.databento.load_mbo``): ``symbol`` is its name, its instrument_id,
    or a book position (0, the default: the first instrument of the file)."""
    from .databento import load_mbo

    data = load_mbo(path)
    book = data.book_of(symbol)
    mine = data.events[data.events["symbol"] == book].copy()
    mine["symbol"] = 0
    return MarketData(mine, data.ticks[book], data.price_scale,
                      f"Databento MBO {path.name} {data.symbols[book]}")


def itch_market(path: Path, symbol: int | str = 0) -> MarketData:
    """One stock of a NASDAQ ITCH 5.0 file (its name, or its index in the stock
    directory), through the one ITCH loader (``workbench.data.itch``): the feed's own
    adds rest, its executions and cancels act on them, our orders queue among them."""
    from .itch import itch_market_events

    events, tick, name = itch_market_events(path, symbol)
    return MarketData(events, tick, PRICE_SCALE, name)


def one_symbol(events, symbol, names, tick, price_scale, name) -> MarketData:
    if isinstance(symbol, str):
        if not names or symbol not in names:
            raise ValueError(f"symbol={symbol!r} is not one of {names}")
        symbol = list(names).index(symbol)
    present = np.unique(events["symbol"]) if len(events) else np.zeros(0, np.int32)
    if symbol not in present:
        raise ValueError(f"symbol={symbol!r} has no events (symbols present: {present.tolist()})")
    mine = events[events["symbol"] == symbol].copy()
    mine["symbol"] = 0
    label = names[symbol] if names and symbol < len(names) else str(symbol)
    return MarketData(mine, int(tick), int(price_scale), f"{name} {label}")


def lobster_market(path: Path, orderbook) -> MarketData:
    from . import lobster

    messages = lobster.read_messages(path)
    if messages.height == 0:
        raise ValueError(f"{path} is empty")
    events = lobster.to_events(messages)
    if orderbook is None:
        guess = path.with_name(path.name.replace("message", "orderbook"))
        if guess != path and guess.is_file():
            orderbook = guess
        else:
            candidates = sorted(path.parent.glob(path.name.split("_message")[0] + "_orderbook*"))
            orderbook = candidates[0] if candidates else None
    row = None
    levels = 0
    if orderbook is not None:
        ob = lobster.read_orderbook(orderbook)
        first = lobster.orderbook_array(ob.head(1))
        levels = first.shape[1] // 4
        row = lobster.initial_row(first[0], events[0], levels)
    return MarketData(events, lobster.TICK_UNITS, PRICE_SCALE, f"LOBSTER {path.name}", row, levels)
