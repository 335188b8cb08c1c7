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

Limits (``AcceptorConfig``): the Logon must arrive within ``logon_timeout`` seconds and
``max_message_size`` bytes; a BodyLength above ``max_message_size`` closes the
connection as soon as the header is read (nothing more is buffered); HeartBtInt must lie
in ``min_heartbeat_interval..max_heartbeat_interval``; garbled messages are ignored up to
``max_garbled``; at most ``max_queued`` messages wait for a sequence gap to fill. The
receive buffer is a ``bytearray`` with a read offset, scanned in place and compacted, so
a byte is copied a bounded number of times whatever the input.

What survives a reconnect (sequence numbers, the messages kept for resends) lives in a
``SessionState``; ``on_logon(session, logon)`` (the acceptor's hook) authenticates the
Logon and may hand the session its counterparty's stored state.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kernels.fix.fields import NO_VALUE, timestamp_value
from kernels.fix.frame import FIX_SKIPPED_BYTES
from kernels.records import (
    SR_COMP_ID_PROBLEM, SR_INCORRECT_DATA_FORMAT, SR_INVALID_MSG_TYPE, SR_NONE,
    SR_REQUIRED_TAG_MISSING, SR_SENDING_TIME, SR_VALUE_OUT_OF_RANGE,
)
from workbench.data.prices import PRICE_SCALE
from workbench.fix.config import AcceptorConfig
from workbench.fix.dictionary import SESSION_REJECT_TEXT
from workbench.fix.encoder import build_message, encode_execution_reports, format_timestamp
from workbench.fix.parser import Workspace, parse

__all__ = ["FixSession", "InboundMessage", "LogonRefused", "Outgoing", "SessionState", "NS_PER_DAY"]

logger = logging.getLogger(__name__)

ADMIN_TYPES = {"0", "1", "2", "3", "4", "5", "A"}
NS_PER_DAY = 86_400 * 1_000_000_000
_HEADER_SLACK = 64   # bytes of "8=FIX.4.4|9=nnnnn|" and "10=nnn|" around a body
# the head of a pending message: BeginString, its delimiter, and BodyLength's digits so far
_HEAD = re.compile(rb"8=FIX[^\x01|=]{0,24}([\x01|])9=(\d*)")
_TEXT_MAX = 200


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
        return int(value) if value is not None and value.isascii() and value.isdigit() else None

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.fields.get(tag, default)


@dataclass
class Outgoing:
    """An application reply: a message type and body fields, or ExecutionReport records.

    ``texts`` / ``reject_reasons`` (one entry per report, ``None`` for none) add Text (58)
    and OrdRejReason (103) to the encoded reports (the rejects')."""

    msg_type: str = "8"
    fields: list[tuple[int, object]] = field(default_factory=list)
    reports: np.ndarray | None = None       # EXEC_REPORT records (encoded by the kernel)
    cl_ord_ids: list[str] | None = None
    symbols: tuple[str, ...] = ()
    price_scale: int = PRICE_SCALE
    texts: list[str | None] | None = None
    reject_reasons: list[int | None] | None = None


@dataclass(eq=False)
class SessionState:
    """What survives a reconnect within the session's (UTC) day: both sequence numbers
    and the last ``max_stored`` messages we sent (for ResendRequests).

    ``journal`` (a ``workbench.fix.store.FixJournal``, set by a journaled acceptor)
    journals every message stored and every reset, so the state also survives a
    restart of the acceptor."""

    day: int = 0                 # UTC day number (ns // NS_PER_DAY) the state belongs to
    next_out: int = 1
    expected_in: int = 1
    max_stored: int = 10_000
    sent: dict[int, bytes] = field(default_factory=dict)
    journal: object = field(default=None, repr=False)
    sid: int = 0                 # the session's id in the journal

    def store(self, raw: bytes) -> None:
        """Keep what we sent (the oldest beyond ``max_stored`` become gap fills)."""
        if self.journal is not None:
            self.journal.sent(self, self.next_out, raw)
        self.restore_sent(self.next_out, raw)

    def restore_sent(self, seq: int, raw: bytes) -> None:
        """Keep ``raw`` as sent with MsgSeqNum ``seq`` (no journaling: a replay)."""
        self.sent[seq] = raw
        self.next_out = seq + 1
        while len(self.sent) > self.max_stored:
            del self.sent[next(iter(self.sent))]

    def reset(self) -> None:
        if self.journal is not None:
            self.journal.reset(self)
        self.next_out = 1
        self.expected_in = 1
        self.sent.clear()


class LogonRefused(Exception):
    """Raised by an ``on_logon`` hook: the Logon is refused. With ``text`` a Logout
    carrying it is sent first; without, the connection is just closed (unknown or
    unauthenticated counterparties learn nothing)."""

    def __init__(self, reason: str, text: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.text = text


def _clean_text(text: str) -> str:
    return str(text).replace("\x01", " ")[:_TEXT_MAX]


def _with_fields(raw: bytes, extra: list[tuple[int, object]], begin_string: str) -> bytes:
    """A rendered SOH message with ``extra`` body fields added (BodyLength and CheckSum
    recomputed); body fields stay in tag order."""
    parts = raw.rstrip(b"\x01").split(b"\x01")
    pairs = [(int(t), v.decode("latin-1")) for t, _, v in (p.partition(b"=") for p in parts)]
    header = [(t, v) for t, v in pairs if t in (49, 56, 34, 52, 43, 97, 122)]
    body = [(t, v) for t, v in pairs if t not in (8, 9, 10, 35, 49, 56, 34, 52, 43, 97, 122)]
    body = sorted(body + [(t, v) for t, v in extra], key=lambda f: f[0])
    msg_type = next(v for t, v in pairs if t == 35)
    return build_message(msg_type, header + body, begin_string=begin_string)


class FixSession:
    """One acceptor-side FIX 4.4 session (see the module docstring)."""

    def __init__(self, sender_comp_id: str = "ISLD", target_comp_id: str | None = None, *,
                 application: Callable[["FixSession", InboundMessage], list[Outgoing]] | None = None,
                 begin_string: str = "FIX.4.4", clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic,
                 max_clock_skew: float = 120.0, max_stored: int | None = None,
                 limits: AcceptorConfig | None = None,
                 on_logon: Callable[["FixSession", InboundMessage], None] | None = None,
                 workspace: Workspace | None = None):
        if not sender_comp_id:
            raise ValueError("sender_comp_id must be non-empty")
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id   # None: taken from the Logon
        self.application = application
        self.begin_string = begin_string
        self.clock = clock                  # wall clock (ns) for SendingTime and the session's day
        self.monotonic = monotonic          # seconds, for heartbeat timing
        self.max_clock_skew = max_clock_skew
        self.limits = limits if limits is not None else AcceptorConfig()
        self.max_stored = self.limits.max_stored if max_stored is None else int(max_stored)
        self.on_logon = on_logon
        self.state = SessionState(day=clock() // NS_PER_DAY, max_stored=self.max_stored)
        self.logged_on = False
        self.closed = False
        self.close_reason: str | None = None
        self.logout_sent = False
        self.heartbeat_interval = 30.0
        self.garbled = 0                 # framing rejects seen (ignored messages)
        self.framing_rejects: dict[str, int] = {}
        self.noise_bytes = 0             # bytes skipped between messages
        self.received_bytes = 0
        self._buffer = bytearray()
        self._start = 0                  # first unconsumed byte of _buffer
        self._queue: dict[int, InboundMessage] = {}
        self._resend_until = 0           # a ResendRequest is outstanding up to this seq
        self._opened = monotonic()
        self._last_in = self._opened
        self._last_out = self._opened
        self._test_request_sent: float | None = None
        self._workspace = workspace

    # ------------------------------------------------------------ state access
    @property
    def next_out(self) -> int:
        return self.state.next_out

    @next_out.setter
    def next_out(self, value: int) -> None:
        self.state.next_out = value

    @property
    def expected_in(self) -> int:
        return self.state.expected_in

    @expected_in.setter
    def expected_in(self, value: int) -> None:
        self.state.expected_in = value

    @property
    def sent(self) -> dict[int, bytes]:
        return self.state.sent

    @property
    def owner(self) -> tuple[str | None, str]:
        """The counterparty's identity: its (SenderCompID, TargetCompID)."""
        return self.target_comp_id, self.sender_comp_id

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (an incomplete message's head)."""
        return len(self._buffer) - self._start

    @property
    def buffer_capacity(self) -> int:
        """Bytes the receive buffer holds, consumed or not (before compaction)."""
        return len(self._buffer)

    def _close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason

    def release(self) -> None:
        """Drop what a closed connection no longer needs (buffers, the gap queue); the
        ``state`` stays for the counterparty's next connection."""
        self._close("released")
        self._buffer = bytearray()
        self._start = 0
        self._queue.clear()
        self._workspace = None

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
        self.state.store(raw)

    def send_reports(self, out: Outgoing) -> list[bytes]:
        """Encode ExecutionReport records with this session's sequence numbers (with
        Text and OrdRejReason where ``out`` gives them)."""
        buffer, offsets = encode_execution_reports(
            out.reports, sender_comp_id=self.sender_comp_id, target_comp_id=self.target_comp_id or "?",
            first_seq=self.next_out, sending_time=self.clock(), symbols=out.symbols,
            cl_ord_ids=out.cl_ord_ids, price_scale=out.price_scale, begin_string=self.begin_string)
        raw = buffer.tobytes()
        messages = [raw[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]
        texts = out.texts or [None] * len(messages)
        reasons = out.reject_reasons or [None] * len(messages)
        for k, (text, reason) in enumerate(zip(texts, reasons)):
            extra = [(58, _clean_text(text))] if text else []
            extra += [(103, reason)] if reason is not None else []
            if extra:
                messages[k] = _with_fields(messages[k], extra, self.begin_string)
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
        return self.send("5", [(58, _clean_text(text))] if text else [])

    # ----------------------------------------------------------------- inbound
    def receive(self, data: bytes) -> list[bytes]:
        """Feed received bytes; returns the messages to send (in order)."""
        if self.closed:
            return []
        if not self.logged_on and self.monotonic() - self._opened > self.limits.logon_timeout:
            self._close("logon_timeout")
            return []
        self._append(data)
        self.received_bytes += len(data)
        messages, rejects = self._scan()
        if messages or rejects:
            self._last_in = self.monotonic()
            self._test_request_sent = None
        out: list[bytes] = []
        if rejects:
            self.garbled += rejects
            if not self.logged_on:
                self._close("garbled_logon")  # a garbled Logon: nothing to answer
                return out
        for msg in messages:
            if self.closed:
                break
            out.extend(self._on_message(msg))
        if self.closed:
            return out
        if self.garbled > self.limits.max_garbled:
            self._close("garbled")
            return out + [self._logout(f"more than {self.limits.max_garbled} garbled messages")]
        size = self._pending_size()
        if size is not None and size > self.limits.max_message_size:
            self.framing_rejects["oversized"] = self.framing_rejects.get("oversized", 0) + 1
            self._close("oversized")
            if self.logged_on:
                out.append(self._logout(f"BodyLength {size} exceeds the limit of "
                                        f"{self.limits.max_message_size} bytes"))
            return out
        if not self.logged_on and self.received_bytes > self.limits.max_message_size + _HEADER_SLACK:
            self._close("logon_too_large")  # no Logon within one message's worth of bytes
        return out

    def _append(self, data: bytes) -> None:
        try:
            self._buffer += data
        except BufferError:  # a scan view was kept alive (never expected): copy instead
            self._buffer = self._buffer[self._start:] + data
            self._start = 0

    def _scan(self) -> tuple[list[InboundMessage], int]:
        """Frame the complete messages in the pending bytes (scanned in place, no copy);
        returns them and the framing rejects (garbled messages) among them. Noise between
        messages is skipped and counted in ``noise_bytes``."""
        if self.buffered == 0:
            return [], 0
        view = np.frombuffer(self._buffer, np.uint8)[self._start:]
        if self._workspace is None:
            self._workspace = Workspace()
        try:
            batch = parse(view, stream=True, parallel=False, workspace=self._workspace)
            messages = []
            for i in range(len(batch)):
                m = batch.messages[i]
                messages.append(InboundMessage(batch.msg_type(i), batch.message_dict(i),
                                               batch.message_bytes(i), int(m["reject_reason"]),
                                               int(m["reject_tag"])))
            consumed = int(batch.consumed)
            rejects = 0
            for name, count in batch.framing_rejects.items():
                if count:
                    self.framing_rejects[name] = self.framing_rejects.get(name, 0) + count
                    rejects += count
            self.noise_bytes += int(batch.counts[FIX_SKIPPED_BYTES])
        finally:
            batch = view = None  # release the buffer export before the bytearray changes
        self._start += consumed
        if self._start >= len(self._buffer):
            self._buffer.clear()
            self._start = 0
        elif self._start > 4096 and self._start * 2 >= len(self._buffer):
            del self._buffer[:self._start]   # compaction: what is left is below one message
            self._start = 0
        return messages, rejects

    def _pending_size(self) -> int | None:
        """The BodyLength the pending (incomplete) message declares, as far as its digits
        have arrived; None when no message head is pending."""
        if self.buffered < 8:
            return None
        head = _HEAD.match(self._buffer, self._start, min(len(self._buffer), self._start + 48))
        if head is None or not head.group(2):
            return None
        digits = head.group(2)
        return int(digits[:12]) if len(digits) <= 12 else 10 ** 12

    def _on_message(self, msg: InboundMessage) -> list[bytes]:
        if msg.get(8) != self.begin_string:
            self._close("begin_string")
            return [self._logout("Incorrect BeginString")] if self.logged_on else []
        if not self.logged_on:
            return self._on_logon(msg)
        if msg.reject_reason != SR_NONE and msg.msg_type != "4":
            return self._on_invalid(msg)
        if not self._good_time(msg.get(52)):
            self.expected_in = max(self.expected_in, (msg.seq_num or 0) + 1)
            self._close("sending_time")
            return [self._reject(msg, SR_SENDING_TIME), self._logout()]
        if msg.get(49) != self.target_comp_id or msg.get(56) != self.sender_comp_id:
            self.expected_in = max(self.expected_in, (msg.seq_num or 0) + 1)
            self._close("comp_id")
            return [self._reject(msg, SR_COMP_ID_PROBLEM), self._logout()]
        if msg.msg_type == "5":  # a Logout is answered whatever its MsgSeqNum
            if msg.seq_num == self.expected_in:
                self.expected_in += 1     # counted when in sequence: the next Logon follows it
            self._close("logout")
            return [] if self.logout_sent else [self._logout()]
        if msg.msg_type == "4" and msg.get(123, "N") != "Y":
            return self._on_sequence_reset(msg)
        if msg.msg_type == "A" and msg.get(141) == "Y":
            problem = self._heartbeat_problem(msg.get(108))
            if problem:
                self._close("heartbeat")
                return [self._logout(problem)]
            self.heartbeat_interval = float(msg.get(108))
            return self._reset(msg)
        seq = msg.seq_num
        if seq is None:
            return self._on_invalid(msg)
        if msg.msg_type == "2" and seq != self.expected_in:
            # a ResendRequest is answered at once whatever its MsgSeqNum (as QuickFIX does);
            # a too-high one still opens a gap, and counts as received
            out = self._resend(msg)
            if seq > self.expected_in:
                out.extend(self._enqueue(seq, InboundMessage("0", msg.fields, msg.raw)))
            return out
        if seq > self.expected_in:
            return self._enqueue(seq, msg)
        if seq < self.expected_in:
            if msg.get(43) == "Y":
                if msg.get(122) is None:
                    return [self._reject(msg, SR_REQUIRED_TAG_MISSING, 122)]
                if msg.get(122, "") > msg.get(52, ""):  # same format: text order is time order
                    self._close("sending_time")
                    return [self._reject(msg, SR_SENDING_TIME), self._logout()]
                return []  # a duplicate we already have
            self._close("seq_too_low")
            return [self._logout(f"MsgSeqNum too low, expecting {self.expected_in} but received {seq}")]
        out = self._process(msg)
        out.extend(self._drain())
        return out

    def _enqueue(self, seq: int, msg: InboundMessage) -> list[bytes]:
        """Hold a message beyond a gap (at most ``max_queued``); ask for the gap once."""
        if seq not in self._queue and len(self._queue) >= self.limits.max_queued:
            self._close("queue_full")
            return [self._logout(f"more than {self.limits.max_queued} messages beyond a sequence gap")]
        self._queue[seq] = msg
        if self._resend_until < self.expected_in:
            self._resend_until = seq
            return [self.send("2", [(7, self.expected_in), (16, 0)])]
        return []

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
            new_seq = msg.get(36)
            if new_seq is None:
                return [self._reject(msg, SR_REQUIRED_TAG_MISSING, 36)]
            if not (new_seq.isascii() and new_seq.isdigit()):
                return [self._reject(msg, SR_INCORRECT_DATA_FORMAT, 36)]
            if int(new_seq) > self.expected_in:
                self.expected_in = int(new_seq)
            return []
        if kind == "A":
            return []
        if self.application is None:
            return [self.send("j", [(45, msg.seq_num), (58, "Unsupported Message Type"),
                                    (372, kind), (380, 3)])]
        try:
            outgoing = self.application(self, msg)
        except Exception:  # the server boundary: a bug must not cost the client its session
            logger.exception("FIX application failed on %s message %s", kind, msg.seq_num)
            return [self.send("j", [(45, msg.seq_num), (58, "Message could not be processed"),
                                    (372, kind), (380, 0)])]
        return self._emit(outgoing)

    def _gap_fill(self, begin: int, new_seq: int) -> bytes:
        """SequenceReset-GapFill standing for our messages begin..new_seq-1."""
        now = format_timestamp(self.clock())
        return build_message("4", [(49, self.sender_comp_id), (56, self.target_comp_id), (34, begin),
                                   (43, "Y"), (52, now), (122, now), (123, "Y"), (36, new_seq)],
                             begin_string=self.begin_string)

    @staticmethod
    def _stored_type(raw: bytes) -> str:
        at = raw.find(b"\x0135=") + 4
        return raw[at:raw.find(b"\x01", at)].decode("latin-1") if at >= 4 else ""

    def _resend(self, msg: InboundMessage) -> list[bytes]:
        """Answer a ResendRequest: application messages again (PossDupFlag=Y, the original
        SendingTime as OrigSendingTime), runs of session messages (and messages no longer
        stored) as one gap fill."""
        values = {}
        for tag, default in ((7, "1"), (16, "0")):
            text = msg.get(tag, default)
            if not (text.isascii() and text.isdigit()):
                return [self._reject(msg, SR_INCORRECT_DATA_FORMAT, tag)]
            values[tag] = int(text)
        begin, end = max(values[7], 1), values[16]
        last = self.next_out - 1 if end == 0 or end >= self.next_out else end
        out: list[bytes] = []
        oldest = next(iter(self.sent), self.next_out)
        gap_start = begin if begin < oldest and begin <= last else None
        for seq in range(max(begin, oldest), last + 1):
            raw = self.sent.get(seq)
            if raw is None or self._stored_type(raw) in ADMIN_TYPES:
                gap_start = seq if gap_start is None else gap_start
                continue
            stored = parse(raw, validate=False)
            if len(stored) != 1:
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
        self.state.reset()
        self._queue.clear()
        self._resend_until = 0
        self.expected_in = (msg.seq_num or 1) + 1
        return [self.send("A", [(98, 0), (108, int(self.heartbeat_interval)), (141, "Y")])]

    def _on_sequence_reset(self, msg: InboundMessage) -> list[bytes]:
        new_seq = msg.get(36)
        if new_seq is None:
            return [self._reject(msg, SR_REQUIRED_TAG_MISSING, 36)]
        if not (new_seq.isascii() and new_seq.isdigit()):
            return [self._reject(msg, SR_INCORRECT_DATA_FORMAT, 36)]
        if int(new_seq) < self.expected_in:
            return [self._reject(msg, SR_VALUE_OUT_OF_RANGE)]
        self.expected_in = int(new_seq)
        return self._drain()

    def _on_invalid(self, msg: InboundMessage) -> list[bytes]:
        seq = msg.seq_num
        if seq is not None and seq > self.expected_in:
            return self._enqueue(seq, msg)  # judge it when its turn comes
        if seq is not None and seq == self.expected_in:
            self.expected_in += 1
        return [self._reject(msg, msg.reject_reason, msg.reject_tag)] + self._drain()

    def _heartbeat_problem(self, value: str | None) -> str | None:
        low, high = self.limits.min_heartbeat_interval, self.limits.max_heartbeat_interval
        if value is None or not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            return f"HeartBtInt {value} is outside {low}..{high} seconds"
        return None

    def _on_logon(self, msg: InboundMessage) -> list[bytes]:
        if msg.msg_type != "A" or msg.reject_reason != SR_NONE:
            self._close("not_logon")
            return []
        if self.on_logon is None and (msg.get(56) != self.sender_comp_id
                                      or (self.target_comp_id and msg.get(49) != self.target_comp_id)):
            self._close("comp_id")
            return []
        if not self._good_time(msg.get(52)):
            self._close("sending_time")
            return []
        if self.on_logon is not None:
            try:
                self.on_logon(self, msg)   # authenticates; may set our CompID and the state
            except LogonRefused as refusal:
                self._close(refusal.reason)
                return [self._logout(refusal.text)] if refusal.text else []
        self.target_comp_id = msg.get(49)
        problem = self._heartbeat_problem(msg.get(108))
        if problem:
            self._close("heartbeat")
            return [self._logout(problem)]
        self.heartbeat_interval = float(msg.get(108))
        seq = msg.seq_num or 1
        if msg.get(141) == "Y":
            self.logged_on = True
            return self._reset(msg)
        if seq < self.expected_in:  # a reconnect that forgot our sequence numbers
            self._close("seq_too_low")
            return [self._logout(f"MsgSeqNum too low, expecting {self.expected_in} but received {seq}")]
        self.logged_on = True
        out = [self.send("A", [(98, 0), (108, int(self.heartbeat_interval))])]
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
        1.2 intervals; give up (close) after a further interval without an answer. Before
        the Logon: close once ``logon_timeout`` has passed."""
        if self.closed:
            return []
        now = self.monotonic() if now is None else now
        if not self.logged_on:
            if now - self._opened > self.limits.logon_timeout:
                self._close("logon_timeout")
            return []
        out = []
        if self._test_request_sent is not None and now - self._test_request_sent > self.heartbeat_interval:
            self._close("heartbeat_timeout")  # the counterparty is gone: drop the connection
            return []
        if now - self._last_in > 1.2 * self.heartbeat_interval and self._test_request_sent is None:
            self._test_request_sent = now
            out.append(self.send("1", [(112, "TEST")]))
        elif now - self._last_out >= self.heartbeat_interval:
            out.append(self.send("0"))
        return out

    def logon_deadline(self) -> float:
        """Monotonic time by which the Logon must be complete."""
        return self._opened + self.limits.logon_timeout
