"""kernels.ring against a plain-Python FIFO model, layout invariants, and threads."""
from __future__ import annotations

import threading
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import ring as kr
from kernels.records import MESSAGE
from workbench.queues import Ring
from workbench.ring_harness import receive_sequence, send_sequence, start_producer_thread


def _numpy_ring(capacity, dtype=MESSAGE):
    buffer = np.zeros(kr.ring_bytes(capacity, dtype), dtype=np.uint8)
    header, slots = kr.ring_views(buffer, capacity, dtype)
    kr.ring_init(header, capacity, np.dtype(dtype).itemsize)
    return header, slots


def _messages(first, n):
    m = np.zeros(n, dtype=MESSAGE)
    m["seq"] = np.arange(first, first + n)
    m["price"] = m["seq"] * 7
    m["payload"][:, 0] = m["seq"] % 251
    return m


def test_cursors_live_on_separate_cache_lines():
    lines = {name: getattr(kr, name) * 8 // kr.CACHE_LINE
             for name in ("H_MAGIC", "H_HEAD", "H_CACHED_TAIL", "H_TAIL", "H_CACHED_HEAD",
                          "H_PRODUCER_HEARTBEAT", "H_CONSUMER_HEARTBEAT")}
    assert len(set(lines.values())) == len(lines)
    assert kr.HEADER_BYTES % kr.CACHE_LINE == 0
    header, slots = _numpy_ring(8)
    assert slots.ctypes.data - header.ctypes.data == kr.HEADER_BYTES


