"""The live pipeline: a feed thread and a nogil consumer thread a notebook tunes while it runs.

Owns :class:`Pipeline` (feed -> SPSC ring -> admission -> engine + strategy + risk ->
latency histograms, see ``kernels.pipeline``), :class:`Sampler` (interval statistics
for live views: throughput, shed rate, per-stage percentiles of the last interval,
P&L), the overload harness (:func:`measure_capacity`, :func:`overload_run`,
:func:`overload_sweep`) and the name tables the widgets offer (controllers,
strategies, admission and risk parameters, waiting policies).

Threads, not processes: both loops are Numba kernels compiled ``nogil``, so the feed,
the consumer and the notebook's own thread really run at once, and nothing needs
shared memory. Parameters travel through one float64 control array
(``kernels.pipeline.CT_*``): a setter writes the fields and then bumps the
generation word; the consumer copies the new generation every ``control_every``
messages or whenever the ring runs dry, so a change takes effect within
milliseconds. ``stop()`` (also run by ``with``, by garbage collection and at
interpreter exit) joins both threads.

Settings that cannot change under a running loop (ring capacity, book size, the
feed) are applied by :meth:`Pipeline.restart`. Safe mode (bounds-checked kernels)
is chosen when ``kernels`` is first imported (``WORKBENCH_SAFE=1``); it needs a fresh
Python process, which :func:`safe_mode_status` explains.
"""
from __future__ import annotations

import atexit
import functools
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np

from kernels import admission as A
from kernels import pipeline as KP
from kernels import risk as RK
from kernels import ring as kr
from kernels.backtest import ACTION, CTX, LIVE, VIEW
from kernels.book import C_ANON_FALLBACK, allocate_state
from kernels.histogram import HEADER_WORDS, HP_COUNT, bucket_bounds, new_histogram, percentile
from kernels.jit import SAFE_MODE
from kernels.records import EVENT, FILL, MESSAGE

__all__ = [
    "Pipeline", "PipelineConfig", "Sampler", "CONTROLLERS", "STRATEGY_NAMES", "WAIT_POLICIES",
    "ADMISSION_PARAMS", "RISK_PARAMS", "STAGES", "measure_capacity", "overload_run",
    "overload_sweep", "histogram_cdf", "histogram_percentiles", "safe_mode_status",
    "live_pipelines", "simulate_admission", "trace_figure", "overload_figure",
]

CONTROLLERS = {name: i for i, name in enumerate(A.CONTROLLER_NAMES)}
STRATEGY_NAMES = KP.STRATEGY_NAMES
STAGES = KP.STAGE_NAMES
WAIT_POLICIES = ("spin", "yield", "sleep")
ADMISSION_PARAMS = {
    "target_ns": A.AP_TARGET_NS, "interval_ns": A.AP_INTERVAL_NS, "kp": A.AP_KP,
    "ki": A.AP_KI, "kd": A.AP_KD, "brake_factor": A.AP_BRAKE_FACTOR,
    "min_admit": A.AP_MIN_ADMIT, "increase": A.AP_INCREASE, "decrease": A.AP_DECREASE,
    "min_limit": A.AP_MIN_LIMIT, "max_limit": A.AP_MAX_LIMIT, "smoothing": A.AP_SMOOTHING,
    "rate": A.AP_RATE, "burst": A.AP_BURST,
}
RISK_PARAMS = {
    "max_order_qty": RK.RP_MAX_ORDER_QTY, "max_position": RK.RP_MAX_POSITION,
    "max_notional": RK.RP_MAX_NOTIONAL, "price_band_bps": RK.RP_PRICE_BAND_BPS,
    "max_orders_per_window": RK.RP_MAX_ORDERS, "rate_window_ns": RK.RP_RATE_WINDOW_NS,
    "max_loss": RK.RP_MAX_LOSS, "kill": RK.RP_KILL,
}
HIST_PRECISION = 8          # < 1 % relative error, 4.6 k buckets: cheap to copy 10x a second
HIST_HIGHEST_NS = 60_000_000_000
KERNEL_EVENT_BUDGET = 32_768  # messages per consumer call before Python looks around
# Empty polls per kernel call before the waiting policy takes over: a spinning side
# stays in the kernel longer; a sleeping one gives the CPU back almost at once (on a
# shared machine the other stage may need that very core).
SPIN_BUDGET = {"spin": 4_096, "yield": 1_024, "sleep": 64}
SLEEP_S = 50e-6
MAX_OPEN_ORDERS = 32
MAX_ACTIONS = 64

_LIVE: "weakref.WeakSet[Pipeline]" = weakref.WeakSet()


def live_pipelines() -> list["Pipeline"]:
    """Pipelines whose threads are running (for leak checks and clean exits)."""
    return [p for p in list(_LIVE) if p.running]


