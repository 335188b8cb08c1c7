"""NASDAQ TotalView-ITCH 5.0: the Numba codec against an independent ``struct`` decoder,
the writer round trip, the replay against a plain-Python book, bad input, the CLI.

The reference decoder below is written from the spec's field tables with ``struct``
format strings (a different implementation from ``kernels.itch``'s byte offsets); the
reference book is dicts. The recorded sample is ``../shared/data/itch/`` (simulated by
NASDAQ, three fake stocks); the rest uses days written from the simulator's flow.
"""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from kernels import book as kbook
from kernels import records as R
from kernels.itch import encode as itch_encode
from kernels.itch import frame as itch_frame
from kernels.itch import refs as itch_refs
from tests.conftest import REPO, shared_path
from workbench.cli import main
from workbench.data import itch

SAMPLE = ("itch", "ex20101224.TEST_ITCH_50.lenprefixed.gz")

# ------------------------------------------------------------- the reference decoder
# type -> (struct format of the body after the 11-byte header, field names)
SPEC = {
    "S": (">c", ["event_code"]),
    "R": (">8sccIcc2scccccIc", ["stock", "market_category", "financial_status", "round_lot_size",
                                "round_lots_only", "issue_classification", "issue_subtype",
                                "authenticity", "short_sale_threshold", "ipo_flag", "luld_tier",
                                "etp_flag", "etp_leverage_factor", "inverse_indicator"]),
    "H": (">8scc4s", ["stock", "trading_state", "reserved", "reason"]),
    "Y": (">8sc", ["stock", "reg_sho_action"]),
    "L": (">4s8sccc", ["mpid", "stock", "primary_market_maker", "market_maker_mode",
                       "participant_state"]),
    "V": (">QQQ", ["level1", "level2", "level3"]),
    "W": (">c", ["breached_level"]),
    "K": (">8sIcI", ["stock", "release_time", "release_qualifier", "ipo_price"]),
    "J": (">8sIIII", ["stock", "reference_price", "upper_price", "lower_price", "extension"]),
    "h": (">8scc", ["stock", "market_code", "halt_action"]),
    "A": (">QcI8sI", ["ref", "side", "shares", "stock", "price"]),
    "F": (">QcI8sI4s", ["ref", "side", "shares", "stock", "price", "attribution"]),
    "E": (">QIQ", ["ref", "shares", "match"]),
    "C": (">QIQcI", ["ref", "shares", "match", "printable", "price"]),
    "X": (">QI", ["ref", "shares"]),
    "D": (">Q", ["ref"]),
    "U": (">QQII", ["ref", "new_ref", "shares", "price"]),
    "P": (">QcI8sIQ", ["ref", "side", "shares", "stock", "price", "match"]),
    "Q": (">Q8sIQc", ["shares", "stock", "price", "match", "cross_type"]),
    "B": (">Q", ["match"]),
    "I": (">QQc8sIIIcc", ["paired_shares", "imbalance_shares", "imbalance_direction", "stock",
                          "far_price", "near_price", "reference_price", "cross_type",
                          "price_variation"]),
    "N": (">8sc", ["stock", "interest_flag"]),
    "O": (">8scIIIQII", ["stock", "open_eligibility", "min_price", "max_price", "near_price",
                         "near_time", "lower_collar", "upper_collar"]),
}
PRICE4 = {"price", "ipo_price", "reference_price", "upper_price", "lower_price", "far_price",
          "near_price", "min_price", "max_price", "lower_collar", "upper_collar"}
PRICE8 = {"level1", "level2", "level3"}
TEXT = {"stock", "reason", "mpid", "attribution"}


def reference_decode(raw: bytes):
    """Every well-formed frame as (offset, type, locate, tracking, ts, {field: value})."""
    out = []
    pos = 0
    while pos + 2 <= len(raw):
        (length,) = struct.unpack_from(">H", raw, pos)
        if pos + 2 + length > len(raw):
            break
        body = raw[pos + 2:pos + 2 + length]
        t = chr(body[0]) if length else ""
        if t in SPEC and length == 11 + struct.calcsize(SPEC[t][0]):
            locate, tracking = struct.unpack_from(">HH", body, 1)
            ts = int.from_bytes(body[5:11], "big")
            values = dict(zip(SPEC[t][1], struct.unpack_from(SPEC[t][0], body, 11)))
            out.append((pos, t, locate, tracking, ts, values))
        pos += 2 + length
    return out


def as_table_value(name, value, t):
    """The reference value in ``itch.type_table``'s representation."""
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace")
        if name == "side":
            return {"B": "buy", "S": "sell"}.get(text, "?")
        return text.strip() if name in TEXT else text
    if name in PRICE8 and t == "V":
        return value / 1e8
    if name in PRICE4:
        return value / 1e4
    return value


