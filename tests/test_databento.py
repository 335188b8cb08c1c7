"""Databento MBO: the loader (DBN, DBN.zst, CSV), the book rules, ``data mbo-check`` and the
backtester's ``--data mbo``.

Every file here except the real ES snapshot is written by databento-dbn itself (its
``MBOMsg`` records, ``Metadata`` and ``Transcoder``, DBN and CSV encodings), and every
book is compared with a plain-Python model of Databento's documented rules
(:class:`RefBooks`: a dict of orders -> levels), built from the raw records.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from types import SimpleNamespace

import databento_dbn as dbn
import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_path
from workbench.cli import main
from workbench.data import databento as db
from workbench.errors import InputError

ES_SNAPSHOT = ("databento", "esh4-glbx-mdp3-20231224.mbo.csv.gz")
ES, NQ, CL = 17077, 13743, 9001
NAMES = {ES: "ESH4", NQ: "NQH4", CL: "CLG4"}
SNAP = dbn.F_SNAPSHOT | dbn.F_BAD_TS_RECV
LAST = dbn.F_LAST
UNDEF = dbn.UNDEF_PRICE
JSON_KEYS = {"records", "actions", "unknown_refs", "boundaries", "orders", "bids", "asks",
             "events_per_sec"}
BBO_COLUMNS = ["ts_recv", "ts_event", "instrument_id", "bid_px", "bid_sz", "bid_ct", "ask_px",
               "ask_sz", "ask_ct"]


# ------------------------------------------------------------- the reference model
class RefBooks:
    """Databento's book rules, literally, over a dict of orders per instrument.

    A adds (an add without a side or a positive price cannot rest: rejected); C removes
    ``size`` and the order at zero; M sets the new price and size, re-queuing on a new
    price or a larger size (a modify to size 0 removes the order, the loader's documented
    choice); R clears the instrument; T/F/N leave the book alone. Prices are Databento's
    1e-9 integers.
    """

    def __init__(self):
        self.orders = {}      # (instrument, order_id) -> [side, price, size, priority]
        self.seq = 0
        self.unknown = 0
        self.rejected = 0

    def apply(self, inst, action, side, price, size, oid):
        key = (inst, oid)
        if action == "A":
            if side not in "BA" or price is None or price <= 0 or key in self.orders:
                self.rejected += 1
                return
            self.seq += 1
            self.orders[key] = [side, price, size, self.seq]
        elif action == "C":
            if key not in self.orders:
                self.unknown += 1
                return
            order = self.orders[key]
            order[2] -= size
            if order[2] <= 0:
                del self.orders[key]
        elif action == "M":
            if key not in self.orders:
                self.unknown += 1
                return
            order = self.orders[key]
            if size == 0:
                del self.orders[key]
                return
            new_price = order[1] if price is None else price
            if new_price != order[1] or size > order[2]:
                self.seq += 1
                order[3] = self.seq
            order[1], order[2] = new_price, size
        elif action == "R":
            for k in [k for k in self.orders if k[0] == inst]:
                del self.orders[k]

    def queue(self, inst):
        """(order_id, size) in priority order: bids best first, then asks, FIFO."""
        bids = sorted(((-o[1], o[3], k[1], o[2]) for k, o in self.orders.items()
                       if k[0] == inst and o[0] == "B"))
        asks = sorted(((o[1], o[3], k[1], o[2]) for k, o in self.orders.items()
                       if k[0] == inst and o[0] == "A"))
        return [(oid, size) for _, _, oid, size in bids + asks]

    def levels(self, inst, side):
        agg = {}
        for k, o in self.orders.items():
            if k[0] == inst and o[0] == side:
                level = agg.setdefault(o[1], [0, 0])
                level[0] += o[2]
                level[1] += 1
        prices = sorted(agg, reverse=side == "B")
        return [(p / 1e9, agg[p][0], agg[p][1]) for p in prices]

    def top(self, inst, side):
        levels = self.levels(inst, side)
        return levels[0] if levels else (None, 0, 0)


def reference(records):
    """Replay dbn.MBOMsg records through RefBooks: the BBO at every F_LAST record."""
    ref = RefBooks()
    rows = []
    for m in records:
        price = None if m.price == UNDEF else m.price
        ref.apply(m.instrument_id, str(m.action), str(m.side), price, m.size, m.order_id)
        if m.flags & LAST:
            (bp, bs, bc), (ap, as_, ac) = ref.top(m.instrument_id, "B"), ref.top(m.instrument_id, "A")
            rows.append((m.ts_recv, m.ts_event, m.instrument_id, bp, bs, bc, ap, as_, ac))
    return ref, pl.DataFrame(rows, schema=BBO_COLUMNS, orient="row")


# -------------------------------------------------- files written by databento-dbn
def msg(ts, inst, action, side, price, size, oid, flags=0):
    return dbn.MBOMsg(publisher_id=1, instrument_id=inst, ts_event=ts - 700, order_id=oid,
                      price=UNDEF if price is None else round(price * 1e9), size=size,
                      action=dbn.Action.from_str(action), side=dbn.Side.from_str(side),
                      ts_recv=ts, flags=flags, channel_id=0, ts_in_delta=150, sequence=ts % 100_000)


def encode(records, kind, symbols=NAMES, pretty_ts=False) -> bytes:
    """The records as ``kind`` (dbn, zst, csv, csv.gz) through databento-dbn's encoders."""
    day = dt.date(2023, 12, 1)
    mappings = [SimpleNamespace(raw_symbol=name, intervals=[SimpleNamespace(
        start_date=day, end_date=dt.date(2024, 3, 1), symbol=str(inst))])
        for inst, name in symbols.items()]
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=records[0].ts_recv,
                        stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID,
                        schema=dbn.Schema.MBO, symbols=list(symbols.values()), mappings=mappings)
    raw = bytes(meta) + b"".join(bytes(m) for m in records)
    out = io.BytesIO()
    if kind in ("dbn", "zst"):
        comp = dbn.Compression.ZSTD if kind == "zst" else dbn.Compression.NONE
        coder = dbn.Transcoder(out, dbn.Encoding.DBN, comp)
    else:
        coder = dbn.Transcoder(out, dbn.Encoding.CSV, dbn.Compression.NONE, pretty_px=True,
                               pretty_ts=pretty_ts, map_symbols=True)
    coder.write(raw)
    coder.flush()
    data = out.getvalue()
    return gzip.compress(data) if kind == "csv.gz" else data


