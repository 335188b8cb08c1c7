"""The exercise layout of the notebooks, its validation, and student copies.

Every exercise ``"NN.k"`` of ``notebooks/NN-*.ipynb`` is three kinds of code cell, in this
order, each carrying ``metadata["exercise"] = "NN.k"``:

- the **exercise** cell (tag ``exercise``): what the student edits; it runs as given (a
  placeholder answer), so the notebook runs top to bottom before anyone touches it;
- one or more **solution** cells (tag ``solution``, collapsed in JupyterLab with
  ``metadata.jupyter.source_hidden``);
- the **check** cell (tag ``check``): ``check("NN.k", ...)`` from ``workbench.teaching``.

With the solutions in place the check must pass: ``make test`` runs every notebook headless,
where a failing check raises (``workbench.teaching.checker``). A **student copy** is the same
notebook with its solution cells removed and every output cleared; the checks stay, so a
student's run of a check cell says right or not yet.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from workbench.errors import InputError
from workbench.teaching.checker import ID_PATTERN

__all__ = ["NOTEBOOK_DIR", "notebooks", "layout", "problems", "student_copy", "student_copies"]

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KINDS = ("exercise", "solution", "check")
_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d{2}\.\d+)["']""")


def notebooks(directory: str | Path | None = None) -> list[Path]:
    """The curriculum's notebooks, ``NN-*.ipynb``, in order."""
    root = Path(directory) if directory is not None else NOTEBOOK_DIR
    if not root.is_dir():
        raise InputError(f"{root}: no notebooks directory (a clone of hft-workbench has one)")
    return sorted(p for p in root.glob("[0-9][0-9]-*.ipynb"))


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable notebook ({exc})") from exc


def _kind(cell: dict) -> str | None:
    tags = cell.get("metadata", {}).get("tags", [])
    kinds = [k for k in KINDS if k in tags]
    return kinds[0] if len(kinds) == 1 else ("+".join(kinds) if kinds else None)


def layout(path: str | Path) -> dict[str, dict[str, list[int]]]:
    """``{exercise id: {"exercise": [cell indices], "solution": [...], "check": [...]}}``."""
    nb = _read(Path(path))
    found: dict[str, dict[str, list[int]]] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        kind = _kind(cell)
        if kind is None:
            continue
        eid = cell.get("metadata", {}).get("exercise", "?")
        found.setdefault(eid, {k: [] for k in KINDS}).setdefault(kind, []).append(index)
    return found


def problems(path: str | Path) -> list[str]:
    """Everything wrong with one notebook's exercise layout (empty when it is right)."""
    path = Path(path)
    nb = _read(path)
    cells = nb.get("cells", [])
    prefix = path.name[:2]
    out = [f"{path.name}: cell {i} has no id (nbformat 4.5 needs one per cell)"
           for i, cell in enumerate(cells) if not cell.get("id")]
    for eid, kinds in layout(path).items():
        where = f"{path.name} exercise {eid}"
        if not ID_PATTERN.match(eid) or not eid.startswith(prefix + "."):
            out.append(f"{where}: metadata 'exercise' must be '{prefix}.k'")
            continue
        for kind in kinds:
            if kind not in KINDS:
                out.append(f"{where}: a cell is tagged {kind}; one of {KINDS} per cell")
        if len(kinds["exercise"]) != 1 or len(kinds["check"]) != 1 or not kinds["solution"]:
            out.append(f"{where}: needs one exercise cell, one check cell and a solution "
                       f"(has {[(k, len(v)) for k, v in kinds.items()]})")
            continue
        ex, chk, sols = kinds["exercise"][0], kinds["check"][0], kinds["solution"]
        if not ex < min(sols) <= max(sols) < chk:
            out.append(f"{where}: cells must run exercise, solution, check (at {ex}, {sols}, {chk})")
        for i in [ex, chk, *sols]:
            if cells[i].get("cell_type") != "code":
                out.append(f"{where}: cell {i} must be a code cell")
        for i in sols:
            if not cells[i].get("metadata", {}).get("jupyter", {}).get("source_hidden"):
                out.append(f"{where}: solution cell {i} must be collapsed (jupyter.source_hidden)")
        calls = _CHECK_CALL.findall("".join(cells[chk].get("source", [])))
        if calls != [eid]:
            out.append(f"{where}: its check cell must call check({eid!r}, ...) once, calls {calls}")
    return out


def student_copy(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` without its solution cells and with every output cleared."""
    nb = _read(Path(src))
    issues = problems(src)
    if issues:
        raise InputError(f"{src}: exercise layout is wrong: {issues[0]}")
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.get("cells", []):
        if _kind(cell) == "solution":
            continue
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cells.append(cell)
    out["cells"] = cells
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(dst)
    return dst


def student_copies(out_dir: str | Path, directory: str | Path | None = None) -> list[Path]:
    """A student copy of every notebook, same names, in ``out_dir``."""
    out_dir = Path(out_dir)
    sources = notebooks(directory)
    if out_dir.resolve() == (Path(directory) if directory else NOTEBOOK_DIR).resolve():
        raise InputError(f"{out_dir}: write student copies elsewhere, not over the notebooks")
    return [student_copy(p, out_dir / p.name) for p in sources]
