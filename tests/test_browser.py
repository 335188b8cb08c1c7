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
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "08-live-tuning.ipynb"
# Waits for state, not for time: these only bound how long a broken run takes to fail.
SLOW = 900          # s: JupyterLab start, run all (first numba compile of the pipeline)
STEP = 300          # s: one interaction seen on screen
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
                allow_module_level=True)
try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:
    pytest.skip("needs the playwright package (pip install playwright)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read()


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 (random port, token) serving a copy of the
    notebook; shut down (kernels included) afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings"
    # render every cell (no virtual scrolling) so the dashboard stays in the DOM; no news toast
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / (plugin + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    # The notebook bounds its session when it sees pytest (headless nbmake runs). Here it
    # runs as a person's session, until the test presses stop.
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SLOW
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                if _request(f"{base}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start within {SLOW} s")
            time.sleep(0.5)
        yield base, token, tmp_path
    finally:
        try:
            _request(f"{base}/api/shutdown", token, method="POST")  # stops kernels too
        except OSError:
            pass
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this fixture started, if anything is left
        except ProcessLookupError:
            pass
        proc.wait(5)
        log.close()


def _wait_for_idle_kernel(base: str, token: str, timeout: float = SLOW) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = json.loads(_request(f"{base}/api/kernels", token)[1])
        if kernels and all(k.get("execution_state") == "idle" for k in kernels):
            return
        time.sleep(0.5)
    pytest.fail(f"no idle kernel within {timeout} s")


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


# JS: the state of the run, read from the page (cell prompts, outputs).
_PROMPTS = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent)"""
_OUTCOME = """(want) => {
    const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
    if (outputs.some(e => e.textContent.includes(want))) return 'ok';
    const error = outputs.find(e => e.getAttribute('data-mime-type') ===
        'application/vnd.jupyter.stderr' && e.textContent.includes('Traceback'));
    return error ? 'error: ' + error.textContent.slice(-1500) : null;
}"""


def _run_all_cells(page) -> None:
    """Run all cells once the page's kernel connection is idle, and see them queued.

    The server reports the kernel idle before the page has connected to it; a "Run
    All" in that gap selects every cell and runs none. So wait for the page's own
    kernel status, and click again only while no cell was queued (so never twice)."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"ipykernel\) \| Idle")) \
        .first.wait_for(timeout=SLOW * 1000)
    prompts = page.evaluate(_PROMPTS)  # "[ ]:" until a cell is queued ("[*]:") or ran ("[1]:")
    for attempt in range(5):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(f"(old) => JSON.stringify(({_PROMPTS})()) !== JSON.stringify(old)",
                                   arg=prompts, timeout=30_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # close the menu if it is still open
            print(f"run all, attempt {attempt + 1}: no cell queued yet", file=sys.stderr)
    pytest.fail("Run All Cells queued no cell")


def test_live_tuning_notebook_runs_and_reacts_to_a_slider(jupyterlab):
    base, token, tmp = jupyterlab
    shot = tmp / "live-tuning.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.on("console", lambda m: print("CONSOLE", m.type, m.text[:300], file=sys.stderr) if m.type == "error" else None)
            page.set_default_timeout(STEP * 1000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW * 1000)
            _wait_for_idle_kernel(base, token)
            _run_all_cells(page)
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
