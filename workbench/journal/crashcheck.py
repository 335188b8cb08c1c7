"""The crash check: SIGKILL journaled engines at random moments, recover, compare.

One check point: a worker process feeds a deterministic command stream
(:func:`crash_commands`: single orders with automatic ids, cancels, modifies,
executions and small batches) into an ``Engine(journal=DIR, durability=...)`` and prints
one line per acknowledged command (after its call returned). The driver SIGKILLs it at
a random moment - right after a random acknowledgement, optionally after a further
random delay - reads every acknowledgement it printed, then rebuilds the engine with
``Engine.recover(DIR)`` and compares it, every state array byte for byte plus the next
automatic id and the fill log, with a fresh engine fed exactly the acknowledged
prefix, or that prefix plus the one command in flight. Anything else (a lost
acknowledged command, half a batch, a state no prefix explains) is a failure.

Workers are forked from *fork servers*: a process that imported and warmed everything
once, then forks one fresh worker per check point (each kill ends a distinct process
with its own journal; only the start-up cost is shared). Several servers run at once.
:func:`run_disk_full_check` runs one worker under ``RLIMIT_FSIZE`` so a segment write
fails with ``EFBIG``, the way a full disk fails it.

Used by ``tests/test_journal_crash.py`` (20+ points) and ``bench journal`` (200+);
:func:`crash_once` is one such point in the open (notebook 12).
"""
from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["crash_commands", "apply_command", "new_engine", "same_state", "CrashReport",
           "PointOutcome", "run_crash_check", "run_disk_full_check", "crash_once", "serve"]

SYMBOLS = ("AAA", "BBB")
_BATCH_ID_BASE = 1_000_000_000


def new_engine(**journal):
    """The engine every check point runs (small, so start-up and comparison are cheap)."""
    from workbench.book import Engine

    return Engine(list(SYMBOLS), tick_size=0.01, capacity=4096, price_levels=4096, **journal)


def crash_commands(seed: int, n: int) -> list[tuple]:
    """``n`` deterministic commands: mostly single orders (automatic ids, logical-clock
    times), cancels, modifies and executions of earlier ids, and small batches."""
    rng = random.Random(seed)
    out: list[tuple] = []
    next_id = 1
    live: list[tuple[str, int]] = []
    batch_id = _BATCH_ID_BASE
    for i in range(n):
        r = rng.random()
        sym = rng.choice(SYMBOLS)
        if r < 0.5 or not live:
            side = rng.choice(("buy", "sell"))
            price = round(100 + rng.randint(-15, 15) * 0.01, 2)
            tif = "ioc" if rng.random() < 0.1 else "gtc"
            out.append(("submit", sym, side, price, rng.randint(1, 40), tif))
            live.append((sym, next_id))
            next_id += 1
        elif r < 0.68:
            s, oid = live.pop(rng.randrange(len(live)))
            out.append(("cancel", s, oid))
        elif r < 0.8:
            s, oid = rng.choice(live)
            price = round(100 + rng.randint(-15, 15) * 0.01, 2) if rng.random() < 0.5 else None
            out.append(("modify", s, oid, price, rng.randint(1, 40) if price is None else None))
        elif r < 0.88:
            s, oid = rng.choice(live)
            out.append(("execute", s, oid, rng.randint(1, 10)))
        else:
            rows = []
            for _ in range(rng.randint(2, 12)):
                batch_id += 1
                rows.append((1, batch_id, rng.randint(0, 1), 1_000_000 + rng.randint(-15, 15) * 100,
                             rng.randint(1, 40), 0, 0, rng.randint(0, 1), i + 1))
            out.append(("batch", tuple(rows)))
    return out


def apply_command(engine, cmd: tuple) -> None:
    """One command of :func:`crash_commands` through the engine's public methods."""
    from workbench.book import make_events

    op = cmd[0]
    if op == "submit":
        _, sym, side, price, qty, tif = cmd
        engine.submit(sym, side, price, qty, tif=tif)
    elif op == "cancel":
        engine.cancel(cmd[1], cmd[2])
    elif op == "modify":
        engine.modify(cmd[1], cmd[2], price=cmd[3], qty=cmd[4])
    elif op == "execute":
        engine.execute(cmd[1], cmd[2], cmd[3])
    else:
        engine.submit_many(make_events(cmd[1]))


def _raw(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8).tobytes()


def _fills(engine) -> np.ndarray:
    """The fill log, field values only (a FILL's padding bytes are not part of it)."""
    from kernels import records as R

    out = np.zeros(sum(len(f) for f in engine._fill_log), dtype=R.FILL)
    if len(out):
        out[:] = np.concatenate(engine._fill_log)
    return out


def same_state(a, b) -> list[str]:
    """What differs between two engines: state arrays (byte for byte), next automatic
    id, fill log. Empty when identical."""
    diff = [name for name, x, y in zip(a.state._fields, a.state, b.state)
            if x.shape != y.shape or _raw(x) != _raw(y)]
    if a._next_id != b._next_id:
        diff.append(f"next_id {a._next_id} != {b._next_id}")
    fa, fb = _fills(a), _fills(b)
    if len(fa) != len(fb) or (len(fa) and _raw(fa) != _raw(fb)):
        diff.append(f"fill log ({len(fa)} vs {len(fb)} fills)")
    return diff


