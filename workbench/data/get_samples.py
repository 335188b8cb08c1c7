"""Download the public sample data sets (``python -m workbench data get-samples``).

Two public sources, both free and without an account:

* **LOBSTER** (https://lobsterdata.com/info/DataSamples.php): one NASDAQ day
  (2012-06-21) per stock and depth, a zip holding the ``message`` and ``orderbook`` CSV
  files that ``workbench.data.lobster`` reads. The default is AMZN level 1, the day the
  notebooks replay when ``../shared`` is present.
* **Binance public data** (https://data.binance.vision): daily archives of the spot
  market, each a zip with one CSV and a ``.CHECKSUM`` file (its SHA-256). The defaults
  are BTCUSDT on 2024-08-08, the day of the recorded websocket capture the notebooks use:
  1-minute klines and aggregated trades. (The raw depth stream of that capture is not
  published anywhere; it was recorded live.)

Every download is checked before anything lands in the target directory:

* a size limit per file (the declared ``Content-Length`` first, then the bytes as they
  arrive) and a time limit (per network operation, and for the whole file);
* the archive: a zip, not an HTML page (what a web site serves instead of a missing file);
  members read by name only (no paths), each under the size limit before extraction;
* a checksum: Binance's published SHA-256 of the zip; for LOBSTER, the SHA-256 of the
  files pinned below where we know it (AMZN level 1: the copy the project's checks were
  built on);
* the format, with the project's own readers: LOBSTER message rows pass
  ``lobster.read_messages`` (types, sides, prices, times) and the orderbook file has as
  many rows as the message file; Binance CSVs have the documented columns, numbers
  where numbers belong and times that never go back.

A download that fails a check is moved to ``<dir>/quarantine/`` with a ``.reason.json``
beside it (kept for inspection, never used; delete it by hand) and the command names the
check that failed. Files are written atomically:
a ``.part`` file renamed into place, so an interrupted run leaves nothing half-written.
A sample already present and valid is not downloaded again (``force=True`` does).
Without internet the command says so in one line: no host could be reached.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import InputError

__all__ = ["Sample", "SAMPLES", "DEFAULT_SAMPLES", "DownloadError", "SampleResult", "get_samples",
           "samples_dir", "verify_sample"]

ENV_DATA_DIR = "WORKBENCH_DATA_DIR"
USER_AGENT = "hft-workbench get-samples (+https://lobsterdata.com, https://data.binance.vision)"
CHUNK = 1 << 16
MiB = 1 << 20
REASON_SUFFIX = ".reason.json"
UNPACK_RATIO = 20          # a member may unpack to at most this many times the zip's limit


class DownloadError(InputError):
    """A sample could not be fetched or failed a check (one line on the command line).
    ``unreachable``: the host could not be reached at all (no internet, DNS, refused)."""

    def __init__(self, message: str, unreachable: bool = False, path=None):
        super().__init__(message, path=path)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Sample:
    """One downloadable sample.

    ``urls``: tried in order until one passes every check. ``kind``: ``"lobster"`` or
    ``"binance"`` (which checks apply). ``members``: the files kept from the zip (by base
    name) and written to ``<dir>/<subdir>/``. ``sha256``: pinned digests of members (by
    name), when known. ``checksum_url``: where the zip's SHA-256 is published
    (``<sha256>  <name>``, Binance's ``.CHECKSUM`` files), or None.
    """
    name: str
    description: str
    kind: str
    urls: tuple[str, ...]
    members: tuple[str, ...]
    max_bytes: int
    subdir: str
    checksum_url: str | None = None
    sha256: dict = field(default_factory=dict)
    columns: int = 0                      # Binance: the CSV's columns,
    time_column: int = 0                  # which one is the time,
    flag_columns: tuple[int, ...] = ()    # and which are true/false


def _lobster(ticker: str, level: int, max_mb: int, sha256: dict | None = None) -> Sample:
    zip_name = f"LOBSTER_SampleFile_{ticker}_2012-06-21_{level}.zip"
    stem = f"{ticker}_2012-06-21_34200000_57600000"
    # php.lobsterdata.com is the host that still serves the sample files to programs
    # (the main site answers them with its web front end); the others are fallbacks
    urls = tuple(f"https://{host}/info/sample/{zip_name}"
                 for host in ("php.lobsterdata.com", "lobsterdata.com", "data.lobsterdata.com"))
    return Sample(f"lobster-{ticker.lower()}-{level}",
                  f"LOBSTER {ticker} 2012-06-21, {level} level(s), NASDAQ full day",
                  "lobster", urls, (f"{stem}_message_{level}.csv", f"{stem}_orderbook_{level}.csv"),
                  max_mb * MiB, "lobster", sha256=dict(sha256 or {}))


def _binance(kind: str, max_mb: int, columns: int, time_column: int, flag_columns: tuple[int, ...],
             day: str = "2024-08-08", symbol: str = "BTCUSDT") -> Sample:
    if kind == "klines-1m":
        path, stem, what = f"klines/{symbol}/1m", f"{symbol}-1m-{day}", "1-minute klines"
    else:
        path, stem, what = f"{kind}/{symbol}", f"{symbol}-{kind}-{day}", kind
    url = f"https://data.binance.vision/data/spot/daily/{path}/{stem}.zip"
    return Sample(f"binance-{symbol.lower()}-{kind.lower()}", f"Binance spot {symbol} {day}: {what}",
                  "binance", (url,), (f"{stem}.csv",), max_mb * MiB, "binance",
                  checksum_url=url + ".CHECKSUM", columns=columns, time_column=time_column,
                  flag_columns=flag_columns)


SAMPLES: dict[str, Sample] = {s.name: s for s in (
    # the digests are those of the AMZN level-1 files in ../shared/data/lobster, which are
    # LOBSTER's sample files as distributed (57,515 messages, 09:30-16:00)
    _lobster("AMZN", 1, 20, {
        "AMZN_2012-06-21_34200000_57600000_message_1.csv":
            "9506cea0aab42b2815e13d2f2485b39ef6c0aa212d1bb68f344a52f0a24475f5",
        "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv":
            "7c0c4664935a661ec467358a0d1c7bd5ad4e17c8d895c9198af1de3b6e95764a"}),
    _lobster("AAPL", 1, 40),
    _lobster("AMZN", 10, 150),
    _lobster("AAPL", 10, 250),
    _lobster("MSFT", 10, 250),
    # columns as Binance documents them (github.com/binance/binance-public-data):
    # klines: open time, open, high, low, close, volume, close time, quote volume, trades,
    #   taker buy base, taker buy quote, ignore
    _binance("klines-1m", 5, 12, 0, ()),
    # aggTrades: id, price, qty, first trade id, last trade id, time, buyer is maker, best match
    _binance("aggTrades", 250, 8, 5, (6, 7)),
    # trades: id, price, qty, quote qty, time, buyer is maker, best match
    _binance("trades", 400, 7, 4, (5, 6)),
)}

DEFAULT_SAMPLES = ("lobster-amzn-1", "binance-btcusdt-klines-1m", "binance-btcusdt-aggtrades")


def samples_dir(override: str | os.PathLike | None = None) -> Path:
    """Where samples go: ``override``, else ``$WORKBENCH_DATA_DIR/samples``, else the
    user data dir (``platformdirs.user_data_dir("hft-workbench")/samples``)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser() / "samples"
    import platformdirs

    return Path(platformdirs.user_data_dir("hft-workbench")) / "samples"


@dataclass
class SampleResult:
    name: str
    status: str                   # "downloaded", "present"
    files: list[Path]
    bytes: int = 0
    url: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "files": [str(f) for f in self.files],
                "bytes": self.bytes, "url": self.url, "seconds": round(self.seconds, 3),
                "notes": self.notes}


