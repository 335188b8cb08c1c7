"""The kernel factory: safe mode switch and its separate cache."""
from __future__ import annotations

import subprocess
import sys

from kernels.jit import safe_mode_enabled
from tests.conftest import REPO


def test_safe_mode_flag_parsing():
    # ProductionSafe is the default: the checked build unless LabUnsafe is asked for
    assert safe_mode_enabled({})
    assert safe_mode_enabled({"WORKBENCH_MODE": "safe"})
    assert not safe_mode_enabled({"WORKBENCH_MODE": "lab"})
    assert not safe_mode_enabled({"WORKBENCH_MODE": "Lab-Unsafe"})
    # WORKBENCH_SAFE, when set, decides outright
    assert not safe_mode_enabled({"WORKBENCH_SAFE": "0"})
    assert not safe_mode_enabled({"WORKBENCH_SAFE": "off", "WORKBENCH_MODE": "safe"})
    assert safe_mode_enabled({"WORKBENCH_SAFE": "1", "WORKBENCH_MODE": "lab"})
    assert safe_mode_enabled({"WORKBENCH_SAFE": "yes"})


def test_lab_names_agree_with_the_modes_module():
    """``kernels`` may not import ``workbench``: its list of LabUnsafe spellings is a copy,
    kept equal to the one ``workbench.modes`` parses."""
    from kernels.jit import LAB_MODE_NAMES
    from workbench import modes

    assert LAB_MODE_NAMES == {k for k, v in modes._NAMES.items() if v == "LAB"}
    for name in LAB_MODE_NAMES:
        assert modes.mode(name) is modes.LabUnsafe
        assert not safe_mode_enabled({"WORKBENCH_MODE": name})


def test_safe_mode_checks_bounds_and_caches_apart(tmp_path):
    code = (
        "import numpy as np, numba\n"
        "from kernels.jit import kernel, SAFE_MODE\n"
        "@kernel\n"
        "def read(a, i):\n"
        "    return a[i]\n"
        "try:\n"
        "    read(np.zeros(3), 10)\n"
        "    print('no-error', SAFE_MODE, numba.config.CACHE_DIR)\n"
        "except IndexError:\n"
        "    print('index-error', SAFE_MODE, numba.config.CACHE_DIR)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "WORKBENCH_SAFE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[:2] == ["index-error", "True"]
    assert out[2] == str(tmp_path / "cache" / "numba-safe")


def test_an_edit_invalidates_the_cached_kernels_that_depend_on_it(tmp_path):
    """Numba checks a cached kernel against its own file only; ``kernels.jit`` deletes
    the caches of every module that imports an edited one (here: ``order_index`` is
    imported by ``book`` and ``backtest.l3`` through it, not by ``fix.frame``)."""
    import shutil

    pkg = tmp_path / "kernels"
    shutil.copytree(REPO / "kernels", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    # the unchecked build, whose cache sits beside the sources (Numba's own layout)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(tmp_path),
           "WORKBENCH_MODE": "lab"}
    probe = [sys.executable, "-c", "import kernels.jit as j; print(j.INVALIDATED_AT_IMPORT)"]
    subprocess.run(probe, env=env, cwd=tmp_path, check=True, capture_output=True)
    fakes = {m: pkg / sub / "__pycache__" / f"{stem}.kernel-1.py311.1.nbc"
             for m, sub, stem in [("book", "", "book"), ("l3", "backtest", "l3"),
                                  ("frame", "fix", "frame"), ("clock", "", "clock")]}
    for f in fakes.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"cached")
    out = subprocess.run(probe, env=env, cwd=tmp_path, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]" and all(f.exists() for f in fakes.values())
    with open(pkg / "order_index.py", "a") as fh:
        fh.write("\n# an edit\n")
    out = subprocess.run(probe, env=env, cwd=tmp_path, check=True, capture_output=True, text=True)
    stale = eval(out.stdout.strip())  # noqa: S307 - our own list of module names
    assert {"order_index", "book", "backtest.l3"} <= set(stale)
    assert "fix.frame" not in stale and "clock" not in stale
    assert not fakes["book"].exists() and not fakes["l3"].exists()
    assert fakes["frame"].exists() and fakes["clock"].exists()


def test_cache_dir_of_finds_numbas_layout_under_numba_cache_dir(tmp_path):
    """With NUMBA_CACHE_DIR set, Numba keeps a source directory's caches in
    ``<dir name>_<sha1 of its path>``: the invalidation must look exactly there."""
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from kernels import jit, clock\n"
            "out = np.zeros(len(clock.PROBE_FIELDS), dtype=np.int64)\n"
            "clock.clock_probe(10, 1000, out)\n"
            "d = jit._cache_dir_of('clock')\n"
            "print(sorted(p.name.split('.')[0] for p in d.glob('clock.*.nbi')))\n")
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['clock']"


def test_a_kernel_called_from_kernels_compiles_once_for_all_call_sites():
    """Constants and narrow integers passed by other kernels do not multiply a callee's
    compiled copies (``kernels.jit._one_signature_per_type``), and the results are the
    plain-Python ones (the caller widens, never narrows)."""
    import numpy as np

    from kernels.jit import kernel

    @kernel(cache=False)
    def callee(a, b, c):
        return a * 1_000 + b - c

    @kernel(cache=False)
    def caller(small, mid):
        return (callee(small[0], 1, -1), callee(mid[0], small[1], 7), callee(0, 0, mid[1]),
                callee(np.int16(-300), mid[0], small[0]))

    small = np.array([-128, 127], dtype=np.int8)
    mid = np.array([2_000_000_000, -5], dtype=np.int32)

    def plain(a, b, c):
        return int(a) * 1_000 + int(b) - int(c)

    expect = (plain(-128, 1, -1), plain(2_000_000_000, 127, 7), plain(0, 0, -5),
              plain(-300, 2_000_000_000, -128))
    assert caller(small, mid) == expect
    assert len(callee.signatures) == 1, callee.signatures
    assert "Literal" not in str(callee.signatures[0])
