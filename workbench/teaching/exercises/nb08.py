"""Checkers of notebook 08-live-tuning."""
from __future__ import annotations

import math

import numpy as np

from workbench.teaching.checker import Verdict, attempt as _attempt, exercise, verdict as _verdict

# the live pipeline's histograms: 8 precision bits (< 1 % error), up to a minute
_PRECISION = 8
_HIGHEST = 60_000_000_000


def _ns(value) -> str:
    return f"{value:,.0f} ns"


def _histogram(values, precision: int = _PRECISION):
    from kernels import histogram as kh

    h = kh.new_histogram(precision, _HIGHEST)
    if len(values):
        kh.record_many(h, np.asarray(values, dtype=np.int64))
    return h


def _latencies(n: int, median_ns: float, seed: int, spread: float = 0.6):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.lognormal(math.log(median_ns), spread, n), 1).astype(np.int64)


def _bucket_of(h, value):
    """(low, high) of the bucket ``value`` falls in."""
    from kernels import histogram as kh

    low, high = kh.bucket_bounds(h)
    i = int(np.searchsorted(high, value))
    i = min(i, len(low) - 1)
    return int(low[i]), int(high[i])


def _as_number(got):
    if isinstance(got, (bool, np.bool_)) or got is None:
        return None
    try:
        value = float(got)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _percentile_cases():
    """(label, histogram, raw values) for 08.1 and 08.2."""
    cases = [
        ("an empty histogram", _histogram([]), np.zeros(0, np.int64)),
        ("one recording of 1,234 ns", _histogram([1_234]), np.array([1_234])),
        ("three small values (exact buckets: 3, 7, 200 ns)", _histogram([7, 3, 200]),
         np.array([3, 7, 200])),
    ]
    for n, median, seed, precision in ((1_001, 40_000, 1, _PRECISION),
                                       (20_003, 250_000, 2, _PRECISION),
                                       (5_003, 2_000_000, 3, 11)):
        values = _latencies(n, median, seed)
        cases.append((f"{n:,} latencies around {median / 1e3:,.0f} us ({precision} precision bits)",
                      _histogram(values, precision), values))
    return cases


@exercise("08.1", hint="counts = h[kh.HIST_HEADER_WORDS:]; low, high = kh.bucket_bounds(h); rank = ceil(q / 100 * count), at least 1; the first bucket where np.cumsum(counts) >= rank; answer min(high[i], h[kh.HP_MAX]); 0 when h[kh.HP_COUNT] == 0")
def check_percentile_of(percentile_of) -> Verdict:
    """Exercise 08.1: ``percentile_of(h, q)`` returns the value at percentile ``q``
    (0..100) of a ``kernels.histogram`` array ``h`` the way HDR histograms report it: the
    highest value of the bucket that holds the rank-th smallest recording (rank =
    ceil(q/100 x count), at least 1), never above the largest value recorded; 0 for an
    empty histogram. Checked against the kernel's ``kh.percentile`` on an empty
    histogram, single values, exact small buckets and 1k-20k latencies at 8 and 11 bits."""
    from kernels import histogram as kh

    for label, h, values in _percentile_cases():
        count = int(h[kh.HP_COUNT])
        for q in (0.0, 50.0, 90.0, 99.0, 99.9, 100.0):
            expected = int(kh.percentile(h, q))
            got, why = _attempt(percentile_of, h.copy(), q)
            where = f"{label}, q={q:g}"
            if why:
                return _verdict(False, f"{where}: {why}")
            value = _as_number(got)
            if value is None:
                return _verdict(False, f"{where}: return a number of ns, not {got!r}")
            if value == expected:
                continue
            if count == 0:
                return _verdict(False, f"{where}: you returned {got!r}; an empty histogram has "
                                       "no percentile: return 0")
            # the naive rank ceil(q / 100 * count), without the kernel's float nudge, is fine
            naive = min(max(math.ceil(q / 100.0 * count), 1), count)
            counts = h[kh.HIST_HEADER_WORDS:]
            low, high = kh.bucket_bounds(h)
            i = int(np.searchsorted(np.cumsum(counts), naive))
            if value == min(int(high[i]), int(h[kh.HP_MAX])):
                continue
            exact = np.sort(values)[naive - 1]
            b_low, b_high = _bucket_of(h, expected)
            if b_low <= value <= b_high:
                if value == b_high and b_high > h[kh.HP_MAX]:
                    return _verdict(False, f"{where}: {_ns(value)} is the right bucket's top, but "
                                           f"nothing above {_ns(h[kh.HP_MAX])} (h[kh.HP_MAX]) was "
                                           "recorded: cap the answer at the max")
                return _verdict(False, f"{where}: {_ns(value)} is in the right bucket "
                                       f"({_ns(b_low)} .. {_ns(b_high)}), but report its highest "
                                       f"value ({_ns(expected)}): a histogram never under-reports "
                                       "a latency")
            if value == h[kh.HP_MAX] and expected != value:
                return _verdict(False, f"{where}: you returned the max, {_ns(value)}; the "
                                       f"percentile is {_ns(expected)}")
            return _verdict(False, f"{where}: you returned {_ns(value)}, the histogram says "
                                   f"{_ns(expected)} (the exact value is {_ns(exact)}, recording "
                                   f"number {naive:,} of {count:,} in order); walk the bucket "
                                   "counts until the running count reaches the rank")
    return _verdict(True, "the HDR rule on every histogram, empty, exact and bucketed alike")


