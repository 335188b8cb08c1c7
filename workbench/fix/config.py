"""``AcceptorConfig``: who the FIX acceptor admits and the limits it enforces.

One frozen, validated settings object for ``FixAcceptor`` (and the ``FixSession`` and
``EngineApplication`` it runs). The defaults are the secure ones: an empty allow-list
(every Logon is refused until counterparties are named), a 10 s logon deadline, 16 KiB
messages, 128 connections (8 per peer address), HeartBtInt 1..120 s. Change them with
``dataclasses.replace(config, ...)`` or by passing keywords.

>>> AcceptorConfig(counterparties=["BUYER", Counterparty("SELLER", password="s3cret")])  # doctest: +SKIP
"""
from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AcceptorConfig", "Counterparty", "server_tls_context"]

_FORBIDDEN = ("\x01", "|", "=")


def _comp_id(value, name: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in _FORBIDDEN) or len(value) > 64:
        raise ValueError(f"{name}={value!r} must be a non-empty string of at most 64 characters "
                         "without SOH, '|' or '='")
    return value


@dataclass(frozen=True)
class Counterparty:
    """One allowed counterparty: the SenderCompID (49) it logs on with, the TargetCompID
    (56) it must address (``None``: the acceptor's own CompID), and optionally the
    Username (553) and Password (554) its Logon must carry (compared in constant time)."""

    sender_comp_id: str
    target_comp_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self):
        _comp_id(self.sender_comp_id, "sender_comp_id")
        if self.target_comp_id is not None:
            _comp_id(self.target_comp_id, "target_comp_id")
        for name in ("username", "password"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value or "\x01" in value):
                raise ValueError(f"{name} must be a non-empty string without SOH (or None)")


def _positive(value, name: str, *, integer: bool, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float) if not integer else int):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}={value!r} must be {kind}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be positive")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value!r} must be at most {maximum}")
    return value


