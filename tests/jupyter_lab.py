"""JupyterLab in a real browser, for the browser tests: a server on 127.0.0.1 (random port,
token, throwaway settings) and Debian's chromium driven by Playwright.

``lab_server(root, env)`` starts and stops the server (kernels included); ``open_notebook``,
``run_all_cells`` and ``wait_until_ran`` drive a notebook the way a person does (Run All from
the menu) and wait for state, never for time: the timeouts only bound how long a broken run
takes to fail on a slow, loaded machine. ``saved_notebook`` saves it from the page and reads
the file the server wrote, so a test inspects exactly what the person would have on disk.

``browser_unavailable()`` says why the browser tests cannot run here (None when they can).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SLOW = 900          # s: JupyterLab start, a whole notebook with cold Numba caches
STEP = 300          # s: one interaction seen on screen
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]


def browser_unavailable() -> str | None:
    if not CHROMIUM.exists():
        return "needs Debian's chromium at /usr/bin/chromium (make test installs it: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (the dev extra)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, token: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


@contextlib.contextmanager
def lab_server(root: Path, workdir: Path, env_extra: dict | None = None, drop_env=()):
    """Yield ``(base_url, token)`` of a JupyterLab serving ``root``; shut it down after."""
    port, token = free_port(), secrets.token_hex(16)
    settings = workdir / "settings"
    # render every cell (no virtual scrolling) so all outputs stay in the DOM; no news toast
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / (plugin + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for name in drop_env:
        env.pop(name, None)
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    logpath = workdir / "jupyterlab.log"
    log = open(logpath, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SLOW
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {logpath.read_text()[-2000:]}")
            try:
                if request(f"{base}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start within {SLOW} s")
            time.sleep(0.5)
        yield base, token
    finally:
        try:
            request(f"{base}/api/shutdown", token, method="POST")  # stops kernels too
        except OSError:
            pass
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this server started, if anything is left
        except ProcessLookupError:
            pass
        proc.wait(5)
        log.close()


def wait_for_idle_kernels(base: str, token: str, timeout: float = SLOW) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = json.loads(request(f"{base}/api/kernels", token)[1])
        if kernels and all(k.get("execution_state") == "idle" for k in kernels):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel within {timeout} s")


def shut_down_kernels(base: str, token: str) -> None:
    for kernel in json.loads(request(f"{base}/api/kernels", token)[1]):
        with contextlib.suppress(OSError):
            request(f"{base}/api/kernels/{kernel['id']}", token, method="DELETE")


# JS: the state of the run, read from the page (cell prompts).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"   # the notebook on screen
PROMPTS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim())"""


def open_notebook(page, base: str, token: str, name: str) -> None:
    """Open ``name`` alone: ``reset`` starts from an empty workspace, so the notebooks the
    previous page had open are not restored beside it."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW * 1000)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle")) \
        .first.wait_for(timeout=SLOW * 1000)


def run_all_cells(page) -> None:
    """Run all cells once the page's kernel connection is idle, and see them queued.

    The server reports the kernel idle before the page has connected to it; a "Run
    All" in that gap selects every cell and runs none. So wait for the page's own
    kernel status, and click again only while no cell was queued (so never twice)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"ipykernel\) \| Idle")) \
        .first.wait_for(timeout=SLOW * 1000)
    prompts = page.evaluate(PROMPTS)  # "[ ]:" until a cell is queued ("[*]:") or ran ("[1]:")
    for attempt in range(5):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(f"(old) => JSON.stringify(({PROMPTS})()) !== JSON.stringify(old)",
                                   arg=prompts, timeout=30_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # close the menu if it is still open
            print(f"run all, attempt {attempt + 1}: no cell queued yet", file=sys.stderr)
    raise TimeoutError("Run All Cells queued no cell")


def wait_until_ran(page, timeout: float = SLOW) -> list[str]:
    """The cells' prompts once nothing is queued or running (after Run All)."""
    page.wait_for_function(f"() => !({PROMPTS})().some(p => p.includes('*'))",
                           timeout=timeout * 1000, polling=500)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle")).first \
        .wait_for(timeout=timeout * 1000)
    return page.evaluate(PROMPTS)


def saved_notebook(page, base: str, token: str, name: str, timeout: float = STEP) -> dict:
    """Save the notebook from the page (File > Save) and return the file the server wrote.

    The server rewrites the file in place, so it is read only once the page reports the
    save completed: a read during the write would see a torn file (and make the server
    restore its backup)."""
    status = page.locator(".jp-StatusBar-TextItem", has_text="Saving completed")
    page.locator(f"{PANEL} .jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save Notebook$")).first.click()
    status.first.wait_for(timeout=timeout * 1000)
    _, body = request(f"{base}/api/contents/{name}?content=1", token)
    return json.loads(body)["content"]


def full_screenshot(page, path: Path, width: int = 1400, max_height: int = 16_000) -> int:
    """A screenshot of the whole notebook (the viewport grown to its height, capped);
    returns the height captured."""
    height = page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')]
        .reduce((sum, cell) => sum + cell.getBoundingClientRect().height + 8, 250)""")
    height = int(min(max(height, 800), max_height))
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(500)  # one layout pass at the new size
    page.evaluate("""() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer, '
                                                    + '.jp-NotebookPanel .jp-Notebook')
                          .forEach(e => e.scrollTop = 0)""")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return height
