"""Per-strategy cached replay loops: a user's ``@njit`` strategy compiles once per
machine, not once per process (the backtester's L3 and L2 loops, and the live pipeline's
consumer loop, :func:`pipeline_loop`).

Why the loop does not cache by itself: ``kernels.backtest.l3.run_l3`` (and ``l2.run_l2``)
take the strategy, the latency model and the queue model as function arguments. Numba
passes a function argument as the address of its Python object, and a compiled function
holding an address of this process ("dynamic globals") cannot be written to the cache.

The design: for each (loop kind, strategy, latency model, queue model) this module writes
a tiny Python module into a per-user directory and imports it. The module binds the three
kernels as module globals and defines one ``@kernel`` (``cache=True``) function::

    _wb_run = _wb_inline_loop("l3")      # run_l3's code, inlined (inline="always")
    @_wb_kernel
    def _wb_loop(context, events, start, stop):
        return _wb_run(_wb_strategy, _wb_latency, context, events, start, stop)

Because the loop body is inlined at Numba's IR level, the strategy is no longer passed
anywhere: it is called as a global, which Numba resolves at compile time and links into
the loop's own code, so nothing holds a process address and Numba caches the loop (next
to the generated file, or below ``NUMBA_CACHE_DIR``). Any ``cache=False`` kernel the
loop hands a function to (``l2._queue_depth``) is inlined the same way.

Invalidation: Numba checks a cached function against its own source file only, so the
generated file's *name* carries a hash of everything the compiled loop depends on: the
source (and compile options) of the strategy, latency and queue models and, recursively,
of every function they call and every constant they read; the fingerprints of the
``kernels`` modules involved (``kernels.jit``: a module and everything it imports); the
Python, Numba, llvmlite and NumPy versions; safe mode. A changed source gives a new name,
so a new module, compiled once; a file is never rewritten (one edited by hand is put
back: Numba keys its cache on the file's contents). The least recently used modules beyond :data:`KEEP` are deleted with
their cached code.

How the generated module gets the user's function:

* a function that its module exposes by name (``kernels.strategies``, any module file the
  user imported, a test module): the generated module imports it from there;
* a function defined in ``__main__`` (a script, a notebook cell) or otherwise not
  importable: the generated module carries its source, and the globals it reads: modules
  (imported by name), constants (written as literals), other ``@njit`` functions
  (imported, or carried the same way), library objects (imported from where they live).
  The source is checked to compile to the very bytecode that runs, so an edited-but-not-
  reloaded file is never cached under its new text.

Limits (the loop then runs as before, compiled once per process, after one
:class:`LoopCacheWarning` naming why): a function with no source (``python -c``,
``exec``), a lambda, a closure or a function defined inside another function that is not
importable; a carried function reading a global array, or a global that is neither a
constant, a module, a function nor an object importable from a library or ``kernels``;
non-literal default arguments; an unwritable cache directory. What the hash cannot see: a
global of an importable module changed at run time after it was imported (Numba itself
freezes globals at first compile), helpers reached through objects the hash does not
follow (an attribute of a class, beyond the class's own source), C extensions other than
through their library's version, and a ``kernels`` file edited after this process
imported it (the fingerprints are read when this module is imported). A carried function
is compiled from the *current* values of the constants it reads: change one in a notebook
and the next run compiles a new loop with it (the per-process loop kept the value of its
first compile). Numba's own cache key adds the CPU and the argument types.

``WORKBENCH_LOOP_CACHE=off`` turns the cache off; ``WORKBENCH_LOOP_CACHE=<dir>`` moves it
(default: ``$NUMBA_CACHE_DIR/hft-workbench-loops`` when Numba's cache is redirected, else
``~/.cache/hft-workbench/loops``).
"""
from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import textwrap
import threading
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["KEEP", "LoopCacheWarning", "Refused", "cache_dir", "cached_loop", "enabled", "generate",
           "inline_loop", "loop_for", "pipeline_loop", "prune"]

KEEP = 64                 # generated modules kept (least recently used pruned beyond)
_FORMAT = "1"             # bump when the generated text changes meaning
_PREFIX = "wbloop_"
_ENV = "WORKBENCH_LOOP_CACHE"
_OFF = ("off", "0", "false", "no", "none")


class LoopCacheWarning(UserWarning):
    """A backtest loop could not be cached: it runs, compiled once per process."""


class Refused(Exception):
    """Why a function cannot be reproduced in a generated module."""