@dataclass(frozen=True)
class AcceptorConfig:
    """What ``FixAcceptor`` accepts (see the module docstring for the defaults' rationale).

    counterparties: the allow-list; entries are ``Counterparty`` objects, SenderCompID
        strings or ``(SenderCompID, TargetCompID)`` pairs. Empty: nobody can log on.
    logon_timeout: seconds a connection (TLS handshake included) may take to complete
        its Logon; it is dropped after that.
    max_message_size: largest BodyLength (9) accepted, in bytes, checked as soon as the
        header arrives: a larger one closes the connection (with a Logout once logged
        on) before anything is buffered. Before its Logon, a connection may send at most
        this many bytes (plus header room).
    max_connections / max_connections_per_peer: open connections in total and per peer
        address; more are closed at once.
    min_heartbeat_interval / max_heartbeat_interval: the HeartBtInt (108) range, seconds.
    max_garbled: garbled messages tolerated per connection (they are ignored, as FIX
        says, up to this many; then Logout and disconnect).
    max_queued: messages held while a sequence gap is being filled; more -> Logout.
    max_stored: messages kept per counterparty for ResendRequests (and ClOrdIDs
        remembered for PossResend), across reconnects within the session's day.
    max_write_buffer: bytes queued for a client that does not read; more -> disconnect.
    write_timeout: seconds to wait for a client to take our bytes.
    max_order_qty: largest OrderQty (38) accepted; larger orders get a reject.
    tls: an ``ssl.SSLContext`` for TLS (see ``server_tls_context``); None: plain TCP.
    journal: a directory for the acceptor's journal (engine commands, sent messages,
        sequence numbers, order ownership: ``workbench.fix.store``); a new acceptor over
        the same directory recovers from it. None: nothing survives a stop (warned in
        ProductionSafe mode).
    durability: the journal's policy, "every", "batch" or "none" (None: the mode's
        default, "every" in ProductionSafe); ExecutionReports go out once durable.
    snapshot_every: take an engine + sessions snapshot every this many journal records
        (older segments are then pruned); None: only on ``acceptor.snapshot()``.
    journal_options: ``workbench.journal`` options (``batch_records``, ``batch_us``, ...).
    mode: ``workbench.modes`` mode (None: ``WORKBENCH_MODE``, else ProductionSafe).
    """

    counterparties: tuple = ()
    logon_timeout: float = 10.0
    max_message_size: int = 16_384
    max_connections: int = 128
    max_connections_per_peer: int = 8
    min_heartbeat_interval: int = 1
    max_heartbeat_interval: int = 120
    max_garbled: int = 100
    max_queued: int = 1_000
    max_stored: int = 10_000
    max_write_buffer: int = 1 << 20
    write_timeout: float = 10.0
    max_order_qty: int = 1_000_000_000
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    journal: str | Path | None = None
    durability: str | None = None
    snapshot_every: int | None = None
    journal_options: dict | None = None
    mode: object = None

    def __post_init__(self):
        from workbench import modes

        object.__setattr__(self, "mode", modes.mode(self.mode))
        if self.journal is not None:
            if not isinstance(self.journal, (str, Path)) or not str(self.journal):
                raise ValueError(f"journal={self.journal!r} must be a directory path or None")
            if Path(self.journal).exists() and not Path(self.journal).is_dir():
                raise ValueError(f"journal={str(self.journal)!r} is not a directory")
        if self.durability is not None and self.durability not in ("every", "batch", "none"):
            raise ValueError(f"durability={self.durability!r} must be 'every', 'batch', 'none' "
                             f"or None")
        if self.snapshot_every is not None:
            _positive(self.snapshot_every, "snapshot_every", integer=True)
        if self.journal_options is not None and not isinstance(self.journal_options, dict):
            raise ValueError(f"journal_options={self.journal_options!r} must be a dict or None")
        if self.journal is None and (self.durability is not None or self.snapshot_every
                                     is not None or self.journal_options):
            raise ValueError("durability, snapshot_every and journal_options need journal=DIR")
        entries = self.counterparties
        if isinstance(entries, (str, Counterparty)):
            entries = (entries,)
        normalised = []
        for entry in entries:
            if isinstance(entry, str):
                entry = Counterparty(entry)
            elif isinstance(entry, tuple) and len(entry) == 2:
                entry = Counterparty(*entry)
            elif not isinstance(entry, Counterparty):
                raise ValueError(f"counterparties: {entry!r} is not a Counterparty, a SenderCompID "
                                 "or a (SenderCompID, TargetCompID) pair")
            normalised.append(entry)
        keys = [(c.sender_comp_id, c.target_comp_id) for c in normalised]
        if len(set(keys)) != len(keys):
            raise ValueError(f"counterparties: duplicate entries in {keys}")
        object.__setattr__(self, "counterparties", tuple(normalised))
        _positive(self.logon_timeout, "logon_timeout", integer=False, maximum=3600)
        _positive(self.write_timeout, "write_timeout", integer=False, maximum=3600)
        _positive(self.max_message_size, "max_message_size", integer=True, maximum=1 << 24)
        if self.max_message_size < 256:
            raise ValueError(f"max_message_size={self.max_message_size} is too small for a Logon (>= 256)")
        for name in ("max_connections", "max_connections_per_peer", "max_garbled", "max_queued",
                     "max_stored", "max_write_buffer", "max_order_qty"):
            _positive(getattr(self, name), name, integer=True)
        if self.max_order_qty >= 1 << 62:
            raise ValueError(f"max_order_qty={self.max_order_qty} must be below 2**62")
        if self.max_connections_per_peer > self.max_connections:
            raise ValueError(f"max_connections_per_peer={self.max_connections_per_peer} exceeds "
                             f"max_connections={self.max_connections}")
        _positive(self.min_heartbeat_interval, "min_heartbeat_interval", integer=True)
        _positive(self.max_heartbeat_interval, "max_heartbeat_interval", integer=True, maximum=3600)
        if self.min_heartbeat_interval > self.max_heartbeat_interval:
            raise ValueError(f"min_heartbeat_interval={self.min_heartbeat_interval} exceeds "
                             f"max_heartbeat_interval={self.max_heartbeat_interval}")
        if self.tls is not None and not isinstance(self.tls, ssl.SSLContext):
            raise ValueError(f"tls={self.tls!r} must be an ssl.SSLContext (see server_tls_context) or None")

    def counterparty(self, sender_comp_id: str | None, target_comp_id: str | None,
                     own_comp_id: str) -> Counterparty | None:
        """The allow-list entry for a Logon's (49, 56), or None."""
        for entry in self.counterparties:
            if entry.sender_comp_id == sender_comp_id and (entry.target_comp_id or own_comp_id) == target_comp_id:
                return entry
        return None


def server_tls_context(certfile, keyfile=None, *, cafile=None) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) with our certificate; with ``cafile``,
    clients must present a certificate signed by it (mutual TLS)."""
    for name, path in (("certfile", certfile), ("keyfile", keyfile), ("cafile", cafile)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}={str(path)!r} is not a file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if cafile is not None:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
