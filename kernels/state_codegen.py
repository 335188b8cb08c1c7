"""Generates ``kernels/state_views.py``: each state's pack/unpack/borrow code, from the
state's own field declarations.

A *state* is a ``NamedTuple`` of preallocated arrays (and of nested states) that kernels
receive whole. Its fields are declared once, in its class, with :class:`Array`::

    class BookState(NamedTuple):
        pool: Array[ORDER]           # a 1-D array of ORDER records
        counters: Array[np.int64]
        lat_table: Array[np.int64, 2]  # 2-D
        st: BookState                # a nested state: its fields are inlined

From that declaration this module renders, for every state of :data:`STATES`
(``prefix``, module, class):

``<prefix>_context(state)``  (Python) the state packed into one int64 array: for each
                             array, in field order (nested states inlined), its address
                             then its shape; the context's own address last.
``<prefix>_views(c)``        (kernel, inlined) the state rebuilt from a context, every
                             array a view without a reference count.
``<prefix>_borrow(state)``   (kernel) the same views from the state's own arrays.
``<prefix>_<field>(c)``      (kernel, inlined) one field alone from a context: a kernel
                             that uses three of the backtest's thirty arrays builds
                             those three (Numba types and lowers every view it is
                             asked for, about 0.5 s of compilation per kernel for the
                             whole backtest state; LLVM later drops the unused ones).
``N_<PREFIX>_CONTEXT``       the context's length (int64 slots).

Why generated, not built at import time: ``cache=True`` needs a real source file
(Numba keys its on-disk cache by file), and ``exec``'d code has none; a committed module
also reads like hand-written code. ``tests/test_state_views.py`` checks that the file
is up to date and round-trips every field of every state.

Run ``python -m kernels.state_codegen`` after changing a state's fields (``--check``
only reports whether the file is stale). Standard library only; the declaration
modules it imports are plain numpy.
"""
from __future__ import annotations

import importlib
import sys
import textwrap
import typing
from pathlib import Path
from typing import Annotated, Any, NamedTuple

__all__ = ["Array", "ArrayField", "STATES", "fields", "leaves", "context_size", "render", "write", "main"]

OUTPUT = Path(__file__).with_name("state_views.py")

# (prefix, module, class): every state that gets generated code, in output order
STATES = (
    ("book", "kernels.book_state", "BookState"),
    ("engine", "kernels.book_state", "EngineState"),
    ("backtest", "kernels.backtest.state", "BacktestState"),
    ("l2", "kernels.backtest.state", "L2State"),
)


class ArrayField(NamedTuple):
    """What a field declared ``Array[dtype, ndim]`` holds."""

    dtype: Any   # a numpy dtype (record dtypes must be exported by kernels.records) or scalar type
    ndim: int = 1


class Array:
    """Field annotation of a state: ``Array[dtype]`` (1-D) or ``Array[dtype, ndim]``."""

    def __class_getitem__(cls, item):
        dtype, ndim = item if isinstance(item, tuple) else (item, 1)
        return Annotated[Any, ArrayField(dtype, int(ndim))]


class _Leaf(NamedTuple):
    path: str        # attribute path from the state, e.g. "st.pool"
    dtype: Any
    ndim: int


