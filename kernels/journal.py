"""The journal's compiled half: CRC32C, the command ring, and the writer loop without the GIL.

Owns everything of ``workbench.journal`` that runs per command or per record:

* **CRC32C** (Castagnoli, reflected polynomial 0x82F63B78, the checksum of iSCSI, ext4
  and LevelDB): :func:`crc32c` over bytes and :func:`record_crc` over one
  ``kernels.records.JOURNAL_RECORD``. Two implementations of one step function: the
  SSE4.2 ``crc32`` instruction where the CPU has it (``HW_CRC32C``), table-driven
  slicing-by-8 everywhere else (:func:`crc32c_sw` keeps it callable on any machine so
  tests compare both against the standard check value and a plain-Python reference).
* **The command ring**: a single-producer single-consumer ring of ``JOURNAL_RECORD``
  slots plus one int64 *journal context* (``J_*`` slots, one cache line per owner as in
  ``kernels.ring``). The engine's thread is the producer: :func:`push_one` (one
  single-order command) and :func:`push_events` (an EVENT batch) copy records into
  slots and publish a sequence number with a release store, nothing else. The slot of
  sequence ``s`` is ``(s - J_SEQ0 - 1) & (capacity - 1)``.
* **The writer loop** :func:`writer_run`: a Python thread calls it once and it runs,
  GIL-free, until the journal stops, fails, or its segment file is full. It takes
  published records out of the ring, stamps each one's CRC32C in place, ``write``s
  them straight from the ring's memory, and ``fdatasync``s them by the durability
  policy (``POLICY_*``); it then publishes ``J_DURABLE``, the last sequence that is
  on disk, and wakes whoever waits for it.
* **Waiting without spinning forever**: a waiting side spins a little, then sleeps on
  a Linux futex (``FUTEX_WAIT_PRIVATE`` on a generation word: ``J_DOORBELL`` for the
  writer, ``J_ACK_GEN`` for acknowledgements, ``J_SPACE_GEN`` for ring space); the
  other side bumps the word and wakes sleepers only when its sleeper count says there
  are some, so a busy stream makes no system calls. Every wait takes a timeout and
  returns to Python when it runs out, so Python checks failures and Ctrl-C.

Policies (``J_POLICY``):

``POLICY_NONE``   records are written, never synced; ``J_DURABLE`` follows ``J_WRITTEN``.
``POLICY_BATCH``  group commit: sync when ``J_BATCH_RECORDS`` records are unsynced, or
                  the oldest unsynced one was written ``J_BATCH_NS`` ago.
``POLICY_EVERY``  sync as soon as the ring is drained (and at least every
                  ``EVERY_MAX_UNSYNCED`` records under a flood): a command is on disk
                  one write + one sync after it was published.

The OS calls (``write``, ``fdatasync``, ``syscall(SYS_futex)``, ``nanosleep``,
``errno``) are emitted as calls to the C symbols by name, like ``kernels.clock``, so
the kernels stay cacheable. A failed ``write`` or sync is final (``J_FAILED`` holds the
errno): after a failed ``fsync`` the kernel may have dropped the dirty pages, so
retrying could report data durable that is not.

Contract: one producer thread, one writer thread. The Python layer owns and sizes
the context (``N_JCTX`` int64 slots) and the slots, keeps them alive while a kernel
runs, and writes the configuration line before the writer starts.
"""
from __future__ import annotations

import os
import platform
import sys

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from .atomics import cpu_pause, fetch_add, load_acquire, memory_fence, store_release
from .clock import now_ns, realtime_ns
from .jit import kernel
from .pointers import address_as_pointer
from .records import (
    EV_ADD, JF_AUTO_ID, JF_END, JF_LOG_FILLS, JOURNAL_RECORD, JR_APP, JR_EVENT, JR_OUTPUT_FULL,
    R_OUTPUT_FULL,
)

