"""FIX kernels and ``workbench.fix.parse``: framing, checksums, garbles, parallel == serial,
typed accessors, decoding into engine records, encoding round trips, dictionary validation."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import ROUND_HALF_UP
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.fix import fields as fix_fields
from kernels.fix.frame import FIX_SKIPPED_BYTES
from kernels.records import BUY, EV_ADD, EV_DELETE, EV_MODIFY, FILL, FOK, GTC, IOC, LIMIT, MARKET, SELL
from tests.conftest import REPO, shared_path
from workbench.fix import (
    build_message, checksum, encode_execution_report, encode_execution_reports,
    execution_reports_from_fills, parse,
)

SOH = b"\x01"


def order(seq: int, cl_ord_id: str = "1001", extra: dict | None = None) -> bytes:
    fields = {49: "C", 56: "ISLD", 34: seq, 52: "20240102-14:30:00.123", 11: cl_ord_id, 21: "1",
              55: "AAPL", 54: "1", 38: "100", 40: "2", 44: "185.25", 60: "20240102-14:30:00.120"}
    fields.update(extra or {})
    return build_message("D", [(t, v) for t, v in fields.items() if v is not None])


def reference_frame(message: bytes) -> tuple[list[tuple[int, bytes]], int, int]:
    """Plain-Python reading of one SOH message: fields, declared and computed checksum."""
    parts = message.rstrip(SOH).split(SOH)
    fields = [(int(p.split(b"=", 1)[0]), p.split(b"=", 1)[1]) for p in parts]
    trailer = message.rindex(b"10=")
    return fields, int(fields[-1][1]), sum(message[:trailer]) % 256


# ------------------------------------------------------------------ samples
@pytest.mark.shared
@pytest.mark.parametrize("name", ["fix_messages_checksum_valid.soh.txt", "fix_messages_checksum_valid.pipe.txt"])
def test_shared_samples_frame_and_verify(name):
    data = shared_path("fix", name).read_bytes()
    batch = parse(data)
    assert batch.summary() == {"messages": 11, "valid": 11, "rejected": 0, "reasons": {}}
    soh_lines = shared_path("fix", "fix_messages_checksum_valid.soh.txt").read_bytes().splitlines()
    provenance = shared_path("fix", "fix_messages_checksum_valid.provenance.tsv").read_text().splitlines()[1:]
    for i, line in enumerate(soh_lines):
        fields, declared, computed = reference_frame(line)
        assert declared == computed == batch.messages[i]["checksum"]
        assert batch.msg_type(i) == provenance[i].split("\t")[2]
        got = [(int(batch.fields[k]["tag"]), batch.value(k))
               for k in range(batch.messages[i]["field_first"],
                              batch.messages[i]["field_first"] + batch.messages[i]["field_count"])]
        assert got == fields  # zero-copy spans give back exactly the bytes
        body_start = line.index(b"\x0135=") + 1
        assert batch.messages[i]["body_length"] == line.rindex(b"10=") - body_start


@pytest.mark.shared
def test_redacted_session_log_is_counted_not_crashed():
    data = shared_path("fix", "luxor_fx_session_fix44_redacted.log").read_bytes()
    batch = parse(data)
    summary = batch.summary()
    assert summary["messages"] == data.count(b"8=FIX") and summary["valid"] == 0
    assert sum(summary["reasons"].values()) == summary["rejected"]


# ---------------------------------------------------------------- garbling
def _garbles() -> dict[str, bytes]:
    good = order(2)
    body_len = good.split(SOH)[1]
    return {
        "bad_checksum": good[:-4] + (b"%03d" % ((int(good[-4:-1]) + 1) % 256)) + SOH,
        "wrong_body_length": good.replace(body_len, b"9=%d" % (int(body_len[2:]) - 5), 1),
        "missing_begin_string": good[good.index(SOH) + 1:],
        "missing_body_length": good.replace(body_len + SOH, b"", 1),
        "missing_msg_type": build_message("D", [(49, "C")]).replace(b"35=D\x0149=C", b"49=C\x0135=D"),
        "missing_checksum": good[:good.rindex(b"10=")],
        "non_numeric_tag": build_message("0", [(49, "C"), (56, "S"), ("4x", "1")]),
        "stray_soh": build_message("0", [(49, "C"), (58, "a\x01b")]),
        "empty_field_stray_soh": build_message("0", [(49, "C")]).replace(b"49=C\x01", b"49=C\x01\x01"),
    }


@pytest.mark.parametrize("reason", list(_garbles()))
def test_every_garble_reason_is_counted_and_neighbours_survive(reason):
    garbled = _garbles()[reason]
    if reason == "empty_field_stray_soh":
        # re-sign so only the stray delimiter is wrong
        head, _, _ = garbled.rpartition(b"10=")
        body = head[head.index(b"\x0135=") + 1:]
        head = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
        garbled = head + b"10=%03d\x01" % checksum(head)
        reason = "stray_soh"
    data = order(1, "11") + garbled + order(3, "33")
    batch = parse(data, validate=False)
    assert batch.framing_rejects[reason] == 1, batch.framing_rejects
    assert sum(batch.framing_rejects.values()) == 1
    assert [batch.get(i, 11) for i in range(len(batch))] == [b"11", b"33"]


def test_truncated_tail_and_resync_after_garbage():
    good = order(1)
    data = b"noise\n" + good + b"\x00\xff junk " + good + good[:40]
    batch = parse(data)
    assert len(batch) == 2 and batch.framing_rejects["truncated"] == 1
    assert batch.counts[FIX_SKIPPED_BYTES] == len(b"noise\n") + len(b"\x00\xff junk ")


def test_stream_mode_keeps_an_incomplete_tail():
    good = order(1)
    data = good + good[:50]
    batch = parse(data, stream=True)
    assert len(batch) == 1 and batch.consumed == len(good)
    assert sum(batch.framing_rejects.values()) == 0


def test_pipe_delimited_checksum_counts_delimiters_as_soh():
    msg = order(5)
    assert parse(msg.replace(SOH, b"|")).summary()["valid"] == 1


# ------------------------------------------------------- serial == parallel
def _mixed_stream(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    garbles = list(_garbles().values())
    parts = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            parts.append(garbles[int(rng.integers(len(garbles)))])
        elif r < 0.08:
            # a value containing "8=FIX": a split point may land inside a message
            parts.append(build_message("0", [(49, "C"), (56, "S"), (34, i), (58, "x8=FIX.4.4\x7f" * 3)]))
        elif r < 0.10:
            parts.append(b"\n# comment 10=123\n")
        else:
            parts.append(order(i, str(i), extra={54: "2" if i % 3 else "1"}))
    return b"".join(parts)


@pytest.mark.parametrize("n_chunks", [2, 3, 7, 64])
def test_parallel_parse_is_identical_to_serial(n_chunks):
    data = _mixed_stream(3000, seed=n_chunks)
    serial = parse(data, parallel=False, symbols=["AAPL"])
    parallel = parse(data, parallel=True, n_chunks=n_chunks, symbols=["AAPL"])
    assert np.array_equal(serial.messages, parallel.messages)
    assert np.array_equal(serial.fields, parallel.fields)
    assert np.array_equal(serial.counts, parallel.counts)
    assert np.array_equal(serial.events, parallel.events)
    assert np.array_equal(serial.event_msg, parallel.event_msg)
    assert serial.summary() == parallel.summary()
    assert serial.summary()["rejected"] > 0


# ----------------------------------------------------------- typed accessors
def _buf(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


@settings(max_examples=150, deadline=None)
@given(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False, allow_infinity=False),
       st.sampled_from([1, 100, 10_000, 1_000_000]))
def test_fixed_point_matches_decimal(value, scale):
    text = format(value, "f")
    expected = int((value * scale).to_integral_value(rounding=ROUND_HALF_UP))
    assert fix_fields.fixed_value(_buf(text), 0, len(text), scale) == expected


@pytest.mark.parametrize("text", ["", "-", ".", "1..2", "+5", "1e5", "12a"])
def test_malformed_numbers_are_no_value(text):
    b = _buf(text)
    assert fix_fields.fixed_value(b, 0, len(text), 10_000) == fix_fields.NO_VALUE
    assert fix_fields.int_value(b, 0, len(text)) == fix_fields.NO_VALUE


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from([0, 3, 6]))
def test_utc_timestamp_to_ns(moment, digits):
    text = moment.strftime("%Y%m%d-%H:%M:%S")
    micros = moment.microsecond
    if digits == 3:
        text += f".{micros // 1000:03d}"
        micros = micros // 1000 * 1000
    elif digits == 6:
        text += f".{micros:06d}"
    else:
        micros = 0
    expected = int((moment.replace(microsecond=0, tzinfo=dt.timezone.utc).timestamp())) * 10**9 + micros * 1000
    assert fix_fields.timestamp_value(_buf(text), 0, len(text)) == expected


def test_char_and_int_accessors():
    assert fix_fields.char_value(_buf("2"), 0, 1) == ord("2")
    assert fix_fields.char_value(_buf("22"), 0, 2) == -1
    assert fix_fields.int_value(_buf("-42"), 0, 3) == -42


# ------------------------------------------------------------------ decoding
def test_decode_new_cancel_replace_into_events():
    data = (order(1, "77", extra={54: "2", 59: "3"})
            + order(2, "ABC-1", extra={40: "1", 44: None, 59: "4", 55: "MSFT"})
            + build_message("F", [(49, "C"), (56, "ISLD"), (34, 3), (52, "20240102-14:30:01"), (41, "77"),
                                  (11, "78"), (54, "2"), (55, "AAPL"), (60, "20240102-14:30:01")])
            + build_message("G", [(49, "C"), (56, "ISLD"), (34, 4), (52, "20240102-14:30:02"), (41, "78"),
                                  (11, "79"), (21, "1"), (54, "2"), (55, "AAPL"), (38, "50"), (40, "2"),
                                  (44, "185.5"), (60, "20240102-14:30:02")]))
    batch = parse(data, symbols=["AAPL", "MSFT"])
    assert batch.summary()["valid"] == 4
    ev = batch.events
    assert list(ev["kind"]) == [EV_ADD, EV_ADD, EV_DELETE, EV_MODIFY]
    assert list(ev["order_id"][[0, 2, 3]]) == [77, 77, 78]
    assert ev["order_id"][1] == fix_fields.order_id_value(_buf("ABC-1"), 0, 5) and ev["order_id"][1] >= 1 << 62
    assert list(ev["side"]) == [SELL, BUY, SELL, SELL]
    assert list(ev["order_type"][:2]) == [LIMIT, MARKET]
    assert list(ev["tif"][:2]) == [IOC, FOK] and ev["tif"][3] == GTC
    assert list(ev["price"]) == [1_852_500, 0, 0, 1_855_000]
    assert list(ev["qty"]) == [100, 100, 0, 50]
    assert list(ev["symbol"]) == [0, 1, 0, 0]
    expected_ts = int(dt.datetime(2024, 1, 2, 14, 30, 0, 120000, tzinfo=dt.timezone.utc).timestamp() * 1e9)
    assert ev["ts"][0] == expected_ts
    assert list(batch.event_msg) == [0, 1, 2, 3]


def test_invalid_orders_are_not_decoded():
    batch = parse(order(1, extra={54: "Z"}) + order(2))
    assert batch.messages_frame()["reject_reason"].to_list() == ["value_out_of_range", None]
    assert list(batch.event_msg) == [1]


@pytest.mark.shared
def test_decode_market_data_and_execution_reports_from_samples():
    data = shared_path("fix", "fix_messages_checksum_valid.soh.txt").read_bytes()
    batch = parse(data, symbols=["EUR/USD", "CVS"])
    md = batch.md_entries
    assert len(md) == 4 and batch.md_group_mismatches == 0
    assert list(md["price"]) == [13722, 13722, 11194, 11194]       # 1.37215 at 10_000 rounds half up
    assert list(md["size"]) == [2_500_000, 2_503_200, 1_000_000, 1_000_000]
    assert list(md["entry_type"]) == [ord("0"), ord("1")] * 2
    assert list(md["symbol"]) == [0, 0, 0, 0]
    er = batch.execution_reports
    assert len(er) == 2 and er["symbol"][0] == 1 and er["order_qty"][0] == 100
    assert bytes(batch.buffer[er["text_start"][0]:er["text_end"][0]]) == b"NF 0542/03232009"


def test_market_data_group_count_mismatch_drops_entries():
    msg = build_message("W", [(49, "A"), (56, "B"), (34, 1), (52, "20240102-14:30:00"), (55, "X"),
                              (268, 3), (269, "0"), (270, "1.5"), (271, 10), (269, "1"), (270, "1.6"), (271, 5)])
    batch = parse(msg, validate=False)
    assert len(batch.md_entries) == 0 and batch.md_group_mismatches == 1


# ------------------------------------------------------------------ encoding
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 10**9), st.integers(1, 10_000),
                          st.integers(0, 5_000), st.sampled_from([BUY, SELL])), min_size=1, max_size=30))
def test_encode_then_parse_round_trip(rows):
    fills = np.zeros(len(rows), FILL)
    for i, (maker, price, qty, leaves, side) in enumerate(rows):
        fills[i] = (i, 1_700_000_000_123_000_000, 0, maker, 999, price, qty, leaves, 0, side)
    reports = execution_reports_from_fills(fills, perspective="maker")
    raw = encode_execution_report(fills, sender_comp_id="ISLD", target_comp_id="TW",
                                  symbols=["AAPL"], first_seq=7)
    batch = parse(raw, symbols=["AAPL"])
    assert batch.summary() == {"messages": len(rows), "valid": len(rows), "rejected": 0, "reasons": {}}
    for i, line in enumerate(raw.split(b"8=FIX")[1:]):
        fields, declared, computed = reference_frame(b"8=FIX" + line)
        assert declared == computed
    decoded = batch.execution_reports
    for name in ("order_id", "last_px", "last_qty", "cum_qty", "leaves_qty", "side", "avg_px", "ord_status"):
        assert np.array_equal(decoded[name], reports[name]), name
    assert list(batch.messages["seq_num"]) == list(range(7, 7 + len(rows)))
    assert list(decoded["ts"]) == [1_700_000_000_123_000_000] * len(rows)


def test_encode_with_text_client_order_ids_and_validation_of_inputs():
    fills = np.zeros(2, FILL)
    fills["maker_id"] = [5, 5]
    fills["price"] = [1_000_000, 1_000_100]
    fills["qty"] = [10, 20]
    fills["maker_leaves"] = [20, 0]
    reports = execution_reports_from_fills(fills, perspective="taker", order_qty=40)
    assert list(reports["leaves_qty"]) == [30, 10] and list(reports["cum_qty"]) == [10, 30]
    buffer, offsets = encode_execution_reports(reports, sender_comp_id="S", target_comp_id="T",
                                               cl_ord_ids=["abc", "abc"], delimiter=b"|")
    batch = parse(buffer)
    assert batch.get(0, 11) == b"abc" and batch.summary()["valid"] == 2
    assert offsets[-1] == len(buffer)
    with pytest.raises(ValueError, match="price_scale"):
        encode_execution_reports(reports, sender_comp_id="S", target_comp_id="T", price_scale=300)
    with pytest.raises(ValueError, match="order_qty"):
        execution_reports_from_fills(fills, perspective="taker")
    with pytest.raises(ValueError, match="sender_comp_id"):
        encode_execution_reports(reports, sender_comp_id="", target_comp_id="T")


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("extra, reason, tag", [
    ({11: None}, "required_tag_missing", 11),
    ({21: "9"}, "value_out_of_range", 21),
    ({38: "+5"}, "incorrect_data_format", 38),
    ({60: "2024-01-02"}, "incorrect_data_format", 60),
    ({999: "x"}, "invalid_tag_number", 999),
    ({112: "x"}, "tag_not_defined_for_msg_type", 112),
    ({58: ""}, "tag_without_value", 58),
])
def test_dictionary_validation(extra, reason, tag):
    batch = parse(order(1, extra=extra))
    frame = batch.messages_frame()
    assert frame["reject_reason"][0] == reason and frame["reject_tag"][0] == tag
    assert batch.summary()["reasons"] == {reason: 1}


def test_other_fix_versions_are_framed_but_not_judged_by_fix44():
    msg = build_message("D", [(49, "C"), (56, "S"), (47, "A")], begin_string="FIX.4.2")
    assert parse(msg).summary()["valid"] == 1


def test_sequence_gaps_per_sender_and_polars_views():
    data = order(1) + order(2) + order(5) + order(6)
    batch = parse(data)
    gaps = batch.seq_gaps()
    assert gaps.select("expected", "seq_num").rows() == [(3, 5)]
    tags = batch.tags_frame()
    assert tags.filter((tags["msg"] == 2) & (tags["tag"] == 34))["value"].to_list() == ["5"]
    assert batch.messages_frame()["sending_time"].dt.year().to_list() == [2024] * 4


def test_parse_rejects_bad_arguments():
    with pytest.raises(ValueError, match="data"):
        parse(12345)
    with pytest.raises(ValueError, match="price_scale"):
        parse(b"", price_scale=0)
    with pytest.raises(ValueError, match="symbols"):
        parse(order(1), symbols=["A", "A"]).events


# ---------------------------------------------------------------------- CLI
@pytest.mark.shared
def test_fix_check_cli_json_and_last_line():
    path = shared_path("fix", "fix_messages_checksum_valid.pipe.txt")
    out = subprocess.run([sys.executable, "-m", "workbench", "fix-check", str(path), "--json"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    result = json.loads(out)
    assert (result["messages"], result["valid"], result["rejected"]) == (11, 11, 0)
    assert set(result) == {"messages", "valid", "rejected", "reasons", "msgs_per_sec"}
    text = subprocess.run([sys.executable, "-m", "workbench", "fix-check", str(path)],
                          capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert text.strip().splitlines()[-1].startswith("messages=11 valid=11 rejected=0 bad_checksum=0")


def test_dictionary_subset_is_generated_from_fix44(tmp_path):
    subset = json.loads((REPO / "workbench" / "fix" / "fix44_subset.json").read_text())
    assert subset["begin_string"] == "FIX.4.4" and subset["messages"]["D"]["name"] == "NewOrderSingle"
    xml = REPO.parent / "shared" / "data" / "fix" / "dictionaries" / "FIX44.xml"
    if not xml.exists():
        pytest.skip("needs ../shared/data/fix/dictionaries/FIX44.xml")
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_fix_dictionary
    finally:
        sys.path.pop(0)
    assert gen_fix_dictionary.generate(Path(xml)) == subset


# ------------------------------------------------- property: scanner vs Python
_values = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="|="),
                  min_size=1, max_size=12)
_noise = st.binary(max_size=20).filter(lambda b: b"8=FIX" not in b and b"10=" not in b
                                       and not b.endswith(b"8") and not b.endswith(b"8=")
                                       and not b.endswith(b"8=F") and not b.endswith(b"8=FI"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.integers(1, 2000), _values), max_size=8), _noise),
                min_size=1, max_size=6),
       st.sampled_from([b"\x01", b"|"]))
def test_scanner_matches_python_reference(messages, delimiter):
    """Valid messages separated by noise: the kernel finds exactly them, tag for tag."""
    data, expected = b"", []
    for body, noise in messages:
        fields = [(49, "S"), (56, "T")] + [(t, v) for t, v in body if t not in (8, 9, 10, 35)]
        raw = build_message("0", fields, delimiter=delimiter)
        data += raw + noise
        expected.append([(int(p.split(b"=", 1)[0]), p.split(b"=", 1)[1])
                         for p in raw.rstrip(delimiter).split(delimiter)])
    batch = parse(data, validate=False)
    assert sum(batch.framing_rejects.values()) == 0
    got = [[(int(batch.fields[k]["tag"]), batch.value(k))
            for k in range(m["field_first"], m["field_first"] + m["field_count"])] for m in batch.messages]
    assert got == expected
