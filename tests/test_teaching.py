"""Exercises and student copies: every notebook's exercises are laid out exercise -> solution ->
check, every exercise has a registered checker (and every checker an exercise), ``check`` says
right / not yet without tracebacks and hints from the second failure, and student copies drop
the solutions and keep the checks. That each solution passes its check is proved by nbmake:
``make test`` runs every notebook headless, where a failing check raises."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench import teaching
from workbench.teaching import checker, copies

NOTEBOOKS = copies.notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 13


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_notebook_has_checked_exercises(path):
    assert copies.problems(path) == []
    found = copies.layout(path)
    assert found, f"{path.name} has no exercise (cells tagged exercise/solution/check)"
    registered = teaching.catalog(path.name[:2])
    assert sorted(found) == sorted(registered), (
        f"{path.name}: exercises in the notebook {sorted(found)} vs checkers {sorted(registered)}")
    for ex in registered.values():
        assert ex.hint.strip() and ex.summary.strip(), f"{ex.id}: a checker needs a docstring and a hint"


def test_check_right_wrong_hint_and_no_traceback(monkeypatch, capsys):
    monkeypatch.delenv(checker.ENV_HEADLESS, raising=False)
    monkeypatch.setattr(checker, "_FAILURES", {})
    kw = dict(dask_sec=4.3, serial_sec=8.1, workers=2, tasks=64)
    assert teaching.check("13.2", (4.3 * 2 - 8.1) / 64 * 1000, **kw)
    out = capsys.readouterr().out
    assert out.startswith("✔ 13.2 right:") and "hint" not in out
    assert not teaching.check("13.2", 1.0, **kw)
    out = capsys.readouterr().out
    assert "✘ 13.2 not yet:" in out and "hint" not in out
    assert not teaching.check("13.2", "twelve", **kw)
    out = capsys.readouterr().out
    assert "not yet" in out and "hint:" in out and "Traceback" not in out

    def broken(*args):
        raise ZeroDivisionError("oops")

    verdict = teaching.check("11.2", broken)
    out = capsys.readouterr().out
    assert not verdict and "ZeroDivisionError: oops" in out and "Traceback" not in out


def test_a_checker_that_raises_is_still_one_line(monkeypatch, capsys):
    monkeypatch.delenv(checker.ENV_HEADLESS, raising=False)
    assert not teaching.check("13.1", "not a frame", None, None)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not yet" in out


def test_headless_failure_raises_so_a_wrong_solution_fails_the_run(monkeypatch, capsys):
    monkeypatch.setenv(checker.ENV_HEADLESS, "1")
    with pytest.raises(checker.ExerciseFailed, match="13.3"):
        teaching.check("13.3", "wrong key")
    assert teaching.check("13.2", 7.8125, dask_sec=4.3, serial_sec=8.1, workers=2, tasks=64)


@pytest.mark.parametrize("bad", ["13", "13.x", "99.1", 13.2, "1.1"])
def test_unknown_exercise_id_names_it(bad):
    with pytest.raises(ValueError, match="exercise_id"):
        teaching.check(bad, 1)


def test_student_copies_drop_solutions_and_keep_checks(tmp_path):
    out = tmp_path / "students"
    proc = subprocess.run([sys.executable, "-m", "workbench", "lab", "student-copies", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    written = sorted(out.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for src, dst in zip(NOTEBOOKS, written):
        full = json.loads(src.read_text())["cells"]
        copy = json.loads(dst.read_text())["cells"]
        kinds = [c.get("metadata", {}).get("tags", []) for c in copy]
        assert not any("solution" in t for t in kinds)
        assert sum("check" in t for t in kinds) == sum("check" in c.get("metadata", {}).get("tags", [])
                                                       for c in full)
        assert len(copy) == len(full) - sum("solution" in c.get("metadata", {}).get("tags", [])
                                            for c in full)
        assert all(not c.get("outputs") for c in copy if c["cell_type"] == "code")


def test_a_student_copy_check_says_not_yet_for_the_placeholder(tmp_path, monkeypatch, capsys):
    """Run exercise 13.2's exercise and check cells from a student copy: the placeholder
    answer is not yet right, and says so in one line."""
    monkeypatch.delenv(checker.ENV_HEADLESS, raising=False)
    src = next(p for p in NOTEBOOKS if p.name.startswith("13-"))
    dst = copies.student_copy(src, tmp_path / src.name)
    cells = json.loads(dst.read_text())["cells"]
    mine = [c for c in cells if c.get("metadata", {}).get("exercise") == "13.2"]
    assert [c["metadata"]["tags"] for c in mine] == [["exercise"], ["check"]]
    ns = {"check": teaching.check}
    for cell in mine:
        exec("".join(cell["source"]), ns)
    out = capsys.readouterr().out
    assert "✘ 13.2 not yet" in out


def test_student_copies_refuse_to_overwrite_the_notebooks():
    with pytest.raises(Exception, match="elsewhere"):
        copies.student_copies(copies.NOTEBOOK_DIR)
