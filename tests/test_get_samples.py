"""``python -m workbench data get-samples``: downloads checked for size, time, checksum and
format, written atomically, bad ones quarantined. No internet here: the files are served
by a local HTTP server on 127.0.0.1 (the real URL table is swapped for it)."""
from __future__ import annotations

import hashlib
import http.server
import json
import io
import socket
import threading
import time
import zipfile

import pytest

from workbench import cli
from workbench.data import get_samples as gs
from workbench.data.lobster import read_messages
from workbench.data.lobster_sample import write_deep_sample

STEM = "XYZ_2012-06-21_34200000_57600000"


class Server:
    """127.0.0.1 HTTP server: ``routes[path] = (status, body, headers)``; ``"hang"`` as
    the body answers nothing (the client must time out)."""

    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                status, body, headers = routes.get(self.path, (404, b"not found", {}))
                if body == "hang":
                    self.server.release.wait(10)
                    return
                self.send_response(status)
                for k, v in headers.items():
                    if not k.startswith("_"):
                        self.send_header(k, v)
                if "Content-Length" not in headers and not headers.get("_stream"):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.release = threading.Event()
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lobster_files(tmp_path_factory):
    """A valid LOBSTER pair, written by the project's deep-sample writer."""
    d = tmp_path_factory.mktemp("lobster")
    msg, ob = write_deep_sample(d, n_levels=2, n_messages=200, seed=3)
    names = (f"{STEM}_message_2.csv", f"{STEM}_orderbook_2.csv")
    return {names[0]: msg.read_bytes(), names[1]: ob.read_bytes()}


KLINES = "".join(f"{1723075200000 + 60_000 * i},60000.0,60010.5,59990.0,60005.1,12.5,"
                 f"{1723075259999 + 60_000 * i},750000.0,321,6.1,366000.0,0\n" for i in range(30)).encode()


def _lobster_sample(server, files, pin=True, max_bytes=1 << 20, urls=None) -> gs.Sample:
    return gs.Sample("lobster-xyz-2", "test LOBSTER pair", "lobster",
                     urls or (f"{server.base}/lobster/XYZ_2.zip",), tuple(files), max_bytes, "lobster",
                     sha256={k: hashlib.sha256(v).hexdigest() for k, v in files.items()} if pin else {})


def _klines_sample(server, max_bytes=1 << 20) -> gs.Sample:
    url = f"{server.base}/binance/BTCUSDT-1m-2024-08-08.zip"
    return gs.Sample("binance-btcusdt-klines-1m", "test klines", "binance", (url,),
                     ("BTCUSDT-1m-2024-08-08.csv",), max_bytes, "binance", checksum_url=url + ".CHECKSUM",
                     columns=12, time_column=0, flag_columns=())


def _publish_klines(server, csv: bytes = KLINES, checksum_of: bytes | None = None):
    body = _zip({"BTCUSDT-1m-2024-08-08.csv": csv})
    digest = hashlib.sha256(checksum_of if checksum_of is not None else body).hexdigest()
    server.routes["/binance/BTCUSDT-1m-2024-08-08.zip"] = (200, body, {})
    server.routes["/binance/BTCUSDT-1m-2024-08-08.zip.CHECKSUM"] = (
        200, f"{digest}  BTCUSDT-1m-2024-08-08.zip\n".encode(), {})
    return body


def test_downloads_check_and_land_atomically_then_stay_put(server, lobster_files, tmp_path):
    server.routes["/lobster/XYZ_2.zip"] = (200, _zip(lobster_files), {})
    _publish_klines(server)
    catalog = {s.name: s for s in (_lobster_sample(server, lobster_files), _klines_sample(server))}
    results = gs.get_samples(list(catalog), tmp_path, catalog=catalog)
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    for name, data in lobster_files.items():          # byte for byte what was served
        assert (tmp_path / "lobster" / name).read_bytes() == data
    assert (tmp_path / "binance" / "BTCUSDT-1m-2024-08-08.csv").read_bytes() == KLINES
    # the kept messages are what the project's reader makes of the original
    assert read_messages(tmp_path / "lobster" / f"{STEM}_message_2.csv").height == 200
    assert results[0].notes == ["200 messages, 2 level(s)"] and results[1].notes == ["30 rows"]
    assert not (tmp_path / ".partial").exists() and not (tmp_path / "quarantine").exists()
    # present and valid: nothing is fetched again (the server is not even asked)
    asked = len(server.hits)
    again = gs.get_samples(list(catalog), tmp_path, catalog=catalog)
    assert [r.status for r in again] == ["present", "present"] and len(server.hits) == asked