def write(tmp_path, records, kind, name="mbo", **kw):
    suffix = {"dbn": ".dbn", "zst": ".dbn.zst", "csv": ".csv", "csv.gz": ".csv.gz"}[kind]
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(encode(records, kind, **kw))
    return path


def scenario():
    """Every rule once: snapshots of two instruments, partial/full/over-size cancels,
    modifies that keep and lose priority, a multi-record event, T/F/N, unknown
    references, a side-N add, a zero-size cancel, a clear mid-stream, far prices, and a
    trailing record without F_LAST."""
    t = iter(range(1_703_422_805_000_000_000, 1_703_422_806_000_000_000, 1_000))
    m = lambda *a, **k: msg(next(t), *a, **k)  # noqa: E731
    return [
        m(ES, "R", "N", None, 0, 0, SNAP),
        m(ES, "A", "B", 4799.00, 5, 1, SNAP), m(ES, "A", "B", 4799.00, 3, 2, SNAP),
        m(ES, "A", "B", 4798.75, 7, 3, SNAP), m(ES, "A", "A", 4799.25, 4, 4, SNAP),
        m(ES, "A", "A", 4799.50, 2, 5, SNAP | LAST),
        m(NQ, "R", "N", None, 0, 0, SNAP),
        m(NQ, "A", "B", 16800.25, 1, 1, SNAP), m(NQ, "A", "A", 16801.00, 2, 2, SNAP | LAST),
        m(ES, "A", "B", 4799.00, 4, 6, LAST),
        m(ES, "C", "B", 4799.00, 1, 2, LAST),            # partial: keeps its place
        m(ES, "M", "B", 4799.00, 3, 1, LAST),            # less size: keeps priority
        m(ES, "M", "B", 4799.00, 10, 2, LAST),           # more size: to the tail
        m(ES, "M", "B", 4799.00, 7, 3),                  # new price: to the tail ...
        m(ES, "C", "A", 4799.25, 4, 4, LAST),            # ... one event with a full cancel
        m(ES, "T", "A", 4799.00, 3, 0),                  # sell aggressor trades 3
        m(ES, "F", "B", 4799.00, 3, 1),                  # order 1 filled
        m(ES, "C", "B", 4799.00, 3, 1, LAST),            # and leaves the book
        m(ES, "N", "N", None, 0, 0, LAST),
        m(ES, "C", "B", 4799.00, 1, 99, LAST),           # unknown order
        m(ES, "M", "B", 4799.00, 1, 98, LAST),           # unknown order
        m(ES, "A", "N", 4799.00, 1, 50, LAST),           # no side: cannot rest
        m(NQ, "A", "A", 16800.75, 2, 3, LAST),
        m(NQ, "T", "N", 16800.75, 1, 0, LAST),           # trade without an aggressor
        m(ES, "C", "A", 4799.50, 0, 5, LAST),            # zero-size cancel: nothing
        m(NQ, "R", "N", None, 0, 0),
        m(NQ, "A", "B", 16799.00, 1, 7, LAST),
        m(ES, "C", "B", 4799.00, 100, 3, LAST),          # more than rests: removed
        m(ES, "A", "A", 9000.00, 1, 8, LAST),            # far from the touch
        m(ES, "A", "B", 0.25, 1, 9, LAST),
        m(ES, "M", "A", None, 1, 5, LAST),               # undefined price keeps the price
        m(ES, "A", "B", 4798.50, 1, 10),                 # no F_LAST: applied, no boundary
    ]


