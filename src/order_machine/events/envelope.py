"""The stored envelope (NewEvent, StoredEvent), the machine's own notifications and the JSON form of values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- machine notifications


@dataclass(frozen=True, slots=True)
class MachineInitialised:
    """An entity's machine was initialised in its initial state."""

    entity_id: str
    definition: str
    state: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StateChanged:
    """An entity moved from one state to another by an action."""

    entity_id: str
    definition: str
    source: str
    target: str
    action: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the stored envelope


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: its type, JSON data and metadata."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=utcnow)


class StoredEvent(NamedTuple):
    """An event as the store returns it, with its stream version and global position.

    Immutable; a named tuple because stores build thousands per batch and a tuple is the cheapest
    immutable record Python builds (a frozen dataclass costs 5x more per event on a rebuild).
    """

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    recorded_at: datetime


#: the types JSON writes as they are (no conversion, no choice of spelling)
JSON_SCALARS = frozenset({str, int, bool, type(None)})


def to_json(value: Any) -> Any:
    """A value as JSON stores it: Decimal as its string, datetime in ISO 8601, containers recursively.

    Raises TypeError for anything JSON cannot hold exactly (a float is kept: JSON has numbers).
    """
    if type(value) in JSON_SCALARS or isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")