def check_tables_match(records: np.ndarray, reference) -> None:
    by_type = defaultdict(list)
    for offset, t, locate, tracking, ts, values in reference:
        row = {"offset": offset, "locate": locate, "tracking": tracking, "ts": ts}
        row.update({k: as_table_value(k, v, t) for k, v in values.items()})
        by_type[t].append(row)
    for t, rows in by_type.items():
        table = itch.type_table(records, t).to_dicts()
        assert len(table) == len(rows), t
        for got, want in zip(table, rows):
            assert got.keys() == want.keys(), t
            for key, value in want.items():
                if isinstance(value, float):
                    assert got[key] == pytest.approx(value, rel=0, abs=1e-12), (t, key)
                else:
                    assert got[key] == value, (t, key, got, want)


# -------------------------------------------------------------- the reference book
class ReferenceBooks:
    """ITCH's semantics over dicts: order reference -> [locate, side, price, shares];
    the top of a book is read after each run of one book's messages at one instant."""

    def __init__(self):
        self.orders = {}
        self.unknown = 0
        self.tops = []          # (ts, locate, bid, bid_qty, ask, ask_qty) when it changed
        self.crossed_runs = 0
        self._last = {}

    def levels(self, locate, side):
        out = defaultdict(lambda: [0, 0])
        for loc, s, price, shares in self.orders.values():
            if loc == locate and s == side:
                out[price][0] += shares
                out[price][1] += 1
        return out

    def top(self, locate):
        bids, asks = self.levels(locate, "B"), self.levels(locate, "S")
        bid = max(bids) if bids else -1
        ask = min(asks) if asks else -1
        return (bid, bids[bid][0] if bids else 0, ask, asks[ask][0] if asks else 0)

    def classify(self, t, v):
        """(makes an engine event, moves the book), before the message is applied."""
        if t in "AF":
            ok = v["side"] in (b"B", b"S") and v["shares"] and v["price"]
            ok = bool(ok) and v["ref"] not in self.orders
            return ok, ok
        if t in "ECX":
            ok = v["ref"] in self.orders and bool(v["shares"])
            return ok, ok
        if t == "D":
            ok = v["ref"] in self.orders
            return ok, ok
        if t == "U":
            ok = v["ref"] in self.orders and bool(v["shares"]) and bool(v["price"])
            return ok, ok
        if t in "PQ" or (t == "H" and v["trading_state"] in b"HPQT"):
            return True, False
        return False, False

    def apply(self, t, locate, v):
        if t in "AF":
            self.orders[v["ref"]] = [locate, v["side"].decode(), v["price"], v["shares"]]
        elif t == "D":
            del self.orders[v["ref"]]
        elif t in "ECX":
            order = self.orders[v["ref"]]
            order[3] -= v["shares"]
            if order[3] <= 0:
                del self.orders[v["ref"]]
        elif t == "U":
            order = self.orders.pop(v["ref"])
            if v["new_ref"] not in self.orders:
                self.orders[v["new_ref"]] = [locate, order[1], v["price"], v["shares"]]

    def run(self, messages, listed):
        run_key, dirty = None, False
        for _, t, locate, _, ts, v in messages:
            if locate not in listed:
                continue
            event, moves = self.classify(t, v)
            if not event:
                if t in "ECXDU" and v["ref"] not in self.orders:
                    self.unknown += 1
                continue
            if run_key is not None and run_key != (ts, locate):
                self._close(run_key, dirty)
                dirty = False
            self.apply(t, locate, v)
            run_key = (ts, locate)
            dirty = dirty or moves
        if run_key is not None:
            self._close(run_key, dirty)

    def _close(self, key, dirty):
        if not dirty:
            return
        ts, locate = key
        top = self.top(locate)
        if top[0] >= 0 and top[2] >= 0 and top[0] >= top[2]:
            self.crossed_runs += 1
        if self._last.get(locate, (-1, 0, -1, 0)) != top:
            self._last[locate] = top
            self.tops.append((ts, locate) + top)


