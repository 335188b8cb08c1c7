"""Redis as a shared market-data cache, over the local parquet store.

**Keys** are versioned: ``wb:v1:md:<source>:<interval>:<symbol>:<chunk>`` (each part
percent-escaped like the parquet file names, so ``EURUSD=X`` or a ``:`` stay one part).
``v1`` is :data:`FORMAT_VERSION`: a change of the value layout bumps it, and old entries
are then simply never read (Redis expires or a person flushes them). A change of a cached
schema does not: the frame's own format version travels in the value (``version``, as the
parquet files keep it in their metadata).

**Values** are Redis hashes: ``ipc`` (the frame as an Arrow IPC stream, LZ4-compressed),
``rows`` (what the writer meant to write), ``fetched_at`` (seconds since the epoch),
``format`` and, when the writer gave one, ``version`` (the frame's format version, none: 1).
A read validates the frame against the caller's rules exactly as the parquet
cache does; an invalid entry is moved to ``wb:v1:quarantine:...`` with its reason and
counts as missing; an entry of another format version that the rules cannot migrate is
left alone (``outdated``), counts as missing and is overwritten by the refetch.

**Expiry** follows the parquet cache's rules: the caller (``load_bars``) gives
``expires_at``, the moment the chunk stops being fresh by its own rule (an intraday chunk
an hour after it was fetched, a daily one after 12 hours, a settled chunk never), and
Redis drops the key then. The local parquet copy stays, so an offline kernel still has it.

**Down or unreachable**: every write goes to the local parquet store first, then to
Redis. When Redis fails, :class:`RedisLink` warns once (:class:`RedisUnavailableWarning`)
for the whole outage; reads and writes go local, the keys written meanwhile are kept in a
list, and every ``retry_s`` seconds a call tries the server again. When it answers, the
pending entries are uploaded (those still fresh) and the shared cache is whole again.
"""
from __future__ import annotations

import io
import logging
import threading
import time
import warnings
from datetime import datetime, timezone
from typing import Callable, Sequence

import polars as pl

from ..data.cache import Outdated, escape
from .base import MarketStore, StoredFrame, check_key
from .parquet import ParquetStore

log = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "KEY_PREFIX", "RedisUnavailableWarning", "RedisLink", "link_for",
           "RedisStore", "redis_key"]

KEY_PREFIX = "wb"
FORMAT_VERSION = 1
VALUE_FORMAT = "arrow-ipc-stream/lz4"


class RedisUnavailableWarning(UserWarning):
    """Redis is down or unreachable: the workbench carries on with local storage."""


def redis_key(kind: str, *parts: str) -> str:
    """``wb:v1:<kind>:<part>:...`` with every part escaped (``:`` and the like)."""
    return ":".join([KEY_PREFIX, f"v{FORMAT_VERSION}", kind, *(escape(p) for p in parts)])


def _errors() -> tuple:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class RedisLink:
    """A connection to one Redis server that may go away.

    ``client`` is a ``redis.Redis`` (created on first use, short timeouts). Users call
    :meth:`available` before talking to the server and :meth:`failed` when a call raised
    one of :meth:`errors`; the first failure of an outage warns once, later calls see
    ``available() == False`` at once, and every ``retry_s`` seconds one call tries a PING:
    when it answers, the outage is over and the ``on_reconnect`` callbacks run.
    """

    def __init__(self, url: str, *, retry_s: float = 5.0, connect_timeout_s: float = 0.5,
                 timeout_s: float = 5.0):
        import redis

        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url={url!r} must be a Redis URL like redis://host:6379/0")
        for name, value in (("retry_s", retry_s), ("connect_timeout_s", connect_timeout_s),
                            ("timeout_s", timeout_s)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}={value!r} must be a number > 0")
        self.url = url
        self.retry_s = float(retry_s)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout_s,
                                           socket_timeout=timeout_s)
        self.up = True               # optimistic until a call fails
        self.outages = 0
        self.last_error: str | None = None
        self._last_try = 0.0
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @staticmethod
    def errors() -> tuple:
        return _errors()

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def failed(self, exc: BaseException) -> None:
        """A call failed with ``exc``: the server is down (one warning per outage)."""
        with self._lock:
            self._last_try = time.monotonic()
            self.last_error = f"{type(exc).__name__}: {exc}"
            if not self.up:
                return
            self.up = False
            self.outages += 1
        warnings.warn(f"Redis at {self.url} is unreachable ({self.last_error}); using local "
                      f"storage and retrying every {self.retry_s:g} s", RedisUnavailableWarning,
                      stacklevel=3)

    def available(self) -> bool:
        """True when the server is (believed) up; while down, a PING every ``retry_s``."""
        if self.up:
            return True
        with self._lock:
            if time.monotonic() - self._last_try < self.retry_s:
                return False
            self._last_try = time.monotonic()
        try:
            self.client.ping()
        except _errors() as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        with self._lock:
            self.up = True
        log.info("Redis at %s is back", self.url)
        for callback in list(self._callbacks):
            try:
                callback()
            except _errors() as exc:
                self.failed(exc)
                return False
        return True

    def __repr__(self) -> str:
        return f"RedisLink({self.url!r}, {'up' if self.up else 'down'}, outages={self.outages})"


