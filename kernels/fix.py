"""FIX 4.4 kernels: framing, checksum, zero-copy tag index, validation, decoding, encoding.

This module owns the FIX wire format inside the kernels layer and the record dtypes of
the FIX concepts that have no home in ``kernels.records``:

``FIX_MESSAGE``      one framed message: byte span, header facts (MsgType, MsgSeqNum,
                     SendingTime, sender), where its tags sit in the field index, and the
                     session-level reject found by the dictionary validation.
``FIX_FIELD``        one tag of the zero-copy index: ``(start, end)`` is the value's byte
                     span inside the caller's buffer (nothing is copied), ``tag`` the number,
                     ``msg`` the owning message.
``EXEC_REPORT``      an ExecutionReport (35=8), both decoded from the wire and as the
                     encoder's input (built from ``FILL`` records by the Python layer).
``MD_ENTRY``         one repeating-group entry of a MarketData snapshot (W) or
                     incremental refresh (X).

Orders (D/F/G) decode into ``kernels.records.EVENT`` so they feed the engine directly.

Bad input never crashes a kernel: a message that cannot be framed is counted under one
``FIX_R_*`` reason and the scanner resynchronises at the next ``8=FIX``. Every read is
guarded by the framing (the trailer ``<delim>10=nnn<delim>`` is checked before any field
loop runs, so the inner loops stop on a delimiter that is known to exist).

Delimiters: SOH (0x01) on the wire, ``|`` in logs. The checksum is always computed as if
the delimiter were SOH, so a pipe-rendered log of a valid message still verifies.

Speed notes: the scan sums the CheckSum in the same pass that splits the fields; the small
helpers are ``inline="always"`` because a call that takes ``buf`` pays Numba reference-count
updates (atomics) per call, which cost more than the work in a per-field helper.
``scan_chunks`` (scan + validate), ``validate_chunks`` and ``decode_orders_chunks`` run
the serial code per chunk under ``prange``; ``compact_chunks`` then closes the gaps.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from kernels.jit import kernel
from kernels.records import (
    BUY, EV_ADD, EV_DELETE, EV_MODIFY, FOK, GTC, IOC, LIMIT, MARKET, SELL,
)

# ------------------------------------------------------------------ byte constants
SOH = 1
PIPE = 124
_EQ = 61
_ZERO = 48
_NINE = 57
_DOT = 46
_MINUS = 45

# ------------------------------------------------------------ framing reject codes
FIX_OK = 0                    # counts[FIX_OK] = messages framed and indexed
FIX_R_BAD_CHECKSUM = 1        # CheckSum value wrong or not three digits
FIX_R_WRONG_BODY_LENGTH = 2   # a trailer exists, but not where BodyLength says
FIX_R_MISSING_BEGIN_STRING = 3  # a message fragment (with a trailer) not starting 8=FIX
FIX_R_MISSING_BODY_LENGTH = 4   # 9= absent, empty or not a number
FIX_R_MISSING_MSG_TYPE = 5    # the third field is not 35=
FIX_R_MISSING_CHECKSUM = 6    # no 10= trailer before the next message
FIX_R_TRUNCATED = 7           # the buffer ends inside the message
FIX_R_NON_NUMERIC_TAG = 8     # a tag that is empty or not digits (0 frames; validation rejects it)
FIX_R_STRAY_SOH = 9           # an empty field or a field without '=' (stray delimiter)
FIX_SKIPPED_BYTES = 10        # not a reject: noise bytes skipped between messages
N_FIX_COUNTS = 11
FIX_REASON_NAMES = (
    "ok", "bad_checksum", "wrong_body_length", "missing_begin_string",
    "missing_body_length", "missing_msg_type", "missing_checksum", "truncated",
    "non_numeric_tag", "stray_soh", "skipped_bytes",
)
N_FIX_REJECT_REASONS = 10  # codes 1..9

# scan status
SCAN_DONE = 0
SCAN_NEED_MORE = 1   # stream mode: the tail is an incomplete message, wait for bytes
SCAN_FULL = 2        # output arrays full (the caller sized them too small)

# ------------------------------------------ validation: SessionRejectReason (373)
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

# field value types in the validation tables
T_UNDEFINED = 0
T_STRING = 1
T_INT = 2
T_DECIMAL = 3
T_CHAR = 4
T_BOOLEAN = 5
T_TIMESTAMP = 6
T_MULTI = 7   # space-separated multiple values: no enum check
MAX_TAG = 1024  # tags at or above are "not defined" (FIX44.xml stops below 1000)
# bits of the validation table tag_info[msg type, tag]
INFO_TYPE_MASK = 15      # T_* (T_UNDEFINED: not a FIX 4.4 tag)
INFO_ALLOWED = 16        # the tag may appear in this message type
INFO_IN_GROUP = 32       # inside a repeating group: may repeat
INFO_HAS_ENUMS = 64      # the value must be one of the dictionary's enums
INFO_HEADER = 128        # a standard-header tag: must come before the body
INFO_GROUP_SHIFT = 8     # NumInGroup tags: the tag opening each entry, from this bit up

NO_VALUE = np.iinfo(np.int64).min  # typed accessors' "absent / malformed"

# ------------------------------------------------------------------------- dtypes
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
        ("cl_ord_id", np.int64),    # ClOrdID (11) as a number (see order_id_value)
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

MT_D = 68
MT_F = 70
MT_G = 71
MT_8 = 56
MT_X = 88
MT_W = 87


def pack_msg_type(text: str) -> int:
    """MsgType string -> the packed code stored in ``FIX_MESSAGE.msg_type``."""
    value = 0
    for byte in text.encode("ascii")[:4]:
        value = (value << 8) | byte
    return value


def unpack_msg_type(code: int) -> str:
    """Inverse of :func:`pack_msg_type`."""
    out = []
    while code:
        out.append(chr(code & 0xFF))
        code >>= 8
    return "".join(reversed(out))


# ====================================================================== scanning
@kernel(inline="always")
def _is_begin(buf, i, n):
    return (i + 5 <= n and buf[i] == 56 and buf[i + 1] == _EQ and buf[i + 2] == 70
            and buf[i + 3] == 73 and buf[i + 4] == 88)


@kernel
def find_begin(buf, pos, n):
    """First offset >= pos where ``8=FIX`` starts, or ``n``."""
    i = pos
    while i + 5 <= n:
        if buf[i] == 56 and _is_begin(buf, i, n):
            return i
        i += 1
    return n


@kernel(inline="always")
def _has_trailer(buf, a, b):
    """Is there a ``<delim>10=`` (SOH or '|') in buf[a:b]?"""
    i = a
    while i + 4 <= b:
        c = buf[i]
        if (c == SOH or c == PIPE) and buf[i + 1] == 49 and buf[i + 2] == _ZERO and buf[i + 3] == _EQ:
            return True
        i += 1
    return False


@kernel(inline="always")
def _fnv(buf, a, b):
    h = np.uint64(14695981039346656037)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    return np.int64(h & np.uint64(0x3FFFFFFFFFFFFFFF))


@kernel(inline="always")
def _frame_one(buf, pos, n, stream, msgs, mi, fields, fi):
    """Frame and index the message at ``pos`` (an ``8=FIX`` offset).

    Returns (reason, end, n_fields_written). Reason ``-1`` means stream mode needs
    more bytes; ``-2`` means the field index is full.
    """
    # BeginString value runs to the first delimiter, which fixes this message's delimiter.
    i = pos + 5
    lim = pos + 32
    if lim > n:
        lim = n
    while i < lim and buf[i] != SOH and buf[i] != PIPE and buf[i] != 10 and buf[i] != _EQ:
        i += 1
    if i >= lim:
        if lim == n and (n - pos) < 32:
            if stream:
                return -1, pos, 0
            return FIX_R_TRUNCATED, pos, 0
        return FIX_R_MISSING_BEGIN_STRING, pos, 0
    delim = buf[i]
    if delim != SOH and delim != PIPE:
        return FIX_R_MISSING_BEGIN_STRING, pos, 0
    begin_end = i
    i += 1
    # BodyLength
    if i + 2 > n:
        if stream:
            return -1, pos, 0
        return FIX_R_TRUNCATED, pos, 0
    if buf[i] != 57 or buf[i + 1] != _EQ:
        return FIX_R_MISSING_BODY_LENGTH, pos, 0
    i += 2
    length_start = i
    body_length = 0
    digits = 0
    while i < n and digits < 9 and buf[i] >= _ZERO and buf[i] <= _NINE:
        body_length = body_length * 10 + (buf[i] - _ZERO)
        i += 1
        digits += 1
    if i >= n:
        if stream:
            return -1, pos, 0
        return FIX_R_TRUNCATED, pos, 0
    if digits == 0 or buf[i] != delim:
        return FIX_R_MISSING_BODY_LENGTH, pos, 0
    length_end = i
    i += 1
    body_start = i
    body_end = body_start + body_length
    trailer_end = body_end + 7
    if trailer_end > n:
        if stream:
            return -1, pos, 0
        nxt = find_begin(buf, pos + 1, n)
        if _has_trailer(buf, body_start - 1, nxt):
            return FIX_R_WRONG_BODY_LENGTH, pos, 0
        if nxt >= n:
            return FIX_R_TRUNCATED, pos, 0
        return FIX_R_MISSING_CHECKSUM, pos, 0
    if not (body_length > 0 and buf[body_end - 1] == delim and buf[body_end] == 49
            and buf[body_end + 1] == _ZERO and buf[body_end + 2] == _EQ):
        if stream:
            return FIX_R_WRONG_BODY_LENGTH, trailer_end, 0
        nxt = find_begin(buf, pos + 1, n)
        if _has_trailer(buf, body_start - 1, nxt):
            return FIX_R_WRONG_BODY_LENGTH, pos, 0
        return FIX_R_MISSING_CHECKSUM, pos, 0
    c0 = buf[body_end + 3]
    c1 = buf[body_end + 4]
    c2 = buf[body_end + 5]
    if (c0 < _ZERO or c0 > _NINE or c1 < _ZERO or c1 > _NINE or c2 < _ZERO or c2 > _NINE
            or buf[body_end + 6] != delim):
        return FIX_R_BAD_CHECKSUM, pos, 0
    declared = (c0 - _ZERO) * 100 + (c1 - _ZERO) * 10 + (c2 - _ZERO)
    # Tag index: 8 and 9 are already framed, so is the trailer 10; the body's fields are
    # <digits>=<value><delim>, and the verified delimiter ending the body bounds every
    # loop. The CheckSum (byte sum mod 256, delimiters counted as SOH) is summed in the
    # same pass since the bytes are loaded anyway, and checked before anything is kept.
    field_cap = fields.shape[0]
    if fi + 3 > field_cap:
        return -2, pos, 0
    total = 0
    for q in range(pos, body_start):
        total += buf[q]
    if delim == PIPE:
        total -= 2 * (PIPE - SOH)
    fields[fi].start = pos + 2
    fields[fi].end = begin_end
    fields[fi].tag = 8
    fields[fi].msg = mi
    fields[fi + 1].start = length_start
    fields[fi + 1].end = length_end
    fields[fi + 1].tag = 9
    fields[fi + 1].msg = mi
    k = fi + 2
    j = body_start
    seq_num = NO_VALUE
    sending_time = NO_VALUE
    sender = 0
    while j < body_end:
        if k + 1 >= field_cap:  # room for this field and the trailer
            return -2, pos, 0
        tag = 0
        t0 = j
        while buf[j] >= _ZERO and buf[j] <= _NINE:
            tag = tag * 10 + (buf[j] - _ZERO)
            total += buf[j]
            j += 1
        c = buf[j]
        if c != _EQ or j == t0 or j - t0 > 9:
            if c == delim:
                return FIX_R_STRAY_SOH, pos, 0
            # a stray delimiter split a value: the fragment has no '=' before the next delimiter
            q = j
            while buf[q] != delim and buf[q] != _EQ:
                q += 1
            if buf[q] == delim and j - t0 <= 9:
                return FIX_R_STRAY_SOH, pos, 0
            return FIX_R_NON_NUMERIC_TAG, pos, 0
        j += 1
        v0 = j
        while buf[j] != delim:
            total += buf[j]
            j += 1
        total += _EQ + SOH  # the '=' and the delimiter, counted as SOH
        fields[k].start = v0
        fields[k].end = j
        fields[k].tag = tag
        fields[k].msg = mi
        if tag == 34:
            seq_num = _uint_value(buf, v0, j)
        elif tag == 52:
            sending_time = timestamp_value(buf, v0, j)
        elif tag == 49:
            sender = _fnv(buf, v0, j)
        k += 1
        j += 1
    if (total & 255) != declared:
        return FIX_R_BAD_CHECKSUM, pos, 0
    fields[k].start = body_end + 3
    fields[k].end = body_end + 6
    fields[k].tag = 10
    fields[k].msg = mi
    k += 1
    nf = k - fi
    if nf < 4 or fields[fi + 2].tag != 35 or fields[fi + 2].end == fields[fi + 2].start:
        return FIX_R_MISSING_MSG_TYPE, pos, 0
    mt = 0
    a = fields[fi + 2].start
    b = fields[fi + 2].end
    if b - a > 4:
        b = a + 4
    for q in range(a, b):
        mt = (mt << 8) | np.int32(buf[q])
    m = msgs[mi]
    m.start = pos
    m.end = trailer_end
    m.seq_num = seq_num
    m.sending_time = sending_time
    m.sender = sender
    m.field_first = fi
    m.field_count = nf
    m.msg_type = mt
    m.body_length = body_length
    m.reject_tag = 0
    m.reject_reason = SR_NONE
    m.checksum = declared
    m.delimiter = delim
    return FIX_OK, trailer_end, nf


@kernel
def scan_range(buf, pos, stop, stream, msgs, fields, counts):
    """Frame every message starting in buf[pos:stop) (one may run past ``stop``).

    Fills ``msgs`` and ``fields`` from index 0, adds to ``counts`` (N_FIX_COUNTS).
    Returns (n_msgs, n_fields, resume_offset, status). In stream mode an incomplete
    tail is left for the next call (status SCAN_NEED_MORE, resume at its start), and
    a wrong BodyLength consumes the bytes it declared.
    """
    n = buf.shape[0]
    n_msgs = 0
    n_fields = 0
    status = SCAN_DONE
    after_reject = False
    msg_cap = msgs.shape[0]
    while pos < stop:
        # the common case (a message right after the last) without a call: calls that
        # take ``buf`` pay reference-count updates
        nxt = pos if _is_begin(buf, pos, n) else find_begin(buf, pos, n)
        if nxt > pos:
            if not after_reject:
                if nxt >= n and stream:
                    # keep a possible partial "8=FI" at the very end for the next call
                    keep = n - 4 if n - 4 > pos else pos
                    counts[FIX_SKIPPED_BYTES] += keep - pos
                    pos = keep
                    status = SCAN_NEED_MORE
                    break
                if _has_trailer(buf, pos, nxt):
                    counts[FIX_R_MISSING_BEGIN_STRING] += 1
                else:
                    counts[FIX_SKIPPED_BYTES] += nxt - pos
            pos = nxt
            if pos >= stop:
                break
        after_reject = False
        if n_msgs >= msg_cap:
            status = SCAN_FULL
            break
        reason, end, nf = _frame_one(buf, pos, n, stream, msgs, n_msgs, fields, n_fields)
        if reason == FIX_OK:
            n_msgs += 1
            n_fields += nf
            pos = end
        elif reason == -1:
            status = SCAN_NEED_MORE
            break
        elif reason == -2:
            status = SCAN_FULL
            break
        else:
            counts[reason] += 1
            after_reject = True
            if stream and reason == FIX_R_WRONG_BODY_LENGTH:
                # on a live stream a message consumes what its BodyLength claimed (as
                # QuickFIX does): a too-long length swallows the next message too
                pos = end
            else:
                pos += 1
    # counted once here, not per message: parallel chunks' count rows may share a cache line
    counts[FIX_OK] += n_msgs
    return n_msgs, n_fields, pos, status


@kernel(parallel=True)
def scan_chunks(buf, starts, stops, msgs, msg_offsets, fields, field_offsets, counts, results,
                check, begin_string, tag_info, char_enums, enum_offsets, enum_values, known_types,
                type_offsets, required, header_required):
    """Scan chunk c of buf[starts[c]:stops[c]) into its own slice of msgs/fields and, if
    ``check``, ``validate`` its messages while they are still in cache (one parallel region).

    ``results[c]`` = (n_msgs, n_fields, resume_offset, status); ``counts[c]`` its counts.
    Chunk starts must be ``8=FIX`` offsets; the caller checks each chunk resumed exactly
    where the next began (else a message straddled the split and it rescans).
    """
    for c in prange(starts.shape[0]):
        m = msgs[msg_offsets[c]:msg_offsets[c + 1]]
        f = fields[field_offsets[c]:field_offsets[c + 1]]
        nm, nf, end, status = scan_range(buf, starts[c], stops[c], False, m, f, counts[c])
        if check:
            validate(buf, m[:nm], f, begin_string, tag_info, char_enums, enum_offsets, enum_values,
                     known_types, type_offsets, required, header_required)
        results[c, 0] = nm
        results[c, 1] = nf
        results[c, 2] = end
        results[c, 3] = status


@kernel
def compact_chunks(msgs, msg_offsets, fields, field_offsets, results):
    """Close the gaps between the chunks' outputs in place, renumbering indices.

    Chunk 0 already sits at the front and is untouched; chunk c moves down to just after
    chunk c-1 (destination below source, so a forward copy is safe), in order. Returns
    (n_msgs, n_fields) of the now contiguous ``msgs[:n_msgs]``, ``fields[:n_fields]``.
    """
    msg_base = results[0, 0]
    field_base = results[0, 1]
    for c in range(1, results.shape[0]):
        mo = msg_offsets[c]
        fo = field_offsets[c]
        for i in range(results[c, 0]):
            msgs[msg_base + i] = msgs[mo + i]
            msgs[msg_base + i].field_first += field_base
        for i in range(results[c, 1]):
            fields[field_base + i] = fields[fo + i]
            fields[field_base + i].msg += msg_base
        msg_base += results[c, 0]
        field_base += results[c, 1]
    return msg_base, field_base


# ============================================================ typed accessors
@kernel(inline="always")
def _uint_value(buf, a, b):
    """Unsigned decimal integer in buf[a:b), NO_VALUE if empty/not digits/too long."""
    if b <= a or b - a > 18:
        return NO_VALUE
    v = 0
    for i in range(a, b):
        c = buf[i]
        if c < _ZERO or c > _NINE:
            return NO_VALUE
        v = v * 10 + (c - _ZERO)
    return v


@kernel(inline="always")
def int_value(buf, a, b):
    """FIX int (optional leading '-') in buf[a:b), or NO_VALUE."""
    if b > a and buf[a] == _MINUS:
        v = _uint_value(buf, a + 1, b)
        return NO_VALUE if v == NO_VALUE else -v
    return _uint_value(buf, a, b)


@kernel(inline="always")
def fixed_value(buf, a, b, price_scale):
    """FIX decimal (price, qty) in buf[a:b) -> int64 ``round(value * price_scale)``.

    Exact for up to 12 fractional digits; rounds half away from zero below the scale.
    NO_VALUE when empty or malformed (sign other than a leading '-', two dots, letters).
    """
    if b <= a:
        return NO_VALUE
    negative = buf[a] == _MINUS
    i = a + 1 if negative else a
    if i >= b:
        return NO_VALUE
    whole = 0
    nd = 0
    while i < b and buf[i] != _DOT:
        c = buf[i]
        if c < _ZERO or c > _NINE or nd >= 15:
            return NO_VALUE
        whole = whole * 10 + (c - _ZERO)
        nd += 1
        i += 1
    frac = 0
    frac_pow = 1
    if i < b:  # at the dot
        i += 1
        if nd == 0 and i >= b:
            return NO_VALUE
        while i < b:
            c = buf[i]
            if c < _ZERO or c > _NINE:
                return NO_VALUE
            if frac_pow < 1_000_000_000_000:
                frac = frac * 10 + (c - _ZERO)
                frac_pow *= 10
            i += 1
    elif nd == 0:
        return NO_VALUE
    v = whole * price_scale + (frac * price_scale + frac_pow // 2) // frac_pow
    return -v if negative else v


@kernel(inline="always")
def char_value(buf, a, b):
    """A FIX char: the single byte, or -1 when the value is not exactly one byte."""
    if b - a != 1:
        return -1
    return np.int64(buf[a])


@kernel(inline="always")
def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: proleptic Gregorian date -> days since 1970-01-01.
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@kernel(inline="always")
def _digits(buf, a, count):
    v = 0
    for i in range(a, a + count):
        c = buf[i]
        if c < _ZERO or c > _NINE:
            return -1
        v = v * 10 + (c - _ZERO)
    return v


@kernel(inline="always")
def timestamp_value(buf, a, b):
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`` -> ns since the epoch."""
    length = b - a
    if length != 17 and length != 21 and length != 24 and length != 27:
        return NO_VALUE
    if buf[a + 8] != _MINUS or buf[a + 11] != 58 or buf[a + 14] != 58:
        return NO_VALUE
    y = _digits(buf, a, 4)
    mo = _digits(buf, a + 4, 2)
    d = _digits(buf, a + 6, 2)
    hh = _digits(buf, a + 9, 2)
    mi = _digits(buf, a + 12, 2)
    ss = _digits(buf, a + 15, 2)
    if y < 0 or mo < 1 or mo > 12 or d < 1 or d > 31 or hh < 0 or hh > 23 or mi < 0 or mi > 59 \
            or ss < 0 or ss > 60:
        return NO_VALUE
    frac_ns = 0
    if length > 17:
        if buf[a + 17] != _DOT:
            return NO_VALUE
        nd = length - 18
        f = _digits(buf, a + 18, nd)
        if f < 0:
            return NO_VALUE
        frac_ns = f * (1_000_000 if nd == 3 else (1000 if nd == 6 else 1))
    days = _days_from_civil(y, mo, d)
    return ((days * 24 + hh) * 60 + mi) * 60_000_000_000 + ss * 1_000_000_000 + frac_ns