def replay_and_compare(path, tmp_path):
    """itch-check's replay (BBO rows, crossings, resting orders) and the engine's final
    books against the reference book built from the struct-decoded messages."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    messages = reference_decode(raw)
    directory = {v["stock"].decode().strip(): locate for _, t, locate, _, _, v in messages
                 if t == "R"}
    ref = ReferenceBooks()
    ref.run(messages, set(directory.values()))

    out = tmp_path / "bbo.parquet"
    result = itch.check(path, bbo=out)
    assert result["unknown_refs"] == ref.unknown
    assert result["orders_resting"] == len(ref.orders)
    assert result["crossed_events"] == ref.crossed_runs
    assert result["engine_rejects"] == {}
    by_locate = {locate: name for name, locate in directory.items()}
    bbo = pl.read_parquet(out)
    assert bbo.columns == ["ts", "symbol", "bid_px", "bid_sz", "ask_px", "ask_sz"]
    want = [(ts, by_locate[loc], None if bid < 0 else bid / 1e4, None if bid < 0 else bq,
             None if ask < 0 else ask / 1e4, None if ask < 0 else aq)
            for ts, loc, bid, bq, ask, aq in ref.tops]
    assert bbo.rows() == want

    feed = itch.load(path)
    engine = feed.new_engine()
    fills = np.zeros(len(feed.events) + 16, dtype=R.FILL)
    kbook.apply_batch(engine.state, feed.events, fills, np.zeros(0, R.RESULT), 0)
    for name, locate in directory.items():
        for side, getter in (("B", engine.get_bids), ("S", engine.get_asks)):
            levels = ref.levels(locate, side)
            want = sorted(((p / 1e4, q, n) for p, (q, n) in levels.items()), reverse=side == "B")
            assert getter(name, n=len(levels) + 1) == want, (name, side)
    return result


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample():
    return shared_path(*SAMPLE)


@pytest.fixture(scope="module")
def written_day(tmp_path_factory):
    """A small day from the simulator's flow (4 stocks, stub quotes, F/C/U/P variations)."""
    path = tmp_path_factory.mktemp("itch") / "day.itch"
    result = itch.synthetic_day(path, n_symbols=4, messages=30_000, seed=3, group=4,
                                progress=False)
    return path, result


# ------------------------------------------------------------------------ decoding
def test_sample_decodes_like_the_struct_decoder(sample):
    raw = gzip.decompress(sample.read_bytes())
    reference = reference_decode(raw)
    feed = itch.read(sample)
    counts = defaultdict(int)
    for _, t, *_ in reference:
        counts[itch.MESSAGE_NAMES[t]] += 1
    assert feed.message_counts() == dict(counts)
    assert feed.n_messages == len(reference) == 12_012
    assert feed.complete and not feed.truncated
    records = itch.message_records(feed)
    assert len(records) == len(reference)
    check_tables_match(records, reference)
    frame = itch.messages_frame(records)
    assert frame.height == len(reference)
    adds = frame.filter(pl.col("type") == "add_order")
    assert adds.height == counts["add_order"]
    assert set(adds["side"].unique()) == {"buy", "sell"}
    assert adds["price"].min() > 0 and adds["ref"].dtype == pl.UInt64
    assert frame.filter(pl.col("type") == "add_order_mpid")["mpid"].to_list()[0] == "VIRT"
    assert feed.directory["stock"].to_list() == ["ALC", "BOB", "CHAR"]


def reference_events(messages, book_of):
    """The EVENT rows the module's table of semantics gives (A/F rest, E/C execute, X
    cancel, D delete, U delete + rest, P hidden, Q cross, H halt), tracked with dicts."""
    live = {}
    rows = []
    halt = {b"H": -1, b"P": -1, b"Q": 0, b"T": 1}
    for _, t, locate, _, ts, v in messages:
        book = book_of.get(locate)
        if book is None:
            continue
        if t in "AF" and v["ref"] not in live and v["shares"] and v["price"]:
            side = 0 if v["side"] == b"B" else 1
            live[v["ref"]] = [side, v["price"], v["shares"]]
            rows.append((ts, v["ref"], v["price"], v["shares"], book, R.EV_REST, side))
        elif t in "ECXD" and v["ref"] in live:
            side, price, left = live[v["ref"]]
            if t == "D":
                rows.append((ts, v["ref"], price, left, book, R.EV_DELETE, side))
                del live[v["ref"]]
                continue
            kind = R.EV_CANCEL if t == "X" else R.EV_EXECUTE
            rows.append((ts, v["ref"], v["price"] if t == "C" else price, v["shares"], book,
                         kind, side))
            live[v["ref"]][2] -= v["shares"]
            if live[v["ref"]][2] <= 0:
                del live[v["ref"]]
        elif t == "U" and v["ref"] in live:
            side, price, left = live.pop(v["ref"])
            rows.append((ts, v["ref"], price, left, book, R.EV_DELETE, side))
            live[v["new_ref"]] = [side, v["price"], v["shares"]]
            rows.append((ts, v["new_ref"], v["price"], v["shares"], book, R.EV_REST, side))
        elif t == "P":
            rows.append((ts, v["ref"], v["price"], v["shares"], book, R.EV_EXECUTE_HIDDEN,
                         0 if v["side"] == b"B" else 1))
        elif t == "Q":
            rows.append((ts, v["match"], v["price"], v["shares"], book, R.EV_CROSS, 0))
        elif t == "H" and v["trading_state"] in halt:
            rows.append((ts, 0, halt[v["trading_state"]], 0, book, R.EV_HALT, 0))
    return rows


