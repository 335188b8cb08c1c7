"""Per-strategy cached backtest loops (``workbench.backtest.loopcache``): a user's @njit
strategy compiles once per machine. Each check runs fresh Python processes with a private
loop cache (the loop's compiled code is stored beside the generated module, so it is
private too) and reads Numba's own bookkeeping: the ``numba:compile`` events and the
loop dispatcher's cache hits and misses. Nothing here measures time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numba
import pytest

from kernels.backtest import latency_models
from workbench.backtest import loopcache

REPO = Path(__file__).resolve().parents[1]

# A user strategy that reads the kinds of globals notebooks use: a kernels helper, a
# records constant, a module, a constant of its own and an @njit helper of its own.
STRATEGY = '''
import numba
import numpy as np
from kernels import records as R
from kernels.strategies import place

LIMIT = 100
SIDE = R.{side}


@numba.njit
def quote_price(view, side):
    return view.bid if side == R.BUY else view.ask


@numba.njit
def join_touch(ctx, view, orders, params, actions):
    """Join one side of the touch with ``params[0]`` lots while |position| < LIMIT."""
    if view.bid <= 0 or view.ask <= 0 or ctx.open_bid_qty > 0 or ctx.open_ask_qty > 0:
        return 0
    if abs(ctx.position) >= LIMIT:
        return 0
    return place(actions, 0, SIDE, quote_price(view, SIDE), np.int64(params[0]), R.GTC)
'''

# Runs the synthetic sample's backtest with ``join_touch`` (in this script's globals)
# and prints what Numba compiled for the loop, the loop's cache hits/misses and the
# results (timing columns dropped) as one JSON line.
DRIVER = '''
import json, os, sys, warnings
from numba.core import event
from kernels.backtest import latency_models
from workbench.backtest import Backtest, loopcache
from workbench.scale import TIMING_COLUMNS

compiled = []


class Listener(event.Listener):
    def on_start(self, ev):
        py = ev.data["dispatcher"].py_func
        compiled.append(f"{py.__module__}.{py.__qualname__}")

    def on_end(self, ev):
        pass


def results(r):
    stats = {k: v for k, v in r.stats.items() if k not in TIMING_COLUMNS}
    return json.dumps({"fills": r.fills.to_dicts(), "orders": r.orders.to_dicts(), "stats": stats},
                      sort_keys=True, default=str)


def backtest():
    bt = Backtest("synthetic").strategy(join_touch, param_names=["qty"], qty=5)
    bt.data
    return bt


out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", loopcache.LoopCacheWarning)
    bt = backtest()
    event.register("numba:compile", Listener())
    out["cached"] = results(bt.run(progress=False))
    loop = loopcache.cached_loop("l3", join_touch, bt._lat_model)   # the loop the run used
    out["hits"] = sum(loop.stats.cache_hits.values())
    out["misses"] = sum(loop.stats.cache_misses.values())
    out["loop_compiles"] = [c for c in compiled
                            if c.startswith("wbloop_") or c.endswith((".run_l3", ".join_touch"))]
    out["module"] = loop.py_func.__module__
    if "--uncached-too" in sys.argv:
        os.environ["WORKBENCH_LOOP_CACHE"] = "off"
        out["uncached"] = results(backtest().run(progress=False))
out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, loopcache.LoopCacheWarning)]
print("RESULT " + json.dumps(out))
'''


def _run(script: Path, loops: Path, *args: str) -> dict:
    env = {**os.environ, "WORKBENCH_LOOP_CACHE": str(loops),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(script.parent)])}
    done = subprocess.run([sys.executable, str(script), *args], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(line[-1][len("RESULT "):])


def _sides(result: str) -> set[str]:
    return {f["side"] for f in json.loads(result)["fills"]}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A strategy in a module file; the first process compiles its loop and also runs
    the uncached path (``WORKBENCH_LOOP_CACHE=off``) on the same data."""
    work = tmp_path_factory.mktemp("loopcache")
    (work / "user_strategy.py").write_text(STRATEGY.format(side="BUY"))
    script = work / "run_module.py"
    script.write_text("from user_strategy import join_touch\n" + DRIVER)
    first = _run(script, work / "loops", "--uncached-too")
    return work, script, first


def test_results_identical_to_the_uncached_loop(first_run):
    _, _, first = first_run
    assert first["cached"] == first["uncached"]      # fills, orders and stats, field by field
    assert json.loads(first["cached"])["fills"], "the strategy traded"
    assert first["misses"] == 1 and first["hits"] == 0
    assert first["warnings"] == []


def test_second_process_loads_the_loop_then_an_edit_recompiles(first_run):
    work, script, first = first_run
    second = _run(script, work / "loops")
    assert second["loop_compiles"] == []              # Numba compiled nothing for the loop
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["module"] == first["module"]
    assert second["cached"] == first["cached"]
    assert second["warnings"] == []
    assert _sides(first["cached"]) == {"buy"}

    # edit the strategy (quote the ask): a new generated module, compiled once, whose
    # results are the new strategy's
    (work / "user_strategy.py").write_text(STRATEGY.format(side="SELL"))
    third = _run(script, work / "loops")
    assert third["module"] != first["module"]
    assert third["misses"] == 1 and third["hits"] == 0 and third["loop_compiles"]
    assert _sides(third["cached"]) == {"sell"}
    assert len(list((work / "loops").glob("wbloop_*.py"))) == 2


