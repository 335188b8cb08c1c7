"""Checkers of notebook 05-market-data."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

_SECOND = 1_000_000_000


# ------------------------------------------------------------------ 05.1 dispersion
def _counts(ts_ns: np.ndarray, bin_s: float, empty: bool = True) -> np.ndarray:
    idx = ((ts_ns - ts_ns[0]) // int(round(bin_s * _SECOND))).astype(np.int64)
    if empty:
        return np.bincount(idx).astype(np.float64)
    return np.unique(idx, return_counts=True)[1].astype(np.float64)


def _dispersion_cases():
    """(label, ts_ns, bin_s): clockwork, Poisson, clustered, long silences, other bins."""
    rng = np.random.default_rng(20_240_808)
    t0 = 34_200 * _SECOND
    clock = t0 + np.arange(1000, dtype=np.int64) * (_SECOND // 10)
    poisson = t0 + np.cumsum(rng.exponential(0.2, 3000) * _SECOND).astype(np.int64)
    bursts = []
    for start in np.sort(rng.uniform(0, 600, 60)):  # 60 bursts of 5-40 events in 50 ms each
        bursts.append(start + rng.uniform(0, 0.05, rng.integers(5, 40)))
    clustered = t0 + (np.sort(np.concatenate(bursts)) * _SECOND).astype(np.int64)
    silent = t0 + (np.sort(np.concatenate([rng.uniform(0, 5, 200), rng.uniform(100, 110, 400)]))
                   * _SECOND).astype(np.int64)
    return [("a clockwork feed (10 events/s, evenly spaced)", clock, 1.0),
            ("a Poisson feed (5 events/s)", poisson, 1.0),
            ("a Poisson feed, 5 s bins", poisson, 5.0),
            ("a clustered feed (bursts)", clustered, 1.0),
            ("a clustered feed, 0.5 s bins", clustered, 0.5),
            ("a feed with a 95 s silence", silent, 1.0)]


@exercise("05.1", hint="counts = np.bincount((ts_ns - ts_ns[0]) // int(bin_s * 1e9)) keeps the empty bins; return counts.var() / counts.mean()")
def check_dispersion(dispersion) -> Verdict:
    """Exercise 05.1: ``dispersion(ts_ns, bin_s)`` returns the index of dispersion of an
    event stream: the variance over the mean of the number of events per ``bin_s``-second
    bin, bins counted from the first event to the last one, empty bins included (1 for a
    Poisson stream, more when events cluster). Tried on clockwork, Poisson, bursty and
    silent streams at three bin widths."""
    for label, ts, bin_s in _dispersion_cases():
        counts = _counts(ts, bin_s)
        expected = counts.var() / counts.mean()
        got, why = _attempt(dispersion, ts.copy(), bin_s)
        where = f"on {label} with bin_s={bin_s}"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: ts_ns is a numpy int64 array of "
                                   "nanoseconds")
        try:
            value = float(got)
        except (TypeError, ValueError):
            return _verdict(False, f"{where}: return one number, not {type(got).__name__}")
        n = len(counts)
        if math.isclose(value, expected, rel_tol=1e-3, abs_tol=1e-9) or \
                math.isclose(value, expected * n / max(n - 1, 1), rel_tol=1e-3, abs_tol=1e-9):
            continue  # the sample variance (ddof=1) is as good an estimate
        no_empty = _counts(ts, bin_s, empty=False)
        hints = []
        if expected > 0 and math.isclose(value, counts.std() / counts.mean(), rel_tol=1e-3):
            hints.append("that is std / mean; the index of dispersion is var / mean")
        elif math.isclose(value, no_empty.var() / no_empty.mean(), rel_tol=1e-3) or \
                math.isclose(value, no_empty.var(ddof=1) / no_empty.mean(), rel_tol=1e-3):
            hints.append(f"you left out the empty bins ({n - len(no_empty)} of the {n} bins "
                         "have no event, and a quiet second is information too)")
        detail = "; ".join(hints) or ("count the events in each bin_s-second bin from the "
                                      "first event on (ts_ns is in nanoseconds), then var / "
                                      "mean of those counts")
        return _verdict(False, f"{where} you returned {value:.4g}, the stream's index of "
                               f"dispersion is {expected:.4g}: {detail}")
    return _verdict(True, "0 for clockwork, about 1 for Poisson, far above 1 for bursts, "
                          "at every bin width")


# ------------------------------------------------------------ 05.2 top of book from L3
def _events(rows) -> np.ndarray:
    from kernels import records as R

    out = np.zeros(len(rows), dtype=R.EVENT)
    for k, (kind, oid, side, price, qty) in enumerate(rows):
        out[k] = (34_200 * _SECOND + k * 1000, oid, round(price * 10_000), qty, 0, kind, side,
                  R.LIMIT, R.GTC)
    return out


def _top_cases():
    from kernels import records as R
    from workbench.data.synthetic import simulate

    A, C, D, X = R.EV_ADD, R.EV_CANCEL, R.EV_DELETE, R.EV_EXECUTE
    B, S = R.BUY, R.SELL
    book = [(A, 1, B, 100.00, 300), (A, 2, B, 100.00, 200), (A, 3, B, 99.99, 500),
            (A, 4, S, 100.02, 100), (A, 5, S, 100.03, 400), (A, 6, S, 100.02, 250)]
    partial = book + [(C, 1, B, 100.00, 120), (X, 4, S, 100.02, 60)]
    emptied = book + [(X, 1, B, 100.00, 300), (X, 2, B, 100.00, 150), (D, 2, B, 100.00, 50),
                      (D, 6, S, 100.02, 250)]
    one_sided = [(A, 1, B, 100.00, 300), (A, 2, S, 100.05, 100), (X, 2, S, 100.05, 100),
                 (A, 3, B, 100.01, 50)]
    flow = simulate(n_symbols=1, seed=11, duration_s=120, rate=20.0).events
    return [("a fresh book (two bids at 100.00, asks at 100.02)", _events(book)),
            ("partial cancels and executions (EV_CANCEL removes 120 of order 1, EV_EXECUTE "
             "60 of order 4)", _events(partial)),
            ("a best bid level executed and deleted away", _events(emptied)),
            ("a book whose ask side was executed away", _events(one_sided)),
            ("the first 2,000 events of a simulated flow", flow[:2000].copy()),
            (f"a whole simulated flow ({len(flow):,} events)", flow.copy())]


def _as_pair(value, qty):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, int(qty or 0)
    return float(value), int(qty)


@exercise("05.2", hint="keep {order_id: [side, price, qty]}; EV_ADD adds, EV_CANCEL and EV_EXECUTE take qty off, EV_DELETE removes; then sum qty per (side, price) and take the highest bid / lowest ask, prices / PRICE_SCALE")
def check_top_of_book(best_bid_ask) -> Verdict:
    """Exercise 05.2: ``best_bid_ask(events)`` replays an L3 ``EVENT`` array (adds,
    partial cancels, deletes, executions of one symbol) and returns ``(bid_price, bid_qty,
    ask_price, ask_qty)`` after the last event: prices as prices (currency), quantities
    summed over the level's orders, ``(None, 0)`` for an empty side. The reference is the
    kernels' own L3 ladder (``workbench.data.synthetic.top_of_book``)."""
    from workbench.data.prices import PRICE_SCALE
    from workbench.data.synthetic import top_of_book

    for label, events in _top_cases():
        top = top_of_book(events, 100)[-1]
        expected = (None if top["bid_price"] <= 0 else top["bid_price"] / PRICE_SCALE,
                    int(top["bid_qty"]) if top["bid_price"] > 0 else 0,
                    None if top["ask_price"] <= 0 else top["ask_price"] / PRICE_SCALE,
                    int(top["ask_qty"]) if top["ask_price"] > 0 else 0)
        got, why = _attempt(best_bid_ask, events.copy())
        where = f"after {label}"
        if why:
            return _verdict(False, f"{where}: {why}. Hint: events is a numpy EVENT array; "
                                   "read its fields as events['kind'], events['price'], ...")
        try:
            bid, bid_qty = _as_pair(got[0] if got[0] != 0 else None, got[1])
            ask, ask_qty = _as_pair(got[2] if got[2] != 0 else None, got[3])
        except (TypeError, ValueError, IndexError):
            return _verdict(False, f"{where}: return (bid_price, bid_qty, ask_price, ask_qty), "
                                   f"not {got!r}")
        pairs = ((bid, expected[0]), (ask, expected[2]))
        prices_ok = all((g is None and e is None) or (g is not None and e is not None and
                                                     abs(g - e) < 1e-9) for g, e in pairs)
        if prices_ok and (bid_qty, ask_qty) == (expected[1], expected[3]):
            continue
        shown = ", ".join("empty" if p is None else f"{p:,.2f} x {q}" for p, q in
                          ((expected[0], expected[1]), (expected[2], expected[3])))
        if any(g is not None and e is not None and abs(g - e * PRICE_SCALE) < 1e-6
               for g, e in pairs):
            return _verdict(False, f"{where}: you returned prices in integer units "
                                   f"({bid}, {ask}); show prices as prices: divide by "
                                   f"PRICE_SCALE ({PRICE_SCALE:,})")
        if (bid, ask) == (expected[2], expected[0]) and bid != ask:
            return _verdict(False, f"{where}: the sides are swapped: the best bid is the "
                                   "HIGHEST buy price, the best ask the LOWEST sell price")
        if prices_ok:
            return _verdict(False, f"{where}: the prices are right but the sizes are not: you "
                                   f"said bid x {bid_qty}, ask x {ask_qty}; the book holds "
                                   f"{shown}. EV_CANCEL takes qty off the order (it stays), "
                                   "EV_EXECUTE takes the executed qty off, EV_DELETE removes "
                                   "what is left; a level is the sum of its orders")
        return _verdict(False, f"{where}: you returned bid {bid} x {bid_qty}, ask {ask} x "
                               f"{ask_qty}; the book holds {shown}. A level whose orders are "
                               "all gone (size 0) is no longer the best")
    return _verdict(True, "the top of book rebuilt from raw L3 events, partial cancels, "
                          "executions and empty sides included, matches the kernel's ladder")


