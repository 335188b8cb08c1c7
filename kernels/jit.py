"""The one decorator factory every kernel is compiled through.

Why one factory: every kernel must share the same compile options (on-disk cache so
the second run starts instantly, ``nogil`` so Python threads can run kernels in
parallel, the numpy error model so integer division carries no zero check on the
hot path) and the same switch for the safe mode.

The build: every kernel is compiled with Numba's bounds checking (an out-of-range index
raises ``IndexError`` instead of reading stray memory) unless the process asked for the
unchecked fast path. That is the ProductionSafe default of ``workbench.modes``; the
process decides once, when ``kernels`` is first imported, from its environment:

* ``WORKBENCH_SAFE=1`` / ``0``, when set, picks the checked / unchecked build outright;
* otherwise ``WORKBENCH_MODE=lab`` (LabUnsafe, an explicit opt-in) picks the unchecked
  build, and anything else (unset, ``safe``) the checked one.

Numba's cache key does not include the bounds-check flag, so the checked build is
cached in its own directory (``numba-safe`` below ``NUMBA_CACHE_DIR``, or below
``~/.cache/hft-workbench``) rather than sharing, and poisoning, the unchecked build's
cache. Switching builds between runs therefore never recompiles the other one.

Stale caches: Numba checks a cached kernel against its own source file only, but kernels
inline helpers, state layouts and constants from other files (``state_views``,
``book_state``), so an edit there would leave a cached kernel using the old layout. At
import, :func:`invalidate_stale_caches` fingerprints each module of the package together
with every package module it imports (transitively) and deletes the cached kernels of
the modules whose fingerprint changed: an edit recompiles what depends on it, and nothing
stale is ever loaded.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from numba import njit, types

__all__ = ["SAFE_MODE", "kernel", "safe_mode_enabled", "invalidate_stale_caches",
           "fingerprints", "LAB_MODE_NAMES"]

# The spellings of LabUnsafe in ``WORKBENCH_MODE`` (``workbench.modes`` parses the same
# names; kernels may not import workbench, so a test keeps the two lists equal).
LAB_MODE_NAMES = frozenset({"lab", "unsafe", "labunsafe", "lab_unsafe"})
_OFF = ("0", "false", "no", "off")


def safe_mode_enabled(environ=os.environ) -> bool:
    """True when this process compiles bounds-checked kernels (module docstring):
    ``WORKBENCH_SAFE`` when set, else every mode but LabUnsafe (``WORKBENCH_MODE=lab``)."""
    flag = environ.get("WORKBENCH_SAFE", "").strip().lower()
    if flag:
        return flag not in _OFF
    mode = environ.get("WORKBENCH_MODE", "").strip().lower().replace("-", "_")
    return mode not in LAB_MODE_NAMES


SAFE_MODE: bool = safe_mode_enabled()

if SAFE_MODE:
    # A separate cache tree for bounds-checked builds (see module docstring), also when
    # the user points NUMBA_CACHE_DIR somewhere: safe builds go to a subfolder of it.
    _base = numba.config.CACHE_DIR or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "hft-workbench")
    numba.config.CACHE_DIR = os.path.join(_base, "numba-safe")


_PACKAGE = Path(__file__).resolve().parent
_MARKER = "workbench-kernels.fingerprints.json"


def _module_sources() -> dict[str, Path]:
    """``{"backtest.l2": path, ...}`` for every source file of the package."""
    out = {}
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def _imports(name: str, path: Path, modules) -> set[str]:
    """The package modules ``name`` imports (relative or ``kernels.`` absolute)."""
    import ast

    found = set()
    package = name.split(".")[:-1]
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "kernels":
                parts = node.module.split(".")[1:]
            else:
                continue
            stem = ".".join(parts)
            for alias in node.names:  # ``from . import book`` names a module
                sub = f"{stem}.{alias.name}" if stem else alias.name
                if sub in modules:
                    found.add(sub)
            if stem in modules:
                found.add(stem)
            elif f"{stem}.__init__" in modules:
                found.add(f"{stem}.__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "kernels" and ".".join(parts[1:]) in modules:
                    found.add(".".join(parts[1:]))
    return found


def _fingerprints(modules, digest, deps) -> dict[str, str]:
    """Per module: a hash of its source and of every package module it imports,
    transitively (what a cached kernel of it may have inlined or frozen as a constant)."""
    out = {}
    for m in modules:
        seen, todo = {m}, [m]
        while todo:
            for d in deps[todo.pop()]:
                if d not in seen and d in digest:
                    seen.add(d)
                    todo.append(d)
        h = hashlib.sha1(numba.__version__.encode())
        for d in sorted(seen):
            h.update(d.encode() + digest[d].encode())
        out[m] = h.hexdigest()
    return out


def _cache_dir_of(module: str) -> Path:
    """The directory holding ``module``'s cached kernels (Numba's own layout: the
    source's ``__pycache__``, or its mirror below ``NUMBA_CACHE_DIR``)."""
    src_dir = _PACKAGE.joinpath(*module.split(".")[:-1])
    if numba.config.CACHE_DIR:
        # numba.core.caching.UserProvidedCacheLocator: "<dir name>_<sha1 of the dir path>"
        path = os.path.abspath(str(src_dir))
        digest = hashlib.sha1(path.encode()).hexdigest()
        return Path(numba.config.CACHE_DIR) / f"{os.path.split(path)[-1]}_{digest}"
    return src_dir / "__pycache__"