__all__ = [
    "HW_CRC32C", "crc32c", "crc32c_sw", "record_crc", "stamp_crc",
    "N_JCTX", "J_MAGIC", "J_POLICY", "J_BATCH_RECORDS", "J_BATCH_NS", "J_CAPACITY",
    "J_SLOTS_ADDR", "J_FD", "J_SEG_ROOM", "J_PUBLISHED", "J_SEQ0", "J_CLOCK_ADDR",
    "J_PAUSE_ADDR", "J_PAUSE_SEEN", "J_ACK_WAIT", "J_SNAP_AT", "J_CONSUMED", "J_WRITTEN",
    "J_WRITER_SLEEPING", "J_DOORBELL", "J_DURABLE", "J_ACK_GEN", "J_ACK_SLEEPERS",
    "J_SPACE_GEN", "J_SPACE_SLEEPERS", "J_STOP", "J_FAILED", "J_FAILED_OP", "J_FAILED_SEQ",
    "J_FSYNCS", "J_WRITES", "J_BYTES", "J_FSYNC_NS", "J_FSYNC_MAX_NS", "J_SLEEPS",
    "JOURNAL_MAGIC", "POLICY_NONE", "POLICY_BATCH", "POLICY_EVERY", "EVERY_MAX_UNSYNCED",
    "OP_WRITE", "OP_SYNC",
    "W_STOPPED", "W_ROTATE", "W_FAILED", "PUSH_WAIT", "PUSH_SNAPSHOT",
    "wall_ns", "push_one", "push_events", "push_app", "sync_pauses", "wait_durable",
    "wake_writer",
    "writer_run", "mark_failed", "scan_records", "count_valid", "extract_events",
]

# ------------------------------------------------------------------ CRC32C tables
_POLY = 0x82F63B78


def _tables() -> np.ndarray:
    table = np.zeros((8, 256), dtype=np.uint64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        table[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            prev = int(table[k - 1, i])
            table[k, i] = (prev >> 8) ^ int(table[0, prev & 0xFF])
    return table


_T = _tables()
_T0, _T1, _T2, _T3 = _T[0].copy(), _T[1].copy(), _T[2].copy(), _T[3].copy()
_T4, _T5, _T6, _T7 = _T[4].copy(), _T[5].copy(), _T[6].copy(), _T[7].copy()
_FF = np.uint64(0xFF)
_M32 = np.uint64(0xFFFFFFFF)
_S8, _S16, _S24, _S32 = np.uint64(8), np.uint64(16), np.uint64(24), np.uint64(32)


def _host_has_sse42() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("sse4.2", False))
    except Exception:  # noqa: BLE001  (no feature probe: take the portable path)
        return False


# The CRC32 instruction of SSE4.2 computes exactly CRC32C. Off with WORKBENCH_CRC32C=sw.
HW_CRC32C: bool = _host_has_sse42() and os.environ.get("WORKBENCH_CRC32C", "").lower() != "sw"


@kernel(inline="always")
def _sw_u64(crc, v):
    """One slicing-by-8 step: ``crc`` (uint64 holding 32 bits) over the 8 bytes of ``v``."""
    x = (crc ^ (v & _M32)) & _M32
    hi = v >> _S32
    return (_T7[x & _FF] ^ _T6[(x >> _S8) & _FF] ^ _T5[(x >> _S16) & _FF] ^ _T4[x >> _S24]
            ^ _T3[hi & _FF] ^ _T2[(hi >> _S8) & _FF] ^ _T1[(hi >> _S16) & _FF]
            ^ _T0[hi >> _S24])


@kernel(inline="always")
def _sw_u32(crc, v):
    x = (crc ^ (v & _M32)) & _M32
    return _T3[x & _FF] ^ _T2[(x >> _S8) & _FF] ^ _T1[(x >> _S16) & _FF] ^ _T0[x >> _S24]


@kernel(inline="always")
def _sw_u8(crc, b):
    return _T0[(crc ^ b) & _FF] ^ (crc >> _S8)


@intrinsic
def _hw_u64(typingctx, crc, v):
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64, i64]), "llvm.x86.sse42.crc32.64.64")
        return builder.call(fn, [args[0], args[1]])

    return sig, codegen


@intrinsic
def _hw_u32(typingctx, crc, v):
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32, i32]), "llvm.x86.sse42.crc32.32.32")
        out = builder.call(fn, [builder.trunc(args[0], i32), builder.trunc(args[1], i32)])
        return builder.zext(out, ir.IntType(64))

    return sig, codegen


@intrinsic
def _hw_u8(typingctx, crc, b):
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        i8 = ir.IntType(8)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32, i8]), "llvm.x86.sse42.crc32.32.8")
        out = builder.call(fn, [builder.trunc(args[0], i32), builder.trunc(args[1], i8)])
        return builder.zext(out, ir.IntType(64))

    return sig, codegen


# The step functions every CRC below is built from (chosen once, at import).
_u64 = _hw_u64 if HW_CRC32C else _sw_u64
_u32 = _hw_u32 if HW_CRC32C else _sw_u32
_u8 = _hw_u8 if HW_CRC32C else _sw_u8


