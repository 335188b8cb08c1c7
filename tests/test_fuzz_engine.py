"""Fuzzing every public entry point of ``OrderBook`` and ``Engine`` in fast mode.

The child runs the default build (ProductionSafe: bounds-checked kernels), on purpose: a
kernel that indexes memory with an unchecked caller value then raises ``IndexError``,
which fails the property on the spot, where the unchecked build might read a stray
byte and carry on unnoticed. The kernels' logic is the same in both builds. A crash
(the kernels' own row checks are what keep the unchecked build safe) would still kill
the process, so the examples run in a child process (``python -m
tests.test_fuzz_engine``) that the test drives; a crash fails the test with the signal,
the seed and the last example, instead of killing the run.

Three hypothesis properties run in the child, each with ``--examples`` examples:

* ``fuzz_python_calls``: programs of calls (``submit``, ``cancel``, ``modify``,
  ``execute``, ``get_bids``/``get_asks``, ``depth``, ``vwap``, ``queue_position``,
  ``orders``, ``best_bid``/``best_ask``, ``stats``) on an ``OrderBook`` or a two-symbol
  ``Engine``, every argument drawn with what it should mean: valid values of every form
  (enum members, names, Python and numpy integers of every width, floats, Fractions,
  Decimals) and hostile ones (bools, NaN/inf, huge ints, numpy scalars that would wrap,
  strings, None, other enums). A call with an invalid argument must raise ``ValueError``
  (naming the field when only one is wrong) and change nothing; a valid one must do
  exactly what ``workbench.reference.ReferenceBook`` does (status, reason, filled,
  leaves, fills, automatic ids); queries must answer like the reference and change
  nothing.
* ``fuzz_event_batches``: ``submit_many`` on random EVENT records with sentinels and
  extremes in every field (ids -2**63/2**63-1, quantities and prices at and past the
  limits, unknown kinds, sides, types, books); each row's RESULT and fills must match
  the reference (rows the engine rejects for its shared pool or symbol range are
  checked to change nothing instead).
* ``fuzz_apply_buffers``: ``apply`` with caller buffers of every kind (wrong dtype, 2-d,
  strided, read-only, over immutable bytes, read-only memmaps, too small, overlapping the
  input or the engine's own state, bad ``start``): refused with ``ValueError`` and no
  change, or applied like the reference.

After each example: every invariant of the book and its id index holds
(:func:`check_invariants`, plain numpy over the state arrays), every resting order is
found where the FIFO walk puts it (``queue_position``), and every one can be cancelled,
leaving an empty book with the whole pool free.

Size: ``WORKBENCH_FUZZ_EXAMPLES`` (default 40 per property, a few seconds) and
``WORKBENCH_FUZZ_SEED`` for the test; a long run from the shell::

    python -m tests.test_fuzz_engine --examples 20000 [--seed N]
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from kernels import book_state
from kernels import records as R
from kernels.bitmap import bitmap_layout
from kernels.order_index import EMPTY_KEY
from workbench.book import AUTO_ID_END, Engine, OrderBook
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce
from workbench.reference import ReferenceBook

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES = 40

SCALE = 10_000
TICK = 100              # 0.01 in price units
MID = 1_000_000         # 100.00
CAPACITY = 40           # small: the pool fills up now and then
LEVELS = 64             # the smallest window: far prices exercise the overflow
EMPTY = int(EMPTY_KEY)
MAX_ID = R.MAX_ORDER_ID
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
ALIVE = (R.ST_NEW, R.ST_PARTIALLY_FILLED)


# ===================================================================== invariant checker
def check_invariants(eng) -> dict[int, tuple[int, int, int]]:
    """Assert every structural invariant of ``eng.state``; return the live orders as
    ``{slot: (book, side, level handle)}``. Independent of the kernels: numpy and Python."""
    s = eng.state
    c = s.counters
    pool = s.pool
    capacity = len(pool)
    W = int(c[book_state.EC_W])
    n_books = len(s.books)
    nxt = pool["next"].tolist()
    prv = pool["prev"].tolist()
    seen: set[int] = set()

    # the free list: in range, no cycle
    free = 0
    slot = int(c[book_state.EC_FREE_HEAD])
    while slot != -1:
        assert 0 <= slot < capacity, f"free list points outside the pool: {slot}"
        assert slot not in seen, f"free list cycles at slot {slot}"
        seen.add(slot)
        free += 1
        slot = nxt[slot]

    # the levels: window slots and overflow nodes. Each level's FIFO, totals, counts;
    # the overflow lists (sorted best first, all worse than the window); best; bitmaps
    live: dict[int, tuple[int, int, int]] = {}
    ovf_base = int(c[book_state.EC_OVF_BASE])
    assert ovf_base == n_books * 2 * W
    window = s.levels[:ovf_base].reshape(n_books, 2, W)
    n_nodes = len(s.levels) - ovf_base
    onext = s.ovf_next.tolist()
    oprev = s.ovf_prev.tolist()
    free_nodes: set[int] = set()
    node = int(c[book_state.EC_OVF_FREE])
    while node != -1:
        assert 0 <= node < n_nodes and node not in free_nodes, f"overflow free list at {node}"
        free_nodes.add(node)
        node = onext[node]
    used_nodes: set[int] = set()
    l0, l1, block = bitmap_layout(W)
    for book in range(n_books):
        b = s.books[book]
        tick = int(b["tick"])
        for side in (R.BUY, R.SELL):
            lo = int(b["lo"][side])
            lv = window[book, side]
            count = lv["count"]
            empty = count == 0
            assert (count >= 0).all()
            assert (lv["head"][empty] == -1).all() and (lv["tail"][empty] == -1).all()
            assert (lv["qty"][empty] == 0).all(), "an empty level holds quantity"
            occupied = np.flatnonzero(~empty).tolist()
            levels = []  # (handle, price)
            for idx in occupied:
                price = int(lv["price"][idx])
                t = price // tick
                assert price % tick == 0 and lo <= t < lo + W and t % W == idx, \
                    f"window level {idx} holds price {price} (window from tick {lo})"
                levels.append(((book * 2 + side) * W + idx, price))
            nodes, prev, node = [], -1, int(b["ovf_head"][side])
            while node != -1:
                assert 0 <= node < n_nodes, f"overflow list links outside the pool: {node}"
                assert node not in used_nodes and node not in free_nodes, f"node {node} twice"
                used_nodes.add(node)
                assert oprev[node] == prev, f"overflow prev link broken at node {node}"
                nodes.append(node)
                prev, node = node, onext[node]
            assert int(b["ovf_tail"][side]) == prev and int(b["n_ovf"][side]) == len(nodes)
            ovf_prices = [int(s.levels[ovf_base + n]["price"]) for n in nodes]
            for n, price in zip(nodes, ovf_prices):
                assert int(s.levels[ovf_base + n]["count"]) > 0, "an empty overflow level"
                t = price // tick
                assert price % tick == 0 and (t < lo if side == R.BUY else t >= lo + W), \
                    f"overflow price {price} is not beyond the window (from tick {lo})"
            ordered = ovf_prices[::-1] if side == R.BUY else ovf_prices
            assert ordered == sorted(set(ordered)), "overflow list out of order"
            levels += [(ovf_base + n, p) for n, p in zip(nodes, ovf_prices)]
            n_orders = 0
            for h, price in levels:
                head, tail = int(s.levels[h]["head"]), int(s.levels[h]["tail"])
                total, n, prev, slot = 0, 0, -1, head
                while slot != -1:
                    assert 0 <= slot < capacity, f"level {h} links outside the pool: {slot}"
                    assert slot not in seen, f"slot {slot} is in two lists (free/levels)"
                    seen.add(slot)
                    o = pool[slot]
                    assert prv[slot] == prev, f"FIFO prev link broken at slot {slot}"
                    assert (int(o["symbol"]), int(o["side"]), int(o["level"])) == (book, side, h)
                    assert int(o["price"]) == price, "order price off its level"
                    assert 0 < int(o["qty"]) <= R.MAX_QTY, f"resting qty {int(o['qty'])}"
                    assert int(o["status"]) in ALIVE
                    assert int(o["order_id"]) != EMPTY
                    live[slot] = (book, side, h)
                    total += int(o["qty"])
                    n += 1
                    prev, slot = slot, nxt[slot]
                assert prev == tail, f"level {h}: tail {tail} but the FIFO ends at {prev}"
                assert n == int(s.levels[h]["count"]), f"level {h}: count != {n} orders"
                assert total == int(s.levels[h]["qty"]), f"level {h}: qty != {total}"
                n_orders += n
            assert int(b["orders"][side]) == n_orders, "per-side order count"
            assert int(b["n_levels"][side]) == len(levels), "per-side level count"
            if levels:
                want = max(levels, key=lambda x: x[1]) if side == R.BUY else min(levels, key=lambda x: x[1])
                assert want[0] < ovf_base, "a non-empty side's best level is outside its window"
                assert int(b["best"][side]) == want[0], f"best[{side}] is not the best level"
                assert int(b["placed"][side]) == 1
            else:
                assert int(b["best"][side]) == -1 and int(b["placed"][side]) == 0
            # bitmap: level 0 = occupancy, level 1 = non-zero level-0 words, level 2 = level 1's
            start = (book * 2 + side) * block
            bits = s.bits[start:start + block]
            want0 = np.packbits(~empty, bitorder="little").view("<u8")
            assert np.array_equal(bits[:l0], want0), "bitmap level 0 != occupancy"
            want1 = np.packbits(np.r_[want0 != 0, np.zeros(64 * l1 - l0, bool)],
                                bitorder="little").view("<u8")
            assert np.array_equal(bits[l0:l0 + l1], want1), "bitmap level 1"
            want2 = np.packbits(np.r_[want1 != 0, np.zeros(64 - l1, bool)], bitorder="little").view("<u8")
            assert np.array_equal(bits[l0 + l1:], want2), "bitmap level 2"
    assert len(used_nodes) + len(free_nodes) == n_nodes, "overflow nodes leaked"
    assert int(c[book_state.EC_OVF_USED]) == len(used_nodes)
    assert len(seen) == capacity, f"{capacity - len(seen)} pool slot(s) leaked"
    assert free + len(live) == capacity
    assert int(c[book_state.EC_LIVE]) == len(live)

    # the id index: exactly the live orders, each reachable from its home position
    keys = s.index_keys.tolist()
    slots = s.index_slots.tolist()
    size = len(keys)
    shift = int(c[book_state.EC_HASH_SHIFT])
    entries = {}
    for pos, key in enumerate(keys):
        if key == EMPTY:
            assert slots[pos] == -1, f"empty index position {pos} holds slot {slots[pos]}"
            continue
        slot = slots[pos]
        assert slot in live, f"index entry {key} -> slot {slot}, which does not rest"
        assert int(pool[slot]["order_id"]) == key
        pair = (key, int(pool[slot]["symbol"]))
        assert pair not in entries, f"(order id, book) {pair} indexed twice"
        entries[pair] = slot
        # groups of 8 consecutive ids share a line; groups spread by Fibonacci hashing
        group = ((((key & MASK64) >> 3) * GOLDEN) & MASK64) >> (shift + 3)
        home = (group << 3) | (key & 7)
        h = home
        while h != pos:  # linear probing: no hole between home and the entry
            assert keys[h] != EMPTY, f"id {key} at {pos} is unreachable from home {home}"
            h = (h + 1) % size
    assert len(entries) == len(live), "index size != live orders"
    return live


def live_orders(eng) -> list[tuple[int, int, int, int]]:
    """(book, order_id, side, slot) of every resting order, in FIFO order per level."""
    live = check_invariants(eng)
    return [(book, int(eng.state.pool[slot]["order_id"]), side, slot)
            for slot, (book, side, _) in live.items()]


def check_queues_and_drain(eng, symbols) -> None:
    """Every resting order is where its FIFO puts it and can be cancelled; the book ends
    empty with the whole pool free."""
    pool = eng.state.pool
    for book, oid, side, slot in live_orders(eng):
        if 1 <= oid <= MAX_ID:
            o = pool[slot]
            level = eng.state.levels[int(o["level"])]  # the order's level handle
            ahead_qty = ahead_n = 0
            cur = int(level["head"])
            while cur != slot:
                ahead_qty += int(pool[cur]["qty"])
                ahead_n += 1
                cur = int(pool[cur]["next"])
            got = (eng.queue_position(symbols[book], oid) if isinstance(eng, Engine)
                   else eng.queue_position(oid))
            assert got == (ahead_qty, ahead_n), f"queue_position({oid}) = {got}"
    for book, oid, _, _ in live_orders(eng):
        if 1 <= oid <= MAX_ID:
            r = (eng.cancel(symbols[book], oid) if isinstance(eng, Engine) else eng.cancel(oid))
            assert r.status == OrderStatus.CANCELLED, f"order {oid} could not be cancelled: {r}"
        else:  # ids the Python API does not take (negative, from batches): a batched delete
            ev = np.zeros(1, R.EVENT)
            ev[0] = (1, oid, 0, 0, book, R.EV_DELETE, 0, 0, 0)
            r = eng.submit_many(ev).results[0]
            assert int(r["status"]) == R.ST_CANCELLED, f"order {oid} could not be deleted: {r}"
    assert live_orders(eng) == []
    assert int(eng.state.counters[book_state.EC_LIVE]) == 0


def snapshot(eng):
    return [a.copy() for a in eng.state]


def assert_unchanged(eng, before, what: str) -> None:
    for name, old, new in zip(eng.state._fields, before, eng.state):
        assert np.array_equal(old, new), f"{what} changed the engine's {name}"


# ========================================================================= the reference
class Mirror:
    """One ReferenceBook per book, fed what the engine accepted (or rejected for a reason
    the reference does not model), compared result by result."""

    # the engine's shared pool and symbol range are not in the reference
    SKIPPED = {R.R_UNKNOWN_SYMBOL, R.R_OUTPUT_FULL}

    def __init__(self, n_books: int):
        capacity = CAPACITY if n_books == 1 else 10**9
        self.refs = [ReferenceBook(tick=TICK, capacity=capacity) for _ in range(n_books)]
        self.skipped = set(self.SKIPPED)
        if n_books > 1:
            self.skipped.add(R.R_POOL_FULL)

    def check(self, book, fields, status, reason, filled, leaves, fills, what) -> None:
        """``fields``: (kind, order_id, side, price, qty, order_type, tif, ts)."""
        if status == R.ST_REJECTED and reason in self.skipped:
            assert len(fills) == 0
            return
        assert 0 <= book < len(self.refs), f"{what}: book {book} accepted"
        r = self.refs[book].apply(*fields)
        got = (status, reason, filled, leaves)
        want = (r.status, r.reason, r.filled, r.leaves)
        assert got == want, f"{what}: engine {got} != reference {want} for {fields}"
        got_fills = [(int(f["maker_id"]), int(f["taker_id"]), int(f["price"]), int(f["qty"]),
                      int(f["maker_leaves"]), int(f["taker_side"]), int(f["ts"]),
                      int(f["maker_ts"]), int(f["symbol"])) for f in fills]
        want_fills = [(f.maker_id, f.taker_id, f.price, f.qty, f.maker_leaves, f.taker_side,
                       f.ts, f.maker_ts, book) for f in r.fills]
        assert got_fills == want_fills, f"{what}: fills differ for {fields}"

    def check_book(self, eng, book) -> None:
        ref = self.refs[book]
        rows = eng.orders(eng.symbols[book]) if isinstance(eng, Engine) else eng.orders()
        want = [o.order_id for o in ref.resting()]
        assert rows["order_id"].to_list() == want, "resting orders differ from the reference"


def batch_results_match(eng, mirror, events, results, fills, what) -> None:
    k = 0
    for e, r in zip(events, results):
        n = int(r["n_fills"])
        fields = tuple(int(e[f]) for f in ("kind", "order_id", "side", "price", "qty",
                                            "order_type", "tif", "ts"))
        mirror.check(int(e["symbol"]), fields, int(r["status"]), int(r["reason"]),
                     int(r["filled"]), int(r["leaves"]), fills[k:k + n], what)
        k += n
    assert k == len(fills)


# ================================================================ hostile Python values
BAD = object()  # "this value is invalid for its field"

_NP_INTS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def _np_ints(values):
    """(numpy integer of every width that holds it, value)."""
    out = []
    for v in values:
        for t in _NP_INTS:
            info = np.iinfo(t)
            if info.min <= v <= info.max:
                out.append((t(v), v))
    return out


# invalid for every integer field (huge positive integers are valid for ``n``)
_GARBAGE = [True, False, np.True_, np.False_, None, "", "x" * 40, b"1", [1], (1,), {1: 1},
            float("nan"), float("inf"), float("-inf"), 1.5, np.float64("nan"), complex(1, 0),
            -(2**64), np.array([1]), np.int64(-(2**63)), object()]
_HUGE = [2**64, 10**30, np.uint64(2**64 - 1)]
_ENUMS = [Side.SELL, OrderType.MARKET, TimeInForce.FOK]  # enum members are not integers

SIDES_OK = ([(Side.BUY, 0), (Side.SELL, 1), ("buy", 0), ("SELL", 1), ("sell", 1), (0, 0), (1, 1)]
            + _np_ints([0, 1]))
SIDES_BAD = ([2, -1, 10**6, "Buy", "b", 1.0, np.float32(0.0), OrderType.MARKET, TimeInForce.IOC]
             + _GARBAGE + _HUGE)
TYPES_OK = ([(OrderType.LIMIT, R.LIMIT)] * 20 + [("limit", R.LIMIT)] * 4
            + [(OrderType.MARKET, R.MARKET), ("MARKET", R.MARKET), (0, 0), (1, 1)] + _np_ints([0, 1]))
TYPES_BAD = [2, -1, 0.0, Side.SELL, TimeInForce.GTC] + _GARBAGE + _HUGE
TIFS_OK = ([(TimeInForce.GTC, R.GTC)] * 30 + [("gtc", R.GTC)] * 4
           + [(TimeInForce.IOC, R.IOC), (TimeInForce.FOK, R.FOK), ("IOC", R.IOC), ("fok", R.FOK),
              (2, 2)] + _np_ints([0, 1, 2]))
TIFS_BAD = [3, -1, "gtd", 1.0, Side.SELL, OrderType.LIMIT] + _GARBAGE + _HUGE
QTY_BAD = ([0, -1, R.MAX_QTY + 1, 2**62, 2**63 - 1, 2**63, -(2**63), 5.0, np.float64(5.0), "5",
            Fraction(5), Decimal(5), np.int64(-5), np.int64(R.MAX_QTY + 1)] + _GARBAGE + _HUGE + _ENUMS)
ID_BAD = ([0, -1, EMPTY, 2**63, 2**64 + 1, 1.0, "1", np.int64(-1), np.uint64(2**63)]
          + _GARBAGE + _HUGE + _ENUMS)
N_BAD = [0, -1, 2.0, "3", np.int8(-1), np.uint8(0)] + _GARBAGE + _ENUMS
TS_BAD = ([-1, 2**63, -(2**63), 1.5, "1", np.int64(-1), np.uint64(2**63)]
          + [g for g in _GARBAGE if g is not None] + _HUGE + _ENUMS)  # None: the logical clock


def choose(ok, bad, bad_share, paired=False):
    """One draw: a ``(value, meaning)`` from ``ok``, or a ``(value, BAD)`` from ``bad`` with
    a probability of about ``bad_share`` (``paired``: ``bad`` holds tuples already)."""
    bad = list(bad) if paired else [(v, BAD) for v in bad]
    weight = max(1, round(len(bad) * (1 - bad_share) / (bad_share * len(ok))))
    return st.sampled_from(list(ok) * weight + bad)


def _near(k, form):
    units = MID + k * TICK
    return {"float": (units / SCALE, units, False),
            "fraction": (Fraction(units, SCALE), units, False),
            "decimal": (Decimal(units) / SCALE, units, False),
            "np64": (np.float64(units / SCALE), units, False)}[form]


_TOP = R.MAX_PRICE - R.MAX_PRICE % TICK
# (value, units for a limit order or BAD, valid for a market order)
PRICES_OK = ([_near(k, form) for k in range(-14, 15) for form in ("float", "float", "fraction",
                                                                   "decimal", "np64")]
             + [(99, 990_000, False), (100, MID, False), (np.int64(101), 1_010_000, False),
                (np.int32(100), MID, False), (np.uint16(99), 990_000, False),
                (np.float32(100.5), 1_005_000, False), (np.float16(100.5), 1_005_000, False),
                (5000.0, 50_000_000, False), (0.01, 100, False), (Fraction(_TOP, SCALE), _TOP, False)])
PRICES_BAD = [
    (0, BAD, True), (0.0, BAD, True), (None, BAD, True), (-100.0, BAD, False),
    (100.005, BAD, False), (100.001, BAD, False), (1e-9, BAD, False), (1e300, BAD, False),
    (2**44, BAD, False), (np.int64(2**62), BAD, False), (np.int64(-1), BAD, False),
    (np.uint64(2**64 - 1), BAD, False), (np.float64(1e300), BAD, False),
    (Fraction(_TOP + TICK, SCALE), BAD, False), (Fraction(1, 3), BAD, False),
    (Decimal("NaN"), BAD, False), (Decimal("Infinity"), BAD, False), (Decimal("sNaN"), BAD, False),
    (float("nan"), BAD, False), (float("inf"), BAD, False), (float("-inf"), BAD, False),
    (True, BAD, False), (False, BAD, False), (np.True_, BAD, False), ("100", BAD, False),
    ("x" * 100, BAD, False), (b"1", BAD, False), ([100], BAD, False), (complex(100, 0), BAD, False),
    (np.array([100.0]), BAD, False), (Side.SELL, BAD, False),
]
QTYS_OK = ([(q, q) for q in range(1, 41)] + _np_ints([1, 7, 100, 200, 30_000, 70_000])
           + [(R.MAX_QTY, R.MAX_QTY), (np.int64(R.MAX_QTY), R.MAX_QTY)])
IDS_OK = ([(i, i) for i in range(1, 21)] * 4 + _np_ints([3, 7, 12])
          + [(MAX_ID, MAX_ID), (2**62, 2**62), (np.uint64(2**63 - 1), MAX_ID),
             (AUTO_ID_END - 1, AUTO_ID_END - 1)])
NS_OK = ([(i, i) for i in range(1, 8)] + _np_ints([3]) + [(10**12, 10**12), (2**70, 2**70)]
         + [(h, int(h)) for h in _HUGE])
TSS_OK = [(None, 0), (0, 0), (1, 1), (17, 17), (np.int64(5), 5), (2**63 - 1, 2**63 - 1)]


def opt(strategy):
    """None (meaning "not given", valid where the argument is optional) or the
    strategy's (value, meaning)."""
    return st.one_of(st.just((None, None)),
                     strategy.map(lambda pair: (None, None) if pair[0] is None else pair))


