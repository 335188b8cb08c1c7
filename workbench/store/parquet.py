"""The default store: parquet files under the cache directory (``workbench.data.cache``).

Everything the parquet cache guarantees holds here: atomic writes, validation on every
read against the caller's rules, invalid files quarantined (reported as missing), the
row count (and the format version) recorded on write, an entry of another format version
not served (``outdated``). ``fetched_at`` is the file's modification time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import polars as pl

from ..data.cache import VERSION_KEY, ParquetCache
from .base import MarketStore, StoredFrame, check_key

__all__ = ["ParquetStore"]


class ParquetStore(MarketStore):
    name = "parquet"

    def __init__(self, cache_dir=None):
        self.cache = ParquetCache(cache_dir)

    @property
    def root(self) -> Path:
        return self.cache.root

    @property
    def quarantined(self) -> list:
        return self.cache.quarantined

    @property
    def outdated(self) -> list:
        return self.cache.outdated

    def path(self, key: Sequence[str]) -> Path:
        return self.cache.path(*check_key(key))

    def get(self, key, rules=None) -> StoredFrame | None:
        path = self.path(key)
        frame = self.cache.read(path, rules)  # None when absent, or invalid (quarantined)
        if frame is None:
            return None
        try:
            fetched_at = path.stat().st_mtime
            # with rules, only an entry of their version (or migrated to it) is served
            version = rules.version if rules is not None else \
                int(pl.read_parquet_metadata(path).get(VERSION_KEY) or 1)
        except FileNotFoundError:  # another reader quarantined it meanwhile
            return None
        return StoredFrame(frame, fetched_at, self.name, version)

    def put(self, key, frame: pl.DataFrame, *, fetched_at: float | None = None,
            expires_at: float | None = None, version: int | None = None) -> None:
        """Write ``frame`` (atomically, with its format ``version`` when given);
        ``fetched_at`` (when given) becomes its age. Files never expire by themselves: a
        stale one still serves offline."""
        path = self.cache.write(self.path(key), frame, version)
        if fetched_at is not None:
            os.utime(path, (fetched_at, fetched_at))

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"
