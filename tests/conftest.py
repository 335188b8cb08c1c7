"""Shared test fixtures: where ``../shared`` is, and skipping when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# ``make test`` runs two pytest-xdist workers: each tags its shared-memory segments (and its
# children's, through the environment) so one worker's "nothing left behind" checks never
# see the other's live rings. Set before anything imports ``workbench.queues``.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["WORKBENCH_SHM_TAG"] = os.environ["PYTEST_XDIST_WORKER"] + "_"

# Headless run: the notebooks nbmake executes inherit this, so a failing exercise check
# raises (their solutions are in place, so it must pass) and live dashboards stop on their
# own. A person in JupyterLab never has it set (``workbench.teaching.checker.headless``).
os.environ.setdefault("WORKBENCH_HEADLESS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def shared_path(*parts: str) -> Path:
    """Path under ``../shared/data``; skips the calling test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} beside the checkout (absent here)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data beside the checkout (absent here)")
    return SHARED_DATA
