"""Record dtypes and integer codes shared by every kernel: defined here once.

Every record dtype of the kernels is defined in this module, and each concept has
exactly one dtype (all ``align=True`` so fields sit on their natural boundaries and
Numba generates plain loads). The engine:

``EVENT``    what flows *into* the engine: a new order, a cancel, a modify, an
             execution replayed from an exchange, a halt. LOBSTER files, the
             simulator, FIX ``NewOrderSingle`` and ``Engine.submit_many`` all produce it.
``ORDER``    one resting order in the book's object pool (exactly one 64-byte cache
             line), linked into its price level's FIFO queue.
``FILL``     one match between a resting (maker) order and an incoming (taker) one.
``RESULT``   the engine's answer to one event: status, reject reason, filled, leaves.
``MESSAGE``  the 64-byte cache-line message that travels through the SPSC rings.
``LEVEL``    one price level of a book's ladder: its FIFO of orders and their total.
``BOOK``     one book's scalars: ladder origin, tick, best indices, traded volume.

Price-level (L2) market data:

``L2_UPDATE``  one price level's new absolute size, as a depth feed sends it (flags
               ``L2F_*``); the L2 backtest also carries trades in it (``L2F_TRADE``).
``BBO``        the best bid and ask after one message.

The strategy interface (the backtest loops and the live pipeline call every strategy
as ``strategy(ctx, view, orders, params, actions)``; :func:`strategy_io` allocates
those arrays) and the backtest's own records:

``CTX``        the strategy's context: local time, known position/cash, scratch memory.
``VIEW``       the market view delivered to it: top of book, last trade, own best orders.
``LIVE``       one open order as the strategy knows it.
``ACTION``     one order or cancel the strategy asks for.
``PENDING``    an order or cancel travelling to the exchange (entry latency).
``RESPONSE``   an ack, fill, cancel or reject travelling back (response latency).
``ORDER_LOG``  the life of one own order, for the report.
``OWN_FILL``   one fill of an own order, with fees and slippage.
``STEP``       one sample of the equity curve.

The FIX 4.4 codec (``kernels.fix``; its section is at the end of this module):

``FIX_MESSAGE``  one framed message: byte span, header facts, session-level reject.
``FIX_FIELD``    one tag of the zero-copy index: a value's byte span in the caller's buffer.
``EXEC_REPORT``  an ExecutionReport (35=8), decoded from the wire or the encoder's input.
``MD_ENTRY``     one repeating-group entry of a MarketData snapshot (W) or refresh (X).

The NASDAQ TotalView-ITCH 5.0 codec (``kernels.itch``; its section is the last one):

``ITCH_MSG``     one message, every field of its type in fixed slots.
``ITCH_REF``     one live order of the decoder's (or the writer's) order-reference table.
``BOOK_TOP``     the best bid and ask of one book of a multi-book replay after an event.

The journal (``kernels.journal``, ``workbench.journal``; its own section, after ITCH's):

``JOURNAL_RECORD``  one journaled engine command as applied, with its sequence number,
                    wall time and CRC32C: one 64-byte line, in a ring slot and on disk.

DeFi (``kernels.amm``, ``kernels.arbitrage``; its section is the last one): ``SWAP_MSG``
(a 64-byte swap event), ``POOL`` (a constant-product pool), ``CYCLE`` and ``ARB_OPP``.

Batching (``kernels.batching``, ``workbench.batching``; its own section, at the end):

``BATCH``  one batch a consumer took: when, how many, its limit, the backlog left, the
           latency of its oldest item, and the limit the controller set after it.

Prices are integers everywhere in the kernels: ``price_units = price * price_scale``
(``price_scale`` defaults to 10_000, LOBSTER's convention), so matching never compares
floats. Quantities are integers too.

The integer codes below are module globals so Numba folds them into constants; the
Python layer (``workbench.enums``) exposes the same numbers as ``IntEnum`` classes.
"""
from __future__ import annotations

from typing import NamedTuple

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
GTX = 3  # post-only (good till crossing): rejected on arrival if it would take (backtester
         # only: the engine's book refuses it as invalid_type)

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
# Replay kinds: an exchange feed (ITCH, Databento MBO) reports its own matches as
# executions, so its adds and modifies must never match in our book.
EV_REST = 9            # rest an order at its price without matching (a feed's add)
EV_MOVE = 10           # a feed's modify: less size at the same price keeps priority, a new
                       # price or more size re-queues at the tail; never matches
