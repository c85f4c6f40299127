"""What a projection follower reports and how it retries: its retry policy, each projection's status, a
rebuild's report. Plain data, shared by the runner and the leased workers; imports no driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProjectionError
from .quarantine import Quarantine


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing event is retried before its stream is quarantined."""

    retries: int = 5
    initial_delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    last_position: int
    error: ProjectionError | None
    quarantined: tuple[Quarantine, ...] = ()

    @property
    def lag(self) -> int:
        return self.last_position - self.checkpoint


@dataclass(frozen=True, slots=True)
class RebuildReport:
    projections: tuple[str, ...]
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")
