"""Sequenced streams over the rings of ``workbench.queues``: the test and benchmark harness.

Owns ``send_sequence`` (a producer that publishes messages ``0..n-1``, built in place
in the ring), ``send_paced`` (one message at a time, for hand-off latency),
``receive_sequence`` (a consumer that checks every ``seq``: none lost, duplicated or
reordered, optionally timing each message's one-way latency) and its
``SequenceReport``, and the launchers that run them in a thread or a child process
(``start_producer_thread``, ``start_producer_process``, ``start_consumer_process``).

It drives the ``kernels.ring`` sequence kernels through the rings' public surface
only (``views()``, ``heartbeat()``, ``check_peer()``, ``finish()``, ``finished``,
``len()``): back-pressure, dead-peer detection and end of stream behave as they do
for ``Ring.put``/``Ring.get``.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass

import numpy as np

from kernels import ring as kr
from kernels.histogram import new_histogram
from workbench.queues import SPIN_BUDGET, Backoff, Ring, SharedRing

__all__ = [
    "SequenceReport", "send_sequence", "send_paced", "receive_sequence",
    "start_producer_thread", "start_producer_process", "start_consumer_process",
]


# ------------------------------------------------------------------ sequences
@dataclass
class SequenceReport:
    """What a consumer of a sequenced stream saw."""

    expected: int | None
    received: int
    lost: int
    out_of_order: int
    elapsed_s: float  # from the end of the first batch to the end of the last
    timed: int = 0    # messages consumed within elapsed_s (all but the first batch)

    @property
    def ok(self) -> bool:
        """Every message arrived exactly once and in order."""
        complete = self.expected is None or self.received == self.expected
        return complete and self.lost == 0 and self.out_of_order == 0

    @property
    def msgs_per_sec(self) -> float:
        """Throughput over the timed window (excludes the first batch, which may
        have waited for the producer to start)."""
        return self.timed / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def send_sequence(ring: Ring, n_messages: int, *, batch: int = 256, first_seq: int = 0,
                  finish: bool = True, timeout: float | None = None) -> int:
    """Producer: publish messages ``first_seq .. first_seq+n-1`` (MESSAGE dtype),
    built in place in the ring, waiting on back-pressure. Returns the count sent."""
    if n_messages < 0 or batch < 1:
        raise ValueError(f"need n_messages >= 0 and batch >= 1, got {n_messages}, {batch}")
    h, slots = ring.views()
    seq, end = int(first_seq), int(first_seq) + int(n_messages)
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = Backoff()
    while seq < end:
        ring.heartbeat("producer")
        before = seq
        seq = int(kr.produce_sequence(h, slots, seq, end, int(batch), SPIN_BUDGET))
        if seq < end:
            ring.check_peer("consumer")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"stream not sent within {timeout} s: {seq - first_seq} of "
                                   f"{n_messages} published")
            if seq > before:
                backoff.reset()
            backoff.wait()
    if finish:
        ring.finish()
    return int(n_messages)


def send_paced(ring: Ring, n_messages: int, *, gap_ns: int = 2_000, finish: bool = True) -> int:
    """Producer for latency probes: one message at a time into an empty ring."""
    h, slots = ring.views()
    seq, end = 0, int(n_messages)
    backoff = Backoff()
    while seq < end:
        ring.heartbeat("producer")
        before = seq
        seq = int(kr.produce_paced(h, slots, seq, end, int(gap_ns), SPIN_BUDGET))
        if seq < end:
            ring.check_peer("consumer")
            if seq > before:
                backoff.reset()
            backoff.wait()
    if finish:
        ring.finish()
    return end


def receive_sequence(ring: Ring, n_messages: int | None = None, *, histogram: np.ndarray | None = None,
                     batch: int = 4096, timeout: float | None = None) -> SequenceReport:
    """Consumer: read a sequenced stream until ``n_messages`` arrived or the producer
    finished, checking every ``seq`` (none lost, duplicated or reordered).

    With ``histogram`` (a ``kernels.histogram`` array) each message's one-way
    latency ``now - ts`` is recorded. Raises ``PeerDeadError`` when the producer
    dies first, ``TimeoutError`` after ``timeout`` seconds without completion.
    """
    h, slots = ring.views()
    state = np.zeros(kr.SEQ_STATE_WORDS, dtype=np.int64)
    record_latency = histogram is not None
    hist = histogram if record_latency else new_histogram(2, 4)
    target = np.iinfo(np.int64).max if n_messages is None else int(n_messages)
    deadline = None if timeout is None else time.monotonic() + timeout
    first_ns = last_ns = first_batch = 0
    backoff = Backoff()
    while state[kr.SEQ_RECEIVED] < target:
        ring.heartbeat("consumer")
        want = int(min(batch, target - state[kr.SEQ_RECEIVED]))
        n = kr.consume_sequence(h, slots, state, want, SPIN_BUDGET, hist, record_latency)
        if n:
            last_ns = time.perf_counter_ns()
            if not first_ns:  # the clock starts after the first batch: count from there
                first_ns, first_batch = last_ns, int(n)
            backoff.reset()
            continue
        if ring.finished and len(ring) == 0:
            break
        ring.check_peer("producer")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"stream incomplete after {timeout} s: {int(state[kr.SEQ_RECEIVED])} received")
        backoff.wait()
    expected = None if n_messages is None else int(n_messages)
    lost = int(state[kr.SEQ_LOST])
    if expected is not None and state[kr.SEQ_EXPECTED] < expected:
        lost += expected - int(state[kr.SEQ_EXPECTED])  # the tail that never came
    return SequenceReport(expected, int(state[kr.SEQ_RECEIVED]), lost,
                          int(state[kr.SEQ_OUT_OF_ORDER]), (last_ns - first_ns) / 1e9,
                          int(state[kr.SEQ_RECEIVED]) - first_batch)


# ------------------------------------------------------------- threads, processes
def start_producer_thread(ring: Ring, n_messages: int, *, batch: int = 256) -> threading.Thread:
    """Run ``send_sequence`` in a daemon thread; its exception (if any) lands in
    ``thread.error`` (the thread's kernel calls release the GIL)."""
    def run():
        try:
            send_sequence(ring, n_messages, batch=batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            thread.error = exc

    thread = threading.Thread(target=run, name="ring-producer", daemon=True)
    thread.error = None
    # compile (or load) the publish kernels first: the producer's heartbeat clock starts
    # at register, and a thread compiling on a cold cache must not look like a dead one
    _warm_up(ring.dtype, batch, False)
    ring.register("producer")
    thread.start()
    return thread


def _warm_up(dtype, batch: int, paced: bool) -> None:
    """Compile (or load from the cache) the kernels a child streams with, on a private
    ring, before it attaches: its first heartbeat then means "ready", and a slow start
    (a busy machine, a cold cache) is never mistaken for a dead peer."""
    n = max(1, min(int(batch), 1024))
    local = Ring(2048, dtype)
    send_sequence(local, n, batch=n)  # the paced sender uses the same publish kernels
    receive_sequence(local, n, batch=n, timeout=60)


def _child_producer(name: str, dtype, n_messages: int, batch: int, paced_gap_ns: int | None,
                    peer_timeout) -> None:
    _warm_up(dtype, batch, paced_gap_ns is not None)
    ring = SharedRing.attach(name, dtype, peer_timeout=peer_timeout)
    try:
        if paced_gap_ns is None:
            send_sequence(ring, n_messages, batch=batch)
        else:
            send_paced(ring, n_messages, gap_ns=paced_gap_ns)
    finally:
        ring.close()


def _child_consumer(name: str, dtype, n_messages: int, batch: int, peer_timeout, results) -> None:
    _warm_up(dtype, batch, False)
    ring = SharedRing.attach(name, dtype, peer_timeout=peer_timeout)
    try:
        report = receive_sequence(ring, n_messages, batch=batch)
        results.put(report)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(exc)
    finally:
        ring.close()


def _context(method: str):
    return mp.get_context(method)


def start_producer_process(ring: SharedRing, n_messages: int, *, batch: int = 256,
                           paced_gap_ns: int | None = None, method: str = "spawn"):
    """Start a process that attaches to ``ring`` by name and sends a sequence.

    The parent registers the child's pid as the producer at once, so a child that
    dies even before attaching is reported by the consumer instead of awaited.
    ``spawn`` is the default because forking a process that has threads (numba,
    pytest, the notebook kernel) is unsafe.
    """
    if not isinstance(ring, SharedRing):
        raise TypeError("processes need a SharedRing")
    process = _context(method).Process(
        target=_child_producer, name="ring-producer",
        args=(ring.name, ring.dtype, int(n_messages), int(batch), paced_gap_ns, ring.peer_timeout),
        daemon=True)
    process.start()
    ring.register("producer", process.pid)
    return process


def start_consumer_process(ring: SharedRing, n_messages: int, *, batch: int = 4096,
                           method: str = "spawn"):
    """Start a process that reads ``n_messages``; returns (process, results queue),
    the queue yields its ``SequenceReport`` (or the exception it raised)."""
    if not isinstance(ring, SharedRing):
        raise TypeError("processes need a SharedRing")
    ctx = _context(method)
    results = ctx.Queue()
    process = ctx.Process(target=_child_consumer, name="ring-consumer",
                          args=(ring.name, ring.dtype, int(n_messages), int(batch),
                                ring.peer_timeout, results), daemon=True)
    process.start()
    ring.register("consumer", process.pid)
    return process, results
