"""Checkers of notebook 10-fix-protocol."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

SOH = b"\x01"


def _show(raw: bytes, limit: int = 90) -> str:
    text = raw.replace(SOH, b"|").decode("latin-1")
    return text if len(text) <= limit else text[:limit] + "..."


def _tag(raw: bytes, tag: bytes):
    """The value of the first ``tag=`` field of a SOH-delimited message, or None."""
    for part in raw.split(SOH):
        if part.startswith(tag + b"="):
            return part[len(tag) + 1:]
    return None


# ------------------------------------------------------------------ 10.1 framing
def _frame_cases():
    from workbench.fix import build_message, checksum

    cases = [
        ("a Heartbeat", "0", [(49, "CLIENT1"), (56, "ISLD"), (34, 7), (52, "20240102-14:30:00.000")]),
        ("a Logon", "A", [(49, "ME"), (56, "ISLD"), (34, 1), (52, "20240102-14:29:59.500"),
                          (98, 0), (108, 30)]),
        ("a NewOrderSingle", "D", [(49, "CLIENT1"), (56, "ISLD"), (34, 2),
                                   (52, "20240102-14:30:00.123"), (11, "ord-1"), (55, "AAPL"),
                                   (54, "1"), (38, 100), (40, "2"), (44, "185.25"), (59, "0"),
                                   (60, "20240102-14:30:00.120")]),
    ]
    # a message whose CheckSum has leading zeros ("10=007"): found by varying the ClOrdID
    for k in range(10_000):
        fields = [(49, "CLIENT1"), (56, "ISLD"), (34, 3), (52, "20240102-14:30:01.000"),
                  (11, f"c{k}"), (55, "MSFT"), (54, "2"), (38, 5), (40, "1"),
                  (60, "20240102-14:30:01.000")]
        raw = build_message("D", fields)
        if checksum(raw[:raw.rindex(b"10=")]) < 10:
            cases.append(("a NewOrderSingle whose CheckSum is below 10", "D", fields))
            break
    return cases


@exercise("10.1", hint="body = b''.join(b'%d=%s\\x01' % (tag, str(value).encode()) for tag, value in [(35, msg_type), *fields]); head = b'8=FIX.4.4\\x01' + b'9=%d\\x01' % len(body); then head + body + b'10=%03d\\x01' % (sum(head + body) % 256)")
def check_frame(frame) -> Verdict:
    """Exercise 10.1: ``frame(msg_type, fields)`` renders a FIX 4.4 message as bytes:
    ``8=FIX.4.4``, ``9=`` BodyLength (bytes from the field after it up to and including
    the SOH before ``10=``), ``35=msg_type``, the fields in order, ``10=`` CheckSum (the
    byte sum of everything before it, mod 256, three digits), each field ended by SOH.
    Checked byte for byte against ``workbench.fix.build_message`` and with ``parse`` on a
    Heartbeat, a Logon, an order and a message whose CheckSum has leading zeros."""
    from workbench.fix import build_message, checksum, parse

    for label, msg_type, fields in _frame_cases():
        expected = build_message(msg_type, fields)
        got, why = _attempt(frame, msg_type, list(fields))
        if why:
            return _verdict(False, f"{label}: {why}")
        if isinstance(got, str):
            got = got.encode("latin-1")
        if not isinstance(got, (bytes, bytearray)):
            return _verdict(False, f"{label}: return bytes (b'8=FIX.4.4\\x01...'), not "
                                   f"{type(got).__name__}")
        got = bytes(got)
        if got == expected:
            continue
        if b"|" in got and SOH not in got:
            return _verdict(False, f"{label}: you separated fields with '|'; logs print SOH "
                                   "as '|', but the wire uses the byte 0x01 (b'\\x01')")
        if not got.endswith(SOH):
            return _verdict(False, f"{label}: {_show(got)!r} must end with SOH: every field, "
                                   "the CheckSum too, ends with the delimiter")
        if not got.startswith(b"8=FIX.4.4" + SOH + b"9="):
            return _verdict(False, f"{label}: a message starts with 8=FIX.4.4 then 9=BodyLength; "
                                   f"yours starts {_show(got[:20])!r}")
        if _tag(got, b"35") != msg_type.encode() or got.split(SOH)[2] != b"35=" + msg_type.encode():
            return _verdict(False, f"{label}: 35={msg_type} (MsgType) must be the third field")
        want_len, got_len = _tag(expected, b"9"), _tag(got, b"9")
        if got_len != want_len:
            return _verdict(False, f"{label}: BodyLength 9={got_len.decode()}, but the body "
                                   f"has {want_len.decode()} bytes: count from the byte after "
                                   "the SOH that ends 9=... up to and including the SOH "
                                   "before 10=")
        body_got = got[:got.rindex(b"10=")]
        if body_got != expected[:expected.rindex(b"10=")]:
            return _verdict(False, f"{label}: the fields differ from build_message's: "
                                   f"{_show(body_got)!r} vs {_show(expected[:expected.rindex(b'10=')])!r}")
        want_sum, got_sum = _tag(expected, b"10"), _tag(got, b"10")
        if got_sum is not None and got_sum.lstrip(b"0") == want_sum.lstrip(b"0"):
            return _verdict(False, f"{label}: 10={got_sum.decode()}: CheckSum is always three "
                                   f"digits (10={want_sum.decode()})")
        return _verdict(False, f"{label}: 10={got_sum.decode() if got_sum else '?'}, but the "
                               f"bytes before it sum to {checksum(body_got)} mod 256 "
                               f"(10={want_sum.decode()})")
    ok = parse(b"".join(build_message(m, f) for _, m, f in _frame_cases()))
    return _verdict(True, f"byte for byte what build_message writes; the parser accepts "
                          f"all {ok.summary()['valid']} messages")


# ---------------------------------------------------------------- 10.2 decimals
_DECIMAL_CASES = (
    ("185.25", 10_000), ("0.57", 10_000), ("1.13", 10_000), ("100", 10_000), ("0.0003", 10_000),
    ("199999.99", 10_000), ("1.23456", 10_000), ("0.00005", 10_000), ("0.000049", 10_000),
    ("-3.5", 10_000), ("-0.00005", 10_000), (".5", 10_000), ("5.", 10_000), ("250", 1),
    ("19.995", 100), ("", 10_000), ("-", 10_000), (".", 10_000), ("1.2.3", 10_000),
    ("abc", 10_000), ("1e5", 10_000), (" 5", 10_000), ("nan", 10_000), ("+5", 10_000),
    ("12,5", 10_000), ("inf", 10_000),
)


def _decimal_reference(text: str, scale: int):
    """The kernel's reading (``kernels.fix.fields.fixed_value``); None when malformed."""
    from kernels.fix import fields as fix_fields

    raw = np.frombuffer(text.encode("latin-1") or b"\0", np.uint8)
    value = int(fix_fields.fixed_value(raw, 0, len(text.encode("latin-1")), scale))
    return None if value == fix_fields.NO_VALUE else value