# ----------------------------------------------------------------- the fork server
def _write(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _worker(req: dict) -> None:
    """In the forked child: run the stream, acknowledge each command, never return."""
    code = 0
    try:
        if req.get("fsize"):
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
        from workbench.journal import JournalError

        cmds = crash_commands(req["seed"], req["n"])
        try:
            engine = new_engine(journal=req["dir"], durability=req["durability"])
            _write(f"R {req['id']}")
            for i, cmd in enumerate(cmds):
                apply_command(engine, cmd)
                _write(f"A {req['id']} {i}")
            engine.close()
            _write(f"D {req['id']}")
            if req.get("wait_for_kill"):
                time.sleep(30)  # the driver's kill finds a live process (it comes at once)
        except JournalError as exc:
            _write(f"E {req['id']} {' '.join(str(exc).split())}")
            code = 3
    except BaseException as exc:  # noqa: BLE001  (reported to the driver)
        _write(f"F {req['id']} {type(exc).__name__}: {' '.join(str(exc).split())}")
        code = 4
    finally:
        os._exit(code)


def serve() -> None:
    """The fork server's main loop: one JSON request per stdin line, one forked worker
    each; prints ``P id pid``, the worker's own lines, then ``X id status``."""
    # Warm every kernel a worker runs, then leave no thread behind (fork copies none).
    warm = tempfile.mkdtemp(prefix="wb-crash-warm-")
    try:
        eng = new_engine(journal=warm, durability="every")
        for cmd in crash_commands(0, 40):
            apply_command(eng, cmd)
        eng.close()
        from workbench.journal import recover
        from workbench.book import Engine

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recover(Engine, warm).close()
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    _write("S ready")
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _worker(req)
        _write(f"P {req['id']} {pid}")
        _, status = os.waitpid(pid, 0)
        _write(f"X {req['id']} {status}")


# ------------------------------------------------------------------------ the driver
@dataclass
class PointOutcome:
    index: int
    target: int             # kill after this many acknowledgements (-1: never)
    delay_us: int
    acked: int              # acknowledgements printed before the kill
    killed: bool
    result: str             # "prefix", "prefix+1", or "FAIL: ..."
    tail: str | None = None
    error: str | None = None   # "E: ..." the journal's error, "F: ..." anything else
    ready: bool = False        # the worker opened its engine

    @property
    def ok(self) -> bool:
        return not self.result.startswith("FAIL")


@dataclass
class CrashReport:
    points: list[PointOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[PointOutcome]:
        return [p for p in self.points if not p.ok]

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for p in self.points:
            key = p.result if p.ok else "fail"
            counts[key] = counts.get(key, 0) + 1
        return {"kill_points": sum(p.killed for p in self.points), "points": len(self.points),
                "failures": len(self.failures), "outcomes": counts,
                "torn_tails": sum(p.tail is not None for p in self.points),
                "seconds": self.seconds}


class _Server:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from workbench.journal.crashcheck import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buffer = b""
        self.current = None  # [outcome, directory, worker pid]

    def lines(self) -> list[str]:
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"crash-check fork server exited ({self.proc.wait()})")
        self.buffer += chunk
        *done, self.buffer = self.buffer.split(b"\n")
        return [d.decode() for d in done]

    def send(self, req: dict) -> None:
        self.proc.stdin.write((json.dumps(req) + "\n").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            self.proc.stdin.close()
        self.proc.stdout.close()


def _busy_wait(us: int) -> None:
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def _check(point: PointOutcome, directory: Path, commands: list[tuple]) -> None:
    """Recover and compare with the acknowledged prefix (and prefix + 1)."""
    from workbench.book import Engine
    from workbench.journal import JournalTailWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recovered = Engine.recover(directory, durability="none")
    tails = [str(w.message) for w in caught if issubclass(w.category, JournalTailWarning)]
    point.tail = tails[0] if tails else None
    try:
        reference = new_engine()
        for cmd in commands[:point.acked]:
            apply_command(reference, cmd)
        diff = same_state(recovered, reference)
        if not diff:
            point.result = "prefix"
            return
        if point.acked < len(commands):
            apply_command(reference, commands[point.acked])
            if not same_state(recovered, reference):
                point.result = "prefix+1"
                return
        point.result = f"FAIL: recovered state matches neither {point.acked} nor " \
                       f"{point.acked + 1} commands ({', '.join(diff)})"
    finally:
        recovered.close()


def run_crash_check(points: int = 20, seed: int = 0, n_commands: int = 150,
                    durability: str = "every", workdir=None, servers: int = 2,
                    progress: bool = False, fsize: int | None = None) -> CrashReport:
    """Kill ``points`` workers at random moments and check each recovery (see the module
    docstring). ``fsize``: run the workers under ``RLIMIT_FSIZE`` (disk full)."""
    rng = random.Random(seed)
    commands = crash_commands(seed, n_commands)
    root = Path(tempfile.mkdtemp(prefix="wb-crash-", dir=workdir))
    plan = []
    for k in range(points):
        target = -1 if fsize else rng.randint(0, n_commands - 1)
        delay = rng.choice((0, 0, rng.randint(1, 400)))
        plan.append(PointOutcome(k, target, delay, 0, False, "pending"))
    report = CrashReport()
    start = time.perf_counter()
    pool = [_Server() for _ in range(max(1, min(servers, points)))]
    sel = selectors.DefaultSelector()
    for s in pool:
        sel.register(s.proc.stdout, selectors.EVENT_READ, s)
    queue = list(plan)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=points, desc=f"crash check ({durability})", unit="kill")

    def launch(server: _Server) -> None:
        if not queue:
            return
        point = queue.pop(0)
        directory = root / f"p{point.index:04d}"
        server.current = [point, directory, None]
        server.send({"op": "run", "id": point.index, "dir": str(directory), "seed": seed,
                     "n": n_commands, "durability": durability, "fsize": fsize,
                     "wait_for_kill": point.target >= 0})

    def kill(point: PointOutcome, pid: int) -> None:
        _busy_wait(point.delay_us)
        try:
            os.kill(pid, signal.SIGKILL)
            point.killed = True
        except ProcessLookupError:  # it finished its stream first (and was reaped)
            pass

    try:
        busy = len(pool)
        while busy:
            for key, _ in sel.select(timeout=120):
                server: _Server = key.data
                for line in server.lines():
                    tag, _, rest = line.partition(" ")
                    if tag == "S":
                        launch(server)
                        continue
                    point, directory, pid = server.current
                    due = point.target >= 0 and point.acked >= point.target and not point.killed
                    if tag == "P":
                        server.current[2] = pid = int(rest.split()[1])
                        if due and point.ready:
                            kill(point, pid)
                    elif tag == "R":
                        point.ready = True
                        if due and pid is not None:
                            kill(point, pid)
                    elif tag == "A":
                        point.acked += 1
                        if point.acked >= point.target >= 0 and pid is not None \
                                and not point.killed:
                            kill(point, pid)
                    elif tag == "D" and point.target >= 0 and not point.killed:
                        kill(point, pid)
                    elif tag in ("E", "F"):
                        point.error = f"{tag}: {rest.partition(' ')[2]}"
                    elif tag == "X":
                        _finish(point, directory, commands)
                        report.points.append(point)
                        if bar is not None:
                            bar.update(1)
                        server.current = None
                        if queue:
                            launch(server)
                        else:
                            sel.unregister(server.proc.stdout)
                            busy -= 1
                            break
    finally:
        for s in pool:
            s.close()
        if bar is not None:
            bar.close()
        shutil.rmtree(root, ignore_errors=True)
    report.points.sort(key=lambda p: p.index)
    report.seconds = time.perf_counter() - start
    return report


def _finish(point: PointOutcome, directory: Path, commands) -> None:
    if point.error and point.error.startswith("F"):
        point.result = f"FAIL: the worker raised {point.error[3:]}"
        return
    if not any(directory.glob("segment-*.wal")):
        # killed before the journal existed: nothing acknowledged, nothing to recover
        point.result = ("prefix" if point.acked == 0 else
                        f"FAIL: {point.acked} acknowledged but no journal on disk")
        return
    try:
        _check(point, directory, commands)
    except Exception as exc:  # noqa: BLE001  (a failed recovery is this point's failure)
        point.result = f"FAIL: recovery raised {type(exc).__name__}: {exc}"


def crash_once(directory, kill_after: int, seed: int = 0, n_commands: int = 150,
               durability: str = "every") -> int:
    """One check point in the open (the notebook's crash): a fresh worker process feeds
    :func:`crash_commands` into ``Engine(journal=directory)`` and is SIGKILLed right
    after its ``kill_after``-th acknowledgement. Returns the acknowledgements it printed
    (recover ``directory`` and compare with that prefix, or the prefix plus one)."""
    req = {"id": 0, "dir": str(directory), "seed": seed, "n": n_commands,
           "durability": durability, "fsize": None, "wait_for_kill": True}
    code = ("import json, sys; from workbench.journal.crashcheck import _worker; "
            "_worker(json.loads(sys.argv[1]))")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(req)], stdout=subprocess.PIPE)
    acked = 0
    try:
        for raw in proc.stdout:
            tag = raw.split(b" ", 1)[0]
            if tag == b"A":
                acked += 1
            if (tag == b"A" and acked >= kill_after) or tag in (b"D", b"E", b"F"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
    return acked


def run_disk_full_check(limit_bytes: int = 6_000, seed: int = 0, n_commands: int = 150,
                        durability: str = "every", workdir=None) -> PointOutcome:
    """One worker under ``RLIMIT_FSIZE=limit_bytes``: its journal fails with ``EFBIG``
    partway; the outcome holds the error it reported and the recovery check."""
    report = run_crash_check(1, seed, n_commands, durability, workdir, servers=1,
                             fsize=limit_bytes)
    return report.points[0]