def invalidate_stale_caches() -> list[str]:
    """Delete the cached kernels of every module whose source, or the source of a
    package module it imports, changed since they were written (module docstring).
    Returns the modules it invalidated. Costs a few ms when nothing changed (the
    import graph is re-parsed only for edited files). Never fails: an unwritable
    cache is left to Numba's own checks."""
    import json

    try:
        modules = _module_sources()
        digest = {m: hashlib.sha1(p.read_bytes()).hexdigest() for m, p in modules.items()}
        root = _cache_dir_of("jit")
        marker = root / _MARKER
        try:
            old = json.loads(marker.read_text())
            old_digest, old_deps, old_prints = old["digest"], old["deps"], old["prints"]
        except (OSError, ValueError, KeyError, TypeError):
            old_digest, old_deps, old_prints = {}, {}, {}
        if old_digest == digest:
            return []
        deps = {m: (set(old_deps[m]) if old_digest.get(m) == digest[m] and m in old_deps
                    else _imports(m, p, modules)) for m, p in modules.items()}
        prints = _fingerprints(modules, digest, deps)
        stale = [m for m, f in prints.items() if old_prints.get(m) != f]
        for m in stale:
            d = _cache_dir_of(m)
            stem = m.split(".")[-1]
            if d.is_dir():
                for f in list(d.glob(f"{stem}.*.nbi")) + list(d.glob(f"{stem}.*.nbc")):
                    try:
                        f.unlink()
                    except FileNotFoundError:
                        pass
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{_MARKER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"digest": digest, "prints": prints,
                                   "deps": {m: sorted(v) for m, v in deps.items()}}))
        os.replace(tmp, marker)
        return stale
    except OSError:
        return []