SIDE_S, VWAP_SIDE_S = choose(SIDES_OK, SIDES_BAD, 0.05), choose(SIDES_OK, SIDES_BAD, 0.3)
TYPE_S, TIF_S = choose(TYPES_OK, TYPES_BAD, 0.03), choose(TIFS_OK, TIFS_BAD, 0.03)
QTY_S = choose(QTYS_OK, QTY_BAD, 0.06)
PRICE_S = choose(PRICES_OK, PRICES_BAD, 0.08, paired=True)
ID_S, N_S, TS_S = choose(IDS_OK, ID_BAD, 0.08), choose(NS_OK, N_BAD, 0.1), choose(TSS_OK, TS_BAD, 0.04)
OPT_QTY_S, OPT_PRICE_S, OPT_ID_S = opt(QTY_S), opt(PRICE_S), opt(ID_S)
LIVE = "live"  # meaning: the id of a resting order (the k-th), resolved when the call runs
TARGET_S = st.one_of(ID_S, st.integers(0, 50).map(lambda k: (k, LIVE)))
SYMBOL_S = choose([("AAA", 0), ("BBB", 1), (np.str_("AAA"), 0)],
                  ["ZZZ", "", "aaa", 0, None, b"A", True, np.int64(0), ["AAA"]], 0.05)
