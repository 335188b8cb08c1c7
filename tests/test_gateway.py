"""The FIX gateways (``workbench.fix.gateway``) against the project's real acceptor.

One acceptor process (``LocalAcceptor``) serves the module; each test trades its own symbol,
so its book starts empty. The acceptor's engine decides every fill; the expectation is
independent: the orders replayed, in the order the acceptor received them (its OrderIDs
count arrivals), through the plain-Python reference book (``workbench.reference``). The
timeouts are proved against peers written here that never answer, trickle, flood or
garble, and every test checks that it leaves no thread and no file descriptor behind.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import socket
import threading
import time

import polars as pl
import pytest

from kernels import records as R
from workbench.enums import Side, TimeInForce
from workbench.fix import build_message
from workbench.fix.encoder import format_timestamp
from workbench.fix.gateway import (
    MODES, AsyncGateway, BlockingSession, EventLoopThread, GatewayError, GatewayTimeout, LocalAcceptor,
    LogonRefused, Order, SessionFactory, SessionPool, ThreadedGateway, compare_gateways, order_flow,
    replies_frame, send_per_request,
)
from workbench.reference import ReferenceBook
from workbench.teaching.exercises import nb14

SYMBOLS = tuple(f"T{k}" for k in range(12))
_next_symbol = iter(SYMBOLS)


@pytest.fixture(scope="module")
def venue():
    with LocalAcceptor(symbols=SYMBOLS, senders=8) as v:
        yield v


def _fds() -> set:
    """Open sockets of this process (an event loop holds two: its self-pipe)."""
    if not os.path.isdir("/proc/self/fd"):
        return set()
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            found.add(link)
    return found


@pytest.fixture(autouse=True)
def no_leaks(venue):
    """Nothing this test started may outlive it: threads, sockets, event loops."""
    threads, fds = set(threading.enumerate()), _fds()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        if not extra and not _fds() - fds:
            break
        time.sleep(0.02)
    assert not extra, f"threads left running: {[t.name for t in extra]}"
    assert not _fds() - fds, f"left open: {sorted(_fds() - fds)}"


def _wait_connections(venue, expected: int) -> dict:
    deadline = time.monotonic() + 5
    while True:
        stats = venue.stats()
        if stats["connections"] == expected or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


# ------------------------------------------------------------- the independent expectation
_STATUS = {R.ST_NEW: "new", R.ST_FILLED: "filled", R.ST_CANCELLED: "canceled",
           R.ST_PARTIALLY_FILLED: "partially_filled"}


def _expected(orders_in_arrival_order):
    """Per ClOrdID (status, fills, filled qty) and the makers' fills, from the reference book."""
    book = ReferenceBook(tick=1)
    names, answers, makers = {}, {}, collections.Counter()
    for k, o in enumerate(orders_in_arrival_order, start=1):
        result = book.add(k, R.BUY if o.side == Side.BUY else R.SELL, round(o.price * 100), o.qty,
                          R.LIMIT, R.GTC if o.tif == TimeInForce.GTC else R.IOC)
        names[k] = o.cl_ord_id
        answers[o.cl_ord_id] = (_STATUS[result.status], [(f.price / 100, f.qty) for f in result.fills],
                                result.filled)
        for f in result.fills:
            makers[(names[f.maker_id], f.price / 100, f.qty, f.maker_leaves)] += 1
    return answers, makers, len(book.orders)


def _check_against_reference(replies, unsolicited, orders, *, maker_reports=True):
    assert [r.order.cl_ord_id for r in replies] == [o.cl_ord_id for o in orders]   # in order
    ids = [r.order_id for r in replies]
    assert len(set(ids)) == len(ids) and min(ids) > 0
    arrival = [r.order for r in sorted(replies, key=lambda r: r.order_id)]
    answers, makers, resting = _expected(arrival)
    traded = 0
    for reply in replies:
        status, fills, filled = answers[reply.order.cl_ord_id]
        got = (reply.status, reply.fills, reply.filled)
        assert got == (status, fills, filled), f"{reply.order}: got {got}, the reference book says " \
                                               f"{(status, fills, filled)}"
        assert all(r.cl_ord_id == reply.order.cl_ord_id for r in reply.reports)
        traded += bool(fills)
    assert traded >= 3, "the flow must make the acceptor's book trade"
    received = collections.Counter((r.cl_ord_id, r.last_px, r.last_qty, r.leaves_qty)
                                   for r in unsolicited if r.exec_type == "trade")
    if maker_reports:
        assert received == makers   # every maker's fill reached its (still open) session
    return resting


