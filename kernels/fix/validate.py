"""FIX validation of framed messages against the FIX 4.4 data-dictionary subset.

Contract: the uint8 buffer, the ``FIX_MESSAGE`` / ``FIX_FIELD`` arrays from
``kernels.fix.frame`` and the dictionary tables (built by ``workbench.fix.dictionary``
from the ``T_*`` value types and ``INFO_*`` bits defined here) in; each message's
``reject_reason`` (SessionRejectReason, 373: ``SR_*`` in ``kernels.records``) and
``reject_tag`` (RefTagID, 371) written in place; the number of rejected messages
returned. ``validate_chunks`` runs ``validate`` per chunk under ``prange``.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from kernels.fix.fields import DOT, MINUS, NINE, NO_VALUE, ZERO, int_value
from kernels.jit import kernel
from kernels.records import (
    SR_GROUP_COUNT, SR_INCORRECT_DATA_FORMAT, SR_INVALID_MSG_TYPE, SR_INVALID_TAG, SR_NONE,
    SR_OUT_OF_ORDER, SR_REQUIRED_TAG_MISSING, SR_TAG_NOT_DEFINED_FOR_MSG_TYPE, SR_TAG_REPEATED,
    SR_TAG_WITHOUT_VALUE, SR_VALUE_OUT_OF_RANGE,
)

# ------------------------------------------------ codes of the dictionary tables
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
                if buf[a] == MINUS:
                    a += 1
                dots = 0
                bad = b <= a
                for q in range(a, b):
                    c = buf[q]
                    if c == DOT:
                        dots += 1
                    elif c < ZERO or c > NINE:
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
                            bad |= c != MINUS
                        elif q == 11 or q == 14:
                            bad |= c != 58
                        elif q == 17:
                            bad |= c != DOT
                        else:
                            bad |= c < ZERO or c > NINE
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
