"""The on-disk parquet cache under the workbench cache directory.

Where: ``$WORKBENCH_CACHE_DIR`` if set, else the user cache dir
(``platformdirs.user_cache_dir("hft-workbench")``). Each entry is one parquet file at a
path built from its key parts (a source, an interval, a symbol, a chunk start); key
parts are escaped so tickers like ``EURUSD=X`` or ``^GSPC`` make safe file names.

Rules every user of the cache gets:

* **atomic writes**: a temp file in the same directory, fsynced, then ``os.replace``;
  a reader never sees a half-written file and a crash leaves at most a ``*.tmp``.
* **validation on read**: a file is checked against the caller's :class:`Rules` (exact
  columns and types, no nulls, value ranges, a strictly increasing key, and rows > 0
  unless the writer recorded a deliberately empty result). A file that fails (or does not
  parse as parquet at all) is never served and never deleted: it is **quarantined**,
  moved to ``<root>/quarantine/<its key path>/<chunk>.<UTC stamp>.parquet`` with a
  ``<same name>.reason.json`` beside it (original path, reason, time, size), and the read
  reports it as missing, so the caller refetches (or, offline, names it as missing).
  ``quarantine`` is therefore a reserved first key part. Delete quarantined files by hand
  once inspected.
* **row count on write**: every file records its row count in its parquet key-value
  metadata (``workbench.rows``); a zero-row file is valid only when that says 0 (an empty
  result cached on purpose, like Yahoo's answer for a weekend).
* **freshness**: the caller decides per entry how old is too old (``max_age_s``); the
  age is the file's modification time.
* **format version**: a writer may record the version of its frame's format
  (``workbench.version`` in the metadata; none recorded reads as 1). A reader whose
  :class:`Rules` expect another version gets the entry only if ``Rules.migrate`` can derive
  the current format from it; otherwise the entry is **outdated**: not served, not
  quarantined (it is not corrupt), listed in ``outdated``, and the caller refetches it
  (offline it counts as missing, with the reason).
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import polars as pl

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "WORKBENCH_CACHE_DIR"
QUARANTINE = "quarantine"          # <root>/quarantine/...: files that failed validation
ROWS_KEY = "workbench.rows"        # parquet key-value metadata: rows the writer meant to write
VERSION_KEY = "workbench.version"  # parquet key-value metadata: the writer's format version (none: 1)
REASON_SUFFIX = ".reason.json"
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


@dataclass(frozen=True)
class QuarantinedEntry:
    path: Path          # where the file is now (under <root>/quarantine)
    original: str       # its path relative to the cache root before it was moved
    reason: str
    quarantined_at: str  # ISO time, UTC
    size: int
    age_s: float        # since it was quarantined


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class Outdated(str):
    """A problem that is only the entry's format: it was written in another format version
    than the reader's :class:`Rules` (by an older workbench) and cannot be migrated. It is
    not served and not quarantined; the caller refetches it."""


@dataclass(frozen=True)
class Rules:
    """What a valid cached frame is; :meth:`check` names the first thing that is not.

    ``schema``: the exact columns and dtypes (extra columns are dropped on read);
    no column may hold nulls. ``positive``: finite and > 0. ``non_negative``: finite and
    >= 0. ``finite``: finite (any sign). ``increasing``: a column strictly increasing (sorted, no duplicates), within
    each group of ``within`` when given (e.g. per symbol). A zero-row frame is valid
    only when ``recorded_rows`` (the writer's note, :data:`ROWS_KEY`) says 0.
    ``version``: the format version a current entry records (:data:`VERSION_KEY`);
    ``migrate(frame, recorded_version)`` returns the frame in the current format, or a
    string saying why it cannot be derived (then the entry is :class:`Outdated`).
    """

    schema: Mapping[str, pl.DataType]
    positive: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    finite: tuple[str, ...] = ()
    increasing: str | None = None
    within: str | None = None
    version: int = 1
    migrate: Callable[[pl.DataFrame, int], "pl.DataFrame | str"] | None = None
    columns: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "columns", tuple(self.schema))

    def check(self, frame: pl.DataFrame, recorded_rows: str | None = None) -> str | None:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            return f"missing column(s) {missing}"
        for name, dtype in self.schema.items():
            if frame.schema[name] != dtype:
                return f"column {name!r} is {frame.schema[name]}, expected {dtype}"
        if recorded_rows is not None and recorded_rows != str(frame.height):
            return f"holds {frame.height} rows but was written with {recorded_rows}"
        if frame.height == 0:
            return None if recorded_rows == "0" else \
                "zero rows, and the file does not record an empty result cached on purpose"
        for name in self.columns:
            nulls = frame.get_column(name).null_count()
            if nulls:
                return f"column {name!r} has {nulls} null value(s)"
        for names, ok, wanted in ((self.positive, lambda c: c > 0, "finite and > 0"),
                                  (self.non_negative, lambda c: c >= 0, "finite and >= 0"),
                                  (self.finite, lambda c: c == c, "finite")):
            for name in names:
                col = pl.col(name)
                good = ok(col) & col.is_finite() if frame.schema[name].is_float() else ok(col)
                bad = frame.with_row_index("_row").filter(~good)
                if bad.height:
                    row = bad.row(0, named=True)
                    return (f"column {name!r} has {bad.height} value(s) not {wanted} "
                            f"(first: {row[name]} at row {row['_row']})")
        if self.increasing is not None:
            step = pl.col(self.increasing).to_physical().diff()  # datetimes as integers
            if self.within is not None:
                step = step.over(self.within)
            bad = frame.with_row_index("_row").filter(step <= 0)
            if bad.height:
                row = bad.row(0, named=True)
                per = f" within {self.within}" if self.within else ""
                return (f"column {self.increasing!r} is not strictly increasing{per} (sorted, "
                        f"unique): {bad.height} row(s) repeat or go back, first at row {row['_row']}")
        return None

    def admit(self, frame: pl.DataFrame, recorded_rows: str | None = None,
              recorded_version=None) -> tuple[pl.DataFrame, str | None]:
        """The format version first, then :meth:`check`: ``(frame with only the schema's
        columns, None)`` when the entry may be served, else ``(frame, problem)``; the
        problem is an :class:`Outdated` when only the format version is wrong
        (``recorded_version``: the writer's note, None for 1)."""
        try:
            version = 1 if recorded_version is None else int(recorded_version)
        except (TypeError, ValueError):
            return frame, f"format version {recorded_version!r} is not an integer"
        if version != self.version:
            derived = self.migrate(frame, version) if self.migrate is not None and \
                version < self.version else None
            if not isinstance(derived, pl.DataFrame):
                why = f": {derived}" if isinstance(derived, str) else ""
                return frame, Outdated(f"written in format {version}, this workbench reads format "
                                       f"{self.version}{why}; refetch it")
            frame = derived  # a migration keeps the rows (the row count is checked)
        problem = self.check(frame, recorded_rows)
        return (frame, problem) if problem else (frame.select(self.columns), None)


class ParquetCache:
    """Parquet files keyed by tuples of strings under ``root``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = cache_dir(root)
        self.quarantined: list[Path] = []  # files this instance moved aside
        self.outdated: list[Path] = []     # files this instance did not serve: older format

    def path(self, *key: str) -> Path:
        if not key:
            raise ValueError("a cache key needs at least one part")
        *dirs, name = (escape(k) for k in key)
        if (dirs[0] if dirs else name) == QUARANTINE:
            raise ValueError(f"key {key!r}: {QUARANTINE!r} is reserved for quarantined files")
        return self.root.joinpath(*dirs, f"{name}.parquet")

    def age_s(self, path: Path, now: float | None = None) -> float:
        return (time.time() if now is None else now) - path.stat().st_mtime

    def validate(self, path: Path, rules: Rules | None = None) -> tuple[pl.DataFrame | None, str | None]:
        """``(frame, None)`` when the file at ``path`` is valid (only ``rules``' columns kept),
        ``(frame or None, problem)`` when not. Reads only: nothing is moved."""
        try:
            frame = pl.read_parquet(path)
            meta = pl.read_parquet_metadata(path)
        except (Exception, pl.exceptions.PanicException) as exc:  # the bytes are not parquet
            return None, f"not a readable parquet file ({_first_line(exc)})"
        if rules is None:
            return frame, None
        return rules.admit(frame, meta.get(ROWS_KEY), meta.get(VERSION_KEY))

    def read(self, path: Path, rules: Rules | None = None) -> pl.DataFrame | None:
        """The frame at ``path``, checked against ``rules``; None when absent or invalid
        (an invalid file is quarantined, see the module docstring, so the caller refetches)."""
        if not path.is_file():
            return None
        frame, problem = self.validate(path, rules)
        if problem is None:
            return frame
        if isinstance(problem, Outdated):
            self.outdated.append(path)
            log.info("cache file %s is %s: not served", path, problem)
            return None
        moved = self.quarantine(path, problem)
        log.warning("cache file %s is invalid (%s): quarantined to %s; it counts as missing",
                    path, problem, moved if moved is not None else "nowhere (could not move it)")
        return None

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move ``path`` under ``<root>/quarantine`` with a reason file beside it; the new
        path, or None when it could not be moved (gone already, read-only cache)."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            rel = Path(path.name)
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        target_dir = self.root / QUARANTINE / rel.parent
        try:
            size = path.stat().st_size
            target_dir.mkdir(parents=True, exist_ok=True)
            n = 0
            while True:
                target = target_dir / f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}"
                reason_path = target.with_name(target.name + REASON_SUFFIX)
                if not target.exists() and not reason_path.exists():
                    break
                n += 1
            reason_path.write_text(json.dumps({
                "original": rel.as_posix(), "reason": reason,
                "quarantined_at": now.isoformat(timespec="seconds"), "bytes": size}, indent=2) + "\n")
            try:
                os.replace(path, target)
            except BaseException:
                reason_path.unlink(missing_ok=True)
                raise
        except FileNotFoundError:
            return None  # another reader moved it first
        except OSError as exc:
            log.error("could not quarantine cache file %s (%s): leaving it in place, not serving it",
                      path, exc)
            return None
        self.quarantined.append(target)
        return target

    def write(self, path: Path, frame: pl.DataFrame, version: int | None = None) -> Path:
        """Write ``frame`` atomically (temp file + fsync + rename), recording its row count
        (and its format ``version`` when given)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        metadata = {ROWS_KEY: str(frame.height)}
        if version is not None:
            metadata[VERSION_KEY] = str(int(version))
        try:
            with os.fdopen(fd, "wb") as fh:
                frame.write_parquet(fh, metadata=metadata)
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
                 for p in base.rglob("*.parquet")
                 if p.relative_to(self.root).parts[0] != QUARANTINE]
        return sorted(found, key=lambda e: -e.age_s)

    def quarantined_entries(self) -> list[QuarantinedEntry]:
        """Every quarantined file with its reason, most recent first."""
        base = self.root / QUARANTINE
        if not base.is_dir():
            return []
        now = time.time()
        out = []
        for p in base.rglob("*.parquet"):
            reason_path = p.with_name(p.name + REASON_SUFFIX)
            try:
                doc = json.loads(reason_path.read_text())
                stamp = reason_path.stat().st_mtime
            except (OSError, ValueError):
                doc, stamp = {}, p.stat().st_mtime
            out.append(QuarantinedEntry(
                p, str(doc.get("original", p.relative_to(base).as_posix())),
                str(doc.get("reason", "unknown (no reason file)")), str(doc.get("quarantined_at", "")),
                p.stat().st_size, now - stamp))
        return sorted(out, key=lambda e: e.age_s)