EV_CLEAR = 11          # remove every resting order of the book (a feed's book clear)

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
R_PRICE_OUT_OF_BAND = 7   # outside the opt-in price collar (BOOK.collar_bps)
R_UNKNOWN_SYMBOL = 8
R_INVALID_SIDE = 9
R_INVALID_TYPE = 10       # unknown order type / time in force / event kind
R_NON_POSITIVE_PRICE = 11
R_HALTED = 12
R_OUTPUT_FULL = 13        # fills buffer full: the batch stops *before* this event
R_INVALID_ID = 14         # order id is the id index's empty marker (kernels.order_index.EMPTY_KEY)
R_QTY_TOO_LARGE = 15      # quantity above MAX_QTY
R_PRICE_TOO_LARGE = 16    # price above MAX_PRICE
R_POST_ONLY_WOULD_TAKE = 17  # a GTX order that would cross the opposite best on arrival
N_REJECT_REASONS = 18

REJECT_REASON_NAMES = (
    "none", "unknown_order", "duplicate_id", "non_positive_qty", "price_off_tick",
    "pool_full", "fok_not_fillable", "price_out_of_band", "unknown_symbol",
    "invalid_side", "invalid_type", "non_positive_price", "halted", "output_full",
    "invalid_id", "qty_too_large", "price_too_large", "post_only_would_take",
)
assert len(REJECT_REASON_NAMES) == N_REJECT_REASONS

# -------------------------------------------------------------- engine input limits
# What the book kernels represent without overflow. The kernels reject a row outside
# them with a reason code; the Python layer (``workbench.book``) and the loaders raise
# ``ValueError`` naming the field. Why these numbers:
#
# * ``MAX_QTY`` (2**31 - 1) times ``MAX_CAPACITY`` (2**31 - 2, the pool's int32 slot
#   numbers) is below 2**62: a level's quantity, a side's crossing liquidity or a queue
#   position, each a sum over at most every order of the pool, cannot overflow int64,
#   and two such sums still add without overflow.
# * ``MAX_PRICE`` (2**44 - 1 units: 1.76e9 at the default price scale of 10 000) keeps
#   the anonymous-volume ids of ``kernels.book.anon_order_id`` (the price in 44 bits,
#   ``book * 2 + side`` above it) distinct, negative and never ``EMPTY_KEY``, for
#   fewer than ``MAX_BOOKS`` books.
# * Order ids are any int64 but ``kernels.order_index.EMPTY_KEY`` (-2**63), the id
#   index's empty marker; the Python layer takes ids from 1 to ``MAX_ORDER_ID``.
# * A resting order's cumulative ``filled`` grows with each modify that adds quantity
#   back; it stays exact for over 2**31 full refills of a ``MAX_QTY`` order.
MAX_QTY = 2**31 - 1
MAX_PRICE = 2**44 - 1
MAX_CAPACITY = 2**31 - 2
MAX_BOOKS = 2**16
MAX_ORDER_ID = 2**63 - 1

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


# ===================================================================== book internals
# kernels.book's ladder levels and per-book scalars (kernels.book_state allocates them).
LEVEL = np.dtype(
    [
        ("qty", np.int64),     # resting quantity
        ("price", np.int64),   # price units (set when the level is created)
        ("head", np.int32),    # oldest order (pool slot), -1 when empty
        ("tail", np.int32),    # newest order
        ("count", np.int32),   # orders at the level
    ],
    align=True,
)

BOOK = np.dtype(
    [
        ("lo", np.int64, (2,)),        # lowest tick (price // tick) of each side's window
        ("tick", np.int64),            # tick size in price units
        ("orders", np.int64, (2,)),    # resting orders per side
        ("last_price", np.int64),
        ("volume", np.int64),          # traded quantity (book matches + replayed trades)
        ("trades", np.int64),
        ("collar_bps", np.int64),      # opt-in price collar around the reference, 0 = off
        ("best", np.int32, (2,)),      # level handle of best bid / best ask, -1 if none
        ("n_levels", np.int32, (2,)),  # occupied levels per side (window + overflow)
        ("ovf_head", np.int32, (2,)),  # best overflow level (node) per side, -1 if none
        ("ovf_tail", np.int32, (2,)),  # worst overflow level per side
        ("n_ovf", np.int32, (2,)),     # overflow levels per side
        ("placed", np.int8, (2,)),     # side's window placed? (0 while the side is empty)
        ("halted", np.int8),
    ],
    align=True,
)


