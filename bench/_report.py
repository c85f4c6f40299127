"""Shared benchmark plumbing: run sizes, timing helpers, goals and markdown tables.

Imports nothing from order_machine: the benches wire the project through its public API.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Literal, TypeVar

T = TypeVar("T")

Size = Literal["full", "quick", "smoke"]
SIZES: tuple[Size, ...] = ("full", "quick", "smoke")


def pick(size: Size, full: T, quick: T, smoke: T) -> T:
    """The parameter for a run size (smoke is the smallest: the unit test's)."""
    return {"full": full, "quick": quick, "smoke": smoke}[size]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def best_of(rounds: int, measure: Callable[[], float]) -> float:
    """The median of `rounds` measurements (each returns seconds per operation)."""
    return median(measure() for _ in range(max(rounds, 1)))


class Stopwatch:
    """`with Stopwatch() as sw: ...` then sw.seconds."""

    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._started


# --------------------------------------------------------------------------- formatting


def us(seconds: float) -> str:
    """Seconds as microseconds, with sensible precision."""
    value = seconds * 1e6
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def count(value: float) -> str:
    return f"{value:,.0f}"


def ratio(ours: float, theirs: float, higher_is_better: bool = True) -> str:
    """How many times better ours is than theirs ("12.3x")."""
    if ours <= 0 or theirs <= 0:
        return "–"
    factor = ours / theirs if higher_is_better else theirs / ours
    if factor < 1:
        return f"{factor:.2f}x"
    return f"{factor:.1f}x" if factor < 100 else f"{factor:,.0f}x"


@dataclass
class Goal:
    """A target from the issue, checked against a measured value."""

    what: str
    target: str
    measured: str
    met: bool

    def row(self) -> list[str]:
        return [self.what, self.target, self.measured, "met" if self.met else "**missed**"]


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        right = [i > 0 for i in range(len(self.headers))]
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---:" if r else "---" for r in right) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


def goals_table(title: str, goals: Sequence[Goal]) -> Table:
    table = Table(title, ["goal", "target", "measured", "status"])
    for goal in goals:
        table.add(*goal.row())
    return table


def versions(*packages: str) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def load_average() -> str:
    """The 1-minute load average: above the core count, other work shared the machine."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def environment() -> str:
    """One line naming what the figures were measured on."""
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, load average {load_average()}; "
        + versions("order-machine", "transitions", "python-statemachine", "eventsourcing")
    )
