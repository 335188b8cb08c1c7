"""``python -m workbench bench fix-attack``: a well-behaved FIX client's round trip, idle and under attack.

Three processes on localhost: the acceptor (``FixAcceptor`` with the default, secure
``AcceptorConfig`` and one allowed counterparty), the well-behaved client (this process:
a blocking socket sending NewOrderSingle IOC orders that do not trade and timing each
until its ExecutionReport arrives), and the attacker. The attacker runs, at once:
idle sockets that never log on (20, reconnecting when dropped), oversized BodyLength
(``9=999999999`` followed by a stream of bytes, 4 connections), garbage floods (random
bytes, 4 connections) and bursts of 200 simultaneous connections every second. Where
the machine lets it bind 127.0.0.2.. the attack comes from many loopback addresses (so
the global connection limit is reached, not only the per-address one); otherwise all
from 127.0.0.1. The good client connects and logs on first.

Rounds interleave an idle phase and an attack phase (the attacker is started, given
time to ramp up, and stopped each round). Reported: round-trip medians and p99 in
microseconds, the ratio of the medians (target: within 2x of idle), what the acceptor
refused and dropped, and its resident memory (the peak must not grow with the attack).
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time

NAME = "fix-attack"
DESCRIPTION = "FIX acceptor: good client's NewOrderSingle->ExecutionReport round trip, idle vs under attack"
TARGET_RATIO = 2.0

_SERVER = r"""
import asyncio, json, sys
from workbench.book import Engine
from workbench.fix import AcceptorConfig, FixAcceptor