# ============================================================== price-level (L2) data
# L2_UPDATE.flags bits
L2F_SNAPSHOT = 1        # part of a full snapshot: the first row of one clears the book
L2F_SNAPSHOT_START = 2
L2F_END_OF_MESSAGE = 4  # the last level of a message: the book is consistent after it
L2F_TRADE = 64          # the row is a trade (L2 backtest input), not a level size

L2_UPDATE = np.dtype(
    [
        ("ts", np.int64),         # local receive time, ns since the epoch
        ("exch_ts", np.int64),    # exchange event time, ns since the epoch (0 if none)
        ("update_id", np.int64),  # the message's last update id (Binance ``u``, snapshot ``lastUpdateId``)
        ("first_id", np.int64),   # the message's first update id (``U``)
        ("prev_id", np.int64),    # futures ``pu`` (the previous message's ``u``); -1 when absent
        ("price", np.int64),      # price units (price * price_scale)
        ("qty", np.int64),        # new absolute level size, qty units (qty * qty_scale); 0 removes
        ("symbol", np.int32),
        ("side", np.int8),        # BUY (bid) / SELL (ask); a trade's aggressor side
        ("flags", np.int8),       # L2F_* bits
    ],
    align=True,
)

BBO = np.dtype(
    [
        ("ts", np.int64),
        ("update_id", np.int64),
        ("bid_price", np.int64),  # -1 when the side is empty
        ("bid_qty", np.int64),
        ("ask_price", np.int64),
        ("ask_qty", np.int64),
    ],
    align=True,
)


# ====================================================== strategy interface and backtest
STRATEGY_ID_BASE = np.int64(1) << 62   # own order ids: STRATEGY_ID_BASE + order log row

# ACTION.kind and PENDING.kind
A_NEW = 1
A_CANCEL = 2

# LIVE.state: an open order as the strategy knows it
OS_FREE = 0
OS_PENDING_NEW = 1
OS_LIVE = 2
OS_PENDING_CANCEL = 3

# RESPONSE.kind
RSP_ACK = 1
RSP_FILL = 2
RSP_CANCELLED = 3
RSP_REJECTED = 4
RSP_CANCEL_REJECTED = 5

# CTX.wake: why the strategy was called
W_MARKET = 1
W_RESPONSE = 2
W_TIMER = 3      # the backtester's timer (every G_TIMER_NS of exchange time)

# ORDER_LOG.status: an own order's final status
LS_PENDING = 0   # sent, not yet at the exchange (or at the end of the data)
LS_OPEN = 1      # resting at the end
LS_FILLED = 2
LS_CANCELLED = 3
LS_REJECTED = 4  # by risk (risk_reason) or the exchange (exchange_reason)

# OWN_FILL.liquidity
LIQ_MAKER = 0
LIQ_TAKER = 1

ACTION = np.dtype([("order_id", np.int64), ("price", np.int64), ("qty", np.int64),
                   ("kind", np.int8), ("side", np.int8), ("tif", np.int8)], align=True)

N_MEM = 16  # CTX.mem slots
CTX = np.dtype([
    ("ts", np.int64),             # local time of this wake (ns)
    ("exch_ts", np.int64),        # exchange time of the latest view delivered
    ("position", np.int64),       # position as the strategy knows it (from responses)
    ("cash", np.float64),         # cash as it knows it (fees included)
    ("equity", np.float64),       # cash + position * mid of the delivered view
    ("last_fill_price", np.int64),
    ("last_fill_qty", np.int64),
    ("last_fill_side", np.int64),
    ("wake", np.int64),           # W_MARKET, W_RESPONSE or W_TIMER
    ("n_wakes", np.int64),
    ("open_bid_qty", np.int64),   # pending + resting quantity it has on each side
    ("open_ask_qty", np.int64),
    ("tick", np.int64),           # price units
    ("price_scale", np.int64),
    ("killed", np.int64),         # kill switch tripped
    ("mem", np.float64, (N_MEM,)),  # strategy scratch (moving averages, counters...)
], align=True)

