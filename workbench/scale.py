"""Scale out: where fan-out work runs (threads here, or a Dask cluster), with the same results.

Owns the *executors* the fan-out functions accept (:func:`workbench.backtest.sweep`,
``Backtest.run_many`` and :func:`replay_symbols` here):

* ``"local"`` (the default): a thread pool over this machine's cores. The kernels release
  the GIL, so threads run side by side and share the market data without copying it.
* ``"dask"``: a ``distributed.LocalCluster`` sized to the machine (one single-threaded
  worker process per core), started for the call and closed after it; or, when
  ``$WORKBENCH_DASK_SCHEDULER`` is set, the cluster at that address.
* a ``distributed.Client`` (any cluster you already run), or a scheduler address such as
  ``"tcp://host:8786"`` (the CLI's ``--scheduler``).
* any ``concurrent.futures``-like executor with ``map`` (kept for compatibility: a spawn
  process pool; each job carries its own copy of the data).

The rules on a cluster:

* **Tasks carry parameters and references, never the big arrays.** The shared part of a
  job (the backtest's configuration and the market data) is scattered once, broadcast to
  every worker, and each task names it by its key. With ``shared_dir`` (a folder every
  worker can read) the events travel as one parquet file instead: tasks carry its path and
  each worker process reads it once (:class:`MarketRef`).
* **Each worker compiles the kernels once**: a warm-up task per worker runs a tiny replay
  of the same configuration before the real tasks start. Kernels Numba can cache are then
  loaded from its on-disk cache (shared by a ``LocalCluster``'s workers; point
  ``NUMBA_CACHE_DIR`` at a shared folder on a real cluster); the backtest loop, which takes
  the strategy as a function argument, cannot be cached and is compiled by each worker
  process (~10 s). The warm-up also carries each worker's versions
  (:func:`code_fingerprint`) and result: workers running other versions, or disagreeing,
  fail loudly instead of returning different numbers.
* **Results are those of the local executor**, bit for bit (the timing fields aside), in
  the order of the inputs: every task has a key naming its position, each position is
  filled exactly once, and a missing or repeated one is an error, never a silent gap.
* **Faults**: a worker that dies mid-run loses nothing. Dask's scheduler reruns the tasks
  it held on the other workers (and on the replacement a nanny starts); its scattered
  copy of the data is one of several.
* **Progress**: Dask's progress bar in a notebook, tqdm in a terminal; the dashboard link
  is printed (shown as a link in a notebook).

:func:`replay_symbols` is the whole-exchange replay: a multi-symbol event stream (the
synthetic market, the embedded sample, a LOBSTER file, an ITCH 5.0 or Databento MBO file
when those loaders are installed) is split by symbol, each symbol is replayed through the
engine (or a backtest) as its own task, and the per-symbol statistics come back as one frame.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import polars as pl

__all__ = ["EXECUTORS", "TIMING_COLUMNS", "ENV_SCHEDULER", "machine_workers", "local_cluster",
           "cluster", "connect", "dashboard_link", "executor_session", "MarketRef", "write_market",
           "Exchange", "exchange", "split_symbols", "replay_symbol", "replay_symbols",
           "without_timing", "check_warmups", "code_fingerprint", "kill_worker_during"]

EXECUTORS = ("local", "dask")
# stats that measure this run's clocks (the replay's wall time, the in-kernel tick-to-trade
# latency): they differ between any two runs, local or not
TIMING_COLUMNS = ("seconds", "events_per_sec", "tick_to_trade_p50_ns", "tick_to_trade_p99_ns")
ENV_SCHEDULER = "WORKBENCH_DASK_SCHEDULER"   # executor="dask" connects here when set
DEFAULT_DASHBOARD_PORT = 8787
MAX_ROUNDS = 4   # resubmissions after scattered data was lost with its workers


def machine_workers() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def without_timing(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without the wall-clock columns (the part two runs must agree on)."""
    return frame.drop([c for c in TIMING_COLUMNS if c in frame.columns])