ops = st.lists(st.tuples(st.sampled_from(["put", "get", "put_wait", "get_wait"]),
                         st.integers(1, 12)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=ops, capacity_bits=st.integers(1, 4))
def test_ring_matches_a_python_fifo_model(ops, capacity_bits):
    capacity = 1 << capacity_bits
    header, slots = _numpy_ring(capacity)
    model: deque[int] = deque()
    next_seq = 0
    out = np.zeros(16, dtype=MESSAGE)
    for op, k in ops:
        if op in ("put", "put_wait"):
            batch = _messages(next_seq, k)
            if op == "put":
                n = kr.ring_try_publish(header, slots, batch, 0, k)
            else:  # bounded spinning: returns what fit
                n = kr.ring_publish(header, slots, batch, 0, k, 3)
            assert n == min(k, capacity - len(model))
            model.extend(range(next_seq, next_seq + n))
            next_seq += n
        else:
            if op == "get":
                n = kr.ring_try_consume(header, slots, out, k)
            else:
                n = kr.ring_consume(header, slots, out, k, 3)
            expected = [model.popleft() for _ in range(min(k, len(model)))]
            assert n == len(expected)
            assert out["seq"][:n].tolist() == expected
            assert out["price"][:n].tolist() == [s * 7 for s in expected]
            assert out["payload"][:n, 0].tolist() == [s % 251 for s in expected]
        assert kr.ring_size(header) == len(model)
        assert 0 <= header[kr.H_HEAD] - header[kr.H_TAIL] <= capacity


def test_full_ring_counts_full_spins_and_drops_nothing():
    header, slots = _numpy_ring(4)
    batch = _messages(0, 10)
    assert kr.ring_publish(header, slots, batch, 0, 10, 5) == 4
    assert header[kr.H_FULL_SPINS] == 5
    out = np.zeros(8, dtype=MESSAGE)
    assert kr.ring_consume(header, slots, out, 8, 5) == 4
    assert kr.ring_publish(header, slots, batch, 4, 6, 5) == 4
    assert kr.ring_consume(header, slots, out, 8, 5) == 4
    assert out["seq"][:4].tolist() == [4, 5, 6, 7]
    assert kr.ring_consume(header, slots, out, 8, 5) == 0
    assert header[kr.H_EMPTY_SPINS] == 5


def test_any_record_dtype_works():
    pair = np.dtype([("a", np.int64), ("b", np.float64)])
    ring = Ring(8, pair)
    data = np.zeros(5, dtype=pair)
    data["a"] = np.arange(5)
    data["b"] = np.arange(5) / 2
    assert ring.try_put(data) == 5
    got = ring.try_get(10)
    assert got.tolist() == data.tolist()


def test_python_layer_validates_input():
    with pytest.raises(ValueError, match="power of two"):
        Ring(6)
    with pytest.raises(ValueError, match="capacity"):
        Ring(1)
    ring = Ring(8)
    with pytest.raises(ValueError, match="dtype"):
        ring.put(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="max_count"):
        ring.get(0)
    with pytest.raises(ValueError, match="peer_timeout"):
        Ring(8, peer_timeout=0)


def test_threads_put_get_in_order_with_back_pressure():
    ring = Ring(64)
    n, chunk = 50_000, 1000
    received = []

    def consume():
        while True:
            got = ring.get(512, timeout=30)
            if got.shape[0] == 0:
                return
            received.extend(got["seq"].tolist())

    consumer = threading.Thread(target=consume)
    consumer.start()
    for start in range(0, n, chunk):
        assert ring.put(_messages(start, chunk), timeout=30) == chunk
    ring.finish()
    consumer.join(30)
    assert received == list(range(n))
    assert ring.stats()["consumed"] == n


def test_get_into_reuses_the_callers_buffer_and_keeps_the_order():
    """The zero-copy consumer: the same records, in order, as a Python FIFO, written into
    one caller buffer that is never replaced; bad buffers are refused with nothing read."""
    ring = Ring(64)
    out = np.zeros(24, dtype=MESSAGE)
    address = out.ctypes.data
    for bad, why in ((np.zeros(4, dtype=np.int64), "dtype"), (np.zeros(0, dtype=MESSAGE), "slot"),
                     (np.zeros((2, 4), dtype=MESSAGE), "1-d"), (ring.slots[:4], "shares memory"),
                     (np.zeros(8, dtype=MESSAGE)[::2], "contiguous")):
        with pytest.raises(ValueError, match=why):
            ring.try_get_into(bad)
    ro = np.zeros(4, dtype=MESSAGE)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ring.get_into(ro, timeout=0.01)
    assert ring.try_get_into(out) == 0
    model: deque = deque()
    received = []
    rng = np.random.default_rng(5)
    sent = 0
    for _ in range(200):
        k = int(rng.integers(0, 40))
        if k:
            msgs = _messages(sent, k)
            done = ring.try_put(msgs)
            model.extend(msgs["seq"][:done].tolist())
            sent += done
        n = ring.try_get_into(out) if rng.random() < 0.5 else ring.get_into(out, timeout=0.001)
        assert n <= len(out) and n <= len(model)
        got = out["seq"][:n].tolist()
        assert got == [model.popleft() for _ in range(n)]
        received.extend(got)
        assert out.ctypes.data == address
    ring.finish()
    while (n := ring.get_into(out, timeout=1)):
        received.extend(out["seq"][:n].tolist())
    assert received == list(range(sent))


def test_sequenced_stream_between_nogil_threads():
    ring = Ring(1 << 10)
    n = 500_000
    producer = start_producer_thread(ring, n, batch=64)
    report = receive_sequence(ring, n, timeout=60)
    producer.join(30)
    assert producer.error is None
    assert report.ok, report
    assert report.received == n


def test_sequence_checker_detects_gaps_and_duplicates():
    ring = Ring(64)
    send_sequence(ring, 10, finish=False)            # 0..9
    send_sequence(ring, 5, first_seq=15, finish=False)  # gap of 5 (10..14)
    send_sequence(ring, 3, first_seq=12)             # 12..14 arrive late
    report = receive_sequence(ring, None, timeout=10)
    assert (report.received, report.lost, report.out_of_order) == (18, 5, 3)
    assert not report.ok


def test_mpmc_ring_delivers_each_record_once_in_per_producer_order():
    from workbench.queues import MultiRing

    ring = MultiRing(64)
    producers, per_producer, consumers = 3, 20_000, 2
    got = [[] for _ in range(consumers)]
    done = threading.Event()

    def produce(pid):
        for start in range(0, per_producer, 500):
            batch = _messages(start, 500)
            batch["order_id"] = pid
            ring.put(batch, timeout=60)

    def consume(cid):
        while not (done.is_set() and len(ring) == 0):
            part = ring.get(256, timeout=0.05)
            got[cid].extend(zip(part["order_id"].tolist(), part["seq"].tolist()))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    readers = [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    for t in readers:
        t.join(60)
    everything = sorted(got[0] + got[1])
    assert everything == sorted((p, s) for p in range(producers) for s in range(per_producer))
    for seen in got:  # each consumer sees each producer's records in send order
        for p in range(producers):
            seqs = [s for q, s in seen if q == p]
            assert seqs == sorted(seqs)


def test_mpmc_full_and_empty_single_thread():
    from workbench.queues import MultiRing

    ring = MultiRing(4)
    assert ring.try_put(_messages(0, 6)) == 4
    assert ring.try_get(10)["seq"].tolist() == [0, 1, 2, 3]
    assert ring.try_get(10).shape[0] == 0
    assert ring.try_put(_messages(4, 3)) == 3
    assert ring.try_get(2)["seq"].tolist() == [4, 5]