@kernel(inline="always")
def order_id_value(buf, a, b):
    """An order id string -> int64: its value when it is 1..18 digits, else a 62-bit hash
    with bit 62 set (so hashed ids never collide with numeric ones, which stay < 2**60)."""
    v = _uint_value(buf, a, b)
    if v != NO_VALUE:
        return v
    return _fnv(buf, a, b) | np.int64(1 << 62)


@kernel(inline="always")
def symbol_key(buf, a, b):
    """A symbol -> int64 key (its bytes when <= 7 long, else a hash) for table lookups."""
    if b - a <= 7:
        v = np.int64(b - a)
        for i in range(a, b):
            v = (v << 8) | np.int64(buf[i])
        return v
    return _fnv(buf, a, b) | np.int64(1 << 62)


@kernel(inline="always")
def _symbol_index(buf, a, b, symbol_keys):
    key = symbol_key(buf, a, b)
    for s in range(symbol_keys.shape[0]):
        if symbol_keys[s] == key:
            return s
    return -1


@kernel
def find_field(fields, msg, tag):
    """Index of the first ``tag`` in message ``msg``'s fields, or -1."""
    first = msg.field_first
    for i in range(first, first + msg.field_count):
        if fields[i].tag == tag:
            return i
    return -1


# ================================================================== validation
@kernel(inline="always")
def _pack_value(buf, a, b):
    v = np.int64(0)
    for i in range(a, b):
        v = (v << 8) | np.int64(buf[i])
    return v


