"""Markouts: what the market's mid did after each own fill (adverse selection, measured).

A fill's markout at horizon ``h`` marks it to the mid ``h`` seconds later::

    markout_h = sign * qty * (mid(ts + h) - price)         # currency, + = the fill earned
    edge      = sign * qty * (mid_at_fill - price)         # the half spread earned at the fill
    adverse_h = sign * qty * (mid_at_fill - mid(ts + h))   # = edge - markout_h, + = moved against

``sign`` is +1 for a buy and -1 for a sell; ``mid_at_fill`` is the fills' own ``mid``
column (the market's mid just before the fill, own orders excluded); ``mid(t)`` is the
last mid known at or before ``t`` (no look-ahead, the convention of notebook 06's
exercises). A market maker whose quotes are filled by informed flow has a positive edge
and a markout that falls as ``h`` grows: the adverse move takes the edge back.

Where the later mids come from: by default the mids the backtester recorded itself
(``BacktestResult.equity``: one row every ``record_every_s`` of exchange time and one at
every own fill), so ``mid(ts + h)`` is exact to within ``record_every_s``; pass ``mids=``
(a frame with ``ts`` in ns and ``mid``) for another source. A fill whose ``ts + h`` lies
beyond the last mid has no markout at that horizon (null), rather than one marked to the
end of the run.

:func:`markout` gives one row per fill; :func:`markout_summary` one row per horizon (and
per strategy when given several results): per share and in ticks, what the plots and the
README quote.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import polars as pl

__all__ = ["DEFAULT_HORIZONS_S", "horizon_label", "markout", "markout_summary", "recorded_mids"]

DEFAULT_HORIZONS_S = (1.0, 10.0, 60.0)
_NS = 1_000_000_000


def horizon_label(h: float) -> str:
    """The column suffix of horizon ``h`` seconds: ``1s``, ``10s``, ``0.5s``."""
    return f"{h:g}s"


def _horizons(horizons_s) -> tuple[float, ...]:
    if isinstance(horizons_s, (int, float)):
        horizons_s = (horizons_s,)
    out = []
    for h in horizons_s:
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h < 0:
            raise ValueError(f"horizons_s: {h!r} must be a finite number of seconds >= 0")
        out.append(float(h))
    if not out:
        raise ValueError("horizons_s is empty: give at least one horizon in seconds")
    if len(set(out)) != len(out):
        raise ValueError(f"horizons_s={tuple(out)} repeats a horizon")
    return tuple(out)


def recorded_mids(result) -> pl.DataFrame:
    """The market mids a backtest recorded (``ts``, ``mid``), while the book was quoted."""
    return result.equity.select("ts", "mid").filter(pl.col("mid") > 0)


def _check_mids(mids) -> pl.DataFrame:
    if not isinstance(mids, pl.DataFrame) or not {"ts", "mid"} <= set(mids.columns):
        raise ValueError("mids must be a polars frame with columns ts (ns) and mid")
    return (mids.select(pl.col("ts").cast(pl.Int64), pl.col("mid").cast(pl.Float64))
            .drop_nulls().sort("ts"))


def markout(result, horizons_s: Iterable[float] = DEFAULT_HORIZONS_S, *,
            mids: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per own fill of ``result`` (a ``BacktestResult``): ``ts``, ``side``,
    ``liquidity``, ``price``, ``qty``, ``mid`` (at the fill), ``edge``, then per horizon
    ``h``: ``mid_{h}s``, ``markout_{h}s`` and ``adverse_{h}s`` (currency, definitions in
    the module docstring; null when ``ts + h`` is past the last mid). ``qty`` counts the
    data's quantity units; the currency columns divide by the result's ``qty_scale``
    (units per instrument, e.g. a Binance capture's)."""
    horizons = _horizons(horizons_s)
    fills = result.fills
    mids = _check_mids(recorded_mids(result) if mids is None else mids)
    units = 1.0 / float((getattr(result, "config", None) or {}).get("qty_scale") or 1)
    sign = pl.when(pl.col("side") == "buy").then(units).otherwise(-units)
    out = (fills.select("ts", "side", "liquidity", "price", "qty", "mid")
           .with_row_index("fill")
           .with_columns((sign * pl.col("qty") * (pl.col("mid") - pl.col("price"))).alias("edge")))
    last_ts = mids["ts"].max() if mids.height else None
    for h in horizons:
        tag = horizon_label(h)
        later = out.select("fill", (pl.col("ts") + int(round(h * _NS))).alias("t_later")).sort("t_later")
        later = later.join_asof(mids.rename({"ts": "t_later", "mid": f"mid_{tag}"}),
                                on="t_later", strategy="backward")
        if last_ts is None:
            later = later.with_columns(pl.lit(None, dtype=pl.Float64).alias(f"mid_{tag}"))
        else:
            later = later.with_columns(pl.when(pl.col("t_later") <= last_ts)
                                       .then(pl.col(f"mid_{tag}")).alias(f"mid_{tag}"))
        out = out.join(later.select("fill", f"mid_{tag}"), on="fill", how="left")
        out = out.with_columns(
            (sign * pl.col("qty") * (pl.col(f"mid_{tag}") - pl.col("price"))).alias(f"markout_{tag}"),
            (sign * pl.col("qty") * (pl.col("mid") - pl.col(f"mid_{tag}"))).alias(f"adverse_{tag}"))
    return out.sort("fill").drop("fill")