# ---------------------------------------------------------------------------- gateways
def test_order_validates_its_fields():
    assert Order("a1", "T0", "buy", 100, 99.99, "ioc").tif == TimeInForce.IOC
    for kwargs, field in ((dict(qty=0), "qty"), (dict(qty=1.5), "qty"), (dict(price=-1.0), "price"),
                          (dict(price=float("nan")), "price"), (dict(side="up"), "side"),
                          (dict(cl_ord_id="a|b"), "cl_ord_id"), (dict(tif="day"), "tif")):
        args = {**dict(cl_ord_id="a1", symbol="T0", side="buy", qty=100, price=99.99), **kwargs}
        with pytest.raises(ValueError, match=field):
            Order(**args)


def test_blocking_session_gets_every_report_the_book_decides(venue):
    symbol = next(_next_symbol)
    orders = order_flow(40, symbol=symbol, seed=1, prefix="blk-")
    before = venue.stats()
    with venue.open_session() as session:
        replies = [session.send_order(o) for o in orders]
    assert [r.order_id for r in replies] == sorted(r.order_id for r in replies)   # one at a time
    resting = _check_against_reference(replies, session.unsolicited, orders)
    after = _wait_connections(venue, before["connections"])
    assert after["live_orders"] - before["live_orders"] == resting
    assert after["logons"] - before["logons"] == 1
    assert all(r.done_ns >= r.sent_ns == r.started_ns for r in replies)
    table = replies_frame(replies, session.unsolicited)      # for people: names and prices
    assert table.height == sum(len(r.reports) for r in replies) + len(session.unsolicited)
    assert set(table["ord_status"]) <= {"new", "partially_filled", "filled", "canceled"}
    assert set(table["side"]) == {"buy", "sell"} and table["reply"].null_count() == len(session.unsolicited)
    assert table.filter(pl.col("exec_type") == "trade")["last_px"].is_between(99.95, 100.05).all()


def _run_threaded(venue, orders):
    with ThreadedGateway(venue.host, venue.port, venue.senders[:3]) as gateway:
        replies = gateway.run(orders)
    return replies, gateway.unsolicited, 3


def _run_asyncio(venue, orders):
    async def main():
        async with AsyncGateway(venue.host, venue.port, venue.senders[:2], window=8) as gateway:
            replies = await gateway.run(orders)
        assert 1 < gateway.peak_in_flight <= 8
        return replies, gateway.unsolicited

    replies, unsolicited = asyncio.run(main())
    return replies, unsolicited, 2


def _run_pool(venue, orders):
    with SessionPool(venue.open_session, 3) as pool, \
            concurrent.futures.ThreadPoolExecutor(5) as callers:   # more callers than sessions
        replies = list(callers.map(pool.send, orders))
    assert pool.reconnects == 0 and len(pool.sessions) == 3
    assert {r.session for r in replies} == {s.sender for s in pool.sessions}
    return replies, pool.unsolicited, 3


@pytest.mark.parametrize("runner", [_run_threaded, _run_asyncio, _run_pool], ids=["threaded", "asyncio", "pool"])
def test_concurrent_gateways_get_every_report_the_book_decides(venue, runner):
    symbol = next(_next_symbol)
    orders = order_flow(60, symbol=symbol, seed=2, prefix=f"{runner.__name__}-")
    before = venue.stats()
    replies, unsolicited, sessions = runner(venue, orders)
    resting = _check_against_reference(replies, unsolicited, orders)
    after = _wait_connections(venue, before["connections"])
    assert after["live_orders"] - before["live_orders"] == resting
    # k sessions, logged on once each and reused for all 60 orders
    assert after["logons"] - before["logons"] == sessions
    assert after["accepted"] - before["accepted"] == sessions
    assert len({r.session for r in replies}) == sessions


