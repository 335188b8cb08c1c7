"""The market-data store interface and the choice of backend.

A store keeps frames under keys (tuples of strings: a source, an interval, a symbol, a
chunk start). ``get(key, rules)`` returns a :class:`StoredFrame` (the frame checked
against the caller's ``workbench.data.cache.Rules``, and when it was fetched) or None
when absent or invalid; ``put(key, frame, fetched_at=..., expires_at=...)`` stores one.
Freshness is the caller's rule, decided from ``fetched_at`` (``load_bars`` keeps one
rule for every backend); ``expires_at`` tells a backend that can drop entries by
itself (Redis) when the entry stops being fresh, so a shared cache never serves a stale
chunk to a kernel that could refetch it. ``version`` is the frame's format version
(``Rules.version``): every backend records it beside the frame and serves an entry of
another version only when ``Rules.migrate`` derives the current format from it; otherwise
the entry is *outdated* (listed in ``outdated``, not quarantined) and the caller refetches.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import polars as pl

__all__ = ["ENV_REDIS_URL", "StoredFrame", "MarketStore", "check_key", "open_store"]

ENV_REDIS_URL = "WORKBENCH_REDIS_URL"   # set: load_bars shares this Redis cache by default
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class StoredFrame:
    frame: pl.DataFrame
    fetched_at: float     # seconds since the epoch, when the data was fetched (written)
    source: str           # which backend served it: "parquet" or "redis"
    version: int = 1      # the format version the writer recorded (none recorded: 1)


def check_key(key: Sequence[str]) -> tuple[str, ...]:
    if isinstance(key, str) or not isinstance(key, (tuple, list)) or not key \
            or not all(isinstance(k, str) and k for k in key):
        raise ValueError(f"key={key!r} must be a non-empty tuple of non-empty strings")
    return tuple(key)


class MarketStore(ABC):
    """Frames by key; see the module docstring. ``root`` is the local cache directory
    (every backend keeps a local copy there), ``quarantined`` the files or keys it moved
    aside because they failed validation."""

    name = "?"

    @property
    @abstractmethod
    def root(self) -> Path: ...

    @property
    @abstractmethod
    def quarantined(self) -> list: ...

    @property
    def outdated(self) -> list:
        """The files or keys not served because they hold another format version."""
        return []

    @abstractmethod
    def get(self, key: Sequence[str], rules=None) -> StoredFrame | None: ...

    @abstractmethod
    def put(self, key: Sequence[str], frame: pl.DataFrame, *, fetched_at: float | None = None,
            expires_at: float | None = None, version: int | None = None) -> None: ...


def open_store(store=None, cache_dir=None) -> MarketStore:
    """The store ``load_bars`` uses: ``store`` may be a :class:`MarketStore`, ``"parquet"``,
    a Redis URL (``redis://host:6379/0``), or None: Redis when ``$WORKBENCH_REDIS_URL``
    is set, else parquet files under ``cache_dir`` (default: the user cache dir)."""
    if isinstance(store, MarketStore):
        return store
    if store is None:
        store = os.environ.get(ENV_REDIS_URL, "").strip() or "parquet"
    if store == "parquet":
        from .parquet import ParquetStore
        return ParquetStore(cache_dir)
    if isinstance(store, str) and store.startswith(REDIS_SCHEMES):
        from .redis import RedisStore
        return RedisStore.shared(store, cache_dir)
    raise ValueError(f"store={store!r} must be 'parquet', a Redis URL (redis://host:6379/0) "
                     "or a workbench.store.MarketStore")
