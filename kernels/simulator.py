"""The market microstructure simulator: a consistent L3 order flow for several symbols.

Owns one kernel, :func:`simulate_flow`, and the small helpers it inlines. The flow is
the offline default data of the workbench (demo, notebooks, tests), so it has to look
like a market *and* be replayable by an order book without a single reject:

* Each symbol has a latent "fundamental" mid: log-price diffusion whose Brownian
  increments are correlated across symbols (a Cholesky factor comes in from Python),
  plus compound-Poisson jumps with Laplace sizes (fat tails).
* Order arrivals per symbol follow an inhomogeneous Poisson or Hawkes process
  (exponential kernel), simulated by Ogata thinning; the baseline rate is modulated by
  a U-shaped intraday curve (busy open and close, quiet lunch).
* At each arrival the symbol gets a limit order (placed a few ticks behind the
  fundamental mid, never crossing the book), a cancel of one of its live orders (a
  per-order cancel rate, so the book depth settles at an equilibrium), or a marketable
  order whose side leans toward where the fundamental says the book should go.
* Sizes mix round lots (geometric number of lots) with log-normal odd sizes.

Consistency is guaranteed by a small internal book: every live order sits in
preallocated per-symbol arrays (``id, price, qty, side``; removal swaps with the last
slot), so cancels only name live orders, executions hit live orders at their own price
in price-time priority, and limit adds never cross. Marketable orders are written either
as one ``EV_ADD`` MARKET/IOC order (the replaying book does the matching and reproduces
exactly our fills) or, LOBSTER style, as one ``EV_EXECUTE`` per resting order hit.
Trades come out as ``FILL`` records. Everything is deterministic given ``seed``.
"""
from __future__ import annotations

import math

import numpy as np

from kernels import records as R
from kernels.jit import kernel

# Status codes of simulate_flow (its first return value).
SIM_OK = 0
SIM_EVENTS_FULL = 1   # output arrays too small: the Python layer retries with more room

# Indices into the float parameter vector (``fparams``) of simulate_flow.
P_DURATION_S = 0       # session length, seconds
P_RATE = 1             # baseline arrivals per second per symbol (before U-shape, Hawkes)
P_U_DEPTH = 2          # U-shape: activity at the open/close relative to midday, minus 1
P_HAWKES_ALPHA = 3     # excitation jump per event (1/s); 0 = Poisson
P_HAWKES_BETA = 4      # excitation decay rate (1/s)
P_SIGMA_S = 5          # diffusion volatility of log-mid per sqrt(second)
P_JUMP_RATE = 6        # jumps per second per symbol
P_JUMP_SCALE = 7       # Laplace scale of a jump in log-price
P_P_LIMIT = 8          # relative weight of limit-order arrivals
P_P_MARKET = 9         # relative weight of marketable orders
P_CANCEL_RATE = 10     # cancel weight per live order (sets the equilibrium depth)
P_OFFSET_MEAN = 11     # mean distance of a new limit order behind the mid, in ticks
P_PARTIAL_CANCEL = 12  # probability a cancel is partial (EV_CANCEL) rather than a delete
P_ROUND_LOT_P = 13     # probability a size is a whole number of lots
P_LOTS_MEAN = 14       # mean number of lots in a round-lot size
P_ODD_LOG_MU = 15      # log-normal odd sizes: mu
P_ODD_LOG_SIGMA = 16   # log-normal odd sizes: sigma
P_PRESSURE_TICKS = 17  # fundamental-vs-book gap (ticks) that makes market buys ~73% likely
P_JUMP_EXCITE = 18     # extra excitation added to a symbol's intensity by its jump
N_FPARAMS = 19

# Indices into the integer parameter vector (``iparams``).
I_SEED = 0
I_TICK = 1             # tick size in price units
I_LOT = 2              # round lot in shares
I_START_NS = 3         # ts of the session start (ns after midnight, LOBSTER style)
I_INITIAL_ORDERS = 4   # orders per side placed at the start of the session
I_MARKET_AS_ORDERS = 5 # 1: marketable orders as EV_ADD MARKET/IOC; 0: EV_EXECUTE per fill
I_MAX_SWEEP_LEVELS = 6 # a marketable order takes at most this many price levels
N_IPARAMS = 7


@kernel(inline="always")
def _u_shape(x, depth):
    """Intraday activity multiplier at session fraction ``x``: 1 at midday, 1+depth at the ends."""
    y = 2.0 * x - 1.0
    return 1.0 + depth * y * y