@exercise("10.2", hint="split at the dot into whole and fraction digits (only 0-9, one optional leading '-', at least one digit); units = int(whole) * scale + (int(frac) * scale + 10**len(frac) // 2) // 10**len(frac); never go through float()")
def check_price_units(price_units) -> Verdict:
    """Exercise 10.2: ``price_units(text, price_scale)`` reads a FIX decimal (a price
    like ``"185.25"``) into integer price units, ``round(value x price_scale)`` with
    halves rounded away from zero, exactly (no float on the way), and returns None for
    anything that is not a plain decimal (``"1e5"``, ``" 5"``, ``"nan"``, ``"+5"``,
    ``""``, two dots). Checked against the kernel's ``fixed_value`` on 26 texts."""
    for text, scale in _DECIMAL_CASES:
        expected = _decimal_reference(text, scale)
        got, why = _attempt(price_units, text, scale)
        call = f"price_units({text!r}, {scale:_})"
        if why:
            if expected is None and isinstance(why, str) and "ValueError" in why:
                return _verdict(False, f"{call}: {why}. A malformed value is counted, not a "
                                       "crash: return None")
            return _verdict(False, f"{call}: {why}")
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if isinstance(got, (np.integer,)):
            got = int(got)
        if got == expected and (got is None or (isinstance(got, int) and not isinstance(got, bool))):
            continue
        if expected is None:
            return _verdict(False, f"{call} returned {got!r}, but {text!r} is not a FIX "
                                   "decimal (digits, at most one dot, an optional leading "
                                   "'-'): return None. float() accepts it; a wire parser must "
                                   "not")
        if got is None:
            return _verdict(False, f"{call} returned None, but {text!r} is a valid decimal: "
                                   f"{expected:,} units")
        if not isinstance(got, int) or isinstance(got, bool):
            return _verdict(False, f"{call} returned {got!r}: return an int (price units)")
        product = float(text) * scale
        if got == int(product) and abs(product - round(product)) < 1e-6:
            return _verdict(False, f"{call} returned {got:,}, the exact answer is {expected:,}: "
                                   f"float({text!r}) * {scale} is {product!r} (a binary float "
                                   "cannot hold most decimals) and int() cuts the rest off. "
                                   "Read the digits instead")
        if got in (round(product), int(product)):
            return _verdict(False, f"{call} returned {got:,}, the exact answer is {expected:,}: "
                                   f"{text!r} x {scale} has a fraction: round it to the "
                                   "nearest unit, halves away from zero (int() cuts the fraction "
                                   "off, Python's round() sends halves to even). Read the "
                                   "digits, not a float")
        if abs(got - expected) == 1:
            return _verdict(False, f"{call} returned {got:,}, the kernel says {expected:,}: "
                                   "below the scale, halves round away from zero")
        return _verdict(False, f"{call} returned {got:,}, the kernel reads {expected:,}")
    return _verdict(True, "every decimal read exactly, halves away from zero, and every "
                          "non-decimal refused (no float on the way)")


