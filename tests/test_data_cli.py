"""``python -m workbench data ...`` and the committed samples in data/."""
from __future__ import annotations

import json

import numpy as np
import polars as pl

from kernels import records as R
from tests.conftest import REPO, shared_path
from workbench.cli import main
from workbench.data.samples import load_sample
from workbench.data.bars import BAR_SCHEMA


def test_make_samples_reproduces_the_committed_files(tmp_path, capsys):
    assert main(["data", "make-samples", "--out", str(tmp_path)]) == 0
    assert "wrote 4 files" in capsys.readouterr().out
    for path in sorted(tmp_path.glob("*.parquet")):
        committed = REPO / "data" / path.name
        assert committed.is_file(), f"{path.name} is generated but not in data/"
        assert pl.read_parquet(path).equals(pl.read_parquet(committed)), path.name
    total = sum(p.stat().st_size for p in (REPO / "data").glob("*.parquet"))
    assert total < 4 * 1024 * 1024
    assert (REPO / "data" / "README.md").read_text().count(".parquet") >= 4


def test_samples_have_the_record_schemas():
    events = load_sample("sim_events.parquet")
    assert events.columns == list(R.EVENT.names)
    assert load_sample("sim_trades.parquet").columns == list(R.FILL.names)
    daily = load_sample("synthetic_daily.parquet")
    assert daily.schema == pl.Schema(BAR_SCHEMA) and daily["symbol"].n_unique() == 3


def test_fetch_offline_names_what_is_missing_and_info_lists_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_FALLBACK", raising=False)
    cache = tmp_path / "cache"
    code = main(["data", "fetch", "MSFT", "--start", "2020-01-01", "--end", "2020-02-01",
                 "--offline", "--cache-dir", str(cache)])
    out = capsys.readouterr().out
    assert code == 1 and "MSFT 1d 2020-01-01..2021-01-01" in out
    assert main(["data", "info", "--cache-dir", str(cache)]) == 0
    assert "nothing cached" in capsys.readouterr().out
    # fill the cache from recorded responses, then info shows it
    from workbench.data.yahoo import load_bars, recorded_session

    load_bars("AMZN", "2020-01-01", "2020-01-04", cache_dir=cache,
              session=recorded_session(shared_path("yahoo_chart")))
    assert main(["data", "info", "--cache-dir", str(cache), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(f["symbol"], f["interval"], f["rows"]) for f in info["files"]] == [("AMZN", "1d", 1)]
    assert main(["data", "fetch", "AMZN", "--start", "2020-01-01", "--end", "2020-01-04",
                 "--offline", "--cache-dir", str(cache)]) == 0
    assert "AMZN" in capsys.readouterr().out


def test_sample_events_are_the_seeded_simulation():
    from workbench.data.samples import load_sample_events, sample_market

    events = load_sample_events()
    assert events.dtype == R.EVENT
    assert np.array_equal(events, sample_market().events)
