"""Single-producer single-consumer ring of fixed-size records over any byte buffer.

Owns the ring's memory layout and the kernels that move records through it. A ring
is two numpy views of one buffer (a numpy array for threads, a
``multiprocessing.shared_memory`` block for processes; ``workbench.queues`` makes
both): ``header`` (int64 words, ``HEADER_BYTES`` long) followed by ``slots``
(``capacity`` records of one dtype, e.g. ``kernels.records.MESSAGE``).

Layout of the header, one 64-byte cache line per owner so the producer's writes
never invalidate the line the consumer is spinning on and vice versa (false sharing
would cost a cache-line transfer per message):

line 0  layout, written once: magic, capacity, mask, record size
line 1  ``head``: records ever published (written by the producer only)
line 2  producer-private: its cached copy of ``tail``, full-spin counter
line 3  ``tail``: records ever consumed (written by the consumer only)
line 4  consumer-private: its cached copy of ``head``, empty-spin counter
line 5  producer liveness: pid, heartbeat (ns), closed flag
line 6  consumer liveness: pid, heartbeat (ns), closed flag

``head`` and ``tail`` only grow (int64 never wraps in practice); a record's slot is
``sequence & mask``, so the capacity is a power of two. The producer re-reads
``tail`` (a cache miss on the consumer's line) only when its cached copy says the
ring is full, and the consumer re-reads ``head`` only when its cached copy says it is
empty: with batches, the cursors' lines cross between cores once per batch, not
once per message.

Ordering: slot bytes are written with plain stores and then ``head`` is advanced
with a release store; the consumer reads ``head`` with an acquire load before it
reads the slots (and symmetrically for ``tail``), see ``kernels.atomics``.

``mpmc_*`` is the multi-producer multi-consumer variant (Dmitry Vyukov's bounded
queue): same header, plus one int64 *turn* per slot after the slots. Producers
claim a position with a CAS on ``head``, write the slot, then release the slot's
turn; consumers do the mirror image on ``tail``. It costs a CAS per record, so the
SPSC ring stays the fast path whenever there is one producer and one consumer.

Kernels never block forever: the spinning ones take ``max_spins`` and return to
Python when it runs out, so Python can check heartbeats, timeouts and Ctrl-C.
"""
from __future__ import annotations

import numpy as np

from .atomics import compare_and_swap, cpu_pause, load_acquire, store_release
from .clock import now_ns
from .histogram import record as _record
from .jit import kernel

__all__ = [
    "HEADER_BYTES", "HEADER_WORDS", "RING_MAGIC", "CACHE_LINE",
    "H_MAGIC", "H_CAPACITY", "H_MASK", "H_RECORD_SIZE", "H_HEAD", "H_CACHED_TAIL",
    "H_FULL_SPINS", "H_TAIL", "H_CACHED_HEAD", "H_EMPTY_SPINS",
    "H_PRODUCER_PID", "H_PRODUCER_HEARTBEAT", "H_PRODUCER_CLOSED",
    "H_CONSUMER_PID", "H_CONSUMER_HEARTBEAT", "H_CONSUMER_CLOSED",
    "SEQ_EXPECTED", "SEQ_RECEIVED", "SEQ_LOST", "SEQ_OUT_OF_ORDER", "SEQ_STATE_WORDS",
    "ring_bytes", "ring_views", "ring_init",
    "claim", "ring_try_publish", "ring_publish", "ring_try_consume", "ring_consume",
    "ring_size", "ring_round_trips", "produce_sequence", "produce_paced", "consume_sequence",
    "mpmc_bytes", "mpmc_views", "mpmc_init", "mpmc_try_push", "mpmc_try_pop",
]

CACHE_LINE = 64
HEADER_BYTES = 8 * CACHE_LINE
HEADER_WORDS = HEADER_BYTES // 8
RING_MAGIC = 0x5742_5249_4E47_0001  # "WBRING" + layout version 1

H_MAGIC = 0
H_CAPACITY = 1
H_MASK = 2
H_RECORD_SIZE = 3
H_HEAD = 8
H_CACHED_TAIL = 16
H_FULL_SPINS = 17
H_TAIL = 24
H_CACHED_HEAD = 32
H_EMPTY_SPINS = 33
H_PRODUCER_PID = 40
H_PRODUCER_HEARTBEAT = 41
H_PRODUCER_CLOSED = 42
H_CONSUMER_PID = 48
H_CONSUMER_HEARTBEAT = 49
H_CONSUMER_CLOSED = 50