# ----------------------------------------------------------- 05.3 Binance sequencing
def _first_gap_reference(last_update_id: int, diffs) -> int | None:
    synced = False
    prev_u = None
    for k, (first, last) in enumerate(diffs):
        if last <= last_update_id:
            continue  # older than the snapshot: dropped
        if not synced:
            if not first <= last_update_id + 1 <= last:
                return k
            synced = True
        elif first != prev_u + 1:
            return k
        prev_u = last
    return None


def _gap_cases():
    rng = np.random.default_rng(5)
    chain, u = [], 1_000
    for _ in range(400):
        n = int(rng.integers(1, 30))
        chain.append((u + 1, u + n))
        u += n
    snap = chain[50][1] - 3               # the snapshot lands inside diff 50
    broken = chain[:230] + chain[231:]    # one message lost on the way
    return [
        ("a clean chain whose first useful diff starts right after the snapshot", 100,
         [(90, 95), (96, 100), (101, 104), (105, 110)]),
        ("a diff that straddles the snapshot id", 100, [(95, 103), (104, 110), (111, 111)]),
        ("a diff ending exactly at the snapshot id (stale: u <= lastUpdateId)", 100,
         [(95, 100), (101, 102), (103, 108)]),
        ("a first diff that starts after the snapshot id + 1", 100, [(90, 99), (103, 105),
                                                                    (106, 110)]),
        ("a chain with a hole in the middle", 100, [(99, 101), (102, 105), (107, 109),
                                                    (110, 112)]),
        ("no diffs at all", 100, []),
        ("only stale diffs", 100, [(80, 90), (91, 100)]),
        (f"{len(chain)} diffs, snapshot inside diff 50", snap, chain),
        ("the same stream with diff 231 lost", snap, broken),
    ]