@atexit.register
def _stop_all() -> None:
    for p in list(_LIVE):
        try:
            p.stop()
        except Exception:  # interpreter teardown: best effort
            pass


def safe_mode_status() -> dict:
    """Whether kernels run bounds-checked, and how to change it (a restart of Python)."""
    return {
        "enabled": SAFE_MODE,
        "how": ("set WORKBENCH_SAFE=1 (or 0) in the environment and restart the Python "
                "kernel: the flag is read once, when kernels are compiled"),
    }


# ------------------------------------------------------------------ validation
def _number(name, value, *, low=None, high=None, integer=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    if integer and value != int(value):
        raise ValueError(f"{name}={value!r} must be a whole number")
    if low is not None and value < low:
        raise ValueError(f"{name}={value!r} must be >= {low}")
    if high is not None and value > high:
        raise ValueError(f"{name}={value!r} must be <= {high}")
    return value


def _choice(name, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r} must be one of {list(options)}")
    return value


def _cpus(name, cpus) -> tuple[int, ...] | None:
    if cpus is None:
        return None
    if isinstance(cpus, (int, np.integer)):
        cpus = (int(cpus),)
    cpus = tuple(sorted({int(c) for c in cpus}))
    available = os.cpu_count() or 1
    bad = [c for c in cpus if c < 0 or c >= available]
    if not cpus or bad:
        raise ValueError(f"{name}={cpus!r} must name CPUs in 0..{available - 1}")
    return cpus


def _strategy_spec(name):
    from workbench.backtest import STRATEGIES  # the backtester's names, defaults and order

    return STRATEGIES[name]


# ----------------------------------------------------------------- configuration
@dataclass
class PipelineConfig:
    """Everything a pipeline starts from. Fields marked live change while it runs."""

    rate: float | None = 100_000.0      # live: feed messages/s; None = as fast as possible
    controller: str = "none"            # live
    admission: dict = field(default_factory=dict)   # live: ADMISSION_PARAMS overrides
    target_ns: float = 1_000_000.0      # live: the end-to-end p99 to hold
    strategy: str = "mm_skew"           # live
    strategy_params: dict = field(default_factory=dict)  # live
    risk: dict = field(default_factory=dict)        # live: RISK_PARAMS
    work_ns: float = 2_000.0            # live: simulated model work per admitted message
    batch: int = 64                     # live: messages per ring read / publish
    control_every: int = 256            # live: messages between control reads
    wait_policy: str = "spin"           # live: what the idle consumer does (spin/yield/sleep)
    feed_wait_policy: str = "sleep"     # live: what the feed does between due messages
    producer_cpus: tuple | None = None  # live: CPU affinity of the feed thread
    consumer_cpus: tuple | None = None  # live: CPU affinity of the consumer thread
    ring_capacity: int = 4096           # restart
    book_capacity: int = 1 << 17        # restart: resting orders the pool holds
    price_levels: int = 4096            # restart
    symbol: int = 0                     # live: book the strategy trades

    def validated(self) -> "PipelineConfig":
        c = replace(self, admission=dict(self.admission), strategy_params=dict(self.strategy_params),
                    risk=dict(self.risk))
        if c.rate is not None:
            c.rate = _number("rate", c.rate, low=1.0)
        _choice("controller", c.controller, CONTROLLERS)
        for k, v in c.admission.items():
            _choice("admission parameter", k, ADMISSION_PARAMS)
            _number(k, v, low=0.0)
        c.target_ns = _number("target_ns", c.target_ns, low=1.0)
        _choice("strategy", c.strategy, STRATEGY_NAMES)
        if c.strategy != "none":
            _strategy_spec(c.strategy).vector(c.strategy_params)  # raises on unknown names
        for k, v in c.risk.items():
            _choice("risk parameter", k, RISK_PARAMS)
            _number(k, v, low=0.0)
        c.work_ns = _number("work_ns", c.work_ns, low=0.0, high=1e9)
        c.batch = int(_number("batch", c.batch, low=1, high=65536, integer=True))
        c.control_every = int(_number("control_every", c.control_every, low=1, high=1 << 24,
                                      integer=True))
        _choice("wait_policy", c.wait_policy, WAIT_POLICIES)
        _choice("feed_wait_policy", c.feed_wait_policy, WAIT_POLICIES)
        c.producer_cpus = _cpus("producer_cpus", c.producer_cpus)
        c.consumer_cpus = _cpus("consumer_cpus", c.consumer_cpus)
        cap = c.ring_capacity
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 2 or cap & (cap - 1):
            raise ValueError(f"ring_capacity={cap!r} must be a power of two >= 2")
        c.book_capacity = int(_number("book_capacity", c.book_capacity, low=16, integer=True))
        lv = c.price_levels
        if not isinstance(lv, (int, np.integer)) or lv & (lv - 1) or not 4096 <= lv <= 262144:
            raise ValueError(f"price_levels={lv!r} must be a power of two in [4096, 262144]")
        c.symbol = int(_number("symbol", c.symbol, low=0, integer=True))
        return c


# ----------------------------------------------------------------- histograms
def histogram_percentiles(h: np.ndarray, qs: Iterable[float] = (50, 90, 99, 99.9)) -> dict:
    """{q: value_ns} of a ``kernels.histogram`` array (0 when it is empty)."""
    return {q: int(percentile(h, float(q))) for q in qs}


def histogram_cdf(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latency_ns, cumulative fraction) at every non-empty bucket's upper bound."""
    counts = h[HEADER_WORDS:]
    nz = np.nonzero(counts)[0]
    if nz.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    _, high = bucket_bounds(h)
    cum = np.cumsum(counts[nz]).astype(np.float64)
    return high[nz], cum / cum[-1]


def _delta(new: np.ndarray, old: np.ndarray | None) -> np.ndarray:
    """Histogram of what was recorded between two copies of a cumulative one."""
    d = new.copy()
    if old is not None:
        d[HEADER_WORDS:] -= old[HEADER_WORDS:]
    # Copies taken while the consumer records can be torn by a count or two:
    # trust the buckets, rebuild the header from them.
    np.maximum(d[HEADER_WORDS:], 0, out=d[HEADER_WORDS:])
    d[HP_COUNT] = d[HEADER_WORDS:].sum()
    return d


def _count_within(h: np.ndarray, limit_ns: float) -> int:
    """Recordings at or below ``limit_ns`` (bucket resolution)."""
    _, high = bucket_bounds(h)
    return int(h[HEADER_WORDS:][high <= limit_ns].sum())


# --------------------------------------------------------------------- feeds
@functools.lru_cache(maxsize=4)
def simulator_events(duration_s: float = 300.0, rate: float = 200.0, seed: int = 0,
                     n_symbols: int = 1) -> tuple[np.ndarray, list[int]]:
    """Synthetic L3 events (marketable orders as orders, so the book matches them and
    can fill the strategy) and each symbol's tick, from ``workbench.data.synthetic``."""
    from workbench.data.synthetic import simulate

    market = simulate(n_symbols, seed=seed, duration_s=duration_s, rate=rate,
                      market_as_orders=True)
    market.events.flags.writeable = False  # cached and shared: read only
    return market.events, (market.tick,) * n_symbols


# ------------------------------------------------------------------ the pipeline
class Pipeline:
    """Feed -> ring -> admission -> engine + strategy + risk, in two background threads.

    ``events``: an ``EVENT`` array to replay (looped, with fresh order ids each lap)
    or ``"simulator"`` (the default; ``workbench.data.synthetic``). ``ticks``: tick
    size (price units) per book for a replay (default 100 = 0.01 at scale 10 000).
    Everything else is a :class:`PipelineConfig` field, passed as keywords.

    >>> with Pipeline(rate=50_000, controller="codel", target_ns=500_000) as p:
    ...     time.sleep(1.0)
    ...     p.set_admission("pid", kp=0.5)
    ...     stats = p.sampler().sample()
    """

    def __init__(self, events: Any = "simulator", *, ticks=None, price_scale: int = 10_000,
                 seed: int = 0, **config):
        self.config = PipelineConfig(**config).validated()
        if isinstance(events, str):
            _choice("events", events, ("simulator",))
            events, sim_ticks = simulator_events(seed=seed)
            ticks = ticks or sim_ticks
        events = np.asarray(events)
        if events.dtype != EVENT or events.ndim != 1 or events.shape[0] == 0:
            raise ValueError(f"events must be a non-empty 1-D kernels.records.EVENT array, "
                             f"got dtype {events.dtype} shape {events.shape}")
        n_books = int(events["symbol"].max()) + 1
        if events["symbol"].min() < 0:
            raise ValueError("events have a negative symbol index")
        ticks = list(ticks) if ticks is not None else [100] * n_books
        if len(ticks) < n_books:
            raise ValueError(f"ticks has {len(ticks)} entries for {n_books} books")
        self._events = np.ascontiguousarray(events)
        self._ticks = [int(_number("tick", t, low=1, integer=True)) for t in ticks[:n_books]]
        self._price_scale = int(_number("price_scale", price_scale, low=1, integer=True))
        self._id_span = int(max(self._events["order_id"].max(), 0)) + 1
        if self.config.symbol >= n_books:
            raise ValueError(f"symbol={self.config.symbol} but the feed has {n_books} book(s)")
        self.control = np.zeros(KP.N_CONTROL, dtype=np.float64)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._native: dict[str, int] = {}
        self._stop_event = threading.Event()
        self._paused = threading.Event()
        self._errors: list[BaseException] = []
        self._started_ns = 0
        self._allocate()
        self._write_control(initial=True)
        _LIVE.add(self)

    # ----------------------------------------------------------------- state
    def _allocate(self) -> None:
        c = self.config
        self.ring = np.zeros(kr.ring_bytes(c.ring_capacity, MESSAGE), dtype=np.uint8)
        self.header, self.slots = kr.ring_views(self.ring, c.ring_capacity, MESSAGE)
        kr.ring_init(self.header, c.ring_capacity, MESSAGE.itemsize)
        self.book = allocate_state(len(self._ticks), c.book_capacity, c.price_levels, self._ticks)
        self.book.counters[C_ANON_FALLBACK] = 0
        self.fills = np.zeros(4096, dtype=FILL)
        self.active = np.zeros(KP.N_CONTROL, dtype=np.float64)
        self.counters = np.zeros(KP.N_PIPE_COUNTERS, dtype=np.int64)
        size = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS).shape[0]
        self.hists = np.zeros((KP.N_STAGES, size), dtype=np.int64)
        for k in range(KP.N_STAGES):
            self.hists[k] = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
        self.window = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
        self.adm_state = np.zeros(A.N_ADM_STATE, dtype=np.float64)
        self.adm_counters = np.zeros(A.N_ADM_COUNTERS, dtype=np.int64)
        self.ctx = np.zeros(1, dtype=CTX)
        self.ctx[0]["tick"] = self._ticks[c.symbol]
        self.ctx[0]["price_scale"] = self._price_scale
        self.view = np.zeros(1, dtype=VIEW)
        self.orders = np.zeros(MAX_OPEN_ORDERS, dtype=LIVE)
        self.actions = np.zeros(MAX_ACTIONS, dtype=ACTION)
        self.risk_state = np.zeros(RK.N_RISK_STATE, dtype=np.int64)
        self._feed_pos = 0
        self._lap = 0
        self._seq = 0

    def _write_control(self, initial: bool = False) -> None:
        """Write the config into the control array, then publish it (generation + 1)."""
        c = self.config
        ctl = self.control
        with self._lock:
            ctl[KP.CT_CONTROL_EVERY] = c.control_every
            ctl[KP.CT_BATCH] = c.batch
            ctl[KP.CT_WORK_NS] = c.work_ns
            ctl[KP.CT_STRATEGY] = STRATEGY_NAMES.index(c.strategy)
            ctl[KP.CT_SYMBOL] = c.symbol
            adm = A.default_params(CONTROLLERS[c.controller], c.target_ns)
            if c.controller == "token_bucket" and "rate" not in c.admission and c.rate:
                adm[A.AP_RATE] = c.rate
            for k, v in c.admission.items():
                adm[ADMISSION_PARAMS[k]] = v
            ctl[KP.CT_ADMISSION:KP.CT_ADMISSION + A.N_ADM_PARAMS] = adm
            sp = np.zeros(KP.N_STRATEGY_PARAMS)
            if c.strategy != "none":
                vec = _strategy_spec(c.strategy).vector(c.strategy_params)
                sp[:vec.shape[0]] = vec
            ctl[KP.CT_STRATEGY_PARAMS:KP.CT_STRATEGY_PARAMS + KP.N_STRATEGY_PARAMS] = sp
            rp = RK.default_risk_params()
            for k, v in c.risk.items():
                rp[RISK_PARAMS[k]] = v
            ctl[KP.CT_RISK:KP.CT_RISK + KP.N_RISK_PARAMS] = rp
            if initial:
                self.active[:] = ctl
                A.admission_reset(adm, self.adm_state, self.window, time.monotonic_ns())
            ctl[KP.CT_GENERATION] += 1

    def _update(self, **changes) -> None:
        self.config = replace(self.config, **changes).validated()
        self._write_control()

    # ------------------------------------------------------------ live setters
    def set_admission(self, controller: str | None = None, *, target_ns: float | None = None,
                      **params) -> None:
        """Switch controller and/or change its parameters (ADMISSION_PARAMS names)."""
        adm = dict(self.config.admission)
        adm.update(params)
        changes: dict = {"admission": adm}
        if controller is not None:
            changes["controller"] = controller
        if target_ns is not None:
            changes["target_ns"] = target_ns
        self._update(**changes)

    def set_strategy(self, name: str | None = None, **params) -> None:
        """Switch strategy (its parameters reset to the defaults) and/or change them."""
        if name is not None and name != self.config.strategy:
            self._update(strategy=name, strategy_params=dict(params))
        else:
            sp = dict(self.config.strategy_params)
            sp.update(params)
            self._update(strategy_params=sp)

    def set_risk(self, **limits) -> None:
        risk = dict(self.config.risk)
        risk.update(limits)
        self._update(risk=risk)

    def reset_kill_switch(self) -> None:
        """Re-arm a tripped kill switch (it latches, as a real one does). It trips again
        at once while the ``kill`` limit is set or the loss is still beyond ``max_loss``."""
        self.risk_state[RK.RS_KILLED] = 0
        self.counters[KP.PC_KILLED] = 0
        self.ctx[0]["killed"] = 0

    def set_rate(self, rate: float | None) -> None:
        """Feed rate in messages/s (None: as fast as possible); re-anchors the pacing."""
        self._update(rate=rate)
        self._reanchor = True

    def set_work(self, work_ns: float) -> None:
        self._update(work_ns=work_ns)

    def set_batch(self, batch: int) -> None:
        self._update(batch=batch)

    def set_control_every(self, n: int) -> None:
        self._update(control_every=n)

    def set_wait_policy(self, policy: str, stage: str = "consumer") -> None:
        """How the idle ``stage`` ('consumer' or 'producer') waits: spin, yield or sleep."""
        _choice("stage", stage, ("producer", "consumer"))
        self._update(**{"wait_policy" if stage == "consumer" else "feed_wait_policy": policy})

    def set_affinity(self, stage: str, cpus) -> None:
        """Pin the 'producer' or 'consumer' thread to ``cpus`` (None: all CPUs), live."""
        _choice("stage", stage, ("producer", "consumer"))
        cpus = _cpus(f"{stage}_cpus", cpus)
        self._update(**{f"{stage}_cpus": cpus})
        tid = self._native.get(stage)
        if tid is not None and self.running:
            self._apply_affinity(tid, cpus)

    @staticmethod
    def _apply_affinity(tid: int, cpus) -> None:
        if not hasattr(os, "sched_setaffinity"):
            return
        try:
            os.sched_setaffinity(tid, cpus if cpus is not None else range(os.cpu_count() or 1))
        except OSError:
            pass  # the thread just ended, or the OS refuses: affinity is advisory here

    # ------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def errors(self) -> list[BaseException]:
        return list(self._errors)

    def start(self) -> "Pipeline":
        if self.running:
            return self
        self._stop_event.clear()
        self._paused.clear()
        self._compile()
        self.control[KP.CT_COMMAND] = KP.CMD_RUN
        self._reanchor = True
        self._started_ns = time.monotonic_ns()
        self._threads = [
            threading.Thread(target=self._guard, args=("consumer", self._consume_loop),
                             name="wb-pipeline-consumer", daemon=True),
            threading.Thread(target=self._guard, args=("producer", self._feed_loop),
                             name="wb-pipeline-feed", daemon=True),
        ]
        for t in self._threads:
            t.start()
        _LIVE.add(self)
        return self

    def _consumer_args(self) -> tuple:
        return (self.header, self.slots, self.book, self.fills, self.control, self.active,
                self.counters, self.hists, self.adm_state, self.adm_counters, self.window,
                self.ctx, self.view, self.orders, self.actions, self.risk_state,
                self._price_scale)

    def _compile(self) -> None:
        """Compile (or load from the cache) both loops here, before the threads start:
        a first call inside the consumer would stall it for seconds while the feed
        runs ahead. Zero-length calls: nothing is consumed or published."""
        KP.run_pipeline(*self._consumer_args(), 0, 1)
        KP.feed_publish(self.header, self.slots, self._events, 0, 0, 0, 0, 0, 0, 1.0, 1, 1)

    def pause(self) -> None:
        self._paused.set()
        self.control[KP.CT_COMMAND] = KP.CMD_PAUSE

    def resume(self) -> None:
        self._reanchor = True
        self.control[KP.CT_COMMAND] = KP.CMD_RUN
        self._paused.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads and wait for them; raises if one does not end."""
        self._stop_event.set()
        self.control[KP.CT_COMMAND] = KP.CMD_STOP
        self._paused.clear()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.01))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"pipeline threads did not stop within {timeout} s: {alive}")
        self._threads = []
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"a pipeline thread failed: {errors[0]!r}") from errors[0]

    def restart(self, **changes) -> "Pipeline":
        """Stop, apply any config change (ring capacity, book size...), start afresh."""
        self.stop()
        self.config = replace(self.config, **changes).validated()
        self._allocate()
        self._write_control(initial=True)
        return self.start()

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            if self._threads:
                self.stop(timeout=2.0)
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        if self.running and self.paused:
            state = "paused"
        return (f"Pipeline({state}, controller={self.config.controller}, strategy={self.config.strategy}, "
                f"rate={self.config.rate}, received={int(self.counters[KP.PC_RECEIVED])})")

    # ---------------------------------------------------------------- threads
    def _guard(self, stage: str, loop) -> None:
        self._native[stage] = threading.get_native_id()
        cpus = getattr(self.config, f"{stage}_cpus")
        if cpus is not None:
            self._apply_affinity(0, cpus)
        try:
            loop()
        except BaseException as exc:  # surfaced through .errors; the other side stops too
            self._errors.append(exc)
            self._stop_event.set()
            self.control[KP.CT_COMMAND] = KP.CMD_STOP

    def _idle(self, policy: str) -> None:
        if policy == "yield":
            os.sched_yield()
        elif policy == "sleep":
            time.sleep(SLEEP_S)

    def _feed_loop(self) -> None:
        ev = self._events
        n = ev.shape[0]
        anchor_seq, anchor_ns = self._seq, time.monotonic_ns()
        while not self._stop_event.is_set():
            if self._paused.is_set():
                time.sleep(0.005)
                continue
            rate = self.config.rate
            if self._reanchor:
                self._reanchor = False
                anchor_seq, anchor_ns = self._seq, time.monotonic_ns()
            stop = min(n, self._feed_pos + 65_536)
            pos, status = KP.feed_publish(
                self.header, self.slots, ev, self._feed_pos, stop, self._lap * self._id_span,
                self._seq, anchor_seq, anchor_ns, float(rate or 0.0), self.config.batch,
                SPIN_BUDGET[self.config.feed_wait_policy])
            self._seq += pos - self._feed_pos
            self._feed_pos = pos
            if pos >= n:
                self._feed_pos = 0
                self._lap += 1
            if status != KP.FEED_DONE:
                self._idle(self.config.feed_wait_policy)

    def _consume_loop(self) -> None:
        args = self._consumer_args()
        while True:
            status = KP.run_pipeline(*args, KERNEL_EVENT_BUDGET, SPIN_BUDGET[self.config.wait_policy])
            if status == KP.PS_STOPPED or self._stop_event.is_set():
                return
            if status == KP.PS_PAUSED:
                time.sleep(0.005)
            elif status == KP.PS_IDLE:
                self._idle(self.config.wait_policy)

    # -------------------------------------------------------------- reading
    def sampler(self) -> "Sampler":
        """A fresh interval sampler (each live view owns one)."""
        return Sampler(self)

    def histogram(self, stage: str = "end_to_end") -> np.ndarray:
        """A copy of one stage's cumulative latency histogram (``kernels.histogram``)."""
        return _delta(self.hists[STAGES.index(_choice("stage", stage, STAGES))], None)

    def totals(self) -> dict:
        """Cumulative counters since start (a snapshot)."""
        c = self.counters
        return {
            "received": int(c[KP.PC_RECEIVED]), "admitted": int(c[KP.PC_ADMITTED]),
            "shed": int(c[KP.PC_SHED]), "book_rejects": int(c[KP.PC_BOOK_REJECTS]),
            "strategy_wakes": int(c[KP.PC_WAKES]), "orders": int(c[KP.PC_ORDERS]),
            "cancels": int(c[KP.PC_CANCELS]), "risk_rejects": int(c[KP.PC_RISK_REJECTS]),
            "own_fills": int(c[KP.PC_OWN_FILLS]), "killed": bool(c[KP.PC_KILLED]),
            "control_generation": int(c[KP.PC_GENERATION]),
            "published": int(self.header[kr.H_HEAD]), "ring_size": int(self.header[kr.H_HEAD] - self.header[kr.H_TAIL]),
            "brakes": int(self.adm_counters[A.AC_BRAKES]),
        }

    def pnl(self) -> dict:
        c = self.ctx[0]
        mid = float(self.view[0]["mid"])
        position = int(c["position"])
        cash = float(c["cash"])
        return {"position": position, "cash": cash, "mid": mid / self._price_scale,
                "equity": cash + position * mid / self._price_scale}