def test_sample_events_follow_the_message_semantics(sample):
    feed = itch.load(sample)
    messages = reference_decode(gzip.decompress(sample.read_bytes()))
    want = reference_events(messages, dict(zip(feed.book_locates.tolist(), range(3))))
    e = feed.events
    got = list(zip(e["ts"].tolist(), e["order_id"].tolist(), e["price"].tolist(),
                   e["qty"].tolist(), e["symbol"].tolist(), e["kind"].tolist(), e["side"].tolist()))
    assert got == want
    assert set(e["order_type"]) == {R.LIMIT} and set(e["tif"]) == {R.GTC}
    one = itch.load(itch.read(sample, symbols=["BOB"]))
    assert one.books == ["BOB"] and set(np.unique(one.events["symbol"])) == {0}
    assert len(one.events) == int(np.count_nonzero(e["symbol"] == feed.books.index("BOB")))


def test_the_decoder_resumes_after_growing_its_table(written_day):
    """``decode_events`` stops with ``DECODE_TABLE_FULL`` before a message that would fill
    its reference table past half and resumes there once the table has grown: from the
    smallest table, in small output chunks, the events and counts are those of one call
    with a table that never fills (``ItchFeed.decode_events`` sizes its table for the
    file's adds, so only this path grows one)."""
    from kernels.itch import decode as itch_decode

    feed = itch.read(written_day[0])
    whole = itch.load(itch.read(written_day[0])).events
    counts = np.zeros(itch_decode.N_DECODE_COUNTS, dtype=np.int64)
    table = itch_refs.new_table(1)
    out = np.zeros(257, dtype=R.EVENT)
    got, pos, grown = [], 0, 0
    while True:
        pos, n, status = itch_decode.decode_events(feed.data, pos, len(feed.data),
                                                   feed.locate_book, table, counts, out)
        got.append(out[:n].copy())
        if status == itch_decode.DECODE_TABLE_FULL:
            table = itch_refs.grow(table)
            grown += 1
        elif status == itch_decode.DECODE_DONE:
            break
    assert grown >= 5 and len(table) >= 2 * counts[itch_decode.DC_PEAK_LIVE]
    assert np.array_equal(np.concatenate(got), whole) and len(whole) > 10_000
    assert counts[itch_decode.DC_EVENTS] == len(whole)
    assert counts[itch_decode.DC_UNKNOWN_REFS] == counts[itch_decode.DC_DUPLICATE_REFS] == 0


def test_check_counts_the_selected_books_messages_type_by_type(sample):
    """``itch-check --symbols``: besides the whole file's counts, the messages of the
    selected books per type, against the plain-Python decode of the sample (a message
    belongs to the stock its locate names in the stock directory)."""
    messages = reference_decode(gzip.decompress(sample.read_bytes()))
    names = {loc: v["stock"].decode().strip() for _, t, loc, _, _, v in messages if t == "R"}
    assert sorted(names.values()) == ["ALC", "BOB", "CHAR"]
    for chosen in (["BOB"], ["ALC", "CHAR"]):
        locates = {loc for loc, name in names.items() if name in chosen}
        want: dict[str, int] = {}
        for _, t, loc, _, _, _ in messages:
            if loc in locates:
                want[itch.MESSAGE_NAMES[t]] = want.get(itch.MESSAGE_NAMES[t], 0) + 1
        result = itch.check(sample, symbols=chosen)
        assert result["selected_messages"] == want
        assert sum(want.values()) < result["total_messages"]
        assert "messages of the selected books: " in "\n".join(itch.summary_lines(result))
    assert "selected_messages" not in itch.check(sample)     # every book: the file's counts


def test_replay_matches_the_reference_book_on_the_sample(sample, tmp_path):
    result = replay_and_compare(sample, tmp_path)
    # the simulated sample deletes some orders before it adds them
    assert result["unknown_refs"] == 117
    assert result["books"] == 3