@kernel
def validate(buf, msgs, fields, begin_string, tag_info, char_enums, enum_offsets, enum_values,
             known_types, type_offsets, required, header_required):
    """Check every message against the data-dictionary tables (built by workbench.fix).

    Sets ``reject_reason`` (SessionRejectReason, 373) and ``reject_tag`` (371) of the
    first problem found, in QuickFIX's order: MsgType, then each field (defined, has a
    value, header before body, allowed in this message, format, enum, repeated, group
    count), then required tags. ``known_types[t]`` is a packed MsgType; ``tag_info[t, tag]`` packs what the
    dictionary says about ``tag`` in that type (``INFO_*`` bits: value type, allowed,
    inside a repeating group, has enums, and for a NumInGroup tag the tag that opens
    each entry) so a field costs one table load; ``required[type_offsets[t]:
    type_offsets[t+1]]`` are its required body tags. Returns the number of messages
    rejected. Only messages whose BeginString equals ``begin_string`` are checked (a
    FIX 4.2 message is not judged by the FIX 4.4 dictionary).
    """
    seen = np.zeros(MAX_TAG, np.int64)
    n_bad = 0
    n_types = known_types.shape[0]
    last_type = -1
    t = -1
    for mi in range(msgs.shape[0]):
        m = msgs[mi]
        stamp = mi + 1
        reason = SR_NONE
        nb = begin_string.shape[0]
        same_version = buf[m.start + 2 + nb] == m.delimiter
        for q in range(nb):
            if buf[m.start + 2 + q] != begin_string[q]:
                same_version = False
        if not same_version:
            msgs[mi].reject_reason = SR_NONE
            msgs[mi].reject_tag = 0
            continue
        ref = 0
        if m.msg_type != last_type:  # consecutive messages mostly share a type
            last_type = m.msg_type
            t = -1
            for q in range(n_types):
                if known_types[q] == m.msg_type:
                    t = q
                    break
        if t < 0:
            reason = SR_INVALID_MSG_TYPE
            ref = 35
        first = m.field_first
        last = first + m.field_count
        i = first
        in_body = False
        while reason == SR_NONE and i < last:
            f = fields[i]
            tag = f.tag
            info = tag_info[t, tag] if tag < MAX_TAG else 0
            ftype = info & INFO_TYPE_MASK
            if ftype == T_UNDEFINED:
                reason = SR_INVALID_TAG
                ref = tag
                break
            if info & INFO_HEADER:
                if in_body:
                    reason = SR_OUT_OF_ORDER
                    ref = tag
                    break
            elif tag != 10:
                in_body = True
            if f.end == f.start:
                reason = SR_TAG_WITHOUT_VALUE
                ref = tag
                break
            if info & INFO_ALLOWED == 0:
                reason = SR_TAG_NOT_DEFINED_FOR_MSG_TYPE
                ref = tag
                break
            # Format (syntax only), written out here: calls taking ``buf`` would pay
            # reference-count updates per field.
            a = f.start
            b = f.end
            bad = False
            if ftype == T_INT or ftype == T_DECIMAL:
                if buf[a] == _MINUS:
                    a += 1
                dots = 0
                bad = b <= a
                for q in range(a, b):
                    c = buf[q]
                    if c == _DOT:
                        dots += 1
                    elif c < _ZERO or c > _NINE:
                        bad = True
                if dots > (1 if ftype == T_DECIMAL else 0) or dots == b - a:
                    bad = True
            elif ftype == T_CHAR:
                bad = b - a != 1
            elif ftype == T_BOOLEAN:
                bad = b - a != 1 or (buf[a] != 89 and buf[a] != 78)
            elif ftype == T_TIMESTAMP and not (tag == 52 and m.sending_time != NO_VALUE):
                length = b - a
                if length != 17 and length != 21 and length != 24 and length != 27:
                    bad = True
                else:
                    for q in range(length):
                        c = buf[a + q]
                        if q == 8:
                            bad |= c != _MINUS
                        elif q == 11 or q == 14:
                            bad |= c != 58
                        elif q == 17:
                            bad |= c != _DOT
                        else:
                            bad |= c < _ZERO or c > _NINE
            if bad:
                reason = SR_INCORRECT_DATA_FORMAT
                ref = tag
                break
            if info & INFO_HAS_ENUMS:
                if ftype == T_CHAR:
                    # single-byte enums: one bit per byte value, (MAX_TAG, 32) table
                    c = buf[f.start]
                    if (char_enums[tag, c >> 3] >> (c & 7)) & 1 == 0:
                        reason = SR_VALUE_OUT_OF_RANGE
                        ref = tag
                        break
                elif ftype != T_MULTI:
                    ok = False
                    if f.end - f.start <= 8:
                        v = _pack_value(buf, f.start, f.end)
                        for e in range(enum_offsets[tag], enum_offsets[tag + 1]):
                            if enum_values[e] == v:
                                ok = True
                                break
                    if not ok:
                        reason = SR_VALUE_OUT_OF_RANGE
                        ref = tag
                        break
            if seen[tag] == stamp and info & INFO_IN_GROUP == 0:
                reason = SR_TAG_REPEATED
                ref = tag
                break
            seen[tag] = stamp
            g = info >> INFO_GROUP_SHIFT
            if g > 0:
                declared = int_value(buf, f.start, f.end)
                counted = 0
                for q in range(i + 1, last):
                    counted += fields[q].tag == g
                if declared != counted:
                    reason = SR_GROUP_COUNT
                    ref = tag
                    break
            i += 1
        if reason == SR_NONE:
            for q in range(header_required.shape[0]):
                if seen[header_required[q]] != stamp:
                    reason = SR_REQUIRED_TAG_MISSING
                    ref = header_required[q]
                    break
        if reason == SR_NONE:
            for q in range(type_offsets[t], type_offsets[t + 1]):
                if seen[required[q]] != stamp:
                    reason = SR_REQUIRED_TAG_MISSING
                    ref = required[q]
                    break
        msgs[mi].reject_reason = reason
        msgs[mi].reject_tag = ref
        if reason != SR_NONE:
            n_bad += 1
    return n_bad


