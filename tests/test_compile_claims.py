"""Several processes compiling at once (``kernels.compile_claims``, ``workbench.parallel_compile``):
a claimed signature is compiled by one process and loaded from the cache by the others, a
dead claimer is taken over, concurrent saves of one kernel keep every signature, and
helper processes fill the cache beside the main one."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import REPO

MODULE = textwrap.dedent('''
    import numpy as np
    from kernels.jit import kernel

    @kernel
    def twice(a):
        return a * 2

    @kernel
    def total(a):
        s = a[0] * 0
        for i in range(len(a)):
            s += a[i]
        return s

    def warm():
        twice(21)

    def broken():
        raise RuntimeError("this task fails on purpose")
''')

# run in a child: report what Numba compiled and loaded, and the claims' counters
REPORT = textwrap.dedent('''
    import json, sys
    from numba.core import event
    compiled = []
    class L(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)
        def on_end(self, ev):
            pass
    event.register("numba:compile", L())
    from kernels import compile_claims
    import claimmod
''')


def _env(tmp_path, **extra):
    env = dict(os.environ)
    env.update({"NUMBA_CACHE_DIR": str(tmp_path / "cache"),
                "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
                "WORKBENCH_PARALLEL_COMPILE": "1"})
    env.update(extra)
    return env


def _setup(tmp_path):
    (tmp_path / "claimmod.py").write_text(MODULE)
    claims = tmp_path / "claims"
    claims.mkdir()
    return claims


def _key(tmp_path, name, types_text):
    code = REPORT + f"from numba import types\nprint(compile_claims.claim_key(claimmod.{name}, {types_text}))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path),
                          capture_output=True, text=True, check=True).stdout.strip()


def _waiter(tmp_path, claims):
    code = REPORT + textwrap.dedent(f'''
        compile_claims.activate({str(claims)!r}, timeout=120)
        value = claimmod.twice(21)
        print(json.dumps({{"value": value, "compiled": compiled, "stats": compile_claims.stats()}}))
    ''')
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_claimed_kernel_is_loaded_from_the_cache_not_compiled_again(tmp_path):
    import json

    claims = _setup(tmp_path)
    key = _key(tmp_path, "twice", "(types.int64,)")
    (claims / f"{key}.claim").write_text(str(os.getpid()))      # this test is the claimer
    waiter = _waiter(tmp_path, claims)
    time.sleep(1.5)
    assert waiter.poll() is None, waiter.communicate()          # it waits for the claim
    # the "claimer" compiles it into the shared cache, then says done
    subprocess.run([sys.executable, "-c", "import claimmod; claimmod.twice(21)"], cwd=REPO,
                   env=_env(tmp_path), check=True)
    (claims / f"{key}.done").write_text("")
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["value"] == 42
    assert report["compiled"] == []                              # loaded, not compiled
    assert report["stats"]["waited"] == 1 and report["stats"]["took_over"] == 0


def test_a_dead_claimer_is_taken_over(tmp_path):
    import json

    claims = _setup(tmp_path)
    key = _key(tmp_path, "twice", "(types.int64,)")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (claims / f"{key}.claim").write_text(str(gone.pid))         # a claimer that died
    waiter = _waiter(tmp_path, claims)
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["value"] == 42
    assert report["compiled"] == ["twice"]                       # compiled it itself
    assert report["stats"]["took_over"] == 1


def test_a_claimer_that_died_unreaped_is_taken_over(tmp_path):
    """A helper that dies stays a zombie until the process that started it reaps it, and
    that process may be the very one waiting on its claim: the waiter reads the process
    state (``kernels.processes.pid_alive``), not just whether the id still exists, and
    takes over at once instead of at the end of its timeout."""
    import json

    claims = _setup(tmp_path)
    key = _key(tmp_path, "twice", "(types.int64,)")
    code = REPORT + textwrap.dedent(f'''
        import subprocess, time
        child = subprocess.Popen([sys.executable, "-c", "pass"])   # never waited for
        while open(f"/proc/{{child.pid}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        open({str(claims / (key + ".claim"))!r}, "w").write(str(child.pid))
        compile_claims.activate({str(claims)!r}, timeout=600)
        value = claimmod.twice(21)
        print(json.dumps({{"value": value, "compiled": compiled, "stats": compile_claims.stats()}}))
    ''')
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc to see a zombie")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["value"] == 42 and report["compiled"] == ["twice"]
    assert report["stats"]["took_over"] == 1
    assert report["stats"]["wait_seconds"] < 60        # not the 600 s timeout


def test_concurrent_saves_of_one_kernel_keep_every_signature(tmp_path):
    """Two processes compile different signatures of one kernel at the same time; a
    third finds every one of them in the cache, each giving its own type's result."""
    import json

    _setup(tmp_path)
    dtypes = ["int64", "float64", "int32", "float32", "int16", "uint32", "uint16", "int8"]
    code = textwrap.dedent('''
        import sys, time, numpy as np, claimmod
        start = float(sys.argv[1])
        while time.time() < start:
            time.sleep(0.001)
        for name in sys.argv[2:]:
            claimmod.total(np.arange(10, dtype=name))
    ''')
    start = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), *dtypes[i::2]], cwd=REPO,
                              env=_env(tmp_path)) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    check = REPORT + textwrap.dedent(f'''
        import numpy as np
        values = [repr(claimmod.total(np.arange(10, dtype=name))) for name in {dtypes!r}]
        print(json.dumps({{"values": values, "compiled": compiled,
                           "loaded": sum(claimmod.total._cache_hits.values())}}))
    ''')
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=_env(tmp_path),
                         capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["compiled"] == [] and report["loaded"] == len(dtypes)
    assert report["values"] == [repr(v) for v in
                                (45, 45.0, 45, 45.0, 45, 45, 45, 45)]