# ------------------------------------------------------------------------- writing
def _random_records(rng, per_type: int = 40) -> np.ndarray:
    letters = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", dtype=np.uint8)
    n = per_type * len(SPEC)
    rec = np.zeros(n, dtype=R.ITCH_MSG)
    rec["msg_type"] = np.repeat(np.frombuffer("".join(SPEC).encode(), dtype=np.uint8), per_type)
    rec["locate"] = rng.integers(0, 1 << 16, n)
    rec["tracking"] = rng.integers(0, 1 << 16, n)
    rec["ts"] = rng.integers(0, 1 << 48, n)
    def u64():
        return (rng.integers(0, 1 << 63, n, dtype=np.uint64) * 2
                + rng.integers(0, 2, n, dtype=np.uint64))

    for name in ("ref", "new_ref", "match"):
        rec[name] = u64().view(np.int64)
    rec["stock"] = letters[rng.integers(0, len(letters), (n, 8))].view(np.uint64).reshape(-1)
    rec["mpid"] = letters[rng.integers(0, len(letters), (n, 4))].view(np.uint32).reshape(-1)
    rec["codes"] = letters[rng.integers(0, len(letters), (n, R.ITCH_N_CODES))]
    rec["side"] = np.frombuffer(b"BS", dtype=np.uint8)[rng.integers(0, 2, n)]
    u32 = lambda: rng.integers(0, 1 << 32, n)  # noqa: E731
    rec["shares"], rec["aux"] = u32(), u32()
    for name in ("price", "price2", "price3", "price4", "price5"):
        rec[name] = u32()
    wide = np.isin(rec["msg_type"], np.frombuffer(b"QIV", dtype=np.uint8))
    rec["shares"][wide] = u64()[wide].view(np.int64)
    big = np.isin(rec["msg_type"], np.frombuffer(b"IO", dtype=np.uint8))
    rec["aux"][big] = u64()[big].view(np.int64)
    for name in ("price", "price2", "price3"):
        v = rec["msg_type"] == ord("V")
        rec[name][v] = u64()[v].view(np.int64)
    return rec


def _keep_spec_fields(rec: np.ndarray) -> np.ndarray:
    """Zero the slots a record's type does not use (decoding leaves them zero)."""
    out = np.zeros_like(rec)
    for t, fields in itch.FIELDS.items():
        mine = rec["msg_type"] == ord(t)
        for name in ("msg_type", "locate", "tracking", "ts"):
            out[name][mine] = rec[name][mine]
        for spec in fields:
            slot = spec[1]
            if slot in ("code", "code2"):
                width = 2 if slot == "code2" else 1
                span = slice(spec[2], spec[2] + width)
                out["codes"][mine, span] = rec["codes"][mine, span]
            else:
                name = {"direction": "side", "price8": "price", "price8_2": "price2",
                        "price8_3": "price3"}.get(slot, slot)
                out[name][mine] = rec[name][mine]
    return out


def test_every_type_round_trips_through_the_encoder():
    rng = np.random.default_rng(11)
    records = _keep_spec_fields(_random_records(rng))
    size = int((2 + itch_frame.MSG_LENGTH[records["msg_type"]]).sum())
    out = np.zeros(size, dtype=np.uint8)
    written, n = itch_encode.encode_messages(records, out)
    assert (written, n) == (size, len(records))
    raw = out.tobytes()
    reference = reference_decode(raw)
    assert [t for _, t, *_ in reference] == [chr(c) for c in records["msg_type"]]
    decoded = itch.message_records(raw)
    for name in R.ITCH_MSG.names:
        if name != "offset":
            assert np.array_equal(decoded[name], records[name]), name
    check_tables_match(decoded, reference)


def test_the_first_pass_counts_and_ticks_like_a_plain_walk():
    """``frame.scan`` (branch-free price pick, cent-grid fast path, sums kept in
    registers) against a plain-Python walk of the same frames: messages per type and per
    locate, bytes, and each locate's tick, the largest divisor of ``TICK_CAP`` dividing
    every A, F and U price (prices on the cent grid, sub-penny ones and zero)."""
    import math
    rng = np.random.default_rng(5)
    records = _keep_spec_fields(_random_records(rng, per_type=60))
    records = records[rng.permutation(len(records))]       # types in no learnable order
    records["locate"] = rng.integers(0, 9, len(records))
    priced = np.isin(records["msg_type"], np.frombuffer(b"AFU", dtype=np.uint8))
    grid = np.array([1, 2, 5, 25, 50, 100, 100, 4, 10])[records["locate"]]   # per locate
    records["price"][priced] = (rng.integers(0, 3000, len(records)) * grid)[priced]
    size = int((2 + itch_frame.MSG_LENGTH[records["msg_type"]]).sum())
    out = np.zeros(size + 5, dtype=np.uint8)                 # and a truncated frame
    written, _ = itch_encode.encode_messages(records, out)
    out[written:written + 2] = (0, 36)
    counts = np.zeros(itch_frame.N_SCAN_COUNTS, dtype=np.int64)
    per_locate = np.zeros(itch_frame.N_LOCATES, dtype=np.int64)
    ticks = np.full(itch_frame.N_LOCATES, itch_frame.TICK_CAP, dtype=np.int64)
    offsets = np.zeros(64, dtype=np.int64)
    pos, n_dir = itch_frame.scan(out, 0, len(out), True, counts, per_locate, ticks, offsets)
    want_ticks = defaultdict(lambda: itch_frame.TICK_CAP)
    want_locates: dict[int, int] = defaultdict(int)
    want_types: dict[str, int] = defaultdict(int)
    for _, t, locate, _, _, values in reference_decode(out.tobytes()):
        want_types[t] += 1
        want_locates[locate] += 1
        if t in "AFU" and values["price"] > 0:
            want_ticks[locate] = math.gcd(want_ticks[locate], values["price"])
    assert pos == len(out) and counts[itch_frame.IC_TRUNCATED] == 1
    assert counts[itch_frame.IC_SCANNED] == len(out)
    assert counts[itch_frame.IC_BYTES] == written
    assert counts[itch_frame.IC_MESSAGES] == len(records)
    assert {chr(c): int(counts[c]) for c in range(256) if counts[c]} == dict(want_types)
    assert {k: int(per_locate[k]) for k in np.flatnonzero(per_locate)} == dict(want_locates)
    assert {k: int(ticks[k]) for k in range(9)} == {k: want_ticks[k] for k in range(9)}
    assert len(set(want_ticks.values())) > 2                # the case is not trivial
    assert n_dir == want_types["R"]


