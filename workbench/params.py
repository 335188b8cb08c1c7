"""Parameters from people to kernels: one spec type, one validation, one conversion.

Every parameter family (strategies, risk limits, admission controllers) is described
once, next to its kernel, as ``kernels.registry.Param`` rows (``kernels.strategies.
STRATEGIES``, ``kernels.risk.RISK_PARAMS``, ``kernels.admission.ADMISSION_PARAMS`` and
``CONTROLLERS``). This module turns those rows into :class:`ParamSet` objects that
validate values by name (a ``ValueError`` naming the field and the value) and write
them into the kernel's float64 array in the kernel's units. The backtester, the live
pipeline, the widgets and the CLI all go through here, so a name means the same thing,
in the same unit, everywhere.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from kernels import admission as kadm
from kernels import risk as krisk
from kernels import strategies as kstrat
from kernels.registry import Entry, Param

__all__ = ["ParamSet", "StrategySpec", "number", "choice", "cpus", "strategy_spec",
           "strategy_names", "RISK", "ADMISSION", "controller_names", "admission_defaults"]


# ------------------------------------------------------------------ validation helpers
def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           integer: bool = False) -> float:
    """``value`` as a finite float within ``[low, high]``; bools are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} must be a number")
    given = value
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={given!r} must be finite")
    if integer and value != int(value):
        raise ValueError(f"{name}={given!r} must be a whole number")
    if low is not None and value < low:
        raise ValueError(f"{name}={given!r} must be >= {low:g}")
    if high is not None and value > high:
        raise ValueError(f"{name}={given!r} must be <= {high:g}")
    return value


def choice(name: str, value: Any, options: Iterable) -> Any:
    options = list(options)
    if value not in options:
        raise ValueError(f"{name}={value!r} must be one of {options}")
    return value


def cpus(name, cpus) -> tuple[int, ...] | None:
    """``cpus`` (an int or an iterable of ints; None: all CPUs) as a sorted tuple of
    distinct CPU numbers that exist here; ``ValueError`` naming ``name`` otherwise."""
    if cpus is None:
        return None
    if isinstance(cpus, (int, np.integer)):
        cpus = (int(cpus),)
    cpus = tuple(sorted({int(c) for c in cpus}))
    available = os.cpu_count() or 1
    bad = [c for c in cpus if c < 0 or c >= available]
    if not cpus or bad:
        raise ValueError(f"{name}={cpus!r} must name CPUs in 0..{available - 1}")
    return cpus


# ------------------------------------------------------------------------ the spec type
class ParamSet:
    """The parameters one kernel array holds, validated by name.

    ``owner`` names the family in error messages; ``size`` is the array's length
    (default: one past the largest index).
    """

    def __init__(self, owner: str, params: Iterable[Param], size: int | None = None):
        self.owner = owner
        self.params: tuple[Param, ...] = tuple(params)
        self._by_name = {p.name: p for p in self.params}
        self.size = size if size is not None else max((p.index for p in self.params), default=-1) + 1

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def defaults(self) -> dict[str, float]:
        """Defaults in the units people type."""
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The values as floats, each checked against its row; unknown names refused."""
        if not isinstance(values, Mapping):
            raise ValueError(f"{self.owner} parameters must be a mapping name -> value, "
                             f"got {values!r}")
        unknown = sorted(set(values) - set(self._by_name))
        if unknown:
            raise ValueError(f"{self.owner} has no parameter(s) {unknown}; "
                             f"it takes {list(self.names)}")
        return {k: number(k, v, low=self._by_name[k].low, high=self._by_name[k].high,
                          integer=self._by_name[k].integer) for k, v in values.items()}

    def to_array(self, values: Mapping[str, Any] = (), out: np.ndarray | None = None) -> np.ndarray:
        """Defaults overridden by ``values``, in kernel units, at each row's index."""
        checked = self.validate(dict(values))
        if out is None:
            out = np.zeros(self.size, dtype=np.float64)
        elif out.shape[0] < self.size:
            raise ValueError(f"{self.owner}: the array holds {out.shape[0]} values, need {self.size}")
        for p in self.params:
            out[p.index] = checked.get(p.name, p.default) * p.scale
        return out

    def apply(self, values: Mapping[str, Any], array: np.ndarray) -> np.ndarray:
        """Write only ``values`` (validated, in kernel units) into ``array``."""
        for k, v in self.validate(values).items():
            array[self._by_name[k].index] = v * self._by_name[k].scale
        return array

    def from_array(self, array: np.ndarray) -> dict[str, float]:
        """The array's values back in the units people type."""
        return {p.name: float(array[p.index]) / p.scale for p in self.params}

    def __repr__(self) -> str:
        return f"ParamSet({self.owner!r}, {list(self.names)})"


