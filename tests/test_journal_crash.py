"""Crash tests: journaled engines SIGKILLed at random moments, and a disk that fills up.

Each kill point is a separate worker process (forked from a warm fork server) feeding
a deterministic command stream with ``durability="every"`` and printing every
acknowledgement; after the kill, ``Engine.recover`` must give exactly the state of a
fresh engine fed the acknowledged prefix, or that prefix plus the one command in
flight, byte for byte (``workbench.journal.crashcheck``). ``bench journal`` runs the
same check with 200+ kill points.
"""
from __future__ import annotations

import sys

import pytest

from workbench.journal.crashcheck import run_crash_check, run_disk_full_check

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="SIGKILL/fork/RLIMIT_FSIZE crash harness is Linux-only")


def test_sigkill_at_20_random_moments_loses_no_acknowledged_command(tmp_path):
    report = run_crash_check(points=20, seed=14, n_commands=120, durability="every",
                             workdir=tmp_path, servers=2)
    assert len(report.points) == 20
    assert all(p.killed for p in report.points)
    assert report.failures == [], [p.result for p in report.failures]
    outcomes = {p.result for p in report.points}
    assert outcomes <= {"prefix", "prefix+1"}
    # the kills land at many different places in the stream
    assert len({p.acked for p in report.points}) >= 10


def test_disk_full_is_a_clear_error_and_acknowledged_data_survives(tmp_path):
    point = run_disk_full_check(limit_bytes=6_000, seed=3, n_commands=150, workdir=tmp_path)
    assert point.error is not None and point.error.startswith("E: journal")
    assert "File too large" in point.error and "refuses further commands" in point.error
    assert 0 < point.acked < 150          # it stopped partway, after acknowledging some
    assert point.ok, point.result        # recovery == exactly what was acknowledged (+1)