# ==================================================================== decoding
@kernel(inline="always")
def _side(c):
    if c == 49:            # '1' Buy
        return BUY
    if c == 50 or c == 53 or c == 54:  # '2' Sell, '5' Sell short, '6' Sell short exempt
        return SELL
    return -1


@kernel(inline="always")
def _ord_type(c):
    if c == 50:   # '2' Limit
        return LIMIT
    if c == 49:   # '1' Market
        return MARKET
    return -1


@kernel(inline="always")
def _tif(c):
    if c == 48 or c == 49 or c == -1:  # '0' Day, '1' GTC, absent: rests (no sessions here)
        return GTC
    if c == 51:   # '3' IOC
        return IOC
    if c == 52:   # '4' FOK
        return FOK
    return -1


@kernel
def decode_orders(buf, msgs, fields, symbol_keys, price_scale, events, event_msg):
    """NewOrderSingle (D) -> EV_ADD, OrderCancelRequest (F) -> EV_DELETE,
    OrderCancelReplaceRequest (G) -> EV_MODIFY, as ``EVENT`` records.

    Messages with a session reject are skipped. D's order id is its ClOrdID (11); F's
    and G's the OrigClOrdID (41) they refer to (see ``order_id_value``). Unknown or
    malformed enums become -1 so the engine rejects them with a reason; ts is
    TransactTime (60), else SendingTime. ``event_msg[k]`` = source message index.
    Returns the number of events written.
    """
    n = 0
    cap = events.shape[0]
    for mi in range(msgs.shape[0]):
        m = msgs[mi]
        mt = m.msg_type
        if m.reject_reason != SR_NONE or (mt != MT_D and mt != MT_F and mt != MT_G):
            continue
        if n >= cap:
            break
        ev = events[n]
        ev.ts = m.sending_time
        ev.order_id = 0
        ev.price = 0
        ev.qty = 0
        ev.symbol = -1
        ev.side = -1
        ev.order_type = LIMIT
        ev.tif = GTC
        tif_char = -1
        if mt == MT_D:
            ev.kind = EV_ADD
        elif mt == MT_F:
            ev.kind = EV_DELETE
        else:
            ev.kind = EV_MODIFY
        for i in range(m.field_first, m.field_first + m.field_count):
            f = fields[i]
            tag = f.tag
            if tag == 11:
                if mt == MT_D:
                    ev.order_id = order_id_value(buf, f.start, f.end)
            elif tag == 41:
                if mt != MT_D:
                    ev.order_id = order_id_value(buf, f.start, f.end)
            elif tag == 44:
                ev.price = fixed_value(buf, f.start, f.end, price_scale)
            elif tag == 38:
                q = fixed_value(buf, f.start, f.end, 1)
                ev.qty = q if q != NO_VALUE else 0
            elif tag == 55:
                ev.symbol = _symbol_index(buf, f.start, f.end, symbol_keys)
            elif tag == 54:
                ev.side = _side(char_value(buf, f.start, f.end))
            elif tag == 40:
                ev.order_type = _ord_type(char_value(buf, f.start, f.end))
            elif tag == 59:
                tif_char = char_value(buf, f.start, f.end)
            elif tag == 60:
                ts = timestamp_value(buf, f.start, f.end)
                if ts != NO_VALUE:
                    ev.ts = ts
        ev.tif = _tif(tif_char)
        if ev.price == NO_VALUE:
            ev.price = 0
        if ev.order_type == MARKET:
            ev.price = 0
        event_msg[n] = mi
        n += 1
    return n


