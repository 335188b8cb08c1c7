"""Native entry points of ``submit``, ``cancel`` and ``modify`` of ``OrderBook`` and
``Engine`` (issue 12).

Why: a per-order call through Numba's own entry costs about 300 ns before the kernel
runs (the dispatcher's wrapper unboxes eleven arguments through the generic Python
number protocol and boxes a tuple), and the Python method around it costs as much
again: a single order took ~1 us, against ~0.45 us for Liquibook's C++ through SWIG.

What: for each of the three operations, one small function in LLVM IR, compiled once per
process with llvmlite (Numba's own code generator), and exposed as a CPython builtin with
the ``METH_FASTCALL | METH_KEYWORDS`` convention. A call

1. binds the positional and keyword arguments to the method's parameters (keyword names
   compared by identity with the interned parameter names, as CPython's own fast path does
   first); an ``Engine``'s symbol (an exact ``str``) is looked up in its index dict;
2. checks each argument's *exact* type against the types the Python fast path takes (the
   enums ``Side``, ``OrderType``, ``TimeInForce``; ``int``; ``float`` or ``int`` for a
   price; ``None`` where the method allows it) and reads its value, an ``int`` only when it
   fits in 64 bits;
3. calls the compiled kernel of ``kernels.book_calls`` (the same ``add_priced``,
   ``cancel_one`` or ``modify_priced`` the Python path calls) through Numba's native
   calling convention, at the address of the overload the Python path loaded;
4. builds the ``OrderResult`` itself, its fills (when the order traded) a view of the
   fills chunk made with NumPy's C API (``PyArray_NewFromDescr``, checked against a slice
   when the module builds), appended to the fill log when the book records fills.

Everything else goes back to Python unchanged, so behaviour and errors are the Python
path's: an argument of any other type or form, a missing or unknown argument, a value the
kernel leaves to the checked path (``CHECK``, nothing applied) are handed to the book's
Python method (``OrderBook._submit`` ..., ``Engine.submit`` ...) with the very same
arguments. A fills chunk that was full (nothing applied) is handed to ``_chunk_outcome``,
which moves to a new chunk and returns None, and the call then runs again. Until the
Python path has loaded a kernel (its first call in the process), the native entry hands
every call to it.

State the native code reads and writes lives in one int64 array per book, ``ctl``
(the ``CTL_*`` slots): the fills chunk's context, position and object, the next automatic
order id, the price scale, the single-call context, the record flag and an on/off switch.
The books' attributes of the same names (``_next_id``, ``_ctx``, ``_chunk_ctx``,
``_chunk_pos``) are views of it (``workbench.book._Books``).

Limits: CPython only, 64-bit, a release build with the GIL (the code reads the object
header, a tuple's items and a NumPy array's data pointer at their documented offsets,
checked when the module builds). :func:`available` says whether this process has it,
and why not; without it the Python methods are used, with the same results.
"""
from __future__ import annotations

import ctypes
import sys
import threading
import types

import numpy as np

__all__ = ["available", "new_ctl", "install", "record_kernel"]

# the ctl array (int64), one per book
CTL_CHUNK_CTX = 0    # address of the fills chunk's engine context (add and modify)
CTL_CHUNK_POS = 1    # next free slot of the chunk
CTL_NEXT_ID = 2      # next automatic order id
CTL_SCALE = 3        # price scale (units per currency unit)
CTL_CTX = 4          # address of the single-call context (cancel)
CTL_ON = 5           # 0: every call goes to the Python method
CTL_CHUNK_OBJ = 6    # the chunk array itself (the book keeps it alive while it is current)
CTL_RECORD = 7       # 1: append each result's fills to the book's fill log
N_CTL = 8

# the kernel table: the native address of each operation's compiled kernel, 0 until loaded
K_ADD, K_CANCEL, K_MODIFY = 0, 1, 2
_KERNELS = np.zeros(3, dtype=np.int64)
_KEEP: list = []          # objects whose addresses the generated code holds
_LOCK = threading.Lock()
_BUILT: dict = {}         # "why" (str, when not available) or the three PyMethodDefs
_RETRIES = 3              # chunk renewals before a call is handed to Python

_EXPECTED_SIGNATURES = {
    K_ADD: ("int64",) * 4 + ("float64",) + ("int64",) * 6,
    K_CANCEL: ("int64",) * 4,
    K_MODIFY: ("int64",) * 3 + ("float64",) + ("int64",) * 3,
}


def new_ctl() -> np.ndarray:
    ctl = np.zeros(N_CTL, dtype=np.int64)
    ctl[CTL_NEXT_ID] = 1
    return ctl


