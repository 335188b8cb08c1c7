"""The checkers of notebooks 01-04 (workbench.teaching.exercises.nb01 .. nb04): the
reference solutions pass, the usual wrong answers fail with a message that names the
mistake. Plus the output fixes these notebooks rely on: the ladder's bid side, codes as
names, the shared-data switch, the compiled ring round trip."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from workbench.enums import Side
from workbench.teaching.exercises import nb01, nb02, nb03, nb04


def _right(verdict):
    assert verdict.ok, verdict.message
    return verdict.message


def _wrong(verdict, *words):
    assert not verdict.ok, f"a wrong answer passed: {verdict.message}"
    for word in words:
        assert word in verdict.message, f"{word!r} not in: {verdict.message}"
    return verdict.message


# ------------------------------------------------------------------------------ 01
def fok_fills(book, side, price, qty):
    levels = book.get_asks(1_000) if side == Side.BUY else book.get_bids(1_000)
    return sum(q for p, q, _ in levels if (p <= price if side == Side.BUY else p >= price)) >= qty


def predict_fills(book, side, price, qty):
    other = "sell" if side == Side.BUY else "buy"
    fills, left = [], qty
    for order in book.orders().filter(pl.col("side") == other).iter_rows(named=True):
        crosses = order["price"] <= price if side == Side.BUY else order["price"] >= price
        if left == 0 or not crosses:
            break
        take = min(order["qty"], left)
        fills.append((order["order_id"], order["price"], take))
        left -= take
    return fills


def sweep_cost(engine, symbol, qty):
    cost, left = 0.0, qty
    for price, size, _ in engine.get_asks(symbol, 1_000):
        take = min(size, left)
        cost, left = cost + take * price, left - take
        if left == 0:
            return cost / qty, price
    return None


def test_01_solutions_pass():
    _right(nb01.check_fok_fills(fok_fills))
    _right(nb01.check_predict_fills(predict_fills))
    _right(nb01.check_sweep_cost(sweep_cost))


def test_01_wrong_answers_say_what_is_wrong():
    def strict_price(book, side, price, qty):  # leaves out the level at the limit
        levels = book.get_asks(1_000) if side == Side.BUY else book.get_bids(1_000)
        return sum(q for p, q, _ in levels if (p < price if side == Side.BUY else p > price)) >= qty

    def strict_qty(book, side, price, qty):
        return fok_fills(book, side, price, qty + 1)

    def trades(book, side, price, qty):
        return book.submit(side, price, qty, tif="FOK").filled == qty

    _wrong(nb01.check_fok_fills(strict_price), "AT the limit")
    _wrong(nb01.check_fok_fills(strict_qty), ">=, not >")
    _wrong(nb01.check_fok_fills(trades), "changed the book")
    _wrong(nb01.check_fok_fills(lambda *a: None), "True or False")

    def by_id(book, side, price, qty):  # ignores that a modify up lost the queue place
        fills = predict_fills(book, side, price, qty)
        return sorted(fills, key=lambda f: (f[1] if side == Side.BUY else -f[1], f[0]))

    def at_limit(book, side, price, qty):
        return [(m, price, q) for m, _, q in predict_fills(book, side, price, qty)]

    _wrong(nb01.check_predict_fills(by_id), "order 4", "back of its queue")
    _wrong(nb01.check_predict_fills(at_limit), "RESTING")
    _wrong(nb01.check_predict_fills(lambda *a: 5), "list of (maker_id")

    def plain_mean(engine, symbol, qty):
        got = sweep_cost(engine, symbol, qty)
        if got is None:
            return None
        prices, left = [], qty
        for price, size, _ in engine.get_asks(symbol, 1_000):
            prices.append(price)
            left -= min(size, left)
            if left == 0:
                break
        return sum(prices) / len(prices), got[1]

    _wrong(nb01.check_sweep_cost(plain_mean), "plain mean")
    _wrong(nb01.check_sweep_cost(lambda e, s, q: (sweep_cost(e, s, q) or (0, 0))),
           "return None")


# ------------------------------------------------------------------------------ 02
def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def co_correct(latencies_ns, interval_ns):
    out = []
    for v in latencies_ns:
        out.append(v)
        missing = v - interval_ns
        while v > interval_ns and missing >= interval_ns:
            out.append(missing)
            missing -= interval_ns
    return out


def samples_for(p, beyond):
    return math.ceil(Fraction(100 * beyond) / (100 - Fraction(str(p))))


def test_02_solutions_pass():
    _right(nb02.check_percentile(percentile))
    _right(nb02.check_percentile(lambda s, p: np.percentile(s, p, method="inverted_cdf")))
    _right(nb02.check_co_correct(co_correct))
    _right(nb02.check_samples_for(samples_for))
    _right(nb02.check_samples_for(lambda p, b: math.ceil(100 * b / (100 - p))))  # float, one over


def test_02_wrong_answers_say_what_is_wrong():
    _wrong(nb02.check_percentile(lambda s, p: float(np.percentile(s, p))), "interpolates")
    _wrong(nb02.check_percentile(lambda s, p: float(np.mean(s))), "mean")
    _wrong(nb02.check_percentile(lambda s, p: sorted(s)[min(len(s) - 1, math.ceil(p / 100 * len(s)))]),
           "one rank too high")
    _wrong(nb02.check_percentile(lambda s, p: sorted(s)[max(0, int(p / 100 * len(s)) - 1)]),
           "ceil")

    def stops_early(values, interval):
        out = []
        for v in values:
            out.append(v)
            missing = v - interval
            while v > interval and missing > interval:
                out.append(missing)
                missing -= interval
        return out

    _wrong(nb02.check_co_correct(stops_early), ">= the interval")
    _wrong(nb02.check_co_correct(lambda v, i: [x - i for x in v if x > i]), "keep every measured")
    _wrong(nb02.check_co_correct(lambda v, i: list(v)), "unchanged")
    _wrong(nb02.check_samples_for(lambda p, b: math.ceil(100 * b / (100 - p)) - 1), "fewer than")
    _wrong(nb02.check_samples_for(lambda p, b: 10 * samples_for(p, b)), "smallest")


# ------------------------------------------------------------------------------ 03
def stride_order(n, stride):
    return np.concatenate([np.arange(r, n, stride) for r in range(stride)])


def lines_touched(dtype, fields, n, line_bytes=64):
    lines = set()
    for name in fields:
        field, offset = dtype.fields[name][:2]
        starts = np.arange(n) * dtype.itemsize + offset
        lines.update((starts // line_bytes).tolist())
        lines.update(((starts + field.itemsize - 1) // line_bytes).tolist())
    return len(lines)


def test_03_solutions_pass():
    _right(nb03.check_stride_order(stride_order))
    _right(nb03.check_lines_touched(lines_touched))


def test_03_wrong_answers_say_what_is_wrong():
    _wrong(nb03.check_stride_order(lambda n, s: (np.arange(n) * s) % n), "visited more than once",
           "same elements")
    _wrong(nb03.check_stride_order(lambda n, s: np.arange(n)), "not in stride order")
    _wrong(nb03.check_stride_order(lambda n, s: np.arange(n + 1)), "outside the array")
    _wrong(nb03.check_lines_touched(lambda d, f, n, line=64: -(-n * d.itemsize // line)),
           "every line of the array")
    _wrong(nb03.check_lines_touched(
        lambda d, f, n, line=64: -(-n * sum(d.fields[x][0].itemsize for x in f) // line)),
        "comes in whole")

    def first_line_only(dtype, fields, n, line_bytes=64):
        return len({(i * dtype.itemsize + dtype.fields[f][1]) // line_bytes
                    for i in range(n) for f in fields})

    _wrong(nb03.check_lines_touched(first_line_only), "crosses a line boundary")


# ------------------------------------------------------------------------------ 04
def drain(ring, n, wait):
    seqs, received = [], 0
    while received < n:
        batch = ring.try_get(min(4096, n - received))
        if len(batch) == 0:
            wait()
            continue
        seqs.append(batch["seq"])
        received += len(batch)
    return np.concatenate(seqs) if seqs else np.zeros(0, np.int64)


def break_even_batch(call_ns, ring_item_ns, deque_item_ns):
    if ring_item_ns >= deque_item_ns:
        return None
    return math.floor(call_ns / (deque_item_ns - ring_item_ns)) + 1


def capacity_for(rate_per_s, stall_s):
    capacity = 2
    while capacity < rate_per_s * stall_s:
        capacity *= 2
    return capacity


def test_04_solutions_pass():
    _right(nb04.check_drain(drain))
    _right(nb04.check_break_even_batch(break_even_batch))
    _right(nb04.check_capacity_for(capacity_for))


def test_04_wrong_answers_say_what_is_wrong():
    def spinning(ring, n, wait):
        got = []
        while len(got) < n:
            got.extend(ring.get(n - len(got))["seq"].tolist())
        return got

    def busy_poll(ring, n, wait):  # waits only every other empty poll
        seqs, empty = [], 0
        while len(seqs) < n:
            batch = ring.try_get(n - len(seqs))
            if len(batch) == 0:
                empty += 1
                if empty % 2 == 0:
                    wait()
                continue
            seqs.extend(batch["seq"].tolist())
        return seqs

    def greedy(ring, n, wait):
        seqs = []
        while len(seqs) < n:
            batch = ring.try_get(8192)
            if len(batch) == 0:
                wait()
            seqs.extend(batch["seq"].tolist())
        return seqs

    def never_stops(ring, n, wait):
        while True:
            if len(ring.try_get(16)) == 0:
                wait()

    _wrong(nb04.check_drain(spinning), "ring.get()", "try_get")
    _wrong(nb04.check_drain(busy_poll), "without waiting")
    _wrong(nb04.check_drain(greedy), "at most n - received")
    _wrong(nb04.check_drain(never_stops), "stop once you have n")
    _wrong(nb04.check_break_even_batch(lambda c, r, d: math.ceil(c / (d - r)) if r < d else None),
           "floor(...) + 1")
    _wrong(nb04.check_break_even_batch(lambda c, r, d: math.floor(c / max(d - r, 1e-9)) + 1),
           "return None")
    _wrong(nb04.check_capacity_for(lambda r, s: max(2, math.ceil(r * s))), "power of two")
    _wrong(nb04.check_capacity_for(lambda r, s: 2 * capacity_for(r, s)), "smallest")


# ------------------------------------------------------------- the output fixes
def test_ladder_bid_side_has_a_visible_range_shared_with_the_asks():
    """The bid panel's x range runs from the top quantity down to 0 (a flipped auto range
    pinned at 0 collapsed to [0, 0] in the browser: an empty bid side)."""
    from bokeh.embed import json_item

    from workbench.book import OrderBook
    from workbench.plots import ladder_figure

    book = OrderBook("DEMO")
    for side, price, qty in ((Side.BUY, 99.98, 400), (Side.BUY, 99.99, 100), (Side.SELL, 100.0, 50),
                             (Side.SELL, 100.05, 250)):
        book.submit(side, price, qty)
    layout = ladder_figure(book, n=5)
    json_item(layout)
    bid_fig, ask_fig = layout.children
    assert bid_fig.x_range.start > bid_fig.x_range.end == 0  # quantity grows leftwards
    assert ask_fig.x_range.start == 0 < ask_fig.x_range.end
    assert bid_fig.x_range.start == ask_fig.x_range.end >= 400  # one scale, the largest level fits
    # the first factor is drawn at the bottom: prices ascend up the page, best bid and best
    # ask meet in the middle, labels written as prices
    assert list(ask_fig.y_range.factors) == ["99.98", "99.99", "100.00", "100.05"]


def test_codes_show_as_names():
    from workbench.book import OrderBook, make_events
    from workbench.data.convert import from_records
    from workbench.enums import EventKind, OrderStatus, RejectReason

    batch = OrderBook("RAW").submit_many(make_events([(EventKind.ADD, 100, Side.BUY, 499_950, 10),
                                                       (EventKind.CANCEL, 555, Side.BUY, 0, 0)]))
    frame = from_records(batch.results).with_columns(OrderStatus.name_expr("status"),
                                                     RejectReason.name_expr("reason"))
    assert frame["status"].to_list() == ["REJECTED", "REJECTED"]
    assert frame["reason"].to_list() == ["PRICE_OFF_TICK", "UNKNOWN_ORDER"]
    odd = pl.DataFrame({"reason": [0, 99]}).with_columns(RejectReason.name_expr("reason"))
    assert odd["reason"].to_list() == ["NONE", "99"]  # an unknown code stays visible


def test_shared_data_dir_follows_the_environment(tmp_path, monkeypatch):
    from workbench.data import samples

    monkeypatch.setenv(samples.ENV_SHARED_DIR, str(tmp_path))
    assert samples.shared_data_dir() == tmp_path
    monkeypatch.setenv(samples.ENV_SHARED_DIR, str(tmp_path / "absent"))
    assert samples.shared_data_dir() is None


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_ring_round_trips_moves_every_record_in_order(batch):
    from kernels import ring as kr
    from kernels.records import MESSAGE
    from workbench.queues import Ring

    ring = Ring(64)
    records = np.zeros(1_000, MESSAGE)
    records["seq"] = np.arange(1_000)
    records["price"] = np.arange(1_000) * 3
    out = np.zeros_like(records)
    header, slots = ring.views()
    assert kr.ring_round_trips(header, slots, records, out, batch) == 1_000
    assert np.array_equal(out, records)
    assert len(ring) == 0 and ring.stats()["published"] == 1_000
    assert kr.ring_round_trips(header, slots, records, out, 0) == 0


def test_lobster_match_plot_reads_clock_time(tmp_path):
    """Time of day on the axis (09:30:00), not hours as a decimal or a 1970 date."""
    from bokeh.embed import json_item
    from bokeh.models import DatetimeTickFormatter

    from workbench.data.lobster_sample import write_deep_sample
    from workbench.lobster_check import lobster_check
    from workbench.plots import lobster_match_plot

    check = lobster_check(*write_deep_sample(tmp_path, n_levels=1, n_messages=60))
    fig = lobster_match_plot(check, window=10)
    json_item(fig)
    (line,) = fig.select({"name": "match_rate"})
    assert np.allclose(line.data_source.data["time"], check.ts / 1e6)  # ms after midnight
    assert isinstance(fig.xaxis[0].formatter, DatetimeTickFormatter)
    assert fig.xaxis[0].formatter.context is None and "%H" in fig.xaxis[0].formatter.minsec
