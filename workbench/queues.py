"""Lock-free rings for Python code: threads over a numpy buffer, processes over shared memory.

Owns the Python face of ``kernels.ring``: ``Ring`` (a ring in a numpy array, for
threads: the kernels release the GIL so producer and consumer threads really run at
the same time), ``SharedRing`` (the same ring in ``multiprocessing.shared_memory``,
created or attached by name, a context manager that unlinks on close), ``MultiRing``
(MPMC, threads) and ``Backoff`` (how a waiting side idles). Code that drives the ring
kernels itself (``workbench.ring_harness``, ``workbench.live``) uses the rings' public
surface: ``views()`` for the arrays, ``heartbeat()``, ``check_peer()``, ``finish()``,
``finished`` and ``len()``.

Guarantees the kernels cannot give on their own:

* Back-pressure, never a silent drop: ``put`` waits while the ring is full (the
  kernel counts every full spin) and returns only when everything is published.
* A dead peer is reported, not waited on forever: each side records its pid and a
  heartbeat in the ring header; a waiting side raises ``PeerDeadError`` when the
  peer's process has exited, or its heartbeat is older than ``peer_timeout``.
* End of stream is explicit (``finish()``), so "producer done" and "producer died"
  are different outcomes.
* Shared memory is unlinked by its creator on ``close()``, on garbage collection,
  and by the multiprocessing resource tracker if the creator itself dies.
"""
from __future__ import annotations

import itertools
import os
import secrets
import sys
import time
import weakref
from multiprocessing import shared_memory

import numpy as np

from kernels import ring as kr
from kernels.processes import pid_alive as _pid_alive
from kernels.records import MESSAGE

__all__ = [
    "Ring", "SharedRing", "MultiRing", "RingError", "PeerDeadError", "Backoff",
    "SHM_PREFIX", "SPIN_BUDGET", "leftover_segments",
]

# segment names start with this; ``WORKBENCH_SHM_TAG`` (inherited by child processes)
# keeps concurrent test workers' segments apart
SHM_PREFIX = "wbring_" + os.environ.get("WORKBENCH_SHM_TAG", "")
SPIN_BUDGET = 20_000      # pause-spins per kernel call before Python looks around
MAX_IDLE_SLEEP_S = 0.001  # a waiting side backs off to at most this between spins
YIELDS_BEFORE_SLEEP = 50  # idle rounds that only yield the CPU before sleeping
_name_counter = itertools.count()


class RingError(RuntimeError):
    """The ring cannot be used as asked (bad layout, wrong dtype, closed)."""


class PeerDeadError(RingError):
    """The other side of the ring died (process gone or heartbeat stale)."""


class Backoff:
    """What a side does after a kernel call came back empty-handed: first give the
    CPU away briefly (``sched_yield``: the peer may be waiting for this very core,
    the machine may have fewer cores than spinning threads), then sleep with
    exponential growth up to ``MAX_IDLE_SLEEP_S`` so an idle ring costs no CPU."""

    __slots__ = ("rounds",)

    def __init__(self):
        self.rounds = 0

    def reset(self) -> None:
        self.rounds = 0

    def wait(self) -> None:
        self.rounds += 1
        if self.rounds <= YIELDS_BEFORE_SLEEP:
            os.sched_yield()
        else:
            time.sleep(min(MAX_IDLE_SLEEP_S, 1e-6 * 2 ** min(self.rounds - YIELDS_BEFORE_SLEEP, 20)))


def _validate_capacity(capacity) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
        raise ValueError(f"capacity must be an int, got {capacity!r}")
    capacity = int(capacity)
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"capacity must be a power of two >= 2, got {capacity}")
    return capacity


def _validate_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.itemsize == 0 or dtype.hasobject:
        raise ValueError(f"dtype must be a fixed-size record without objects, got {dtype}")
    return dtype


