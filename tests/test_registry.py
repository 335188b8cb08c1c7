"""Registries: one row per strategy, risk limit and admission parameter, next to its kernel,
and everything else derived from them. Adding a strategy is one function plus one row: a
strategy registered here runs in a backtest and in the live pipeline."""
from __future__ import annotations

import time

import numba
import numpy as np
import pytest

from kernels import admission as kadm
from kernels import pipeline as kpipe
from kernels import risk as krisk
from kernels.registry import Entry, Param
from kernels.strategies import GTC, STRATEGIES, place
from workbench import params
from workbench.backtest import Backtest

QTY = 7
OFFSET_TICKS = 3


# the whole recipe: one @njit function with the strategy signature ...
@numba.njit
def bid_below_touch(ctx, view, orders, params, actions):
    """Keep one bid ``params[0]`` ticks below the best bid, ``params[1]`` lots."""
    if view.bid <= 0 or ctx.open_bid_qty > 0 or ctx.position > 0:
        return 0
    return place(actions, 0, 0, view.bid - np.int64(params[0]) * ctx.tick, np.int64(params[1]), GTC)


# ... plus one registry row
ROW = Entry("test_bid_below_touch", bid_below_touch, (
    Param("offset_ticks", 0, 1.0, 0.0, 100.0, True, unit="ticks"),
    Param("qty", 1, 1.0, 1.0, 1e6, True),
), "a test strategy")


@pytest.fixture
def registered():
    STRATEGIES.add(ROW)
    yield ROW.name
    STRATEGIES.remove(ROW.name)


def test_a_registered_strategy_runs_in_a_backtest(registered):
    assert registered in params.strategy_names()
    r = (Backtest("synthetic").strategy(registered, offset_ticks=OFFSET_TICKS, qty=QTY)
         .latency(0, 0, 0).run(progress=False))
    orders = r.orders
    assert orders.height > 0
    assert set(orders["side"].to_list()) == {"buy"}
    assert set(orders["qty"].to_list()) == {QTY}
    # each bid sits OFFSET_TICKS below the best bid the strategy saw when it sent it
    tick = 0.01
    below = (orders["arrival_mid"] - orders["price"]).to_numpy()
    assert (below >= OFFSET_TICKS * tick - 1e-9).all()
    assert r.config["params"] == {"offset_ticks": OFFSET_TICKS, "qty": QTY}


def test_a_registered_strategy_runs_in_the_pipeline(registered):
    from workbench.live import Pipeline

    with Pipeline(rate=20_000, work_ns=0.0, strategy=registered, feed_wait_policy="sleep",
                  wait_policy="sleep", strategy_params={"qty": QTY, "offset_ticks": 2}) as pipe:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pipe.totals()["orders"] < 1:
            time.sleep(0.02)
        assert pipe.control[kpipe.CT_STRATEGY] == STRATEGIES.id_of(registered)
    assert pipe.totals()["orders"] >= 1
    live = pipe.orders[pipe.orders["state"] != 0]
    assert len(live) and set(live["qty"].tolist()) <= {QTY} and set(live["side"].tolist()) == {0}


def test_registry_rows_are_complete_and_indices_fit_their_arrays():
    for entry in STRATEGIES:
        indices = [p.index for p in entry.params]
        assert indices == list(range(len(indices))), entry.name  # params array order
        assert len(indices) <= kpipe.N_STRATEGY_PARAMS
        for p in entry.params:
            assert p.low <= p.default <= p.high, (entry.name, p)
    for table, size in ((krisk.RISK_PARAMS, krisk.N_RISK_PARAMS),
                        (kadm.ADMISSION_PARAMS, kadm.N_ADM_PARAMS)):
        idx = [p.index for p in table]
        assert len(set(idx)) == len(idx) and max(idx) < size
        for p in table:
            assert p.low <= p.default <= p.high, p
    # every controller id is its ADM_* code, and reads only known parameters
    assert kadm.CONTROLLERS.names() == kadm.CONTROLLER_NAMES
    known = {p.name for p in kadm.ADMISSION_PARAMS}
    for entry in kadm.CONTROLLERS:
        assert {p.name for p in entry.params} <= known


def test_one_name_one_unit_everywhere():
    # the rate window is typed in seconds and reaches the kernel in nanoseconds, for the
    # backtester and the pipeline alike
    arr = params.RISK.to_array({"rate_window_s": 0.25, "max_position": 10})
    assert arr[krisk.RP_RATE_WINDOW_NS] == 250_000_000
    assert arr[krisk.RP_MAX_POSITION] == 10
    assert params.RISK.from_array(arr)["rate_window_s"] == 0.25
    bt = Backtest("synthetic").risk(rate_window_s=0.25, max_orders_per_window=3)
    assert bt.describe()["risk"] == {"rate_window_s": 0.25, "max_orders_per_window": 3.0}


@pytest.mark.parametrize("values, match", [
    ({"nope": 1}, "has no parameter"),
    ({"max_position": -1}, "max_position=-1 must be >= 0"),
    ({"max_position": float("nan")}, "must be finite"),
    ({"max_position": True}, "must be a number"),
    ({"max_orders_per_window": 1.5}, "whole number"),
    ({"kill": 2}, "must be <= 1"),
])
def test_validation_names_the_field_and_value(values, match):
    with pytest.raises(ValueError, match=match):
        params.RISK.to_array(values)


def test_strategy_spec_vector_matches_the_registry_defaults():
    spec = params.strategy_spec("mm_skew")
    vec = spec.vector({"qty": 5})
    row = STRATEGIES["mm_skew"]
    assert vec.tolist() == [5.0 if p.name == "qty" else p.default for p in row.params]
    with pytest.raises(ValueError, match="half_spread_ticks=-1"):
        spec.vector({"half_spread_ticks": -1})
    with pytest.raises(ValueError, match="is not one of"):
        params.strategy_spec("no_such_strategy")
    with pytest.raises(ValueError, match="already registered"):
        STRATEGIES.add(row)
