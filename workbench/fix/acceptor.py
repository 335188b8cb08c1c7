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

Durability (``AcceptorConfig(journal=DIR, durability=...)``): the engine journals every
command in DIR and the sessions journal, in the same sequence, what they sent, their
sequence numbers and who owns which order (``workbench.fix.store``). Each batch of
received bytes (and each timer tick) is one transaction: its engine commands, then its
session records, then a commit record; its messages go out only once that commit is
durable under the policy ("every", "batch"; with "none" at once), waited for off the
event loop so other connections keep being served (their transactions share the
syncs: group commit). A new acceptor over the same DIR - after a restart or a crash -
recovers the engine up to the last commit (what follows was never acknowledged) and
every session: sequence numbers continue, ResendRequests get the original messages
(PossDupFlag=Y) or gap fills, and each counterparty can still cancel its own orders
and nobody else's.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hmac
import logging
import math
import time
from pathlib import Path

import numpy as np

from kernels.records import EXEC_REPORT
from workbench.data.prices import PRICE_SCALE
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce
from workbench.fix.config import AcceptorConfig
from workbench.fix.parser import Workspace
from workbench.fix.session import (
    NS_PER_DAY, FixSession, InboundMessage, LogonRefused, Outgoing, SessionState,
)
from workbench.fix.store import FixJournal, FixOrder, FixState, read_state, remember

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


_Order = FixOrder   # owner, ClOrdID, symbol, side, qty, price, type, cum_qty, notional