@kernel(inline="always")
def _le64(data, i):
    """The 8 bytes ``data[i:i+8]`` as a little-endian uint64 (LLVM folds it to one load)."""
    return (np.uint64(data[i]) | (np.uint64(data[i + 1]) << _S8)
            | (np.uint64(data[i + 2]) << _S16) | (np.uint64(data[i + 3]) << _S24)
            | (np.uint64(data[i + 4]) << _S32) | (np.uint64(data[i + 5]) << np.uint64(40))
            | (np.uint64(data[i + 6]) << np.uint64(48)) | (np.uint64(data[i + 7]) << np.uint64(56)))


@kernel
def crc32c(data, crc=0):
    """CRC32C of a 1-d uint8 array; pass a previous result as ``crc`` to continue it."""
    c = (np.uint64(crc) ^ _M32) & _M32
    n = len(data)
    i = 0
    while i + 8 <= n:
        c = _u64(c, _le64(data, i))
        i += 8
    while i < n:
        c = _u8(c, np.uint64(data[i]))
        i += 1
    return np.uint32(c ^ _M32)


@kernel
def crc32c_sw(data, crc=0):
    """:func:`crc32c` through the table-driven steps only (any CPU; tests compare the two)."""
    c = (np.uint64(crc) ^ _M32) & _M32
    n = len(data)
    i = 0
    while i + 8 <= n:
        c = _sw_u64(c, _le64(data, i))
        i += 8
    while i < n:
        c = _sw_u8(c, np.uint64(data[i]))
        i += 1
    return np.uint32(c ^ _M32)


@kernel(inline="always")
def _record_crc_words(words, base):
    """CRC32C of the first 60 bytes of the 64-byte record at ``words[base:base+8]``."""
    c = _M32
    for k in range(7):
        c = _u64(c, words[base + k])
    c = _u32(c, words[base + 7] & _M32)
    return c ^ _M32


@kernel
def record_crc(words, i):
    """CRC32C of record ``i`` of a ``JOURNAL_RECORD`` array viewed as uint64 words."""
    return np.uint32(_record_crc_words(words, i * 8))


@kernel
def stamp_crc(words, lo, hi):
    """Write each record's CRC32C into its ``crc`` field, records ``lo..hi-1``."""
    for i in range(lo, hi):
        base = i * 8
        words[base + 7] = (words[base + 7] & _M32) | (_record_crc_words(words, base) << _S32)


# ------------------------------------------------------------------------ OS calls
_LINUX = sys.platform.startswith("linux")
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(
    platform.machine().lower(), -1)
HAS_FUTEX = _LINUX and _SYS_FUTEX > 0
_FUTEX_WAIT_PRIVATE = 128
_FUTEX_WAKE_PRIVATE = 129
_SYNC_SYMBOL = "fdatasync" if _LINUX else "fsync"
_ERRNO_SYMBOL = "__errno_location" if _LINUX else "__error"
EINTR = 4
EIO = 5


def _i8p():
    return ir.IntType(8).as_pointer()


@intrinsic
def _c_write(typingctx, fd, address, nbytes):
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i32, _i8p(), i64]), "write")
        return builder.call(fn, [builder.trunc(args[0], i32), builder.inttoptr(args[1], _i8p()),
                                 args[2]])

    return sig, codegen


@intrinsic
def _c_sync(typingctx, fd):
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32]), _SYNC_SYMBOL)
        return builder.sext(builder.call(fn, [builder.trunc(args[0], i32)]), ir.IntType(64))

    return sig, codegen


@intrinsic
def _c_errno(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32.as_pointer(), []), _ERRNO_SYMBOL)
        return builder.sext(builder.load(builder.call(fn, [])), ir.IntType(64))

    return sig, codegen


def _timespec(builder, ns):
    i64 = ir.IntType(64)
    ts = cgutils.alloca_once(builder, ir.LiteralStructType([i64, i64]))
    billion = ir.Constant(i64, 1_000_000_000)
    builder.store(builder.sdiv(ns, billion), cgutils.gep_inbounds(builder, ts, 0, 0))
    builder.store(builder.srem(ns, billion), cgutils.gep_inbounds(builder, ts, 0, 1))
    return ts


@intrinsic
def _c_futex(typingctx, address, op, value, timeout_ns):
    """``syscall(SYS_futex, address, op, value, timeout or NULL, 0, 0)``; timeout < 0: none."""
    sig = types.int64(types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64], var_arg=True), "syscall")
        ts = _timespec(builder, builder.select(
            builder.icmp_signed("<", args[3], ir.Constant(i64, 0)), ir.Constant(i64, 0), args[3]))
        ts_addr = builder.select(builder.icmp_signed("<", args[3], ir.Constant(i64, 0)),
                                 ir.Constant(i64, 0), builder.ptrtoint(ts, i64))
        zero = ir.Constant(i64, 0)
        return builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), args[0], args[1],
                                 builder.and_(args[2], ir.Constant(i64, 0xFFFFFFFF)),
                                 ts_addr, zero, zero])

    return sig, codegen


