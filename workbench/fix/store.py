"""The FIX acceptor's durable state, kept in its engine's journal.

What a restarted acceptor needs, and where it comes from:

* per counterparty (its SenderCompID and our CompID): the session day, both sequence
  numbers, and the application messages we sent (to answer a ResendRequest with the
  very bytes that went out, as possible duplicates; session-level messages are gap
  filled, as FIX says, so only their sequence numbers are kept);
* per resting order: who owns it (the counterparty, not the connection), its
  ClOrdID, symbol, side, quantities, price and the notional of its fills, so the
  owner - and nobody else - can still cancel or replace it;
* the ClOrdIDs each counterparty used (PossResend duplicates are ignored) and the
  next ExecID.

Everything is written as *entries* into the engine's journal
(``workbench.journal.Journal.append``: ``JR_APP`` records in the same sequence as the
engine's commands, which replay skips). An entry is one head record (code
``APP_FIX_HEAD``: entry type, session id, two integers, payload length) followed by
``ceil(length / 36)`` data records (code ``APP_FIX_DATA``: 36 payload bytes each, in
the record's ``ts``, ``order_id``, ``price``, ``qty`` (int64) and ``symbol`` (int32)).

**Transactions.** The acceptor handles one batch of received bytes (or one timer tick,
or one logon) as a transaction: the engine commands it causes, then the entries for
the messages it sent and the orders it changed, then one ``E_COMMIT`` entry with every
touched session's sequence numbers. Nothing of a transaction goes out on a socket
before its commit record is durable (``durability`` "every" or "batch"; with "none"
it goes out at once). So after a crash, the records after the last commit belong to
a transaction nobody was told about: recovery cuts them off
(``workbench.journal.recover(..., keep_until=last_commit)``), engine commands
included, and the counterparty's next Logon finds our inbound sequence number where
the last acknowledged message left it; it resends the rest (a ResendRequest from us),
and they are processed as if for the first time. Exactly once, from the client's side.

**Snapshots.** ``FixState`` (the whole of it) goes into the engine's snapshot
(``Image.extra["fix"]``) taken at a commit, so pruning the journal segments the
snapshot covers loses nothing; recovery starts from the snapshot's ``FixState`` and
replays the entries after it.
"""
from __future__ import annotations

import collections
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from kernels import records as R
from workbench.fix.session import ADMIN_TYPES, SessionState

__all__ = ["APP_FIX_HEAD", "APP_FIX_DATA", "FixJournal", "FixOrder", "FixState", "read_state",
           "remember"]

APP_FIX_HEAD = 16     # JR_APP codes of the FIX acceptor (0..127: the application's own)
APP_FIX_DATA = 17

E_SESSION = 1   # sid, x=day; payload: SenderCompID \x01 TargetCompID (a new session day)
E_SENT = 2      # sid, x=MsgSeqNum, y=MsgType byte; payload: the message (empty: admin)
E_RESET = 3     # sid: ResetSeqNumFlag, both sides back to 1
E_ORDER = 4     # sid=owner, x=engine order id; payload: the order (empty: forgotten)
E_SEEN = 5      # sid=owner; payload: a ClOrdID
E_COMMIT = 6    # x=next ExecID; payload: (sid, next_out, expected_in) per touched session

_CHUNK = 36
_PAYLOAD = np.dtype([("a", "<i8"), ("b", "<i8"), ("c", "<i8"), ("d", "<i8"), ("e", "<i4")])
assert _PAYLOAD.itemsize == _CHUNK
_ORDER = struct.Struct("<qqddbbH")     # qty, cum_qty, price (NaN: none), notional, side, type, len(symbol)
_COMMIT = struct.Struct("<qqq")
_ADMIN = {t.encode() for t in ADMIN_TYPES}


def _admin_placeholder(msg_type: bytes) -> bytes:
    """What a session-level message we sent is kept as: its type only (a ResendRequest
    gap-fills it; ``FixSession._stored_type`` reads the type from these bytes)."""
    return b"\x0135=" + msg_type + b"\x01"