def _snapshots():
    """(label, old, new, values recorded in between, everything recorded before)."""
    from kernels import histogram as kh

    slow = _latencies(6_000, 3_000_000, 11, 0.3)    # an overload: milliseconds
    fast = _latencies(20_000, 60_000, 12, 0.4)      # then the controller caught up
    tail = _latencies(150, 400_000, 13, 0.2)
    window = np.concatenate([fast, tail])
    old = _histogram(slow)
    new = old.copy()
    kh.record_many(new, window)
    later = new.copy()
    quiet = _latencies(3_000, 900_000, 14, 0.5)
    kh.record_many(later, quiet)
    empty = _histogram([])
    first = _histogram(window)
    return [
        ("an overload (6,000 messages at ~3 ms) then 20,150 fast ones", old, new, window, slow),
        ("the next window (3,000 messages at ~0.9 ms)", new, later, quiet,
         np.concatenate([slow, window])),
        ("the first sample (old is an empty histogram)", empty, first, window,
         np.zeros(0, np.int64)),
        ("a window where nothing arrived", new, new.copy(), np.zeros(0, np.int64),
         np.concatenate([slow, window])),
    ]


@exercise("08.2", hint="delta = new.copy(); subtract only the bucket counts (delta[kh.HIST_HEADER_WORDS:] -= old[kh.HIST_HEADER_WORDS:]), set delta[kh.HP_COUNT] to their sum, then your percentile_of(delta, q)")
def check_window_percentile(window_percentile) -> Verdict:
    """Exercise 08.2: ``window_percentile(old, new, q)`` returns the q-th percentile of
    the latencies recorded *between* two snapshots (copies) of a cumulative histogram:
    what the dashboard's "latency over time" line shows for one refresh. Checked against
    a histogram holding only that window's latencies (within the histogram's precision:
    the same bucket), after an overload, in a quiet window, on the first sample and in a
    window where nothing arrived (0)."""
    from kernels import histogram as kh

    for label, old, new, window, before in _snapshots():
        for q in (50.0, 99.0):
            ref_h = _histogram(window)
            expected = int(kh.percentile(ref_h, q))
            got, why = _attempt(window_percentile, old.copy(), new.copy(), q)
            where = f"{label}, q={q:g}"
            if why:
                return _verdict(False, f"{where}: {why}. Subtract the bucket counts only, "
                                       "h[kh.HIST_HEADER_WORDS:]: the header is not counts")
            value = _as_number(got)
            if value is None:
                return _verdict(False, f"{where}: return a number of ns, not {got!r}")
            if len(window) == 0:
                if value == 0:
                    continue
                return _verdict(False, f"{where}: you returned {_ns(value)}, but no message "
                                       "arrived in this window: return 0")
            low, high = _bucket_of(ref_h, expected)
            if low <= value <= high:
                continue
            since_start = int(kh.percentile(new, q))
            if len(before) and _bucket_of(new, since_start)[0] <= value <= _bucket_of(new, since_start)[1]:
                return _verdict(False, f"{where}: {_ns(value)} is the p{q:g} since the start "
                                       f"(new alone); this window's is {_ns(expected)}: "
                                       "subtract what old already held")
            old_p = int(kh.percentile(old, q))
            if len(before) and old_p and _bucket_of(old, old_p)[0] <= value <= _bucket_of(old, old_p)[1]:
                return _verdict(False, f"{where}: {_ns(value)} is old's p{q:g}, before the "
                                       f"window; this window's is {_ns(expected)}")
            header = (" Did you subtract whole arrays? The header words (precision, count, "
                      "max) are not counts: subtract h[kh.HIST_HEADER_WORDS:] only."
                      if value == 0 else "")
            return _verdict(False, f"{where}: you returned {_ns(value)}, the window's "
                                   f"latencies give {_ns(expected)} (bucket {_ns(low)} .. "
                                   f"{_ns(high)}): the difference of the bucket counts is the "
                                   f"window's histogram.{header}")
    return _verdict(True, "each window's own percentile: the overload does not linger in "
                          "the next refresh, and an empty window shows 0")