def record_kernel(dispatcher, which: int, warm: tuple) -> None:
    """Remember the native address of ``dispatcher``'s overload for the types of ``warm``
    (already compiled or loaded by the caller) as operation ``which``'s kernel, when its
    signature and return type are the ones the generated code calls."""
    import numba

    try:
        sig = tuple(numba.typeof(a) for a in warm)
        cres = dispatcher.overloads[sig]
        if tuple(str(t) for t in sig) != _EXPECTED_SIGNATURES[which]:
            return
        if str(cres.signature.return_type) != "UniTuple(int64 x 3)":
            return
        # the native function's own LLVM type: i32 (retptr, excinfo, i64/double...), the
        # result written as [3 x i64] through retptr, which is what the generated call does
        context = cres.target_context
        fnty = context.call_conv.get_function_type(cres.signature.return_type,
                                                   cres.signature.args)
        llvm_args = [str(a) for a in fnty.args]
        want = ["double" if t == "float64" else "i64" for t in _EXPECTED_SIGNATURES[which]]
        if (str(fnty.return_type) != "i32" or llvm_args[2:] != want
                or llvm_args[0] != "[3 x i64]*"
                or str(context.get_value_type(cres.signature.return_type)) != "[3 x i64]"):
            return
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    except Exception:   # noqa: BLE001 - another Numba: keep the Python path
        return
    if address:
        _KEEP.append(cres)
        _KERNELS[which] = address


def _why_not() -> str | None:
    if sys.implementation.name != "cpython":
        return f"not CPython ({sys.implementation.name})"
    if sys.maxsize != 2**63 - 1:
        return "not a 64-bit Python"
    if hasattr(sys, "gettotalrefcount"):
        return "a debug build of Python"
    gil = getattr(sys, "_is_gil_enabled", None)
    if gil is not None and not gil():
        return "Python without the GIL"
    if tuple.__basicsize__ != 24 or tuple.__itemsize__ != 8:
        return "an unexpected tuple layout"
    return None


def available() -> tuple[bool, str]:
    """(True, "") when this process uses the native entries, else (False, why not)."""
    built = _build()
    return (True, "") if not isinstance(built, str) else (False, built)


# ----------------------------------------------------------------- the IR
class _Fn:
    """A tiny emitter: fresh names, lines, calls to C functions at constant addresses."""

    def __init__(self, api: dict):
        self.api = api
        self.lines: list[str] = []
        self.n = 0

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def __call__(self, text: str) -> None:
        self.lines.append("  " + text)

    def op(self, text: str) -> str:
        t = self.tmp()
        self(f"{t} = {text}")
        return t

    def capi(self, ret: str, name: str, *args: str) -> str | None:
        f = self.op(f"inttoptr i64 {self.api[name]} to ptr")
        call = f"call {ret} {f}({', '.join(args)})"
        if ret == "void":
            self(call)
            return None
        return self.op(call)

    def at(self, base: str, offset: int) -> str:
        return self.op(f"getelementptr i8, ptr {base}, i64 {offset}")

    def load(self, ty: str, base: str, offset: int) -> str:
        return self.op(f"load {ty}, ptr {self.at(base, offset)}")

    def type_of(self, obj: str) -> str:
        return self.op(f"ptrtoint ptr {self.load('ptr', obj, 8)} to i64")

    def goto_if(self, cond: str, target: str) -> None:
        ok = f"ok{self.n}_{len(self.lines)}"
        self(f"br i1 {cond}, label %{target}, label %{ok}")
        self.label(ok)


def _int_value(f: _Fn, obj: str, want_type: int, fail: str, overflow: str) -> str:
    """The int64 value of ``obj``, which must be of exact type ``want_type`` (an int or
    an IntEnum), else branch to ``fail``."""
    f.goto_if(f.op(f"icmp ne i64 {f.type_of(obj)}, {want_type}"), fail)
    f(f"store i32 0, ptr {overflow}")
    v = f.capi("i64", "PyLong_AsLongLongAndOverflow", f"ptr {obj}", f"ptr {overflow}")
    f.goto_if(f.op(f"icmp ne i32 {f.op(f'load i32, ptr {overflow}')}, 0"), fail)
    return v


def _optional(f: _Fn, slot: str, default: str, on_value, none_ok: bool, consts: dict) -> str:
    """``default`` when ``slot`` is absent (or None, when ``none_ok``), else ``on_value(slot)``
    (emitted in its own block); the merged value."""
    k = f.n
    given, absent, merge = f"given{k}", f"absent{k}", f"merge{k}"
    null = f.op(f"icmp eq ptr {slot}, null")
    if none_ok:
        none = consts["None"]
        is_none = f.op(f"icmp eq ptr {slot}, inttoptr (i64 {none} to ptr)")
        null = f.op(f"or i1 {null}, {is_none}")
    f(f"br i1 {null}, label %{absent}, label %{given}")
    f.label(given)
    v = on_value(slot)
    end_given = f"g_end{k}"
    f(f"br label %{end_given}")
    f.label(end_given)
    f(f"br label %{merge}")
    f.label(absent)
    f(f"br label %{merge}")
    f.label(merge)
    return f.op(f"phi i64 [ {v}, %{end_given} ], [ {default}, %{absent} ]")