def _is_state(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def fields(cls) -> list[tuple[str, Any]]:
    """(name, ArrayField or nested state class) of every field, in order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for name in cls._fields:
        hint = hints.get(name)
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, ArrayField)]
        if meta:
            out.append((name, meta[0]))
        elif _is_state(hint):
            out.append((name, hint))
        else:
            raise TypeError(f"{cls.__name__}.{name}: declare it as Array[dtype] or a state")
    return out


def leaves(cls, prefix: str = "") -> list[_Leaf]:
    """Every array of a state, nested states inlined, in context order."""
    out = []
    for name, decl in fields(cls):
        if isinstance(decl, ArrayField):
            out.append(_Leaf(prefix + name, decl.dtype, decl.ndim))
        else:
            out.extend(leaves(decl, f"{prefix}{name}."))
    return out


def context_size(cls) -> int:
    return sum(1 + leaf.ndim for leaf in leaves(cls)) + 1


class _Names:
    """Python expressions for dtypes and classes, and the imports they need."""

    def __init__(self):
        import numpy as np

        from kernels import records

        self.np = np
        self.records = {name: value for name, value in vars(records).items()
                        if isinstance(value, np.dtype)}
        self.record_names: set[str] = set()
        self.classes: dict[str, set[str]] = {}

    def dtype(self, dtype) -> str:
        d = self.np.dtype(dtype)
        if d.names is None:
            return f"np.{d.type.__name__}"
        same = [n for n, v in self.records.items() if v is dtype] or \
               [n for n, v in self.records.items() if v == d]
        if not same:
            raise TypeError(f"record dtype {d} is not defined in kernels.records")
        self.record_names.add(same[0])
        return same[0]

    def cls(self, cls) -> str:
        self.classes.setdefault(cls.__module__, set()).add(cls.__name__)
        return cls.__name__


def _array_view(decl: ArrayField, names: _Names, slot: list[int]) -> str:
    """The view of the array whose address is in context slot ``slot[0]`` (its extents
    follow); moves ``slot[0]`` past them."""
    j = slot[0]
    shape = (f"c[{j + 1}]" if decl.ndim == 1 else
             "(" + ", ".join(f"c[{j + 1 + k}]" for k in range(decl.ndim)) + ")")
    slot[0] += 1 + decl.ndim
    return f"carray(address_as_pointer(c[{j}]), {shape}, {names.dtype(decl.dtype)})"


def _views_expr(cls, names: _Names, slot: list[int], indent: str) -> str:
    inner = indent + "    "
    parts = []
    for _, decl in fields(cls):
        if isinstance(decl, ArrayField):
            parts.append(f"{inner}{_array_view(decl, names, slot)},")
        else:
            parts.append(inner + _views_expr(decl, names, slot, inner).lstrip() + ",")
    return f"{names.cls(cls)}(\n" + "\n".join(parts) + f"\n{indent})"


def _accessors(prefix: str, cls, names: _Names) -> str:
    """One inlined kernel per field of ``cls``: ``<prefix>_<field>(c)``, that field alone
    rebuilt from the context (a nested state whole)."""
    cname = names.cls(cls)
    out = []
    slot = [0]
    for name, decl in fields(cls):
        if isinstance(decl, ArrayField):
            body = _array_view(decl, names, slot)
        else:
            body = _views_expr(decl, names, slot, "    ")
        out.append(f'''


@kernel(inline="always")
def {prefix}_{name}(c):
    """``{cname}.{name}`` alone from context ``c`` (see ``{prefix}_views``)."""
    return {body}''')
    return "".join(out)


def _borrow_expr(cls, var: str, names: _Names, prefix_of: dict) -> str:
    parts = []
    for name, decl in fields(cls):
        if isinstance(decl, ArrayField):
            parts.append(f"borrow({var}.{name}, {names.dtype(decl.dtype)})")
        elif decl in prefix_of:
            parts.append(f"{prefix_of[decl]}_borrow({var}.{name})")
        else:
            parts.append(_borrow_expr(decl, f"{var}.{name}", names, prefix_of))
    body = ",\n        ".join(parts)
    return f"{names.cls(cls)}(\n        {body},\n    )"


_HEADER = '''\
# generated by kernels/state_codegen.py (python -m kernels.state_codegen); do not edit.
"""Every state's arrays by address: pack a state into one int64 array, unpack it in a kernel.

For each state of ``kernels.state_codegen.STATES`` (declared with ``Array`` fields in its
own module), ``<prefix>_context(state)`` packs, in field order with nested states
inlined, each array's address and then its shape, and last the context's own address;
``<prefix>_views(c)`` rebuilds the state inside a kernel, ``<prefix>_borrow(state)``
the same views from the arrays themselves.

Why: Numba increments and decrements the reference count of every array passed to a
non-inlined function, atomically; a state of ~30 arrays made each helper call of the
backtest loop cost ~400 ns, and a Python call that passes eight arrays spends ~40 ns
unboxing each. Arrays rebuilt from raw addresses carry no reference count (those
operations become a null check), and one context array (or its address, an int that
unboxes in a few ns) crosses into a kernel at once. ``kernels.pointers.borrow_context``
turns a context argument into a view of itself from its last slot.

Contract: the caller keeps the state and its context alive while a kernel uses them
(the views do not own memory), and passes C-contiguous arrays of the declared dtype
and number of dimensions (``pack_context`` refuses anything else).
"""
'''


def render() -> str:
    """The text of ``kernels/state_views.py``."""
    names = _Names()
    classes = []
    for prefix, module, clsname in STATES:
        classes.append((prefix, getattr(importlib.import_module(module), clsname)))
    prefix_of = {cls: prefix for prefix, cls in classes}
    blocks = []
    for prefix, cls in classes:
        size = context_size(cls)
        upper = prefix.upper()
        packed = ",\n".join(
            f'        ("{leaf.path}", state.{leaf.path}, {names.dtype(leaf.dtype)}, {leaf.ndim})'
            for leaf in leaves(cls))
        cname = names.cls(cls)
        accessor_calls = ",\n".join(f"        {prefix}_{name}(c)" for name, _ in fields(cls))
        blocks.append(f'''
# {"-" * (77 - len(cname))} {cname}
N_{upper}_CONTEXT = {size}


def {prefix}_context(state: {cname}) -> np.ndarray:
    """``state`` packed for :func:`{prefix}_views` ({size} int64 slots)."""
    return pack_context((
{packed},
    ))


@kernel(inline="always")
def {prefix}_views(c):
    """The {cname} packed in context ``c``, as views without reference counts (each
    field from its own accessor below)."""
    return {cname}(
{accessor_calls},
    )


@kernel
def {prefix}_borrow(state):
    """The arrays of ``state`` as views without reference counts (valid while ``state``
    is alive: a kernel's own argument always is)."""
    return {_borrow_expr(cls, "state", names, prefix_of)}{_accessors(prefix, cls, names)}
''')
    imports = ["import numpy as np", "from numba import carray", "",
               "from .jit import kernel",
               "from .pointers import address_as_pointer, borrow, pack_context"]
    wrapped = textwrap.fill(", ".join(sorted(names.record_names)) + ",", width=88,
                            initial_indent="    ", subsequent_indent="    ")
    imports.append(f"from .records import (\n{wrapped}\n)")
    for module in sorted(names.classes):
        rel = "." + module.removeprefix("kernels.")
        imports.append(f"from {rel} import " + ", ".join(sorted(names.classes[module])))
    exports = [f"N_{p.upper()}_CONTEXT" for p, _ in classes] + \
              [f"{p}_{kind}" for p, _ in classes for kind in ("context", "views", "borrow")] + \
              [f"{p}_{name}" for p, cls in classes for name, _ in fields(cls)]
    all_line = "__all__ = [\n" + "".join(f'    "{e}",\n' for e in exports) + "]\n"
    return (_HEADER + "from __future__ import annotations\n\n" + "\n".join(imports) + "\n\n"
            + all_line + "\n" + "\n".join(blocks))


def write(path: Path = OUTPUT) -> bool:
    """Render into ``path``; True when its content changed."""
    text = render()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        stale = not OUTPUT.exists() or OUTPUT.read_text() != render()
        print(f"{OUTPUT} is {'stale: run python -m kernels.state_codegen' if stale else 'up to date'}")
        return 1 if stale else 0
    changed = write()
    print(f"{OUTPUT} {'written' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    # run the imported module, whose Array is the one the declarations use (not __main__'s)
    from kernels.state_codegen import main as _main

    raise SystemExit(_main())
