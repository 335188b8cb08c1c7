"""A software prefetch: ask the CPU to bring an array element's cache line in early.

The ITCH decoder and the book's batch loops (``kernels.book.prefetch_order``: the batch
paths and the ITCH replay) look orders up in tables far larger than the caches (a
reference table or an order index of a million live orders is tens of MB), in an order
the hardware prefetcher cannot guess. Their input names the order a few messages or
events ahead of where the work is, though, so the loops issue :func:`prefetch` for the
slot that one will touch and keep several cache misses in flight instead of waiting on
each in turn. ``llvm.prefetch`` is a hint: it never faults, so an index outside the array costs
nothing but a wasted hint (the loops still only prefetch inside the array).
"""
from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["prefetch", "prefetch_record"]


def _item_prefetcher(ary, idx, last_byte: bool):
    """The signature and codegen of a prefetch of ``ary[idx]``'s first byte's line (and,
    with ``last_byte``, its last byte's: the two lines of a record that straddles)."""
    if not (isinstance(ary, types.Array) and ary.ndim == 1 and isinstance(idx, types.Integer)):
        return None
    sig = types.void(ary, idx)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        array = context.make_array(aryty)(context, builder, args[0])
        index = context.cast(builder, args[1], idxty, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, array, [index], wraparound=False)
        size = context.get_abi_sizeof(context.get_data_type(aryty.dtype))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        base = builder.bitcast(ptr, i8p)
        for off in ([0, size - 1] if last_byte and size > 1 else [0]):
            at = builder.gep(base, [ir.Constant(ir.IntType(64), off)]) if off else base
            # read, high temporal locality, data cache
            builder.call(fn, [at, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch_record(typingctx, ary, idx):
    """Prefetch every cache line of ``ary[idx]``: its first and its last byte, for
    records that straddle two lines (the book header: 120 bytes)."""
    return _item_prefetcher(ary, idx, True)


@intrinsic
def prefetch(typingctx, ary, idx):
    """Prefetch the cache line of ``ary[idx]`` (a 1-d array) for reading."""
    return _item_prefetcher(ary, idx, False)
