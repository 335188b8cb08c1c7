"""``lobster-check`` at full depth (10, 30 and 50 levels) on files written by an
independent model.

The files are LOBSTER-format message and orderbook CSVs produced by the plain-Python
reference book (``workbench.data.lobster_sample.write_deep_sample``, over
``workbench.reference.ReferenceBook``) from a flow that starts from a deep book the
files never show whole: orders rested before the first message, at
prices from $0.01 to $199,999.99. Every level of every row must match, except rows
where a level enters the visible depth from beyond it (``unseen_depth``), which the
check must count apart; nothing may be "unrepresentable".
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.data import lobster
from workbench.data.lobster_sample import FAR_PRICES, write_deep_sample
from workbench.lobster_check import lobster_check

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n_levels", [10, 30, 50])
def test_every_level_matches_except_unseen_depth(tmp_path, n_levels):
    msg, book = write_deep_sample(tmp_path, n_levels)
    result = lobster_check(msg, book)
    assert result.levels == n_levels and result.rows == 1500
    assert result.unrepresented_levels == 0
    assert result.mismatched == 0, result.first_mismatches
    assert result.matched + result.unseen_depth == result.rows
    assert result.unseen_depth > 0  # the flow does surface deep levels the file never showed


def test_a_real_gap_is_not_called_unseen_depth(tmp_path):
    """Drop one cancel of a visible order from the messages: the rows that follow differ
    inside the depth the file has shown, so they count as mismatched, not unseen."""
    msg, book = write_deep_sample(tmp_path, 10)
    lines = msg.read_text().splitlines(keepends=True)
    book_lines = book.read_text().splitlines(keepends=True)
    drop = next(i for i, ln in enumerate(lines) if i > 200 and ln.split(",")[1] == "3")
    # keep the files row-aligned: the message vanishes, its row is the previous one
    lines[drop] = lines[drop].split(",")[0] + ",1,999999,100,100,1\n"  # a far, harmless add
    book_lines[drop] = book_lines[drop - 1]
    msg.write_text("".join(lines))
    book.write_text("".join(book_lines))
    result = lobster_check(msg, book)
    assert result.mismatched >= 1


def test_cli_reports_unseen_depth(tmp_path):
    msg, book = write_deep_sample(tmp_path, 10, n_messages=400)
    out = subprocess.run([sys.executable, "-m", "workbench", "lobster-check", str(msg), str(book),
                          "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["levels"] == 10 and data["mismatched"] == 0
    assert data["matched"] + data["unseen_depth"] == data["rows"] == 400


def test_deep_sample_is_seeded_row_aligned_and_hides_the_far_book(tmp_path):
    """The generator writes the same files for the same seed, one orderbook row per
    message at the depth asked for, and never shows the far prices it rested before the
    file (they are what the file cannot see); bad arguments are ValueErrors."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    msg_a, book_a = write_deep_sample(tmp_path / "a", 30, n_messages=200, seed=3)
    msg_b, book_b = write_deep_sample(tmp_path / "b", 30, n_messages=200, seed=3)
    assert msg_a.read_bytes() == msg_b.read_bytes() and book_a.read_bytes() == book_b.read_bytes()
    assert lobster.parse_filename(msg_a).ticker == "XYZ"
    messages = lobster.read_messages(msg_a)
    rows = lobster.orderbook_array(lobster.read_orderbook(book_a))
    assert messages.height == rows.shape[0] == 200 and rows.shape[1] == 4 * 30
    shown = set(rows[:, 0::2].ravel().tolist())  # every price column (ask and bid)
    assert not shown & {price for _, price in FAR_PRICES}
    for bad in ({"n_levels": 0}, {"n_messages": -1}, {"seed": 1.5}, {"ticker": "A/B"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            write_deep_sample(tmp_path, **bad)
    with pytest.raises(ValueError, match="directory"):
        write_deep_sample(tmp_path / "missing")
