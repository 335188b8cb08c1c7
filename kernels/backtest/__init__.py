"""The backtester's kernels (the Python face is ``workbench.backtest``).

``state.py``           ``BacktestState`` and ``L2State`` (the arrays a run touches, declared
                       field by field) and the layouts of their counter, accounting,
                       config and fee arrays (``BC_*``, ``ACC_*``, ``G_*``, ``FEE_*``, ``M_*``).
``l3.py``              the tick-replay loop over L3 data (:func:`run_l3`): own orders in the
                       market's FIFO queues, latency rings, risk, fees, accounting; and
                       the helpers the L2 loop shares.
``l2.py``              the loop over price-level data (:func:`run_l2`): queue position by a
                       probabilistic model.
``latency_models.py``  feed / entry / response latency models (constant, sampled).
``queue_models.py``    queue-position models for L2 data (after hftbacktest's).

Record dtypes and codes of the strategy interface live in ``kernels.records``; the
contexts that carry a state into the loops by address in ``kernels.state_views``.
"""
