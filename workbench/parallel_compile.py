"""Cold compiles on every core: helper processes fill Numba's cache beside the main one.

On a new machine (or after an upgrade) the first run of the demo, or of ``warmup``, is
almost all Numba compiling, which runs on one core under Numba's compiler lock. Here
the main process starts *helpers*: ``python -m workbench.parallel_compile TASK ...``
processes, each running a task (a function, named ``module:function``) that compiles
a different part of the work by running the product's own paths on tiny inputs. All of
them, the main process included, claim each kernel signature before compiling it
(``kernels.compile_claims``), so a kernel is compiled once, by whichever process gets
to it first, and the others load it from the cache.

Use::

    with helpers(["workbench.demo:precompile_helper"]):
        ...   # the main process's own work; helpers compile beside it

``helpers`` starts nothing when the machine has one core, when ``jobs`` is 1, or when
``WORKBENCH_PARALLEL_COMPILE=0``; the work then compiles in the main process exactly as
before. A helper that fails or dies costs nothing but its time: whatever it claimed and
did not finish, the main process compiles itself (``compile_claims``: dead claimers are
noticed). On leaving the block, helpers still running are given ``grace`` seconds and
then stopped; their results so far stay in the cache.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["helpers", "cores", "enabled", "run_task", "compile_book_calls", "main"]

ENV_DIR = "WORKBENCH_COMPILE_CLAIMS"


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def enabled(jobs: int | None = None) -> bool:
    """Whether :func:`helpers` would start any (see module docstring)."""
    if os.environ.get("WORKBENCH_PARALLEL_COMPILE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    n = cores() if jobs is None else jobs
    return n > 1


def _check_task(name: str) -> None:
    module, sep, func = name.partition(":")
    if not sep or not module or not func.isidentifier():
        raise ValueError(f"task {name!r} must be 'module:function'")


def run_task(name: str) -> None:
    """Import ``module`` and call ``function()`` (what a helper process runs)."""
    _check_task(name)
    module, _, func = name.partition(":")
    getattr(importlib.import_module(module), func)()


# the book kernels ``kernels.book.apply_event`` calls rather than inlines, with what each
# takes after the book state: the fills buffer or not, its int64 arguments, a trailing flag
_BOOK_CALLS = {
    "_add": (True, 9, False),
    "_cancel": (False, 7, False),
    "_execute": (True, 7, False),
    "_modify": (True, 6, True),
    "_rest_replayed": (False, 7, False),
    "clear_book": (False, 1, False),
    "clear_others": (False, 2, False),
}


def compile_book_calls(names) -> None:
    """Compile the book kernels ``names`` (keys of ``_BOOK_CALLS``), in that order, for the
    engine state's exact types: what every loop that inlines ``apply_event`` calls. Two
    processes of a cold start name them in opposite orders, so that each compiles what
    the other reaches last (``kernels.compile_claims``: the other loads it)."""
    import numba
    from numba import types

    import numpy as np

    from kernels import book as kbook
    from kernels import book_state
    from kernels.records import FILL

    st = numba.typeof(book_state.allocate_state(1, 16, book_state.MIN_PRICE_LEVELS, [1]))
    fills = numba.typeof(np.zeros(1, dtype=FILL))
    for name in names:
        with_fills, n_ints, flag = _BOOK_CALLS[name]
        sig = ((st, fills) if with_fills else (st,)) + (types.int64,) * n_ints
        getattr(kbook, name).compile(sig + ((types.boolean,) if flag else ()))


@contextlib.contextmanager
def helpers(tasks, jobs: int | None = None, grace: float = 120.0):
    """Run ``tasks`` in helper processes while the block runs (module docstring).

    ``tasks``: ``"module:function"`` names, split over ``min(jobs, cores) - 1`` helpers
    (the main process is the other worker). Yields the list of started processes."""
    tasks = list(tasks)
    for t in tasks:
        _check_task(t)
    n = (cores() if jobs is None else int(jobs)) - 1
    if not tasks or n < 1 or not enabled(jobs):
        yield []
        return
    from kernels import compile_claims

    if compile_claims.active_dir() is not None:       # nested: the outer block already shares
        yield []
        return
    directory = tempfile.mkdtemp(prefix="wb-claims-")
    groups = [tasks[i::n] for i in range(min(n, len(tasks)))]
    env = dict(os.environ, **{ENV_DIR: directory})
    procs = []
    try:
        compile_claims.activate(directory)
        for group in groups:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "workbench.parallel_compile", *group],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        yield procs
    finally:
        compile_claims.deactivate()
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None) -> int:
    """Helper process: claim compiles in ``$WORKBENCH_COMPILE_CLAIMS``, run each task."""
    argv = list(sys.argv[1:] if argv is None else argv)
    directory = os.environ.get(ENV_DIR)
    from kernels import compile_claims

    if directory:
        compile_claims.activate(directory)
    status = 0
    for name in argv:
        try:
            run_task(name)
        except Exception as exc:  # noqa: BLE001 - a helper's failure must not stop the others
            print(f"parallel_compile: task {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
