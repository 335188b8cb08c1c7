"""``FixAcceptor``: FIX 4.4 order entry over asyncio TCP (optionally TLS) into the matching ``Engine``.

Owns the network side (one ``FixSession`` per connection, heartbeat and logon timers,
connection limits, the allow-list, the per-counterparty session state that survives a
reconnect) and the application that turns NewOrderSingle / OrderCancelRequest /
OrderCancelReplaceRequest into ``Engine.submit`` / ``cancel`` / ``modify`` calls and the
engine's answers into ExecutionReports (encoded by the kernel encoder) for the taker's
and the makers' sessions. Everything engine-specific sits in ``EngineApplication._submit``
/ ``_cancel`` / ``_modify`` so a change of the engine's signature is a local edit.

Orders belong to a counterparty (its SenderCompID and TargetCompID), not to a
connection: after a reconnect a client can still cancel or replace its earlier orders,
and no other counterparty can. Fills for a counterparty that is offline are sequenced
and stored in its session state, so it gets them by ResendRequest when it returns.
What is admitted and every limit come from one ``AcceptorConfig`` (secure by default:
nobody logs on until counterparties are listed).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import itertools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from kernels.records import EXEC_REPORT
from workbench.data.prices import PRICE_SCALE
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce
from workbench.fix.config import AcceptorConfig
from workbench.fix.parser import Workspace
from workbench.fix.session import (
    NS_PER_DAY, FixSession, InboundMessage, LogonRefused, Outgoing, SessionState,
)

__all__ = ["EngineApplication", "FixAcceptor"]

logger = logging.getLogger(__name__)

_SIDES = {"1": Side.BUY, "2": Side.SELL}
_TYPES = {"1": OrderType.MARKET, "2": OrderType.LIMIT}
_TIFS = {"0": TimeInForce.GTC, "1": TimeInForce.GTC, "3": TimeInForce.IOC, "4": TimeInForce.FOK}
_MAX_PRICE_UNITS = 2 ** 53          # price * price_scale must be an exact float integer

# OrdRejReason (103)
ORR_BROKER = 0
ORR_UNKNOWN_SYMBOL = 1
ORR_EXCHANGE_CLOSED = 2
ORR_EXCEEDS_LIMIT = 3
ORR_UNKNOWN_ORDER = 5
ORR_DUPLICATE = 6
ORR_UNSUPPORTED = 11
ORR_INCORRECT_QTY = 13
ORR_OTHER = 99
_ENGINE_REJECTS = {   # engine RejectReason name -> OrdRejReason; the rest are 99 (other)
    "UNKNOWN_ORDER": ORR_UNKNOWN_ORDER, "DUPLICATE_ID": ORR_DUPLICATE,
    "NON_POSITIVE_QTY": ORR_INCORRECT_QTY, "POOL_FULL": ORR_EXCEEDS_LIMIT,
    "UNKNOWN_SYMBOL": ORR_UNKNOWN_SYMBOL, "INVALID_SIDE": ORR_UNSUPPORTED,
    "INVALID_TYPE": ORR_UNSUPPORTED, "HALTED": ORR_EXCHANGE_CLOSED,
}
# CxlRejReason (102)
CRR_UNKNOWN_ORDER = 1
CRR_OTHER = 99


def _engine_reason(result) -> tuple[str, int]:
    """(Text, OrdRejReason) for an engine reject: the reject reason's name."""
    name = result.reason.name
    return name.lower(), _ENGINE_REJECTS.get(name, ORR_OTHER)


@dataclass
class _Order:
    owner: tuple
    cl_ord_id: str
    symbol: str
    side: Side
    qty: int
    price: float | None
    order_type: OrderType
    cum_qty: int = 0
    notional: float = 0.0