def random_stream(seed, n=1500):
    """A valid-by-construction random MBO stream over three instruments, with events of
    one to three records ending in F_LAST, and deliberate unknown references."""
    rng = np.random.default_rng(seed)
    ticks = {ES: 0.25, NQ: 0.25, CL: 0.01}
    mids = {ES: 4800.0, NQ: 16800.0, CL: 72.5}
    live = {i: {} for i in ticks}
    out, ts, next_id = [], 1_703_422_805_000_000_000, 1000
    while len(out) < n:
        inst = int(rng.choice(list(ticks)))
        group = int(rng.integers(1, 4))
        for g in range(group):
            ts += int(rng.integers(1, 5000))
            flag = LAST if g == group - 1 else 0
            book, tick = live[inst], ticks[inst]
            r = rng.random()
            if r < 0.4 or not book:
                side = "B" if rng.random() < 0.5 else "A"
                sign = -1 if side == "B" else 1
                price = round(mids[inst] + sign * int(rng.integers(0, 30)) * tick, 2)
                size = int(rng.integers(1, 20))
                out.append(msg(ts, inst, "A", side, price, size, next_id, flag))
                book[next_id] = [side, price, size]
                next_id += 1
                continue
            oid = int(rng.choice(list(book)))
            side, price, size = book[oid]
            if r < 0.62:
                cut = int(rng.integers(1, size + 3))
                out.append(msg(ts, inst, "C", side, price, cut, oid, flag))
                size -= cut
            elif r < 0.8:
                w = rng.random()
                if w < 0.4:
                    price = round(price + int(rng.integers(-2, 3)) * tick, 2)
                elif w < 0.7:
                    size += int(rng.integers(1, 5))
                else:
                    size = max(1, size - int(rng.integers(0, size)))
                out.append(msg(ts, inst, "M", side, price, size, oid, flag))
            elif r < 0.9:
                fill = int(rng.integers(1, size + 1))
                out.append(msg(ts, inst, "T", "A" if side == "B" else "B", price, fill, 0))
                out.append(msg(ts, inst, "F", side, price, fill, oid))
                out.append(msg(ts, inst, "C", side, price, fill, oid, flag))
                size -= fill
            elif r < 0.95:
                out.append(msg(ts, inst, "C", side, price, 1, 10**9 + next_id, flag))  # unknown
                continue
            elif r < 0.97:
                out.append(msg(ts, inst, "N", "N", None, 0, 0, flag))
                continue
            elif r < 0.975:
                out.append(msg(ts, inst, "R", "N", None, 0, 0, flag))
                book.clear()
                continue
            else:
                mids[inst] += tick * int(rng.choice([-1, 1]))
                out.append(msg(ts, inst, "N", "N", None, 0, 0, flag))
                continue
            if size <= 0:
                del book[oid]
            else:
                book[oid] = [side, price, size]
    out[-1] = msg(out[-1].ts_recv, out[-1].instrument_id, str(out[-1].action), str(out[-1].side),
                  None if out[-1].price == UNDEF else out[-1].price / 1e9, out[-1].size,
                  out[-1].order_id, out[-1].flags | LAST)
    return out