class Sampler:
    """Interval statistics of a running pipeline: each ``sample()`` describes what
    happened since the previous one (the first, since start)."""

    QS = (50.0, 90.0, 99.0, 99.9)

    def __init__(self, pipeline: Pipeline):
        self.p = pipeline
        self._last_t = time.monotonic_ns()
        self._last_counts = np.zeros(KP.N_PIPE_COUNTERS, dtype=np.int64)
        self._last_hists = None

    def sample(self) -> dict:
        p = self.p
        now = time.monotonic_ns()
        counts = p.counters.copy()
        hists = p.hists.copy()
        dt = max((now - self._last_t) / 1e9, 1e-9)
        d = counts - self._last_counts
        out = {"t": (now - p._started_ns) / 1e9 if p._started_ns else 0.0, "interval_s": dt,
               "throughput": d[KP.PC_RECEIVED] / dt, "admitted_per_s": d[KP.PC_ADMITTED] / dt,
               "shed_rate": float(d[KP.PC_SHED] / d[KP.PC_RECEIVED]) if d[KP.PC_RECEIVED] else 0.0}
        for k, stage in enumerate(STAGES):
            h = _delta(hists[k], None if self._last_hists is None else self._last_hists[k])
            for q in self.QS:
                out[f"{stage}_p{q:g}_ns"] = int(percentile(h, q))
        st = p.adm_state
        out.update(p.pnl())
        out.update(admit_fraction=float(st[A.AS_FRACTION]), limit=float(st[A.AS_LIMIT]),
                   brake=bool(st[A.AS_BRAKE]), window_p99_ns=float(st[A.AS_LAST_P99]),
                   ring_size=int(p.header[kr.H_HEAD] - p.header[kr.H_TAIL]),
                   received=int(counts[KP.PC_RECEIVED]), generation=int(counts[KP.PC_GENERATION]))
        self._last_t, self._last_counts, self._last_hists = now, counts, hists
        return out


