"""Same-run before/after throughput of ``bench book``'s batched path on flows A and B.

Usage::

    .venv/bin/python scripts/book_before_after.py [--repeats 9] [--tree before=/tmp/wb_before]
        [--tree after=/work/main] [--out /tmp/book_ba/result.json] [--workdir /tmp/book_ba]
        [--regen] [--n 300000] [--flows ab]

(``--flows abm`` adds flow M, ``bench book``'s order mix: 1,000,000 events of
``workbench.data.order_mix``, seed 7, the ``batch_orders_per_sec`` key.)

What it does (issue 11's "report before and after, same run"):

1. Builds flow A and flow B ONCE with this checkout's ``workbench.bench._flows`` (the
   arrays ``bench book`` times) and saves them, with their book settings, as ``.npy`` +
   JSON under ``--workdir`` (reused on the next run unless ``--regen``).
2. Starts one child process per ``--tree`` (the first is the baseline), each with
   ``PYTHONPATH=<tree>``, ``WORKBENCH_SAFE=0`` (the unchecked build, in both: the current
   tree defaults to bounds-checked kernels, the old one reads only ``WORKBENCH_SAFE``) and
   its own ``NUMBA_CACHE_DIR`` under the work dir, so no two trees share compiled code.
   Each child checks that it imported ``kernels``/``workbench`` from its tree and that its
   ``kernels.records.EVENT`` equals the saved arrays' dtype.
3. Per repeat and flow, each child builds a fresh book, applies the warm-up untimed, then
   times ``OrderBook.apply`` over the commands exactly as ``bench book`` does
   (``_apply_all``: one call over all commands, fills buffer ``len(events) + 16``, no
   results). One untimed warm-up repeat per flow and child first (it loads the kernels),
   then the repeats interleaved: per round and flow every tree once, the order of the
   trees alternating between rounds (before, after / after, before ...), so drift in the
   machine's load hits both sides alike. Only one child runs at a time.
4. Guard: after every repeat each child reports its end book (every resting order in
   priority order, hashed, plus best bid/ask, orders and quantity per side), its fill
   count and its rejects; all trees must agree and nothing may be rejected, else it aborts.
5. Prints a table (medians of wall-clock and of thread CPU time, events/s, ratio of each
   tree to the first; also the best repeat, less sensitive to a noisy neighbour on a
   shared machine) and writes JSON (every sample, the load average before and after).

Book settings: tick 0.01 at price scale 10,000 (100 units), the flow's capacity, and
``price_levels=8192`` in every tree (the flows' own setting). In the old tree that is the
size of a fixed ladder anchored at the book's first price (base = first tick - 4096): flow
A spans ticks 1880..1893, flow B 8750..11250 (mid 10,000 +- 1,250) and the mix 9318..10605
(the ``tick_range`` in each flow's JSON), so each fits whatever the first price; the
guard's "no rejects" would catch an ``R_PRICE_OUT_OF_BAND``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLOWS = ("a", "b", "m")  # m: bench book's order mix (batch_orders_per_sec), with --flows abm
PRICE_LEVELS = 8192


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------- child
def _child(tree: str, workdir: Path, which: str) -> None:
    """Serve ``run <flow>`` commands on stdin, one JSON line per answer on stdout."""
    import numpy as np

    import kernels
    import workbench
    from kernels import book as kbook
    from kernels import records as R
    from workbench.book import OrderBook

    tree = os.path.realpath(tree)
    for mod in (kernels, workbench):
        where = os.path.realpath(mod.__file__)
        assert where.startswith(tree + os.sep), f"{mod.__name__} from {where}, not {tree}"
    from kernels import jit

    safe = getattr(jit, "SAFE_MODE", None)
    assert safe is not True, f"{tree}: bounds-checked build (SAFE_MODE={safe})"

    flows = {}
    for f in (f for f in FLOWS if f in which):
        meta = json.loads((workdir / f"flow_{f}.json").read_text())
        events = np.load(workdir / f"flow_{f}.npy")
        assert events.dtype == R.EVENT, f"{tree}: EVENT dtype differs: {R.EVENT} vs {events.dtype}"
        flows[f] = (meta, events[:meta["warmup"]], events[meta["warmup"]:],
                    np.zeros(len(events) + 16, dtype=R.FILL))

    def apply_all(book, events, fills):
        start, n, total = 0, len(events), 0
        while start < n:
            start, nf = book.apply(events, fills, None, start)
            total += nf
        return total

    def summary(book, tick):
        b = book.state.books[0]
        out = np.zeros(int(b["orders"].sum()), dtype=R.ORDER)
        k = kbook.resting_orders(book.state, 0, out)
        out = out[:k]
        key = np.stack([out[name].astype(np.int64)
                        for name in ("order_id", "price", "qty", "side")])
        bids, asks = out[out["side"] == R.BUY], out[out["side"] == R.SELL]
        return {"best_bid": int(bids["price"].max()) // tick if len(bids) else None,
                "best_ask": int(asks["price"].min()) // tick if len(asks) else None,
                "bid_orders": int(len(bids)), "ask_orders": int(len(asks)),
                "bid_qty": int(bids["qty"].sum()), "ask_qty": int(asks["qty"].sum()),
                "orders_sha1": hashlib.sha1(key.tobytes()).hexdigest()}

    def run(f):
        meta, warm, cmds, fills = flows[f]
        book = OrderBook(meta["name"], tick_size=meta["tick_units"] / meta["price_scale"],
                         price_scale=meta["price_scale"], capacity=meta["capacity"],
                         price_levels=PRICE_LEVELS, record_fills=False)
        if len(warm):
            apply_all(book, warm, fills)
        w0, c0 = time.perf_counter(), time.thread_time()
        n_fills = apply_all(book, cmds, fills)
        c1, w1 = time.thread_time(), time.perf_counter()
        rejects = {str(k): int(v) for k, v in book.stats()["rejects"].items() if v}
        return {"wall": w1 - w0, "cpu": c1 - c0, "commands": len(cmds), "fills": int(n_fills),
                "rejects": rejects, "end": summary(book, meta["tick_units"])}

    print(json.dumps({"ready": True, "kernels": kernels.__file__, "safe": safe,
                      "event_dtype": str(R.EVENT.descr)}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        print(json.dumps(run(cmd[1])), flush=True)


# -------------------------------------------------------------------------- parent
def _order_mix(n: int):
    """bench book's order mix (``workbench.data.order_mix``, seed 7, 1,000,000 events
    there) as a flow without warm-up."""
    from types import SimpleNamespace

    from workbench.data.order_mix import MixSettings, order_mix

    settings = MixSettings()
    assert settings.price_levels == PRICE_LEVELS, settings
    return SimpleNamespace(name="MIX", events=order_mix(n, seed=7, settings=settings), warmup=0,
                           seed=7, capacity=settings.capacity,
                           price_levels=settings.price_levels,
                           tick_units=round(settings.tick_size * settings.price_scale),
                           price_scale=settings.price_scale)


def _make_flows(workdir: Path, n: int, regen: bool, which: str) -> None:
    import numpy as np

    from workbench.bench import _flows as flows

    makers = {"a": flows.flow_a, "b": flows.flow_b, "m": _order_mix}
    for f in (f for f in FLOWS if f in which):
        make = makers[f]
        n_f = max(n, 1_000_000) if f == "m" else n  # the mix: bench book's 1,000,000
        npy, meta_path = workdir / f"flow_{f}.npy", workdir / f"flow_{f}.json"
        if not regen and npy.exists() and meta_path.exists() and \
                json.loads(meta_path.read_text()).get("n") == n_f:
            continue
        t0 = time.perf_counter()
        flow = make(n_f)
        prices = flow.events["price"]
        np.save(npy, flow.events)
        meta_path.write_text(json.dumps({
            "name": flow.name, "n": n_f, "warmup": flow.warmup, "seed": flow.seed,
            "capacity": flow.capacity, "flow_price_levels": flow.price_levels,
            "tick_units": flow.tick_units, "price_scale": flow.price_scale,
            "events": len(flow.events),
            "tick_range": [int(prices[prices > 0].min()) // flow.tick_units,
                           int(prices.max()) // flow.tick_units]}))
        print(f"flow {f.upper()}: {len(flow.events):,} events built in "
              f"{time.perf_counter() - t0:.1f}s -> {npy}", file=sys.stderr)


class _Child:
    def __init__(self, label: str, tree: str, workdir: Path, which: str):
        self.label, self.tree = label, tree
        cache = workdir / f"numba_cache_{label}"
        cache.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "WORKBENCH_MODE", "NUMBA_CACHE_DIR")}
        env.update(PYTHONPATH=tree, WORKBENCH_SAFE="0", NUMBA_CACHE_DIR=str(cache),
                   PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", tree, "--workdir", str(workdir),
             "--flows", which],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(workdir))
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.label} ({self.tree}) died (see its stderr)")
        return json.loads(line)

    def run(self, flow: str) -> dict:
        self.proc.stdin.write(f"run {flow}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.proc.wait(timeout=60)


def _guard(flow: str, samples: dict[str, dict]) -> None:
    ends = {label: (s["end"], s["fills"]) for label, s in samples.items()}
    first = next(iter(ends.values()))
    bad = {label: e for label, e in ends.items() if e != first}
    rejected = {label: s["rejects"] for label, s in samples.items() if s["rejects"]}
    if bad or rejected:
        raise SystemExit(f"flow {flow.upper()}: the trees disagree or rejected orders: "
                         f"ends {ends}; rejects {rejected}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tree", action="append", metavar="LABEL=PATH",
                    help="a source tree to time (repeatable; the first is the baseline); "
                         "default before=/tmp/wb_before after=<this checkout>")
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats per tree and flow (>= 7)")
    ap.add_argument("--n", type=int, default=300_000,
                    help="commands per flow (bench book: 300,000)")
    ap.add_argument("--workdir", default="/tmp/book_ba")
    ap.add_argument("--out", default=None, help="JSON output (default <workdir>/result.json)")
    ap.add_argument("--regen", action="store_true", help="rebuild the flows' .npy")
    ap.add_argument("--flows", default="ab",
                    help="which flows to time: a, b, and m (bench book's order mix); default ab")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    if args.child:
        _child(args.child, workdir, args.flows)
        return 0
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    repo = Path(__file__).resolve().parents[1]
    trees = [t.split("=", 1) for t in (args.tree or
                                       ["before=/tmp/wb_before", f"after={repo}"])]
    if any(len(t) != 2 for t in trees) or len({t[0] for t in trees}) != len(trees):
        ap.error("--tree takes distinct LABEL=PATH")
    for label, path in trees:
        if not (Path(path) / "kernels" / "book.py").is_file():
            ap.error(f"--tree {label}={path}: no kernels/book.py there")
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(repo))
    flows_run = [f for f in FLOWS if f in args.flows]
    if not flows_run:
        ap.error(f"--flows {args.flows!r} names none of {FLOWS}")
    _make_flows(workdir, args.n, args.regen, args.flows)

    load = {"start": _loadavg()}
    t_start = time.time()
    children = [_Child(label, path, workdir, "".join(flows_run)) for label, path in trees]
    dtypes = {c.hello["event_dtype"] for c in children}
    if len(dtypes) != 1:
        raise SystemExit(f"EVENT dtypes differ between trees: {dtypes}")
    samples: dict[str, dict[str, list]] = {f: {c.label: [] for c in children} for f in flows_run}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    total = len(flows_run) * len(children) * (args.repeats + 1)
    bar = tqdm(total=total, desc="before/after", file=sys.stderr) if tqdm else None
    try:
        for f in flows_run:  # warm-up: load (or compile) the kernels, untimed
            warm = {c.label: c.run(f) for c in children}
            _guard(f, warm)
            if bar:
                bar.update(len(children))
        for r in range(args.repeats):
            order = children if r % 2 == 0 else children[::-1]
            for f in flows_run:
                got = {}
                for c in order:
                    got[c.label] = c.run(f)
                    samples[f][c.label].append(got[c.label])
                    if bar:
                        bar.update(1)
                _guard(f, got)
    finally:
        if bar:
            bar.close()
        for c in children:
            c.close()
    load["end"] = _loadavg()

    base = children[0].label
    result = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
              "seconds": time.time() - t_start, "loadavg": load, "repeats": args.repeats,
              "price_levels": PRICE_LEVELS, "env": {"WORKBENCH_SAFE": "0"},
              "trees": {c.label: {"path": c.tree, "kernels": c.hello["kernels"]} for c in children},
              "flows": {}}
    lines = [f"book before/after: {args.repeats} interleaved repeats per tree (+1 warm-up), "
             f"medians; load {load['start']} -> {load['end']}",
             f"{'flow':>4}  {'tree':>10}  {'wall ev/s':>12}  {'cpu ev/s':>12}  "
             f"{'wall ratio':>10}  {'cpu ratio':>9}  {'best ev/s':>12}  {'best ratio':>10}"]
    for f in flows_run:
        meta = json.loads((workdir / f"flow_{f}.json").read_text())
        rows = {}
        for c in children:
            s = samples[f][c.label]
            n = s[0]["commands"]
            wall = statistics.median(x["wall"] for x in s)
            cpu = statistics.median(x["cpu"] for x in s)
            best = min(x["wall"] for x in s)
            rows[c.label] = {"wall_events_per_sec": n / wall, "cpu_events_per_sec": n / cpu,
                             "best_wall_events_per_sec": n / best,
                             "wall_s": [x["wall"] for x in s], "cpu_s": [x["cpu"] for x in s],
                             "commands": n}
        for c in children:
            row = rows[c.label]
            for key in ("wall", "cpu"):
                row[f"{key}_ratio_vs_{base}"] = (row[f"{key}_events_per_sec"]
                                                 / rows[base][f"{key}_events_per_sec"])
            row["best_ratio_vs_" + base] = (row["best_wall_events_per_sec"]
                                            / rows[base]["best_wall_events_per_sec"])
            lines.append(f"{f.upper():>4}  {c.label:>10}  {row['wall_events_per_sec']:>12,.0f}  "
                         f"{row['cpu_events_per_sec']:>12,.0f}  "
                         f"{row['wall_ratio_vs_' + base]:>9.3f}x  "
                         f"{row['cpu_ratio_vs_' + base]:>8.3f}x  "
                         f"{row['best_wall_events_per_sec']:>12,.0f}  "
                         f"{row['best_ratio_vs_' + base]:>9.3f}x")
        end = samples[f][base][-1]
        result["flows"][f] = {"meta": meta, "end": end["end"], "fills": end["fills"], "trees": rows}
    out = Path(args.out) if args.out else workdir / "result.json"
    out.write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