# ------------------------------------------------------------------ 08.3 risk
def _risk_reference(side, price, qty, position, open_same_side, mid, limits):
    """The kernel's verdict (``kernels.risk.check_new_order``), as a reason name."""
    from kernels import risk as krisk
    from workbench.data.prices import PRICE_SCALE, to_units

    rp = krisk.default_risk_params()
    for name, index in (("max_order_qty", krisk.RP_MAX_ORDER_QTY),
                        ("max_position", krisk.RP_MAX_POSITION),
                        ("max_notional", krisk.RP_MAX_NOTIONAL),
                        ("price_band_bps", krisk.RP_PRICE_BAND_BPS)):
        rp[index] = float(limits.get(name, 0.0))
    rs = np.zeros(krisk.N_RISK_STATE, dtype=np.int64)
    code = krisk.check_new_order(rp, rs, 0, 0 if side == "buy" else 1, to_units(price), int(qty),
                                 int(position), int(open_same_side),
                                 to_units(mid) if mid > 0 else 0, PRICE_SCALE)
    return krisk.RISK_REASON_NAMES[int(code)]


# (why the case is there, side, price, qty, position, open on that side, mid, limits)
_RISK_CASES = (
    ("no limit set", "buy", 100.00, 1_000_000, 0, 0, 100.00, {}),
    ("within every limit", "buy", 100.01, 100, 200, 100, 100.00,
     dict(max_order_qty=500, max_position=1_000, max_notional=50_000, price_band_bps=50)),
    ("an order of exactly max_order_qty", "sell", 99.99, 500, 0, 0, 100.00,
     dict(max_order_qty=500)),
    ("one share above max_order_qty", "sell", 99.99, 501, 0, 0, 100.00, dict(max_order_qty=500)),
    ("a zero quantity", "buy", 100.00, 0, 0, 0, 100.00, dict(max_order_qty=500)),
    ("a negative price", "buy", -1.00, 10, 0, 0, 100.00, {}),
    ("a buy whose resting buys push the worst position over the limit", "buy", 100.00, 300, 500,
     250, 100.00, dict(max_position=1_000)),
    ("the same buy with nothing resting", "buy", 100.00, 300, 500, 0, 100.00,
     dict(max_position=1_000)),
    ("a sell that reduces a long position", "sell", 100.00, 900, 800, 0, 100.00,
     dict(max_position=1_000)),
    ("a sell from a short position, resting sells included", "sell", 100.00, 200, -700, 150,
     100.00, dict(max_position=1_000)),
    ("a sell that flips long to short within the limit", "sell", 100.00, 1_500, 600, 0, 100.00,
     dict(max_position=1_000)),
    ("a notional over the limit", "buy", 250.00, 300, 0, 0, 250.00, dict(max_notional=50_000)),
    ("a notional just under the limit", "buy", 250.00, 199, 0, 0, 250.00,
     dict(max_notional=50_000)),
    ("a price 1 % above the mid with a 50 bps band", "buy", 101.00, 10, 0, 0, 100.00,
     dict(price_band_bps=50)),
    ("a price 0.3 % below the mid with a 50 bps band", "sell", 99.70, 10, 0, 0, 100.00,
     dict(price_band_bps=50)),
    ("no mid (an empty book): the band cannot apply", "buy", 150.00, 10, 0, 0, 0.0,
     dict(price_band_bps=50)),
    ("too big AND out of the band: the first failing check names it", "buy", 120.00, 900, 0, 0,
     100.00, dict(max_order_qty=500, price_band_bps=50)),
    ("over the position AND notional limits", "buy", 100.00, 800, 500, 0, 100.00,
     dict(max_position=1_000, max_notional=10_000)),
)