# --------------------------------------------------------------- overload harness
def _window(p: Pipeline, seconds: float):
    """Counters and end-to-end histogram recorded during the next ``seconds``."""
    c0, h0, t0 = p.counters.copy(), p.hists[KP.STAGE_END_TO_END].copy(), time.monotonic()
    time.sleep(seconds)
    c1, h1, t1 = p.counters.copy(), p.hists[KP.STAGE_END_TO_END].copy(), time.monotonic()
    return c1 - c0, _delta(h1, h0), t1 - t0


def measure_capacity(duration_s: float = 1.0, warmup_s: float = 0.3, **config) -> float:
    """Messages/s the consumer sustains with the feed unpaced and no admission control."""
    config = {**config, "rate": None, "controller": "none"}
    with Pipeline(**config) as p:
        time.sleep(warmup_s)
        d, _, dt = _window(p, duration_s)
    return float(d[KP.PC_RECEIVED] / dt)


def overload_run(controller: str, load: float, capacity: float, *, duration_s: float = 1.0,
                 warmup_s: float = 0.3, target_ns: float = 1_000_000.0, events=None,
                 **config) -> dict:
    """Drive the pipeline at ``load`` x ``capacity`` under ``controller``.

    Returns controller, load, p50_ns/p99_ns (end to end, admitted messages),
    goodput (admitted messages/s that met 1.1 x the target), goodput_ratio
    (goodput / capacity), shed_rate, and the raw counts.
    """
    _choice("controller", controller, CONTROLLERS)
    load = _number("load", load, low=0.01)
    capacity = _number("capacity", capacity, low=1.0)
    rate = load * capacity
    adm = dict(config.pop("admission", {}) or {})
    if controller == "token_bucket":
        adm.setdefault("rate", 0.95 * capacity)
    kwargs = dict(config, rate=rate, controller=controller, target_ns=target_ns, admission=adm)
    pipe = Pipeline(events, **kwargs) if events is not None else Pipeline(**kwargs)
    with pipe as p:
        time.sleep(warmup_s)
        d, h, dt = _window(p, duration_s)
    received = int(d[KP.PC_RECEIVED])
    admitted = int(d[KP.PC_ADMITTED])
    good = _count_within(h, 1.1 * target_ns)
    return {
        "controller": controller, "load": float(load), "rate": rate,
        "p50_ns": int(percentile(h, 50.0)), "p99_ns": int(percentile(h, 99.0)),
        "goodput": good / dt, "goodput_ratio": good / dt / capacity,
        "shed_rate": float(d[KP.PC_SHED] / received) if received else 0.0,
        "received": received, "admitted": admitted, "seconds": dt,
    }