class EngineApplication:
    """FIX order entry against an ``Engine`` (see the module docstring).

    ``orders`` holds the resting orders by engine order id and ``by_cl_ord_id`` maps
    (owner, ClOrdID) to them; both forget an order once it is filled or cancelled.
    ``deliver(owner, Outgoing)`` (set by the acceptor) sends reports to a maker on
    another connection.
    """

    def __init__(self, engine, limits: AcceptorConfig | None = None, *, clock=time.time_ns):
        self.engine = engine
        self.limits = limits if limits is not None else AcceptorConfig()
        self.symbols = tuple(engine.symbols)
        self.price_scale = int(getattr(engine, "price_scale", PRICE_SCALE))
        self.clock = clock
        self.orders: dict[int, _Order] = {}
        self.by_cl_ord_id: dict[tuple, int] = {}
        self._seen: dict[tuple, collections.OrderedDict] = {}   # per owner: recent ClOrdIDs
        self._exec_ids = itertools.count(1)
        self.deliver = None   # callable(owner, Outgoing) for makers on other connections

    # ---------------------------------------------------------- engine adapter
    def _submit(self, symbol, side, price, qty, order_type, tif):
        return self.engine.submit(symbol, side, price, qty, order_type=order_type, tif=tif)

    def _cancel(self, symbol, order_id):
        return self.engine.cancel(symbol, order_id)

    def _modify(self, symbol, order_id, price, qty):
        return self.engine.modify(symbol, order_id, price=price, qty=qty)

    # ----------------------------------------------------------------- reports
    def _report(self, order_id: int, order: _Order, exec_type: str, status: str, leaves: int,
                last_px: float = 0.0, last_qty: int = 0) -> np.ndarray:
        r = np.zeros(1, EXEC_REPORT)[0]
        scale = self.price_scale
        r["order_id"] = order_id
        r["exec_id"] = next(self._exec_ids)
        r["ts"] = self.clock()
        r["price"] = round((order.price or 0.0) * scale)
        r["last_px"] = round(last_px * scale)
        r["last_qty"] = last_qty
        r["order_qty"] = order.qty
        r["cum_qty"] = order.cum_qty
        r["leaves_qty"] = leaves
        r["avg_px"] = round(order.notional / order.cum_qty * scale) if order.cum_qty else 0
        r["msg"] = -1
        r["symbol"] = self.symbols.index(order.symbol) if order.symbol in self.symbols else -1
        r["exec_type"] = ord(exec_type)
        r["ord_status"] = ord(status)
        r["side"] = int(order.side)
        r["order_type"] = int(order.order_type)
        return r

    def _outgoing(self, records: list, cl_ord_ids: list[str], texts=None, reasons=None) -> Outgoing:
        return Outgoing(reports=np.array(records, EXEC_REPORT), cl_ord_ids=cl_ord_ids,
                        symbols=self.symbols, price_scale=self.price_scale, texts=texts,
                        reject_reasons=reasons)

    def _reject(self, msg: InboundMessage, text: str, reason: int = ORR_OTHER, order_id: int = 0,
                price: float | None = None) -> list[Outgoing]:
        """ExecutionReport 150=8 / 39=8 with Text (58) and OrdRejReason (103)."""
        qty = _qty(msg.get(38))
        order = _Order(None, msg.get(11, "?"), msg.get(55, "?"), _SIDES.get(msg.get(54), Side.BUY),
                       qty if qty is not None and qty < 1 << 62 else 0, price,
                       _TYPES.get(msg.get(40), OrderType.LIMIT))
        return [self._outgoing([self._report(order_id, order, "8", "8", 0)], [order.cl_ord_id],
                               [text], [reason])]

    def _forget(self, order_id: int) -> None:
        order = self.orders.pop(order_id, None)
        if order is not None:
            self.by_cl_ord_id.pop((order.owner, order.cl_ord_id), None)

    def _fill_reports(self, owner, order_id, order, result) -> tuple[list, list, list]:
        """Taker reports for ``result.fills`` and the makers' reports (for their sessions)."""
        mine, ids, others = [], [], []
        scale = self.price_scale
        for fill in result.fills:
            qty = int(fill["qty"])
            px = fill["price"] / scale
            order.cum_qty += qty
            order.notional += qty * px
            leaves = order.qty - order.cum_qty
            mine.append(self._report(order_id, order, "F", "2" if leaves == 0 else "1", leaves, px, qty))
            ids.append(order.cl_ord_id)
            maker_id = int(fill["maker_id"])
            maker = self.orders.get(maker_id)
            if maker is not None:
                maker.cum_qty += qty
                maker.notional += qty * px
                m_leaves = int(fill["maker_leaves"])
                record = self._report(maker_id, maker, "F", "2" if m_leaves == 0 else "1", m_leaves, px, qty)
                if maker.owner == owner:
                    mine.append(record)
                    ids.append(maker.cl_ord_id)
                else:
                    others.append((maker.owner, self._outgoing([record], [maker.cl_ord_id])))
                if m_leaves == 0:
                    self._forget(maker_id)
        return mine, ids, others

    def _dispatch(self, others) -> None:
        for owner, outgoing in others:
            if self.deliver is not None:
                self.deliver(owner, outgoing)

    def _check_price(self, text: str | None) -> tuple[float | None, str | None]:
        """(price, problem): a Price must be finite, positive and in range."""
        price = _price(text)
        if price is None:
            return None, None if text is None else f"Price {text!r} is not a number"
        if not math.isfinite(price) or price <= 0:
            return None, f"Price {text} must be positive"
        if price * self.price_scale >= _MAX_PRICE_UNITS:
            return None, f"Price {text} is out of range"
        return price, None

    def _seen_before(self, owner, cl_ord_id: str) -> bool:
        """Remember ``cl_ord_id`` (the last ``max_stored`` per owner); was it seen?"""
        seen = self._seen.setdefault(owner, collections.OrderedDict())
        if cl_ord_id in seen:
            seen.move_to_end(cl_ord_id)
            return True
        seen[cl_ord_id] = None
        if len(seen) > self.limits.max_stored:
            seen.popitem(last=False)
        return False

    # ------------------------------------------------------------- messages
    def __call__(self, session: FixSession, msg: InboundMessage) -> list[Outgoing]:
        if msg.msg_type == "D":
            return self.new_order(session, msg)
        if msg.msg_type == "F":
            return self.cancel(session, msg)
        if msg.msg_type == "G":
            return self.replace(session, msg)
        return [Outgoing("j", [(45, msg.seq_num), (58, "Unsupported Message Type"),
                               (372, msg.msg_type), (380, 3)])]

    def new_order(self, session, msg) -> list[Outgoing]:
        owner = session.owner
        cl_ord_id = msg.get(11)
        seen = self._seen_before(owner, cl_ord_id)
        if msg.get(97) == "Y" and seen:
            return []  # PossResend of an order we already had: ignore it
        if (owner, cl_ord_id) in self.by_cl_ord_id:
            return self._reject(msg, f"duplicate ClOrdID {cl_ord_id!r} of a live order", ORR_DUPLICATE)
        side, order_type = _SIDES.get(msg.get(54)), _TYPES.get(msg.get(40))
        tif, qty, symbol = _TIFS.get(msg.get(59, "0")), _qty(msg.get(38)), msg.get(55)
        price, price_problem = self._check_price(msg.get(44))
        if side is None:
            return self._reject(msg, "unsupported Side", ORR_UNSUPPORTED)
        if order_type is None:
            return self._reject(msg, "unsupported OrdType", ORR_UNSUPPORTED)
        if tif is None:
            return self._reject(msg, "unsupported TimeInForce", ORR_UNSUPPORTED)
        if not qty:
            return self._reject(msg, "OrderQty missing or not a positive whole number", ORR_INCORRECT_QTY)
        if qty > self.limits.max_order_qty:
            return self._reject(msg, f"OrderQty {qty} exceeds the limit {self.limits.max_order_qty}",
                                ORR_EXCEEDS_LIMIT)
        if symbol not in self.symbols:
            return self._reject(msg, f"unknown Symbol {symbol!r}", ORR_UNKNOWN_SYMBOL)
        if order_type == OrderType.LIMIT and (price_problem or price is None):
            return self._reject(msg, price_problem or "limit order needs a Price")
        try:
            result = self._submit(symbol, side, price if order_type == OrderType.LIMIT else None, qty,
                                  order_type, tif)
        except (ValueError, OverflowError, TypeError) as error:
            return self._reject(msg, str(error), price=price)
        order = _Order(owner, cl_ord_id, symbol, side, qty, price, order_type)
        if result.status == OrderStatus.REJECTED:
            text, reason = _engine_reason(result)
            return [self._outgoing([self._report(result.order_id, order, "8", "8", 0)], [order.cl_ord_id],
                                   [text], [reason])]
        self.orders[result.order_id] = order
        self.by_cl_ord_id[(owner, order.cl_ord_id)] = result.order_id
        records, ids, others = self._fill_reports(owner, result.order_id, order, result)
        if not len(result.fills):
            status = "4" if result.status == OrderStatus.CANCELLED else "0"
            records.insert(0, self._report(result.order_id, order, status, status, int(result.leaves)))
            ids.insert(0, order.cl_ord_id)
        elif result.status == OrderStatus.CANCELLED:
            records.append(self._report(result.order_id, order, "4", "4", 0))
            ids.append(order.cl_ord_id)
        if int(result.leaves) <= 0:
            self._forget(result.order_id)   # done: filled or the rest cancelled
        self._dispatch(others)
        return [self._outgoing(records, ids)]

    def _cancel_reject(self, msg, response_to: str, text: str, reason: int = CRR_OTHER) -> list[Outgoing]:
        return [Outgoing("9", [(37, "NONE"), (11, msg.get(11, "?")), (41, msg.get(41, "?")), (39, "8"),
                               (434, response_to), (102, reason), (58, text)])]

    def _known(self, session, msg):
        order_id = self.by_cl_ord_id.get((session.owner, msg.get(41)))
        return order_id, (self.orders.get(order_id) if order_id is not None else None)

    def _rename(self, order_id: int, order: _Order, cl_ord_id: str | None) -> None:
        """The order now answers to ``cl_ord_id`` (FIX: OrigClOrdID names the latest)."""
        if cl_ord_id is None or cl_ord_id == order.cl_ord_id:
            return
        self.by_cl_ord_id.pop((order.owner, order.cl_ord_id), None)
        order.cl_ord_id = cl_ord_id
        self.by_cl_ord_id[(order.owner, cl_ord_id)] = order_id

    def cancel(self, session, msg) -> list[Outgoing]:
        order_id, order = self._known(session, msg)
        if order is None:
            return self._cancel_reject(msg, "1", "unknown OrigClOrdID", CRR_UNKNOWN_ORDER)
        if msg.get(11) != order.cl_ord_id and (session.owner, msg.get(11)) in self.by_cl_ord_id:
            return self._cancel_reject(msg, "1", f"duplicate ClOrdID {msg.get(11)!r}")
        try:
            result = self._cancel(order.symbol, order_id)
        except (ValueError, OverflowError, TypeError) as error:
            return self._cancel_reject(msg, "1", str(error))
        if result.status == OrderStatus.REJECTED:
            return self._cancel_reject(msg, "1", f"engine: {result.reason.name.lower()}")
        self._forget(order_id)
        order.cl_ord_id = msg.get(11, order.cl_ord_id)
        return [self._outgoing([self._report(order_id, order, "4", "4", 0)], [order.cl_ord_id])]

    def replace(self, session, msg) -> list[Outgoing]:
        order_id, order = self._known(session, msg)
        if order is None:
            return self._cancel_reject(msg, "2", "unknown OrigClOrdID", CRR_UNKNOWN_ORDER)
        if msg.get(11) != order.cl_ord_id and (session.owner, msg.get(11)) in self.by_cl_ord_id:
            return self._cancel_reject(msg, "2", f"duplicate ClOrdID {msg.get(11)!r}")
        new_qty = _qty(msg.get(38))
        price, price_problem = self._check_price(msg.get(44))
        if msg.get(38) is not None and new_qty is None:
            return self._cancel_reject(msg, "2", "OrderQty must be a positive whole number")
        if new_qty is not None and new_qty > self.limits.max_order_qty:
            return self._cancel_reject(msg, "2",
                                       f"OrderQty {new_qty} exceeds the limit {self.limits.max_order_qty}")
        if price_problem:
            return self._cancel_reject(msg, "2", price_problem)
        if new_qty is not None and new_qty <= order.cum_qty:
            return self._cancel_reject(msg, "2", "OrderQty not above the filled quantity")
        if new_qty is None and price is None:
            return self._cancel_reject(msg, "2", "nothing to replace: no OrderQty or Price")
        try:
            result = self._modify(order.symbol, order_id, price,
                                  None if new_qty is None else new_qty - order.cum_qty)
        except (ValueError, OverflowError, TypeError) as error:
            return self._cancel_reject(msg, "2", str(error))
        if result.status == OrderStatus.REJECTED:
            return self._cancel_reject(msg, "2", f"engine: {result.reason.name.lower()}")
        self._rename(order_id, order, msg.get(11))
        order.qty = new_qty or order.qty
        order.price = price or order.price
        records = [self._report(order_id, order, "5", "1" if order.cum_qty else "0",
                                int(result.leaves) + sum(int(f["qty"]) for f in result.fills))]
        ids = [order.cl_ord_id]
        fills, fill_ids, others = self._fill_reports(session.owner, order_id, order, result)
        if int(result.leaves) <= 0:
            self._forget(order_id)
        self._dispatch(others)
        return [self._outgoing(records + fills, ids + fill_ids)]