@intrinsic
def _c_nanosleep(typingctx, ns):
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        ts = _timespec(builder, args[0])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [_i8p(), _i8p()]), "nanosleep")
        out = builder.call(fn, [builder.bitcast(ts, _i8p()),
                                ir.Constant(_i8p(), None)])
        return builder.sext(out, i64)

    return sig, codegen


@kernel(inline="always")
def wall_ns():
    """CLOCK_REALTIME in nanoseconds (the journal's record time), from inside a kernel."""
    return realtime_ns()


# ------------------------------------------------------------ the journal context
# line 0: configuration, written by Python before the writer starts
J_MAGIC = 0
J_POLICY = 1
J_BATCH_RECORDS = 2    # POLICY_BATCH: sync when this many records are unsynced
J_BATCH_NS = 3         # POLICY_BATCH: ... or the oldest unsynced one is this old
J_CAPACITY = 4         # ring slots, a power of two
J_SLOTS_ADDR = 5       # address of the slots (JOURNAL_RECORD[capacity])
J_FD = 6               # the open segment's file descriptor (set on rotation)
J_SEG_ROOM = 7         # records the open segment can still take (writer counts down)
# line 1: the producer's
J_PUBLISHED = 8        # last sequence number published into the ring
J_SEQ0 = 9             # sequence number before the ring's first slot
J_CLOCK_ADDR = 10      # address of the engine's event counter (resolves ts <= 0)
J_PAUSE_ADDR = 11      # address of the engine's output-full pause counter
J_PAUSE_SEEN = 12      # that counter's value as last journaled
J_ACK_WAIT = 13        # 1: push_one waits for durability before returning
J_SNAP_AT = 14         # sequence number at which an automatic snapshot is due
J_CACHED_CONSUMED = 15 # the producer's copy of J_CONSUMED
# line 2: the writer's
J_CONSUMED = 16        # last sequence number taken out of the ring
J_WRITTEN = 17         # last sequence number written to the file
J_WRITER_SLEEPING = 18
J_DOORBELL = 19        # futex word the writer sleeps on
# line 3: durability (acknowledgement waiters)
J_DURABLE = 24         # last sequence number on disk under the policy
J_ACK_GEN = 25         # futex word acknowledgement waiters sleep on
J_ACK_SLEEPERS = 26
# line 4: ring space (a producer waiting on a full ring)
J_SPACE_GEN = 32
J_SPACE_SLEEPERS = 33
# line 5: control and failure
J_STOP = 40
J_FAILED = 41          # errno of the failed call, 0 while healthy
J_FAILED_OP = 42       # OP_WRITE or OP_SYNC
J_FAILED_SEQ = 43      # first sequence number that may not be on disk
# line 6: writer statistics
J_FSYNCS = 48
J_WRITES = 49
J_BYTES = 50
J_FSYNC_NS = 51
J_FSYNC_MAX_NS = 52
J_SLEEPS = 53
N_JCTX = 64

JOURNAL_MAGIC = 0x4A52_4E4C_5742_0001  # "WBLNRJ" + layout version 1
POLICY_NONE = 0
POLICY_BATCH = 1
POLICY_EVERY = 2
EVERY_MAX_UNSYNCED = 16_384  # records (1 MiB) written under POLICY_EVERY before a sync is forced
OP_WRITE = 1
OP_SYNC = 2

W_STOPPED = 0
W_ROTATE = 1
W_FAILED = -1
PUSH_WAIT = 1       # push result bit: not durable yet when the wait slice ran out
PUSH_SNAPSHOT = 2   # push result bit: an automatic snapshot is due

_MAX_WRITE_RECORDS = 16_384   # records per write() call (1 MiB)
_SPINS = 500                  # pause-spins before a waiting side sleeps
_WRITER_SLEEP_NS = 20_000_000
_POLL_NS = 50_000             # sleep step where there is no futex


@kernel(inline="always")
def _ctx(address):
    return carray(address_as_pointer(address), N_JCTX, np.int64)


@kernel(inline="always")
def _records(j):
    return carray(address_as_pointer(j[J_SLOTS_ADDR]), j[J_CAPACITY], JOURNAL_RECORD)


@kernel(inline="always")
def _words(j):
    return carray(address_as_pointer(j[J_SLOTS_ADDR]), j[J_CAPACITY] * 8, np.uint64)


