"""DeFi: constant-product pools, a simulated stream of 64-byte swap messages, and arbitrage
detection after every swap. The Python face of ``kernels.amm`` and ``kernels.arbitrage``.

Owns the validation boundary of those kernels (every argument is checked here and a bad one
raises ``ValueError`` naming it), the market (:class:`Market`: tokens, venues, pools and their
arbitrage cycles, built by :func:`make_market` or :func:`market_from_pools`), the seeded swap
simulator (:func:`simulate` -> :class:`SwapStream`), the wire format (:func:`encode`,
:func:`decode`: ``kernels.records.SWAP_MSG``, 64 bytes a message), the detector runs
(:func:`detect` over an array, :func:`detect_through_ring` over the SPSC ring of
``workbench.queues``, both -> :class:`Detection`), quotes (:func:`quote`,
:func:`price_impact_table`, :func:`quote_cycle`, :func:`profitable_cycles`) and the throughput
measurement (:func:`throughput`, what ``python -m workbench bench defi`` reports).

Amounts cross into the kernels as integers in micro-tokens (``kernels.amm.AMOUNT_SCALE``);
every frame here shows them as tokens, prices as prices and tokens, pools and venues by name.
"""
from __future__ import annotations

import json
import math
import statistics
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kernels import amm as kamm
from kernels import arbitrage as karb
from kernels import records as R

__all__ = [
    "DEFAULT_TOKENS", "DEFAULT_DEXES", "DEFAULT_VOLATILITY", "Market", "make_market",
    "market_from_pools", "SwapStream", "simulate", "encode", "decode", "message_layout",
    "swaps_frame", "Detection", "detect", "detect_through_ring", "quote", "price_impact_table",
    "quote_cycle", "profitable_cycles", "pair_prices", "decode_rates", "throughput",
]

# name: USD price at the start (roughly early 2024)
DEFAULT_TOKENS = {"USDC": 1.0, "WETH": 3_000.0, "WBTC": 60_000.0, "DAI": 1.0, "LINK": 15.0,
                  "UNI": 8.0}
DEFAULT_DEXES = {"Uniswap": 30, "Sushiswap": 30}   # venue: fee in basis points
STABLECOINS = ("USDC", "USDT", "DAI")
DEFAULT_VOLATILITY = 0.8                           # annualised, for every non-stable token
YEAR_S = 365.0 * 86_400.0


def _number(name, value, *, low=None, high=None, low_open=False, integer=False):
    ok_types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, ok_types) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name}={value!r} must be {kind}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name}={value!r} must be {'>' if low_open else '>='} {low}")
    if high is not None and value > high:
        raise ValueError(f"{name}={value!r} must be <= {high}")
    return int(value) if integer else float(value)


# ------------------------------------------------------------------------------- market
@dataclass
class Market:
    """Tokens, venues and pools (``POOL``, the state at the start), plus the arbitrage
    cycles through them (``kernels.arbitrage.build_cycles``) and the tokens' USD prices
    that value a profit."""

    tokens: tuple[str, ...]
    dexes: tuple[str, ...]
    pools: np.ndarray
    token_usd: np.ndarray
    cycles: np.ndarray = field(repr=False)
    pool_ptr: np.ndarray = field(repr=False)
    pool_cycles: np.ndarray = field(repr=False)
    pool_edges: np.ndarray = field(repr=False)

    def graph(self) -> tuple:
        """``(cycles, pool_ptr, pool_cycles, pool_edges)``: the detector kernels' arguments."""
        return self.cycles, self.pool_ptr, self.pool_cycles, self.pool_edges

    @property
    def n_pools(self) -> int:
        return int(self.pools.shape[0])

    @property
    def pool_names(self) -> list[str]:
        """``"WETH/USDC Uniswap"``: token0/token1 and the venue."""
        return [f"{self.tokens[p['token0']]}/{self.tokens[p['token1']]} {self.dexes[p['dex']]}"
                for p in self.pools]

    def token(self, name: str) -> int:
        if name not in self.tokens:
            raise ValueError(f"token={name!r} is not in this market; it has {list(self.tokens)}")
        return self.tokens.index(name)

    def pools_frame(self, pools: np.ndarray | None = None) -> pl.DataFrame:
        """One row per pool (of ``pools``, default the start state): names, reserves in
        tokens, the price of token0 in token1, fee, swaps and the fees kept, value in USD."""
        pools = self.pools if pools is None else pools
        scale = kamm.AMOUNT_SCALE
        r0 = pools["reserve0"] / scale
        r1 = pools["reserve1"] / scale
        with np.errstate(divide="ignore", invalid="ignore"):
            price = np.where(r0 > 0, r1 / np.where(r0 > 0, r0, 1), np.nan)
        usd = self.token_usd
        return pl.DataFrame({
            "pool": self.pool_names,
            "dex": [self.dexes[d] for d in pools["dex"]],
            "token0": [self.tokens[t] for t in pools["token0"]],
            "token1": [self.tokens[t] for t in pools["token1"]],
            "reserve0": r0, "reserve1": r1, "price": price,
            "fee_bps": pools["fee_bps"].astype(np.int64),
            "swaps": pools["swaps"],
            "fees0": pools["fees0"] / scale, "fees1": pools["fees1"] / scale,
            "value_usd": r0 * usd[pools["token0"]] + r1 * usd[pools["token1"]],
        })

    def cycle_path(self, c: int) -> tuple[str, str]:
        """``("USDC → WETH → WBTC → USDC", "WETH/USDC Uniswap → ...")`` of cycle ``c``."""
        cyc = self.cycles[c]
        names = self.pool_names
        token = int(cyc["start"])
        tokens, pools = [self.tokens[token]], []
        for k in range(int(cyc["hops"])):
            p, d = int(cyc["pool"][k]), int(cyc["dir"][k])
            token = int(self.pools[p]["token1"] if d == 0 else self.pools[p]["token0"])
            tokens.append(self.tokens[token])
            pools.append(names[p])
        return " → ".join(tokens), " → ".join(pools)

    def cycles_frame(self) -> pl.DataFrame:
        """Every cycle: kind, token path, pool path, and how many cycles run through a pool."""
        paths = [self.cycle_path(c) for c in range(self.cycles.shape[0])]
        return pl.DataFrame({
            "cycle": np.arange(self.cycles.shape[0]),
            "kind": [_KIND[int(h)] for h in self.cycles["hops"]],
            "path": [p[0] for p in paths], "pools": [p[1] for p in paths]})

    def consumer_pools(self) -> np.ndarray:
        """The pool table a consumer starts from: tokens, fees and venues known, reserves
        unknown (0) until the stream's snapshots arrive."""
        pools = self.pools.copy()
        for name in ("reserve0", "reserve1", "fees0", "fees1", "swaps"):
            pools[name] = 0
        pools["last_seq"] = -1
        return pools


