"""The order-book plots carry exactly the book's numbers (workbench.plots)."""
from __future__ import annotations

import numpy as np
import pytest
from bokeh.embed import json_item

from tests.conftest import shared_path
from workbench.book import Engine, OrderBook
from workbench.enums import Side
from workbench.lobster_check import lobster_check
from workbench.plots import depth_chart, depth_table, ladder_figure, lobster_match_plot


def _random_book(book, symbol=None, seed=0, n=300):
    """Seeded non-crossing flow: bids below 100.00, asks above, sizes in round lots."""
    rng = np.random.default_rng(seed)
    args = () if symbol is None else (symbol,)
    for _ in range(n):
        side = int(rng.integers(2))
        ticks = int(rng.integers(1, 40))
        price = round(100.0 + (ticks if side == Side.SELL else -ticks) * 0.01, 2)
        book.submit(*args, side, price, int(rng.integers(1, 10)) * 100)
    return book


def _source(fig, name):
    (renderer,) = fig.select({"name": name})
    return renderer.data_source.data


def test_depth_chart_holds_cumulative_levels_of_the_book():
    book = _random_book(OrderBook("DEMO"))
    fig = depth_chart(book, n=15)
    json_item(fig)  # serialises: every column a glyph names exists
    for side, levels in (("bid", book.get_bids(15)), ("ask", book.get_asks(15))):
        data = _source(fig, f"{side}_depth")
        assert len(levels) == 15
        assert data["price"].tolist() == [p for p, _, _ in levels]
        assert data["qty"].tolist() == [q for _, q, _ in levels]
        assert data["orders"].tolist() == [c for _, _, c in levels]
        assert data["cum_qty"].tolist() == np.cumsum([q for _, q, _ in levels]).tolist()
    bids = _source(fig, "bid_depth")["price"]
    asks = _source(fig, "ask_depth")["price"]
    assert bids[0] == book.best_bid and asks[0] == book.best_ask
    assert np.all(np.diff(bids) < 0) and np.all(np.diff(asks) > 0)  # bids step down, asks up


def test_depth_chart_follows_the_book_after_a_sweep():
    book = OrderBook("DEMO")
    for price, qty in ((100.01, 100), (100.02, 200), (100.02, 300), (100.05, 400)):
        book.submit(Side.SELL, price, qty)
    book.submit(Side.BUY, 99.99, 250)
    result = book.submit(Side.BUY, 100.02, 350)  # takes 100 @ .01 and 250 of 500 @ .02
    assert result.filled == 350
    data = _source(depth_chart(book, n=5), "ask_depth")
    assert data["price"].tolist() == [100.02, 100.05]
    assert data["qty"].tolist() == [250, 400]
    assert data["cum_qty"].tolist() == [250, 650]
    assert _source(depth_chart(book, n=5), "bid_depth")["cum_qty"].tolist() == [250]


def test_depth_chart_of_an_engine_symbol_and_an_empty_book():
    engine = Engine(symbols=["AAA", "BBB"])
    _random_book(engine, "BBB", seed=3, n=100)
    with pytest.raises(ValueError, match="symbol=None"):
        depth_chart(engine)
    with pytest.raises(ValueError, match="not one of"):
        depth_chart(engine, "ZZZ")
    fig = depth_chart(engine, "BBB", n=4)
    assert _source(fig, "bid_depth")["qty"].tolist() == [q for _, q, _ in engine.get_bids("BBB", 4)]
    empty = depth_chart(engine, "AAA")
    assert len(_source(empty, "bid_depth")["price"]) == 0 and len(_source(empty, "ask_depth")["price"]) == 0
    with pytest.raises(ValueError, match="OrderBook or Engine"):
        depth_chart(object())
    with pytest.raises(ValueError, match="this OrderBook is"):
        depth_chart(OrderBook("DEMO"), symbol="OTHER")


def test_depth_table_cum_qty_is_what_a_market_order_sweeps():
    book = _random_book(OrderBook("DEMO"), seed=5)
    table = depth_table(book, n=3)
    asks = table.filter(table["side"] == "ask")
    want = int(asks["cum_qty"][-1])  # exactly the top three ask levels
    result = book.submit(Side.BUY, None, want, order_type="market")
    assert result.filled == want
    assert sorted(set((result.fills["price"] / book.price_scale).tolist())) == asks["price"].to_list()


