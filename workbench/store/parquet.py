"""The default store: parquet files under the cache directory (``workbench.data.cache``).

Everything the parquet cache guarantees holds here: atomic writes, validation on every
read against the caller's rules, invalid files quarantined (reported as missing), the
row count recorded on write. ``fetched_at`` is the file's modification time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import polars as pl

from ..data.cache import ParquetCache
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

    def path(self, key: Sequence[str]) -> Path:
        return self.cache.path(*check_key(key))

    def get(self, key, rules=None) -> StoredFrame | None:
        path = self.path(key)
        frame = self.cache.read(path, rules)  # None when absent, or invalid (quarantined)
        if frame is None:
            return None
        try:
            fetched_at = path.stat().st_mtime
        except FileNotFoundError:  # another reader quarantined it meanwhile
            return None
        return StoredFrame(frame, fetched_at, self.name)

    def put(self, key, frame: pl.DataFrame, *, fetched_at: float | None = None,
            expires_at: float | None = None) -> None:
        """Write ``frame`` (atomically); ``fetched_at`` (when given) becomes its age.
        Files never expire by themselves: a stale one still serves offline."""
        path = self.cache.write(self.path(key), frame)
        if fetched_at is not None:
            os.utime(path, (fetched_at, fetched_at))

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"