OPS = st.sampled_from(["submit"] * 8 + ["cancel"] * 2 + ["modify"] * 2 + [
    "execute", "levels", "depth", "vwap", "queue", "orders", "best", "stats"])


@st.composite
def python_programs(draw):
    multi = draw(st.booleans())
    names = ["AAA", "BBB"] if multi else ["SOLO"]
    ops = []
    for _ in range(draw(st.integers(1, 45))):
        op = draw(OPS)
        sym = draw(SYMBOL_S) if multi and op != "stats" else None
        if op == "submit":
            args = dict(side=draw(SIDE_S), price=draw(PRICE_S), qty=draw(QTY_S),
                        order_type=draw(TYPE_S), tif=draw(TIF_S), order_id=draw(OPT_ID_S),
                        ts=draw(TS_S))
        elif op == "cancel":
            args = dict(order_id=draw(TARGET_S), qty=draw(OPT_QTY_S))
        elif op == "modify":
            args = dict(order_id=draw(TARGET_S), price=draw(OPT_PRICE_S), qty=draw(OPT_QTY_S))
        elif op == "execute":
            args = dict(order_id=draw(TARGET_S), qty=draw(QTY_S))
        elif op == "levels":
            which = draw(st.sampled_from(["bids", "asks"]))
            args = dict(which=(which, which), n=draw(N_S))
        elif op == "depth":
            args = dict(n=draw(N_S))
        elif op == "vwap":
            args = dict(side=draw(VWAP_SIDE_S), n=draw(N_S))
        elif op == "queue":
            args = dict(order_id=draw(TARGET_S))
        else:
            args = {}
        ops.append((op, sym, args))
    return multi, names, ops