VIEW = np.dtype([
    ("local_ts", np.int64),       # when it reaches the strategy
    ("exch_ts", np.int64),
    ("bid", np.int64), ("bid_qty", np.int64),   # 0 / 0 when the side is empty
    ("ask", np.int64), ("ask_qty", np.int64),
    ("mid", np.float64),          # price units; last two-sided mid
    ("last_price", np.int64), ("last_qty", np.int64), ("last_side", np.int64),  # aggressor side
    ("own_bid_id", np.int64), ("own_bid_price", np.int64), ("own_bid_leaves", np.int64),
    ("own_bid_ahead", np.int64),  # quantity ahead of the own best bid in its queue
    ("own_ask_id", np.int64), ("own_ask_price", np.int64), ("own_ask_leaves", np.int64),
    ("own_ask_ahead", np.int64),
], align=True)

LIVE = np.dtype([("order_id", np.int64), ("price", np.int64), ("qty", np.int64),
                 ("leaves", np.int64), ("filled", np.int64), ("side", np.int8),
                 ("state", np.int8), ("tif", np.int8)], align=True)

PENDING = np.dtype([("ts", np.int64), ("order_id", np.int64), ("price", np.int64),
                    ("qty", np.int64), ("kind", np.int8), ("side", np.int8), ("tif", np.int8)],
                   align=True)

RESPONSE = np.dtype([("ts", np.int64), ("order_id", np.int64), ("price", np.int64),
                     ("qty", np.int64), ("leaves", np.int64), ("fee", np.float64),
                     ("kind", np.int8), ("side", np.int8), ("reason", np.int8)], align=True)

ORDER_LOG = np.dtype([
    ("order_id", np.int64), ("submit_ts", np.int64), ("arrival_ts", np.int64),
    ("done_ts", np.int64), ("price", np.int64), ("qty", np.int64), ("filled", np.int64),
    ("queue_ahead", np.int64),    # quantity ahead when it started resting (-1: never rested)
    ("arrival_mid", np.float64),  # exchange mid when it arrived (price units)
    ("slot", np.int32),           # its row in the LIVE table while open
    ("side", np.int8), ("tif", np.int8), ("status", np.int8),
    ("risk_reason", np.int8), ("exchange_reason", np.int8),
], align=True)

OWN_FILL = np.dtype([
    ("ts", np.int64), ("known_ts", np.int64), ("order_id", np.int64), ("price", np.int64),
    ("qty", np.int64), ("position", np.int64), ("time_in_queue", np.int64),
    ("fee", np.float64), ("arrival_mid", np.float64), ("mid", np.float64),
    ("slippage_bps", np.float64), ("side", np.int8), ("liquidity", np.int8),
], align=True)

STEP = np.dtype([
    ("ts", np.int64), ("position", np.int64), ("bid", np.int64), ("ask", np.int64),
    ("quote_bid", np.int64), ("quote_ask", np.int64),
    ("mid", np.float64), ("cash", np.float64), ("equity", np.float64),
    ("realised", np.float64), ("unrealised", np.float64), ("fees", np.float64),
], align=True)


class StrategyIO(NamedTuple):
    """The arrays a strategy is called with: ``strategy(ctx[0], view[0], orders, params,
    actions)``."""

    ctx: np.ndarray      # CTX[1]
    view: np.ndarray     # VIEW[1]
    orders: np.ndarray   # LIVE[max_open]
    actions: np.ndarray  # ACTION[max_actions]
    params: np.ndarray   # float64[n_params]


def strategy_io(max_open: int, max_actions: int, params, tick: int, price_scale: int) -> StrategyIO:
    """The strategy-interface arrays, zeroed but for what the strategy reads from the
    start: its ``params`` (a copy) and the instrument's ``tick`` and ``price_scale`` in
    ``ctx``. The one allocator the backtester and the live pipeline share."""
    io = StrategyIO(
        ctx=np.zeros(1, dtype=CTX),
        view=np.zeros(1, dtype=VIEW),
        orders=np.zeros(int(max_open), dtype=LIVE),
        actions=np.zeros(int(max_actions), dtype=ACTION),
        params=np.array(params, dtype=np.float64),
    )
    io.ctx[0]["tick"] = tick
    io.ctx[0]["price_scale"] = price_scale
    return io


