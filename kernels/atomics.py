"""Atomic memory operations on int64 slots of an array, usable inside kernels.

Owns the handful of primitives every lock-free structure here is built from, emitted
directly as LLVM instructions (Numba has no atomics of its own):

``load_acquire(a, i)``          read ``a[i]``; later reads cannot move before it.
``store_release(a, i, v)``      write ``a[i] = v``; earlier writes cannot move after it.
``compare_and_swap(a, i, e, v)``if ``a[i] == e`` set it to ``v``; returns the old value
                                (success when it equals ``e``). Sequentially consistent.
``fetch_add(a, i, d)``          ``a[i] += d`` atomically; returns the old value.
``cpu_pause()``                 the spin-wait hint (x86 ``PAUSE``): lets the sibling
                                hyper-thread run and saves power in spin loops.
``compiler_fence()``            stops the *compiler* reordering memory accesses across
                                it (no CPU instruction is emitted).
``memory_fence()``              a full CPU barrier (``MFENCE`` on x86).

Why acquire/release and not just plain loads: the ring's consumer must not read a
slot before it has seen the producer's cursor move past it, and the producer must
not move the cursor before the slot's bytes are written. On x86 these orderings cost
nothing at run time (every load is an acquire, every store a release), but without
them LLVM is free to hoist a cursor load out of a spin loop or sink a slot write
below the cursor store, which breaks the ring on any CPU.

The array must be a 1-D int64 array whose slots are 8-byte aligned (any numpy int64
array, or an int64 view of shared memory). Indices are not bounds-checked here:
the Python layer sizes the arrays.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = [
    "load_acquire", "store_release", "compare_and_swap", "fetch_add",
    "cpu_pause", "compiler_fence", "memory_fence", "HAS_PAUSE",
]

_I64 = ir.IntType(64)
HAS_PAUSE = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _check_int64_array(ary):
    return isinstance(ary, types.Array) and ary.ndim == 1 and ary.dtype == types.int64


def _slot_pointer(context, builder, aryty, ary, idx, idxty):
    array = context.make_array(aryty)(context, builder, ary)
    index = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, array, [index], wraparound=False)


@intrinsic
def load_acquire(typingctx, ary, idx):
    """Acquire-load of ``ary[idx]`` (int64)."""
    if not (_check_int64_array(ary) and isinstance(idx, types.Integer)):
        return None
    sig = types.int64(ary, idx)

    def codegen(context, builder, signature, args):
        ptr = _slot_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, ary, idx, value):
    """Release-store of ``value`` into ``ary[idx]`` (int64)."""
    if not (_check_int64_array(ary) and isinstance(idx, types.Integer)
            and isinstance(value, types.Integer)):
        return None
    sig = types.void(ary, idx, value)

    def codegen(context, builder, signature, args):
        ptr = _slot_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compare_and_swap(typingctx, ary, idx, expected, value):
    """Atomically replace ``ary[idx]`` by ``value`` if it equals ``expected``; return the old value."""
    if not (_check_int64_array(ary) and isinstance(idx, types.Integer)
            and isinstance(expected, types.Integer) and isinstance(value, types.Integer)):
        return None
    sig = types.int64(ary, idx, expected, value)

    def codegen(context, builder, signature, args):
        ptr = _slot_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        exp = context.cast(builder, args[2], signature.args[2], types.int64)
        val = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(ptr, exp, val, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@intrinsic
def fetch_add(typingctx, ary, idx, delta):
    """Atomically add ``delta`` to ``ary[idx]``; return the value before the add."""
    if not (_check_int64_array(ary) and isinstance(idx, types.Integer)
            and isinstance(delta, types.Integer)):
        return None
    sig = types.int64(ary, idx, delta)

    def codegen(context, builder, signature, args):
        ptr = _slot_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        d = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, d, "seq_cst")

    return sig, codegen


@intrinsic
def cpu_pause(typingctx):
    """Spin-wait hint (x86 PAUSE); a compiler fence elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if HAS_PAUSE:
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst", "singlethread")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compiler_fence(typingctx):
    """No instruction: the compiler may not move memory accesses across this point."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst", "singlethread")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def memory_fence(typingctx):
    """Full hardware memory barrier (sequentially consistent)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen
