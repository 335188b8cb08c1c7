"""Backtest throughput: events/s of the L3 loop with latency and exact queue position on
(market making with inventory skew, 50/100/50 us latencies, fees), and the in-kernel
tick-to-trade latency of the strategy call plus order entry.

``events_per_sec_synthetic_l3``: a simulated session (one symbol). ``events_per_sec_lobster``:
the LOBSTER AAPL/AMZN sample from ``../shared`` when present (else null).
``events_per_sec_binance_l2``: the Binance BTCUSDT capture from ``../shared`` (L2 loop with
the log-probability queue model), else null.
The plain book replay of the same events (``kernels.book.apply_batch_discard_fills``) is
reported as the baseline, with the ratio.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

NAME = "backtest"
DESCRIPTION = "tick-replay backtest: events/s with latency + queue models, tick-to-trade"


def _rate(bt, repeats):
    rates, results = [], []
    for _ in range(repeats):
        r = bt.run(progress=False)
        rates.append(r.stats["events_per_sec"])
        results.append(r)
    return statistics.median(rates), results[-1]


def _book_baseline(events, tick, repeats):
    from kernels import book as kbook
    from kernels import book_state
    from kernels import records as R

    from workbench.data.lobster import price_levels_for

    fills = np.zeros(len(events) + 16, dtype=R.FILL)
    none = np.zeros(0, dtype=np.int64)
    rates = []
    for _ in range(repeats + 1):
        st = book_state.allocate_state(1, min(len(events) + 16, 2_000_000), price_levels_for(events, tick), [tick])
        st.counters[book_state.EC_ANON_FALLBACK] = 1
        t = time.perf_counter()
        kbook.apply_batch_discard_fills(st, events, fills, none)
        rates.append(len(events) / (time.perf_counter() - t))
    return statistics.median(rates[1:])


def run(quick: bool = False) -> dict:
    from workbench.backtest import Backtest, load_events
    from workbench.data.samples import shared_data_dir
    from workbench.data.synthetic import simulate

    repeats = 3 if quick else 5
    market = simulate(n_symbols=1, seed=7, duration_s=600 if quick else 3600, rate=20.0)
    md = load_events(market)

    def configured(data):
        return (Backtest(data, capacity=500_000).strategy("mm_skew", half_spread_ticks=1, skew_ticks=3)
                .latency(50, 100, 50).fees(-0.2, 0.3).risk(max_position=1000))

    synth_rate, synth = _rate(configured(md), repeats)
    baseline = _book_baseline(md.events, md.tick, repeats)
    lobster_rate = None
    shared = shared_data_dir()
    files = sorted((shared / "lobster").glob("*message*")) if shared else []
    if files:
        lobster_rate, _ = _rate(configured(str(files[0])), max(1, repeats - 2))
    binance_rate = None
    captures = sorted((shared / "binance").glob("*.gz")) if shared else []
    if captures:
        bt = (Backtest(str(captures[0])).strategy("mm_skew", half_spread_ticks=1, qty=100_000,
                                                  skew_ticks=2, max_position=1_000_000)
              .latency(50, 100, 50).fees(-0.1, 0.5).queue_model("log"))
        binance_rate, _ = _rate(bt, repeats)
    return {
        "events_per_sec_synthetic_l3": round(synth_rate),
        "events_per_sec_lobster": round(lobster_rate) if lobster_rate else None,
        "events_per_sec_binance_l2": round(binance_rate) if binance_rate else None,
        "tick_to_trade_p50_ns": synth.stats["tick_to_trade_p50_ns"],
        "tick_to_trade_p99_ns": synth.stats["tick_to_trade_p99_ns"],
        "synthetic_events": len(md.events),
        "book_only_events_per_sec": round(baseline),
        "backtest_vs_book_only": round(synth_rate / baseline, 3),
    }