# ------------------------------------------------------------------------ settings
def enabled() -> bool:
    return os.environ.get(_ENV, "").strip().lower() not in _OFF


def cache_dir() -> Path:
    """Where the generated modules live (and, unless ``NUMBA_CACHE_DIR`` is set, their
    cached code, in ``__pycache__`` beside them)."""
    import numba

    explicit = os.environ.get(_ENV, "").strip()
    if explicit and explicit.lower() not in _OFF:
        return Path(explicit).expanduser()
    if numba.config.CACHE_DIR:
        return Path(numba.config.CACHE_DIR) / "hft-workbench-loops"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hft-workbench" / "loops"


# ------------------------------------------------------------------- the loop bodies
# kind -> (module, loop kernel, the names of its leading function arguments)
_LOOPS = {"l3": ("kernels.backtest.l3", "run_l3", ("strategy", "latency")),
          "l2": ("kernels.backtest.l2", "run_l2", ("strategy", "latency", "queue")),
          "pipeline": ("kernels.pipeline", "run_pipeline", ("strategy",))}


def _loop_kernel(kind: str):
    module, name, _ = _LOOPS[kind]
    return getattr(importlib.import_module(module), name)


def _loop_args(kind: str) -> list[str]:
    """The loop kernel's arguments after its function arguments (read from its def, so
    a new argument of the loop needs no change here)."""
    names = list(inspect.signature(_loop_kernel(kind).py_func).parameters)
    return names[len(_LOOPS[kind][2]):]


def _is_uncached(disp) -> bool:
    from numba.core.caching import NullCache

    return isinstance(getattr(disp, "_cache", None), NullCache)


def _inline_copy(disp, memo: dict):
    """``disp``'s code as a new ``inline="always"`` kernel whose ``cache=False`` callees
    (those taking functions as arguments) are inlined copies too."""
    from numba import njit
    from numba.core.dispatcher import Dispatcher

    if id(disp) in memo:
        return memo[id(disp)]
    py = disp.py_func
    overrides = {}
    for name in _global_names(py.__code__):
        value = py.__globals__.get(name)
        if isinstance(value, Dispatcher) and value is not disp and _is_uncached(value):
            overrides[name] = _inline_copy(value, memo)
    g = {**py.__globals__, **overrides} if overrides else py.__globals__
    fn = types.FunctionType(py.__code__, g, py.__name__, py.__defaults__, py.__closure__)
    fn.__qualname__, fn.__module__, fn.__doc__ = py.__qualname__, py.__module__, py.__doc__
    options = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}  # njit's own
    memo[id(disp)] = out = njit(**{**options, "inline": "always", "cache": False})(fn)
    return out


def inline_loop(kind: str):
    """The loop ``kind`` (``"l3"``, ``"l2"``, ``"pipeline"``) as an always-inlined kernel
    (what the generated modules call)."""
    return _inline_copy(_loop_kernel(kind), {})


# ------------------------------------------------------------------ fingerprints
@functools.lru_cache(maxsize=1)
def _kernel_prints() -> dict[str, str]:
    """``kernels.jit``'s per-module fingerprints (a module and everything it imports)."""
    from kernels import jit

    return jit.fingerprints()


try:  # read now, close to when the kernels were imported (what this process runs)
    _kernel_prints()
except Exception:  # noqa: BLE001 - recomputed on first use
    _kernel_prints.cache_clear()


def _kernels_key(module: str) -> str | None:
    """``"backtest.l3"`` for ``kernels.backtest.l3`` (``__init__`` for packages)."""
    if module != "kernels" and not module.startswith("kernels."):
        return None
    mod = sys.modules.get(module)
    rel = module.split(".")[1:]
    if mod is not None and getattr(mod, "__file__", "").endswith("__init__.py"):
        rel = rel + ["__init__"]
    return ".".join(rel) or "__init__"


@functools.lru_cache(maxsize=None)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
             if k in paths}
    return tuple(sorted(roots))