def test_per_request_logs_on_for_every_order_and_misses_later_maker_fills(venue):
    symbol = next(_next_symbol)
    orders = order_flow(24, symbol=symbol, seed=3, prefix="cpr-")
    before = venue.stats()
    with concurrent.futures.ThreadPoolExecutor(3) as callers:
        replies = list(callers.map(lambda o: send_per_request(venue.open_session, o), orders))
    _check_against_reference(replies, [], orders, maker_reports=False)
    after = _wait_connections(venue, before["connections"])
    assert after["logons"] - before["logons"] == len(orders)
    assert after["accepted"] - before["accepted"] == len(orders)
    assert all(r.started_ns < r.sent_ns for r in replies)   # connecting counts in its latency


def test_compare_gateways_measures_every_mode(venue):
    frame = compare_gateways(12, venue=venue, sessions=3, window=6, warmup=4, repeats=2)
    assert frame["mode"].to_list() == list(MODES)
    assert frame.columns == ["mode", "sessions", "in_flight", "orders", "seconds", "orders_per_s",
                             "mean_us", "p50_us", "p99_us", "logons"]
    rows = {r["mode"]: r for r in frame.to_dicts()}
    assert {m: r["logons"] for m, r in rows.items()} == {
        "blocking": 1, "threaded": 3, "asyncio": 1, "pool": 3, "per_request": 24}
    assert {m: r["in_flight"] for m, r in rows.items()} == {
        "blocking": 1, "threaded": 3, "asyncio": 6, "pool": 3, "per_request": 3}
    for r in rows.values():
        assert r["orders"] == 24 and 0 < r["p50_us"] <= r["p99_us"] * 1.001
    one = compare_gateways(10, venue=venue, modes=["blocking"], warmup=0, repeats=1).row(0, named=True)
    assert one["orders_per_s"] == pytest.approx(10 / one["seconds"])
    with pytest.raises(ValueError, match="modes"):
        compare_gateways(5, venue=venue, modes=["carrier_pigeon"])
    with pytest.raises(ValueError, match="sessions"):
        compare_gateways(5, venue=venue, sessions=9, modes=["pool"])


def test_gateway_figure_shows_the_frame_it_is_given():
    from workbench.fix.plots import gateway_figure

    frame = pl.DataFrame({"mode": ["blocking", "asyncio"], "orders_per_s": [3000.0, 9000.0],
                          "p50_us": [300.0, 1500.0], "p99_us": [900.0, 4000.0]})
    layout = gateway_figure(frame, width=860)
    assert sum(child.width for child in layout.children) <= 900
    (bars,) = layout.select({"name": "throughput"})
    assert bars.data_source.data["orders_per_s"] == [3000.0, 9000.0]
    with pytest.raises(ValueError, match="p99_us"):
        gateway_figure(frame.drop("p99_us"))


def test_logon_refused_for_a_sender_not_on_the_allow_list(venue):
    with pytest.raises(LogonRefused, match="allow-list"):
        BlockingSession(venue.host, venue.port, "STRANGER", timeout=5).open()
    with pytest.raises(LogonRefused, match="allow-list"):
        asyncio.run(AsyncGateway(venue.host, venue.port, ["STRANGER"], timeout=5).open())


def test_factory_hands_out_each_sender_once(venue):
    factory = SessionFactory(venue.host, venue.port, venue.senders[:2])
    with factory() as a, factory() as b:
        assert {a.sender, b.sender} == set(venue.senders[:2])
        with pytest.raises(GatewayError, match="in use"):
            factory()
    with factory() as c:       # closed sessions gave their SenderCompIDs back
        assert c.sender in venue.senders[:2]
    assert factory.opened == 3