# ------------------------------------------------------------------ clusters
def _free_port(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def local_cluster(n_workers: int | None = None, *, processes: bool = True,
                  threads_per_worker: int = 1, dashboard: bool = True,
                  dashboard_port: int | None = None, **options):
    """A ``distributed.LocalCluster`` on the loopback interface: ``n_workers`` (default:
    one per core) single-threaded worker processes (``processes=False``: threads of this
    process, cheaper to start, nothing to kill). The dashboard takes ``dashboard_port``
    (default: 8787 when it is free, any free port otherwise; 0: any free port)."""
    from distributed import LocalCluster

    n = machine_workers() if n_workers is None else n_workers
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_workers={n_workers!r} must be a positive integer")
    if isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) \
            or threads_per_worker < 1:
        raise ValueError(f"threads_per_worker={threads_per_worker!r} must be a positive integer")
    # The scheduler serves HTTP (health, metrics) even without a dashboard, on 8787 unless
    # told otherwise: always name a free port, so a second cluster never fights for it.
    if dashboard_port is None:
        port = DEFAULT_DASHBOARD_PORT if dashboard and _free_port(DEFAULT_DASHBOARD_PORT) else 0
    elif isinstance(dashboard_port, bool) or not isinstance(dashboard_port, int) \
            or not 0 <= dashboard_port < 65536:
        raise ValueError(f"dashboard_port={dashboard_port!r} must be a port number (0: any)")
    else:
        port = dashboard_port
    address = f"127.0.0.1:{port}"
    if not dashboard:
        options["scheduler_kwargs"] = {"dashboard": False, **options.get("scheduler_kwargs", {})}
    if processes:  # threads talk in-process; processes over TCP, on the loopback only
        options.setdefault("host", "127.0.0.1")
    return LocalCluster(n_workers=int(n), threads_per_worker=threads_per_worker,
                        processes=processes, dashboard_address=address, **options)


@contextlib.contextmanager
def cluster(n_workers: int | None = None, *, processes: bool = True, **options) -> Iterator:
    """``with cluster(2) as client:`` a :func:`local_cluster` and its ``Client``, both
    closed on exit."""
    from distributed import Client

    lc = local_cluster(n_workers, processes=processes, **options)
    try:
        client = Client(lc)
    except BaseException:
        lc.close()
        raise
    try:
        yield client
    finally:
        client.close()
        lc.close()


def connect(address: str, timeout_s: float = 10.0):
    """A ``distributed.Client`` for the scheduler at ``address`` (``tcp://host:8786``)."""
    from distributed import Client

    if not isinstance(address, str) or "://" not in address:
        raise ValueError(f"scheduler={address!r} must be an address like tcp://host:8786")
    try:
        return Client(address, timeout=timeout_s)
    except OSError as exc:  # refused, unreachable, timed out
        raise ValueError(f"scheduler={address!r} is not reachable ({exc})") from None


def _is_client(obj) -> bool:
    return type(obj).__module__.startswith("distributed") and hasattr(obj, "scatter") \
        and hasattr(obj, "submit")


def dashboard_link(client) -> str | None:
    """The address of ``client``'s Dask dashboard (None without one). For a cluster this
    process started it is on the loopback, where :func:`local_cluster` binds it."""
    try:
        link = client.dashboard_link
        port = client.scheduler_info().get("services", {}).get("dashboard")
    except Exception:  # no dashboard (bokeh missing, or disabled)
        return None
    if getattr(client, "cluster", None) is not None and port:
        return f"http://127.0.0.1:{port}/status"
    return link


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


# ------------------------------------------------------------------ backends
_WARMED: "collections.OrderedDict[str, Any]" = collections.OrderedDict()  # per process, by job
_WARM_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The versions results depend on: hft-workbench, Python, numpy, numba, llvmlite,
    polars, and the kernels' safe mode. Workers with another fingerprint run other code."""
    import platform

    import llvmlite
    import numba

    from . import __version__

    return "/".join((f"hft-workbench {__version__}", f"python {platform.python_version()}",
                     f"numpy {np.__version__}", f"numba {numba.__version__}",
                     f"llvmlite {llvmlite.__version__}", f"polars {pl.__version__}",
                     f"safe={int(_safe_build())}"))