@kernel(parallel=True)
def validate_chunks(buf, msgs, fields, bounds, begin_string, tag_info, char_enums, enum_offsets,
                    enum_values, known_types, type_offsets, required, header_required):
    """``validate`` over msgs[bounds[c]:bounds[c+1]] for each chunk c, in parallel."""
    n_bad = 0
    for c in prange(bounds.shape[0] - 1):
        n_bad += validate(buf, msgs[bounds[c]:bounds[c + 1]], fields, begin_string, tag_info,
                          char_enums, enum_offsets, enum_values, known_types, type_offsets,
                          required, header_required)
    return n_bad


@kernel(parallel=True)
def decode_orders_chunks(buf, msgs, fields, bounds, symbol_keys, price_scale, events, event_msg, counts):
    """``decode_orders`` per chunk in parallel: chunk c writes from events[bounds[c]] and
    counts[c] events; event_msg holds message indices relative to the whole batch."""
    for c in prange(bounds.shape[0] - 1):
        lo = bounds[c]
        hi = bounds[c + 1]
        k = decode_orders(buf, msgs[lo:hi], fields, symbol_keys, price_scale, events[lo:hi],
                          event_msg[lo:hi])
        for i in range(lo, lo + k):
            event_msg[i] += lo
        counts[c] = k


