"""The checked build's bounds checks, emitted as one compare and one shared exit per kernel.

Every array index in the checked build (``kernels.jit``: the ProductionSafe default) is
bounds-checked by Numba's ``numba.core.cgutils.do_boundscheck``, which emits, per index,
two signed compares (``i >= n``, ``i < 0``) and two blocks that each build and return an
``IndexError``. The kernels index arrays thousands of times (the book's pool, levels and
index; the backtest's rings and logs), so those raise blocks were a tenth of a cold
compile: Numba lowers each one and LLVM optimizes and codegens each one.

:func:`install` replaces it with the equivalent check most compilers emit: one unsigned
compare (``i`` read as unsigned is ``>= n`` exactly when ``i < 0`` or ``i >= n``, since
an array's length is never negative) and a branch, marked unlikely, to *one* block per
function that raises the same ``IndexError("index is out of bounds")``. Same exception,
same message, same place it is raised from; less code to compile and one compare fewer
on each checked access.

It defers to Numba's own version whenever that one would behave differently:
``NUMBA_FULL_TRACEBACKS`` (which prints the index before raising), an index inside a
``try`` block (whose raise branches to the handler), or operands of different widths.
``WORKBENCH_FAST_BOUNDSCHECK=0`` turns it off. ``tests/test_boundscheck.py`` checks the
raised errors and results against the unpatched build in a child process.
"""
from __future__ import annotations

import os

__all__ = ["install", "installed"]

_INSTALLED = False
_MSG = "index is out of bounds"
_ATTR = "_workbench_oob_block"


def _shared_exit(context, builder):
    """The function's one IndexError exit, created on first use."""
    from llvmlite import ir

    fn = builder.function
    block = getattr(fn, _ATTR, None)
    if block is None:
        block = fn.append_basic_block("index_out_of_bounds")
        context.call_conv.return_user_exc(ir.IRBuilder(block), IndexError, (_MSG,))
        setattr(fn, _ATTR, block)
    return block


def install() -> bool:
    """Route Numba's bounds checks through :func:`_check` (module docstring)."""
    global _INSTALLED
    if _INSTALLED:
        return True
    if os.environ.get("WORKBENCH_FAST_BOUNDSCHECK", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        from numba.core import cgutils, config
    except ImportError:
        return False
    original = getattr(cgutils, "do_boundscheck", None)
    if original is None:
        return False

    def do_boundscheck(context, builder, ind, dimlen, axis=None):
        if (config.FULL_TRACEBACKS or getattr(builder, "_in_try_block", False)
                or ind.type != dimlen.type or not hasattr(builder.function, "append_basic_block")):
            return original(context, builder, ind, dimlen, axis)
        bad = builder.icmp_unsigned(">=", ind, dimlen)
        ok = builder.append_basic_block("index_ok")
        branch = builder.cbranch(bad, _shared_exit(context, builder), ok)
        branch.set_weights([1, 99])
        builder.position_at_end(ok)

    do_boundscheck.__wrapped__ = original
    do_boundscheck.__doc__ = original.__doc__
    cgutils.do_boundscheck = do_boundscheck
    _INSTALLED = True
    return True


def installed() -> bool:
    return _INSTALLED
