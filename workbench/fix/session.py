"""The FIX 4.4 session layer as a state machine without I/O (acceptor side).

``FixSession.receive(bytes) -> list[bytes]`` consumes what the counterparty sent and
returns what to send back; ``on_timer(now)`` produces heartbeats and test requests.
It owns logon/logout, heartbeats and test requests, inbound and outbound MsgSeqNum
(gap -> ResendRequest and queueing until filled; too low -> Logout, unless PossDup),
SequenceReset (gap fill and reset), Logon with ResetSeqNumFlag, session-level Rejects
from dictionary validation, CompID and SendingTime checks, and answering ResendRequests
(application messages resent as possible duplicates, session messages gap-filled). Application messages
go to ``application(session, message) -> list[Outgoing]``; without one they are
answered with a BusinessMessageReject. Behaviour follows the QuickFIX acceptance
scenarios listed in ``tests/test_fix_session.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kernels.fix.fields import NO_VALUE, timestamp_value
from kernels.records import (
    SR_COMP_ID_PROBLEM, SR_INCORRECT_DATA_FORMAT, SR_INVALID_MSG_TYPE, SR_NONE,
    SR_REQUIRED_TAG_MISSING, SR_SENDING_TIME, SR_VALUE_OUT_OF_RANGE,
)
from workbench.data.prices import PRICE_SCALE
from workbench.fix.dictionary import SESSION_REJECT_TEXT
from workbench.fix.encoder import build_message, encode_execution_reports, format_timestamp
from workbench.fix.parser import Workspace, parse

__all__ = ["FixSession", "InboundMessage", "Outgoing"]

ADMIN_TYPES = {"0", "1", "2", "3", "4", "5", "A"}


@dataclass
class InboundMessage:
    """One framed inbound message: its type, fields ({tag: value}) and validation verdict."""

    msg_type: str
    fields: dict[int, str]
    raw: bytes
    reject_reason: int = SR_NONE
    reject_tag: int = 0

    @property
    def seq_num(self) -> int | None:
        value = self.fields.get(34)
        return int(value) if value is not None and value.isdigit() else None

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.fields.get(tag, default)


@dataclass
class Outgoing:
    """An application reply: a message type and body fields, or ExecutionReport records."""

    msg_type: str = "8"
    fields: list[tuple[int, object]] = field(default_factory=list)
    reports: np.ndarray | None = None       # EXEC_REPORT records (encoded by the kernel)
    cl_ord_ids: list[str] | None = None
    symbols: tuple[str, ...] = ()
    price_scale: int = PRICE_SCALE


class FixSession:
    """One acceptor-side FIX 4.4 session (see the module docstring)."""

    def __init__(self, sender_comp_id: str = "ISLD", target_comp_id: str | None = None, *,
                 application: Callable[["FixSession", InboundMessage], list[Outgoing]] | None = None,
                 begin_string: str = "FIX.4.4", clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic,
                 max_clock_skew: float = 120.0, max_stored: int = 100_000):
        if not sender_comp_id:
            raise ValueError("sender_comp_id must be non-empty")
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id   # None: taken from the Logon
        self.application = application
        self.begin_string = begin_string
        self.clock = clock                  # wall clock (ns) for SendingTime
        self.monotonic = monotonic          # seconds, for heartbeat timing
        self.max_clock_skew = max_clock_skew
        self.max_stored = max_stored
        self.logged_on = False
        self.closed = False
        self.logout_sent = False
        self.expected_in = 1
        self.next_out = 1
        self.heartbeat_interval = 30.0
        self.garbled = 0                 # framing rejects seen (ignored messages)
        self.framing_rejects: dict[str, int] = {}
        self.sent: dict[int, bytes] = {}
        self._buffer = bytearray()
        self._queue: dict[int, InboundMessage] = {}
        self._resend_until = 0           # a ResendRequest is outstanding up to this seq
        self._last_in = monotonic()
        self._last_out = monotonic()
        self._test_request_sent: float | None = None
        self._workspace = Workspace()

    # ---------------------------------------------------------------- outbound
    def _header(self) -> list[tuple[int, object]]:
        return [(49, self.sender_comp_id), (56, self.target_comp_id or "?"), (34, self.next_out),
                (52, format_timestamp(self.clock()))]

    def send(self, msg_type: str, fields: list[tuple[int, object]] = ()) -> bytes:
        """Render an outbound message with the next MsgSeqNum and remember it."""
        raw = build_message(msg_type, self._header() + list(fields), begin_string=self.begin_string)
        self._store(raw)
        self._last_out = self.monotonic()
        return raw

    def _store(self, raw: bytes) -> None:
        """Keep what we sent for ResendRequests (the oldest beyond the cap become gap fills)."""
        self.sent[self.next_out] = raw
        self.next_out += 1
        if len(self.sent) > self.max_stored:
            del self.sent[next(iter(self.sent))]

    def send_reports(self, out: Outgoing) -> list[bytes]:
        """Encode ExecutionReport records with this session's sequence numbers."""
        buffer, offsets = encode_execution_reports(
            out.reports, sender_comp_id=self.sender_comp_id, target_comp_id=self.target_comp_id or "?",
            first_seq=self.next_out, sending_time=self.clock(), symbols=out.symbols,
            cl_ord_ids=out.cl_ord_ids, price_scale=out.price_scale, begin_string=self.begin_string)
        raw = buffer.tobytes()
        messages = [raw[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]
        for message in messages:
            self._store(message)
        self._last_out = self.monotonic()
        return messages

    def _emit(self, outgoing: list[Outgoing]) -> list[bytes]:
        messages = []
        for out in outgoing:
            if out.reports is not None:
                messages.extend(self.send_reports(out))
            else:
                messages.append(self.send(out.msg_type, out.fields))
        return messages

    def _reject(self, msg: InboundMessage, reason: int, tag: int | None = None) -> bytes:
        """Session-level Reject (35=3); RefTagID (371) only when a tag is to blame."""
        fields: list[tuple[int, object]] = [(45, msg.seq_num or 0),
                                            (58, SESSION_REJECT_TEXT.get(reason, "Rejected"))]
        if tag is not None and reason != SR_INVALID_MSG_TYPE:
            fields.append((371, tag))
        fields += [(372, msg.msg_type), (373, reason)]
        return self.send("3", fields)

    def _logout(self, text: str | None = None) -> bytes:
        self.logout_sent = True
        return self.send("5", [(58, text)] if text else [])

    # ----------------------------------------------------------------- inbound
    def receive(self, data: bytes) -> list[bytes]:
        """Feed received bytes; returns the messages to send (in order)."""
        if self.closed:
            return []
        self._buffer += data
        self._last_in = self.monotonic()
        self._test_request_sent = None
        batch = parse(bytes(self._buffer), stream=True, parallel=False, workspace=self._workspace)
        del self._buffer[:batch.consumed]
        for name, count in batch.framing_rejects.items():
            if count:
                self.framing_rejects[name] = self.framing_rejects.get(name, 0) + count
                self.garbled += count
        out: list[bytes] = []
        if batch.framing_rejects and sum(batch.framing_rejects.values()) and not self.logged_on:
            self.closed = True  # a garbled Logon: nothing to answer
            return out
        for i in range(len(batch)):
            if self.closed:
                break
            m = batch.messages[i]
            msg = InboundMessage(batch.msg_type(i), batch.message_dict(i), batch.message_bytes(i),
                                 int(m["reject_reason"]), int(m["reject_tag"]))
            out.extend(self._on_message(msg))
        return out

    def _on_message(self, msg: InboundMessage) -> list[bytes]:
        if msg.get(8) != self.begin_string:
            self.closed = True
            return [self._logout("Incorrect BeginString")] if self.logged_on else []
        if not self.logged_on:
            return self._on_logon(msg)
        if msg.reject_reason != SR_NONE and msg.msg_type != "4":
            return self._on_invalid(msg)
        if not self._good_time(msg.get(52)):
            self.expected_in = max(self.expected_in, (msg.seq_num or 0) + 1)
            return [self._reject(msg, SR_SENDING_TIME), self._logout()]
        if msg.get(49) != self.target_comp_id or msg.get(56) != self.sender_comp_id:
            self.expected_in = max(self.expected_in, (msg.seq_num or 0) + 1)
            return [self._reject(msg, SR_COMP_ID_PROBLEM), self._logout()]
        if msg.msg_type == "5":  # a Logout is answered whatever its MsgSeqNum
            self.closed = True
            return [] if self.logout_sent else [self._logout()]
        if msg.msg_type == "4" and msg.get(123, "N") != "Y":
            return self._on_sequence_reset(msg)
        if msg.msg_type == "A" and msg.get(141) == "Y":
            return self._reset(msg)
        seq = msg.seq_num
        if seq is None:
            return self._on_invalid(msg)
        if msg.msg_type == "2" and seq != self.expected_in:
            # a ResendRequest is answered at once whatever its MsgSeqNum (as QuickFIX does);
            # a too-high one still opens a gap, and counts as received
            out = self._resend(msg)
            if seq > self.expected_in:
                self._queue[seq] = InboundMessage("0", msg.fields, msg.raw)
                if self._resend_until < self.expected_in:
                    self._resend_until = seq
                    out.append(self.send("2", [(7, self.expected_in), (16, 0)]))
            return out
        if seq > self.expected_in:
            self._queue[seq] = msg
            if self._resend_until < self.expected_in:
                self._resend_until = seq
                return [self.send("2", [(7, self.expected_in), (16, 0)])]
            return []
        if seq < self.expected_in:
            if msg.get(43) == "Y":
                if msg.get(122) is None:
                    return [self._reject(msg, SR_REQUIRED_TAG_MISSING, 122)]
                if msg.get(122, "") > msg.get(52, ""):  # same format: text order is time order
                    return [self._reject(msg, SR_SENDING_TIME), self._logout()]
                return []  # a duplicate we already have
            self.closed = True
            return [self._logout(f"MsgSeqNum too low, expecting {self.expected_in} but received {seq}")]
        out = self._process(msg)
        out.extend(self._drain())
        return out

    def _drain(self) -> list[bytes]:
        """Process queued messages that are now in sequence."""
        out: list[bytes] = []
        while not self.closed and self.expected_in in self._queue:
            msg = self._queue.pop(self.expected_in)
            out.extend(self._process(msg))
        if self._queue and min(self._queue) < self.expected_in:
            for seq in [s for s in self._queue if s < self.expected_in]:
                del self._queue[seq]
        return out

    def _process(self, msg: InboundMessage) -> list[bytes]:
        """An in-sequence message: act on it and advance the inbound sequence."""
        self.expected_in += 1
        kind = msg.msg_type
        if kind == "0" or kind == "3":
            return []
        if kind == "1":
            return [self.send("0", [(112, msg.get(112, ""))])]
        if kind == "2":
            return self._resend(msg)
        if kind == "4":  # gap fill
            new_seq = int(msg.get(36, "0") or 0)
            if new_seq > self.expected_in:
                self.expected_in = new_seq
            return []
        if kind == "A":
            return []
        if self.application is None:
            return [self.send("j", [(45, msg.seq_num), (58, "Unsupported Message Type"),
                                    (372, kind), (380, 3)])]
        return self._emit(self.application(self, msg))

    def _gap_fill(self, begin: int, new_seq: int) -> bytes:
        """SequenceReset-GapFill standing for our messages begin..new_seq-1."""
        now = format_timestamp(self.clock())
        return build_message("4", [(49, self.sender_comp_id), (56, self.target_comp_id), (34, begin),
                                   (43, "Y"), (52, now), (122, now), (123, "Y"), (36, new_seq)],
                             begin_string=self.begin_string)

    def _resend(self, msg: InboundMessage) -> list[bytes]:
        """Answer a ResendRequest: application messages again (PossDupFlag=Y, the original
        SendingTime as OrigSendingTime), runs of session messages as one gap fill."""
        try:
            begin = int(msg.get(7, "1"))
            end = int(msg.get(16, "0"))
        except ValueError:
            return [self._reject(msg, SR_INCORRECT_DATA_FORMAT, 7)]
        last = self.next_out - 1 if end == 0 or end >= self.next_out else end
        out: list[bytes] = []
        gap_start = None
        for seq in range(max(begin, 1), last + 1):
            raw = self.sent.get(seq)
            stored = parse(raw, validate=False) if raw is not None else None
            if stored is None or len(stored) != 1 or stored.msg_type(0) in ADMIN_TYPES:
                gap_start = seq if gap_start is None else gap_start
                continue
            if gap_start is not None:
                out.append(self._gap_fill(gap_start, seq))
                gap_start = None
            out.append(self._possible_duplicate(stored, seq))
        if gap_start is not None:
            out.append(self._gap_fill(gap_start, last + 1))
        self._last_out = self.monotonic()
        return out

    def _possible_duplicate(self, stored, seq: int) -> bytes:
        header = {8, 9, 10, 35, 34, 43, 49, 52, 56, 97, 122}
        first = int(stored.messages[0]["field_first"])
        body = [(int(stored.fields[k]["tag"]), stored.value(k).decode("latin-1"))
                for k in range(first, first + int(stored.messages[0]["field_count"]))]
        original_time = next((v for t, v in body if t == 52), format_timestamp(self.clock()))
        fields = [(49, self.sender_comp_id), (56, self.target_comp_id), (34, seq), (43, "Y"),
                  (52, format_timestamp(self.clock())), (122, original_time)]
        fields += [(t, v) for t, v in body if t not in header]
        return build_message(stored.msg_type(0), fields, begin_string=self.begin_string)

    def _good_time(self, sending_time: str | None) -> bool:
        """SendingTime within ``max_clock_skew`` seconds of our clock."""
        if sending_time is None:
            return False
        raw = np.frombuffer(sending_time.encode("latin-1"), np.uint8)
        ns = timestamp_value(raw, 0, raw.shape[0])
        return ns != NO_VALUE and abs(ns - self.clock()) <= self.max_clock_skew * 1e9

    def _reset(self, msg: InboundMessage) -> list[bytes]:
        """Logon with ResetSeqNumFlag=Y: both sides start again at 1."""
        self.next_out = 1
        self.sent.clear()
        self._queue.clear()
        self._resend_until = 0
        self.expected_in = (msg.seq_num or 1) + 1
        return [self.send("A", [(98, 0), (108, msg.get(108, "30")), (141, "Y")])]

    def _on_sequence_reset(self, msg: InboundMessage) -> list[bytes]:
        new_seq = msg.get(36)
        if new_seq is None or not new_seq.isdigit():
            return [self._reject(msg, SR_REQUIRED_TAG_MISSING, 36)]
        if int(new_seq) < self.expected_in:
            return [self._reject(msg, SR_VALUE_OUT_OF_RANGE)]
        self.expected_in = int(new_seq)
        return self._drain()

    def _on_invalid(self, msg: InboundMessage) -> list[bytes]:
        seq = msg.seq_num
        if seq is not None and seq > self.expected_in:
            self._queue[seq] = msg  # judge it when its turn comes
            if self._resend_until < self.expected_in:
                self._resend_until = seq
                return [self.send("2", [(7, self.expected_in), (16, 0)])]
            return []
        if seq is not None and seq == self.expected_in:
            self.expected_in += 1
        return [self._reject(msg, msg.reject_reason, msg.reject_tag)] + self._drain()

    def _on_logon(self, msg: InboundMessage) -> list[bytes]:
        if msg.msg_type != "A" or msg.reject_reason != SR_NONE:
            self.closed = True
            return []
        if msg.get(56) != self.sender_comp_id or (self.target_comp_id and msg.get(49) != self.target_comp_id):
            self.closed = True
            return []
        if not self._good_time(msg.get(52)):
            self.closed = True
            return []
        if msg.get(141) == "Y":
            self.target_comp_id = msg.get(49)
            self.logged_on = True
            return self._reset(msg)
        self.target_comp_id = msg.get(49)
        try:
            self.heartbeat_interval = float(msg.get(108, "30"))
        except ValueError:
            self.heartbeat_interval = 30.0
        self.logged_on = True
        out = [self.send("A", [(98, 0), (108, msg.get(108, "30"))])]
        seq = msg.seq_num or 1
        if seq > self.expected_in:
            self._queue[seq] = InboundMessage("0", msg.fields, msg.raw)  # logon counted, nothing to redo
            self._resend_until = seq
            out.append(self.send("2", [(7, self.expected_in), (16, 0)]))
        else:
            self.expected_in = seq + 1
        return out

    # ------------------------------------------------------------------- timer
    def on_timer(self, now: float | None = None) -> list[bytes]:
        """Heartbeat when we were quiet for a HeartBtInt; TestRequest when they were for
        1.2 intervals; give up (close) after a further interval without an answer."""
        if not self.logged_on or self.closed or self.heartbeat_interval <= 0:
            return []
        now = self.monotonic() if now is None else now
        out = []
        if self._test_request_sent is not None and now - self._test_request_sent > self.heartbeat_interval:
            self.closed = True  # the counterparty is gone: drop the connection (as QuickFIX does)
            return []
        if now - self._last_in > 1.2 * self.heartbeat_interval and self._test_request_sent is None:
            self._test_request_sent = now
            out.append(self.send("1", [(112, "TEST")]))
        elif now - self._last_out >= self.heartbeat_interval:
            out.append(self.send("0"))
        return out
