"""``bench safety``: what each safety layer costs, measured in one run on one order stream.

The stream is the exchange-core-like mix of ``workbench.data.order_mix`` (seed 7: GTC
adds, IOC, cancels, moves, reductions over ~750 levels), the same for every layer:

* **validation** (``Engine``'s Python checks): the mix's first ``n_single`` commands as
  one ``OrderBook.submit`` / ``cancel`` / ``modify`` call each, ProductionSafe vs a
  ``mode="lab"`` book (its ``submit`` takes the arguments as given; cancels and
  modifies are checked in both). ``validation_ns_per_order`` is the difference.
* **bounds checks** (the kernels' build): the same single-order calls and the whole
  mix through ``OrderBook.apply`` (the batch kernel), each build in its own child
  process (``WORKBENCH_SAFE=0`` / ``1``: a process holds one build; the checked one is
  cached apart). ``bounds_checks_pct_batch`` / ``_single``: how much slower.
* **journal** (durability policies): the mix through ``OrderBook.apply`` in calls of
  ``CALL_ORDERS`` orders (one call = one command = one acknowledgement), journal off,
  ``none``, ``batch`` (group commit: the calls of a block acknowledged by one wait,
  ``journal.deferred()``) and ``every`` (each call waits for the sync that covers it),
  on the disk of ``WORKBENCH_BENCH_DIR`` (default: the temp dir).
* **risk checks**: the pre-trade check (``kernels.risk.check_new_order``) once per add
  of the mix, every limit set so every test runs (none trips), inside a compiled loop as
  the backtest and pipeline loops call it: ``risk_ns_per_order`` is that loop's time
  per order minus the same loop without the call (per build). For scale,
  ``risk_ns_per_python_call``: one call per order from Python through the compiled
  entry point (what a Python-side gateway would pay).

Validation, bounds checks and risk checks cost CPU: they are timed in this thread's CPU
time (``time.thread_time_ns``), which a busy machine does not inflate. The journal's
cost is waiting for the disk: it is timed on the wall clock, the policies taking turns.
All figures are medians of several runs after a warm-up (11 per build and round for the
short CPU-bound ones, 5 for the journal); the two builds run in
``build_rounds`` alternating rounds of child processes (medians across them), and the
ProductionSafe and LabUnsafe single-order runs alternate too, so a change of the
machine's load hits both sides alike. ``safety`` (added by the runner) says which mode
and build the parent ran in.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kernels import risk as krisk
from kernels.jit import kernel

NAME = "safety"
DESCRIPTION = ("cost of each safety layer on one order stream: validation, bounds checks, "
               "journal none/batch/every, risk checks")

CALL_ORDERS = 4096
SEED = 7


def _cpu_ns() -> int:
    """This thread's CPU time: what a CPU-bound layer costs, without the time the OS gave
    the core to someone else (the machine may be shared)."""
    return time.thread_time_ns()


def _mix(n: int):
    from workbench.data.order_mix import MixSettings, order_mix

    settings = MixSettings()
    return settings, order_mix(n, seed=SEED, settings=settings)


def _book(settings, **kw):
    from workbench.book import OrderBook

    return OrderBook("MIX", tick_size=settings.tick_size, price_scale=settings.price_scale,
                     capacity=settings.capacity,
                     price_levels=settings.price_levels, record_fills=False, **kw)


def _calls(book, events, scale):
    from kernels import records as R
    from workbench.enums import OrderType, Side, TimeInForce

    sides = (Side.BUY, Side.SELL)
    tifs = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)
    out = []
    for ts, oid, price, qty, _, kind, side, _, tif in events.tolist():
        if kind == R.EV_ADD:
            out.append((book.submit, (sides[side], price / scale, qty, OrderType.LIMIT, tifs[tif],
                                      oid)))
        elif kind == R.EV_DELETE:
            out.append((book.cancel, (oid,)))
        else:
            out.append((book.modify, (oid, price / scale if price else None, qty if qty else None)))
    return out


def _single_ns(settings, mix, repeats: int) -> dict:
    """ns per single-order call, ProductionSafe and LabUnsafe runs interleaved (so a
    change of the machine's load hits both alike)."""
    times: dict = {"safe": [], "lab": []}
    for r in range(repeats + 1):
        for mode in ("safe", "lab"):
            book = _book(settings, mode=mode)
            calls = _calls(book, mix, settings.price_scale)
            t0 = _cpu_ns()
            for method, args in calls:
                method(*args)
            if r:
                times[mode].append((_cpu_ns() - t0) / len(calls))
    return {mode: statistics.median(t) for mode, t in times.items()}


def _apply_all(book, mix, fills, calls: bool) -> None:
    step = CALL_ORDERS if calls else len(mix)
    for i in range(0, len(mix), step):
        events = mix[i:i + step]
        s = 0
        while s < len(events):
            s, _ = book.apply(events, fills, None, s)


def _batch_ns(settings, mix, repeats: int) -> float:
    from kernels import records as R

    fills = np.zeros(1 << 16, dtype=R.FILL)
    times = []
    for r in range(repeats + 1):
        book = _book(settings)
        t0 = _cpu_ns()
        _apply_all(book, mix, fills, calls=False)
        if r:
            times.append((_cpu_ns() - t0) / len(mix))
    return statistics.median(times)


def measure_build(n_single: int, n_batch: int, repeats: int) -> dict:
    """The build-dependent figures of this process (run once per build, in a child)."""
    from kernels import records as R
    from kernels.jit import SAFE_MODE

    settings, mix = _mix(n_batch)
    single = _single_ns(settings, mix[:n_single], repeats)
    return {"bounds_checks": bool(SAFE_MODE), "single_safe_ns": single["safe"],
            "single_lab_ns": single["lab"], "batch_ns": _batch_ns(settings, mix, repeats),
            "risk_ns": _risk_kernel_ns(settings, mix[mix["kind"] == R.EV_ADD][:n_single], repeats)}


def _child(checked: bool, n_single: int, n_batch: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SAFE", "WORKBENCH_MODE")}
    env["WORKBENCH_SAFE"] = "1" if checked else "0"
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = ("import json; from workbench.bench.safety import measure_build; "
            f"print(json.dumps(measure_build({n_single}, {n_batch}, {repeats})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bench safety: the {'checked' if checked else 'unchecked'} build's "
                           f"child failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["bounds_checks"] != checked:
        raise RuntimeError(f"bench safety: asked for bounds checks={checked}, got {out}")
    return out


def _journal_rates(settings, mix, repeats: int, bar) -> dict:
    """orders/s (wall clock: waiting for the disk is the cost) through ``apply`` in calls
    of CALL_ORDERS, per durability policy; the policies take turns within each repeat."""
    from kernels import records as R

    base = os.environ.get("WORKBENCH_BENCH_DIR") or None
    root = Path(tempfile.mkdtemp(prefix="wb-bench-safety-", dir=base))
    fills = np.zeros(1 << 16, dtype=R.FILL)
    policies = ("off", "none", "batch", "every")
    rates: dict = {p: [] for p in policies}
    try:
        for r in range(repeats + 1):
            for policy in policies:
                directory = root / f"{policy}-{r}"
                kw = {} if policy == "off" else {"journal": directory, "durability": policy}
                book = _book(settings, **kw)
                journal = book.journal
                t0 = time.perf_counter()
                if policy == "batch":
                    with journal.deferred():   # group commit: one wait for the whole block
                        _apply_all(book, mix, fills, calls=True)
                else:
                    _apply_all(book, mix, fills, calls=True)
                elapsed = time.perf_counter() - t0
                book.close()
                shutil.rmtree(directory, ignore_errors=True)
                if r:
                    rates[policy].append(len(mix) / elapsed)
                bar.update(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {p: statistics.median(v) for p, v in rates.items()}


@kernel
def _risk_loop(rp, rs, rows, mid, scale, check):
    """The pre-trade check once per row (now, side, price, qty), as the backtest and
    pipeline loops call it; ``check=False``: the same loop without the call."""
    bad = 0
    for i in range(rows.shape[0]):
        if check:
            bad += krisk.check_new_order(rp, rs, rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3],
                                         0, 0, mid, scale) != 0
        else:
            bad += rows[i, 3] <= 0
    return bad


def _risk_params(settings):
    rp = krisk.default_risk_params()
    rp[krisk.RP_MAX_ORDER_QTY] = 1e12
    rp[krisk.RP_MAX_POSITION] = 1e15
    rp[krisk.RP_MAX_NOTIONAL] = 1e18
    rp[krisk.RP_PRICE_BAND_BPS] = 1e6
    rp[krisk.RP_MAX_ORDERS] = 1e12
    return rp, np.zeros(krisk.N_RISK_STATE, dtype=np.int64), int(round(settings.mid * settings.price_scale))


def _risk_kernel_ns(settings, adds, repeats: int) -> float:
    """ns per order the check adds inside a compiled loop (every limit set, none trips)."""
    rp, rs, mid = _risk_params(settings)
    rows = np.ascontiguousarray(np.stack([adds["ts"] + 1, adds["side"].astype(np.int64),
                                          adds["price"], adds["qty"]], axis=1).astype(np.int64))
    rows = np.tile(rows, (max(1, 200_000 // max(len(rows), 1)), 1))   # long enough to time
    scale = float(settings.price_scale)
    with_check, without = [], []
    for r in range(repeats + 1):
        t0 = _cpu_ns()
        if _risk_loop(rp, rs, rows, mid, scale, True):
            raise RuntimeError("bench safety: a risk limit tripped (limits too tight)")
        t1 = _cpu_ns()
        _risk_loop(rp, rs, rows, mid, scale, False)
        t2 = _cpu_ns()
        if r:
            with_check.append((t1 - t0) / len(rows))
            without.append((t2 - t1) / len(rows))
    return max(0.0, statistics.median(with_check) - statistics.median(without))


def _risk_ns(settings, mix, repeats: int) -> float:
    """ns per add of one ``check_new_order`` call with every limit set (none trips)."""
    import numba

    from kernels import records as R

    adds = mix[mix["kind"] == R.EV_ADD]
    rp, rs, mid = _risk_params(settings)
    scale = float(settings.price_scale)
    args = (rp, rs, 1, 0, mid, 1, 0, 0, mid, scale)
    krisk.check_new_order(*args)
    try:
        check = krisk.check_new_order.overloads[tuple(numba.typeof(a) for a in args)].entry_point
    except (KeyError, AttributeError):
        check = krisk.check_new_order
    rows = [(int(e["ts"]) + 1, int(e["side"]), int(e["price"]), int(e["qty"])) for e in adds]
    with_call, without = [], []
    for r in range(repeats + 1):
        t0 = _cpu_ns()
        for now, side, price, qty in rows:
            if check(rp, rs, now, side, price, qty, 0, 0, mid, scale):
                raise RuntimeError("bench safety: a risk limit tripped (limits too tight)")
        t1 = _cpu_ns()
        for now, side, price, qty in rows:
            if (rp, rs, now, side, price, qty, 0, 0, mid, scale) is None:
                raise RuntimeError("unreachable")
        t2 = _cpu_ns()
        if r:
            with_call.append((t1 - t0) / len(rows))
            without.append((t2 - t1) / len(rows))
    return max(0.0, statistics.median(with_call) - statistics.median(without))


def layer_costs(n_single: int = 2_000, n_journal: int = 40_000, repeats: int = 3) -> list[dict]:
    """The layers this process can switch, measured here on the mix (small sizes: the
    notebook's version of the bench; bounds checks need a second process and are left
    to ``bench safety``). One row per layer: ns per order without and with it, and the
    extra time in percent."""
    settings, mix = _mix(max(n_single, n_journal))
    single = _single_ns(settings, mix[:n_single], repeats)
    rows = [("validation", "single order", single["lab"], single["safe"])]

    class _Quiet:
        def update(self, _n):
            pass

    journal = _journal_rates(settings, mix[:n_journal], repeats, _Quiet())
    for policy in ("none", "batch", "every"):
        rows.append((f"journal {policy}", f"apply, calls of {CALL_ORDERS}", 1e9 / journal["off"],
                     1e9 / journal[policy]))
    from kernels import records as R

    adds = mix[mix["kind"] == R.EV_ADD][:n_single]
    batch = 1e9 / journal["off"]
    rows.append(("risk checks", "in a compiled loop", batch,
                 batch + _risk_kernel_ns(settings, adds, repeats)))
    return [{"layer": layer, "path": path, "without_ns": off, "with_ns": on,
             "cost_pct": 100 * (on / off - 1)} for layer, path, off, on in rows]


def run(quick: bool = False) -> dict:
    from tqdm.auto import tqdm

    repeats = 3 if quick else 5
    build_repeats = 5 if quick else 11   # short CPU-bound runs: more of them
    rounds = 2 if quick else 3
    n_single = 5_000 if quick else 20_000
    n_batch = 100_000 if quick else 400_000
    n_journal = 100_000 if quick else 400_000
    settings, mix = _mix(max(n_batch, n_journal))
    out: dict = {}
    with tqdm(total=2 * rounds + 1 + 4 * (repeats + 1), desc="bench safety", leave=False) as bar:
        runs: dict = {False: [], True: []}
        for _ in range(rounds):   # the builds alternate, so load drifts hit both alike
            for checked in (False, True):
                runs[checked].append(_child(checked, n_single, n_batch, build_repeats))
                bar.update(1)
        fast, checked = ({key: statistics.median(r[key] for r in runs[c]) for key in runs[c][0]}
                         for c in (False, True))
        journal = _journal_rates(settings, mix[:n_journal], repeats, bar)
        risk = _risk_ns(settings, mix[:n_single], repeats)
        bar.update(1)
    out["orders_single"] = n_single
    out["orders_batch"] = n_batch
    out["orders_journal"] = n_journal
    out["orders_per_call"] = CALL_ORDERS
    out["single_ns_lab"] = fast["single_lab_ns"]
    out["single_ns_safe"] = fast["single_safe_ns"]
    out["validation_ns_per_order"] = fast["single_safe_ns"] - fast["single_lab_ns"]
    out["validation_pct"] = 100 * out["validation_ns_per_order"] / fast["single_lab_ns"]
    out["single_ns_safe_checked"] = checked["single_safe_ns"]
    out["single_ns_lab_checked"] = checked["single_lab_ns"]
    out["batch_ns_unchecked"] = fast["batch_ns"]
    out["batch_ns_checked"] = checked["batch_ns"]
    out["batch_orders_per_sec_unchecked"] = 1e9 / fast["batch_ns"]
    out["batch_orders_per_sec_checked"] = 1e9 / checked["batch_ns"]
    out["bounds_checks_pct_batch"] = 100 * (checked["batch_ns"] / fast["batch_ns"] - 1)
    out["bounds_checks_pct_single"] = 100 * (checked["single_safe_ns"] / fast["single_safe_ns"] - 1)
    for policy, rate in journal.items():
        out[f"journal_orders_per_sec_{policy}"] = rate
    for policy in ("none", "batch", "every"):
        out[f"journal_pct_{policy}"] = 100 * (journal["off"] / journal[policy] - 1)
    out["risk_ns_per_order"] = fast["risk_ns"]
    out["risk_ns_per_order_checked"] = checked["risk_ns"]
    out["risk_ns_per_python_call"] = risk
    out["build_rounds"] = rounds
    out["disk"] = str(Path(os.environ.get("WORKBENCH_BENCH_DIR") or tempfile.gettempdir()))
    return out