_KIND = {2: "cross-pool", 3: "triangular"}


def market_from_pools(tokens: dict, pools, *, max_hops: int = 3) -> Market:
    """A market from ``tokens`` (``{name: USD price}``) and ``pools``: rows ``(dex, token0,
    token1, reserve0, reserve1, fee_bps)`` with token names and reserves in tokens (or a
    polars frame with those columns)."""
    if not isinstance(tokens, dict) or not tokens:
        raise ValueError(f"tokens must be a non-empty dict {{name: usd_price}}, got {tokens!r}")
    names = tuple(tokens)
    for name, usd in tokens.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"tokens: every name must be a non-empty string, got {name!r}")
        _number(f"tokens[{name!r}]", usd, low=0.0, low_open=True)
    if isinstance(pools, pl.DataFrame):
        missing = [c for c in ("dex", "token0", "token1", "reserve0", "reserve1", "fee_bps")
                   if c not in pools.columns]
        if missing:
            raise ValueError(f"pools: the frame lacks the column(s) {missing}")
        pools = pools.select("dex", "token0", "token1", "reserve0", "reserve1", "fee_bps").rows()
    rows = list(pools)
    if not rows:
        raise ValueError("pools: give at least one pool")
    if max_hops not in (2, 3):
        raise ValueError(f"max_hops must be 2 or 3, got {max_hops!r}")
    dexes: list[str] = []
    table = np.zeros(len(rows), dtype=R.POOL)
    table["last_seq"] = -1
    for i, row in enumerate(rows):
        if len(row) != 6:
            raise ValueError(f"pools[{i}] must be (dex, token0, token1, reserve0, reserve1, "
                             f"fee_bps), got {row!r}")
        dex, t0, t1, r0, r1, fee = row
        for label, t in (("token0", t0), ("token1", t1)):
            if t not in tokens:
                raise ValueError(f"pools[{i}].{label}={t!r} is not one of the tokens {list(names)}")
        if t0 == t1:
            raise ValueError(f"pools[{i}]: token0 and token1 are both {t0!r}")
        if not isinstance(dex, str) or not dex:
            raise ValueError(f"pools[{i}].dex={dex!r} must be a venue name")
        fee = _number(f"pools[{i}].fee_bps", fee, low=0, high=kamm.MAX_FEE_BPS, integer=True)
        units = []
        for label, r in (("reserve0", r0), ("reserve1", r1)):
            r = _number(f"pools[{i}].{label}", r, low=0.0, low_open=True)
            u = round(r * kamm.AMOUNT_SCALE)
            if not 1 <= u <= kamm.MAX_AMOUNT // 2:
                raise ValueError(f"pools[{i}].{label}={r!r} tokens is outside 1e-6 .. "
                                 f"{kamm.MAX_AMOUNT // 2 / kamm.AMOUNT_SCALE:,.0f} (half the "
                                 "largest reserve, so swaps have room)")
            units.append(u)
        if dex not in dexes:
            dexes.append(dex)
        table[i]["token0"], table[i]["token1"] = names.index(t0), names.index(t1)
        table[i]["reserve0"], table[i]["reserve1"] = units
        table[i]["fee_bps"] = fee
        table[i]["dex"] = dexes.index(dex)
    graph = karb.build_cycles(table["token0"], table["token1"], max_hops)
    return Market(names, tuple(dexes), table, np.array([float(tokens[n]) for n in names]), *graph)


