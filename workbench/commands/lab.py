"""``python -m workbench lab ...``: teaching-lab tools. ``lab student-copies OUT/`` writes
every notebook with its solution cells removed and its checks kept
(``workbench.teaching.copies``)."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab", help="teaching-lab tools (student copies of the notebooks)",
        description="Tools for running a teaching lab from the notebooks.")
    sub = parser.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    copies = sub.add_parser(
        "student-copies", help="write exercise-only notebooks (solutions removed, checks kept)",
        description="Write a copy of every notebook without its solution cells and with its "
                    "outputs cleared. The check cells stay, so students see right or not yet.")
    copies.add_argument("out", help="directory to write the copies into")
    copies.add_argument("--notebooks", default=None,
                        help="the notebooks directory (default: the clone's notebooks/)")
    copies.set_defaults(handler=_student_copies)


def _student_copies(args) -> int:
    from workbench.teaching.copies import student_copies

    written = student_copies(args.out, args.notebooks)
    for path in written:
        print(path)
    print(f"{len(written)} student copies in {args.out}")
    return 0
