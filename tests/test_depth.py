"""``workbench.depth`` (book shape, depth over time), its heatmap figure and the checkers of
notebook 11, against the plain-Python reference book (``workbench.reference``)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from kernels import book_state
from kernels import records as R
from workbench import teaching
from workbench.book import Engine, OrderBook
from workbench.data.synthetic import simulate
from workbench.depth import book_shape, depth_over_time, shape_table
from workbench.enums import Side
from workbench.plots import depth_heatmap_figure
from workbench.reference import ReferenceBook

TICK = 100  # one cent at the default price scale


@pytest.fixture(scope="module")
def market():
    return simulate(n_symbols=2, seed=5, duration_s=1800.0, rate=2.0, symbols=("AAA", "BBB"))


def _engine(market) -> Engine:
    return Engine(list(market.symbols), tick_size=0.01, capacity=50_000, record_fills=False)


def _reference_cells(events, book, edges, levels, bin_units, max_ticks):
    """The cells and touch depth_over_time must give, from a ReferenceBook replay."""
    ref = ReferenceBook(tick=TICK)
    cuts = np.searchsorted(events["ts"], edges[1:], side="right")
    cuts[-1] = len(events)
    cells, touch, done = [], [], 0
    for k, cut in enumerate(cuts):
        for e in events[done:cut]:
            if e["symbol"] == book:
                ref.apply(int(e["kind"]), int(e["order_id"]), int(e["side"]), int(e["price"]),
                          int(e["qty"]), int(e["order_type"]), int(e["tif"]), int(e["ts"]))
        done = cut
        best, far = {}, 0
        for side, name in ((R.BUY, "bid"), (R.SELL, "ask")):
            top = ref.levels(side)[:levels]
            best[side] = top[0][0] / 10_000 if top else None
            bins: dict[int, list[int]] = {}
            for price, qty, count in top:
                if max_ticks is not None and abs(price - top[0][0]) > max_ticks * TICK:
                    far += 1
                    continue
                acc = bins.setdefault(price // bin_units, [0, 0])
                acc[0] += qty
                acc[1] += count
            cells += [(k, name, b * bin_units / 10_000, q, c) for b, (q, c) in bins.items()]
        touch.append((best[R.BUY], best[R.SELL], far))
    return cells, touch


@pytest.mark.parametrize("price_bin, max_ticks", [(None, None), (0.03, 4)])
def test_depth_over_time_matches_the_reference_book(market, price_bin, max_ticks):
    events = market.events
    engine = _engine(market)
    snapshots, levels = 9, 6
    depth = depth_over_time(engine, events, "BBB", snapshots=snapshots, levels=levels,
                            price_bin=price_bin, max_ticks=max_ticks)
    edges = np.linspace(int(events["ts"][0]), int(events["ts"][-1]), snapshots + 1).round() \
        .astype(np.int64)
    bin_units = TICK if price_bin is None else round(price_bin * 10_000)
    cells, touch = _reference_cells(events, 1, edges, levels, bin_units, max_ticks)
    assert depth.snapshots == snapshots and depth.symbol == "BBB"
    starts = depth.cells["t0"].cast(pl.Int64).to_list()
    got = sorted(zip([int(np.searchsorted(edges, s)) for s in starts], depth.cells["side"],
                     depth.cells["price_lo"].round(4), depth.cells["qty"], depth.cells["orders"]))
    assert got == sorted((k, s, round(p, 4), q, c) for k, s, p, q, c in cells)
    assert (depth.cells["price_hi"] - depth.cells["price_lo"] - bin_units / 10_000).abs().max() < 1e-9
    assert list(zip(depth.touch["best_bid"], depth.touch["best_ask"], depth.touch["far_levels"])) \
        == touch
    if max_ticks is not None:
        assert sum(far for _, _, far in touch) > 0  # the setting did leave levels out
    # the engine ends where a replay of every event leaves it
    whole = _engine(market)
    whole.submit_many(events)
    assert engine.get_bids("BBB", 50) == whole.get_bids("BBB", 50)
    assert engine.get_asks("AAA", 50) == whole.get_asks("AAA", 50)


def test_depth_over_time_rejects_bad_input(market):
    engine = _engine(market)
    events = market.events
    with pytest.raises(ValueError, match="sorted"):
        depth_over_time(engine, events[::-1].copy(), "AAA")
    with pytest.raises(ValueError, match="price_bin"):
        depth_over_time(engine, events, "AAA", price_bin=0.015)
    with pytest.raises(ValueError, match="snapshots"):
        depth_over_time(engine, events, "AAA", snapshots=0)
    with pytest.raises(ValueError, match="EVENT"):
        depth_over_time(engine, np.zeros(3), "AAA")
    with pytest.raises(ValueError, match="empty"):
        depth_over_time(engine, events[:0], "AAA")
    with pytest.raises(ValueError, match="name one"):
        depth_over_time(engine, events, None)


def test_book_shape_matches_the_reference_and_finds_the_overflow():
    """A small window (256 ticks) around $50 with stub quotes and deep orders: the shape's
    levels, extremes, span and distances from the touch equal the reference book's, and
    the overflow levels are exactly the levels outside each side's window."""
    book = OrderBook("HOOK", tick_size=0.01, capacity=256, price_levels=256, record_fills=False)
    ref = ReferenceBook(tick=TICK)
    rng = np.random.default_rng(3)
    oid = 0
    for side, prices in ((Side.BUY, [4999 - int(x) for x in rng.integers(0, 40, 60)] + [1, 2500, 4000]),
                         (Side.SELL, [5001 + int(x) for x in rng.integers(0, 40, 60)]
                          + [19_999_999, 7500, 6001])):
        for ticks in prices:
            oid += 1
            qty = int(rng.integers(1, 9)) * 100
            assert book.submit(side, ticks / 100, qty, order_id=oid).accepted
            ref.add(oid, int(side), ticks * TICK, qty)
    shape = book_shape(book)
    bids, asks = ref.levels(R.BUY), ref.levels(R.SELL)
    assert (shape["bid_levels"], shape["ask_levels"], shape["orders"]) == (len(bids), len(asks), 126)
    assert (shape["best_bid"], shape["best_ask"]) == (bids[0][0] / 1e4, asks[0][0] / 1e4)
    assert (shape["lowest_bid"], shape["highest_ask"]) == (0.01, 199_999.99)
    assert shape["span_ticks"] == 19_999_998 and shape["tick"] == 0.01
    dist = np.array([abs(p - lv[0][0]) // TICK for lv in (bids, asks) for p, _, c in lv
                     for _ in range(c)])
    assert shape["max_ticks_from_touch"] == dist.max()
    assert shape["median_ticks_from_touch"] == np.percentile(dist, 50)
    assert shape["p99_ticks_from_touch"] == np.percentile(dist, 99)
    b = book.state.books[0]
    W = book.stats()["price_window"]
    for side, levels in ((R.BUY, bids), (R.SELL, asks)):
        outside = [p for p, _, _ in levels if not b["lo"][side] <= p // TICK < b["lo"][side] + W]
        assert shape[f"{'bid' if side == R.BUY else 'ask'}_overflow_levels"] == len(outside) > 0
    table = shape_table(book)
    assert table.height == 1 and table.row(0, named=True) == shape
    empty = shape_table(Engine(["X", "Y"]))
    assert empty["orders"].to_list() == [0, 0] and empty["best_bid"].null_count() == 2


def test_heatmap_figure_draws_the_cells_and_the_touch(market):
    depth = depth_over_time(_engine(market), market.events, "AAA", snapshots=5, levels=4)
    fig = depth_heatmap_figure(depth)
    assert fig.sizing_mode == "stretch_width"
    cells = fig.select({"name": "depth_cells"})[0].data_source.data
    assert list(cells["qty"]) == depth.cells["qty"].to_list()
    assert list(cells["price_lo"]) == depth.cells["price_lo"].to_list()
    bid = fig.select({"name": "best_bid"})[0].data_source.data
    assert np.allclose(bid["best_bid"], depth.touch["best_bid"].to_numpy(), equal_nan=True)
    with pytest.raises(ValueError, match="DepthOverTime"):
        depth_heatmap_figure(depth.cells)


def test_notebook_11_checkers_say_right_and_wrong_without_raising(capsys):
    def far_orders(engine, symbol, fraction=0.5):
        mid = engine.mid_price(symbol)
        return engine.orders(symbol).filter(
            (pl.col("price") - mid).abs() > fraction * mid)["order_id"]

    def window_for(n_books, budget):
        w = book_state.MAX_PRICE_LEVELS
        while w >= book_state.MIN_PRICE_LEVELS and book_state.ladder_bytes(n_books, w) > budget:
            w //= 2
        return w if w >= book_state.MIN_PRICE_LEVELS else None

    def size_near_touch(engine, symbol, ticks, tick_size):
        out = []
        for levels in (engine.get_bids(symbol, 1000), engine.get_asks(symbol, 1000)):
            best = levels[0][0] if levels else 0.0
            out.append(sum(q for p, q, _ in levels if round(abs(p - best) / tick_size) <= ticks))
        return tuple(out)

    assert teaching.check_far_orders(far_orders)
    assert teaching.check_window_for(window_for)
    assert teaching.check_size_near_touch(size_near_touch)
    wrong = [
        (teaching.check_far_orders, lambda e, s, f: far_orders(e, s, 0.5)),  # ignores fraction
        (teaching.check_far_orders, lambda e, s, f: e.orders(s)["order_id"]),
        (teaching.check_far_orders, lambda e, s, f: None),
        (teaching.check_window_for, lambda n, b: book_state.default_price_levels(n, b)),
        (teaching.check_window_for, lambda n, b: window_for(n, b) or book_state.MIN_PRICE_LEVELS),
        (teaching.check_size_near_touch, lambda e, s, t, k: size_near_touch(e, s, t, k)[::-1]),
        (teaching.check_size_near_touch, lambda e, s, t, k: size_near_touch(e, s, t + 1, k)),
        (teaching.check_size_near_touch, lambda e, s, t, k: e.get_bids(s)[0][5]),  # raises
        (teaching.check_size_near_touch, "not a function"),
    ]
    for checker, answer in wrong:
        verdict = checker(answer)
        assert not verdict and verdict.message and "Traceback" not in verdict.message