def _safe_build() -> bool:
    """The kernels' build this process runs: bounds-checked or not (``kernels.jit.SAFE_MODE``,
    fixed when ``kernels`` was first imported; the environment may have changed since)."""
    from kernels.jit import SAFE_MODE

    return SAFE_MODE


def _warm_task(token: str, warm: Callable, shared) -> dict:
    """Run ``warm(shared)`` once per process (a worker warms itself once per job); with
    the process's :func:`code_fingerprint`."""
    with _WARM_LOCK:
        if token not in _WARMED:
            _WARMED[token] = {"fingerprint": code_fingerprint(), "result": warm(_resolve(shared))}
            while len(_WARMED) > 64:  # a long-lived worker keeps only the recent jobs'
                _WARMED.popitem(last=False)
        return _WARMED[token]


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (a statistic that is NaN on a short warm-up slice, such as
    a Sharpe ratio on too few buckets, is the same result on every worker)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def check_warmups(warmed: Sequence[Mapping]) -> None:
    """Every worker must run this process's versions (same :func:`code_fingerprint`) and
    all must compute the same warm-up result: otherwise results could differ from the
    local ones."""
    mine = code_fingerprint()
    for w in warmed:
        if w["fingerprint"] != mine:
            raise RuntimeError(
                f"a Dask worker runs other versions than this process ({w['fingerprint']} "
                f"there, {mine} here): install the same ones on the workers")
        if not _same(w["result"], warmed[0]["result"]):
            diff = sorted(k for k in set(w["result"]) | set(warmed[0]["result"])
                          if not _same(w["result"].get(k), warmed[0]["result"].get(k)))
            raise RuntimeError(f"two Dask workers computed different warm-up results {diff}")


def _task(fn: Callable, shared, item):
    return fn(_resolve(shared), _resolve(item))


def _resolve(value):
    """A shipped reference made concrete on the worker (a parquet market is read once)."""
    if isinstance(value, MarketRef):
        return value.load()
    if isinstance(value, tuple):
        return tuple(_resolve(v) for v in value)
    return value


class _Backend:
    kind = "?"
    workers = 1

    def run(self, fn: Callable, shared, items: Sequence, *, warm: Callable | None = None,
            progress: bool = True, desc: str = "tasks", scatter_items: bool = False) -> list:
        """``[fn(shared, item) for item in items]``, in that order, run side by side.
        ``warm(shared)`` runs once per process first (on a cluster: once per worker, whose
        code must be this process's, see :func:`check_warmups`)."""
        raise NotImplementedError


class _Threads(_Backend):
    kind = "local"

    def __init__(self, max_workers: int | None):
        self.workers = machine_workers() if max_workers is None else int(max_workers)
        if self.workers < 1:
            raise ValueError(f"max_workers={max_workers!r} must be >= 1")

    def run(self, fn, shared, items, *, warm=None, progress=True, desc="tasks",
            scatter_items=False):
        shared = _resolve(shared)
        if warm is not None:
            warm(shared)  # compile (or load) here once: concurrent first calls would serialise
        with cf.ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(lambda item: fn(shared, _resolve(item)), items)
            if progress:
                from tqdm.auto import tqdm
                results = tqdm(results, total=len(items), desc=desc)
            return list(results)


class _Pool(_Backend):
    """A user's ``concurrent.futures``-like executor: ``map`` only, data in every job."""

    kind = "pool"

    def __init__(self, executor):
        self.executor = executor

    def run(self, fn, shared, items, *, warm=None, progress=True, desc="tasks",
            scatter_items=False):
        if warm is not None:
            warm(_resolve(shared))  # a thread pool then finds the kernels compiled
        results = self.executor.map(_task, [fn] * len(items), [shared] * len(items), items)
        if progress:
            from tqdm.auto import tqdm
            results = tqdm(results, total=len(items), desc=desc)
        return list(results)


