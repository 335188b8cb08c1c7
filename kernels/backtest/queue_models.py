"""Queue-position models for L2 (price-level) backtests, after hftbacktest's.

With only level sizes, where an own order sits in its queue must be estimated. The
estimate is ``front``: the market quantity ahead of the order. It starts at the level's
size when the order arrives; a trade at the level's price takes its quantity off
``front``; a *decrease* of the level size that trades do not explain (a cancel) is
split between ahead and behind with the probability ``p`` that it happened *behind*
the order, given by the queue model. The update (hftbacktest's ``ProbQueueModel``,
``hftbacktest/src/backtest/models/queue.rs``: we follow its formula, not its code)::

    chg   = prev_qty - new_qty - traded_since_last_depth_change
    if chg < 0: front = min(front, new_qty)            # an increase queues behind
    else:
        back  = prev_qty - front
        front = min(front - (1 - p) * chg + min(back - p * chg, 0), new_qty)

and the order fills when ``front`` falls below zero (by ``-front``, up to its leaves).

A queue model is any kernel or user ``@numba.njit`` function::

    prob_behind(front, back, params) -> float in [0, 1]

Bundled: :func:`risk_averse` (p = 1: cancels always come from behind, so only trades
advance the order, hftbacktest's ``RiskAdverseQueueModel``), :func:`power_prob`
(``f(x) = x ** params[0]``, p = f(back) / (f(back) + f(front))) and :func:`log_prob`
(``f(x) = log(1 + x)``, same ratio). :func:`bundled_prob` is the three in one kernel, the
model chosen by ``params[0]`` (``QM_*``): the backtester passes it for every bundled model,
so the loop compiled for a strategy (one per strategy, latency model and queue *function*,
``workbench.backtest.loopcache``) serves all three, and switching model recompiles
nothing.
"""
from __future__ import annotations

import math

from ..jit import kernel

# bundled_prob's models: params[0]
QM_RISK_AVERSE = 0
QM_POWER = 1       # params[1]: the exponent n
QM_LOG = 2
# the registry of the bundled models: name -> (code, the keyword parameters it takes)
BUNDLED = {"risk_averse": (QM_RISK_AVERSE, ()), "power": (QM_POWER, ("n",)), "log": (QM_LOG, ())}


@kernel
def risk_averse(front, back, params):
    return 1.0


@kernel
def power_prob(front, back, params):
    n = params[0] if len(params) > 0 else 2.0
    fb = back ** n
    ff = front ** n
    total = fb + ff
    return fb / total if total > 0 else 1.0


@kernel
def log_prob(front, back, params):
    fb = math.log(1.0 + max(back, 0.0))
    ff = math.log(1.0 + max(front, 0.0))
    total = fb + ff
    return fb / total if total > 0 else 1.0


@kernel(inline="always")
def depth_update(front, traded, prev_qty, new_qty, p):
    """New ``front`` after the level went from ``prev_qty`` to ``new_qty`` (formula above)."""
    chg = prev_qty - new_qty - traded
    if chg < 0:
        return min(front, float(new_qty))
    back = prev_qty - front
    if p != p or p > 1.0:  # NaN or infinite ratio: treat as behind
        p = 1.0
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    return min(est, float(new_qty))


@kernel
def bundled_prob(front, back, params):
    """:func:`risk_averse`, :func:`power_prob` (``n = params[1]``) or :func:`log_prob`, as
    ``params[0]`` says (``QM_*``; anything else is risk averse)."""
    model = params[0] if len(params) > 0 else QM_RISK_AVERSE
    if model == QM_POWER:
        return power_prob(front, back, params[1:])
    if model == QM_LOG:
        return log_prob(front, back, params)
    return risk_averse(front, back, params)
