"""What LLVM emitted for a kernel: is its loop vectorised (SIMD), and how wide?

:func:`vector_report` compiles one signature of a kernel again, uncached (Numba cannot
show the assembly of code loaded from its on-disk cache), with the kernel's own options
(``kernels.jit.kernel``: fast-math flags, bounds checks, error model), takes the
function's own body out of ``dispatcher.inspect_asm()`` (not the Python wrapper around
it) and counts its arithmetic instructions:

* **packed** (SIMD): several lanes per instruction. x86-64: ``vfmadd231pd``, ``vaddpd``,
  ``vmulpd``, ``vpaddq``, ``vpmullq`` ... on ``xmm`` (128-bit), ``ymm`` (256) or ``zmm``
  (512) registers; arm64: NEON ``fmla v0.2d``, ``fadd v1.2d``, ``add v2.2d`` (128 bits)
  or SVE ``z`` registers.
* **scalar**: one lane. x86-64 ``vaddsd``/``vmulsd``/``vfmadd231sd`` (a double in the low
  lane of an ``xmm``), arm64 ``fadd d0``/``fmadd d0``.

The verdict: vectorised when the body holds packed arithmetic; ``width_bits`` is the
widest register such an instruction uses. Moves (``vmovups``) and logic (``vxorps``, a
register-zeroing idiom) are not arithmetic and do not count. :func:`host_simd` says what
the CPU offers, as LLVM sees it (the same source ``workbench.buildinfo`` reports).

:func:`refcount_calls` reads the LLVM IR of a kernel (``dispatcher.inspect_llvm()``, the
same rule: a fresh compile when the code came from the cache) and counts the calls to
Numba's runtime that update reference counts (``NRT_incref``, ``NRT_decref``), per compiled
function: the kernel's own and every kernel it calls that LLVM did not inline (their code
is linked into the kernel's module), but not the wrappers that convert Python arguments.
"""
from __future__ import annotations

import platform
import re
import warnings
from dataclasses import dataclass

__all__ = ["AsmReport", "vector_report", "host_simd", "function_body", "classify",
           "refcount_calls"]

# x86-64 (AT&T syntax as LLVM prints it): mnemonic, then operands
_X86_PACKED = re.compile(
    r"^\s*(v?(?:add|sub|mul|div|min|max|sqrt|fn?m(?:add|sub)\d*)p[sd]|"
    r"v?p(?:add|sub|mull|muludq|mulld|maddwd|minu|maxu|mins|maxs)[bwdq]?|"
    r"vcvt\w*p[sd]\w*|vcvtqq2pd|vcvtdq2pd)\b", re.I)
_X86_SCALAR = re.compile(r"^\s*(v?(?:add|sub|mul|div|min|max|sqrt|fn?m(?:add|sub)\d*)s[sd])\b",
                         re.I)
_X86_REG = re.compile(r"%(xmm|ymm|zmm)\d+")
_X86_BITS = {"xmm": 128, "ymm": 256, "zmm": 512}
# arm64: NEON vector arrangement (v0.2d ...) or SVE (z0.d ...)
_ARM_ARITH = re.compile(r"^\s*(f?(?:add|sub|mul|mla|mls|div|madd|msub|fmla|fmls|min|max)\w*|"
                        r"fmla|fmls|fmadd|fmsub)\b", re.I)
_ARM_VEC = re.compile(r"\bv\d+\.(?:2d|4s|8h|16b|2s|4h|8b)\b")
_ARM_SVE = re.compile(r"\bz\d+\.[bhsd]\b")
_ARM_SCALAR = re.compile(r"\b[dsh]\d+\b")


@dataclass(frozen=True)
class AsmReport:
    """The verdict on one compiled signature."""

    function: str
    signature: str
    isa: str                 # "x86-64", "arm64" or the machine name
    vectorised: bool
    width_bits: int          # widest packed register (0: none)
    packed: int              # packed (SIMD) arithmetic instructions
    scalar: int              # scalar floating-point arithmetic instructions
    examples: tuple          # a few packed (else scalar) instruction lines
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.vectorised:
            return f"vectorised ({self.width_bits}-bit registers, {self.packed} packed ops)"
        return f"scalar ({self.scalar} scalar floating-point ops, no packed arithmetic)"

    def as_row(self) -> dict:
        return {"function": self.function, "signature": self.signature, "isa": self.isa,
                "vectorised": self.vectorised, "width_bits": self.width_bits,
                "packed_ops": self.packed, "scalar_fp_ops": self.scalar,
                "example": self.examples[0] if self.examples else "", "verdict": self.verdict}


def _isa() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86-64"
    if machine in ("arm64", "aarch64"):
        return "arm64"
    return machine or "unknown"


