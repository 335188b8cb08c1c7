"""``kernels/state_views.py`` is generated from the states' declarations: it is up to date,
and every field of every state survives packing into a context and unpacking in a kernel."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from kernels import state_codegen, state_views
from kernels.jit import kernel
from kernels.records import ACTION, CTX, LIVE, VIEW, StrategyIO, strategy_io

STATES = [(prefix, getattr(importlib.import_module(module), name))
          for prefix, module, name in state_codegen.STATES]
IDS = [prefix for prefix, _ in STATES]


def test_generated_module_is_up_to_date():
    assert state_codegen.OUTPUT.read_text() == state_codegen.render(), (
        "kernels/state_views.py is stale: run python -m kernels.state_codegen")


def _distinct_state(cls, counter=None):
    """A state whose every array has its own length (2-D: its own second extent)."""
    counter = counter if counter is not None else iter(range(3, 1000))
    values = []
    for _, decl in state_codegen.fields(cls):
        if isinstance(decl, state_codegen.ArrayField):
            n = next(counter)
            shape = (n,) if decl.ndim == 1 else (2,) * (decl.ndim - 1) + (n,)
            values.append(np.zeros(shape, dtype=decl.dtype))
        else:
            values.append(_distinct_state(decl, counter))
    return cls(*values)


def _arrays(state, prefix=""):
    """(path, array) of every array of a state, nested states inlined."""
    for name, value in zip(state._fields, state):
        if isinstance(value, tuple):
            yield from _arrays(value, f"{prefix}{name}.")
        else:
            yield prefix + name, value


def _assert_same_arrays(original, views):
    assert type(views) is type(original)
    pairs = list(zip(_arrays(original), _arrays(views)))
    assert len(pairs) == len(state_codegen.leaves(type(original)))
    for (path, a), (path_v, v) in pairs:
        assert path == path_v
        assert v.ctypes.data == a.ctypes.data, path
        assert v.shape == a.shape, path
        assert v.dtype == a.dtype, path
        # written through the view, seen in the original
        raw = v.view(np.uint8).reshape(-1)
        raw[-1] = 0xA5
        assert a.view(np.uint8).reshape(-1)[-1] == 0xA5, path
        raw[-1] = 0


def _inlined_unpack(views_fn):
    """A kernel that unpacks a context the way the loops do (views inlined into it)."""
    @kernel(cache=False)
    def unpack(context):
        return views_fn(context)

    return unpack


@pytest.mark.parametrize("prefix,cls", STATES, ids=IDS)
def test_every_field_round_trips_through_its_context(prefix, cls):
    state = _distinct_state(cls)
    context = getattr(state_views, f"{prefix}_context")(state)
    assert len(context) == getattr(state_views, f"N_{prefix.upper()}_CONTEXT")
    assert context[-1] == context.ctypes.data  # a context stores its own address last
    views = getattr(state_views, f"{prefix}_views")
    _assert_same_arrays(state, views(context))
    _assert_same_arrays(state, _inlined_unpack(views)(context))


@pytest.mark.parametrize("prefix,cls", STATES, ids=IDS)
def test_each_field_alone_from_its_accessor(prefix, cls):
    """``<prefix>_<field>(c)`` rebuilds that one field, the same view ``<prefix>_views``
    gives (a nested state whole), from Python and inlined into a kernel."""
    state = _distinct_state(cls)
    context = getattr(state_views, f"{prefix}_context")(state)
    for name, decl in state_codegen.fields(cls):
        accessor = getattr(state_views, f"{prefix}_{name}")
        for got in (accessor(context), _inlined_unpack(accessor)(context)):
            if isinstance(decl, state_codegen.ArrayField):
                original = getattr(state, name)
                assert got.ctypes.data == original.ctypes.data, name
                assert got.shape == original.shape and got.dtype == original.dtype, name
            else:
                _assert_same_arrays(getattr(state, name), got)


@pytest.mark.parametrize("prefix,cls", STATES, ids=IDS)
def test_every_field_is_borrowed(prefix, cls):
    state = _distinct_state(cls)
    _assert_same_arrays(state, getattr(state_views, f"{prefix}_borrow")(state))


def test_a_context_refuses_arrays_unlike_their_declaration():
    prefix, cls = STATES[0]
    pack = getattr(state_views, f"{prefix}_context")
    good = _distinct_state(cls)
    first = cls._fields[0]
    wrong_dtype = good._replace(**{first: np.zeros(3, dtype=np.float32)})
    with pytest.raises(ValueError, match=first):
        pack(wrong_dtype)
    strided = good._replace(**{first: np.zeros(6, dtype=getattr(good, first).dtype)[::2]})
    with pytest.raises(ValueError, match=first):
        pack(strided)
    two_d = good._replace(**{first: np.zeros((2, 3), dtype=getattr(good, first).dtype)})
    with pytest.raises(ValueError, match=first):
        pack(two_d)


def test_strategy_io_allocates_the_strategy_interface():
    given = [1.5, 2.0, 3.0]
    io = strategy_io(max_open=5, max_actions=7, params=given, tick=100, price_scale=10_000)
    assert isinstance(io, StrategyIO)
    assert [a.shape for a in io] == [(1,), (1,), (5,), (7,), (3,)]
    assert [a.dtype for a in io] == [CTX, VIEW, LIVE, ACTION, np.float64]
    assert io.params.tolist() == given
    assert io.ctx[0]["tick"] == 100 and io.ctx[0]["price_scale"] == 10_000
    # everything else starts zeroed: no stale orders, actions or scratch memory
    ctx = io.ctx.copy()
    ctx[0]["tick"] = ctx[0]["price_scale"] = 0
    assert not ctx.view(np.uint8).any()
    assert all(not a.view(np.uint8).any() for a in (io.view, io.orders, io.actions))