# ------------------------------------------------------------------------ fetching
def _fetch(url: str, dest: Path, max_bytes: int, timeout: float, deadline_s: float,
           progress: Callable[[int, int | None], None] | None = None) -> int:
    """Stream ``url`` into ``dest`` (replaced); returns the byte count. Raises
    DownloadError for an unreachable host, an HTTP error, a size over ``max_bytes`` or a
    transfer slower than ``timeout`` per read / ``deadline_s`` in total."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{url}: {total:,} bytes declared, over the {max_bytes:,}-byte "
                                    "limit for this sample")
            got = 0
            with dest.open("wb") as out:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > max_bytes:
                        raise DownloadError(f"{url}: more than the {max_bytes:,}-byte limit for this "
                                            "sample arrived; stopped")
                    if time.monotonic() - started > deadline_s:
                        raise DownloadError(f"{url}: timed out: not complete after {deadline_s:g} s "
                                            f"({got:,} bytes so far)")
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk), total)
            if total is not None and got != total:
                raise DownloadError(f"{url}: truncated: {got:,} of {total:,} bytes arrived")
            return got
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(f"{url}: timed out: no answer within {timeout:g} s") from None
        if isinstance(reason, socket.gaierror):
            raise DownloadError(f"{url}: cannot resolve the host (no internet connection?): "
                                f"{reason}", unreachable=True) from None
        raise DownloadError(f"{url}: cannot connect (no internet connection?): {reason}",
                            unreachable=True) from None
    except (socket.timeout, TimeoutError):
        raise DownloadError(f"{url}: timed out: no data for {timeout:g} s") from None
    except (ConnectionError, OSError) as exc:
        raise DownloadError(f"{url}: connection failed: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------ checks
def _published_sha256(text: str, zip_name: str, url: str) -> str:
    """The digest in a ``<sha256>  <name>`` line (Binance's .CHECKSUM format)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == zip_name and len(parts[0]) == 64:
            try:
                int(parts[0], 16)
            except ValueError:
                break
            return parts[0].lower()
    raise DownloadError(f"{url}: not a checksum file for {zip_name} (want '<sha256>  {zip_name}')")


def _open_zip(path: Path, url: str) -> zipfile.ZipFile:
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.lstrip()[:1] == b"<":
        raise DownloadError(f"{url}: the server sent a web page, not the zip (the file may have moved; "
                            "see https://lobsterdata.com/info/DataSamples.php or "
                            "https://data.binance.vision)")
    try:
        archive = zipfile.ZipFile(path)
        bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DownloadError(f"{url}: not a readable zip archive: {exc}") from None
    if bad is not None:
        archive.close()
        raise DownloadError(f"{url}: zip member {bad!r} is corrupt (CRC mismatch)")
    return archive


def _extract(archive: zipfile.ZipFile, sample: Sample, staging: Path, url: str) -> list[Path]:
    """The sample's members, by base name only, each under the size limit."""
    by_name = {}
    for info in archive.infolist():
        base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
        if base in sample.members and not info.is_dir():
            by_name[base] = info
    missing = [m for m in sample.members if m not in by_name]
    if missing:
        raise DownloadError(f"{url}: the zip lacks {', '.join(missing)} "
                            f"(it holds {', '.join(archive.namelist()[:6]) or 'nothing'})")
    out = []
    for name in sample.members:
        info = by_name[name]
        if info.file_size > sample.max_bytes * UNPACK_RATIO:
            raise DownloadError(f"{url}: {name} unpacks to {info.file_size:,} bytes, over the limit "
                                f"({sample.max_bytes * UNPACK_RATIO:,}: {UNPACK_RATIO}x the download's)")
        target = staging / name
        with archive.open(info) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        out.append(target)
    return out


def _check_lobster(files: Sequence[Path], sample: Sample) -> list[str]:
    """The message file through the project's reader (types, sides, prices, times), and
    the orderbook file row-aligned with it, with 4 columns per level; returns notes."""
    from . import lobster

    messages, orderbook = files
    try:
        frame = lobster.read_messages(messages)
        levels = lobster.parse_filename(orderbook).level
    except (ValueError, OSError) as exc:
        raise DownloadError(f"{messages.name}: not a LOBSTER file: {' '.join(str(exc).split())}") from None
    if frame.height == 0:
        raise DownloadError(f"{messages.name}: no messages")
    with orderbook.open("rb") as fh:
        first = fh.readline().decode("utf-8", "replace").strip().split(",")
    if len(first) != 4 * levels or not all(v.strip().lstrip("-").isdigit() for v in first):
        raise DownloadError(f"{orderbook.name}: the first row has {len(first)} fields, a level-{levels} "
                            f"LOBSTER orderbook row has {4 * levels} integers")
    rows = _count_lines(orderbook)
    if rows != frame.height:
        raise DownloadError(f"{orderbook.name}: {rows:,} rows for {frame.height:,} messages "
                            "(the files must be row-aligned)")
    back = frame["ts"].diff().min()
    if back is not None and back < 0:
        raise DownloadError(f"{messages.name}: times go back")
    return [f"{frame.height:,} messages, {levels} level(s)"]


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def _check_binance(files: Sequence[Path], sample: Sample) -> list[str]:
    """Binance CSV: the documented column count, numbers where numbers belong, times
    that never go back (milliseconds before 2025, microseconds after). An optional
    header line is allowed (Binance added them to some archives)."""
    import polars as pl

    (path,) = files
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8", "replace").strip()
    if not first:
        raise DownloadError(f"{path.name}: empty file")
    cells = first.split(",")
    header = not cells[0].strip().isdigit()
    if len(cells) != sample.columns:
        raise DownloadError(f"{path.name}: {len(cells)} columns, a Binance {sample.name} file has "
                            f"{sample.columns}")
    names = [f"c{i}" for i in range(sample.columns)]
    flags = [names[i] for i in sample.flag_columns]
    try:
        frame = pl.read_csv(path, has_header=header, new_columns=names, infer_schema_length=0)
        numbers = frame.select(pl.exclude(flags).cast(pl.Float64, strict=True))
        times = frame[names[sample.time_column]].cast(pl.Int64, strict=True)
        bad_flags = frame.select(pl.sum_horizontal(
            ~pl.col(f).str.to_lowercase().is_in(["true", "false"]) for f in flags)).to_series() if flags \
            else None
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise DownloadError(f"{path.name}: not a Binance CSV: {' '.join(str(exc).split())[:200]}") from None
    if frame.height == 0:
        raise DownloadError(f"{path.name}: no rows")
    if numbers.null_count().sum_horizontal()[0] > 0:
        raise DownloadError(f"{path.name}: empty numeric fields")
    if bad_flags is not None and bad_flags.sum() > 0:
        raise DownloadError(f"{path.name}: flag columns that are not true/false")
    back = times.diff().min()
    if back is not None and back < 0:
        raise DownloadError(f"{path.name}: times go back")
    return [f"{frame.height:,} rows"]


_CHECKS = {"lobster": _check_lobster, "binance": _check_binance}


def verify_sample(sample: Sample, directory: Path) -> list[str] | None:
    """Notes when ``sample``'s files are present in ``directory`` and pass the checks
    (pinned digests and format), None when any is missing. Raises DownloadError when a
    present file is invalid."""
    files = [directory / sample.subdir / m for m in sample.members]
    if not all(f.is_file() for f in files):
        return None
    for f in files:
        want = sample.sha256.get(f.name)
        if want is not None and _sha256(f) != want:
            raise DownloadError(f"{f}: SHA-256 differs from the published sample's", path=f)
    return _CHECKS[sample.kind](files, sample)


# ------------------------------------------------------------------------ the command
def _quarantine(directory: Path, path: Path, why: str, source: str | None = None) -> Path:
    """Move ``path`` to ``<directory>/quarantine/<UTC stamp>-<n>-<name>`` (never replacing
    an earlier one) with ``<that>.reason.json`` beside it (source, reason, time, size): the
    convention of the parquet cache (``workbench.data.cache``)."""
    import json

    qdir = directory / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    name = path.name[:-len(".part")] if path.name.endswith(".part") else path.name
    stamp, n = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), 0
    while (target := qdir / f"{stamp}-{n}-{name}").exists():
        n += 1
    size = path.stat().st_size
    os.replace(path, target)
    target.with_name(target.name + REASON_SUFFIX).write_text(json.dumps(
        {"source": source or str(path), "reason": why, "time": stamp, "bytes": size}, indent=1) + "\n")
    return target