class PythonModel:
    """Drives one program on an OrderBook / Engine and the reference."""

    def __init__(self, multi, names):
        self.names = names
        self.eng = (Engine(symbols=names, tick_size=0.01, capacity=CAPACITY, price_levels=LEVELS)
                    if multi else OrderBook(names[0], tick_size=0.01, capacity=CAPACITY,
                                            price_levels=LEVELS))
        self.multi = multi
        self.mirror = Mirror(len(names))
        self.next_id = 1

    def call(self, method, sym, *args, **kwargs):
        fn = getattr(self.eng, method)
        return fn(sym, *args, **kwargs) if self.multi else fn(*args, **kwargs)

    def run(self, op, sym, args):
        if args.get("order_id", (None, None))[1] == LIVE:
            book = sym[1] if sym is not None and sym[1] is not BAD else 0
            live = sorted(self.mirror.refs[book].orders) or [1]
            oid = live[args["order_id"][0] % len(live)]
            args = {**args, "order_id": (oid, oid)}
        wrong = [name for name, pair in args.items()
                 if pair[1] is BAD and not (op == "submit" and name == "price")]
        book = 0
        if sym is not None:
            if sym[1] is BAD:
                wrong.append("symbol")
            else:
                book = sym[1]
        if op == "submit":
            order_type = args["order_type"][1]
            value, units, market_ok = args["price"]
            if order_type == R.MARKET:
                price_ok = market_ok
            else:
                price_ok = units is not BAD
            if order_type is not BAD and not price_ok:
                wrong.append("price")
            if args["order_id"][0] is None and not wrong and self.next_id >= AUTO_ID_END:
                wrong.append("order_id")  # automatic ids exhausted
        if op == "modify" and args["price"][0] is None and args["qty"][0] is None:
            wrong.append("modify")
        if op == "modify" and args["price"][0] is not None and args["price"][1] is BAD:
            wrong.append("price")
        values = {name: pair[0] for name, pair in args.items()}
        symbol = sym[0] if sym is not None else None
        before = snapshot(self.eng)
        events_before = int(self.eng.state.counters[book_state.EC_EVENTS])
        what = f"{op}({symbol!r}, {values!r})"
        try:
            result = self._invoke(op, symbol, values)
        except ValueError as exc:
            assert wrong, f"{what} raised {exc!r} for valid input"
            assert_unchanged(self.eng, before, what)
            if len(set(wrong)) == 1 and wrong[0] not in ("modify",):
                field = {"n": "n"}.get(wrong[0], wrong[0])
                assert field in str(exc), f"{what}: error {exc!r} does not name {field}"
            return
        except Exception as exc:  # noqa: BLE001 - the point: nothing but ValueError escapes
            raise AssertionError(f"{what} raised {type(exc).__name__}: {exc!r}") from exc
        assert not wrong, f"{what} accepted invalid {wrong} and returned {result!r}"
        self._compare(op, book, args, result, before, events_before, what)

    def _invoke(self, op, symbol, v):
        if op == "submit":
            kw = {k: v[k] for k in ("order_type", "tif")}
            if v["order_id"] is not None:
                kw["order_id"] = v["order_id"]
            if v["ts"] is not None:
                kw["ts"] = v["ts"]
            return self.call("submit", symbol, v["side"], v["price"], v["qty"], **kw)
        if op == "cancel":
            return self.call("cancel", symbol, v["order_id"], v["qty"])
        if op == "modify":
            return self.call("modify", symbol, v["order_id"], price=v["price"], qty=v["qty"])
        if op == "execute":
            return self.call("execute", symbol, v["order_id"], v["qty"])
        if op == "levels":
            return self.call("get_bids" if v["which"] == "bids" else "get_asks", symbol, v["n"])
        if op == "depth":
            return self.call("depth", symbol, v["n"])
        if op == "vwap":
            return self.call("vwap", symbol, v["side"], v["n"])
        if op == "queue":
            return self.call("queue_position", symbol, v["order_id"])
        if op == "orders":
            return self.call("orders", symbol)
        if op == "best":
            if self.multi:
                return (self.eng.best_bid(symbol), self.eng.best_ask(symbol),
                        self.eng.mid_price(symbol), self.eng.spread(symbol))
            return (self.eng.best_bid, self.eng.best_ask, self.eng.mid_price, self.eng.spread,
                    len(self.eng), repr(self.eng), self.eng._repr_html_())
        return self.eng.stats()

    def _compare(self, op, book, args, result, before, events_before, what):
        m = {name: pair[1] for name, pair in args.items()}
        stamp = events_before + 1  # ts 0: the engine stamps its logical clock
        if op == "submit":
            if args["order_id"][0] is None:
                oid = self.next_id
                self.next_id += 1
            else:
                oid = m["order_id"]
                if self.next_id <= oid < AUTO_ID_END:
                    self.next_id = oid + 1
            assert result.order_id == oid, f"{what}: order id {result.order_id}, expected {oid}"
            price = args["price"][1] if m["order_type"] == R.LIMIT else 0
            fields = (R.EV_ADD, oid, m["side"], price, m["qty"], m["order_type"], m["tif"],
                      m["ts"] or stamp)
        elif op == "cancel":
            fields = (R.EV_CANCEL, m["order_id"], 0, 0, m["qty"] or 0, 0, 0, stamp)
        elif op == "modify":
            price = 0 if args["price"][0] is None else args["price"][1]
            fields = (R.EV_MODIFY, m["order_id"], 0, price, m["qty"] or 0, 0, 0, stamp)
        elif op == "execute":
            fields = (R.EV_EXECUTE, m["order_id"], 0, 0, m["qty"], 0, 0, stamp)
        else:
            assert_unchanged(self.eng, before, what)  # queries change nothing
            self._compare_query(op, book, m, result, what)
            return
        self.mirror.check(book, fields, int(result.status), int(result.reason), result.filled,
                          result.leaves, result.fills, what)

    def _compare_query(self, op, book, m, result, what):
        ref = self.mirror.refs[book]
        if op == "levels":
            side = R.BUY if m["which"] == "bids" else R.SELL
            want = [(p / SCALE, q, c) for p, q, c in ref.levels(side)[:m["n"]]]
            assert result == want, f"{what}: {result} != {want}"
        elif op == "depth":
            rows = list(result.iter_rows())
            want = [(name, i + 1, p / SCALE, q, c) for side, name in ((R.BUY, "bid"), (R.SELL, "ask"))
                    for i, (p, q, c) in enumerate(ref.levels(side)[:m["n"]])]
            assert rows == want, f"{what}: {rows} != {want}"
        elif op == "vwap":
            levels = [(p / SCALE, q) for p, q, _ in ref.levels(m["side"])[:m["n"]]]
            total = sum(q for _, q in levels)
            want = sum(p * q for p, q in levels) / total if total else None
            assert result == want, f"{what}: {result} != {want}"
        elif op == "queue":
            o = ref.orders.get(m["order_id"])
            want = None
            if o is not None:
                queue = list(ref.queues[o.side][o.price])
                ahead = queue[:queue.index(o)]
                want = (sum(a.qty for a in ahead), len(ahead))
            assert result == want, f"{what}: {result} != {want}"
        elif op == "orders":
            assert result["order_id"].to_list() == [o.order_id for o in ref.resting()]
        elif op == "best":
            bid, ask = ref.best(R.BUY), ref.best(R.SELL)
            assert result[:2] == (None if bid is None else bid / SCALE, None if ask is None else ask / SCALE)
        else:
            assert result["live_orders"] == sum(len(r.orders) for r in self.mirror.refs)


