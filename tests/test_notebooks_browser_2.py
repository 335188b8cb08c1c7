"""The other half of the notebooks in JupyterLab + Chromium (see tests/notebook_runs.py)."""
import pytest

from tests.notebook_runs import check_run, group, make_fixture

notebook_runner = make_fixture()


@pytest.mark.parametrize("path", group(1), ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab(notebook_runner, path):
    check_run(path, notebook_runner(path))