QUOTE_TOKENS = ("USDC", "USDT", "DAI", "WETH", "WBTC")   # preferred quote tokens, best first


def _quote_rank(name: str) -> int:
    return QUOTE_TOKENS.index(name) if name in QUOTE_TOKENS else len(QUOTE_TOKENS)


def make_market(tokens: dict | None = None, dexes: dict | None = None, *,
                liquidity_usd: float = 4e6, seed: int = 17, max_hops: int = 3) -> Market:
    """Every pair of ``tokens`` (``{name: USD price}``, default ``DEFAULT_TOKENS``) on every
    venue of ``dexes`` (``{name: fee_bps}``, default Uniswap and Sushiswap at 0.30 %), each pool
    at the market price holding about ``liquidity_usd`` (half each side; log-normal spread,
    pairs of stablecoins and majors deeper), seeded."""
    tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
    dexes = dict(DEFAULT_DEXES if dexes is None else dexes)
    if not isinstance(dexes, dict) or not dexes:
        raise ValueError(f"dexes must be a non-empty dict {{name: fee_bps}}, got {dexes!r}")
    if len(tokens) < 2:
        raise ValueError(f"tokens: need at least two, got {list(tokens)}")
    liquidity_usd = _number("liquidity_usd", liquidity_usd, low=0.0, low_open=True)
    seed = _number("seed", seed, low=0, integer=True)
    rng = np.random.default_rng(seed)
    names = list(tokens)
    majors = {"USDC", "USDT", "DAI", "WETH", "WBTC"}
    rows = []
    for dex, fee in dexes.items():
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                # the quote token second, so a pool's price reads as usual: WETH/USDC 3,000.00
                base, quote_token = sorted((a, b), key=_quote_rank, reverse=True)
                depth = liquidity_usd * (2.0 if a in majors and b in majors else 1.0)
                depth *= float(np.exp(rng.normal(0.0, 0.4)))
                rows.append((dex, base, quote_token, depth / 2 / tokens[base],
                             depth / 2 / tokens[quote_token], fee))
    return market_from_pools(tokens, rows, max_hops=max_hops)


# ---------------------------------------------------------------------------- simulator
@dataclass
class SwapStream:
    """A simulated stream: ``messages`` (``SWAP_MSG``: a snapshot per pool, then the swaps),
    the exchange's ``final_pools``, the tokens' USD paths (``log_usd[block, token]``)."""

    market: Market
    messages: np.ndarray
    final_pools: np.ndarray
    log_usd: np.ndarray = field(repr=False)
    events_per_block: int
    params: dict

    def frame(self) -> pl.DataFrame:
        """The messages as a polars frame (``swaps_frame``)."""
        return swaps_frame(self.market, self.messages)

    def market_prices(self) -> pl.DataFrame:
        """Each token's USD price per block (the market the informed traders follow)."""
        start = self.params["start_ns"]
        block_ns = int(self.params["block_s"] * 1e9)
        times = start + np.arange(self.log_usd.shape[0], dtype=np.int64) * block_ns
        return pl.DataFrame({"time": pl.Series(times).cast(pl.Datetime("ns")),
                             **{t: np.exp(self.log_usd[:, i]) for i, t in enumerate(self.market.tokens)}})


