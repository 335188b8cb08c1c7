"""``BacktestResult``: what one run leaves behind, as polars frames and stated statistics.

Built from the kernel state after the run (``from_state``): the equity curve, own fills,
the order log and the tick-to-trade histogram become frames with prices in currency and
codes as names; ``_stats`` computes P&L, Sharpe, drawdown, fill ratios, slippage,
turnover and inventory. Views: ``summary()``, ``plot()`` (the bokeh dashboard),
``to_html()``.

Every statistic has one stated definition, in :data:`STAT_DEFINITIONS` (the README and
notebook 06 print that dict). The ones that need a choice:

* **Sharpe**: equity (marked to the mid) sampled at the end of consecutive buckets of
  ``sharpe_bucket_s`` seconds of exchange time (default 60 s, from the first recorded
  row; the last equity known at each bucket's end); ``sharpe = mean(dE) / sd(dE) *
  sqrt(buckets per year)`` over the per-bucket changes ``dE`` (sample standard
  deviation). A ratio of two amounts of currency is scale-free: dividing every ``dE`` by
  a capital base would not change it, so no capital base is needed (or assumed). Buckets
  per year = the market's trading seconds per year / ``sharpe_bucket_s``, from its
  calendar (:data:`CALENDARS`: ``equities`` 252 days x 6.5 h, ``crypto`` 365 x 24 h).
  The calendar comes from the data's source (:func:`market_calendar`: a Binance capture
  trades around the clock, the other sources are exchange sessions) unless given.
  ``sharpe`` is NaN, not a number pretending precision, with fewer than
  :data:`MIN_SHARPE_BUCKETS` buckets or a flat equity curve; ``sharpe_buckets`` says how
  many buckets it rests on. :meth:`BacktestResult.performance` recomputes it with
  another bucket or calendar.
* **Drawdown**: ``max_drawdown`` = the largest fall of equity from its running peak, in
  currency (every recorded row); ``max_drawdown_duration_s`` = the longest stretch of
  exchange time the equity spent below a previous peak (peak to the first row back at or
  above it, or to the end of the run).
* **Fill ratios**: ``fill_rate`` = filled quantity / sent quantity (sent: the orders
  that reached the book, i.e. all but those rejected by the risk checks or the exchange);
  ``maker_share`` / ``taker_share`` = the share of the filled quantity that rested
  (maker) or took liquidity (taker); NaN without fills.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from kernels import histogram as kh
from kernels import records as R
from kernels import risk as krisk
from kernels.backtest import state as backtest_state

from ..latency import PERCENTILES

__all__ = ["BacktestResult", "CALENDARS", "MIN_SHARPE_BUCKETS", "STAT_DEFINITIONS",
           "SHARPE_BUCKET_S", "market_calendar", "performance_stats"]


SHARPE_BUCKET_S = 60.0     # default Sharpe bucket, seconds of exchange time
MIN_SHARPE_BUCKETS = 30    # fewer buckets: sharpe is NaN

# trading seconds per year of each market calendar (what annualises a per-bucket Sharpe)
CALENDARS = {
    "equities": 252 * 6.5 * 3600.0,   # 252 sessions of 6.5 h (09:30-16:00)
    "crypto": 365 * 24 * 3600.0,      # around the clock, every day
}
_CALENDAR_TEXT = {"equities": "252 d x 6.5 h", "crypto": "365 d x 24 h"}

STAT_DEFINITIONS: dict[str, str] = {
    "total_pnl": "equity at the end of the run: cash + position x the last mid (fees included), "
                 "in currency",
    "realised_pnl": "P&L of the closed part of the position (average-cost method), fees included",
    "fees": "fees paid minus rebates earned (negative: net rebates), in currency",
    "sharpe": "mean / sample sd of the equity changes over consecutive sharpe_bucket_s buckets of "
              "exchange time, x sqrt(buckets per year of sharpe_calendar); scale-free (no capital "
              "base needed); NaN below 30 buckets or on a flat equity curve",
    "sharpe_bucket_s": "the Sharpe bucket, seconds of exchange time",
    "sharpe_buckets": "how many buckets the Sharpe rests on",
    "sharpe_calendar": "the trading time per year that annualises the Sharpe (equities: 252 d x "
                       "6.5 h; crypto: 365 d x 24 h)",
    "max_drawdown": "largest fall of equity from its running peak, in currency",
    "max_drawdown_duration_s": "longest exchange time spent below a previous equity peak (to the "
                               "recovery, or to the end of the run), seconds",
    "n_orders": "orders the strategy sent (risk-rejected included)",
    "n_cancels": "cancels the strategy sent",
    "n_fills": "own fills (one per execution against an own order)",
    "maker_fills": "fills of own resting orders",
    "taker_fills": "fills of own orders that took liquidity on arrival",
    "maker_share": "maker filled quantity / filled quantity (NaN without fills)",
    "taker_share": "taker filled quantity / filled quantity (NaN without fills)",
    "trade_through_fills": "maker fills given by a trade through the own price (L2 queue models)",
    "filled_qty": "quantity filled, both sides",
    "sent_qty": "quantity of the orders that reached the book (all but risk and exchange rejects)",
    "fill_rate": "filled quantity / sent quantity",
    "mean_slippage_bps": "mean over fills of the price against the mid when the order arrived, in "
                         "bps (+ = paid more than the mid)",
    "mean_time_in_queue_ms": "mean time a maker fill waited in the queue, ms",
    "turnover": "traded notional, both sides, in currency",
    "final_position": "position at the end of the run",
    "mean_abs_position": "mean |position| over the recorded rows",
    "max_abs_position": "largest |position| recorded",
    "risk_rejects": "orders refused by the pre-trade risk checks, by reason",
    "exchange_rejects": "orders refused by the exchange, by reason",
    "market_rejects": "market events the book refused (unknown order ids...)",
    "dropped_fill_records": "fills not written to the fills frame (max_fills reached)",
    "wakes": "strategy calls",
    "events": "market events replayed",
    "seconds": "wall time of the replay (machine-dependent)",
    "events_per_sec": "events / seconds (machine-dependent)",
    "tick_to_trade_p50_ns": "median in-kernel strategy call + order entry time, ns (measured)",
    "tick_to_trade_p99_ns": "99th percentile of the same, ns (measured)",
    "timer_wakes": "strategy calls from the backtest's timer",
}


def market_calendar(md) -> str:
    """The calendar of a market's data: ``"crypto"`` for a Binance capture (trades around
    the clock), ``"equities"`` for the others (LOBSTER, ITCH, Databento MBO, the simulator:
    exchange sessions). A ``calendar`` attribute on the data wins."""
    given = getattr(md, "calendar", None)
    if given:
        return str(given)
    return "crypto" if str(getattr(md, "name", "")).lower().startswith("binance") else "equities"


def _seconds_per_year(calendar) -> tuple[float, str]:
    """(trading seconds per year, its label) of a calendar name or a number of seconds."""
    if isinstance(calendar, str):
        if calendar not in CALENDARS:
            raise ValueError(f"calendar={calendar!r} must be one of {sorted(CALENDARS)} or a "
                             "number of trading seconds per year")
        return CALENDARS[calendar], f"{calendar} ({_CALENDAR_TEXT[calendar]})"
    if isinstance(calendar, bool) or not isinstance(calendar, (int, float, np.integer, np.floating)) \
            or not math.isfinite(calendar) or calendar <= 0:
        raise ValueError(f"calendar={calendar!r} must be one of {sorted(CALENDARS)} or a "
                         "positive number of trading seconds per year")
    return float(calendar), f"{float(calendar):,.0f} s/year"


def performance_stats(equity: pl.DataFrame, fills: pl.DataFrame, *,
                      sharpe_bucket_s: float = SHARPE_BUCKET_S,
                      calendar="equities") -> dict:
    """Sharpe, drawdown and maker/taker shares from the frames alone (definitions in
    :data:`STAT_DEFINITIONS` and the module docstring)."""
    if isinstance(sharpe_bucket_s, bool) or not isinstance(sharpe_bucket_s, (int, float)) \
            or not math.isfinite(sharpe_bucket_s) or sharpe_bucket_s <= 0:
        raise ValueError(f"sharpe_bucket_s={sharpe_bucket_s!r} must be a positive number of seconds")
    per_year, label = _seconds_per_year(calendar)
    eq = equity["equity"].to_numpy()
    ts = equity["ts"].to_numpy()
    bucket_ns = int(round(sharpe_bucket_s * 1e9))
    sharpe, n_buckets = math.nan, 0
    if len(ts):
        n_buckets = int((ts[-1] - ts[0]) // bucket_ns)
        if n_buckets >= MIN_SHARPE_BUCKETS:
            edges = ts[0] + bucket_ns * np.arange(n_buckets + 1, dtype=np.int64)
            at = eq[np.searchsorted(ts, edges, side="right") - 1]   # last equity known at each edge
            changes = np.diff(at)
            sd = float(changes.std(ddof=1))
            if sd > 0:
                sharpe = float(changes.mean()) / sd * math.sqrt(per_year / sharpe_bucket_s)
    max_dd, dd_ns = 0.0, 0
    if len(eq):
        peak = np.maximum.accumulate(eq)
        max_dd = float((peak - eq).max())
        below = eq < peak
        # a stretch under water runs from the peak's row to the first row back at the peak
        start = None
        for k in range(len(eq)):
            if below[k] and start is None:
                start = ts[k - 1]
            elif not below[k] and start is not None:
                dd_ns = max(dd_ns, int(ts[k] - start))
                start = None
        if start is not None:
            dd_ns = max(dd_ns, int(ts[-1] - start))
    liq = fills["liquidity"]
    qty = fills["qty"]
    filled = int(qty.sum()) if fills.height else 0
    maker = int(qty.filter(liq == "maker").sum()) if fills.height else 0
    return {
        "sharpe": sharpe,
        "sharpe_bucket_s": float(sharpe_bucket_s),
        "sharpe_buckets": n_buckets,
        "sharpe_calendar": label,
        "max_drawdown": max_dd,
        "max_drawdown_duration_s": dd_ns / 1e9,
        "maker_share": maker / filled if filled else math.nan,
        "taker_share": (filled - maker) / filled if filled else math.nan,
    }


def _risk_counts(cnt) -> dict[str, int]:
    return {krisk.RISK_REASON_NAMES[i]: int(cnt[backtest_state.BC_RISK_REJECTS + i])
            for i in range(1, krisk.N_RISK_REASONS) if cnt[backtest_state.BC_RISK_REJECTS + i]}


def _exchange_counts(cnt) -> dict[str, int]:
    return {R.REJECT_REASON_NAMES[i]: int(cnt[backtest_state.BC_EXCH_REJECTS + i])
            for i in range(1, R.N_REJECT_REASONS) if cnt[backtest_state.BC_EXCH_REJECTS + i]}


def _frame(records: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({name: records[name] for name in records.dtype.names})


@dataclass
class BacktestResult:
    """Frames and stats of one run. Prices in the frames are floats (currency)."""

    equity: pl.DataFrame
    fills: pl.DataFrame
    orders: pl.DataFrame
    latency: pl.DataFrame
    stats: dict
    config: dict = field(default_factory=dict)
    tick_to_trade: np.ndarray = field(default=None, repr=False)   # histogram array

    @classmethod
    def from_state(cls, s: backtest_state.BacktestState, md, bt, seconds: float):
        scale = float(md.price_scale)
        cnt = s.cnt
        steps = s.steps[: int(min(cnt[backtest_state.BC_STEPS], len(s.steps)))]
        fills = s.own_fills[: int(min(cnt[backtest_state.BC_FILLS], len(s.own_fills)))]
        log = s.log[: int(cnt[backtest_state.BC_ORDERS])]
        equity = _frame(steps).with_columns(
            (pl.col(c) / scale for c in ("bid", "ask", "quote_bid", "quote_ask", "mid")))
        equity = equity.with_columns(
            pl.when(pl.col(c) > 0).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("bid", "ask", "quote_bid", "quote_ask"))
        fills_f = _frame(fills).with_columns(
            (pl.col("price") / scale), (pl.col("arrival_mid") / scale), (pl.col("mid") / scale),
            pl.col("side").replace_strict({0: "buy", 1: "sell"}, return_dtype=pl.Utf8),
            pl.col("liquidity").replace_strict({0: "maker", 1: "taker"}, return_dtype=pl.Utf8))
        status_names = {R.LS_PENDING: "pending", R.LS_OPEN: "open", R.LS_FILLED: "filled",
                        R.LS_CANCELLED: "cancelled", R.LS_REJECTED: "rejected"}
        orders = _frame(log).drop("slot").with_columns(
            (pl.col("price") / scale), (pl.col("arrival_mid") / scale),
            pl.col("side").replace_strict({0: "buy", 1: "sell"}, return_dtype=pl.Utf8),
            pl.col("status").replace_strict(status_names, return_dtype=pl.Utf8),
            pl.col("risk_reason").replace_strict(dict(enumerate(krisk.RISK_REASON_NAMES)),
                                                 return_dtype=pl.Utf8),
            pl.col("exchange_reason").replace_strict(dict(enumerate(R.REJECT_REASON_NAMES)),
                                                     return_dtype=pl.Utf8))
        hist = s.hist.copy()
        qs = np.array(PERCENTILES, dtype=np.float64)
        pct = np.zeros(len(qs), dtype=np.int64)
        kh.percentiles(hist, qs, pct)
        count = int(hist[kh.HP_COUNT])
        latency = pl.DataFrame({"metric": ["tick_to_trade_ns"], "count": [count],
                                **{f"p{q:g}": [int(v)] for q, v in zip(PERCENTILES, pct)},
                                "max": [int(hist[kh.HP_MAX]) if count else 0]})
        # a Backtest may carry its own choices (attributes); else the data's calendar
        calendar = getattr(bt, "calendar", None) or market_calendar(md)
        bucket = getattr(bt, "sharpe_bucket_s", None) or SHARPE_BUCKET_S
        stats = _stats(equity, fills_f, orders, s, seconds, bucket, calendar)
        stats.update({"tick_to_trade_p50_ns": int(latency["p50"][0]),
                      "tick_to_trade_p99_ns": int(latency["p99"][0])})
        from ..modes import report as safety_report   # the mode travels with the result

        return cls(equity, fills_f, orders, latency, stats,
                   {**bt.describe(), "safety": safety_report(), "tick": md.tick / scale,
                    "qty_scale": int(md.qty_scale), "calendar": calendar,
                    "sharpe_bucket_s": bucket}, hist)

    # ------------------------------------------------------------------ views
    def summary(self) -> str:
        s = self.stats
        return (f"P&L {s['total_pnl']:+,.2f} (fees {s['fees']:,.2f})  {_sharpe_note(s)}  "
                f"max DD {s['max_drawdown']:,.2f} ({s['max_drawdown_duration_s']:,.0f} s)  "
                f"fills {s['n_fills']} (fill rate {100 * s['fill_rate']:.1f}%, "
                f"maker {_percent(s['maker_share'])})  slippage {s['mean_slippage_bps']:+.2f} bps  "
                f"turnover {s['turnover']:,.0f}  |pos| max {s['max_abs_position']}  "
                f"{s['events']:,} events at {s['events_per_sec'] / 1e6:.2f} M/s  "
                f"tick-to-trade p50 {s['tick_to_trade_p50_ns']} ns p99 {s['tick_to_trade_p99_ns']} ns"
                + _mode_note(self.config.get("safety")))

    def performance(self, sharpe_bucket_s: float = SHARPE_BUCKET_S, calendar=None) -> dict:
        """Sharpe, drawdown and maker/taker shares recomputed from the frames with another
        Sharpe bucket (seconds) or ``calendar`` (``"equities"``, ``"crypto"`` or trading
        seconds per year; default: the one the run used). Definitions: ``STAT_DEFINITIONS``."""
        if calendar is None:
            calendar = self.config.get("calendar") or "equities"
        return performance_stats(self.equity, self.fills, sharpe_bucket_s=sharpe_bucket_s,
                                 calendar=calendar)

    def stats_table(self) -> pl.DataFrame:
        """Every statistic with its value (as text) and its definition
        (:data:`STAT_DEFINITIONS`), one row each, in the order of ``stats``."""
        def text(v) -> str:
            if isinstance(v, float):
                return "NaN" if math.isnan(v) else f"{v:,.4f}" if abs(v) < 1e6 else f"{v:,.0f}"
            return str(v)

        return pl.DataFrame({"stat": list(self.stats),
                             "value": [text(v) for v in self.stats.values()],
                             "definition": [STAT_DEFINITIONS.get(k, "") for k in self.stats]})

    def plot(self):
        """Bokeh dashboard: P&L, inventory, quotes vs mid with fills, tick-to-trade."""
        from .plots import dashboard
        return dashboard(self)

    def to_html(self, path: str | Path, title: str = "Backtest report") -> Path:
        """Write the dashboard and the stats to a standalone HTML file."""
        from .plots import write_html
        return write_html(self, Path(path), title)


def _sharpe_note(s: dict) -> str:
    """``Sharpe 1.23 (60 s x 390, equities (252 d x 6.5 h))`` or why there is none."""
    where = f"{s['sharpe_bucket_s']:g} s x {s['sharpe_buckets']}, {s['sharpe_calendar']}"
    if math.isnan(s["sharpe"]):
        return f"Sharpe n/a ({where}: needs {MIN_SHARPE_BUCKETS} buckets and a moving equity)"
    return f"Sharpe {s['sharpe']:.2f} ({where})"


def _percent(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def _mode_note(safety: dict | None) -> str:
    """``  [ProductionSafe, bounds checks off]``: which mode produced the numbers."""
    if not safety:
        return ""
    checks = "on" if safety.get("bounds_checks") else "off"
    return f"  [{safety['mode']}, bounds checks {checks}]"


def _stats(equity: pl.DataFrame, fills: pl.DataFrame, orders: pl.DataFrame, s,
           seconds: float, bucket: float, calendar) -> dict:
    cnt = s.cnt
    eq = equity["equity"].to_numpy()
    total = float(eq[-1]) if len(eq) else 0.0
    perf = performance_stats(equity, fills, sharpe_bucket_s=bucket, calendar=calendar)
    pos = equity["position"].to_numpy()
    sent = orders.filter(pl.col("status") != "rejected")
    sent_qty = int(sent["qty"].sum()) if sent.height else 0
    filled_qty = int(cnt[backtest_state.BC_FILLED_QTY])
    n_fills = int(cnt[backtest_state.BC_FILLS])
    slip = fills["slippage_bps"]
    wq = fills.filter(pl.col("liquidity") == "maker")["time_in_queue"]
    return {
        "total_pnl": total,
        "realised_pnl": float(s.acc[backtest_state.ACC_REALISED]),
        "fees": float(s.acc[backtest_state.ACC_FEES]),
        "sharpe": perf["sharpe"],
        "sharpe_bucket_s": perf["sharpe_bucket_s"],
        "sharpe_buckets": perf["sharpe_buckets"],
        "sharpe_calendar": perf["sharpe_calendar"],
        "max_drawdown": perf["max_drawdown"],
        "max_drawdown_duration_s": perf["max_drawdown_duration_s"],
        "n_orders": int(cnt[backtest_state.BC_ORDERS]),
        "n_cancels": int(cnt[backtest_state.BC_CANCELS]),
        "n_fills": n_fills,
        "maker_fills": int(cnt[backtest_state.BC_MAKER_FILLS]),
        "taker_fills": int(cnt[backtest_state.BC_TAKER_FILLS]),
        "maker_share": perf["maker_share"],
        "taker_share": perf["taker_share"],
        "trade_through_fills": int(cnt[backtest_state.BC_TRADE_THROUGH]),
        "filled_qty": filled_qty,
        "sent_qty": sent_qty,
        "fill_rate": filled_qty / sent_qty if sent_qty else 0.0,
        "mean_slippage_bps": float(slip.mean()) if len(slip) else 0.0,
        "mean_time_in_queue_ms": float(wq.mean()) / 1e6 if len(wq) else 0.0,
        "turnover": float(s.acc[backtest_state.ACC_TURNOVER]),
        "final_position": int(cnt[backtest_state.BC_POSITION]),
        "mean_abs_position": float(np.abs(pos).mean()) if len(pos) else 0.0,
        "max_abs_position": int(np.abs(pos).max()) if len(pos) else 0,
        "risk_rejects": _risk_counts(cnt),
        "exchange_rejects": _exchange_counts(cnt),
        "market_rejects": int(cnt[backtest_state.BC_MARKET_REJECTS]),
        "dropped_fill_records": int(cnt[backtest_state.BC_DROPPED_FILLS]),
        "wakes": int(cnt[backtest_state.BC_WAKES]),
        "events": int(cnt[backtest_state.BC_EVENTS]),
        "seconds": seconds,
        "events_per_sec": cnt[backtest_state.BC_EVENTS] / seconds if seconds > 0 else float("inf"),
    }