# Words of the ``state`` array ``consume_sequence`` keeps between calls.
SEQ_EXPECTED = 0      # next sequence number expected
SEQ_RECEIVED = 1      # messages consumed
SEQ_LOST = 2          # sequence numbers skipped (gaps)
SEQ_OUT_OF_ORDER = 3  # messages at or below an already-seen sequence (dups/reorders)
SEQ_STATE_WORDS = 4


# ----------------------------------------------------------------- layout (Python)
def ring_bytes(capacity: int, dtype: np.dtype) -> int:
    """Bytes a ring of ``capacity`` records of ``dtype`` needs."""
    return HEADER_BYTES + int(capacity) * np.dtype(dtype).itemsize


def ring_views(buffer, capacity: int, dtype: np.dtype):
    """(header, slots) numpy views over ``buffer`` (no copy)."""
    dtype = np.dtype(dtype)
    header = np.frombuffer(buffer, dtype=np.int64, count=HEADER_WORDS)
    slots = np.frombuffer(buffer, dtype=dtype, count=int(capacity), offset=HEADER_BYTES)
    return header, slots


def ring_init(header: np.ndarray, capacity: int, record_size: int) -> None:
    """Write a fresh header (cursors at zero). The caller validated ``capacity``."""
    header[:] = 0
    header[H_CAPACITY] = capacity
    header[H_MASK] = capacity - 1
    header[H_RECORD_SIZE] = record_size
    header[H_MAGIC] = RING_MAGIC  # last: an attacher seeing the magic sees the rest


# ------------------------------------------------------------------ producer side
@kernel(inline="always")
def claim(header, want):
    """Free slots for the producer (up to ``want``), refreshing the cached tail if short.

    The SPSC producer's rule for free space, public so producer kernels in other
    modules (``kernels.batching``) share it instead of re-reading the cursors.
    """
    head = header[H_HEAD]
    capacity = header[H_CAPACITY]
    free = capacity - (head - header[H_CACHED_TAIL])
    if free < want:
        tail = load_acquire(header, H_TAIL)
        header[H_CACHED_TAIL] = tail
        free = capacity - (head - tail)
    return min(free, want)


@kernel
def ring_try_publish(header, slots, records, start, count):
    """Copy up to ``count`` records from ``records[start:]`` into the ring; never waits.

    Returns how many were published (0 when the ring is full).
    """
    n = claim(header, count)
    if n <= 0:
        return 0
    head = header[H_HEAD]
    mask = header[H_MASK]
    for i in range(n):
        slots[(head + i) & mask] = records[start + i]
    store_release(header, H_HEAD, head + n)
    return n


