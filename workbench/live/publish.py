"""Live state in Redis: a running pipeline's numbers on a stream, watched from anywhere;
engine snapshots saved and restored.

* :class:`Publisher` samples a :class:`~workbench.live.pipeline.Pipeline` every
  ``period_s`` (its own ``Sampler``: the interval's throughput, shed rate and per-stage
  latency percentiles, the counters, the P&L) and appends one entry to the Redis stream
  ``wb:v1:live:<name>`` (``XADD`` with an approximate ``MAXLEN``). An entry holds ``sample``
  (JSON: the sampler's dict, ``totals()``, ``target_ns``, ``running``, a sequence number)
  and ``hist`` (zlib-compressed JSON: each stage's cumulative latency histogram, non-empty
  buckets only; ~9 KB for a busy pipeline, so the default ``maxlen`` of 1 200 entries, ten
  minutes at 2 Hz, stays near 10 MB).
  ``Pipeline.publish(url)`` starts one.
* :class:`StreamWatcher` reads that stream from another kernel (or the same one) and
  offers what the live monitor reads from a pipeline (``sampler().sample()``,
  ``histogram(stage)``, ``config.target_ns``, ``running``), so
  ``workbench.widgets.LatencyMonitor`` draws a remote pipeline unchanged: :func:`watch`.
  ``frame()`` gives the stream's history as a polars frame.
* :func:`save_engine` / :func:`load_engine`: an ``Engine`` snapshot (``Engine.to_bytes()``)
  under ``wb:v1:engine:<name>``.

Redis down or unreachable: one warning per outage (``workbench.store.redis.RedisLink``);
the publisher keeps its entries in memory (up to ``buffer`` of them) and sends them, in
order, when the server answers again; a snapshot goes to a local file under the cache
directory and is uploaded when Redis is back (``load_engine`` looks there too).
"""
from __future__ import annotations

import collections
import json
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl

from kernels import histogram as kh

from ..store.redis import RedisLink, link_for, redis_key

__all__ = ["Publisher", "StreamWatcher", "watch", "stream_key", "save_engine", "load_engine",
           "encode_entry"]