@kernel(inline="always")
def _ctx_base(j):
    """Address of the context (a futex word ``j[i]`` is at ``+ 8 * i``: its low 32 bits,
    on a little-endian CPU)."""
    return j.ctypes.data


@kernel(inline="always")
def _sleep_on(j, gen_index, sleepers_index, seen, timeout_ns):
    """Sleep until ``j[gen_index]`` moves from ``seen`` (or the timeout); the caller
    counted itself in ``j[sleepers_index]`` and re-checked its condition first."""
    if HAS_FUTEX:
        _c_futex(_ctx_base(j) + gen_index * 8, _FUTEX_WAIT_PRIVATE, seen, timeout_ns)
    else:
        _c_nanosleep(min(timeout_ns, _POLL_NS))


@kernel(inline="always")
def _wake(j, gen_index, sleepers_index):
    """Bump the generation word and wake its sleepers, if there are any."""
    fetch_add(j, gen_index, 1)
    if load_acquire(j, sleepers_index) > 0 and HAS_FUTEX:
        _c_futex(_ctx_base(j) + gen_index * 8, _FUTEX_WAKE_PRIVATE, 0x7FFFFFFF, -1)


# ------------------------------------------------------------------- the producer
@kernel(inline="always")
def _wait_space(j, seq):
    """Wait until the slot of ``seq`` is free (the writer consumed ``seq - capacity``).
    Returns False when the journal failed."""
    need = seq - j[J_CAPACITY]
    if j[J_CACHED_CONSUMED] >= need:
        return True
    spins = 0
    while True:
        gen = load_acquire(j, J_SPACE_GEN)
        consumed = load_acquire(j, J_CONSUMED)
        if consumed >= need:
            j[J_CACHED_CONSUMED] = consumed
            return True
        if load_acquire(j, J_FAILED) != 0:
            return False
        if spins < _SPINS:
            spins += 1
            cpu_pause()
            continue
        fetch_add(j, J_SPACE_SLEEPERS, 1)
        if load_acquire(j, J_CONSUMED) < need and load_acquire(j, J_FAILED) == 0:
            _sleep_on(j, J_SPACE_GEN, J_SPACE_SLEEPERS, gen, 10_000_000)
        fetch_add(j, J_SPACE_SLEEPERS, -1)


@kernel(inline="always")
def _publish(j, seq):
    store_release(j, J_PUBLISHED, seq)
    memory_fence()
    if j[J_WRITER_SLEEPING] != 0:
        _wake(j, J_DOORBELL, J_WRITER_SLEEPING)


@kernel(inline="always")
def _put(j, recs, seq, wall, rtype, flags, ts, order_id, price, qty, symbol, kind, side,
         order_type, tif):
    r = recs[(seq - j[J_SEQ0] - 1) & (j[J_CAPACITY] - 1)]
    r.seq = seq
    r.wall_ns = wall
    r.ts = ts
    r.order_id = order_id
    r.price = price
    r.qty = qty
    r.symbol = symbol
    r.kind = kind
    r.side = side
    r.order_type = order_type
    r.tif = tif
    r.rtype = rtype
    r.flags = flags
    r.reserved = 0
    r.crc = 0


@kernel(inline="always")
def _pause_record(j, recs, wall, flags):
    """Journal the change of the engine's output-full counter since the last record (a
    ``JR_OUTPUT_FULL`` record carrying the delta in ``qty``); returns the records added
    (0 or 1, or -1 when the journal failed)."""
    pauses = carray(address_as_pointer(j[J_PAUSE_ADDR]), 1, np.int64)[0]
    delta = pauses - j[J_PAUSE_SEEN]
    if delta == 0:
        return 0
    seq = j[J_PUBLISHED] + 1
    if not _wait_space(j, seq):
        return -1
    _put(j, recs, seq, wall, JR_OUTPUT_FULL, flags, 0, 0, 0, delta, 0, 0, 0, 0, 0)
    j[J_PAUSE_SEEN] = pauses
    return 1


@kernel(inline="always")
def _after_push(j, wait):
    """The common tail of a push: optionally wait for durability, flag a due snapshot."""
    out = 0
    if wait:
        r = _wait(j, j[J_PUBLISHED], 200_000_000)
        if r < 0:
            return -1
        out = r
    if j[J_PUBLISHED] >= j[J_SNAP_AT]:
        out |= PUSH_SNAPSHOT
    return out