def _msg_type(raw: bytes) -> bytes:
    at = raw.find(b"\x0135=") + 4
    return raw[at:raw.find(b"\x01", at)] if at >= 4 else b""


@dataclass
class FixOrder:
    """A resting order as the acceptor knows it (``EngineApplication`` keeps these)."""

    owner: tuple
    cl_ord_id: str
    symbol: str
    side: int
    qty: int
    price: float | None
    order_type: int
    cum_qty: int = 0
    notional: float = 0.0


@dataclass
class FixState:
    """Everything a restarted acceptor restores (see the module docstring)."""

    sessions: dict[tuple, SessionState] = field(default_factory=dict)  # identity -> state
    sids: dict[tuple, int] = field(default_factory=dict)               # identity -> session id
    orders: dict[int, FixOrder] = field(default_factory=dict)          # engine order id -> order
    seen: dict[tuple, collections.OrderedDict] = field(default_factory=dict)  # owner -> ClOrdIDs
    next_exec_id: int = 1
    last_commit: int = 0     # journal sequence number of the last commit applied

    # ----------------------------------------------------------------- JSON (snapshots)
    def to_json(self) -> dict:
        sessions = []
        for identity, state in self.sessions.items():
            sessions.append({
                "sid": self.sids[identity], "sender": identity[0], "target": identity[1],
                "day": state.day, "next_out": state.next_out, "expected_in": state.expected_in,
                "sent": [[seq, raw.decode("latin-1")] for seq, raw in state.sent.items()]})
        orders = [[oid, self.sids[o.owner], o.cl_ord_id, o.symbol, o.side, o.qty,
                   o.price, o.order_type, o.cum_qty, o.notional.hex()]
                  for oid, o in self.orders.items()]
        seen = [[self.sids[owner], list(ids)] for owner, ids in self.seen.items()]
        return {"version": 1, "sessions": sessions, "orders": orders, "seen": seen,
                "next_exec_id": self.next_exec_id, "last_commit": self.last_commit}

    @classmethod
    def from_json(cls, data: dict, max_stored: int) -> "FixState":
        if data.get("version") != 1:
            raise ValueError(f"FIX state version {data.get('version')!r} (this acceptor reads 1)")
        out = cls(next_exec_id=int(data["next_exec_id"]), last_commit=int(data["last_commit"]))
        by_sid = {}
        for s in data["sessions"]:
            identity = (s["sender"], s["target"])
            state = SessionState(day=int(s["day"]), next_out=int(s["next_out"]),
                                 expected_in=int(s["expected_in"]), max_stored=max_stored)
            state.sent = {int(seq): raw.encode("latin-1") for seq, raw in s["sent"]}
            out.sessions[identity] = state
            out.sids[identity] = int(s["sid"])
            by_sid[int(s["sid"])] = identity
        for oid, sid, cl, symbol, side, qty, price, otype, cum, notional in data["orders"]:
            out.orders[int(oid)] = FixOrder(by_sid[sid], cl, symbol, int(side), int(qty),
                                            price, int(otype), int(cum), float.fromhex(notional))
        for sid, ids in data["seen"]:
            out.seen[by_sid[sid]] = collections.OrderedDict.fromkeys(ids)
        return out


