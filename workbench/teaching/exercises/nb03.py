"""Checkers of notebook 03-memory-and-cache.

The exercises compute access orders and cache-line counts, which are exact: they are
checked against plain-Python references, never against a timing.
"""
from __future__ import annotations

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict


# --------------------------------------------------------------------------- 03.1
def _stride_reference(n: int, stride: int) -> list[int]:
    """Pass r visits r, r + stride, r + 2 x stride, ... below n; passes r = 0 .. stride-1."""
    return [i for r in range(stride) for i in range(r, n, stride)]


@exercise("03.1", hint="np.concatenate([np.arange(r, n, stride) for r in range(stride)]): pass r starts at element r; every element exactly once")
def check_stride_order(stride_order) -> Verdict:
    """Exercise 03.1: ``stride_order(n, stride)`` returns the indices ``0 .. n-1`` in
    stride order, each exactly once: ``0, stride, 2 x stride, ...``, then the next pass
    from 1, then from 2, ... (the access order of a fair stride experiment: the same
    elements summed as the sequential and random rows, only the order differs). Tried
    with n a multiple of the stride or not, a stride of 1, and a stride larger than n."""
    import numpy as np

    for n, stride in ((16, 1), (16, 4), (4_096, 16), (17, 4), (1_001, 8), (10, 16), (64, 64),
                      (1, 3)):
        got, why = _attempt(stride_order, n, stride)
        where = f"stride_order({n}, {stride})"
        if why:
            return _verdict(False, f"{where}: {why}")
        try:
            mine = [int(x) for x in np.asarray(got).ravel()]
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return an array of indices, not {got!r}"[:200])
        expected = _stride_reference(n, stride)
        if mine == expected:
            continue
        counts = np.bincount([i for i in mine if 0 <= i < n], minlength=n) if mine else np.zeros(n, int)
        outside = [i for i in mine if not 0 <= i < n]
        if outside:
            return _verdict(False, f"{where}: index {outside[0]} is outside the array (0 .. {n - 1})")
        if len(mine) != n or counts.max() != 1:
            never = int(np.count_nonzero(counts == 0))
            twice = int(np.count_nonzero(counts > 1))
            msg = (f"{where}: {len(mine)} indices; {never} element(s) never visited and "
                   f"{twice} visited more than once")
            if twice and mine[:3] == [0, stride % n, (2 * stride) % n]:
                msg += (": (i x stride) % n keeps landing on the same elements, so that row sums "
                        "fewer distinct elements (a smaller working set, in cache) than the others; "
                        "start each new pass one element further on")
            return _verdict(False, msg)
        first = next(k for k, (a, b) in enumerate(zip(mine, expected)) if a != b)
        return _verdict(False, f"{where}: every element once, but not in stride order: at step "
                               f"{first} you visit {mine[first]}, stride order visits "
                               f"{expected[first]} (passes start at 0, 1, 2, ...)")
    return _verdict(True, "every element exactly once, in stride order, whatever n and the "
                          "stride: now every row of the experiment does the same work")


# --------------------------------------------------------------------------- 03.2
def _lines_reference(dtype, fields, n: int, line_bytes: int) -> int:
    lines = set()
    for i in range(n):
        for name in fields:
            sub, offset = dtype.fields[name][:2]
            start = i * dtype.itemsize + offset
            lines.update(range(start // line_bytes, (start + sub.itemsize - 1) // line_bytes + 1))
    return len(lines)


def _line_cases():
    import numpy as np

    from kernels.records import ORDER

    wide = np.dtype([("price", "<i8"), ("pad", "u1", (112,)), ("qty", "<i8")])  # 128 bytes
    odd = np.dtype([("head", "u1", (60,)), ("z", "<i8"), ("tail", "u1", (4,))])  # z at byte 60
    pair = np.dtype([("price", "<i8"), ("qty", "<i8")])                         # 16 bytes
    column = np.dtype([("price", "<i8")])                                       # a SoA column
    return (
        ("ORDER (64 bytes), price and qty", ORDER, ("price", "qty"), 1_000, 64),
        ("ORDER, price only", ORDER, ("price",), 1_000, 64),
        ("a 128-byte record, price only", wide, ("price",), 500, 64),
        ("a 128-byte record, price and qty", wide, ("price", "qty"), 500, 64),
        ("a 16-byte (price, qty) record", pair, ("price", "qty"), 1_000, 64),
        ("a price column", column, ("price",), 1_001, 64),
        ("a packed 72-byte record, z at byte 60 (it may straddle two lines)", odd, ("z",), 640, 64),
        ("ORDER, 128-byte lines", ORDER, ("price",), 999, 128),
        ("no records", ORDER, ("price",), 0, 64),
    )


@exercise("03.2", hint="record i starts at byte i x itemsize; a field spans bytes [start + offset, start + offset + size - 1]; add every line index (byte // line_bytes) from its first byte to its last to a set")
def check_lines_touched(lines_touched) -> Verdict:
    """Exercise 03.2: ``lines_touched(dtype, fields, n, line_bytes=64)`` counts the
    distinct cache lines a loop reading ``fields`` of records ``0 .. n-1`` of a packed
    array of ``dtype`` (starting on a line boundary) brings in: every line that holds a
    byte of a field read. It explains the AoS/SoA table: bytes moved per record are
    ``lines x line_bytes / n``. Tried on ``ORDER``, records wider than a line, narrow
    records, a single column, a field straddling two lines and 128-byte lines."""
    for name, dtype, fields, n, line in _line_cases():
        got, why = _attempt(lines_touched, dtype, fields, n, line)
        where = f"{name}, n={n:,}" + ("" if line == 64 else f", {line}-byte lines")
        if why:
            return _verdict(False, f"{where}: {why}. Hint: dtype.fields[name] is (dtype, offset)")
        if isinstance(got, bool) or not isinstance(got, (int, float)) or got != int(got):
            return _verdict(False, f"{where}: return a whole number of lines, not {got!r}")
        got = int(got)
        expected = _lines_reference(dtype, fields, n, line)
        if got == expected:
            continue
        whole = -(-n * dtype.itemsize // line)
        useful = n * sum(dtype.fields[f][0].itemsize for f in fields)
        msg = f"{where}: you count {got:,} lines, the loop touches {expected:,}"
        if got == whole and whole != expected:
            msg += (" (you counted every line of the array: a line none of whose bytes is read "
                    "is never fetched)")
        elif got in (useful // line, -(-useful // line)):
            msg += (" (you divided the bytes read by the line size, as if the fields were packed "
                    "together: a line comes in whole, with the fields you do not read)")
        elif got < expected:
            msg += " (a field that crosses a line boundary needs both lines)"
        return _verdict(False, msg)
    return _verdict(True, "exact line counts: an ORDER costs a whole 64-byte line for 16 useful "
                          "bytes (AoS), a column only the bytes it holds (SoA)")
