"""The FIX test client shared by the acceptor tests: a FIX 4.4 initiator on simplefix over
asyncio TCP, independent of the project's own FIX code (``workbench.fix.gateway`` is the
product under test elsewhere, and always resets sequence numbers at logon).

simplefix builds the client's messages (its own BodyLength and CheckSum) and parses the
acceptor's replies; every reply's CheckSum is recomputed here in plain Python. ``seq`` is
the last MsgSeqNum sent: pass it to continue a session (after an acceptor restart).
"""
from __future__ import annotations

import asyncio

import simplefix

__all__ = ["Client", "get"]

_TRAILER = b"\x0110="           # SOH, then the CheckSum field: "10=NNN" SOH ends a message
_TRAILER_LEN = len(_TRAILER) + 4


class Client:
    """A FIX 4.4 initiator on simplefix that keeps every message it received."""

    def __init__(self, sender: str, seq: int = 0):
        self.sender = sender
        self.seq = seq
        self.parser = simplefix.FixParser()
        self.reader = self.writer = None
        self._raw = b""                 # bytes received whose CheckSum is not checked yet

    async def connect(self, port: int, host: str = "127.0.0.1"):
        self.reader, self.writer = await asyncio.open_connection(host, port)

    async def send(self, msg_type: str, *pairs):
        self.seq += 1
        msg = simplefix.FixMessage()
        for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, self.sender), (56, "ISLD"),
                           (34, self.seq)):
            msg.append_pair(tag, value, header=True)
        msg.append_utc_timestamp(52, precision=3, header=True)
        for tag, value in pairs:
            msg.append_pair(tag, value)
        self.writer.write(msg.encode())
        await self.writer.drain()

    async def receive(self, count: int = 1, timeout: float = 180.0) -> list:
        """The next ``count`` messages; fails when the acceptor closes the connection
        first, or a reply's CheckSum is wrong. ``timeout`` only guards against a hung
        acceptor: an acceptor child on a cold Numba cache compiles its kernels before
        its first reply (many seconds on a loaded 2-core machine), which is not a failure."""
        out = []
        while len(out) < count:
            msg = self.parser.get_message()
            if msg is not None:
                out.append(msg)
                continue
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, f"{self.sender}: connection closed, {len(out)} of {count} received"
            self._check_sums(data)
            self.parser.append_buffer(data)
        return out

    def _check_sums(self, data: bytes) -> None:
        """Recompute the CheckSum of every complete message received so far (a read may end
        inside a message: its rest comes with the next read)."""
        self._raw += data
        while (trailer := self._raw.find(_TRAILER)) >= 0 and len(self._raw) >= trailer + _TRAILER_LEN:
            end = trailer + _TRAILER_LEN
            frame, self._raw = self._raw[:end], self._raw[end:]
            assert frame.startswith(b"8=FIX") and frame.endswith(b"\x01"), frame
            stated = int(frame[trailer + len(_TRAILER):end - 1])
            assert stated == sum(frame[:trailer + 1]) % 256, frame

    async def logon(self):
        await self.send("A", (98, 0), (108, 30))
        (reply,) = await self.receive()
        assert get(reply, 35) == "A", reply
        return reply

    async def close(self):
        """Log out, wait for the acceptor's Logout and close; returns that reply."""
        await self.send("5")
        (reply,) = await self.receive()
        self.writer.close()
        return reply


def get(msg, tag) -> str | None:
    value = msg.get(tag)
    return value.decode() if value is not None else None