# ===================================================================== structured events
EV_KINDS = [R.EV_ADD] * 6 + [R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE, R.EV_MODIFY, R.EV_MODIFY,
                             R.EV_EXECUTE_HIDDEN, R.EV_CROSS, R.EV_HALT,
                             R.EV_REST, R.EV_REST, R.EV_MOVE, R.EV_CLEAR]
ID_EDGES = [0, -1, EMPTY, EMPTY + 1, MAX_ID, 2**62, -(2**62)]
PRICE_EDGES = [0, -TICK, 1, MID + 37, TICK, R.MAX_PRICE, R.MAX_PRICE + 1,
               R.MAX_PRICE - R.MAX_PRICE % TICK, 2**63 - 1, EMPTY]
QTY_EDGES = [0, -1, R.MAX_QTY, R.MAX_QTY + 1, 2**62, 2**63 - 1, EMPTY]
INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT8 = st.integers(-128, 127)
# per field: the edge values to try and the whole range of the field's dtype
HOSTILE = {
    "ts": ([0, -1, 2**63 - 1, EMPTY], INT64),
    "order_id": (ID_EDGES, INT64),
    "price": (PRICE_EDGES, INT64),
    "qty": (QTY_EDGES, INT64),
    "symbol": ([-1, 2**31 - 1, -(2**31)], INT32),  # (and n_books, added per array)
    "kind": ([0, 12, -1, 127, -128], INT8),
    "side": ([2, -1, 127, -128], INT8),
    "order_type": ([2, -1, -128], INT8),
    "tif": ([3, -1, 127], INT8),
}
FIELDS = list(R.EVENT.names)
KIND_S = st.sampled_from(EV_KINDS)
SIDE_EV_S = st.sampled_from([R.BUY, R.SELL])
TYPE_EV_S = st.sampled_from([R.LIMIT] * 5 + [R.MARKET])
TIF_EV_S = st.sampled_from([R.GTC] * 4 + [R.IOC, R.FOK])
HOSTILE_FIELDS_S = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)