@kernel
def decode_exec_reports(buf, msgs, fields, symbol_keys, price_scale, out):
    """ExecutionReport (8) -> ``EXEC_REPORT`` records; returns the count."""
    n = 0
    for mi in range(msgs.shape[0]):
        m = msgs[mi]
        if m.msg_type != MT_8:
            continue
        if n >= out.shape[0]:
            break
        r = out[n]
        r.order_id = 0
        r.cl_ord_id = 0
        r.exec_id = 0
        r.ts = m.sending_time
        r.price = 0
        r.last_px = 0
        r.last_qty = 0
        r.order_qty = 0
        r.cum_qty = 0
        r.leaves_qty = 0
        r.avg_px = 0
        r.text_start = 0
        r.text_end = 0
        r.msg = mi
        r.symbol = -1
        r.exec_type = 0
        r.ord_status = 0
        r.side = -1
        r.order_type = -1
        for i in range(m.field_first, m.field_first + m.field_count):
            f = fields[i]
            tag = f.tag
            a = f.start
            b = f.end
            if tag == 37:
                r.order_id = order_id_value(buf, a, b)
            elif tag == 11:
                r.cl_ord_id = order_id_value(buf, a, b)
                r.text_start = a
                r.text_end = b
            elif tag == 17:
                r.exec_id = order_id_value(buf, a, b)
            elif tag == 60:
                ts = timestamp_value(buf, a, b)
                if ts != NO_VALUE:
                    r.ts = ts
            elif tag == 44:
                r.price = fixed_value(buf, a, b, price_scale)
            elif tag == 31:
                r.last_px = fixed_value(buf, a, b, price_scale)
            elif tag == 6:
                r.avg_px = fixed_value(buf, a, b, price_scale)
            elif tag == 32:
                r.last_qty = fixed_value(buf, a, b, 1)
            elif tag == 38:
                r.order_qty = fixed_value(buf, a, b, 1)
            elif tag == 14:
                r.cum_qty = fixed_value(buf, a, b, 1)
            elif tag == 151:
                r.leaves_qty = fixed_value(buf, a, b, 1)
            elif tag == 150:
                r.exec_type = np.uint8(char_value(buf, a, b) & 255)
            elif tag == 39:
                r.ord_status = np.uint8(char_value(buf, a, b) & 255)
            elif tag == 54:
                r.side = _side(char_value(buf, a, b))
            elif tag == 40:
                r.order_type = _ord_type(char_value(buf, a, b))
            elif tag == 55:
                r.symbol = _symbol_index(buf, a, b, symbol_keys)
        n += 1
    return n