def _price(f: _Fn, slot: str, consts: dict, fail: str, overflow: str) -> str:
    """A price argument: an exact float, or an exact int that fits in 64 bits, as a double."""
    k = f.n
    tp = f.type_of(slot)
    is_float = f.op(f"icmp eq i64 {tp}, {consts['float']}")
    f(f"br i1 {is_float}, label %pf{k}, label %pi{k}")
    f.label(f"pf{k}")
    d1 = f.capi("double", "PyFloat_AsDouble", f"ptr {slot}")
    f(f"br label %pm{k}")
    f.label(f"pi{k}")
    i = _int_value(f, slot, consts["int"], fail, overflow)
    d2 = f.op(f"sitofp i64 {i} to double")
    end_int = f"pie{k}"
    f(f"br label %{end_int}")
    f.label(end_int)
    f(f"br label %pm{k}")
    f.label(f"pm{k}")
    return f.op(f"phi double [ {d1}, %pf{k} ], [ {d2}, %{end_int} ]")


def _emit(op: str, params: tuple[str, ...], required: int, api: dict, consts: dict,
          engine: bool = False) -> str:
    """One operation's function (module doc); ``params`` in the Python method's order.
    ``engine``: ``Engine``'s form, the symbol first (looked up in the book's index dict,
    the bound tuple's fifth item); else ``OrderBook``'s, book 0."""
    f = _Fn(api)
    if engine:
        params, required = ("symbol",) + params, required + 1
    n = len(params)
    name = f"wb_{'engine_' if engine else ''}{op}"
    f.lines.append(f"define ptr @{name}(ptr %self, ptr %args, i64 %nargs, ptr %kw) {{")
    f.label("entry")
    f("%ovf = alloca i32")
    f("%exc = alloca ptr")
    f("%ret = alloca [3 x i64]")
    f(f"%slots = alloca [{n} x ptr]")
    f("%tries = alloca i64")
    f("%stack = alloca [5 x ptr]")
    f("%dims = alloca i64")
    f("store i64 0, ptr %tries")
    for i in range(n):
        f(f"store ptr null, ptr {f.at('%slots', 8 * i)}")
    ctl_array = f.load("ptr", "%self", 24 + 16)
    f("%ctl = load ptr, ptr " + f.at(ctl_array, 16))
    on = f.load("i64", "%ctl", 8 * CTL_ON)
    f.goto_if(f.op(f"icmp eq i64 {on}, 0"), "fallback")
    f.goto_if(f.op(f"icmp ugt i64 %nargs, {n}"), "fallback")
    # positional arguments
    f("br label %pos_pre")
    f.label("pos_pre")
    f("br label %pos_head")
    f.label("pos_head")
    f("%pi = phi i64 [ 0, %pos_pre ], [ %pi_next, %pos_body ]")
    f("%pdone = icmp sge i64 %pi, %nargs")
    f("br i1 %pdone, label %kw_pre, label %pos_body")
    f.label("pos_body")
    f("%pa = getelementptr ptr, ptr %args, i64 %pi")
    f("%pv = load ptr, ptr %pa")
    f("%ps = getelementptr ptr, ptr %slots, i64 %pi")
    f("store ptr %pv, ptr %ps")
    f("%pi_next = add i64 %pi, 1")
    f("br label %pos_head")
    # keyword arguments: kwnames is a tuple of interned names; values follow the positionals
    f.label("kw_pre")
    f("%nokw = icmp eq ptr %kw, null")
    f("br i1 %nokw, label %bound, label %kw_count")
    f.label("kw_count")
    f("%nkw = load i64, ptr " + f.at("%kw", 16))
    f("br label %kw_head")
    f.label("kw_head")
    f("%ki = phi i64 [ 0, %kw_count ], [ %ki_next, %kw_store ]")
    f("%kdone = icmp sge i64 %ki, %nkw")
    f("br i1 %kdone, label %bound, label %kw_body")
    f.label("kw_body")
    f("%kno = add i64 %ki, 3")
    f("%kna = getelementptr ptr, ptr %kw, i64 %kno")
    f("%kname = load ptr, ptr %kna")
    idx = "-1"
    for i in reversed(range(n)):
        hit = f.op(f"icmp eq ptr %kname, inttoptr (i64 {consts['names'][params[i]]} to ptr)")
        idx = f.op(f"select i1 {hit}, i64 {i}, i64 {idx}")
    f.goto_if(f.op(f"icmp slt i64 {idx}, 0"), "fallback")   # not a parameter's name
    f(f"%ksl = getelementptr ptr, ptr %slots, i64 {idx}")
    f.goto_if(f.op("icmp ne ptr " + f.op("load ptr, ptr %ksl") + ", null"), "fallback")
    f("br label %kw_store")
    f.label("kw_store")
    f("%kvi = add i64 %nargs, %ki")
    f("%kva = getelementptr ptr, ptr %args, i64 %kvi")
    f("%kv = load ptr, ptr %kva")
    f("store ptr %kv, ptr %ksl")
    f("%ki_next = add i64 %ki, 1")
    f("br label %kw_head")
    f.label("bound")
    slot = {p: f.load("ptr", "%slots", 8 * i) for i, p in enumerate(params)}
    for p in params[:required]:
        f.goto_if(f.op(f"icmp eq ptr {slot[p]}, null"), "fallback")

    def int_of(want):
        return lambda s: _int_value(f, s, want, "fallback", "%ovf")

    def positive_int(s):
        v = _int_value(f, s, consts["int"], "fallback", "%ovf")
        f.goto_if(f.op(f"icmp sle i64 {v}, 0"), "fallback")
        return v

    values = {"book": "0"}
    auto = None
    for p in params:
        s = slot[p]
        if p == "symbol":    # an exact str naming a book (else Python raises, naming it)
            f.goto_if(f.op(f"icmp ne i64 {f.type_of(s)}, {consts['str']}"), "fallback")
            index = f.load("ptr", "%self", 24 + 32)
            found = f.capi("ptr", "PyDict_GetItem", f"ptr {index}", f"ptr {s}")   # borrowed
            f.goto_if(f.op(f"icmp eq ptr {found}, null"), "fallback")
            values["book"] = _int_value(f, found, consts["int"], "fallback", "%ovf")
        elif p == "side":
            values[p] = _int_value(f, s, consts["Side"], "fallback", "%ovf")
        elif p == "price":   # absent (modify's quantity-only form): the Python method
            f.goto_if(f.op(f"icmp eq ptr {s}, null"), "fallback")
            values[p] = _price(f, s, consts, "fallback", "%ovf")
        elif p == "qty" and op == "submit":
            values[p] = _int_value(f, s, consts["int"], "fallback", "%ovf")
        elif p == "qty":
            values[p] = _optional(f, s, "0", positive_int, True, consts)
        elif p == "order_type":
            values[p] = _optional(f, s, str(consts["LIMIT"]), int_of(consts["OrderType"]), False,
                                  consts)
        elif p == "tif":
            values[p] = _optional(f, s, str(consts["GTC"]), int_of(consts["TimeInForce"]), False,
                                  consts)
        elif p == "order_id" and op == "submit":
            auto = f.load("i64", "%ctl", 8 * CTL_NEXT_ID)
            values[p] = _optional(f, s, auto, int_of(consts["int"]), True, consts)
            # an automatic id past AUTO_ID_END: the Python path says so
            given = f.op(f"icmp ne i64 {values[p]}, {auto}")
            room = f.op(f"icmp slt i64 {values[p]}, {consts['AUTO_ID_END']}")
            f.goto_if(f.op(f"icmp eq i1 {f.op(f'or i1 {given}, {room}')}, 0"), "fallback")
        elif p == "order_id":
            values[p] = _int_value(f, s, consts["int"], "fallback", "%ovf")
        elif p == "ts":
            values[p] = _optional(f, s, "0", int_of(consts["int"]), True, consts)
    f("br label %call")
    # the kernel call (again after the Python side moved to a new fills chunk)
    f.label("call")
    which = {"submit": K_ADD, "cancel": K_CANCEL, "modify": K_MODIFY}[op]
    kaddr = f.op(f"load i64, ptr inttoptr (i64 {consts['kernels'] + 8 * which} to ptr)")
    f.goto_if(f.op(f"icmp eq i64 {kaddr}, 0"), "fallback")
    kfn = f.op(f"inttoptr i64 {kaddr} to ptr")
    chunk = f.load("i64", "%ctl", 8 * CTL_CHUNK_CTX)
    pos = f.load("i64", "%ctl", 8 * CTL_CHUNK_POS)
    scale = f.load("i64", "%ctl", 8 * CTL_SCALE)
    v = values
    if op == "submit":
        args = [f"i64 {chunk}", f"i64 {pos}", f"i64 {v['ts']}", f"i64 {v['order_id']}",
                f"double {v['price']}", f"i64 {v['qty']}", f"i64 {v['book']}", f"i64 {v['side']}",
                f"i64 {v['order_type']}", f"i64 {v['tif']}", f"i64 {scale}"]
    elif op == "cancel":
        ctx = f.load("i64", "%ctl", 8 * CTL_CTX)
        args = [f"i64 {ctx}", f"i64 {v['order_id']}", f"i64 {v['qty']}", f"i64 {v['book']}"]
    else:
        args = [f"i64 {chunk}", f"i64 {pos}", f"i64 {v['order_id']}", f"double {v['price']}",
                f"i64 {v['qty']}", f"i64 {v['book']}", f"i64 {scale}"]
    status = f.op(f"call i32 {kfn}(ptr %ret, ptr %exc, {', '.join(args)})")
    f.goto_if(f.op(f"icmp ne i32 {status}, 0"), "kernel_error")
    code = f.load("i64", "%ret", 0)
    filled = f.load("i64", "%ret", 8)
    leaves = f.load("i64", "%ret", 16)
    f.goto_if(f.op(f"icmp slt i64 {code}, 0"), "fallback")   # CHECK: nothing applied
    oid = v["order_id"]
    if op == "submit":   # automatic ids never collide with given ones
        nid = f.load("i64", "%ctl", 8 * CTL_NEXT_ID)
        above = f.op(f"icmp sle i64 {nid}, {oid}")
        below = f.op(f"icmp slt i64 {oid}, {consts['AUTO_ID_END']}")
        bump = f.op(f"and i1 {above}, {below}")
        new = f.op(f"select i1 {bump}, i64 {f.op(f'add i64 {oid}, 1')}, i64 {nid}")
        f(f"store i64 {new}, ptr {f.at('%ctl', 8 * CTL_NEXT_ID)}")
    st = f.op(f"and i64 {code}, 255")
    reason = f.op(f"and i64 {f.op(f'ashr i64 {code}, 8')}, 255")
    n_fills = f.op(f"ashr i64 {code}, 16")
    no_fills = f.op(f"icmp eq i64 {n_fills}, 0")
    full_code = consts["OUTPUT_FULL"]
    full = f.op(f"and i1 {no_fills}, {f.op(f'icmp eq i64 {reason}, {full_code}')}")
    st_ok = f.op(f"icmp ult i64 {st}, {consts['n_status']}")
    rs_ok = f.op(f"icmp ult i64 {reason}, {consts['n_reason']}")
    here = f.op(f"and i1 {f.op(f'and i1 {st_ok}, {rs_ok}')}, {f.op(f'xor i1 {full}, true')}")
    if not consts["numpy_api"]:   # fills are then made in Python
        here = f.op(f"and i1 {here}, {no_fills}")
    f(f"br i1 {here}, label %result, label %done_in_python")
    # the result here: its fills a view of the chunk, as the Python path makes them
    f.label("result")
    no_fills_obj = f"inttoptr (i64 {consts['NO_FILLS']} to ptr)"
    f(f"br i1 {no_fills}, label %fills_none, label %fills_view")
    f.label("fills_none")
    f.capi("void", "Py_IncRef", f"ptr {no_fills_obj}")
    f("br label %result_fills")
    f.label("fills_view")
    view = "null"
    if consts["numpy_api"]:
        p = f.load("i64", "%ctl", 8 * CTL_CHUNK_POS)
        f(f"store i64 {f.op(f'add i64 {p}, {n_fills}')}, ptr {f.at('%ctl', 8 * CTL_CHUNK_POS)}")
        chunk = f.op(f"inttoptr i64 {f.load('i64', '%ctl', 8 * CTL_CHUNK_OBJ)} to ptr")
        data = f.load("ptr", chunk, 16)                      # PyArrayObject.data
        size = consts["FILL_SIZE"]
        first = f.op(f"getelementptr i8, ptr {data}, i64 {f.op(f'mul i64 {p}, {size}')}")
        f(f"store i64 {n_fills}, ptr %dims")
        descr = f"inttoptr (i64 {consts['FILL']} to ptr)"
        f.capi("void", "Py_IncRef", f"ptr {descr}")          # NewFromDescr steals it
        ndarray = f"inttoptr (i64 {consts['ndarray']} to ptr)"
        view = f.capi("ptr", "PyArray_NewFromDescr", f"ptr {ndarray}", f"ptr {descr}", "i32 1",
                      "ptr %dims", "ptr null", f"ptr {first}", f"i32 {consts['CARRAY']}",
                      "ptr null")
        f.goto_if(f.op(f"icmp eq ptr {view}, null"), "error")
        f.capi("void", "Py_IncRef", f"ptr {chunk}")          # SetBaseObject steals it
        based = f.capi("i32", "PyArray_SetBaseObject", f"ptr {view}", f"ptr {chunk}")
        f.goto_if(f.op(f"icmp ne i32 {based}, 0"), "error_view")
        log = f.load("ptr", "%self", 24 + 24)
        record = f.load("i64", "%ctl", 8 * CTL_RECORD)
        f(f"br i1 {f.op(f'icmp ne i64 {record}, 0')}, label %log_fills, label %logged")
        f.label("log_fills")
        appended = f.capi("i32", "PyList_Append", f"ptr {log}", f"ptr {view}")
        f.goto_if(f.op(f"icmp ne i32 {appended}, 0"), "error_view")
        f("br label %logged")
        f.label("logged")
    f("br label %result_fills")
    f.label("result_fills")
    fills_obj = f.op(f"phi ptr [ {no_fills_obj}, %fills_none ], [ {view}, %"
                     f"{'logged' if consts['numpy_api'] else 'fills_view'} ]")
    st_at = f.op(f"getelementptr ptr, ptr inttoptr (i64 {consts['status']} to ptr), i64 {st}")
    rs_at = f.op(f"getelementptr ptr, ptr inttoptr (i64 {consts['reason']} to ptr), i64 {reason}")
    st_obj = f.op(f"load ptr, ptr {st_at}")
    rs_obj = f.op(f"load ptr, ptr {rs_at}")
    o_oid = f.capi("ptr", "PyLong_FromLongLong", f"i64 {oid}")
    o_filled = f.capi("ptr", "PyLong_FromLongLong", f"i64 {filled}")
    o_leaves = f.capi("ptr", "PyLong_FromLongLong", f"i64 {leaves}")
    res = f.capi("ptr", "PyType_GenericAlloc", f"ptr inttoptr (i64 {consts['OrderResult']} to ptr)",
                 "i64 6")
    bad = f.op(f"icmp eq ptr {o_oid}, null")
    for o in (o_filled, o_leaves, res):
        bad = f.op(f"or i1 {bad}, {f.op(f'icmp eq ptr {o}, null')}")
    f(f"br i1 {bad}, label %no_memory, label %fill")
    f.label("no_memory")
    for o in (o_oid, o_filled, o_leaves, res, fills_obj):
        f.capi("void", "Py_DecRef", f"ptr {o}")   # Py_DecRef takes NULL
    f("ret ptr null")
    f.label("fill")
    for o in (st_obj, rs_obj):
        f.capi("void", "Py_IncRef", f"ptr {o}")
    for i, o in enumerate((o_oid, st_obj, o_filled, o_leaves, rs_obj, fills_obj)):
        f(f"store ptr {o}, ptr {f.at(res, 24 + 8 * i)}")
    f(f"ret ptr {res}")
    # the view could not be made (no memory): the request was applied, so say so
    f.label("error_view")
    f.capi("void", "Py_DecRef", f"ptr {view}")
    f("br label %error")
    f.label("error")
    f("ret ptr null")
    # fills, or a full chunk: Python finishes (a result), or renews the chunk (None)
    f.label("done_in_python")
    done = f.load("ptr", "%self", 24 + 8)
    stack = "%stack"
    objs = [f.capi("ptr", "PyLong_FromLongLong", f"i64 {x}")
            for x in (oid, code, filled, leaves, v["book"])]
    for i, o in enumerate(objs):
        f(f"store ptr {o}, ptr {f.at(stack, 8 * i)}")
    bad = f.op(f"icmp eq ptr {objs[0]}, null")
    for o in objs[1:]:
        bad = f.op(f"or i1 {bad}, {f.op(f'icmp eq ptr {o}, null')}")
    f(f"br i1 {bad}, label %no_memory2, label %finish")
    f.label("no_memory2")
    for o in objs:
        f.capi("void", "Py_DecRef", f"ptr {o}")
    f("ret ptr null")
    f.label("finish")
    out = f.capi("ptr", "PyObject_Vectorcall", f"ptr {done}", f"ptr {stack}", "i64 5", "ptr null")
    for o in objs:
        f.capi("void", "Py_DecRef", f"ptr {o}")
    renewed = f.op(f"icmp eq ptr {out}, inttoptr (i64 {consts['None']} to ptr)")
    f(f"br i1 {renewed}, label %again, label %finished")
    f.label("finished")
    f(f"ret ptr {out}")     # the result, or NULL with the exception set
    f.label("again")
    f.capi("void", "Py_DecRef", f"ptr {out}")
    tries = f.op("load i64, ptr %tries")
    f(f"store i64 {f.op(f'add i64 {tries}, 1')}, ptr %tries")
    f.goto_if(f.op(f"icmp sge i64 {tries}, {_RETRIES}"), "fallback")
    f("br label %call")
    # a kernel that raised (a bounds check): say so, never guess what it applied
    f.label("kernel_error")
    f.capi("void", "PyErr_SetString", f"ptr inttoptr (i64 {consts['RuntimeError']} to ptr)",
           f"ptr inttoptr (i64 {consts['message']} to ptr)")
    f("ret ptr null")
    # everything else: the Python method, with the very same arguments
    f.label("fallback")
    py = f.load("ptr", "%self", 24)
    r = f.capi("ptr", "PyObject_Vectorcall", f"ptr {py}", "ptr %args", "i64 %nargs", "ptr %kw")
    f(f"ret ptr {r}")
    f.lines.append("}")
    return "\n".join(f.lines)