_LINKS: dict[str, RedisLink] = {}
_LINKS_LOCK = threading.Lock()


def link_for(url: str) -> RedisLink:
    """The process's one :class:`RedisLink` to ``url`` (one warning per outage, shared)."""
    with _LINKS_LOCK:
        link = _LINKS.get(url)
        if link is None:
            link = _LINKS[url] = RedisLink(url)
        return link


class RedisStore(MarketStore):
    """Market data in Redis, shared by every kernel that points here, with the local
    parquet store (``cache_dir``) underneath (module docstring)."""

    name = "redis"
    _SHARED: dict[tuple[str, str], "RedisStore"] = {}

    def __init__(self, url: str, cache_dir=None, *, link: RedisLink | None = None):
        self.link = link if link is not None else link_for(url)
        self.url = self.link.url
        self.local = ParquetStore(cache_dir)
        self.remote_quarantined: list[str] = []
        self.remote_outdated: list[str] = []
        self.pending: dict[str, tuple[tuple[str, ...], float | None]] = {}
        self._lock = threading.Lock()
        self.link.on_reconnect(self.flush)

    @classmethod
    def shared(cls, url: str, cache_dir=None) -> "RedisStore":
        """The process's store for ``url`` over ``cache_dir`` (its pending uploads and its
        one warning per outage last across calls)."""
        local = ParquetStore(cache_dir)
        key = (url, str(local.root))
        store = cls._SHARED.get(key)
        if store is None:
            store = cls._SHARED[key] = cls(url, cache_dir)
        return store

    @property
    def root(self):
        return self.local.root

    @property
    def quarantined(self) -> list:
        return self.local.quarantined + self.remote_quarantined

    @property
    def outdated(self) -> list:
        return self.local.outdated + self.remote_outdated

    @staticmethod
    def key(key: Sequence[str]) -> str:
        return redis_key("md", *check_key(key))

    # ------------------------------------------------------------------ read
    def get(self, key, rules=None) -> StoredFrame | None:
        """From Redis when it is up and holds a valid entry, else from the local store."""
        if self.link.available():
            try:
                found = self._get_remote(key, rules)
            except self.link.errors() as exc:
                self.link.failed(exc)
            else:
                if found is not None:
                    return found
        return self.local.get(key, rules)

    def _get_remote(self, key, rules) -> StoredFrame | None:
        rkey = self.key(key)
        value = self.link.client.hgetall(rkey)
        if not value:
            return None
        problem = None
        frame = None
        if value.get(b"format", b"").decode() != VALUE_FORMAT:
            problem = f"value format {value.get(b'format', b'?')!r} is not {VALUE_FORMAT!r}"
        else:
            try:
                frame = pl.read_ipc_stream(io.BytesIO(value[b"ipc"]))
                rows = value[b"rows"].decode()
                fetched_at = float(value[b"fetched_at"])
                version = value.get(b"version")
                version = None if version is None else version.decode()
            except (Exception, pl.exceptions.PanicException) as exc:  # not Arrow IPC
                problem = f"not a readable Arrow IPC value ({type(exc).__name__}: {exc})"
            else:
                if rules is not None:
                    frame, problem = rules.admit(frame, rows, version)
                    version = rules.version
        if isinstance(problem, Outdated):
            self.remote_outdated.append(rkey)
            log.info("Redis entry %s is %s: not served", rkey, problem)
            return None
        if problem is not None:
            self._quarantine(rkey, problem)
            return None
        return StoredFrame(frame, fetched_at, self.name,
                           int(version) if str(version).isdigit() else 1)

    def _quarantine(self, rkey: str, reason: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = rkey.replace(f":v{FORMAT_VERSION}:md:", f":v{FORMAT_VERSION}:quarantine:md:", 1) \
            + f":{stamp}"
        pipe = self.link.client.pipeline(transaction=True)
        pipe.rename(rkey, target)
        pipe.hset(target, mapping={"reason": reason, "original": rkey,
                                   "quarantined_at": datetime.now(timezone.utc).isoformat()})
        pipe.persist(target)
        try:
            pipe.execute()
        except self.link.errors():
            raise
        except Exception:  # another reader moved it first
            return
        self.remote_quarantined.append(target)
        log.warning("Redis entry %s is invalid (%s): quarantined to %s; it counts as missing",
                    rkey, reason, target)

    # ----------------------------------------------------------------- write
    def put(self, key, frame: pl.DataFrame, *, fetched_at: float | None = None,
            expires_at: float | None = None, version: int | None = None) -> None:
        """Write locally, then to Redis (expiring at ``expires_at``, seconds since the
        epoch; None: never; ``version``: the frame's format version). While Redis is down
        the key waits in ``pending``."""
        key = check_key(key)
        fetched_at = time.time() if fetched_at is None else float(fetched_at)
        # first: nothing is ever lost
        self.local.put(key, frame, fetched_at=fetched_at, version=version)
        if self.link.available():
            try:
                self._put_remote(key, frame, fetched_at, expires_at, version)
                return
            except self.link.errors() as exc:
                self.link.failed(exc)
        with self._lock:
            self.pending[self.key(key)] = (key, expires_at)

    def _put_remote(self, key, frame: pl.DataFrame, fetched_at: float,
                    expires_at: float | None, version: int | None = None) -> bool:
        rkey = self.key(key)
        ttl_ms = None
        if expires_at is not None:
            ttl_ms = int((expires_at - time.time()) * 1000)
            if ttl_ms <= 0:
                self.link.client.delete(rkey)  # stale already: never share it
                return False
        buf = io.BytesIO()
        frame.write_ipc_stream(buf, compression="lz4")
        pipe = self.link.client.pipeline(transaction=True)
        pipe.delete(rkey)
        value = {"ipc": buf.getvalue(), "rows": str(frame.height),
                 "fetched_at": repr(float(fetched_at)), "format": VALUE_FORMAT}
        if version is not None:
            value["version"] = str(int(version))
        pipe.hset(rkey, mapping=value)
        if ttl_ms is not None:
            pipe.pexpire(rkey, ttl_ms)
        pipe.execute()
        return True

    def flush(self) -> int:
        """Upload what was written locally while Redis was down (the entries still
        fresh); returns how many went up."""
        with self._lock:
            pending, self.pending = self.pending, {}
        sent = 0
        try:
            for rkey, (key, expires_at) in list(pending.items()):
                found = self.local.get(key)
                if found is not None and self._put_remote(key, found.frame, found.fetched_at,
                                                          expires_at, found.version):
                    sent += 1
                del pending[rkey]
        finally:
            with self._lock:
                for rkey, value in pending.items():  # the rest, when the server fell again
                    self.pending.setdefault(rkey, value)
        if sent:
            log.info("uploaded %d entries written while Redis at %s was down", sent, self.url)
        return sent

    def keys(self) -> list[tuple[str, ...]]:
        """The market-data keys in Redis (empty when it is down)."""
        from urllib.parse import unquote

        if not self.link.available():
            return []
        prefix = redis_key("md") + ":"
        try:
            found = [k.decode() for k in self.link.client.scan_iter(match=prefix + "*", count=1000)]
        except self.link.errors() as exc:
            self.link.failed(exc)
            return []
        return sorted(tuple(unquote(p) for p in k[len(prefix):].split(":")) for k in found)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r} over {self.local!r}, {'up' if self.link.up else 'down'})"
