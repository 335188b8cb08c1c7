"""Order gateways: blocking, threaded, asyncio and pooled FIX initiators, and what each costs.

The client side of the project's ``FixAcceptor``: ways of getting NewOrderSingles to it and
their ExecutionReports back, each measured the same way (``compare_gateways``).

* ``BlockingSession``: one socket, one order at a time: send it, wait for its reports.
  Every order pays a full round trip, and nothing else happens meanwhile.
* ``ThreadedGateway``: N worker threads, each with its own session, taking orders from one
  queue: N orders in flight. A thread waiting in ``recv`` releases the GIL, so threads
  overlap their waiting even though only one runs Python at a time.
* ``AsyncGateway``: asyncio streams, many orders in flight over one (or a few) sessions,
  bounded by a ``window``; one reader task per session matches reports to orders by
  ClOrdID. No thread per order: one event loop multiplexes them.
* ``SessionPool``: k persistent, logged-on sessions shared by any number of caller threads,
  against ``send_per_request``: connect, log on, send, log out for every order (a TCP
  handshake and a Logon round trip paid each time, and the fills of an order that rests
  after its session logged out never reach the client).

``LocalAcceptor`` runs the acceptor (``FixAcceptor`` into an ``Engine``) in a child process on
a free localhost port - a venue with its own interpreter and GIL, as a real one would be -
and counts its logons. ``order_flow`` builds a reproducible stream of orders;
``compare_gateways`` runs a mode per gateway and returns a polars frame: orders/s and
latency percentiles in microseconds.

**When an order is answered.** The acceptor sends all the reports an order causes at once.
A gateway waits for the report of the order's ClOrdID whose OrdStatus is final for the
request: New (it rests untouched), Filled, Canceled (an IOC's unfilled rest) or Rejected.
A limit order that trades *and* rests has no such report (its last one says partially
filled, and more fills may follow at any time): send crossing orders as IOC, as
``order_flow`` does, or the gateway times out naming the order. Reports for other ClOrdIDs
(fills of our resting orders caused by someone else) are collected in ``unsolicited``.

**Bounds.** Every network operation has a deadline (``timeout``, seconds): connect, logon,
each order's round trip, logout; a peer that never answers or trickles bytes raises
``GatewayTimeout`` naming the peer and the operation. Reads take at most 64 KiB at a time
and a message may be at most ``max_message_size`` bytes (the acceptor's default, 16 KiB):
more raises ``GatewayError``, as do garbled messages, sequence gaps and Logouts.

**Shutdown.** Every gateway is a context manager that logs out and closes its sockets and
joins its threads on exit, also after an error; ``LocalAcceptor`` stops its child process.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import polars as pl

from kernels.fix.frame import FIX_SKIPPED_BYTES
from workbench.enums import Side, TimeInForce
from workbench.fix.encoder import build_message, format_timestamp
from workbench.fix.parser import Workspace, parse

__all__ = [
    "MODES", "Order", "Report", "Reply", "GatewayError", "GatewayTimeout", "LogonRefused",
    "BlockingSession", "SessionFactory", "SessionPool", "send_per_request", "ThreadedGateway",
    "AsyncGateway", "EventLoopThread", "LocalAcceptor", "order_flow", "compare_gateways",
    "latency_summary", "replies_frame",
]

logger = logging.getLogger(__name__)

MODES = ("blocking", "threaded", "asyncio", "pool", "per_request")
READ_CHUNK = 65_536                 # bytes asked of the kernel per read
DEFAULT_MAX_MESSAGE = 16_384        # the acceptor's own default (AcceptorConfig.max_message_size)
_HEADER_SLACK = 64                  # "8=FIX.4.4|9=nnnnn|" and "10=nnn|" around a body
_FORBIDDEN = ("\x01", "|", "=")

# OrdStatus (39) and ExecType (150) values the acceptor sends, by name
ORD_STATUS_NAMES = {"0": "new", "1": "partially_filled", "2": "filled", "4": "canceled",
                    "5": "replaced", "8": "rejected"}
EXEC_TYPE_NAMES = {"0": "new", "4": "canceled", "5": "replaced", "8": "rejected", "F": "trade"}
_FINAL = frozenset({"new", "filled", "canceled", "rejected"})


# ---------------------------------------------------------------------------- errors
class GatewayError(ConnectionError):
    """A FIX peer misbehaved, refused us or went away (the message names it and what we
    were doing)."""


class GatewayTimeout(GatewayError, TimeoutError):
    """A peer did not answer within the gateway's ``timeout``."""


class LogonRefused(GatewayError):
    """The acceptor answered our Logon with a Logout or closed the connection."""