# ------------------------------------------------------------ building and installing
class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_METH_FASTCALL_KEYWORDS = 0x0080 | 0x0002
_API = ("PyLong_AsLongLongAndOverflow", "PyFloat_AsDouble", "PyLong_FromLongLong",
        "PyType_GenericAlloc", "Py_IncRef", "Py_DecRef", "PyObject_Vectorcall",
        "PyErr_SetString", "PyList_Append", "PyDict_GetItem")
# NumPy's C API table (``_ARRAY_API``): the slots of the two functions a fills view needs
_NEW_FROM_DESCR, _SET_BASE_OBJECT = 94, 282
_NPY_CARRAY = 0x0001 | 0x0100 | 0x0400   # C-contiguous, aligned, writeable (a slice's flags)
# the parameters of each Python method (``OrderBook.submit`` ...) and how many are required
OPERATIONS = {
    "submit": (("side", "price", "qty", "order_type", "tif", "order_id", "ts"), 3),
    "cancel": (("order_id", "qty"), 1),
    "modify": (("order_id", "price", "qty"), 1),
}


def _constants() -> dict:
    from kernels import records as R
    from workbench import book as wb
    from workbench.enums import OrderType, Side, TimeInForce

    status = np.array([id(s) for s in wb._STATUS], dtype=np.int64)
    reason = np.array([id(r) for r in wb._REASON], dtype=np.int64)
    names = {p: sys.intern(p) for params, _ in OPERATIONS.values() for p in ("symbol",) + params}
    message = ctypes.create_string_buffer(
        b"an order book kernel raised an error during a per-order call (a bounds check "
        b"of the safe build); the book may hold part of the operation")
    _KEEP.extend([status, reason, names, message, wb._STATUS, wb._REASON, wb._NO_FILLS])
    return {
        "Side": id(Side), "OrderType": id(OrderType), "TimeInForce": id(TimeInForce),
        "int": id(int), "float": id(float), "None": id(None), "str": id(str),
        "OrderResult": id(wb.OrderResult), "NO_FILLS": id(wb._NO_FILLS),
        "RuntimeError": id(RuntimeError), "message": ctypes.addressof(message),
        "status": status.ctypes.data, "reason": reason.ctypes.data,
        "n_status": len(status), "n_reason": len(reason),
        "names": {p: id(s) for p, s in names.items()},
        "LIMIT": int(R.LIMIT), "GTC": int(R.GTC), "AUTO_ID_END": wb.AUTO_ID_END,
        "OUTPUT_FULL": int(R.R_OUTPUT_FULL), "kernels": _KERNELS.ctypes.data,
        "FILL": id(R.FILL), "FILL_SIZE": R.FILL.itemsize, "ndarray": id(np.ndarray),
        "CARRAY": _NPY_CARRAY,
    }