# ---------------------------------------------------------- 10.3 an ExecutionReport
_SYMBOLS = ("AAPL", "MSFT")
# (cl_ord_id, symbol, side (0 buy, 1 sell), exec_type, ord_status, last_px units, last_qty,
#  cum_qty, leaves_qty)
_REPORTS = (
    ("b1", 0, 0, "F", "1", 1_852_500, 40, 40, 60),
    ("s1", 0, 1, "F", "2", 1_853_000, 100, 100, 0),
    ("ord-77", 1, 0, "0", "0", 0, 0, 0, 250),
    ("x9", 1, 1, "4", "4", 0, 0, 20, 0),
    ("b2", 0, 0, "F", "2", 1_000_001, 1, 300, 0),
)


def _report_messages() -> list[bytes]:
    from kernels.records import EXEC_REPORT
    from workbench.fix import encode_execution_reports

    r = np.zeros(len(_REPORTS), EXEC_REPORT)
    for i, (_, sym, side, et, st, px, qty, cum, leaves) in enumerate(_REPORTS):
        r[i]["order_id"] = 1_000 + i
        r[i]["exec_id"] = 5_000 + i
        r[i]["ts"] = 1_704_205_800_000_000_000 + i * 1_000_000
        r[i]["price"] = px or 1_852_500
        r[i]["last_px"] = px
        r[i]["last_qty"] = qty
        r[i]["cum_qty"] = cum
        r[i]["leaves_qty"] = leaves
        r[i]["order_qty"] = cum + leaves
        r[i]["avg_px"] = px
        r[i]["symbol"] = sym
        r[i]["side"] = side
        r[i]["exec_type"] = ord(et)
        r[i]["ord_status"] = ord(st)
        r[i]["msg"] = -1
    buf, off = encode_execution_reports(r, sender_comp_id="ISLD", target_comp_id="ME",
                                        sending_time=1_704_205_800_000_000_000,
                                        symbols=list(_SYMBOLS),
                                        cl_ord_ids=[x[0] for x in _REPORTS])
    raw = buf.tobytes()
    return [raw[off[i]:off[i + 1]] for i in range(len(_REPORTS))]


