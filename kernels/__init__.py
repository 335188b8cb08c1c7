"""The engine: Numba kernels over numpy arrays and structured records.

This package imports only numpy, numba, llvmlite and the standard library (a test
enforces it). Everything here is a free function compiled through ``kernels.jit.kernel``;
state lives in preallocated arrays owned by the caller.
"""
from . import records
from .jit import SAFE_MODE, kernel

__all__ = ["records", "kernel", "SAFE_MODE"]
