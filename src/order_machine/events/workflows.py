"""The events of a workflow instance of any definition: WorkflowStarted, WorkflowTransitioned, WorkflowMigrated.

Every durable instance of a definition is one stream, `<definition>/<id>` (a definition name has no
`/` and neither has an id, so the split is unambiguous and no instance stream is an order's). Its
events are the same three types for every definition: the store, the projectors and the followers
read them without knowing the definition, and a new YAML file needs no new event class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from .envelope import NewEvent, StoredEvent, to_json

@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """Base of the events of a workflow instance; `workflow_id`, `definition` and `at` (UTC) on every one."""

    schema_version: ClassVar[int] = 1
    workflow_id: str
    definition: str
    at: datetime

    @property
    def stream_id(self) -> str:
        return workflow_stream(self.definition, self.workflow_id)


@dataclass(frozen=True, slots=True)
class WorkflowStarted(WorkflowEvent):
    """An instance began in its definition's initial state, with its checked data (JSON form)."""

    definition_version: int
    state: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkflowTransitioned(WorkflowEvent):
    """An action took a declared transition: `data` is the action's checked input, `recorded` the values
    it left in the instance's data, `cleared` the names it removed (both JSON form); `emits` is the
    event name the definition gives the transition, if any."""

    action: str
    source: str
    target: str
    data: Mapping[str, Any] = field(default_factory=dict)
    recorded: Mapping[str, Any] = field(default_factory=dict)
    cleared: tuple[str, ...] = ()
    emits: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowMigrated(WorkflowEvent):
    """An instance moved to another version of its definition, its state mapped (`source` -> `target`)."""

    from_version: int
    to_version: int
    source: str
    target: str


WORKFLOW_EVENT_TYPES: dict[str, type[WorkflowEvent]] = {
    cls.__name__: cls for cls in (WorkflowStarted, WorkflowTransitioned, WorkflowMigrated)
}


def workflow_stream(definition: str, workflow_id: str) -> str:
    """The stream id of one instance of a definition."""
    return f"{definition}/{workflow_id}"


def split_workflow_stream(stream_id: str) -> tuple[str, str] | None:
    """(definition, id) of a workflow instance's stream; None for any other stream (an order's)."""
    definition, slash, workflow_id = stream_id.partition("/")
    return (definition, workflow_id) if slash else None


def encode_workflow(event: WorkflowEvent, metadata: Mapping[str, Any] | None = None) -> NewEvent:
    """The stored form of a workflow event (everything but the ids, which the stream id holds)."""
    data: dict[str, Any] = {"at": event.at.isoformat()}
    for f in fields(event):
        if f.name not in ("workflow_id", "definition", "at"):
            data[f.name] = to_json(getattr(event, f.name))
    return NewEvent(type(event).__name__, data, type(event).schema_version, dict(metadata or {}), event.at)


def decode_workflow(stored: StoredEvent) -> WorkflowEvent:
    """The workflow event of a stored one; raises ValueError for another kind of event or stream."""
    cls = WORKFLOW_EVENT_TYPES.get(stored.type)
    ids = split_workflow_stream(stored.stream_id)
    if cls is None or ids is None:
        raise ValueError(f"{stored.type!r} at position {stored.position} is not a workflow event")
    if stored.schema_version > cls.schema_version:
        raise ValueError(f"{stored.type} v{stored.schema_version} is newer than this code knows "
                         f"(v{cls.schema_version})")
    data = dict(stored.data)
    kwargs: dict[str, Any] = {"definition": ids[0], "workflow_id": ids[1],
                              "at": datetime.fromisoformat(data.pop("at"))}
    names = {f.name for f in fields(cls)}
    for name, value in data.items():
        if name in names:
            kwargs[name] = tuple(value) if name == "cleared" else value
    return cls(**kwargs)