@st.composite
def event_arrays(draw, n_books=1, max_size=50):
    """EVENT records: most rows well formed (so books build up and orders match), one in
    three with one to three fields set to an edge value or anything their dtype holds."""
    n = draw(st.integers(0, max_size))
    events = np.zeros(n, dtype=R.EVENT)
    for i in range(n):
        kind = draw(KIND_S)
        row = {"ts": draw(st.integers(1, 1000)), "order_id": draw(st.integers(1, 14)),
               "price": MID + TICK * draw(st.integers(-10, 10)), "qty": draw(st.integers(1, 40)),
               "symbol": draw(st.integers(0, n_books - 1)), "kind": kind,
               "side": draw(SIDE_EV_S), "order_type": draw(TYPE_EV_S), "tif": draw(TIF_EV_S)}
        if kind == R.EV_CANCEL:
            row["qty"] = draw(st.integers(0, 30))       # 0: the whole order
        elif kind in (R.EV_MODIFY, R.EV_MOVE):
            row["price"] = draw(st.sampled_from([0, row["price"]]))  # 0: keep the price
            row["qty"] = draw(st.integers(0, 40))       # 0: keep the quantity
        elif kind == R.EV_HALT:
            row["price"] = draw(st.sampled_from([-1, 0, 1]))
        if draw(st.integers(0, 2)) == 0:
            for field in draw(HOSTILE_FIELDS_S):
                edges, anything = HOSTILE[field]
                if field == "symbol":
                    edges = edges + [n_books]
                row[field] = draw(st.one_of(st.sampled_from(edges), anything))
        events[i] = tuple(row[f] for f in FIELDS)
    return events


@st.composite
def batch_programs(draw):
    n_books = draw(st.sampled_from([1, 1, 2]))
    anonymous = draw(st.integers(0, 4)) == 0
    batches = draw(st.lists(event_arrays(n_books=n_books), min_size=1, max_size=4))
    return n_books, anonymous, batches


def new_engine(n_books, anonymous=False):
    names = [f"S{i}" for i in range(n_books)]
    if n_books == 1 and not anonymous:
        return OrderBook(names[0], tick_size=0.01, capacity=CAPACITY, price_levels=LEVELS), names
    return Engine(symbols=names, tick_size=0.01, capacity=CAPACITY, price_levels=LEVELS,
                  anonymous_fallback=anonymous), names


# ======================================================================== the properties
def fuzz_python_calls(program):
    multi, names, ops = program
    model = PythonModel(multi, names)
    for op, sym, args in ops:
        model.run(op, sym, args)
    check_invariants(model.eng)
    for book in range(len(names)):
        model.mirror.check_book(model.eng, book)
    check_queues_and_drain(model.eng, names)


