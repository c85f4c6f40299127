"""The workflow instance: one durable entity of any definition, event-sourced like the order.

State, data, version and definition version come from replaying its stream (`<definition>/<id>`):
WorkflowStarted, then WorkflowTransitioned and WorkflowMigrated events. Every definition runs on this one
aggregate; a new YAML file needs no Python. Domain code: imports `machine`, `workflow`, `definition`,
`events` and `errors`; never a store, bus or framework. Time comes from the caller (the service's clock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from .definition import FieldSpec
from .errors import InvalidCommandError, TransitionNotAllowedError
from .events import (
    WorkflowEvent, WorkflowMigrated, WorkflowStarted, WorkflowTransitioned, to_json, workflow_stream,
)
from .machine import Machine, check_fields, convert_value
from .workflow import StatefulEntity, transition_effects

MachineOfVersion = Callable[[int], Machine]

_SPECS: dict[int, tuple[Machine, dict[str, FieldSpec], frozenset[str]]] = {}


def recorded_specs(machine: Machine) -> tuple[dict[str, FieldSpec], frozenset[str]]:
    """The declared type of every name an instance records (data fields, actions' fields by their
    `into` name), and which of them are appended lists; computed once per machine."""
    cached = _SPECS.get(id(machine))
    if cached is not None and cached[0] is machine:
        return cached[1], cached[2]
    specs: dict[str, FieldSpec] = dict(machine.definition.data)
    appended: set[str] = set()
    for action in machine.definition.actions:
        for name, spec in action.fields.items():
            target = spec.into or name
            specs.setdefault(target, spec)
            if spec.append:
                appended.add(target)
    for name in machine.counters:
        specs.setdefault(name, FieldSpec(type="int"))
    _SPECS[id(machine)] = (machine, specs, frozenset(appended))
    return specs, frozenset(appended)


def typed_data(machine: Machine, data: Mapping[str, Any]) -> dict[str, Any]:
    """Stored (JSON) data back in its declared types: decimals and times as Decimal and datetime."""
    specs, appended = recorded_specs(machine)
    out: dict[str, Any] = {}
    what = f"stored data of {machine.name}"
    for name, value in data.items():
        spec = specs.get(name)
        if spec is None or value is None or spec.type not in ("decimal", "datetime"):
            out[name] = value
        elif name in appended and isinstance(value, list):
            out[name] = [convert_value(v, spec, name, what) for v in value]
        else:
            out[name] = convert_value(value, spec, name, what)
    return out


def json_data(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    if not values:
        return {}
    try:
        return {name: to_json(value) for name, value in values.items()}
    except TypeError as exc:
        raise InvalidCommandError(f"{what}: {exc}") from None


class WorkflowInstance(StatefulEntity):
    """An event-sourced instance of any definition. `fire()` raises with reasons; `try_fire()` answers False.

    >>> instance = WorkflowInstance.start(machine, "T-1", {"title": "Printer on fire"}, at=now)
    >>> await instance.fire("Assign", {"assignee": "ana"}, at=now)
    >>> instance.state, instance.data["assignee"], instance.take_pending_events()
    """

    def __init__(self, machine: Machine, workflow_id: str) -> None:
        super().__init__(machine, workflow_id)
        self.definition = machine.name
        self.definition_version = machine.definition.version
        self.data: dict[str, Any] = {}
        self.version = 0
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None
        self.pending_events: list[WorkflowEvent] = []

    @property
    def stream_id(self) -> str:
        return workflow_stream(self.definition, self.id)

    # ----------------------------------------------------------------- building

    @classmethod
    def start(cls, machine: Machine, workflow_id: str, data: Mapping[str, Any], *, at: datetime) -> WorkflowInstance:
        """A new instance in the initial state, its WorkflowStarted pending; data checked against `data:`."""
        declared = machine.definition.data
        what = f"{machine.name} {workflow_id}"
        checked = check_fields(declared, data, what) if declared or data else {}
        for name in machine.counters:
            checked.setdefault(name, 0)
        for name in machine.lists:
            checked.setdefault(name, [])
        instance = cls(machine, workflow_id)
        instance._record(WorkflowStarted(workflow_id, machine.name, at, machine.definition.version,
                                         machine.initial, json_data(checked, what)))
        return instance

    @classmethod
    def replay(cls, machine_of: MachineOfVersion, workflow_id: str, events: Iterable[WorkflowEvent]) -> WorkflowInstance:
        """Rebuild an instance from its history, on the definition version its events name."""
        events = iter(events)
        first = next(events, None)
        if not isinstance(first, WorkflowStarted):
            raise ValueError(f"workflow {workflow_id!r}: its history must start with WorkflowStarted")
        instance = cls(machine_of(first.definition_version), workflow_id)
        instance._apply(first, machine_of)
        instance.version = 1
        for event in events:
            instance._apply(event, machine_of)
            instance.version += 1
        return instance

    # ----------------------------------------------------------------- reading

    def guard_context(self) -> dict[str, Any]:
        """What a guard's `when:` expression reads: the instance's data and its state."""
        return {**self.data, "state": self.state}

    def snapshot(self) -> dict[str, Any]:
        """The instance as the API shows it (data in JSON form)."""
        return {"id": self.id, "definition": self.definition, "definition_version": self.definition_version,
                "state": self.state, "version": self.version, "data": json_data(self.data, self.id),
                "created_at": self.created_at, "updated_at": self.updated_at}

    # ----------------------------------------------------------------- commands

    async def fire(self, action: str, data: Mapping[str, Any] | None = None, *,  # type: ignore[override]
                   at: datetime) -> WorkflowTransitioned:
        """Take the action's transition; raises TransitionNotAllowedError (with reasons) or InvalidCommandError."""
        transition, checked = await self._choose(action, data or {})
        recorded, cleared = transition_effects(self.machine.action_spec(transition.action), checked, self.data)
        what = f"{self.definition} {self.id}: {transition.action}"
        event = WorkflowTransitioned(self.id, self.definition, at, transition.action, transition.source,
                                     transition.target, json_data(checked, what), json_data(recorded, what),
                                     cleared, transition.emits)
        self._record(event)
        await self._finish(transition, checked, at=at)
        return event

    async def try_fire(self, action: str, data: Mapping[str, Any] | None = None, *,  # type: ignore[override]
                       at: datetime) -> bool:
        try:
            await self.fire(action, data, at=at)
        except TransitionNotAllowedError:
            return False
        return True

    def migrate(self, target: Machine, state_map: Mapping[str, str], *, at: datetime) -> WorkflowMigrated:
        """Move to another version of the definition; the current state maps by `state_map`, else by name.

        Raises InvalidCommandError when the state has no place in the target version.
        """
        if target.name != self.definition:
            raise InvalidCommandError(f"{self.stream_id}: cannot migrate to definition {target.name!r}")
        new_state = state_map.get(self.state, self.state)
        if new_state not in target.states:
            raise InvalidCommandError(
                f"{self.stream_id}: state {self.state!r} has no place in {target.name} v{target.definition.version}"
                f" (map it with --map {self.state}=<state>; states there: {', '.join(target.states)})", "map")
        event = WorkflowMigrated(self.id, self.definition, at, self.definition_version,
                                 target.definition.version, self.state, new_state)
        self.machine = target
        self._record(event)
        return event

    # ----------------------------------------------------------------- events

    def _record(self, event: WorkflowEvent) -> None:
        self._apply(event, None)
        self.version += 1
        self.pending_events.append(event)

    def _apply(self, event: WorkflowEvent, machine_of: MachineOfVersion | None) -> None:
        self.updated_at = event.at
        if isinstance(event, WorkflowTransitioned):
            self.state = event.target
            if event.recorded:
                self.data.update(typed_data(self.machine, event.recorded))
            for name in event.cleared:
                self.data.pop(name, None)
        elif isinstance(event, WorkflowStarted):
            self.definition_version = event.definition_version
            self.data = typed_data(self.machine, event.data)
            self.state, self.created_at, self.initialised = event.state, event.at, True
        elif isinstance(event, WorkflowMigrated):
            if machine_of is not None:
                self.machine = machine_of(event.to_version)
            self.definition_version, self.state = event.to_version, event.target

    def take_pending_events(self) -> list[WorkflowEvent]:
        events, self.pending_events = self.pending_events, []
        return events


__all__ = ["WorkflowInstance", "json_data", "recorded_specs", "typed_data"]
