"""Fuzzing the FIX kernels with bounds checking compiled in (``WORKBENCH_SAFE=1``).

Safe mode must be chosen before ``kernels`` is imported, so the hypothesis run happens
in a subprocess: random bytes, valid messages with random byte edits, truncations and
splices, both delimiters. Any out-of-bounds read raises ``IndexError`` there; the run
also checks serial == parallel parsing and that every field span lies inside its message.
"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

WORKER = r'''
import numpy as np
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
from kernels.jit import SAFE_MODE
from workbench.fix import build_message, parse
assert SAFE_MODE, "bounds checking is not on"

SEEDS = [
    build_message("D", [(49, "C"), (56, "S"), (34, 2), (52, "20240102-14:30:00.123"), (11, "7"),
                        (55, "AAPL"), (54, "1"), (38, "100"), (40, "2"), (44, "1.5"), (60, "20240102-14:30:00")]),
    build_message("W", [(49, "A"), (56, "B"), (34, 3), (52, "20240102-14:30:00"), (55, "X"), (268, 2),
                        (269, "0"), (270, "1.5"), (271, 10), (269, "1"), (270, "1.6"), (271, 5)]),
    build_message("X", [(49, "A"), (56, "B"), (34, 4), (52, "20240102-14:30:00"), (268, 1),
                        (279, "0"), (269, "2"), (55, "X"), (270, "-0.5"), (271, 1)]),
    build_message("8", [(49, "A"), (56, "B"), (34, 5), (52, "20240102-14:30:00"), (37, "9"), (11, "x"),
                        (17, "1"), (150, "F"), (39, "2"), (55, "X"), (54, "2"), (151, 0), (14, 5), (6, "1.5")]),
]

edit = st.tuples(st.integers(0, 400), st.sampled_from(["flip", "insert", "delete", "cut"]),
                 st.integers(0, 255))

@st.composite
def streams(draw):
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.binary(max_size=300))
    parts = [bytearray(SEEDS[i]) for i in draw(st.lists(st.integers(0, len(SEEDS) - 1), min_size=1, max_size=5))]
    for index, kind, value in draw(st.lists(edit, max_size=4)):
        part = parts[index % len(parts)]
        at = index % (len(part) + 1)
        if kind == "flip" and at < len(part):
            part[at] = value
        elif kind == "insert":
            part[at:at] = bytes([value if value % 3 else 1])
        elif kind == "delete":
            del part[at:at + 1 + value % 8]
        else:
            del part[at:]
    data = b"".join(bytes(p) for p in parts)
    if draw(st.booleans()):
        data = data.replace(b"\x01", b"|")
    return data

@settings(max_examples=int(__import__("sys").argv[1]), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(streams())
def fuzz(data):
    serial = parse(data, parallel=False, symbols=["AAPL", "X"])
    parallel = parse(data, parallel=True, n_chunks=3, symbols=["AAPL", "X"])
    assert np.array_equal(serial.messages, parallel.messages)
    assert np.array_equal(serial.fields, parallel.fields)
    assert np.array_equal(serial.counts, parallel.counts)
    for m in serial.messages:
        f = serial.fields[m["field_first"]:m["field_first"] + m["field_count"]]
        assert np.all((f["start"] >= m["start"]) & (f["end"] < m["end"]) & (f["start"] <= f["end"]))
    serial.events, serial.execution_reports, serial.md_entries
    stream = parse(data, stream=True)
    assert 0 <= stream.consumed <= len(data)

fuzz()
print("fuzz ok")
'''


def test_fuzz_with_bounds_checking():
    # the checked build (the default; kernels.jit caches it apart from the unchecked one)
    env = {**os.environ, "WORKBENCH_SAFE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", WORKER, "150"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fuzz ok" in proc.stdout