def simulate(market: Market, n_events: int = 100_000, *, seed: int = 1,
             informed: float = 0.7, size_median: float = 0.0003, size_sigma: float = 1.0,
             band: float | None = None, volatility: dict | float = DEFAULT_VOLATILITY,
             block_s: float = 12.0, events_per_block: int = 20, start: str = "2024-03-01",
             malformed: float = 0.0, max_fraction: float = 0.1) -> SwapStream:
    """Simulate ``n_events`` swaps on ``market``'s pools (seeded: the same arguments give
    the same bytes). See ``kernels.amm.simulate_flow``: a share ``informed`` of the swaps
    trade a pool back to the market price once it is off by more than ``band`` (log
    distance; default the pools' fee plus 1 bp), the rest is noise of log-normal size
    (``size_median`` of the reserve, spread ``size_sigma``). Token prices follow random
    walks, ``volatility`` annualised (a number for every non-stable token or a dict per
    token; stablecoins stay at 1). ``malformed`` is the share of messages damaged on the way
    (a bad pool id, a zero reserve, a negative amount or a bad token, in equal parts)."""
    if not isinstance(market, Market):
        raise ValueError(f"market must be a workbench.defi.Market, got {type(market).__name__}")
    n_events = _number("n_events", n_events, low=1, high=50_000_000, integer=True)
    seed = _number("seed", seed, low=0, integer=True)
    informed = _number("informed", informed, low=0.0, high=1.0)
    size_median = _number("size_median", size_median, low=0.0, low_open=True, high=1.0)
    size_sigma = _number("size_sigma", size_sigma, low=0.0, high=5.0)
    max_fraction = _number("max_fraction", max_fraction, low=0.0, low_open=True, high=1.0)
    block_s = _number("block_s", block_s, low=0.0, low_open=True)
    events_per_block = _number("events_per_block", events_per_block, low=1, high=1_000_000,
                               integer=True)
    malformed = _number("malformed", malformed, low=0.0, high=1.0)
    fee = float(np.median(market.pools["fee_bps"])) / kamm.FEE_DENOM
    band = fee + 1e-4 if band is None else _number("band", band, low=0.0)
    try:
        start_ns = int(np.datetime64(str(start), "ns").astype(np.int64))
    except ValueError:
        raise ValueError(f"start={start!r} is not a date or time (YYYY-MM-DD[THH:MM])") from None
    n_tokens = len(market.tokens)
    if isinstance(volatility, dict):
        unknown = [t for t in volatility if t not in market.tokens]
        if unknown:
            raise ValueError(f"volatility: {unknown} are not tokens of the market")
        vols = np.array([_number(f"volatility[{t!r}]", volatility.get(t, DEFAULT_VOLATILITY),
                                 low=0.0) for t in market.tokens])
    else:
        vols = np.full(n_tokens, _number("volatility", volatility, low=0.0))
    vols[[i for i, t in enumerate(market.tokens) if t in STABLECOINS]] = 0.0

    rng = np.random.default_rng(seed)
    n_blocks = (n_events + events_per_block - 1) // events_per_block
    sigma = vols * math.sqrt(block_s / YEAR_S)
    steps = rng.standard_normal((n_blocks, n_tokens)) * sigma
    log_usd = np.log(market.token_usd) + np.cumsum(steps, axis=0) - steps[0]
    weights = np.sqrt(market.pools["reserve0"] / kamm.AMOUNT_SCALE * market.token_usd[market.pools["token0"]])
    pick = rng.choice(market.n_pools, size=n_events, p=weights / weights.sum()).astype(np.int32)
    u_kind = rng.random(n_events)
    u_dir = rng.random(n_events)
    z_size = rng.standard_normal(n_events)
    corrupt = np.where(rng.random(n_events) < malformed,
                       rng.integers(kamm.CORRUPT_POOL, kamm.CORRUPT_TOKEN + 1, n_events),
                       kamm.CORRUPT_NONE).astype(np.int8)
    params = np.zeros(kamm.N_SIM_PARAMS)
    params[kamm.SP_START_NS] = start_ns
    params[kamm.SP_BLOCK_NS] = block_s * 1e9
    params[kamm.SP_INFORMED] = informed
    params[kamm.SP_SIZE_MEDIAN] = size_median
    params[kamm.SP_SIZE_SIGMA] = size_sigma
    params[kamm.SP_BAND] = band
    params[kamm.SP_MAX_FRACTION] = max_fraction
    pools = market.pools.copy()
    out = np.zeros(market.n_pools + n_events, dtype=R.SWAP_MSG)
    kamm.simulate_flow(pools, log_usd, np.int64(events_per_block), pick, u_kind, u_dir, z_size,
                       corrupt, params, out)
    return SwapStream(market, out, pools, log_usd, events_per_block, dict(
        n_events=n_events, seed=seed, informed=informed, size_median=size_median,
        size_sigma=size_sigma, band=band, block_s=block_s, start_ns=start_ns,
        malformed=malformed, max_fraction=max_fraction, volatility=dict(zip(market.tokens, vols))))


# --------------------------------------------------------------------------- wire format
def _as_messages(messages, name: str = "messages") -> np.ndarray:
    messages = np.asarray(messages)
    if messages.dtype != R.SWAP_MSG or messages.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of kernels.records.SWAP_MSG, got "
                         f"dtype {messages.dtype}, shape {messages.shape}")
    return np.ascontiguousarray(messages)


def encode(messages) -> bytes:
    """The messages as bytes on the wire: 64 bytes each, back to back, no framing needed."""
    return _as_messages(messages).tobytes()