class _Dask(_Backend):
    kind = "dask"

    def __init__(self, client):
        self.client = client

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def dashboard_link(self) -> str | None:
        return dashboard_link(self.client)

    def show_dashboard(self) -> None:
        link = self.dashboard_link
        if not link:
            return
        if _in_notebook():
            from IPython.display import HTML, display
            display(HTML(f'Dask dashboard: <a href="{link}" target="_blank">{link}</a>'))
        else:
            print(f"Dask dashboard: {link}", flush=True)

    def warm(self, token: str, warm: Callable, shared_future) -> list:
        """One warm-up task per worker (pinned loosely: a worker that vanishes meanwhile
        does not block the run), checked by :func:`check_warmups`; their results."""
        client = self.client
        workers = list(client.scheduler_info().get("workers", {}))
        futures = [client.submit(_warm_task, token, warm, shared_future, key=f"warm-{token}-{k}",
                                 workers=[w], allow_other_workers=True, pure=False)
                   for k, w in enumerate(workers)]
        try:
            warmed = client.gather(futures)
        finally:
            for f in futures:
                f.release()
        check_warmups(warmed)
        return warmed

    def run(self, fn, shared, items, *, warm=None, progress=True, desc="tasks",
            scatter_items=False):
        token = uuid.uuid4().hex[:12]
        items = list(items)
        results: list = [None] * len(items)
        done = np.zeros(len(items), dtype=bool)
        if progress:
            self.show_dashboard()
        self._bar = None
        try:
            for attempt in range(MAX_ROUNDS):
                todo = np.flatnonzero(~done).tolist()
                if not todo:
                    break
                self._round(fn, shared, items, todo, results, done, token, attempt,
                            warm=warm if attempt == 0 else None, progress=progress, desc=desc,
                            scatter_items=scatter_items)
        finally:
            if self._bar is not None:
                self._bar.close()
        if not done.all():
            raise RuntimeError(f"{int((~done).sum())} of {len(items)} {desc} tasks lost their data "
                               f"{MAX_ROUNDS} times (workers keep dying?): giving up")
        return results

    def _round(self, fn, shared, items, todo, results, done, token, attempt, *, warm,
               progress, desc, scatter_items) -> None:
        """Submit the items not done yet; collect what finishes. A task cancelled because
        the data it needs died with a worker (scattered data has no lineage to recompute
        it from) stays not done: the next round scatters afresh and resubmits it."""
        from distributed import as_completed

        client = self.client
        # None (nothing shared) is sent as it is: there is nothing to scatter
        # (wrapped in a list: scatter would split a tuple into one future per element)
        shared_f = None if shared is None else \
            client.scatter([shared], broadcast=True, hash=False)[0]
        mine = [items[i] for i in todo]
        refs = client.scatter(mine, hash=False) if scatter_items else mine
        futures = []
        try:
            if warm is not None:
                self.warm(token, warm, shared_f)
            keys = [f"{desc}-{token}-{i}" + (f"-retry{attempt}" if attempt else "") for i in todo]
            position = dict(zip(keys, todo))
            futures = [client.submit(_task, fn, shared_f, ref, key=key, pure=False)
                       for ref, key in zip(refs, keys)]
            if progress and _in_notebook():
                from distributed import progress as dask_progress
                dask_progress(futures, notebook=True)
            elif progress and self._bar is None:  # after the warm-up: the bar times the tasks
                from tqdm.auto import tqdm
                self._bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc)
            bar = self._bar
            for future in as_completed(futures):
                i = position[future.key]
                if done[i]:
                    raise RuntimeError(f"task {future.key} delivered twice")
                try:
                    value = future.result()
                except cf.CancelledError:
                    continue  # its data was lost with a worker: resubmitted next round
                results[i] = value
                done[i] = True
                future.release()
                if bar is not None:
                    bar.update(1)
        finally:
            for f in futures:
                f.release()
            if shared_f is not None:
                shared_f.release()
            if scatter_items:
                for r in refs:
                    r.release()


