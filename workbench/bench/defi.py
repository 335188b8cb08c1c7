"""``bench defi``: 64-byte swap messages through constant-product pools and the arbitrage
detector (``workbench.defi``), events per second, medians of several runs.

* ``defi_apply_events_per_sec``: swaps applied to the consumer's pool table only
  (validation, exact integer swap math, the log-price graph kept current): the baseline;
* ``defi_events_per_sec``: the same plus the detector after every swap (every cycle through
  the swapped pool re-added, optimal size and exact profit where positive), the product;
  ``defi_detect_cost_ratio`` is the baseline over it;
* ``defi_ring_events_per_sec``: the product fed through the SPSC ring by a producer thread
  (``defi_ring_vs_direct_ratio`` against the array run: below 1 by the hand-off and, on a
  busy machine, by the two threads waiting for cores);
* ``defi_simulate_events_per_sec``: the seeded simulator (numpy random draws + the flow kernel);
* ``binary_msgs_per_sec`` / ``json_msgs_per_sec``: decoding the same swaps from 64-byte
  records (a view of the bytes) and from JSON text.

The market: 8 tokens on three venues (84 pools, over 3,000 cycles); ``--quick`` uses the
lesson's 6 tokens on two venues and fewer events.
"""
from __future__ import annotations

NAME = "defi"
DESCRIPTION = "swap messages -> constant-product pools -> arbitrage detector (events/s)"


def run(quick: bool = False) -> dict:
    from workbench import defi

    if quick:
        market = defi.make_market()
        n_events, repeats = 100_000, 3
    else:
        tokens = dict(defi.DEFAULT_TOKENS, USDT=1.0, AAVE=90.0)
        market = defi.make_market(tokens, {"Uniswap": 30, "Sushiswap": 30, "Pancakeswap": 25})
        n_events, repeats = 2_000_000, 5
    stream = defi.simulate(market, n_events, seed=1)
    defi.detect(market, stream.messages[:1_000])                       # compile / load, untimed
    defi.detect(market, stream.messages[:1_000], detect=False)
    defi.detect_through_ring(market, stream.messages[:1_000])
    out = {"defi_tokens": len(market.tokens), "defi_dexes": len(market.dexes)}
    out.update(defi.throughput(market, stream, repeats))
    counts = defi.detect(market, stream.messages).counts()   # found = recorded + dropped (array full)
    out["defi_opportunities_per_1k_events"] = 1_000 * (counts["recorded"] + counts["dropped"]) / n_events
    rates = defi.decode_rates(stream.messages, n=20_000, repeats=repeats)
    out.update({"binary_msgs_per_sec": rates["binary_msgs_per_sec"],
                "json_msgs_per_sec": rates["json_msgs_per_sec"],
                "binary_vs_json_ratio": rates["binary_msgs_per_sec"] / rates["json_msgs_per_sec"]})
    return out
