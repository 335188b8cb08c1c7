"""The kernel factory: safe mode switch and its separate cache."""
from __future__ import annotations

import subprocess
import sys

from kernels.jit import safe_mode_enabled
from tests.conftest import REPO


def test_safe_mode_flag_parsing():
    assert not safe_mode_enabled({})
    assert not safe_mode_enabled({"WORKBENCH_SAFE": "0"})
    assert not safe_mode_enabled({"WORKBENCH_SAFE": "off"})
    assert safe_mode_enabled({"WORKBENCH_SAFE": "1"})
    assert safe_mode_enabled({"WORKBENCH_SAFE": "yes"})


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
