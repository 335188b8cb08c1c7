"""ITCH 5.0 framing: 2-byte big-endian length prefixes, the message table, the first pass.

A stored ITCH day is a sequence of frames ``<length: u16 big-endian><message>`` where
the message's first byte is its type. ``MSG_LENGTH[type]`` is the spec's fixed length of
each type (0 for a byte that is no type); a frame is *valid* when its length is its
type's. The types of TotalView-ITCH 5.0 and their lengths:

====  ===  =====================================  ====  ===  =========================
S     12   system event                           A     36   add order
R     39   stock directory                        F     40   add order with MPID
H     25   stock trading action                   E     31   order executed
Y     20   Reg SHO short sale restriction         C     36   order executed with price
L     26   market participant position            X     23   order cancel
V     35   MWCB decline level                     D     19   order delete
W     12   MWCB status                            U     35   order replace
K     28   IPO quoting period update              P     44   trade (non-cross)
J     35   LULD auction collar                    Q     40   cross trade
h     21   operational halt                       B     19   broken trade
I     50   net order imbalance indicator (NOII)   N     20   retail price improvement (RPII)
O     48   direct listing with capital raise price discovery (added to 5.0 in 2023)
====  ===  =====================================  ====  ===  =========================

Every message starts with ``type (1) | stock locate (u16) | tracking number (u16) |
timestamp (u48, ns since midnight)``; the body starts at offset 11.

The one framing rule (:func:`frame_at`, shared by every walk so they all agree on what
a frame is): a frame whose bytes are not all in the buffer ends the walk (``FR_INCOMPLETE``:
more bytes may come; at the end of the file it is a truncation); a zero length skips the
two length bytes; an unknown type or a length that is not its type's skips the frame by
its declared length. Bad frames are counted, never fatal, and nothing reads past the end.

:func:`scan` is the first pass over a buffer: valid messages per type, bad frames,
truncation, messages per stock locate, each locate's tick (the largest divisor of
``TICK_CAP`` that divides every resting price it saw), start and end of messages, and
where the stock directory messages are.
"""
from __future__ import annotations

import numpy as np

from kernels.itch.fields import u16, u32
from kernels.jit import kernel
from kernels.pointers import borrow

__all__ = ["MSG_LENGTH", "MSG_TYPES", "frame_at", "scan"]

# type character -> (length, name): the spec's table
MSG_TYPES = {
    "S": (12, "system_event"),
    "R": (39, "stock_directory"),
    "H": (25, "trading_action"),
    "Y": (20, "reg_sho"),
    "L": (26, "participant_position"),
    "V": (35, "mwcb_decline"),
    "W": (12, "mwcb_status"),
    "K": (28, "ipo_quoting"),
    "J": (35, "luld_collar"),
    "h": (21, "operational_halt"),
    "A": (36, "add_order"),
    "F": (40, "add_order_mpid"),
    "E": (31, "order_executed"),
    "C": (36, "order_executed_price"),
    "X": (23, "order_cancel"),
    "D": (19, "order_delete"),
    "U": (35, "order_replace"),
    "P": (44, "trade"),
    "Q": (40, "cross_trade"),
    "B": (19, "broken_trade"),
    "I": (50, "noii"),
    "N": (20, "rpii"),
    "O": (48, "dlcr_price_discovery"),
}

MSG_LENGTH = np.zeros(256, dtype=np.int64)
for _t, (_length, _) in MSG_TYPES.items():
    MSG_LENGTH[ord(_t)] = _length

MAX_MSG_LENGTH = int(MSG_LENGTH.max())
HEADER = 11          # type, locate, tracking, timestamp
N_LOCATES = 65536    # stock locates are u16
TICK_CAP = 100       # a locate's tick is at most a cent at the 4-decimal price scale

# where the resting price of a type is (its offset from the type byte) and a mask that
# keeps it: A, F and U; every other type reads its first four bytes and masks them off
_PRICE_AT = np.zeros(256, dtype=np.int64)
_PRICE_MASK = np.zeros(256, dtype=np.int64)
for _t, _at in (("A", 32), ("F", 32), ("U", 31)):
    _PRICE_AT[ord(_t)] = _at
    _PRICE_MASK[ord(_t)] = 0xFFFFFFFF

# frame_at status
FR_OK = 0
FR_INCOMPLETE = 1    # the frame's bytes are not all in the buffer (or no length at all)
FR_EMPTY = 2         # length 0: skip the two length bytes
FR_UNKNOWN_TYPE = 3  # skip by the declared length
FR_BAD_LENGTH = 4    # a known type whose length is not the spec's: skip by the declared length