def _numpy_api() -> dict | None:
    """The addresses of ``PyArray_NewFromDescr`` and ``PyArray_SetBaseObject`` from NumPy's
    C API table, after checking through ctypes that they make the view a slice makes;
    None when they cannot be found or do not (the fills are then made in Python)."""
    from kernels import records as R

    try:
        try:
            from numpy._core import _multiarray_umath as mu
        except ImportError:   # NumPy 1
            from numpy.core import _multiarray_umath as mu
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        table = ctypes.cast(get(mu._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
        new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object,
                                ctypes.c_int, ctypes.POINTER(ctypes.c_ssize_t), ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)(
            table[_NEW_FROM_DESCR])
        base = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.py_object)(
            table[_SET_BASE_OBJECT])
        chunk = np.zeros(8, dtype=R.FILL)
        chunk["qty"] = np.arange(8)
        incref = ctypes.pythonapi.Py_IncRef
        incref.argtypes = [ctypes.py_object]
        incref(R.FILL)
        dims = (ctypes.c_ssize_t * 1)(3)
        view = new(np.ndarray, R.FILL, 1, dims, None,
                   chunk.ctypes.data + 2 * R.FILL.itemsize, _NPY_CARRAY, None)
        incref(chunk)
        if base(view, chunk) != 0:
            return None
        expected = chunk[2:5]
        if (type(view) is not np.ndarray or view.dtype != R.FILL or view.shape != (3,)
                or view.strides != expected.strides or view.base is not chunk
                or view.flags.writeable != expected.flags.writeable
                or not np.array_equal(view["qty"], [2, 3, 4])):
            return None
    except Exception:   # noqa: BLE001 - no usable table: fills made in Python
        return None
    return {"PyArray_NewFromDescr": table[_NEW_FROM_DESCR],
            "PyArray_SetBaseObject": table[_SET_BASE_OBJECT]}


