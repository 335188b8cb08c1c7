"""Tick-replay backtests for people: the ``Backtest`` builder, ``BacktestResult``,
parameter ``sweep`` and the demo job.

Owns data selection (embedded synthetic sample, a fresh simulation, LOBSTER files,
EVENT arrays), validation of every knob (strategy and its parameters, latencies, fees,
risk limits), allocation of the preallocated kernel state
(``kernels.backtest.BacktestState``), the chunked run with a progress bar, and the
result: polars frames (equity, fills, orders, latency), stats (P&L, Sharpe, drawdown,
fill rate, slippage, turnover, inventory) and the bokeh dashboard / HTML report.

The simulation itself happens in ``kernels.backtest.run_l3`` (one Numba loop, nogil):
the strategy's orders go through the same L3 book as the market's, with exact FIFO
queue positions; read that module's docstring for the timing and execution rules.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import polars as pl

from kernels import backtest as KB
from kernels import book as K
from kernels import histogram as kh
from kernels import latency_models as KL
from kernels import records as R
from kernels import risk as RK
from kernels import strategies as KS

__all__ = ["Backtest", "BacktestResult", "StrategySpec", "STRATEGIES", "load_events", "sweep",
           "run_demo", "strategy_names"]


# ------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class StrategySpec:
    """A strategy kernel with its parameter names (in ``params`` array order) and defaults."""

    name: str
    fn: Callable
    params: tuple[str, ...]
    defaults: Mapping[str, float]
    doc: str = ""

    def vector(self, overrides: Mapping[str, Any]) -> np.ndarray:
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise ValueError(f"strategy {self.name!r} has no parameter(s) {sorted(unknown)}; "
                             f"it takes {list(self.params)}")
        out = np.zeros(len(self.params), dtype=np.float64)
        for i, p in enumerate(self.params):
            value = overrides.get(p, self.defaults.get(p, 0.0))
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {p}={value!r} must be a number") from None
            if not math.isfinite(value):
                raise ValueError(f"parameter {p}={value!r} must be finite")
            out[i] = value
        return out


STRATEGIES: dict[str, StrategySpec] = {
    "mm_skew": StrategySpec(
        "mm_skew", KS.mm_skew, ("half_spread_ticks", "qty", "skew_ticks", "max_position"),
        {"half_spread_ticks": 1.0, "qty": 100, "skew_ticks": 2.0, "max_position": 500},
        "market making around a reservation price skewed against inventory"),
    "avellaneda_stoikov": StrategySpec(
        "avellaneda_stoikov", KS.avellaneda_stoikov,
        ("gamma", "sigma", "k", "horizon_s", "qty", "max_position", "lot"),
        {"gamma": 0.1, "sigma": 0.5, "k": 1.5, "horizon_s": 10.0, "qty": 100,
         "max_position": 500, "lot": 100},
        "Avellaneda-Stoikov optimal quotes on a rolling horizon"),
    "grid_mm": StrategySpec(
        "grid_mm", KS.grid_mm, ("levels", "spacing_ticks", "qty", "max_position"),
        {"levels": 3, "spacing_ticks": 2, "qty": 100, "max_position": 600},
        "a fixed price grid of resting bids and asks"),
    "momentum": StrategySpec(
        "momentum", KS.momentum,
        ("fast_alpha", "slow_alpha", "threshold_bps", "qty", "max_position", "mode"),
        {"fast_alpha": 0.2, "slow_alpha": 0.02, "threshold_bps": 2.0, "qty": 100,
         "max_position": 300, "mode": 0},
        "EMA crossover (mode 0) or breakout (mode 1) with marketable IOC orders"),
}


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def _resolve_strategy(strategy, param_names=None, defaults=None) -> StrategySpec:
    if isinstance(strategy, StrategySpec):
        return strategy
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not one of {strategy_names()} "
                             "(or pass an @numba.njit function)")
        return STRATEGIES[strategy]
    if callable(strategy):
        if not hasattr(strategy, "py_func"):
            raise ValueError("a user strategy must be compiled: decorate it with @numba.njit")
        names = tuple(param_names or ())
        return StrategySpec(getattr(strategy, "__name__", "user"), strategy, names,
                            dict(defaults or {}), "user strategy")
    raise ValueError(f"strategy={strategy!r} must be a name or an @numba.njit function")


# ------------------------------------------------------------------------- data
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
                tick: int = 100, price_scale: int = 10_000) -> MarketData:
    """Events for a backtest.

    ``data``: ``"synthetic"`` (the embedded sample session, or a fresh simulation when
    ``seed``/``duration_s`` is given), ``"lobster"`` is not enough on its own (give the
    message file path instead), a path to a LOBSTER message file (its orderbook file, when
    found beside it or given, seeds the book), a Binance capture (``.gz``: the L2 mode), a
    ``SimulatedMarket``, a ``MarketData``, or an ``EVENT`` array (prices in units of
    ``1 / price_scale`` on a grid of ``tick`` units).
    """
    from .data import synthetic as SY

    if isinstance(data, MarketData):
        return data
    if isinstance(data, SY.SimulatedMarket):
        return _one_symbol(data.events, symbol, data.symbols, data.tick, data.price_scale,
                           f"synthetic seed={data.seed}")
    if isinstance(data, np.ndarray):
        if data.dtype != R.EVENT:
            raise ValueError(f"events dtype {data.dtype} is not kernels.records.EVENT")
        for name, value in (("tick", tick), ("price_scale", price_scale)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        return _one_symbol(data, symbol, None, tick, price_scale, "events")
    if isinstance(data, str) and data == "synthetic":
        if seed is None and duration_s is None:
            from .data.samples import SAMPLE_SYMBOLS, load_sample_events
            return _one_symbol(load_sample_events(), symbol, SAMPLE_SYMBOLS, 100, SY.PRICE_SCALE,
                               "embedded synthetic sample")
        market = SY.simulate(n_symbols=1, seed=int(seed or 0), duration_s=float(duration_s or 3600.0),
                             rate=5.0)
        return _one_symbol(market.events, 0, market.symbols, market.tick, market.price_scale,
                           f"synthetic seed={market.seed}")
    if isinstance(data, str) and data in ("lobster", "binance"):
        raise ValueError(f"data={data!r} needs a file: pass the path of the {data} file")
    path = Path(data)
    if not path.is_file():
        raise ValueError(f"data={data!r} is neither 'synthetic' nor an existing file")
    if path.suffix == ".gz" or "binance" in path.name.lower():
        return _binance(path)
    return _lobster(path, orderbook)


def _binance(path: Path, window_ticks: int = 20_000) -> MarketData:
    """A Binance capture as L2 rows: its applied depth updates merged with its trades."""
    from kernels import backtest_l2 as KL2
    from kernels import l2book as KL2B

    from .data.binance import read_capture

    cap = read_capture(path)
    up = cap.updates
    if len(up) == 0:
        raise ValueError(f"{path}: no depth updates could be applied (need a snapshot)")
    tr = cap.trades
    trades = np.zeros(tr.height, dtype=KL2B.L2_UPDATE)
    if tr.height:
        trades["ts"] = tr["recv_ts"].to_numpy()
        trades["exch_ts"] = tr["exch_ts"].to_numpy()
        trades["price"] = tr["price"].to_numpy()
        trades["qty"] = tr["qty"].to_numpy()
        trades["side"] = np.where(tr["buyer_is_maker"].to_numpy(), R.SELL, R.BUY)
        trades["flags"] = KL2.L2_TRADE
        trades["prev_id"] = -1
    rows = np.concatenate([up, trades])
    order = np.lexsort((np.arange(len(rows)), rows["ts"]))  # stable by time
    rows = np.ascontiguousarray(rows[order])
    priced = up["price"][up["price"] > 0]
    tick = int(np.gcd.reduce(priced))
    snap = up[(up["flags"] & KL2B.F_SNAPSHOT) != 0]
    ref = snap if len(snap) else up
    bid = ref["price"][(ref["side"] == R.BUY) & (ref["qty"] > 0)]
    ask = ref["price"][(ref["side"] == R.SELL) & (ref["qty"] > 0)]
    centre = int((bid.max() + ask.min()) // 2) if len(bid) and len(ask) else int(np.median(priced))
    low = max(tick, (centre // tick - window_ticks) * tick)
    return MarketData(rows, tick, cap.price_scale, f"Binance {cap.market} {path.name}",
                      kind="l2", qty_scale=cap.qty_scale, ladder=(low, 2 * window_ticks + 1))


def _one_symbol(events, symbol, names, tick, price_scale, name) -> MarketData:
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


def _lobster(path: Path, orderbook) -> MarketData:
    from .data import lobster as L
    from .lobster_check import initial_row

    messages = L.read_messages(path)
    if messages.height == 0:
        raise ValueError(f"{path} is empty")
    events = L.to_events(messages)
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
        ob = L.read_orderbook(orderbook)
        first = L.orderbook_array(ob.head(1))
        levels = first.shape[1] // 4
        row = initial_row(first[0], events[0], levels)
    return MarketData(events, L.TICK_UNITS, L.PRICE_SCALE, f"LOBSTER {path.name}", row, levels)


# --------------------------------------------------------------------- builder
def _non_negative(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return v


_RISK_KEYS = {
    "max_order_qty": RK.RP_MAX_ORDER_QTY, "max_position": RK.RP_MAX_POSITION,
    "max_notional": RK.RP_MAX_NOTIONAL, "price_band_bps": RK.RP_PRICE_BAND_BPS,
    "max_orders_per_window": RK.RP_MAX_ORDERS, "rate_window_s": RK.RP_RATE_WINDOW_NS,
    "max_loss": RK.RP_MAX_LOSS, "kill": RK.RP_KILL,
}


class Backtest:
    """Configure and run one backtest (every setter validates and returns ``self``).

    >>> bt = (Backtest("synthetic").strategy("mm_skew", half_spread_ticks=2)
    ...       .latency(feed_us=50, entry_us=100, response_us=50).fees(maker_bps=-0.2, taker_bps=0.5)
    ...       .risk(max_position=1000))
    >>> result = bt.run()
    """

    def __init__(self, data="synthetic", *, symbol: int | str = 0, strategy="mm_skew",
                 params: Mapping[str, Any] | None = None, record_every_s: float = 1.0,
                 max_open_orders: int = 16, max_orders: int = 500_000,
                 max_fills: int = 500_000, queue_capacity: int = 1 << 16,
                 capacity: int = 1_000_000, seed: int = 0, **data_options):
        self._data_arg = data
        self._data_options = dict(symbol=symbol, **data_options)
        self._data: MarketData | None = None
        self._spec = _resolve_strategy(strategy)
        self._params = dict(params or {})
        self._spec.vector(self._params)
        self._lat = np.zeros(3, dtype=np.float64)
        self._lat_table = np.zeros((3, 0), dtype=np.int64)
        self._lat_model = KL.constant_latency
        self._fees = np.zeros(2, dtype=np.float64)
        self._risk = RK.default_risk_params()
        self.queue_model("risk_averse")
        self.record_every_s = _non_negative("record_every_s", record_every_s)
        if self.record_every_s <= 0:
            raise ValueError("record_every_s must be > 0")
        for name, value in (("max_open_orders", max_open_orders), ("max_orders", max_orders),
                            ("max_fills", max_fills), ("capacity", capacity)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if not isinstance(queue_capacity, int) or queue_capacity < 16 or queue_capacity & (queue_capacity - 1):
            raise ValueError(f"queue_capacity={queue_capacity!r} must be a power of two >= 16")
        self.max_open_orders, self.max_orders, self.max_fills = max_open_orders, max_orders, max_fills
        self.queue_capacity, self.capacity, self.seed = queue_capacity, capacity, int(seed)

    # ------------------------------------------------------------------ setters
    def strategy(self, strategy, *, param_names=None, defaults=None, **params) -> "Backtest":
        """A bundled strategy by name, or an ``@numba.njit`` function with the signature
        of ``kernels.strategies`` (give ``param_names`` for its params array)."""
        self._spec = _resolve_strategy(strategy, param_names, defaults)
        self._params = dict(params)
        self._spec.vector(self._params)
        return self

    def params(self, **params) -> "Backtest":
        merged = {**self._params, **params}
        self._spec.vector(merged)
        self._params = merged
        return self

    def latency(self, feed_us: float = 0.0, entry_us: float = 0.0, response_us: float = 0.0,
                *, samples_ns: Mapping[str, Iterable[int]] | None = None, model=None) -> "Backtest":
        """Constant latencies (microseconds), or measured samples per channel
        (``{"feed": [...], "entry": [...], "response": [...]}`` in ns, drawn uniformly and
        reproducibly), or a user ``model`` (``@njit`` with the
        ``kernels.latency_models`` signature)."""
        self._lat = np.array([_non_negative("feed_us", feed_us) * 1e3,
                              _non_negative("entry_us", entry_us) * 1e3,
                              _non_negative("response_us", response_us) * 1e3])
        self._lat_model = KL.constant_latency
        self._lat_table = np.zeros((3, 0), dtype=np.int64)
        if samples_ns is not None:
            unknown = set(samples_ns) - {"feed", "entry", "response"}
            if unknown:
                raise ValueError(f"samples_ns keys must be feed/entry/response, got {sorted(unknown)}")
            rows = {k: np.asarray(list(v), dtype=np.int64) for k, v in samples_ns.items()}
            for k, v in rows.items():
                if v.ndim != 1 or len(v) == 0 or (v < 0).any():
                    raise ValueError(f"samples_ns[{k!r}] must be a non-empty list of ns >= 0")
            m = max(len(v) for v in rows.values())
            table = np.zeros((3, m), dtype=np.int64)
            for i, k in enumerate(("feed", "entry", "response")):
                v = rows.get(k, np.full(1, int(self._lat[i]), dtype=np.int64))
                table[i] = np.resize(v, m)  # repeat shorter rows: uniform draws stay uniform per value
            self._lat_table = table
            self._lat_model = KL.sampled_latency
        if model is not None:
            if not hasattr(model, "py_func"):
                raise ValueError("latency model must be an @numba.njit function")
            self._lat_model = model
        return self

    def fees(self, maker_bps: float = 0.0, taker_bps: float = 0.0) -> "Backtest":
        """Fees in basis points of notional; negative maker fee = rebate."""
        for name, v in (("maker_bps", maker_bps), ("taker_bps", taker_bps)):
            if not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 1000:
                raise ValueError(f"{name}={v!r} must be a number of basis points within +-1000")
        self._fees = np.array([float(maker_bps), float(taker_bps)])
        return self

    def queue_model(self, model="risk_averse", **params) -> "Backtest":
        """Queue-position model for L2 data (L3 data always uses the exact FIFO queue):
        ``"risk_averse"``, ``"power"`` (``n=2``), ``"log"``, or a user ``@njit``
        ``prob_behind(front, back, params)`` with ``params`` given as keywords (in order)."""
        from kernels import queue_models as QM

        bundled = {"risk_averse": (QM.risk_averse, ()), "power": (QM.power_prob, ("n",)),
                   "log": (QM.log_prob, ())}
        if isinstance(model, str):
            if model not in bundled:
                raise ValueError(f"queue model {model!r} is not one of {sorted(bundled)} "
                                 "(or pass an @numba.njit function)")
            fn, names = bundled[model]
            unknown = set(params) - set(names)
            if unknown:
                raise ValueError(f"queue model {model!r} takes {list(names)}, not {sorted(unknown)}")
            values = [float(params.get("n", 2.0))] if names else []
        else:
            if not hasattr(model, "py_func"):
                raise ValueError("a user queue model must be an @numba.njit function")
            fn, values = model, [float(v) for v in params.values()]
        self._queue_fn = fn
        self._queue_name = model if isinstance(model, str) else getattr(model, "__name__", "user")
        self._queue_params = np.array(values or [0.0], dtype=np.float64)
        return self

    def risk(self, **limits) -> "Backtest":
        """Pre-trade limits (0 = none): max_order_qty, max_position, max_notional,
        price_band_bps, max_orders_per_window, rate_window_s, max_loss, kill."""
        unknown = set(limits) - set(_RISK_KEYS)
        if unknown:
            raise ValueError(f"unknown risk limit(s) {sorted(unknown)}; choose from {sorted(_RISK_KEYS)}")
        for k, v in limits.items():
            v = _non_negative(k, v)
            self._risk[_RISK_KEYS[k]] = v * 1e9 if k == "rate_window_s" else v
        return self

    # ---------------------------------------------------------------------- run
    @property
    def data(self) -> MarketData:
        if self._data is None:
            self._data = load_events(self._data_arg, **self._data_options)
        return self._data

    def describe(self) -> dict:
        return {"data": self.data.name, "strategy": self._spec.name,
                "params": dict(zip(self._spec.params, self._spec.vector(self._params).tolist())),
                "latency_ns": self._lat.tolist(), "fees_bps": self._fees.tolist(),
                "queue_model": "exact L3 FIFO" if self.data.kind == "l3" else self._queue_name,
                "risk": {k: float(self._risk[i]) for k, i in _RISK_KEYS.items() if self._risk[i]}}

    def _allocate(self, md: MarketData) -> KB.BacktestState:
        from .lobster_check import _price_levels_for

        events = md.events
        if md.kind == "l2":
            st = K.allocate_state(1, 1, K.MIN_PRICE_LEVELS, [md.tick])  # unused by the L2 loop
        else:
            st = K.allocate_state(1, min(self.capacity, len(events) + 4096),
                                  _price_levels_for(events, md.tick), [md.tick])
        st.counters[K.C_ANON_FALLBACK] = 1
        if md.initial_row is not None:
            from kernels import replay_check as RC
            RC.resync_top(st, 0, md.initial_row, md.levels, int(events[0]["ts"]))
        ctx = np.zeros(1, dtype=KB.CTX)
        ctx[0]["tick"] = md.tick
        ctx[0]["price_scale"] = md.price_scale
        cfg = np.zeros(KB.N_CFG, dtype=np.int64)
        cfg[KB.G_RECORD_EVERY_NS] = max(1, int(self.record_every_s * 1e9))
        cfg[KB.G_PRICE_SCALE] = md.price_scale * md.qty_scale  # money = qty * price / this
        cfg[KB.G_TICK] = md.tick
        span_ns = int(events["ts"][-1] - events["ts"][0]) if len(events) else 0
        n_steps = span_ns // cfg[KB.G_RECORD_EVERY_NS] + self.max_fills + 16
        q = self.queue_capacity
        return KB.BacktestState(
            st=st, fills=np.zeros(len(st.pool) + 16, dtype=R.FILL),
            ctx=ctx, mview=np.zeros(1, dtype=KB.VIEW),
            orders=np.zeros(self.max_open_orders, dtype=KB.LIVE),
            actions=np.zeros(max(16, 2 * self.max_open_orders), dtype=KB.ACTION),
            params=self._spec.vector(self._params),
            log=np.zeros(self.max_orders, dtype=KB.ORDER_LOG),
            own_fills=np.zeros(self.max_fills, dtype=KB.OWN_FILL),
            steps=np.zeros(int(n_steps), dtype=KB.STEP),
            feed=np.zeros(q, dtype=KB.VIEW), entry=np.zeros(q, dtype=KB.PENDING),
            resp=np.zeros(q, dtype=KB.RESPONSE),
            resting=np.zeros(self.max_open_orders + 1, dtype=np.int64),
            cnt=np.zeros(KB.N_COUNTERS, dtype=np.int64), acc=np.zeros(KB.N_ACC),
            cfg=cfg, fees=self._fees.copy(), risk_params=self._risk.copy(),
            risk_state=np.zeros(RK.N_RISK_STATE, dtype=np.int64),
            lat_params=self._lat.copy(), lat_table=self._lat_table.copy(),
            rng=np.array([self.seed * 0x9E3779B1 + 1], dtype=np.int64),
            hist=kh.new_histogram(11, kh.ONE_HOUR_NS),
        )

    def run(self, progress: bool = True, chunk: int = 200_000) -> "BacktestResult":
        """Run the backtest (progress bar over the events) and return the result."""
        md = self.data
        events = md.events
        if len(events) == 0:
            raise ValueError("no events to replay")
        s = self._allocate(md)
        context = KB.state_context(s)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(events), unit="ev", desc=f"backtest {self._spec.name}")
        if md.kind == "l2":
            from kernels import backtest_l2 as KL2
            low, levels = md.ladder
            meta = np.array([low, md.tick, levels, 0], dtype=np.int64)
            l2 = KL2.L2Book(np.zeros(levels, np.int64), np.zeros(levels, np.int64),
                            np.full(2, -1, np.int64), meta, np.zeros(self.max_orders),
                            np.zeros(self.max_orders), self._queue_params.copy())
            context2 = KL2.l2_context(l2)
            fn, lat, qfn = self._spec.fn, self._lat_model, self._queue_fn

            def loop(ctx, ev, a, b):
                return KL2.run_l2(fn, lat, qfn, ctx, context2, ev, a, b)
        else:
            def loop(ctx, ev, a, b):
                return KB.run_l3(self._spec.fn, self._lat_model, ctx, ev, a, b)
        # compile (first use in this process) without running anything: the timing below
        # is the replay alone
        loop(context, events, 0, 0)
        started = time.perf_counter()
        position = 0
        n = len(events)
        while True:
            stop = min(position + chunk, n)
            reached, status = loop(context, events, position, stop)
            if status == KB.BT_RING_FULL:
                raise RuntimeError(f"a latency queue overflowed ({self.queue_capacity} slots) at "
                                   f"event {reached}: pass a larger queue_capacity")
            if bar is not None:
                bar.update(reached - position)
            position = reached
            if position >= n:
                break
        seconds = time.perf_counter() - started
        KB.finish(context, int(events["ts"][-1]))
        if bar is not None:
            bar.close()
        return BacktestResult.from_state(s, md, self, seconds)


# ---------------------------------------------------------------------- results
def _risk_counts(cnt) -> dict[str, int]:
    return {RK.RISK_REASON_NAMES[i]: int(cnt[KB.C_RISK_REJECTS + i])
            for i in range(1, RK.N_RISK_REASONS) if cnt[KB.C_RISK_REJECTS + i]}


def _exchange_counts(cnt) -> dict[str, int]:
    return {R.REJECT_REASON_NAMES[i]: int(cnt[KB.C_EXCH_REJECTS + i])
            for i in range(1, R.N_REJECT_REASONS) if cnt[KB.C_EXCH_REJECTS + i]}


def _frame(records: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({name: records[name] for name in records.dtype.names})


@dataclass
class BacktestResult:
    """Frames and stats of one run. Prices in the frames are floats (currency)."""

    equity: pl.DataFrame
    fills: pl.DataFrame
    orders: pl.DataFrame
    latency: pl.DataFrame
    stats: dict
    config: dict = field(default_factory=dict)
    tick_to_trade: np.ndarray = field(default=None, repr=False)   # histogram array

    @classmethod
    def from_state(cls, s: KB.BacktestState, md: MarketData, bt: Backtest, seconds: float):
        scale = float(md.price_scale)
        cnt = s.cnt
        steps = s.steps[: int(min(cnt[KB.C_STEPS], len(s.steps)))]
        fills = s.own_fills[: int(min(cnt[KB.C_FILLS], len(s.own_fills)))]
        log = s.log[: int(cnt[KB.C_ORDERS])]
        equity = _frame(steps).with_columns(
            (pl.col(c) / scale for c in ("bid", "ask", "quote_bid", "quote_ask", "mid")))
        equity = equity.with_columns(
            pl.when(pl.col(c) > 0).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("bid", "ask", "quote_bid", "quote_ask"))
        fills_f = _frame(fills).with_columns(
            (pl.col("price") / scale), (pl.col("arrival_mid") / scale), (pl.col("mid") / scale),
            pl.col("side").replace_strict({0: "buy", 1: "sell"}, return_dtype=pl.Utf8),
            pl.col("liquidity").replace_strict({0: "maker", 1: "taker"}, return_dtype=pl.Utf8))
        status_names = {KB.LS_PENDING: "pending", KB.LS_OPEN: "open", KB.LS_FILLED: "filled",
                        KB.LS_CANCELLED: "cancelled", KB.LS_REJECTED: "rejected"}
        orders = _frame(log).drop("slot").with_columns(
            (pl.col("price") / scale), (pl.col("arrival_mid") / scale),
            pl.col("side").replace_strict({0: "buy", 1: "sell"}, return_dtype=pl.Utf8),
            pl.col("status").replace_strict(status_names, return_dtype=pl.Utf8),
            pl.col("risk_reason").replace_strict(dict(enumerate(RK.RISK_REASON_NAMES)),
                                                 return_dtype=pl.Utf8),
            pl.col("exchange_reason").replace_strict(dict(enumerate(R.REJECT_REASON_NAMES)),
                                                     return_dtype=pl.Utf8))
        hist = s.hist.copy()
        qs = np.array([50.0, 90.0, 99.0, 99.9])
        pct = np.zeros(4, dtype=np.int64)
        kh.percentiles(hist, qs, pct)
        count = int(hist[kh.HP_COUNT])
        latency = pl.DataFrame({"metric": ["tick_to_trade_ns"], "count": [count],
                                "p50": [int(pct[0])], "p90": [int(pct[1])], "p99": [int(pct[2])],
                                "p99.9": [int(pct[3])],
                                "max": [int(hist[kh.HP_MAX]) if count else 0]})
        stats = _stats(equity, fills_f, orders, s, md, bt, seconds)
        stats.update({"tick_to_trade_p50_ns": int(pct[0]), "tick_to_trade_p99_ns": int(pct[2])})
        return cls(equity, fills_f, orders, latency, stats, bt.describe(), hist)

    # ------------------------------------------------------------------ views
    def summary(self) -> str:
        s = self.stats
        return (f"P&L {s['total_pnl']:+,.2f} (fees {s['fees']:,.2f})  Sharpe {s['sharpe']:.2f}  "
                f"max DD {s['max_drawdown']:,.2f}  fills {s['n_fills']} "
                f"(fill rate {100 * s['fill_rate']:.1f}%)  slippage {s['mean_slippage_bps']:+.2f} bps  "
                f"turnover {s['turnover']:,.0f}  |pos| max {s['max_abs_position']}  "
                f"{s['events']:,} events at {s['events_per_sec'] / 1e6:.2f} M/s  "
                f"tick-to-trade p50 {s['tick_to_trade_p50_ns']} ns p99 {s['tick_to_trade_p99_ns']} ns")

    def plot(self):
        """Bokeh dashboard: P&L, inventory, quotes vs mid with fills, tick-to-trade."""
        from .backtest_plots import dashboard
        return dashboard(self)

    def to_html(self, path: str | Path, title: str = "Backtest report") -> Path:
        """Write the dashboard and the stats to a standalone HTML file."""
        from .backtest_plots import write_html
        return write_html(self, Path(path), title)


def _stats(equity: pl.DataFrame, fills: pl.DataFrame, orders: pl.DataFrame, s, md: MarketData,
           bt: Backtest, seconds: float) -> dict:
    cnt = s.cnt
    eq = equity["equity"].to_numpy()
    ts = equity["ts"].to_numpy()
    total = float(eq[-1]) if len(eq) else 0.0
    # Sharpe on a regular grid of record_every_s (the last equity known at each point)
    step = int(s.cfg[KB.G_RECORD_EVERY_NS])
    sharpe = 0.0
    if len(ts) > 2:
        grid = np.arange(ts[0], ts[-1] + 1, step)
        idx = np.searchsorted(ts, grid, side="right") - 1
        diffs = np.diff(eq[idx])
        sd = diffs.std() if len(diffs) > 1 else 0.0
        if sd > 0:
            per_year = 252 * 23_400e9 / step
            sharpe = float(diffs.mean() / sd * math.sqrt(per_year))
    peak = np.maximum.accumulate(eq) if len(eq) else eq
    max_dd = float((peak - eq).max()) if len(eq) else 0.0
    pos = equity["position"].to_numpy()
    sent = orders.filter(pl.col("status") != "rejected")
    sent_qty = int(sent["qty"].sum()) if sent.height else 0
    filled_qty = int(cnt[KB.C_FILLED_QTY])
    n_fills = int(cnt[KB.C_FILLS])
    slip = fills["slippage_bps"]
    wq = fills.filter(pl.col("liquidity") == "maker")["time_in_queue"]
    return {
        "total_pnl": total,
        "realised_pnl": float(s.acc[KB.A_REALISED]),
        "fees": float(s.acc[KB.A_FEES]),
        "sharpe": sharpe,
        "max_drawdown": max_dd,
        "n_orders": int(cnt[KB.C_ORDERS]),
        "n_cancels": int(cnt[KB.C_CANCELS]),
        "n_fills": n_fills,
        "maker_fills": int(cnt[KB.C_MAKER_FILLS]),
        "taker_fills": int(cnt[KB.C_TAKER_FILLS]),
        "trade_through_fills": int(cnt[KB.C_TRADE_THROUGH]),
        "filled_qty": filled_qty,
        "fill_rate": filled_qty / sent_qty if sent_qty else 0.0,
        "mean_slippage_bps": float(slip.mean()) if len(slip) else 0.0,
        "mean_time_in_queue_ms": float(wq.mean()) / 1e6 if len(wq) else 0.0,
        "turnover": float(s.acc[KB.A_TURNOVER]),
        "final_position": int(cnt[KB.C_POSITION]),
        "mean_abs_position": float(np.abs(pos).mean()) if len(pos) else 0.0,
        "max_abs_position": int(np.abs(pos).max()) if len(pos) else 0,
        "risk_rejects": _risk_counts(cnt),
        "exchange_rejects": _exchange_counts(cnt),
        "market_rejects": int(cnt[KB.C_MARKET_REJECTS]),
        "dropped_fill_records": int(cnt[KB.C_DROPPED_FILLS]),
        "wakes": int(cnt[KB.C_WAKES]),
        "events": int(cnt[KB.C_EVENTS]),
        "seconds": seconds,
        "events_per_sec": cnt[KB.C_EVENTS] / seconds if seconds > 0 else float("inf"),
    }


# ------------------------------------------------------------------------- sweep
def _grid(parameter_grid: Mapping[str, Iterable]) -> list[dict]:
    if not isinstance(parameter_grid, Mapping) or not parameter_grid:
        raise ValueError("parameter_grid must be a non-empty dict name -> list of values")
    keys = list(parameter_grid)
    values = [list(parameter_grid[k]) for k in keys]
    for k, v in zip(keys, values):
        if not v:
            raise ValueError(f"parameter_grid[{k!r}] is empty")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _run_combo(job):
    """One sweep job (module level so process pools can pickle it)."""
    backtest, combo = job
    bt = Backtest.__new__(Backtest)
    bt.__dict__.update(backtest.__dict__)
    bt._params = {**backtest._params, **combo}
    return combo, bt.run(progress=False).stats


def sweep(backtest: Backtest, parameter_grid: Mapping[str, Iterable], *, executor=None,
          max_workers: int | None = None, progress: bool = True) -> pl.DataFrame:
    """Run ``backtest`` once per combination of ``parameter_grid`` (strategy parameters)
    in parallel and return one frame: the parameters, then the stats.

    The default executor is a thread pool over all cores: the kernels release the GIL,
    so threads run side by side without copying the data. ``executor`` may be any
    ``concurrent.futures.Executor``-like object with ``map(fn, iterable)`` (a process
    pool created with ``mp_context=multiprocessing.get_context("spawn")``: forked workers
    of a process that has compiled Numba code can hang; or a distributed backend exposing
    the same call).
    """
    combos = _grid(parameter_grid)
    for c in combos:
        backtest._spec.vector({**backtest._params, **c})
    md = backtest.data  # load once, share read-only
    # compile (or load) everything once here: concurrent first calls would serialise anyway
    warm = Backtest.__new__(Backtest)
    warm.__dict__.update(backtest.__dict__)
    warm._params = {**backtest._params, **combos[0]}
    warm._data = MarketData(md.events[: min(len(md.events), 2000)], md.tick, md.price_scale,
                            md.name, md.initial_row, md.levels, md.kind, md.qty_scale, md.ladder)
    warm.run(progress=False)

    own_pool = executor is None
    if own_pool:
        executor = cf.ThreadPoolExecutor(max_workers or os.cpu_count() or 1)
    rows = []
    try:
        results = executor.map(_run_combo, [(backtest, combo) for combo in combos])
        if progress:
            from tqdm.auto import tqdm
            results = tqdm(results, total=len(combos), desc="sweep")
        for combo, stats in results:
            flat = {k: v for k, v in stats.items() if not isinstance(v, dict)}
            rows.append({**combo, **flat})
    finally:
        if own_pool:
            executor.shutdown()
    return pl.DataFrame(rows)


# -------------------------------------------------------------------------- demo
def run_demo(data: str = "synthetic", path=None, progress: bool = True, file: str | None = None):
    """The headline job: market making with inventory skew, 50/100/50 us latency,
    exact L3 queue position, maker rebate / taker fee and risk limits, on the embedded
    synthetic session (or ``data="lobster"`` / ``"binance"`` with ``file`` = the message
    file / capture; the ``../shared`` samples when ``file`` is None).

    Writes the HTML report to ``path`` (``None``: ``demo-report.html`` here; ``False``:
    none). Returns ``(BacktestResult, summary_text)``.
    """
    if data == "synthetic":
        source = "synthetic"
    elif data == "lobster":
        if file is None:
            from .data.samples import shared_data_dir
            shared = shared_data_dir()
            found = sorted((shared / "lobster").glob("*message*")) if shared else []
            if not found:
                raise ValueError("data='lobster' needs a message file (file=...)")
            file = found[0]
        source = file
    elif data == "binance":
        if file is None:
            from .data.samples import shared_data_dir
            shared = shared_data_dir()
            found = sorted((shared / "binance").glob("*.gz")) if shared else []
            if not found:
                raise ValueError("data='binance' needs a capture file (file=...)")
            file = found[0]
        source = file
    else:
        source = data
    bt = Backtest(source)
    if bt.data.kind == "l2":
        # Binance quantities are in 1e-8 BTC: quote 0.001, hold at most 0.01
        bt.strategy("mm_skew", half_spread_ticks=1, qty=100_000, skew_ticks=2,
                    max_position=1_000_000).queue_model("log").fees(maker_bps=-0.1, taker_bps=0.5)
        bt.risk(max_position=2_000_000, price_band_bps=50)
        queue = "L2 log-probability queue model"
    else:
        bt.strategy("mm_skew", half_spread_ticks=1, qty=100, skew_ticks=3, max_position=500)
        bt.fees(maker_bps=-0.2, taker_bps=0.3)
        bt.risk(max_position=800, max_order_qty=1000, price_band_bps=200,
                max_orders_per_window=200, rate_window_s=1.0)
        queue = "L3 exact FIFO queue position"
    bt.latency(feed_us=50, entry_us=100, response_us=50)
    result = bt.run(progress=progress)
    lines = [f"Backtest: {bt.data.name}, strategy mm_skew, latency feed/entry/response "
             f"50/100/50 us, {queue}",
             result.summary()]
    if path is not False:
        out = result.to_html(path or "demo-report.html", title="hft-workbench demo backtest")
        lines.append(f"report written to {out}")
    return result, "\n".join(lines)
