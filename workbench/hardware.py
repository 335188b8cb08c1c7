"""What this machine offers a low-latency process, read from Linux's /proc and /sys.

Owns the hardware probes: CPU model, logical/physical cores, caches, NUMA nodes,
isolated cores, huge pages, frequency governor, invariant TSC, and CPU affinity
get/set. Every probe returns a ``Probe`` (value, or ``None`` plus the reason it
could not be read: containers and VMs often hide these files), and ``report()``
gathers them all into one polars DataFrame for notebooks. ``root`` lets tests point
the probes at a fake file tree.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Probe", "cpu_model", "logical_cores", "physical_cores", "caches", "numa_nodes",
    "isolated_cores", "huge_pages", "transparent_huge_pages", "governor", "invariant_tsc",
    "get_affinity", "set_affinity", "probes", "report", "numa_topology", "current_cpu",
    "parse_cpu_list",
]


@dataclass(frozen=True)
class Probe:
    """One fact about the machine: ``value`` or ``None`` with the ``reason``."""

    name: str
    value: Any
    reason: str = ""
    source: str = ""

    @property
    def known(self) -> bool:
        return self.value is not None


def _read(root: str, path: str) -> tuple[str | None, str]:
    full = Path(root + path)
    try:
        return full.read_text(), ""
    except FileNotFoundError:
        return None, (f"unavailable on this platform: {path} does not exist (not Linux, a "
                      "container or VM that hides it, or the feature is absent)")
    except PermissionError:
        return None, f"{path} is not readable by this user"
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"


def _cpuinfo(root: str) -> tuple[list[dict[str, str]], str]:
    text, reason = _read(root, "/proc/cpuinfo")
    if text is None:
        return [], reason
    blocks = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks, ""


def cpu_model(root: str = "") -> Probe:
    blocks, reason = _cpuinfo(root)
    for block in blocks:
        for key in ("model name", "Model", "cpu model", "Hardware"):
            if block.get(key):
                return Probe("cpu_model", block[key], source="/proc/cpuinfo")
    return Probe("cpu_model", platform.processor() or None,
                 reason or "no model line in /proc/cpuinfo", source="platform.processor()")


def logical_cores(root: str = "") -> Probe:
    count = os.cpu_count()
    return Probe("logical_cores", count, "" if count else "os.cpu_count() returned None", "os.cpu_count()")


def physical_cores(root: str = "") -> Probe:
    blocks, reason = _cpuinfo(root)
    pairs = {(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}
    if pairs:
        return Probe("physical_cores", len(pairs), source="/proc/cpuinfo core id")
    return Probe("physical_cores", None, reason or "/proc/cpuinfo has no 'core id' lines", "/proc/cpuinfo")


def caches(root: str = "", cpu: int = 0) -> Probe:
    """Caches of one CPU as a list of dicts (level, type, size, line size, shared with)."""
    base = f"/sys/devices/system/cpu/cpu{cpu}/cache"
    directory = Path(root + base)
    if not directory.is_dir():
        return Probe("caches", None, f"unavailable on this platform: {base} does not exist", base)
    found = []
    for index in sorted(directory.glob("index*")):
        def field(name):
            text, _ = _read(root, f"{base}/{index.name}/{name}")
            return text.strip() if text else None
        found.append({"level": field("level"), "type": field("type"), "size": field("size"),
                      "line_bytes": field("coherency_line_size"),
                      "shared_cpu_list": field("shared_cpu_list")})
    if not found:
        return Probe("caches", None, f"{base} lists no caches", base)
    return Probe("caches", found, source=base)


def numa_nodes(root: str = "") -> Probe:
    base = "/sys/devices/system/node"
    directory = Path(root + base)
    if not directory.is_dir():
        return Probe("numa_nodes", None, f"unavailable on this platform: {base} does not exist "
                     "(not Linux, a kernel without NUMA support, or hidden)", base)
    nodes = sorted(p.name for p in directory.glob("node[0-9]*"))
    if not nodes:
        return Probe("numa_nodes", None, f"{base} lists no nodes", base)
    return Probe("numa_nodes", len(nodes), source=base)


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,8,10-11"`` (the kernel's cpulist format) -> ``[0, 1, 2, 3, 8, 10, 11]``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def numa_topology(root: str = "") -> Probe:
    """Per NUMA node: its CPUs, its memory (total and free, kB) and its distances to every
    node (10 = local; the ACPI SLIT's relative cost, e.g. 21 = 2.1x a local access)."""
    base = "/sys/devices/system/node"
    directory = Path(root + base)
    if not directory.is_dir():
        return Probe("numa_topology", None,
                     f"unavailable on this platform: {base} does not exist (not Linux, or a "
                     "kernel without NUMA support)", base)
    nodes = []
    for node in sorted(directory.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        cpulist, _ = _read(root, f"{base}/{node.name}/cpulist")
        meminfo, _ = _read(root, f"{base}/{node.name}/meminfo")
        distance, _ = _read(root, f"{base}/{node.name}/distance")
        mem = dict(re.findall(r"Node \d+ (MemTotal|MemFree):\s+(\d+) kB", meminfo or ""))
        nodes.append({"node": int(node.name[4:]),
                      "cpus": parse_cpu_list(cpulist) if cpulist else None,
                      "mem_total_kb": int(mem["MemTotal"]) if "MemTotal" in mem else None,
                      "mem_free_kb": int(mem["MemFree"]) if "MemFree" in mem else None,
                      "distances": [int(d) for d in distance.split()] if distance else None})
    if not nodes:
        return Probe("numa_topology", None, f"{base} lists no nodes", base)
    return Probe("numa_topology", nodes, source=base)


def current_cpu(root: str = "") -> Probe:
    """The CPU this process last ran on (field 39 of /proc/self/stat)."""
    text, reason = _read(root, "/proc/self/stat")
    if text is None:
        return Probe("current_cpu", None, reason, "/proc/self/stat")
    fields = text[text.rfind(")") + 2:].split()   # after the command name, which may hold spaces
    try:
        return Probe("current_cpu", int(fields[36]), source="/proc/self/stat")
    except (IndexError, ValueError):
        return Probe("current_cpu", None, "/proc/self/stat has no processor field",
                     "/proc/self/stat")


def isolated_cores(root: str = "") -> Probe:
    path = "/sys/devices/system/cpu/isolated"
    text, reason = _read(root, path)
    if text is None:
        return Probe("isolated_cores", None, reason, path)
    return Probe("isolated_cores", text.strip() or "none (no isolcpus= on the kernel command line)",
                 source=path)


def huge_pages(root: str = "") -> Probe:
    """Explicit huge pages: total, free and page size (kB) from /proc/meminfo."""
    text, reason = _read(root, "/proc/meminfo")
    if text is None:
        return Probe("huge_pages", None, reason, "/proc/meminfo")
    values = dict(re.findall(r"^(HugePages_Total|HugePages_Free|Hugepagesize):\s+(\d+)", text, re.M))
    if "HugePages_Total" not in values:
        return Probe("huge_pages", None, "/proc/meminfo has no HugePages lines", "/proc/meminfo")
    return Probe("huge_pages", {"total": int(values["HugePages_Total"]),
                                "free": int(values.get("HugePages_Free", 0)),
                                "page_kb": int(values.get("Hugepagesize", 0))}, source="/proc/meminfo")


def transparent_huge_pages(root: str = "") -> Probe:
    path = "/sys/kernel/mm/transparent_hugepage/enabled"
    text, reason = _read(root, path)
    if text is None:
        return Probe("transparent_huge_pages", None, reason, path)
    chosen = re.search(r"\[(\w+)\]", text)
    return Probe("transparent_huge_pages", chosen.group(1) if chosen else text.strip(), source=path)


def governor(root: str = "", cpu: int = 0) -> Probe:
    path = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
    text, reason = _read(root, path)
    if text is None:
        return Probe("governor", None, reason + " (no cpufreq driver: typical in VMs)", path)
    return Probe("governor", text.strip(), source=path)


def invariant_tsc(root: str = "") -> Probe:
    """True when the TSC ticks at a constant rate through frequency and idle changes
    (``constant_tsc`` and ``nonstop_tsc`` flags): then cycles() can be turned into ns."""
    blocks, reason = _cpuinfo(root)
    flags = next((b["flags"].split() for b in blocks if "flags" in b), None)
    if flags is None:
        return Probe("invariant_tsc", None, reason or "/proc/cpuinfo has no flags line (not x86?)",
                     "/proc/cpuinfo")
    return Probe("invariant_tsc", "constant_tsc" in flags and "nonstop_tsc" in flags,
                 source="/proc/cpuinfo flags")


def get_affinity(pid: int = 0) -> Probe:
    """CPUs this process (or ``pid``) may run on."""
    if not hasattr(os, "sched_getaffinity"):
        return Probe("affinity", None, "unavailable on this platform: os.sched_getaffinity is Linux-only")
    try:
        return Probe("affinity", sorted(os.sched_getaffinity(pid)), source="sched_getaffinity")
    except OSError as exc:
        return Probe("affinity", None, f"sched_getaffinity failed: {exc}")


def set_affinity(cpus, pid: int = 0) -> list[int]:
    """Pin this process (or ``pid``) to ``cpus``; returns the new set. Raises
    ValueError for CPUs that do not exist, OSError if the OS refuses."""
    cpus = sorted({int(c) for c in cpus})
    if not cpus:
        raise ValueError("cpus must name at least one CPU")
    available = os.cpu_count() or 0
    bad = [c for c in cpus if c < 0 or c >= available]
    if bad:
        raise ValueError(f"cpus {bad} do not exist on this machine (0..{available - 1})")
    if not hasattr(os, "sched_setaffinity"):
        raise OSError("CPU affinity is unavailable on this platform: os.sched_setaffinity is Linux-only")
    os.sched_setaffinity(pid, cpus)
    return sorted(os.sched_getaffinity(pid))


def probes(root: str = "") -> list[Probe]:
    """Every probe, in report order."""
    return [cpu_model(root), logical_cores(root), physical_cores(root), caches(root),
            numa_nodes(root), isolated_cores(root), huge_pages(root), transparent_huge_pages(root),
            governor(root), invariant_tsc(root), get_affinity()]


def _show(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return ", ".join(f"L{c['level']} {c['type']} {c['size']}" for c in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def report(root: str = ""):
    """All probes as a polars DataFrame: probe, value (text), reason, source."""
    import polars as pl

    rows = [(p.name, _show(p.value), p.reason, p.source) for p in probes(root)]
    return pl.DataFrame(rows, schema={"probe": pl.Utf8, "value": pl.Utf8, "reason": pl.Utf8,
                                      "source": pl.Utf8}, orient="row")
