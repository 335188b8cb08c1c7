"""Yahoo Finance bars through yfinance, behind a parquet cache that works offline.

``load_bars(symbols, start, end, interval="1d", adjusted=True, *, repair=True,
major_units=False)`` returns one polars frame (:data:`YAHOO_BAR_SCHEMA`), rows sorted by
``symbol, ts``:

================  ==================  ================================================
column            dtype               meaning
================  ==================  ================================================
``symbol``        str                 the Yahoo ticker as requested (``AAPL``, ``EURUSD=X``)
``ts``            datetime[ns, UTC]   bar open time in UTC; a daily bar opens at the local
                                      midnight of its exchange day (Jakarta's 2 Jan 2020
                                      bar is 2020-01-01 17:00 UTC)
``open``...       f64                 ``open, high, low, close``: adjusted (see below) or raw
``adj_close``     f64                 Yahoo's close adjusted for splits and dividends
``volume``        i64                 shares (or contracts); raw or split-adjusted with prices
``session_date``  date                the trading date in the exchange's time zone: the
                                      local date of ``ts`` (Copenhagen's 2 Jan 2020 session
                                      is 2020-01-02, though ``ts`` is 2020-01-01 23:00
                                      UTC). Group daily bars by this, never by the UTC
                                      date. Crypto trades every day: its Saturday and
                                      Sunday sessions are there too. Intraday bars of
                                      sessions that cross midnight (futures' evening
                                      trade) get the calendar date they open on, not the
                                      exchange's settlement date.
``exchange_tz``   str                 the exchange's IANA time zone (Yahoo's
                                      ``exchangeTimezoneName``: ``Europe/Copenhagen``)
``currency``      str                 the quotation currency as Yahoo reports it (``USD``,
                                      ``GBp`` for pence), or null when it reports none
``minor_unit``    bool                prices are in a minor unit (:data:`MINOR_UNITS`:
                                      ``GBp``/``GBX`` pence, ``ILA`` agorot, ``ZAc`` cents,
                                      ...): 100x the major currency. Never mix these rows
                                      with major-unit prices unconverted
``repaired``      bool                yfinance's price repair changed this row (its
                                      ``Repaired?``: a 100x unit mix-up, a bad split or
                                      dividend adjustment, a missing price); always False
                                      with ``repair=False``
================  ==================  ================================================

``major_units=True`` converts minor-unit rows to the major currency: ``open, high, low,
close, adj_close`` divided by the unit (100 for pence, agorot, cents; 1000 for fils), ``currency``
becomes the major one (``GBp`` -> ``GBP``, ``ILA`` -> ``ILS``, ``ZAc`` -> ``ZAR``) and
``minor_unit`` False; volume is unchanged.

``repair=True`` (the default) asks yfinance to repair Yahoo's known price errors
(``Ticker.history(repair=True)``; it needs scipy and scikit-learn: the ``yfinance[repair]``
extra, a dependency of this package). Repair works on what one request returns (one cache
chunk); where it would need finer-grained prices (a bad bar rebuilt from hourly data) it
asks Yahoo for them, which Yahoo serves only for recent dates, so older bad bars are fixed
more crudely or not at all (yfinance's own rules). ``repair=False`` serves Yahoo's values
as sent. The two are cached apart (``yahoo/...`` and ``yahoo-unrepaired/...``).

``adjusted=True``: prices are total-return adjusted (``open, high, low`` scaled by
``adj_close / close``; ``close`` equals ``adj_close``), volume split-adjusted.
``adjusted=False``: prices and volume as they traded: Yahoo's split adjustment is undone
using the splits from each bar's date up to today (their daily history is loaded, through
the cache, for this); ``adj_close`` is still Yahoo's.

The range is ``[start, end)`` in exchange-local days. Requests are cut into chunks
(a calendar year of 1d bars, a month of 1h, an ISO week of 1m/5m/15m, which also keeps
1m requests within Yahoo's 7-day limit); each chunk is one cache entry
``yahoo/<interval>/<symbol>/<chunk start>.parquet`` (``yahoo-unrepaired/...`` with
``repair=False``) under :func:`workbench.data.cache.cache_dir`.
Yahoo only serves recent intraday history (1m: 30 days, 5m/15m: 60, 1h: 730): asking for
an older chunk that is not cached is a ``ValueError`` naming the limit.
A chunk whose end is close to the fetch time may still change, so it expires
(1 hour for intraday, 12 hours for daily); a settled chunk never expires.

Every cached chunk is checked when read (:data:`CHUNK_RULES`: the chunk schema with its
exact types, no nulls, prices finite and > 0 (futures, ``=F``: finite), volume, dividends and splits >= 0, ``ts``
strictly increasing, rows > 0 unless the empty answer was cached on purpose). A chunk that
fails is quarantined (see :mod:`workbench.data.cache`) and refetched; offline it is
missing. A freshly fetched chunk is sorted and de-duplicated by ``ts``, then checked by
the same rules before it is cached: one that fails is a ``ValueError`` naming the
symbol, chunk and problem, and nothing is cached.

Every chunk records its format version (:data:`CHUNK_VERSION`, in the parquet metadata
and in the Redis value). Format 1 (before ``currency``, ``repaired`` and price repair)
cannot be brought up to date (the currency is not in it, and its prices were never
repaired): such a chunk is *outdated*, never served, not quarantined; online it is
refetched and overwritten, offline it is missing (:class:`MissingDataError` says so).
``session_date`` and ``exchange_tz`` are derived from ``ts`` and the stored zone on every
load, so they need no migration.

Offline (``offline=True`` or ``WORKBENCH_OFFLINE=1``, or the network failing) serves the
cache, expired or not; anything not cached raises :class:`MissingDataError` naming the
symbols, interval and chunks. ``fallback="synthetic"`` (or ``WORKBENCH_FALLBACK=synthetic``)
instead substitutes seeded synthetic bars for what is missing, with a warning.

``recorded_session(*directories)`` is a ``requests`` session that answers Yahoo's chart API
from recorded responses (``../shared/data/yahoo_chart``); hand it to ``load_bars(session=...)``
to drive the real yfinance code offline (tests, notebooks).
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import polars as pl

from .cache import Outdated, ParquetCache, Rules
from .bars import BAR_SCHEMA
from .convert import as_date

log = logging.getLogger(__name__)

# What one cache chunk holds: Yahoo's values as yfinance returns them, plus actions.
# Its format version: bump it (and say what an older chunk lacks in _migrate_chunk)
# whenever what a chunk holds or means changes.
CHUNK_VERSION = 2
CHUNK_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"),
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "adj_close": pl.Float64,
    "volume": pl.Int64,
    "dividends": pl.Float64,
    "splits": pl.Float64,     # split ratio on the ex-date (4.0 for 4:1), else 0
    "tz": pl.Utf8,            # the exchange time zone
    "currency": pl.Utf8,      # the quotation currency as Yahoo reports it ("" when none)
    "repaired": pl.Boolean,   # yfinance's price repair changed the row ("Repaired?")
}

# What load_bars returns: the OHLCV columns of every bar frame, then the session columns.
YAHOO_BAR_SCHEMA = {
    **BAR_SCHEMA,
    "session_date": pl.Date,   # the trading date in the exchange's time zone
    "exchange_tz": pl.Utf8,
    "currency": pl.Utf8,       # null when Yahoo reports none (and for synthetic bars)
    "minor_unit": pl.Boolean,
    "repaired": pl.Boolean,
}

# Currencies Yahoo quotes in a minor unit: code -> (major code, minor units per major).
# Pence (LSE), agorot (TASE), South African cents (JSE), Kuwaiti fils (Boursa Kuwait),
# US cents (CBOT grain futures).
MINOR_UNITS = {
    "GBp": ("GBP", 100.0), "GBX": ("GBP", 100.0),
    "ILA": ("ILS", 100.0),
    "ZAc": ("ZAR", 100.0), "ZAC": ("ZAR", 100.0),
    "KWF": ("KWD", 1000.0),
    "USX": ("USD", 100.0),
}

SOURCE = "yahoo"                        # cache key part of repaired chunks (the default)
SOURCE_UNREPAIRED = "yahoo-unrepaired"  # ... and of chunks fetched with repair=False


def _migrate_chunk(frame: pl.DataFrame, version: int):
    """An older chunk in the current format, or why it cannot be (the cache's hook)."""
    if version == 1:
        return ("a format-1 chunk holds no currency and was fetched without yfinance's price "
                "repair; neither can be derived from it")
    return f"format {version} is unknown"

# What a valid cached chunk is (checked on every read, and on every fetch before caching).
_PRICES = ("open", "high", "low", "close", "adj_close")
CHUNK_RULES = Rules(CHUNK_SCHEMA, positive=_PRICES, non_negative=("volume", "dividends", "splits"),
                    increasing="ts", version=CHUNK_VERSION, migrate=_migrate_chunk)
# Futures (Yahoo's "=F" symbols) can trade below zero: WTI crude (CL=F) settled at
# -37.63 on 2020-04-20. Their prices need only be finite.
FUTURES_CHUNK_RULES = Rules(CHUNK_SCHEMA, finite=_PRICES,
                            non_negative=("volume", "dividends", "splits"), increasing="ts",
                            version=CHUNK_VERSION, migrate=_migrate_chunk)


def chunk_rules(symbol: str) -> Rules:
    """The rules a cached chunk of ``symbol`` must pass."""
    return FUTURES_CHUNK_RULES if symbol.upper().endswith("=F") else CHUNK_RULES

ENV_OFFLINE = "WORKBENCH_OFFLINE"
ENV_FALLBACK = "WORKBENCH_FALLBACK"


@dataclass(frozen=True)
class IntervalRule:
    chunk: str            # "year" | "month" | "week"
    lookback_days: int | None  # how far back Yahoo serves this interval (None: no limit)
    settle: timedelta     # a chunk this long past its end no longer changes
    ttl: timedelta        # how long an unsettled chunk stays fresh


INTERVALS = {
    "1m": IntervalRule("week", 30, timedelta(days=1), timedelta(hours=1)),
    "5m": IntervalRule("week", 60, timedelta(days=1), timedelta(hours=1)),
    "15m": IntervalRule("week", 60, timedelta(days=1), timedelta(hours=1)),
    "1h": IntervalRule("month", 730, timedelta(days=1), timedelta(hours=1)),
    "1d": IntervalRule("year", None, timedelta(days=3), timedelta(hours=12)),
}


class MissingDataError(LookupError):
    """Data is neither cached nor fetchable (offline or no network)."""

    def __init__(self, missing: list[tuple[str, str, date, date]], cache_root: Path, cause=None,
                 quarantined=(), outdated=()):
        self.missing = missing
        self.quarantined = list(quarantined)
        self.outdated = list(outdated)
        lines = [f"{sym} {interval} {a.isoformat()}..{b.isoformat()}" for sym, interval, a, b in missing]
        shown = "; ".join(lines[:8]) + (f"; ... ({len(lines)} chunks)" if len(lines) > 8 else "")
        why = f" (network: {cause})" if cause else " (offline)"
        moved = (f" ({len(self.quarantined)} invalid cache file(s) were quarantined under "
                 f"{Path(cache_root) / 'quarantine'})" if self.quarantined else "")
        if self.outdated:
            moved += (f" ({len(self.outdated)} cached chunk(s) were written by another workbench "
                      f"version in another cache format (this one reads format {CHUNK_VERSION}: "
                      "currency and repaired prices) and are not served; fetch them again online)")
        super().__init__(
            f"no cached Yahoo data for {shown}{why}{moved}; cache dir {cache_root}. Fetch it online "
            f"(python -m workbench data fetch ...), or pass fallback='synthetic' / set "
            f"{ENV_FALLBACK}=synthetic for synthetic bars")


# ---------------------------------------------------------------- small helpers
def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def chunks(interval: str, start: date, end: date) -> list[tuple[date, date]]:
    """The cache chunks ``[a, b)`` covering ``[start, end)``."""
    rule = INTERVALS[interval]
    out = []
    if rule.chunk == "year":
        a = date(start.year, 1, 1)
    elif rule.chunk == "month":
        a = date(start.year, start.month, 1)
    else:
        a = start - timedelta(days=start.weekday())
    while a < end:
        if rule.chunk == "year":
            b = date(a.year + 1, 1, 1)
        elif rule.chunk == "month":
            b = date(a.year + (a.month == 12), a.month % 12 + 1, 1)
        else:
            b = a + timedelta(days=7)
        out.append((a, b))
        a = b
    return out


def _utc_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def from_yfinance_frame(frame, symbol: str | None = None, currency: str | None = None,
                        unrepaired=None) -> pl.DataFrame:
    """A ``yfinance.Ticker.history(auto_adjust=False, actions=True)`` pandas frame -> chunk schema.

    The index is tz-aware exchange time; it becomes ``ts`` in UTC and ``tz`` keeps the zone.
    Missing ``Adj Close`` (FX/crypto sometimes) falls back to ``Close``. ``currency``: the
    quotation currency of the response's meta (``""`` when None). ``repaired``: yfinance's
    ``Repaired?`` column (False when it is absent: repair was off), or-ed with every row
    whose prices, volume or dividend differ from ``unrepaired`` (the same response before
    repair, when known: yfinance does not mark all of its fixes).
    """
    import pandas as pd

    if frame is None or len(frame) == 0:
        return pl.DataFrame(schema=CHUNK_SCHEMA)
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError(f"{symbol or 'frame'}: expected a tz-aware DatetimeIndex, got {type(index).__name__}")
    tz = str(index.tz)
    close = frame["Close"].to_numpy(dtype=np.float64)

    def col(name, default):
        return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else default

    volume = frame["Volume"].fillna(0).to_numpy(dtype=np.float64) if "Volume" in frame.columns \
        else np.zeros(len(frame))
    out = pl.DataFrame({
        "ts": pl.Series(index.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8)
        .cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
        "open": col("Open", close), "high": col("High", close), "low": col("Low", close),
        "close": close, "adj_close": col("Adj Close", close),
        "volume": np.round(volume).astype(np.int64),
        "dividends": np.nan_to_num(col("Dividends", np.zeros(len(frame)))),
        "splits": np.nan_to_num(col("Stock Splits", np.zeros(len(frame)))),
        "tz": [tz] * len(frame),
        "currency": [currency or ""] * len(frame),
        "repaired": _repaired_rows(frame, unrepaired),
    })
    # Yahoo pads some ranges with all-null price rows: drop them rather than cache NaNs
    return out.filter(pl.col("close").is_not_nan()).cast(CHUNK_SCHEMA)


_COMPARED = ("Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends")


def _repaired_rows(frame, unrepaired) -> np.ndarray:
    """yfinance's ``Repaired?`` (NaN: False), or any compared value changed by the repair."""
    marked = np.array([bool(v) if v == v else False for v in frame["Repaired?"].tolist()],
                      dtype=bool) if "Repaired?" in frame.columns else np.zeros(len(frame), dtype=bool)
    if unrepaired is None or len(frame) == 0:
        return marked
    before = unrepaired.reindex(frame.index)  # a row the repair added has no "before": NaN
    for col in _COMPARED:
        if col in frame.columns and col in before.columns:
            a = frame[col].to_numpy(dtype=np.float64)
            b = before[col].to_numpy(dtype=np.float64)
            if col == "Volume":  # yfinance fills missing volume with 0 when it repairs
                a, b = np.nan_to_num(a), np.nan_to_num(b)
            marked |= ~np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
    return marked


def _capture_unrepaired(ticker) -> list:
    """A list that receives the frame yfinance is about to repair (this ticker only).

    yfinance keeps no copy of the prices it repairs, and its ``Repaired?`` column misses
    some fixes (a single price 100x off, set crudely when no finer data can rebuild it).
    Its repair starts by handing the frame as parsed to ``_standardise_currency``: the
    first call is kept from there. With a yfinance that no longer has that step nothing is
    captured, and ``Repaired?`` alone marks the rows.
    """
    captured: list = []
    try:
        prices = ticker._lazy_load_price_history()
        step = prices._standardise_currency
    except AttributeError:
        return captured

    def keep(df, *args, **kwargs):
        if not captured:  # the outer request's frame (finer-grained refetches come later)
            captured.append(df.copy())
        return step(df, *args, **kwargs)

    prices._standardise_currency = keep
    return captured


# ------------------------------------------------------------------ fetching
_default_session = None


def _session():
    global _default_session
    if _default_session is None:
        try:
            from curl_cffi import requests as curl_requests

            _default_session = curl_requests.Session(impersonate="chrome")
        except ImportError:  # yfinance falls back to requests the same way
            import requests

            _default_session = requests.Session()
    return _default_session


class _NetworkError(RuntimeError):
    pass


def _require_repair() -> None:
    """yfinance imports scipy and scikit-learn only inside its repair code, where a missing
    one would pass for a failed fetch: say so before asking."""
    import importlib.util

    lacking = [m for m in ("scipy", "sklearn") if importlib.util.find_spec(m) is None]
    if lacking:
        raise ImportError(f"yfinance's price repair needs {lacking} (pip install 'yfinance[repair]', "
                          "a dependency of hft-workbench); or pass repair=False")


def _fetch_chunk(symbol: str, interval: str, a: date, b: date, session, yf_cache: Path,
                 repair: bool = True) -> pl.DataFrame:
    """One chunk from yfinance (price repair on when ``repair``); an empty frame when Yahoo
    has no rows for it."""
    import yfinance as yf
    from yfinance.exceptions import YFPricesMissingError

    if repair:
        _require_repair()
    yf_cache.mkdir(parents=True, exist_ok=True)
    yf.cache.set_cache_location(str(yf_cache))
    config = yf.config.debug
    hide = config.hide_exceptions
    config.hide_exceptions = False  # we must tell "no rows" from "no network"
    try:
        ticker = yf.Ticker(symbol, session=session if session is not None else _session())
        captured = _capture_unrepaired(ticker) if repair else []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="yfinance")  # its pandas deprecations
            frame = ticker.history(start=a.isoformat(), end=b.isoformat(), interval=interval,
                                   auto_adjust=False, actions=True, prepost=False, repair=repair)
            # the chart response's meta, kept by yfinance (no request: it is loaded already)
            currency = ticker.get_history_metadata().get("currency") if len(frame) else None
    except YFPricesMissingError:
        return pl.DataFrame(schema=CHUNK_SCHEMA)
    except Exception as exc:
        raise _NetworkError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        config.hide_exceptions = hide
    return from_yfinance_frame(frame, symbol, currency=currency,
                               unrepaired=captured[0] if captured else None)