_FIELDS = ("cl_ord_id", "side", "last_px", "last_qty", "leaves_qty", "ord_status")


@exercise("10.3", hint="fields = dict(p.split(b'=', 1) for p in msg.split(b'\\x01') if p); side: 54 '1' BUY, '2' SELL; last_px = float(fields[b'31']); ord_status = load_dictionary().enum_name(39, fields[b'39'].decode())")
def check_report_summary(report_summary) -> Verdict:
    """Exercise 10.3: ``report_summary(msg)`` reads one ExecutionReport (SOH-delimited
    bytes) into a dict people can read: ``cl_ord_id`` (text), ``side`` ("BUY"/"SELL"),
    ``last_px`` (a price, 185.25), ``last_qty``, ``leaves_qty`` (ints) and
    ``ord_status`` by its FIX 4.4 name ("FILLED", not "2" or 50). Checked against the
    package's decoder (``parse(msg).reports_frame()``) on a partial fill, a fill, a new
    order and a cancel, as the encoder writes them."""
    from workbench.fix import load_dictionary, parse

    d = load_dictionary()
    for msg in _report_messages():
        row = parse(msg, symbols=_SYMBOLS).reports_frame().row(0, named=True)
        expected = {k: row[k] for k in _FIELDS}
        got, why = _attempt(report_summary, msg)
        where = f"for {_show(msg, 200)!r}"
        if why:
            return _verdict(False, f"{why} {where}")
        if not isinstance(got, dict):
            return _verdict(False, f"return a dict with keys {list(_FIELDS)}, not "
                                   f"{type(got).__name__}")
        missing = [k for k in _FIELDS if k not in got]
        if missing:
            return _verdict(False, f"your dict has no {missing}; it needs {list(_FIELDS)}")
        for key in _FIELDS:
            mine, want = got[key], expected[key]
            if isinstance(mine, bytes):
                return _verdict(False, f"{key}: {mine!r} is bytes; decode it into text "
                                       f"({want!r}) {where}")
            if key == "last_px":
                try:
                    ok = math.isclose(float(mine), want, rel_tol=1e-12, abs_tol=1e-12)
                except (TypeError, ValueError):
                    ok = False
                if ok:
                    continue
                if isinstance(mine, (int, float)) and math.isclose(float(mine), want * 10_000):
                    return _verdict(False, f"last_px {mine!r} is in price units: show the "
                                           f"price, {want} {where}")
                return _verdict(False, f"last_px {mine!r}, the report says {want} (tag 31, "
                                       f"as a price) {where}")
            if key in ("last_qty", "leaves_qty"):
                if not isinstance(mine, bool) and isinstance(mine, (int, np.integer)) and mine == want:
                    continue
                return _verdict(False, f"{key} {mine!r}, the report says {want} (an int; tag "
                                       f"{32 if key == 'last_qty' else 151}) {where}")
            if mine == want:
                continue
            if key == "ord_status":
                code = _tag(msg, b"39").decode()
                return _verdict(False, f"ord_status {mine!r}: the report's 39={code} is "
                                       f"{d.enum_name(39, code)!r} by name "
                                       f"(load_dictionary().enum_name(39, {code!r})) {where}")
            if key == "side":
                code = _tag(msg, b"54").decode()
                return _verdict(False, f"side {mine!r}: 54={code} means {want!r} "
                                       f"('1' BUY, '2' SELL) {where}")
            return _verdict(False, f"{key} {mine!r}, the report says {want!r} {where}")
    return _verdict(True, "fills, a new order and a cancel read as people read them: prices "
                          "as prices, statuses by name")