@kernel
def push_one(jaddr, ts, order_id, price, qty, book, kind, side, order_type, tif, code, flags):
    """Journal one command of the single-order path, right after ``kernels.book.apply_one``
    answered ``code`` for it.

    An event the kernel applied (anything but an output-full pause) becomes a
    ``JR_EVENT`` record with ``ts <= 0`` resolved to the engine's logical clock, as
    ``apply_one`` did, and ``flags | JF_END`` (``| JF_AUTO_ID`` for an add). A change
    of the engine's pause counter is journaled first, without the end mark: after an
    output-full answer the engine retries the same call, whose record ends it. Waits for
    durability when ``J_ACK_WAIT`` is set. Returns 0, or ``PUSH_WAIT | PUSH_SNAPSHOT``
    bits, or -1 when the journal has failed (nothing is published then).
    """
    j = _ctx(jaddr)
    if load_acquire(j, J_FAILED) != 0:
        return -1
    recs = _records(j)
    wall = wall_ns()
    applied = not (((code >> 8) & 0xFF) == R_OUTPUT_FULL and code < 65536)
    # a pause never ends the call: the event (or, after an output-full answer, its retry)
    # comes next and carries the end mark
    n = _pause_record(j, recs, wall, 0)
    if n < 0:
        return -1
    if applied:
        if ts <= 0:
            ts = carray(address_as_pointer(j[J_CLOCK_ADDR]), 1, np.int64)[0]
        f = flags | JF_END
        if kind == EV_ADD:
            f |= JF_AUTO_ID
        seq = j[J_PUBLISHED] + n + 1
        if not _wait_space(j, seq):
            return -1
        _put(j, recs, seq, wall, JR_EVENT, f, ts, order_id, price, qty, book, kind, side,
             order_type, tif)
        _publish(j, seq)
    elif n:
        _publish(j, j[J_PUBLISHED] + 1)
    return _after_push(j, j[J_ACK_WAIT] != 0)


@kernel
def push_events(jaddr, events, lo, hi, flags, end, wait):
    """Journal ``events[lo:hi]`` (EVENT records a batch kernel just applied) as
    ``JR_EVENT`` records with ``flags``, after any change of the pause counter; the last
    record gets ``JF_END`` when ``end``. Publishes every 1,024 records so the writer
    starts early. Waits for durability when ``wait``. Returns as :func:`push_one`."""
    j = _ctx(jaddr)
    if load_acquire(j, J_FAILED) != 0:
        return -1
    recs = _records(j)
    wall = wall_ns()
    n = _pause_record(j, recs, wall, JF_END if (end and hi <= lo) else 0)
    if n < 0:
        return -1
    seq = j[J_PUBLISHED] + n
    for i in range(lo, hi):
        seq += 1
        if not _wait_space(j, seq):
            return -1
        e = events[i]
        f = flags
        if end and i == hi - 1:
            f |= JF_END
        _put(j, recs, seq, wall, JR_EVENT, f, e.ts, e.order_id, e.price, e.qty, e.symbol,
             e.kind, e.side, e.order_type, e.tif)
        if (i - lo) & 1023 == 1023:
            _publish(j, seq)
    if seq > j[J_PUBLISHED]:
        _publish(j, seq)
    return _after_push(j, wait)


@kernel
def sync_pauses(jaddr, wait):
    """Journal a change of the engine's pause counter made outside a push (as a complete
    command: ``JF_END``). Returns as :func:`push_one`."""
    j = _ctx(jaddr)
    if load_acquire(j, J_FAILED) != 0:
        return -1
    n = _pause_record(j, _records(j), wall_ns(), JF_END)
    if n < 0:
        return -1
    if n:
        _publish(j, j[J_PUBLISHED] + 1)
    return _after_push(j, wait)


@kernel
def push_app(jaddr, code, a, b, c, d, e, wait):
    """Journal one application record (``JR_APP``, ``kind = code``, payload in ``ts``,
    ``order_id``, ``price``, ``qty``, ``symbol``), a complete call of its own. Returns
    as :func:`push_one`; its sequence number is then ``J_PUBLISHED``."""
    j = _ctx(jaddr)
    if load_acquire(j, J_FAILED) != 0:
        return -1
    recs = _records(j)
    wall = wall_ns()
    n = _pause_record(j, recs, wall, 0)
    if n < 0:
        return -1
    seq = j[J_PUBLISHED] + n + 1
    if not _wait_space(j, seq):
        return -1
    _put(j, recs, seq, wall, JR_APP, JF_END, a, b, c, d, e, code, 0, 0, 0)
    _publish(j, seq)
    return _after_push(j, wait)


