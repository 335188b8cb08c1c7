"""Checkers of notebook 04-lock-free-queues-and-ipc.

No checker times anything. The consumer loop (04.1) runs against a scripted ring whose
arrivals are fixed in advance, so "it waited instead of spinning" is a fact the checker
counts, not a measurement; the design exercises (04.2, 04.3) are computations on given
numbers.
"""
from __future__ import annotations

import math
from fractions import Fraction

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


# --------------------------------------------------------------------------- 04.1
class _Spun(Exception):
    """The student's loop called a waiting (spinning) ring call."""


class _Stuck(Exception):
    """The student's loop kept polling long after the script ran dry."""


class ScriptedRing:
    """A stand-in for ``workbench.queues.Ring`` with scripted arrivals: poll ``k`` of
    ``try_get`` finds the messages that arrived by then (``script[k]`` new ones, 0 = none
    arrived). It counts polls that came back empty and the waits between them, and
    refuses the calls that spin in the kernel (``get``, ``views``)."""

    MAX_POLLS = 10_000

    def __init__(self, script, extra: int = 0):
        import numpy as np

        from kernels.records import MESSAGE

        self.dtype = MESSAGE
        self._arrivals = list(script)
        self._arrivals[-1] += extra  # the messages beyond n arrive with the last ones
        total = sum(self._arrivals)
        self._messages = np.zeros(total, dtype=MESSAGE)
        self._messages["seq"] = np.arange(total)
        self._arrived = 0      # messages published so far
        self._read = 0         # messages consumed so far
        self.polls = self.empty_polls = self.waits = 0
        self.empty_streak = self.max_streak = 0
        self.spun = None       # the spinning call the loop made, if any
        self.stuck = False

    def _advance(self) -> None:
        if self._arrivals:
            self._arrived += self._arrivals.pop(0)

    def try_get(self, max_count: int = 1024):
        if isinstance(max_count, bool) or int(max_count) < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        self.polls += 1
        if self.polls > self.MAX_POLLS:
            self.stuck = True
            raise _Stuck()
        self._advance()
        n = min(int(max_count), self._arrived - self._read)
        out = self._messages[self._read:self._read + n].copy()
        self._read += n
        if n == 0:
            self.empty_polls += 1
            self.empty_streak += 1
            self.max_streak = max(self.max_streak, self.empty_streak)
        return out

    def wait(self) -> None:
        """The waiting policy the checker hands the student's function."""
        self.waits += 1
        self.empty_streak = 0

    def __len__(self) -> int:
        return self._arrived - self._read

    @property
    def finished(self) -> bool:
        return False

    def _spin(self, name: str):
        self.spun = name
        raise _Spun(f"ring.{name}() spins in the kernel")

    def get(self, *args, **kwargs):
        self._spin("get")

    def put(self, *args, **kwargs):
        self._spin("put")

    def views(self):
        self._spin("views")


def _seqs(got):
    import numpy as np

    if got is None:
        return None
    if isinstance(got, np.ndarray) and got.dtype.names and "seq" in got.dtype.names:
        got = got["seq"]
    try:
        return [int(x) for x in np.asarray(got).ravel()]
    except (TypeError, ValueError):
        return None


@exercise("04.1", hint="loop until you have n: batch = ring.try_get(min(4096, n - received)); if len(batch) == 0: wait(), else keep batch['seq']. Never ring.get (it spins in the kernel)")
def check_drain(drain) -> Verdict:
    """Exercise 04.1: ``drain(ring, n, wait)`` reads exactly ``n`` messages from a ring
    and returns their ``seq`` numbers in order, without spinning: it polls with
    ``ring.try_get`` (which never waits) and calls ``wait()`` (the waiting policy:
    yield, sleep or back off) every time a poll comes back empty, and only then. Run
    against scripted rings: messages arriving in bursts with empty polls between them,
    a ring with everything already there, more messages waiting beyond ``n``."""
    cases = (  # (what, arrivals per poll, n, messages beyond n)
        ("a burst, a pause, a burst", [3, 0, 0, 0, 5, 0, 2], 10, 6),
        ("everything already there", [5_000], 5_000, 10),
        ("one message per poll, with gaps", [1, 0, 1, 0, 0, 1, 1, 0, 1], 5, 3),
        ("a slow start", [0] * 25 + [7], 7, 0),
        ("n = 1", [0, 0, 4], 1, 0),
    )
    for what, script, n, extra in cases:
        ring = ScriptedRing(script, extra)
        where = f"{what} (n={n:,})"
        got, why = _attempt(drain, ring, n, ring.wait)
        if ring.spun:
            return _verdict(False, f"{where}: you called ring.{ring.spun}(), which spins in the "
                                   "kernel while the ring is empty (or full): poll with "
                                   "ring.try_get and call wait() when it comes back empty")
        if ring.stuck:
            return _verdict(False, f"{where}: your loop was still polling after "
                                   f"{ScriptedRing.MAX_POLLS:,} polls, all {n} messages long "
                                   "delivered: stop once you have n")
        if why:
            return _verdict(False, f"{where}: {why}")
        seqs = _seqs(got)
        if seqs is None:
            return _verdict(False, f"{where}: return the seq numbers (a list or array), "
                                   f"not {got!r}"[:200])
        if seqs != list(range(n)):
            if seqs[:n] == list(range(n)) and len(seqs) > n:
                return _verdict(False, f"{where}: you returned {len(seqs)} messages: read at "
                                       "most n - received per try_get, more were waiting")
            return _verdict(False, f"{where}: you returned {len(seqs)} seq numbers starting "
                                   f"{seqs[:5]}; expected 0 .. {n - 1} in order")
        if ring.max_streak > 1:
            return _verdict(False, f"{where}: you polled an empty ring {ring.max_streak} times "
                                   "in a row without waiting: that is spinning, in Python. "
                                   "Call wait() after every empty poll")
        if ring.waits != ring.empty_polls:
            return _verdict(False, f"{where}: you waited {ring.waits} times for "
                                   f"{ring.empty_polls} empty polls: wait only when a poll "
                                   "found nothing (a ring with data must be read at once)")
    return _verdict(True, "every message once and in order, one wait per empty poll, no "
                          "spinning call: this consumer leaves the core to others while idle")