def _tick_of(result) -> float:
    tick = (getattr(result, "config", None) or {}).get("tick")
    if not tick:
        raise ValueError("this result does not carry its tick: pass tick= (currency per tick)")
    return float(tick)


_SUMMARY_SCHEMA = {"horizon_s": pl.Float64, "n_fills": pl.Int64, "qty": pl.Int64,
                   "edge_ticks": pl.Float64, "adverse_ticks": pl.Float64,
                   "markout_ticks": pl.Float64, "markout": pl.Float64}


def _summary_row(per_fill: pl.DataFrame, h: float, tick: float, units: float) -> dict:
    """One horizon of :func:`markout_summary` over the fills of ``per_fill`` (``units``:
    instruments per quantity unit, 1 / qty_scale)."""
    tag = horizon_label(h)
    have = per_fill.filter(pl.col(f"mid_{tag}").is_not_null())
    qty = int(have["qty"].sum()) if have.height else 0

    def per_share(column: str) -> float:
        return float(have[column].sum()) / (qty * units) / tick if qty else math.nan

    return {"horizon_s": h, "n_fills": have.height, "qty": qty, "edge_ticks": per_share("edge"),
            "adverse_ticks": per_share(f"adverse_{tag}"),
            "markout_ticks": per_share(f"markout_{tag}"),
            "markout": float(have[f"markout_{tag}"].sum()) if have.height else 0.0}


def markout_summary(results, horizons_s: Iterable[float] = DEFAULT_HORIZONS_S, *,
                    mids: pl.DataFrame | None = None, tick: float | None = None,
                    by: str | None = None) -> pl.DataFrame:
    """Markouts per horizon, per share and in ticks: one row per horizon (per strategy
    when ``results`` is a dict ``{name: BacktestResult}``, with a ``strategy`` column).

    Columns: ``horizon_s``; ``n_fills`` and ``qty`` (the fills with a mid ``h`` seconds
    later); ``edge_ticks`` = sum(edge) / sum(qty) / tick (the half spread earned at the
    fills); ``adverse_ticks`` = sum(adverse_h) / sum(qty) / tick (how far the mid moved
    against them within ``h``); ``markout_ticks`` = sum(markout_h) / sum(qty) / tick
    (= edge - adverse: what a share earned, marked ``h`` later); ``markout`` =
    sum(markout_h) in currency (fees excluded). Averages are weighted by quantity; NaN
    when no fill has a mid ``h`` later. ``tick``: currency per tick (default: the
    result's own). ``by="liquidity"`` (or ``"side"``): one row per value of that
    column of the fills as well (maker and taker fills apart)."""
    horizons = _horizons(horizons_s)
    if by not in (None, "liquidity", "side"):
        raise ValueError(f"by={by!r} must be None, 'liquidity' or 'side'")
    if isinstance(results, Mapping):
        named = list(results.items())
        if not named:
            raise ValueError("results is empty: give {name: BacktestResult}")
    else:
        named = [(None, results)]
    frames = []
    for name, result in named:
        t = float(tick) if tick is not None else _tick_of(result)
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"tick={tick!r} must be a positive price step")
        per_fill = markout(result, horizons, mids=mids)
        groups = [(None, per_fill)] if by is None else \
            [(v, per_fill.filter(pl.col(by) == v)) for v in sorted(per_fill[by].unique().to_list())]
        units = 1.0 / float((getattr(result, "config", None) or {}).get("qty_scale") or 1)
        rows = [_summary_row(part, h, t, units) | ({} if by is None else {by: value})
                for value, part in groups for h in horizons]
        frame = pl.DataFrame(rows, schema={**({} if by is None else {by: pl.Utf8}), **_SUMMARY_SCHEMA})
        if name is not None:
            frame = frame.select(pl.lit(str(name)).alias("strategy"), pl.all())
        frames.append(frame)
    return pl.concat(frames)
