"""Architecture rule 1: ``kernels`` imports only numpy, numba, llvmlite and the stdlib."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("polars", "bokeh", "ipywidgets", "yfinance", "pandas", "workbench", "jupyter_bokeh")
ALLOWED_THIRD_PARTY = {"numpy", "numba", "llvmlite"}


def test_importing_kernels_pulls_in_no_python_layer_package():
    code = (
        "import sys, pkgutil, importlib, kernels\n"
        "for m in pkgutil.walk_packages(kernels.__path__, 'kernels.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [n for n in {FORBIDDEN!r} if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"kernels imported: {out.stdout.strip()}"


def test_kernels_source_imports_only_allowed_modules():
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in (REPO / "kernels").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in ALLOWED_THIRD_PARTY and top != "kernels":
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []
