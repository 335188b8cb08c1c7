"""``python -m workbench bench fix``: FIX parse/validate/encode rates against QuickFIX and simplefix.

Workload: NewOrderSingle messages (~160 bytes, 17 tags) generated here. ``parse`` means
framed, BodyLength and CheckSum verified, every tag indexed (MsgSeqNum, SendingTime and
sender extracted) and validated against the FIX 4.4 dictionary subset (required tags,
types, enums, group counts), into reused arrays; decoding into engine EVENTs (which
QuickFIX's parse does not do either) is checked once but not timed. The peers run in a subprocess each (QuickFIX aborts the whole process
on a bad checksum) on the same valid messages, interleaved round by round with ours: QuickFIX ``Message().setString(s, True)``
(C++ parse with BodyLength/CheckSum checks, no dictionary) and simplefix's
``FixParser`` (pure Python, no checksum check). A peer that is not installed reports
null (the reason goes to stderr).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numpy as np

NAME = "fix"
DESCRIPTION = "FIX 4.4 NewOrderSingle parse+validate (serial, parallel), ExecutionReport encode, vs QuickFIX/simplefix"

_PEER_SCRIPT = r"""
import json, statistics, sys, time
kind, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
messages = open(path, "rb").read().split(b"\n")
rates = []
if kind == "quickfix":
    import quickfix as fix
    texts = [m.decode("latin-1") for m in messages]
    for _ in range(repeats):
        start = time.perf_counter()
        for text in texts:
            msg = fix.Message()
            msg.setString(text, True)
        rates.append(len(texts) / (time.perf_counter() - start))
else:
    import simplefix
    for _ in range(repeats):
        parser = simplefix.FixParser()
        start = time.perf_counter()
        count = 0
        for message in messages:  # as received: its buffer handling is quadratic in backlog
            parser.append_buffer(message)
            while parser.get_message() is not None:
                count += 1
        rates.append(count / (time.perf_counter() - start))
print(json.dumps(statistics.median(rates)))
"""


def new_order_singles(n: int, seed: int = 7) -> list[bytes]:
    """``n`` distinct, valid FIX 4.4 NewOrderSingle messages."""
    from workbench.fix import build_message

    rng = np.random.default_rng(seed)
    sides = rng.integers(1, 3, n)
    qty = rng.integers(1, 100, n) * 100
    ticks = rng.integers(-500, 500, n)
    out = []
    for i in range(n):
        out.append(build_message("D", [
            (49, "CLIENT1"), (56, "ISLD"), (34, i + 2), (52, "20240102-14:30:00.123"),
            (11, str(1_000_000 + i)), (21, "1"), (55, "AAPL"), (54, int(sides[i])), (38, int(qty[i])),
            (40, "2"), (44, f"{185 + ticks[i] * 0.01:.2f}"), (59, "0"), (60, "20240102-14:30:00.120"),
        ]))
    return out


def _peer(kind: str, path, repeats: int) -> float | None:
    """Median rate of a peer parser over the messages in ``path``, in its own process."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PEER_SCRIPT, kind, str(path), str(repeats)],
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        print(f"bench fix: {kind} timed out", file=sys.stderr)
        return None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"bench fix: {kind} unavailable ({reason})", file=sys.stderr)
        return None
    return float(json.loads(proc.stdout))


def _rate(work, items: int) -> float:
    start = time.perf_counter()
    work()
    return items / (time.perf_counter() - start)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(quick: bool = False) -> dict:
    import tempfile
    from pathlib import Path

    import numba
    from tqdm.auto import tqdm

    from kernels.records import FILL
    from workbench.fix import encode_execution_reports, execution_reports_from_fills, parse
    from workbench.fix.parser import Workspace

    n = 20_000 if quick else 200_000
    rounds = 3 if quick else 7
    messages = new_order_singles(n)
    data = np.frombuffer(b"".join(messages), np.uint8)

    serial_ws, parallel_ws = Workspace(), Workspace()
    check = parse(data, parallel=False, symbols=["AAPL"], workspace=serial_ws)
    assert check.summary()["valid"] == n and len(check.events) == n, check.summary()

    def serial():
        return len(parse(data, parallel=False, workspace=serial_ws))

    def parallel():
        return len(parse(data, parallel=True, n_chunks=numba.get_num_threads(), workspace=parallel_ws))

    fills = np.zeros(n, FILL)
    fills["seq"] = np.arange(n)
    fills["maker_id"] = np.arange(n) // 2 + 1
    fills["taker_id"] = 10_000_000 + np.arange(n)
    fills["price"] = 1_850_000 + (np.arange(n) % 100) * 100
    fills["qty"] = 100
    fills["maker_leaves"] = np.where(np.arange(n) % 2 == 0, 100, 0)
    reports = execution_reports_from_fills(fills, perspective="maker")

    def encode():
        encode_execution_reports(reports, sender_comp_id="ISLD", target_comp_id="CLIENT1",
                                 symbols=["AAPL"], sending_time=1_704_205_800_000_000_000)

    parallel()
    encode()
    rates: dict[str, list] = {"parse": [], "parallel": [], "encode": [], "quickfix": [], "simplefix": []}
    with tempfile.TemporaryDirectory() as tmp:
        quickfix_file = Path(tmp) / "quickfix.fix"
        quickfix_file.write_bytes(b"\n".join(messages[:100_000]))
        simplefix_file = Path(tmp) / "simplefix.fix"
        simplefix_file.write_bytes(b"\n".join(messages[:10_000]))
        # rounds interleave every contender so load changes on a shared machine hit all alike
        for _ in tqdm(range(rounds), desc="bench fix", leave=False):
            rates["parse"].append(_rate(serial, n))
            rates["parallel"].append(_rate(parallel, n))
            rates["encode"].append(_rate(encode, n))
            for peer, path in (("quickfix", quickfix_file), ("simplefix", simplefix_file)):
                if None not in rates[peer]:  # once unavailable, not retried
                    rates[peer].append(_peer(peer, path, 1))
    parse_rate = _median(rates["parse"])
    quickfix_rate = _median(rates["quickfix"])
    simplefix_rate = _median(rates["simplefix"])
    return {
        "parse_msgs_per_sec": parse_rate,
        "parse_msgs_per_sec_parallel": _median(rates["parallel"]),
        "encode_msgs_per_sec": _median(rates["encode"]),
        "quickfix_msgs_per_sec": quickfix_rate,
        "simplefix_msgs_per_sec": simplefix_rate,
        "speedup_vs_quickfix": parse_rate / quickfix_rate if quickfix_rate else None,
        "speedup_vs_simplefix": parse_rate / simplefix_rate if simplefix_rate else None,
    }
