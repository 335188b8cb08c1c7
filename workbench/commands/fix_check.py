"""``python -m workbench fix-check FILE [--json]``: frame, checksum and validate a FIX file."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fix-check", help="check the FIX messages in a file (framing, checksum, FIX 4.4 dictionary)",
        description="Frame every FIX message in FILE (SOH or '|' delimited; other text between "
                    "messages is skipped), verify BodyLength and CheckSum, validate FIX 4.4 "
                    "messages against the shipped dictionary subset, and count rejects by reason.",
    )
    parser.add_argument("file", help="file of FIX messages (a capture or a log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    import time
    from pathlib import Path

    from kernels.fix.frame import FIX_REASON_NAMES, FIX_SKIPPED_BYTES, N_FIX_REJECT_REASONS
    from workbench.errors import file_error
    from workbench.fix import parse

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"file={args.file!r} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise file_error(path, "empty file (no FIX messages to check)")
    parse(data[:4096])  # load the compiled kernels before timing
    start = time.perf_counter()
    batch = parse(data)
    elapsed = time.perf_counter() - start
    summary = batch.summary()
    if summary["messages"] == 0:
        raise file_error(path, f"no FIX message found in its {len(data):,} bytes")
    reasons = {FIX_REASON_NAMES[r]: int(batch.counts[r]) for r in range(1, N_FIX_REJECT_REASONS)}
    reasons.update(batch.validation_rejects)
    rate = summary["messages"] / elapsed if elapsed > 0 and summary["messages"] else 0.0
    if args.json:
        print(json.dumps({"messages": summary["messages"], "valid": summary["valid"],
                          "rejected": summary["rejected"], "reasons": reasons,
                          "msgs_per_sec": rate}, indent=2))
        return 0
    frame = batch.messages_frame()
    print(f"file: {path}  ({len(data):,} bytes, {int(batch.counts[FIX_SKIPPED_BYTES]):,} skipped between messages)")
    if len(frame):
        types = frame.group_by("msg_type").len().sort(["len", "msg_type"], descending=[True, False])
        print("msg types: " + ", ".join(f"{t}={n}" for t, n in types.iter_rows()))
        gaps = batch.seq_gaps()
        print(f"MsgSeqNum gaps: {len(gaps)}")
    print(f"parse rate: {rate:,.0f} msgs/s")
    print(f"messages={summary['messages']} valid={summary['valid']} rejected={summary['rejected']} "
          + " ".join(f"{name}={count}" for name, count in reasons.items()))
    return 0