def test_ladder_figure_rows_are_the_book_levels():
    book = _random_book(OrderBook("DEMO"), seed=1)
    layout = ladder_figure(book, n=6)
    json_item(layout)
    bids, asks = _source(layout, "bid_ladder"), _source(layout, "ask_ladder")
    assert bids["qty"].tolist() == [q for _, q, _ in book.get_bids(6)]
    assert asks["orders"].tolist() == [c for _, _, c in book.get_asks(6)]
    # one shared price axis, highest price on top (a categorical axis draws its first
    # factor at the bottom, so the factors ascend)
    bid_fig, ask_fig = layout.children
    factors = ask_fig.y_range.factors
    assert bid_fig.y_range is ask_fig.y_range
    assert [float(f) for f in factors] == sorted(float(f) for f in factors)
    assert set(factors) == set(bids["label"]) | set(asks["label"])


def _write_lobster(folder):
    """A tiny level-1 LOBSTER pair; row 6's book omits 3 shares (a gap) to force a resync."""
    messages = [
        "34200.000000001,1,1,100,1000000,1",
        "34200.5,1,2,50,1001000,-1",
        "34201,4,2,20,1001000,-1",
        "34202,1,3,10,999900,1",
        "34203,3,1,100,1000000,1",
        "34204,1,4,5,999800,1",
        "34205,2,2,10,1001000,-1",
    ]
    books = [
        "9999999999,0,1000000,100",
        "1001000,50,1000000,100",
        "1001000,30,1000000,100",
        "1001000,30,1000000,100",
        "1001000,30,999900,10",
        "1001000,30,999900,7",
        "1001000,20,999900,7",
    ]
    (folder / "messages.csv").write_text("\n".join(messages) + "\n")
    (folder / "orderbook.csv").write_text("\n".join(books) + "\n")
    return folder / "messages.csv", folder / "orderbook.csv"


def test_lobster_match_plot_carries_the_rolling_rate(tmp_path):
    check = lobster_check(*_write_lobster(tmp_path))
    assert (check.rows, check.matched, check.resyncs) == (7, 6, 1)
    fig = lobster_match_plot(check, window=2)
    json_item(fig)
    data = _source(fig, "match_rate")
    assert np.allclose(data["hours"], check.ts / 3.6e12)
    assert np.allclose(data["match_pct"], 100 * check.rolling_match_rate(2))
    assert data["match_pct"].tolist() == [100, 100, 100, 100, 100, 50, 50]
    assert data["hours"][0] == pytest.approx(9.5)


def test_lobster_match_plot_thins_a_full_day():
    folder = shared_path("lobster")
    stem = "AMZN_2012-06-21_34200000_57600000_"
    check = lobster_check(folder / f"{stem}message_1.csv", folder / f"{stem}orderbook_1.csv")
    fig = lobster_match_plot(check, window=500, max_points=1000)
    data = _source(fig, "match_rate")
    assert len(data["hours"]) <= 1000
    step = -(-check.rows // 1000)
    assert np.allclose(data["match_pct"], 100 * check.rolling_match_rate(500)[::step])
    assert 9.5 <= data["hours"].min() and data["hours"].max() <= 16.0


def test_lobster_match_plot_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="LobsterCheck"):
        lobster_match_plot(object())
    check = lobster_check(*_write_lobster(tmp_path))
    with pytest.raises(ValueError, match="window=0"):
        lobster_match_plot(check, window=0)
    with pytest.raises(ValueError, match="max_points=1"):
        lobster_match_plot(check, max_points=1)


def test_admission_figures_draw_the_runs_as_the_workbench_gives_them():
    import polars as pl
    from bokeh.models import GlyphRenderer

    from workbench.live.overload import admitted_latency_trace, simulate_admission
    from workbench.plots import overload_figure, trace_figure

    runs = [simulate_admission(c, 2.0, n=3_000) for c in ("codel", "pid")]
    fig = trace_figure(runs, 200_000.0, every=7)
    json_item(fig)
    drawn = [(list(r.data_source.data["x"]), list(r.data_source.data["y"]))
             for r in fig.select({"type": GlyphRenderer})]
    assert len(drawn) == 2
    for run in runs:
        points = admitted_latency_trace(run, every=7)
        assert (list(points["t_ms"]), list(points["latency_ns"])) in drawn
        assert points["t_ms"][0] == 0.0
        assert len(points["t_ms"]) == -(-(run["admitted"] == 1).sum() // 7)

    frame = pl.DataFrame({"controller": ["pid", "pid", "none"], "load": [2.0, 0.5, 1.0],
                          "p99_ns": [9.0, 5.0, 7.0], "goodput_ratio": [0.8, 0.5, 0.9]})
    layout = overload_figure(frame, 5.0)
    json_item(layout)
    p99, goodput = layout.children
    drawn = [(list(r.data_source.data["x"]), list(r.data_source.data["y"]))
             for r in p99.select({"type": GlyphRenderer})]
    assert sorted(drawn) == sorted([([0.5, 2.0], [5.0, 9.0])] * 2 + [([1.0], [7.0])] * 2)
    assert len(goodput.select({"type": GlyphRenderer})) == 4  # line + points per controller
