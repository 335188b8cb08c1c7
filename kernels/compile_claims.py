"""Several processes compiling the same kernels at once, each signature compiled by one.

A cold start (the README demo on a new machine, ``warmup``) spends nearly all its time in
Numba compiling kernels, one at a time, on one core. ``workbench.parallel_compile`` runs
helper processes beside the main one, each compiling a different part of the work into
the shared on-disk cache. Two things make that safe and useful; both live here, because
they wrap Numba's own compile and cache steps:

**Claims.** While :func:`activate` is in force, a process that is about to compile a
cacheable kernel for a signature first *claims* it: it creates
``<dir>/<key>.claim`` with ``O_EXCL`` (``key``: a hash of the kernel's module, name and
argument types, and the build). The claimer compiles (Numba writes the result to the
cache) and then creates ``<key>.done``. A process that finds the claim taken waits for
``.done`` and then asks Numba again, which now loads the kernel from the cache instead
of compiling it a second time. Kernels call one another along a directed acyclic graph
(no recursion), so a wait can never close a cycle: a process only waits on a claim that
is not on its own stack. A claimer that dies (a zombie counts as dead: a helper its
starter has not reaped yet), or a wait longer than ``timeout``, makes the waiter compile
the kernel itself; the worst case is the serial cost, never a hang.

**One writer per cache index.** Numba's cache saves an overload by reading the
kernel's index, picking a free data-file number and rewriting the index. Two processes
saving *different* signatures of one kernel at the same moment could pick the same
number, and an index entry would then name the other signature's machine code. The
save is therefore done under an exclusive ``flock`` on ``<index>.lock``
(:func:`install_save_lock`, installed at import by ``kernels.jit``: it matters for any
concurrent compiles, such as a process pool running backtests).

Everything here is a no-op outside :func:`activate`, apart from the lock, which costs
one ``flock`` per saved kernel.
"""
from __future__ import annotations

import hashlib
import os
import time

from .processes import pid_alive

__all__ = ["activate", "deactivate", "active_dir", "install_save_lock", "claim_key", "stats",
           "cacheable", "on_disk"]

_DIR: str | None = None
_TIMEOUT = 900.0
_STATS = {"claimed": 0, "waited": 0, "wait_seconds": 0.0, "took_over": 0}
_PATCHED = False
_LOCK_INSTALLED = False


def _build_tag() -> str:
    from .jit import SAFE_MODE   # the checked and unchecked builds are cached apart
    import numba

    return f"{numba.__version__}|safe={SAFE_MODE}"


def claim_key(disp, args) -> str:
    """The claim's name for compiling ``disp`` for argument types ``args``."""
    func = disp.py_func
    text = f"{func.__module__}.{func.__qualname__}|{tuple(args)}|{_build_tag()}"
    return hashlib.sha1(text.encode()).hexdigest()


def _claim(directory: str, key: str) -> bool:
    path = os.path.join(directory, key + ".claim")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    return True


def _finish(directory: str, key: str) -> None:
    try:
        with open(os.path.join(directory, key + ".done"), "w"):
            pass
    except OSError:
        pass


def _wait(directory: str, key: str, timeout: float) -> None:
    """Until the claimer says done, dies, or ``timeout`` passes (then this process
    compiles the kernel itself)."""
    done = os.path.join(directory, key + ".done")
    claim = os.path.join(directory, key + ".claim")
    started = time.monotonic()
    pause = 0.001
    pid = None
    while not os.path.exists(done):
        if pid is None:
            try:
                with open(claim) as f:
                    pid = int(f.read() or 0) or None
            except (OSError, ValueError):
                pid = None
        if (pid is not None and not pid_alive(pid)) or time.monotonic() - started > timeout:
            _STATS["took_over"] += 1
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    _STATS["waited"] += 1
    _STATS["wait_seconds"] += time.monotonic() - started


def cacheable(disp) -> bool:
    """Whether Numba caches ``disp``'s compiled code on disk (not ``cache=False``)."""
    from numba.core.caching import NullCache

    cache = getattr(disp, "_cache", None)
    return cache is not None and not isinstance(cache, NullCache)


def on_disk(disp) -> bool | None:
    """Whether ``disp`` has an index in Numba's on-disk cache (some signature of it was
    compiled and saved before); None when this Numba's cache layout is not the one
    known here."""
    try:
        path = disp._cache._cache_file._index_path
    except AttributeError:
        return None
    return os.path.isfile(path)


def _patch() -> None:
    global _PATCHED
    if _PATCHED:
        return
    from numba.core import sigutils
    from numba.core.dispatcher import Dispatcher

    original = Dispatcher.compile

    def compile(self, sig):
        directory = _DIR
        if directory is None or not getattr(self, "_can_compile", False) or not cacheable(self):
            return original(self, sig)
        args, _ = sigutils.normalize_signature(sig)
        if tuple(args) in self.overloads:
            return original(self, sig)
        key = claim_key(self, args)
        if _claim(directory, key):
            _STATS["claimed"] += 1
            try:
                return original(self, sig)
            finally:
                _finish(directory, key)
        _wait(directory, key, _TIMEOUT)
        return original(self, sig)    # from the cache now, unless the claimer failed

    compile.__wrapped__ = original
    compile.__doc__ = original.__doc__
    Dispatcher.compile = compile
    _PATCHED = True


def activate(directory: str, timeout: float = 900.0) -> None:
    """Claim compiles in ``directory`` (shared with the other processes) from now on."""
    global _DIR, _TIMEOUT
    if not os.path.isdir(directory):
        raise ValueError(f"compile claims: directory {directory!r} does not exist")
    _patch()
    install_save_lock()
    _TIMEOUT = float(timeout)
    _DIR = directory


def deactivate() -> None:
    global _DIR
    _DIR = None


def active_dir() -> str | None:
    return _DIR


def stats() -> dict:
    return dict(_STATS)


def install_save_lock() -> bool:
    """Serialize Numba's cache-index updates across processes (module docstring)."""
    global _LOCK_INSTALLED
    if _LOCK_INSTALLED:
        return True
    try:
        import fcntl
        from numba.core.caching import IndexDataCacheFile
    except ImportError:
        return False
    original = getattr(IndexDataCacheFile, "save", None)
    if original is None or not hasattr(IndexDataCacheFile, "__init__"):
        return False

    def save(self, key, data):
        path = getattr(self, "_index_path", None)
        if path is None:
            return original(self, key, data)
        try:
            fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            return original(self, key, data)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return original(self, key, data)
        finally:
            os.close(fd)          # closing drops the lock

    save.__wrapped__ = original
    IndexDataCacheFile.save = save
    _LOCK_INSTALLED = True
    return True
