"""Safety modes (``workbench.modes``) and ``workbench.build_info()``.

The mode is resolved from the argument, then ``WORKBENCH_MODE``, then ProductionSafe; a
LabUnsafe engine matches exactly like a ProductionSafe one on valid input (the engine is
the reference) while skipping the Python checks; ``build_info()`` agrees with what the
libraries themselves report; every report carries the mode.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import types
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
import pytest

import workbench
from kernels.book_state import EC_EVENTS
from kernels.jit import SAFE_MODE
from workbench import modes
from workbench.book import Engine, OrderBook
from workbench.enums import OrderStatus, OrderType, Side, TimeInForce

REPO = Path(__file__).resolve().parents[1]


def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("WORKBENCH_MODE", raising=False)
    assert modes.mode() is modes.ProductionSafe is modes.Mode.SAFE
    monkeypatch.setenv("WORKBENCH_MODE", "lab")
    assert modes.mode() is modes.LabUnsafe
    assert modes.mode("safe") is modes.ProductionSafe          # the argument wins
    assert modes.mode(modes.Mode.LAB) is modes.LabUnsafe
    for name in ("ProductionSafe", "production", "SAFE"):
        assert modes.mode(name) is modes.ProductionSafe
    for name in ("LabUnsafe", "unsafe", "Lab"):
        assert modes.mode(name) is modes.LabUnsafe
    monkeypatch.setenv("WORKBENCH_MODE", "fast")
    with pytest.raises(ValueError, match="WORKBENCH_MODE='fast'"):
        modes.mode()
    with pytest.raises(ValueError, match="mode=3"):
        modes.mode(3)
    assert workbench.mode("lab") is modes.LabUnsafe


def test_layers_per_mode():
    safe, lab = modes.report("safe"), modes.report("lab")
    assert (safe["mode"], lab["mode"]) == ("ProductionSafe", "LabUnsafe")
    assert safe["validation"] and not lab["validation"]
    assert (safe["journal_policy"], lab["journal_policy"]) == ("every", "none")
    assert safe["risk_checks"] and lab["risk_checks"] and safe["kernel_row_checks"]
    # the bounds-check layer is the build actually loaded, whatever the mode asks for
    assert safe["bounds_checks"] is lab["bounds_checks"] is bool(SAFE_MODE)
    assert ("note" in safe) == (not SAFE_MODE)


def _stream(n=400, seed=3):
    rng = np.random.default_rng(seed)
    return [(Side(int(rng.integers(2))), round(100 + 0.01 * int(rng.integers(-20, 21)), 2),
             int(rng.integers(1, 50)), TimeInForce.IOC if rng.random() < 0.2 else TimeInForce.GTC)
            for _ in range(n)]


def test_lab_engine_matches_like_safe_engine():
    safe, lab = Engine(["X"], capacity=1000), Engine(["X"], capacity=1000, mode="lab")
    assert (safe.mode, lab.mode) == (modes.ProductionSafe, modes.LabUnsafe)
    for side, price, qty, tif in _stream():
        a = safe.submit("X", side, price, qty, OrderType.LIMIT, tif)
        b = lab.submit("X", side, price, qty, OrderType.LIMIT, tif)
        assert a[:5] == b[:5] and np.array_equal(a.fills, b.fills)
    for name in safe.state._fields:
        assert np.array_equal(getattr(safe.state, name), getattr(lab.state, name)), name
    # values are checked in the compiled entry in both modes (ValueError naming the field)
    for eng in (safe, lab):
        with pytest.raises(ValueError, match="qty"):
            eng.submit("X", Side.BUY, 100.0, 0)
    # what the lab path gives up: the type checks (a float quantity is taken as an int)
    with pytest.raises(ValueError, match="qty"):
        safe.submit("X", Side.BUY, 100.0, 5.0)
    assert lab.submit("X", Side.BUY, 100.0, 5.0).leaves == 5


@pytest.mark.parametrize("method", ["submit", "add_order"])
def test_order_book_methods_follow_the_mode(method):
    """``OrderBook``'s submit is the per-order function itself (no wrapper frame): a
    LabUnsafe book must still get its trusted entry, a ProductionSafe one the checks."""
    safe, lab = OrderBook("X"), OrderBook("X", mode="lab")
    with pytest.raises(ValueError, match="qty"):
        getattr(safe, method)(Side.BUY, 100.0, 5.0)       # nothing applied
    assert getattr(lab, method)(Side.BUY, 100.0, 5.0).leaves == 5   # taken as 5
    rested = getattr(safe, method)(Side.SELL, 100.0, 2, order_id=77)
    traded = getattr(lab, method)(Side.SELL, 100.0, 2, order_id=77)
    assert (rested.filled, rested.leaves, traded.filled, traded.leaves) == (0, 2, 2, 0)
    assert safe.cancel(77).status is OrderStatus.CANCELLED
    assert lab.cancel(77).status is OrderStatus.REJECTED            # it traded away
    assert safe.submit(Side.BUY, 99.0, 3, order_id=78).leaves == 3
    assert safe.modify(78, qty=1).leaves == 1 and safe.get_bids(1) == [(99.0, 1, 1)]
    # the book index is a keyword of the functions themselves: a wrong one (a float too,
    # which the compiled entry's unboxing would truncate) is a ValueError, nothing applied
    before = safe.state.counters.copy()
    for call in (lambda: safe.submit(Side.BUY, 100.0, 1, book=3),
                 lambda: safe.submit(Side.BUY, 100.0, 1, book=0.0),
                 lambda: safe.cancel(78, book=1), lambda: safe.modify(78, 99.5, book=-1),
                 lambda: safe.modify(78, 99.5, book=True)):
        with pytest.raises(ValueError, match="book"):
            call()
    assert np.array_equal(safe.state.counters, before)


def test_lab_path_takes_other_forms_through_the_checked_path():
    """LabUnsafe skips the Python checks, not the forms they accept: an argument the
    compiled entry point cannot take ("buy", a Decimal price) goes through the checked
    path, applied exactly once, and a wrong value still gets the ValueError naming its
    field, with nothing applied and no automatic id used up."""
    from decimal import Decimal

    safe, lab = Engine(["X"], capacity=100), Engine(["X"], capacity=100, mode="lab")
    for eng in (safe, lab):
        first = eng.submit("X", "buy", Decimal("100.25"), 10)
        assert first.status.name == "NEW" and eng.best_bid("X") == 100.25
        eng.submit("X", Side.SELL, 100.25, 4)                    # the fast path, typed
        eng.submit("X", "sell", 100.5, 3, "limit", "gtc")
    for name in safe.state._fields:
        assert np.array_equal(getattr(safe.state, name), getattr(lab.state, name)), name
    events, next_id = int(lab.state.counters[EC_EVENTS]), lab._next_id
    with pytest.raises(ValueError, match="side"):
        lab.submit("X", "sideways", 100.0, 1)
    with pytest.raises(ValueError, match="price"):
        lab.submit("X", Side.BUY, "cheap", 1)
    assert (int(lab.state.counters[EC_EVENTS]), lab._next_id) == (events, next_id)
    assert lab.submit("X", Side.BUY, 99.0, 1).order_id == next_id


def test_journal_default_policy_follows_the_mode(tmp_path):
    with Engine(["X"], journal=tmp_path / "safe") as safe, \
            Engine(["X"], journal=tmp_path / "lab", mode="lab") as lab, \
            Engine(["X"], journal=tmp_path / "named", mode="lab", durability="batch") as named:
        assert (safe.journal.durability, lab.journal.durability, named.journal.durability) == \
            ("every", "none", "batch")
    with pytest.raises(ValueError, match="need journal=DIR"):
        Engine(["X"], durability="every")


def test_build_info_agrees_with_the_libraries():
    info = workbench.build_info()
    assert info["workbench"] == workbench.__version__
    assert (info["numba"], info["llvmlite"]) == (numba.__version__, llvmlite.__version__)
    assert info["python"] == platform.python_version()
    assert info["cpu_name"] == llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features()
    assert info["cpu_features"] == sorted(k for k, on in features.items() if on)
    assert set(info["cpu_highlights"]) <= set(info["cpu_features"])
    assert info["mode"] == modes.mode().value and info["safety"] == modes.report()
    assert info["journal_policy"] == modes.mode().durability
    assert info["bounds_checks"] is bool(SAFE_MODE)
    json.dumps(info)   # every value is JSON


def test_info_command_reports_the_environment_mode():
    env = {**os.environ, "WORKBENCH_MODE": "lab", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "workbench", "info", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["mode"], info["journal_policy"]) == ("LabUnsafe", "none")
    assert info["bounds_checks"] is False          # LabUnsafe: the unchecked build
    assert info["numba"] == numba.__version__
    # ProductionSafe is the default down to the machine code: no variable at all gives the
    # checked build; ``--mode`` sets it for one command and its children
    plain = {k: v for k, v in env.items() if k not in ("WORKBENCH_MODE", "WORKBENCH_SAFE")}
    for argv, expected in ((["info", "--json"], ("ProductionSafe", True)),
                           (["--mode", "lab", "info", "--json"], ("LabUnsafe", False))):
        run = subprocess.run([sys.executable, "-m", "workbench", *argv], env=plain,
                             capture_output=True, text=True, timeout=300, cwd=REPO)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        assert (got["mode"], got["bounds_checks"]) == expected, argv
        assert "note" not in got, got            # the build is what the mode asks for
    bad = subprocess.run([sys.executable, "-m", "workbench", "info"], capture_output=True,
                         text=True, timeout=300, cwd=REPO,
                         env={**env, "WORKBENCH_MODE": "turbo"})
    assert bad.returncode == 2 and "WORKBENCH_MODE='turbo'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1      # one line, no traceback


def test_main_in_process_leaves_the_environment_as_it_found_it(monkeypatch, capsys):
    """``--mode`` holds for one command (and its children): a program calling ``main``
    keeps its own environment afterwards, whether the command ran or was refused."""
    import kernels.jit as jit
    from workbench.cli import main

    same, other = ("safe", "lab") if jit.SAFE_MODE else ("lab", "safe")
    monkeypatch.setenv("WORKBENCH_SAFE", "1" if jit.SAFE_MODE else "0")
    monkeypatch.delenv("WORKBENCH_MODE", raising=False)
    assert main(["--mode", same, "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bounds_checks"] is jit.SAFE_MODE
    assert "WORKBENCH_MODE" not in os.environ
    assert os.environ["WORKBENCH_SAFE"] == ("1" if jit.SAFE_MODE else "0")
    assert main(["--mode", other, "info"]) == 2          # the other build is loaded
    assert "already loaded the other build" in capsys.readouterr().err
    assert "WORKBENCH_MODE" not in os.environ
    assert os.environ["WORKBENCH_SAFE"] == ("1" if jit.SAFE_MODE else "0")


def test_reports_carry_the_mode(monkeypatch):
    from workbench.backtest.results import _mode_note
    from workbench.bench import Suite
    from workbench.widgets import mode_badge

    from workbench.bench import discover

    assert "safety" in discover() and discover()["safety"].NAME == "safety"
    suite = Suite(types.SimpleNamespace(NAME="x", DESCRIPTION="d", run=lambda quick: {"k": 1}))
    assert suite.run() == {"k": 1, "safety": modes.report()}
    assert suite.NAME == "x"
    monkeypatch.setenv("WORKBENCH_MODE", "lab")
    assert "LabUnsafe" in mode_badge() and "journal none" in mode_badge()
    assert _mode_note(modes.report()).startswith("  [LabUnsafe, bounds checks ")
