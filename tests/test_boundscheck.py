"""The checked build's bounds checks (``kernels.boundscheck``): the same answers and the
same ``IndexError`` as Numba's own checks, for every index, in a child process (a bad
check would crash it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

PROGRAM = textwrap.dedent('''
    import json, sys
    import numpy as np
    from kernels.jit import kernel
    from kernels import boundscheck

    @kernel(cache=False, boundscheck=True)
    def one(a, i):
        return a[i]

    @kernel(cache=False, boundscheck=True)
    def two(m, i, j):
        return m[i, j]

    @kernel(cache=False, boundscheck=True)
    def store(a, i, v):
        a[i] = v
        return a.sum()

    @kernel(cache=False, boundscheck=True)
    def field(r, i):
        return r[i].x + r[i].y

    @kernel(cache=False, boundscheck=True)
    def chain(a, b, i):
        return a[b[i]]              # the inner index checked, then the outer one

    @kernel(cache=False, boundscheck=True)
    def caught(a, i):
        try:                        # inside try: Numba's own check (the raise is caught)
            return a[i]
        except Exception:
            return -1

    a = np.arange(7, dtype=np.int64) * 3
    m = np.arange(12, dtype=np.float64).reshape(3, 4)
    rec = np.zeros(5, dtype=[("x", np.int64), ("y", np.int32)])
    rec["x"], rec["y"] = np.arange(5), np.arange(5) * 10
    b = np.array([0, 6, 9, -1, -8], dtype=np.int64)

    def run(f, *args):
        try:
            return repr(f(*args))
        except Exception as exc:        # noqa: BLE001 - the answer is the exception
            return f"{type(exc).__name__}: {exc}"

    rng = np.random.default_rng(7)
    out = []
    for i in list(range(-10, 11)) + [2**40, -2**40, 2**63 - 1, -2**63] + list(rng.integers(-50, 50, 200)):
        i = int(i)
        out.append(run(one, a, i))
        out.append(run(store, a.copy(), i, 5))
        out.append(run(field, rec, i))
        out.append(run(caught, a, i))
        out.append(run(two, m, i % 7 - 3, i))
        out.append(run(chain, a, b, i % 9 - 2))
    print(json.dumps({"installed": boundscheck.installed(), "out": out,
                      "exits": one.inspect_llvm(list(one.overloads)[0]).count("index_out_of_bounds:")}))
''')


def _run(fast: str) -> dict:
    env = dict(os.environ, WORKBENCH_SAFE="1", WORKBENCH_FAST_BOUNDSCHECK=fast)
    out = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_shared_exit_answers_as_numbas_own_check():
    fast, numba_own = _run("1"), _run("0")
    assert fast["installed"] and not numba_own["installed"]
    assert fast["out"] == numba_own["out"]
    # both kinds of answer occur: values and the IndexError, with Numba's message
    assert "IndexError: index is out of bounds" in fast["out"]
    assert any(x.lstrip("-").isdigit() for x in fast["out"])
    assert "-1" in fast["out"]                                      # caught inside a kernel
    # one exit block in a function with a checked index (none with Numba's own)
    assert fast["exits"] == 1 and numba_own["exits"] == 0