RISK = ParamSet("risk", krisk.RISK_PARAMS, krisk.N_RISK_PARAMS)
ADMISSION = ParamSet("admission", kadm.ADMISSION_PARAMS, kadm.N_ADM_PARAMS)


def controller_names() -> tuple[str, ...]:
    return kadm.CONTROLLERS.names()


def admission_defaults(controller: str, target_ns: float) -> dict[str, float]:
    """Every admission parameter's default for ``controller`` at ``target_ns``."""
    choice("controller", controller, controller_names())
    array = kadm.default_params(kadm.CONTROLLERS.id_of(controller),
                                       number("target_ns", target_ns, low=1.0))
    return ADMISSION.from_array(array)


# -------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class StrategySpec:
    """A strategy kernel with its parameters; ``id`` is its registry row (None for an
    unregistered user function, which the backtester runs but the pipeline cannot
    select by id)."""

    name: str
    fn: Callable
    params: ParamSet
    doc: str = ""
    id: int | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.params.names

    def defaults(self) -> dict[str, float]:
        return self.params.defaults()

    def vector(self, overrides: Mapping[str, Any] = ()) -> np.ndarray:
        """The kernel's ``params`` array: defaults overridden by ``overrides``."""
        return self.params.to_array(overrides)


def _spec_of(entry: Entry, ident: int | None) -> StrategySpec:
    return StrategySpec(entry.name, entry.fn, ParamSet(f"strategy {entry.name!r}", entry.params),
                        entry.doc, ident)


def strategy_names() -> tuple[str, ...]:
    return kstrat.STRATEGIES.names()


def strategy_spec(strategy: Any, param_names: Iterable[str] | None = None,
                  defaults: Mapping[str, float] | None = None) -> StrategySpec:
    """A :class:`StrategySpec` from a registry name, a registry ``Entry``, a spec, or an
    ``@numba.njit`` function (``param_names`` orders its ``params`` array)."""
    registry = kstrat.STRATEGIES
    if isinstance(strategy, StrategySpec):
        return strategy
    if isinstance(strategy, str):
        if strategy not in registry:
            raise ValueError(f"strategy={strategy!r} is not one of {list(registry.names())} "
                             "(or pass an @numba.njit function)")
        return _spec_of(registry[strategy], registry.id_of(strategy))
    if isinstance(strategy, Entry):
        ident = registry.id_of(strategy.name) if strategy.name in registry \
            and registry[strategy.name] is strategy else None
        return _spec_of(strategy, ident)
    if callable(strategy):
        if not hasattr(strategy, "py_func"):
            raise ValueError("a user strategy must be compiled: decorate it with @numba.njit")
        defaults = dict(defaults or {})
        names = tuple(param_names or ())
        unknown = sorted(set(defaults) - set(names))
        if unknown:
            raise ValueError(f"defaults name parameter(s) {unknown} missing from param_names")
        rows = tuple(Param(n, i, float(number(n, defaults.get(n, 0.0))), -math.inf, math.inf)
                     for i, n in enumerate(names))
        name = getattr(strategy, "__name__", "user")
        return StrategySpec(name, strategy, ParamSet(f"strategy {name!r}", rows), "user strategy")
    raise ValueError(f"strategy={strategy!r} must be a name or an @numba.njit function")