def _module_token(name: str) -> str | None:
    """A token that changes when the module ``name`` may compile differently:
    ``kernels`` fingerprints, the version of a library (or Python for the standard
    library), else None (a user module: follow its objects instead)."""
    key = _kernels_key(name)
    if key is not None:
        prints = _kernel_prints()
        if key in prints:
            return f"kernels:{key}:{prints[key]}"
        return None
    top = name.split(".")[0]
    if top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
        return f"stdlib:{name}:{sys.version}"
    mod = sys.modules.get(name)
    path = getattr(mod, "__file__", None)
    if path and os.path.realpath(path).startswith(_library_roots()):
        version = getattr(sys.modules.get(top), "__version__", None)
        if version is None:
            try:
                from importlib import metadata
                version = metadata.version(top)
            except Exception:  # noqa: BLE001 - no distribution: hash the file instead
                version = hashlib.sha1(Path(path).read_bytes()).hexdigest()
        return f"lib:{name}:{version}"
    return None


def _versions() -> str:
    import llvmlite
    import numba

    from kernels.jit import SAFE_MODE

    return (f"format={_FORMAT} python={sys.version} numba={numba.__version__} "
            f"llvmlite={llvmlite.__version__} numpy={np.__version__} safe={SAFE_MODE} "
            f"platform={sys.platform}")


