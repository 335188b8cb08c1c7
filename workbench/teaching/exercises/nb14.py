"""Checkers of notebook 14-async-vs-sync-and-connection-pools."""
from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

_RUNS = itertools.count()


class _TrackingFactory:
    """A ``SessionFactory`` that remembers every session it opened (to see what a
    student's function left open, and to close it afterwards)."""

    def __init__(self, venue, limit: int):
        from workbench.fix.gateway import SessionFactory

        self._factory = SessionFactory(venue.host, venue.port, venue.senders[:limit], timeout=10.0)
        self.sessions = []
        self._lock = threading.Lock()

    def __call__(self):
        session = self._factory()
        with self._lock:
            self.sessions.append(session)
        return session

    def close_all(self) -> int:
        left = [s for s in self.sessions if not s.closed]
        for s in left:
            s.close()
        return len(left)


def _connections_settle(venue, expected: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        now = venue.stats()["connections"]
        if now <= expected or time.monotonic() > deadline:
            return now
        time.sleep(0.01)


def _peak_overlap(replies) -> int:
    edges = sorted([(r.sent_ns, 1) for r in replies] + [(r.done_ns, -1) for r in replies])
    peak = depth = 0
    for _, step in edges:
        depth += step
        peak = max(peak, depth)
    return peak


def _replies_problem(replies, orders) -> str | None:
    from workbench.fix.gateway import Reply

    if not isinstance(replies, (list, tuple)):
        return (f"your function returned {type(replies).__name__}: return a list of the replies "
                "(what session.send_order returns), one per order")
    if len(replies) != len(orders):
        return f"{len(replies)} replies for {len(orders)} orders: send every order once"
    for i, (reply, order) in enumerate(zip(replies, orders)):
        if not isinstance(reply, Reply):
            return f"item {i} is a {type(reply).__name__}, not a Reply (what send_order returns)"
        if reply.order.cl_ord_id != order.cl_ord_id:
            return (f"reply {i} is for {reply.order.cl_ord_id}, but orders[{i}] is {order.cl_ord_id}: "
                    "return the replies in the order of `orders`")
        if not reply.reports or not reply.reports[-1].final:
            return f"order {order.cl_ord_id} has no final ExecutionReport"
    return None


@exercise("14.1", hint="open k sessions first (open_session() k times), put them in a queue.Queue, "
                       "and let k threads (ThreadPoolExecutor(k).map) take one, send, put it back; "
                       "close every session at the end (try/finally)")
def check_pooled_send(send_pooled, venue) -> Verdict:
    """Exercise 14.1: ``send_pooled(open_session, orders, k)`` sends every order over k
    sessions opened once and reused (k threads sending at once), closes them at the end, and
    returns the replies in the order of ``orders``. Run against the live acceptor ``venue``:
    its own Logon count says how many sessions were opened."""
    from workbench.fix.gateway import order_flow

    run = next(_RUNS)
    for n, k in ((24, 3), (5, 1)):
        orders = order_flow(n, symbol=venue.symbols[0], seed=140 + run, prefix=f"x141r{run}k{k}-")
        factory = _TrackingFactory(venue, max(k, 4))
        base = venue.stats()
        try:
            replies, why = _attempt(send_pooled, factory, orders, k)
        finally:
            left = factory.close_all()
        _connections_settle(venue, base["connections"])
        logons = venue.stats()["logons"] - base["logons"]
        where = f"with {n} orders and k={k}"
        if why:
            return _verdict(False, f"{where}: {why}")
        problem = _replies_problem(replies, orders)
        if problem:
            return _verdict(False, f"{where}: {problem}")
        if logons != k:
            if logons == n and n > k:
                return _verdict(False, f"{where}: the acceptor counted {logons} logons, one per order: "
                                       f"that is connect-per-request. Open {k} sessions once and "
                                       "reuse them")
            if logons < k:
                return _verdict(False, f"{where}: only {logons} session(s) logged on: the pool has "
                                       f"{k}, use them all (one thread per session)")
            return _verdict(False, f"{where}: {logons} logons for a pool of {k}: reuse the sessions "
                                   "instead of opening new ones")
        if left:
            return _verdict(False, f"{where}: {left} session(s) were still open when your function "
                                   "returned: close (log out) every session you open")
        if k > 1 and _peak_overlap(replies) < 2:
            return _verdict(False, f"{where}: no two orders were ever in flight together: send on "
                                   f"the {k} sessions from {k} threads at once "
                                   "(concurrent.futures.ThreadPoolExecutor)")
    return _verdict(True, "every order answered over k sessions opened once and reused (for 24 orders "
                          "on 3 sessions the acceptor counted 3 logons, not 24), all closed at the end")


def _bound(in_flight, mean_us) -> float:
    return in_flight / (mean_us / 1e6)


@exercise("14.2", hint="frame.with_columns(bound_per_s=pl.col('in_flight') / (pl.col('mean_us') / 1e6)): "
                       "L = lambda x W with the mean latency W in seconds")
def check_littles_law(littles_law, frame) -> Verdict:
    """Exercise 14.2: ``littles_law(frame)`` returns ``compare_gateways``' frame with a
    column ``bound_per_s``: the throughput Little's law gives for ``in_flight`` orders
    outstanding, each taking ``mean_us`` on average (L = lambda x W, so lambda = L / W).
    Tried on the lesson's measurements and on a frame with edge cases (one order in
    flight, sub-microsecond and very long latencies)."""
    import polars as pl

    needed = ("in_flight", "mean_us", "p50_us")
    if not hasattr(frame, "columns") or any(c for c in needed if c not in frame.columns):
        return _verdict(False, f"pass compare_gateways' frame (with columns {needed}) as the "
                               "second argument")
    edge = pl.DataFrame({"mode": ["one", "fast", "slow", "wide"], "in_flight": [1, 2, 3, 256],
                         "mean_us": [250.0, 0.5, 2_000_000.0, 12_345.0],
                         "p50_us": [200.0, 0.4, 1_500_000.0, 11_000.0]})
    for case in (frame, edge):
        got, why = _attempt(littles_law, case.clone())
        if why:
            return _verdict(False, why)
        if not isinstance(got, pl.DataFrame):
            return _verdict(False, f"return the frame with the new column, not {type(got).__name__}")
        if "bound_per_s" not in got.columns:
            return _verdict(False, f"no column bound_per_s in what you returned (columns: {got.columns})")
        if got.height != case.height:
            return _verdict(False, f"{got.height} rows back for {case.height} rows given: add a "
                                   "column, keep every row")
        for row, value in zip(case.to_dicts(), got["bound_per_s"].to_list()):
            expected = _bound(row["in_flight"], row["mean_us"])
            if value is not None and math.isclose(value, expected, rel_tol=1e-6):
                continue
            name = f"row {row.get('mode', '?')!r} (in_flight {row['in_flight']}, mean {row['mean_us']:,.1f} µs)"
            if value is None or not isinstance(value, (int, float)):
                return _verdict(False, f"{name}: bound_per_s is {value!r}, give a number of orders/s")
            if math.isclose(value, _bound(row["in_flight"], row["p50_us"]), rel_tol=1e-6):
                return _verdict(False, f"{name}: you used the median (p50); Little's law holds for "
                                       "the mean latency")
            if math.isclose(value, expected / 1e6, rel_tol=1e-6):
                return _verdict(False, f"{name}: {value:,.4g} is per microsecond: convert mean_us to "
                                       "seconds (/ 1e6)")
            if math.isclose(value, expected / row["in_flight"], rel_tol=1e-6) and row["in_flight"] > 1:
                return _verdict(False, f"{name}: {value:,.0f}/s is one order at a time: multiply by "
                                       "in_flight (L orders outstanding)")
            return _verdict(False, f"{name}: {value:,.4g}/s, but {row['in_flight']} / "
                                   f"{row['mean_us'] / 1e6:g} s = {expected:,.4g}/s")
    ratios = ""
    if "orders_per_s" in frame.columns and "mode" in frame.columns:
        ratios = "; measured / bound: " + ", ".join(
            f"{r['mode']} {r['orders_per_s'] / _bound(r['in_flight'], r['mean_us']):.2f}"
            for r in frame.to_dicts())
    return _verdict(True, "lambda = L / W, with the mean latency in seconds" + ratios)


@exercise("14.3", hint="slots = asyncio.Semaphore(window); wrap each `await gateway.send(order)` in "
                       "`async with slots:` and start them all with asyncio.gather (it keeps their order)")
def check_send_window(send_window, venue) -> Verdict:
    """Exercise 14.3: ``async def send_window(gateway, orders, window)`` sends every order on
    an ``AsyncGateway`` (opened without a window of its own) with at most ``window`` of them
    in flight at once, and as many as that allows, and returns the replies in the order of
    ``orders``. Run against the live acceptor ``venue`` with windows 1 and 8."""
    from workbench.fix.gateway import AsyncGateway, EventLoopThread, order_flow

    run = next(_RUNS)
    with EventLoopThread(name="check-14.3") as loop:
        for n, window in ((6, 1), (24, 8)):
            orders = order_flow(n, symbol=venue.symbols[0], seed=340 + run, prefix=f"x143r{run}w{window}-")
            gateway = AsyncGateway(venue.host, venue.port, venue.senders[:2], window=None, timeout=10.0)
            loop.run(gateway.open(), timeout=60)
            try:
                coro, why = _attempt(send_window, gateway, orders, window)
                if why:
                    return _verdict(False, why)
                if not asyncio.iscoroutine(coro):
                    return _verdict(False, "send_window must be an `async def` function (it awaits "
                                           "gateway.send)")
                try:
                    replies = loop.run(coro, timeout=120)
                except Exception as exc:  # the student's code
                    return _verdict(False, f"your function raised {type(exc).__name__}: {exc}")
            finally:
                loop.run(gateway.close(), timeout=60)
            where = f"with {n} orders and window={window}"
            problem = _replies_problem(replies, orders)
            if problem:
                return _verdict(False, f"{where}: {problem}")
            peak = gateway.peak_in_flight
            if peak > window:
                return _verdict(False, f"{where}: {peak} orders were in flight at once, more than the "
                                       "window: bound them with asyncio.Semaphore(window)")
            if peak < min(window, n):
                return _verdict(False, f"{where}: at most {peak} order(s) in flight at once; the window "
                                       f"allows {window}: start them together (asyncio.gather)")
    return _verdict(True, "every order answered in order, exactly `window` in flight at the peak: "
                          "one thread, one event loop, many orders on the wire")
