"""The microstructure simulator: determinism, L3 consistency, stylised facts, top of book."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import records as R
from workbench.data.synthetic import simulate, stylised_facts, top_of_book


class ReferenceBook:
    """Plain-Python L3 book: dicts of live orders; price-time priority for market orders."""

    def __init__(self):
        self.orders = {}  # id -> [symbol, side, price, qty]
        self.added = 0
        self.removed = 0
        self.fills = []   # (ts, maker_id, price, qty, taker_side)

    def best(self, symbol, side):
        prices = [o[2] for o in self.orders.values() if o[0] == symbol and o[1] == side]
        if not prices:
            return None
        return max(prices) if side == R.BUY else min(prices)

    def apply(self, e):
        oid, sym, side, price, qty = int(e["order_id"]), int(e["symbol"]), int(e["side"]), \
            int(e["price"]), int(e["qty"])
        kind = int(e["kind"])
        assert qty > 0, e
        if kind == R.EV_ADD and e["order_type"] == R.MARKET:
            assert e["tif"] == R.IOC
            maker_side = R.SELL if side == R.BUY else R.BUY
            remaining = qty
            while remaining:
                best = self.best(sym, maker_side)
                assert best is not None, "market order larger than the book"
                maker_id = min(i for i, o in self.orders.items()
                               if o[0] == sym and o[1] == maker_side and o[2] == best)
                fill = min(remaining, self.orders[maker_id][3])
                self._take(maker_id, fill)
                remaining -= fill
                self.fills.append((int(e["ts"]), maker_id, best, fill, side))
            return
        if kind == R.EV_ADD:
            assert oid not in self.orders, f"duplicate id {oid}"
            assert e["order_type"] == R.LIMIT and price > 0 and price % 100 == 0, e
            opposite = self.best(sym, R.SELL if side == R.BUY else R.BUY)
            if opposite is not None:
                assert (price < opposite) if side == R.BUY else (price > opposite), f"add crosses: {e}"
            self.orders[oid] = [sym, side, price, qty]
            self.added += qty
            return
        assert oid in self.orders, f"{kind=} names unknown order {oid}"
        o = self.orders[oid]
        assert (o[0], o[1], o[2]) == (sym, side, price), f"{e} does not match live order {o}"
        if kind == R.EV_CANCEL:
            assert qty < o[3], "partial cancel must leave something"
            self._take(oid, qty)
        elif kind == R.EV_DELETE:
            assert qty == o[3]
            self._take(oid, qty)
        elif kind == R.EV_EXECUTE:
            assert qty <= o[3]
            self._take(oid, qty)
            self.fills.append((int(e["ts"]), oid, price, qty, 1 - side))
        else:
            raise AssertionError(f"unexpected kind {kind}")

    def _take(self, oid, qty):
        self.orders[oid][3] -= qty
        self.removed += qty
        if self.orders[oid][3] == 0:
            del self.orders[oid]


def replay(market):
    book = ReferenceBook()
    for e in market.events:
        book.apply(e)
    return book


SMALL = dict(n_symbols=2, duration_s=1800.0, rate=2.0)


def test_same_seed_same_flow_and_different_seed_different_flow():
    a = simulate(seed=7, **SMALL)
    b = simulate(seed=7, **SMALL)
    c = simulate(seed=8, **SMALL)
    assert a.events.tobytes() == b.events.tobytes()
    assert a.trades.tobytes() == b.trades.tobytes()
    assert len(a.events) > 1000
    assert a.events.tobytes() != c.events.tobytes()


def test_retry_with_small_buffers_reproduces_the_same_run():
    a = simulate(seed=3, **SMALL)
    b = simulate(seed=3, capacity=500, **SMALL)
    assert a.events.tobytes() == b.events.tobytes()


@pytest.mark.parametrize("market_as_orders", [False, True])
def test_flow_replays_consistently_and_conserves_quantity(market_as_orders):
    market = simulate(seed=11, market_as_orders=market_as_orders, **SMALL)
    ev = market.events
    assert np.all(np.diff(ev["ts"]) >= 0)
    assert set(np.unique(ev["kind"])) <= {R.EV_ADD, R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE}
    assert {R.EV_CANCEL, R.EV_DELETE} <= set(np.unique(ev["kind"]))
    book = replay(market)
    live = sum(o[3] for o in book.orders.values())
    assert book.added == book.removed + live
    # the trades array is exactly what the replay's price-time matching produced
    tr = market.trades
    assert len(tr) == len(book.fills) > 100
    expected = np.array(book.fills, dtype=np.int64)
    assert np.array_equal(tr["ts"], expected[:, 0])
    assert np.array_equal(tr["maker_id"], expected[:, 1])
    assert np.array_equal(tr["price"], expected[:, 2])
    assert np.array_equal(tr["qty"], expected[:, 3])
    assert np.array_equal(tr["taker_side"], expected[:, 4])
    if market_as_orders:
        assert np.any(ev["order_type"] == R.MARKET)
        assert not np.any(ev["kind"] == R.EV_EXECUTE)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), arrivals=st.sampled_from(["poisson", "hawkes"]),
       market_weight=st.floats(0.0, 0.5), target_depth=st.integers(2, 40))
def test_any_parameters_give_a_replayable_flow(seed, arrivals, market_weight, target_depth):
    market = simulate(n_symbols=3, seed=seed, duration_s=120.0, rate=3.0, arrivals=arrivals,
                      market_weight=market_weight, target_depth=target_depth, initial_orders=2,
                      market_as_orders=bool(seed % 2))
    replay(market)


def test_u_shaped_activity_fat_tails_and_tight_spread():
    market = simulate(n_symbols=1, seed=5, rate=1.0)
    facts = stylised_facts(market, 0, buckets=10)
    act = facts["activity"]
    assert min(act[0], act[-1]) > 1.5 * max(act[4], act[5])
    assert facts["excess_kurtosis"] > 1.0
    spread = facts["spread_ticks"]
    assert spread.min() >= 1 and np.median(spread) <= 3
    sizes = facts["add_sizes"]
    assert (sizes % 100 == 0).mean() > 0.4 and np.percentile(sizes, 99) > 5 * np.median(sizes)


def test_poisson_arrivals_are_less_clustered_than_hawkes():
    def dispersion(arrivals):
        m = simulate(n_symbols=1, seed=2, duration_s=3600, rate=2.0, u_depth=0.0,
                     arrivals=arrivals, jumps_per_day=0)
        counts, _ = np.histogram(m.events["ts"], bins=360)
        return counts.var() / counts.mean()

    assert dispersion("hawkes") > 2 * dispersion("poisson")


def test_symbols_are_correlated():
    market = simulate(n_symbols=2, seed=4, duration_s=7200, rate=4.0, correlation=0.9,
                      daily_vol=0.08, jumps_per_day=0)
    bbo = top_of_book(market.events, market.tick)
    ev = market.events
    grid = np.arange(ev["ts"][0], ev["ts"][-1], 60_000_000_000)
    series = []
    for s in range(2):
        mine = (ev["symbol"] == s) & (bbo["bid_price"] > 0) & (bbo["ask_price"] > 0)
        mid = (bbo["bid_price"][mine] + bbo["ask_price"][mine]) / 2
        pos = np.clip(np.searchsorted(ev["ts"][mine], grid, side="right") - 1, 0, None)
        series.append(np.diff(np.log(mid[pos])))
    assert np.corrcoef(series)[0, 1] > 0.5


def test_top_of_book_matches_the_reference_book():
    market = simulate(n_symbols=2, seed=9, duration_s=300.0, rate=3.0, market_as_orders=True)
    bbo = top_of_book(market.events, market.tick)
    book = ReferenceBook()
    for i, e in enumerate(market.events):
        book.apply(e)
        s = int(e["symbol"])
        bid, ask = book.best(s, R.BUY), book.best(s, R.SELL)
        assert bbo[i]["bid_price"] == (bid if bid is not None else -1)
        assert bbo[i]["ask_price"] == (ask if ask is not None else -1)
        if bid is not None:
            assert bbo[i]["bid_qty"] == sum(o[3] for o in book.orders.values()
                                            if o[0] == s and o[1] == R.BUY and o[2] == bid)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_symbols=0), "n_symbols"), (dict(seed=-1), "seed"), (dict(arrivals="x"), "arrivals"),
    (dict(hawkes_alpha=2.0, hawkes_beta=1.0), "hawkes_alpha"), (dict(tick=0.00001), "tick"),
    (dict(correlation=1.5), "correlation"), (dict(rate=0), "rate"), (dict(partial_cancel=2), "partial_cancel"),
])
def test_bad_parameters_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        simulate(**kwargs)


@pytest.mark.parametrize("market_as_orders", [False, True])
def test_the_engine_replays_the_flow_without_a_reject_and_makes_the_same_trades(market_as_orders):
    book = pytest.importorskip("workbench.book")
    market = simulate(n_symbols=2, seed=21, duration_s=600.0, rate=3.0,
                      market_as_orders=market_as_orders)
    engine = book.Engine(symbols=list(market.symbols), record_fills=False)
    result = engine.submit_many(market.events)
    assert result.rejected == 0, result.reject_counts()
    for field in ("maker_id", "price", "qty", "symbol"):
        assert np.array_equal(result.fills[field], market.trades[field]), field


def test_the_book_follows_the_latent_mid_through_jumps():
    market = simulate(n_symbols=3, seed=2, rate=1.0, daily_vol=0.03, jumps_per_day=6)
    bbo = top_of_book(market.events, market.tick)
    for s in range(3):
        last = np.nonzero(market.events["symbol"] == s)[0][-1]
        book_mid = (bbo[last]["bid_price"] + bbo[last]["ask_price"]) / 2
        assert abs(book_mid / market.final_fundamental[s] - 1) < 0.005
