"""A throwaway ``redis-server`` on a free loopback port, for tests, notebooks and benchmarks.

``with RedisServer() as server: ... server.url ...`` starts the binary found by
:func:`find_redis_server` (``$WORKBENCH_REDIS_SERVER``, ``redis-server`` on the PATH or
in ``/usr/bin``/``/usr/sbin``, the ``redis-server`` PyPI wheel's bundled binary) with no
persistence, bound to 127.0.0.1, and stops it on exit. :func:`start_redis_server` returns
``(server, None)`` or ``(None, reason)`` for callers that carry on without Redis.
``make test`` installs the binary when it can (Debian's ``redis-server`` package, as root).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["ENV_REDIS_SERVER", "find_redis_server", "RedisServer", "start_redis_server"]

ENV_REDIS_SERVER = "WORKBENCH_REDIS_SERVER"


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary, or None."""
    named = os.environ.get(ENV_REDIS_SERVER, "").strip()
    candidates = [named] if named else []
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append(on_path)
    candidates += ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"]
    try:  # the PyPI "redis-server" wheel ships the binary
        import redis_server  # type: ignore[import-not-found]
        candidates.append(str(getattr(redis_server, "REDIS_SERVER_PATH", "")))
    except ImportError:
        pass
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process of ours (module docstring)."""

    def __init__(self, binary: str | None = None, *, port: int | None = None,
                 startup_timeout_s: float = 10.0):
        """``port``: a given loopback port (to bring a server back where its clients
        look), or None for a free one."""
        self.binary = binary or find_redis_server()
        self.startup_timeout_s = float(startup_timeout_s)
        self.fixed_port = port
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "RedisServer":
        if self.running:
            return self
        if self.binary is None:
            raise RuntimeError("no redis-server binary found (install Debian's redis-server "
                               f"package, or set {ENV_REDIS_SERVER} to one)")
        import redis

        self._dir = tempfile.TemporaryDirectory(prefix="wb-redis-")
        logfile = Path(self._dir.name) / "redis.log"
        problem = "did not start"
        for _ in range(1 if self.fixed_port else 3):  # a free port can be taken meanwhile
            self.port = self.fixed_port or _free_port()
            problem = None
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self._dir.name, "--protected-mode", "yes",
                 "--daemonize", "no", "--loglevel", "warning", "--logfile", str(logfile)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + self.startup_timeout_s
            try:
                while time.monotonic() < deadline and self.process.poll() is None:
                    try:
                        # the server answering must be ours: between picking a free port
                        # and binding it, another process's server may have taken it
                        pid = int(client.info("server")["process_id"])
                    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                        time.sleep(0.02)
                        continue
                    if pid == self.process.pid:
                        return self
                    problem = f"port {self.port} is another redis-server's (pid {pid})"
                    break
            finally:
                client.close()
            if problem is None:
                problem = logfile.read_text()[-500:].strip() if logfile.is_file() else "no log"
            self._kill()
        self.stop()
        raise RuntimeError(f"redis-server ({self.binary}) did not start: {problem or 'no log'}")

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def stop(self) -> None:
        """Stop the server (its data is gone: nothing is saved)."""
        self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"RedisServer({self.url if self.running else 'stopped'})"


def start_redis_server(binary: str | None = None) -> tuple[RedisServer | None, str | None]:
    """``(running server, None)``, or ``(None, why not)`` when none can be started
    (no binary, or it failed) or the ``redis`` client package is missing."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return None, "the redis client is not installed (pip install 'hft-workbench[redis]')"
    server = RedisServer(binary)
    if server.binary is None:
        return None, ("no redis-server binary found (apt-get install redis-server, or set "
                      f"{ENV_REDIS_SERVER})")
    try:
        return server.start(), None
    except (RuntimeError, OSError) as exc:
        return None, str(exc)