def test_falls_back_to_the_next_source(server, lobster_files, tmp_path):
    server.routes["/good/XYZ_2.zip"] = (200, _zip(lobster_files), {})
    server.routes["/html/XYZ_2.zip"] = (200, b"<!DOCTYPE html><html>LOBSTER front end</html>", {})
    sample = _lobster_sample(server, lobster_files, urls=(
        f"{server.base}/missing/XYZ_2.zip", f"{server.base}/html/XYZ_2.zip", f"{server.base}/good/XYZ_2.zip"))
    (result,) = gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    assert result.url.endswith("/good/XYZ_2.zip")
    # the web page served in place of the zip was kept aside, with the reason
    (why,) = (tmp_path / "quarantine").glob("*.reason.json")
    reason = json.loads(why.read_text())
    assert "web page, not the zip" in reason["reason"] and reason["source"].endswith("/html/XYZ_2.zip")
    assert (tmp_path / "quarantine" / why.name[:-len(".reason.json")]).read_bytes().startswith(b"<!DOCTYPE")


@pytest.mark.parametrize("damage, expect", [
    ("checksum", "SHA-256 differs from the published"),         # Binance's .CHECKSUM disagrees
    ("columns", "11 columns, a Binance"),                       # right checksum, wrong format
    ("times", "times go back"),
    ("truncated_zip", "not a readable zip"),
])
def test_a_corrupt_binance_download_is_quarantined(server, tmp_path, damage, expect):
    csv, checksum_of = KLINES, None
    if damage == "checksum":
        checksum_of = b"something else"
    elif damage == "columns":
        csv = b"".join(line.rsplit(b",", 1)[0] + b"\n" for line in KLINES.splitlines())
    elif damage == "times":
        lines = KLINES.splitlines()
        csv = b"\n".join(lines[:5] + [lines[9]] + lines[5:9] + lines[10:]) + b"\n"
    body = _publish_klines(server, csv, checksum_of)
    if damage == "truncated_zip":
        cut = body[: len(body) // 2]
        _publish_klines(server, csv, checksum_of=cut)
        server.routes["/binance/BTCUSDT-1m-2024-08-08.zip"] = (200, cut, {})
    sample = _klines_sample(server)
    with pytest.raises(gs.DownloadError, match=expect):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    assert not (tmp_path / "binance").exists() or not any((tmp_path / "binance").iterdir())
    kept = [p for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".reason.json")]
    assert len(kept) == 1 and kept[0].read_bytes() == server.routes[
        "/binance/BTCUSDT-1m-2024-08-08.zip"][1]


def test_lobster_pinned_digest_and_row_alignment(server, lobster_files, tmp_path):
    msg, ob = list(lobster_files)
    # one price changed: still a valid LOBSTER file, but not the published one
    changed = dict(lobster_files)
    first = lobster_files[msg].split(b"\n", 1)
    fields = first[0].split(b",")
    fields[4] = str(int(fields[4]) + 100).encode()
    changed[msg] = b",".join(fields) + b"\n" + first[1]
    server.routes["/lobster/XYZ_2.zip"] = (200, _zip(changed), {})
    sample = _lobster_sample(server, lobster_files)
    with pytest.raises(gs.DownloadError, match="has SHA-256 .* the published sample's is"):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    # unpinned, the format checks still catch an orderbook that lost a row
    short = dict(lobster_files)
    short[ob] = lobster_files[ob].rsplit(b"\n", 2)[0] + b"\n"
    server.routes["/lobster/XYZ_2.zip"] = (200, _zip(short), {})
    sample = _lobster_sample(server, lobster_files, pin=False)
    with pytest.raises(gs.DownloadError, match="199 rows for 200 messages"):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    assert len(list((tmp_path / "quarantine").glob("*-XYZ_2.zip"))) == 2
    assert not (tmp_path / "lobster").exists() or not any((tmp_path / "lobster").iterdir())