@kernel(inline="always")
def _draw_size(lot, round_p, lots_mean, log_mu, log_sigma):
    if np.random.random() < round_p:
        # whole lots: 1 + geometric with the given mean
        n = 1 + int(np.random.exponential(max(lots_mean - 1.0, 1e-9)))
        return n * lot
    size = int(math.exp(log_mu + log_sigma * np.random.normal()))
    return max(size, 1)


@kernel(inline="always")
def _best(live_price, live_qty, live_side, n_live, side):
    """Best price on ``side`` among the live orders (-1 when the side is empty)."""
    best = -1
    for k in range(n_live):
        if live_side[k] == side and live_qty[k] > 0:
            p = live_price[k]
            if best < 0 or (side == R.BUY and p > best) or (side == R.SELL and p < best):
                best = p
    return best


@kernel(inline="always")
def _first_in_queue(live_id, live_price, live_side, n_live, side, price):
    """Slot of the oldest (smallest id: ids grow with time) order at ``price`` on ``side``."""
    slot = -1
    for k in range(n_live):
        if live_side[k] == side and live_price[k] == price:
            if slot < 0 or live_id[k] < live_id[slot]:
                slot = k
    return slot


@kernel(inline="always")
def _write_event(events, n, ts, order_id, price, qty, symbol, kind, side, order_type, tif):
    e = events[n]
    e.ts = ts
    e.order_id = order_id
    e.price = price
    e.qty = qty
    e.symbol = symbol
    e.kind = kind
    e.side = side
    e.order_type = order_type
    e.tif = tif