# ============================================================================= FIX
# The records of the FIX 4.4 codec (kernels.fix; the Python face is workbench.fix).
# Orders (D/F/G) decode into EVENT above; these are the FIX-only concepts:
#
# ``FIX_MESSAGE``  one framed message: byte span, header facts (MsgType, MsgSeqNum,
#                  SendingTime, sender), where its tags sit in the field index, and the
#                  session-level reject found by the dictionary validation.
# ``FIX_FIELD``    one tag of the zero-copy index: ``(start, end)`` is the value's byte
#                  span inside the caller's buffer (nothing is copied), ``tag`` the number,
#                  ``msg`` the owning message.
# ``EXEC_REPORT``  an ExecutionReport (35=8), both decoded from the wire and as the
#                  encoder's input (built from ``FILL`` records by the Python layer).
# ``MD_ENTRY``     one repeating-group entry of a MarketData snapshot (W) or
#                  incremental refresh (X).
#
# Absent or malformed int64 values are ``kernels.fix.fields.NO_VALUE`` (int64 min).

# -------------------------------------- FIX_MESSAGE.msg_type: MsgType (35) codes
# MsgType packed big-endian ('D' -> 68, 'AE' -> 0x4145; kernels.fix.frame.pack_msg_type)
MT_D = 68   # NewOrderSingle
MT_F = 70   # OrderCancelRequest
MT_G = 71   # OrderCancelReplaceRequest
MT_8 = 56   # ExecutionReport
MT_X = 88   # MarketDataIncrementalRefresh
MT_W = 87   # MarketDataSnapshotFullRefresh

# ---------------------- FIX_MESSAGE.reject_reason: SessionRejectReason (373) codes
SR_NONE = -1
SR_INVALID_TAG = 0
SR_REQUIRED_TAG_MISSING = 1
SR_TAG_NOT_DEFINED_FOR_MSG_TYPE = 2
SR_TAG_WITHOUT_VALUE = 4
SR_VALUE_OUT_OF_RANGE = 5
SR_INCORRECT_DATA_FORMAT = 6
SR_COMP_ID_PROBLEM = 9
SR_SENDING_TIME = 10
SR_INVALID_MSG_TYPE = 11
SR_TAG_REPEATED = 13
SR_OUT_OF_ORDER = 14
SR_GROUP_COUNT = 16

FIX_MESSAGE = np.dtype(
    [
        ("start", np.int64),         # offset of '8' of 8=FIX
        ("end", np.int64),           # one past the trailer's delimiter
        ("seq_num", np.int64),       # MsgSeqNum (34), NO_VALUE when absent
        ("sending_time", np.int64),  # SendingTime (52) in ns since the epoch, NO_VALUE if absent
        ("sender", np.int64),        # hash of SenderCompID (49): groups a log's two directions
        ("field_first", np.int64),   # index of its first tag (8=) in the field index
        ("field_count", np.int32),
        ("msg_type", np.int32),      # MsgType packed big-endian: 'D' -> 68, 'AE' -> 0x4145
        ("body_length", np.int32),
        ("reject_tag", np.int32),    # RefTagID (371) for a session reject, 0 if none
        ("reject_reason", np.int16), # SessionRejectReason (373), SR_NONE if valid
        ("checksum", np.uint8),
        ("delimiter", np.uint8),
    ],
    align=True,
)

# 16 bytes, four to a cache line: offsets are int32, so one scan covers < 2 GiB
# (workbench.fix refuses larger buffers with a clear error).
FIX_FIELD = np.dtype(
    [("start", np.int32), ("end", np.int32), ("tag", np.int32), ("msg", np.int32)],
    align=True,
)
MAX_SCAN_BYTES = (1 << 31) - 1