def memory():
    out = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("VmRSS", "VmHWM")):
                    key, value = line.split(":")
                    out[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out

async def main():
    engine = Engine(symbols=["AAPL"], tick_size=0.01, capacity=100_000)
    acceptor = FixAcceptor(engine, AcceptorConfig(counterparties=["GOOD"]))
    await acceptor.start()
    print(json.dumps({"port": acceptor.port}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        stats = dict(acceptor.stats)
        stats.update(connections=acceptor.connections, **memory())
        print(json.dumps(stats), flush=True)
    await acceptor.stop()

asyncio.run(main())
"""

_ATTACK = r"""
import asyncio, json, os, sys
port, addresses = int(sys.argv[1]), json.loads(sys.argv[2])
counts = {"connections": 0, "failed": 0, "bytes": 0, "bursts": 0}
NOISE = os.urandom(65536).replace(b"8=FIX", b".....")
HUGE = b"8=FIX.4.4\x019=999999999\x0135=A\x0134=1\x01"

def source(k):
    return {"local_addr": (addresses[k % len(addresses)], 0)} if addresses else {}

async def connect(k):
    counts["connections"] += 1
    return await asyncio.open_connection("127.0.0.1", port, **source(k))

async def idle(k):
    while True:
        try:
            reader, writer = await connect(k)
            try:
                while await reader.read(65536):
                    pass
            finally:
                writer.close()
        except (ConnectionError, OSError):
            counts["failed"] += 1
        await asyncio.sleep(0.02)

async def flood(k, head):
    while True:
        try:
            reader, writer = await connect(k)
            try:
                writer.write(head)
                while True:
                    writer.write(NOISE)
                    counts["bytes"] += len(NOISE)
                    await writer.drain()
            finally:
                writer.close()
        except (ConnectionError, OSError):
            counts["failed"] += 1
        await asyncio.sleep(0.02)

async def burst(first):
    while True:
        results = await asyncio.gather(*(connect(first + k) for k in range(200)), return_exceptions=True)
        counts["bursts"] += 1
        writers = [r[1] for r in results if not isinstance(r, BaseException)]
        counts["failed"] += len(results) - len(writers)
        await asyncio.sleep(1.0)
        for writer in writers:
            writer.close()

async def main():
    # address groups: idle 0, oversized 1, garbage 2, bursts from the rest
    spread = len(addresses)
    tasks = [asyncio.ensure_future(idle(0)) for _ in range(20)]
    tasks += [asyncio.ensure_future(flood(1 if spread > 1 else 0, HUGE)) for _ in range(4)]
    tasks += [asyncio.ensure_future(flood(2 if spread > 2 else 0, b"")) for _ in range(4)]
    tasks.append(asyncio.ensure_future(burst(3 if spread > 3 else 0)))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    print(json.dumps(counts), flush=True)

asyncio.run(main())
"""


def _loopback_sources(count: int = 40) -> list[str]:
    """127.0.0.2.. when this machine routes them to loopback (Linux does), else []."""
    addresses = []
    for k in range(2, 2 + count):
        address = f"127.0.0.{k}"
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                return []
        addresses.append(address)
    return addresses


class _Client:
    """The well-behaved client: a blocking socket, one order in flight at a time."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq = 0
        self.pending = b""

    def message(self, msg_type: str, *fields) -> bytes:
        from workbench.fix import build_message
        from workbench.fix.encoder import format_timestamp

        self.seq += 1
        return build_message(msg_type, [(49, "GOOD"), (56, "ISLD"), (34, self.seq),
                                        (52, format_timestamp(time.time_ns())), *fields])

    def read(self) -> bytes:
        while True:
            end = self.pending.find(b"\x0110=")
            if end >= 0 and len(self.pending) >= end + 8:
                message, self.pending = self.pending[:end + 8], self.pending[end + 8:]
                return message
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the acceptor closed the good client's connection")
            self.pending += data

    def logon(self) -> None:
        self.sock.sendall(self.message("A", (98, 0), (108, 30)))
        if b"\x0135=A\x01" not in self.read():
            raise RuntimeError("logon refused")

    def round_trips(self, n: int, tag: str) -> list[float]:
        """``n`` IOC buys far below the market (no trade): send -> ExecutionReport, in us."""
        out = []
        for k in range(n):
            cl_ord_id = f"{tag}-{k}".encode()
            raw = self.message("D", (11, cl_ord_id.decode()), (21, "1"), (55, "AAPL"), (54, "1"), (38, 1),
                               (40, "2"), (44, "1.00"), (59, "3"), (60, "20240102-14:30:00.000"))
            start = time.perf_counter_ns()
            self.sock.sendall(raw)
            while True:
                reply = self.read()
                if b"\x0135=8\x01" in reply and b"\x0111=" + cl_ord_id + b"\x01" in reply:
                    break
                if b"\x0135=1\x01" in reply:   # a TestRequest: answer it, keep timing
                    self.sock.sendall(self.message("0", (112, "TEST")))
            out.append((time.perf_counter_ns() - start) / 1000)
        return out

    def close(self) -> None:
        try:
            self.sock.sendall(self.message("5"))
        finally:
            self.sock.close()


def _ask(server) -> dict:
    server.stdin.write("stats\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-W", "ignore", "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(quick: bool = False) -> dict:
    from tqdm.auto import tqdm

    n = 300 if quick else 1500
    rounds = 2 if quick else 3
    ramp = 1.5 if quick else 2.5
    server = _spawn(_SERVER)
    attack_counts: dict[str, int] = {}
    try:
        port = json.loads(server.stdout.readline())["port"]
        client = _Client(port)
        client.logon()
        client.round_trips(300, "warm")
        before = _ask(server)
        addresses = _loopback_sources()
        idle, attacked = [], []
        for r in tqdm(range(rounds), desc="bench fix-attack", leave=False):
            idle += client.round_trips(n, f"i{r}")
            attacker = _spawn(_ATTACK, str(port), json.dumps(addresses))
            try:
                time.sleep(ramp)
                attacked += client.round_trips(n, f"a{r}")
            finally:
                out, _ = attacker.communicate("", timeout=60)
            for key, value in json.loads(out.strip().splitlines()[-1]).items():
                attack_counts[key] = attack_counts.get(key, 0) + value
            time.sleep(0.5)
        after = _ask(server)
        client.close()
    finally:
        try:
            server.stdin.write("quit\n")
            server.stdin.flush()
            server.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            server.kill()
            server.wait()
    idle_median, attack_median = statistics.median(idle), statistics.median(attacked)
    server_counts = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after)
                     if k.startswith(("refused:", "closed:")) or k == "accepted"}
    return {
        "orders_per_phase": len(idle),
        "idle_rtt_us_median": idle_median,
        "attack_rtt_us_median": attack_median,
        "idle_rtt_us_p99": _percentile(idle, 0.99),
        "attack_rtt_us_p99": _percentile(attacked, 0.99),
        "ratio_median": attack_median / idle_median,
        "target_ratio": TARGET_RATIO,
        "within_target": attack_median / idle_median <= TARGET_RATIO,
        "attack_sources": len(addresses) or 1,
        "attack": attack_counts,
        "acceptor": server_counts,
        "acceptor_peak_connections": after.get("peak_connections", 0),
        "acceptor_rss_mb_before_attack": before.get("vmrss_mb"),
        "acceptor_rss_mb_after_attack": after.get("vmrss_mb"),
        "acceptor_peak_rss_mb": after.get("vmhwm_mb"),
    }
