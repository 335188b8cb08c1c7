"""``python -m workbench warmup``: compiles the kernels into Numba's on-disk cache, and a
second run finds them there.

A full cold warm-up compiles every kernel (minutes on two cores), so the test runs two
cheap groups only, in a subprocess with an empty ``NUMBA_CACHE_DIR`` of its own: the first
run must compile (and say so), the second must load everything from the cache (and
compile nothing). The counts come from Numba itself, not from the warm-up's own claims:
the test checks them against the cache files the first run wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import cli
from workbench.warmup import GROUPS, parse_only

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["histogram", "lessons"]        # clocks, histograms, recorders; the memory-access kernels


def _warmup(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SAFE", "PYTHONPATH")}
    env["NUMBA_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "workbench", "warmup", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_second_run_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    first = _warmup(cache, "--only", ",".join(reversed(CHEAP)), "--json", "--no-progress",
                    "--jobs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    cold = json.loads(first.stdout)
    assert list(cold["groups"]) == CHEAP                    # run in the groups' own order
    for name in CHEAP:
        g = cold["groups"][name]
        assert g["compiled"] > 0 and "error" not in g and g["seconds"] > 0, (name, g)
    assert cold["ok"] and cold["not_cached"] is None        # a partial run lists nothing missing
    assert cold["compiled"] == sum(g["compiled"] for g in cold["groups"].values())
    # what it says it compiled is on disk: one index file per compiled kernel at least
    written = list(cache.rglob("*.nbi"))
    assert written and len(list(cache.rglob("*.nbc"))) == cold["compiled"]

    second = _warmup(cache, "--only", ",".join(CHEAP), "--json", "--no-progress", "--jobs", "1")
    assert second.returncode == 0, second.stderr[-3000:]
    warm = json.loads(second.stdout)
    for name in CHEAP:
        g = warm["groups"][name]
        assert g["compiled"] == 0 and g["cached"] > 0, (name, g)
    assert sorted(cache.rglob("*.nbi")) == sorted(written)  # nothing new was compiled


def test_groups_run_in_several_processes_compile_each_kernel_once(tmp_path):
    """``--jobs 2``: the groups are shared between this process and a helper, a kernel
    is compiled by one of them (the compile claims), and every group reports; a second
    run, in one process, finds everything in the cache."""
    cache = tmp_path / "numba-cache"
    first = _warmup(cache, "--only", ",".join(CHEAP), "--json", "--no-progress", "--jobs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    cold = json.loads(first.stdout)
    assert list(cold["groups"]) == CHEAP and cold["ok"]
    for name in CHEAP:
        g = cold["groups"][name]
        assert "error" not in g and g["seconds"] > 0 and g["compiled"] + g["cached"] > 0, (name, g)
    # each compiled signature was compiled once: one data file each, none twice
    assert cold["compiled"] > 0 and len(list(cache.rglob("*.nbc"))) == cold["compiled"]
    second = _warmup(cache, "--only", ",".join(CHEAP), "--json", "--no-progress", "--jobs", "1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["compiled"] == 0


def test_unknown_groups_are_one_line_errors(capsys):
    with pytest.raises(ValueError, match="unknown group"):
        parse_only("book,nope")
    assert parse_only("fix , book") == ["book", "fix"]
    assert parse_only(None) == list(GROUPS)
    assert cli.main(["warmup", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only 'nope': unknown group(s) nope; choose from book,")
    assert err.count("\n") == 1
