"""The backtest's state: the arrays a run touches, declared once, and their layouts.

Owns ``BacktestState`` (L3 and L2 loops) and ``L2State`` (the L2 loop's price ladders and
queue estimates), each declared field by field with ``kernels.state_codegen.Array``
(``kernels.state_views`` is generated from these declarations: edit a field, rerun
``python -m kernels.state_codegen``), and the layouts of their small arrays:

``BC_*``   backtest counters (``cnt``, int64); ``BT_*`` the run status in ``BC_STATUS``
``ACC_*``  accounting (``acc``, float64)
``G_*``    config (``cfg``, int64); ``FM_*`` the L2 exchange's fill rule in ``G_FILL_MODE``
``FEE_*``  fees (``fees``, float64: basis points of notional, negative = rebate)
``M_*``    the L2 ladder's meta (``L2State.meta``, int64)

Contract: the Python layer (``workbench.backtest``) allocates every array once with
these dtypes and lengths; the kernels never allocate. No kernels here, so
``kernels.state_views`` can import the declarations.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..book_state import BookState
from ..records import (
    ACTION, CTX, FILL, LIVE, ORDER_LOG, OWN_FILL, PENDING, RESPONSE, STEP, VIEW,
)
from ..state_codegen import Array

# ----------------------------------------------------------- backtest counters (int64)
BC_STATUS = 0
BC_WAKES = 1
BC_FEED_PUSHES = 2
BC_ORDERS = 3          # order log rows used
BC_CANCELS = 4
BC_FILLS = 5           # own fills (records written + dropped)
BC_STEPS = 6
BC_POSITION = 7        # exchange-truth position
BC_NEXT_STEP_TS = 8
BC_RESTING = 9         # own orders resting in the book
BC_FEED_HEAD = 10
BC_FEED_TAIL = 11
BC_ENTRY_HEAD = 12
BC_ENTRY_TAIL = 13
BC_RESP_HEAD = 14
BC_RESP_TAIL = 15
BC_FEED_LAST = 16
BC_ENTRY_LAST = 17
BC_RESP_LAST = 18
BC_BID = 19
BC_BID_QTY = 20
BC_ASK = 21
BC_ASK_QTY = 22
BC_LAST_PRICE = 23
BC_LAST_QTY = 24
BC_LAST_SIDE = 25
BC_MAKER_FILLS = 26
BC_TAKER_FILLS = 27
BC_DROPPED_FILLS = 28
BC_DROPPED_STEPS = 29
BC_KILL_SENT = 30
BC_EVENTS = 31          # market events applied
BC_MARKET_REJECTS = 32  # market events the book rejected (unknown ids in gappy files...)
BC_TRADE_THROUGH = 33   # own fills from the trade-through rule
BC_FILLED_QTY = 34
BC_NEXT_TIMER = 35      # exchange time of the next timer wake (0: not started)
BC_TIMER_WAKES = 36     # strategy calls by the timer
BC_RISK_REJECTS = 40    # + RK_* code
BC_EXCH_REJECTS = 56    # + R_* code (own orders)
N_BACKTEST_COUNTERS = 80

# run status codes (cnt[BC_STATUS])
BT_OK = 0
BT_RING_FULL = 1

# --------------------------------------------------------------- accounting (float64)
ACC_CASH = 0
ACC_AVG_PRICE = 1      # average entry price of the open position (currency)
ACC_REALISED = 2       # realised P&L after fees
ACC_FEES = 3
ACC_MID = 4            # exchange mid (price units), last two-sided
ACC_TURNOVER = 5       # traded notional (currency)
N_ACC = 8

# -------------------------------------------------------------------- config (int64)
G_RECORD_EVERY_NS = 0
G_PRICE_SCALE = 1
G_TICK = 2
G_TIMER_NS = 3         # wake the strategy every this many ns of exchange time (0: off)
G_FILL_MODE = 4        # FM_*: how the L2 exchange fills own orders
N_CFG = 8

# fill rules of the L2 exchange (cfg[G_FILL_MODE]); crossings and trades through an own
# order's price fill it in full under every rule
FM_PARTIAL = 0         # fill what the queue estimate and the displayed depth allow
FM_NO_PARTIAL = 1      # hftbacktest's NoPartialFillExchange: once an order may fill, all of
                       # it fills at once (a taker at the best opposite price, whatever its size)
FM_ALL_OR_NONE = 2     # an order fills only when the quantity the event makes available covers
                       # all of it, else it does not fill on that event

# --------------------------------------------------------------------- fees (float64)
FEE_MAKER_BPS = 0
FEE_TAKER_BPS = 1

# ---------------------------------------------------------- L2 ladder meta (int64)
M_LOW = 0              # ladder origin (price units)
M_TICK = 1
M_LEVELS = 2
M_OUT_OF_WINDOW = 3
N_META = 4


class BacktestState(NamedTuple):
    """Every array a backtest run touches; allocated once in Python."""

    st: BookState                 # the book (L3 loop; a minimal one for the L2 loop)
    fills: Array[FILL]            # scratch for apply_event
    ctx: Array[CTX]               # [1]
    mview: Array[VIEW]            # [1]: the view last delivered
    orders: Array[LIVE]           # [max_open]
    actions: Array[ACTION]        # [max_actions]
    params: Array[np.float64]     # strategy parameters
    log: Array[ORDER_LOG]         # [max_orders]
    own_fills: Array[OWN_FILL]    # [max_fills]
    steps: Array[STEP]            # [max_steps]
    feed: Array[VIEW]             # ring (power of two)
    entry: Array[PENDING]         # ring
    resp: Array[RESPONSE]         # ring
    resting: Array[np.int64]      # [max_open]: log rows of own orders resting in the book
    cnt: Array[np.int64]          # [N_BACKTEST_COUNTERS]: BC_*
    acc: Array[np.float64]        # [N_ACC]: ACC_*
    cfg: Array[np.int64]          # [N_CFG]: G_*
    fees: Array[np.float64]       # [2]: FEE_*
    risk_params: Array[np.float64]  # [risk.N_RISK_PARAMS]
    risk_state: Array[np.int64]   # [risk.N_RISK_STATE]
    lat_params: Array[np.float64]   # [3+]
    lat_table: Array[np.int64, 2]   # [3, m]
    rng: Array[np.int64]          # [1]
    hist: Array[np.int64]         # tick-to-trade histogram (kernels.histogram)


class L2State(NamedTuple):
    """The L2 loop's own arrays, next to its ``BacktestState``."""

    bids: Array[np.int64]         # [levels] market size per tick
    asks: Array[np.int64]
    best: Array[np.int64]         # [2] ladder index of best bid / ask (-1 empty)
    meta: Array[np.int64]         # [N_META]: M_*
    front: Array[np.float64]      # [max_orders]: estimated quantity ahead, per order log row
    traded: Array[np.float64]     # [max_orders]: traded at its level since the last depth row
    qparams: Array[np.float64]    # queue model parameters
