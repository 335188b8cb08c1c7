"""The exercises of notebooks 08-10: each checker passes a right answer (written here
independently of the notebooks' solutions) and fails the typical wrong ones with a message
that says what is wrong; plus the output fixes those notebooks rely on: ExecutionReports
shown with prices as prices and codes as names, legends outside the plots, plots that fit
the notebook, and a dashboard bounded only in headless runs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import histogram as kh
from workbench.teaching import check
from workbench.teaching.checker import ENV_HEADLESS, _FAILURES


@pytest.fixture(autouse=True)
def person(monkeypatch):
    """Checks as a person sees them: a wrong answer says so instead of raising."""
    monkeypatch.delenv(ENV_HEADLESS, raising=False)
    _FAILURES.clear()
    yield
    _FAILURES.clear()


def verdict_of(capsys, exercise_id, *answer):
    result = check(exercise_id, *answer)
    out = capsys.readouterr().out
    assert out.count("\n") in (1, 2) and "Traceback" not in out  # one line (+ a hint)
    return result, out


def right(capsys, exercise_id, answer):
    result, out = verdict_of(capsys, exercise_id, answer)
    assert result, out
    return out


def wrong(capsys, exercise_id, answer, *phrases):
    result, out = verdict_of(capsys, exercise_id, answer)
    assert not result, out
    for phrase in phrases:
        assert phrase in out, (phrase, out)
    return out


# ------------------------------------------------------------------------------ 08
def percentile_of(h, q):
    """The HDR percentile read off a histogram, in plain Python (no numpy search)."""
    count = int(h[kh.HP_COUNT])
    if not count:
        return 0
    rank = max(math.ceil(q / 100 * count), 1)
    low, high = kh.bucket_bounds(h)
    seen = 0
    for i, c in enumerate(h[kh.HIST_HEADER_WORDS:].tolist()):
        seen += c
        if seen >= rank:
            return min(int(high[i]), int(h[kh.HP_MAX]))
    return int(h[kh.HP_MAX])


def _bucket(h, q, pick):
    count = int(h[kh.HP_COUNT])
    if not count:
        return 0
    rank = max(math.ceil(q / 100 * count), 1)
    low, high = kh.bucket_bounds(h)
    i = int(np.searchsorted(np.cumsum(h[kh.HIST_HEADER_WORDS:]), rank))
    return pick(int(low[i]), int(high[i]), int(h[kh.HP_MAX]))


def test_08_1_percentile_from_buckets(capsys):
    right(capsys, "08.1", percentile_of)
    right(capsys, "08.1", lambda h, q: int(kh.percentile(h, q)))  # the kernel itself
    wrong(capsys, "08.1", lambda h, q: _bucket(h, q, lambda lo, hi, mx: lo), "right bucket",
          "highest value")
    wrong(capsys, "08.1", lambda h, q: _bucket(h, q, lambda lo, hi, mx: hi), "cap the answer")
    wrong(capsys, "08.1", lambda h, q: 0, "the histogram says")
    wrong(capsys, "08.1", lambda h, q: int(kh.percentile(h, q)) if h[kh.HP_COUNT] else 7,
          "empty histogram")
    wrong(capsys, "08.1", lambda h, q: None, "return a number")
    out = wrong(capsys, "08.1", lambda h, q: h[10**9], "IndexError")
    assert "hint:" in out  # second failure in a row and on: the hint


def window_percentile(old, new, q):
    delta = new.copy()
    delta[kh.HIST_HEADER_WORDS:] -= old[kh.HIST_HEADER_WORDS:]
    delta[kh.HP_COUNT] = delta[kh.HIST_HEADER_WORDS:].sum()
    return percentile_of(delta, q)


def test_08_2_percentile_of_one_refresh(capsys):
    from workbench.latency import histogram_delta

    right(capsys, "08.2", window_percentile)
    right(capsys, "08.2", lambda old, new, q: kh.percentile(histogram_delta(new, old), q))
    wrong(capsys, "08.2", lambda old, new, q: percentile_of(new, q), "since the start")
    wrong(capsys, "08.2", lambda old, new, q: percentile_of(old, q), "before the window")
    wrong(capsys, "08.2", lambda old, new, q: kh.percentile(new - old, q), "header")


def risk_reason(side, price, qty, position, open_same_side, mid, limits):
    checks = (
        ("invalid_order", qty <= 0 or price <= 0),
        ("max_order_qty", 0 < limits.get("max_order_qty", 0) < qty),
        ("max_position", 0 < limits.get("max_position", 0) < abs(
            position + (1 if side == "buy" else -1) * (qty + open_same_side))),
        ("max_notional", 0 < limits.get("max_notional", 0) < qty * price),
        ("price_band", mid > 0 and 0 < limits.get("price_band_bps", 0)
         < abs(price - mid) / mid * 1e4),
    )
    return next((name for name, failed in checks if failed), "none")


def test_08_3_gateway_risk_check(capsys):
    right(capsys, "08.3", risk_reason)

    def without_open_orders(side, price, qty, position, open_same_side, mid, limits):
        return risk_reason(side, price, qty, position, 0, mid, limits)

    def notional_first(side, price, qty, position, open_same_side, mid, limits):
        if 0 < limits.get("max_notional", 0) < qty * price:
            return "max_notional"
        return risk_reason(side, price, qty, position, open_same_side, mid, limits)

    def at_the_limit(side, price, qty, position, open_same_side, mid, limits):
        if 0 < limits.get("max_order_qty", 0) <= qty:
            return "max_order_qty"
        return risk_reason(side, price, qty, position, open_same_side, mid, limits)

    def band_without_mid(side, price, qty, position, open_same_side, mid, limits):
        if mid <= 0 and limits.get("price_band_bps", 0):
            return "price_band"
        return risk_reason(side, price, qty, position, open_same_side, mid, limits)

    wrong(capsys, "08.3", without_open_orders, "resting", "'none'", "'max_position'")
    wrong(capsys, "08.3", notional_first, "first that fails")
    wrong(capsys, "08.3", at_the_limit, "exceeded")
    wrong(capsys, "08.3", band_without_mid, "no mid")
    wrong(capsys, "08.3", lambda *a: "rejected", "return one of")


# ------------------------------------------------------------------------------ 09
def token_bucket(arrivals_ns, rate, burst):
    tokens, last, out = float(burst), int(arrivals_ns[0]), []
    for t in arrivals_ns.tolist():
        tokens = min(tokens + (t - last) * rate * 1e-9, burst)
        last = t
        out.append(tokens >= 1.0)
        tokens -= 1.0 if out[-1] else 0.0
    return np.array(out)


def test_09_1_token_bucket(capsys):
    right(capsys, "09.1", token_bucket)

    def uncapped(arrivals_ns, rate, burst):
        tokens, last, out = float(burst), int(arrivals_ns[0]), []
        for t in arrivals_ns.tolist():
            tokens += (t - last) * rate * 1e-9
            last = t
            out.append(tokens >= 1.0)
            tokens -= 1.0 if out[-1] else 0.0
        return out

    def starts_empty(arrivals_ns, rate, burst):
        return [False] + list(token_bucket(arrivals_ns, rate, burst))[1:]

    wrong(capsys, "09.1", uncapped, "only up to burst")
    wrong(capsys, "09.1", starts_empty, "starts full")
    wrong(capsys, "09.1", lambda a, r, b: [True] * (len(a) - 1), "decide every message")
    wrong(capsys, "09.1", lambda a, r, b: [True] * len(a), "the kernel sheds it")


def pid_step(fraction, prev_error, prev_error2, p99_ns, target_ns, kp, ki, kd, min_admit):
    error = -1.0 if p99_ns is None else max(-1.0, min(4.0, p99_ns / target_ns - 1.0))
    change = kp * (error - prev_error) + ki * error + kd * (error - 2 * prev_error + prev_error2)
    return max(min_admit, min(1.0, fraction - change)), error


def test_09_2_pid_step(capsys):
    right(capsys, "09.2", pid_step)

    def unclamped_error(fraction, e1, e2, p99, target, kp, ki, kd, floor):
        e = -1.0 if p99 is None else (p99 - target) / target
        return pid_step(fraction, e1, e2, p99, target, kp, ki, kd, floor)[0], e

    def adds(fraction, e1, e2, p99, target, kp, ki, kd, floor):
        f, e = pid_step(fraction, e1, e2, p99, target, kp, ki, kd, floor)
        return min(max(2 * fraction - f, floor), 1.0), e

    def no_clamp(fraction, e1, e2, p99, target, kp, ki, kd, floor):
        e = pid_step(fraction, e1, e2, p99, target, kp, ki, kd, floor)[1]
        return fraction - (kp * (e - e1) + ki * e + kd * (e - 2 * e1 + e2)), e

    def empty_on_target(fraction, e1, e2, p99, target, kp, ki, kd, floor):
        return pid_step(fraction, e1, e2, target if p99 is None else p99, target, kp, ki, kd, floor)

    wrong(capsys, "09.2", unclamped_error, "clamps it to -1..4")
    wrong(capsys, "09.2", adds, "LOWER")
    wrong(capsys, "09.2", no_clamp, "clamp it")
    wrong(capsys, "09.2", empty_on_target, "empty window")
    wrong(capsys, "09.2", lambda *a: 0.5, "return a pair")


def min_shed_rate(load, service_ns, shed_cost_ns):
    if load <= 1:
        return 0.0
    if shed_cost_ns >= service_ns or load * shed_cost_ns > service_ns:
        return None
    return (1 - 1 / load) * service_ns / (service_ns - shed_cost_ns)


def test_09_3_shed_floor(capsys):
    right(capsys, "09.3", min_shed_rate)
    wrong(capsys, "09.3", lambda load, s, c: max(0.0, 1 - 1 / load), "shedding were free")
    wrong(capsys, "09.3", lambda load, s, c: 100 * (min_shed_rate(load, s, c) or 0),
          "not percent")
    wrong(capsys, "09.3", lambda load, s, c: 1.0 if min_shed_rate(load, s, c) is None
          else min_shed_rate(load, s, c), "Return None")
    wrong(capsys, "09.3", lambda load, s, c: 1 - 1 / load, "never negative")


def test_09_shed_floor_holds_on_the_model_queue():
    """The bound is real: on the simulator's queue (service 5 us, shed cost 100 ns) a
    controller that holds the target sheds that much (within 3 %: a finite run may end
    with a backlog it never had to shed)."""
    from workbench.live.overload import simulate_admission

    for load in (2.0, 4.0):
        run = simulate_admission("codel", load, n=20_000, target_ns=200_000)
        assert run["shed_rate"] >= 0.97 * min_shed_rate(load, 5_000, 100)


# ------------------------------------------------------------------------------ 10
def frame(msg_type, fields):
    body = "".join(f"{tag}={value}\x01" for tag, value in [(35, msg_type), *fields]).encode()
    head = b"8=FIX.4.4\x01" + f"9={len(body)}\x01".encode()
    return head + body + f"10={sum(head + body) % 256:03d}\x01".encode()


def test_10_1_frame(capsys):
    from workbench.fix import parse

    right(capsys, "10.1", frame)
    heartbeat = frame("0", [(49, "A"), (56, "B"), (34, 1), (52, "20240102-14:30:00")])
    assert parse(heartbeat).summary()["valid"] == 1
    wrong(capsys, "10.1", lambda m, f: frame(m, f).replace(b"\x01", b"|"), "0x01")
    wrong(capsys, "10.1", lambda m, f: frame(m, f)[:-1], "must end with SOH")
    wrong(capsys, "10.1", lambda m, f: frame(m, f).replace(b"9=", b"9=1", 1), "BodyLength")

    def unpadded(m, f):
        raw = frame(m, f)
        cut = raw.rindex(b"10=")
        return raw[:cut] + f"10={int(raw[cut + 3:cut + 6])}\x01".encode()

    wrong(capsys, "10.1", unpadded, "three digits")

    def sums_the_body(m, f):
        raw = frame(m, f)
        cut = raw.rindex(b"10=")
        body = raw[raw.index(b"35="):cut]
        return raw[:cut] + f"10={sum(body) % 256:03d}\x01".encode()

    wrong(capsys, "10.1", sums_the_body, "sum to")
    wrong(capsys, "10.1", lambda m, f: None, "return bytes")


def price_units(text, price_scale=10_000):
    from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

    body = text[1:] if text.startswith("-") else text
    if not body or body.count(".") > 1 or not body.replace(".", "").isdigit() \
            or not body.isascii() or body == ".":
        return None
    try:
        return int((Decimal(text) * price_scale).to_integral_value(ROUND_HALF_UP))
    except InvalidOperation:
        return None


def test_10_2_exact_decimals(capsys):
    right(capsys, "10.2", price_units)

    def by_float(text, scale=10_000):
        try:
            return int(float(text) * scale)
        except ValueError:
            return None

    def rounded_float(text, scale=10_000):
        try:
            value = float(text)
        except ValueError:
            return None
        return round(value * scale) if math.isfinite(value) else None

    wrong(capsys, "10.2", by_float, "0.57", "binary float")
    wrong(capsys, "10.2", rounded_float, "halves away from zero")
    wrong(capsys, "10.2", lambda t, s=10_000: price_units(t.strip(), s), "' 5'", "return None")
    wrong(capsys, "10.2", lambda t, s=10_000: price_units(t, s) if t else int(t),
          "ValueError", "return None")


def report_summary(msg):
    from workbench.fix import load_dictionary

    tags = {}
    for field in msg.decode("latin-1").split("\x01"):
        if field:
            tag, _, value = field.partition("=")
            tags[int(tag)] = value
    return {"cl_ord_id": tags[11], "side": "BUY" if tags[54] == "1" else "SELL",
            "last_px": float(tags.get(31, "0")), "last_qty": int(tags.get(32, "0")),
            "leaves_qty": int(tags[151]), "ord_status": load_dictionary().enum_name(39, tags[39])}


def test_10_3_report_for_people(capsys):
    right(capsys, "10.3", report_summary)

    def changed(**change):
        return lambda msg: {**report_summary(msg), **{k: f(msg) for k, f in change.items()}}

    wrong(capsys, "10.3", changed(ord_status=lambda m: m.split(b"\x0139=")[1][:1].decode()),
          "by name", "enum_name(39")
    wrong(capsys, "10.3", changed(last_px=lambda m: report_summary(m)["last_px"] * 10_000),
          "price units")
    wrong(capsys, "10.3", changed(side=lambda m: m.split(b"\x0154=")[1][:1].decode()), "BUY")
    wrong(capsys, "10.3", changed(cl_ord_id=lambda m: m.split(b"\x0111=")[1].split(b"\x01")[0]),
          "bytes")
    wrong(capsys, "10.3", lambda msg: [], "return a dict")


# -------------------------------------------------------------- the output fixes
def test_reports_frame_shows_prices_and_names():
    from kernels.records import EXEC_REPORT
    from workbench.fix import encode_execution_reports, load_dictionary, parse, reports_frame

    d = load_dictionary()
    assert (d.enum_name(39, "2"), d.enum_name(39, ord("2")), d.enum_name(150, "F")) == \
        ("FILLED", "FILLED", "TRADE")
    assert d.enum_name(39, "Z") is None and d.enum_name(39, 0) is None
    r = np.zeros(2, EXEC_REPORT)
    r["last_px"] = r["price"] = [1_852_500, 1_853_000]
    r["last_qty"], r["cum_qty"], r["leaves_qty"] = [40, 10], [40, 10], [60, 0]
    r["order_qty"] = [100, 10]
    r["exec_type"], r["ord_status"] = ord("F"), [ord("1"), ord("2")]
    r["side"], r["symbol"] = [0, 1], [0, 0]
    buf, _ = encode_execution_reports(r, sender_comp_id="ISLD", target_comp_id="ME",
                                      symbols=["AAPL"], cl_ord_ids=["b1", "s1"])
    shown = parse(buf, symbols=["AAPL"]).reports_frame()
    assert shown.select("cl_ord_id", "symbol", "side", "last_px", "last_qty", "leaves_qty",
                        "exec_type", "ord_status").rows() == [
        ("b1", "AAPL", "BUY", 185.25, 40, 60, "TRADE", "PARTIALLY_FILLED"),
        ("s1", "AAPL", "SELL", 185.30, 10, 0, "TRADE", "FILLED")]
    built = reports_frame(r)  # records never on the wire: no text, no symbol names
    assert built["last_px"].to_list() == [185.25, 185.30] and built["cl_ord_id"].null_count() == 2
    with pytest.raises(ValueError, match="EXEC_REPORT"):
        reports_frame(np.zeros(1, np.int64))


def test_admission_plots_keep_legends_off_the_data_and_fit_the_notebook():
    import polars as pl
    from bokeh.models import Legend

    from workbench.live.overload import simulate_admission
    from workbench.plots import overload_figure, trace_figure

    runs = [simulate_admission(c, 2.0, n=2_000) for c in ("codel", "pid")]
    frame_ = pl.DataFrame({"controller": ["pid", "none"], "load": [2.0, 2.0],
                           "p99_ns": [9.0, 7.0], "goodput_ratio": [0.8, 0.9]})
    figures = [trace_figure(runs, 200_000.0), *overload_figure(frame_, 5.0).children]
    for fig in figures:
        legends = [m for m in fig.right if isinstance(m, Legend)]
        assert legends
        assert all(legend.click_policy == "hide" for legend in legends)
        assert not [m for m in fig.center if isinstance(m, Legend)]
        assert fig.width <= 900


def test_monitor_fits_the_notebook_with_legends_beside_the_plots():
    from bokeh.models import Legend

    from workbench.live import Pipeline
    from workbench.widgets import LatencyMonitor

    pipe = Pipeline(rate=20_000, work_ns=500.0, feed_wait_policy="sleep", wait_policy="sleep")
    try:
        mon = LatencyMonitor(pipe)
        rows = {}
        for child, row, _col in mon.plots.children:
            rows[row] = rows.get(row, 0) + child.width
        assert max(rows.values()) <= 900
        for fig in mon.figures:
            assert not [m for m in fig.center if isinstance(m, Legend)]
            for legend in (m for m in fig.right if isinstance(m, Legend)):
                assert legend.click_policy == "hide"
    finally:
        pipe.stop()


def test_dashboard_notebook_is_bounded_only_headless(monkeypatch):
    """Notebook 08's dashboard cell, run as in a person's session and as in the test run
    (WORKBENCH_HEADLESS set): only the latter gets a duration; a person's session runs
    until stopped, whatever else pytest put in the environment."""
    import json

    from workbench.teaching.checker import headless
    from workbench.teaching.copies import NOTEBOOK_DIR

    cells = json.loads((NOTEBOOK_DIR / "08-live-tuning.ipynb").read_text())["cells"]
    [cell] = ["".join(c["source"]) for c in cells
              if c["cell_type"] == "code" and "dashboard(pipe" in "".join(c["source"])]
    seen = []

    def dashboard(pipeline, **options):
        seen.append(options.get("duration_s"))

    for env in (None, "1"):
        if env is None:
            monkeypatch.delenv(ENV_HEADLESS, raising=False)
        else:
            monkeypatch.setenv(ENV_HEADLESS, env)
        exec(cell, {"dashboard": dashboard, "pipe": object(), "headless": headless})
    assert seen[0] is None and seen[1] > 0