def decode(data) -> np.ndarray:
    """Bytes (or any buffer) -> a read-only ``SWAP_MSG`` view of them: no parsing, no copy.
    Raises ``ValueError`` when the length is not a whole number of messages."""
    view = memoryview(data)
    size = R.SWAP_MSG.itemsize
    if view.nbytes % size:
        raise ValueError(f"data: {view.nbytes} bytes is not a whole number of {size}-byte "
                         f"messages ({view.nbytes % size} bytes left over)")
    return np.frombuffer(view, dtype=R.SWAP_MSG)


def message_layout() -> pl.DataFrame:
    """``SWAP_MSG``'s fields: byte offset, size and type (one 64-byte cache line)."""
    rows = []
    for name in R.SWAP_MSG.names:
        dt, offset = R.SWAP_MSG.fields[name][:2]
        rows.append({"field": name, "offset": offset, "bytes": dt.itemsize, "type": str(dt)})
    return pl.DataFrame(rows)


def _names(ids: np.ndarray, names) -> pl.Series:
    ids = np.asarray(ids, dtype=np.int64)
    valid = (ids >= 0) & (ids < len(names))
    lookup = np.array(list(names), dtype=object)
    return pl.Series([lookup[i] if ok else None for i, ok in zip(ids, valid)], dtype=pl.String)


def swaps_frame(market: Market, messages) -> pl.DataFrame:
    """One row per message: time, seq, kind, pool, tokens in and out (names; null when the
    id is invalid), amounts in tokens, the pool's price of token0 in token1 after it."""
    m = _as_messages(messages)
    scale = kamm.AMOUNT_SCALE
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(m["reserve0"] > 0, m["reserve1"] / np.where(m["reserve0"] > 0,
                                                                     m["reserve0"], 1), np.nan)
    kinds = {R.SWAP_SWAP: "swap", R.SWAP_SYNC: "sync"}
    return pl.DataFrame({
        "time": pl.Series(m["ts"]).cast(pl.Datetime("ns")),
        "seq": m["seq"],
        "kind": pl.Series([kinds.get(int(k)) for k in m["msg_type"]], dtype=pl.String),
        "pool": _names(m["pool"], market.pool_names),
        "token_in": _names(m["token_in"], market.tokens),
        "token_out": _names(m["token_out"], market.tokens),
        "amount_in": m["amount_in"] / scale,
        "amount_out": m["amount_out"] / scale,
        "price": price,
        "reserve0": m["reserve0"] / scale,
        "reserve1": m["reserve1"] / scale,
    })


# ----------------------------------------------------------------------------- detection
@dataclass
class Detection:
    """What the consumer made of a stream: its pool table at the end, the counters
    (message outcomes, cycles checked, sequence gaps) and the opportunities recorded."""

    market: Market
    pools: np.ndarray
    counters: np.ndarray
    opps: np.ndarray
    elapsed_s: float
    messages: int

    @property
    def events_per_sec(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def counts(self) -> dict:
        """Message outcomes by name (``SWAP_CODE_NAMES``) and the detector's counters."""
        out = {name: int(self.counters[i]) for i, name in enumerate(R.SWAP_CODE_NAMES)}
        out.update({name: int(self.counters[R.N_SWAP_CODES + i])
                    for i, name in enumerate(karb.COUNTER_NAMES)})
        return out

    def malformed(self) -> int:
        """Messages rejected (every outcome but ok and resynced)."""
        return sum(int(self.counters[i]) for i in range(R.N_SWAP_CODES)
                   if i not in (R.SW_OK, R.SW_RESYNCED))

    def opportunities(self) -> pl.DataFrame:
        """The opportunities, named: when, after which pool's swap, kind, token and pool
        paths, optimal size and exact profit (start token) and its USD value."""
        o = self.opps
        mk = self.market
        paths = [mk.cycle_path(int(c)) for c in o["cycle"]]
        scale = kamm.AMOUNT_SCALE
        return pl.DataFrame({
            "time": pl.Series(o["ts"]).cast(pl.Datetime("ns")),
            "seq": o["seq"],
            "after_swap_on": _names(o["pool"], mk.pool_names),
            "kind": pl.Series([_KIND[int(h)] for h in o["hops"]], dtype=pl.String),
            "path": pl.Series([p[0] for p in paths], dtype=pl.String),
            "pools": pl.Series([p[1] for p in paths], dtype=pl.String),
            "token": _names(o["start"], mk.tokens),
            "size": o["amount_in"] / scale,
            "profit": o["profit"] / scale,
            "profit_usd": o["profit_usd"],
            "edge_bps": o["edge"] * 1e4,
        })


def _detect_args(market: Market, min_profit_usd, max_opportunities):
    if not isinstance(market, Market):
        raise ValueError(f"market must be a workbench.defi.Market, got {type(market).__name__}")
    min_profit_usd = _number("min_profit_usd", min_profit_usd, low=0.0)
    cap = _number("max_opportunities", max_opportunities, low=1, high=100_000_000, integer=True)
    pools = market.consumer_pools()
    log_rate = karb.new_log_rate(market.n_pools)
    karb.init_log_rate(pools, log_rate)
    return pools, log_rate, karb.new_counters(), karb.new_opportunities(cap), min_profit_usd


def _result(market, pools, counters, opps, elapsed, n) -> Detection:
    recorded = int(counters[karb.CT_RECORDED])
    return Detection(market, pools, counters, opps[:recorded].copy(), elapsed, n)


def detect(market: Market, messages, *, min_profit_usd: float = 10.0,
           max_opportunities: int = 200_000, detect: bool = True,
           progress: bool = False) -> Detection:
    """Apply ``messages`` to a fresh consumer pool table and, after every swap, check the
    cycles through its pool (``kernels.arbitrage.process_messages``); record opportunities
    worth at least ``min_profit_usd`` (think: the gas an arbitrage transaction costs).
    ``detect=False`` only applies the messages (the baseline of the throughput)."""
    msgs = _as_messages(messages)
    pools, log_rate, counters, opps, min_profit_usd = _detect_args(market, min_profit_usd,
                                                                   max_opportunities)
    chunk = 1 << 20
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=msgs.shape[0], unit="msg", desc="defi detect")
    started = time.perf_counter()
    for first in range(0, msgs.shape[0], chunk):
        n = karb.process_messages(msgs, first, chunk, pools, log_rate, *market.graph(),
                                  market.token_usd, min_profit_usd, opps, counters, bool(detect))
        if bar is not None:
            bar.update(n)
    elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return _result(market, pools, counters, opps, elapsed, msgs.shape[0])