# ------------------------------------------------------------------- misbehaving peers
class Peer:
    """A TCP server on a free localhost port that misbehaves: ``"silent"`` never answers,
    ``"logon"`` answers the Logon and then nothing, ``"trickle"`` sends that answer a byte every 50 ms,
    ``"flood"`` an endless message head, ``"garbage"`` bytes that are not FIX."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, name=f"peer-{behaviour}")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        for c in self.clients:
            c.close()
        self.server.close()

    def _serve(self):
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except socket.timeout:
                continue
            client.settimeout(0.05)
            self.clients.append(client)
            self._behave(client)

    def _behave(self, client):
        logon = build_message("A", [(49, "ISLD"), (56, "GW00"), (34, 1), (52, format_timestamp(time.time_ns())),
                                    (98, 0), (108, 30), (141, "Y")])
        if self.behaviour == "logon":
            self._read(client)
            client.sendall(logon)
        elif self.behaviour == "flood":
            client.sendall(b"8=FIX.4.4\x019=999999\x0135=8\x01" + b"x" * 20_000)
        elif self.behaviour == "garbage":
            client.sendall(b"\x00\xffnot fix at all\x01" * 50)
        trickle = iter(logon)
        while not self.stop.is_set():
            if self._read(client) == b"":
                return                        # the client hung up: serve the next one
            if self.behaviour == "trickle":   # a real Logon reply, one byte per 50 ms
                client.sendall(bytes([next(trickle, 0x01)]))

    def _read(self, client):
        try:
            return client.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""


def test_blocking_session_times_out_on_a_silent_peer():
    with Peer("silent") as peer:
        start = time.monotonic()
        with pytest.raises(GatewayTimeout, match=rf"logon: no answer from the acceptor at 127.0.0.1:{peer.port} "
                                                 r"within 0.3 s"):
            BlockingSession("127.0.0.1", peer.port, "GW00", timeout=0.3).open()
        assert time.monotonic() - start < 5


def test_trickling_bytes_do_not_stretch_the_deadline():
    with Peer("trickle") as peer:
        start = time.monotonic()
        with pytest.raises(GatewayTimeout, match="logon"):
            BlockingSession("127.0.0.1", peer.port, "GW00", timeout=0.4).open()
        assert time.monotonic() - start < 5


def test_an_order_times_out_when_the_peer_stops_answering():
    with Peer("logon") as peer:
        with BlockingSession("127.0.0.1", peer.port, "GW00", timeout=0.3) as session:
            order = Order("lost-1", "T0", "buy", 100, 99.99)
            with pytest.raises(GatewayTimeout, match="order lost-1: no answer"):
                session.send_order(order)

        async def main():
            async with AsyncGateway("127.0.0.1", peer.port, ["GW00"], timeout=0.3) as gateway:
                await gateway.send(Order("lost-2", "T0", "sell", 100, 100.01))

        with pytest.raises(GatewayTimeout, match="order lost-2: no final report"):
            asyncio.run(main())


def test_async_and_threaded_gateways_time_out_on_a_silent_peer():
    with Peer("silent") as peer:
        with pytest.raises(GatewayTimeout, match="logon: no answer"):
            asyncio.run(AsyncGateway("127.0.0.1", peer.port, ["GW00", "GW01"], timeout=0.3).open())
        with pytest.raises(GatewayTimeout, match="logon: no answer"):
            with ThreadedGateway("127.0.0.1", peer.port, ["GW00", "GW01"], timeout=0.3):
                pass
        with pytest.raises(GatewayTimeout, match="logon: no answer"):
            SessionPool(SessionFactory("127.0.0.1", peer.port, ["GW00"], timeout=0.3), 1).open()


@pytest.mark.parametrize("behaviour, message", [("flood", "without completing a message"),
                                                ("garbage", "garbled")])
def test_reads_are_bounded_and_checked(behaviour, message):
    with Peer(behaviour) as peer:
        with pytest.raises(GatewayError, match=message):
            BlockingSession("127.0.0.1", peer.port, "GW00", timeout=2).open()


def test_nothing_is_listening():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(GatewayError, match="connect"):
        BlockingSession("127.0.0.1", port, "GW00", timeout=1).open()


def test_event_loop_thread_bounds_a_coroutine():
    with EventLoopThread() as loop:
        assert loop.run(asyncio.sleep(0, result=7)) == 7
        with pytest.raises(GatewayTimeout):
            loop.run(asyncio.sleep(30), timeout=0.1)


# ----------------------------------------------------------------------- the checkers
def _pooled_right(open_session, orders, k):
    import queue

    sessions = [open_session() for _ in range(k)]
    free = queue.Queue()
    for s in sessions:
        free.put(s)

    def one(order):
        s = free.get()
        try:
            return s.send_order(order)
        finally:
            free.put(s)
    try:
        with concurrent.futures.ThreadPoolExecutor(k) as pool:
            return list(pool.map(one, orders))
    finally:
        for s in sessions:
            s.close()


def _per_request(open_session, orders, k):
    replies = []
    for order in orders:
        with open_session() as session:
            replies.append(session.send_order(order))
    return replies


def _left_open(open_session, orders, k):
    sessions = [open_session() for _ in range(k)]
    return [sessions[i % k].send_order(o) for i, o in enumerate(orders)]


def _shuffled(open_session, orders, k):
    return _pooled_right(open_session, orders, k)[::-1]


def test_checker_14_1_pooled_send(venue):
    assert nb14.check_pooled_send(_pooled_right, venue)
    for wrong, words in ((_per_request, "connect-per-request"), (_shuffled, "in the order"),
                         (_left_open, "still open"), (lambda *a: None, "list")):
        verdict = nb14.check_pooled_send(wrong, venue)
        assert not verdict and words in verdict.message, verdict.message
        _wait_connections(venue, 0)   # what a wrong answer left open is closed by the checker


def test_checker_14_2_littles_law():
    frame = pl.DataFrame({"mode": ["blocking", "threaded", "asyncio"], "in_flight": [1, 4, 16],
                          "orders_per_s": [3000.0, 9000.0, 12000.0], "mean_us": [320.0, 430.0, 1300.0],
                          "p50_us": [300.0, 400.0, 1250.0], "p99_us": [900.0, 1900.0, 4000.0]})

    def right(f):
        return f.with_columns(bound_per_s=pl.col("in_flight") / (pl.col("mean_us") / 1e6))

    assert nb14.check_littles_law(right, frame)
    for wrong, words in (
            (lambda f: f.with_columns(bound_per_s=pl.col("in_flight") / (pl.col("p50_us") / 1e6)), "mean"),
            (lambda f: f.with_columns(bound_per_s=pl.col("in_flight") / pl.col("mean_us")), "seconds"),
            (lambda f: f.with_columns(bound_per_s=1e6 / pl.col("mean_us")), "in_flight"),
            (lambda f: f, "bound_per_s"), (lambda f: f.head(1).pipe(right), "rows")):
        verdict = nb14.check_littles_law(wrong, frame)
        assert not verdict and words in verdict.message, verdict.message


async def _window_right(gateway, orders, window):
    slots = asyncio.Semaphore(window)

    async def one(order):
        async with slots:
            return await gateway.send(order)
    return list(await asyncio.gather(*(one(o) for o in orders)))


async def _one_at_a_time(gateway, orders, window):
    return [await gateway.send(o) for o in orders]


async def _unbounded(gateway, orders, window):
    return list(await asyncio.gather(*(gateway.send(o) for o in orders)))


def _not_async(gateway, orders, window):
    return []


def test_checker_14_3_send_window(venue):
    assert nb14.check_send_window(_window_right, venue)
    for wrong, words in ((_one_at_a_time, "at most 1"), (_unbounded, "Semaphore"),
                         (_not_async, "async def")):
        verdict = nb14.check_send_window(wrong, venue)
        assert not verdict and words in verdict.message, verdict.message