def fuzz_event_batches(program):
    n_books, anonymous, batches = program
    eng, names = new_engine(n_books, anonymous)
    mirror = None if anonymous else Mirror(n_books)  # the reference has no anonymous volume
    for events in batches:
        out = eng.submit_many(events)
        assert len(out.results) == len(events)
        assert out.results["n_fills"].sum() == len(out.fills)
        bad_rows = ((events["order_id"] == EMPTY) | (events["symbol"] < 0)
                    | (events["symbol"] >= n_books))
        assert (out.results["status"][bad_rows] == R.ST_REJECTED).all()
        if mirror is not None:
            batch_results_match(eng, mirror, events, out.results, out.fills, "submit_many")
        check_invariants(eng)
    if mirror is not None:
        for book in range(n_books):
            mirror.check_book(eng, book)
    check_queues_and_drain(eng, names)


def _buffer(kind, n, dtype, eng, events, tmpdir, min_len):
    """A caller buffer of ``kind`` and whether ``apply`` must take it (the contract: a
    writeable 1-d C-contiguous array of ``dtype``, at least ``min_len`` long, sharing no
    memory with the events or the engine's state)."""
    buf, ok = _make_buffer(kind, n, dtype, eng, events, tmpdir)
    return buf, ok and len(buf) >= min_len


def _make_buffer(kind, n, dtype, eng, events, tmpdir):
    if kind == "ok":
        return np.zeros(n, dtype), True
    if kind == "wrong_dtype":
        return np.zeros(n, R.ORDER if dtype != R.ORDER else R.FILL), False
    if kind == "plain_ints":
        return np.zeros(n, np.int64), False
    if kind == "two_d":
        return np.zeros((n, 2), dtype), False
    if kind == "strided":
        a = np.zeros(2 * n, dtype)[::2]
        return a, a.flags.c_contiguous  # one element is contiguous whatever its stride
    if kind == "read_only":
        a = np.zeros(n, dtype)
        a.flags.writeable = False
        return a, False
    if kind == "bytes":
        return np.frombuffer(bytes(dtype.itemsize * n), dtype=dtype), False
    if kind == "memmap_ro":
        path = os.path.join(tmpdir, f"buf{secrets.token_hex(4)}")
        np.zeros(max(n, 1), dtype).tofile(path)
        return np.memmap(path, dtype=dtype, mode="r"), False
    if kind == "too_small":
        return np.zeros(0, dtype), True
    if kind == "over_state":
        raw = eng.state.levels.view(np.uint8)
        k = min(n, len(raw) // dtype.itemsize)
        return raw[:k * dtype.itemsize].view(dtype), k == 0  # empty: shares nothing
    if kind == "over_events":
        raw = events.view(np.uint8)
        k = len(raw) // dtype.itemsize
        return raw[:k * dtype.itemsize].view(dtype), k == 0
    if kind == "not_array":
        return [0] * n, False
    raise AssertionError(kind)


BUFFER_KINDS = ["ok"] * 8 + ["wrong_dtype", "plain_ints", "two_d", "strided", "read_only", "bytes",
                             "memmap_ro", "too_small", "over_state", "over_events", "not_array"]


@st.composite
def apply_programs(draw):
    n_books = draw(st.sampled_from([1, 2]))
    # a book to match against: plain resting orders, then random records
    rows = draw(st.lists(st.tuples(st.sampled_from([R.BUY, R.SELL]), st.integers(1, 4),
                                   st.integers(1, 20), st.integers(0, n_books - 1)), max_size=25))
    plain = np.zeros(len(rows), R.EVENT)
    for i, (side, k, qty, book) in enumerate(rows):
        price = MID - k * TICK if side == R.BUY else MID + k * TICK
        plain[i] = (i + 1, 1000 + i, price, qty, book, R.EV_ADD, side, R.LIMIT, R.GTC)
    warm = np.concatenate([plain, draw(event_arrays(n_books=n_books, max_size=20))])
    events = draw(event_arrays(n_books=n_books, max_size=40))
    fills_kind = draw(st.sampled_from(["ok"] * 10 + BUFFER_KINDS))
    results_kind = draw(st.sampled_from(["none"] + ["ok"] * 10 + BUFFER_KINDS))
    fills_n = draw(st.one_of(st.integers(1, 3), st.integers(1, 80)))
    results_extra = draw(st.sampled_from([0, 0, 3, -1]))
    start = draw(st.one_of(st.just(("0", 0)), st.sampled_from(
        [("1", 1), ("-1", -1), ("len+1", None), ("True", True), ("1.0", 1.0), ("np", np.int64(0)),
         ("None", None)])))
    return n_books, warm, events, fills_kind, fills_n, results_kind, results_extra, start


def fuzz_apply_buffers(program, tmpdir):
    n_books, warm, events, fills_kind, fills_n, results_kind, results_extra, (start_name, start) \
        = program
    eng, names = new_engine(n_books)
    mirror = Mirror(n_books)
    out = eng.submit_many(warm)
    batch_results_match(eng, mirror, warm, out.results, out.fills, "submit_many (warm-up)")
    n = len(events)
    fills, fills_ok = _buffer(fills_kind, fills_n, R.FILL, eng, events, tmpdir, 1)
    if results_kind == "none":
        results, results_ok = None, True
    else:
        results, results_ok = _buffer(results_kind, max(0, n + results_extra), R.RESULT, eng,
                                      events, tmpdir, n)
    if start_name == "len+1":
        start = n + 1
    start_ok = start_name in ("0", "np") or (start_name == "1" and n >= 1)
    valid = fills_ok and results_ok and start_ok
    before = snapshot(eng)
    what = f"apply(fills={fills_kind}[{fills_n}], results={results_kind}, start={start_name})"
    try:
        nxt, nf = eng.apply(events, fills, results, start)
    except ValueError as exc:
        assert not valid or "too few" in str(exc), f"{what} refused valid buffers: {exc!r}"
        assert_unchanged(eng, before, what)
        check_queues_and_drain(eng, names)
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc!r}") from exc
    assert valid, f"{what} accepted invalid buffers"
    begin = int(start)
    got_fills = [fills[:nf].copy()]
    while nxt < n:  # drain and continue, as the docstring says; on "too few" finish in a batch
        try:
            nxt2, nf = eng.apply(events, fills, results, nxt)
        except ValueError as exc:
            assert "too few" in str(exc)
            rest = eng.submit_many(events[nxt:])
            if results is not None:
                results[nxt:n] = rest.results
            got_fills.append(rest.fills)
            break
        got_fills.append(fills[:nf].copy())
        nxt = nxt2
    if results is not None:
        batch_results_match(eng, mirror, events[begin:], results[begin:n],
                            np.concatenate(got_fills), what)
        for book in range(n_books):
            mirror.check_book(eng, book)
    check_queues_and_drain(eng, names)