@kernel
def simulate_flow(fparams, iparams, start_log_mid, chol, live_id, live_price, live_qty,
                  live_side, live_ts, n_live, events, trades, fundamental):
    """Fill ``events`` (EVENT) and ``trades`` (FILL) with a simulated session.

    ``start_log_mid[s]`` is log(price units) at the open; ``chol`` the lower Cholesky
    factor of the symbols' return correlation; ``live_*`` are preallocated
    ``(n_symbols, capacity)`` work arrays (the internal book), ``n_live`` their fill
    counts; ``fundamental`` (n_symbols,) receives the final latent log-mids.
    Returns ``(status, n_events, n_trades)``.
    """
    n_sym = start_log_mid.shape[0]
    capacity = live_id.shape[1]
    duration = fparams[P_DURATION_S]
    rate = fparams[P_RATE]
    u_depth = fparams[P_U_DEPTH]
    alpha = fparams[P_HAWKES_ALPHA]
    beta = fparams[P_HAWKES_BETA]
    sigma = fparams[P_SIGMA_S]
    jump_rate = fparams[P_JUMP_RATE]
    jump_scale = fparams[P_JUMP_SCALE]
    w_limit = fparams[P_P_LIMIT]
    w_market = fparams[P_P_MARKET]
    cancel_rate = fparams[P_CANCEL_RATE]
    offset_mean = fparams[P_OFFSET_MEAN]
    partial_p = fparams[P_PARTIAL_CANCEL]
    round_p = fparams[P_ROUND_LOT_P]
    lots_mean = fparams[P_LOTS_MEAN]
    log_mu = fparams[P_ODD_LOG_MU]
    log_sigma = fparams[P_ODD_LOG_SIGMA]
    pressure = fparams[P_PRESSURE_TICKS]
    jump_excite = fparams[P_JUMP_EXCITE]

    np.random.seed(iparams[I_SEED])
    tick = iparams[I_TICK]
    lot = iparams[I_LOT]
    start_ns = iparams[I_START_NS]
    initial = iparams[I_INITIAL_ORDERS]
    market_as_orders = iparams[I_MARKET_AS_ORDERS] != 0
    max_levels = iparams[I_MAX_SWEEP_LEVELS]

    max_events = events.shape[0]
    max_trades = trades.shape[0]
    log_mid = start_log_mid.copy()
    excitation = np.zeros(n_sym)
    intensity = np.zeros(n_sym)
    z = np.zeros(n_sym)
    umax = 1.0 + max(u_depth, 0.0)
    next_id = 1
    n_ev = 0
    n_tr = 0
    last_ts = start_ns
    status = SIM_OK

    # ---- the opening book: ``initial`` orders per side, a tick or more from the mid
    for s in range(n_sym):
        mid = math.exp(log_mid[s])
        for j in range(2 * initial):
            side = R.BUY if j % 2 == 0 else R.SELL
            depth = 1 + j // 2 + int(np.random.exponential(offset_mean))
            if side == R.BUY:
                price = (int(mid) // tick - depth + 1) * tick
            else:
                price = (int(mid) // tick + depth + 1) * tick
            if price < tick:
                price = tick
            if n_live[s] >= capacity or n_ev >= max_events:
                continue
            qty = _draw_size(lot, round_p, lots_mean, log_mu, log_sigma)
            k = n_live[s]
            live_id[s, k] = next_id
            live_price[s, k] = price
            live_qty[s, k] = qty
            live_side[s, k] = side
            live_ts[s, k] = last_ts
            n_live[s] = k + 1
            _write_event(events, n_ev, last_ts, next_id, price, qty, s, R.EV_ADD, side,
                         R.LIMIT, R.GTC)
            n_ev += 1
            next_id += 1

    # ---- Ogata thinning over the session
    t = 0.0
    t_last_event = 0.0
    sqrt_sigma_dt = 0.0
    while True:
        lam_bar = 0.0
        for s in range(n_sym):
            lam_bar += rate * umax + excitation[s]
        wait = np.random.exponential(1.0 / lam_bar)
        t += wait
        if t >= duration:
            break
        decay = math.exp(-beta * wait)
        total = 0.0
        u = _u_shape(t / duration, u_depth)
        for s in range(n_sym):
            excitation[s] *= decay
            intensity[s] = rate * u + excitation[s]
            total += intensity[s]
        if np.random.random() * lam_bar > total:
            continue  # thinned away
        # room for the worst case of this event: one add plus a full sweep
        if n_ev + capacity + 2 > max_events or n_tr + capacity + 1 > max_trades:
            status = SIM_EVENTS_FULL
            break

        # -- latent mids move over [t_last_event, t]: correlated diffusion + jumps
        dt = t - t_last_event
        t_last_event = t
        sqrt_sigma_dt = sigma * math.sqrt(dt)
        for s in range(n_sym):
            z[s] = np.random.normal()
        for s in range(n_sym):
            acc = 0.0
            for j in range(s + 1):
                acc += chol[s, j] * z[j]
            log_mid[s] += sqrt_sigma_dt * acc - 0.5 * sigma * sigma * dt
            if jump_rate > 0.0 and np.random.random() < 1.0 - math.exp(-jump_rate * dt):
                log_mid[s] += np.random.laplace(0.0, jump_scale)
                excitation[s] += jump_excite

        # -- which symbol (proportional to its intensity)
        pick = np.random.random() * total
        sym = n_sym - 1
        acc = 0.0
        for s in range(n_sym):
            acc += intensity[s]
            if pick < acc:
                sym = s
                break
        excitation[sym] += alpha

        ts = start_ns + int(t * 1e9)
        if ts <= last_ts:
            ts = last_ts + 1  # strictly increasing: replay order is never ambiguous
        last_ts = ts

        ids = live_id[sym]
        prices = live_price[sym]
        qtys = live_qty[sym]
        sides = live_side[sym]
        tss = live_ts[sym]
        n = n_live[sym]
        mid = math.exp(log_mid[sym])
        best_bid = _best(prices, qtys, sides, n, R.BUY)
        best_ask = _best(prices, qtys, sides, n, R.SELL)

        w_cancel = cancel_rate * n
        w_total = w_limit + w_market + w_cancel
        r = np.random.random() * w_total
        if n >= capacity:
            r = w_limit + w_market  # book full: force a cancel
        if r < w_limit:
            # ---------------------------------------------------------- limit add
            if np.random.random() < 0.5:
                side = R.BUY
            else:
                side = R.SELL
            depth = int(np.random.exponential(offset_mean))
            if side == R.BUY:
                price = (int(mid - 0.5 * tick) // tick - depth) * tick
                if best_ask > 0 and price >= best_ask:
                    price = best_ask - tick
            else:
                price = (int(mid + 0.5 * tick) // tick + 1 + depth) * tick
                if best_bid > 0 and price <= best_bid:
                    price = best_bid + tick
            if price < tick:
                price = tick
            if side == R.BUY and best_ask > 0 and price >= best_ask:
                continue  # no room below a one-tick ask: skip rather than cross
            qty = _draw_size(lot, round_p, lots_mean, log_mu, log_sigma)
            ids[n] = next_id
            prices[n] = price
            qtys[n] = qty
            sides[n] = side
            tss[n] = ts
            n_live[sym] = n + 1
            _write_event(events, n_ev, ts, next_id, price, qty, sym, R.EV_ADD, side,
                         R.LIMIT, R.GTC)
            n_ev += 1
            next_id += 1
        elif r < w_limit + w_market:
            # ---------------------------------------------------- marketable order
            book_mid = mid
            if best_bid > 0 and best_ask > 0:
                book_mid = 0.5 * (best_bid + best_ask)
            gap = (mid - book_mid) / (tick * max(pressure, 1e-9))
            p_buy = 1.0 / (1.0 + math.exp(-gap))
            side = R.BUY if np.random.random() < p_buy else R.SELL
            maker_side = R.SELL if side == R.BUY else R.BUY
            if (maker_side == R.SELL and best_ask < 0) or (maker_side == R.BUY and best_bid < 0):
                continue  # nothing to hit
            want = _draw_size(lot, round_p, lots_mean, log_mu, log_sigma)
            # Cap at the liquidity of the first ``max_levels`` levels so one order never
            # empties a side; the replaying book then fills exactly what we fill.
            avail = 0
            level_price = best_ask if maker_side == R.SELL else best_bid
            levels = 0
            while levels < max_levels and level_price > 0:
                next_price = -1
                for k in range(n):
                    if sides[k] != maker_side:
                        continue
                    p = prices[k]
                    if p == level_price:
                        avail += qtys[k]
                    elif maker_side == R.SELL and p > level_price:
                        if next_price < 0 or p < next_price:
                            next_price = p
                    elif maker_side == R.BUY and p < level_price:
                        if next_price < 0 or p > next_price:
                            next_price = p
                level_price = next_price
                levels += 1
            qty = min(want, avail)
            taker_id = next_id
            next_id += 1
            if market_as_orders:
                _write_event(events, n_ev, ts, taker_id, 0, qty, sym, R.EV_ADD, side,
                             R.MARKET, R.IOC)
                n_ev += 1
            remaining = qty
            while remaining > 0:
                best = _best(prices, qtys, sides, n, maker_side)
                slot = _first_in_queue(ids, prices, sides, n, maker_side, best)
                fill = min(remaining, qtys[slot])
                remaining -= fill
                qtys[slot] -= fill
                tr = trades[n_tr]
                tr.seq = n_tr
                tr.ts = ts
                tr.maker_ts = tss[slot]
                tr.maker_id = ids[slot]
                tr.taker_id = taker_id if market_as_orders else 0
                tr.price = prices[slot]
                tr.qty = fill
                tr.maker_leaves = qtys[slot]
                tr.symbol = sym
                tr.taker_side = side
                n_tr += 1
                if not market_as_orders:
                    _write_event(events, n_ev, ts, ids[slot], prices[slot], fill, sym,
                                 R.EV_EXECUTE, maker_side, R.LIMIT, R.GTC)
                    n_ev += 1
                if qtys[slot] == 0:
                    n -= 1
                    ids[slot] = ids[n]
                    prices[slot] = prices[n]
                    qtys[slot] = qtys[n]
                    sides[slot] = sides[n]
                    tss[slot] = tss[n]
            n_live[sym] = n
        else:
            # ---------------------------------------------------------- cancel
            if n == 0:
                continue
            slot = int(np.random.random() * n)
            if slot >= n:
                slot = n - 1
            leaves = qtys[slot]
            if leaves >= 2 and np.random.random() < partial_p:
                cut = 1 + int(np.random.random() * (leaves - 1))
                if cut >= leaves:
                    cut = leaves - 1
                qtys[slot] = leaves - cut
                _write_event(events, n_ev, ts, ids[slot], prices[slot], cut, sym,
                             R.EV_CANCEL, sides[slot], R.LIMIT, R.GTC)
                n_ev += 1
            else:
                _write_event(events, n_ev, ts, ids[slot], prices[slot], leaves, sym,
                             R.EV_DELETE, sides[slot], R.LIMIT, R.GTC)
                n_ev += 1
                n -= 1
                ids[slot] = ids[n]
                prices[slot] = prices[n]
                qtys[slot] = qtys[n]
                sides[slot] = sides[n]
                tss[slot] = tss[n]
                n_live[sym] = n

    for s in range(n_sym):
        fundamental[s] = log_mid[s]
    return status, n_ev, n_tr
