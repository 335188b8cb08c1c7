"""``build_info()``: what this process runs - versions, the CPU LLVM compiles for, the mode.

One dictionary for every report that has to say what produced its numbers (the bench
JSON, ``python -m workbench info``, notebooks): the workbench, Numba, llvmlite, NumPy
and Python versions; the host CPU as LLVM sees it (name and enabled features: what the
kernels are compiled for); the safety mode and its layers (``workbench.modes.report``:
validation, bounds-checked build or not, the journal's default policy, risk checks);
the CRC32C implementation the journal uses; Numba's cache directory.
"""
from __future__ import annotations

import platform
import sys

__all__ = ["build_info", "CPU_HIGHLIGHTS"]

# the features worth a glance (the full list is in ``cpu_features``)
CPU_HIGHLIGHTS = ("sse4.2", "popcnt", "bmi2", "lzcnt", "avx2", "fma", "avx512f", "avx512bw",
                  "avx512vl", "crc32")


def build_info(mode=None) -> dict:
    """Versions, CPU, safety mode (``workbench.modes.mode(mode)``) and journal policy."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    import numpy as np

    import workbench
    from kernels import journal as kj
    from workbench import modes

    features = llvm.get_host_cpu_features()
    enabled = sorted(name for name, on in features.items() if on)
    safety = modes.report(mode)
    return {
        "workbench": workbench.__version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "llvm": ".".join(map(str, llvm.llvm_version_info)),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_name": llvm.get_host_cpu_name(),
        "cpu_highlights": [f for f in CPU_HIGHLIGHTS if f in enabled],
        "cpu_features": enabled,
        "mode": safety["mode"],
        "safety": safety,
        "bounds_checks": safety["bounds_checks"],
        "journal_policy": safety["journal_policy"],
        "journal_crc32c": "sse4.2" if kj.HW_CRC32C else "slicing-by-8",
        "numba_cache_dir": numba.config.CACHE_DIR or "(next to the sources: __pycache__)",
        "executable": sys.executable,
    }