def _one(sample: Sample, directory: Path, timeout: float, deadline_s: float, progress) -> SampleResult:
    started = time.monotonic()
    partial = directory / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    failures, unreachable = [], []
    for url in sample.urls:
        zip_name = url.rsplit("/", 1)[-1]
        download = partial / f"{zip_name}.part"
        staging = partial / f"{sample.name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            expected = None
            if sample.checksum_url is not None:
                sums = partial / f"{zip_name}.CHECKSUM.part"
                _fetch(sample.checksum_url, sums, 4096, timeout, deadline_s)
                expected = _published_sha256(sums.read_text("utf-8", "replace"), zip_name,
                                             sample.checksum_url)
                sums.unlink()
            bar = progress(sample.name) if progress else None
            try:
                size = _fetch(url, download, sample.max_bytes, timeout, deadline_s,
                              bar.step if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
        except DownloadError as exc:
            download.unlink(missing_ok=True)
            failures.append(str(exc))
            unreachable.append(exc.unreachable)
            continue
        try:
            if expected is not None and _sha256(download) != expected:
                raise DownloadError(f"{url}: SHA-256 differs from the published {sample.checksum_url}")
            staging.mkdir()
            with _open_zip(download, url) as archive:
                files = _extract(archive, sample, staging, url)
            for f in files:
                want, got = sample.sha256.get(f.name), None
                if want is not None and (got := _sha256(f)) != want:
                    raise DownloadError(f"{url}: {f.name} has SHA-256 {got[:16]}..., the "
                                        f"published sample's is {want[:16]}...")
            notes = _CHECKS[sample.kind](files, sample)
        except DownloadError as exc:
            kept = _quarantine(directory, download, str(exc), url)
            shutil.rmtree(staging, ignore_errors=True)
            failures.append(f"{exc} (quarantined as {kept})")
            unreachable.append(False)
            continue
        final_dir = directory / sample.subdir
        final_dir.mkdir(parents=True, exist_ok=True)
        finals = []
        for f in files:                       # same file system: each rename is atomic
            os.replace(f, final_dir / f.name)
            finals.append(final_dir / f.name)
        shutil.rmtree(staging, ignore_errors=True)
        download.unlink(missing_ok=True)
        return SampleResult(sample.name, "downloaded", finals, size, url,
                            time.monotonic() - started, notes)
    if all(unreachable):
        hosts = sorted({u.split("/")[2] for u in sample.urls})
        raise DownloadError(f"{sample.name}: no internet connection: could not reach "
                            f"{', '.join(hosts)} ({failures[-1].rsplit(': ', 1)[-1]})", unreachable=True)
    raise DownloadError(f"{sample.name}: no source passed: " + " | ".join(failures))


def get_samples(names: Iterable[str] | None = None, directory: str | os.PathLike | None = None, *,
                force: bool = False, timeout: float = 30.0, deadline_s: float = 600.0,
                catalog: dict[str, Sample] | None = None, progress: bool = False,
                on_result: Callable[[SampleResult], None] | None = None) -> list[SampleResult]:
    """Download ``names`` (default :data:`DEFAULT_SAMPLES`; ``"all"``: every sample of
    ``catalog``) into ``directory`` (:func:`samples_dir`), checking each (module doc).

    Samples already present and valid are kept (status ``"present"``) unless ``force``.
    ``timeout``: seconds per network operation; ``deadline_s``: per file. Raises
    DownloadError (after trying the others) naming every sample that failed and why.
    """
    catalog = SAMPLES if catalog is None else catalog
    names = list(DEFAULT_SAMPLES if names is None else names)
    if names == ["all"]:
        names = list(catalog)
    unknown = [n for n in names if n not in catalog]
    if unknown or not names:
        raise InputError(f"unknown sample(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(catalog)} or 'all'")
    for name, value in (("timeout", timeout), ("deadline_s", deadline_s)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise InputError(f"{name}={value!r} must be a number of seconds > 0")
    directory = samples_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bar_factory = _Bar if progress else None
    results, errors, offline = [], [], []
    for name in names:
        sample = catalog[name]
        try:
            notes = None if force else verify_sample(sample, directory)
        except DownloadError as exc:       # present but invalid: set it aside, fetch again
            members = [directory / sample.subdir / m for m in sample.members]
            for f in [Path(exc.path)] if exc.path else members:   # the file at fault, or all
                if f.is_file():
                    _quarantine(directory, f, str(exc))
            notes = None
        if notes is not None:
            result = SampleResult(name, "present", [directory / sample.subdir / m for m in sample.members],
                                  sum((directory / sample.subdir / m).stat().st_size for m in sample.members),
                                  notes=notes)
        else:
            try:
                result = _one(sample, directory, float(timeout), float(deadline_s), bar_factory)
            except DownloadError as exc:
                errors.append(str(exc))
                offline.append(exc.unreachable)
                continue
        results.append(result)
        if on_result is not None:
            on_result(result)
    shutil.rmtree(directory / ".partial", ignore_errors=True)
    if errors and all(offline) and not results:
        hosts = sorted({u.split("/")[2] for n in names for u in catalog[n].urls})
        why = errors[-1].rsplit("(", 1)[-1].rstrip(")")
        raise DownloadError(f"no internet connection: could not reach {', '.join(hosts)} ({why}); "
                            "nothing was downloaded", unreachable=True)
    if errors:
        raise DownloadError(f"{len(errors)} of {len(names)} sample(s) failed: " + " || ".join(errors))
    return results


class _Bar:
    """A byte progress bar, created on the first chunk (when the size is known)."""

    def __init__(self, name: str):
        self.name, self.bar = name, None

    def step(self, n: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=self.name, unit="B", unit_scale=True, leave=False)
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