@kernel
def decode_market_data(buf, msgs, fields, symbol_keys, price_scale, out):
    """MarketData snapshot (W) and incremental refresh (X) entries -> ``MD_ENTRY``.

    An entry starts at each occurrence of the group's first tag (279 in X, 269 in W);
    a message whose entry count differs from NoMDEntries (268) contributes nothing.
    Returns (entries written, messages with a wrong group count).
    """
    n = 0
    n_bad = 0
    cap = out.shape[0]
    for mi in range(msgs.shape[0]):
        m = msgs[mi]
        mt = m.msg_type
        if mt != MT_X and mt != MT_W:
            continue
        delim_tag = 279 if mt == MT_X else 269
        first_entry = n
        declared = -1
        msg_symbol = -1
        in_group = False
        full = False
        for i in range(m.field_first, m.field_first + m.field_count):
            f = fields[i]
            tag = f.tag
            if tag == 268:
                declared = int_value(buf, f.start, f.end)
                in_group = True
                continue
            if in_group and tag == delim_tag:
                if n >= cap:
                    full = True
                    break
                e = out[n]
                e.price = 0
                e.size = 0
                e.msg = mi
                e.symbol = msg_symbol
                e.action = 0
                e.entry_type = 0
                n += 1
            if tag == 55:
                s = _symbol_index(buf, f.start, f.end, symbol_keys)
                if n > first_entry:
                    out[n - 1].symbol = s
                else:
                    msg_symbol = s
            elif n > first_entry:
                e = out[n - 1]
                if tag == 279:
                    c = char_value(buf, f.start, f.end)
                    e.action = c - _ZERO if c >= _ZERO and c <= 50 else -1
                elif tag == 269:
                    e.entry_type = np.uint8(char_value(buf, f.start, f.end) & 255)
                elif tag == 270:
                    e.price = fixed_value(buf, f.start, f.end, price_scale)
                elif tag == 271:
                    e.size = fixed_value(buf, f.start, f.end, 1)
        if full:
            n = first_entry
            break
        if declared != n - first_entry:
            n = first_entry
            n_bad += 1
    return n, n_bad


# ==================================================================== encoding
@kernel(inline="always")
def _put_uint(out, p, v):
    """Write non-negative v in decimal at out[p:]; returns the new offset."""
    if v == 0:
        out[p] = _ZERO
        return p + 1
    nd = 0
    t = v
    while t > 0:
        nd += 1
        t //= 10
    q = p + nd - 1
    while v > 0:
        out[q] = _ZERO + v % 10
        v //= 10
        q -= 1
    return p + nd


