"""workbench.queues and workbench.ring_harness across processes: stress, dead peers,
back-pressure, cleanup."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from kernels import ring as kr
from kernels.records import MESSAGE
from workbench.queues import PeerDeadError, Ring, RingError, SharedRing, leftover_segments
from workbench.ring_harness import (receive_sequence, send_sequence, start_consumer_process,
                                    start_producer_process)


@pytest.fixture(autouse=True)
def no_shared_memory_left_behind():
    before = set(leftover_segments())
    yield
    assert set(leftover_segments()) - before == set()


def test_create_attach_share_bytes_and_unlink():
    with SharedRing.create(16) as ring:
        assert ring.name in leftover_segments()
        with SharedRing.attach(ring.name) as other:
            batch = np.zeros(3, dtype=MESSAGE)
            batch["seq"] = [7, 8, 9]
            assert other.try_put(batch) == 3
        assert ring.try_get(8)["seq"].tolist() == [7, 8, 9]
        name = ring.name
    assert name not in leftover_segments()
    with pytest.raises(RingError, match="no shared ring"):
        SharedRing.attach(name)
    ring.close()  # idempotent


def test_attach_refuses_a_mismatched_dtype():
    with SharedRing.create(8) as ring:
        with pytest.raises(RingError, match="64-byte"):
            SharedRing.attach(ring.name, np.dtype([("x", np.int64)]))


def test_process_stress_no_message_lost_duplicated_or_reordered():
    n = 1_500_000
    with SharedRing.create(1 << 12) as ring:  # small ring: the producer hits back-pressure
        producer = start_producer_process(ring, n, batch=128)
        report = receive_sequence(ring, n, batch=1000, timeout=120)
        producer.join(30)
        assert producer.exitcode == 0
        assert report.ok, report
        assert report.received == n
        assert ring.stats()["published"] == n


def test_killed_producer_is_reported_within_bounded_time():
    with SharedRing.create(256) as ring:
        producer = start_producer_process(ring, 10**12)
        assert ring.get(64, timeout=60).shape[0] > 0  # it is streaming
        os.kill(producer.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(PeerDeadError, match="producer"):
            receive_sequence(ring, None, timeout=30)
        assert time.monotonic() - start < 5.0
        producer.join(10)


def test_killed_consumer_is_reported_to_a_blocked_producer():
    with SharedRing.create(64) as ring:
        consumer, _results = start_consumer_process(ring, 10**12)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.join(10)
        start = time.monotonic()
        with pytest.raises(PeerDeadError, match="consumer"):
            send_sequence(ring, 10_000, timeout=30)
        assert time.monotonic() - start < 5.0


def test_full_ring_makes_the_producer_wait_then_resume():
    ring = Ring(32)
    n = 20_000
    sender = threading.Thread(target=send_sequence, args=(ring, n), kwargs={"timeout": 60})
    sender.start()
    time.sleep(0.2)  # the consumer is late: the ring fills and the producer spins
    assert len(ring) == 32
    spins_while_blocked = ring.stats()["full_spins"]
    assert spins_while_blocked > 0
    report = receive_sequence(ring, n, timeout=60)
    sender.join(30)
    assert report.ok and report.received == n


def test_put_times_out_without_losing_what_it_published():
    ring = Ring(8)
    batch = np.zeros(20, dtype=MESSAGE)
    batch["seq"] = np.arange(20)
    with pytest.raises(TimeoutError) as info:
        ring.put(batch, timeout=0.05)
    assert info.value.published == 8
    assert ring.try_get(20)["seq"].tolist() == list(range(8))


def test_stale_heartbeat_is_a_dead_peer_and_finish_is_not():
    ring = Ring(8, peer_timeout=0.2)
    ring.register("producer")  # same process: only the heartbeat can tell
    start = time.monotonic()
    with pytest.raises(PeerDeadError, match="heartbeat"):
        ring.get(timeout=10)
    assert time.monotonic() - start < 2.0
    ring.finish()
    assert ring.get(timeout=10).shape[0] == 0  # finished and drained: end of stream


def test_views_and_peer_checks_are_the_public_surface_of_a_ring():
    ring = Ring(8)
    header, slots = ring.views()
    assert header[kr.H_CAPACITY] == 8 and slots.shape == (8,) and slots.dtype == MESSAGE
    batch = np.zeros(2, dtype=MESSAGE)
    batch["seq"] = [4, 5]
    ring.put(batch)
    assert slots["seq"][:2].tolist() == [4, 5]  # the kernels wrote into these very arrays
    ring.check_peer("producer")  # this process, alive: nothing to report
    with pytest.raises(ValueError, match="role"):
        ring.check_peer("writer")
    ring.close()
    with pytest.raises(RingError, match="closed"):
        ring.views()