def test_helpers_fill_the_cache_beside_the_main_process(tmp_path):
    import json

    _setup(tmp_path)
    code = textwrap.dedent('''
        from workbench import parallel_compile
        with parallel_compile.helpers(["claimmod:warm", "claimmod:broken"], jobs=3) as procs:
            started = len(procs)
        print(started, sorted(p.returncode for p in procs))
    ''')
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "[0,", "1]"]          # the failing task fails alone
    check = REPORT + "claimmod.twice(21)\nprint(json.dumps(compiled))"
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=_env(tmp_path),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []      # the helper compiled it


def test_helpers_refuse_a_malformed_task_and_start_none_when_off(tmp_path):
    from workbench import parallel_compile

    with pytest.raises(ValueError, match="module:function"):
        with parallel_compile.helpers(["no-colon"], jobs=2):
            pass
    with parallel_compile.helpers(["claimmod:warm"], jobs=1) as procs:
        assert procs == []
    assert parallel_compile.enabled(2)
    assert not parallel_compile.enabled(1)


def test_a_cold_itch_check_compiles_each_kernel_once_across_its_two_processes(tmp_path):
    """What a cold ``itch-check`` splits between its processes is what the check itself
    runs: after ``compile_book_calls`` (the main process's share) and ``precompile_replay``
    (the helper's), checking a real file compiles nothing more, and no kernel was compiled
    twice (a signature that differed from the check's would be a second compile, and on a
    new machine a wasted one). In a child with an empty cache."""
    from tests.conftest import shared_path

    sample = shared_path("itch", "ex20101224.TEST_ITCH_50.lenprefixed.gz")
    code = REPORT.replace("import claimmod\n", "") + textwrap.dedent(f'''
        from collections import Counter
        from workbench import parallel_compile
        from workbench.data import itch
        parallel_compile.compile_book_calls(list(parallel_compile._BOOK_CALLS))
        itch.precompile_replay()
        before = len(compiled)
        result = itch.check({str(sample)!r})
        print(json.dumps({{"counts": Counter(compiled), "during_check": compiled[before:],
                          "books": result["books"]}}))
    ''')
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["books"] == 3
    assert "replay" not in report["during_check"]
    from kernels import book as kbook

    book_kernels = {n for n, v in vars(kbook).items()
                    if getattr(getattr(v, "py_func", None), "__module__", "") == "kernels.book"}
    assert "_add" in book_kernels and "level_for" in book_kernels
    assert not book_kernels & set(report["during_check"])     # the book came from the cache
    counts = report["counts"]
    for name in ("_add", "_cancel", "_execute", "_modify", "_rest_replayed", "clear_book",
                 "clear_others", "replay"):
        assert counts.get(name) == 1, (name, counts.get(name))
