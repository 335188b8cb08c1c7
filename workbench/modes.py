"""Safety modes: ``ProductionSafe`` (the default) and ``LabUnsafe`` (an explicit opt-in).

A mode is a named set of safety layers. Which one is in force: the ``mode=`` argument
of the object (``Engine(mode="lab")``, ``AcceptorConfig(mode=...)``), else the
``WORKBENCH_MODE`` environment variable (``safe`` / ``lab``, or the full names), else
``ProductionSafe``. :func:`mode` resolves it; :func:`report` says, layer by layer, what
is actually on in this process - every report carries it (``build_info()``, the bench
JSON's ``"safety"`` key, backtest reports, the dashboard).

=================  ===========================================  ==========================
layer              ProductionSafe                               LabUnsafe
=================  ===========================================  ==========================
validation         every argument of ``Engine``'s single-order  ``submit`` takes ints,
                   calls checked at the boundary: types in      enums and floats as given
                   Python, values in the compiled entry         (no type checks); values
                   (``ValueError`` naming the field)            as ProductionSafe
journal            the durable default for what acknowledges    durability ``"none"`` by
                   to others: durability ``"every"``; a FIX     default, no warning
                   acceptor without ``journal=DIR`` warns
                   that it loses its sessions on a restart
risk checks        the pre-trade check on every order of the    the same (see below)
                   backtest and pipeline loops
bounds checks      the kernels' checked build (the default;    the unchecked build
                   see below)                                  (``WORKBENCH_MODE=lab``)
kernel row checks  always: a kernel never indexes memory with   always
                   an unchecked caller value (architecture
                   rule 5)
=================  ===========================================  ==========================

Why it is cut this way (measured by ``python -m workbench bench safety``, one run, one
order stream; the README's safety table):

* **Bounds checks are a property of the compiled code**, not of an object: Numba's
  ``boundscheck`` is a compile flag, and a process holds one build of each kernel (a
  kernel inlines its helpers; a per-object switch would compile every kernel twice per
  process, doubling JIT time and memory). ``kernels.jit`` picks the build once, when
  ``kernels`` is first imported, from the environment: the checked build unless
  ``WORKBENCH_MODE=lab`` (or ``WORKBENCH_SAFE=0``) asks for the unchecked one, so a
  process is ProductionSafe down to its machine code unless it opted out before it
  started (``python -m workbench --mode lab ...`` sets it for a command). The checked
  build is cached in its own directory (``.../numba-safe``), so switching builds
  between runs never recompiles the other one. The mode reports the build as its own
  line (``bounds_checks``) and never pretends: ``Engine(mode="lab")`` in a process on
  the checked build says so. The kernels' own row checks (rule 5) already keep caller
  values from indexing memory; the checked build adds a second line of defence
  against kernel bugs. Where LLVM can prove an index in range (a ``for i in range(n)``
  over an array of length ``n``) it removes the check, so simple loops still vectorise.
* **"Journal on" means the durable path is the default where an acknowledgement
  leaves the process**, not a journal for every ``Engine``: an ``Engine`` is also a
  notebook's book, a backtest's matcher and a benchmark's subject, and journaling those
  into a hidden directory would litter the disk and cost a sync per order for nothing.
  The FIX acceptor acknowledges to counterparties, so ProductionSafe warns (once, in
  the log) when it runs without a journal, and every journal defaults to ``"every"``.
  LabUnsafe defaults a journal to ``"none"`` (written, never synced).
* **Risk checks stay on in both modes**: the pre-trade check is compiled into the
  backtest and pipeline loops, a limit of 0 means no limit, and it costs a few ns an
  order (measured); a second, check-free copy of those loops is not worth keeping.
* **Validation** is per call and cheap: the values are checked in the compiled entry
  (``kernels.book_calls``), where it costs nanoseconds, and a wrong one still gets the
  ``ValueError`` in both modes. LabUnsafe skips only the Python type checks of
  ``submit`` (a float quantity or a bool side would then be taken as an int).
"""
from __future__ import annotations

import enum
import os

__all__ = ["Mode", "ProductionSafe", "LabUnsafe", "mode", "report", "ENV", "default_durability"]

ENV = "WORKBENCH_MODE"

_NAMES = {
    "safe": "SAFE", "production": "SAFE", "productionsafe": "SAFE", "production_safe": "SAFE",
    "lab": "LAB", "unsafe": "LAB", "labunsafe": "LAB", "lab_unsafe": "LAB",
}


class Mode(str, enum.Enum):
    """The two safety modes (module docstring)."""

    SAFE = "ProductionSafe"
    LAB = "LabUnsafe"

    @property
    def validation(self) -> bool:
        """Engine's single-order calls check every argument."""
        return self is Mode.SAFE

    @property
    def journal(self) -> bool:
        """Services that acknowledge to others want a journal (and warn without one)."""
        return self is Mode.SAFE

    @property
    def durability(self) -> str:
        """A journal's default durability policy."""
        return "every" if self is Mode.SAFE else "none"

    @property
    def risk_checks(self) -> bool:
        return True

    @property
    def bounds_checks(self) -> bool:
        """Whether this mode asks for the bounds-checked build (see :func:`report`)."""
        return self is Mode.SAFE

    def __str__(self) -> str:
        return self.value


ProductionSafe = Mode.SAFE
LabUnsafe = Mode.LAB


def _parse(value, field: str) -> Mode:
    if isinstance(value, Mode):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        name = _NAMES.get(key)
        if name is not None:
            return Mode[name]
    raise ValueError(f"{field}={value!r} must be 'safe' (ProductionSafe) or 'lab' (LabUnsafe)")


def mode(value=None, environ=None) -> Mode:
    """The mode in force: ``value`` (a ``Mode`` or its name) if given, else
    ``WORKBENCH_MODE``, else ``ProductionSafe``. ``ValueError`` names a bad value."""
    if value is not None:
        return _parse(value, "mode")
    env = os.environ if environ is None else environ
    text = env.get(ENV, "").strip()
    return _parse(text, ENV) if text else Mode.SAFE


def default_durability(value=None) -> str:
    """The durability policy a journal gets when none is named (by mode)."""
    return mode(value).durability


def report(value=None) -> dict:
    """What is on in this process, layer by layer, for ``mode(value)``: the line every
    report carries. ``bounds_checks`` is the build actually loaded (``kernels.jit``)."""
    from kernels.jit import SAFE_MODE

    m = mode(value)
    out = {
        "mode": m.value,
        "validation": m.validation,
        "bounds_checks": bool(SAFE_MODE),
        "journal_policy": m.durability,
        "risk_checks": m.risk_checks,
        "kernel_row_checks": True,
    }
    if m.bounds_checks and not SAFE_MODE:
        out["note"] = ("kernels built without bounds checks (WORKBENCH_MODE=lab or "
                       "WORKBENCH_SAFE=0 when Python started)")
    elif not m.bounds_checks and SAFE_MODE:
        out["note"] = ("LabUnsafe on the bounds-checked build: set WORKBENCH_MODE=lab before "
                       "Python starts for the unchecked build")
    return out