def test_size_limit_declared_and_streamed(server, lobster_files, tmp_path):
    body = _zip(lobster_files)
    server.routes["/lobster/XYZ_2.zip"] = (200, body, {})
    sample = _lobster_sample(server, lobster_files, max_bytes=len(body) - 1)
    with pytest.raises(gs.DownloadError, match="bytes declared, over the"):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    # no Content-Length: the count of bytes as they arrive stops it
    server.routes["/lobster/XYZ_2.zip"] = (200, body, {"_stream": "1", "Connection": "close"})
    with pytest.raises(gs.DownloadError, match="limit for this sample arrived; stopped"):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample})
    assert not list(tmp_path.rglob("*.csv"))


def test_a_silent_server_times_out_clearly(server, lobster_files, tmp_path):
    server.routes["/lobster/XYZ_2.zip"] = (200, "hang", {})
    sample = _lobster_sample(server, lobster_files)
    started = time.monotonic()
    with pytest.raises(gs.DownloadError, match="timed out"):
        gs.get_samples([sample.name], tmp_path, catalog={sample.name: sample}, timeout=0.3)
    assert time.monotonic() - started < 5


def test_no_internet_is_one_clear_line(monkeypatch, tmp_path, capsys):
    with socket.socket() as s:              # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = gs.Sample("lobster-dead-1", "unreachable", "lobster", (f"http://127.0.0.1:{port}/x.zip",),
                     (f"{STEM}_message_1.csv", f"{STEM}_orderbook_1.csv"), 1 << 20, "lobster")
    monkeypatch.setattr(gs, "SAMPLES", {dead.name: dead})
    code = cli.main(["data", "get-samples", dead.name, "--dir", str(tmp_path), "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: no internet connection: could not reach 127.0.0.1:")
    assert "nothing was downloaded" in err
    assert cli.main(["data", "get-samples", "nope", "--dir", str(tmp_path)]) == 2
    assert "unknown sample(s) nope" in capsys.readouterr().err


def test_the_real_table_names_public_https_sources():
    assert set(gs.DEFAULT_SAMPLES) <= set(gs.SAMPLES)
    for sample in gs.SAMPLES.values():
        assert all(u.startswith("https://") for u in sample.urls)
        assert sample.kind in ("lobster", "binance") and sample.max_bytes > 0
        if sample.kind == "binance":
            assert sample.checksum_url == sample.urls[0] + ".CHECKSUM"
            assert sample.members[0] == sample.urls[0].rsplit("/", 1)[-1].replace(".zip", ".csv")
        else:
            level = sample.name.rsplit("-", 1)[-1]
            assert [m.rsplit("_", 1)[-1] for m in sample.members] == [f"{level}.csv"] * 2


def test_a_kept_file_damaged_later_is_quarantined_and_fetched_again(server, lobster_files, tmp_path):
    server.routes["/lobster/XYZ_2.zip"] = (200, _zip(lobster_files), {})
    sample = _lobster_sample(server, lobster_files)
    catalog = {sample.name: sample}
    gs.get_samples([sample.name], tmp_path, catalog=catalog)
    kept = tmp_path / "lobster" / f"{STEM}_orderbook_2.csv"
    kept.write_bytes(kept.read_bytes()[:-10])                  # damaged on disk
    (result,) = gs.get_samples([sample.name], tmp_path, catalog=catalog)
    assert result.status == "downloaded" and kept.read_bytes() == lobster_files[kept.name]
    (old,) = [p for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".reason.json")]
    assert old.name.endswith(kept.name) and old.read_bytes() == lobster_files[kept.name][:-10]