@kernel(inline="always")
def _wait(j, seq, max_ns):
    """Wait until ``seq`` is durable: 0 done, 1 ``max_ns`` ran out, -1 the journal failed."""
    if load_acquire(j, J_DURABLE) >= seq:
        return 0
    spins = 0
    deadline = now_ns() + max_ns
    while True:
        gen = load_acquire(j, J_ACK_GEN)
        if load_acquire(j, J_DURABLE) >= seq:
            return 0
        if load_acquire(j, J_FAILED) != 0:
            return -1
        if spins < _SPINS:
            spins += 1
            cpu_pause()
            continue
        left = deadline - now_ns()
        if left <= 0:
            return 1
        fetch_add(j, J_ACK_SLEEPERS, 1)
        if load_acquire(j, J_DURABLE) < seq and load_acquire(j, J_FAILED) == 0:
            _sleep_on(j, J_ACK_GEN, J_ACK_SLEEPERS, gen, min(left, 10_000_000))
        fetch_add(j, J_ACK_SLEEPERS, -1)


@kernel
def wait_durable(jaddr, seq, max_ns):
    """Wait (GIL-free) until sequence ``seq`` is durable under the journal's policy.
    Returns 0 when it is, 1 when ``max_ns`` ran out first, -1 when the journal failed."""
    return _wait(_ctx(jaddr), seq, max_ns)


@kernel
def wake_writer(jaddr):
    """Ring the writer's doorbell (after setting ``J_STOP``, or new configuration)."""
    j = _ctx(jaddr)
    memory_fence()
    fetch_add(j, J_DOORBELL, 1)
    if HAS_FUTEX:
        _c_futex(_ctx_base(j) + J_DOORBELL * 8, _FUTEX_WAKE_PRIVATE, 0x7FFFFFFF, -1)


# --------------------------------------------------------------------- the writer
@kernel(inline="always")
def _fail(j, op, err, seq):
    j[J_FAILED_OP] = op
    j[J_FAILED_SEQ] = seq
    store_release(j, J_FAILED, err if err != 0 else EIO)
    _wake(j, J_ACK_GEN, J_ACK_SLEEPERS)
    _wake(j, J_SPACE_GEN, J_SPACE_SLEEPERS)
    return W_FAILED


@kernel(inline="always")
def _sync(j, durable_to):
    t0 = now_ns()
    if _c_sync(j[J_FD]) != 0:
        return _fail(j, OP_SYNC, _c_errno(), j[J_DURABLE] + 1)
    dt = now_ns() - t0
    j[J_FSYNCS] += 1
    j[J_FSYNC_NS] += dt
    if dt > j[J_FSYNC_MAX_NS]:
        j[J_FSYNC_MAX_NS] = dt
    store_release(j, J_DURABLE, durable_to)
    _wake(j, J_ACK_GEN, J_ACK_SLEEPERS)
    return 0


@kernel(inline="always")
def _write_all(j, address, nbytes):
    """``write`` until every byte is out; 0, or the errno of the failure."""
    while nbytes > 0:
        n = _c_write(j[J_FD], address, nbytes)
        if n < 0:
            err = _c_errno()
            if err == EINTR:
                continue
            return err
        if n == 0:
            return EIO
        address += n
        nbytes -= n
        j[J_WRITES] += 1
    return 0