def stream_key(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream={name!r} must be a non-empty string")
    return redis_key("live", name)


def _link(url_or_link) -> RedisLink:
    if isinstance(url_or_link, RedisLink):
        return url_or_link
    if url_or_link is None:
        import os

        from ..store.base import ENV_REDIS_URL
        url_or_link = os.environ.get(ENV_REDIS_URL, "").strip()
        if not url_or_link:
            raise ValueError(f"no Redis URL: pass url='redis://host:6379/0' or set {ENV_REDIS_URL}")
    return link_for(url_or_link)


def _sparse(h: np.ndarray) -> list:
    counts = h[kh.HIST_HEADER_WORDS:]
    nz = np.flatnonzero(counts)
    return [h[:kh.HIST_HEADER_WORDS].tolist(), nz.tolist(), counts[nz].tolist(), len(h)]


def _dense(doc: list) -> np.ndarray:
    header, idx, counts, size = doc
    h = np.zeros(int(size), dtype=np.int64)
    h[:kh.HIST_HEADER_WORDS] = header
    h[kh.HIST_HEADER_WORDS + np.asarray(idx, dtype=np.int64)] = counts
    return h


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def encode_entry(sample: dict, totals: dict, target_ns: float, running: bool, seq: int,
                 hists: dict[str, np.ndarray]) -> dict[str, str | bytes]:
    """The fields of one stream entry (module docstring)."""
    doc = {k: _plain(v) for k, v in sample.items()}
    doc.update(totals={k: _plain(v) for k, v in totals.items()}, target_ns=float(target_ns),
               running=bool(running), seq=int(seq), published_at=time.time())
    hist = json.dumps({s: _sparse(h) for s, h in hists.items()}).encode()
    return {"sample": json.dumps(doc), "hist": zlib.compress(hist, 1)}


class Publisher:
    """Publish a pipeline's live numbers to a Redis stream (module docstring).

    ``start()`` runs a daemon thread that publishes every ``period_s`` until ``stop()``
    or the pipeline stops (a last entry then says ``running: false``). ``publish_once()``
    publishes one entry now. ``sent`` counts entries that reached Redis, ``buffered`` those
    waiting for it.
    """

    def __init__(self, pipeline, url=None, *, stream: str = "pipeline", period_s: float = 0.5,
                 maxlen: int = 1_200, buffer: int = 10_000):
        if not period_s > 0 or int(maxlen) < 1 or int(buffer) < 1:
            raise ValueError(f"period_s={period_s!r} must be > 0, maxlen={maxlen!r} and "
                             f"buffer={buffer!r} >= 1")
        self.pipeline = pipeline
        self.link = _link(url)
        self.key = stream_key(stream)
        self.stream = stream
        self.period_s = float(period_s)
        self.maxlen = int(maxlen)
        self._sampler = pipeline.sampler()
        self._queue: collections.deque = collections.deque(maxlen=int(buffer))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seq = 0
        self.sent = 0
        self.dropped = 0

    @property
    def buffered(self) -> int:
        return len(self._queue)

    def publish_once(self) -> dict:
        """Sample the pipeline, queue the entry and send everything queued; the sample."""
        p = self.pipeline
        sample = self._sampler.sample()
        from .pipeline import STAGES

        fields = encode_entry(sample, p.totals(), p.config.target_ns, p.running, self.seq,
                              {s: p.histogram(s) for s in STAGES})
        with self._lock:
            self.seq += 1
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the oldest entry goes: the buffer is bounded
            self._queue.append(fields)
        self.flush()
        return sample

    def flush(self) -> int:
        """Send the queued entries in order (nothing when Redis is down); how many went."""
        if not self._queue or not self.link.available():
            return 0
        with self._lock:
            batch = list(self._queue)
            try:
                pipe = self.link.client.pipeline(transaction=False)
                for fields in batch:
                    pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
                pipe.execute()
            except self.link.errors() as exc:
                self.link.failed(exc)
                return 0
            for _ in batch:
                self._queue.popleft()
            self.sent += len(batch)
        return len(batch)

    # ----------------------------------------------------------------- thread
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Publisher":
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"wb-publish-{self.stream}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            was_running = self.pipeline.running
            self.publish_once()
            if not was_running:
                return  # the pipeline stopped: its last state is on the stream
            self._stop.wait(self.period_s)
        self.publish_once()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing (one last entry goes out first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __repr__(self) -> str:
        return (f"Publisher({self.key!r}, sent={self.sent}, buffered={self.buffered}, "
                f"{'running' if self.running else 'stopped'})")


class StreamWatcher:
    """A pipeline's stream read back: what ``LatencyMonitor`` needs from a pipeline.

    ``sample()`` returns the newest entry's sample (the publisher's interval statistics)
    and remembers its histograms for ``histogram(stage)``; ``running`` is the newest
    entry's flag, false too when nothing arrived for ``stale_s`` seconds. Nothing here
    computes: it decodes what the publisher measured.
    """

    def __init__(self, url=None, stream: str = "pipeline", *, stale_s: float = 5.0):
        self.link = _link(url)
        self.key = stream_key(stream)
        self.stream = stream
        self.stale_s = float(stale_s)
        self.config = SimpleNamespace(target_ns=0.0)
        self.last: dict | None = None
        self._hists: dict[str, list] = {}
        self._last_seen = 0.0

    def sampler(self) -> "StreamWatcher":
        return self

    @staticmethod
    def _decode(fields: dict) -> tuple[dict, dict]:
        sample = json.loads(fields[b"sample"])
        hists = json.loads(zlib.decompress(fields[b"hist"])) if b"hist" in fields else {}
        return sample, hists

    def sample(self, wait_s: float = 0.0) -> dict | None:
        """The newest entry (waiting up to ``wait_s`` for a first one); None when the
        stream is empty or Redis is down (the previous sample stays in ``last``)."""
        deadline = time.monotonic() + wait_s
        while True:
            entries = None
            if self.link.available():
                try:
                    entries = self.link.client.xrevrange(self.key, count=1)
                except self.link.errors() as exc:
                    self.link.failed(exc)
            if entries:
                _id, fields = entries[0]
                sample, hists = self._decode(fields)
                if self.last is None or sample["seq"] != self.last.get("seq") \
                        or sample["published_at"] != self.last.get("published_at"):
                    self._last_seen = time.monotonic()
                self.last, self._hists = sample, hists
                self.config.target_ns = sample["target_ns"]
                return sample
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def histogram(self, stage: str = "end_to_end") -> np.ndarray:
        """The newest entry's cumulative histogram of ``stage`` (empty before any)."""
        doc = self._hists.get(stage)
        if doc is None:
            from .pipeline import HIST_HIGHEST_NS, HIST_PRECISION
            return kh.new_histogram(HIST_PRECISION, HIST_HIGHEST_NS)
        return _dense(doc)

    @property
    def running(self) -> bool:
        return bool(self.last and self.last.get("running")) and \
            time.monotonic() - self._last_seen < self.stale_s

    def stop(self) -> None:
        """Nothing to stop: the pipeline belongs to its own kernel."""

    def entries(self, count: int | None = None) -> list[dict]:
        """The stream's samples, oldest first (the newest ``count`` when given)."""
        if not self.link.available():
            return []
        try:
            raw = (self.link.client.xrange(self.key) if count is None
                   else list(reversed(self.link.client.xrevrange(self.key, count=count))))
        except self.link.errors() as exc:
            self.link.failed(exc)
            return []
        return [self._decode(fields)[0] for _id, fields in raw]

    def frame(self, count: int | None = None) -> pl.DataFrame:
        """The stream's history, one row per entry (counters flattened as ``totals_*``)."""
        rows = []
        for s in self.entries(count):
            totals = s.pop("totals", {})
            rows.append({**s, **{f"totals_{k}": v for k, v in totals.items()}})
        return pl.DataFrame(rows, infer_schema_length=None)

    def __repr__(self) -> str:
        return f"StreamWatcher({self.key!r} at {self.link.url})"


def watch(url=None, stream: str = "pipeline", *, period_s: float = 0.5,
          duration_s: float | None = 120.0, **monitor_options):
    """The live monitor (``workbench.widgets.LatencyMonitor``) of a pipeline published
    to ``stream``, from any kernel; ``start()`` it to refresh by itself."""
    from ..widgets import LatencyMonitor

    watcher = StreamWatcher(url, stream)
    watcher.sample(wait_s=min(5.0, 4 * period_s))
    return LatencyMonitor(watcher, period_s=period_s, duration_s=duration_s, **monitor_options)


# --------------------------------------------------------------- snapshots
def _snapshot_path(name: str, cache_dir=None) -> Path:
    from ..data.cache import cache_dir as root, escape

    return root(cache_dir) / "snapshots" / f"{escape(name)}.engine"


def _to_bytes(engine) -> bytes:
    if not hasattr(engine, "to_bytes"):
        raise NotImplementedError("this Engine has no to_bytes(): engine snapshots need "
                                  "workbench.book.Engine.to_bytes / Engine.from_bytes")
    return engine.to_bytes()


_PENDING_SNAPSHOTS: dict[str, set] = {}


def save_engine(engine, name: str, url=None, *, cache_dir=None) -> str:
    """Save ``engine`` (``Engine.to_bytes()``) under ``wb:v1:engine:<name>``; returns
    where it went: ``"redis"``, or ``"local"`` (Redis down: a file under the cache
    directory, uploaded when Redis is back)."""
    data = _to_bytes(engine)
    link = _link(url)
    key = redis_key("engine", name)
    path = _snapshot_path(name, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # always kept locally too: nothing lost if Redis goes away
    if link.available():
        try:
            link.client.set(key, data)
            return "redis"
        except link.errors() as exc:
            link.failed(exc)
    if link.url not in _PENDING_SNAPSHOTS:
        _PENDING_SNAPSHOTS[link.url] = set()
        link.on_reconnect(lambda: _upload_snapshots(link))
    _PENDING_SNAPSHOTS[link.url].add((name, str(path)))
    return "local"


def _upload_snapshots(link: RedisLink) -> None:
    pending = _PENDING_SNAPSHOTS.get(link.url, set())
    for name, path in list(pending):
        p = Path(path)
        if p.is_file():
            link.client.set(redis_key("engine", name), p.read_bytes())
        pending.discard((name, path))


def load_engine(name: str, url=None, *, cache_dir=None):
    """The ``Engine`` saved as ``name`` (Redis first, then the local copy); KeyError when
    there is none."""
    from ..book import Engine

    if not hasattr(Engine, "from_bytes"):
        raise NotImplementedError("Engine.from_bytes is missing: engine snapshots need "
                                  "workbench.book.Engine.to_bytes / Engine.from_bytes")
    link = _link(url)
    data = None
    if link.available():
        try:
            data = link.client.get(redis_key("engine", name))
        except link.errors() as exc:
            link.failed(exc)
    if data is None:
        path = _snapshot_path(name, cache_dir)
        if path.is_file():
            data = path.read_bytes()
    if data is None:
        raise KeyError(f"no engine snapshot named {name!r} in Redis ({link.url}) or locally")
    return Engine.from_bytes(data)