# ---------------------------------------------------------------------------- records
def _comp_id(value, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or any(c in value for c in _FORBIDDEN):
        raise ValueError(f"{name}={value!r} must be a non-empty string of at most 64 characters "
                         "without SOH, '|' or '='")
    return value


def _positive(value, name: str, *, integer: bool = False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive {'integer' if integer else 'number'}")
    return value


def _price_text(price: float) -> str:
    text = f"{price:.8f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Order:
    """A NewOrderSingle to send: a limit order (``price``) or a market order (``price=None``).

    ``side`` and ``tif`` take the enums or their names (``"buy"``, ``"ioc"``)."""

    cl_ord_id: str
    symbol: str
    side: Side
    qty: int
    price: float | None = None
    tif: TimeInForce = TimeInForce.GTC

    def __post_init__(self):
        _comp_id(self.cl_ord_id, "cl_ord_id")
        _comp_id(self.symbol, "symbol")
        object.__setattr__(self, "side", Side.parse(self.side, "side"))
        object.__setattr__(self, "tif", TimeInForce.parse(self.tif, "tif"))
        _positive(self.qty, "qty", integer=True)
        if self.price is not None:
            _positive(self.price, "price")

    def fields(self) -> list[tuple[int, object]]:
        """The message body: ClOrdID, HandlInst, Symbol, Side, TransactTime, OrderQty,
        OrdType, Price (limit orders), TimeInForce."""
        body = [(11, self.cl_ord_id), (21, "1"), (55, self.symbol), (54, "1" if self.side == Side.BUY else "2"),
                (60, format_timestamp(time.time_ns())), (38, self.qty)]
        if self.price is None:
            body.append((40, "1"))
        else:
            body += [(40, "2"), (44, _price_text(self.price))]
        body.append((59, {TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}[self.tif]))
        return body


def _int(fields: dict, tag: int) -> int:
    value = fields.get(tag)
    try:
        return int(float(value)) if value is not None else 0
    except ValueError:
        raise GatewayError(f"ExecutionReport field {tag}={value!r} is not a number") from None


@dataclass(frozen=True)
class Report:
    """One ExecutionReport as received: statuses by name, prices as prices."""

    cl_ord_id: str
    order_id: int
    exec_type: str          # new, trade, canceled, rejected, replaced
    ord_status: str         # new, partially_filled, filled, canceled, rejected, replaced
    symbol: str
    side: Side | None
    last_px: float | None   # the fill's price (trades only)
    last_qty: int
    cum_qty: int
    leaves_qty: int
    text: str | None = None

    @property
    def final(self) -> bool:
        """Does this report end its order's request (module docstring)?"""
        return self.ord_status in _FINAL

    @classmethod
    def from_fields(cls, fields: dict[int, str]) -> "Report":
        side = {"1": Side.BUY, "2": Side.SELL}.get(fields.get(54))
        px = fields.get(31)
        try:
            last_px = float(px) if px is not None else None
        except ValueError:
            raise GatewayError(f"ExecutionReport LastPx={px!r} is not a price") from None
        return cls(fields.get(11, "?"), _int(fields, 37),
                   EXEC_TYPE_NAMES.get(fields.get(150), f"exec_type_{fields.get(150)}"),
                   ORD_STATUS_NAMES.get(fields.get(39), f"status_{fields.get(39)}"),
                   fields.get(55, "?"), side, last_px, _int(fields, 32), _int(fields, 14),
                   _int(fields, 151), fields.get(58))


@dataclass
class Reply:
    """An order and the reports that answered it.

    ``started_ns``: when work on the order began (waiting for a pooled session, connecting
    and logging on included); ``sent_ns``: when its NewOrderSingle was written;
    ``done_ns``: when its final report was read (all ``time.perf_counter_ns``)."""

    order: Order
    reports: list[Report]
    session: str
    started_ns: int
    sent_ns: int
    done_ns: int

    @property
    def latency_us(self) -> float:
        """Microseconds from ``started_ns`` to the final report."""
        return (self.done_ns - self.started_ns) / 1e3

    @property
    def order_id(self) -> int:
        """The acceptor's OrderID (37): its engine numbers orders in arrival order."""
        return self.reports[-1].order_id

    @property
    def status(self) -> str:
        return self.reports[-1].ord_status

    @property
    def filled(self) -> int:
        return self.reports[-1].cum_qty

    @property
    def fills(self) -> list[tuple[float, int]]:
        """(price, quantity) of each of this order's trades, in order."""
        return [(r.last_px, r.last_qty) for r in self.reports if r.exec_type == "trade"]


_REPORT_SCHEMA = {"reply": pl.Int64, "cl_ord_id": pl.String, "order_id": pl.Int64, "symbol": pl.String,
                  "side": pl.String, "exec_type": pl.String, "ord_status": pl.String,
                  "last_px": pl.Float64, "last_qty": pl.Int64, "cum_qty": pl.Int64,
                  "leaves_qty": pl.Int64, "text": pl.String}


def replies_frame(replies: Iterable[Reply], unsolicited: Iterable[Report] = ()) -> pl.DataFrame:
    """One row per ExecutionReport: the replies' (in order) and then ``unsolicited`` ones
    (``reply`` is null for those): statuses and sides by name, prices as prices."""
    rows = []
    for k, reply in enumerate(replies):
        rows += [(k, r) for r in reply.reports]
    rows += [(None, r) for r in unsolicited]
    return pl.DataFrame({
        "reply": [k for k, _ in rows],
        "cl_ord_id": [r.cl_ord_id for _, r in rows], "order_id": [r.order_id for _, r in rows],
        "symbol": [r.symbol for _, r in rows],
        "side": [r.side.name.lower() if r.side is not None else None for _, r in rows],
        "exec_type": [r.exec_type for _, r in rows], "ord_status": [r.ord_status for _, r in rows],
        "last_px": [r.last_px for _, r in rows], "last_qty": [r.last_qty for _, r in rows],
        "cum_qty": [r.cum_qty for _, r in rows], "leaves_qty": [r.leaves_qty for _, r in rows],
        "text": [r.text for _, r in rows],
    }, schema=_REPORT_SCHEMA)


# --------------------------------------------------------------------------- protocol
class _Inbox:
    """Bytes in, complete FIX messages out (``workbench.fix.parse`` frames them and checks
    their checksums); bounded: an incomplete message may hold at most
    ``max_message_size`` (+ header) bytes."""

    def __init__(self, max_message_size: int, peer: str):
        self.max_bytes = int(max_message_size) + _HEADER_SLACK
        self.peer = peer
        self.pending = b""
        self.workspace = Workspace()

    def feed(self, data: bytes) -> list[dict[int, str]]:
        buffer = self.pending + data if self.pending else data
        batch = parse(buffer, stream=True, validate=False, parallel=False, workspace=self.workspace)
        rejects = {k: v for k, v in batch.framing_rejects.items() if v}
        if rejects or batch.counts[FIX_SKIPPED_BYTES]:
            raise GatewayError(f"{self.peer} sent garbled data ({rejects or 'bytes between messages'})")
        raws = [batch.message_bytes(i) for i in range(len(batch))]
        self.pending = buffer[batch.consumed:]
        batch = None
        if len(self.pending) > self.max_bytes:
            raise GatewayError(f"{self.peer} sent {len(self.pending):,} bytes without completing a "
                               f"message (limit {self.max_bytes - _HEADER_SLACK:,}: max_message_size)")
        return [_fields(raw, self.peer) for raw in raws]


def _fields(raw: bytes, peer: str) -> dict[int, str]:
    out = {}
    for item in raw.split(b"\x01"):
        if item:
            tag, _, value = item.partition(b"=")
            if not tag.isdigit():
                raise GatewayError(f"{peer} sent a message with a malformed field {item[:20]!r}")
            out[int(tag)] = value.decode("latin-1")
    return out


class _Protocol:
    """The initiator's session layer, without I/O: sequence numbers both ways, the messages
    it sends, what each received message means."""

    def __init__(self, sender: str, target: str, heartbeat: int, password: str | None,
                 max_message_size: int, peer: str):
        self.sender = sender
        self.target = target
        self.heartbeat = heartbeat
        self.password = password
        self.peer = peer
        self.inbox = _Inbox(max_message_size, peer)
        self.next_out = 1
        self.expected_in = 1
        self.sent_orders: dict[int, str] = {}    # MsgSeqNum -> ClOrdID (to place a Reject)

    def message(self, msg_type: str, body: list[tuple[int, object]]) -> bytes:
        raw = build_message(msg_type, [(49, self.sender), (56, self.target), (34, self.next_out),
                                       (52, format_timestamp(time.time_ns())), *body])
        self.next_out += 1
        return raw

    def logon(self) -> bytes:
        self.next_out = self.expected_in = 1
        body = [(98, 0), (108, self.heartbeat), (141, "Y")]   # a fresh session: both sides at 1
        if self.password is not None:
            body += [(553, self.sender), (554, self.password)]
        return self.message("A", body)

    def order(self, order: Order) -> bytes:
        self.sent_orders[self.next_out] = order.cl_ord_id
        if len(self.sent_orders) > 4096:
            del self.sent_orders[next(iter(self.sent_orders))]
        return self.message("D", order.fields())

    def logout(self) -> bytes:
        return self.message("5", [])

    def heartbeat_for(self, test_req_id: str) -> bytes:
        return self.message("0", [(112, test_req_id)])

    def classify(self, fields: dict[int, str]) -> tuple[str, object]:
        """(kind, value): ("report", Report), ("logon", None), ("logout", text),
        ("test", TestReqID), ("reject", (ClOrdID or None, text)), ("ignore", None)."""
        msg_type = fields.get(35)
        seq_text = fields.get(34, "")
        seq = int(seq_text) if seq_text.isdigit() else None
        if seq is None:
            raise GatewayError(f"{self.peer} sent a {msg_type!r} message without a MsgSeqNum")
        if msg_type == "4" and fields.get(123) != "Y":   # SequenceReset-Reset
            self.expected_in = _int(fields, 36)
            return "ignore", None
        if seq > self.expected_in and msg_type != "5":
            raise GatewayError(f"{self.peer}: sequence gap, expected MsgSeqNum {self.expected_in}, "
                               f"got {seq} (messages were lost)")
        if seq < self.expected_in and fields.get(43) != "Y" and msg_type != "5":
            raise GatewayError(f"{self.peer}: MsgSeqNum {seq} is below the expected {self.expected_in}")
        if seq >= self.expected_in:
            self.expected_in = seq + 1
        if msg_type == "4":                               # gap fill
            self.expected_in = max(self.expected_in, _int(fields, 36))
            return "ignore", None
        if msg_type == "8":
            return "report", Report.from_fields(fields)
        if msg_type == "A":
            return "logon", None
        if msg_type == "5":
            return "logout", fields.get(58)
        if msg_type == "1":
            return "test", fields.get(112, "")
        if msg_type in ("3", "j"):
            ref = fields.get(45, "")
            cl = self.sent_orders.get(int(ref)) if ref.isdigit() else None
            return "reject", (cl, f"{fields.get(58, 'rejected')} (RefSeqNum {ref}, RefMsgType "
                                  f"{fields.get(372, '?')})")
        if msg_type == "2":
            raise GatewayError(f"{self.peer} asked us to resend messages {fields.get(7)}..: this "
                               f"gateway keeps none (a new session starts at 1)")
        return "ignore", None


def _check_options(host, port, timeout, heartbeat, max_message_size):
    if not isinstance(host, str) or not host:
        raise ValueError(f"host={host!r} must be a host name or address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port={port!r} must be an integer in 1..65535")
    _positive(timeout, "timeout")
    _positive(heartbeat, "heartbeat", integer=True)
    _positive(max_message_size, "max_message_size", integer=True)


# --------------------------------------------------------------------------- blocking
class BlockingSession:
    """One blocking socket to the acceptor: log on, send orders one at a time, log out.

    >>> with BlockingSession("127.0.0.1", port, "GW00") as session:     # doctest: +SKIP
    ...     reply = session.send_order(Order("o1", "WB", "buy", 100, 99.99))

    ``timeout`` bounds every operation (connect, logon, each order, logout), measured from
    its start: a peer that trickles bytes cannot stretch it. Reports for other ClOrdIDs
    (fills of resting orders) land in ``unsolicited``. ``on_close`` is called once when
    the session closes (``SessionFactory`` returns the SenderCompID with it). One thread
    at a time may use a session (``SessionPool`` lends each to one caller at a time).
    """

    def __init__(self, host: str, port: int, sender: str, *, target: str = "ISLD",
                 timeout: float = 5.0, heartbeat: int = 30, password: str | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE, on_close: Callable | None = None):
        _check_options(host, port, timeout, heartbeat, max_message_size)
        self.host, self.port = host, port
        self.sender = _comp_id(sender, "sender")
        self.timeout = float(timeout)
        self.peer = f"the acceptor at {host}:{port}"
        self._protocol = _Protocol(self.sender, _comp_id(target, "target"), int(heartbeat), password,
                                   max_message_size, self.peer)
        self._sock: socket.socket | None = None
        self._messages: collections.deque = collections.deque()
        self._on_close = on_close
        self.unsolicited: list[Report] = []
        self.logged_on = False
        self.closed = False
        self.orders_sent = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> "BlockingSession":
        """Connect and log on (ResetSeqNumFlag=Y: a fresh session at sequence number 1)."""
        if self.closed:
            raise GatewayError(f"session {self.sender} is closed: open a new one")
        if self.logged_on:
            return self
        try:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except socket.timeout:
                raise GatewayTimeout(f"connect: {self.peer} did not accept within {self.timeout:g} s") from None
            except OSError as exc:
                raise GatewayError(f"connect: {self.peer} refused ({exc})") from None
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send(self._protocol.logon(), "logon")
            self._read_until(lambda kind, value: True if kind == "logon" else None, "logon", logon=True)
            self.logged_on = True
        except BaseException:
            self.close(logout=False)
            raise
        return self

    def __enter__(self) -> "BlockingSession":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, logout: bool = True) -> None:
        """Log out (bounded by ``timeout``; a failure there only ends the wait) and close
        the socket. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            if logout and self.logged_on and self._sock is not None:
                with contextlib.suppress(GatewayError, OSError):
                    self._send(self._protocol.logout(), "logout")
                    self._read_until(lambda kind, value: True if kind == "logout" else None, "logout")
        finally:
            self.logged_on = False
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._on_close is not None:
                callback, self._on_close = self._on_close, None
                callback(self)

    # ---------------------------------------------------------------------- orders
    def send_order(self, order: Order, *, started_ns: int | None = None) -> Reply:
        """Send one NewOrderSingle and wait for its final report (module docstring)."""
        if not isinstance(order, Order):
            raise ValueError(f"order={order!r} must be a workbench.fix.gateway.Order")
        if not self.logged_on:
            raise GatewayError(f"session {self.sender} is not logged on (open() it, or it was closed)")
        raw = self._protocol.order(order)
        sent = time.perf_counter_ns()
        reports: list[Report] = []
        self._send(raw, f"order {order.cl_ord_id}")
        self.orders_sent += 1

        def mine(kind, value) -> bool | None:
            if kind == "reject" and value[0] == order.cl_ord_id:
                raise GatewayError(f"order {order.cl_ord_id}: {self.peer} rejected the message: {value[1]}")
            if kind != "report" or value.cl_ord_id != order.cl_ord_id:
                return None
            reports.append(value)
            return value.final

        try:
            self._read_until(mine, f"order {order.cl_ord_id}")
        except GatewayTimeout as exc:
            raise GatewayTimeout(f"{exc}; reports so far: {[r.ord_status for r in reports]} (a "
                                 "limit order that trades and rests has no final report: send "
                                 "crossing orders as IOC)") from None
        done = time.perf_counter_ns()
        return Reply(order, reports, self.sender, sent if started_ns is None else started_ns, sent, done)

    # ------------------------------------------------------------------------- I/O
    def _send(self, raw: bytes, what: str) -> None:
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(raw)
        except socket.timeout:
            raise GatewayTimeout(f"{what}: {self.peer} took no bytes for {self.timeout:g} s") from None
        except OSError as exc:
            raise GatewayError(f"{what}: sending to {self.peer} failed ({exc})") from None

    def _read_until(self, wanted: Callable[[str, object], bool | None], what: str,
                    logon: bool = False) -> None:
        """Read until ``wanted(kind, value)`` is true; a report it does not claim (None) is
        unsolicited (the fill of a resting order, possibly after its own request ended)."""
        deadline = time.monotonic() + self.timeout
        while True:
            while self._messages:
                kind, value = self._protocol.classify(self._messages.popleft())
                if kind == "test":
                    self._send(self._protocol.heartbeat_for(value), "heartbeat")
                    continue
                claimed = wanted(kind, value)
                if claimed:
                    return
                if claimed is None and kind == "report":
                    self.unsolicited.append(value)
                    continue
                if kind == "logout":
                    if logon:
                        raise LogonRefused(f"{what}: {self.peer} refused {self.sender}'s Logon"
                                           + (f": {value}" if value else ""))
                    self.logged_on = False
                    raise GatewayError(f"{what}: {self.peer} logged {self.sender} out"
                                       + (f": {value}" if value else ""))
                if kind == "reject":
                    logger.warning("%s: %s", self.sender, value[1])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayTimeout(f"{what}: no answer from {self.peer} within {self.timeout:g} s")
            try:
                self._sock.settimeout(remaining)
                data = self._sock.recv(READ_CHUNK)
            except socket.timeout:
                raise GatewayTimeout(f"{what}: no answer from {self.peer} within {self.timeout:g} s") from None
            except OSError as exc:
                raise GatewayError(f"{what}: reading from {self.peer} failed ({exc})") from None
            if not data:
                self.logged_on = False
                if logon:
                    raise LogonRefused(f"{what}: {self.peer} closed the connection without a Logon "
                                       f"reply ({self.sender} not on its allow-list, or already "
                                       "logged on elsewhere)")
                raise GatewayError(f"{what}: {self.peer} closed the connection")
            self._messages.extend(self._protocol.inbox.feed(data))


class SessionFactory:
    """Opens logged-on ``BlockingSession``s, each under a SenderCompID that no other open
    session of this factory uses (the acceptor allows one connection per counterparty);
    a closed session gives its SenderCompID back. Thread-safe. ``opened`` counts the
    sessions opened so far (each one a TCP connect and a Logon)."""

    def __init__(self, host: str, port: int, senders: Sequence[str], **options):
        senders = [_comp_id(s, "senders") for s in senders]
        if not senders or len(set(senders)) != len(senders):
            raise ValueError(f"senders={senders!r} must be distinct SenderCompIDs (at least one)")
        _check_options(host, port, options.get("timeout", 5.0), options.get("heartbeat", 30),
                       options.get("max_message_size", DEFAULT_MAX_MESSAGE))
        self.host, self.port, self.senders, self.options = host, port, tuple(senders), options
        self._free = collections.deque(senders)
        self._lock = threading.Lock()
        self.opened = 0

    def __call__(self, **options) -> BlockingSession:
        with self._lock:
            if not self._free:
                raise GatewayError(f"all {len(self.senders)} SenderCompIDs of this factory are in "
                                   "use by open sessions (one connection per counterparty): close one")
            sender = self._free.popleft()
            self.opened += 1
        session = BlockingSession(self.host, self.port, sender, on_close=self._release,
                                  **{**self.options, **options})
        return session.open()     # a failure closes it, which gives the SenderCompID back

    def _release(self, session: BlockingSession) -> None:
        with self._lock:
            self._free.append(session.sender)


# ------------------------------------------------------------------------------ pool
class SessionPool:
    """``size`` persistent, logged-on sessions reused by any number of caller threads.

    >>> with SessionPool(factory, 4) as pool:        # doctest: +SKIP
    ...     reply = pool.send(order)                   # from any thread

    A caller waits (up to ``timeout`` seconds) for a free session. A session that fails is
    closed and replaced by a new one on the next use (``reconnects`` counts them).
    """

    def __init__(self, factory: Callable[[], BlockingSession], size: int, *, timeout: float = 5.0):
        if not callable(factory):
            raise ValueError(f"factory={factory!r} must be a callable returning an open BlockingSession")
        self.factory = factory
        self.size = _positive(size, "size", integer=True)
        self.timeout = float(_positive(timeout, "timeout"))
        self._idle: queue.Queue = queue.Queue()
        self._all: list[BlockingSession] = []
        self._lock = threading.Lock()
        self.reconnects = 0
        self.closed = False

    def open(self) -> "SessionPool":
        try:
            for _ in range(self.size):
                session = self.factory()
                self._all.append(session)
                self._idle.put(session)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> "SessionPool":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def session(self):
        """Borrow a session (context manager); it goes back to the pool afterwards."""
        if self.closed:
            raise GatewayError("the pool is closed")
        try:
            session = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            raise GatewayTimeout(f"no pooled session became free within {self.timeout:g} s "
                                 f"({self.size} sessions, all busy)") from None
        try:
            if session is None or session.closed:
                session = self._replace(session)
            yield session
        except BaseException:
            if session is not None:
                session.close(logout=False)   # unknown state: do not reuse it
            self._idle.put(session)
            raise
        self._idle.put(session)

    def _replace(self, old) -> BlockingSession:
        new = self.factory()
        with self._lock:
            self.reconnects += 1
            if old in self._all:
                self._all.remove(old)
            self._all.append(new)
        return new

    def send(self, order: Order) -> Reply:
        """Send ``order`` on a pooled session and wait for its reports; the latency counts
        from the moment the caller asked (waiting for a free session included)."""
        started = time.perf_counter_ns()
        with self.session() as session:
            return session.send_order(order, started_ns=started)

    @property
    def unsolicited(self) -> list[Report]:
        return [r for s in self._all for r in s.unsolicited]

    def close(self) -> None:
        """Log out and close every session (call once the callers are done)."""
        self.closed = True
        with self._lock:
            sessions = list(self._all)
        for session in sessions:
            session.close()

    @property
    def sessions(self) -> list[BlockingSession]:
        """Every session the pool opened and still holds (open, or closed by ``close``)."""
        with self._lock:
            return list(self._all)


def send_per_request(factory: Callable[[], BlockingSession], order: Order) -> Reply:
    """Connect, log on, send ``order``, log out: a new session for one order. The latency
    counts from before the connect to its final report (the logout comes after)."""
    started = time.perf_counter_ns()
    with factory() as session:
        return session.send_order(order, started_ns=started)


# -------------------------------------------------------------------------- threaded
class ThreadedGateway:
    """N worker threads, each with its own logged-on session, taking orders from one queue.

    >>> with ThreadedGateway(host, port, ["GW00", "GW01", "GW02", "GW03"]) as gateway:  # doctest: +SKIP
    ...     replies = gateway.run(orders)

    Entering starts the threads and waits until every session is logged on (a failure
    stops them all and raises). ``submit`` returns a ``concurrent.futures.Future``. A
    worker whose session fails fails its order and stops; when none is left, queued
    orders fail at once. Leaving logs out, joins the threads and fails what was never sent.
    """

    def __init__(self, host: str, port: int, senders: Sequence[str], **session_options):
        senders = [_comp_id(s, "senders") for s in senders]
        if not senders or len(set(senders)) != len(senders):
            raise ValueError(f"senders={senders!r} must be distinct SenderCompIDs (at least one)")
        _check_options(host, port, session_options.get("timeout", 5.0),
                       session_options.get("heartbeat", 30),
                       session_options.get("max_message_size", DEFAULT_MAX_MESSAGE))
        self.host, self.port, self.senders = host, port, tuple(senders)
        self.options = session_options
        self.timeout = float(session_options.get("timeout", 5.0))
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._sessions: list[BlockingSession] = []
        self._alive = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def workers(self) -> int:
        return len(self.senders)

    def __enter__(self) -> "ThreadedGateway":
        ready = [concurrent.futures.Future() for _ in self.senders]
        for sender, flag in zip(self.senders, ready):
            thread = threading.Thread(target=self._work, args=(sender, flag), daemon=True,
                                      name=f"gateway-worker-{sender}")
            self._threads.append(thread)
            with self._lock:
                self._alive += 1
            thread.start()
        bound = 2 * self.timeout + 5     # each logon is bounded by timeout: a safety net
        done, late = concurrent.futures.wait(ready, timeout=bound)
        problems = [f.exception() for f in ready if f in done and f.exception() is not None]
        if problems or late:
            self.close()
            if problems:
                raise problems[0]
            raise GatewayTimeout(f"the workers' sessions did not log on within {bound:g} s")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _work(self, sender: str, ready: concurrent.futures.Future) -> None:
        session = BlockingSession(self.host, self.port, sender, **self.options)
        with self._lock:
            self._sessions.append(session)
        try:
            try:
                session.open()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(True)
            while True:
                item = self._queue.get()
                if item is None:
                    break
                future, order = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(session.send_order(order, started_ns=time.perf_counter_ns()))
                except BaseException as exc:
                    future.set_exception(exc)
                    if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
                        break          # the session is gone or broken: this worker stops
        finally:
            session.close(logout=session.logged_on)
            with self._lock:
                self._alive -= 1
                last = self._alive == 0
            if last:
                self._fail_queued(GatewayError("no worker session is left to send the order"))

    def _fail_queued(self, error: Exception) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[0].set_running_or_notify_cancel():
                item[0].set_exception(error)

    def submit(self, order: Order) -> concurrent.futures.Future:
        """Queue ``order``; the future's result is its ``Reply``."""
        if not isinstance(order, Order):
            raise ValueError(f"order={order!r} must be a workbench.fix.gateway.Order")
        if self._closed or not self._threads:
            raise GatewayError("the gateway is not running (use it as a context manager)")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            alive = self._alive
        if alive == 0:
            future.set_exception(GatewayError("no worker session is left to send the order"))
            return future
        self._queue.put((future, order))
        return future

    def run(self, orders: Iterable[Order]) -> list[Reply]:
        """Send every order (N at a time) and return the replies in order; the first
        failure raises (the others still finish)."""
        futures = [self.submit(o) for o in orders]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    @property
    def unsolicited(self) -> list[Report]:
        return [r for s in self._sessions for r in s.unsolicited]

    def close(self) -> None:
        """Stop the workers (each logs out), join them, fail the orders never sent."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + 2 * self.timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._fail_queued(GatewayError("the gateway closed before the order was sent"))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise GatewayError(f"worker threads {stuck} did not stop")


# --------------------------------------------------------------------------- asyncio
@dataclass
class _Pending:
    order: Order
    future: asyncio.Future
    started_ns: int
    sent_ns: int = 0
    reports: list = field(default_factory=list)


class _AsyncSession:
    """One asyncio stream session: a reader task matches reports to in-flight orders."""

    def __init__(self, host, port, sender, *, target, timeout, heartbeat, password, max_message_size):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.peer = f"the acceptor at {host}:{port}"
        self.protocol = _Protocol(sender, target, heartbeat, password, max_message_size, self.peer)
        self.reader = self.writer = self.task = None
        self.pending: dict[str, _Pending] = {}
        self.unsolicited: list[Report] = []
        self.logged_on = False
        self.failure: Exception | None = None
        self._logon = self._logout = None

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout)
        except asyncio.TimeoutError:
            raise GatewayTimeout(f"connect: {self.peer} did not accept within {self.timeout:g} s") from None
        except OSError as exc:
            raise GatewayError(f"connect: {self.peer} refused ({exc})") from None
        self._logon, self._logout = loop.create_future(), loop.create_future()
        self.task = asyncio.ensure_future(self._read())
        self.writer.write(self.protocol.logon())
        try:
            await asyncio.wait_for(self.writer.drain(), self.timeout)
            await asyncio.wait_for(asyncio.shield(self._logon), self.timeout)
        except asyncio.TimeoutError:
            raise GatewayTimeout(f"logon: no answer from {self.peer} within {self.timeout:g} s") from None
        self.logged_on = True

    def _fail_all(self, error: Exception) -> None:
        self.failure = self.failure or error
        self.logged_on = False
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self.pending.clear()
        for waiter in (self._logon, self._logout):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
                waiter.exception()   # retrieved: nobody may be waiting for it any more

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    if not self._logout.done():    # not after our Logout: the peer hung up
                        if self._logon.done():
                            self._fail_all(GatewayError(f"{self.peer} closed {self.sender}'s connection"))
                        else:
                            self._fail_all(LogonRefused(
                                f"logon: {self.peer} closed the connection without a Logon reply "
                                f"({self.sender} not on its allow-list, or already logged on)"))
                    return
                for fields in self.protocol.inbox.feed(data):
                    self._dispatch(*self.protocol.classify(fields))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken peer fails every waiting order
            error = exc if isinstance(exc, GatewayError) else GatewayError(
                f"reading from {self.peer} failed ({exc})")
            self._fail_all(error)
            if self.writer is not None:
                self.writer.transport.abort()

    def _dispatch(self, kind: str, value) -> None:
        if kind == "report":
            pending = self.pending.get(value.cl_ord_id)
            if pending is None:
                self.unsolicited.append(value)
                return
            pending.reports.append(value)
            if value.final:
                del self.pending[value.cl_ord_id]
                if not pending.future.done():
                    pending.future.set_result(time.perf_counter_ns())
        elif kind == "logon":
            if not self._logon.done():
                self._logon.set_result(True)
        elif kind == "logout":
            if not self._logon.done():
                self._logon.set_exception(LogonRefused(
                    f"logon: {self.peer} refused {self.sender}'s Logon" + (f": {value}" if value else "")))
                self._logon.exception()
            if not self._logout.done():
                self._logout.set_result(value)
            self._fail_all(GatewayError(f"{self.peer} logged {self.sender} out" + (f": {value}" if value else "")))
        elif kind == "test":
            self.writer.write(self.protocol.heartbeat_for(value))
        elif kind == "reject":
            cl_ord_id, text = value
            pending = self.pending.pop(cl_ord_id, None) if cl_ord_id else None
            if pending is not None and not pending.future.done():
                pending.future.set_exception(GatewayError(
                    f"order {cl_ord_id}: {self.peer} rejected the message: {text}"))

    async def request(self, order: Order, started_ns: int) -> Reply:
        if not self.logged_on:
            raise self.failure or GatewayError(f"session {self.sender} is not logged on")
        if order.cl_ord_id in self.pending:
            raise ValueError(f"cl_ord_id={order.cl_ord_id!r} is already in flight on {self.sender}")
        pending = _Pending(order, asyncio.get_running_loop().create_future(), started_ns)
        self.pending[order.cl_ord_id] = pending
        raw = self.protocol.order(order)
        pending.sent_ns = time.perf_counter_ns()
        self.writer.write(raw)
        try:
            await asyncio.wait_for(self.writer.drain(), self.timeout)
            done = await asyncio.wait_for(pending.future, self.timeout)
        except asyncio.TimeoutError:
            self.pending.pop(order.cl_ord_id, None)
            raise GatewayTimeout(f"order {order.cl_ord_id}: no final report from {self.peer} within "
                                 f"{self.timeout:g} s (reports so far: "
                                 f"{[r.ord_status for r in pending.reports]})") from None
        except (ConnectionError, OSError) as exc:
            self.pending.pop(order.cl_ord_id, None)
            if isinstance(exc, GatewayError):
                raise
            raise GatewayError(f"order {order.cl_ord_id}: sending to {self.peer} failed ({exc})") from None
        return Reply(order, pending.reports, self.sender, started_ns, pending.sent_ns, done)

    async def close(self) -> None:
        try:
            if self.logged_on and self.writer is not None and not self.writer.is_closing():
                with contextlib.suppress(Exception):
                    self.writer.write(self.protocol.logout())
                    await asyncio.wait_for(self.writer.drain(), self.timeout)
                    await asyncio.wait_for(asyncio.shield(self._logout), self.timeout)
        finally:
            self.logged_on = False
            if self.task is not None:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
            if self._logout is not None and not self._logout.done():
                self._logout.cancel()
            if self._logon is not None and not self._logon.done():
                self._logon.cancel()
            if self.writer is not None:
                self.writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.writer.wait_closed(), self.timeout)


class AsyncGateway:
    """Many orders in flight over one or a few asyncio sessions.

    >>> async with AsyncGateway(host, port, ["GW00"], window=16) as gateway:   # doctest: +SKIP
    ...     replies = await gateway.run(orders)

    ``send(order)`` takes a slot of the ``window`` (at most that many orders in flight in
    total; ``None``: no limit, the caller bounds it) and the least busy session.
    ``in_flight`` and ``peak_in_flight`` count orders sent and not yet answered. Opening
    logs every session on (a failure closes them and raises); closing logs them out.
    Every wait is bounded by ``timeout``. Use it inside a running event loop (a notebook
    cell can ``await``; synchronous code can use ``EventLoopThread``).
    """

    def __init__(self, host: str, port: int, senders: Sequence[str], *, window: int | None = 32,
                 timeout: float = 5.0, target: str = "ISLD", heartbeat: int = 30,
                 password: str | None = None, max_message_size: int = DEFAULT_MAX_MESSAGE):
        senders = [_comp_id(s, "senders") for s in senders]
        if not senders or len(set(senders)) != len(senders):
            raise ValueError(f"senders={senders!r} must be distinct SenderCompIDs (at least one)")
        _check_options(host, port, timeout, heartbeat, max_message_size)
        if window is not None:
            _positive(window, "window", integer=True)
        self.window = window
        self.timeout = float(timeout)
        self._sessions = [_AsyncSession(host, port, s, target=_comp_id(target, "target"),
                                        timeout=self.timeout, heartbeat=int(heartbeat),
                                        password=password, max_message_size=max_message_size)
                          for s in senders]
        self._slots: asyncio.Semaphore | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.opened = False

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def open(self) -> "AsyncGateway":
        self._slots = asyncio.Semaphore(self.window) if self.window is not None else None
        results = await asyncio.gather(*(s.open() for s in self._sessions), return_exceptions=True)
        problems = [r for r in results if isinstance(r, BaseException)]
        if problems:
            await self.close()
            raise problems[0]
        self.opened = True
        return self

    async def __aenter__(self) -> "AsyncGateway":
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def send(self, order: Order) -> Reply:
        """Send ``order`` and wait for its final report."""
        if not isinstance(order, Order):
            raise ValueError(f"order={order!r} must be a workbench.fix.gateway.Order")
        if not self.opened:
            raise GatewayError("the gateway is not open (use `async with AsyncGateway(...)`)")
        async with (self._slots if self._slots is not None else contextlib.nullcontext()):
            started = time.perf_counter_ns()
            session = min(self._sessions, key=lambda s: s.in_flight)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await session.request(order, started)
            finally:
                self.in_flight -= 1

    async def run(self, orders: Iterable[Order]) -> list[Reply]:
        """Send every order (``window`` at a time) and return the replies in order."""
        return list(await asyncio.gather(*(self.send(o) for o in orders)))

    @property
    def unsolicited(self) -> list[Report]:
        return [r for s in self._sessions for r in s.unsolicited]

    async def close(self) -> None:
        self.opened = False
        await asyncio.gather(*(s.close() for s in self._sessions), return_exceptions=True)


class EventLoopThread:
    """An asyncio event loop in its own thread, for synchronous code (and notebooks, whose
    own loop is busy running the cell): ``run(coro)`` waits for its result.

    >>> with EventLoopThread() as loop:                       # doctest: +SKIP
    ...     gateway = loop.run(AsyncGateway(host, port, ["GW00"]).open())
    """

    def __init__(self, name: str = "gateway-asyncio"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)

    def __enter__(self) -> "EventLoopThread":
        self.thread.start()
        return self

    def run(self, coro, timeout: float | None = None):
        """Run ``coro`` on the loop and return its result (raise its exception)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GatewayTimeout(f"the coroutine did not finish within {timeout:g} s") from None

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            async def _wind_down():     # on the loop's own thread: the caller's may run a loop
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.loop.shutdown_asyncgens()
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_wind_down(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


# ----------------------------------------------------------------------------- venue
_VENUE_SCRIPT = "from workbench.fix.gateway import _venue_main; _venue_main()"


class LocalAcceptor:
    """The project's ``FixAcceptor`` (into an ``Engine``) in a child process on a free
    localhost port: a venue for the gateways, with its own interpreter and GIL.

    >>> with LocalAcceptor(symbols=["WB"], senders=8) as venue:    # doctest: +SKIP
    ...     with venue.open_session() as session: ...
    ...     venue.stats()["logons"]

    ``senders``: the SenderCompIDs on its allow-list (an int n: ``GW00`` .. ``GWnn``).
    ``stats()`` asks the child for its counters (``logons`` in total and ``by_sender``,
    ``accepted`` connections, ``connections`` open now, ``live_orders`` resting in its
    engine, the acceptor's ``closed:<reason>`` counts). ``open_session`` is a
    ``SessionFactory`` over its senders. Stopping ends the child (it also ends on its own
    when this process goes away: its stdin closes).
    """

    def __init__(self, symbols: Sequence[str] = ("WB",), senders: int | Sequence[str] = 8, *,
                 tick_size: float = 0.01, capacity: int = 100_000, max_connections: int = 64,
                 timeout: float = 10.0, startup_timeout: float = 300.0):
        if isinstance(symbols, str):
            symbols = [symbols]
        self.symbols = tuple(_comp_id(s, "symbols") for s in symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols={list(symbols)!r} must be distinct (at least one)")
        if isinstance(senders, int) and not isinstance(senders, bool):
            _positive(senders, "senders", integer=True)
            senders = [f"GW{k:02d}" for k in range(senders)]
        self.senders = tuple(_comp_id(s, "senders") for s in senders)
        if not self.senders or len(set(self.senders)) != len(self.senders):
            raise ValueError(f"senders={list(senders)!r} must be distinct (at least one)")
        self.tick_size = float(_positive(tick_size, "tick_size"))
        self.capacity = _positive(capacity, "capacity", integer=True)
        self.max_connections = _positive(max_connections, "max_connections", integer=True)
        self.timeout = float(_positive(timeout, "timeout"))
        self.startup_timeout = float(_positive(startup_timeout, "startup_timeout"))
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stderr = None
        self._factory: SessionFactory | None = None
        self._lock = threading.Lock()

    def start(self) -> "LocalAcceptor":
        if self._process is not None:
            return self
        config = {"symbols": self.symbols, "senders": self.senders, "tick_size": self.tick_size,
                  "capacity": self.capacity, "max_connections": self.max_connections}
        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self._process = subprocess.Popen([sys.executable, "-c", _VENUE_SCRIPT, json.dumps(config)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=env, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read_lines, daemon=True, name="venue-reader")
        self._reader.start()
        try:
            hello = self._answer(self.startup_timeout, "start")
            self.port = int(hello["port"])
        except BaseException:
            self.stop()
            raise
        self._factory = SessionFactory(self.host, self.port, self.senders)
        return self

    def __enter__(self) -> "LocalAcceptor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _read_lines(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _answer(self, timeout: float, what: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise GatewayTimeout(f"venue {what}: the acceptor process did not answer within "
                                 f"{timeout:g} s") from None
        if line is None:
            raise GatewayError(f"venue {what}: the acceptor process ended: {self._stderr_tail()}")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:] or "(no output)"

    def stats(self) -> dict:
        """The acceptor's counters now (class docstring)."""
        if self._process is None or self._process.poll() is not None:
            raise GatewayError("the venue is not running")
        with self._lock:
            try:
                self._process.stdin.write("stats\n")
                self._process.stdin.flush()
            except OSError as exc:
                raise GatewayError(f"venue stats: the acceptor process is gone ({exc})") from None
            return self._answer(self.timeout, "stats")

    @property
    def factory(self) -> SessionFactory:
        if self._factory is None:
            raise GatewayError("the venue is not running (use it as a context manager)")
        return self._factory

    def open_session(self, **options) -> BlockingSession:
        """A logged-on ``BlockingSession`` under a SenderCompID not in use (``SessionFactory``)."""
        return self.factory(**options)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write("quit\n")
                process.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()
            try:
                process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.timeout)
            if self._reader is not None:
                self._reader.join(self.timeout)
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._factory = None


def _venue_main() -> None:
    """The child process of ``LocalAcceptor``: serve until stdin says quit or closes."""
    from workbench.book import Engine
    from workbench.fix.acceptor import EngineApplication, FixAcceptor
    from workbench.fix.config import AcceptorConfig
    from workbench.fix.session import FixSession

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cfg = json.loads(sys.argv[1])
    config = AcceptorConfig(counterparties=cfg["senders"], max_connections=cfg["max_connections"],
                            max_connections_per_peer=cfg["max_connections"], mode="lab")

    def new_engine():
        return Engine(cfg["symbols"], tick_size=cfg["tick_size"], capacity=cfg["capacity"],
                      record_fills=False)

    # warm up: load every kernel a session uses (parse, the engine, the report encoder), so
    # the first client is not timed against the JIT cache
    scratch = FixSession("ISLD", application=EngineApplication(new_engine(), config), limits=config)
    clock = format_timestamp(time.time_ns())
    scratch.receive(build_message("A", [(49, "WARM"), (56, "ISLD"), (34, 1), (52, clock), (98, 0), (108, 30)]))
    for k, (side, price) in enumerate((("2", "1.01"), ("1", "1.02")), start=2):
        scratch.receive(build_message("D", [(49, "WARM"), (56, "ISLD"), (34, k), (52, clock), (11, f"w{k}"),
                                            (21, "1"), (55, cfg["symbols"][0]), (54, side), (60, clock),
                                            (38, 1), (40, "2"), (44, price), (59, "3" if side == "1" else "1")]))

    class CountingAcceptor(FixAcceptor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.logons: collections.Counter = collections.Counter()

        def _on_logon(self, session, msg):
            super()._on_logon(session, msg)
            self.logons[msg.get(49)] += 1

    async def serve():
        engine = new_engine()
        acceptor = CountingAcceptor(engine, config)
        await acceptor.start()
        print(json.dumps({"port": acceptor.port}), flush=True)
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or line.strip() == "quit":
                    break
                stats = {k: v for k, v in acceptor.stats.items()}
                stats.update(logons=sum(acceptor.logons.values()), by_sender=dict(acceptor.logons),
                             connections=acceptor.connections,
                             live_orders=int(engine.stats()["live_orders"]))
                print(json.dumps(stats), flush=True)
        finally:
            await acceptor.stop()

    asyncio.run(serve())


# --------------------------------------------------------------------------- workload
def order_flow(n: int, *, symbol: str = "WB", seed: int = 14, prefix: str = "o", mid: float = 100.0,
               tick: float = 0.01, taker_share: float = 0.35) -> list[Order]:
    """``n`` reproducible orders around ``mid``: makers (GTC limits 1..5 ticks from the mid,
    bids below and asks above it, so they never cross each other: each is answered by one
    New report) and takers (``taker_share`` of them: IOC limits 6 ticks through the mid,
    answered by their fills and a cancel of any rest). ClOrdIDs are ``prefix`` + index."""
    _positive(n, "n", integer=True)
    _positive(mid, "mid")
    _positive(tick, "tick")
    if not isinstance(taker_share, (int, float)) or not 0 <= taker_share <= 1:
        raise ValueError(f"taker_share={taker_share!r} must be within 0..1")
    if mid - 6 * tick <= 0:
        raise ValueError(f"mid={mid} is too close to 0 for orders 6 ticks ({tick}) below it")
    rng = np.random.default_rng(seed)
    takers = rng.random(n) < taker_share
    buys = rng.random(n) < 0.5
    ticks = rng.integers(1, 6, n)
    lots = rng.integers(1, 6, n)
    orders = []
    for k in range(n):
        side = Side.BUY if buys[k] else Side.SELL
        sign = 1 if side == Side.BUY else -1
        if takers[k]:
            price, qty, tif = mid + sign * 6 * tick, int(lots[k]) * 150, TimeInForce.IOC
        else:
            price, qty, tif = mid - sign * int(ticks[k]) * tick, int(lots[k]) * 100, TimeInForce.GTC
        orders.append(Order(f"{prefix}{k}", symbol, side, qty, round(price, 8), tif))
    return orders


# ---------------------------------------------------------------------------- runner
def latency_summary(replies: Sequence[Reply]) -> dict:
    """mean, p50 and p99 latency of ``replies`` in microseconds (``workbench.latency``'s
    recorder: within 0.1 %)."""
    from workbench.latency import LatencyRecorder

    recorder = LatencyRecorder("gateway")
    recorder.record_many(np.array([r.done_ns - r.started_ns for r in replies], np.int64))
    return {"mean_us": recorder.mean / 1e3, "p50_us": recorder.percentile(50) / 1e3,
            "p99_us": recorder.percentile(99) / 1e3}


@contextlib.contextmanager
def _driver(mode: str, venue: LocalAcceptor, sessions: int, async_sessions: int,
            window: int, timeout: float):
    """(run(orders) -> replies, sessions used, orders in flight) for one mode."""
    senders = venue.senders
    if mode == "blocking":
        with venue.open_session(timeout=timeout) as session:
            yield (lambda orders: [session.send_order(o) for o in orders]), 1, 1
    elif mode == "threaded":
        with ThreadedGateway(venue.host, venue.port, senders[:sessions], timeout=timeout) as gateway:
            yield gateway.run, sessions, sessions
    elif mode == "asyncio":
        with EventLoopThread() as loop:
            gateway = AsyncGateway(venue.host, venue.port, senders[:async_sessions], window=window,
                                   timeout=timeout)
            loop.run(gateway.open())
            try:
                yield (lambda orders: loop.run(gateway.run(orders))), async_sessions, window
            finally:
                loop.run(gateway.close())
    elif mode == "pool":
        with SessionPool(lambda: venue.open_session(timeout=timeout), sessions, timeout=timeout) as pool, \
                concurrent.futures.ThreadPoolExecutor(sessions, thread_name_prefix="pool-caller") as callers:
            yield (lambda orders: list(callers.map(pool.send, orders))), sessions, sessions
    elif mode == "per_request":
        def one(order):
            return send_per_request(lambda: venue.open_session(timeout=timeout), order)
        with concurrent.futures.ThreadPoolExecutor(sessions, thread_name_prefix="request-caller") as callers:
            yield (lambda orders: list(callers.map(one, orders))), sessions, sessions
    else:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")


_RUNS = itertools.count()


def compare_gateways(n_orders: int = 200, *, venue: LocalAcceptor | None = None,
                     modes: Sequence[str] = MODES, sessions: int = 4, async_sessions: int = 1,
                     window: int = 16, warmup: int = 20, repeats: int = 3, seed: int = 14,
                     timeout: float = 5.0, progress: bool = False) -> pl.DataFrame:
    """Send orders through each gateway mode and measure it: one row per mode.

    Modes (``MODES``): ``blocking`` (one session, one order at a time), ``threaded``
    (``sessions`` worker threads, a session each), ``asyncio`` (``async_sessions`` sessions,
    ``window`` orders in flight), ``pool`` (``sessions`` pooled sessions shared by as many
    caller threads) and ``per_request`` (as many caller threads, each order on a new
    connection: connect, logon, order, logout). Each mode opens its gateway once, sends
    ``warmup`` orders (not measured), then ``repeats`` runs of ``n_orders`` orders.
    ``venue``: a running ``LocalAcceptor`` (None: one is started and stopped for this
    call); mode k trades the venue's symbol k (cycling), with ``order_flow``.

    Columns: mode, sessions (connections used), in_flight (orders outstanding at once),
    orders (measured, all runs), seconds (their wall time), orders_per_s (the median run's:
    a shared machine's hiccups move one run, not the median), mean_us / p50_us / p99_us
    (over every measured order: latency from when work on an order began to its final
    report, connecting included for per_request), logons (what the acceptor counted for the
    mode: its set-up plus the measured orders').
    """
    _positive(n_orders, "n_orders", integer=True)
    _positive(sessions, "sessions", integer=True)
    _positive(async_sessions, "async_sessions", integer=True)
    _positive(window, "window", integer=True)
    _positive(repeats, "repeats", integer=True)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} must be a non-negative integer")
    if isinstance(modes, str):
        modes = [modes]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes={list(modes)!r}: each must be one of {', '.join(MODES)}")
    if venue is not None and not isinstance(venue, LocalAcceptor):
        raise ValueError(f"venue={venue!r} must be a LocalAcceptor (or None)")
    need = max(sessions if set(modes) & {"threaded", "pool", "per_request"} else 1,
               async_sessions if "asyncio" in modes else 1)
    if venue is not None and need > len(venue.senders):
        raise ValueError(f"sessions={need} but the venue allows {len(venue.senders)} SenderCompIDs")
    own = venue is None
    if own:
        venue = LocalAcceptor(senders=max(8, need)).start()
    run_id = next(_RUNS)
    rows = []
    steps = modes
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(modes, desc="gateways", unit="mode")
    try:
        for k, mode in enumerate(steps):
            symbol = venue.symbols[k % len(venue.symbols)]
            tag = f"r{os.getpid()}x{run_id}{mode[:2]}"
            warm = order_flow(warmup, symbol=symbol, seed=seed + 1000 + k, prefix=f"{tag}w") if warmup else []
            before = venue.stats()["logons"]
            replies, rates, seconds = [], [], 0.0
            with _driver(mode, venue, sessions, async_sessions, window, timeout) as (run, used, in_flight):
                if warm:
                    run(warm)
                warmed = venue.stats()["logons"]
                for r in range(repeats):
                    flow = order_flow(n_orders, symbol=symbol, seed=seed + 100 * r + k, prefix=f"{tag}{r}-")
                    start = time.perf_counter()
                    answered = run(flow)
                    took = time.perf_counter() - start
                    if len(answered) != n_orders or any(not a.reports or not a.reports[-1].final
                                                        for a in answered):
                        raise GatewayError(f"{mode}: {n_orders} orders sent but not every one was answered")
                    replies += answered
                    rates.append(n_orders / took)
                    seconds += took
                done = venue.stats()["logons"]
            setup = warmed - before - (len(warm) if mode == "per_request" else 0)
            rows.append({"mode": mode, "sessions": used, "in_flight": min(in_flight, n_orders),
                         "orders": len(replies), "seconds": seconds,
                         "orders_per_s": float(np.median(rates)), **latency_summary(replies),
                         "logons": setup + done - warmed})
    finally:
        if own:
            venue.stop()
    return pl.DataFrame(rows)
