"""``FixAcceptor``: FIX 4.4 order entry over asyncio TCP into the matching ``Engine``.

Owns the network side (one ``FixSession`` per connection, heartbeat timers) and the
application that turns NewOrderSingle / OrderCancelRequest / OrderCancelReplaceRequest
into ``Engine.submit`` / ``cancel`` / ``modify`` calls and the engine's answers into
ExecutionReports (encoded by the kernel encoder) for the taker's and the makers'
sessions. Everything engine-specific sits in ``EngineApplication._submit`` /
``_cancel`` / ``_modify`` so a change of the engine's signature is a local edit.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass

import numpy as np

from kernels.records import EXEC_REPORT
from workbench.data.prices import PRICE_SCALE
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce
from workbench.fix.session import FixSession, InboundMessage, Outgoing

__all__ = ["EngineApplication", "FixAcceptor"]

_SIDES = {"1": Side.BUY, "2": Side.SELL}
_TYPES = {"1": OrderType.MARKET, "2": OrderType.LIMIT}
_TIFS = {"0": TimeInForce.GTC, "1": TimeInForce.GTC, "3": TimeInForce.IOC, "4": TimeInForce.FOK}


@dataclass
class _Order:
    session: FixSession
    cl_ord_id: str
    symbol: str
    side: Side
    qty: int
    price: float | None
    order_type: OrderType
    cum_qty: int = 0
    notional: float = 0.0


class EngineApplication:
    """FIX order entry against an ``Engine`` (see the module docstring)."""

    def __init__(self, engine):
        self.engine = engine
        self.symbols = tuple(engine.symbols)
        self.price_scale = int(getattr(engine, "price_scale", PRICE_SCALE))
        self.orders: dict[int, _Order] = {}
        self.by_cl_ord_id: dict[tuple[int, str], int] = {}
        self.seen_cl_ord_ids: set[tuple[int, str]] = set()   # every NewOrderSingle, kept or not
        self._exec_ids = itertools.count(1)
        self.deliver = None   # callable(session, [bytes]) for makers on other connections

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
        r["ts"] = order.session.clock()
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

    def _outgoing(self, records: list, cl_ord_ids: list[str]) -> Outgoing:
        return Outgoing(reports=np.array(records, EXEC_REPORT), cl_ord_ids=cl_ord_ids,
                        symbols=self.symbols, price_scale=self.price_scale)

    def _reject(self, session, msg: InboundMessage, text: str) -> list[Outgoing]:
        order = _Order(session, msg.get(11, "?"), msg.get(55, "?"), _SIDES.get(msg.get(54), Side.BUY),
                       _qty(msg.get(38)) or 0, None, OrderType.LIMIT)
        return [self._outgoing([self._report(0, order, "8", "8", 0)], [order.cl_ord_id])]

    def _fill_reports(self, session, order_id, order, result) -> tuple[list, list, list[Outgoing]]:
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
            maker = self.orders.get(int(fill["maker_id"]))
            if maker is not None:
                maker.cum_qty += qty
                maker.notional += qty * px
                m_leaves = int(fill["maker_leaves"])
                record = self._report(int(fill["maker_id"]), maker, "F", "2" if m_leaves == 0 else "1",
                                      m_leaves, px, qty)
                if maker.session is session:
                    mine.append(record)
                    ids.append(maker.cl_ord_id)
                else:
                    others.append((maker.session, self._outgoing([record], [maker.cl_ord_id])))
        return mine, ids, others

    def _dispatch(self, others) -> None:
        for session, outgoing in others:
            if self.deliver is not None and not session.closed:
                self.deliver(session, session.send_reports(outgoing))

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
        key = (id(session), msg.get(11))
        if msg.get(97) == "Y" and key in self.seen_cl_ord_ids:
            return []  # PossResend of an order we already had: ignore it
        self.seen_cl_ord_ids.add(key)
        side, order_type = _SIDES.get(msg.get(54)), _TYPES.get(msg.get(40))
        tif, qty, symbol = _TIFS.get(msg.get(59, "0")), _qty(msg.get(38)), msg.get(55)
        price = _price(msg.get(44))
        problem = (None if side is not None else "unsupported Side") or \
                  (None if order_type is not None else "unsupported OrdType") or \
                  (None if tif is not None else "unsupported TimeInForce") or \
                  (None if qty else "OrderQty missing or not positive") or \
                  (None if symbol in self.symbols else f"unknown Symbol {symbol!r}") or \
                  (None if order_type != OrderType.LIMIT or (price and price > 0) else "limit order needs a Price")
        if problem:
            return self._reject(session, msg, problem)
        try:
            result = self._submit(symbol, side, price if order_type == OrderType.LIMIT else None, qty,
                                  order_type, tif)
        except ValueError as error:
            return self._reject(session, msg, str(error))
        order = _Order(session, msg.get(11), symbol, side, qty, price, order_type)
        if result.status == OrderStatus.REJECTED:
            return [self._outgoing([self._report(result.order_id, order, "8", "8", 0)], [order.cl_ord_id])]
        self.orders[result.order_id] = order
        self.by_cl_ord_id[(id(session), order.cl_ord_id)] = result.order_id
        records, ids, others = self._fill_reports(session, result.order_id, order, result)
        if not len(result.fills):
            status = "4" if result.status == OrderStatus.CANCELLED else "0"
            records.insert(0, self._report(result.order_id, order, status, status, int(result.leaves)))
            ids.insert(0, order.cl_ord_id)
        elif result.status == OrderStatus.CANCELLED:
            records.append(self._report(result.order_id, order, "4", "4", 0))
            ids.append(order.cl_ord_id)
        self._dispatch(others)
        return [self._outgoing(records, ids)]

    def _cancel_reject(self, msg, response_to: str, text: str) -> list[Outgoing]:
        return [Outgoing("9", [(37, "NONE"), (11, msg.get(11, "?")), (41, msg.get(41, "?")), (39, "8"),
                               (434, response_to), (102, 1), (58, text)])]

    def _known(self, session, msg):
        order_id = self.by_cl_ord_id.get((id(session), msg.get(41)))
        return order_id, (self.orders.get(order_id) if order_id is not None else None)

    def cancel(self, session, msg) -> list[Outgoing]:
        order_id, order = self._known(session, msg)
        if order is None:
            return self._cancel_reject(msg, "1", "unknown OrigClOrdID")
        result = self._cancel(order.symbol, order_id)
        if result.status == OrderStatus.REJECTED:
            return self._cancel_reject(msg, "1", f"engine: {result.reason.name.lower()}")
        self.by_cl_ord_id[(id(session), msg.get(11))] = order_id
        order.cl_ord_id = msg.get(11, order.cl_ord_id)
        return [self._outgoing([self._report(order_id, order, "4", "4", 0)], [order.cl_ord_id])]

    def replace(self, session, msg) -> list[Outgoing]:
        order_id, order = self._known(session, msg)
        if order is None:
            return self._cancel_reject(msg, "2", "unknown OrigClOrdID")
        new_qty, price = _qty(msg.get(38)), _price(msg.get(44))
        if new_qty is not None and new_qty <= order.cum_qty:
            return self._cancel_reject(msg, "2", "OrderQty not above the filled quantity")
        try:
            result = self._modify(order.symbol, order_id, price,
                                  None if new_qty is None else new_qty - order.cum_qty)
        except ValueError as error:
            return self._cancel_reject(msg, "2", str(error))
        if result.status == OrderStatus.REJECTED:
            return self._cancel_reject(msg, "2", f"engine: {result.reason.name.lower()}")
        order.cl_ord_id = msg.get(11, order.cl_ord_id)
        self.by_cl_ord_id[(id(session), order.cl_ord_id)] = order_id
        order.qty = new_qty or order.qty
        order.price = price or order.price
        records = [self._report(order_id, order, "5", "1" if order.cum_qty else "0",
                                int(result.leaves) + sum(int(f["qty"]) for f in result.fills))]
        ids = [order.cl_ord_id]
        fills, fill_ids, others = self._fill_reports(session, order_id, order, result)
        self._dispatch(others)
        return [self._outgoing(records + fills, ids + fill_ids)]


def _qty(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value == int(value) and value > 0 else None


def _price(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class FixAcceptor:
    """Asyncio FIX 4.4 acceptor on localhost feeding an ``Engine``.

    >>> acceptor = FixAcceptor(Engine(symbols=["AAPL"]))      # doctest: +SKIP
    >>> host, port = await acceptor.start()                   # doctest: +SKIP
    """

    def __init__(self, engine, *, sender_comp_id: str = "ISLD", host: str = "127.0.0.1", port: int = 0,
                 timer_interval: float = 1.0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"host={host!r}: the acceptor only listens on localhost")
        self.application = EngineApplication(engine)
        self.application.deliver = self._deliver
        self.sender_comp_id = sender_comp_id
        self.host = host
        self.port = port
        self.timer_interval = timer_interval
        self.sessions: list[FixSession] = []
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers.values()):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "FixAcceptor":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _deliver(self, session: FixSession, messages: list[bytes]) -> None:
        writer = self._writers.get(id(session))
        if writer is not None and not writer.is_closing():
            writer.write(b"".join(messages))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = FixSession(self.sender_comp_id, application=self.application)
        self.sessions.append(session)
        self._writers[id(session)] = writer
        try:
            while not session.closed:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.timer_interval)
                except asyncio.TimeoutError:
                    out = session.on_timer()
                else:
                    if not data:
                        break
                    out = session.receive(data)
                if out:
                    writer.write(b"".join(out))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.closed = True
            self._writers.pop(id(session), None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
