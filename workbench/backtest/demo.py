"""The headline backtest job (``python -m workbench demo``): market making with inventory
skew on the embedded sample, or a LOBSTER / Binance file, with its HTML report."""
from __future__ import annotations

from .builder import Backtest

__all__ = ["run_demo"]


def run_demo(data: str = "synthetic", path=None, progress: bool = True, file: str | None = None):
    """The headline job: market making with inventory skew, 50/100/50 us latency,
    exact L3 queue position, maker rebate / taker fee and risk limits, on the embedded
    synthetic session (or ``data="lobster"`` / ``"binance"`` with ``file`` = the message
    file / capture; the ``../shared`` samples when ``file`` is None).

    Writes the HTML report to ``path`` (``None``: ``demo-report.html`` here; ``False``:
    none). Returns ``(BacktestResult, summary_text)``.
    """
    if data == "synthetic":
        source = "synthetic"
    elif data == "lobster":
        if file is None:
            from ..data.samples import shared_data_dir
            shared = shared_data_dir()
            found = sorted((shared / "lobster").glob("*message*")) if shared else []
            if not found:
                raise ValueError("data='lobster' needs a message file (file=...)")
            file = found[0]
        source = file
    elif data == "binance":
        if file is None:
            from ..data.samples import shared_data_dir
            shared = shared_data_dir()
            found = sorted((shared / "binance").glob("*.gz")) if shared else []
            if not found:
                raise ValueError("data='binance' needs a capture file (file=...)")
            file = found[0]
        source = file
    else:
        source = data
    bt = Backtest(source)
    if bt.data.kind == "l2":
        # Binance quantities are in 1e-8 BTC: quote 0.001, hold at most 0.01
        bt.strategy("mm_skew", half_spread_ticks=1, qty=100_000, skew_ticks=2,
                    max_position=1_000_000).queue_model("log").fees(maker_bps=-0.1, taker_bps=0.5)
        bt.risk(max_position=2_000_000, price_band_bps=50)
        queue = "L2 log-probability queue model"
    else:
        bt.strategy("mm_skew", half_spread_ticks=1, qty=100, skew_ticks=3, max_position=500)
        bt.fees(maker_bps=-0.2, taker_bps=0.3)
        bt.risk(max_position=800, max_order_qty=1000, price_band_bps=200,
                max_orders_per_window=200, rate_window_s=1.0)
        queue = "L3 exact FIFO queue position"
    bt.latency(feed_us=50, entry_us=100, response_us=50)
    result = bt.run(progress=progress)
    lines = [f"Backtest: {bt.data.name}, strategy mm_skew, latency feed/entry/response "
             f"50/100/50 us, {queue}",
             result.summary()]
    if path is not False:
        out = result.to_html(path or "demo-report.html", title="hft-workbench demo backtest")
        lines.append(f"report written to {out}")
    return result, "\n".join(lines)
