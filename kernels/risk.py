"""Pre-trade risk checks for backtested strategies: limits, rate limit, kill switch.

Owns the risk parameter layout (``RP_*`` indices into a float64 array) and its
registry (``RISK_PARAMS``: name, index, default, range, unit of every limit), the risk
reject reasons (``RK_*``) and one kernel, :func:`check_new_order`, which the backtest
loop calls for every order a strategy emits, before the order-entry latency: this is
the strategy's own gateway, so a rejected order never reaches the exchange.

A limit of 0 means "no limit". The kill switch trips when the strategy's equity (as
it knows it) falls below ``-RP_MAX_LOSS`` or when ``RP_KILL`` is set: from then on
every new order is rejected with ``RK_KILL_SWITCH`` and the loop cancels what rests.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel
from .registry import Param

# risk parameter indices (float64 array of N_RISK_PARAMS)
RP_MAX_ORDER_QTY = 0     # largest single order
RP_MAX_POSITION = 1      # |position + open orders on the side + new qty| limit
RP_MAX_NOTIONAL = 2      # qty * price (currency) of one order
RP_PRICE_BAND_BPS = 3    # |price - mid| / mid limit, basis points
RP_MAX_ORDERS = 4        # orders allowed per rate window
RP_RATE_WINDOW_NS = 5    # the rate window (ns of local time)
RP_MAX_LOSS = 6          # kill switch when equity < -max_loss
RP_KILL = 7              # 1: kill switch engaged from the start
N_RISK_PARAMS = 8

# risk reject reasons
RK_NONE = 0
RK_MAX_ORDER_QTY = 1
RK_MAX_POSITION = 2
RK_MAX_NOTIONAL = 3
RK_PRICE_BAND = 4
RK_ORDER_RATE = 5
RK_KILL_SWITCH = 6
RK_INVALID = 7           # non-positive qty/price or unknown side from the strategy
RK_MAX_OPEN = 8          # the open-order table (or the order log) is full
N_RISK_REASONS = 9

RISK_REASON_NAMES = ("none", "max_order_qty", "max_position", "max_notional", "price_band",
                     "order_rate", "kill_switch", "invalid_order", "max_open_orders")

# risk state indices (int64 array of N_RISK_STATE)
RS_WINDOW_START = 0
RS_WINDOW_COUNT = 1
RS_KILLED = 2
N_RISK_STATE = 3


# ------------------------------------------------------------------------ the registry
# One row per limit (0 = no limit). A new limit is one row here, one index above and its
# test in :func:`check_new_order`; the backtester, the live pipeline and the widgets
# read this table. ``scale`` turns the unit people type into the kernel's unit.
RISK_PARAMS = (
    Param("max_order_qty", RP_MAX_ORDER_QTY, 0.0, 0.0, 1e15, doc="largest single order"),
    Param("max_position", RP_MAX_POSITION, 0.0, 0.0, 1e15,
          doc="|position + open orders on the side + new qty|"),
    Param("max_notional", RP_MAX_NOTIONAL, 0.0, 0.0, 1e18, unit="currency",
          doc="qty * price of one order"),
    Param("price_band_bps", RP_PRICE_BAND_BPS, 0.0, 0.0, 1e6, unit="bps",
          doc="|price - mid| / mid"),
    Param("max_orders_per_window", RP_MAX_ORDERS, 0.0, 0.0, 1e12, True,
          doc="orders allowed per rate window"),
    Param("rate_window_s", RP_RATE_WINDOW_NS, 0.0, 0.0, 1e6, scale=1e9, unit="s",
          doc="the rate window (0: one second)"),
    Param("max_loss", RP_MAX_LOSS, 0.0, 0.0, 1e18, unit="currency",
          doc="kill switch when equity < -max_loss"),
    Param("kill", RP_KILL, 0.0, 0.0, 1.0, True, doc="1: kill switch engaged"),
)


def default_risk_params() -> np.ndarray:
    """No limits at all."""
    out = np.zeros(N_RISK_PARAMS, dtype=np.float64)
    for p in RISK_PARAMS:
        out[p.index] = p.default * p.scale
    return out


@kernel
def check_new_order(rp, rs, now, side, price, qty, position, open_same_side, mid, price_scale):
    """Reason code for a new order (``RK_NONE`` when it may go).

    ``position`` and ``open_same_side`` are what the strategy knows (its position and
    the quantity of its pending + resting orders on ``side``); ``mid`` in price units
    (<= 0 when the book has no mid: the band check is skipped).
    """
    if rs[RS_KILLED] != 0:
        return RK_KILL_SWITCH
    if qty <= 0 or price <= 0 or (side != 0 and side != 1):
        return RK_INVALID
    if rp[RP_MAX_ORDER_QTY] > 0 and qty > rp[RP_MAX_ORDER_QTY]:
        return RK_MAX_ORDER_QTY
    if rp[RP_MAX_POSITION] > 0:
        signed = qty + open_same_side
        worst = position + signed if side == 0 else position - signed
        if abs(worst) > rp[RP_MAX_POSITION]:
            return RK_MAX_POSITION
    if rp[RP_MAX_NOTIONAL] > 0 and qty * (price / price_scale) > rp[RP_MAX_NOTIONAL]:
        return RK_MAX_NOTIONAL
    if rp[RP_PRICE_BAND_BPS] > 0 and mid > 0:
        if abs(price - mid) / mid * 1e4 > rp[RP_PRICE_BAND_BPS]:
            return RK_PRICE_BAND
    if rp[RP_MAX_ORDERS] > 0:
        window = np.int64(rp[RP_RATE_WINDOW_NS]) if rp[RP_RATE_WINDOW_NS] > 0 else np.int64(1_000_000_000)
        if now - rs[RS_WINDOW_START] >= window:
            rs[RS_WINDOW_START] = now
            rs[RS_WINDOW_COUNT] = 0
        if rs[RS_WINDOW_COUNT] + 1 > rp[RP_MAX_ORDERS]:
            return RK_ORDER_RATE
        rs[RS_WINDOW_COUNT] += 1
    return RK_NONE


@kernel
def update_kill_switch(rp, rs, equity):
    """Trip the kill switch on a loss beyond the limit (or when forced); True if tripped."""
    if rs[RS_KILLED] != 0:
        return True
    if rp[RP_KILL] != 0 or (rp[RP_MAX_LOSS] > 0 and equity < -rp[RP_MAX_LOSS]):
        rs[RS_KILLED] = 1
        return True
    return False