def fingerprints() -> dict[str, str]:
    """``{"book": sha1, ...}``: per module of the package, the fingerprint of its source
    and of every package module it imports, transitively (what decides whether a cached
    kernel is stale; other caches of compiled code, such as ``workbench``'s generated
    loops, key on it too). Read from the marker the import wrote when it describes the
    sources on disk, else recomputed."""
    import json

    modules = _module_sources()
    digest = {m: hashlib.sha1(p.read_bytes()).hexdigest() for m, p in modules.items()}
    try:
        marker = json.loads((_cache_dir_of("jit") / _MARKER).read_text())
        if marker["digest"] == digest:
            return dict(marker["prints"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    deps = {m: _imports(m, p, modules) for m, p in modules.items()}
    return _fingerprints(modules, digest, deps)


# the modules whose cached kernels this import deleted (for tests and the curious)
INVALIDATED_AT_IMPORT: list[str] = invalidate_stale_caches()

# concurrent processes save to Numba's cache one at a time (``compile_claims``); the
# checked build's bounds checks compile to one compare and one shared exit (``boundscheck``)
from . import boundscheck as _boundscheck  # noqa: E402
from . import compile_claims as _compile_claims  # noqa: E402

_compile_claims.install_save_lock()
_boundscheck.install()


def kernel(fn=None, *, inline: str = "never", fastmath: bool = False, parallel: bool = False,
           cache: bool = True, nrt: bool = True, nogil: bool = True,
           boundscheck: bool | None = None):
    """Compile ``fn`` as a workbench kernel.

    Usable bare (``@kernel``) or with options (``@kernel(inline="always")``).
    ``inline="always"`` is for tiny helpers called from hot loops; ``parallel`` for
    kernels using ``prange``. ``cache=False`` only for functions that take other
    functions as arguments (user callbacks), which Numba cannot cache. ``nrt=False``
    compiles without Numba's runtime: no reference counting of the arrays a kernel is
    given or passes on (an atomic update per array per call), and no allocation (it
    would not compile); for kernels that only work on arrays their caller owns for the
    whole call (``kernels.book``). ``nogil=False`` keeps the GIL for entries Python
    calls once per order (``kernels.book_calls``): they return in a few hundred
    nanoseconds, and releasing and retaking the GIL would add ~40 ns to each call while
    no other thread could use so short a window. ``boundscheck=False`` compiles a helper
    without bounds checks even in the checked build, for readers whose every caller has
    proven the range first (``kernels.itch.fields``: the framing checks that a message's
    bytes are all in the buffer before any field of it is read).

    No kernel gets Numba's C-callable ``cfunc`` wrapper (``no_cfunc_wrapper``): nothing
    takes a kernel's address as a first-class function (Python calls go through the
    CPython wrapper, kernels call kernels directly, ``workbench.fastcall`` calls the
    native function), and building the wrapper was ~3 % of a cold compile.
    """
    options = dict(
        cache=cache,
        nogil=nogil,
        boundscheck=SAFE_MODE if boundscheck is None else boundscheck,
        error_model="numpy",
        inline=inline,
        fastmath=fastmath,
        parallel=parallel,
        no_cfunc_wrapper=True,
    )
    if not nrt:
        options["_nrt"] = False

    def decorate(f):
        try:
            disp = njit(**options)(f)
        except RuntimeError:
            # No cache locator for code without a source file (``python -c``, exec):
            # compile it uncached rather than refuse it.
            disp = njit(**{**options, "cache": False})(f)
        if inline == "never":
            _one_signature_per_type(disp)
        return disp

    return decorate(fn) if fn is not None else decorate


def _plain(ty):
    """The type a kernel is compiled for when another kernel passes ``ty``: literals
    lose their value (``Literal[int](0)`` -> ``int64``) and signed integers narrower
    than 64 bits widen to ``int64``."""
    ty = types.unliteral(ty)
    if isinstance(ty, types.Integer) and ty.signed and ty.bitwidth < 64:
        return types.int64
    return ty


def _one_signature_per_type(disp) -> None:
    """Compile a kernel once for the *kinds* of arguments other kernels pass it, not
    once per call site.

    Numba types a call from one kernel to another with the caller's exact argument
    types: a constant argument is a ``Literal`` of its value, and an ``int8`` field a
    different type from an ``int64`` local. Each distinct combination compiled the
    callee (and everything it calls) again: the book's ``_reject`` had 32 copies,
    ``rest_order`` 23 and ``apply_event`` 11, and compiling those copies was most of a
    cold start. Here the callee is compiled for :func:`_plain` types instead; the
    caller converts its arguments to them (a widening, never a narrowing), so the
    results are the same and one copy serves every call site. Calls from Python are
    untouched (Numba already drops literals there)."""
    original = disp.get_call_template

    def get_call_template(args, kws):
        return original(tuple(_plain(a) for a in args),
                        {k: _plain(v) for k, v in kws.items()})

    disp.get_call_template = get_call_template