def _as_records(records, dtype: np.dtype) -> np.ndarray:
    records = np.asarray(records)
    if records.dtype != dtype:
        raise ValueError(f"records must have the ring's dtype {dtype}, got {records.dtype}")
    if records.ndim != 1:
        raise ValueError(f"records must be 1-D, got shape {records.shape}")
    return np.ascontiguousarray(records)


class Ring:
    """SPSC ring of ``capacity`` records of ``dtype`` in a numpy buffer (threads).

    One thread calls ``put``/``try_put``/``finish`` (the producer), one other calls
    ``get``/``try_get`` (the consumer). ``peer_timeout`` (seconds, None = off) is
    how stale the peer's heartbeat may get while this side waits on it; each side
    beats on every call, so a side idle for longer should call ``heartbeat()``.
    """

    _PRODUCER = (kr.H_PRODUCER_PID, kr.H_PRODUCER_HEARTBEAT, kr.H_PRODUCER_CLOSED)
    _CONSUMER = (kr.H_CONSUMER_PID, kr.H_CONSUMER_HEARTBEAT, kr.H_CONSUMER_CLOSED)
    _ROLES = {"producer": _PRODUCER, "consumer": _CONSUMER}

    def __init__(self, capacity: int = 4096, dtype=MESSAGE, *, peer_timeout: float | None = 5.0):
        capacity = _validate_capacity(capacity)
        dtype = _validate_dtype(dtype)
        buffer = np.zeros(kr.ring_bytes(capacity, dtype), dtype=np.uint8)
        self._setup(buffer, capacity, dtype, peer_timeout)
        kr.ring_init(self.header, capacity, dtype.itemsize)

    def _setup(self, buffer, capacity, dtype, peer_timeout):
        if peer_timeout is not None and peer_timeout <= 0:
            raise ValueError(f"peer_timeout must be > 0 seconds or None, got {peer_timeout}")
        self._buffer = buffer
        self.capacity = capacity
        self.dtype = dtype
        self.peer_timeout = peer_timeout
        self.header, self.slots = kr.ring_views(buffer, capacity, dtype)
        self._out = np.zeros(0, dtype=dtype)

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return int(kr.ring_size(self._live_header()))

    def _live_header(self) -> np.ndarray:
        if self.header is None:
            raise RingError("ring is closed")
        return self.header

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        """``(header, slots)``: the arrays ``kernels.ring`` functions take, for code that
        runs the ring kernels itself. Raises ``RingError`` when the ring is closed."""
        return self._live_header(), self.slots

    def stats(self) -> dict:
        """Cursor positions and spin counters (a snapshot)."""
        h = self._live_header()
        return {
            "capacity": self.capacity,
            "published": int(h[kr.H_HEAD]),
            "consumed": int(h[kr.H_TAIL]),
            "size": int(h[kr.H_HEAD] - h[kr.H_TAIL]),
            "full_spins": int(h[kr.H_FULL_SPINS]),
            "empty_spins": int(h[kr.H_EMPTY_SPINS]),
            "finished": bool(h[kr.H_PRODUCER_CLOSED]),
        }

    @property
    def finished(self) -> bool:
        """The producer called ``finish()``: nothing more will be published."""
        return bool(self._live_header()[kr.H_PRODUCER_CLOSED])

    # -------------------------------------------------------- liveness
    def _beat(self, role) -> None:
        h = self._live_header()
        pid_slot, beat_slot, _ = role
        if h[pid_slot] == 0:
            h[pid_slot] = os.getpid()
        h[beat_slot] = time.monotonic_ns()

    @classmethod
    def _role(cls, role: str):
        if role not in cls._ROLES:
            raise ValueError(f"role must be 'producer' or 'consumer', got {role!r}")
        return cls._ROLES[role]

    def register(self, role: str, pid: int | None = None) -> None:
        """Record who plays ``role`` ('producer' or 'consumer'), e.g. a child process.

        This process: its heartbeat clock starts now. Another process (a child just
        started): its clock starts at its own first beat, and until then only its pid
        tells whether it is alive, so a child that is slow to start (compiling, a busy
        machine) is never mistaken for a dead one."""
        slots = self._role(role)
        h = self._live_header()
        own = pid is None or int(pid) == os.getpid()
        h[slots[0]] = os.getpid() if pid is None else int(pid)
        h[slots[1]] = time.monotonic_ns() if own else 0

    def heartbeat(self, role: str = "producer") -> None:
        """Tell the peer this side is alive although it is not calling put/get."""
        self._beat(self._PRODUCER if role == "producer" else self._CONSUMER)

    def check_peer(self, peer: str) -> None:
        """Raise ``PeerDeadError`` if ``peer`` ('producer' or 'consumer': the other
        side) is known to be dead: its process exited, or its heartbeat is older than
        ``peer_timeout`` while it has not finished."""
        h = self._live_header()
        pid_slot, beat_slot, closed_slot = self._role(peer)
        name = peer
        pid = int(h[pid_slot])
        if pid and pid != os.getpid() and not _pid_alive(pid):
            raise PeerDeadError(f"{name} process {pid} exited without finishing the stream")
        beat = int(h[beat_slot])
        if self.peer_timeout is not None and beat and not h[closed_slot]:
            stale_s = (time.monotonic_ns() - beat) / 1e9
            if stale_s > self.peer_timeout:
                raise PeerDeadError(
                    f"{name} heartbeat is {stale_s:.2f} s old (peer_timeout={self.peer_timeout} s)")

    # ------------------------------------------------------------ producer
    def _as_records(self, records) -> np.ndarray:
        return _as_records(records, self.dtype)

    def try_put(self, records) -> int:
        """Publish as many of ``records`` as fit now; returns how many."""
        records = self._as_records(records)
        self._beat(self._PRODUCER)
        return int(kr.ring_try_publish(self.header, self.slots, records, 0, records.shape[0]))

    def put(self, records, timeout: float | None = None) -> int:
        """Publish all ``records``, waiting while the ring is full (back-pressure).

        Raises ``PeerDeadError`` if the consumer dies meanwhile and ``TimeoutError``
        after ``timeout`` seconds (its ``published`` attribute says how many went).
        """
        records = self._as_records(records)
        total = records.shape[0]
        done = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while True:
            self._beat(self._PRODUCER)
            done += int(kr.ring_publish(self.header, self.slots, records, done, total - done,
                                        SPIN_BUDGET))
            if done >= total:
                return done
            self.check_peer("consumer")
            if deadline is not None and time.monotonic() > deadline:
                err = TimeoutError(f"ring full for {timeout} s; published {done} of {total}")
                err.published = done
                raise err
            backoff.wait()

    def finish(self) -> None:
        """Producer: mark the end of the stream (after the last ``put``)."""
        h = self._live_header()
        self._beat(self._PRODUCER)
        h[kr.H_PRODUCER_CLOSED] = 1

    # ------------------------------------------------------------ consumer
    def _out_buffer(self, max_count: int) -> np.ndarray:
        if isinstance(max_count, bool) or int(max_count) < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        if self._out.shape[0] < max_count:
            self._out = np.zeros(int(max_count), dtype=self.dtype)
        return self._out

    def try_get(self, max_count: int = 1024) -> np.ndarray:
        """Up to ``max_count`` records available now (a copy; may be empty)."""
        out = self._out_buffer(max_count)
        self._beat(self._CONSUMER)
        n = kr.ring_try_consume(self.header, self.slots, out, int(max_count))
        return out[:n].copy()

    def get(self, max_count: int = 1024, timeout: float | None = None) -> np.ndarray:
        """Between 1 and ``max_count`` records, waiting for the first one.

        Returns an empty array when the producer has finished and the ring is
        drained, or when ``timeout`` seconds pass with nothing to read. Raises
        ``PeerDeadError`` if the producer died with the ring drained.
        """
        out = self._out_buffer(max_count)
        return out[:self._wait_consume(out, int(max_count), timeout)].copy()

    def _into(self, out) -> np.ndarray:
        """``out`` checked as a caller's buffer for :meth:`try_get_into` / :meth:`get_into`."""
        if (not isinstance(out, np.ndarray) or out.dtype != self.dtype or out.ndim != 1
                or not out.flags.writeable or not out.flags.c_contiguous or len(out) < 1):
            got = (f"{type(out).__name__}" if not isinstance(out, np.ndarray)
                   else f"{out.dtype} shape {out.shape}")
            raise ValueError(f"out={got} must be a writeable, contiguous 1-d array of this "
                             f"ring's dtype with at least one slot")
        if np.may_share_memory(out, self.slots):
            raise ValueError("out shares memory with the ring's slots")
        return out

    def try_get_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` records available now into ``out`` (a caller-owned
        buffer, reused from call to call: the hot path allocates nothing); returns how
        many (0 when the ring is empty)."""
        out = self._into(out)
        self._beat(self._CONSUMER)
        return int(kr.ring_try_consume(self.header, self.slots, out, len(out)))

    def get_into(self, out: np.ndarray, timeout: float | None = None) -> int:
        """:meth:`get` into a caller-owned buffer: waits for the first record, copies up
        to ``len(out)`` into ``out`` and returns how many; 0 when the producer finished
        and the ring is drained, or ``timeout`` passed. Allocates nothing."""
        out = self._into(out)
        return self._wait_consume(out, len(out), timeout)

    def _wait_consume(self, out, max_count: int, timeout) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while True:
            self._beat(self._CONSUMER)
            n = int(kr.ring_consume(self.header, self.slots, out, max_count, SPIN_BUDGET))
            if n:
                return n
            if self.finished and len(self) == 0:
                return 0
            self.check_peer("producer")
            if deadline is not None and time.monotonic() > deadline:
                return 0
            backoff.wait()

    # ----------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Drop the views (a numpy ring needs nothing else)."""
        self.header = self.slots = None
        self._out = np.zeros(0, dtype=self.dtype)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.header is None else f"size={len(self)}"
        return f"{type(self).__name__}(capacity={self.capacity}, record_bytes={self.dtype.itemsize}, {state})"


def _release_segment(shm: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        shm.close()
    except BufferError:
        pass  # a caller still holds a view; the mapping goes with the process
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


class SharedRing(Ring):
    """A ``Ring`` in named shared memory, for producer and consumer processes.

    ``SharedRing.create(capacity, dtype)`` makes a new segment (its ``name`` is what
    the other process passes to ``SharedRing.attach(name, dtype)``). The creator
    owns the segment and unlinks it on ``close()``/context exit; attachers only
    unmap it.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use SharedRing.create(...) or SharedRing.attach(name, ...)")

    @classmethod
    def create(cls, capacity: int = 4096, dtype=MESSAGE, *, name: str | None = None,
               peer_timeout: float | None = 5.0) -> "SharedRing":
        capacity = _validate_capacity(capacity)
        dtype = _validate_dtype(dtype)
        if name is None:
            name = f"{SHM_PREFIX}{os.getpid()}_{next(_name_counter)}_{secrets.token_hex(3)}"
        shm = shared_memory.SharedMemory(name=name, create=True, size=kr.ring_bytes(capacity, dtype))
        ring = object.__new__(cls)
        ring._attach_segment(shm, owner=True)
        ring._setup(shm.buf, capacity, dtype, peer_timeout)
        kr.ring_init(ring.header, capacity, dtype.itemsize)
        return ring

    @classmethod
    def attach(cls, name: str, dtype=MESSAGE, *, peer_timeout: float | None = 5.0) -> "SharedRing":
        dtype = _validate_dtype(dtype)
        # Python >= 3.13 can keep the attacher's resource tracker out of it (the
        # creator owns the segment); before that, children started by
        # multiprocessing share the creator's tracker, which is harmless.
        no_tracking = {"track": False} if sys.version_info >= (3, 13) else {}
        try:
            shm = shared_memory.SharedMemory(name=name, create=False, **no_tracking)
        except FileNotFoundError:
            raise RingError(f"no shared ring named {name!r}") from None
        header = np.frombuffer(shm.buf, dtype=np.int64, count=kr.HEADER_WORDS)
        magic, capacity, size = int(header[kr.H_MAGIC]), int(header[kr.H_CAPACITY]), int(header[kr.H_RECORD_SIZE])
        del header
        problem = None
        if magic != kr.RING_MAGIC:
            problem = f"segment {name!r} is not a workbench ring (magic {magic:#x})"
        elif size != dtype.itemsize:
            problem = f"ring {name!r} holds {size}-byte records, dtype {dtype} has {dtype.itemsize}"
        if problem:
            shm.close()
            raise RingError(problem)
        ring = object.__new__(cls)
        ring._attach_segment(shm, owner=False)
        ring._setup(shm.buf, capacity, dtype, peer_timeout)
        return ring

    def _attach_segment(self, shm, owner: bool) -> None:
        self._shm = shm
        self.name = shm.name
        self.owner = owner
        self._finalizer = weakref.finalize(self, _release_segment, shm, owner)

    def close(self) -> None:
        """Unmap; the creator also unlinks the segment. Idempotent."""
        super().close()
        self._buffer = None
        self._finalizer()


class MultiRing:
    """Multi-producer multi-consumer ring (threads) over a numpy buffer.

    Any number of threads may ``put`` and ``get`` concurrently; each record is
    delivered to exactly one consumer, and records from one producer reach any one
    consumer in the order that producer sent them. Costs a CAS per record: prefer
    ``Ring`` when there is one producer and one consumer.
    """

    def __init__(self, capacity: int = 4096, dtype=MESSAGE):
        self.capacity = _validate_capacity(capacity)
        self.dtype = _validate_dtype(dtype)
        self._buffer = np.zeros(kr.mpmc_bytes(self.capacity, self.dtype), dtype=np.uint8)
        self.header, self.turns, self.slots = kr.mpmc_views(self._buffer, self.capacity, self.dtype)
        kr.mpmc_init(self.header, self.turns, self.capacity, self.dtype.itemsize)

    def __len__(self) -> int:
        return int(kr.ring_size(self.header))

    def try_put(self, records) -> int:
        records = _as_records(records, self.dtype)
        return int(kr.mpmc_try_push(self.header, self.turns, self.slots, records, 0, records.shape[0]))

    def put(self, records, timeout: float | None = None) -> int:
        """Push all ``records``, waiting while full; ``TimeoutError`` after ``timeout`` s."""
        records = _as_records(records, self.dtype)
        total, done = records.shape[0], 0
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while done < total:
            n = int(kr.mpmc_try_push(self.header, self.turns, self.slots, records, done, total - done))
            done += n
            if done < total:
                if deadline is not None and time.monotonic() > deadline:
                    err = TimeoutError(f"ring full for {timeout} s; published {done} of {total}")
                    err.published = done
                    raise err
                if n:
                    backoff.reset()
                backoff.wait()
        return done

    def try_get(self, max_count: int = 1024) -> np.ndarray:
        if isinstance(max_count, bool) or int(max_count) < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        out = np.zeros(int(max_count), dtype=self.dtype)
        n = kr.mpmc_try_pop(self.header, self.turns, self.slots, out, int(max_count))
        return out[:n]

    def get(self, max_count: int = 1024, timeout: float | None = None) -> np.ndarray:
        """Up to ``max_count`` records, waiting up to ``timeout`` s for the first
        (an empty array when it passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while True:
            got = self.try_get(max_count)
            if got.shape[0] or (deadline is not None and time.monotonic() > deadline):
                return got
            backoff.wait()


def leftover_segments(prefix: str = SHM_PREFIX) -> list[str]:
    """Names of shared-memory segments with ``prefix`` still in /dev/shm."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix))
    except FileNotFoundError:
        return []