EXEC_REPORT = np.dtype(
    [
        ("order_id", np.int64),     # OrderID (37)
        ("cl_ord_id", np.int64),    # ClOrdID (11) as a number (kernels.fix.fields.order_id_value)
        ("exec_id", np.int64),      # ExecID (17)
        ("ts", np.int64),           # TransactTime (60), ns
        ("price", np.int64),        # Price (44), price units
        ("last_px", np.int64),      # LastPx (31)
        ("last_qty", np.int64),     # LastQty (32)
        ("order_qty", np.int64),    # OrderQty (38)
        ("cum_qty", np.int64),      # CumQty (14)
        ("leaves_qty", np.int64),   # LeavesQty (151)
        ("avg_px", np.int64),       # AvgPx (6)
        ("text_start", np.int64),   # ClOrdID text span in a byte pool (decoded: the buffer)
        ("text_end", np.int64),
        ("msg", np.int32),          # source message index when decoded, -1 when built
        ("symbol", np.int32),       # index into the caller's symbol list, -1 unknown
        ("exec_type", np.uint8),    # ExecType (150) character
        ("ord_status", np.uint8),   # OrdStatus (39) character
        ("side", np.int8),          # BUY / SELL, -1 unknown
        ("order_type", np.int8),    # LIMIT / MARKET, -1 unknown
    ],
    align=True,
)

MD_ENTRY = np.dtype(
    [
        ("price", np.int64),       # MDEntryPx (270), price units
        ("size", np.int64),        # MDEntrySize (271) (integer part)
        ("msg", np.int32),
        ("symbol", np.int32),      # index into the caller's symbol list, -1 unknown
        ("action", np.int8),       # MDUpdateAction (279): 0 new, 1 change, 2 delete (W: 0)
        ("entry_type", np.uint8),  # MDEntryType (269) character: '0' bid, '1' offer, '2' trade
    ],
    align=True,
)


# ============================================================================ ITCH
# The records of the NASDAQ TotalView-ITCH 5.0 codec (kernels.itch; the Python face is
# workbench.data.itch). Book messages decode into EVENT above; these are ITCH's own:
#
# ``ITCH_MSG``  one message with every field of its type, in a fixed set of slots (which
#               slot holds which spec field, per message type: kernels.itch.decode).
#               Unsigned spec integers are stored as their int64 bit pattern.
# ``ITCH_REF``  one live order of the order-reference table (kernels.itch.refs): what the
#               decoder remembers about a reference (book, side, price, shares left) to
#               turn E/C/X/D/U into complete EVENTs; the writer keeps its source orders'
#               ITCH references in it (``value``).
# ``BOOK_TOP``  the best bid and ask of one book of a multi-book replay after an event
#               (``bid_price``/``ask_price`` -1 when the side is empty).
ITCH_N_CODES = 12  # ITCH_MSG.codes: the one-character fields of a message, in spec order

ITCH_MSG = np.dtype(
    [
        ("offset", np.int64),    # byte offset of the message's 2-byte length prefix
        ("ts", np.int64),        # ns since midnight (the 6-byte timestamp)
        ("ref", np.int64),       # order reference (A F E C X D P; U: the original one)
        ("new_ref", np.int64),   # U: the new order reference
        ("match", np.int64),     # match number (E C P Q B)
        ("shares", np.int64),    # shares (A F E C X U P Q); I paired; R round lot size
        ("aux", np.int64),       # I imbalance shares, R ETP leverage factor, K release time,
                                 # J extension, O near execution time
        ("price", np.int64),     # Price(4) units (V: Price(8) units); see kernels.itch.decode
        ("price2", np.int64),
        ("price3", np.int64),
        ("price4", np.int64),
        ("price5", np.int64),
        ("stock", np.uint64),    # the 8 stock bytes in file order (view as "S8")
        ("mpid", np.uint32),     # F attribution, L MPID, H reason: 4 bytes in file order
        ("locate", np.int32),    # stock locate (0..65535)
        ("tracking", np.int32),  # tracking number
        ("msg_type", np.uint8),  # the type character ('A' = 65)
        ("side", np.uint8),      # 'B'/'S' (A F P); I: imbalance direction; else 0
        ("codes", np.uint8, (ITCH_N_CODES,)),
    ],
    align=True,
)

ITCH_REF = np.dtype(
    [
        ("key", np.int64),       # the order reference (the writer: its source order key)
        ("value", np.int64),     # the writer: the ITCH reference it assigned; else unused
        ("price", np.uint32),    # price units (ITCH prices are u32)
        ("qty", np.uint32),      # shares left (ITCH share counts of orders are u32)
        ("book", np.int32),      # book index; part of the key
        ("side", np.int8),       # BUY / SELL
        ("used", np.int8),       # 1: the slot holds an order
    ],
    align=True,
)

