"""The live pipeline: a feed thread and a nogil consumer thread a notebook tunes while it runs.

Owns :class:`Pipeline` (feed -> SPSC ring -> admission -> engine + strategy + risk ->
latency histograms, see ``kernels.pipeline``), its :class:`PipelineConfig`,
:class:`Sampler` (interval statistics for live views: throughput, shed rate,
per-stage percentiles of the last interval, P&L), :func:`live_pipelines`,
:func:`safe_mode_status` and the name tables the widgets offer (controllers,
strategies, admission and risk parameters, waiting policies, stages).

Threads, not processes: both loops are Numba kernels compiled ``nogil``, so the feed,
the consumer and the notebook's own thread really run at once, and nothing needs
shared memory. The ring is a ``workbench.queues.Ring``; the kernels publish into and
consume from its arrays. Parameters travel through one float64 control array
(``kernels.pipeline.CT_*``): a setter writes the fields and then bumps the
generation word; the consumer copies the new generation every ``control_every``
messages or whenever the ring runs dry, so a change takes effect within
milliseconds. ``stop()`` (also run by ``with``, by garbage collection and at
interpreter exit) joins both threads.

Settings that cannot change under a running loop (ring capacity, book size, the
feed) are applied by :meth:`Pipeline.restart`. Safe mode (bounds-checked kernels)
is chosen when ``kernels`` is first imported (checked by default, unchecked with
``WORKBENCH_MODE=lab``); changing it needs a fresh Python process, which
:func:`safe_mode_status` explains.
"""
from __future__ import annotations

import atexit
import functools
import os
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kernels import admission as kadm
from kernels import pipeline as kpipe
from kernels import risk as krisk
from kernels import strategies as kstrat
from kernels import book_state
from kernels.book_state import EC_ANON_FALLBACK, allocate_state
from kernels.histogram import new_histogram
from kernels.jit import SAFE_MODE
from kernels.records import EVENT, FILL, MESSAGE, strategy_io
from workbench.latency import PERCENTILES, histogram_delta, histogram_percentiles
from workbench import params
from workbench.params import ADMISSION, RISK, choice, cpus, number
from workbench.queues import Ring

__all__ = [
    "Pipeline", "PipelineConfig", "Sampler", "WAIT_POLICIES", "STAGES", "HIST_PRECISION",
    "HIST_HIGHEST_NS",
    "safe_mode_status", "live_pipelines", "simulator_events",
]

STAGES = kpipe.STAGE_NAMES
WAIT_POLICIES = ("spin", "yield", "sleep")
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
        "how": ("the build is bounds-checked by default (ProductionSafe); set "
                "WORKBENCH_MODE=lab (or WORKBENCH_SAFE=0) in the environment and restart the "
                "Python kernel for the unchecked one: it is read once, when kernels are compiled"),
    }


# ----------------------------------------------------------------- configuration
@dataclass
class PipelineConfig:
    """Everything a pipeline starts from. Fields marked live change while it runs."""

    rate: float | None = 100_000.0      # live: feed messages/s; None = as fast as possible
    controller: str = "none"            # live
    admission: dict = field(default_factory=dict)   # live: kernels.admission.ADMISSION_PARAMS
    target_ns: float = 1_000_000.0      # live: the end-to-end p99 to hold
    strategy: str = "mm_skew"           # live
    strategy_params: dict = field(default_factory=dict)  # live: the strategy's registry row
    risk: dict = field(default_factory=dict)        # live: kernels.risk.RISK_PARAMS
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
            c.rate = number("rate", c.rate, low=1.0)
        choice("controller", c.controller, params.controller_names())
        ADMISSION.validate(c.admission)
        c.target_ns = number("target_ns", c.target_ns, low=1.0)
        spec = params.strategy_spec(c.strategy)  # a registry name: raises on unknown ones
        if len(spec.param_names) > kpipe.N_STRATEGY_PARAMS:
            raise ValueError(f"strategy={c.strategy!r} takes {len(spec.param_names)} parameters; "
                             f"the pipeline holds {kpipe.N_STRATEGY_PARAMS}")
        spec.vector(c.strategy_params)
        RISK.validate(c.risk)
        c.work_ns = number("work_ns", c.work_ns, low=0.0, high=1e9)
        c.batch = int(number("batch", c.batch, low=1, high=65536, integer=True))
        c.control_every = int(number("control_every", c.control_every, low=1,
                                            high=1 << 24, integer=True))
        choice("wait_policy", c.wait_policy, WAIT_POLICIES)
        choice("feed_wait_policy", c.feed_wait_policy, WAIT_POLICIES)
        c.producer_cpus = cpus("producer_cpus", c.producer_cpus)
        c.consumer_cpus = cpus("consumer_cpus", c.consumer_cpus)
        cap = c.ring_capacity
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 2 or cap & (cap - 1):
            raise ValueError(f"ring_capacity={cap!r} must be a power of two >= 2")
        c.book_capacity = int(number("book_capacity", c.book_capacity, low=16, integer=True))
        lv = c.price_levels
        lo_lv, hi_lv = book_state.MIN_PRICE_LEVELS, book_state.MAX_PRICE_LEVELS
        if (isinstance(lv, bool) or not isinstance(lv, (int, np.integer)) or lv & (lv - 1)
                or not lo_lv <= lv <= hi_lv):
            raise ValueError(f"price_levels={lv!r} must be a power of two in [{lo_lv}, {hi_lv}] "
                             f"(the price window; prices beyond it still rest)")
        c.symbol = int(number("symbol", c.symbol, low=0, integer=True))
        return c


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