def test_a_written_day_is_complete_and_replays_like_the_reference(written_day, tmp_path):
    path, written = written_day
    feed = itch.load(path)
    assert written.skipped == 0 and feed.n_messages == written.messages
    assert feed.complete and feed.bad_frames()["bad_length"] == 0
    assert feed.reference_problems() == {"unknown_refs": 0, "duplicate_refs": 0, "bad_values": 0,
                                         "overfills": 0, "unlisted": 0}
    counts = feed.message_counts()
    for name in ("add_order", "add_order_mpid", "order_executed", "order_executed_price",
                 "order_cancel", "order_delete", "order_replace", "trade", "stock_directory"):
        assert counts.get(name, 0) > 0, name
    result = replay_and_compare(path, tmp_path)
    assert result["unknown_refs"] == 0 and result["crossed_books"] == 0
    # the stub quotes rest all day at $0.01 and $199,999.99 (every positive price is accepted)
    engine = feed.new_engine()
    kbook.apply_batch(engine.state, feed.events, np.zeros(len(feed.events) + 16, R.FILL),
                      np.zeros(0, R.RESULT), 0)
    assert engine.stats()["rejects"] == {}
    stock = feed.books[0]
    assert engine.get_bids(stock, n=10_000)[-1][0] == 0.01
    assert engine.get_asks(stock, n=10_000)[-1][0] == 199_999.99


def test_the_writer_reproduces_the_simulators_books(tmp_path):
    from workbench.data.synthetic import simulate

    market = simulate(n_symbols=3, seed=5, rate=0.05, duration_s=3_600.0)
    names = list(market.symbols)
    reference = kbook_engine(names, market.events)
    path = tmp_path / "flow.itch.gz"
    itch.write_itch(path, market.events, names, first_ts=int(market.events["ts"][0]))
    feed = itch.load(path)
    assert feed.reference_problems()["unknown_refs"] == 0
    replayed = kbook_engine(feed.books, feed.events)
    for name in names:
        assert replayed.get_bids(name, n=500) == reference.get_bids(name, n=500)
        assert replayed.get_asks(name, n=500) == reference.get_asks(name, n=500)


def kbook_engine(names, events):
    from workbench.book import Engine

    engine = Engine(symbols=list(names), capacity=50_000, record_fills=False)
    result = engine.submit_many(events)
    assert result.rejected == 0
    return engine


def test_the_reference_table_behaves_like_a_dict():
    rng = np.random.default_rng(2)
    table = itch_refs.new_table(64)
    model = {}
    keys = list(rng.integers(0, 1 << 20, 300)) + [int(k) << 40 for k in range(50)]
    for step in range(6_000):
        key = int(keys[rng.integers(0, len(keys))])
        book = int(rng.integers(0, 3))
        pos = itch_refs.find(table, key, book)
        assert (pos >= 0) == ((key, book) in model)
        if pos >= 0:
            assert table[pos]["qty"] == model[(key, book)]
            if rng.random() < 0.6:
                itch_refs.delete(table, pos)
                del model[(key, book)]
        elif len(model) < len(table) // 2:
            itch_refs.insert(table, key, book, 0, 1, step % 1000 + 1, 0)
            model[(key, book)] = step % 1000 + 1
        if len(model) >= len(table) // 2:
            bigger = np.zeros(2 * len(table), dtype=R.ITCH_REF)
            assert itch_refs.rehash(table, bigger) == len(model)
            table = bigger
    assert int(table["used"].sum()) == len(model)