def detect_through_ring(market: Market, messages, *, capacity: int = 4096, batch: int = 256,
                        min_profit_usd: float = 10.0, max_opportunities: int = 200_000,
                        timeout: float = 120.0) -> Detection:
    """As :func:`detect`, but the messages travel through an SPSC ring
    (``workbench.queues.Ring`` of ``SWAP_MSG``, ``capacity`` slots): a producer thread
    publishes them, and the consumer (``kernels.arbitrage.ring_process``, GIL released)
    takes up to ``batch`` at a time and applies and checks each as it arrives.
    The result equals :func:`detect`'s."""
    from workbench.queues import SPIN_BUDGET, Backoff, Ring

    msgs = _as_messages(messages)
    batch = _number("batch", batch, low=1, high=1 << 20, integer=True)
    timeout = _number("timeout", timeout, low=0.0, low_open=True)
    pools, log_rate, counters, opps, min_profit_usd = _detect_args(market, min_profit_usd,
                                                                   max_opportunities)
    ring = Ring(capacity, R.SWAP_MSG)
    header, slots = ring.views()
    scratch = np.zeros(min(batch, capacity), dtype=R.SWAP_MSG)
    errors: list[BaseException] = []
    # compile both sides before the clock and the heartbeats start (an empty ring, no spin)
    ring.put(msgs[:0])
    karb.ring_process(header, slots, scratch, pools, log_rate, *market.graph(), market.token_usd,
                      min_profit_usd, opps, counters, True, 1, 1)

    def produce():
        try:   # large puts: the publishing kernel waits on a full ring with the GIL released
            for first in range(0, msgs.shape[0], 1 << 16):
                ring.put(msgs[first:first + (1 << 16)], timeout=timeout)
            ring.finish()
        except BaseException as exc:   # reported by the consumer below
            errors.append(exc)

    producer = threading.Thread(target=produce, name="defi-producer", daemon=True)
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    producer.start()
    done = 0
    backoff = Backoff()
    try:
        while True:
            ring.heartbeat("consumer")
            n = karb.ring_process(header, slots, scratch, pools, log_rate, *market.graph(),
                                  market.token_usd, min_profit_usd, opps, counters, True, 1 << 16,
                                  SPIN_BUDGET)
            done += n
            if n:
                backoff.reset()
                continue
            if errors:
                raise errors[0]
            if ring.finished and len(ring) == 0:
                break
            ring.check_peer("producer")
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream not consumed within {timeout} s: {done} of "
                                   f"{msgs.shape[0]} messages")
            backoff.wait()
        elapsed = time.perf_counter() - started
    finally:
        producer.join(timeout)
        ring.close()
    return _result(market, pools, counters, opps, elapsed, done)


# -------------------------------------------------------------------------------- quotes
def _amounts(name, value, low=0, high=kamm.MAX_AMOUNT):
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.size == 0:
        raise ValueError(f"{name} must be integers (micro-tokens), got {value!r}")
    arr = arr.astype(np.int64)
    bad = (arr < low) | (arr > high)
    if bad.any():
        raise ValueError(f"{name}={int(arr[bad].flat[0])} is outside {low} .. {high}")
    return arr