class EngineApplication:
    """FIX order entry against an ``Engine`` (see the module docstring).

    ``orders`` holds the resting orders by engine order id and ``by_cl_ord_id`` maps
    (owner, ClOrdID) to them; both forget an order once it is filled or cancelled.
    ``deliver(owner, Outgoing)`` (set by the acceptor) sends reports to a maker on
    another connection. ``journal`` (a ``workbench.fix.store.FixJournal``, set by a
    journaled acceptor): the orders changed and the ClOrdIDs seen are journaled at each
    commit (:meth:`journal_changes`).
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
        self.next_exec_id = 1
        self.deliver = None   # callable(owner, Outgoing) for makers on other connections
        self.journal: FixJournal | None = None
        self._dirty: dict[int, None] = {}       # orders changed since the last commit
        self._seen_log: list[tuple] = []        # (owner, ClOrdID) looked up since then

    # ------------------------------------------------------------ durable state
    def _touch(self, order_id: int) -> None:
        if self.journal is not None:
            self._dirty[order_id] = None

    def journal_changes(self) -> None:
        """Journal the orders changed and the ClOrdIDs seen since the last call."""
        journal = self.journal
        if journal is None:
            return
        for owner, cl_ord_id in self._seen_log:
            journal.seen(owner, cl_ord_id)
        for order_id in self._dirty:
            journal.order(order_id, self.orders.get(order_id))
        self._seen_log.clear()
        self._dirty.clear()

    def export_state(self, state: FixState) -> None:
        """Copy the orders, the ClOrdIDs seen and the next ExecID into ``state``."""
        state.orders = {oid: FixOrder(o.owner, o.cl_ord_id, o.symbol, int(o.side), o.qty,
                                      o.price, int(o.order_type), o.cum_qty, o.notional)
                        for oid, o in self.orders.items()}
        state.seen = {owner: seen.copy() for owner, seen in self._seen.items()}
        state.next_exec_id = self.next_exec_id

    def restore_state(self, state: FixState) -> None:
        """The orders, ClOrdIDs and ExecIDs of a restored ``FixState``."""
        self.orders = {oid: _Order(o.owner, o.cl_ord_id, o.symbol, Side(o.side), o.qty, o.price,
                                   OrderType(o.order_type), o.cum_qty, o.notional)
                       for oid, o in state.orders.items()}
        self.by_cl_ord_id = {(o.owner, o.cl_ord_id): oid for oid, o in self.orders.items()}
        self._seen = {owner: seen.copy() for owner, seen in state.seen.items()}
        self.next_exec_id = state.next_exec_id

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
        r["exec_id"] = self.next_exec_id
        self.next_exec_id += 1
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
            self._touch(order_id)

    def _fill_reports(self, owner, order_id, order, result) -> tuple[list, list, list]:
        """Taker reports for ``result.fills`` and the makers' reports (for their sessions)."""
        mine, ids, others = [], [], []
        scale = self.price_scale
        if len(result.fills):
            self._touch(order_id)
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
                self._touch(maker_id)
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
        if self.journal is not None:
            self._seen_log.append((owner, cl_ord_id))
        return remember(self._seen.setdefault(owner, collections.OrderedDict()), cl_ord_id,
                        self.limits.max_stored)

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
        self._touch(result.order_id)
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
        self._touch(order_id)
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

    With ``config.journal`` (a directory) everything is durable (module docstring). On a
    new directory ``engine`` is the engine to journal (it must not have a journal of its
    own); on a directory that holds a journal, the acceptor recovers from it: ``engine``
    may then be None, or a command-less engine of the same settings (so the same code
    starts and restarts), and ``acceptor.engine`` is the recovered one;
    ``acceptor.recovery`` says what was restored.
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
        if engine is not None and getattr(engine, "journal", None) is not None:
            raise ValueError(f"engine already journals to {str(engine.journal.directory)!r}: give "
                             f"the acceptor a journal-less engine and AcceptorConfig(journal=DIR)")
        self.config = config
        self.clock = clock
        self.sender_comp_id = sender_comp_id
        self.host = host
        self.port = port
        self.timer_interval = float(timer_interval)
        self.states: dict[tuple, SessionState] = {}      # per counterparty, across reconnects
        self.stats: collections.Counter = collections.Counter()
        self.recovery: dict | None = None
        self._journal = None        # the engine's workbench.journal.Journal
        self._fixlog: FixJournal | None = None
        self._outbox: collections.deque = collections.deque()   # (commit seq, session, bytes)
        self._pending: list[tuple[FixSession, bytes]] = []      # this transaction's messages
        self._waiter = None         # the thread that waits for syncs off the event loop
        self._last_snapshot_seq = 0
        if config.journal is None:
            if engine is None:
                raise ValueError("engine=None needs AcceptorConfig(journal=DIR) to recover from")
            if config.mode.journal:
                logger.warning("FixAcceptor: no journal (AcceptorConfig(journal=DIR)): sessions, "
                               "sent messages and order ownership are lost when it stops")
        else:
            engine = self._open_journal(engine, Path(config.journal))
        self.application = EngineApplication(engine, config, clock=clock)
        self.application.deliver = self._deliver
        if self._fixlog is not None:
            self.application.journal = self._fixlog
            if self._restored is not None:
                self._install(self._restored)
            self._fixlog.commit(self.application.next_exec_id, force=True)  # the opening mark
        self._restored = None
        self._live: dict[tuple, FixSession] = {}          # logged-on counterparty -> its session
        self._writers: dict[FixSession, asyncio.StreamWriter] = {}
        self._peers: collections.Counter = collections.Counter()
        self._tasks: set[asyncio.Task] = set()
        self._workspace = Workspace()   # parses never overlap on one event loop: share it
        self._server: asyncio.AbstractServer | None = None

    # ------------------------------------------------------------- durability
    @property
    def engine(self):
        """The engine orders go to (after a recovery: the recovered one)."""
        return self.application.engine

    @property
    def journal(self):
        """The engine's ``workbench.journal.Journal`` (None without ``config.journal``)."""
        return self._journal

    def _open_journal(self, engine, directory: Path):
        """Attach a new journal, or recover the acceptor's state from an existing one."""
        from workbench.journal import files
        from workbench.journal.writer import attach

        config = self.config
        self._restored = None
        durability = config.durability or config.mode.durability
        existing = directory.is_dir() and (files.list_segments(directory)
                                           or files.list_snapshots(directory))
        if not existing:
            if engine is None:
                raise ValueError(f"journal={str(directory)!r} holds no journal yet: pass the "
                                 f"engine to journal")
            fresh = engine.stats()["events"] == 0
            attach(engine, directory, durability, None, config.journal_options)
            self._journal = engine.journal
            self._fixlog = FixJournal(self._journal)
            if not fresh:   # its state so far: a snapshot before the first record
                self._journal.snapshot(engine, extra={"fix": FixState().to_json()})
            return engine
        return self._recover(engine, directory, durability)

    def _recover(self, engine, directory: Path, durability: str):
        import warnings

        from workbench.book import Engine
        from workbench.journal import JournalReader, JournalTailWarning
        from workbench.journal import recover as recover_engine

        config = self.config
        reader = JournalReader(directory)
        settings = reader.meta["settings"] if reader.meta else None
        if engine is not None:
            if engine.stats()["events"] or (settings is not None and engine._settings() != settings):
                raise ValueError(f"journal={str(directory)!r} already holds a journal: pass "
                                 f"engine=None (or an engine of the same settings with no "
                                 f"orders) to recover it")
        skipped: list = []
        image = reader.snapshot_for(None, None, skipped)
        base = None
        start = 1
        if image is not None:
            fix = image.extra.get("fix")
            if fix is None:
                raise ValueError(f"{directory}: snapshot {image.seq} holds no FIX state (taken "
                                 f"by engine.snapshot(), not acceptor.snapshot()): the sessions "
                                 f"cannot be recovered from it")
            base = FixState.from_json(fix, config.max_stored)
            start = image.seq + 1
        state = read_state(reader.records(start), base, config.max_stored)
        kind = type(engine) if engine is not None else Engine
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", JournalTailWarning)
            recovered = recover_engine(kind, directory, durability, None, config.journal_options,
                                       keep_until=state.last_commit)
        for w in caught:
            if not issubclass(w.category, JournalTailWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        report = recovered.recovery
        self._journal = recovered.journal
        self._fixlog = FixJournal(self._journal, state.sids)
        self._restored = state
        self.recovery = {
            "engine": report.to_dict(), "last_commit": state.last_commit,
            "cut": report.tail.to_dict() if report.tail is not None else None,
            "sessions": {f"{i[0]}->{i[1]}": {"next_out": st.next_out, "expected_in": st.expected_in,
                                               "stored": len(st.sent)}
                         for i, st in state.sessions.items()},
            "orders": len(state.orders),
        }
        logger.info("FixAcceptor recovered %s: %s", directory, self.recovery)
        return recovered

    def _install(self, state: FixState) -> None:
        """Make a restored ``FixState`` the acceptor's (sessions and orders)."""
        self.states = dict(state.sessions)
        for identity, session_state in self.states.items():
            self._fixlog.adopt(identity, session_state)
            self._fixlog.committed(identity, session_state)
        self.application.restore_state(state)
        self._last_snapshot_seq = state.last_commit

    def export_state(self) -> FixState:
        """The acceptor's durable state now (what a snapshot holds)."""
        state = FixState(sessions={i: SessionState(st.day, st.next_out, st.expected_in,
                                                   st.max_stored, dict(st.sent))
                                   for i, st in self.states.items()
                                   if self._fixlog is None or i in self._fixlog.sids},
                         sids=dict(self._fixlog.sids) if self._fixlog is not None else {})
        self.application.export_state(state)
        state.last_commit = self._fixlog.last_commit if self._fixlog is not None else 0
        return state

    def snapshot(self, wait: bool = True):
        """Snapshot the engine with the sessions' state (between transactions, from the
        event loop's thread); older journal segments are pruned. Returns the
        ``SnapshotInfo`` (or its future with ``wait=False``)."""
        if self._journal is None:
            raise ValueError("snapshot() needs AcceptorConfig(journal=DIR)")
        self._last_snapshot_seq = self._journal.last_seq
        return self._journal.snapshot(self.engine, wait=wait,
                                      extra={"fix": self.export_state().to_json()})

    def _commit(self) -> None:
        """End a transaction: journal what changed, then queue its messages behind the
        commit record (module docstring)."""
        pending, self._pending = self._pending, []
        seq = 0
        if self._fixlog is not None:   # a failure here drops the messages: never acknowledged
            for session in self._writers:
                self._fixlog.touch(session.state)
            self.application.journal_changes()
            self._fixlog.commit(self.application.next_exec_id)
            seq = self._journal.last_seq
            every = self.config.snapshot_every
            if every and seq - self._last_snapshot_seq >= every:
                self.snapshot(wait=False)
        for session, data in pending:
            self._outbox.append((seq, session, data))

    def _transaction(self):
        if self._journal is None:
            return contextlib.nullcontext()
        return self._journal.deferred(wait=False)

    async def _flush(self) -> None:
        """Write every queued message whose commit is durable (in order)."""
        if not self._outbox:
            return
        journal = self._journal
        durable = math.inf
        if journal is not None and journal.durability != "none":
            target = self._outbox[-1][0]
            if journal.durable_seq < target:
                if self._waiter is None:
                    self._waiter = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="fix-journal-wait")
                try:
                    await asyncio.get_running_loop().run_in_executor(self._waiter, journal.wait,
                                                                     target)
                except Exception:  # the journal failed: nothing unacknowledged goes out
                    logger.exception("FixAcceptor: journal failed, dropping the connections")
                    for _, session, _ in self._outbox:
                        session._close("journal_failed")
                        writer = self._writers.get(session)
                        if writer is not None:
                            writer.transport.abort()
                    self._outbox.clear()
                    return
            durable = journal.durable_seq
        while self._outbox and self._outbox[0][0] <= durable:
            _, session, data = self._outbox.popleft()
            self._write(session, data)

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
        self.close()

    def close(self) -> None:
        """Sync and close the journal (the acceptor's engine takes no more orders)."""
        if self._waiter is not None:
            self._waiter.shutdown(wait=True)
            self._waiter = None
        if self._journal is not None and not self._journal.closed:
            self._journal.close()

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
            if self._fixlog is not None:
                self._fixlog.attach(identity, state)
        session.sender_comp_id = identity[1]
        session.state = state
        self._live[identity] = session

    # --------------------------------------------------------------- delivery
    def _deliver(self, owner: tuple, outgoing: Outgoing) -> None:
        """Reports for a maker: on its live connection, else sequenced into its stored
        state (it gets them by ResendRequest when it logs on again)."""
        session = self._live.get(owner)
        if session is not None and not session.closed and session in self._writers:
            self._pending.append((session, b"".join(session.send_reports(outgoing))))
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
                    data = None
                if data == b"":
                    session._close("eof")
                    break
                try:
                    with self._transaction():
                        out = session.on_timer() if data is None else session.receive(data)
                        if out:
                            self._pending.append((session, b"".join(out)))
                finally:
                    self._commit()
                if self._outbox:
                    await self._flush()
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
