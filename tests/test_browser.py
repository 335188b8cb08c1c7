"""The live-tuning notebook in a real browser: JupyterLab on localhost, Debian's chromium
driven by Playwright. Runs notebook 08, checks the widgets and the bokeh canvas render,
moves the latency-target slider and sees the dashboard follow, presses stop, saves a
screenshot.

No step races a clock: the notebook runs as a person's session (no time limit; the
test ends it with the dashboard's stop button), and every step waits for the state it
needs (the kernel connected in the page, the cells queued, the pipeline counting
messages, the new target on screen) with timeouts generous enough for a slow, loaded
machine.

Skips (with the reason) when ``/usr/bin/chromium`` or the ``playwright`` package is
missing, so ``make test`` stays green on machines without them. Install:
``apt-get install -y chromium`` and ``pip install playwright`` (no browser download:
the test launches the system chromium).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time

import pytest

from tests import jupyter_lab as lab

NOTEBOOK = "08-live-tuning.ipynb"
CHROMIUM, FLAGS, SLOW, STEP = lab.CHROMIUM, lab.FLAGS, lab.SLOW, lab.STEP

if lab.browser_unavailable():
    pytest.skip(lab.browser_unavailable(), allow_module_level=True)
from playwright.sync_api import sync_playwright  # noqa: E402


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of the notebook, run as a person's
    session: nothing of pytest's environment (``WORKBENCH_HEADLESS``, which
    tests/conftest.py sets for the headless notebook runs) tells the kernel otherwise, so
    the dashboard runs until the test presses stop."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(lab.REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    with lab.lab_server(root, tmp_path, drop_env=("PYTEST_CURRENT_TEST", "WORKBENCH_HEADLESS")) \
            as (base, token):
        yield base, token, tmp_path


def _status_text(page) -> str:
    return page.locator(".widget-html-content", has_text="received=").first.inner_text()


def _received(status: str) -> int:
    m = re.search(r"received=([\d,]+)", status)
    return int(m.group(1).replace(",", "")) if m else -1


def _target(status: str) -> str:
    m = re.search(r"target=[^ ]+ us", status)
    return m.group(0) if m else ""


def _poll(what: str, probe, timeout: float = STEP, every: float = 0.5):
    """``probe()`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout} s")
        time.sleep(every)


def _wait_for_status(page, what: str, condition) -> str:
    """The dashboard's status line once ``condition(status)`` holds."""
    return _poll(what, lambda: (lambda status: status if condition(status) else None)(
        _status_text(page)))


# JS: the state of the run, read from the page (outputs).
_OUTCOME = """(want) => {
    const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
    if (outputs.some(e => e.textContent.includes(want))) return 'ok';
    const error = outputs.find(e => e.getAttribute('data-mime-type') ===
        'application/vnd.jupyter.stderr' && e.textContent.includes('Traceback'));
    return error ? 'error: ' + error.textContent.slice(-1500) : null;
}"""


def test_live_tuning_notebook_runs_and_reacts_to_a_slider(jupyterlab):
    base, token, tmp = jupyterlab
    shot = tmp / "live-tuning.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.on("console", lambda m: print("CONSOLE", m.type, m.text[:300], file=sys.stderr) if m.type == "error" else None)
            page.set_default_timeout(STEP * 1000)
            lab.open_notebook(page, base, token, NOTEBOOK)
            lab.wait_for_idle_kernels(base, token)
            lab.run_all_cells(page)
            outcome = page.wait_for_function(_OUTCOME, arg="dashboard running: True",
                                             timeout=SLOW * 1000).json_value()
            assert outcome == "ok", f"the notebook failed: {outcome}"

            # widgets and the bokeh canvas rendered in the dashboard cell
            assert page.locator(".widget-dropdown").count() >= 3
            assert page.locator(".widget-slider").count() >= 3
            print("canvases:", page.locator("canvas").count(), "bk:", page.locator("[class*='bk-']").count(),
                  file=sys.stderr)
            page.locator(".widget-slider", has_text="p99 target").first.scroll_into_view_if_needed()
            canvas = page.locator("canvas").first
            canvas.wait_for(state="visible")
            box = canvas.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100

            # the pipeline is running: its received count grows on screen
            first = _wait_for_status(page, "the dashboard status", lambda st: _received(st) >= 0)
            before_status = _wait_for_status(page, "messages flowing",
                                             lambda st: _received(st) > _received(first))
            assert "stopped" not in before_status, before_status
            before_pixels = canvas.screenshot()

            # move the latency-target slider with the keyboard; the status follows
            slider = page.locator(".widget-slider", has_text="p99 target").first
            handle = slider.locator(".noUi-handle").first
            handle.focus()
            for _ in range(5):
                handle.press("ArrowLeft")
            after_status = _wait_for_status(
                page, "the new target in the status",
                lambda st: _target(st) and _target(st) != _target(before_status))
            assert "stopped" not in after_status, after_status
            _poll("the plot redrawn", lambda: canvas.screenshot() != before_pixels)

            # the person ends the session: the stop button stops the pipeline
            page.locator(".widget-button", has_text=re.compile(r"^\s*stop\s*$")).first.click()
            final = _wait_for_status(page, "the stopped session", lambda st: "(stopped)" in st)
            page.screenshot(path=str(shot), full_page=True)
        except BaseException:
            errors = page.get_by_text("Click to show javascript error")
            if errors.count():
                errors.first.click()
                time.sleep(1)
                print("JS ERROR:", page.locator(".jp-RenderedText, pre").filter(has_text="Error").all_inner_texts()[:3], file=sys.stderr)
            page.screenshot(path=str(tmp / "failure.png"), full_page=True)
            print("failure screenshot:", tmp / "failure.png", file=sys.stderr)
            raise
        finally:
            browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
    print(json.dumps({"screenshot": str(shot), "before": before_status, "after": after_status,
                      "final": final}))