def quote(amount_in, reserve_in, reserve_out, fee_bps):
    """The exact output of paying ``amount_in`` into a pool holding ``reserve_in`` /
    ``reserve_out`` (all integers in micro-tokens) with a fee of ``fee_bps``
    (``kernels.amm.swap_out``). Scalars give an int, arrays an int64 array."""
    a = _amounts("amount_in", amount_in)
    ri = _amounts("reserve_in", reserve_in, 1)
    ro = _amounts("reserve_out", reserve_out, 1)
    fee = _amounts("fee_bps", fee_bps, 0, kamm.MAX_FEE_BPS)
    shape = np.broadcast_shapes(a.shape, ri.shape, ro.shape, fee.shape)
    a, ri, ro, fee = (np.ascontiguousarray(np.broadcast_to(x, shape)).reshape(-1)
                      for x in (a, ri, ro, fee))
    out = np.empty(a.shape[0], dtype=np.int64)
    kamm.quote_many(a, ri, ro, fee, out)
    return int(out[0]) if shape == () else out.reshape(shape)


def price_impact_table(reserve_in: float, reserve_out: float, fee_bps, *,
                       fractions=(1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3)) -> pl.DataFrame:
    """What trades of ``fractions`` x ``reserve_in`` get from a pool holding ``reserve_in`` /
    ``reserve_out`` tokens, for each fee of ``fee_bps`` (one or several): the exact amount
    out, the execution price against the spot price, and the cost split into the fee and
    the price impact (``kernels.amm.price_impact``)."""
    reserve_in = _number("reserve_in", reserve_in, low=0.0, low_open=True)
    reserve_out = _number("reserve_out", reserve_out, low=0.0, low_open=True)
    fees = [fee_bps] if np.ndim(fee_bps) == 0 else list(fee_bps)
    fees = [_number("fee_bps", f, low=0, high=kamm.MAX_FEE_BPS, integer=True) for f in fees]
    fractions = [_number("fractions", f, low=0.0, low_open=True, high=1.0) for f in fractions]
    scale = kamm.AMOUNT_SCALE
    ri, ro = round(reserve_in * scale), round(reserve_out * scale)
    rows = []
    for fee in fees:
        for frac in fractions:
            a = max(1, round(frac * ri))
            out = quote(a, ri, ro, fee)
            spot = ro / ri
            exec_price = out / a
            g = (kamm.FEE_DENOM - fee) / kamm.FEE_DENOM
            impact = a * g / (ri + a * g)
            rows.append({"fee_bps": fee, "size_pct_of_reserve": 100 * frac,
                         "amount_in": a / scale, "amount_out": out / scale,
                         "spot_price": spot, "execution_price": exec_price,
                         "fee_pct": 100 * (1 - g), "impact_pct": 100 * impact,
                         "total_cost_pct": 100 * (1 - exec_price / spot)})
    return pl.DataFrame(rows)


def quote_cycle(market: Market, cycle: int, pools: np.ndarray | None = None) -> dict:
    """Cycle ``cycle`` at its optimal size on ``pools`` (default the market's start state):
    ``amount_in``, ``amount_out``, ``profit`` (micro-tokens of the start token, exact),
    ``edge`` (sum of the log rates) and the paths."""
    if not isinstance(market, Market):
        raise ValueError(f"market must be a workbench.defi.Market, got {type(market).__name__}")
    cycle = _number("cycle", cycle, low=0, high=market.cycles.shape[0] - 1, integer=True)
    pools = market.pools if pools is None else pools
    if not isinstance(pools, np.ndarray) or pools.dtype != R.POOL or pools.shape != market.pools.shape:
        raise ValueError(f"pools must be a POOL array of the market's {market.n_pools} pools")
    a, out, edge = karb.cycle_quote(pools, market.cycles, cycle)
    path, pool_path = market.cycle_path(cycle)
    return {"cycle": cycle, "path": path, "pools": pool_path, "amount_in": int(a),
            "amount_out": int(out), "profit": int(out) - int(a), "edge": float(edge)}