def overload_sweep(controllers: Iterable[str] = A.CONTROLLER_NAMES,
                   loads: Iterable[float] = (0.5, 1.0, 2.0, 4.0), *, duration_s: float = 1.0,
                   warmup_s: float = 0.3, target_ns: float = 1_000_000.0,
                   capacity: float | None = None, progress: bool = True, **config):
    """Every controller at every load (x capacity, measured first unless given).

    Returns ``(capacity, polars.DataFrame)`` with one :func:`overload_run` row each.
    """
    import polars as pl
    from tqdm.auto import tqdm

    controllers = [_choice("controller", c, CONTROLLERS) for c in controllers]
    loads = [_number("load", x, low=0.01) for x in loads]
    if capacity is None:
        capacity = measure_capacity(duration_s=duration_s, warmup_s=warmup_s, **config)
    rows = []
    jobs = [(c, x) for c in controllers for x in loads]
    for c, x in tqdm(jobs, desc="overload", disable=not progress):
        rows.append(overload_run(c, x, capacity, duration_s=duration_s, warmup_s=warmup_s,
                                 target_ns=target_ns, **config))
    return capacity, pl.DataFrame(rows)


# ------------------------------------------------------- controllers on a model queue
def simulate_admission(controller: str, load: float, *, n: int = 100_000,
                       target_ns: float = 200_000.0, service_ns: float = 5_000.0,
                       shed_cost_ns: int = 100, seed: int = 0, **params) -> dict:
    """Run ``controller`` on a single-server queue (``kernels.admission.simulate_trace``):
    Poisson arrivals at ``load`` x capacity, exponential service times. No threads, no
    clock: the same controller code as the live pipeline, on a reproducible trace.

    Returns arrays (``arrival_ns``, ``latency_ns`` (-1 when shed), ``admitted``,
    ``backlog``) and a summary (p50/p99 of admitted, goodput as a fraction of
    capacity within 1.1x target, shed rate).
    """
    _choice("controller", controller, CONTROLLERS)
    load = _number("load", load, low=0.01)
    n = int(_number("n", n, low=1, integer=True))
    service_ns = _number("service_ns", service_ns, low=1.0)
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(service_ns / load, n)).astype(np.int64)
    services = (rng.exponential(service_ns, n) + 1).astype(np.int64)
    p = A.default_params(CONTROLLERS[controller], _number("target_ns", target_ns, low=1.0))
    if controller == "token_bucket" and "rate" not in params:
        p[A.AP_RATE] = 0.95e9 / service_ns
    for k, v in params.items():
        p[ADMISSION_PARAMS[_choice("parameter", k, ADMISSION_PARAMS)]] = _number(k, v, low=0.0)
    state = np.zeros(A.N_ADM_STATE)
    counters = np.zeros(A.N_ADM_COUNTERS, dtype=np.int64)
    window = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
    backlog = np.zeros(n, dtype=np.int64)
    latency = np.zeros(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=np.int8)
    end = A.simulate_trace(p, state, counters, window, arrivals, services, shed_cost_ns,
                           backlog, latency, admitted)
    ok = admitted == 1
    seconds = max((end - arrivals[0]) / 1e9, 1e-12)
    capacity = 1e9 / service_ns
    return {
        "controller": controller, "load": load,
        "p50_ns": float(np.percentile(latency[ok], 50)) if ok.any() else 0.0,
        "p99_ns": float(np.percentile(latency[ok], 99)) if ok.any() else 0.0,
        "goodput_ratio": float(((latency <= 1.1 * target_ns) & ok).sum() / seconds / capacity),
        "shed_rate": float(1.0 - ok.mean()),
        "arrival_ns": arrivals, "latency_ns": latency, "admitted": admitted, "backlog": backlog,
    }


