"""``FixAcceptor`` over real localhost TCP, driven by simplefix as an independent client.

simplefix builds the client's messages (its own BodyLength and CheckSum) and parses the
acceptor's replies; the replies' checksums are recomputed here in plain Python.
"""
from __future__ import annotations

import asyncio

import pytest

simplefix = pytest.importorskip("simplefix")

from workbench.book import Engine  # noqa: E402
from workbench.fix import AcceptorConfig, FixAcceptor  # noqa: E402


class Client:
    """A minimal FIX 4.4 initiator on simplefix."""

    def __init__(self, sender: str):
        self.sender = sender
        self.seq = 0
        self.parser = simplefix.FixParser()
        self.reader = self.writer = None

    async def connect(self, host, port):
        self.reader, self.writer = await asyncio.open_connection(host, port)

    async def send(self, msg_type: str, *pairs):
        self.seq += 1
        msg = simplefix.FixMessage()
        msg.append_pair(8, "FIX.4.4", header=True)
        msg.append_pair(35, msg_type, header=True)
        msg.append_pair(49, self.sender, header=True)
        msg.append_pair(56, "ISLD", header=True)
        msg.append_pair(34, self.seq, header=True)
        msg.append_utc_timestamp(52, precision=3, header=True)
        for tag, value in pairs:
            msg.append_pair(tag, value)
        self.writer.write(msg.encode())
        await self.writer.drain()

    async def receive(self, count: int = 1, timeout: float = 10.0) -> list:
        out = []
        while len(out) < count:
            msg = self.parser.get_message()
            if msg is not None:
                out.append(msg)
                continue
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                break
            for raw in _frames(data):
                assert _checksum_ok(raw), raw
            self.parser.append_buffer(data)
        return out


def _frames(data: bytes) -> list[bytes]:
    return [b"8=FIX" + part for part in data.split(b"8=FIX")[1:]]


def _checksum_ok(raw: bytes) -> bool:
    trailer = raw.rindex(b"10=")
    return int(raw[trailer + 3:trailer + 6]) == sum(raw[:trailer]) % 256


def _get(msg, tag) -> str:
    value = msg.get(tag)
    return value.decode() if value is not None else None


async def _scenario():
    engine = Engine(symbols=["AAPL", "MSFT"], tick_size=0.01, price_scale=10_000, capacity=1000)
    async with FixAcceptor(engine, AcceptorConfig(counterparties=["SELLER", "BUYER"])) as acceptor:
        seller, buyer = Client("SELLER"), Client("BUYER")
        for client in (seller, buyer):
            await client.connect(acceptor.host, acceptor.port)
            await client.send("A", (98, 0), (108, 30))
            (logon,) = await client.receive()
            assert _get(logon, 35) == "A" and _get(logon, 56) == client.sender

        await seller.send("D", (11, "S-1"), (21, "1"), (55, "AAPL"), (54, "2"), (38, "100"), (40, "2"),
                          (44, "185.25"), (59, "0"), (60, "20240102-14:30:00.000"))
        (ack,) = await seller.receive()
        assert (_get(ack, 35), _get(ack, 150), _get(ack, 39), _get(ack, 11)) == ("8", "0", "0", "S-1")
        assert _get(ack, 151) == "100" and _get(ack, 44) == "185.25"
        assert engine.best_ask("AAPL") == pytest.approx(185.25)

        await buyer.send("D", (11, "B-1"), (21, "1"), (55, "AAPL"), (54, "1"), (38, "60"), (40, "2"),
                         (44, "185.30"), (59, "3"), (60, "20240102-14:30:01.000"))
        (fill,) = await buyer.receive()
        assert (_get(fill, 150), _get(fill, 39), _get(fill, 11)) == ("F", "2", "B-1")
        assert (_get(fill, 31), _get(fill, 32), _get(fill, 14), _get(fill, 151)) == ("185.25", "60", "60", "0")
        (maker,) = await seller.receive()
        assert (_get(maker, 150), _get(maker, 39), _get(maker, 11)) == ("F", "1", "S-1")
        assert (_get(maker, 32), _get(maker, 151), _get(maker, 14)) == ("60", "40", "60")

        await seller.send("F", (41, "S-1"), (11, "S-2"), (55, "AAPL"), (54, "2"), (60, "20240102-14:30:02"))
        (cancelled,) = await seller.receive()
        assert (_get(cancelled, 150), _get(cancelled, 39), _get(cancelled, 11)) == ("4", "4", "S-2")
        assert engine.best_ask("AAPL") is None

        await buyer.send("D", (11, "B-2"), (21, "1"), (55, "NOPE"), (54, "1"), (38, "5"), (40, "2"),
                         (44, "1"), (60, "20240102-14:30:03"))
        (rejected,) = await buyer.receive()
        assert (_get(rejected, 150), _get(rejected, 39)) == ("8", "8")
        assert _get(rejected, 58) == "unknown Symbol 'NOPE'" and _get(rejected, 103) == "1"

        await buyer.send("1", (112, "PING"))
        (heartbeat,) = await buyer.receive()
        assert (_get(heartbeat, 35), _get(heartbeat, 112)) == ("0", "PING")

        for client in (seller, buyer):
            await client.send("5")
            (logout,) = await client.receive()
            assert _get(logout, 35) == "5"
            client.writer.close()
        seqs = [acceptor.session_state(name).next_out for name in ("SELLER", "BUYER")]
        assert seqs == [6, 6]  # logon, ack, maker fill, cancel, logout / logon, fill, reject, hb, logout


def test_acceptor_with_simplefix_client():
    asyncio.run(asyncio.wait_for(_scenario(), 60))


def test_acceptor_listens_only_on_localhost():
    with pytest.raises(ValueError, match="localhost"):
        FixAcceptor(Engine(symbols=["AAPL"]), host="0.0.0.0")