def _qty(text: str | None) -> int | None:
    """A positive whole quantity ("100", "100.0"), else None (never raises)."""
    if text is None:
        return None
    whole, _, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit()) or fraction.strip("0"):
        return None   # not digits, or a fraction that is not all zeros (digits or not)
    value = int(whole)
    return value if value > 0 else None


def _price(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class FixAcceptor:
    """Asyncio FIX 4.4 acceptor on localhost feeding an ``Engine``.

    >>> config = AcceptorConfig(counterparties=["CLIENT1"])   # doctest: +SKIP
    >>> acceptor = FixAcceptor(Engine(symbols=["AAPL"]), config)   # doctest: +SKIP
    >>> host, port = await acceptor.start()                   # doctest: +SKIP

    ``config`` (``AcceptorConfig``) says who may log on and every limit; by default
    nobody may. ``sessions`` lists the live connections' sessions; ``states`` the
    per-counterparty state kept across reconnects; ``stats`` counts connections,
    refusals and why connections closed.
    """

    def __init__(self, engine, config: AcceptorConfig | None = None, *, sender_comp_id: str = "ISLD",
                 host: str = "127.0.0.1", port: int = 0, timer_interval: float = 1.0,
                 clock=time.time_ns):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"host={host!r}: the acceptor only listens on localhost")
        if config is None:
            config = AcceptorConfig()
        elif not isinstance(config, AcceptorConfig):
            raise ValueError(f"config={config!r} must be an AcceptorConfig")
        if not isinstance(timer_interval, (int, float)) or not 0 < timer_interval <= 60:
            raise ValueError(f"timer_interval={timer_interval!r} must be in (0, 60] seconds")
        self.config = config
        self.clock = clock
        self.application = EngineApplication(engine, config, clock=clock)
        self.application.deliver = self._deliver
        self.sender_comp_id = sender_comp_id
        self.host = host
        self.port = port
        self.timer_interval = float(timer_interval)
        self.states: dict[tuple, SessionState] = {}      # per counterparty, across reconnects
        self.stats: collections.Counter = collections.Counter()
        self._live: dict[tuple, FixSession] = {}          # logged-on counterparty -> its session
        self._writers: dict[FixSession, asyncio.StreamWriter] = {}
        self._peers: collections.Counter = collections.Counter()
        self._tasks: set[asyncio.Task] = set()
        self._workspace = Workspace()   # parses never overlap on one event loop: share it
        self._server: asyncio.AbstractServer | None = None

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> tuple[str, int]:
        if not self.config.counterparties:
            logger.warning("FixAcceptor: no counterparties configured, every Logon will be refused")
        tls = self.config.tls
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=tls, backlog=max(100, 2 * self.config.max_connections),
            ssl_handshake_timeout=self.config.logon_timeout if tls is not None else None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers.values()):
                writer.close()
            tasks = [t for t in self._tasks if not t.done()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "FixAcceptor":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---------------------------------------------------------- introspection
    @property
    def sessions(self) -> list[FixSession]:
        """The sessions of the open connections (closed ones are released)."""
        return list(self._writers)

    @property
    def connections(self) -> int:
        return len(self._writers)

    def session_state(self, sender_comp_id: str, target_comp_id: str | None = None) -> SessionState | None:
        """The state kept for a counterparty (sequence numbers, stored messages)."""
        return self.states.get((sender_comp_id, target_comp_id or self.sender_comp_id))

    # ------------------------------------------------------------------ logon
    def _on_logon(self, session: FixSession, msg: InboundMessage) -> None:
        """Allow-list, password, one connection per counterparty, and its state."""
        identity = (msg.get(49), msg.get(56))
        entry = self.config.counterparty(identity[0], identity[1], self.sender_comp_id)
        if entry is None:
            raise LogonRefused("unknown_counterparty")
        if entry.username is not None and not _same(msg.get(553), entry.username):
            raise LogonRefused("bad_credentials")
        if entry.password is not None and not _same(msg.get(554), entry.password):
            raise LogonRefused("bad_credentials")
        current = self._live.get(identity)
        if current is not None and current is not session and not current.closed:
            raise LogonRefused("already_logged_on")   # QuickFIX 1b: the second one is dropped
        today = self.clock() // NS_PER_DAY
        state = self.states.get(identity)
        if state is None or state.day != today:
            state = SessionState(day=today, max_stored=self.config.max_stored)  # a new session day
            self.states[identity] = state
        session.sender_comp_id = identity[1]
        session.state = state
        self._live[identity] = session

    # --------------------------------------------------------------- delivery
    def _deliver(self, owner: tuple, outgoing: Outgoing) -> None:
        """Reports for a maker: on its live connection, else sequenced into its stored
        state (it gets them by ResendRequest when it logs on again)."""
        session = self._live.get(owner)
        if session is not None and not session.closed and session in self._writers:
            self._write(session, b"".join(session.send_reports(outgoing)))
            return
        state = self.states.get(owner)
        if state is not None:
            offline = FixSession(owner[1], owner[0], clock=self.clock, limits=self.config)
            offline.state = state
            offline.send_reports(outgoing)

    def _write(self, session: FixSession, data: bytes) -> None:
        writer = self._writers.get(session)
        if writer is None or writer.is_closing():
            return
        writer.write(data)
        if writer.transport.get_write_buffer_size() > self.config.max_write_buffer:
            session._close("slow_reader")   # counted when its connection ends
            writer.transport.abort()

    # ------------------------------------------------------------ connections
    def _admit(self, peer) -> bool:
        if len(self._writers) >= self.config.max_connections:
            self.stats["refused:max_connections"] += 1
            return False
        if self._peers[peer] >= self.config.max_connections_per_peer:
            self.stats["refused:max_connections_per_peer"] += 1
            return False
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = peername[0] if isinstance(peername, tuple) else str(peername)
        if not self._admit(peer):
            writer.transport.abort()
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        self.stats["accepted"] += 1
        self._peers[peer] += 1
        session = FixSession(self.sender_comp_id, application=self.application, clock=self.clock,
                             limits=self.config, on_logon=self._on_logon, workspace=self._workspace)
        self._writers[session] = writer
        self.stats["peak_connections"] = max(self.stats["peak_connections"], len(self._writers))
        try:
            while not session.closed:
                timeout = self.timer_interval
                if not session.logged_on:
                    timeout = min(timeout, max(0.0, session.logon_deadline() - session.monotonic()) + 0.01)
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except asyncio.TimeoutError:
                    out = session.on_timer()
                else:
                    if not data:
                        session._close("eof")
                        break
                    out = session.receive(data)
                if out:
                    self._write(session, b"".join(out))
                    if not writer.is_closing():
                        await asyncio.wait_for(writer.drain(), self.config.write_timeout)
        except asyncio.TimeoutError:
            session._close("write_timeout")
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            session._close("connection_error")
        except asyncio.CancelledError:
            session._close("cancelled")
        except Exception:  # the server boundary: log, drop this connection, keep serving
            logger.exception("FIX session failed")
            session._close("internal_error")
        finally:
            self.stats[f"closed:{session.close_reason or 'unknown'}"] += 1
            identity = (session.target_comp_id, session.sender_comp_id)
            if self._live.get(identity) is session:
                del self._live[identity]
            self._writers.pop(session, None)
            self._peers[peer] -= 1
            if self._peers[peer] <= 0:
                del self._peers[peer]
            session.release()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


def _same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a credential."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                     expected.encode("utf-8"))
