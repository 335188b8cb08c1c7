"""A journaled ``FixAcceptor`` survives a restart: a real TCP client (simplefix) against an
acceptor process that is SIGKILLed, then a new acceptor process over the same journal.

After the restart the sequence numbers continue, a ResendRequest gets the very messages
sent before the crash (PossDupFlag=Y, OrigSendingTime, the same body) and gap fills for
the session-level ones, the owner can cancel its pre-crash orders (with the quantities
filled before the crash), and another counterparty still cannot. In-process checks:
records after the last commit (a transaction nobody was told about) are cut on recovery,
the sessions come back from a snapshot after the segments before it were pruned.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("simplefix")

from tests.fix_client import Client, get as _get  # noqa: E402
from workbench.book import Engine  # noqa: E402
from workbench.fix import AcceptorConfig  # noqa: E402
from workbench.fix.acceptor import FixAcceptor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADER_TAGS = {b"8", b"9", b"10", b"34", b"43", b"52", b"122", b"49", b"56"}

CHILD = textwrap.dedent("""
    import asyncio, json, sys, threading
    from workbench.book import Engine
    from workbench.fix import AcceptorConfig
    from workbench.fix.acceptor import FixAcceptor

    async def main():
        config = AcceptorConfig(counterparties=["SELLER", "BUYER"], journal=sys.argv[1],
                                durability=sys.argv[2])
        engine = Engine(["AAPL"], tick_size=0.01, capacity=1000)
        acceptor = FixAcceptor(engine, config)
        host, port = await acceptor.start()
        print("RECOVERY", json.dumps(acceptor.recovery), flush=True)
        print("PORT", port, flush=True)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(
            done.set_result, None)), daemon=True).start()
        await done
        await acceptor.stop()
        print("STOPPED", flush=True)

    asyncio.run(main())
""")


def _body(msg) -> list:
    """The message's fields without the header ones that a resend changes."""
    return [(t, v) for t, v in msg.pairs if t not in HEADER_TAGS]


def _order(client_id, side, qty, price, tif="0"):
    return ((11, client_id), (21, "1"), (55, "AAPL"), (54, side), (38, str(qty)), (40, "2"),
            (44, price), (59, tif), (60, "20240102-14:30:00.000"))


def _start(directory, log: Path, durability="every"):
    with open(log, "ab") as err:   # a file, not a pipe: a chatty child never blocks on it
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), durability], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
    recovery = None
    for line in child.stdout:
        if line.startswith("RECOVERY"):
            recovery = json.loads(line.split(" ", 1)[1])
        elif line.startswith("PORT"):
            return child, int(line.split()[1]), recovery
    child.wait()
    raise AssertionError(f"acceptor child failed: {log.read_text()}")


async def _before_crash(port, child):
    seller, buyer = Client("SELLER"), Client("BUYER")
    for client in (seller, buyer):
        await client.connect(port)
        await client.logon()                                               # seq 1
    await seller.send("D", *_order("S-1", "2", 100, "185.25"))
    (ack1,) = await seller.receive()                                      # seller 2
    await seller.send("D", *_order("S-2", "2", 50, "185.50"))
    (ack2,) = await seller.receive()                                      # seller 3
    await buyer.send("D", *_order("B-1", "1", 60, "185.30", tif="3"))     # IOC, crosses S-1
    (fill,) = await buyer.receive()                                       # buyer 2
    (maker,) = await seller.receive()                                     # seller 4
    assert (_get(maker, 150), _get(maker, 14), _get(maker, 151)) == ("F", "60", "40")
    await buyer.send("D", *_order("B-2", "1", 10, "184.00"))
    (rest,) = await buyer.receive()                                       # buyer 3
    assert (_get(rest, 150), _get(rest, 39)) == ("0", "0")
    child.send_signal(signal.SIGKILL)    # a crash, both clients connected: no close, no sync
    child.wait()
    for client in (seller, buyer):
        client.writer.close()
        with contextlib.suppress(ConnectionError):
            await client.writer.wait_closed()
    return seller.seq, buyer.seq, [ack1, ack2, maker]


async def _after_restart(port, seller_seq, buyer_seq, sent):
    seller, buyer = Client("SELLER", seller_seq), Client("BUYER", buyer_seq)
    await seller.connect(port)
    logon = await seller.logon()
    assert _get(logon, 34) == "5"          # logon 1, three reports 2-4: numbering continues
    await seller.send("2", (7, 1), (16, 0))
    gap1, r2, r3, r4, gap5 = await seller.receive(5)
    assert (_get(gap1, 35), _get(gap1, 34), _get(gap1, 123), _get(gap1, 36)) == ("4", "1", "Y", "2")
    for resent, original, seq in zip((r2, r3, r4), sent, ("2", "3", "4")):
        assert (_get(resent, 35), _get(resent, 34), _get(resent, 43)) == ("8", seq, "Y")
        assert _get(resent, 122) == _get(original, 52)   # OrigSendingTime: when it first went
        assert _body(resent) == _body(original)          # the same report, field by field
    assert (_get(gap5, 35), _get(gap5, 34), _get(gap5, 36)) == ("4", "5", "6")

    await buyer.connect(port)
    assert _get(await buyer.logon(), 34) == "4"
    # ownership survived: the buyer cannot cancel the seller's order ...
    await buyer.send("F", (41, "S-2"), (11, "B-X"), (55, "AAPL"), (54, "2"), (60, "20240102-14:31:00"))
    (refused,) = await buyer.receive()
    assert (_get(refused, 35), _get(refused, 39), _get(refused, 102)) == ("9", "8", "1")
    # ... the seller can, and the partly filled S-1 remembers its fills
    await seller.send("F", (41, "S-1"), (11, "S-1c"), (55, "AAPL"), (54, "2"), (60, "20240102-14:31:01"))
    (cancelled,) = await seller.receive()
    assert (_get(cancelled, 150), _get(cancelled, 39), _get(cancelled, 11)) == ("4", "4", "S-1c")
    assert (_get(cancelled, 14), _get(cancelled, 6), _get(cancelled, 38)) == ("60", "185.25", "100")
    assert int(_get(cancelled, 17)) > int(_get(sent[2], 17))      # ExecIDs continue
    await seller.send("F", (41, "S-2"), (11, "S-2c"), (55, "AAPL"), (54, "2"), (60, "20240102-14:31:02"))
    (cancelled2,) = await seller.receive()
    assert (_get(cancelled2, 150), _get(cancelled2, 11), _get(cancelled2, 151)) == ("4", "S-2c", "0")
    # the buyer's resting order, from before the crash, still trades with a new sell
    await seller.send("D", *_order("S-3", "2", 10, "184.00"))
    (taker,) = await seller.receive()
    (maker,) = await buyer.receive()
    assert (_get(taker, 150), _get(taker, 31)) == ("F", "184")
    assert (_get(maker, 150), _get(maker, 11), _get(maker, 39)) == ("F", "B-2", "2")
    for client in (seller, buyer):
        await client.close()


