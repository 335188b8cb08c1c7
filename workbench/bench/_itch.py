"""``bench book``'s NASDAQ ITCH 5.0 figures, through the one ITCH loader (``workbench.data.itch``).

* ``itch_parse_msgs_per_sec``: the first pass and the decoding of every message into the
  engine's ``EVENT`` records (``ItchFeed.decode_events``: what ``itch-check``, the
  backtester and this benchmark all consume), bytes already in memory;
* ``itch_replay_msgs_per_sec``: the same, with every chunk of events applied to one
  engine holding a book per stock (``kernels.book.apply_batch``); the engine is allocated
  (and its pages mapped) before the clock starts.

The data is a synthetic day written by ``workbench.data.itch.synthetic_day`` (the
simulator's flow with F, C, U and P variations and stub quotes): 8,000 stocks and about
50 million messages, or 300 stocks and about 600,000 messages with ``--quick``. It is
generated once (a few minutes for the full day) and kept in the workbench cache
directory (``$WORKBENCH_CACHE_DIR`` or the user cache dir) under ``itch/``.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from kernels import records as R

FULL = dict(n_symbols=8000, messages=50_000_000)
QUICK = dict(n_symbols=300, messages=600_000)


def synthetic_day_path(quick: bool, seed: int = 0) -> Path:
    """The cached synthetic day for the benchmark (written on first use)."""
    from workbench.data.cache import cache_dir
    from workbench.data.itch import synthetic_day

    size = QUICK if quick else FULL
    folder = cache_dir() / "itch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic-{size['n_symbols']}x{size['messages']}-seed{seed}.itch"
    if not path.is_file():
        synthetic_day(path, seed=seed, progress=not quick, **size)
    return path


def itch_rates(quick: bool, repeats: int) -> dict:
    from workbench.data import itch

    path = synthetic_day_path(quick)
    data = itch.read(path).data  # reading (a memory map) is not timed
    probe = itch.load(itch.from_bytes(data))
    if not probe.complete or probe.reference_problems()["unknown_refs"]:
        raise RuntimeError(f"{path} is not a clean ITCH day: delete it to regenerate it")
    n = probe.n_messages
    peak = probe.peak_live
    probe.events = None

    def parse() -> float:
        started = time.perf_counter()
        feed = itch.from_bytes(data)
        feed.decode_events(lambda chunk: None)
        return n / (time.perf_counter() - started)

    def replay() -> float:
        engine = probe.new_engine(capacity=peak + 1024)
        state = engine.state
        for array in state:  # map every page now: allocating the books is set-up, not replay
            raw = array.reshape(-1).view(np.uint8)
            raw[::4096] = raw[::4096]
        fills = np.zeros((1 << 20) + 16, dtype=R.FILL)
        no_results = np.zeros(0, dtype=R.RESULT)

        def apply(chunk):   # the engine's own batch hook (an engine of 8,000 books: the deep one)
            start = 0
            while start < len(chunk):
                start, _ = engine._apply_batch(state, chunk, fills, no_results, start, False)

        started = time.perf_counter()
        feed = itch.from_bytes(data)
        feed.decode_events(apply)
        rate = n / (time.perf_counter() - started)
        rejects = engine.stats()["rejects"]
        if rejects:
            raise RuntimeError(f"the engine rejected events of {path}: {rejects}")
        return rate

    parse()  # loads the compiled kernels
    parse_rate = statistics.median(parse() for _ in range(repeats))
    replay_rate = statistics.median(replay() for _ in range(repeats))
    return {
        "itch_parse_msgs_per_sec": parse_rate,
        "itch_replay_msgs_per_sec": replay_rate,
        "itch_messages": n,
        "itch_books": len(probe.books),
        "itch_source": f"synthetic ITCH day {path.name}",
    }