@kernel
def writer_run(jaddr):
    """The writer thread's loop (GIL-free): write published records, sync them by the
    policy, publish ``J_DURABLE``. Returns ``W_STOPPED`` (``J_STOP`` set and everything
    written and, unless ``POLICY_NONE``, synced), ``W_ROTATE`` (the segment is full and
    synced: open the next one, set ``J_FD``/``J_SEG_ROOM``, call again) or ``W_FAILED``
    (``J_FAILED`` holds the errno)."""
    j = _ctx(jaddr)
    words = _words(j)
    policy = j[J_POLICY]
    cap = j[J_CAPACITY]
    mask = cap - 1
    consumed = j[J_CONSUMED]
    unsynced = j[J_WRITTEN] - j[J_DURABLE]
    first_unsynced = now_ns() if unsynced > 0 else 0
    spins = 0
    while True:
        published = load_acquire(j, J_PUBLISHED)
        if published > consumed:
            room = j[J_SEG_ROOM]
            if room <= 0:
                if policy != POLICY_NONE and unsynced > 0:
                    if _sync(j, consumed) != 0:
                        return W_FAILED
                return W_ROTATE
            pos = (consumed - j[J_SEQ0]) & mask
            n = min(published - consumed, room, cap - pos, _MAX_WRITE_RECORDS)
            stamp_crc(words, pos, pos + n)
            err = _write_all(j, j[J_SLOTS_ADDR] + pos * 64, n * 64)
            if err != 0:
                return _fail(j, OP_WRITE, err, consumed + 1)
            consumed += n
            j[J_SEG_ROOM] = room - n
            j[J_BYTES] += n * 64
            store_release(j, J_CONSUMED, consumed)
            memory_fence()
            if j[J_SPACE_SLEEPERS] > 0:
                _wake(j, J_SPACE_GEN, J_SPACE_SLEEPERS)
            store_release(j, J_WRITTEN, consumed)
            if policy == POLICY_NONE:
                store_release(j, J_DURABLE, consumed)
                _wake(j, J_ACK_GEN, J_ACK_SLEEPERS)
            else:
                if unsynced == 0:
                    first_unsynced = now_ns()
                unsynced += n
            spins = 0
        if unsynced > 0:
            if policy == POLICY_EVERY:
                due = load_acquire(j, J_PUBLISHED) == consumed or unsynced >= EVERY_MAX_UNSYNCED
            else:
                due = unsynced >= j[J_BATCH_RECORDS] or now_ns() - first_unsynced >= j[J_BATCH_NS]
            if due:
                if _sync(j, consumed) != 0:
                    return W_FAILED
                unsynced = 0
                continue
        if load_acquire(j, J_PUBLISHED) > consumed:
            continue
        if load_acquire(j, J_STOP) != 0:
            if unsynced > 0 and policy != POLICY_NONE:
                if _sync(j, consumed) != 0:
                    return W_FAILED
            return W_STOPPED
        if spins < _SPINS:
            spins += 1
            cpu_pause()
            continue
        timeout = _WRITER_SLEEP_NS
        if unsynced > 0:  # POLICY_BATCH: wake up when the oldest unsynced record is due
            timeout = max(1_000, min(timeout, first_unsynced + j[J_BATCH_NS] - now_ns()))
        bell = load_acquire(j, J_DOORBELL)
        store_release(j, J_WRITER_SLEEPING, 1)
        memory_fence()
        if load_acquire(j, J_PUBLISHED) == consumed and load_acquire(j, J_STOP) == 0:
            j[J_SLEEPS] += 1
            _sleep_on(j, J_DOORBELL, J_WRITER_SLEEPING, bell, timeout)
        store_release(j, J_WRITER_SLEEPING, 0)


# ----------------------------------------------------------------------- recovery
@kernel
def scan_records(words, n, first_seq):
    """How many leading records of a segment (``n`` records viewed as uint64 ``words``)
    are intact: the CRC32C matches and the sequence numbers run ``first_seq, +1, ...``."""
    for i in range(n):
        base = i * 8
        if (words[base + 7] >> _S32) != _record_crc_words(words, base):
            return i
        if np.int64(words[base]) != first_seq + i:
            return i
    return n


@kernel
def count_valid(words, lo, n):
    """Records in ``lo..n-1`` whose CRC32C matches (what follows a bad record: any
    intact one there means corruption in the middle, not a torn tail)."""
    k = 0
    for i in range(lo, n):
        base = i * 8
        if (words[base + 7] >> _S32) == _record_crc_words(words, base):
            k += 1
    return k


@kernel
def extract_events(recs, lo, hi, events, log_mask, id_end):
    """The ``JR_EVENT`` records of ``recs[lo:hi]`` as EVENT records in ``events[0:]``
    (with ``log_mask[k]`` = its fills go to the fill log), for replay through
    ``kernels.book.apply_batch``. Returns ``(n_events, pause_delta, max_auto_id)``: the
    summed ``JR_OUTPUT_FULL`` deltas, and the largest id below ``id_end`` of an add
    flagged ``JF_AUTO_ID`` (-1 if none)."""
    n = 0
    pauses = 0
    max_id = -1
    for i in range(lo, hi):
        r = recs[i]
        if r.rtype == JR_EVENT:
            e = events[n]
            e.ts = r.ts
            e.order_id = r.order_id
            e.price = r.price
            e.qty = r.qty
            e.symbol = r.symbol
            e.kind = r.kind
            e.side = r.side
            e.order_type = r.order_type
            e.tif = r.tif
            log_mask[n] = (r.flags & JF_LOG_FILLS) != 0
            if (r.flags & JF_AUTO_ID) != 0 and r.order_id < id_end and r.order_id > max_id:
                max_id = r.order_id
            n += 1
        elif r.rtype == JR_OUTPUT_FULL:
            pauses += r.qty
    return n, pauses, max_id


@kernel
def mark_failed(jaddr, op, err, seq):
    """Record a failure found outside the writer loop (e.g. opening the next segment)
    and wake every waiter, so the engine stops acknowledging commands."""
    return _fail(_ctx(jaddr), op, err, seq)