# ------------------------------------------------------------------ code analysis
def _walk_code(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _walk_code(c)


def _global_names(code) -> list[str]:
    out = []
    for c in _walk_code(code):
        for ins in dis.get_instructions(c):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and ins.argval not in out:
                out.append(ins.argval)
    return out


def _attribute_chains(code) -> list[tuple[str, tuple[str, ...]]]:
    """``(global, (attr, ...))`` for every ``name.attr.attr`` read in ``code``."""
    out = []
    for c in _walk_code(code):
        ins = list(dis.get_instructions(c))
        for k, i in enumerate(ins):
            if i.opname not in ("LOAD_GLOBAL", "LOAD_NAME"):
                continue
            attrs = []
            for j in ins[k + 1:]:
                if j.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    attrs.append(j.argval)
                else:
                    break
            if attrs and (i.argval, tuple(attrs)) not in out:
                out.append((i.argval, tuple(attrs)))
    return out


def _program(code) -> list[tuple]:
    """``code``'s instructions as (operation, argument), jumps as instruction indices:
    what a function does, independent of where its text sat. ``LOAD_METHOD`` reads as
    ``LOAD_ATTR``: CPython picks one or the other for ``module.f(...)`` by whether the
    surrounding module imported ``module``, which a def compiled alone cannot know."""
    ins = list(dis.get_instructions(code))
    index = {i.offset: k for k, i in enumerate(ins)}
    jumps = set(dis.hasjrel) | set(dis.hasjabs)
    out = []
    for i in ins:
        op = "LOAD_ATTR" if i.opname == "LOAD_METHOD" else i.opname
        if i.opcode in jumps:
            arg = ("jump", index.get(i.argval, i.argval))
        elif isinstance(i.argval, types.CodeType):
            arg = ("code", tuple(_program(i.argval)))
        else:
            arg = (type(i.argval).__name__, repr(i.argval))
        out.append((op, arg))
    return out


def _same_code(a, b) -> bool:
    if (a.co_names != b.co_names or a.co_varnames != b.co_varnames
            or a.co_freevars != b.co_freevars or a.co_cellvars != b.co_cellvars):
        return False
    return _program(a) == _program(b)


def _def_source(py) -> str:
    """The ``def`` of ``py`` without its decorators, dedented; checked to compile to the
    bytecode that runs."""
    name = py.__name__
    try:
        src = textwrap.dedent(inspect.getsource(py))
    except (OSError, TypeError):
        raise Refused(f"{py.__qualname__!r} has no source file (defined with python -c or exec?)") from None
    try:
        tree = ast.parse(src)
    except SyntaxError:
        raise Refused(f"the source of {py.__qualname__!r} does not parse on its own") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.name != name:
        raise Refused(f"the source of {py.__qualname__!r} is not a plain def")
    if any(not isinstance(d, ast.Constant) for d in node.args.defaults + [d for d in node.args.kw_defaults if d]):
        raise Refused(f"{py.__qualname__!r} has default arguments that are not literals")
    text = "\n".join(src.splitlines()[node.lineno - 1:]) + "\n"
    import __future__
    flags = __future__.annotations.compiler_flag
    try:
        module_code = compile(text, "<loopcache>", "exec", flags=flags, dont_inherit=True)
    except SyntaxError:
        raise Refused(f"the source of {py.__qualname__!r} does not compile on its own") from None
    fn_code = next((c for c in module_code.co_consts if isinstance(c, types.CodeType)
                    and c.co_name == name), None)
    if fn_code is None or not _same_code(fn_code, py.__code__):
        raise Refused(f"the source file of {py.__qualname__!r} changed since it was defined "
                       "(re-run its definition or reload its module)")
    return text


def _literal(value) -> str | None:
    """Source text reproducing a constant exactly, or None."""
    if value is None or isinstance(value, (bool, int, str, bytes)) and type(value) in (bool, int, str, bytes):
        return repr(value)
    if type(value) is float:
        return repr(value) if np.isfinite(value) else f"float({repr(value)!r})"
    if type(value) is complex:
        return f"complex({_literal(value.real)}, {_literal(value.imag)})"
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        inner = _literal(value.item())
        return None if inner is None else f"_wb_np.dtype({value.dtype.str!r}).type({inner})"
    if type(value) is tuple:
        parts = [_literal(v) for v in value]
        if any(p is None for p in parts):
            return None
        return "(" + "".join(p + ", " for p in parts) + ")"
    return None


def _home(value, name_hint: str | None = None) -> tuple[str, str] | None:
    """``(module, dotted path)`` where ``value`` can be imported from (never ``__main__``):
    its own ``__module__``/``__qualname__`` when they lead back to it, else (for objects
    such as dtypes) a loaded module holding it under ``name_hint``."""
    mod = getattr(value, "__module__", None)
    qual = getattr(value, "__qualname__", None)
    if isinstance(mod, str) and isinstance(qual, str) and "<" not in qual and mod != "__main__":
        obj = sys.modules.get(mod)
        for part in qual.split("."):
            obj = vars(obj).get(part) if obj is not None and hasattr(obj, "__dict__") else None
        if obj is value:
            return mod, qual
    if name_hint is not None:
        found = [m for m, module in list(sys.modules.items())
                 if m != "__main__" and module is not None and hasattr(module, "__dict__")
                 and vars(module).get(name_hint, None) is value]
        if found:
            return min(found, key=lambda m: (len(m), m)), name_hint
    return None


# ------------------------------------------------------------------------ the plan
class _Plan:
    """Everything a generated module needs: the hash inputs (``tokens``), the carried
    functions and the module-level names the carried code reads."""

    def __init__(self):
        self.tokens: list[str] = []
        self.names: dict[str, str] = {}            # name -> source text of its value
        self.carried: dict[str, tuple[str, dict]] = {}   # def name -> (source, jit options)
        self._done: dict[int, str] = {}
        self._keep: list = []                      # keep ids valid while planning

    # a module-level name of the generated module (conflicts refused)
    def bind(self, name: str, text: str) -> None:
        if name.startswith("_wb_"):
            raise Refused(f"the global name {name!r} is reserved by the loop cache")
        old = self.names.get(name)
        if old is not None and old != text:
            raise Refused(f"two functions read the global {name!r} with different values")
        self.names[name] = text

    def function(self, fn) -> str:
        """Plan ``fn`` (a Numba dispatcher or a Python function); returns the text the
        generated module refers to it by."""
        from numba.core.dispatcher import Dispatcher

        key = id(fn)
        if key in self._done:
            return self._done[key]
        self._keep.append(fn)
        py = fn.py_func if isinstance(fn, Dispatcher) else fn
        home = _home(fn)
        if home is not None:
            ref = f"_wb_import({home[0]!r}).{home[1]}"
            self._done[key] = ref
            token = _module_token(home[0])
            if token is not None:
                self.tokens.append(f"fn {home[0]}.{home[1]} {token}")
                return ref
            self._follow(fn, py, carry=False, label=f"{home[0]}.{home[1]}")
            return ref
        # not importable: carry the source
        if not isinstance(fn, Dispatcher):
            raise Refused(f"{py.__qualname__!r} is a plain Python function outside an importable "
                           "module (compiled code can only call @njit functions)")
        if py.__name__ == "<lambda>":
            raise Refused("a lambda cannot be reproduced: define it with def")
        if "<locals>" in py.__qualname__ or py.__code__.co_freevars:
            raise Refused(f"{py.__qualname__!r} is defined inside a function (a closure): "
                           "define it at the top level of a module or notebook cell")
        name = py.__name__
        self._done[key] = name
        self._follow(fn, py, carry=True, label=f"{py.__module__}.{py.__qualname__}")
        return name

    def _follow(self, fn, py, carry: bool, label: str) -> None:
        """Hash ``py``'s source and what it reads; for a carried function, also bind the
        globals it reads and record its source."""
        from numba.core.dispatcher import Dispatcher

        source = _def_source(py)
        options = {}
        if isinstance(fn, Dispatcher):
            options = {k: v for k, v in fn.targetoptions.items()
                       if k not in ("cache", "nopython")}   # njit sets nopython itself
            for k, v in options.items():
                text = repr(v)
                try:
                    ok = ast.literal_eval(text) == v
                except (ValueError, SyntaxError):
                    ok = False
                if not ok:
                    raise Refused(f"{label}: the compile option {k}={text} cannot be reproduced")
        self.tokens.append(f"def {label} {sorted(options.items())!r}\n{source}")
        if carry:
            if py.__name__ in self.carried and self.carried[py.__name__][0] != source:
                raise Refused(f"two different functions are named {py.__name__!r}")
            self.bind(py.__name__, py.__name__)
            self.carried[py.__name__] = (source, options)
        g = py.__globals__
        chains = dict()
        for base, attrs in _attribute_chains(py.__code__):
            chains.setdefault(base, []).append(attrs)
        closure = {}
        if py.__closure__:  # importable closures only (carried ones are refused)
            closure = dict(zip(py.__code__.co_freevars, (c.cell_contents for c in py.__closure__)))
        for name in _global_names(py.__code__):
            if name in g:
                self._global(name, g[name], chains.get(name, ()), carry, label)
            elif hasattr(builtins, name):
                self.tokens.append(f"builtin {name}")
            else:
                raise Refused(f"{label} reads {name!r}, which is not defined")
        for name, value in closure.items():
            self._value(f"{label}<cell {name}>", value, carry=False, label=label)

    def _global(self, name, value, chains, carry, label) -> None:
        if isinstance(value, types.ModuleType):
            if value.__name__ == "__main__":
                raise Refused(f"{label} reads the module __main__")
            token = _module_token(value.__name__)
            self.tokens.append(f"module {name}={value.__name__} {token}")
            if carry:
                self.bind(name, f"_wb_import({value.__name__!r})")
            if token is None:
                # a user module: follow what is read through it
                for attrs in chains:
                    obj = value
                    for a in attrs:
                        if isinstance(obj, types.ModuleType) and a in vars(obj):
                            obj = vars(obj)[a]
                        else:
                            obj = None
                            break
                    if obj is not None and not isinstance(obj, types.ModuleType):
                        self._value(f"{value.__name__}.{'.'.join(attrs)}", obj, carry=False, label=label)
            return
        text = self._value(name, value, carry, label)
        if carry and text is not None:
            self.bind(name, text)

    def _value(self, name, value, carry, label) -> str | None:
        """Hash ``value``; the text reproducing it (for carried code)."""
        from numba.core.dispatcher import Dispatcher

        if isinstance(value, (Dispatcher, types.FunctionType)):
            return self.function(value)
        lit = _literal(value)
        if lit is not None:
            self.tokens.append(f"const {name}={lit}")
            return lit
        if isinstance(value, np.dtype):
            text = f"_wb_np.dtype({value.descr!r}, align={value.isalignedstruct!r})"
            try:
                same = eval(text, {"_wb_np": np}) == value  # noqa: S307 - our own literal text
            except (TypeError, ValueError):
                same = False
            if same:
                self.tokens.append(f"dtype {name}={text}")
                return text
        if isinstance(value, np.ndarray):
            if carry:
                raise Refused(f"{label} reads the global array {name!r}: pass it through params, "
                               "or define the strategy in a module file")
            self.tokens.append(f"array {name} {value.dtype.str} {value.shape} "
                               f"{hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()}")
            return None
        home = _home(value, name.split(".")[-1])
        token = _module_token(home[0]) if home else None
        if home is not None and token is None and isinstance(value, type):
            try:  # a class of a user module (an IntEnum, say): its source
                token = "class " + hashlib.sha1(inspect.getsource(value).encode()).hexdigest()
            except (OSError, TypeError):
                token = None
        if home is None or token is None:
            raise Refused(f"{label} reads the global {name!r} ({type(value).__name__}), which is "
                           "neither a constant, a module, a compiled function nor a library object")
        self.tokens.append(f"object {name}={home[0]}.{home[1]} {token}")
        return f"_wb_import({home[0]!r}).{home[1]}"


def _render(kind: str, roots: dict[str, str], plan: _Plan, describe: str) -> str:
    args = _loop_args(kind)
    lines = [
        "# Generated by workbench.backtest.loopcache: one cached replay loop. Do not edit:",
        "# a changed source gets a new file (the name is a hash of everything compiled in).",
        f"# {describe}",
        "from __future__ import annotations",
        "from importlib import import_module as _wb_import",
        "import numba as _wb_numba",
        "import numpy as _wb_np",
        "from kernels.jit import kernel as _wb_kernel",
        "from workbench.backtest.loopcache import inline_loop as _wb_inline_loop",
        "",
    ]
    # the carried functions first, then the names they read: a def evaluates nothing
    # (literal defaults, annotations kept as strings), Numba reads globals when compiling
    for n in sorted(plan.carried):
        source, options = plan.carried[n]
        lines += ["", source.rstrip("\n"),
                  f"{n} = _wb_numba.jit(**{{**{dict(sorted(options.items()))!r}, 'cache': False}})({n})", ""]
    for n in sorted(plan.names):
        if n not in plan.carried:
            lines.append(f"{n} = {plan.names[n]}")
    lines.append("")
    for k, text in roots.items():
        lines.append(f"_wb_{k} = {text}")
    fargs = ", ".join(args)
    call = ", ".join([f"_wb_{k}" for k in roots] + list(args))
    lines += [f"_wb_run = _wb_inline_loop({kind!r})", "", "",
              "@_wb_kernel",
              f"def _wb_loop({fargs}):",
              f"    return _wb_run({call})", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------- files, loading
_lock = threading.Lock()
_first_lock = threading.Lock()
_loaded: dict[str, Any] = {}
_warned: set[str] = set()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:40] or "fn"


def _write_once(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` unless it exists (atomic, so a concurrent process
    never imports half a file)."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:
        if not path.exists():
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _numba_cache_dirs(directory: Path) -> list[Path]:
    """Where Numba keeps the cached code of a module in ``directory`` (its own locators:
    ``__pycache__`` beside it, or a folder of ``NUMBA_CACHE_DIR``)."""
    import numba
    from numba.core.caching import UserProvidedCacheLocator

    out = [directory / "__pycache__"]
    if numba.config.CACHE_DIR:
        sub = UserProvidedCacheLocator.get_suitable_cache_subpath(str(directory / "x.py"))
        out.append(Path(numba.config.CACHE_DIR) / sub)
    return out


def prune(keep: int = KEEP, directory: Path | None = None) -> list[str]:
    """Delete the least recently used generated modules beyond ``keep`` (and their cached
    code); returns the module names deleted."""
    directory = directory or cache_dir()
    try:
        mods = sorted(directory.glob(f"{_PREFIX}*.py"))
    except OSError:
        return []
    if len(mods) <= keep:
        return []

    def used(p: Path) -> float:
        try:
            return p.with_suffix(".used").stat().st_mtime
        except OSError:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0

    victims = sorted(mods, key=used)[:len(mods) - keep]
    gone = []
    for p in victims:
        if str(p) in _loaded:
            continue
        for f in [p, p.with_suffix(".used")] + [f for d in _numba_cache_dirs(directory)
                                                 for f in d.glob(f"{p.stem}.*")]:
            try:
                f.unlink()
            except OSError:
                pass
        gone.append(p.stem)
    return gone


def _touch(path: Path) -> None:
    used = path.with_suffix(".used")
    try:
        used.touch()
    except OSError:
        pass


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(path.stem, None)
        raise
    return module


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def generate(kind: str, strategy, latency=None, queue=None) -> tuple[str, str]:
    """``(module name, source)`` of the generated module for this loop; the name ends in
    the hash of everything compiled into it. Raises :class:`Refused` naming why the
    functions cannot be reproduced."""
    if kind not in _LOOPS:
        raise ValueError(f"kind={kind!r} must be one of {sorted(_LOOPS)}")
    given = {"strategy": strategy, "latency": latency, "queue": queue}
    roots = {k: given[k] for k in _LOOPS[kind][2]}
    missing = [k for k, fn in roots.items() if fn is None]
    if missing:
        raise ValueError(f"the {kind} loop needs a {' and a '.join(missing)} kernel")
    plan = _Plan()
    refs = {k: plan.function(fn) for k, fn in roots.items()}
    describe = ", ".join(f"{k}: {getattr(fn, '__module__', '?')}.{_name(fn)}" for k, fn in roots.items())
    text = _render(kind, refs, plan, f"loop {kind}; {describe}")
    loop_token = _module_token(_LOOPS[kind][0]) or ""
    digest = hashlib.sha256("\n".join([_versions(), loop_token, text, *plan.tokens]).encode()).hexdigest()
    return f"{_PREFIX}{kind}_{_slug(_name(strategy))}_{digest[:24]}", text


def cached_loop(kind: str, strategy, latency=None, queue=None):
    """The cached loop dispatcher for (``kind``, ``strategy``, ``latency``, ``queue``):
    ``loop(context, events, start, stop)`` for ``"l3"``, ``loop(context, context2,
    events, start, stop)`` for ``"l2"``; the generated module is written the first time
    and imported once per process. Raises :class:`Refused` when it cannot be cached."""
    stem, text = generate(kind, strategy, latency, queue)
    directory = cache_dir()
    path = directory / f"{stem}.py"
    with _lock:
        if str(path) in _loaded:
            return _loaded[str(path)]._wb_loop
        try:
            directory.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            _write_once(path, text)
            if path.read_text() != text:   # edited by hand: put back what the name promises
                tmp = path.with_name(f".{path.name}.{os.getpid()}.fix")
                tmp.write_text(text)
                os.replace(tmp, path)
        except OSError as exc:
            raise Refused(f"cannot write to the loop cache {directory}: {exc}") from None
        module = _load(path)
        _loaded[str(path)] = module
        _touch(path)
        if created:
            prune(KEEP, directory)
        return module._wb_loop


def _warn_once(key: str, message: str) -> None:
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, LoopCacheWarning, stacklevel=4)


def loop_for(kind: str, strategy, latency, queue=None, context2=None) -> Callable:
    """``loop(context, events, start, stop)`` for the backtester: the cached loop when
    the strategy (and models) can be cached, else today's per-process loop after one
    :class:`LoopCacheWarning` naming why."""
    from kernels.backtest import l3 as backtest_l3

    cached = None
    if enabled():
        try:
            cached = cached_loop(kind, strategy, latency, queue)
        except Refused as why:
            _warn_once(f"{id(strategy)}:{why}",
                       f"the backtest loop for {_name(strategy)!r} is not cached ({why}); it compiles "
                       "once per process (see workbench.backtest.loopcache)")
    if kind == "l2":
        from kernels.backtest import l2 as backtest_l2

        if cached is not None:
            def loop(ctx, ev, a, b):
                return cached(ctx, context2, ev, a, b)
        else:
            def loop(ctx, ev, a, b):
                return backtest_l2.run_l2(strategy, latency, queue, ctx, context2, ev, a, b)
    elif cached is not None:
        loop = cached
    else:
        def loop(ctx, ev, a, b):
            return backtest_l3.run_l3(strategy, latency, ctx, ev, a, b)
    if cached is None:
        return loop
    return _FirstCall(loop, cached, _name(strategy))


def pipeline_loop(strategy):
    """The live pipeline's consumer loop for ``strategy``, cached like the backtest loops:
    ``loop(strategy_id, header, ...)`` (``kernels.pipeline.run_pipeline``'s arguments after
    the strategy), or None (after one :class:`LoopCacheWarning` naming why) when it cannot
    be cached: then call ``run_pipeline`` with the strategy, compiled once per process."""
    if not enabled():
        return None
    try:
        return cached_loop("pipeline", strategy)
    except Refused as why:
        _warn_once(f"{id(strategy)}:{why}",
                   f"the pipeline loop for {_name(strategy)!r} is not cached ({why}); it compiles "
                   "once per process (see workbench.backtest.loopcache)")
        return None


class _FirstCall:
    """Calls ``loop``; the first call (the compile, or the load from the cache) turns
    Numba's "cannot cache" warning into one :class:`LoopCacheWarning`."""

    def __init__(self, loop, dispatcher, name):
        self._loop, self.dispatcher, self._name, self._first = loop, dispatcher, name, True

    def __call__(self, *args):
        if not self._first:
            return self._loop(*args)
        from numba.core.errors import NumbaWarning

        with _first_lock:  # the warning filters are process-wide: one first call at a time
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NumbaWarning)
                out = self._loop(*args)
            self._first = False
        for w in caught:
            if issubclass(w.category, NumbaWarning) and "Cannot cache" in str(w.message):
                _warn_once(f"dyn:{self._name}", f"the backtest loop for {self._name!r} compiled but "
                           f"Numba cannot cache it ({w.message}); it compiles once per process")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out
