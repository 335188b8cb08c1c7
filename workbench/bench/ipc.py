"""``bench ipc``: rings between threads and processes, one-way hand-off latency,
``multiprocessing.Queue`` / ``faster_fifo`` baselines and histogram recording cost.

Every message count here is sequence-checked on arrival (none lost, duplicated or
reordered); the full run's cross-process measurement sends 10M messages per repeat,
so it doubles as the large reliability stress run and fails loudly if any message
goes astray. Peers that are not installed (``faster_fifo``, ``hdrhistogram``: the
``dev`` extra) are reported as ``null``, with the reason printed on stderr.

Run it from ``python -m workbench bench ipc`` (or under ``if __name__ == "__main__":``):
the child processes are started with ``spawn``.
"""
from __future__ import annotations

import statistics
import sys
import threading
import time

import numpy as np

NAME = "ipc"
DESCRIPTION = "SPSC rings (threads, processes), hand-off latency, mp.Queue/faster_fifo, histograms"

MESSAGE_BYTES = 64


def _check(report, what: str) -> None:
    if not report.ok:
        raise RuntimeError(f"{what}: sequence check failed: {report}")


def _ring_threads(n: int, repeats: int) -> float:
    from workbench.queues import Ring
    from workbench.ring_harness import receive_sequence, start_producer_thread

    rates = []
    for _ in range(repeats):
        ring = Ring(1 << 16)  # same shape as the process run below
        producer = start_producer_thread(ring, n, batch=512)
        report = receive_sequence(ring, n, batch=8192, timeout=120)
        producer.join()
        if producer.error:
            raise producer.error
        _check(report, "ring threads")
        rates.append(report.msgs_per_sec)
    return statistics.median(rates)


def _ring_procs(n: int, repeats: int) -> float:
    from workbench.queues import SharedRing
    from workbench.ring_harness import receive_sequence, start_producer_process

    rates = []
    for _ in range(repeats):
        with SharedRing.create(1 << 16) as ring:
            producer = start_producer_process(ring, n, batch=512)
            report = receive_sequence(ring, n, batch=8192, timeout=300)
            producer.join(30)
        _check(report, "ring processes")
        rates.append(report.msgs_per_sec)
    return statistics.median(rates)


def _handoff(n: int) -> tuple[int, int]:
    from workbench.latency import LatencyRecorder
    from workbench.queues import SharedRing
    from workbench.ring_harness import receive_sequence, start_producer_process

    recorder = LatencyRecorder("handoff")
    with SharedRing.create(1 << 10) as ring:
        producer = start_producer_process(ring, n, paced_gap_ns=2_000)
        report = receive_sequence(ring, n, histogram=recorder.hist, batch=4096, timeout=120)
        producer.join(30)
    _check(report, "hand-off")
    return recorder.percentile(50), recorder.percentile(99)


def _queue_producer(queue, n: int) -> None:
    payload = bytes(MESSAGE_BYTES)
    for _ in range(n):
        queue.put(payload)
    queue.put(None)


def _mp_queue(n: int) -> float:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    producer = ctx.Process(target=_queue_producer, args=(queue, n), daemon=True)
    producer.start()
    received = 0
    first = queue.get()
    start = time.perf_counter()
    while first is not None and queue.get() is not None:
        received += 1
    elapsed = time.perf_counter() - start
    producer.join(30)
    return received / elapsed


def _faster_fifo_producer(queue, n: int) -> None:
    payload = bytes(MESSAGE_BYTES)
    for _ in range(n):
        queue.put(payload, timeout=60)
    queue.put(None, timeout=60)


def _faster_fifo(n: int) -> float:
    import multiprocessing as mp

    from faster_fifo import Queue

    queue = Queue(max_size_bytes=8 * 1024 * 1024)
    producer = mp.get_context("spawn").Process(target=_faster_fifo_producer, args=(queue, n), daemon=True)
    producer.start()
    queue.get(timeout=60)
    start = time.perf_counter()
    received, done = 0, False
    while not done:
        for item in queue.get_many(timeout=60, max_messages_to_get=4096):
            if item is None:
                done = True
                break
            received += 1
    elapsed = time.perf_counter() - start
    producer.join(30)
    return received / elapsed


def _histogram_record_ns(n: int, repeats: int) -> float:
    from kernels.histogram import new_histogram, record_many

    values = np.random.default_rng(7).lognormal(7.0, 1.5, n).astype(np.int64)
    hist = new_histogram(11)
    record_many(hist, values[:10])  # compile / load from cache outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        record_many(hist, values)
        times.append((time.perf_counter_ns() - start) / n)
    return statistics.median(times)


def _hdrhistogram_record_ns(n: int, repeats: int) -> float:
    from hdrh.histogram import HdrHistogram

    values = np.random.default_rng(7).lognormal(7.0, 1.5, n).astype(np.int64).tolist()
    hist = HdrHistogram(1, 3_600_000_000_000, 3)
    times = []
    for _ in range(repeats):
        record = hist.record_value
        start = time.perf_counter_ns()
        for v in values:
            record(v)
        times.append((time.perf_counter_ns() - start) / n)
    return statistics.median(times)


def _optional(name: str, fn, missing: dict):
    try:
        return fn()
    except ImportError as exc:
        missing[name] = f"not installed ({exc.name or exc})"
        return None


def run(quick: bool = False) -> dict:
    from tqdm.auto import tqdm

    sizes = dict(threads=2_000_000 if quick else 10_000_000, procs=2_000_000 if quick else 10_000_000,
                 handoff=5_000 if quick else 50_000, queue=20_000 if quick else 200_000,
                 hist=2_000_000 if quick else 10_000_000, hdr=50_000 if quick else 300_000)
    repeats = 1 if quick else 5  # the machine is shared: medians of several runs
    missing: dict[str, str] = {}
    steps = tqdm(total=7, desc="bench ipc", file=sys.stderr, leave=False)

    def step(label, fn):
        steps.set_postfix_str(label)
        value = fn()
        steps.update()
        return value

    threads = step("ring threads", lambda: _ring_threads(sizes["threads"], repeats))
    procs = step("ring processes (sequence-checked)", lambda: _ring_procs(sizes["procs"], repeats))
    p50, p99 = step("hand-off latency", lambda: _handoff(sizes["handoff"]))
    mp_rate = step("multiprocessing.Queue", lambda: _mp_queue(sizes["queue"]))
    ff_rate = step("faster_fifo", lambda: _optional("faster_fifo", lambda: _faster_fifo(sizes["queue"]), missing))
    hist_ns = step("histogram record", lambda: _histogram_record_ns(sizes["hist"], 5))
    hdr_ns = step("hdrhistogram record",
                  lambda: _optional("hdrhistogram", lambda: _hdrhistogram_record_ns(sizes["hdr"], 3), missing))
    steps.close()
    for name, reason in missing.items():
        print(f"bench ipc: {name} {reason}; reported as null", file=sys.stderr)
    return {
        "ring_threads_msgs_per_sec": threads,
        "ring_procs_msgs_per_sec": procs,
        "handoff_p50_ns": p50,
        "handoff_p99_ns": p99,
        "mp_queue_msgs_per_sec": mp_rate,
        "speedup_vs_mp_queue": procs / mp_rate,
        "faster_fifo_msgs_per_sec": ff_rate,
        "histogram_record_ns": hist_ns,
        "hdrhistogram_record_ns": hdr_ns,
    }


if __name__ == "__main__":  # pragma: no cover - manual runs
    threading.excepthook = lambda args: print(args, file=sys.stderr)
    print(run(quick="--quick" in sys.argv))