def _build():
    """The three method definitions (built once per process), or why there are none."""
    with _LOCK:
        if "built" in _BUILT:
            return _BUILT["built"]
        why = _why_not()
        if why is None:
            try:
                _BUILT["built"] = _compile()
            except Exception as exc:   # noqa: BLE001 - any failure keeps the Python path
                _BUILT["built"] = f"the native entries did not build: {exc!r}"
        else:
            _BUILT["built"] = why
        return _BUILT["built"]


def _compile() -> dict:
    import llvmlite.binding as ll
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    from workbench import book as wb
    from workbench.book import OrderResult

    if OrderResult.__basicsize__ != tuple.__basicsize__ or OrderResult.__itemsize__ != 8:
        raise RuntimeError("OrderResult is not laid out as a tuple")
    pyapi = ctypes.pythonapi
    api = {name: ctypes.cast(getattr(pyapi, name), ctypes.c_void_p).value for name in _API}
    consts = _constants()
    numpy_api = _numpy_api()
    consts["numpy_api"] = numpy_api is not None
    api.update(numpy_api or {})
    text = "\n\n".join(_emit(op, params, required, api, consts, engine)
                       for engine in (False, True)
                       for op, (params, required) in OPERATIONS.items())
    with global_compiler_lock:   # Numba's code generator expects its lock held
        codegen = cpu_target.target_context.codegen()
        library = codegen.create_library("workbench_fastcall")
        module = ll.parse_assembly(text)
        module.verify()
        library.add_llvm_module(module)
        library.finalize()
    _KEEP.append(library)
    defs = {}
    for engine, owner in ((False, wb._Books), (True, wb.Engine)):
        for op in OPERATIONS:
            method = getattr(owner, op if engine else f"_{op}")
            doc = (method.__doc__ or "").encode()
            name = op.encode()
            _KEEP.extend([name, doc])
            symbol = f"wb_{'engine_' if engine else ''}{op}"
            defs[op, engine] = _MethodDef(name, library.get_pointer_to_function(symbol),
                                          _METH_FASTCALL_KEYWORDS, doc)
    _KEEP.append(defs)
    return defs