@exercise("05.3", hint="skip diffs with u <= last_update_id; the first one kept needs U <= last_update_id + 1 <= u; every later one needs U == previous u + 1; return the index of the first diff that breaks this")
def check_first_gap(first_gap) -> Verdict:
    """Exercise 05.3: ``first_gap(last_update_id, diffs)`` applies Binance's spot rule to
    the ``(U, u)`` update ids of diff-depth messages in arrival order after a REST snapshot
    with ``lastUpdateId = last_update_id``: drop diffs with ``u <= lastUpdateId``; the
    first one kept must straddle it (``U <= lastUpdateId + 1 <= u``); each later one must
    start right after the one before (``U == previous u + 1``). Returns the index (in
    ``diffs``) of the first diff that breaks the rule, or None when the book stays in
    sync."""
    for label, last, diffs in _gap_cases():
        expected = _first_gap_reference(last, diffs)
        got, why = _attempt(first_gap, last, list(diffs))
        where = f"with {label} (lastUpdateId {last})"
        if why:
            return _verdict(False, f"{where}: {why}")
        if got is not None and not isinstance(got, (int, np.integer)) or isinstance(got, bool):
            return _verdict(False, f"{where}: return an index (int) or None, not {got!r}")
        if got == expected:
            continue
        if expected is None:
            U, u = diffs[got] if got is not None and 0 <= got < len(diffs) else (None, None)
            if U is not None and u <= last:
                return _verdict(False, f"{where}: you flagged diff {got} (U={U}, u={u}), but "
                                       f"u <= lastUpdateId: it is older than the snapshot and "
                                       "simply dropped, not a gap")
            return _verdict(False, f"{where}: the book stays in sync, return None (you "
                                   f"returned {got!r})")
        U, u = diffs[expected]
        if got is None:
            first_kept = all(d[1] <= last for d in diffs[:expected])
            rule = ("it is the first diff kept, so it must satisfy U <= lastUpdateId + 1 <= u"
                    if first_kept else "its U must equal the previous diff's u + 1")
            return _verdict(False, f"{where}: diff {expected} (U={U}, u={u}) cannot be applied "
                                   f"and you missed it: {rule}")
        return _verdict(False, f"{where}: you returned {got}, the first diff that breaks the "
                               f"chain is {expected} (U={U}, u={u})")
    return _verdict(True, "stale diffs dropped, the straddling diff found, and every hole "
                          "in the update ids caught")