# ============================================================ the child process (worker)
def worker(examples: int, seed: int, last_file: str | None, shrink: bool = False) -> None:
    if os.environ.get("WORKBENCH_FUZZ_SELFTEST_CRASH"):
        import ctypes
        ctypes.string_at(0)  # a real segfault: the parent must report it with the seed
    from kernels.jit import SAFE_MODE
    assert SAFE_MODE, "the fuzz runs the bounds-checked build (module docstring)"

    def remember(label, example):
        if last_file:
            with open(last_file, "w") as fh:
                fh.write(f"{label}: {example!r}\n")

    # No shrinking by default: the failing example is printed as drawn (and the seed
    # replays it); ``--shrink`` asks hypothesis for a minimal one (can take minutes).
    phases = list(Phase) if shrink else [p for p in Phase if p not in (Phase.shrink, Phase.explain)]
    common = settings(max_examples=examples, deadline=None, database=None, phases=phases,
                      suppress_health_check=list(HealthCheck), print_blob=True)

    @hypothesis_seed(seed)
    @common
    @given(python_programs())
    def python_calls(program):
        remember("fuzz_python_calls", program)
        fuzz_python_calls(program)

    @hypothesis_seed(seed)
    @common
    @given(batch_programs())
    def event_batches(program):
        remember("fuzz_event_batches", program)
        fuzz_event_batches(program)

    with tempfile.TemporaryDirectory() as tmpdir:
        @hypothesis_seed(seed)
        @common
        @given(apply_programs())
        def apply_buffers(program):
            remember("fuzz_apply_buffers", program)
            fuzz_apply_buffers(program, tmpdir)

        for prop in (python_calls, event_batches, apply_buffers):
            prop()
    print(f"fuzz ok: {examples} examples per property, seed {seed}")


def run_child(examples: int, seed: int, extra_env: dict | None = None,
              timeout: float | None = 1800, shrink: bool = False):
    """Run the worker in a fresh process; returns (ok, report)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SAFE", "WORKBENCH_MODE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory() as tmp:
        last = os.path.join(tmp, "last_example.txt")
        proc = subprocess.run(
            [sys.executable, "-m", "tests.test_fuzz_engine", "--examples", str(examples),
             "--seed", str(seed), "--last-file", last] + (["--shrink"] if shrink else []),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        last_example = Path(last).read_text()[-4000:] if os.path.exists(last) else "(none)"
    if proc.returncode == 0 and "fuzz ok" in proc.stdout:
        return True, proc.stdout
    rerun = f"python -m tests.test_fuzz_engine --examples {examples} --seed {seed}"
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        head = f"the fuzz child CRASHED ({name}) with seed {seed}; reproduce: {rerun}"
    else:
        head = f"the fuzz child failed (exit {proc.returncode}) with seed {seed}; reproduce: {rerun}"
    errors = [line for line in proc.stderr.splitlines()
              if line[:1].isalpha() and ("Error" in line.split(":")[0] or line.startswith("Fatal"))]
    return False, (f"{head}\n{chr(10).join(errors[-3:])[:3000]}\nlast example: {last_example}"
                   f"\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")


# ========================================================================== the tests
def test_fuzz_engine_entry_points_in_a_subprocess():
    examples = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
    seed = int(os.environ.get("WORKBENCH_FUZZ_SEED") or secrets.randbelow(2**32))
    ok, report = run_child(examples, seed)
    assert ok, report


def test_a_crash_in_the_child_fails_with_its_seed():
    ok, report = run_child(1, 1234, {"WORKBENCH_FUZZ_SELFTEST_CRASH": "1"}, timeout=120)
    assert not ok
    assert "CRASHED (SIGSEGV)" in report and "--seed 1234" in report


def test_checker_catches_corruption():
    """The invariant checker is not vacuous: each kind of damage is reported."""
    def fresh():
        book = OrderBook("C", tick_size=0.01, capacity=CAPACITY, price_levels=LEVELS)
        for i, (side, price) in enumerate([("buy", 99.0), ("buy", 99.0), ("sell", 101.0)], 1):
            book.submit(side, price, 10, order_id=i)
        check_invariants(book)
        return book

    def occupied(s, count=1):
        return np.flatnonzero(s.levels["count"] == count)[0]

    def level_qty(s):
        s.levels["qty"][occupied(s)] += 5

    def index_entry(s):
        pos = np.flatnonzero(s.index_keys != EMPTY)[0]
        s.index_keys[pos], s.index_slots[pos] = EMPTY, -1

    def best(s):
        s.books["best"][0, R.BUY] -= 1

    def free_list(s):
        s.counters[book_state.EC_FREE_HEAD] = s.levels["head"][occupied(s)]

    def live_count(s):
        s.counters[book_state.EC_LIVE] += 1

    def bitmap(s):
        s.bits[0] ^= np.uint64(1)

    def fifo(s):
        s.pool["prev"][s.levels["tail"][occupied(s, 2)]] = -1

    damage = {"level qty": level_qty, "index": index_entry, "best": best, "free list": free_list,
              "live count": live_count, "bitmap": bitmap, "fifo": fifo}
    for name, hurt in damage.items():
        book = fresh()
        hurt(book.state)
        try:
            check_invariants(book)
        except AssertionError:
            continue
        raise AssertionError(f"the checker missed damage to the {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                        help="hypothesis examples per property")
    parser.add_argument("--seed", type=int, default=None, help="random when omitted")
    parser.add_argument("--shrink", action="store_true",
                        help="shrink a failing example (slow); the seed replays it either way")
    parser.add_argument("--last-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seed = secrets.randbelow(2**32) if args.seed is None else args.seed
    if args.last_file is None:
        # from the shell: run in a child too, so a crash is reported with its seed
        ok, report = run_child(args.examples, seed, timeout=None, shrink=args.shrink)
        print(report)
        return 0 if ok else 1
    worker(args.examples, seed, args.last_file, args.shrink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
