"""Reference counts between kernels: the demonstration of notebook 16 (section 3).

Numba's runtime (NRT) counts references to every array a compiled function is given: a
kernel that is called from another one (and not inlined) increments the count of each
array argument on the way in and decrements it on the way out, one atomic update each,
even when the caller owns the array for the whole call. ``kernels.book`` passes its whole
state (nine arrays) at every call between its kernels, which is why its internal kernels
are compiled without the runtime (``kernels.jit.kernel(nrt=False)``, ``kernels.book``'s
docstring, "Calls on the hot path").

Owns one helper compiled twice, differing only in that option, and one caller loop per
helper:

* :data:`lookup_counted` / :func:`loop_counted`: the helper compiled with the runtime;
* :data:`lookup_borrowed` / :func:`loop_borrowed`: the same helper with ``nrt=False``.

The helper, :func:`_lookup`, takes nine arrays (the book's state has nine): a key index
and eight columns. It looks a key up (a probing loop: control flow Numba's own pruning of
reference counts cannot see through, as in the book's kernels) and combines four rows;
it is big enough that LLVM keeps it a call rather than inlining it into the loop (with a
smaller body it inlines the ``nrt=False`` copy, and the comparison would measure inlining
too). The callers keep the runtime (they are called from Python, like the book's entry
points) and check the arrays they hand on; their own arguments are counted once per call
from Python, not per call of the helper.

Every kernel here is compiled with ``cache=False``: the lesson reads their LLVM IR
(``dispatcher.inspect_llvm()``, ``workbench.asm.refcount_calls``), and Numba cannot show
the IR of code loaded from its on-disk cache; compiling these four small functions costs
about two seconds per process.
"""
from __future__ import annotations

from .jit import kernel

__all__ = ["lookup_counted", "lookup_borrowed", "loop_counted", "loop_borrowed", "ROWS"]

ROWS = 4   # rows the helper combines from the slot it finds


def _lookup(s0, s1, s2, s3, s4, s5, s6, s7, s8, i):
    """Look key ``i mod len`` up in ``s0``, an open-addressing index (linear probing from
    slot ``key``; a negative entry is an empty slot), and combine the ``ROWS`` rows of the
    eight other arrays from the slot found on (wrapping around the end): per row
    ``s1*s2 - s3*s4 + max(s5, s6) - min(s7, s8)``. 0 when the key is absent. Trusts its
    caller: the nine arrays have one length, a power of two."""
    mask = s0.shape[0] - 1
    key = i & mask
    r = key
    for _ in range(mask + 1):
        if s0[r] == key:
            total = 0
            for d in range(ROWS):
                q = (r + d) & mask
                total += s1[q] * s2[q] - s3[q] * s4[q] + max(s5[q], s6[q]) - min(s7[q], s8[q])
            return total
        if s0[r] < 0:
            break
        r = (r + 1) & mask
    return 0


lookup_counted = kernel(_lookup, cache=False)               # with Numba's runtime
lookup_borrowed = kernel(_lookup, cache=False, nrt=False)   # without: no reference counts


def _loop_over(helper, name: str, doc: str):
    """The caller loop of ``helper``: the sum of ``helper(s0, ..., s8, i)`` for ``i`` in
    ``range(n_calls)``, ``ValueError`` unless the nine arrays have one length, a power of
    two (the helper trusts its caller). One source for both loops, so they differ only in
    the helper they call; each is its own compiled function, named ``name``."""
    def loop(s0, s1, s2, s3, s4, s5, s6, s7, s8, n_calls):
        n = s0.shape[0]
        if n == 0 or n & (n - 1) or not (s1.shape[0] == s2.shape[0] == s3.shape[0]
                                         == s4.shape[0] == s5.shape[0] == s6.shape[0]
                                         == s7.shape[0] == s8.shape[0] == n):
            raise ValueError("the nine arrays must have one length, a power of two")
        total = 0
        for i in range(n_calls):
            total += helper(s0, s1, s2, s3, s4, s5, s6, s7, s8, i)
        return total

    loop.__name__ = loop.__qualname__ = name   # the compiled symbol's name (asm.refcount_calls)
    loop.__doc__ = doc
    return kernel(loop, cache=False)


loop_counted = _loop_over(
    lookup_counted, "loop_counted",
    "Sum of ``lookup_counted(s0, ..., s8, i)`` for ``i`` in ``range(n_calls)``: each call "
    "passes nine arrays to a helper compiled with the runtime.")
loop_borrowed = _loop_over(
    lookup_borrowed, "loop_borrowed",
    ":func:`loop_counted` calling the helper compiled without the runtime "
    "(``lookup_borrowed``): the same result, no reference counting per call.")