def host_simd() -> dict:
    """What vector instructions this CPU offers, as LLVM sees it: the ISA, LLVM's CPU
    name, the SIMD features it reports and the widest vector register (bits)."""
    import llvmlite.binding as llvm

    features = {k for k, on in llvm.get_host_cpu_features().items() if on}
    isa = _isa()
    if isa == "x86-64":
        names = [f for f in ("sse2", "sse4.2", "avx", "avx2", "fma", "avx512f", "avx512dq",
                             "avx512vl") if f in features]
        widest = 512 if "avx512f" in features else 256 if "avx" in features else 128
    elif isa == "arm64":
        names = [f for f in ("neon", "fp-armv8", "sve", "sve2") if f in features]
        widest = 128
    else:
        names, widest = [], 0
    return {"isa": isa, "cpu_name": llvm.get_host_cpu_name(), "simd_features": names,
            "widest_vector_bits": widest, "avx2": "avx2" in features}


def function_body(asm: str, symbol: str) -> str:
    """The lines of ``symbol``'s own body in an assembly listing (from its label to
    LLVM's ``.Lfunc_end``); the whole listing when the label is not found."""
    lines = asm.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{symbol}:")
                  or line.startswith(f'"{symbol}":')), None)
    if start is None:
        return asm
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(".Lfunc_end")),
               len(lines))
    return "\n".join(lines[start:end])


def classify(body: str, isa: str | None = None) -> tuple[int, int, int, list[str]]:
    """``(packed, scalar, width_bits, packed_lines)`` of an assembly body."""
    isa = isa or _isa()
    packed = scalar = width = 0
    examples: list[str] = []
    for line in body.splitlines():
        text = line.strip()
        if not text or text.startswith((".", "#", "//", ";")):
            continue
        if isa == "x86-64":
            regs = _X86_REG.findall(text)
            if _X86_PACKED.match(text) and regs:
                packed += 1
                width = max(width, max(_X86_BITS[r] for r in regs))
                examples.append(text)
            elif _X86_SCALAR.match(text):
                scalar += 1
        elif isa == "arm64":
            if _ARM_ARITH.match(text):
                if _ARM_SVE.search(text):
                    packed += 1
                    width = max(width, 128)   # scalable: at least 128
                    examples.append(text)
                elif _ARM_VEC.search(text):
                    packed += 1
                    width = max(width, 128)
                    examples.append(text)
                elif _ARM_SCALAR.search(text) and text.lower().startswith("f"):
                    scalar += 1
    return packed, scalar, width, examples


def _signature_of(dispatcher, signature):
    if signature is None:
        if len(dispatcher.signatures) != 1:
            raise ValueError(f"{dispatcher.__name__} has {len(dispatcher.signatures)} compiled "
                             "signatures: name one (signature=...) or call it once first")
        return dispatcher.signatures[0]
    if isinstance(signature, (tuple, list)):
        from numba import typeof
        from numba.core import types

        # Numba types as they are; example arguments (arrays, numbers) by their type
        return tuple(t if isinstance(t, types.Type) else typeof(t) for t in signature)
    args = getattr(signature, "args", None)
    if args is not None:
        return tuple(args)
    raise ValueError(f"signature={signature!r} must be a tuple of Numba types "
                     "(dispatcher.signatures[k]) or of example arguments")


def vector_report(dispatcher, signature=None) -> AsmReport:
    """Compile ``dispatcher`` (a ``kernels.jit.kernel`` function) for ``signature`` (a
    tuple of Numba types or of example arguments; default: its one compiled signature)
    without the cache, and say whether the
    machine code of its body is vectorised. ``ValueError`` for what is not a Numba
    dispatcher or an ambiguous signature."""
    from numba.core.registry import CPUDispatcher

    if not isinstance(dispatcher, CPUDispatcher):
        raise ValueError(f"dispatcher must be a compiled kernel (a Numba dispatcher), got "
                         f"{type(dispatcher).__name__}")
    sig = _signature_of(dispatcher, signature)
    key = (dispatcher.py_func, sig, repr(sorted(dispatcher.targetoptions.items(), key=str)))
    if key not in _REPORTS:
        _REPORTS[key] = _report(dispatcher, sig)
    return _REPORTS[key]


_REPORTS: dict = {}   # one compile per (function, signature, options) and process


def _fresh_compile(dispatcher, sig):
    """``dispatcher``'s function compiled again for ``sig`` with its own options but
    without the on-disk cache (Numba cannot show the code of a cached kernel)."""
    from numba import njit

    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("nopython", "cache")}
    fresh = njit(cache=False, **options)(dispatcher.py_func)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # NumbaPerformanceWarning and friends: not the point
        fresh.compile(sig)
    return fresh