# --------------------------------------------------------------------------- writing
class FixJournal:
    """Writes the acceptor's entries into ``journal`` (a ``workbench.journal.Journal``)
    and tracks the open transaction (see the module docstring)."""

    def __init__(self, journal, sids: dict[tuple, int] | None = None):
        self.journal = journal
        self.sids: dict[tuple, int] = dict(sids or {})
        self._touched: dict[int, SessionState] = {}
        self._committed: dict[int, tuple[int, int]] = {}
        self._written = False       # entries since the last commit
        self.last_commit = 0

    def _entry(self, etype: int, sid: int, x: int = 0, y: int = 0, payload: bytes = b"") -> None:
        append = self.journal.append
        append(APP_FIX_HEAD, etype, sid, x, y, len(payload), wait=False)
        if payload:
            n = -(-len(payload) // _CHUNK)
            chunks = np.frombuffer(payload.ljust(n * _CHUNK, b"\0"), dtype=_PAYLOAD)
            for a, b, c, d, e in chunks.tolist():
                append(APP_FIX_DATA, a, b, c, d, e, wait=False)
        self._written = True

    # -------------------------------------------------------------- session state
    def attach(self, identity: tuple, state: SessionState) -> None:
        """``state`` is now ``identity``'s session (a new one, or a new session day):
        its changes are journaled from here on."""
        sid = self.sids.get(identity)
        if sid is None:
            sid = self.sids[identity] = len(self.sids) + 1
        state.journal, state.sid = self, sid
        self._entry(E_SESSION, sid, state.day, 0,
                    f"{identity[0]}\x01{identity[1]}".encode("utf-8"))
        self._touched[sid] = state

    def adopt(self, identity: tuple, state: SessionState) -> None:
        """``state`` (restored from the journal) is journaled from here on."""
        state.journal, state.sid = self, self.sids[identity]

    def sent(self, state: SessionState, seq: int, raw: bytes) -> None:
        """We sent ``raw`` with MsgSeqNum ``seq`` (application messages in full)."""
        kind = _msg_type(raw)
        self._entry(E_SENT, state.sid, seq, kind[0] if len(kind) == 1 else 0,
                    b"" if kind in _ADMIN else raw)
        self._touched[state.sid] = state

    def reset(self, state: SessionState) -> None:
        self._entry(E_RESET, state.sid)
        self._touched[state.sid] = state

    def touch(self, state: SessionState) -> None:
        """``state``'s sequence numbers may have moved (a received message)."""
        if getattr(state, "journal", None) is self:
            self._touched[state.sid] = state

    # ----------------------------------------------------------------- application
    def order(self, order_id: int, order: FixOrder | None) -> None:
        """An order's new state (None: filled, cancelled or rejected: forgotten)."""
        if order is None:
            self._entry(E_ORDER, 0, order_id)
            return
        symbol = order.symbol.encode("utf-8")
        price = math.nan if order.price is None else float(order.price)
        payload = (_ORDER.pack(order.qty, order.cum_qty, price, order.notional, order.side,
                               order.order_type, len(symbol))
                   + symbol + order.cl_ord_id.encode("utf-8"))
        self._entry(E_ORDER, self.sids[order.owner], order_id, 0, payload)

    def seen(self, owner: tuple, cl_ord_id: str) -> None:
        self._entry(E_SEEN, self.sids[owner], 0, 0, cl_ord_id.encode("utf-8"))

    # ----------------------------------------------------------------------- commit
    def commit(self, next_exec_id: int, force: bool = False) -> int | None:
        """Close the transaction: one commit entry with the touched sessions' sequence
        numbers (those that moved). Returns its journal sequence number, or None when
        the transaction changed nothing."""
        rows = []
        for sid, state in self._touched.items():
            now = (state.next_out, state.expected_in)
            if self._committed.get(sid) != now:
                rows.append(_COMMIT.pack(sid, *now))
                self._committed[sid] = now
        self._touched.clear()
        if not rows and not self._written and not force:
            return None
        self._entry(E_COMMIT, 0, next_exec_id, 0, b"".join(rows))
        self._written = False
        self.last_commit = self.journal.last_seq
        return self.last_commit

    def committed(self, identity: tuple, state: SessionState) -> None:
        """Record ``state``'s sequence numbers as committed (after a restore)."""
        self._committed[self.sids[identity]] = (state.next_out, state.expected_in)


# --------------------------------------------------------------------------- reading
def _entries(recs: np.ndarray):
    """(seq of the entry's last record, etype, sid, x, y, payload) for the FIX entries of
    ``recs`` (JR_APP records with the FIX codes, in order). Entries cut short at the end
    of the records are dropped (they are after the last commit anyway)."""
    heads_mask = recs["kind"] == APP_FIX_HEAD
    data_mask = recs["kind"] == APP_FIX_DATA
    data = recs[data_mask]
    packed = np.empty(len(data), dtype=_PAYLOAD)
    for name, src in (("a", "ts"), ("b", "order_id"), ("c", "price"), ("d", "qty"),
                      ("e", "symbol")):
        packed[name] = data[src]
    blob = packed.tobytes()
    # the data records before each head, to find where its payload starts
    before = np.cumsum(data_mask)[heads_mask] if len(recs) else np.zeros(0, np.int64)
    heads = recs[heads_mask]
    for h, start in zip(heads.tolist(), before.tolist()):
        seq, etype, sid, x, y, n = h[0], h[2], h[3], h[4], h[5], h[6]
        need = -(-n // _CHUNK)
        if start + need > len(data):
            return
        if need:
            seq = int(data["seq"][start + need - 1])
        yield seq, etype, sid, x, y, blob[start * _CHUNK:start * _CHUNK + n]


def read_state(records, base: FixState | None, max_stored: int) -> FixState:
    """The ``FixState`` after ``records`` (``JOURNAL_RECORD`` arrays in order, from the
    snapshot ``base`` on): entries are applied a transaction at a time, at its commit;
    whatever follows the last commit is left out (``state.last_commit`` says where)."""
    state = base if base is not None else FixState()
    by_sid = {sid: identity for identity, sid in state.sids.items()}
    fields = ["seq", "kind", "ts", "order_id", "price", "qty", "symbol"]
    parts = []
    for recs in records:
        app = recs[(recs["rtype"] == R.JR_APP)
                   & ((recs["kind"] == APP_FIX_HEAD) | (recs["kind"] == APP_FIX_DATA))]
        if len(app):
            flat = np.empty(len(app), dtype=[(f, "<i8") for f in fields])
            for f in fields:
                flat[f] = app[f]
            parts.append(flat)
    if not parts:
        return state
    pending: list = []
    for entry in _entries(np.concatenate(parts)):
        if entry[1] != E_COMMIT:
            pending.append(entry)
            continue
        for seq, etype, sid, x, y, payload in pending:
            _apply(state, by_sid, etype, sid, x, y, payload, max_stored)
        seq, _, _, next_exec, _, payload = entry
        for k in range(0, len(payload), _COMMIT.size):
            sid, next_out, expected_in = _COMMIT.unpack_from(payload, k)
            session = state.sessions[by_sid[sid]]
            session.next_out, session.expected_in = next_out, expected_in
        state.next_exec_id = next_exec
        state.last_commit = seq
        pending = []
    return state


def _apply(state: FixState, by_sid: dict, etype, sid, x, y, payload: bytes, max_stored: int):
    if etype == E_SESSION:
        sender, _, target = payload.decode("utf-8").partition("\x01")
        identity = (sender, target)
        state.sids[identity] = sid
        by_sid[sid] = identity
        state.sessions[identity] = SessionState(day=x, max_stored=max_stored)
    elif etype == E_SENT:
        raw = payload if payload else _admin_placeholder(bytes([y]) if y else b"")
        state.sessions[by_sid[sid]].restore_sent(x, raw)
    elif etype == E_RESET:
        session = state.sessions[by_sid[sid]]
        session.next_out = session.expected_in = 1
        session.sent.clear()
    elif etype == E_ORDER:
        if not payload:
            state.orders.pop(x, None)
            return
        qty, cum, price, notional, side, otype, n = _ORDER.unpack_from(payload)
        rest = payload[_ORDER.size:]
        state.orders[x] = FixOrder(by_sid[sid], rest[n:].decode("utf-8"),
                                   rest[:n].decode("utf-8"), side, qty,
                                   None if math.isnan(price) else price, otype, cum, notional)
    elif etype == E_SEEN:
        remember(state.seen.setdefault(by_sid[sid], collections.OrderedDict()),
                 payload.decode("utf-8"), max_stored)


def remember(seen: collections.OrderedDict, cl_ord_id: str, limit: int) -> bool:
    """Remember ``cl_ord_id`` among the last ``limit`` ClOrdIDs of one owner; was it
    there already? (``EngineApplication`` and the replay share this one rule.)"""
    if cl_ord_id in seen:
        seen.move_to_end(cl_ord_id)
        return True
    seen[cl_ord_id] = None
    if len(seen) > limit:
        seen.popitem(last=False)
    return False
