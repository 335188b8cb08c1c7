"""``python -m workbench journal replay|inspect|export``: look into an engine's journal.

* ``journal replay DIR [--until SEQ|TIME] [--levels N] [--json]``: rebuild the book as it
  was after sequence number SEQ, or at TIME (ISO 8601, UTC unless it carries an offset,
  or ``ts=NANOSECONDS`` since the epoch: the wall clock when records were journaled),
  and print the top of book of every symbol.
* ``journal inspect DIR [--json]``: records, sequence range, time range, segments,
  snapshots, the writer holding the lock, and whether the tail is intact.
* ``journal export DIR OUT.parquet [--until ...]``: the commands as a polars frame
  (names instead of codes, prices as prices), for audit.

All three read the directory without taking the writer's lock and change nothing; a
damaged journal ends the command with one line naming the segment and offset.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from workbench.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "journal", help="replay, inspect or export an engine's journal",
        description="Read an engine journal (workbench.journal) without changing it.")
    actions = parser.add_subparsers(dest="journal_action", metavar="ACTION", required=True)
    until_help = ("a sequence number (an integer), or a time: ISO 8601 (UTC unless it has "
                  "an offset) or ts=NANOSECONDS (wall clock of the journal)")

    replay = actions.add_parser("replay", help="rebuild the book as of a moment, print the top",
                                description="Rebuild the book as it was then; print the top "
                                            "of book per symbol.")
    replay.add_argument("directory", help="journal directory")
    replay.add_argument("--until", help=until_help)
    replay.add_argument("--levels", type=int, default=1, help="price levels per side (1)")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.set_defaults(handler=_replay)

    inspect = actions.add_parser("inspect", help="what a journal holds",
                                 description="Records, ranges, segments, snapshots, tail.")
    inspect.add_argument("directory", help="journal directory")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(handler=_inspect)

    export = actions.add_parser("export", help="the commands as a parquet file (audit)",
                                description="Write every journaled command to parquet.")
    export.add_argument("directory", help="journal directory")
    export.add_argument("out", help="output .parquet file")
    export.add_argument("--until", help=until_help)
    export.set_defaults(handler=_export)


def parse_until(text: str | None) -> tuple[int | None, int | None]:
    """``--until``: (sequence number, wall time in ns); one of them is set, or neither."""
    if text is None:
        return None, None
    value = text.strip()
    if value.isdigit():
        return int(value), None
    if value.lower().startswith("seq="):
        number = value[4:]
        if number.isdigit():
            return int(number), None
    elif value.lower().startswith("ts="):
        number = value[3:]
        if number.isdigit():
            return None, int(number)
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
            return None, (delta.days * 86_400 + delta.seconds) * 1_000_000_000 \
                + delta.microseconds * 1_000
    raise InputError(f"--until {text!r}: expected a sequence number, an ISO 8601 time or "
                     f"ts=NANOSECONDS")


def _replay(args) -> int:
    from workbench.book import Engine
    from workbench.journal import replay

    if args.levels < 1:
        raise InputError(f"--levels {args.levels}: must be at least 1")
    until_seq, until_ts = parse_until(args.until)
    engine, report = replay(args.directory, until_seq, until_ts, cls=Engine)
    books = []
    for symbol in engine.symbols:
        bids, asks = engine.get_bids(symbol, args.levels), engine.get_asks(symbol, args.levels)
        resting = int(engine.state.books[engine.symbol_index(symbol)]["orders"].sum())
        books.append({"symbol": symbol, "bids": bids, "asks": asks, "orders": resting})
    out = {"directory": report.directory, "seq": report.last_seq,
           "snapshot_seq": report.snapshot_seq, "replayed_records": report.replayed_records,
           "tail_intact": report.tail_intact, "books": books}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    start = f"snapshot {report.snapshot_seq} + " if report.snapshot_seq is not None else ""
    print(f"{report.directory}: the book after sequence {report.last_seq} "
          f"({start}{report.replayed_records} record(s) replayed)")
    if report.tail is not None:
        print(f"  note: the tail is not intact ({report.tail}); it was left out")
    print(f"  {'symbol':<10} {'bid qty':>10} {'bid':>12} {'ask':>12} {'ask qty':>10} {'orders':>8}")
    for book in books:
        depth = max(len(book["bids"]), len(book["asks"]), 1)
        for i in range(depth):
            bid = book["bids"][i] if i < len(book["bids"]) else None
            ask = book["asks"][i] if i < len(book["asks"]) else None
            name = book["symbol"] if i == 0 else ""
            orders = str(book["orders"]) if i == 0 else ""
            print(f"  {name:<10} {bid[1] if bid else '-':>10} {_px(bid):>12} {_px(ask):>12} "
                  f"{ask[1] if ask else '-':>10} {orders:>8}")
    return 0


def _px(level) -> str:
    return "-" if level is None else f"{level[0]:g}"


def _inspect(args) -> int:
    from workbench.journal import inspect

    info = inspect(args.directory)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"journal {info['directory']} ({info['kind']}, symbols {info['symbols']}, "
          f"durability {info['durability']})")
    writer = info["writer_pid"]
    print(f"  writer        {'pid ' + str(writer) if writer else 'none (not open)'}")
    print(f"  records       {info['records']:,} ({info['events']:,} events)")
    print(f"  sequences     {info['seq_first']} .. {info['seq_last']}")
    print(f"  time          {info['time_first']} .. {info['time_last']}")
    print(f"  event ts      {info['event_ts_first']} .. {info['event_ts_last']}")
    print(f"  kinds         {', '.join(f'{k} {v:,}' for k, v in info['kinds'].items()) or '-'}")
    tail = info["tail"]
    note = " (a writer is active: its last write may be in progress)" if writer else ""
    print(f"  tail intact   {'yes' if info['tail_intact'] else 'NO: ' + _tail_text(tail) + note}")
    print(f"  segments      {len(info['segments'])}")
    for s in info["segments"]:
        last = s["last_seq"] if s["last_seq"] is not None else "-"
        print(f"    {s['name']}  seq {s['first_seq']}..{last}  {s['records']:,} "
              f"records  {s['bytes']:,} bytes  {s['status']}")
    print(f"  snapshots     {len(info['snapshots'])}")
    for s in info["snapshots"]:
        print(f"    {s['name']}  seq {s['seq']}  {s['bytes']:,} bytes  "
              f"{'ok' if s['ok'] else 'DAMAGED'}")
    return 0


def _tail_text(tail: dict) -> str:
    return (f"{tail['reason']} ({tail['bytes']} bytes from offset {tail['offset']} of "
            f"{tail['segment']})")


def _export(args) -> int:
    from workbench.journal import export

    until_seq, until_ts = parse_until(args.until)
    frame = export(args.directory, args.out, until_seq, until_ts)
    print(f"wrote {len(frame):,} command record(s) to {args.out}")
    return 0