# --------------------------------------------------------------------- assertions
def assert_matches_reference(check, records, engine=None):
    ref, bbo = reference(records)
    got = check.bbo
    assert got.columns == BBO_COLUMNS
    assert got.height == bbo.height == sum(1 for m in records if m.flags & LAST)
    for column in BBO_COLUMNS:
        assert got[column].to_list() == bbo[column].to_list(), column
    assert check.unknown_refs == ref.unknown
    rejected = sum(check.rejects.values())
    assert rejected == ref.rejected
    for inst in check.instruments:
        i = inst["instrument_id"]
        assert [tuple(x) for x in inst["bids"]] == ref.levels(i, "B")[:len(inst["bids"])]
        assert [tuple(x) for x in inst["asks"]] == ref.levels(i, "A")[:len(inst["asks"])]
        assert inst["orders"] == len(ref.queue(i))
    return ref


def engine_queue(data, symbol):
    """(order_id, size) of the replayed engine's book, in priority order."""
    outcome = db.replay(data)
    orders = outcome.engine.orders(symbol)
    return list(zip(orders["order_id"].to_list(), orders["qty"].to_list()))


# ============================================================================ tests
def test_es_snapshot_rebuilds_the_book_of_the_raw_csv(capsys):
    path = shared_path(*ES_SNAPSHOT)
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8725
    ref = RefBooks()
    for r in rows:  # the independent reading: csv module, Decimal-free integer prices
        whole, _, frac = r["price"].partition(".")
        fixed = int(whole) * 10**9 + int((frac + "0" * 9)[:9])
        ref.apply(int(r["instrument_id"]), r["action"], r["side"], fixed, int(r["size"]),
                  int(r["order_id"]))
    check = db.check_mbo(path, levels=100_000)
    assert (check.records, check.boundaries, check.orders, check.unknown_refs) == (8725, 1, 8725, 0)
    assert check.actions == {"A": 8725, "C": 0, "M": 0, "R": 0, "T": 0, "F": 0, "N": 0}
    assert check.price_scale == 10_000 and check.rejects == {} and check.malformed == 0
    es = check.instruments[0]
    assert (es["instrument_id"], es["symbol"], es["tick"]) == (ES, "ESH4", 0.25)
    assert [tuple(x) for x in es["bids"]] == ref.levels(ES, "B")
    assert [tuple(x) for x in es["asks"]] == ref.levels(ES, "A")
    assert len(es["bids"]) + len(es["asks"]) > 100  # deep: far levels kept, none lost
    data = db.load_mbo(path)
    assert engine_queue(data, "ESH4") == ref.queue(ES)  # FIFO inside every level
    assert check.bbo.row(0)[3:] == (4799.0, 16, 4, 4799.5, 23, 4)
    assert main(["data", "mbo-check", str(path), "--json", "--levels", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == JSON_KEYS
    assert out["bids"] == [[4799.0, 16, 4], [4798.75, 21, 4], [4798.5, 18, 4]]
    assert out["events_per_sec"] > 0


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mbo")
    records = scenario()
    return records, {kind: write(tmp, records, kind) for kind in ("dbn", "zst", "csv", "csv.gz")}


def test_book_rules_on_every_encoding(scenario_files):
    records, paths = scenario_files
    checks = {kind: db.check_mbo(p, levels=50) for kind, p in paths.items()}
    ref = assert_matches_reference(checks["dbn"], records)
    check = checks["dbn"]
    assert check.unknown_refs == 2 and check.rejects == {"invalid_side": 1}
    assert check.actions == {"A": 14, "C": 6, "M": 5, "R": 3, "T": 2, "F": 1, "N": 1}
    assert [i["symbol"] for i in check.instruments] == ["ESH4", "NQH4"]
    assert check.boundaries == sum(1 for m in records if m.flags & LAST) == 20
    assert check.records == len(records)
    data = db.load_mbo(paths["dbn"])
    assert engine_queue(data, "ESH4") == ref.queue(ES)
    assert engine_queue(data, "NQH4") == ref.queue(NQ)
    # priority: order 1 (less size) kept its place ahead of 6; 2 (more size) and 3 (new
    # price) went to the tail, in that order -- then 1 was filled and cancelled
    assert [oid for oid, _ in ref.queue(ES)][:3] == [6, 2, 10]
    frame = db.read_mbo(paths["dbn"]).frame
    for kind in ("zst", "csv", "csv.gz"):
        assert db.read_mbo(paths[kind]).frame.equals(frame), kind
        a, b = checks[kind].to_json(), check.to_json()
        a.pop("events_per_sec"), b.pop("events_per_sec")
        assert a == b, kind
        assert checks[kind].bbo.equals(check.bbo), kind


def test_random_streams_match_the_reference(tmp_path):
    for seed in (1, 2):
        records = random_stream(seed)
        path = write(tmp_path, records, "dbn", name=f"r{seed}")
        check = db.check_mbo(path, levels=1000)
        ref = assert_matches_reference(check, records)
        assert check.unknown_refs > 0
        data = db.load_mbo(path)
        assert sorted(data.ticks) == [100, 2500, 2500]
        outcome = db.replay(data)
        for sym, inst in zip(data.symbols, data.instruments):
            orders = outcome.engine.orders(sym)
            assert list(zip(orders["order_id"].to_list(), orders["qty"].to_list())) == ref.queue(inst)


def test_frame_has_names_prices_and_the_package_decoding(scenario_files):
    records, paths = scenario_files
    frame = db.read_mbo(paths["dbn"]).frame
    decoder = dbn.DBNDecoder()
    decoder.write(paths["dbn"].read_bytes())
    decoded = [r for r in decoder.decode() if isinstance(r, dbn.MBOMsg)]
    assert len(decoded) == frame.height == len(records)
    names = dict(zip(db.ACTION_LETTERS, db.ACTION_NAMES))
    sides = dict(zip(db.SIDE_LETTERS, db.SIDE_NAMES))
    for row, m in zip(frame.iter_rows(named=True), decoded):
        assert (row["ts_recv"], row["ts_event"], row["instrument_id"], row["order_id"],
                row["size"], row["flags"], row["sequence"], row["ts_in_delta"],
                row["publisher_id"], row["channel_id"], row["rtype"]) == \
            (m.ts_recv, m.ts_event, m.instrument_id, m.order_id, m.size, m.flags, m.sequence,
             m.ts_in_delta, m.publisher_id, m.channel_id, 160)
        assert row["action"] == names[str(m.action)] and row["side"] == sides[str(m.side)]
        assert row["price_fixed"] == m.price
        assert row["price"] == (None if m.price == UNDEF else m.pretty_price)
        assert row["last"] == bool(m.flags & LAST)
        assert row["snapshot"] == bool(m.flags & dbn.F_SNAPSHOT)
        assert row["symbol"] == NAMES[m.instrument_id]
    assert frame.schema["action"] == db.ACTION and frame.schema["side"] == db.SIDE


def test_dbn_with_ts_out_reads_the_same_records(tmp_path, scenario_files):
    records, paths = scenario_files
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=records[0].ts_recv,
                        stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID,
                        schema=dbn.Schema.MBO, ts_out=True)
    with_out = [dbn.MBOMsg(publisher_id=m.publisher_id, instrument_id=m.instrument_id,
                           ts_event=m.ts_event, order_id=m.order_id, price=m.price, size=m.size,
                           action=m.action, side=m.side, ts_recv=m.ts_recv, flags=m.flags,
                           channel_id=m.channel_id, ts_in_delta=m.ts_in_delta,
                           sequence=m.sequence, ts_out=m.ts_recv + 5) for m in records]
    path = tmp_path / "ts_out.dbn"
    path.write_bytes(bytes(meta) + b"".join(bytes(m) for m in with_out))
    assert len(bytes(with_out[0])) == 64
    frame = db.read_mbo(path).frame
    expected = db.read_mbo(paths["dbn"]).frame
    assert frame.drop("symbol").equals(expected.drop("symbol"))  # no mappings in this one


def test_csv_malformed_lines_are_counted_and_iso_times_read(tmp_path, scenario_files):
    records, paths = scenario_files
    good = db.read_mbo(paths["csv"]).frame
    iso = write(tmp_path, records, "csv", name="iso", pretty_ts=True)
    assert "T" in iso.read_text().splitlines()[1].split(",")[0]
    assert db.read_mbo(iso).frame.equals(good)
    lines = paths["csv"].read_text().splitlines()
    bad = [
        lines[3] + ",extra",                          # too many fields
        ",".join(lines[3].split(",")[:-2]),           # too few
        lines[3].replace(",A,B,", ",X,B,"),           # unknown action
        lines[3].replace(",A,B,", ",A,Q,"),           # unknown side
        lines[3].replace("4799.", "47.99."),          # not a decimal
        lines[3].replace("4799.000000000", "4799.0000000001"),  # 10 decimals
        lines[3].replace(",160,", ",10,"),            # another rtype
        "garbage",
        "",
    ]
    text = "\n".join(lines[:5] + bad + lines[5:]) + "\n"
    path = tmp_path / "bad.csv"
    path.write_text(text)
    mbo = db.read_mbo(path)
    assert mbo.malformed == 8
    assert mbo.frame.equals(good)
    check = db.check_mbo(path)
    assert check.malformed == 8 and check.to_json()["malformed"] == 8


def test_corrupt_and_foreign_files_are_input_errors(tmp_path, scenario_files):
    records, paths = scenario_files
    cases = {
        "empty.dbn": b"",
        "bad.csv.gz": b"\x1f\x8b\x08\x00garbage",
        "header.csv": b"time,price,size\n1,2,3\n",
        "broken.dbn.zst": paths["zst"].read_bytes()[:40],
    }
    trades = dbn.Metadata(dataset="GLBX.MDP3", start=1, stype_in=dbn.SType.RAW_SYMBOL,
                          stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.TRADES)
    cases["trades.dbn"] = bytes(trades) + bytes(dbn.TradeMsg(
        publisher_id=1, instrument_id=ES, ts_event=1, price=10**9, size=1,
        action=dbn.Action.TRADE, side=dbn.Side.BID, depth=0, ts_recv=2, flags=LAST))
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=name.replace(".", r"\.")):
            db.read_mbo(path)
    truncated = tmp_path / "cut.dbn"
    truncated.write_bytes(paths["dbn"].read_bytes()[:-20])
    mbo = db.read_mbo(truncated)
    assert (mbo.frame.height, mbo.malformed) == (len(records) - 1, 1)
    assert main(["data", "mbo-check", str(tmp_path / "header.csv")]) == 2


