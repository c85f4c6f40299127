"""A batch of stored events as projectors take it: decoded once (data at the current schema version), then
run through one projector into a `Changes`, naming the event that failed. Also the projector Protocol and the
exceptions a batch ends with. Knows `events`; never a store, a driver or the domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..events import EVENT_TYPES, WORKFLOW_EVENT_TYPES, StoredEvent, current_schema_version, upcast
from .changes import Changes

EventData = Mapping[str, Any]
Decoded = tuple[StoredEvent, EventData | BaseException | None]

#: the types of the events of workflows other than orders (`<definition>/<id>` streams)
WORKFLOW_TYPES = frozenset(WORKFLOW_EVENT_TYPES)
_SCHEMA_VERSIONS: dict[str, int] = {name: cls.schema_version for name, cls in EVENT_TYPES.items()}
_SCHEMA_VERSIONS.update({name: cls.schema_version for name, cls in WORKFLOW_EVENT_TYPES.items()})


class Projector(Protocol):
    """Turns events into read-model rows. `views` names what it owns: rebuild clears exactly those.

    `apply` gets the stored envelope and its data at the current schema version of its type (the
    JSON form `events.encode` writes, upcast by `events.upcast`); it raises on data it cannot use.
    """

    name: str
    views: tuple[str, ...]
    reads_orders: bool
    reads_workflows: bool

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None: ...


class EventFailed(Exception):
    """A projector raised on one event of a batch (internal: the runner retries from `index`)."""

    def __init__(self, index: int, position: int, cause: BaseException) -> None:
        self.index, self.position, self.cause = index, position, cause
        super().__init__(f"event at position {position} failed: {cause!r}")


class CheckpointMoved(Exception):
    """Someone else advanced the projector's checkpoint since it was read (internal: the runner re-reads it)."""

    def __init__(self, projection: str, expected: int, actual: int) -> None:
        self.projection, self.expected, self.actual = projection, expected, actual
        super().__init__(f"projection {projection!r}: checkpoint is {actual}, expected {expected}")


class ProjectionConflict(ValueError):
    """An event does not fit the read model it should extend (missing order, version gap, bad data)."""


def decode_batch(batch: Sequence[StoredEvent]) -> list[Decoded]:
    """Each stored event with its data at the current schema version.

    None when it is not an order event (another workflow's: no order projector wants it), the
    error when it cannot be upcast (the projectors fail at its position, the runner reports it).
    Typed domain events are not built: projectors read the few fields they need (docs/design-notes.md).
    """
    versions = _SCHEMA_VERSIONS
    return [(stored, stored.data if versions.get(stored.type) == stored.schema_version else _upcast(stored))
            for stored in batch]


def _upcast(stored: StoredEvent) -> EventData | BaseException | None:
    """decode_batch's slow path: data of an older or newer version, or an order transition stored under a
    name of its definition's own (`emits: OrderHeld`); None for an event of no order or workflow."""
    if stored.type not in _SCHEMA_VERSIONS:
        if "/" in stored.stream_id:
            return None
        if stored.schema_version == current_schema_version(stored.type):
            return stored.data
    try:
        return upcast(stored.type, stored.schema_version, stored.data)
    except Exception as exc:
        return exc


def run_batch(projector: Projector, changes: Changes, events: Sequence[Decoded]) -> int:
    """Apply `events` to `changes`; raise EventFailed naming the first event that failed. Returns the last position."""
    if projector.reads_orders:
        changes.prefetch({stored.stream_id for stored, data in events if data is not None})
    if projector.reads_workflows:
        changes.prefetch_workflows({stored.stream_id for stored, _ in events if stored.type in WORKFLOW_TYPES})
    apply = projector.apply
    index = 0
    try:  # one try around the loop, not one per event; the except clauses name the event by index
        for index, (stored, data) in enumerate(events):
            if data is None:
                continue
            if isinstance(data, BaseException):
                raise EventFailed(index, stored.position, data)
            apply(changes, stored, data)
    except EventFailed:
        raise
    except Exception as exc:
        raise EventFailed(index, events[index][0].position, exc) from exc
    return events[-1][0].position if events else 0
