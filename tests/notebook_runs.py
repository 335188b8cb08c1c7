"""Every notebook, run the way a student runs it: JupyterLab in Chromium, Run All, then the
saved file is read back. A notebook passes when every code cell ran, no output is an error
(a failing exercise check raises here: ``WORKBENCH_HEADLESS=1``, the solutions are in place),
and every bokeh plot on the page drew a canvas. A full-page screenshot of each notebook is
saved in ``build/screenshots/`` for a reviewer.

The notebooks are split over two test files, one per ``make test`` worker
(``tests/test_notebooks_browser_{1,2}.py``). Without chromium or Playwright the same tests
run each notebook through nbmake's runner instead (no rendering, no screenshot), and say so.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests import jupyter_lab as lab

NOTEBOOK_DIR = lab.REPO / "notebooks"
SCREENSHOTS = lab.REPO / "build" / "screenshots"
TIMES = lab.REPO / "build" / "notebook-times.jsonl"
# cold caches make the first notebook of a worker slow; the others hit Numba's disk cache
TIMEOUT_S = 900

# measured seconds per notebook (warm caches), longest first: the split balances them
WEIGHTS = {"13": 60, "06": 45, "07": 40, "11": 40, "08": 35, "01": 35, "10": 30, "12": 30,
           "04": 25, "05": 25, "14": 25, "15": 20, "16": 20, "17": 20, "09": 20, "02": 15,
           "03": 15}


def all_notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb"))


def group(index: int, groups: int = 2) -> list[Path]:
    """Greedy longest-first split of the notebooks into ``groups`` of similar run time."""
    loads = [0.0] * groups
    members: list[list[Path]] = [[] for _ in range(groups)]
    for path in sorted(all_notebooks(), key=lambda p: -WEIGHTS.get(p.name[:2], 30)):
        g = loads.index(min(loads))
        loads[g] += WEIGHTS.get(path.name[:2], 30)
        members[g].append(path)
    return sorted(members[index])


def error_outputs(nb: dict) -> list[str]:
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if o.get("output_type") == "error":
                tb = "\n".join(o.get("traceback", []))[-1500:]
                out.append(f"cell {i}: {o.get('ename')}: {o.get('evalue')}\n{tb}")
    return out


def unexecuted(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb.get("cells", []))
            if c.get("cell_type") == "code" and "".join(c.get("source", [])).strip()
            and c.get("execution_count") is None]


# JS: bokeh plots on the page, and whether each drew into a canvas. Bokeh 3 renders inside
# shadow roots, so walk them.
_PLOTS = """() => {
    const all = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
            all.push(el);
            if (el.shadowRoot) walk(el.shadowRoot);
        }
    };
    walk(document);
    const plots = all.filter(el => el.classList && (el.classList.contains('bk-Figure') ||
                                                    el.classList.contains('bk-Plot')));
    const top = plots.filter(p => !plots.some(q => q !== p && q.shadowRoot && q.shadowRoot.contains(p)));
    const hasCanvas = (el) => {
        const stack = [el];
        while (stack.length) {
            const n = stack.pop();
            if (n.tagName === 'CANVAS' && n.width > 0 && n.height > 0) return true;
            if (n.shadowRoot) stack.push(...n.shadowRoot.children);
            stack.push(...(n.children || []));
        }
        return false;
    };
    return {plots: top.length, drawn: top.filter(hasCanvas).length};
}"""


class BrowserRun:
    """One JupyterLab + one Chromium for a test module; ``run(path)`` runs one notebook."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.root = workdir / "notebooks"
        self.root.mkdir(parents=True)
        self._server = None
        self._pw = None
        self.browser = None

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        self._server = lab.lab_server(self.root, self.workdir, env_extra={"WORKBENCH_HEADLESS": "1"},
                                      drop_env=("PYTEST_CURRENT_TEST",))
        self.base, self.token = self._server.__enter__()
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=str(lab.CHROMIUM), headless=True,
                                                args=lab.FLAGS)
        return self

    def __exit__(self, *exc):
        try:
            if self.browser is not None:
                self.browser.close()
            if self._pw is not None:
                self._pw.stop()
        finally:
            self._server.__exit__(*exc)

    def run(self, path: Path) -> dict:
        shutil.copy(path, self.root / path.name)
        page = self.browser.new_page(viewport={"width": 1400, "height": 1100})
        errors_js: list[str] = []
        page.on("pageerror", lambda e: errors_js.append(str(e)[:300]))
        page.set_default_timeout(lab.STEP * 1000)
        start = time.monotonic()
        shot = SCREENSHOTS / (path.stem + ".png")
        try:
            lab.open_notebook(page, self.base, self.token, path.name)
            lab.run_all_cells(page)
            lab.wait_until_ran(page, TIMEOUT_S)
            seconds = time.monotonic() - start
            page.wait_for_timeout(1000)  # let the last plots lay out
            plots = page.evaluate(_PLOTS)
            nb = lab.saved_notebook(page, self.base, self.token, path.name)
            lab.full_screenshot(page, shot)
            return {"seconds": seconds, "plots": plots, "nb": nb, "screenshot": shot,
                    "js_errors": errors_js}
        except BaseException:
            failed = SCREENSHOTS / (path.stem + "-failure.png")
            failed.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(failed))
            print("failure screenshot:", failed, file=sys.stderr)
            raise
        finally:
            lab.shut_down_kernels(self.base, self.token)
            page.close()


def nbmake_run(path: Path) -> dict:
    """No browser here: run the notebook with nbmake's runner (the same kernel, no page)."""
    import nbformat
    from nbmake.nb_run import NotebookRun

    start = time.monotonic()
    result = NotebookRun(path, TIMEOUT_S).execute()
    nb = json.loads(nbformat.writes(result.nb))
    return {"seconds": time.monotonic() - start, "plots": None, "nb": nb, "screenshot": None,
            "js_errors": []}


def check_run(path: Path, report: dict) -> None:
    nb = report["nb"]
    errors = error_outputs(nb)
    assert not errors, f"{path.name} failed:\n" + "\n\n".join(errors)
    missing = unexecuted(nb)
    if missing:
        dump = SCREENSHOTS / (path.stem + "-saved.ipynb")
        dump.write_text(json.dumps(nb, indent=1))
    assert not missing, f"{path.name}: cells {missing} did not run (saved as {dump if missing else ''})"
    plots = report["plots"]
    if plots is not None:
        assert plots["drawn"] == plots["plots"], (
            f"{path.name}: {plots['plots'] - plots['drawn']} of {plots['plots']} bokeh plots drew no canvas")
        shot = report["screenshot"]
        assert shot.exists() and shot.stat().st_size > 10_000
    line = json.dumps({"notebook": path.name, "seconds": round(report["seconds"], 1),
                       "runner": "browser" if plots is not None else "nbmake",
                       "plots": plots, "screenshot": str(report["screenshot"]),
                       "js_errors": report["js_errors"][:3]})
    print(line)
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    with open(TIMES, "a") as f:   # one line per run: the README's runtime table reads these
        f.write(line + "\n")


def make_fixture():
    @pytest.fixture(scope="module")
    def notebook_runner(tmp_path_factory):
        why = lab.browser_unavailable()
        if why:
            print(f"browser unavailable ({why}): running the notebooks with nbmake's runner",
                  file=sys.stderr)
            yield nbmake_run
            return
        with BrowserRun(tmp_path_factory.mktemp("lab")) as runner:
            yield runner.run
    return notebook_runner
