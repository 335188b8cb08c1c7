"""Record dtypes and integer codes shared by every kernel: defined here once.

Each concept has exactly one dtype (all ``align=True`` so fields sit on their natural
boundaries and Numba generates plain loads):

``EVENT``    what flows *into* the engine: a new order, a cancel, a modify, an
             execution replayed from an exchange, a halt. LOBSTER files, the
             simulator, FIX ``NewOrderSingle`` and ``Engine.submit_many`` all produce it.
``ORDER``    one resting order in the book's object pool (exactly one 64-byte cache
             line), linked into its price level's FIFO queue.
``FILL``     one match between a resting (maker) order and an incoming (taker) one.
``RESULT``   the engine's answer to one event: status, reject reason, filled, leaves.
``MESSAGE``  the 64-byte cache-line message that travels through the SPSC rings.

Prices are integers everywhere in the kernels: ``price_units = price * price_scale``
(``price_scale`` defaults to 10_000, LOBSTER's convention), so matching never compares
floats. Quantities are integers too.

The integer codes below are module globals so Numba folds them into constants; the
Python layer (``workbench.enums``) exposes the same numbers as ``IntEnum`` classes.
"""
from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- sides
BUY = 0
SELL = 1

# ---------------------------------------------------------------------- order type
LIMIT = 0
MARKET = 1

# ------------------------------------------------------------------- time in force
GTC = 0  # rests until cancelled
IOC = 1  # immediate or cancel: fill what crosses now, cancel the rest
FOK = 2  # fill or kill: all of it now, or nothing

# --------------------------------------------------------------------- event kinds
# The first seven follow LOBSTER's message types so a LOBSTER file maps one to one.
EV_ADD = 1             # new order (limit/market, any time in force)
EV_CANCEL = 2          # partial cancel: reduce by ``qty`` (0 or >= leaves cancels all)
EV_DELETE = 3          # full cancel
EV_EXECUTE = 4         # an exchange executed ``qty`` of resting order ``order_id``
EV_EXECUTE_HIDDEN = 5  # a trade against hidden liquidity: recorded, book untouched
EV_CROSS = 6           # auction cross trade: recorded, book untouched
EV_HALT = 7            # trading halt / quote / resume (``price`` = -1, 0, 1 as in LOBSTER)
EV_MODIFY = 8          # new price and/or quantity for a resting order

# -------------------------------------------------------------------- order status
ST_NEW = 0               # accepted and resting, nothing filled
ST_PARTIALLY_FILLED = 1  # some filled; the rest rests (or was cancelled, see leaves)
ST_FILLED = 2
ST_CANCELLED = 3         # cancelled (by request, or IOC/market remainder)
ST_REJECTED = 4
ST_DONE = 5              # non-order events applied (hidden trade, halt)

# ------------------------------------------------------------------ reject reasons
R_NONE = 0
R_UNKNOWN_ORDER = 1
R_DUPLICATE_ID = 2
R_NON_POSITIVE_QTY = 3
R_PRICE_OFF_TICK = 4
R_POOL_FULL = 5
R_FOK_NOT_FILLABLE = 6
R_PRICE_OUT_OF_BAND = 7   # outside the book's price ladder window
R_UNKNOWN_SYMBOL = 8
R_INVALID_SIDE = 9
R_INVALID_TYPE = 10       # unknown order type / time in force / event kind
R_NON_POSITIVE_PRICE = 11
R_HALTED = 12
R_OUTPUT_FULL = 13        # fills buffer full: the batch stops *before* this event
N_REJECT_REASONS = 14

REJECT_REASON_NAMES = (
    "none", "unknown_order", "duplicate_id", "non_positive_qty", "price_off_tick",
    "pool_full", "fok_not_fillable", "price_out_of_band", "unknown_symbol",
    "invalid_side", "invalid_type", "non_positive_price", "halted", "output_full",
)

# ------------------------------------------------------------------------- dtypes
EVENT = np.dtype(
    [
        ("ts", np.int64),        # event time, ns (exchange or local clock)
        ("order_id", np.int64),
        ("price", np.int64),     # price units (price * price_scale); 0 for market orders
        ("qty", np.int64),
        ("symbol", np.int32),    # book index inside an Engine
        ("kind", np.int8),       # EV_*
        ("side", np.int8),       # BUY / SELL
        ("order_type", np.int8), # LIMIT / MARKET
        ("tif", np.int8),        # GTC / IOC / FOK
    ],
    align=True,
)

ORDER = np.dtype(
    [
        ("order_id", np.int64),
        ("price", np.int64),
        ("qty", np.int64),       # leaves: what still rests
        ("filled", np.int64),
        ("ts", np.int64),        # priority time (entry, or last priority-losing modify)
        ("next", np.int32),      # FIFO successor in the level; free-list link when free
        ("prev", np.int32),
        ("symbol", np.int32),
        ("level", np.int32),     # index in the book's price ladder
        ("side", np.int8),
        ("order_type", np.int8),
        ("tif", np.int8),
        ("status", np.int8),
    ],
    align=True,
)

FILL = np.dtype(
    [
        ("seq", np.int64),        # engine-wide match sequence number
        ("ts", np.int64),         # taker event time
        ("maker_ts", np.int64),   # maker's priority time (time in queue = ts - maker_ts)
        ("maker_id", np.int64),
        ("taker_id", np.int64),   # 0 for executions replayed by id
        ("price", np.int64),
        ("qty", np.int64),
        ("maker_leaves", np.int64),
        ("symbol", np.int32),
        ("taker_side", np.int8),
    ],
    align=True,
)

RESULT = np.dtype(
    [
        ("order_id", np.int64),
        ("filled", np.int64),
        ("leaves", np.int64),
        ("n_fills", np.int32),
        ("status", np.int8),
        ("reason", np.int8),
    ],
    align=True,
)

# 64-byte cache-line message for the SPSC rings (type, sequence, timestamp, symbol,
# side, price, quantity, payload); exactly one cache line so a slot never straddles two.
MSG_PAYLOAD_BYTES = 16
MESSAGE = np.dtype(
    [
        ("seq", np.int64),
        ("ts", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("order_id", np.int64),
        ("symbol", np.int32),
        ("msg_type", np.int8),
        ("side", np.int8),
        ("flags", np.int16),
        ("payload", np.uint8, (MSG_PAYLOAD_BYTES,)),
    ],
    align=True,
)

assert ORDER.itemsize == 64, ORDER.itemsize
assert MESSAGE.itemsize == 64, MESSAGE.itemsize
