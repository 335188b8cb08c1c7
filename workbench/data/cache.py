"""The on-disk parquet cache under the workbench cache directory.

Where: ``$WORKBENCH_CACHE_DIR`` if set, else the user cache dir
(``platformdirs.user_cache_dir("hft-workbench")``). Each entry is one parquet file at a
path built from its key parts (a source, an interval, a symbol, a chunk start); key
parts are escaped so tickers like ``EURUSD=X`` or ``^GSPC`` make safe file names.

Rules every user of the cache gets:

* **atomic writes**: a temp file in the same directory, fsynced, then ``os.replace``;
  a reader never sees a half-written file and a crash leaves at most a ``*.tmp``.
* **corruption detection**: a file that does not parse as parquet, or lacks the
  expected columns, is deleted and reported as missing (so the caller refetches).
* **freshness**: the caller decides per entry how old is too old (``max_age_s``); the
  age is the file's modification time.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "WORKBENCH_CACHE_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache root: ``override``, else ``$WORKBENCH_CACHE_DIR``, else the user cache dir."""
    if override is not None:
        return Path(override)
    env = os.environ.get(ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("hft-workbench"))


def escape(part: str) -> str:
    """A file-name-safe, reversible spelling of a key part (``EURUSD=X`` -> ``EURUSD%3DX``)."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), str(part))


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    size: int
    age_s: float


class ParquetCache:
    """Parquet files keyed by tuples of strings under ``root``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = cache_dir(root)
        self.corrupt_dropped = 0

    def path(self, *key: str) -> Path:
        if not key:
            raise ValueError("a cache key needs at least one part")
        *dirs, name = (escape(k) for k in key)
        return self.root.joinpath(*dirs, f"{name}.parquet")

    def age_s(self, path: Path, now: float | None = None) -> float:
        return (time.time() if now is None else now) - path.stat().st_mtime

    def read(self, path: Path, required_columns=()) -> pl.DataFrame | None:
        """The frame at ``path``; None when absent or corrupt (a corrupt file is deleted)."""
        if not path.is_file():
            return None
        try:
            frame = pl.read_parquet(path)
            missing = [c for c in required_columns if c not in frame.columns]
            if missing:
                raise ValueError(f"missing columns {missing}")
            return frame
        except Exception as exc:  # any parse failure means the bytes are not a usable file
            log.warning("cache file %s is corrupt (%s): deleting it so it is refetched", path, exc)
            self.corrupt_dropped += 1
            path.unlink(missing_ok=True)
            return None

    def write(self, path: Path, frame: pl.DataFrame) -> Path:
        """Write ``frame`` atomically (temp file + fsync + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                frame.write_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def entries(self, under: str | None = None) -> list[CacheEntry]:
        """Every cached file (optionally under one top-level folder), oldest first."""
        base = self.root / escape(under) if under else self.root
        if not base.is_dir():
            return []
        now = time.time()
        found = [CacheEntry(p, p.stat().st_size, now - p.stat().st_mtime)
                 for p in base.rglob("*.parquet")]
        return sorted(found, key=lambda e: -e.age_s)
