"""``BacktestResult``: what one run leaves behind, as polars frames and stated statistics.

Built from the kernel state after the run (``from_state``): the equity curve, own fills,
the order log and the tick-to-trade histogram become frames with prices in currency and
codes as names; :func:`stats` computes P&L, Sharpe, drawdown, fill rate, slippage,
turnover and inventory. Views: ``summary()``, ``plot()`` (the bokeh dashboard),
``to_html()``.
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

__all__ = ["BacktestResult"]


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
        stats = _stats(equity, fills_f, orders, s, md, bt, seconds)
        stats.update({"tick_to_trade_p50_ns": int(latency["p50"][0]),
                      "tick_to_trade_p99_ns": int(latency["p99"][0])})
        from ..modes import report as safety_report   # the mode travels with the result

        return cls(equity, fills_f, orders, latency, stats,
                   {**bt.describe(), "safety": safety_report()}, hist)

    # ------------------------------------------------------------------ views
    def summary(self) -> str:
        s = self.stats
        return (f"P&L {s['total_pnl']:+,.2f} (fees {s['fees']:,.2f})  Sharpe {s['sharpe']:.2f}  "
                f"max DD {s['max_drawdown']:,.2f}  fills {s['n_fills']} "
                f"(fill rate {100 * s['fill_rate']:.1f}%)  slippage {s['mean_slippage_bps']:+.2f} bps  "
                f"turnover {s['turnover']:,.0f}  |pos| max {s['max_abs_position']}  "
                f"{s['events']:,} events at {s['events_per_sec'] / 1e6:.2f} M/s  "
                f"tick-to-trade p50 {s['tick_to_trade_p50_ns']} ns p99 {s['tick_to_trade_p99_ns']} ns"
                + _mode_note(self.config.get("safety")))

    def plot(self):
        """Bokeh dashboard: P&L, inventory, quotes vs mid with fills, tick-to-trade."""
        from .plots import dashboard
        return dashboard(self)

    def to_html(self, path: str | Path, title: str = "Backtest report") -> Path:
        """Write the dashboard and the stats to a standalone HTML file."""
        from .plots import write_html
        return write_html(self, Path(path), title)


def _mode_note(safety: dict | None) -> str:
    """``  [ProductionSafe, bounds checks off]``: which mode produced the numbers."""
    if not safety:
        return ""
    checks = "on" if safety.get("bounds_checks") else "off"
    return f"  [{safety['mode']}, bounds checks {checks}]"


def _stats(equity: pl.DataFrame, fills: pl.DataFrame, orders: pl.DataFrame, s, md, bt,
           seconds: float) -> dict:
    cnt = s.cnt
    eq = equity["equity"].to_numpy()
    ts = equity["ts"].to_numpy()
    total = float(eq[-1]) if len(eq) else 0.0
    # Sharpe on a regular grid of record_every_s (the last equity known at each point)
    step = int(s.cfg[backtest_state.G_RECORD_EVERY_NS])
    sharpe = 0.0
    if len(ts) > 2:
        grid = np.arange(ts[0], ts[-1] + 1, step)
        idx = np.searchsorted(ts, grid, side="right") - 1
        diffs = np.diff(eq[idx])
        sd = diffs.std() if len(diffs) > 1 else 0.0
        if sd > 0:
            per_year = 252 * 23_400e9 / step
            sharpe = float(diffs.mean() / sd * math.sqrt(per_year))
    peak = np.maximum.accumulate(eq) if len(eq) else eq
    max_dd = float((peak - eq).max()) if len(eq) else 0.0
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
        "sharpe": sharpe,
        "max_drawdown": max_dd,
        "n_orders": int(cnt[backtest_state.BC_ORDERS]),
        "n_cancels": int(cnt[backtest_state.BC_CANCELS]),
        "n_fills": n_fills,
        "maker_fills": int(cnt[backtest_state.BC_MAKER_FILLS]),
        "taker_fills": int(cnt[backtest_state.BC_TAKER_FILLS]),
        "trade_through_fills": int(cnt[backtest_state.BC_TRADE_THROUGH]),
        "filled_qty": filled_qty,
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
