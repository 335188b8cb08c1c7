"""FIX encoding: ``EXEC_REPORT`` records -> ExecutionReport (35=8) wire bytes.

Contract: ``EXEC_REPORT`` records (``kernels.records``) and byte pools (ClOrdID text,
symbols, the pre-rendered CompIDs) in; the messages written back to back into a
caller-sized uint8 ``out``, ``offsets`` framing each, the bytes written returned.
Prices leave as decimal text with trailing fractional zeros trimmed; the CheckSum counts
the delimiter as SOH (the framing rule of ``kernels.fix.frame``). ``put_timestamp``
renders one UTCTimestamp (the Python layer uses it too).

The writers are calls compiled without Numba's runtime, not ``inline="always"``
(``kernels.fix.fields`` says why): inlined at its thirty call sites, ``_put_uint``
alone made ``encode_exec_reports`` take 11.5 s to compile; as calls, 3 s.
"""
from __future__ import annotations

from kernels.fix.fields import DOT, EQ, MINUS, ZERO
from kernels.fix.frame import SOH
from kernels.jit import kernel
from kernels.records import MARKET, SELL


# ============================================================= writing values
@kernel(nrt=False)
def _put_uint(out, p, v):
    """Write non-negative v in decimal at out[p:]; returns the new offset."""
    if v == 0:
        out[p] = ZERO
        return p + 1
    nd = 0
    t = v
    while t > 0:
        nd += 1
        t //= 10
    q = p + nd - 1
    while v > 0:
        out[q] = ZERO + v % 10
        v //= 10
        q -= 1
    return p + nd


@kernel(nrt=False)
def _put_fixed(out, p, v, price_scale, scale_digits):
    """Price units -> decimal text with trailing fractional zeros trimmed."""
    if v < 0:
        out[p] = MINUS
        p += 1
        v = -v
    p = _put_uint(out, p, v // price_scale)
    frac = v % price_scale
    if frac != 0:
        out[p] = DOT
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
            out[p] = ZERO
            p += 1
        p = _put_uint(out, p, frac)
    return p


@kernel(inline="always")
def _put_tag(out, p, tag):
    p = _put_uint(out, p, tag)
    out[p] = EQ
    return p + 1


@kernel(inline="always")
def _put_2(out, p, v):
    out[p] = ZERO + v // 10
    out[p + 1] = ZERO + v % 10
    return p + 2


@kernel(nrt=False)
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
    out[p] = MINUS
    p = _put_2(out, p + 1, rem // 3600)
    out[p] = 58
    p = _put_2(out, p + 1, (rem // 60) % 60)
    out[p] = 58
    p = _put_2(out, p + 1, rem % 60)
    out[p] = DOT
    out[p + 1] = ZERO + ms // 100
    out[p + 2] = ZERO + (ms // 10) % 10
    out[p + 3] = ZERO + ms % 10
    return p + 4


@kernel(nrt=False)
def _put_bytes(out, p, src, a, b):
    for i in range(a, b):
        out[p] = src[i]
        p += 1
    return p


# ============================================================ ExecutionReport
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
        out[w + 1] = EQ
        w = _put_bytes(out, w + 2, begin_string, 0, begin_string.shape[0])
        out[w] = delimiter
        out[w + 1] = 57
        out[w + 2] = EQ
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
        out[msg_end + 1] = ZERO
        out[msg_end + 2] = EQ
        out[msg_end + 3] = ZERO + cs // 100
        out[msg_end + 4] = ZERO + (cs // 10) % 10
        out[msg_end + 5] = ZERO + cs % 10
        out[msg_end + 6] = delimiter
        p = msg_end + 7
        offsets[k + 1] = p
    return p