# ------------------------------------------------------------------------ plots
def trace_figure(runs: Iterable[dict], target_ns: float, every: int = 50):
    """Bokeh: admitted messages' latency along the trace for each ``simulate_admission``
    run (every ``every``-th message, for a light plot)."""
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    f = figure(title="end-to-end latency of admitted messages (model queue)", y_axis_type="log",
               x_axis_label="time (ms)", y_axis_label="latency (ns)", width=760, height=320)
    for run, color in zip(runs, Category10[10]):
        ok = run["admitted"] == 1
        t = (run["arrival_ns"][ok] - run["arrival_ns"][0]) / 1e6
        f.line(t[::every], run["latency_ns"][ok][::every], color=color,
               legend_label=f"{run['controller']} x{run['load']:g}")
    f.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    f.legend.location = "top_left"
    return f


def overload_figure(frame, target_ns: float):
    """Bokeh: p99 and goodput against load, one line per controller, from
    :func:`overload_sweep`'s frame."""
    from bokeh.layouts import row
    from bokeh.models import Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    f1 = figure(title="p99 end to end vs load", y_axis_type="log", x_axis_label="load (x capacity)",
                y_axis_label="ns", width=420, height=320)
    f2 = figure(title="goodput (within 1.1x target) / capacity", x_axis_label="load (x capacity)",
                width=420, height=320)
    for name, color in zip(frame["controller"].unique(maintain_order=True), Category10[10]):
        part = frame.filter(frame["controller"] == name).sort("load")
        x = part["load"].to_list()
        f1.line(x, part["p99_ns"].to_list(), color=color, legend_label=name)
        f1.scatter(x, part["p99_ns"].to_list(), color=color)
        f2.line(x, part["goodput_ratio"].to_list(), color=color, legend_label=name)
        f2.scatter(x, part["goodput_ratio"].to_list(), color=color)
    f1.add_layout(Span(location=target_ns, dimension="width", line_dash="dashed", line_color="black"))
    f2.add_layout(Span(location=0.9, dimension="width", line_dash="dotted", line_color="black"))
    f1.legend.location = f2.legend.location = "top_left"
    f1.legend.label_text_font_size = f2.legend.label_text_font_size = "8pt"
    return row(f1, f2)