@exercise("08.3", hint="check in the kernel's order: invalid (qty <= 0 or price <= 0), max_order_qty, max_position (worst = position + qty + open_same_side for a buy, position - (qty + open_same_side) for a sell; abs(worst) > limit), max_notional (qty x price), price_band_bps (abs(price - mid) / mid x 10,000, only when mid > 0); a limit of 0 is no limit")
def check_risk_reason(risk_reason) -> Verdict:
    """Exercise 08.3: ``risk_reason(side, price, qty, position, open_same_side, mid,
    limits)`` returns why the strategy's gateway rejects a new order, as the name
    ``kernels.risk`` gives it (``"none"`` when it may go, ``"max_order_qty"``,
    ``"max_position"``, ``"max_notional"``, ``"price_band"``, ``"invalid_order"``).
    ``limits`` holds any of max_order_qty, max_position, max_notional, price_band_bps (0
    or absent: no limit). Checked against the kernel ``check_new_order`` on 18 orders:
    exact limits, resting orders, sells from long and short positions, an empty book and
    orders that break two limits at once."""
    from kernels import risk as krisk

    names = set(krisk.RISK_REASON_NAMES)
    for why_case, side, price, qty, position, open_same, mid, limits in _RISK_CASES:
        expected = _risk_reference(side, price, qty, position, open_same, mid, limits)
        got, why = _attempt(risk_reason, side, price, qty, position, open_same, mid, dict(limits))
        call = (f"risk_reason({side!r}, {price:.2f}, {qty}, position={position}, "
                f"open_same_side={open_same}, mid={mid:.2f}, {limits})")
        if why:
            return _verdict(False, f"{why_case}: {call}: {why}")
        if got == expected:
            continue
        if got not in names:
            return _verdict(False, f"{why_case}: {call} returned {got!r}; return one of "
                                   f"{sorted(names - {'order_rate', 'kill_switch', 'max_open_orders'})}")
        if expected == "none":
            return _verdict(False, f"{why_case}: {call} returned {got!r}, but the gateway lets "
                                   "this order go ('none'): a limit is broken only when "
                                   "exceeded (>), and 0 means no limit")
        if got == "none":
            return _verdict(False, f"{why_case}: {call} returned 'none', but the gateway "
                                   f"rejects it: {expected!r}")
        return _verdict(False, f"{why_case}: {call} returned {got!r}, the gateway says "
                               f"{expected!r}: the checks run in a fixed order (invalid, "
                               "order qty, position, notional, band) and the first that "
                               "fails names the reject")
    return _verdict(True, f"the gateway's verdict on all {len(_RISK_CASES)} orders, in its "
                          "order of checks")