def test_cli_json_keys_text_and_bbo_parquet(tmp_path, scenario_files, capsys):
    records, paths = scenario_files
    single = [m for m in records if m.instrument_id == ES and str(m.side) != "N"
              or m.instrument_id == ES and str(m.action) in "RN"]
    one = write(tmp_path, single, "zst", name="es")
    out_path = tmp_path / "bbo.parquet"
    assert main(["data", "mbo-check", str(one), "--json", "--levels", "2",
                 "--bbo", str(out_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == JSON_KEYS
    assert out["actions"]["A"] == sum(1 for m in single if str(m.action) == "A") == 9
    assert out["unknown_refs"] == 2
    assert len(out["bids"]) == 2 and all(isinstance(p, float) for p, _, _ in out["bids"])
    bbo = pl.read_parquet(out_path)
    _, expected = reference(single)
    assert bbo.columns == BBO_COLUMNS and bbo.height == out["boundaries"] == expected.height
    assert bbo["bid_px"].to_list() == expected["bid_px"].to_list()
    assert main(["data", "mbo-check", str(paths["dbn"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == JSON_KEYS | {"instruments", "rejects"}
    assert [i["symbol"] for i in out["instruments"]] == ["ESH4", "NQH4"]
    assert out["bids"] == out["instruments"][0]["bids"]
    assert sum(i["orders"] for i in out["instruments"]) == out["orders"]
    assert main(["data", "mbo-check", str(paths["csv.gz"]), "--levels", "2"]) == 0
    text = capsys.readouterr().out
    assert "ESH4 (instrument 17077)" in text and "unknown refs: 2" in text and "events/s" in text


def test_price_scale_and_ticks(tmp_path):
    t = 1_703_422_805_000_000_000
    zn = [msg(t, 42, "A", "B", 110.015625, 1, 1, LAST), msg(t + 1, 42, "A", "A", 110.03125, 1, 2, LAST)]
    data = db.load_mbo(write(tmp_path, zn, "dbn", name="zn", symbols={42: "ZNH4"}))
    assert data.price_scale == 1_000_000 and data.ticks == [15_625]  # 1/64 exactly
    with pytest.raises(ValueError, match="price_scale"):
        db.load_mbo(write(tmp_path, zn, "dbn", name="zn2", symbols={42: "ZNH4"}), price_scale=10_000)
    with pytest.raises(ValueError, match="tick_size"):  # 1/128 is not a multiple of 1e-6
        db.load_mbo(write(tmp_path, zn, "dbn", name="zn3", symbols={42: "ZNH4"}),
                    tick_size=1 / 128)
    coarse = db.load_mbo(write(tmp_path, zn, "dbn", name="zn4", symbols={42: "ZNH4"}),
                         tick_size={"ZNH4": 1 / 32})
    assert coarse.ticks == [31_250]
    check = db.check_mbo(coarse)  # 110.015625 is off a 1/32 tick: the kernel says so
    assert check.rejects == {"price_off_tick": 1} and check.orders == 1


def test_backtest_selects_one_instrument_of_an_mbo_file(tmp_path):
    from workbench.data.market import load_events

    records = random_stream(3, n=3000)
    path = write(tmp_path, records, "dbn", name="bt")
    data = db.load_mbo(path)
    md = load_events(str(path), symbol="NQH4")
    book = data.symbols.index("NQH4")
    mine = data.events[data.events["symbol"] == book]
    assert np.array_equal(md.events[["ts", "order_id", "price", "qty", "kind", "side"]],
                          mine[["ts", "order_id", "price", "qty", "kind", "side"]])
    assert (md.events["symbol"] == 0).all() and md.tick == 2500 and md.price_scale == 10_000
    assert load_events(str(path), symbol=NQ).events.tobytes() == md.events.tobytes()
    with pytest.raises(InputError, match="not an instrument"):
        load_events(str(path), symbol="ZZZ")


def test_backtest_runs_mbo_with_our_orders_queued_among_the_real_ones(tmp_path, capsys):
    path = write(tmp_path, random_stream(3, n=3000), "dbn", name="bt")
    data = db.load_mbo(path)
    mine = data.events[data.events["symbol"] == data.symbols.index("NQH4")]
    # the default strategy (compiled once for the suite), quoting 6 ticks from the mid:
    # inside the real book's depth
    assert main(["backtest", "--data", "mbo", str(path), "--symbol", "NQH4", "--param", "qty=1",
                 "--param", "half_spread_ticks=6", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["data"].startswith("Databento MBO bt.dbn NQH4")
    assert out["events"] == len(mine) and out["n_orders"] > 0
    from workbench.backtest import Backtest

    result = (Backtest(str(path), symbol="NQH4").strategy("mm_skew", qty=1, half_spread_ticks=6)
              .latency(50, 100, 50).fees(-0.2, 0.3).run(progress=False))
    assert result.stats["n_orders"] == out["n_orders"]
    queued = result.orders.filter(pl.col("queue_ahead") > 0)
    assert queued.height > 0  # our orders waited behind real ones


def test_synthetic_stream_round_trips_through_the_package(tmp_path):
    records = db.synthetic_mbo(3000, n_instruments=2, seed=5)
    path = db.write_dbn(tmp_path / "s.dbn.zst", records, {1000: "AAA", 1001: "BBB"}, "zstd")
    decoder = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
    decoder.write(path.read_bytes())
    msgs = [m for m in decoder.decode() if isinstance(m, dbn.MBOMsg)]
    assert len(msgs) == 3000
    check = db.check_mbo(path)
    assert_matches_reference(check, msgs)
    assert check.unknown_refs == 0 and check.rejects == {}
    assert {i["symbol"] for i in check.instruments} == {"AAA", "BBB"}
