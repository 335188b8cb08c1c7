"""FIX field values: tag lookup and typed accessors over the zero-copy tag index.

Owns reading one value: every accessor takes the caller's uint8 buffer and a value's byte
span ``buf[a:b)`` (a ``FIX_FIELD``'s ``start`` / ``end``) and returns one int64, or
``NO_VALUE`` when the value is absent or malformed (``char_value``: -1). Nothing is
copied and nothing raises. ``find_field`` finds a tag in one message's slice of the
field index.

Also owns what the other FIX modules share about value syntax: the ASCII bytes of
``tag=value`` (``EQ``, ``ZERO``, ``NINE``, ``DOT``, ``MINUS``) and ``hash_value`` (62-bit
FNV-1a of a span: SenderCompID, non-numeric order ids, long symbols).

The accessors are compiled without Numba's runtime (``nrt=False``): a call that takes
``buf`` then pays no reference-count updates (atomics), which would cost more than the
work in a per-field helper. They are ordinary calls, not ``inline="always"``: Numba
inlines by copying and re-typing the helper's IR at every call site, and the decoders
and the validator call them dozens of times (``fixed_value`` seven times in one
decoder), which made the FIX kernels about 65 s of a cold start; as calls they compile
once (about 15 s for the whole FIX group) and LLVM still inlines what pays. The
one-line helpers (``char_value`` and the timestamp's pieces) stay inlined.
"""
from __future__ import annotations

import numpy as np

from kernels.jit import kernel

# ------------------------------------------------- ASCII bytes of the tag=value syntax
EQ = 61
ZERO = 48
NINE = 57
DOT = 46
MINUS = 45

NO_VALUE = np.iinfo(np.int64).min  # typed accessors' "absent / malformed"


# ============================================================ typed accessors
@kernel(nrt=False)
def hash_value(buf, a, b):
    """62-bit FNV-1a hash of buf[a:b) (bit 62 stays clear for callers to tag hashed ids)."""
    h = np.uint64(14695981039346656037)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    return np.int64(h & np.uint64(0x3FFFFFFFFFFFFFFF))


@kernel(nrt=False)
def uint_value(buf, a, b):
    """Unsigned decimal integer in buf[a:b), NO_VALUE if empty/not digits/too long."""
    if b <= a or b - a > 18:
        return NO_VALUE
    v = 0
    for i in range(a, b):
        c = buf[i]
        if c < ZERO or c > NINE:
            return NO_VALUE
        v = v * 10 + (c - ZERO)
    return v


@kernel(nrt=False)
def int_value(buf, a, b):
    """FIX int (optional leading '-') in buf[a:b), or NO_VALUE."""
    if b > a and buf[a] == MINUS:
        v = uint_value(buf, a + 1, b)
        return NO_VALUE if v == NO_VALUE else -v
    return uint_value(buf, a, b)


@kernel(nrt=False)
def fixed_value(buf, a, b, price_scale):
    """FIX decimal (price, qty) in buf[a:b) -> int64 ``round(value * price_scale)``.

    Exact for up to 12 fractional digits; rounds half away from zero below the scale.
    NO_VALUE when empty or malformed (sign other than a leading '-', two dots, letters).
    """
    if b <= a:
        return NO_VALUE
    negative = buf[a] == MINUS
    i = a + 1 if negative else a
    if i >= b:
        return NO_VALUE
    whole = 0
    nd = 0
    while i < b and buf[i] != DOT:
        c = buf[i]
        if c < ZERO or c > NINE or nd >= 15:
            return NO_VALUE
        whole = whole * 10 + (c - ZERO)
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
            if c < ZERO or c > NINE:
                return NO_VALUE
            if frac_pow < 1_000_000_000_000:
                frac = frac * 10 + (c - ZERO)
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
        if c < ZERO or c > NINE:
            return -1
        v = v * 10 + (c - ZERO)
    return v


@kernel(nrt=False)
def timestamp_value(buf, a, b):
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`` -> ns since the epoch."""
    length = b - a
    if length != 17 and length != 21 and length != 24 and length != 27:
        return NO_VALUE
    if buf[a + 8] != MINUS or buf[a + 11] != 58 or buf[a + 14] != 58:
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
        if buf[a + 17] != DOT:
            return NO_VALUE
        nd = length - 18
        f = _digits(buf, a + 18, nd)
        if f < 0:
            return NO_VALUE
        frac_ns = f * (1_000_000 if nd == 3 else (1000 if nd == 6 else 1))
    days = _days_from_civil(y, mo, d)
    return ((days * 24 + hh) * 60 + mi) * 60_000_000_000 + ss * 1_000_000_000 + frac_ns


@kernel(nrt=False)
def order_id_value(buf, a, b):
    """An order id string -> int64: its value when it is 1..18 digits, else a 62-bit hash
    with bit 62 set (so hashed ids never collide with numeric ones, which stay < 2**60)."""
    v = uint_value(buf, a, b)
    if v != NO_VALUE:
        return v
    return hash_value(buf, a, b) | np.int64(1 << 62)


@kernel(nrt=False)
def symbol_key(buf, a, b):
    """A symbol -> int64 key (its bytes when <= 7 long, else a hash) for table lookups."""
    if b - a <= 7:
        v = np.int64(b - a)
        for i in range(a, b):
            v = (v << 8) | np.int64(buf[i])
        return v
    return hash_value(buf, a, b) | np.int64(1 << 62)


# ================================================================= tag lookup
@kernel
def find_field(fields, msg, tag):
    """Index of the first ``tag`` in message ``msg``'s fields, or -1."""
    first = msg.field_first
    for i in range(first, first + msg.field_count):
        if fields[i].tag == tag:
            return i
    return -1