@kernel
def ring_publish(header, slots, records, start, count, max_spins):
    """Publish ``records[start:start+count]``, spinning while the ring is full.

    Back-pressure, never a drop: each empty-handed attempt counts one full-spin in
    the header. Returns the number published, which is short of ``count`` only when
    ``max_spins`` consecutive attempts found the ring full (Python then checks the
    consumer's liveness and calls again).
    """
    done = 0
    spins = 0
    mask = header[H_MASK]
    while done < count:
        n = claim(header, count - done)
        if n <= 0:
            header[H_FULL_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        spins = 0
        head = header[H_HEAD]
        for i in range(n):
            slots[(head + i) & mask] = records[start + done + i]
        store_release(header, H_HEAD, head + n)
        done += n
    return done


# ------------------------------------------------------------------ consumer side
@kernel(inline="always")
def _available(header, want):
    """Readable records for the consumer (up to ``want``), refreshing the cached head if short."""
    tail = header[H_TAIL]
    available = header[H_CACHED_HEAD] - tail
    if available < want:
        head = load_acquire(header, H_HEAD)
        header[H_CACHED_HEAD] = head
        available = head - tail
    return min(available, want)


@kernel
def ring_try_consume(header, slots, out, max_count):
    """Copy up to ``max_count`` records into ``out[:n]``; never waits. Returns ``n``."""
    n = _available(header, min(max_count, out.shape[0]))
    if n <= 0:
        return 0
    tail = header[H_TAIL]
    mask = header[H_MASK]
    for i in range(n):
        out[i] = slots[(tail + i) & mask]
    store_release(header, H_TAIL, tail + n)
    return n


@kernel
def ring_consume(header, slots, out, max_count, max_spins):
    """Like ``ring_try_consume`` but spins (with a CPU pause) until at least one record
    arrives or ``max_spins`` attempts came up empty (then returns 0)."""
    want = min(max_count, out.shape[0])
    spins = 0
    n = _available(header, want)
    while n <= 0:
        header[H_EMPTY_SPINS] += 1
        spins += 1
        if spins >= max_spins:
            return 0
        cpu_pause()
        n = _available(header, want)
    tail = header[H_TAIL]
    mask = header[H_MASK]
    for i in range(n):
        out[i] = slots[(tail + i) & mask]
    store_release(header, H_TAIL, tail + n)
    return n


@kernel
def ring_size(header):
    """Records published and not yet consumed (a snapshot)."""
    return load_acquire(header, H_HEAD) - load_acquire(header, H_TAIL)


@kernel
def ring_round_trips(header, slots, records, out, batch):
    """One thread, inside compiled code: move every record of ``records`` through the
    ring into ``out`` (same length), publishing ``batch`` records and consuming them
    back each round (``batch`` = 1: one record at a time). The ring must start empty.
    Returns how many moved: ``len(records)``, or fewer when ``batch < 1`` or ``out`` is
    shorter.

    What the ring itself costs per record, with no Python call per batch: the loop a
    compiled producer or consumer runs (notebook 04 compares it with ``deque``). The
    publish and consume steps are ``ring_try_publish``'s and ``ring_try_consume``'s,
    written inline: a call per record to those kernels would add the reference-count
    updates of their array arguments (atomic instructions) to every record."""
    n = records.shape[0]
    mask = header[H_MASK]
    done = 0
    while done < n:
        pushed = claim(header, min(batch, n - done))
        if pushed <= 0:
            break
        head = header[H_HEAD]
        for i in range(pushed):
            slots[(head + i) & mask] = records[done + i]
        store_release(header, H_HEAD, head + pushed)
        got = _available(header, min(pushed, out.shape[0] - done))
        if got <= 0:
            break
        tail = header[H_TAIL]
        for i in range(got):
            out[done + i] = slots[(tail + i) & mask]
        store_release(header, H_TAIL, tail + got)
        done += got
    return done


# --------------------------------------------- sequenced traffic (tests, benchmarks)
@kernel
def produce_sequence(header, slots, next_seq, end_seq, batch, max_spins):
    """Write messages ``next_seq .. end_seq-1`` straight into the ring's slots.

    Zero-copy publishing: each message is built in its slot (``seq``, ``ts`` =
    ``now_ns()`` once per batch, ``order_id``, ``qty``), then one release store
    publishes the batch. Returns the next sequence still to send, which is short of
    ``end_seq`` only when ``max_spins`` attempts in a row found the ring full.
    """
    mask = header[H_MASK]
    spins = 0
    while next_seq < end_seq:
        n = claim(header, min(batch, end_seq - next_seq))
        if n <= 0:
            header[H_FULL_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        spins = 0
        head = header[H_HEAD]
        ts = now_ns()
        for i in range(n):
            slot = slots[(head + i) & mask]
            slot.seq = next_seq + i
            slot.ts = ts
            slot.order_id = next_seq + i
            slot.qty = 1
        store_release(header, H_HEAD, head + n)
        next_seq += n
    return next_seq


@kernel
def produce_paced(header, slots, next_seq, end_seq, gap_ns, max_spins):
    """Latency probe: send one message at a time, each only once the ring is empty
    and ``gap_ns`` has passed, stamping ``ts`` right before publishing, so the
    consumer measures the one-way hand-off of an idle ring rather than queueing.
    Returns the next sequence to send (early after ``max_spins`` waits in a row)."""
    mask = header[H_MASK]
    spins = 0
    while next_seq < end_seq:
        head = header[H_HEAD]
        if load_acquire(header, H_TAIL) != head:
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        spins = 0
        start = now_ns()
        while now_ns() - start < gap_ns:
            cpu_pause()
        slot = slots[head & mask]
        slot.seq = next_seq
        slot.order_id = next_seq
        slot.qty = 1
        slot.ts = now_ns()
        store_release(header, H_HEAD, head + 1)
        next_seq += 1
    return next_seq


@kernel
def consume_sequence(header, slots, state, max_count, max_spins, hist, record_latency):
    """Consume up to ``max_count`` messages in place, checking their ``seq`` order.

    ``state`` (``SEQ_STATE_WORDS`` int64) carries the expected next sequence and the
    received / lost / out-of-order counts between calls. When ``record_latency`` is
    true each message's one-way latency (``now_ns()`` at consumption minus its
    ``ts``) goes into the histogram ``hist`` (``kernels.histogram`` layout).
    Returns the number consumed, after ``max_count`` messages or ``max_spins``
    empty attempts in a row (0 if nothing came).
    """
    mask = header[H_MASK]
    consumed = 0
    spins = 0
    while consumed < max_count:
        n = _available(header, max_count - consumed)
        if n <= 0:
            # Keep spinning after progress too: a paced stream then never waits on
            # the Python loop; the budget still bounds the time away from Python.
            header[H_EMPTY_SPINS] += 1
            spins += 1
            if spins >= max_spins:
                break
            cpu_pause()
            continue
        tail = header[H_TAIL]
        now = now_ns() if record_latency else 0
        expected = state[SEQ_EXPECTED]
        for i in range(n):
            slot = slots[(tail + i) & mask]
            seq = slot.seq
            if seq == expected:
                expected += 1
            elif seq > expected:
                state[SEQ_LOST] += seq - expected
                expected = seq + 1
            else:
                state[SEQ_OUT_OF_ORDER] += 1
            if record_latency:
                _record(hist, now - slot.ts)
        state[SEQ_EXPECTED] = expected
        state[SEQ_RECEIVED] += n
        store_release(header, H_TAIL, tail + n)
        consumed += n
        spins = 0
    return consumed



# ------------------------------------------------ multi-producer multi-consumer
def mpmc_bytes(capacity: int, dtype: np.dtype) -> int:
    """Bytes an MPMC ring needs: header, slots, one int64 turn per slot."""
    return ring_bytes(capacity, dtype) + 8 * int(capacity)


def mpmc_views(buffer, capacity: int, dtype: np.dtype):
    """(header, turns, slots) numpy views over ``buffer``."""
    header, slots = ring_views(buffer, capacity, dtype)
    turns = np.frombuffer(buffer, dtype=np.int64, count=int(capacity),
                          offset=ring_bytes(capacity, dtype))
    return header, turns, slots


def mpmc_init(header: np.ndarray, turns: np.ndarray, capacity: int, record_size: int) -> None:
    turns[:] = np.arange(capacity, dtype=np.int64)  # slot i first expects position i
    ring_init(header, capacity, record_size)


@kernel
def mpmc_try_push(header, turns, slots, records, start, count):
    """Any producer: push ``records[start:start+count]`` until the ring is full.
    Returns how many were pushed (each one claimed by a CAS on ``head``)."""
    mask = header[H_MASK]
    done = 0
    while done < count:
        pos = load_acquire(header, H_HEAD)
        index = pos & mask
        lag = load_acquire(turns, index) - pos
        if lag == 0:
            if compare_and_swap(header, H_HEAD, pos, pos + 1) == pos:
                slots[index] = records[start + done]
                store_release(turns, index, pos + 1)  # the slot is readable now
                done += 1
        elif lag < 0:
            break  # the slot still holds last lap's record: full
        else:
            cpu_pause()  # another producer took ``pos``; retry with a fresh head
    return done


@kernel
def mpmc_try_pop(header, turns, slots, out, max_count):
    """Any consumer: pop up to ``max_count`` records into ``out``; returns how many."""
    mask = header[H_MASK]
    capacity = header[H_CAPACITY]
    want = min(max_count, out.shape[0])
    n = 0
    while n < want:
        pos = load_acquire(header, H_TAIL)
        index = pos & mask
        lag = load_acquire(turns, index) - (pos + 1)
        if lag == 0:
            if compare_and_swap(header, H_TAIL, pos, pos + 1) == pos:
                out[n] = slots[index]
                store_release(turns, index, pos + capacity)  # free for the next lap
                n += 1
        elif lag < 0:
            break  # not written yet: empty
        else:
            cpu_pause()
    return n
