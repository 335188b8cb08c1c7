"""``bench book``: the matching engine's speed, against the plain-Python reference book
measured in the same run.

* ``replay_events_per_sec``: the AAPL first-hour LOBSTER messages (or, without
  ``../shared``, the embedded synthetic market) through the batched kernel, looped;
* ``batch_orders_per_sec``: the exchange-core-like order mix (``workbench.data.order_mix``:
  ~1k resting orders over ~750 levels; GTC adds, IOC, cancels, moves, reductions)
  through ``kernels.book.apply_batch``;
* ``python_orders_per_sec``: the same mix, one ``OrderBook.submit/cancel/modify`` call
  per order from a Python loop;
* ``reference_orders_per_sec``: the same mix through ``workbench.reference.ReferenceBook``;
* ``p50_ns`` / ``p99_ns``: in-kernel time per order of the mix (CLOCK_MONOTONIC read
  around each event; includes one clock read, ~20 ns);
* ``mbo_events_per_sec``: a Databento MBO stream (``workbench.data.databento.synthetic_mbo``:
  adds, cancels, modifies, trades with their fills and cancels, over 4 instruments)
  written as ``.dbn.zst`` by databento-dbn, read back by the one MBO loader and replayed
  by ``data mbo-check``'s kernel (``kernels.mbo.replay_mbo``, top of book at every F_LAST);
* ``itch_parse_msgs_per_sec``, ``itch_replay_msgs_per_sec``: a synthetic NASDAQ ITCH 5.0
  day (8,000 stocks, ~50M messages; cached) decoded by the one ITCH loader, and decoded +
  applied to one engine holding every book (``workbench.bench._itch``).

The two flows of issue 12 (``workbench.bench._flows``: flow A, Liquibook's insert
benchmark; flow B, exchange-core's mix), one EVENT array each, consumed in the same run by
every path below (the repeats interleaved, medians; the warm-up part of a flow is applied
untimed, the rates count the commands after it):

* ``flow_a_batched_per_sec``, ``flow_b_batched_per_sec``: ``OrderBook.apply`` (fills
  written, no results);
* ``flow_a_python_per_sec``, ``flow_b_python_per_sec``: one ``submit``/``cancel``/``modify``
  call per command (``per_order_entries``: ``native`` when those are the native entries of
  ``workbench.fastcall``, else the Python methods and why);
* ``reference_flow_a_per_sec``, ``reference_flow_b_per_sec``: ``ReferenceBook.apply``;
* ``liquibook_swig_flow_a_per_sec``, ``liquibook_swig_flow_b_per_sec``: Liquibook's C++
  through its PyPI wheel (``liquibook``, SWIG; its order book without depth), one
  ``add``/``replace``/``cancel`` per command (``flows.liquibook_run`` says what else the
  binding needs); ``null`` when the wheel is not installed (the reason on stderr);
* ratios of those medians: ``batched_vs_liquibook_a/b``, ``python_vs_liquibook_a/b``,
  ``python_vs_reference_a/b``;
* the guard: after each flow the batched book, the per-order book, the reference and
  Liquibook must agree on best bid and ask, resting orders and quantity per side, and the
  engine must have rejected nothing; otherwise the suite raises (``flow_a_final``,
  ``flow_b_final`` give that end state);
* where a batched event's time goes (flow B; ``flow_b_ns_per_event_*``: ns of this
  thread's CPU time per command, medians, so time spent descheduled on a shared machine
  is left out): ``..._apply`` (the headline path), ``..._apply_results`` (one RESULT row
  per event too),
  ``..._discard_fills`` (``apply_batch_discard_fills``: fills overwrite one scratch
  slot range), ``..._latency_stamps`` (the same with two clock reads and a store per
  event), ``..._reject_floor`` (every command sent to a book that does not exist: the
  loop, the event load and the first check), ``..._id_miss`` (every command a cancel of an
  unknown id on the warmed-up book: the checks and one id-index probe that misses),
  ``..._rest_cancel`` (pairs of a passive add and its cancel: index insert and delete,
  ladder, queue links); ``flow_b_p50_ns_<label>``: the median in-kernel time of each kind
  of command of flow B (labels: ``flows.LABEL_NAMES``), ``flow_a_p50_ns_add_rest`` /
  ``_add_trade``: of an insert that rests untouched / that trades; those stamps include one
  clock read (``clock_read_ns``). ``flow_b_stamped_mean_ns_without_stalls``: the mean
  in-kernel time per command leaving out the events stamped over 100 us
  (``flow_b_stalled_events`` of them: the process was descheduled; on a shared machine
  that is most of the gap between the stamps and the wall-clock rates). The engine has
  switches for results (``apply``'s ``results_out``) and latency stamps (only in the
  kernel ``apply_batch_discard_fills``), none for its validation, id index, ladder or
  queue links: those are read off the variants above, not switched off.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from kernels import book as kbook
from kernels import records as R

from workbench import fastcall

from . import _itch
from . import _flows as flows

NAME = "book"
DESCRIPTION = "matching engine: replay, batched mix, Python single orders, reference baseline"

_AAPL = ("AAPL_2012-06-21_message_50_first_hour.csv", "AAPL_2012-06-21_orderbook_level1_first_hour.csv")


def _shared_lobster() -> tuple[Path, Path] | None:
    from workbench.data.samples import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        return None
    messages, orderbook = (shared / "lobster" / name for name in _AAPL)
    return (messages, orderbook) if messages.is_file() and orderbook.is_file() else None


def _replay_rate(repeats: int, quick: bool) -> tuple[float, str, int]:
    from workbench.data import lobster
    from workbench.lobster_check import prepare_replay

    paths = _shared_lobster()
    if paths is not None:
        events = lobster.to_events(lobster.read_messages(paths[0]))
        rows = lobster.orderbook_array(lobster.read_orderbook(paths[1]))
        source = "lobster AAPL 2012-06-21 first hour"
        make = lambda: prepare_replay(events, rows, "AAPL", capacity=8_192)  # noqa: E731  (<= 390 rest at once)
    else:
        from workbench.book import Engine
        from workbench.data.synthetic import simulate

        market = simulate(n_symbols=1, seed=0)
        events = market.events
        source = "synthetic market (no ../shared/data/lobster)"
        make = lambda: Engine(symbols=["SIM"], capacity=200_000, record_fills=False)  # noqa: E731
    if quick:
        events = events[:20_000]
    fills = np.zeros(len(events) + 16, dtype=R.FILL)
    no_results = np.zeros(0, dtype=R.RESULT)
    rates = []
    for _ in range(repeats + 1):  # the first run only loads the compiled kernel
        engine = make()
        start = time.perf_counter()
        kbook.apply_batch(engine.state, events, fills, no_results, 0)
        rates.append(len(events) / (time.perf_counter() - start))
    return statistics.median(rates[1:]), source, len(events)


def _mbo_rate(repeats: int, quick: bool) -> tuple[float, int]:
    import tempfile

    from workbench.data import databento

    records = databento.synthetic_mbo(100_000 if quick else 500_000, n_instruments=4, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        path = databento.write_dbn(Path(tmp) / "bench.dbn.zst", records, compression="zstd")
        data = databento.load_mbo(path)
    rates = [databento.replay(data).events_per_sec for _ in range(repeats + 1)]
    return statistics.median(rates[1:]), len(data.events)


def _engine_bytes_10k_books(quick: bool) -> tuple[int, int]:
    """(state bytes, resident-set growth in bytes) of an Engine of 10,000 books holding
    300 resting orders each (100 with ``quick``) at prices spread from $0.01 to $20,000:
    a whole exchange in one engine."""
    from workbench.book import Engine

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    per_book = 100 if quick else 300
    n_books = 10_000
    before = rss()
    eng = Engine(symbols=[f"S{i:05d}" for i in range(n_books)], capacity=n_books * per_book,
                 record_fills=False)
    n = n_books * per_book
    rng = np.random.default_rng(11)
    ev = np.zeros(n, dtype=R.EVENT)
    ev["order_id"] = np.arange(1, n + 1)
    ev["symbol"] = np.arange(n) % n_books
    ev["kind"] = R.EV_REST
    ev["side"] = rng.integers(0, 2, n)
    mid = rng.integers(1_000, 50_000, n_books)[ev["symbol"]]  # $10..$500 in cents
    offset = np.where(rng.random(n) < 0.95, rng.integers(1, 200, n), rng.integers(200, 2_000_000, n))
    ticks = np.where(ev["side"] == R.BUY, np.maximum(1, mid - offset), mid + offset)
    ev["price"] = ticks * 100
    ev["qty"] = 100
    eng.submit_many(ev)
    live = eng.stats()["live_orders"]
    if live != n:
        raise RuntimeError(f"engine_bytes_10k_books: {live:,} of {n:,} orders rest")
    state_bytes = sum(a.nbytes for a in eng.state)
    return state_bytes, rss() - before


# ------------------------------------------------------------ flows A and B (issue 12)
def _apply_all(book, events: np.ndarray, fills: np.ndarray, results=None) -> None:
    """``events`` through ``OrderBook.apply``, draining the fills buffer when it fills."""
    start, n = 0, len(events)
    while start < n:
        start, _ = book.apply(events, fills, results, start)


def _timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


class _FlowRun:
    """Every consumer of one flow: fresh state per repeat, the warm-up applied untimed,
    ``time_*`` returns the seconds the commands took; ``summaries`` keeps each one's end
    state (the last repeat's) for the guard."""

    def __init__(self, flow: flows.Flow, liquibook: bool):
        from workbench.reference import ReferenceBook

        self.flow = flow
        self.warm, self.cmds = flow.events[:flow.warmup], flow.commands
        self.fills = np.zeros(len(flow.events) + 16, dtype=R.FILL)
        self.results = np.zeros(len(self.cmds), dtype=R.RESULT)
        self.ref_rows = flows.reference_rows(flow.events)
        self.new_ref = lambda: ReferenceBook(tick=flow.tick_units)
        self.liquibook = liquibook
        if liquibook:
            self.lb_cmds = flows.liquibook_commands(flow.events, flow.tick_units)
        self.summaries: dict[str, flows.BookSummary] = {}
        self.rejects: dict[str, dict] = {}

    def _warm_book(self, **kwargs):
        book = self.flow.new_book(**kwargs)
        if len(self.warm):
            _apply_all(book, self.warm, self.fills)
        return book

    def time_batched(self, results: bool = False, clock=time.perf_counter) -> float:
        book = self._warm_book()
        out = self.results if results else None
        elapsed = _timed(lambda: _apply_all(book, self.cmds, self.fills, out), clock)
        self.summaries["batched"] = flows.engine_summary(book, self.flow.tick_units)
        self.rejects["batched"] = book.stats()["rejects"]
        return elapsed

    def time_python(self) -> float:
        book = self.flow.new_book()
        calls = flows.python_calls(book, self.flow.events, self.flow.price_scale)
        warm, timed = calls[:self.flow.warmup], calls[self.flow.warmup:]
        for method, args in warm:
            method(*args)

        def loop():
            for method, args in timed:
                method(*args)

        elapsed = _timed(loop)
        self.summaries["python"] = flows.engine_summary(book, self.flow.tick_units)
        self.rejects["python"] = book.stats()["rejects"]
        return elapsed

    def time_reference(self) -> float:
        ref = self.new_ref()
        apply = ref.apply
        warm, timed = self.ref_rows[:self.flow.warmup], self.ref_rows[self.flow.warmup:]
        for row in warm:
            apply(*row)

        def loop():
            for row in timed:
                apply(*row)

        elapsed = _timed(loop)
        self.summaries["reference"] = flows.reference_summary(ref, self.flow.tick_units)
        self.rejects["reference"] = dict(ref.rejects)
        return elapsed

    def time_liquibook_swig(self) -> float:
        warm, timed = self.lb_cmds[:self.flow.warmup], self.lb_cmds[self.flow.warmup:]
        book, orders = flows.liquibook_run(warm)
        elapsed = _timed(lambda: flows.liquibook_run(timed, book, orders))
        self.summaries["liquibook_swig"] = flows.liquibook_summary(book)
        return elapsed

    def check(self) -> flows.BookSummary:
        """The guard: every consumer ended in the reference's state, nothing rejected."""
        expected = self.summaries["reference"]
        wrong = {name: s for name, s in self.summaries.items() if s != expected}
        rejected = {name: r for name, r in self.rejects.items() if r}
        if wrong or rejected:
            raise RuntimeError(f"bench book: {self.flow.name} ended in different books "
                               f"(reference {expected}; differing {wrong}; rejects {rejected}): "
                               f"the rates would measure a wrong result")
        return expected


def _flow_rates(run: _FlowRun, repeats: int, progress) -> dict[str, float]:
    """Median commands/second of each consumer, the repeats interleaved."""
    n = len(run.cmds)
    times: dict[str, list[float]] = {"batched": [], "python": [], "reference": []}
    if run.liquibook:
        times["liquibook_swig"] = []
    run.time_batched()  # loads the compiled kernels (Numba's cache) outside the timings
    for _ in range(repeats):
        for name in times:
            times[name].append(getattr(run, f"time_{name}")())
            progress.update(1)
    run.check()
    return {name: n / statistics.median(t) for name, t in times.items()}


_STALL_NS = 100_000  # an event stamped longer than this was descheduled, not working


def _flow_b_profile(run: _FlowRun, repeats: int) -> dict:
    """Where a batched flow-B event's time goes (module doc): ns per command of each
    variant, and the median in-kernel time of each kind of command."""
    flow, cmds, fills = run.flow, run.cmds, run.fills
    n = len(cmds)
    variants: dict[str, list[float]] = {k: [] for k in (
        "apply", "apply_results", "discard_fills", "latency_stamps", "reject_floor", "id_miss",
        "rest_cancel")}
    latency = np.zeros(n, dtype=np.int64)
    no_latency = np.zeros(0, dtype=np.int64)
    # every command sent to book 1 of a one-book engine: rejected at the first check
    unknown_book = cmds.copy()
    unknown_book["symbol"] = 1
    # every command a cancel of an id that never rested
    unknown_id = cmds.copy()
    unknown_id["kind"] = R.EV_CANCEL
    unknown_id["qty"] = 0
    unknown_id["price"] = 0
    unknown_id["order_id"] += 1 << 40
    # pairs (passive add, its cancel) at flow B's passive prices
    rng = np.random.default_rng(flow.seed + 1)
    pairs = cmds.copy()
    half = n // 2
    side = rng.integers(0, 2, half)
    offset = rng.integers(1, 1251, half)
    ids = np.arange(half) + (1 << 41)
    pairs["order_id"][0:2 * half:2] = ids
    pairs["order_id"][1:2 * half:2] = ids
    pairs["kind"][0:2 * half:2] = R.EV_ADD
    pairs["kind"][1:2 * half:2] = R.EV_CANCEL
    pairs["side"][0:2 * half:2] = side
    pairs["side"][1:2 * half:2] = side
    pairs["price"][0:2 * half:2] = (flow.mid_ticks + np.where(side == R.BUY, -offset, offset)
                                    ) * flow.tick_units
    pairs["price"][1:2 * half:2] = 0
    pairs["qty"][0:2 * half:2] = 100
    pairs["qty"][1:2 * half:2] = 0
    pairs["tif"] = R.GTC
    pairs = pairs[:2 * half]

    cpu = time.thread_time  # CPU time of this thread: time spent descheduled is left out

    def kernel_run(events, lat):
        book = run._warm_book()
        return _timed(lambda: kbook.apply_batch_discard_fills(book.state, events, fills, lat),
                      cpu)

    def api_run(events):
        book = run._warm_book()
        return _timed(lambda: _apply_all(book, events, fills), cpu)

    per_label: dict[int, list[float]] = {}
    stamped_calm: list[float] = []
    stalls: list[int] = []
    kbook.apply_batch_discard_fills(run._warm_book().state, cmds[:64], fills, latency[:64])
    for _ in range(repeats):
        variants["apply"].append(run.time_batched(clock=cpu))
        variants["apply_results"].append(run.time_batched(results=True, clock=cpu))
        variants["discard_fills"].append(kernel_run(cmds, no_latency))
        variants["latency_stamps"].append(kernel_run(cmds, latency))
        labels = flow.labels[flow.warmup:]
        for code in np.unique(labels):
            per_label.setdefault(int(code), []).append(float(np.median(latency[labels == code])))
        calm = latency < _STALL_NS
        stamped_calm.append(float(latency[calm].mean()))
        stalls.append(int(n - calm.sum()))
        variants["reject_floor"].append(api_run(unknown_book))
        variants["id_miss"].append(api_run(unknown_id))
        variants["rest_cancel"].append(api_run(pairs) * n / len(pairs))
    run.check()
    out = {f"flow_b_ns_per_event_{k}": statistics.median(v) / n * 1e9 for k, v in variants.items()}
    for code, p50s in sorted(per_label.items()):
        out[f"flow_b_p50_ns_{flows.LABEL_NAMES[code]}"] = statistics.median(p50s)
    out["flow_b_stamped_mean_ns_without_stalls"] = statistics.median(stamped_calm)
    out["flow_b_stalled_events"] = int(statistics.median(stalls))
    return out


def _flow_a_insert_p50(run: _FlowRun, repeats: int) -> dict:
    """Flow A: median in-kernel time of an insert that rests untouched and of one that
    trades (the outcome read from a results run of the same commands)."""
    cmds, fills = run.cmds, run.fills
    run.time_batched(results=True)
    trades = run.results["n_fills"] > 0
    latency = np.zeros(len(cmds), dtype=np.int64)
    rest, trade = [], []
    for _ in range(repeats):
        book = run._warm_book()
        kbook.apply_batch_discard_fills(book.state, cmds, fills, latency)
        rest.append(float(np.median(latency[~trades])) if (~trades).any() else float("nan"))
        trade.append(float(np.median(latency[trades])) if trades.any() else float("nan"))
    return {"flow_a_p50_ns_add_rest": statistics.median(rest),
            "flow_a_p50_ns_add_trade": statistics.median(trade),
            "flow_a_trading_inserts": float(trades.mean())}


def _flow_table(rates: dict, out: dict) -> str:
    rows = [("flow", "batched", "python", "reference", "liquibook_swig", "batched/lb",
             "python/lb", "python/ref")]
    for f in ("a", "b"):
        r = rates[f]
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        ratio = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        rows.append((f.upper(), fmt(r["batched"]), fmt(r["python"]), fmt(r["reference"]),
                     fmt(r.get("liquibook_swig")), ratio(out[f"batched_vs_liquibook_{f}"]),
                     ratio(out[f"python_vs_liquibook_{f}"]),
                     ratio(out[f"python_vs_reference_{f}"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(["bench book: flows A and B, commands/s (medians; ratios of medians)"] + lines)


def flow_rates(quick: bool = False, repeats: int | None = None) -> dict:
    """The flow part of the suite (module doc): rates, ratios, the guard, the profile."""
    from tqdm.auto import tqdm

    from workbench.profiling import clock_read_ns

    repeats = repeats or (3 if quick else 5)
    n_a, n_b = (20_000, 20_000) if quick else (300_000, 300_000)
    lb_ok, why = flows.liquibook_available()
    if not lb_ok:
        print(f"bench book: {why}; the liquibook keys are null", file=sys.stderr)
    runs = {"a": _FlowRun(flows.flow_a(n_a), lb_ok), "b": _FlowRun(flows.flow_b(n_b), lb_ok)}
    per_flow = repeats * (4 if lb_ok else 3)
    with tqdm(total=2 * per_flow, desc="bench book flows", file=sys.stderr, leave=False) as bar:
        rates = {f: _flow_rates(r, repeats, bar) for f, r in runs.items()}
    out: dict = {}
    for f in ("a", "b"):
        r = rates[f]
        lb = r.get("liquibook_swig")
        out[f"flow_{f}_batched_per_sec"] = r["batched"]
        out[f"flow_{f}_python_per_sec"] = r["python"]
        out[f"reference_flow_{f}_per_sec"] = r["reference"]
        out[f"liquibook_swig_flow_{f}_per_sec"] = lb
        out[f"batched_vs_liquibook_{f}"] = r["batched"] / lb if lb else None
        out[f"python_vs_liquibook_{f}"] = r["python"] / lb if lb else None
        out[f"python_vs_reference_{f}"] = r["python"] / r["reference"]
        out[f"flow_{f}_commands"] = len(runs[f].cmds)
        out[f"flow_{f}_final"] = runs[f].check()._asdict()
    out.update(_flow_b_profile(runs["b"], repeats))
    out.update(_flow_a_insert_p50(runs["a"], repeats))
    out["clock_read_ns"] = clock_read_ns()
    native, why_not = fastcall.available()
    # what the per-order figures ran through: the native entries, or the Python methods
    out["per_order_entries"] = "native" if native else f"python ({why_not})"
    print(_flow_table(rates, out), file=sys.stderr)
    return out


def run(quick: bool = False) -> dict:
    from workbench.data.order_mix import MixSettings, order_mix
    from workbench.reference import ReferenceBook

    repeats = 3 if quick else 5
    n_mix = 100_000 if quick else 1_000_000
    n_python = 20_000 if quick else 200_000
    n_reference = 10_000 if quick else 100_000
    settings = MixSettings()
    mix = order_mix(n_mix, seed=7, settings=settings)

    def new_book():
        return settings.new_book("MIX", record_fills=False)

    replay_rate, replay_source, replay_events = _replay_rate(repeats, quick)

    fills = np.zeros(n_mix + 16, dtype=R.FILL)
    no_results = np.zeros(0, dtype=R.RESULT)
    batch_rates = []
    for _ in range(repeats + 1):
        book = new_book()
        start = time.perf_counter()
        kbook.apply_batch(book.state, mix, fills, no_results, 0)
        batch_rates.append(n_mix / (time.perf_counter() - start))
    batch_rate = statistics.median(batch_rates[1:])

    python_rates = []
    for _ in range(repeats):
        book = new_book()
        calls = flows.python_calls(book, mix[:n_python], settings.price_scale)
        start = time.perf_counter()
        for method, args in calls:
            method(*args)
        python_rates.append(n_python / (time.perf_counter() - start))
    python_rate = statistics.median(python_rates)

    reference_rates = []
    tick = round(settings.tick_size * settings.price_scale)
    rows = [(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]), int(e["qty"]),
             int(e["order_type"]), int(e["tif"]), int(e["ts"])) for e in mix[:n_reference]]
    for _ in range(repeats):
        ref = ReferenceBook(tick=tick)
        start = time.perf_counter()
        for row in rows:
            ref.apply(*row)
        reference_rates.append(n_reference / (time.perf_counter() - start))
    reference_rate = statistics.median(reference_rates)

    latency = np.zeros(n_mix, dtype=np.int64)
    p50s, p99s = [], []
    for _ in range(repeats):
        book = new_book()
        kbook.apply_batch_discard_fills(book.state, mix, fills, latency)
        p50, p99 = np.percentile(latency, [50, 99])
        p50s.append(p50)
        p99s.append(p99)

    mbo_rate, mbo_events = _mbo_rate(repeats, quick)
    engine_bytes, engine_rss = _engine_bytes_10k_books(quick)

    return {
        "replay_events_per_sec": replay_rate,
        "batch_orders_per_sec": batch_rate,
        "python_orders_per_sec": python_rate,
        "reference_orders_per_sec": reference_rate,
        "speedup_vs_reference": batch_rate / reference_rate,
        "p50_ns": float(statistics.median(p50s)),
        "p99_ns": float(statistics.median(p99s)),
        "python_speedup_vs_reference": python_rate / reference_rate,
        "replay_source": replay_source,
        "replay_events": replay_events,
        "mix_orders": n_mix,
        "mbo_events_per_sec": mbo_rate,
        "engine_bytes_10k_books": engine_bytes,
        "engine_rss_bytes_10k_books": engine_rss,
        "mbo_events": mbo_events,
        **_itch.itch_rates(quick, repeats=3),
        **flow_rates(quick, repeats),
    }
