"""The durable engine: CRC32C, journal round trips per durability policy, snapshots and
pruning, torn and corrupt files, the writer lock, replay/inspect/export, images.

The reference for "recovered correctly" is always an engine that ran the same commands
without a journal and without interruption, compared array by array, byte for byte
(``workbench.journal.crashcheck.same_state``); the SIGKILL tests are in
``test_journal_crash.py``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import subprocess
import warnings

import numpy as np
import polars as pl
import pytest

from kernels import book_state
from kernels import journal as kj
from kernels import records as R
from workbench import cli
from workbench.book import Engine, OrderBook, make_events
from workbench.enums import Side
from workbench.journal import (
    JournalCorruptError, JournalError, JournalLockedError, JournalReader, JournalTailWarning,
    JournalWarning, inspect, replay,
)
from workbench.journal.crashcheck import apply_command, crash_commands, new_engine, same_state

SMALL = {"segment_bytes": 4096, "ring_records": 256}  # many segments, a ring that wraps


def _crc_reference(data: bytes) -> int:
    """CRC32C bit by bit, straight from the definition (reflected 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _cli(*args) -> subprocess.CompletedProcess:
    """``python -m workbench journal ...`` through ``workbench.cli.main`` in this process
    (the command line's own path, without paying a fresh interpreter per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["journal", *map(str, args)])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _feed(engine, commands):
    for cmd in commands:
        apply_command(engine, cmd)


def _recover(directory, cls=Engine, **kw):
    """Recover, expecting no tail warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", JournalTailWarning)
        return cls.recover(directory, **kw)


# ------------------------------------------------------------------------- CRC32C
def test_crc32c_matches_the_standard_check_value_and_a_bitwise_reference():
    check = np.frombuffer(b"123456789", dtype=np.uint8)
    assert kj.crc32c(check) == kj.crc32c_sw(check) == 0xE3069283 == _crc_reference(b"123456789")
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 7, 8, 9, 15, 16, 60, 64, 257):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        want = _crc_reference(data.tobytes())
        assert kj.crc32c(data) == want and kj.crc32c_sw(data) == want, n
    data = rng.integers(0, 256, 1000, dtype=np.uint8)
    assert kj.crc32c(data[300:], kj.crc32c(data[:300])) == kj.crc32c(data)  # continuation


def test_record_crc_covers_the_first_60_bytes():
    recs = np.zeros(3, dtype=R.JOURNAL_RECORD)
    recs["seq"] = [1, 2, 3]
    recs["price"] = [10, -20, 2**40]
    words = recs.view(np.uint64)
    kj.stamp_crc(words, 0, 3)
    for i in range(3):
        assert int(recs["crc"][i]) == _crc_reference(recs[i:i + 1].tobytes()[:60])
    assert kj.scan_records(words, 3, 1) == 3
    recs["qty"][1] = 1  # one flipped field: that record and no other fails
    assert kj.scan_records(words, 3, 1) == 1 and kj.count_valid(words, 0, 3) == 2


# ---------------------------------------------------------------- round trips
def _mixed_run(engine):
    """Every mutating entry point, including output-full pauses and an apply() refusal."""
    sells = make_events([(R.EV_ADD, 7_000_000 + i, R.SELL, 1_010_000, 1, 0, 0, 1, 10 + i)
                         for i in range(6)])
    engine.submit_many(sells)
    sweep = make_events([(R.EV_ADD, 7_100_000, R.BUY, 1_010_000, 6, 0, 1, 1, 99)])
    with pytest.raises(ValueError, match="too few"):              # refused: nothing applied
        engine.apply(sweep, np.zeros(2, dtype=R.FILL))
    more = make_events([(R.EV_ADD, 7_200_000 + i, R.SELL, 1_010_100, 1, 0, 0, 1, 200 + i)
                        for i in range(3)]
                       + [(R.EV_ADD, 7_300_000, R.BUY, 1_010_000, 3, 0, 1, 1, 300),
                          (R.EV_ADD, 7_300_001, R.BUY, 1_010_100, 4, 0, 1, 1, 301),
                          (R.EV_CANCEL, 7_200_000, 0, 0, 0, 0, 0, 1, 302)])
    fills = np.zeros(6, dtype=R.FILL)  # room for the first buy's worst case, then a pause
    start = 0
    while start < len(more):                                      # paused by a full buffer
        start, _ = engine.apply(more, fills, np.zeros(len(more), dtype=R.RESULT), start)
    _feed(engine, crash_commands(3, 120))
    engine.submit("AAA", "buy", 100.0, 5, ts=0)                  # logical clock resolved
    engine.submit("AAA", "sell", 100.05, 5, order_id=5_000_000, ts=123)
    engine.modify("AAA", 1, qty=1)
    engine.execute("BBB", 2, 1)


