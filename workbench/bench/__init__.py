"""Benchmark suites for ``python -m workbench bench <suite>``.

Each module here is one suite and defines ``NAME`` (the CLI word), ``DESCRIPTION``,
and ``run(quick: bool = False) -> dict`` returning the suite's JSON keys. Speed is
only ever measured here, never asserted in unit tests: report medians of several
runs, and ratios against a baseline measured in the same run.
"""
from __future__ import annotations

import importlib
import pkgutil
import statistics
import time
from types import ModuleType
from typing import Callable


class Suite:
    """A suite module whose ``run`` also reports what produced the numbers: the result's
    ``"safety"`` key is ``workbench.modes.report()`` (mode, bounds-checked build or not,
    journal policy), so no figure is read without knowing whether it is ProductionSafe
    or LabUnsafe. Every other attribute is the module's."""

    def __init__(self, module: ModuleType):
        self.module = module

    def __getattr__(self, name):
        return getattr(self.module, name)

    def run(self, quick: bool = False) -> dict:
        from workbench import modes

        result = self.module.run(quick=quick)
        result.setdefault("safety", modes.report())
        return result


def discover() -> dict[str, Suite]:
    """All suites by name."""
    suites = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        suites[module.NAME] = Suite(module)
    return suites


def median_rate(work: Callable[[], int], repeats: int = 5) -> float:
    """Median over ``repeats`` runs of items/second; ``work()`` returns the item count."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        elapsed = time.perf_counter() - start
        rates.append(items / elapsed if elapsed > 0 else float("inf"))
    return statistics.median(rates)
