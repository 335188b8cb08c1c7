"""FIX framing: the ``8=FIX`` scan, BodyLength and CheckSum checks, the zero-copy tag index.

Contract: a uint8 buffer in; preallocated ``FIX_MESSAGE`` and ``FIX_FIELD`` arrays
(``kernels.records``) and an ``N_FIX_COUNTS`` int64 count row out. ``scan_range`` frames
every message starting in a byte range, indexes each tag as a ``(start, end)`` span of
the caller's buffer (nothing is copied) and fills each message's header facts (MsgType
packed big-endian, MsgSeqNum, SendingTime, a hash of SenderCompID). It returns
``(n_msgs, n_fields, resume_offset, status)`` with ``status`` one of ``SCAN_*``.

Bad input never crashes a kernel: a message that cannot be framed is counted under one
``FIX_R_*`` reason and the scanner resynchronises at the next ``8=FIX``. Every read is
guarded by the framing (the trailer ``<delim>10=nnn<delim>`` is checked before any field
loop runs, so the inner loops stop on a delimiter that is known to exist).

Delimiters: SOH (0x01) on the wire, ``|`` in logs. The checksum is always computed as if
the delimiter were SOH, so a pipe-rendered log of a valid message still verifies.

Speed: the scan sums the CheckSum in the same pass that splits the fields. The chunked
parallel scan (``scan_chunks``, ``compact_chunks``) is in ``kernels.fix.decode``.
"""
from __future__ import annotations

import numpy as np

from kernels.fix.fields import EQ, NINE, NO_VALUE, ZERO, hash_value, timestamp_value, uint_value
from kernels.jit import kernel
from kernels.records import SR_NONE

# ------------------------------------------------------------------ delimiters
SOH = 1
PIPE = 124

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
    return (i + 5 <= n and buf[i] == 56 and buf[i + 1] == EQ and buf[i + 2] == 70
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
        if (c == SOH or c == PIPE) and buf[i + 1] == 49 and buf[i + 2] == ZERO and buf[i + 3] == EQ:
            return True
        i += 1
    return False


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
    while i < lim and buf[i] != SOH and buf[i] != PIPE and buf[i] != 10 and buf[i] != EQ:
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
    if buf[i] != 57 or buf[i + 1] != EQ:
        return FIX_R_MISSING_BODY_LENGTH, pos, 0
    i += 2
    length_start = i
    body_length = 0
    digits = 0
    while i < n and digits < 9 and buf[i] >= ZERO and buf[i] <= NINE:
        body_length = body_length * 10 + (buf[i] - ZERO)
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
            and buf[body_end + 1] == ZERO and buf[body_end + 2] == EQ):
        if stream:
            return FIX_R_WRONG_BODY_LENGTH, trailer_end, 0
        nxt = find_begin(buf, pos + 1, n)
        if _has_trailer(buf, body_start - 1, nxt):
            return FIX_R_WRONG_BODY_LENGTH, pos, 0
        return FIX_R_MISSING_CHECKSUM, pos, 0
    c0 = buf[body_end + 3]
    c1 = buf[body_end + 4]
    c2 = buf[body_end + 5]
    if (c0 < ZERO or c0 > NINE or c1 < ZERO or c1 > NINE or c2 < ZERO or c2 > NINE
            or buf[body_end + 6] != delim):
        return FIX_R_BAD_CHECKSUM, pos, 0
    declared = (c0 - ZERO) * 100 + (c1 - ZERO) * 10 + (c2 - ZERO)
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
        while buf[j] >= ZERO and buf[j] <= NINE:
            tag = tag * 10 + (buf[j] - ZERO)
            total += buf[j]
            j += 1
        c = buf[j]
        if c != EQ or j == t0 or j - t0 > 9:
            if c == delim:
                return FIX_R_STRAY_SOH, pos, 0
            # a stray delimiter split a value: the fragment has no '=' before the next delimiter
            q = j
            while buf[q] != delim and buf[q] != EQ:
                q += 1
            if buf[q] == delim and j - t0 <= 9:
                return FIX_R_STRAY_SOH, pos, 0
            return FIX_R_NON_NUMERIC_TAG, pos, 0
        j += 1
        v0 = j
        while buf[j] != delim:
            total += buf[j]
            j += 1
        total += EQ + SOH  # the '=' and the delimiter, counted as SOH
        fields[k].start = v0
        fields[k].end = j
        fields[k].tag = tag
        fields[k].msg = mi
        if tag == 34:
            seq_num = uint_value(buf, v0, j)
        elif tag == 52:
            sending_time = timestamp_value(buf, v0, j)
        elif tag == 49:
            sender = hash_value(buf, v0, j)
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
