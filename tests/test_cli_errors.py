"""Bad input on the command line: one line on stderr naming the file (or option) and the
problem, a non-zero exit code, and never a traceback.

Every case runs ``python -m workbench ...`` in a subprocess, as a user would. The files
are written here (small, made up), so nothing needs ``../shared`` or the network.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from workbench.cli import input_error_message, main
from workbench.errors import InputError

MESSAGES = ("34200.1,1,1,10,1000000,1\n"
            "34200.2,1,2,10,1000100,-1\n"
            "34200.3,3,1,10,1000000,1\n")
ORDERBOOK = ("9999999999,0,1000000,10\n"
             "1000100,10,1000000,10\n"
             "1000100,10,-9999999999,0\n")
SNAPSHOT = {"lastUpdateId": 100, "bids": [["61000.00", "1.5"]], "asks": [["61000.10", "2.0"]]}


def _capture_lines(n: int) -> str:
    lines = [f"1000 {json.dumps(SNAPSHOT)}"]
    for i in range(n):
        diff = {"stream": "btcusdt@depth@100ms",
                "data": {"e": "depthUpdate", "E": 1, "U": 101 + i, "u": 101 + i,
                         "b": [[f"{61000 - i % 50}.00", f"{1 + i % 7}.25"]], "a": []}}
        lines.append(f"{2000 + i} {json.dumps(diff)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every bad file, by name, beside a good partner for the two-file commands."""
    d = tmp_path_factory.mktemp("bad-input")
    out = {}

    def put(name, data):
        path = d / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        out[name] = path

    put("X_2012-06-21_message_1.csv", MESSAGES)
    put("X_2012-06-21_orderbook_1.csv", ORDERBOOK)
    put("empty_message_1.csv", b"")
    put("truncated_message_1.csv", MESSAGES[:-12])             # cut inside the last row
    put("nonnumeric_message_1.csv", MESSAGES.replace(",2,10,", ",two,10,"))
    put("shape_message_1.csv", "".join(",".join(r.split(",")[:4]) + "\n"
                                       for r in MESSAGES.splitlines()))
    put("short_message_1.csv", MESSAGES.splitlines(keepends=True)[0] * 2)  # 2 rows vs 3
    put("empty_orderbook_1.csv", b"")
    put("truncated_orderbook_1.csv", ORDERBOOK[:-8])
    put("nonnumeric_orderbook_1.csv", ORDERBOOK.replace("1000100,10,1000000", "1000100,ten,1000000"))
    put("shape_orderbook_1.csv", "".join(r + ",0\n" for r in ORDERBOOK.splitlines()))
    put("notgzip.gz", "this is a text file, not a gzip capture\nnor a capture at all\n")
    put("empty.gz", b"")
    put("emptystream.gz", gzip.compress(b""))
    whole = gzip.compress(_capture_lines(3000).encode())
    put("truncated.gz", whole[: len(whole) // 2])
    put("corrupt.gz", b"\x1f\x8b" + bytes(range(256)) * 4)
    put("nonnumeric.txt", "".join(f"t{i} {json.dumps(SNAPSHOT)}\n" for i in range(3)))
    put("empty.fix", b"")
    put("nofix.fix", "no FIX message on this line\n")
    return out


def run_cli(*args, tmp_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKBENCH_OFFLINE="1", **(tmp_env or {}))
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=300)


def assert_one_line_error(proc, *words):
    """A non-zero exit, exactly one stderr line holding every word, no traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


M, O = "X_2012-06-21_message_1.csv", "X_2012-06-21_orderbook_1.csv"

# (command with {file} placeholders, the file the message must name, words of the problem)
CASES = {
    # lobster-check: messages file
    "lobster empty messages": (["lobster-check", "{empty_message_1.csv}", f"{{{O}}}"],
                               "empty_message_1.csv", ["empty file"]),
    "lobster truncated messages": (["lobster-check", "{truncated_message_1.csv}", f"{{{O}}}"],
                                   "truncated_message_1.csv", ["line 3", "truncated"]),
    "lobster non-numeric messages": (["lobster-check", "{nonnumeric_message_1.csv}", f"{{{O}}}"],
                                     "nonnumeric_message_1.csv", ["line 2", "order_id 'two'",
                                                                  "not an integer"]),
    "lobster wrong column count messages": (["lobster-check", "{shape_message_1.csv}", f"{{{O}}}"],
                                            "shape_message_1.csv", ["line 1 has 4 fields", "6"]),
    "lobster missing messages": (["lobster-check", "{missing}/nope_message_1.csv", f"{{{O}}}"],
                                 "nope_message_1.csv", ["not found"]),
    "lobster rows not aligned": (["lobster-check", "{short_message_1.csv}", f"{{{O}}}"],
                                 "short_message_1.csv", ["row-aligned"]),
    # lobster-check: orderbook file
    "lobster empty orderbook": (["lobster-check", f"{{{M}}}", "{empty_orderbook_1.csv}"],
                                "empty_orderbook_1.csv", ["empty file"]),
    "lobster truncated orderbook": (["lobster-check", f"{{{M}}}", "{truncated_orderbook_1.csv}"],
                                    "truncated_orderbook_1.csv", ["line 3", "truncated"]),
    "lobster non-numeric orderbook": (["lobster-check", f"{{{M}}}", "{nonnumeric_orderbook_1.csv}"],
                                      "nonnumeric_orderbook_1.csv", ["line 2", "'ten'", "not an integer"]),
    "lobster wrong column count orderbook": (["lobster-check", f"{{{M}}}", "{shape_orderbook_1.csv}"],
                                             "shape_orderbook_1.csv", ["5 columns", "4 per level"]),
    # lobster-check: options out of range
    "lobster --levels 0": (["lobster-check", f"{{{M}}}", f"{{{O}}}", "--levels", "0"],
                           O, ["levels=0", "out of range", "1 level"]),
    "lobster --levels above the file": (["lobster-check", f"{{{M}}}", f"{{{O}}}", "--levels", "3"],
                                        O, ["levels=3", "out of range"]),
    "lobster --levels not a number": (["lobster-check", f"{{{M}}}", f"{{{O}}}", "--levels", "two"],
                                      "--levels", ["invalid int value", "'two'"]),
    # data binance-check
    "binance non-gzip capture": (["data", "binance-check", "{notgzip.gz}"], "notgzip.gz",
                                 ["not gzip-compressed", "not a Binance capture"]),
    "binance empty capture": (["data", "binance-check", "{empty.gz}"], "empty.gz", ["empty file"]),
    "binance empty gzip stream": (["data", "binance-check", "{emptystream.gz}"], "emptystream.gz",
                                  ["empty capture"]),
    "binance truncated capture": (["data", "binance-check", "{truncated.gz}"], "truncated.gz",
                                  ["truncated or corrupt gzip", "after line"]),
    "binance corrupt gzip": (["data", "binance-check", "{corrupt.gz}"], "corrupt.gz",
                             ["truncated or corrupt gzip"]),
    "binance non-numeric timestamps": (["data", "binance-check", "{nonnumeric.txt}"], "nonnumeric.txt",
                                       ["not a Binance capture", "line 1", "'t0'"]),
    "binance missing capture": (["data", "binance-check", "{missing}/nope.gz"], "nope.gz", ["not found"]),
    # backtest on bad files
    "backtest empty lobster": (["backtest", "--data", "lobster", "{empty_message_1.csv}"],
                               "empty_message_1.csv", ["empty file"]),
    "backtest truncated lobster": (["backtest", "--data", "lobster", "{truncated_message_1.csv}"],
                                   "truncated_message_1.csv", ["truncated"]),
    "backtest non-numeric lobster": (["backtest", "--data", "lobster", "{nonnumeric_message_1.csv}"],
                                     "nonnumeric_message_1.csv", ["not an integer"]),
    "backtest wrong column count lobster": (["backtest", "--data", "lobster", "{shape_message_1.csv}"],
                                            "shape_message_1.csv", ["4 fields"]),
    "backtest non-gzip capture": (["backtest", "--data", "binance", "{notgzip.gz}"], "notgzip.gz",
                                  ["not gzip-compressed"]),
    "backtest empty capture": (["backtest", "--data", "binance", "{empty.gz}"], "empty.gz", ["empty file"]),
    "backtest truncated capture": (["backtest", "--data", "binance", "{truncated.gz}"], "truncated.gz",
                                   ["truncated or corrupt gzip"]),
    "backtest missing file": (["backtest", "--data", "{missing}/nope_message_1.csv"], "nope_message_1.csv",
                              ["neither 'synthetic' nor an existing file"]),
    # backtest options out of range
    "backtest negative latency": (["backtest", "--latency-us", "-1", "100", "50"], "feed_us", [">= 0"]),
    "backtest bad --param": (["backtest", "--param", "half_spread_ticks"], "--param", ["name=value"]),
    "backtest non-numeric --param": (["backtest", "--param", "qty=lots"], "--param", ["not a number"]),
    "backtest unknown strategy": (["backtest", "--strategy", "nope"], "strategy='nope'", ["not one of"]),
    "backtest unknown queue model": (["backtest", "--queue-model", "nope"], "'nope'", ["not one of"]),
    "backtest --latency-us not a number": (["backtest", "--latency-us", "a", "b", "c"], "--latency-us",
                                           ["invalid float value"]),
    # the other commands
    "demo empty lobster": (["demo", "--data", "lobster", "{empty_message_1.csv}", "--skip-engine"],
                           "empty_message_1.csv", ["empty file"]),
    "demo --orders 0": (["demo", "--orders", "0"], "--orders=0", ["at least 1"]),
    "demo --jobs 0": (["demo", "--jobs", "0"], "--jobs=0", ["at least 1"]),
    "warmup --jobs 0": (["warmup", "--jobs", "0"], "--jobs=0", ["at least 1"]),
    "fix-check empty file": (["fix-check", "{empty.fix}"], "empty.fix", ["empty file"]),
    "fix-check no FIX message": (["fix-check", "{nofix.fix}"], "nofix.fix", ["no FIX message"]),
    "fix-check missing file": (["fix-check", "{missing}/nope.fix"], "nope.fix", ["does not exist"]),
    "data fetch bad date": (["data", "fetch", "AAPL", "--start", "someday", "--end", "2020-01-02",
                             "--cache-dir", "{missing}/cache"], "start='someday'", ["not a date"]),
    "data fetch bad interval": (["data", "fetch", "AAPL", "--start", "2020-01-01", "--end", "2020-01-02",
                                 "--interval", "2m", "--cache-dir", "{missing}/cache"], "interval='2m'",
                                ["must be one of"]),
    "bench unknown suite": (["bench", "nope"], "'nope'", ["unknown bench suite"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_file_and_the_problem(case, files, tmp_path):
    argv, names, words = CASES[case]
    def fill(text):  # "{name}" -> that file's full path; "{missing}" -> a directory with nothing in it
        text = text.replace("{missing}", str(tmp_path))
        return str(files[text[1:-1]]) if text[:1] == "{" and text[1:-1] in files else text

    proc = run_cli(*map(fill, argv))
    named = str(files[names]) if names in files else fill(names)
    if names.endswith((".csv", ".gz", ".fix", ".txt")) and names not in files:
        named = str(tmp_path / names)  # a missing file: its full path
    line = assert_one_line_error(proc, named, *words)
    assert proc.returncode == 2, line


def test_a_good_pair_of_files_still_checks(files):
    proc = run_cli("lobster-check", files[M], files[O], "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rows"] == 3


def test_the_central_rule_tells_input_errors_from_bugs(monkeypatch):
    from workbench.commands import bench
    from workbench.data.binance import _units
    from workbench.data.convert import as_date

    assert input_error_message(InputError("a.csv: line 2\n is blank")) == "a.csv: line 2 is blank"
    assert input_error_message(FileNotFoundError(2, "No such file or directory", "x.csv")) == \
        "x.csv: No such file or directory"
    with pytest.raises(ValueError) as validation:
        as_date("someday", "start")  # the library's own `raise ValueError(...)`
    assert "start='someday'" in input_error_message(validation.value)
    with pytest.raises(ValueError) as numpy_bug:
        np.zeros(3).reshape(2)
    assert input_error_message(numpy_bug.value) is None
    with pytest.raises(ValueError) as workbench_bug:  # int() failing in workbench code: no `raise`
        _units("1.2.3", 4)
    assert input_error_message(workbench_bug.value) is None

    # a bug inside a command is not turned into a one-liner: its traceback surfaces
    def broken(args):
        return int(np.zeros(3).reshape(2)[0])

    monkeypatch.setattr(bench, "_run", broken)
    with pytest.raises(ValueError, match="reshape"):
        main(["bench", "book"])