# ------------------------------------------------------------------ the consumer
_CONSUMERS: dict = {}
_CONSUMERS_LOCK = threading.Lock()


def _consumer(fn):
    """``run_pipeline`` for the strategy kernel ``fn``, called without it: the loop cached
    per strategy (``workbench.backtest.loopcache``: compiled once per machine), or, when
    that strategy cannot be cached, ``run_pipeline`` with it (once per process)."""
    with _CONSUMERS_LOCK:
        loop = _CONSUMERS.get(fn)
        if loop is None:
            from workbench.backtest.loopcache import pipeline_loop

            loop = pipeline_loop(fn) or functools.partial(kpipe.run_pipeline, fn)
            _CONSUMERS[fn] = loop
        return loop


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
            choice("events", events, ("simulator",))
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
        self._ticks = [int(number("tick", t, low=1, integer=True)) for t in ticks[:n_books]]
        self._price_scale = int(number("price_scale", price_scale, low=1, integer=True))
        self._id_span = int(max(self._events["order_id"].max(), 0)) + 1
        if self.config.symbol >= n_books:
            raise ValueError(f"symbol={self.config.symbol} but the feed has {n_books} book(s)")
        self.control = np.zeros(kpipe.N_CONTROL, dtype=np.float64)
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
        # The feed and the consumer are threads of this process, joined by stop(): no
        # peer heartbeats to watch. The kernels work on the ring's arrays directly.
        self.ring = Ring(c.ring_capacity, MESSAGE, peer_timeout=None)
        self.header, self.slots = self.ring.views()
        self.book = allocate_state(len(self._ticks), c.book_capacity, c.price_levels, self._ticks)
        self.book.counters[EC_ANON_FALLBACK] = 0
        self.fills = np.zeros(4096, dtype=FILL)
        self.active = np.zeros(kpipe.N_CONTROL, dtype=np.float64)
        self.counters = np.zeros(kpipe.N_PIPE_COUNTERS, dtype=np.int64)
        size = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS).shape[0]
        self.hists = np.zeros((kpipe.N_STAGES, size), dtype=np.int64)
        for k in range(kpipe.N_STAGES):
            self.hists[k] = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
        self.window = new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
        self.adm_state = np.zeros(kadm.N_ADM_STATE, dtype=np.float64)
        self.adm_counters = np.zeros(kadm.N_ADM_COUNTERS, dtype=np.int64)
        # the strategy's parameters live in the control array, which it reads live
        io = strategy_io(MAX_OPEN_ORDERS, MAX_ACTIONS, (), self._ticks[c.symbol], self._price_scale)
        self.ctx, self.view, self.orders, self.actions = io.ctx, io.view, io.orders, io.actions
        self.risk_state = np.zeros(krisk.N_RISK_STATE, dtype=np.int64)
        self._feed_pos = 0
        self._lap = 0
        self._seq = 0

    def _write_control(self, initial: bool = False) -> None:
        """Write the config into the control array, then publish it (generation + 1)."""
        c = self.config
        ctl = self.control
        with self._lock:
            ctl[kpipe.CT_CONTROL_EVERY] = c.control_every
            ctl[kpipe.CT_BATCH] = c.batch
            ctl[kpipe.CT_WORK_NS] = c.work_ns
            spec = params.strategy_spec(c.strategy)
            ctl[kpipe.CT_STRATEGY] = spec.id
            ctl[kpipe.CT_SYMBOL] = c.symbol
            adm = kadm.default_params(kadm.CONTROLLERS.id_of(c.controller), c.target_ns)
            if c.controller == "token_bucket" and "rate" not in c.admission and c.rate:
                adm[kadm.AP_RATE] = c.rate
            ADMISSION.apply(c.admission, adm)
            ctl[kpipe.CT_ADMISSION:kpipe.CT_ADMISSION + kadm.N_ADM_PARAMS] = adm
            sp = np.zeros(kpipe.N_STRATEGY_PARAMS)
            vec = spec.vector(c.strategy_params)
            sp[:vec.shape[0]] = vec
            ctl[kpipe.CT_STRATEGY_PARAMS:kpipe.CT_STRATEGY_PARAMS + kpipe.N_STRATEGY_PARAMS] = sp
            ctl[kpipe.CT_RISK:kpipe.CT_RISK + krisk.N_RISK_PARAMS] = RISK.to_array(c.risk)
            if initial:
                self.active[:] = ctl
                kadm.admission_reset(adm, self.adm_state, self.window, time.monotonic_ns())
            ctl[kpipe.CT_GENERATION] += 1

    def _update(self, **changes) -> None:
        self.config = replace(self.config, **changes).validated()
        self._write_control()

    # ------------------------------------------------------------ live setters
    def set_admission(self, controller: str | None = None, *, target_ns: float | None = None,
                      **params) -> None:
        """Switch controller and/or change its parameters (by the names of
        ``kernels.admission.ADMISSION_PARAMS``)."""
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
            self._precompile(name)
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
        self.risk_state[krisk.RS_KILLED] = 0
        self.counters[kpipe.PC_KILLED] = 0
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
        choice("stage", stage, ("producer", "consumer"))
        self._update(**{"wait_policy" if stage == "consumer" else "feed_wait_policy": policy})

    def set_affinity(self, stage: str, cpus) -> None:
        """Pin the 'producer' or 'consumer' thread to ``cpus`` (None: all CPUs), live."""
        choice("stage", stage, ("producer", "consumer"))
        cpus = cpus(f"{stage}_cpus", cpus)
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
        self.control[kpipe.CT_COMMAND] = kpipe.CMD_RUN
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
        """``run_pipeline``'s arguments after the strategy kernel and its id."""
        return (self.header, self.slots, self.book, self.fills, self.control, self.active,
                self.counters, self.hists, self.adm_state, self.adm_counters, self.window,
                self.ctx, self.view, self.orders, self.actions, self.risk_state,
                self._price_scale)

    def _compile(self) -> None:
        """Compile (or load from the cache) both loops here, before the threads start:
        a first call inside the consumer would stall it for seconds while the feed
        runs ahead. Zero-length calls: nothing is consumed or published."""
        fn, ident = self._strategy()
        _consumer(fn)(ident, *self._consumer_args(), 0, 1)
        kpipe.feed_publish(self.header, self.slots, self._events, 0, 0, 0, 0, 0, 0, 1.0, 1, 1)

    def _precompile(self, name) -> None:
        """Compile the consumer loop for strategy ``name`` here, from the types of the
        running one, without calling it: the consumer thread then switches at once
        instead of stalling (and not answering ``stop``) while Numba compiles."""
        from numba import typeof

        try:
            fn = kstrat.STRATEGIES[name].fn
        except (KeyError, TypeError):
            return  # an unknown name: ``_update`` raises the clear error
        running = _consumer(self._strategy()[0])
        sigs = ([tuple(s[1:]) for s in running.func.signatures]
                if isinstance(running, functools.partial) else list(running.signatures))
        loop = _consumer(fn)
        for sig in sigs[:1]:
            if isinstance(loop, functools.partial):
                kpipe.run_pipeline.compile((typeof(fn),) + sig)
            else:
                loop.compile(sig)

    def pause(self) -> None:
        self._paused.set()
        self.control[kpipe.CT_COMMAND] = kpipe.CMD_PAUSE

    def resume(self) -> None:
        self._reanchor = True
        self.control[kpipe.CT_COMMAND] = kpipe.CMD_RUN
        self._paused.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads and wait for them; raises if one does not end."""
        self._stop_event.set()
        self.control[kpipe.CT_COMMAND] = kpipe.CMD_STOP
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
        return (f"Pipeline({state}, controller={self.config.controller}, "
                f"strategy={self.config.strategy}, rate={self.config.rate}, "
                f"received={int(self.counters[kpipe.PC_RECEIVED])})")

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
            self.control[kpipe.CT_COMMAND] = kpipe.CMD_STOP

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
            pos, status = kpipe.feed_publish(
                self.header, self.slots, ev, self._feed_pos, stop, self._lap * self._id_span,
                self._seq, anchor_seq, anchor_ns, float(rate or 0.0), self.config.batch,
                SPIN_BUDGET[self.config.feed_wait_policy])
            self._seq += pos - self._feed_pos
            self._feed_pos = pos
            if pos >= n:
                self._feed_pos = 0
                self._lap += 1
            if status != kpipe.FEED_DONE:
                self._idle(self.config.feed_wait_policy)

    def _strategy(self) -> tuple:
        """The kernel and registry id of the strategy the consumer runs now (the one the
        kernel last applied from the control array)."""
        ident = int(self.active[kpipe.CT_STRATEGY])
        return kstrat.STRATEGIES[ident].fn, ident

    def _consume_loop(self) -> None:
        args = self._consumer_args()
        while True:
            fn, ident = self._strategy()
            status = _consumer(fn)(ident, *args, KERNEL_EVENT_BUDGET,
                                   SPIN_BUDGET[self.config.wait_policy])
            if status == kpipe.PS_STRATEGY:
                continue  # the control array switched strategy: call with its kernel
            if status == kpipe.PS_STOPPED or self._stop_event.is_set():
                return
            if status == kpipe.PS_PAUSED:
                time.sleep(0.005)
            elif status == kpipe.PS_IDLE:
                self._idle(self.config.wait_policy)

    # -------------------------------------------------------------- reading
    def sampler(self) -> "Sampler":
        """A fresh interval sampler (each live view owns one)."""
        return Sampler(self)

    def publish(self, url: str | None = None, *, stream: str = "pipeline",
                period_s: float = 0.5, **options):
        """Publish this pipeline's latency percentiles, counters and P&L to the Redis
        stream ``stream`` every ``period_s`` (``workbench.live.publish``; ``url`` default:
        ``$WORKBENCH_REDIS_URL``) until it stops; returns the started ``Publisher``.
        Watch it from any kernel with ``workbench.live.publish.watch(url, stream)``."""
        from .publish import Publisher

        return Publisher(self, url, stream=stream, period_s=period_s, **options).start()

    def histogram(self, stage: str = "end_to_end") -> np.ndarray:
        """A copy of one stage's cumulative latency histogram (``kernels.histogram``)."""
        return histogram_delta(self.hists[STAGES.index(choice("stage", stage, STAGES))], None)

    def totals(self) -> dict:
        """Cumulative counters since start (a snapshot)."""
        c = self.counters
        return {
            "received": int(c[kpipe.PC_RECEIVED]), "admitted": int(c[kpipe.PC_ADMITTED]),
            "shed": int(c[kpipe.PC_SHED]), "book_rejects": int(c[kpipe.PC_BOOK_REJECTS]),
            "strategy_wakes": int(c[kpipe.PC_WAKES]), "orders": int(c[kpipe.PC_ORDERS]),
            "cancels": int(c[kpipe.PC_CANCELS]), "risk_rejects": int(c[kpipe.PC_RISK_REJECTS]),
            "own_fills": int(c[kpipe.PC_OWN_FILLS]), "killed": bool(c[kpipe.PC_KILLED]),
            "control_generation": int(c[kpipe.PC_GENERATION]),
            "published": self.ring.stats()["published"], "ring_size": len(self.ring),
            "brakes": int(self.adm_counters[kadm.AC_BRAKES]),
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

    QS = PERCENTILES

    def __init__(self, pipeline: Pipeline):
        self.p = pipeline
        self._last_t = time.monotonic_ns()
        self._last_counts = np.zeros(kpipe.N_PIPE_COUNTERS, dtype=np.int64)
        self._last_hists = None

    def sample(self) -> dict:
        p = self.p
        now = time.monotonic_ns()
        counts = p.counters.copy()
        hists = p.hists.copy()
        dt = max((now - self._last_t) / 1e9, 1e-9)
        d = counts - self._last_counts
        received = d[kpipe.PC_RECEIVED]
        out = {"t": (now - p._started_ns) / 1e9 if p._started_ns else 0.0, "interval_s": dt,
               "throughput": received / dt, "admitted_per_s": d[kpipe.PC_ADMITTED] / dt,
               "shed_rate": float(d[kpipe.PC_SHED] / received) if received else 0.0}
        for k, stage in enumerate(STAGES):
            h = histogram_delta(hists[k], None if self._last_hists is None else self._last_hists[k])
            for q, value in histogram_percentiles(h, self.QS).items():
                out[f"{stage}_p{q:g}_ns"] = value
        st = p.adm_state
        out.update(p.pnl())
        out.update(admit_fraction=float(st[kadm.AS_FRACTION]), limit=float(st[kadm.AS_LIMIT]),
                   brake=bool(st[kadm.AS_BRAKE]), window_p99_ns=float(st[kadm.AS_LAST_P99]),
                   ring_size=len(p.ring),
                   received=int(counts[kpipe.PC_RECEIVED]), generation=int(counts[kpipe.PC_GENERATION]))
        self._last_t, self._last_counts, self._last_hists = now, counts, hists
        return out