# --------------------------------------------------------------------------- 04.2
def _break_even(call_ns, ring_item_ns, deque_item_ns):
    call, ring, dq = (Fraction(str(x)) if isinstance(x, float) else Fraction(x)
                      for x in (call_ns, ring_item_ns, deque_item_ns))
    if ring >= dq:
        return None
    return math.floor(call / (dq - ring)) + 1  # the smallest b with call / b + ring < dq


@exercise("04.2", hint="a batch of b costs call_ns + b x ring_item_ns, i.e. call_ns / b + ring_item_ns per item; find the smallest whole b with that < deque_item_ns: floor(call_ns / (deque_item_ns - ring_item_ns)) + 1, None when the ring's own per-item cost is not below deque's")
def check_break_even_batch(break_even_batch) -> Verdict:
    """Exercise 04.2: ``break_even_batch(call_ns, ring_item_ns, deque_item_ns)`` is the
    smallest batch size ``b`` (records per Python call) at which the ring beats deque
    per item: one call costs ``call_ns`` (Python -> Numba dispatch) plus
    ``ring_item_ns`` per record, so a record costs ``call_ns / b + ring_item_ns``; it
    must be strictly below ``deque_item_ns``. None when no batch is large enough."""
    cases = ((2_000, 10, 100), (900, 10, 100), (0, 5, 100), (50, 1, 100), (500, 100, 100),
             (500, 150, 100), (3_500.0, 12.5, 80.25), (1e6, 1, 2))
    for call, ring, dq in cases:
        got, why = _attempt(break_even_batch, call, ring, dq)
        where = f"break_even_batch({call:g}, {ring:g}, {dq:g})"
        if why:
            return _verdict(False, f"{where}: {why}")
        expected = _break_even(call, ring, dq)
        if expected is None:
            if got is None:
                continue
            return _verdict(False, f"{where} returned {got!r}: the ring's own cost per item "
                                   f"({ring:g} ns) is not below deque's ({dq:g} ns), so no "
                                   "batch helps: return None")
        if got is None:
            return _verdict(False, f"{where} returned None, but a batch of {expected:,} makes "
                                   "the ring cheaper per item")
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got) \
                or got != int(got):
            return _verdict(False, f"{where} returned {got!r}: a batch is a whole number of records")
        got = int(got)
        if got == expected:
            continue
        per_item = lambda b: call / b + ring  # noqa: E731
        if got == expected - 1:
            return _verdict(False, f"{where} = {got:,}: at that batch an item costs "
                                   f"{per_item(got):g} ns, not below deque's {dq:g} ns "
                                   "(strictly cheaper: floor(...) + 1, not ceil)")
        if got < expected:
            return _verdict(False, f"{where} = {got:,}: an item then costs {per_item(got):g} ns, "
                                   f"more than deque's {dq:g}")
        return _verdict(False, f"{where} = {got:,}, but {expected:,} is already cheaper "
                               f"({per_item(expected):g} ns < {dq:g} ns): the smallest batch")
    return _verdict(True, "the break-even batch from the measured costs, boundaries included: "
                          "the dispatch cost is paid per call, so batches amortise it")


# --------------------------------------------------------------------------- 04.3
@exercise("04.3", hint="messages that arrive during the stall: rate x stall; the capacity is the smallest power of two >= that (and >= 2)")
def check_capacity_for(capacity_for) -> Verdict:
    """Exercise 04.3: ``capacity_for(rate_per_s, stall_s)`` is the ring capacity (a power
    of two, at least 2) that absorbs every message a producer sends at ``rate_per_s``
    while the consumer stalls for ``stall_s`` seconds, so the producer never waits:
    the smallest power of two >= ``rate_per_s x stall_s``."""
    cases = ((1_000_000, 0.1), (1_000, 0.001), (500_000, 0.002), (1_024, 1.0), (0, 1.0),
             (3_000_000, 0.05), (20_000_000, 0.0005), (1_000, 0.0005))
    for rate, stall in cases:
        got, why = _attempt(capacity_for, rate, stall)
        where = f"capacity_for({rate:,}, {stall:g})"
        if why:
            return _verdict(False, f"{where}: {why}")
        need = Fraction(str(float(rate))) * Fraction(str(float(stall)))
        expected = 2
        while expected < need:
            expected *= 2
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got) \
                or got != int(got):
            return _verdict(False, f"{where} returned {got!r}: return a capacity in messages (an int)")
        got = int(got)
        if got == expected:
            continue
        if got < 2 or got & (got - 1):
            return _verdict(False, f"{where} = {got:,}: the ring takes a power of two >= 2 (a "
                                   "slot is sequence & (capacity - 1))")
        if got < need:
            return _verdict(False, f"{where} = {got:,}: {float(need):,.0f} messages arrive during "
                                   "the stall, the producer would have to wait")
        return _verdict(False, f"{where} = {got:,}, but {expected:,} already holds the "
                               f"{float(need):,.0f} messages of the stall: the smallest one")
    return _verdict(True, "capacities sized from the rate and the stall, from a trickle to "
                          "20 M msgs/s")