def _chunk_is_fresh(fetched_at: float, rule: IntervalRule, b: date, now: datetime) -> bool:
    """The one freshness rule of a cached chunk, whatever the store (``fetched_at``:
    seconds since the epoch, a file's modification time or a Redis entry's stamp)."""
    fetched = datetime.fromtimestamp(fetched_at, tz=timezone.utc)
    if fetched >= _utc_midnight(b) + rule.settle:
        return True  # settled when fetched: never changes again
    return now - fetched < rule.ttl


def _expires_at(fetched_at: float, rule: IntervalRule, b: date) -> float | None:
    """When a chunk fetched at ``fetched_at`` stops being fresh by :func:`_chunk_is_fresh`
    (None: settled, never); a store that drops entries by itself (Redis) drops it then."""
    if datetime.fromtimestamp(fetched_at, tz=timezone.utc) >= _utc_midnight(b) + rule.settle:
        return None
    return fetched_at + rule.ttl.total_seconds()


def _load_symbol_chunks(symbol, interval, start, end, *, cache, offline, session, now, progress_bar,
                        missing, yf_cache, repair=True):
    rule = INTERVALS[interval]
    frames = []
    for a, b in chunks(interval, start, end):
        key = (SOURCE if repair else SOURCE_UNREPAIRED, interval, symbol, a.isoformat())
        entry = cache.get(key, chunk_rules(symbol))  # None when absent, or invalid (quarantined)
        cached = entry.frame if entry is not None else None
        fresh = entry is not None and _chunk_is_fresh(entry.fetched_at, rule, b, now)
        if cached is not None and (fresh or offline[0]):
            frames.append(cached)
            if progress_bar is not None:
                progress_bar.update(1)
            continue
        if offline[0]:
            missing.append((symbol, interval, a, b))
            continue
        fetch_from = a
        if rule.lookback_days is not None:
            oldest = (now - timedelta(days=rule.lookback_days - 1)).date()
            if b <= oldest:
                raise ValueError(
                    f"interval={interval!r}: Yahoo serves only the last {rule.lookback_days} days, "
                    f"but {symbol} {a}..{b} is older and not cached")
            fetch_from = max(a, oldest)
        try:
            if progress_bar is not None:
                progress_bar.set_postfix_str(f"{symbol} {a}")
            fetched = _fetch_chunk(symbol, interval, fetch_from, b, session, yf_cache, repair=repair)
        except _NetworkError as exc:
            log.warning("fetching %s %s %s failed: %s; serving the cache", symbol, interval, a, exc)
            offline[0] = True
            offline[1] = str(exc)
            if cached is not None:
                frames.append(cached)
            else:
                missing.append((symbol, interval, a, b))
            continue
        fetched = fetched.unique("ts", keep="last", maintain_order=True).sort("ts")
        problem = chunk_rules(symbol).check(fetched, str(fetched.height))
        if problem:
            raise ValueError(f"Yahoo sent invalid bars for {symbol} {interval} {a}..{b}: {problem}; "
                             "nothing was cached")
        fetched_at = time.time()
        cache.put(key, fetched, fetched_at=fetched_at, expires_at=_expires_at(fetched_at, rule, b),
                  version=CHUNK_VERSION)
        frames.append(fetched)
        if progress_bar is not None:
            progress_bar.update(1)
    if not frames:
        return pl.DataFrame(schema=CHUNK_SCHEMA)
    return pl.concat(frames).unique("ts", keep="last").sort("ts")


