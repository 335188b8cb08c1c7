"""The offline lab bundle: ``make wheelhouse`` collects the package and every dependency of
the ``[lab]`` extra as wheels; a machine with no network installs the lab from it alone.

The test installs into a fresh venv with ``--no-index`` (pip never looks at an index), no
pip cache and every proxy pointed at a closed local port, so a download attempt would
fail rather than quietly succeed. ``make test`` builds ``wheelhouse/`` beside the tests
(cheap when it is up to date) and this test waits for it; a plain ``pytest`` run without a
wheelhouse skips with the reason.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "NUMBA_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    dead = f"http://127.0.0.1:{_closed_port()}"
    env.update({
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
        "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
        "ALL_PROXY": dead, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
    })
    return env


def _wait_for_the_build() -> None:
    """``make test`` builds the wheelhouse beside the tests (it waits on the network, they on
    the CPU) and names the file its exit status lands in: wait for it, fail on a failure."""
    rc_name = os.environ.get("WORKBENCH_WHEELHOUSE_RC")
    if not rc_name:
        return
    rc_file = ROOT / rc_name
    deadline = time.monotonic() + 1200
    while not rc_file.is_file() or not rc_file.read_text().strip():
        if time.monotonic() > deadline:
            pytest.fail("the wheelhouse build beside the tests did not finish within 20 min")
        time.sleep(1)
    rc = rc_file.read_text().strip()
    if rc != "0":
        log = ROOT / ".wheelhouse.log"
        tail = log.read_text()[-3000:] if log.is_file() else "(no log)"
        pytest.fail(f"make wheelhouse failed (exit {rc}):\n{tail}")


def test_the_lab_installs_offline_from_the_wheelhouse(tmp_path):
    _wait_for_the_build()
    wheels = sorted(WHEELHOUSE.glob("*.whl")) if WHEELHOUSE.is_dir() else []
    if not (WHEELHOUSE / ".package-stamp").is_file() or not any(
            w.name.startswith("hft_workbench-") for w in wheels):
        pytest.skip("no wheelhouse/ beside the checkout: `make wheelhouse` builds it "
                    "(`make test` does so first; plain pytest does not)")
    assert not [p for p in WHEELHOUSE.iterdir() if p.suffix not in (".whl",) and p.name[0] != "."], \
        "the wheelhouse must hold wheels only: a student machine cannot build an sdist offline"

    venv = tmp_path / "lab-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")
    env = _offline_env(tmp_path)

    def run(*args, timeout=600):
        return subprocess.run([str(python), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout)

    # --no-compile: skip writing .pyc files for thousands of modules (CPU only, not the point)
    install = run("-m", "pip", "install", "--no-index", "--find-links", str(WHEELHOUSE), "--no-compile",
                  "hft-workbench[lab]")
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # what the notebooks import is there, from the new venv (not from this checkout) ...
    probe = run("-c", "import json, importlib, workbench, kernels\n"
                      "mods = ['numba', 'polars', 'pyarrow', 'bokeh', 'ipywidgets', 'jupyter_bokeh', "
                      "'tqdm', 'yfinance', 'databento_dbn', 'jupyterlab', 'ipykernel', 'dask.distributed', "
                      "'redis', 'workbench.backtest', 'workbench.live', 'workbench.fix', 'workbench.widgets']\n"
                      "for m in mods: importlib.import_module(m)\n"
                      "dev = []\n"
                      "for m in ['pytest', 'playwright', 'quickfix', 'hypothesis', 'nbmake']:\n"
                      "    try: importlib.import_module(m); dev.append(m)\n"
                      "    except ImportError: pass\n"
                      "print(json.dumps({'workbench': workbench.__file__, 'kernels': kernels.__file__, "
                      "'dev': dev}))")
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    for name in ("workbench", "kernels"):
        assert Path(found[name]).resolve().is_relative_to(venv.resolve()), found
    assert found["dev"] == [], f"[lab] pulled in development tools: {found['dev']}"

    # ... the embedded samples came inside the wheel (the lessons' offline data) ...
    sample = run("-c", "from workbench.data.samples import load_sample_events\n"
                       "print(len(load_sample_events()))")
    assert sample.returncode == 0 and int(sample.stdout.split()[-1]) > 1000, sample.stderr[-3000:]
    # ... the command line runs, and JupyterLab is installed
    info = run("-m", "workbench", "info", "--json")
    assert info.returncode == 0, info.stderr[-3000:]
    facts = json.loads(info.stdout)
    assert Path(facts["executable"]).parent.parent.resolve() == venv.resolve()
    lab = run("-m", "jupyterlab", "--version")
    assert lab.returncode == 0 and lab.stdout.strip()[:1].isdigit(), lab.stderr[-2000:]
