"""FIX decoding of framed messages into records, and the parallel parse.

Contract: the uint8 buffer and the ``FIX_MESSAGE`` / ``FIX_FIELD`` arrays in; records
written into caller-sized arrays; counts returned.

``decode_orders``        NewOrderSingle (D), OrderCancelRequest (F) and
                         OrderCancelReplaceRequest (G) -> ``kernels.records.EVENT``, so
                         they feed the engine directly.
``decode_exec_reports``  ExecutionReport (8) -> ``EXEC_REPORT``.
``decode_market_data``   the repeating groups of MarketData snapshot (W) and
                         incremental refresh (X) -> ``MD_ENTRY``.

Symbols map to the caller's list through ``symbol_keys`` (see
``kernels.fix.fields.symbol_key``); unknown or malformed enums become -1.

Parallel parse: ``scan_chunks`` (scan + validate in one parallel region) and
``decode_orders_chunks`` run the serial code per chunk under ``prange``;
``compact_chunks`` then closes the gaps between the chunks' outputs.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from kernels.fix.fields import (
    NO_VALUE, ZERO, char_value, fixed_value, int_value, order_id_value, symbol_key, timestamp_value,
)
from kernels.fix.frame import scan_range
from kernels.fix.validate import validate
from kernels.jit import kernel
from kernels.records import (
    BUY, EV_ADD, EV_DELETE, EV_MODIFY, FOK, GTC, IOC, LIMIT, MARKET, MT_8, MT_D, MT_F, MT_G, MT_W,
    MT_X, SELL, SR_NONE,
)


# ===================================================== enum and symbol mapping
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


@kernel(inline="always")
def _symbol_index(buf, a, b, symbol_keys):
    key = symbol_key(buf, a, b)
    for s in range(symbol_keys.shape[0]):
        if symbol_keys[s] == key:
            return s
    return -1


# ==================================================================== decoding
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
                    e.action = c - ZERO if c >= ZERO and c <= 50 else -1
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


# ============================================================== parallel parse
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