@contextlib.contextmanager
def executor_session(executor=None, max_workers: int | None = None) -> Iterator[_Backend]:
    """The backend for ``executor`` (see the module docstring), torn down on exit when
    this call created it (a ``"dask"`` LocalCluster, a client for an address)."""
    if executor is None or (isinstance(executor, str) and executor == "local"):
        yield _Threads(max_workers)
    elif isinstance(executor, str) and executor == "dask":
        address = os.environ.get(ENV_SCHEDULER, "").strip()
        if address:
            client = connect(address)
            try:
                yield _Dask(client)
            finally:
                client.close()
        else:
            with cluster(max_workers) as client:
                yield _Dask(client)
    elif isinstance(executor, str) and "://" in executor:
        client = connect(executor)
        try:
            yield _Dask(client)
        finally:
            client.close()
    elif _is_client(executor):
        yield _Dask(executor)
    elif hasattr(executor, "map"):
        yield _Pool(executor)
    else:
        raise ValueError(f"executor={executor!r} must be 'local', 'dask', a distributed.Client, "
                         "a scheduler address (tcp://host:8786) or an executor with map()")


def kill_worker_during(client, work: Callable[[], Any], *, key_prefix: str = "sweep-",
                       timeout_s: float = 300.0) -> tuple[Any, dict]:
    """Fault drill on a cluster of worker *processes* on this machine (a LocalCluster):
    run ``work()`` in a thread and SIGKILL the worker process that first runs a task
    whose key starts with ``key_prefix``. ``client``: the cluster's ``Client``, or a
    callable returning it (None until ``work`` has started its cluster). Returns
    ``(work's result, what was killed: address, pid, the task keys it held)``;
    ``work``'s exception is raised here."""
    import signal

    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # re-raised below, in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="wb-kill-drill", daemon=True)
    thread.start()
    killed: dict = {}
    deadline = time.monotonic() + timeout_s
    while not killed and thread.is_alive() and time.monotonic() < deadline:
        c = client() if callable(client) and not _is_client(client) else client
        try:
            processing = c.processing() if c is not None else {}
        except Exception:  # the scheduler is busy starting: ask again
            processing = {}
        for worker, keys in processing.items():
            held = [str(k) for k in keys if str(k).startswith(key_prefix)]
            if held:
                pid = c.run(os.getpid, workers=[worker])[worker]
                if pid == os.getpid():
                    raise ValueError("the workers are threads of this process: start the "
                                     "cluster with processes=True to kill one")
                os.kill(pid, signal.SIGKILL)
                killed = {"worker": worker, "pid": pid, "held": held}
                break
        time.sleep(0.02)
    thread.join(max(0.0, deadline - time.monotonic()))
    if "error" in outcome:
        raise outcome["error"]
    if thread.is_alive():
        raise TimeoutError(f"work() did not finish within {timeout_s} s")
    return outcome.get("result"), killed


# --------------------------------------------------------- data by reference
@dataclass(frozen=True)
class MarketRef:
    """A ``MarketData`` written once as parquet where every worker can read it; tasks
    carry this (a path and a content token), each process reads the file once."""

    path: str
    token: str

    def load(self):
        return _read_market(self.path, self.token)


_MARKET_META = "workbench.market"


def _market_token(md) -> str:
    h = hashlib.blake2b(digest_size=10)
    h.update(np.ascontiguousarray(md.events).view(np.uint8).tobytes())
    h.update(repr((md.tick, md.price_scale, md.name, md.levels, md.kind, md.qty_scale,
                   tuple(md.ladder))).encode())
    if md.initial_row is not None:
        h.update(np.ascontiguousarray(md.initial_row).tobytes())
    return h.hexdigest()


