"""FIX 4.4 for the workbench: parse, validate, decode, encode, and a TCP acceptor.

``parse(data) -> FixBatch`` frames and checksums every message (kernels.fix), validates
it against the shipped FIX 4.4 dictionary subset, and decodes orders into engine
``EVENT`` records (ExecutionReports for people: ``reports_frame``, prices as prices and
codes as names); ``encode_execution_report`` renders fills as ExecutionReports;
``FixSession`` is the session layer (logon, heartbeats, sequence numbers) without I/O and
``FixAcceptor`` serves it over asyncio TCP (optionally TLS) into the matching ``Engine``,
admitting the counterparties and enforcing the limits of one ``AcceptorConfig``.
``workbench.fix.gateway`` is the client side: blocking, threaded and asyncio order gateways, a
session pool, ``LocalAcceptor`` (the acceptor in a child process) and ``compare_gateways``.
"""
from __future__ import annotations

from workbench.fix.config import AcceptorConfig, Counterparty, server_tls_context
from workbench.fix.dictionary import Dictionary, load_dictionary
from workbench.fix.encoder import (
    build_message, checksum, encode_execution_report, encode_execution_reports,
    execution_reports_from_fills,
)
from workbench.fix.parser import FixBatch, parse, reports_frame

__all__ = [
    "AcceptorConfig", "Counterparty", "Dictionary", "FixAcceptor", "FixBatch", "FixSession",
    "build_message", "checksum", "encode_execution_report", "encode_execution_reports", "execution_reports_from_fills",
    "load_dictionary", "parse", "reports_frame", "server_tls_context",
    "AsyncGateway", "BlockingSession", "LocalAcceptor", "Order", "SessionPool", "ThreadedGateway",
    "compare_gateways",
]


_GATEWAY = ("AsyncGateway", "BlockingSession", "LocalAcceptor", "Order", "SessionPool",
            "ThreadedGateway", "compare_gateways")


def __getattr__(name):
    # the session and the acceptor pull in asyncio and the engine: load them on first use
    if name == "FixSession":
        from workbench.fix.session import FixSession
        return FixSession
    if name == "FixAcceptor":
        from workbench.fix.acceptor import FixAcceptor
        return FixAcceptor
    if name in _GATEWAY:
        from workbench.fix import gateway
        return getattr(gateway, name)
    raise AttributeError(name)