def test_strategy_in_a_script_is_carried_and_cached(first_run, tmp_path):
    """``__main__`` (a script; a notebook cell is the same case): the generated module
    carries the source and the globals it reads; the second process loads it."""
    _, _, first = first_run
    script = tmp_path / "script.py"
    script.write_text(STRATEGY.format(side="BUY") + DRIVER)
    compiled = _run(script, tmp_path / "loops")
    loaded = _run(script, tmp_path / "loops")
    assert compiled["misses"] == 1 and compiled["warnings"] == []
    assert loaded["loop_compiles"] == [] and loaded["hits"] == 1 and loaded["misses"] == 0
    assert compiled["cached"] == loaded["cached"] == first["cached"]   # the module version's results
    text = next((tmp_path / "loops").glob("wbloop_*.py")).read_text()
    assert "def join_touch(" in text and "def quote_price(" in text and "LIMIT = 100" in text


def test_python_c_falls_back_with_one_warning(tmp_path):
    code = textwrap.dedent('''
        import json, warnings
        import numba
        from kernels.backtest import latency_models
        from workbench.backtest import loopcache

        @numba.njit
        def nothing(ctx, view, orders, params, actions):
            return 0

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                loop = loopcache.loop_for("l3", nothing, latency_models.constant_latency)
        print("RESULT " + json.dumps({"warnings": [str(w.message) for w in caught],
                                      "cached": hasattr(loop, "dispatcher")}))
    ''')
    env = {**os.environ, "WORKBENCH_LOOP_CACHE": str(tmp_path / "loops"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT ")[-1])
    assert len(out["warnings"]) == 1 and "no source" in out["warnings"][0]
    assert out["cached"] is False
    assert not list((tmp_path / "loops").glob("wbloop_*.py"))


# ------------------------------------------------------------- in-process, no compiling
def _module_from(path: Path, name: str, register: bool) -> types.ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_name_follows_every_source_and_constant(tmp_path):
    """The generated module's name changes with the strategy's source, a helper's source
    and a constant it reads, and not otherwise; bundled strategies are imported."""
    lat = latency_models.constant_latency
    names = []
    for k, (side, limit) in enumerate([("BUY", 100), ("BUY", 100), ("SELL", 100), ("BUY", 7)]):
        path = tmp_path / f"variant{k}.py"
        path.write_text(STRATEGY.format(side=side).replace("LIMIT = 100", f"LIMIT = {limit}"))
        mod = _module_from(path, "variant", register=False)     # not importable: carried
        names.append(loopcache.generate("l3", mod.join_touch, lat)[0])
    assert names[0] == names[1] and len(set(names)) == 3
    from kernels.strategies import STRATEGIES

    for entry in STRATEGIES:
        stem, text = loopcache.generate("l3", entry.fn, lat)
        assert f"_wb_import('kernels.strategies').{entry.fn.__name__}" in text


def test_refusals_name_the_reason(tmp_path):
    lat = latency_models.constant_latency
    factor = 3

    @numba.njit
    def closure(ctx, view, orders, params, actions):
        return factor * 0

    with pytest.raises(loopcache.Refused, match="inside a function"):
        loopcache.generate("l3", closure, lat)
    path = tmp_path / "with_array.py"
    path.write_text("import numba\nimport numpy as np\nTABLE = np.arange(4)\n\n"
                    "@numba.njit\ndef s(ctx, view, orders, params, actions):\n    return TABLE[0]\n")
    with pytest.raises(loopcache.Refused, match="global array 'TABLE'"):
        loopcache.generate("l3", _module_from(path, "with_array_unregistered", False).s, lat)
    # importable, the same function is fine: its module holds the array
    registered = _module_from(path, "with_array_registered", True)
    try:
        assert "with_array_registered" in loopcache.generate("l3", registered.s, lat)[1]
    finally:
        del sys.modules["with_array_registered"]
    # a file edited after its function was defined is not cached under the new text
    edited = tmp_path / "edited.py"
    edited.write_text(path.read_text())
    module = _module_from(edited, "edited_after", True)
    edited.write_text(edited.read_text().replace("TABLE[0]", "TABLE[1] + TABLE[2]"))
    os.utime(edited, (2_000_000_000, 2_000_000_000))
    try:
        with pytest.raises(loopcache.Refused, match="changed since it was defined"):
            loopcache.generate("l3", module.s, lat)
    finally:
        del sys.modules["edited_after"]


def test_prune_keeps_the_most_recently_used(tmp_path):
    for k in range(5):
        stem = f"wbloop_l3_s_{k:024d}"
        (tmp_path / f"{stem}.py").write_text("")
        (tmp_path / f"{stem}.used").touch()
        os.utime(tmp_path / f"{stem}.used", (1_000 + k, 1_000 + k))
        (tmp_path / "__pycache__").mkdir(exist_ok=True)
        (tmp_path / "__pycache__" / f"{stem}._wb_loop-9.py311.nbi").write_text("")
    gone = loopcache.prune(keep=2, directory=tmp_path)
    assert sorted(gone) == [f"wbloop_l3_s_{k:024d}" for k in range(3)]
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted([f"wbloop_l3_s_{k:024d}{ext}" for k in (3, 4) for ext in (".py", ".used")]
                          + [f"wbloop_l3_s_{k:024d}._wb_loop-9.py311.nbi" for k in (3, 4)])
    assert loopcache.prune(keep=2, directory=tmp_path) == []
