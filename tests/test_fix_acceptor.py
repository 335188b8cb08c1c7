"""``FixAcceptor`` over real localhost TCP, driven by simplefix as an independent client.

simplefix builds the client's messages (its own BodyLength and CheckSum) and parses the
acceptor's replies; the replies' checksums are recomputed in plain Python
(``tests/fix_client.py``, shared with ``tests/test_fix_journal.py``).
"""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("simplefix")

from tests.fix_client import Client, get as _get  # noqa: E402
from workbench.book import Engine  # noqa: E402
from workbench.fix import AcceptorConfig, FixAcceptor  # noqa: E402


async def _scenario():
    engine = Engine(symbols=["AAPL", "MSFT"], tick_size=0.01, price_scale=10_000, capacity=1000)
    async with FixAcceptor(engine, AcceptorConfig(counterparties=["SELLER", "BUYER"])) as acceptor:
        seller, buyer = Client("SELLER"), Client("BUYER")
        for client in (seller, buyer):
            await client.connect(acceptor.port, acceptor.host)
            logon = await client.logon()                     # asserts it is a Logon (35=A)
            assert _get(logon, 56) == client.sender

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
            logout = await client.close()
            assert _get(logout, 35) == "5"
        seqs = [acceptor.session_state(name).next_out for name in ("SELLER", "BUYER")]
        assert seqs == [6, 6]  # logon, ack, maker fill, cancel, logout / logon, fill, reject, hb, logout


def test_acceptor_with_simplefix_client():
    asyncio.run(asyncio.wait_for(_scenario(), 60))


def test_acceptor_listens_only_on_localhost():
    with pytest.raises(ValueError, match="localhost"):
        FixAcceptor(Engine(symbols=["AAPL"]), host="0.0.0.0")