def write_market(md, directory: str | os.PathLike) -> MarketRef:
    """Write ``md`` (a ``MarketData``) as ``<directory>/market-<token>.parquet`` (once:
    the token is a hash of the content) and return its reference."""
    from .data.convert import from_records

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    token = _market_token(md)
    path = directory / f"market-{token}.parquet"
    if not path.is_file():
        meta = {"tick": int(md.tick), "price_scale": int(md.price_scale), "name": md.name,
                "levels": int(md.levels), "kind": md.kind, "qty_scale": int(md.qty_scale),
                "ladder": [int(x) for x in md.ladder], "dtype": md.events.dtype.descr,
                "initial_row": None if md.initial_row is None else {
                    "dtype": md.initial_row.dtype.descr, "shape": list(md.initial_row.shape),
                    "hex": np.ascontiguousarray(md.initial_row).tobytes().hex()}}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            from_records(md.events).write_parquet(tmp, metadata={_MARKET_META: json.dumps(meta)})
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return MarketRef(str(path), token)


def _descr(d):
    return np.dtype([tuple(f) if not isinstance(f[1], list) else (f[0], _descr(f[1])) for f in d])


@functools.lru_cache(maxsize=8)
def _read_market(path: str, token: str):
    from kernels import records as R

    from .data.convert import to_records
    from .data.market import MarketData

    meta_text = pl.read_parquet_metadata(path).get(_MARKET_META)
    if meta_text is None:
        raise ValueError(f"{path}: not a market written by workbench.scale.write_market")
    meta = json.loads(meta_text)
    dtype = R.L2_UPDATE if meta["kind"] == "l2" else R.EVENT
    events = to_records(pl.read_parquet(path), dtype)
    row = None
    if meta["initial_row"] is not None:
        ir = meta["initial_row"]
        row = np.frombuffer(bytes.fromhex(ir["hex"]), dtype=_descr(ir["dtype"])).reshape(ir["shape"]).copy()
    md = MarketData(events, meta["tick"], meta["price_scale"], meta["name"], row, meta["levels"],
                    meta["kind"], meta["qty_scale"], tuple(meta["ladder"]))
    if _market_token(md) != token:
        raise ValueError(f"{path}: its content does not match the reference (token {token}); "
                         "the file changed after it was written")
    return md


# --------------------------------------------------- whole-exchange replays
@dataclass
class Exchange:
    """A multi-symbol event stream: EVENT rows whose ``symbol`` indexes ``names``, each
    symbol's tick (price units) and the price scale."""

    events: np.ndarray
    names: tuple[str, ...]
    ticks: tuple[int, ...]
    price_scale: int
    name: str
    # LOBSTER-like files start mid-day: cancels/executions of orders never seen act on
    # anonymous volume at their price. A complete feed (ITCH, MBO) names every order.
    anonymous_fallback: bool = True


def exchange(data="synthetic", *, names: Sequence[str] | None = None, tick: int | Sequence[int] = 100,
             price_scale: int | None = None) -> Exchange:
    """A whole-exchange event stream from ``data``: ``"synthetic"`` (the embedded 3-symbol
    sample), a ``SimulatedMarket``, an ``Exchange``, an ``EVENT`` array (``names``, ``tick``
    and ``price_scale`` describe it), a LOBSTER message file (one symbol), or an ITCH 5.0 /
    Databento MBO file when those loaders are installed."""
    from kernels import records as R

    from .data import synthetic
    from .data.prices import PRICE_SCALE

    if isinstance(data, Exchange):
        return data
    if isinstance(data, synthetic.SimulatedMarket):
        return Exchange(data.events, tuple(data.symbols), (int(data.tick),) * len(data.symbols),
                        int(data.price_scale), f"synthetic seed={data.seed}")
    if isinstance(data, str) and data == "synthetic":
        from .data.samples import SAMPLE_SYMBOLS, load_sample_events
        return Exchange(load_sample_events(), tuple(SAMPLE_SYMBOLS), (100,) * len(SAMPLE_SYMBOLS),
                        PRICE_SCALE, "embedded synthetic sample")
    if isinstance(data, np.ndarray):
        if data.dtype != R.EVENT or data.ndim != 1:
            raise ValueError(f"events dtype {data.dtype} is not a 1-d kernels.records.EVENT array")
        n = int(data["symbol"].max()) + 1 if len(data) else 0
        if len(data) and int(data["symbol"].min()) < 0:
            raise ValueError("events have a negative symbol index")
        names = tuple(names) if names is not None else tuple(str(i) for i in range(n))
        if len(names) < n:
            raise ValueError(f"names has {len(names)} entries for {n} symbols")
        ticks = (tick,) * len(names) if isinstance(tick, (int, np.integer)) else tuple(tick)
        if len(ticks) != len(names) or any(isinstance(t, bool) or not isinstance(t, (int, np.integer))
                                           or t <= 0 for t in ticks):
            raise ValueError(f"tick={tick!r} must be a positive integer (or one per symbol)")
        scale = PRICE_SCALE if price_scale is None else price_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale <= 0:
            raise ValueError(f"price_scale={price_scale!r} must be a positive integer")
        return Exchange(data, names, tuple(int(t) for t in ticks), int(scale), "events")
    path = Path(data)
    if not path.is_file():
        raise ValueError(f"data={data!r} is neither 'synthetic', events, nor an existing file")
    loaded = _exchange_from_file(path)
    if loaded is not None:
        return loaded
    from .data.market import lobster_market
    md = lobster_market(path, None)
    symbol = path.name.split("_")[0] or "LOBSTER"
    return Exchange(md.events, (symbol,), (int(md.tick),), int(md.price_scale), md.name)