def _report(dispatcher, sig) -> AsmReport:
    options = dispatcher.targetoptions
    fresh = _fresh_compile(dispatcher, sig)
    compiled = fresh.overloads[sig]
    asm = fresh.inspect_asm(sig)
    symbol = compiled.fndesc.mangled_name
    isa = _isa()
    packed, scalar, width, examples = classify(function_body(asm, symbol), isa)
    note = ""
    if options.get("boundscheck"):
        note = ("bounds-checked build (ProductionSafe): LLVM deletes the checks it proves "
                "redundant; one it cannot remove blocks vectorising")
    if isa not in ("x86-64", "arm64"):
        note = f"no instruction table for {isa}: the verdict counts nothing"
    if not examples:
        scalar_lines = [line.strip() for line in function_body(asm, symbol).splitlines()
                        if _X86_SCALAR.match(line.strip())]
        examples = scalar_lines[:3]
    return AsmReport(dispatcher.__name__, ", ".join(str(t) for t in sig), isa, packed > 0,
                     width, packed, scalar, tuple(examples[:3]), note)


# ------------------------------------------------------------------ reference counts
_DEFINE = re.compile(r'^define\b[^@]*@"?([^\s"(]+)"?\(')
_REFCOUNT_CALL = re.compile(r"\b(?:call|invoke)\b[^;]*@(NRT_incref|NRT_decref)\(")
_MANGLED_PART = re.compile(r"(\d+)")


def _python_name(symbol: str) -> str:
    """The Python function name in a Numba symbol: ``loop_counted`` from
    ``_ZN7kernels17lessons_refcounts12loop_countedB2v1B..E5Array...`` (Itanium-style
    ``<length><name>`` parts after ``_ZN``; the last one is the function)."""
    pos, last = 3, symbol
    while pos < len(symbol) and symbol[pos].isdigit():
        digits = _MANGLED_PART.match(symbol, pos).group(1)
        pos += len(digits)
        last = symbol[pos:pos + int(digits)]
        pos += int(digits)
    return last


def _llvm_ir(dispatcher, sig) -> str:
    """The LLVM IR of ``dispatcher`` for ``sig``: its own when it was compiled in this
    process, else (loaded from the on-disk cache, which Numba cannot show) that of a
    fresh, uncached compile with the kernel's own options."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # NumbaPerformanceWarning and friends: not the point
        dispatcher.compile(sig)
    if not getattr(dispatcher.overloads[sig].library, "_disable_inspection", False):
        return dispatcher.inspect_llvm(sig)
    return _fresh_compile(dispatcher, sig).inspect_llvm(sig)


def refcount_calls(dispatcher, signature=None) -> dict:
    """How many reference-count updates the compiled code of ``dispatcher`` (a
    ``kernels.jit.kernel`` function) for ``signature`` (as :func:`vector_report`'s)
    holds: calls to ``NRT_incref`` and ``NRT_decref`` in its LLVM IR.

    Returns ``{"function", "signature", "incref", "decref", "by_function"}``, where
    ``by_function`` maps each compiled function of the module (the kernel and the kernels
    it calls that LLVM kept as calls, by Python name) to ``{"incref": n, "decref": m}``
    and the totals add them up. The wrappers that convert arguments from and to Python
    are left out: they run once per call from Python, not per call between kernels.
    These are static counts (call sites in the code), not how often they run.
    ``ValueError`` for what is not a Numba dispatcher or an ambiguous signature."""
    from numba.core.registry import CPUDispatcher

    if not isinstance(dispatcher, CPUDispatcher):
        raise ValueError(f"dispatcher must be a compiled kernel (a Numba dispatcher), got "
                         f"{type(dispatcher).__name__}")
    sig = _signature_of(dispatcher, signature)
    by_function: dict[str, dict[str, int]] = {}
    counts = None
    for line in _llvm_ir(dispatcher, sig).splitlines():
        if line.startswith("define"):
            found = _DEFINE.match(line)
            symbol = found.group(1) if found else ""
            counts = None
            if symbol.startswith("_ZN") and not symbol.startswith("_ZN7cpython"):
                name, k = _python_name(symbol), 2
                while name in by_function:           # one Python function compiled twice
                    name, k = f"{_python_name(symbol)}#{k}", k + 1
                counts = by_function[name] = {"incref": 0, "decref": 0}
        elif line.startswith("}"):
            counts = None
        elif counts is not None:
            call = _REFCOUNT_CALL.search(line)
            if call:
                counts["incref" if call.group(1) == "NRT_incref" else "decref"] += 1
    return {"function": dispatcher.__name__, "signature": ", ".join(str(t) for t in sig),
            "incref": sum(c["incref"] for c in by_function.values()),
            "decref": sum(c["decref"] for c in by_function.values()),
            "by_function": by_function}