_new_builtin = None


def _builtin(definition, bound) -> object:
    global _new_builtin
    if _new_builtin is None:
        f = ctypes.pythonapi.PyCFunction_NewEx
        f.restype = ctypes.py_object
        f.argtypes = [ctypes.POINTER(_MethodDef), ctypes.py_object, ctypes.py_object]
        _new_builtin = f
    return _new_builtin(ctypes.byref(definition), bound, "workbench.book")


def install(book, engine: bool = False, fallbacks: dict | None = None) -> bool:
    """Give ``book`` (an ``OrderBook``, or with ``engine`` an ``Engine``) native ``submit``,
    ``add_order``, ``cancel`` and ``modify`` (module doc); False (nothing changed) when this
    process has none. They hand what they do not take to the book's Python methods
    (``OrderBook``: ``_submit``, ``_cancel``, ``_modify``; ``Engine``: its class's
    ``submit``, ``cancel``, ``modify``), or to ``fallbacks[op]`` when given."""
    built = _build()
    if isinstance(built, str):
        return False
    if fallbacks is not None:
        methods = dict(fallbacks)
    elif engine:
        cls = type(book)
        methods = {op: types.MethodType(getattr(cls, op), book) for op in OPERATIONS}
    else:
        methods = {"submit": book._submit, "cancel": book._cancel, "modify": book._modify}
    for op, fallback in methods.items():
        bound = (fallback, book._chunk_outcome, book._ctl, book._fill_log, book._index)
        setattr(book, op, _builtin(built[op, engine], bound))
    book.add_order = book.submit
    book._ctl[CTL_ON] = 1
    return True