def _exchange_from_file(path: Path) -> Exchange | None:
    """An ITCH 5.0 day or a Databento MBO file through its one loader
    (``workbench.data.itch.load``, ``workbench.data.databento.load_mbo``): every book of the
    file; None when the file is neither."""
    from .data import databento, itch

    if databento.is_mbo_file(path):
        mbo = databento.load_mbo(path)
        return Exchange(mbo.events, tuple(mbo.symbols), tuple(int(t) for t in mbo.ticks),
                        int(mbo.price_scale), f"Databento MBO {path.name}", False)
    if itch.looks_like_itch(path):
        feed = itch.load(path)
        return Exchange(feed.events, tuple(feed.books), tuple(int(t) for t in feed.book_ticks),
                        int(feed.price_scale), f"ITCH {path.name}", False)
    return None


def split_symbols(ex: Exchange) -> list:
    """One ``MarketData`` per symbol present (in symbol order), its events renumbered to
    book 0 with their order kept: the arrays a single-symbol replay consumes."""
    from .data.market import MarketData

    events = ex.events
    if len(events) == 0:
        return []
    order = np.argsort(events["symbol"], kind="stable")
    grouped = events[order]
    present, starts = np.unique(grouped["symbol"], return_index=True)
    bounds = list(starts[1:]) + [len(grouped)]
    out = []
    for s, a, b in zip(present.tolist(), starts.tolist(), bounds):
        mine = grouped[a:b].copy()
        mine["symbol"] = 0
        out.append(MarketData(mine, ex.ticks[s], ex.price_scale, ex.names[s]))
    return out


