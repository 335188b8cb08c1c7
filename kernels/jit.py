"""The one decorator factory every kernel is compiled through.

Why one factory: every kernel must share the same compile options (on-disk cache so
the second run starts instantly, ``nogil`` so Python threads can run kernels in
parallel, the numpy error model so integer division carries no zero check on the
hot path) and the same switch for the safe mode.

Safe mode (``WORKBENCH_SAFE=1`` in the environment before ``kernels`` is imported)
turns on Numba's bounds checking for every kernel, so an out-of-range index raises
``IndexError`` instead of reading stray memory. Numba's cache key does not include
the bounds-check flag, so safe builds are cached in their own directory rather than
sharing (and poisoning) the fast builds' cache.
"""
from __future__ import annotations

import os

import numba
from numba import njit

__all__ = ["SAFE_MODE", "kernel", "safe_mode_enabled"]


def safe_mode_enabled(environ=os.environ) -> bool:
    """True when ``WORKBENCH_SAFE`` asks for bounds-checked kernels."""
    return environ.get("WORKBENCH_SAFE", "").strip().lower() not in ("", "0", "false", "no", "off")


SAFE_MODE: bool = safe_mode_enabled()

if SAFE_MODE:
    # A separate cache tree for bounds-checked builds (see module docstring), also when
    # the user points NUMBA_CACHE_DIR somewhere: safe builds go to a subfolder of it.
    _base = numba.config.CACHE_DIR or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "hft-workbench")
    numba.config.CACHE_DIR = os.path.join(_base, "numba-safe")


def kernel(fn=None, *, inline: str = "never", fastmath: bool = False, parallel: bool = False,
           cache: bool = True):
    """Compile ``fn`` as a workbench kernel.

    Usable bare (``@kernel``) or with options (``@kernel(inline="always")``).
    ``inline="always"`` is for tiny helpers called from hot loops; ``parallel`` for
    kernels using ``prange``. ``cache=False`` only for functions that take other
    functions as arguments (user callbacks), which Numba cannot cache.
    """
    options = dict(
        cache=cache,
        nogil=True,
        boundscheck=SAFE_MODE,
        error_model="numpy",
        inline=inline,
        fastmath=fastmath,
        parallel=parallel,
    )

    def decorate(f):
        try:
            return njit(**options)(f)
        except RuntimeError:
            # No cache locator for code without a source file (``python -c``, exec):
            # compile it uncached rather than refuse it.
            return njit(**{**options, "cache": False})(f)

    return decorate(fn) if fn is not None else decorate
