"""Exercise checkers: ``check("11.2", answer)`` tells a student whether an answer is right.

Every exercise of every notebook has an id ``"NN.k"`` (notebook NN, exercise k) and one
checker, registered with ``@exercise("NN.k", hint=...)`` in
``workbench.teaching.exercises.nbNN``. A checker receives the student's answer (a value or a
function) and returns ``verdict(ok, message)``. It calls the student's code through
``attempt(fn, *args)``, so an error in their code becomes one line of feedback, never a
traceback.

``check`` prints one line (``right`` or ``not yet``, with the reason), and from the second
failure of the same exercise on, the hint. It returns the verdict (truthy when right).

In a headless run (``WORKBENCH_HEADLESS=1``, set by ``make test`` and ``tests/conftest.py``
for nbmake) a wrong answer raises :class:`ExerciseFailed` instead: the notebooks run with
their solutions in place, so a failing check there means a solution and its checker disagree,
and the test run must fail.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Callable

__all__ = ["Verdict", "verdict", "attempt", "exercise", "check", "catalog", "ExerciseFailed",
           "ENV_HEADLESS", "headless", "ID_PATTERN"]

ENV_HEADLESS = "WORKBENCH_HEADLESS"
ID_PATTERN = re.compile(r"^(\d{2})\.(\d+)$")


class ExerciseFailed(AssertionError):
    """A check failed in a headless run (a solution that does not pass its checker)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return ("right: " if self.ok else "not yet: ") + self.message

    def _ipython_display_(self) -> None:   # ``check`` already printed it: show nothing more
        pass


@dataclass(frozen=True)
class Exercise:
    id: str
    checker: Callable[..., Verdict]
    hint: str
    summary: str


_REGISTRY: dict[str, Exercise] = {}
_FAILURES: dict[str, int] = {}


def verdict(ok: bool, message: str) -> Verdict:
    return Verdict(bool(ok), message)


def attempt(fn, *args, **kwargs):
    """``(result, None)``, or ``(None, why)`` when ``fn`` is not callable or raised: the
    student reads one line, never a traceback."""
    if not callable(fn):
        return None, f"pass your function itself, not {type(fn).__name__}"
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # the student's code: any error is an answer to explain
        return None, f"your function raised {type(exc).__name__}: {exc}"


def exercise(exercise_id: str, *, hint: str):
    """Register the decorated function as the checker of ``exercise_id`` ("NN.k")."""
    if not ID_PATTERN.match(exercise_id):
        raise ValueError(f"exercise_id must look like '07.2', got {exercise_id!r}")
    if not hint:
        raise ValueError(f"exercise {exercise_id}: a hint is required")

    def register(fn):
        if exercise_id in _REGISTRY and _REGISTRY[exercise_id].checker.__qualname__ != fn.__qualname__:
            raise ValueError(f"exercise {exercise_id} is registered twice")
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        _REGISTRY[exercise_id] = Exercise(exercise_id, fn, hint, " ".join(doc.split()))
        return fn
    return register


def _load(notebook: str) -> None:
    try:
        importlib.import_module(f"workbench.teaching.exercises.nb{notebook}")
    except ModuleNotFoundError as exc:
        if exc.name != f"workbench.teaching.exercises.nb{notebook}":
            raise


def catalog(notebook: str | int | None = None) -> dict[str, Exercise]:
    """The registered exercises (of one notebook, "07" or 7, or of all), by id."""
    from workbench.teaching import exercises as package

    if notebook is None:
        for name in package.NOTEBOOKS:
            _load(name)
        return dict(sorted(_REGISTRY.items(), key=lambda kv: _order(kv[0])))
    nb = f"{int(notebook):02d}"
    _load(nb)
    return {k: v for k, v in sorted(_REGISTRY.items(), key=lambda kv: _order(kv[0]))
            if k.startswith(nb + ".")}


def _order(exercise_id: str) -> tuple[int, int]:
    nb, k = exercise_id.split(".")
    return int(nb), int(k)


def headless() -> bool:
    return os.environ.get(ENV_HEADLESS, "").strip() not in ("", "0")


def check(exercise_id: str, *answer, **kwargs) -> Verdict:
    """Check an answer to exercise ``exercise_id`` and say right or not yet, with the reason;
    a hint from the second failure on. Returns the verdict (truthy when right)."""
    if not isinstance(exercise_id, str) or not ID_PATTERN.match(exercise_id):
        raise ValueError(f"exercise_id must look like '07.2', got {exercise_id!r}")
    _load(exercise_id[:2])
    ex = _REGISTRY.get(exercise_id)
    if ex is None:
        known = sorted(k for k in _REGISTRY if k.startswith(exercise_id[:3]))
        raise ValueError(f"exercise_id {exercise_id!r} is not an exercise; this notebook has {known}")
    try:
        result = ex.checker(*answer, **kwargs)
    except Exception as exc:  # a checker must never show a student a traceback
        result = verdict(False, f"your answer could not be checked ({type(exc).__name__}: {exc})")
    if not isinstance(result, Verdict):
        result = verdict(bool(result), "")
    if result.ok:
        print(f"✔ {exercise_id} right: {result.message}")
        return result
    _FAILURES[exercise_id] = _FAILURES.get(exercise_id, 0) + 1
    print(f"✘ {exercise_id} not yet: {result.message}")
    if _FAILURES[exercise_id] >= 2:
        print(f"  hint: {ex.hint}")
    if headless():
        raise ExerciseFailed(f"exercise {exercise_id}: {result.message}")
    return result