def _displacements(table):
    """How far each entry sits from its home slot (the probes a lookup of it takes - 1)."""
    mask = len(table) - 1
    used = np.flatnonzero(table["used"])
    shift = itch_refs.hash_shift(table)
    homes = np.array([itch_refs.home(int(k), shift) for k in table["key"][used]])
    return (used - homes) & mask


def test_the_reference_hash_spreads_a_days_references():
    """References are 1, 2, 3 ... in stream order; orders die at random while some live all
    day. Fibonacci hashing's top bits spread them at least as well as a random hash would
    (mean displacement 0.5 at half load); the middle bits an earlier version took left
    a mean of ~1-1.7 here and far longer runs on a full day's table."""
    for bits in range(4, 25):   # np.zeros maps pages lazily: nothing is touched
        assert itch_refs.hash_shift(np.zeros(1 << bits, dtype=R.ITCH_REF)) == 64 - bits
    rng = np.random.default_rng(5)
    size = 1 << 16
    table = itch_refs.new_table(size // 2 - 1)
    assert len(table) == size
    live = []
    for ref in range(1, 6 * size):
        if len(live) >= size // 2 - 1:
            i = int(rng.integers(len(live) // 4, len(live)))  # the oldest quarter survives
            key, live[i] = live[i], live[-1]
            live.pop()
            itch_refs.delete(table, itch_refs.find(table, key, 0))
        itch_refs.insert(table, ref, 0, 0, 1, 1, 0)
        live.append(ref)
    d = _displacements(table)
    assert len(d) == len(live) and d.mean() < 0.5 and d.max() <= 8, (d.mean(), d.max())
    assert all(itch_refs.find(table, k, 0) >= 0 for k in live[::97])
    sequential = itch_refs.new_table(size // 2 - 1)
    for ref in range(1, size // 2):
        itch_refs.insert(sequential, ref, 0, 0, 1, 1, 0)
    assert _displacements(sequential).mean() < 0.5


# ------------------------------------------------------------------------ bad input
def test_bad_frames_and_truncation_are_counted_not_fatal(sample, tmp_path):
    raw = gzip.decompress(sample.read_bytes())
    good = itch.read(sample)
    bad = bytearray(raw)
    bad[2] = ord("Y")                    # the first system event: 12 bytes, not Y's 20
    bad[14 + 2] = ord("!")               # the first stock directory message: no such type
    mangled = bytes(bad[:len(bad) - 7])  # cut inside the last frame
    feed = itch.load(itch.from_bytes(mangled))
    frames = feed.bad_frames()
    assert frames["unknown_type"] == 1 and frames["truncated"] and frames["truncated_bytes"] > 0
    assert frames["bad_length"] >= 1 and not feed.complete
    assert feed.n_messages < good.n_messages
    cut = tmp_path / "cut.itch.gz"
    cut.write_bytes(sample.read_bytes()[:60_000])
    truncated = itch.read(cut)
    assert truncated.truncated and "gzip stream ends early" in truncated.gzip_problem
    assert 0 < truncated.n_messages < good.n_messages
    assert main(["data", "itch-check", str(cut), "--json"]) == 0
    empty = tmp_path / "empty.itch"
    empty.write_bytes(b"")
    assert itch.check(empty)["total_messages"] == 0


FUZZ = r'''
import ctypes
import mmap
import sys
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernels import records as R
from kernels.itch import encode, frame
from kernels.jit import SAFE_MODE
from workbench.data import itch
assert SAFE_MODE, "bounds checking is not on"

def seed_stream():
    rec = np.zeros(12, dtype=R.ITCH_MSG)
    rows = [(b"S", 0, 0, 0, 0), (b"R", 1, 0, 0, 0), (b"A", 1, 7, 100, 1000), (b"A", 1, 8, 50, 1100),
            (b"E", 1, 7, 30, 0), (b"X", 1, 7, 10, 0), (b"U", 1, 8, 40, 1200), (b"C", 1, 9, 5, 1150),
            (b"D", 1, 7, 0, 0), (b"P", 1, 0, 10, 1000), (b"Q", 1, 0, 99, 1000), (b"H", 1, 0, 0, 0)]
    for i, (t, locate, ref, shares, price) in enumerate(rows):
        r = rec[i]
        r["msg_type"], r["locate"], r["ref"] = t[0], locate, ref
        r["shares"], r["price"] = shares, price
        r["ts"], r["side"], r["new_ref"] = i, ord("B"), 9
        r["codes"][:] = ord("T")
    rec["stock"] = int.from_bytes(b"FUZZ    ", "little")
    out = np.zeros(1000, dtype=np.uint8)
    n, _ = encode.encode_messages(rec, out)
    return out[:n].tobytes()

SEED = seed_stream()

# The field readers (kernels.itch.fields) are compiled without bounds checks, trusting the
# framing: every walk also runs on a copy of the bytes that ends at (and one that starts
# at) a page no one may read, so a read past either end kills this process.
PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAPS = []

def guarded(data, at_end):
    pages = (len(data) + PAGE - 1) // PAGE + 2
    mm = mmap.mmap(-1, pages * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    for page in (0, pages - 1):
        assert libc.mprotect(base + page * PAGE, PAGE, 0) == 0, ctypes.get_errno()
    start = (pages - 1) * PAGE - len(data) if at_end else PAGE
    out = np.frombuffer(mm, np.uint8, count=len(data), offset=start)
    out[:] = np.frombuffer(data, np.uint8)
    MAPS.append(mm)
    return out
edit = st.tuples(st.integers(0, 400), st.sampled_from(["flip", "insert", "delete", "cut"]),
                 st.integers(0, 255))

@st.composite
def streams(draw):
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(SEED * draw(st.integers(1, 3)))
    for index, kind, value in draw(st.lists(edit, max_size=6)):
        at = index % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] = value
        elif kind == "insert":
            data[at:at] = bytes([value])
        elif kind == "delete":
            del data[at:at + 1 + value % 8]
        else:
            del data[at:]
    return bytes(data)

@settings(max_examples=int(sys.argv[1]), deadline=None, suppress_health_check=list(HealthCheck))
@given(streams())
def fuzz(data):
    feed = itch.load(itch.from_bytes(data))
    c = feed.counts
    assert c[frame.IC_SCANNED] == len(data)
    assert c[frame.IC_BYTES] + c[frame.IC_SKIPPED_BYTES] + c[frame.IC_TRUNCATED_BYTES] == len(data)
    assert int(c[:256].sum()) == feed.n_messages
    assert len(feed.events) <= feed.n_messages + int(c[ord("U")])
    records = itch.message_records(feed)
    assert len(records) == feed.n_messages
    itch.messages_frame(records)
    out = np.zeros(int((2 + frame.MSG_LENGTH[records["msg_type"]]).sum()), dtype=np.uint8)
    n, k = encode.encode_messages(records, out)
    assert k == len(records) and n == len(out)
    if data:
        for at_end in (True, False):
            fenced = itch.load(itch.from_bytes(guarded(data, at_end)))
            assert np.array_equal(fenced.counts, feed.counts)
            assert np.array_equal(fenced.events, feed.events)
            assert np.array_equal(itch.message_records(fenced), records)

fuzz()
print("fuzz ok")
'''


def test_fuzz_the_parser_with_bounds_checking_and_guard_pages():
    # the checked build (the default; kernels.jit caches it apart from the unchecked one);
    # the field readers, unchecked in every build, meet a guard page at either end
    env = {**os.environ, "WORKBENCH_SAFE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", FUZZ, "200"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fuzz ok" in proc.stdout


# ----------------------------------------------------------------- CLI and backtest
def test_itch_check_cli(written_day, tmp_path, capsys):
    path, _ = written_day
    out = tmp_path / "top.parquet"
    feed = itch.read(path)
    pick = feed.books[1]
    assert main(["data", "itch-check", str(path), "--symbols", pick, "--json",
                 "--bbo", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"file", "messages", "total_messages", "books", "orders_resting", "unknown_refs",
            "crossed_books", "crossed_events", "msgs_per_sec", "bad_frames", "complete_day",
            "engine_rejects", "bbo_rows"} <= set(result)
    assert result["books"] == 1 and result["unknown_refs"] == 0 and result["complete_day"]
    assert result["messages"] == feed.message_counts()
    top = pl.read_parquet(out)
    assert top.height == result["bbo_rows"] > 0 and set(top["symbol"]) == {pick}
    assert main(["data", "itch-check", str(path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "unknown references: 0" in text and "messages/s" in text
    assert main(["data", "itch-check", str(path), "--symbols", "NOPE"]) == 2
    assert "NOPE" in capsys.readouterr().err


def test_backtest_replays_one_stock_among_the_real_orders(written_day):
    from workbench.backtest import Backtest
    from workbench.data.market import load_events

    path, _ = written_day
    feed = itch.load(path)
    stock = feed.books[2]
    md = load_events(str(path), symbol=stock)
    mine = feed.events[feed.events["symbol"] == 2]
    assert len(md.events) == len(mine) and np.array_equal(md.events["order_id"], mine["order_id"])
    assert md.tick == feed.book_ticks[2] and stock in md.name
    result = Backtest(str(path), symbol=stock).strategy("mm_skew", qty=100).run(progress=False)
    assert result.stats["events"] == len(mine)
    assert result.stats["market_rejects"] == 0
    assert result.stats["n_orders"] > 0