BOOK_TOP = np.dtype(
    [
        ("ts", np.int64),
        ("bid_price", np.int64),  # -1 when the side is empty
        ("bid_qty", np.int64),
        ("ask_price", np.int64),  # -1 when the side is empty
        ("ask_qty", np.int64),
        ("book", np.int32),
    ],
    align=True,
)


# ========================================================================= journal
# One journaled engine command (``kernels.journal``, ``workbench.journal``): exactly one
# 64-byte cache line, so a ring slot never straddles two lines and a segment file is a
# plain array of them after its header. The EVENT fields are the command *as applied*
# (automatic ids and logical-clock times resolved), so replaying them through
# ``kernels.book.apply_batch`` rebuilds the same state. ``crc`` is the CRC32C
# (Castagnoli) of the record's first 60 bytes.
JR_EVENT = 1          # an engine event (the EVENT fields), applied once on replay
JR_OUTPUT_FULL = 2    # the engine's output-full pause counter moved by ``qty`` (no event)
JR_APP = 3            # an application's own record (e.g. FIX session state): replay skips
                      # it; ``kind`` is the application's code, ts..symbol its payload

JF_AUTO_ID = 1        # an add from the single-order path: it advances the automatic ids
JF_LOG_FILLS = 2      # its fills went to the engine's fill log (``record_fills``)
JF_END = 128          # the last record of one engine call: recovery applies whole calls only