def test_restart_continues_sessions_over_tcp(tmp_path):
    directory, log = tmp_path / "fixj", tmp_path / "acceptor.log"
    child, port, recovery = _start(directory, log)
    try:
        assert recovery is None
        seller_seq, buyer_seq, sent = asyncio.run(asyncio.wait_for(_before_crash(port, child), 30))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            pipe.close()
    child, port, recovery = _start(directory, log)
    try:
        assert recovery["orders"] == 3      # S-1 (40 left), S-2, B-2
        assert recovery["sessions"]["SELLER->ISLD"] == {"next_out": 5, "expected_in": 4, "stored": 4}
        asyncio.run(asyncio.wait_for(_after_restart(port, seller_seq, buyer_seq, sent), 30))
    finally:
        out, _ = child.communicate("", timeout=30)
    assert child.returncode == 0 and "STOPPED" in out, log.read_text()


# ------------------------------------------------------------------ in-process checks
def _config(directory, **kw):
    return AcceptorConfig(counterparties=["SELLER", "BUYER"], journal=directory, **kw)


async def _one_order(acceptor, client_id="S-1", price="185.25"):
    await acceptor.start()
    seller = Client("SELLER", acceptor.session_state("SELLER").expected_in - 1
                    if acceptor.session_state("SELLER") else 0)
    await seller.connect(acceptor.port)
    await seller.logon()
    await seller.send("D", *_order(client_id, "2", 100, price))
    (ack,) = await seller.receive()
    assert _get(ack, 150) == "0"
    await seller.close()
    await acceptor.stop()
    return seller.seq


def test_uncommitted_tail_is_cut(tmp_path):
    """Engine commands after the acceptor's last commit were never acknowledged: gone."""
    directory = tmp_path / "j"
    acceptor = FixAcceptor(Engine(["AAPL"], capacity=100), _config(directory))
    asyncio.run(_one_order(acceptor))
    # a command journaled after the last commit (as if the process died mid-transaction)
    engine = Engine.recover(directory)
    engine.submit("AAPL", "buy", 1.0, 5)
    engine.close()
    again = FixAcceptor(None, _config(directory))
    try:
        assert again.recovery["cut"]["records"] == 1
        assert again.engine.best_bid("AAPL") is None              # the uncommitted order is gone
        assert again.engine.best_ask("AAPL") == pytest.approx(185.25)
        assert again.session_state("SELLER").next_out == 4        # logon, ack, logout
    finally:
        again.close()


def test_sessions_survive_snapshot_and_pruning(tmp_path):
    directory = tmp_path / "j"
    options = {"segment_bytes": 4096, "keep_snapshots": 1}
    acceptor = FixAcceptor(Engine(["AAPL"], capacity=100),
                           _config(directory, journal_options=options, snapshot_every=20))
    asyncio.run(_one_order(acceptor))
    acceptor = FixAcceptor(None, _config(directory, journal_options=options, snapshot_every=20))
    asyncio.run(_one_order(acceptor, "S-2", "185.30"))
    first = min(int(p.name.split("-")[1].split(".")[0]) for p in directory.glob("segment-*"))
    assert first > 1                                  # early segments were pruned
    again = FixAcceptor(None, _config(directory, journal_options=options))
    try:
        state = again.session_state("SELLER")
        assert (state.next_out, state.expected_in) == (7, 7)   # logon, order, logout twice
        assert sorted(o.cl_ord_id for o in again.application.orders.values()) == ["S-1", "S-2"]
        assert again.engine.best_ask("AAPL") == pytest.approx(185.25)
        assert again.recovery["engine"]["snapshot_seq"] is not None
    finally:
        again.close()


def test_journal_config_is_validated(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        AcceptorConfig(journal=tmp_path, durability="sometimes")
    with pytest.raises(ValueError, match="need journal=DIR"):
        AcceptorConfig(durability="every")
    with pytest.raises(ValueError, match="engine=None"):
        FixAcceptor(None, AcceptorConfig())
    engine = Engine(["AAPL"], journal=tmp_path / "own")
    with pytest.raises(ValueError, match="already journals"):
        FixAcceptor(engine, _config(tmp_path / "j"))
    engine.close()