@pytest.mark.parametrize("durability", ["every", "batch", "none"])
def test_every_policy_round_trips_bit_identical(tmp_path, durability):
    opts = dict(SMALL, batch_us=200, batch_records=64) if durability == "batch" else SMALL
    live = new_engine(journal=tmp_path / "j", durability=durability, journal_options=opts)
    reference = new_engine()
    _mixed_run(live)
    _mixed_run(reference)
    assert live.state.counters[book_state.EC_OUTPUT_FULL] > 0  # the buffers paused it
    assert same_state(live, reference) == []
    seq = live.journal.last_seq
    assert live.journal.durable_seq == seq or durability == "none"
    live.close()
    recovered = _recover(tmp_path / "j")
    assert recovered.recovery.last_seq == seq and recovered.recovery.tail is None
    assert same_state(recovered, reference) == []
    assert recovered.fills().equals(reference.fills())
    recovered.submit("AAA", "buy", 99.9, 3)                      # and it keeps journaling
    reference.submit("AAA", "buy", 99.9, 3)
    recovered.close()
    again = _recover(tmp_path / "j")
    assert same_state(again, reference) == []
    again.close()


def test_single_order_scratch_overflow_is_journaled(tmp_path):
    """A taker sweeping more orders than the single-call fills buffer holds: the engine
    grows the buffer and retries; the pause and the one event are journaled."""
    kw = dict(symbols=["X"], capacity=6000, price_levels=4096)
    live = Engine(**kw, journal=tmp_path / "j", durability="none")
    reference = Engine(**kw)
    rows = [(R.EV_ADD, 10 + i, R.SELL, 1_000_000, 1, 0, 0, 0, 1 + i) for i in range(4200)]
    for eng in (live, reference):
        eng.submit_many(make_events(rows))
        result = eng.submit("X", "buy", None, 4200, order_type="market", tif="ioc")
        assert result.filled == 4200
    assert same_state(live, reference) == []
    live.close()
    recovered = _recover(tmp_path / "j")
    assert same_state(recovered, reference) == []
    recovered.close()


def test_orderbook_recovers_as_orderbook(tmp_path):
    book = OrderBook("ZZZ", capacity=512, price_levels=4096, journal=tmp_path / "j",
                     price_collar=0.2)
    book.submit(Side.SELL, 50.0, 7)
    book.submit(Side.BUY, 49.99, 3)
    book.close()
    back = _recover(tmp_path / "j", OrderBook)
    assert isinstance(back, OrderBook) and back.symbol == "ZZZ"
    assert (back.best_bid, back.best_ask) == (49.99, 50.0)
    assert int(back.state.books["collar_bps"][0]) == 2000
    assert same_state(back, book) == []
    back.close()


def test_deferred_acknowledges_a_block_with_one_wait(tmp_path):
    eng = new_engine(journal=tmp_path / "j", durability="every")
    with eng.journal.deferred():
        for i in range(50):
            eng.submit("AAA", "buy", 99.0, 1)
        assert eng.journal.last_seq == 50
    assert eng.journal.durable_seq == 50
    assert eng.journal.stats()["syncs"] <= 50
    eng.close()
    with pytest.raises(JournalError, match="closed"):
        eng.submit("AAA", "buy", 99.0, 1)


