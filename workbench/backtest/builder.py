"""The ``Backtest`` builder: validates every knob, allocates the kernel state once and
runs the replay in chunks with a progress bar.

Strategy and risk parameters go through ``workbench.params`` (the registries next to
their kernels); market data comes from ``workbench.data.market.load_events``, the same
event arrays the replay checks and the benchmarks consume. The simulation itself is
``kernels.backtest`` (``l3``: one book shared by the market's orders and ours, exact FIFO
queue position; ``l2``: queue models); read those docstrings for the timing rules.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping

import numpy as np

from kernels import book_state
from kernels import histogram as kh
from kernels import records as R
from kernels import risk as krisk
from kernels.backtest import l3 as backtest_l3
from kernels.backtest import latency_models
from kernels.backtest import state as backtest_state
from kernels.state_views import backtest_context

from ..data.lobster import price_levels_for
from ..data.market import MarketData, load_events
from ..params import RISK, strategy_spec
from .loopcache import loop_for
from .results import BacktestResult

__all__ = ["Backtest"]


def _non_negative(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return v


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
        self._spec = strategy_spec(strategy)
        self._params = dict(params or {})
        self._spec.vector(self._params)
        self._lat = np.zeros(3, dtype=np.float64)
        self._lat_table = np.zeros((3, 0), dtype=np.int64)
        # the bundled model for constants and samples alike (with no samples it is the
        # constant): one compiled loop serves both
        self._lat_model = latency_models.sampled_latency
        self._fees = np.zeros(2, dtype=np.float64)
        self._risk_limits: dict[str, float] = {}
        self._timer_ns = 0                              # .timer()
        self._fill_mode = backtest_state.FM_PARTIAL     # .exchange()
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
        self._spec = strategy_spec(strategy, param_names, defaults)
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
        ``kernels.backtest.latency_models`` signature)."""
        self._lat = np.array([_non_negative("feed_us", feed_us) * 1e3,
                              _non_negative("entry_us", entry_us) * 1e3,
                              _non_negative("response_us", response_us) * 1e3])
        self._lat_model = latency_models.sampled_latency   # no samples: the constants
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
            self._lat_model = latency_models.sampled_latency
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
        from kernels.backtest import queue_models

        bundled = queue_models.BUNDLED
        if isinstance(model, str):
            if model not in bundled:
                raise ValueError(f"queue model {model!r} is not one of {sorted(bundled)} "
                                 "(or pass an @numba.njit function)")
            code, names = bundled[model]
            unknown = set(params) - set(names)
            if unknown:
                raise ValueError(f"queue model {model!r} takes {list(names)}, not {sorted(unknown)}")
            # one kernel for the three (queue_models.bundled_prob): one compiled loop
            fn = queue_models.bundled_prob
            values = [float(code), float(params.get("n", 2.0))]
        else:
            if not hasattr(model, "py_func"):
                raise ValueError("a user queue model must be an @numba.njit function")
            fn, values = model, [float(v) for v in params.values()]
        self._queue_fn = fn
        self._queue_name = model if isinstance(model, str) else getattr(model, "__name__", "user")
        self._queue_params = np.array(values or [0.0], dtype=np.float64)
        return self

    def risk(self, **limits) -> "Backtest":
        """Pre-trade limits (0 = none), by the names of ``kernels.risk.RISK_PARAMS``:
        max_order_qty, max_position, max_notional, price_band_bps, max_orders_per_window,
        rate_window_s, max_loss, kill. Repeated calls add to the limits already set."""
        merged = {**self._risk_limits, **limits}
        RISK.validate(merged)
        self._risk_limits = merged
        return self

    def timer(self, every_us: float | None = None) -> "Backtest":
        """Also wake the strategy every ``every_us`` microseconds of exchange time
        (``ctx.wake == W_TIMER``; as hftbacktest's ``elapse``), from the first event on
        and strictly before the last one (timing rules: ``kernels.backtest.l3``).
        ``None`` or 0 turns it off."""
        every = _non_negative("every_us", 0.0 if every_us is None else every_us)
        ns = int(round(every * 1e3))
        if every > 0 and ns < 1:
            raise ValueError(f"every_us={every_us!r} is below one nanosecond")
        self._timer_ns = ns
        return self

    def exchange(self, partial_fills: bool = True, *, all_or_none: bool = False) -> "Backtest":
        """How the L2 exchange fills own orders (``kernels.backtest.l2``): partially, as
        the queue and the displayed depth allow (default); ``partial_fills=False``:
        hftbacktest's ``NoPartialFillExchange`` (an order that may fill fills whole);
        with ``all_or_none=True``: only when the quantity available covers all of it.
        L3 data always fills in exact FIFO order, partially."""
        for name, value in (("partial_fills", partial_fills), ("all_or_none", all_or_none)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name}={value!r} must be True or False")
        if partial_fills and all_or_none:
            raise ValueError("all_or_none=True needs partial_fills=False")
        self._fill_mode = (backtest_state.FM_PARTIAL if partial_fills else
                           backtest_state.FM_ALL_OR_NONE if all_or_none else
                           backtest_state.FM_NO_PARTIAL)
        return self

    # ---------------------------------------------------------------------- run
    @property
    def data(self) -> MarketData:
        if self._data is None:
            self._data = load_events(self._data_arg, **self._data_options)
        return self._data

    def describe(self) -> dict:
        return {"data": self.data.name, "strategy": self._spec.name,
                "params": dict(zip(self._spec.param_names, self._spec.vector(self._params).tolist())),
                "latency_ns": self._lat.tolist(), "fees_bps": self._fees.tolist(),
                "queue_model": "exact L3 FIFO" if self.data.kind == "l3" else self._queue_name,
                "risk": {k: v for k, v in RISK.validate(self._risk_limits).items() if v},
                "timer_ns": self._timer_ns,
                "fills": ("partial", "no_partial", "all_or_none")[self._fill_mode]}

    def _allocate(self, md: MarketData) -> backtest_state.BacktestState:
        events = md.events
        if md.kind == "l2":
            # unused by the L2 loop
            st = book_state.allocate_state(1, 1, book_state.MIN_PRICE_LEVELS, [md.tick])
        else:
            st = book_state.allocate_state(1, min(self.capacity, len(events) + 4096),
                                           price_levels_for(events, md.tick), [md.tick])
        st.counters[book_state.EC_ANON_FALLBACK] = 1
        if md.initial_row is not None:
            from kernels import replay_check as kreplay
            kreplay.resync_top(st, 0, md.initial_row, md.levels, int(events[0]["ts"]))
        io = R.strategy_io(self.max_open_orders, max(16, 2 * self.max_open_orders),
                           self._spec.vector(self._params), md.tick, md.price_scale)
        cfg = np.zeros(backtest_state.N_CFG, dtype=np.int64)
        cfg[backtest_state.G_RECORD_EVERY_NS] = max(1, int(self.record_every_s * 1e9))
        cfg[backtest_state.G_PRICE_SCALE] = md.price_scale * md.qty_scale  # money = qty * price / this
        cfg[backtest_state.G_TICK] = md.tick
        cfg[backtest_state.G_TIMER_NS] = self._timer_ns
        cfg[backtest_state.G_FILL_MODE] = self._fill_mode
        span_ns = int(events["ts"][-1] - events["ts"][0]) if len(events) else 0
        n_steps = span_ns // cfg[backtest_state.G_RECORD_EVERY_NS] + self.max_fills + 16
        q = self.queue_capacity
        return backtest_state.BacktestState(
            st=st, fills=np.zeros(len(st.pool) + 16, dtype=R.FILL),
            ctx=io.ctx, mview=io.view, orders=io.orders, actions=io.actions, params=io.params,
            log=np.zeros(self.max_orders, dtype=R.ORDER_LOG),
            own_fills=np.zeros(self.max_fills, dtype=R.OWN_FILL),
            steps=np.zeros(int(n_steps), dtype=R.STEP),
            feed=np.zeros(q, dtype=R.VIEW), entry=np.zeros(q, dtype=R.PENDING),
            resp=np.zeros(q, dtype=R.RESPONSE),
            resting=np.zeros(self.max_open_orders + 1, dtype=np.int64),
            cnt=np.zeros(backtest_state.N_BACKTEST_COUNTERS, dtype=np.int64),
            acc=np.zeros(backtest_state.N_ACC),
            cfg=cfg, fees=self._fees.copy(), risk_params=RISK.to_array(self._risk_limits),
            risk_state=np.zeros(krisk.N_RISK_STATE, dtype=np.int64),
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
        if md.kind != "l2" and self._fill_mode != backtest_state.FM_PARTIAL:
            raise ValueError("exchange(partial_fills=False) applies to L2 data; L3 data fills "
                             "in exact FIFO order")
        s = self._allocate(md)
        context = backtest_context(s)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(events), unit="ev", desc=f"backtest {self._spec.name}")
        if md.kind == "l2":
            from kernels.state_views import l2_context
            low, levels = md.ladder
            meta = np.array([low, md.tick, levels, 0], dtype=np.int64)
            l2 = backtest_state.L2State(np.zeros(levels, np.int64), np.zeros(levels, np.int64),
                                        np.full(2, -1, np.int64), meta, np.zeros(self.max_orders),
                                        np.zeros(self.max_orders), self._queue_params.copy())
            context2 = l2_context(l2)
            # compiled once per machine per (strategy, models), see loopcache
            loop = loop_for("l2", self._spec.fn, self._lat_model, self._queue_fn, context2)
        else:
            loop = loop_for("l3", self._spec.fn, self._lat_model)
        # compile (first use in this process) without running anything: the timing below
        # is the replay alone
        loop(context, events, 0, 0)
        started = time.perf_counter()
        position = 0
        n = len(events)
        while True:
            stop = min(position + chunk, n)
            reached, status = loop(context, events, position, stop)
            if status == backtest_state.BT_RING_FULL:
                raise RuntimeError(f"a latency queue overflowed ({self.queue_capacity} slots) at "
                                   f"event {reached}: pass a larger queue_capacity")
            if bar is not None:
                bar.update(reached - position)
            position = reached
            if position >= n:
                break
        seconds = time.perf_counter() - started
        backtest_l3.finish(context, int(events["ts"][-1]))
        if bar is not None:
            bar.close()
        result = BacktestResult.from_state(s, md, self, seconds)
        result.stats["timer_wakes"] = int(s.cnt[backtest_state.BC_TIMER_WAKES])
        return result

    def run_many(self, variants, *, executor=None, max_workers: int | None = None,
                 progress: bool = True, shared_dir=None) -> list["BacktestResult"]:
        """One run per parameter dict in ``variants`` (over this backtest's strategy
        parameters), side by side; the results in the order given, the same as calling
        ``run()`` for each. ``executor``: ``"local"``/None (threads), ``"dask"`` (a
        LocalCluster sized to the machine), a ``distributed.Client`` or a scheduler
        address (see ``workbench.scale``)."""
        from .sweep import run_variants

        return run_variants(self, variants, executor=executor, max_workers=max_workers,
                            progress=progress, shared_dir=shared_dir)
