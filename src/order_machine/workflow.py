"""Entities driven by a compiled Machine: the shared dispatch steps and a generic Workflow for any definition.

Domain code: imports `machine`, `definition`, `events` and `errors`; never a store, bus or framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .definition import ActionSpec, load_definition
from .errors import NotInitialisedError, TransitionNotAllowedError
from .events import MachineInitialised, StateChanged, utcnow
from .machine import Guard, Hook, Machine, Publisher, Transition, check_fields


class StatefulEntity:
    """What every machine-driven entity shares: state, initialisation, dispatch and notifications."""

    def __init__(self, machine: Machine, entity_id: str, publisher: Publisher | None = None) -> None:
        self.machine = machine
        self.id = entity_id
        self.publisher = publisher
        self.state: str = machine.initial
        self.initialised = False

    @property
    def allowed_actions(self) -> tuple[str, ...]:
        return self.machine.allowed_actions(self.state) if self.initialised else ()

    @property
    def is_terminal(self) -> bool:
        return self.machine.is_terminal(self.state)

    def _require_initialised(self) -> None:
        if not self.initialised:
            raise NotInitialisedError(self.id)

    async def _notify_initialised(self) -> None:
        if self.publisher is not None:
            await self.publisher.publish(MachineInitialised(self.id, self.machine.name, self.state, utcnow()))

    async def _choose(self, action: str, data: Mapping[str, Any]) -> tuple[Transition, dict[str, Any]]:
        """Check the action's data and pick its transition; raises before anything changes."""
        self._require_initialised()
        action = str(action)
        if not self.machine.declares(action):  # refuse unknown actions before complaining about data
            await self.machine.select(self.id, self.state, action, self, data)
        checked = self.machine.check_data(action, data)
        return await self.machine.select(self.id, self.state, action, self, checked), checked

    async def _finish(self, transition: Transition, data: Mapping[str, Any]) -> None:
        """Run the transition's hooks and tell the bus, after the state has changed."""
        await self.machine.run_hooks(transition, self, data)
        if self.publisher is not None:
            await self.publisher.publish(StateChanged(
                self.id, self.machine.name, transition.source, transition.target, transition.action, utcnow(), data
            ))

    async def fire(self, action: str, **data: Any) -> Any:
        raise NotImplementedError

    async def try_fire(self, action: str, **data: Any) -> bool:
        """Fire an action; answer False (and change nothing) when the machine refuses it."""
        try:
            await self.fire(action, **data)
        except TransitionNotAllowedError:
            return False
        return True


class Workflow(StatefulEntity):
    """An entity of any definition, recording exactly the data its actions declare.

    >>> payment = Workflow(Workflow.compile("definitions/payment.yaml"), "pay-1", amount="100.50", ...)
    >>> await payment.initialise(); await payment.fire("Process")
    """

    def __init__(self, machine: Machine, entity_id: str, publisher: Publisher | None = None, **data: Any) -> None:
        super().__init__(machine, entity_id, publisher)
        declared = machine.definition.data
        self.data: dict[str, Any] = check_fields(declared, data, f"{machine.name} {entity_id}") if declared else dict(data)
        self.history: list[StateChanged] = []

    @staticmethod
    def compile(path: str | Path, guards: Mapping[str, Guard] | None = None,
                hooks: Mapping[str, Hook] | None = None) -> Machine:
        """Load a definition file and compile it (do this once per process, then share the Machine)."""
        return Machine(load_definition(path), guards, hooks)

    async def initialise(self) -> None:
        """Put the entity in its initial state; it answers actions from now on."""
        if self.initialised:
            return
        self.state = self.machine.initial
        self.initialised = True
        await self._notify_initialised()

    async def fire(self, action: str, **data: Any) -> Transition:
        """Take the action's transition and record its data; raises TransitionNotAllowedError on refusal."""
        transition, checked = await self._choose(action, data)
        spec = self.machine.action_spec(transition.action)
        if spec is not None:
            record(spec, checked, self.data)
        self.state = transition.target
        self.history.append(StateChanged(self.id, self.machine.name, transition.source, transition.target,
                                         transition.action, utcnow(), checked))
        await self._finish(transition, checked)
        return transition

    def __getattr__(self, name: str) -> Any:
        # recorded data reads as attributes (payment.transaction_id); unknown names stay errors
        data = self.__dict__.get("data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('id')!r} has no {name!r}")


def record(spec: ActionSpec, data: Mapping[str, Any], into: dict[str, Any]) -> None:
    """Apply an action's declared effects to recorded data: fields, constants, clears and counters."""
    for name, field in spec.fields.items():
        if name not in data:
            continue
        key = field.into or name
        if field.append:
            into.setdefault(key, []).append(data[name])
        else:
            into[key] = data[name]
    into.update(spec.sets)
    for name in spec.clears:
        into.pop(name, None)
    for name in spec.increments:
        into[name] = into.get(name, 0) + 1