# -------------------------------------------------------- snapshots and pruning
def test_snapshots_prune_segments_and_recovery_starts_from_the_newest(tmp_path):
    directory = tmp_path / "j"
    live = new_engine(journal=directory, durability="batch", snapshot_every=150,
                      journal_options=dict(SMALL, batch_us=100))
    reference = new_engine()
    commands = crash_commands(5, 400)
    _feed(live, commands)
    _feed(reference, commands)
    auto = live.journal.snapshot_done()                   # snapshot_every: in the background
    assert auto is not None and auto.seq >= 150 and auto.path.exists()
    info = live.snapshot()                                # on request, waited for
    assert info.seq == live.journal.last_seq and info.path.exists()
    live.close()
    snaps = sorted(directory.glob("snapshot-*.snap"))
    assert 1 <= len(snaps) <= 2                            # keep_snapshots=2
    segments = sorted(directory.glob("segment-*.wal"))
    first = JournalReader(directory).segments[0].first_seq
    assert first > 1                                       # the oldest segments are gone
    assert first <= int(snaps[0].name[9:29]) + 1           # ... none the snapshots need
    recovered = _recover(directory)
    assert recovered.recovery.snapshot_seq == info.seq
    assert same_state(recovered, reference) == []
    recovered.close()
    # a damaged newest snapshot: skipped with a warning, the older one is used
    if len(snaps) == 2:
        raw = bytearray(snaps[1].read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        snaps[1].write_bytes(bytes(raw))
        with pytest.warns(JournalWarning, match="skipped"):
            again = Engine.recover(directory)
        assert again.recovery.snapshot_seq == int(snaps[0].name[9:29])
        assert same_state(again, reference) == []
        again.close()
    assert len(segments) >= 1


# ------------------------------------------------------------- torn and corrupt
def _journal_with_segments(directory, n_commands=300):
    eng = new_engine(journal=directory, durability="none", journal_options=SMALL)
    commands = crash_commands(11, n_commands)
    _feed(eng, commands)
    eng.close()
    return commands


def test_torn_tail_is_reported_and_cut(tmp_path):
    directory = tmp_path / "j"
    commands = _journal_with_segments(directory, 60)
    reference = new_engine()
    _feed(reference, commands)
    last = sorted(directory.glob("segment-*.wal"))[-1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"\x07" * 40)                              # a partial record
    info = inspect(directory)
    assert info["tail_intact"] is False and "partial record" in info["tail"]["reason"]
    assert last.stat().st_size == size + 40                # inspect changes nothing
    with pytest.warns(JournalTailWarning, match="partial record"):
        recovered = Engine.recover(directory)
    assert recovered.recovery.truncated and last.stat().st_size == size
    assert same_state(recovered, reference) == []
    recovered.close()
    assert inspect(directory)["tail_intact"] is True


def test_unfinished_batch_at_the_tail_is_never_half_applied(tmp_path):
    directory = tmp_path / "j"
    eng = new_engine(journal=directory, durability="none")
    eng.submit("AAA", "sell", 100.0, 5)
    batch = make_events([(R.EV_ADD, 9_000 + i, R.BUY, 990_000 + 100 * i, 1, 0, 0, 0, 5 + i)
                         for i in range(5)])
    eng.submit_many(batch)
    eng.close()
    segment = sorted(directory.glob("segment-*.wal"))[0]
    header = JournalReader(directory).segments[0].header_bytes
    os.truncate(segment, header + 3 * 64)                 # the batch's last 3 records lost
    reference = new_engine()
    reference.submit("AAA", "sell", 100.0, 5)
    with pytest.warns(JournalTailWarning, match="unfinished command"):
        recovered = Engine.recover(directory)
    assert same_state(recovered, reference) == []
    assert recovered.recovery.last_seq == 1
    recovered.close()


def test_bad_checksum_in_the_last_record_is_a_torn_tail(tmp_path):
    directory = tmp_path / "j"
    commands = _journal_with_segments(directory, 40)
    last = sorted(directory.glob("segment-*.wal"))[-1]
    raw = bytearray(last.read_bytes())
    raw[-30] ^= 0x40
    last.write_bytes(bytes(raw))
    reference = new_engine()
    _feed(reference, commands[:-1])
    with pytest.warns(JournalTailWarning, match="checksum mismatch"):
        recovered = Engine.recover(directory)
    assert same_state(recovered, reference) == []
    recovered.close()


def test_corrupt_middle_segment_is_an_error_naming_segment_and_offset(tmp_path):
    directory = tmp_path / "j"
    _journal_with_segments(directory, 300)
    reader = JournalReader(directory)
    assert len(reader.segments) >= 3
    victim = reader.segments[1]
    offset = victim.header_bytes + 5 * 64 + 17
    raw = bytearray(victim.path.read_bytes())
    raw[offset] ^= 0x01
    victim.path.write_bytes(bytes(raw))
    record_offset = victim.header_bytes + 5 * 64
    with pytest.raises(JournalCorruptError) as err:
        Engine.recover(directory)
    assert victim.path.name in str(err.value) and f"offset {record_offset}" in str(err.value)
    assert err.value.offset == record_offset
    assert (directory / victim.path.name).stat().st_size == len(raw)   # nothing truncated
    out = _cli("inspect", directory)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert victim.path.name in out.stderr and f"offset {record_offset}" in out.stderr


def test_damage_with_intact_records_after_it_is_an_error_even_in_the_last_segment(tmp_path):
    directory = tmp_path / "j"
    eng = new_engine(journal=directory, durability="none")
    _feed(eng, _single_orders(30))
    eng.close()
    segment = JournalReader(directory).segments[-1]
    offset = segment.header_bytes + 10 * 64
    raw = bytearray(segment.path.read_bytes())
    raw[offset + 3] ^= 0x10
    segment.path.write_bytes(bytes(raw))
    with pytest.raises(JournalCorruptError, match=f"offset {offset} .*intact record"):
        Engine.recover(directory)


def test_missing_segment_is_a_gap_error(tmp_path):
    directory = tmp_path / "j"
    _journal_with_segments(directory, 300)
    segments = sorted(directory.glob("segment-*.wal"))
    segments[1].unlink()
    with pytest.raises(JournalCorruptError, match="missing"):
        replay(directory)


# ------------------------------------------------------------------ one writer
def test_two_writers_are_refused(tmp_path):
    directory = tmp_path / "j"
    first = new_engine(journal=directory)
    with pytest.raises(JournalLockedError, match=f"pid {os.getpid()}"):
        Engine.recover(directory)
    with pytest.raises(JournalLockedError, match="two writers"):
        new_engine(journal=directory)
    first.submit("AAA", "buy", 99.0, 1)
    info = inspect(directory)                              # readers are welcome
    assert info["writer_pid"] == os.getpid() and info["records"] == 1
    first.close()
    with pytest.raises(JournalError, match="already holds a journal"):
        new_engine(journal=directory)
    _recover(directory).close()


def test_journal_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        new_engine(journal=tmp_path / "a", durability="sometimes")
    with pytest.raises(ValueError, match="snapshot_every"):
        new_engine(journal=tmp_path / "b", snapshot_every=0)
    with pytest.raises(ValueError, match="ring_records"):
        new_engine(journal=tmp_path / "c", journal_options={"ring_records": 100})
    with pytest.raises(ValueError, match="unknown option"):
        new_engine(journal=tmp_path / "d", journal_options={"fsync": 1})
    with pytest.raises(ValueError, match="need journal=DIR"):
        new_engine(durability="batch")
    with pytest.raises(ValueError, match="needs a journal"):
        new_engine().snapshot()


# --------------------------------------------------- replay, inspect, export
def _single_orders(n):
    return [c for c in crash_commands(21, 3 * n) if c[0] != "batch"][:n]


def test_replay_until_seq_and_time_and_inspect_and_export(tmp_path):
    directory = tmp_path / "j"
    commands = _single_orders(80)
    eng = new_engine(journal=directory, durability="none")
    _feed(eng, commands)
    eng.close()
    k = 37  # single commands: record k is command k
    reference = new_engine()
    _feed(reference, commands[:k])
    engine_k, report = replay(directory, until_seq=k)
    assert report.last_seq == k and same_state(engine_k, reference) == []

    out = _cli("replay", directory, "--until", k, "--levels", 2, "--json")
    assert out.returncode == 0, out.stderr
    books = {b["symbol"]: b for b in json.loads(out.stdout)["books"]}
    for symbol in ("AAA", "BBB"):
        assert [tuple(x) for x in books[symbol]["bids"]] == reference.get_bids(symbol, 2)
        assert [tuple(x) for x in books[symbol]["asks"]] == reference.get_asks(symbol, 2)
    assert _cli("replay", directory, "--until", k).stdout.count("AAA") == 1

    frame = pl.read_parquet(_export(directory, tmp_path / "audit.parquet"))
    assert len(frame) == 80 and frame["seq"].to_list() == list(range(1, 81))
    assert set(frame["kind"].unique()) <= {"add", "cancel", "modify", "execute"}
    adds = frame.filter(pl.col("kind") == "add")
    first = commands[0]
    assert (adds["symbol"][0], adds["side"][0], adds["price"][0], adds["qty"][0]) == \
        (first[1], first[2], first[3], first[4])
    assert adds["order_id"].to_list()[:3] == [1, 2, 3]     # automatic ids, resolved
    cancels = frame.filter(pl.col("kind") == "cancel")
    assert cancels["price"].null_count() == len(cancels)

    ts_k = int(frame["time"].cast(pl.Int64)[k - 1])
    engine_t, report_t = replay(directory, until_ts=ts_k)
    assert report_t.last_seq >= k                            # same wall time: later ones too
    iso = frame["time"][k - 1].isoformat()
    out = _cli("replay", directory, "--until", iso, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["seq"] >= k - 1

    out = _cli("inspect", directory, "--json")
    info = json.loads(out.stdout)
    assert info["records"] == 80 and (info["seq_first"], info["seq_last"]) == (1, 80)
    assert info["tail_intact"] and info["writer_pid"] is None
    assert sum(info["kinds"].values()) == 80
    text = _cli("inspect", directory).stdout
    assert "tail intact   yes" in text and "segment-00000000000000000001.wal" in text


def _export(directory, out):
    result = _cli("export", directory, out)
    assert result.returncode == 0, result.stderr
    return out


# --------------------------------------------------------------------- images
def test_pickle_and_to_bytes_round_trip(tmp_path):
    eng = new_engine(journal=tmp_path / "j", durability="none")
    _feed(eng, crash_commands(8, 100))
    for copy in (pickle.loads(pickle.dumps(eng)), Engine.from_bytes(eng.to_bytes())):
        assert type(copy) is Engine and copy.journal is None
        assert same_state(copy, eng) == []
        assert copy.fills().equals(eng.fills())
    book = OrderBook("Q", capacity=64, price_levels=4096)
    book.submit("sell", 10.0, 4)
    copy = pickle.loads(pickle.dumps(book))
    assert isinstance(copy, OrderBook) and copy.best_ask == 10.0 and same_state(copy, book) == []
    blob = bytearray(eng.to_bytes())
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(JournalCorruptError, match="damaged"):
        Engine.from_bytes(bytes(blob))
    with pytest.raises(JournalCorruptError, match="not an engine image"):
        Engine.from_bytes(b"nonsense" * 8)
    eng.close()


def test_application_records_are_journaled_in_sequence_and_skipped_by_replay(tmp_path):
    directory = tmp_path / "j"
    eng = new_engine(journal=directory, durability="batch", journal_options={"batch_us": 100})
    eng.submit("AAA", "buy", 99.0, 4)
    seq = eng.journal.append(7, a=42, b=-5, c=2**62, d=1, e=-3)   # e.g. a FIX session's state
    eng.submit("AAA", "sell", 99.0, 1)
    assert seq == 2 and eng.journal.durable_seq == 3
    with pytest.raises(ValueError, match="code"):
        eng.journal.append(128)
    with pytest.raises(ValueError, match="int32"):
        eng.journal.append(1, e=2**31)
    reference = new_engine()
    reference.submit("AAA", "buy", 99.0, 4)
    reference.submit("AAA", "sell", 99.0, 1)
    eng.close()
    recs = np.concatenate(list(JournalReader(directory).records()))
    app = recs[recs["rtype"] == R.JR_APP]
    assert app[["seq", "kind", "ts", "order_id", "price", "qty", "symbol"]].tolist() == [
        (2, 7, 42, -5, 2**62, 1, -3)]
    recovered = _recover(directory)
    assert same_state(recovered, reference) == []
    recovered.close()
