"""Synthetic market data, the offline default: simulated L3 flow and synthetic bars.

``simulate(...)`` validates parameters, runs the Numba simulator
(:mod:`kernels.simulator`) with preallocated state, and returns a
:class:`SimulatedMarket`: ``events`` (``kernels.records.EVENT``, the same dtype the
LOBSTER loader produces, prices in integer units of ``1 / price_scale``), ``trades``
(``kernels.records.FILL``), and the names and parameters of the symbols.
``events_frame`` / ``trades_frame`` give the same data as polars frames.

``synthetic_bars(...)`` makes OHLCV bars (the schema of :func:`workbench.data.yahoo.load_bars`)
from a seeded random walk; the yfinance loader's opt-in offline fallback uses it.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kernels import records as R
from kernels import simulator as ksim

from .convert import as_date, from_records
from .prices import PRICE_SCALE

SESSION_START_NS = 34_200 * 1_000_000_000  # 09:30 after midnight, like LOBSTER
SESSION_SECONDS = 23_400.0                 # 09:30-16:00

DEFAULT_SYMBOLS = ("SYN0", "SYN1", "SYN2")
DEFAULT_PRICES = (100.0, 50.0, 250.0)


@dataclass(frozen=True)
class SimulatedMarket:
    """The output of :func:`simulate`."""

    events: np.ndarray            # kernels.records.EVENT, time ordered
    trades: np.ndarray            # kernels.records.FILL, one per maker order hit
    symbols: tuple[str, ...]      # name of symbol index i
    price_scale: int
    tick: int                     # price units
    seed: int
    params: dict = field(default_factory=dict)
    final_fundamental: np.ndarray | None = None  # latent mids at the close (price units)

    def events_frame(self) -> pl.DataFrame:
        return events_frame(self.events)

    def trades_frame(self) -> pl.DataFrame:
        return from_records(self.trades)


def _positive(name, value, allow_zero=False):
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} number")
    return float(value)


def _probability(name, value):
    value = _positive(name, value, allow_zero=True)
    if value > 1:
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")
    return value


def correlation_matrix(n_symbols: int, correlation: float | np.ndarray) -> np.ndarray:
    """A valid correlation matrix: a constant off-diagonal or a given matrix (checked)."""
    if np.isscalar(correlation):
        rho = float(correlation)
        if not -1.0 / max(n_symbols - 1, 1) < rho < 1.0 and n_symbols > 1:
            raise ValueError(f"correlation={rho!r} gives no valid matrix for {n_symbols} symbols")
        matrix = np.full((n_symbols, n_symbols), rho)
        np.fill_diagonal(matrix, 1.0)
    else:
        matrix = np.asarray(correlation, dtype=np.float64)
        if matrix.shape != (n_symbols, n_symbols) or not np.allclose(matrix, matrix.T) \
                or not np.allclose(np.diag(matrix), 1.0):
            raise ValueError(f"correlation must be a symmetric {n_symbols}x{n_symbols} matrix "
                             "with a unit diagonal")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError("correlation matrix is not positive definite") from None
    return matrix


def simulate(
    n_symbols: int = 3,
    *,
    seed: int = 0,
    duration_s: float = SESSION_SECONDS,
    rate: float = 1.0,
    arrivals: str = "hawkes",
    hawkes_alpha: float = 0.6,
    hawkes_beta: float = 1.0,
    u_depth: float = 2.0,
    daily_vol: float = 0.02,
    jumps_per_day: float = 4.0,
    jump_scale: float = 0.002,
    correlation: float | np.ndarray = 0.5,
    prices: tuple[float, ...] | None = None,
    symbols: tuple[str, ...] | None = None,
    limit_weight: float = 0.55,
    market_weight: float = 0.12,
    target_depth: int = 60,
    offset_mean_ticks: float = 3.0,
    partial_cancel: float = 0.15,
    lot: int = 100,
    round_lot_p: float = 0.6,
    lots_mean: float = 2.0,
    odd_median: float = 150.0,
    odd_sigma: float = 1.0,
    tick: float = 0.01,
    price_scale: int = PRICE_SCALE,
    initial_orders: int = 10,
    market_as_orders: bool = False,
    max_sweep_levels: int = 3,
    capacity: int | None = None,
    start_ns: int = SESSION_START_NS,
) -> SimulatedMarket:
    """Simulate ``duration_s`` seconds of L3 flow for ``n_symbols`` symbols.

    Activity: ``rate`` arrivals per second per symbol at midday, ``1 + u_depth`` times
    that at the open and close; ``arrivals="hawkes"`` adds self-excitation
    (``hawkes_alpha / hawkes_beta`` is the branching ratio, < 1) while ``"poisson"``
    has none. Prices: log-mids with daily volatility ``daily_vol`` (over a 6.5 h day),
    pairwise ``correlation``, and ``jumps_per_day`` Laplace jumps of scale
    ``jump_scale``. ``target_depth`` sets the equilibrium number of live orders per
    symbol (cancel rate per order = ``limit_weight / target_depth``).
    ``market_as_orders=True`` writes marketable orders as ``EV_ADD`` MARKET/IOC
    events (the replaying book matches them); otherwise as LOBSTER-style
    ``EV_EXECUTE`` events against the resting orders they hit.
    """
    if not isinstance(n_symbols, (int, np.integer)) or not 1 <= n_symbols <= 64:
        raise ValueError(f"n_symbols={n_symbols!r} must be an integer in 1..64")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    arrivals = str(arrivals).lower()
    if arrivals not in ("poisson", "hawkes"):
        raise ValueError(f"arrivals={arrivals!r} must be 'poisson' or 'hawkes'")
    duration_s = _positive("duration_s", duration_s)
    rate = _positive("rate", rate)
    alpha = _positive("hawkes_alpha", hawkes_alpha, allow_zero=True) if arrivals == "hawkes" else 0.0
    beta = _positive("hawkes_beta", hawkes_beta)
    if alpha / beta >= 1.0:
        raise ValueError(f"hawkes_alpha/hawkes_beta={alpha / beta:.3g} must be < 1 (stationary)")
    if not isinstance(price_scale, (int, np.integer)) or price_scale <= 0:
        raise ValueError(f"price_scale={price_scale!r} must be a positive integer")
    tick_units = round(_positive("tick", tick) * price_scale)
    if tick_units < 1 or abs(tick_units - tick * price_scale) > 1e-6 * price_scale:
        raise ValueError(f"tick={tick!r} is not a whole number of price units at price_scale={price_scale}")
    if prices is None:
        prices = tuple(DEFAULT_PRICES[i % len(DEFAULT_PRICES)] * (1 + 0.1 * (i // 3))
                       for i in range(n_symbols))
    if symbols is None:
        symbols = tuple(f"SYN{i}" for i in range(n_symbols))
    if len(prices) != n_symbols or len(symbols) != n_symbols:
        raise ValueError(f"prices and symbols need {n_symbols} entries "
                         f"(got {len(prices)} and {len(symbols)})")
    for i, p in enumerate(prices):
        _positive(f"prices[{i}]", p)
        if p * price_scale < 20 * tick_units:
            raise ValueError(f"prices[{i}]={p!r} is under 20 ticks")
    if not isinstance(target_depth, (int, np.integer)) or target_depth < 2:
        raise ValueError(f"target_depth={target_depth!r} must be an integer >= 2")
    if not isinstance(lot, (int, np.integer)) or lot < 1:
        raise ValueError(f"lot={lot!r} must be a positive integer")
    for name, value in (("initial_orders", initial_orders), ("max_sweep_levels", max_sweep_levels)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    limit_weight = _positive("limit_weight", limit_weight)
    market_weight = _positive("market_weight", market_weight, allow_zero=True)
    chol = np.linalg.cholesky(correlation_matrix(n_symbols, correlation))

    fparams = np.zeros(ksim.N_FPARAMS)
    fparams[ksim.P_DURATION_S] = duration_s
    fparams[ksim.P_RATE] = rate
    fparams[ksim.P_U_DEPTH] = _positive("u_depth", u_depth, allow_zero=True)
    fparams[ksim.P_HAWKES_ALPHA] = alpha
    fparams[ksim.P_HAWKES_BETA] = beta
    fparams[ksim.P_SIGMA_S] = _positive("daily_vol", daily_vol, allow_zero=True) / math.sqrt(SESSION_SECONDS)
    fparams[ksim.P_JUMP_RATE] = _positive("jumps_per_day", jumps_per_day, allow_zero=True) / SESSION_SECONDS
    fparams[ksim.P_JUMP_SCALE] = _positive("jump_scale", jump_scale, allow_zero=True)
    fparams[ksim.P_P_LIMIT] = limit_weight
    fparams[ksim.P_P_MARKET] = market_weight
    fparams[ksim.P_CANCEL_RATE] = limit_weight / target_depth
    fparams[ksim.P_OFFSET_MEAN] = _positive("offset_mean_ticks", offset_mean_ticks)
    fparams[ksim.P_PARTIAL_CANCEL] = _probability("partial_cancel", partial_cancel)
    fparams[ksim.P_ROUND_LOT_P] = _probability("round_lot_p", round_lot_p)
    fparams[ksim.P_LOTS_MEAN] = max(_positive("lots_mean", lots_mean), 1.0)
    fparams[ksim.P_ODD_LOG_MU] = math.log(_positive("odd_median", odd_median))
    fparams[ksim.P_ODD_LOG_SIGMA] = _positive("odd_sigma", odd_sigma, allow_zero=True)
    fparams[ksim.P_PRESSURE_TICKS] = 2.0
    fparams[ksim.P_JUMP_EXCITE] = 5.0 * beta * (1.0 if arrivals == "hawkes" else 0.0)

    iparams = np.zeros(ksim.N_IPARAMS, dtype=np.int64)
    iparams[ksim.I_SEED] = seed % (2**32)
    iparams[ksim.I_TICK] = tick_units
    iparams[ksim.I_LOT] = lot
    iparams[ksim.I_START_NS] = start_ns
    iparams[ksim.I_INITIAL_ORDERS] = initial_orders
    iparams[ksim.I_MARKET_AS_ORDERS] = 1 if market_as_orders else 0
    iparams[ksim.I_MAX_SWEEP_LEVELS] = max_sweep_levels

    live_capacity = 8 * target_depth + 2 * initial_orders
    start_log_mid = np.log(np.asarray(prices, dtype=np.float64) * price_scale)
    branching = alpha / beta
    expected = n_symbols * (rate * (1 + u_depth / 3) * duration_s / (1 - branching)
                            + 2 * initial_orders)
    room = capacity or int(1.5 * expected * (1 + market_weight * 3)) + 4 * live_capacity + 1024
    while True:
        live_id = np.zeros((n_symbols, live_capacity), dtype=np.int64)
        live_price = np.zeros_like(live_id)
        live_qty = np.zeros_like(live_id)
        live_side = np.zeros((n_symbols, live_capacity), dtype=np.int8)
        live_ts = np.zeros_like(live_id)
        n_live = np.zeros(n_symbols, dtype=np.int64)
        events = np.zeros(room, dtype=R.EVENT)
        trades = np.zeros(room // 2 + live_capacity, dtype=R.FILL)
        fundamental = np.zeros(n_symbols)
        status, n_ev, n_tr = ksim.simulate_flow(fparams, iparams, start_log_mid, chol, live_id,
                                             live_price, live_qty, live_side, live_ts, n_live,
                                             events, trades, fundamental)
        if status == ksim.SIM_OK:
            break
        room *= 2  # same seed, bigger buffers: the run is reproduced exactly, then finished
    params = dict(n_symbols=n_symbols, seed=seed, duration_s=duration_s, rate=rate,
                  arrivals=arrivals, hawkes_alpha=alpha, hawkes_beta=beta, u_depth=u_depth,
                  daily_vol=daily_vol, jumps_per_day=jumps_per_day, jump_scale=jump_scale,
                  target_depth=target_depth, market_as_orders=market_as_orders)
    # copy field by field: Numba may store a whole record, stack garbage in its
    # alignment padding included, and the output should be byte-for-byte reproducible
    clean_trades = np.zeros(n_tr, dtype=R.FILL)
    for name in R.FILL.names:
        clean_trades[name] = trades[name][:n_tr]
    return SimulatedMarket(
        events=events[:n_ev].copy(), trades=clean_trades, symbols=tuple(symbols),
        price_scale=price_scale, tick=tick_units, seed=seed, params=params,
        final_fundamental=np.exp(fundamental),
    )


def events_frame(events: np.ndarray) -> pl.DataFrame:
    """EVENT records as a polars frame (one column per field)."""
    if events.dtype != R.EVENT:
        raise ValueError(f"events dtype {events.dtype} is not kernels.records.EVENT")
    return from_records(events)


# ----------------------------------------------------------------- synthetic bars
_INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}


def _symbol_seed(symbol: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{symbol}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**32)


def synthetic_bars(symbols, start, end, interval: str = "1d", seed: int = 0,
                   start_price: float = 100.0, daily_vol: float = 0.02) -> pl.DataFrame:
    """Seeded random-walk OHLCV bars in the :func:`workbench.data.yahoo.load_bars` schema.

    Weekday bars only (09:30-16:00 New York for intraday intervals, expressed in UTC);
    ``adj_close`` equals ``close`` (no corporate actions). Same inputs, same bars.
    """
    from datetime import datetime, time, timedelta, timezone
    from zoneinfo import ZoneInfo

    if interval not in _INTERVAL_SECONDS:
        raise ValueError(f"interval={interval!r} must be one of {sorted(_INTERVAL_SECONDS)}")
    if isinstance(symbols, str):
        symbols = [symbols]
    new_york = ZoneInfo("America/New_York")
    start_d = as_date(start, "start")
    end_d = as_date(end, "end")
    if end_d <= start_d:
        raise ValueError(f"end={end!r} must be after start={start!r}")
    step = _INTERVAL_SECONDS[interval]
    stamps = []
    day = start_d
    while day < end_d:
        if day.weekday() < 5:
            if interval == "1d":
                stamps.append(datetime.combine(day, time(0), new_york).astimezone(timezone.utc))
            else:
                open_ = datetime.combine(day, time(9, 30), new_york).astimezone(timezone.utc)
                for k in range(int(23_400 // step)):
                    stamps.append(open_ + timedelta(seconds=k * step))
        day += timedelta(days=1)
    frames = []
    per_bar_vol = daily_vol * math.sqrt(min(step, 23_400) / 23_400)
    for symbol in symbols:
        rng = np.random.default_rng(_symbol_seed(symbol, seed))
        n = len(stamps)
        steps = rng.standard_t(4, size=n) * per_bar_vol / math.sqrt(2)
        close = start_price * np.exp(np.cumsum(steps))
        open_ = np.concatenate([[start_price], close[:-1]]) * np.exp(rng.normal(0, per_bar_vol / 4, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, per_bar_vol / 2, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, per_bar_vol / 2, n)))
        volume = rng.lognormal(math.log(1e6 * step / 86_400 + 1000), 0.5, n).astype(np.int64)
        frames.append(pl.DataFrame({
            "symbol": [symbol] * n,
            "ts": pl.Series(stamps, dtype=pl.Datetime("ns", "UTC")),
            "open": np.round(open_, 4), "high": np.round(high, 4), "low": np.round(low, 4),
            "close": np.round(close, 4), "adj_close": np.round(close, 4), "volume": volume,
        }))
    from .bars import BAR_SCHEMA

    if not frames:
        return pl.DataFrame(schema=BAR_SCHEMA)
    return pl.concat(frames).cast(BAR_SCHEMA)


# ------------------------------------------------------------ book-derived views
def top_of_book(events: np.ndarray, tick: int = 100) -> np.ndarray:
    """Best bid/ask (``kernels.records.BBO``) of each event's symbol right after each event.

    Sizes are aggregated per price level on a ladder spanning the flow's prices;
    ``update_id`` holds the event's order id. Exact for a complete flow (the simulator's);
    for files that start mid-day or lose messages (LOBSTER samples) use the engine replay
    with resynchronisation (``workbench.lobster_check``) instead.
    """
    from kernels import l2book

    if events.dtype != R.EVENT:
        raise ValueError(f"events dtype {events.dtype} is not kernels.records.EVENT")
    if not isinstance(tick, (int, np.integer)) or tick <= 0:
        raise ValueError(f"tick={tick!r} must be a positive integer number of price units")
    n_symbols = int(events["symbol"].max()) + 1 if len(events) else 1
    priced = events[(events["price"] > 0) & (events["kind"] <= R.EV_EXECUTE)]
    low = np.zeros(n_symbols, dtype=np.int64)
    span = 1
    for s in range(n_symbols):
        p = priced["price"][priced["symbol"] == s]
        if len(p):
            low[s] = (int(p.min()) // tick) * tick
            span = max(span, (int(p.max()) - int(low[s])) // tick + 1)
    bids = np.zeros((n_symbols, span), dtype=np.int64)
    asks = np.zeros_like(bids)
    out = np.zeros(len(events), dtype=R.BBO)
    l2book.top_of_book_l3(events, low, tick, bids, asks, out)
    return out


def stylised_facts(market: SimulatedMarket, symbol: int = 0, buckets: int = 26,
                   return_interval_s: float = 10.0) -> dict:
    """Numbers behind the simulator's realism claims for one symbol.

    ``activity``: events per intraday bucket (a U shape); ``spread_ticks``: the
    quoted spread after each two-sided event, in ticks; ``returns``: log
    returns of the book mid sampled every ``return_interval_s`` seconds;
    ``excess_kurtosis`` of those returns (0 for a Gaussian; fat tails make it > 0).
    """
    ev = market.events
    if not 0 <= symbol < len(market.symbols):
        raise ValueError(f"symbol={symbol!r} is not an index of {market.symbols}")
    bbo = top_of_book(ev, market.tick)
    mine = ev["symbol"] == symbol
    ts = ev["ts"][mine]
    top = bbo[mine]
    t0 = int(ts.min())
    duration_ns = market.params["duration_s"] * 1e9
    edges = np.linspace(0, duration_ns, buckets + 1)
    activity, _ = np.histogram(ts - t0, bins=edges)
    two_sided = (top["bid_price"] > 0) & (top["ask_price"] > 0)
    spread = (top["ask_price"] - top["bid_price"])[two_sided] / market.tick
    mid = 0.5 * (top["bid_price"] + top["ask_price"]).astype(np.float64)
    mid_ts = ts[two_sided]
    mid = mid[two_sided]
    grid = t0 + np.arange(0, duration_ns, return_interval_s * 1e9).astype(np.int64)
    pos = np.searchsorted(mid_ts, grid, side="right") - 1
    sampled = mid[np.clip(pos, 0, len(mid) - 1)]
    returns = np.diff(np.log(sampled))
    centred = returns - returns.mean()
    kurt = float((centred**4).mean() / (centred**2).mean() ** 2 - 3.0) if len(returns) > 3 else float("nan")
    sizes = ev["qty"][mine & (ev["kind"] == R.EV_ADD)]
    return {
        "bucket_edges_s": edges / 1e9,
        "activity": activity,
        "spread_ticks": spread,
        "mid_ts": mid_ts,
        "mid": mid / market.price_scale,
        "returns": returns,
        "excess_kurtosis": kurt,
        "add_sizes": sizes,
    }
