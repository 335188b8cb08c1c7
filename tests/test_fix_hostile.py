"""``FixAcceptor`` against hostile and careless clients, over real localhost TCP (and TLS).

Idle and trickling sockets, oversized BodyLength, garbage floods, 200 concurrent
connections, unknown counterparties and bad passwords, malformed fields, reconnects that
must keep sequence numbers and order ownership. Nothing here asserts speed: liveness is
checked with generous bounds only (a well-behaved client still gets its answer within
10 s).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import random
import shutil
import ssl
import subprocess
import time
import weakref

import pytest

from workbench.book import Engine
from workbench.fix import AcceptorConfig, Counterparty, FixAcceptor, FixSession, build_message, parse
from workbench.fix.encoder import format_timestamp
from workbench.fix.session import NS_PER_DAY

LIVENESS = 10.0   # seconds a well-behaved client may wait for an answer (generous)


_OPEN: list["Client"] = []   # every connected client, closed when its test's loop ends


class Client:
    """A raw FIX 4.4 initiator: builds messages, reads and splits the acceptor's replies."""

    def __init__(self, sender: str, target: str = "ISLD", clock=time.time_ns):
        self.sender, self.target, self.clock = sender, target, clock
        self.seq = 0
        self.pending = b""
        self.reader = self.writer = None

    async def connect(self, port: int, **options) -> "Client":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, **options)
        _OPEN.append(self)
        return self

    def message(self, msg_type: str, *fields, seq: int | None = None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return build_message(msg_type, [(49, self.sender), (56, self.target), (34, seq),
                                         (52, format_timestamp(self.clock())), *fields])

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, msg_type: str, *fields, seq: int | None = None) -> None:
        await self.write(self.message(msg_type, *fields, seq=seq))

    def _split(self) -> list[dict[int, str]]:
        batch = parse(self.pending, stream=True)
        out = [batch.message_dict(i) for i in range(len(batch))]
        assert batch.summary()["valid"] == len(out), batch.summary()   # what we get is valid FIX
        self.pending = self.pending[batch.consumed:]
        return out

    async def receive(self, count: int = 1, timeout: float = LIVENESS) -> list[dict[int, str]]:
        out = self._split()
        while len(out) < count:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, f"connection closed while waiting for {count} messages (got {out})"
            self.pending += data
            out += self._split()
        return out

    async def closed(self, timeout: float = LIVENESS) -> list[dict[int, str]]:
        """Wait for the acceptor to close the connection; returns what it sent first."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"connection still open after {timeout} s"
            try:
                data = await asyncio.wait_for(self.reader.read(65536), remaining)
            except (ConnectionError, OSError):
                return out
            if not data:
                return out
            self.pending += data
            out += self._split()

    async def logon(self, *fields, heartbeat=30) -> dict[int, str]:
        await self.send("A", (98, 0), (108, heartbeat), *fields)
        (reply,) = await self.receive()
        assert reply[35] == "A", reply
        return reply

    async def order(self, cl_ord_id: str, side: str = "1", qty="100", price="10.00", *extra) -> None:
        await self.send("D", (11, cl_ord_id), (21, "1"), (55, "AAPL"), (54, side), (38, qty), (40, "2"),
                        (44, price), *extra, (60, format_timestamp(self.clock())))

    async def ping(self, text: str = "PING") -> None:
        """A TestRequest answered by a Heartbeat: the session is alive and in sequence."""
        await self.send("1", (112, text))
        (heartbeat,) = await self.receive()
        assert (heartbeat[35], heartbeat.get(112)) == ("0", text), heartbeat

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@pytest.fixture(autouse=True, scope="module")
def _client_kernels_compiled():
    """The in-process client formats and parses through kernels (``put_timestamp``, the
    scanner, the validator). On a cold cache their first compilation would run inside an
    acceptor's 1 s logon window (one event loop for both sides), and the acceptor would
    rightly drop the connection: compile them before any test starts its clock."""
    batch = parse(Client("WARM").message("0"), stream=True)
    assert batch.summary()["valid"] == 1


def _engine() -> Engine:
    return Engine(symbols=["AAPL"], tick_size=0.01, capacity=10_000)


def _config(**changes) -> AcceptorConfig:
    base = AcceptorConfig(counterparties=["GOOD", "ALICE", "BOB"], logon_timeout=1.0)
    return dataclasses.replace(base, **changes)


def run(coro, timeout: float = 120):
    async def main():
        try:
            await asyncio.wait_for(coro, timeout)
        finally:
            while _OPEN:
                client = _OPEN.pop()
                client.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.writer.wait_closed(), 1)
    asyncio.run(main())


async def _flood(client: Client, payload: bytes, total: int) -> int:
    """Write ``payload`` until ``total`` bytes went out or the acceptor hung up."""
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        while sent < total:
            await client.write(payload)
            sent += len(payload)
    return sent


async def _until(predicate, timeout: float = LIVENESS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ settings
def test_config_defaults_are_secure_and_validated():
    config = AcceptorConfig()
    assert config.counterparties == ()          # nobody may log on until named
    assert (config.logon_timeout, config.max_message_size) == (10.0, 16_384)
    assert (config.max_connections, config.max_connections_per_peer) == (128, 8)
    assert (config.min_heartbeat_interval, config.max_heartbeat_interval) == (1, 120)
    assert config.tls is None
    named = AcceptorConfig(counterparties=["A", ("B", "OTHER"), Counterparty("C", password="pw")])
    assert [(c.sender_comp_id, c.target_comp_id) for c in named.counterparties] == \
        [("A", None), ("B", "OTHER"), ("C", None)]
    assert "pw" not in repr(named)
    assert named.counterparty("B", "OTHER", "ISLD") is not None and named.counterparty("B", "ISLD", "ISLD") is None
    for bad in (dict(logon_timeout=0), dict(logon_timeout=float("nan")), dict(max_message_size=10),
                dict(max_connections=0), dict(max_connections=4, max_connections_per_peer=8),
                dict(min_heartbeat_interval=0), dict(min_heartbeat_interval=30, max_heartbeat_interval=10),
                dict(max_order_qty=1 << 63), dict(max_stored=-1), dict(max_garbled=1.5),
                dict(counterparties=["A", "A"]), dict(counterparties=["A|B"]), dict(counterparties=[3]),
                dict(tls="yes")):
        with pytest.raises(ValueError):
            AcceptorConfig(**bad)
    with pytest.raises(ValueError, match="AcceptorConfig"):
        FixAcceptor(_engine(), {"counterparties": ["A"]})


# --------------------------------------------------------- session, no I/O
def _logged_on_session(**limits) -> FixSession:
    session = FixSession("ISLD", limits=_config(**limits))
    (reply,) = session.receive(build_message("A", [(49, "C"), (56, "ISLD"), (34, 1),
                                                    (52, format_timestamp(time.time_ns())), (98, 0), (108, 30)]))
    assert session.logged_on
    return session


def test_session_refuses_oversized_body_length_as_soon_as_the_header_arrives():
    session = _logged_on_session()
    assert session.receive(b"8=FIX.4.4\x019=99") == []                 # digits so far: fine
    (logout,) = session.receive(b"9999999\x0135=D\x01")                # now 999999999 > 16 KiB
    fields = parse(logout).message_dict(0)
    assert fields[35] == "5" and "BodyLength 999999999 exceeds" in fields[58]
    assert session.closed and session.close_reason == "oversized"
    assert session.buffered < 64                                        # nothing beyond the head
    assert session.receive(b"x" * 65536) == []                          # closed: not even read


def test_session_buffer_stays_bounded_and_is_compacted():
    session = _logged_on_session(max_message_size=4096)
    now = format_timestamp(time.time_ns())
    big = build_message("1", [(49, "C"), (56, "ISLD"), (34, 2), (52, now), (112, "X" * 3800)])
    peak = 0
    for i in range(0, len(big), 7):                                     # a legal message, 7 bytes a read
        out = session.receive(big[i:i + 7])
        peak = max(peak, session.buffer_capacity)
    assert [parse(m).message_dict(0)[35] for m in out] == ["0"] and session.buffered == 0
    assert peak <= len(big)
    noise = bytes(random.Random(1).randrange(2, 256) for _ in range(65536)).replace(b"8=F", b"xxx")
    for _ in range(64):                                                 # 4 MiB of noise, logged on
        session.receive(noise)
        peak = max(peak, session.buffer_capacity)
    assert not session.closed and peak <= 65536 + 8 and session.noise_bytes > 4_000_000
    good = build_message("1", [(49, "C"), (56, "ISLD"), (34, 3), (52, now), (112, "after")])
    (reply,) = session.receive(good)
    assert parse(reply).message_dict(0)[112] == "after"


def test_session_liveness_cannot_be_switched_off():
    for value in ("0", "-5", "121", "99999999999"):
        session = FixSession("ISLD", limits=_config())
        (logout,) = session.receive(build_message("A", [(49, "C"), (56, "ISLD"), (34, 1),
                                                        (52, format_timestamp(time.time_ns())), (98, 0),
                                                        (108, value)]))
        fields = parse(logout).message_dict(0)
        assert fields[35] == "5" and "HeartBtInt" in fields[58] and session.closed, value
    clock = [1000.0]
    session = FixSession("ISLD", limits=_config(logon_timeout=5.0), monotonic=lambda: clock[0])
    clock[0] += 6
    assert session.on_timer() == [] and session.closed and session.close_reason == "logon_timeout"


def test_session_holds_a_bounded_number_of_messages_behind_a_gap():
    session = _logged_on_session(max_queued=10)
    now = format_timestamp(time.time_ns())
    replies = []
    for seq in range(5, 20):                                            # 2..4 never arrive
        replies += session.receive(build_message("0", [(49, "C"), (56, "ISLD"), (34, seq), (52, now)]))
    kinds = [parse(r).message_dict(0) for r in replies]
    assert [k[35] for k in kinds] == ["2", "5"] and "beyond a sequence gap" in kinds[1][58]
    assert session.closed and session.close_reason == "queue_full"


# ------------------------------------------------------------ over the wire
def test_idle_and_trickling_connections_are_dropped_after_the_logon_timeout():
    async def scenario():
        async with FixAcceptor(_engine(), _config(logon_timeout=0.5)) as acceptor:
            idle = await Client("GOOD").connect(acceptor.port)
            trickle = await Client("GOOD").connect(acceptor.port)
            logon = trickle.message("A", (98, 0), (108, 30))

            async def drip():
                with contextlib.suppress(ConnectionError, OSError):
                    for byte in logon[:-1]:                             # never quite finished
                        await trickle.write(bytes([byte]))
                        await asyncio.sleep(0.05)

            dripping = asyncio.ensure_future(drip())
            assert await idle.closed() == [] and await trickle.closed() == []
            dripping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dripping
            assert acceptor.stats["closed:logon_timeout"] == 2
            await _until(lambda: acceptor.connections == 0)
            good = await Client("GOOD").connect(acceptor.port)          # still serving
            await good.logon()
            await good.ping()
            good.close()
    run(scenario())


def test_oversized_body_length_is_refused_without_the_server_buffering_it():
    async def scenario():
        config = _config()
        async with FixAcceptor(_engine(), config) as acceptor:
            attacker = await Client("GOOD").connect(acceptor.port)
            await attacker.write(b"8=FIX.4.4\x019=999999999\x0135=A\x0134=1\x01")
            peak, sent = 0, 0
            with contextlib.suppress(ConnectionError, OSError):
                while sent < 16 << 20:                                  # up to 16 MiB
                    await attacker.write(b"\x00" * 65536)
                    sent += 65536
                    peak = max([peak] + [s.buffer_capacity for s in acceptor.sessions])
            assert await attacker.closed() == []
            assert sent < 16 << 20                                      # hung up on
            assert peak <= config.max_message_size + 65536
            assert acceptor.stats["closed:oversized"] == 1
            # logged on: the same, with a Logout that says why
            client = await Client("ALICE").connect(acceptor.port)
            await client.logon()
            await client.write(b"8=FIX.4.4\x019=999999999\x0135=D\x01" + b"\x00" * 65536)
            (logout,) = await client.closed()
            assert logout[35] == "5" and "BodyLength 999999999 exceeds the limit of 16384" in logout[58]
            assert acceptor.stats["closed:oversized"] == 2
    run(scenario())


def test_garbage_floods_are_discarded():
    async def scenario():
        async with FixAcceptor(_engine(), _config(max_garbled=20)) as acceptor:
            rng = random.Random(7)
            noise = bytes(rng.randrange(256) for _ in range(65536))
            # before a Logon: noise, and noise full of message starts, are cut off quickly
            for payload in (noise.replace(b"8=FIX", b"8=FIY"), noise.replace(b"\x00", b"8=FIX.4.4\x019=")):
                attacker = await Client("GOOD").connect(acceptor.port)
                assert await _flood(attacker, payload, 64 << 20) < 64 << 20   # hung up on
                assert await attacker.closed() == []
            assert acceptor.stats["closed:logon_too_large"] + acceptor.stats["closed:garbled_logon"] == 2
            # logged on: garbled messages are ignored (as FIX says), valid ones answered ...
            client = await Client("ALICE").connect(acceptor.port)
            await client.logon()
            for k in range(20):
                bad = bytearray(client.message("1", (112, f"bad{k}"), seq=client.seq + 1))
                bad[-3] = ord("0") + (bad[-3] - ord("0") + 1) % 10      # wrong CheckSum
                await client.write(bytes(bad) + noise[:100].replace(b"8=FIX", b"....."))
                await client.ping(f"ok{k}")
            # ... up to max_garbled, then Logout
            await client.write(bytes(bad))
            (logout,) = await client.closed()
            assert logout[35] == "5" and "garbled" in logout[58]
    run(scenario())


def test_200_concurrent_connections_hit_the_limits_and_a_good_client_is_served():
    async def scenario():
        config = _config(max_connections=50, max_connections_per_peer=50, logon_timeout=3.0)
        async with FixAcceptor(_engine(), config) as acceptor:
            good = await Client("GOOD").connect(acceptor.port)
            await good.logon()

            async def attack(k: int, kind: str):
                client = Client(f"EVIL{k}")
                try:
                    await client.connect(acceptor.port)
                    if kind == "garbage":
                        await client.write(os.urandom(4096).replace(b"8=FIX", b"....."))
                    elif kind == "oversized":
                        await client.write(b"8=FIX.4.4\x019=999999999\x01")
                    return await client.closed(timeout=30)
                except (ConnectionError, OSError):
                    return []
                finally:
                    client.close()

            async def round_trip(cl_ord_id: str):
                start = time.monotonic()
                await good.order(cl_ord_id)
                (ack,) = await good.receive(timeout=LIVENESS)
                assert (ack[35], ack[150], ack[11]) == ("8", "0", cl_ord_id)
                assert time.monotonic() - start < LIVENESS

            # 200 idle connections at once: 49 fit beside the good client, 151 are refused
            attackers = [asyncio.ensure_future(attack(k, "idle")) for k in range(200)]
            await _until(lambda: acceptor.stats["accepted"] + acceptor.stats["refused:max_connections"] >= 201,
                         timeout=60)
            await round_trip("G-1")
            assert acceptor.stats["peak_connections"] == 50 and acceptor.connections <= 50
            assert acceptor.stats["refused:max_connections"] >= 100   # 151 unless some timed out first
            await asyncio.gather(*attackers)
            await _until(lambda: acceptor.connections == 1)             # all dropped at the deadline
            # 200 more, idle, garbage and oversized BodyLength mixed
            kinds = ("idle", "garbage", "oversized")
            attackers = [asyncio.ensure_future(attack(k, kinds[k % 3])) for k in range(200)]
            await _until(lambda: acceptor.stats["accepted"] + acceptor.stats["refused:max_connections"] >= 401,
                         timeout=60)
            await round_trip("G-2")
            await asyncio.gather(*attackers)
            assert acceptor.stats["peak_connections"] == 50
            await _until(lambda: acceptor.connections == 1)
            await good.ping()
            good.close()
    run(scenario())


def test_per_peer_limit_leaves_room_for_other_addresses():
    async def scenario():
        config = _config(max_connections_per_peer=4, logon_timeout=30.0)
        async with FixAcceptor(_engine(), config) as acceptor:
            idle = [await Client("X").connect(acceptor.port) for _ in range(10)]
            await _until(lambda: acceptor.stats["refused:max_connections_per_peer"] == 6)
            assert acceptor.connections == 4
            try:
                good = await Client("GOOD").connect(acceptor.port, local_addr=("127.0.0.2", 0))
            except OSError as error:
                pytest.skip(f"cannot bind 127.0.0.2 here ({error})")
            await good.logon()
            await good.ping()
            for client in idle + [good]:
                client.close()
    run(scenario())


def test_allow_list_and_passwords():
    async def scenario():
        config = _config(counterparties=[Counterparty("ALICE", username="alice", password="s3cret"),
                                         "BOB", ("CAROL", "OTHER")])
        async with FixAcceptor(_engine(), config) as acceptor:
            refused = [("MALLORY", "ISLD", ()), ("BOB", "XXXX", ()),
                       ("ALICE", "ISLD", ()), ("ALICE", "ISLD", ((553, "alice"), (554, "wrong"))),
                       ("ALICE", "ISLD", ((553, "bob"), (554, "s3cret"))), ("CAROL", "ISLD", ())]
            for sender, target, extra in refused:
                client = await Client(sender, target).connect(acceptor.port)
                await client.send("A", (98, 0), (108, 30), *extra)
                assert await client.closed() == [], (sender, target, extra)   # told nothing
            assert acceptor.stats["closed:unknown_counterparty"] == 3
            assert acceptor.stats["closed:bad_credentials"] == 3
            alice = await Client("ALICE").connect(acceptor.port)
            await alice.logon((553, "alice"), (554, "s3cret"))
            carol = await Client("CAROL", "OTHER").connect(acceptor.port)
            reply = await carol.logon()
            assert (reply[49], reply[56]) == ("OTHER", "CAROL")
            await carol.ping()
            alice.close()
            carol.close()
    run(scenario())


def test_heartbeat_interval_is_validated_at_logon():
    async def scenario():
        async with FixAcceptor(_engine(), _config()) as acceptor:
            for value in ("0", "-30", "121", "100000"):
                client = await Client("GOOD").connect(acceptor.port)
                await client.send("A", (98, 0), (108, value))
                (logout,) = await client.closed()
                assert logout[35] == "5" and logout[58] == f"HeartBtInt {value} is outside 1..120 seconds"
            client = await Client("GOOD").connect(acceptor.port)
            await client.send("A", (98, 0), (108, "abc"))               # not even an integer
            assert await client.closed() == []
    run(scenario())


def test_malformed_fields_get_rejects_with_text_and_the_session_stays():
    async def scenario():
        async with FixAcceptor(_engine(), _config()) as acceptor:
            client = await Client("GOOD").connect(acceptor.port)
            await client.logon()
            cases = [
                (("G-1", "1", "99999999999999999999999"), ("8", "3", "OrderQty 99999999999999999999999 exceeds")),
                (("G-2", "1", "0"), ("8", "13", "OrderQty missing or not a positive whole number")),
                (("G-3", "1", "10.5"), ("8", "13", "OrderQty missing")),
                (("G-4", "1", "100", "99999999999999999999"),
                 ("8", "99", "Price 99999999999999999999 is out of range")),
                (("G-5", "1", "100", "0"), ("8", "99", "Price 0 must be positive")),
                (("G-6", "1", "100", "10.001"), ("8", "99", "")),                    # the engine's words
                (("G-7", "1", "100", "10.00", (59, "4")), ("8", "99", "fok_not_fillable")),   # the engine's reason
            ]
            for args, (exec_type, reason, text) in cases:
                await client.order(*args)
                (report,) = await client.receive()
                assert (report[35], report[150], report[39], report[11]) == ("8", exec_type, "8", args[0]), report
                assert report[103] == reason and report[58].startswith(text) and report[58], report
            # a value in the wrong format: session-level Reject naming the tag
            await client.order("G-8", "1", "100", "1e5")
            (reject,) = await client.receive()
            assert (reject[35], reject[373], reject[371], reject[372]) == ("3", "6", "44", "D") and reject[58]
            # SequenceReset-GapFill with a non-numeric NewSeqNo: Reject, not a crash
            await client.send("4", (123, "Y"), (36, "N"))
            (reject,) = await client.receive()
            assert (reject[35], reject[373], reject[371]) == ("3", "6", "36") and reject[58]
            # cancel / replace with bad values: OrderCancelReject with Text
            await client.order("G-9", "1", "100", "10.00")
            (ack,) = await client.receive()
            assert ack[150] == "0"
            await client.order("G-9", "1", "100", "10.00")                 # a live order's ClOrdID
            (duplicate,) = await client.receive()
            assert (duplicate[150], duplicate[103]) == ("8", "6") and "duplicate ClOrdID" in duplicate[58]
            for fields in (((38, "-5"), (44, "10.00")), ((38, "100"), (44, "-1")), ((38, "1e400"),)):
                await client.send("G", (41, "G-9"), (11, "G-10"), (21, "1"), (55, "AAPL"), (54, "1"),
                                  (40, "2"), *fields, (60, format_timestamp(time.time_ns())))
                (answer,) = await client.receive()
                assert answer[35] in ("9", "3") and answer[58], answer
            # an application message we do not handle: BusinessMessageReject with Text
            await client.send("8", (37, "1"), (17, "1"), (150, "0"), (39, "0"), (55, "AAPL"), (54, "1"),
                              (151, "0"), (14, "0"), (6, "0"))
            (business,) = await client.receive()
            assert (business[35], business[380], business[58]) == ("j", "3", "Unsupported Message Type")
            await client.ping()                                           # still logged on, in sequence
            assert acceptor.connections == 1
            client.close()
    run(scenario())


def test_a_client_that_does_not_read_is_dropped():
    async def scenario():
        async with FixAcceptor(_engine(), _config(write_timeout=1.0, max_write_buffer=65536)) as acceptor:
            client = await Client("GOOD").connect(acceptor.port)
            await client.logon()

            async def ask_without_reading():
                with contextlib.suppress(ConnectionError, OSError):
                    for k in range(200_000):                            # each answer is ~1 KB
                        await client.send("1", (112, f"{k:08d}" + "X" * 1000))

            asking = asyncio.ensure_future(ask_without_reading())
            await _until(lambda: acceptor.stats["closed:write_timeout"] + acceptor.stats["closed:slow_reader"] == 1,
                         timeout=60)
            asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asking
            assert acceptor.connections == 0
    run(scenario())


def test_reconnect_keeps_sequence_numbers_and_order_ownership():
    async def scenario():
        engine = _engine()
        async with FixAcceptor(engine, _config()) as acceptor:
            alice = await Client("ALICE").connect(acceptor.port)
            await alice.logon()
            await alice.order("A-1", "2", "100", "10.00")
            (ack,) = await alice.receive()
            assert ack[150] == "0"
            alice.close()                                                 # gone, no Logout
            await _until(lambda: acceptor.connections == 0)
            bob = await Client("BOB").connect(acceptor.port)
            await bob.logon()
            await bob.send("F", (41, "A-1"), (11, "B-X"), (55, "AAPL"), (54, "2"),
                           (60, format_timestamp(time.time_ns())))
            (refused,) = await bob.receive()
            assert (refused[35], refused[102], refused[58]) == ("9", "1", "unknown OrigClOrdID")
            assert engine.best_ask("AAPL") == pytest.approx(10.0)          # not Bob's to cancel
            await bob.order("B-1", "1", "40", "10.00")                    # trades with Alice, offline
            (fill,) = await bob.receive()
            assert (fill[150], fill[32]) == ("F", "40")
            # Alice forgot her sequence numbers: refused
            stale = await Client("ALICE").connect(acceptor.port)
            await stale.send("A", (98, 0), (108, 30), seq=1)
            (logout,) = await stale.closed()
            assert logout[35] == "5" and "MsgSeqNum too low, expecting 3" in logout[58]
            # Alice back with her sequence numbers: the fill she missed comes by resend
            alice = Client("ALICE")
            alice.seq = 2
            await alice.connect(acceptor.port)
            reply = await alice.logon()
            assert int(reply[34]) == 5          # logon, ack, fill while away, the stale Logout, now
            await alice.send("2", (7, 3), (16, 0))
            missed = await alice.receive(2)
            fill = next(m for m in missed if m[35] == "8")
            assert (fill[43], fill[11], fill[150], fill[151]) == ("Y", "A-1", "F", "60")
            assert any(m[35] == "4" and m[123] == "Y" for m in missed)    # the Logout gap-filled
            await alice.send("F", (41, "A-1"), (11, "A-2"), (55, "AAPL"), (54, "2"),
                             (60, format_timestamp(time.time_ns())))
            (cancelled,) = await alice.receive()
            assert (cancelled[35], cancelled[150], cancelled[11]) == ("8", "4", "A-2")
            assert engine.best_ask("AAPL") is None
            assert acceptor.application.orders == {} and acceptor.application.by_cl_ord_id == {}
            # the same identity twice at once: the second is dropped (QuickFIX 1b)
            twin = await Client("ALICE").connect(acceptor.port)
            await twin.send("A", (98, 0), (108, 30), seq=alice.seq + 1)
            assert await twin.closed() == []
            await alice.ping()
            # ResetSeqNumFlag starts both sides again at 1
            await alice.send("A", (98, 0), (108, 30), (141, "Y"), seq=1)
            alice.seq = 1
            (reset,) = await alice.receive()
            assert (reset[35], reset[34], reset[141]) == ("A", "1", "Y")
            await alice.ping()
            alice.close()
            bob.close()
    run(scenario())


def test_sequence_numbers_restart_on_a_new_session_day():
    async def scenario():
        now = [time.time_ns()]
        clock = lambda: now[0]  # noqa: E731
        async with FixAcceptor(_engine(), _config(), clock=clock) as acceptor:
            alice = await Client("ALICE", clock=clock).connect(acceptor.port)
            await alice.logon()
            await alice.ping()
            alice.close()
            await _until(lambda: acceptor.connections == 0)
            assert acceptor.session_state("ALICE").next_out == 3
            now[0] += NS_PER_DAY                                          # the next day
            alice = await Client("ALICE", clock=clock).connect(acceptor.port)
            reply = await alice.logon()
            assert reply[34] == "1" and acceptor.session_state("ALICE").next_out == 2
            alice.close()
    run(scenario())


def test_closed_sessions_are_released():
    async def scenario():
        async with FixAcceptor(_engine(), _config(logon_timeout=0.3)) as acceptor:
            refs = []
            for k in range(20):
                client = await Client(("GOOD", "ALICE", "BOB")[k % 3]).connect(acceptor.port)
                if k % 2:
                    client.seq = acceptor.session_state(client.sender).expected_in - 1 \
                        if acceptor.session_state(client.sender) else 0
                    await client.logon()
                    await client.order(f"R-{k}", "1", "5", "1.00")
                    await client.receive()
                    await client.send("5")
                    await client.closed()
                else:
                    await _until(lambda: acceptor.connections == 1)
                    refs.append(weakref.ref(acceptor.sessions[0]))
                    await client.closed()                                 # idle: dropped
                client.close()
            await _until(lambda: acceptor.connections == 0 and not acceptor._tasks)
            gc.collect()
            assert all(ref() is None for ref in refs)                     # nothing holds closed sessions
            assert acceptor.sessions == [] and len(acceptor.states) == 3  # one state per counterparty
            assert len(acceptor.application.orders) == 10                 # the resting orders only
    run(scenario())


# ---------------------------------------------------------------------- TLS
def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("needs the cryptography package or the openssl CLI to make a test certificate")
        proc = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                               "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                               "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            pytest.skip(f"openssl could not make a test certificate: {proc.stderr.strip()[-200:]}")
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def test_tls_with_a_self_signed_certificate(tmp_path):
    from workbench.fix import server_tls_context

    cert, key = _self_signed(tmp_path)
    config = _config(tls=server_tls_context(cert, key))

    async def scenario():
        async with FixAcceptor(_engine(), config) as acceptor:
            trusting = ssl.create_default_context(cafile=str(cert))
            client = await Client("GOOD").connect(acceptor.port, ssl=trusting, server_hostname="localhost")
            await client.logon()
            await client.order("T-1")
            (ack,) = await client.receive()
            assert (ack[150], ack[11]) == ("0", "T-1")
            assert client.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            client.close()
            plain = await Client("ALICE").connect(acceptor.port)          # no TLS: no FIX either
            await plain.write(plain.message("A", (98, 0), (108, 30)))
            data = b""
            with pytest.raises((ConnectionError, OSError, asyncio.TimeoutError)):
                while True:
                    chunk = await asyncio.wait_for(plain.reader.read(65536), LIVENESS)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
            assert b"35=A" not in data
            plain.close()
    run(scenario())


def test_attack_benchmark_is_registered():
    from workbench.bench import discover

    suite = discover()["fix-attack"]
    assert callable(suite.run) and "attack" in suite.DESCRIPTION and suite.TARGET_RATIO == 2.0