def profitable_cycles(market: Market, pools: np.ndarray | None = None, *,
                      hops: int | None = None) -> pl.DataFrame:
    """The cycles whose log rates add up to more than 0 on ``pools`` (default the start
    state), with their optimal size and exact profit; ``hops`` 2 or 3 keeps one kind."""
    if not isinstance(market, Market):
        raise ValueError(f"market must be a workbench.defi.Market, got {type(market).__name__}")
    if hops not in (None, 2, 3):
        raise ValueError(f"hops must be None, 2 or 3, got {hops!r}")
    pools = market.pools if pools is None else pools
    log_rate = karb.new_log_rate(market.n_pools)
    karb.init_log_rate(pools, log_rate)
    cyc = market.cycles
    idx = np.arange(cyc.shape[0])
    hop = np.where(cyc["pool"] >= 0, 2 * cyc["pool"] + cyc["dir"], 2 * market.n_pools)
    edge = log_rate[hop].sum(axis=1)
    keep = (edge > 0) & ((cyc["hops"] == hops) if hops else True)
    rows = [quote_cycle(market, int(c), pools) for c in idx[keep]]
    schema = {"cycle": pl.Int64, "path": pl.String, "pools": pl.String, "amount_in": pl.Int64,
              "amount_out": pl.Int64, "profit": pl.Int64, "edge": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def pair_prices(stream: SwapStream, base: str, quote_token: str, *,
                every: int = 1) -> pl.DataFrame:
    """The price of ``base`` in ``quote_token`` on every pool of that pair after each of its
    swaps (one row per message, ``every``-th kept), with the market price at that time."""
    mk = stream.market
    b, q = mk.token(base), mk.token(quote_token)
    every = _number("every", every, low=1, integer=True)
    m = stream.messages
    valid = (m["pool"] >= 0) & (m["pool"] < mk.n_pools)
    pool_ids = np.where(valid, m["pool"], 0)
    t0, t1 = mk.pools["token0"][pool_ids], mk.pools["token1"][pool_ids]
    forward = valid & (t0 == b) & (t1 == q) & (m["reserve0"] > 0) & (m["reserve1"] > 0)
    backward = valid & (t0 == q) & (t1 == b) & (m["reserve0"] > 0) & (m["reserve1"] > 0)
    rows = np.flatnonzero(forward | backward)[::every]
    sel = m[rows]
    with np.errstate(divide="ignore"):
        price = np.where(forward[rows], sel["reserve1"] / sel["reserve0"],
                         sel["reserve0"] / sel["reserve1"])
    block = np.clip((sel["seq"] - mk.n_pools) // stream.events_per_block, 0,
                    stream.log_usd.shape[0] - 1)
    market_price = np.exp(stream.log_usd[block, b] - stream.log_usd[block, q])
    return pl.DataFrame({"time": pl.Series(sel["ts"]).cast(pl.Datetime("ns")), "seq": sel["seq"],
                         "dex": [mk.dexes[mk.pools[p]["dex"]] for p in sel["pool"]],
                         "price": price, "market_price": market_price})


# ----------------------------------------------------------------------------- throughput
def decode_rates(messages, n: int = 20_000, repeats: int = 3) -> dict:
    """Messages per second decoded from 64-byte binary (a view of the bytes) versus from JSON
    text (``json.loads`` per message into a dict), on the first ``n`` messages."""
    msgs = _as_messages(messages)[:_number("n", n, low=1, integer=True)]
    names = R.SWAP_MSG.names
    lines = [json.dumps({k: int(v) for k, v in zip(names, row.tolist())}) for row in msgs]
    blob = encode(msgs)

    def binary():   # a view of the bytes, then one field read from every message
        view = decode(blob)
        return int(view["amount_in"].sum() != -1) * view.shape[0]

    def text():
        total = 0
        for line in lines:
            total += json.loads(line)["amount_in"] != -1
        return len(lines)

    from workbench.bench import median_rate
    return {"binary_msgs_per_sec": median_rate(binary, repeats),
            "json_msgs_per_sec": median_rate(text, repeats),
            "binary_bytes_per_msg": R.SWAP_MSG.itemsize,
            "json_bytes_per_msg": statistics.mean(len(line) for line in lines)}


def throughput(market: Market, stream: SwapStream, repeats: int = 5, *,
               ring: bool = True) -> dict:
    """Events per second, medians of ``repeats`` runs over ``stream``: applying the swaps
    only, applying and detecting (the product), the same through the SPSC ring (a producer
    thread and the consumer kernel), and the simulator itself. Call it once warm."""
    repeats = _number("repeats", repeats, low=1, integer=True)
    n = stream.messages.shape[0]
    apply_only = statistics.median(detect(market, stream.messages, detect=False).events_per_sec
                                   for _ in range(repeats))
    runs = [detect(market, stream.messages) for _ in range(repeats)]
    full = statistics.median(r.events_per_sec for r in runs)
    out = {"defi_events": n, "defi_pools": market.n_pools, "defi_cycles": int(market.cycles.shape[0]),
           "defi_cycles_checked_per_event": runs[0].counts()["cycles_checked"] / n,
           "defi_apply_events_per_sec": apply_only, "defi_events_per_sec": full,
           "defi_detect_cost_ratio": apply_only / full}
    if ring:
        through = statistics.median(detect_through_ring(market, stream.messages).events_per_sec
                                    for _ in range(repeats))
        out["defi_ring_events_per_sec"] = through
        out["defi_ring_vs_direct_ratio"] = through / full
    sim = []
    for _ in range(repeats):
        started = time.perf_counter()
        simulate(market, stream.params["n_events"], seed=stream.params["seed"])
        sim.append(stream.params["n_events"] / (time.perf_counter() - started))
    out["defi_simulate_events_per_sec"] = statistics.median(sim)
    return out