JOURNAL_RECORD = np.dtype(
    [
        ("seq", np.int64),       # journal sequence number: 1, 2, ... without gaps
        ("wall_ns", np.int64),   # CLOCK_REALTIME ns when the command was journaled
        ("ts", np.int64),        # the EVENT as applied
        ("order_id", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("symbol", np.int32),
        ("kind", np.int8),
        ("side", np.int8),
        ("order_type", np.int8),
        ("tif", np.int8),
        ("rtype", np.uint8),     # JR_*
        ("flags", np.uint8),     # JF_* bits
        ("reserved", np.uint16),
        ("crc", np.uint32),      # CRC32C of bytes 0..59
    ],
    align=True,
)
JOURNAL_CRC_BYTES = 60
assert JOURNAL_RECORD.itemsize == 64, JOURNAL_RECORD.itemsize
assert JOURNAL_RECORD.fields["crc"][1] == JOURNAL_CRC_BYTES


# ======================================================================== batching
# One batch a batching consumer took (``kernels.batching``): the simulated consumer and
# the one on the real ring write the same rows. Times in ns (exchange time in the
# simulation, ``CLOCK_MONOTONIC`` on the ring); one 64-byte line.
BATCH = np.dtype(
    [
        ("start_ns", np.int64),    # the consumer took the batch (after any wait to fill it)
        ("end_ns", np.int64),      # its fixed + per-item cost paid: every item delivered
        ("first", np.int64),       # index (sequence number) of its first item
        ("taken", np.int64),       # items in it (1 .. limit)
        ("limit", np.int64),       # the batch size in force when it was taken
        ("backlog", np.int64),     # items still queued behind it when it was taken
        ("latency_ns", np.int64),  # its oldest item's latency: end_ns - that item's arrival
        ("next_limit", np.int64),  # the batch size the controller set after it
    ],
    align=True,
)
assert BATCH.itemsize == 64, BATCH.itemsize


# ============================================================================ DeFi
# Constant-product pools and their swap stream (``kernels.amm``, ``kernels.arbitrage``;
# the Python face is ``workbench.defi``). Token amounts are integers in micro-tokens
# (``kernels.amm.AMOUNT_SCALE``), fees are basis points of the amount put in.
#
# ``SWAP_MSG``  one swap (or reserves snapshot) as a pool reports it: exactly one 64-byte
#               cache line, fixed offsets, read in place from a ring slot or a byte buffer
#               with no parsing. Native byte order (little-endian on x86-64 and arm64).
# ``POOL``      one pool's state: reserves, the fees it kept, tokens, fee, venue.
# ``CYCLE``     one arbitrage cycle: two or three hops (pool, direction), from a start token
#               back to it (``kernels.arbitrage.build_cycles`` indexes them per pool).
# ``ARB_OPP``   one opportunity the detector recorded after a swap: cycle, optimal size,
#               exact profit.
SWAP_SWAP = 1   # SWAP_MSG.msg_type: a swap, with the reserves after it
SWAP_SYNC = 2   # a reserves snapshot (Uniswap's Sync): sets the reserves, no trade

# what the consumer made of one SWAP_MSG (kernels.amm.apply_message): counted per code
SW_OK = 0           # applied: our pool math gives exactly the message's amount out and reserves
SW_BAD_TYPE = 1     # msg_type is neither SWAP_SWAP nor SWAP_SYNC
SW_BAD_POOL = 2     # pool id outside the pool table
SW_BAD_TOKEN = 3    # token_in/token_out are not the pool's pair
SW_BAD_AMOUNT = 4   # amount_in <= 0, amount_out < 0, or above kernels.amm.MAX_AMOUNT
SW_BAD_RESERVE = 5  # a reserve after <= 0 (a constant-product pool never empties) or too large
SW_BAD_FEE = 6      # fee_bps differs from the pool's fee
SW_RESYNCED = 7     # well formed, but our state disagreed (a lost message): reserves taken
N_SWAP_CODES = 8
SWAP_CODE_NAMES = ("ok", "bad_type", "bad_pool", "bad_token", "bad_amount", "bad_reserve",
                   "bad_fee", "resynced")
assert len(SWAP_CODE_NAMES) == N_SWAP_CODES

SWAP_MSG = np.dtype(
    [
        ("ts", np.int64),          # ns since the epoch
        ("seq", np.int64),         # stream sequence number: 0, 1, ... (gaps are lost messages)
        ("amount_in", np.int64),   # micro-tokens of token_in paid in (fee included)
        ("amount_out", np.int64),  # micro-tokens of token_out paid out
        ("reserve0", np.int64),    # the pool's reserves after the swap, in its token order
        ("reserve1", np.int64),
        ("pool", np.int32),        # index in the pool table
        ("token_in", np.int32),
        ("token_out", np.int32),
        ("fee_bps", np.int16),     # the pool's fee, basis points of amount_in
        ("msg_type", np.uint8),    # SWAP_SWAP / SWAP_SYNC
        ("flags", np.uint8),       # reserved, 0
    ],
    align=True,
)
assert SWAP_MSG.itemsize == 64, SWAP_MSG.itemsize

POOL = np.dtype(
    [
        ("reserve0", np.int64),   # micro-tokens of token0
        ("reserve1", np.int64),
        ("fees0", np.int64),      # fees kept by the pool (part of its reserves), token0
        ("fees1", np.int64),
        ("swaps", np.int64),      # swaps applied
        ("last_seq", np.int64),   # sequence number of the last message applied, -1 if none
        ("token0", np.int32),
        ("token1", np.int32),
        ("fee_bps", np.int32),
        ("dex", np.int32),        # venue index (names in workbench.defi)
    ],
    align=True,
)
assert POOL.itemsize == 64, POOL.itemsize

CYCLE_MAX_HOPS = 3
CYCLE = np.dtype(
    [
        ("pool", np.int32, (CYCLE_MAX_HOPS,)),  # pool of each hop (-1 after the last)
        ("start", np.int32),                    # the token the cycle starts and ends in
        ("dir", np.int8, (CYCLE_MAX_HOPS,)),    # 0: token0 -> token1, 1: token1 -> token0
        ("hops", np.int8),                      # 2: cross-pool, 3: triangular
    ],
    align=True,
)

ARB_OPP = np.dtype(
    [
        ("ts", np.int64),          # time of the swap after which it was seen
        ("seq", np.int64),         # that swap's sequence number
        ("amount_in", np.int64),   # optimal size, micro-tokens of the start token
        ("profit", np.int64),      # exact profit of that size, micro-tokens of the start token
        ("profit_usd", np.float64),
        ("edge", np.float64),      # sum of the hops' log rates, fees included (> 0: profitable)
        ("cycle", np.int32),       # index in the CYCLE table
        ("pool", np.int32),        # the pool whose swap opened it
        ("start", np.int32),       # start token
        ("hops", np.int8),
    ],
    align=True,
)