# scan counts: counts[type byte] = valid messages of that type, then these slots
IC_MESSAGES = 256         # valid messages
IC_BYTES = 257            # bytes of valid frames (length prefix included)
IC_BAD_LENGTH = 258       # frames of a known type with the wrong length, and empty frames
IC_UNKNOWN_TYPE = 259     # frames whose first byte is no ITCH 5.0 type
IC_SKIPPED_BYTES = 260    # bytes of bad frames (prefixes included)
IC_TRUNCATED = 261        # 1 when the buffer ends inside a frame (final scan)
IC_TRUNCATED_BYTES = 262  # bytes of that last, partial frame
IC_START_OF_MESSAGES = 263  # system events 'O'
IC_END_OF_MESSAGES = 264    # system events 'C': a complete day ends with one
IC_SCANNED = 265          # bytes walked (valid, bad and, when final, truncated)
N_SCAN_COUNTS = 272


@kernel
def frame_at(buf, pos, end):
    """``(status, next_pos)`` of the frame at ``pos`` (``FR_*``); ``next_pos`` is where
    the walk goes on (``pos`` itself when ``FR_INCOMPLETE``)."""
    if pos + 2 > end:
        return FR_INCOMPLETE, pos
    length = u16(buf, pos)
    if length == 0:
        return FR_EMPTY, pos + 2
    nxt = pos + 2 + length
    if nxt > end:
        return FR_INCOMPLETE, pos
    expected = MSG_LENGTH[buf[pos + 2]]
    if expected == 0:
        return FR_UNKNOWN_TYPE, nxt
    if expected != length:
        return FR_BAD_LENGTH, nxt
    return FR_OK, nxt


@kernel
def _gcd(a, b):
    while b != 0:
        a, b = b, a % b
    return a


@kernel
def scan(buf, start, end, final, counts, per_locate, ticks, dir_offsets):
    """Walk the frames of ``buf[start:end]`` (module doc). ``counts`` (``N_SCAN_COUNTS``),
    ``per_locate`` (``N_LOCATES``, valid messages per locate) and ``ticks`` (``N_LOCATES``,
    each starting at ``TICK_CAP``: the largest tick dividing every A/F/U price of the
    locate) accumulate across calls; the byte offsets of stock directory (R) frames go
    to ``dir_offsets`` (as many as fit; all are counted under ``counts[ord('R')]``).

    Returns ``(pos, n_dir)``: where the walk stopped (at ``end``, or at the start of an
    incomplete frame) and how many directory offsets were written. With ``final`` an
    incomplete last frame is counted as a truncation and ``pos`` is ``end``.
    """
    # refcount-free views: every helper call would otherwise pay atomic increments
    buf = borrow(buf, np.uint8)
    counts = borrow(counts, np.int64)
    per_locate = borrow(per_locate, np.int64)
    ticks = borrow(ticks, np.int64)
    dir_offsets = borrow(dir_offsets, np.int64)
    end = min(end, len(buf))
    pos = max(start, 0)
    n_dir = 0
    while True:
        status, nxt = frame_at(buf, pos, end)
        if status == FR_INCOMPLETE:
            break
        if status != FR_OK:
            if status == FR_UNKNOWN_TYPE:
                counts[IC_UNKNOWN_TYPE] += 1
            else:
                counts[IC_BAD_LENGTH] += 1
            counts[IC_SKIPPED_BYTES] += nxt - pos
            counts[IC_SCANNED] += nxt - pos
            pos = nxt
            continue
        p = pos + 2
        t = buf[p]
        counts[t] += 1
        counts[IC_MESSAGES] += 1
        counts[IC_BYTES] += nxt - pos
        counts[IC_SCANNED] += nxt - pos
        locate = u16(buf, p + 1)
        per_locate[locate] += 1
        # the resting price of A, F and U without a branch on the type: types come in no
        # order a predictor can learn. With three tests on the type and a division per
        # price the first pass of the 8,000-book day took 13.7/13.8/13.5 ns a message,
        # now 6.9/6.9/7.0 (alternating processes, medians of three passes each)
        price = u32(buf, p + _PRICE_AT[t]) & _PRICE_MASK[t]
        # every tick divides TICK_CAP, so a price on the cent grid (a remainder by the
        # constant: a multiply, not a division) fits every tick and is done
        if price % TICK_CAP != 0:
            g = ticks[locate]
            if g > 0 and price % g != 0:
                ticks[locate] = _gcd(g, price)
        if t == 82:                 # R
            if n_dir < len(dir_offsets):
                dir_offsets[n_dir] = pos
                n_dir += 1
        elif t == 83:               # S
            code = buf[p + 11]
            if code == 79:          # 'O'
                counts[IC_START_OF_MESSAGES] += 1
            elif code == 67:        # 'C'
                counts[IC_END_OF_MESSAGES] += 1
        pos = nxt
    if final and pos < end:
        counts[IC_TRUNCATED] = 1
        counts[IC_TRUNCATED_BYTES] = end - pos
        counts[IC_SCANNED] += end - pos
        pos = end
    return pos, n_dir
