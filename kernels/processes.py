"""Whether a process id still runs: what a waiter asks of a peer that may have died
(a shared-memory queue's other end, ``workbench.queues``; a compile claim's holder,
``kernels.compile_claims``). Standard library only."""
from __future__ import annotations

import os
import sys

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped) counts as dead.

    Linux: its state in ``/proc``. Other POSIX systems: ``kill(pid, 0)``. Windows (where
    ``os.kill(pid, 0)`` would send CTRL+C): ``OpenProcess`` and its exit code."""
    if sys.platform == "win32":
        return _win_pid_alive(pid)
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            return state not in (b"Z", b"X", b"x")
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _win_pid_alive(pid: int) -> bool:
    import ctypes

    k32 = ctypes.windll.kernel32
    handle = k32.OpenProcess(0x1000, False, int(pid))   # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(k32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        k32.CloseHandle(handle)