def replay_symbol(md, *, anonymous_fallback: bool = True, chunk_fills: int = 1 << 16) -> dict:
    """Replay one symbol's events through the engine (``workbench.book.Engine``, every
    row validated by the kernel) and describe the result: events by kind, fills, traded
    quantity and VWAP, rejects, resting orders and the touch at the end."""
    from kernels import records as R

    from .book import Engine
    from .data.lobster import price_levels_for

    events = md.events
    engine = Engine([md.name], tick_size=md.tick / md.price_scale, price_scale=md.price_scale,
                    capacity=max(16, min(len(events) + 16, R.MAX_CAPACITY)),
                    price_levels=price_levels_for(events, md.tick),
                    anonymous_fallback=anonymous_fallback, record_fills=False)
    fills = np.zeros(chunk_fills, dtype=R.FILL)
    results = np.zeros(len(events), dtype=R.RESULT)
    n_fills = traded = 0
    notional = 0
    start = 0
    began = time.perf_counter()
    while True:
        start, nf = engine.apply(events, fills, results, start)
        if nf:
            q = fills["qty"][:nf]
            n_fills += nf
            traded += int(q.sum())
            notional += int((fills["price"][:nf] * q).sum())
        if start >= len(events):
            break
    seconds = time.perf_counter() - began
    stats = engine.stats()
    kinds = np.bincount(events["kind"].astype(np.int64), minlength=64)

    def count(*names):  # feed kinds (EV_REST, EV_MOVE) count with their plain twins
        return int(sum(kinds[getattr(R, n)] for n in names if hasattr(R, n)))

    bid, ask = engine.best_bid(md.name), engine.best_ask(md.name)
    return {
        "symbol": md.name, "events": int(len(events)),
        "adds": count("EV_ADD", "EV_REST"), "cancels": count("EV_CANCEL", "EV_DELETE"),
        "modifies": count("EV_MODIFY", "EV_MOVE"),
        "executes": count("EV_EXECUTE", "EV_EXECUTE_HIDDEN"),
        "fills": n_fills, "traded_qty": traded,
        "vwap": notional / traded / md.price_scale if traded else None,
        "rejects": int(sum(stats["rejects"].values())),
        "resting_orders": int(stats["live_orders"]),
        "best_bid": bid, "best_ask": ask,
        "first_ts": int(events["ts"][0]), "last_ts": int(events["ts"][-1]),
        "seconds": seconds, "events_per_sec": len(events) / seconds if seconds > 0 else float("inf"),
    }


def _replay_task(shared, md) -> dict:
    template, anonymous_fallback = shared
    if template is None:
        return replay_symbol(md, anonymous_fallback=anonymous_fallback)
    from .backtest.sweep import variant

    stats = variant(template, md, {}).run(progress=False).stats
    flat = {k: v for k, v in stats.items() if not isinstance(v, dict)}
    return {"symbol": md.name, **flat}


def _replay_warm(shared) -> dict:
    template, anonymous_fallback, md = shared
    return _without_timing(_replay_task((template, anonymous_fallback), _head(md, 2000)))


def _head(md, n: int):
    from .data.market import MarketData

    return MarketData(md.events[: min(len(md.events), n)], md.tick, md.price_scale, md.name,
                      md.initial_row, md.levels, md.kind, md.qty_scale, md.ladder)


def _without_timing(stats: Mapping) -> dict:
    return {k: v for k, v in stats.items() if k not in TIMING_COLUMNS}


def replay_symbols(data="synthetic", *, executor=None, backtest=None, progress: bool = True,
                   max_workers: int | None = None, names: Sequence[str] | None = None,
                   tick: int | Sequence[int] = 100, price_scale: int | None = None) -> pl.DataFrame:
    """Replay a whole exchange symbol by symbol on ``executor`` and gather one row per
    symbol (in symbol order).

    Without ``backtest`` each symbol's events go through the engine
    (:func:`replay_symbol`: events by kind, fills, traded quantity, VWAP, rejects, the
    final touch). With a ``Backtest`` (its data is ignored) each symbol is backtested
    with that configuration and the row holds its statistics. Each task carries one
    symbol's events, scattered to one worker (never to all), and the configuration
    by reference.
    """
    ex = exchange(data, names=names, tick=tick, price_scale=price_scale)
    parts = split_symbols(ex)
    if not parts:
        raise ValueError(f"{ex.name}: no events to replay")
    template = None
    if backtest is not None:
        from .backtest.sweep import template_of
        template = template_of(backtest)
    with executor_session(executor, max_workers) as backend:
        warm_shared = (template, ex.anonymous_fallback, _head(parts[0], 2000))
        rows = backend.run(_replay_task, (template, ex.anonymous_fallback), parts, progress=progress,
                           desc="replay", scatter_items=True,
                           warm=functools.partial(_warm_with, warm_shared))
    return pl.DataFrame(rows, infer_schema_length=None)


def _warm_with(warm_shared, _shared) -> dict:
    return _replay_warm(warm_shared)