@kernel(inline="always")
def _put_fixed(out, p, v, price_scale, scale_digits):
    """Price units -> decimal text with trailing fractional zeros trimmed."""
    if v < 0:
        out[p] = _MINUS
        p += 1
        v = -v
    p = _put_uint(out, p, v // price_scale)
    frac = v % price_scale
    if frac != 0:
        out[p] = _DOT
        p += 1
        digits = scale_digits
        while frac % 10 == 0:
            frac //= 10
            digits -= 1
        # leading zeros of the fraction
        t = frac
        nd = 0
        while t > 0:
            nd += 1
            t //= 10
        for _ in range(digits - nd):
            out[p] = _ZERO
            p += 1
        p = _put_uint(out, p, frac)
    return p


@kernel(inline="always")
def _put_tag(out, p, tag):
    p = _put_uint(out, p, tag)
    out[p] = _EQ
    return p + 1


@kernel(inline="always")
def _put_2(out, p, v):
    out[p] = _ZERO + v // 10
    out[p + 1] = _ZERO + v % 10
    return p + 2


@kernel(inline="always")
def put_timestamp(out, p, ns):
    """ns since the epoch -> ``YYYYMMDD-HH:MM:SS.sss`` at out[p:]; returns the new offset."""
    ms_total = ns // 1_000_000
    ms = ms_total % 1000
    secs = ms_total // 1000
    days = secs // 86400
    rem = secs - days * 86400
    # civil_from_days (Hinnant)
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    p = _put_2(out, p, y // 100)
    p = _put_2(out, p, y % 100)
    p = _put_2(out, p, m)
    p = _put_2(out, p, d)
    out[p] = _MINUS
    p = _put_2(out, p + 1, rem // 3600)
    out[p] = 58
    p = _put_2(out, p + 1, (rem // 60) % 60)
    out[p] = 58
    p = _put_2(out, p + 1, rem % 60)
    out[p] = _DOT
    out[p + 1] = _ZERO + ms // 100
    out[p + 2] = _ZERO + (ms // 10) % 10
    out[p + 3] = _ZERO + ms % 10
    return p + 4


@kernel(inline="always")
def _put_bytes(out, p, src, a, b):
    for i in range(a, b):
        out[p] = src[i]
        p += 1
    return p


ENCODE_RESERVE = 24  # room for "8=FIX.4.4|9=nnnnnn|" before a body is shifted into place


@kernel
def encode_exec_reports(reports, text_pool, symbol_pool, symbol_offsets, begin_string,
                        comp_ids, first_seq, sending_time, price_scale, scale_digits,
                        delimiter, out, offsets):
    """Encode ``EXEC_REPORT`` records as FIX ExecutionReports (35=8) into ``out``.

    ``begin_string`` is e.g. b"FIX.4.4"; ``comp_ids`` the pre-rendered
    ``49=SENDER<d>56=TARGET<d>``; MsgSeqNum counts up from ``first_seq``. The body is
    written first, 24 bytes in, then shifted left behind its now-known
    ``8=..<d>9=len<d>`` prefix; the CheckSum is the byte sum mod 256. ``offsets[k]``..
    ``offsets[k+1]`` frames message k. The caller sizes ``out`` (see workbench.fix).
    Returns the bytes written.
    """
    p = 0
    offsets[0] = 0
    for k in range(reports.shape[0]):
        r = reports[k]
        start = p
        q = start + ENCODE_RESERVE
        body = q
        q = _put_tag(out, q, 35)
        out[q] = 56
        out[q + 1] = delimiter
        q += 2
        q = _put_bytes(out, q, comp_ids, 0, comp_ids.shape[0])
        q = _put_tag(out, q, 34)
        q = _put_uint(out, q, first_seq + k)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 52)
        q = put_timestamp(out, q, sending_time)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 6)
        q = _put_fixed(out, q, r.avg_px, price_scale, scale_digits)
        out[q] = delimiter
        if r.text_end > r.text_start:
            q = _put_tag(out, q + 1, 11)
            q = _put_bytes(out, q, text_pool, r.text_start, r.text_end)
        else:
            q = _put_tag(out, q + 1, 11)
            q = _put_uint(out, q, r.cl_ord_id)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 14)
        q = _put_uint(out, q, r.cum_qty)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 17)
        q = _put_uint(out, q, r.exec_id)
        out[q] = delimiter
        if r.last_qty > 0:
            q = _put_tag(out, q + 1, 31)
            q = _put_fixed(out, q, r.last_px, price_scale, scale_digits)
            out[q] = delimiter
            q = _put_tag(out, q + 1, 32)
            q = _put_uint(out, q, r.last_qty)
            out[q] = delimiter
        q = _put_tag(out, q + 1, 37)
        q = _put_uint(out, q, r.order_id)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 38)
        q = _put_uint(out, q, r.order_qty)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 39)
        out[q] = r.ord_status
        out[q + 1] = delimiter
        q += 1
        if r.order_type >= 0:
            q = _put_tag(out, q + 1, 40)
            out[q] = 49 if r.order_type == MARKET else 50
            out[q + 1] = delimiter
            q += 1
        if r.price > 0:
            q = _put_tag(out, q + 1, 44)
            q = _put_fixed(out, q, r.price, price_scale, scale_digits)
            out[q] = delimiter
        q = _put_tag(out, q + 1, 54)
        out[q] = 50 if r.side == SELL else 49
        out[q + 1] = delimiter
        q += 1
        q = _put_tag(out, q + 1, 55)
        if r.symbol >= 0 and r.symbol + 1 < symbol_offsets.shape[0]:
            q = _put_bytes(out, q, symbol_pool, symbol_offsets[r.symbol], symbol_offsets[r.symbol + 1])
        else:
            out[q] = 63  # '?': unknown symbol index
            q += 1
        out[q] = delimiter
        q = _put_tag(out, q + 1, 60)
        q = put_timestamp(out, q, r.ts)
        out[q] = delimiter
        q = _put_tag(out, q + 1, 150)
        out[q] = r.exec_type
        out[q + 1] = delimiter
        q += 1
        q = _put_tag(out, q + 1, 151)
        q = _put_uint(out, q, r.leaves_qty)
        out[q] = delimiter
        body_end = q + 1
        body_length = body_end - body
        # prefix 8=<begin><d>9=<len><d>
        nd = 1
        t = body_length // 10
        while t > 0:
            nd += 1
            t //= 10
        prefix = 2 + begin_string.shape[0] + 1 + 2 + nd + 1
        w = start
        out[w] = 56
        out[w + 1] = _EQ
        w = _put_bytes(out, w + 2, begin_string, 0, begin_string.shape[0])
        out[w] = delimiter
        out[w + 1] = 57
        out[w + 2] = _EQ
        w = _put_uint(out, w + 3, body_length)
        out[w] = delimiter
        w += 1
        for i in range(body_length):
            out[w + i] = out[body + i]
        msg_end = start + prefix + body_length
        total = 0
        for i in range(start, msg_end):
            total += out[i] if out[i] != delimiter else SOH
        cs = total & 255
        out[msg_end] = 49
        out[msg_end + 1] = _ZERO
        out[msg_end + 2] = _EQ
        out[msg_end + 3] = _ZERO + cs // 100
        out[msg_end + 4] = _ZERO + (cs // 10) % 10
        out[msg_end + 5] = _ZERO + cs % 10
        out[msg_end + 6] = delimiter
        p = msg_end + 7
        offsets[k + 1] = p
    return p