def _local_date(frame: pl.DataFrame) -> pl.Expr:
    """The exchange-local calendar date of each row's ``ts`` (in the row's ``tz``)."""
    expr = pl.lit(None, pl.Date)
    for zone in frame.get_column("tz").unique(maintain_order=True).to_list():
        expr = pl.when(pl.col("tz") == zone).then(
            pl.col("ts").dt.convert_time_zone(zone).dt.date()).otherwise(expr)
    return expr


def _in_range(frame: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    """Rows whose exchange-local date is in [start, end)."""
    if frame.is_empty():
        return frame
    local = _local_date(frame)
    return frame.filter((local >= start) & (local < end))


def _session_columns(frame: pl.DataFrame, major_units: bool) -> pl.DataFrame:
    """``session_date``, ``exchange_tz``, ``currency`` (null for ""), ``minor_unit`` from a
    chunk-schema frame; with ``major_units`` minor-unit prices become major-unit prices."""
    minor = list(MINOR_UNITS)
    out = frame.with_columns(
        _local_date(frame).alias("session_date"),
        pl.col("tz").alias("exchange_tz"),
        pl.when(pl.col("currency") == "").then(None).otherwise(pl.col("currency")).alias("currency"),
        pl.col("currency").is_in(minor).alias("minor_unit"),
    )
    if major_units:
        per_major = pl.col("currency").replace_strict(
            {k: v[1] for k, v in MINOR_UNITS.items()}, default=1.0, return_dtype=pl.Float64).fill_null(1.0)
        out = out.with_columns(
            pl.col("open", "high", "low", "close", "adj_close") / per_major,
            pl.col("currency").replace({k: v[0] for k, v in MINOR_UNITS.items()}),
            pl.lit(False).alias("minor_unit"),
        )
    return out


def _synthetic(symbol: str, start: date, end: date, interval: str) -> pl.DataFrame:
    """Seeded synthetic bars for a missing symbol, in the load_bars schema (New York
    sessions, no currency)."""
    from .synthetic import synthetic_bars

    zone = "America/New_York"  # synthetic_bars' sessions
    return synthetic_bars(symbol, start, end, interval).with_columns(
        pl.col("ts").dt.convert_time_zone(zone).dt.date().alias("session_date"),
        pl.lit(zone).alias("exchange_tz"), pl.lit(None, pl.Utf8).alias("currency"),
        pl.lit(False).alias("minor_unit"), pl.lit(False).alias("repaired"),
    ).select(list(YAHOO_BAR_SCHEMA)).cast(YAHOO_BAR_SCHEMA)


def _split_factor(ts: pl.Series, splits: pl.DataFrame) -> np.ndarray:
    """Product of the split ratios with ex-date after each timestamp (1 when none)."""
    factor = np.ones(len(ts))
    if splits.is_empty():
        return factor
    t = ts.dt.epoch("ns").to_numpy()
    for ex_ts, ratio in zip(splits.get_column("ts").dt.epoch("ns").to_numpy(),
                            splits.get_column("splits").to_numpy()):
        factor[t < ex_ts] *= ratio
    return factor


def load_bars(symbols, start, end, interval: str = "1d", adjusted: bool = True, *,
              repair: bool = True, major_units: bool = False,
              cache_dir=None, offline: bool | None = None, session=None,
              fallback: str | None = None, progress: bool = False,
              now: datetime | None = None, store=None) -> pl.DataFrame:
    """OHLCV bars for ``symbols`` over ``[start, end)`` with their session columns
    (:data:`YAHOO_BAR_SCHEMA`; schema and rules: module docstring).

    ``session_date`` is the trading date in the exchange's time zone (group by it, not by
    the UTC date of ``ts``); ``exchange_tz`` and ``currency`` come from Yahoo's chart meta.
    ``repair`` (default True): yfinance's price repair (100x unit mix-ups, bad split and
    dividend adjustments, missing prices), repaired rows marked ``repaired``; False serves
    Yahoo's values as sent (cached apart). ``major_units`` (default False): prices of
    minor-unit listings (``GBp``/``GBX`` pence, ``ILA`` agorot, ``ZAc`` cents, ``KWF``
    fils, ``USX`` cents) are divided by their unit (100; 1000 for fils) and ``currency``
    becomes the major code (``GBP``, ``ILS``, ``ZAR``, ...); otherwise they are kept as
    quoted and flagged ``minor_unit``.

    ``session``: a ``requests``/``curl_cffi`` session handed to yfinance (e.g.
    :func:`recorded_session`); ``now``: the clock used for expiry and Yahoo's lookback
    limits (tests pin it). ``store``: where chunks are cached (``workbench.store``): the
    parquet files under ``cache_dir`` (the default), or a Redis URL (also the default when
    ``$WORKBENCH_REDIS_URL`` is set) that a lab shares, with the parquet files underneath.
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    symbols = list(symbols)
    if not symbols or not all(isinstance(s, str) and s.strip() for s in symbols):
        raise ValueError(f"symbols={symbols!r} must be one or more non-empty ticker strings")
    symbols = [s.strip().upper() for s in symbols]
    if interval not in INTERVALS:
        raise ValueError(f"interval={interval!r} must be one of {list(INTERVALS)}")
    for name, value in (("adjusted", adjusted), ("repair", repair), ("major_units", major_units)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}={value!r} must be True or False")
    start_d, end_d = as_date(start, "start"), as_date(end, "end")
    if end_d <= start_d:
        raise ValueError(f"end={end!r} must be after start={start!r}")
    if fallback is None:
        fallback = os.environ.get(ENV_FALLBACK, "").strip().lower() or None
    if fallback not in (None, "synthetic"):
        raise ValueError(f"fallback={fallback!r} must be None or 'synthetic'")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} must be timezone-aware")
    offline_state = [bool(_env_flag(ENV_OFFLINE) if offline is None else offline), None]
    from ..store import open_store

    cache = open_store(store, cache_dir)
    yf_cache = cache.root / "yfinance"

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(symbols) * len(chunks(interval, start_d, end_d)), desc="yahoo", unit="chunk")
    missing: list = []
    frames = []
    seen = len(cache.quarantined), len(cache.outdated)  # a shared store keeps its lists
    try:
        for symbol in symbols:
            before = len(missing)
            raw = _load_symbol_chunks(symbol, interval, start_d, end_d, cache=cache,
                                      offline=offline_state, session=session, now=now,
                                      progress_bar=bar, missing=missing, yf_cache=yf_cache,
                                      repair=repair)
            if len(missing) > before:
                frames.append((symbol, None))
                continue
            frame = _in_range(raw, start_d, end_d)
            if not adjusted and not frame.is_empty():
                splits = raw.filter(pl.col("splits") > 0).select("ts", "splits")
                today = now.date() + timedelta(days=1)
                if interval != "1d" or end_d < today:
                    daily_missing: list = []
                    daily = _load_symbol_chunks(symbol, "1d", start_d, today, cache=cache,
                                                offline=offline_state, session=session, now=now,
                                                progress_bar=None, missing=daily_missing,
                                                yf_cache=yf_cache, repair=repair)
                    if daily_missing:
                        warnings.warn(f"{symbol}: daily history {daily_missing[0][2]}.. is not cached; "
                                      "raw prices undo only the splits known up to there",
                                      stacklevel=2)
                    splits = pl.concat([splits, daily.filter(pl.col("splits") > 0)
                                        .select("ts", "splits")]).unique("ts")
                factor = _split_factor(frame.get_column("ts"), splits)
                frame = frame.with_columns(
                    pl.col("open", "high", "low", "close") * factor,
                    (pl.col("volume") / factor).round().cast(pl.Int64),
                )
            elif adjusted and not frame.is_empty():
                ratio = pl.col("adj_close") / pl.col("close")
                frame = frame.with_columns(
                    pl.col("open", "high", "low") * ratio, pl.col("adj_close").alias("close"))
            frame = _session_columns(frame, major_units)
            frames.append((symbol, frame.with_columns(pl.lit(symbol).alias("symbol"))
                           .select(list(YAHOO_BAR_SCHEMA)).cast(YAHOO_BAR_SCHEMA)))
    finally:
        if bar is not None:
            bar.close()
    if missing:
        if fallback != "synthetic":
            raise MissingDataError(missing, cache.root, offline_state[1],
                                   cache.quarantined[seen[0]:], cache.outdated[seen[1]:])
        lacking = sorted({m[0] for m in missing})
        warnings.warn(f"no cached Yahoo data for {lacking} ({interval}); using synthetic bars",
                      stacklevel=2)
        frames = [(s, f if f is not None else _synthetic(s, start_d, end_d, interval))
                  for s, f in frames]
    parts = [f for _, f in frames]
    if not parts:
        return pl.DataFrame(schema=YAHOO_BAR_SCHEMA)
    return pl.concat(parts).cast(YAHOO_BAR_SCHEMA).sort("symbol", "ts")


CACHE_INFO_SCHEMA = {"source": pl.Utf8, "interval": pl.Utf8, "symbol": pl.Utf8, "chunk": pl.Utf8,
                     "rows": pl.Int64, "bytes": pl.Int64, "age_h": pl.Float64, "status": pl.Utf8,
                     "problem": pl.Utf8, "file": pl.Utf8}


def cache_info(cache_dir=None) -> pl.DataFrame:
    """What is cached, one row per file: ``source, interval, symbol, chunk, rows, bytes,
    age_h, status, problem, file``.

    ``status`` is ``ok``; ``outdated`` (written in an older cache format,
    :data:`CHUNK_VERSION`: the next online load refetches it; offline it is not served);
    ``invalid`` (fails :data:`CHUNK_RULES`: the next load quarantines
    and refetches it; ``problem`` says why, ``rows`` is -1 when it is not even parquet); or
    ``quarantined`` (already moved aside: ``file`` is where it is now, ``problem`` the
    reason, ``age_h`` the time since). Only reads: nothing is moved.
    """
    cache = ParquetCache(cache_dir)
    rows = []

    def key_parts(rel: str):
        parts = Path(rel).parts
        return parts if len(parts) == 4 else None

    for entry in cache.entries():
        rel = entry.path.relative_to(cache.root).as_posix()
        parts = key_parts(rel)
        if parts is None:
            continue
        source, interval, symbol, name = parts
        rules = chunk_rules(unquote(symbol)) if source in (SOURCE, SOURCE_UNREPAIRED) else None
        frame, problem = cache.validate(entry.path, rules)
        status = "outdated" if isinstance(problem, Outdated) else "invalid" if problem else "ok"
        rows.append({"source": source, "interval": interval, "symbol": unquote(symbol),
                     "chunk": Path(name).stem, "rows": -1 if frame is None else frame.height,
                     "bytes": entry.size, "age_h": round(entry.age_s / 3600, 2),
                     "status": status, "problem": None if problem is None else str(problem),
                     "file": rel})
    for entry in cache.quarantined_entries():
        parts = key_parts(entry.original)
        source, interval, symbol, name = parts if parts is not None else ("?", "?", "?", entry.original)
        rows.append({"source": source, "interval": interval, "symbol": unquote(symbol),
                     "chunk": Path(name).stem, "rows": None, "bytes": entry.size,
                     "age_h": round(entry.age_s / 3600, 2), "status": "quarantined",
                     "problem": entry.reason, "file": entry.path.relative_to(cache.root).as_posix()})
    return pl.DataFrame(rows, schema=CACHE_INFO_SCHEMA)


# ----------------------------------------------------------- recorded responses
def recorded_session(*directories: str | os.PathLike):
    """A ``requests.Session`` answering Yahoo's v8 chart API from recorded JSON files in
    one or more ``directories``.

    Each file is ``{request: {url, ...}, response: {status, bodyJson}}``. A chart request
    is answered like Yahoo would: the union of every recorded row of that symbol and
    interval inside ``[period1, period2)`` (with the recorded meta and split/dividend
    events), an empty result when none fall inside (or nothing was recorded at that
    interval: the meta then comes from another interval's recording), a 404 for an
    unknown symbol. Cookie and crumb requests get harmless answers, anything else a 404.
    ``session.log`` lists the URLs asked.
    """
    import requests
    from requests.adapters import BaseAdapter

    if not directories:
        raise ValueError("recorded_session needs at least one directory of recorded responses")
    paths = []
    for directory in map(Path, directories):
        if not directory.is_dir():
            raise FileNotFoundError(f"recorded Yahoo responses not found: {directory}")
        paths += sorted(directory.glob("*.json"))
    recordings: dict[tuple[str, str], list[dict]] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        url = urlparse(doc["request"]["url"])
        body = doc["response"].get("bodyJson") or {}
        results = (body.get("chart") or {}).get("result") or []
        if "/v8/finance/chart/" not in url.path or not results:
            continue
        symbol = unquote(url.path.rsplit("/", 1)[1]).upper()
        interval = parse_qs(url.query).get("interval", ["1d"])[0]
        recordings.setdefault((symbol, interval), []).append(results[0])

    def chart_body(symbol, params):
        interval = params.get("interval", ["1d"])[0]
        any_interval = [r for (s, _), rs in recordings.items() if s == symbol for r in rs]
        if not any_interval:
            return 404, {"chart": {"result": None, "error": {
                "code": "Not Found", "description": "No data found, symbol may be delisted"}}}
        mine = recordings.get((symbol, interval), [])  # rows only from this interval
        meta = dict((mine or any_interval)[-1]["meta"])
        if "range" in params:  # yfinance's time-zone probe: the meta is what it reads
            return 200, {"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}]}}],
                                   "error": None}}
        lo = int(params.get("period1", ["0"])[0])
        hi = int(params.get("period2", [str(2**62)])[0])
        rows, dividends, splits = {}, {}, {}
        for result in mine:
            quote = result["indicators"]["quote"][0]
            adj = (result["indicators"].get("adjclose") or [{}])[0].get("adjclose")
            for i, t in enumerate(result.get("timestamp") or []):
                if lo <= t < hi:
                    row = {k: quote[k][i] for k in ("open", "high", "low", "close", "volume") if k in quote}
                    row["adjclose"] = adj[i] if adj else row.get("close")
                    rows[t] = row
            events = result.get("events") or {}
            for key, target in (("dividends", dividends), ("splits", splits)):
                for k, v in (events.get(key) or {}).items():
                    if lo <= int(k) < hi:
                        target[k] = v
        meta["dataGranularity"] = interval
        if not rows:
            return 200, {"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}]}}],
                                   "error": None}}
        stamps = sorted(rows)
        quote = {k: [rows[t].get(k) for t in stamps] for k in ("open", "high", "low", "close", "volume")}
        result = {"meta": meta, "timestamp": stamps,
                  "indicators": {"quote": [quote],
                                 "adjclose": [{"adjclose": [rows[t]["adjclose"] for t in stamps]}]}}
        if dividends or splits:
            result["events"] = {k: v for k, v in (("dividends", dividends), ("splits", splits)) if v}
        return 200, {"chart": {"result": [result], "error": None}}

    class ReplayAdapter(BaseAdapter):
        def send(self, request, **kwargs):
            url = urlparse(request.url)
            session.log.append(request.url)
            params = parse_qs(url.query)
            if "/v8/finance/chart/" in url.path:
                status, body = chart_body(unquote(url.path.rsplit("/", 1)[1]).upper(), params)
                content = json.dumps(body).encode()
            elif url.path.endswith("/getcrumb"):
                status, content = 200, b"recorded-crumb"
            else:
                status, content = 404, b""
            response = requests.Response()
            response.status_code = status
            response._content = content
            response.headers["content-type"] = "application/json;charset=utf-8"
            response.url = request.url
            response.request = request
            response.encoding = "utf-8"
            return response

        def close(self):
            pass

    session = requests.Session()
    session.log = []
    session.mount("https://", ReplayAdapter())
    session.mount("http://", ReplayAdapter())
    return session
