"""Registry rows: how a parameter family (strategies, risk limits, admission controllers)
describes itself next to its kernel.

Owns two plain row types and one ordered table type; no kernels. A kernel module that
takes a float64 parameter array exports a :class:`Registry` of :class:`Entry` rows (a
named kernel with its parameters) or a tuple of :class:`Param` rows (the layout of one
array). Everything else derives from those rows: the live pipeline's strategy ids, the
Python layer's validation and name -> array conversion (``workbench.params``), the
widgets' controls and the CLI's help.

A :class:`Param` says where its value goes (``index`` into the kernel's array), its
default, its valid range, whether it is a whole number, and ``scale``: the factor from
the unit people type (seconds, ticks, ...) to the unit the kernel reads (nanoseconds,
...). ``array value = user value * scale``, so every caller converts the same way.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, NamedTuple

__all__ = ["Param", "Entry", "Registry"]


class Param(NamedTuple):
    """One parameter: its name, slot in the kernel's float64 array, default and range."""

    name: str
    index: int
    default: float
    low: float = 0.0
    high: float = math.inf
    integer: bool = False
    scale: float = 1.0      # array value = user value * scale
    unit: str = ""
    doc: str = ""


class Entry(NamedTuple):
    """One named kernel of a family and the parameters it reads."""

    name: str
    fn: Callable | None
    params: tuple[Param, ...]
    doc: str = ""


class Registry:
    """An ordered table of :class:`Entry` rows; an entry's id is its position.

    Adding a row is the whole recipe for a new strategy (or controller): the pipeline
    and the Python layer look everything up here.
    """

    def __init__(self, family: str, entries: tuple[Entry, ...] = ()):
        self.family = family
        self._entries: list[Entry] = []
        for e in entries:
            self.add(e)

    def add(self, entry: Entry) -> int:
        """Append ``entry`` (its name must be new); returns its id."""
        if not isinstance(entry, Entry):
            raise TypeError(f"a {self.family} registry row must be a kernels.registry.Entry")
        if entry.name in self.names():
            raise ValueError(f"{self.family} {entry.name!r} is already registered")
        seen = set()
        for p in entry.params:
            if p.name in seen:
                raise ValueError(f"{self.family} {entry.name!r} lists parameter {p.name!r} twice")
            seen.add(p.name)
        self._entries.append(entry)
        return len(self._entries) - 1

    def remove(self, name: str) -> None:
        """Drop a row (tests that register a throwaway strategy clean up with this)."""
        self._entries.remove(self[name])

    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self._entries)

    def id_of(self, name: str) -> int:
        return self.names().index(name)

    def __getitem__(self, key: Any) -> Entry:
        if isinstance(key, int):
            return self._entries[key]
        for e in self._entries:
            if e.name == key:
                return e
        raise KeyError(key)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[Entry]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {list(self.names())})"
