"""Entities driven by a compiled Machine: the shared dispatch steps and a generic Workflow for any definition.

Domain code: imports `machine`, `definition`, `events` and `errors`; never a store, bus or framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from datetime import datetime
from typing import Any

from .definition import ActionSpec, load_definition
from .errors import InvalidCommandError, NotInitialisedError, TransitionNotAllowedError
from .events import MachineInitialised, StateChanged, utcnow
from .machine import Guard, Hook, Machine, Publisher, Transition, check_fields, snake_case


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

    async def _notify_initialised(self, at: datetime | None = None) -> None:
        if self.publisher is not None:
            await self.publisher.publish(MachineInitialised(self.id, self.machine.name, self.state, at or utcnow()))

    async def _choose(self, action: str, data: Mapping[str, Any]) -> tuple[Transition, dict[str, Any]]:
        """Check the action's data and pick its transition; raises before anything changes."""
        self._require_initialised()
        action = str(action)
        # refuse an action the state does not allow before complaining about its data
        self.machine.require_allowed(self.id, self.state, action)
        checked = self.machine.check_data(action, data)
        unguarded = self.machine.unguarded(self.state, action)
        if unguarded is not None:  # most transitions: no guard to await, no coroutine to create
            return unguarded, checked
        return await self.machine.select(self.id, self.state, action, self, checked), checked

    async def _finish(self, transition: Transition, data: Mapping[str, Any], notice: StateChanged | None = None,
                      at: datetime | None = None) -> None:
        """Run the transition's hooks and tell the bus, after the state has changed."""
        if transition.hooks:  # most transitions have none: skip the coroutine
            await self.machine.run_hooks(transition, self, data)
        if self.publisher is not None:
            await self.publisher.publish(notice or StateChanged(
                self.id, self.machine.name, transition.source, transition.target, transition.action,
                at or utcnow(), data,
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

    Actions are also methods named by their snake_case verb that answer True/False like the
    reference (positional arguments fill the action's fields in declared order); recorded data
    reads as attributes (None until recorded):

    >>> payment = Workflow(Workflow.compile("definitions/payment.yaml"), "pay-1",
    ...                    amount="100.50", currency="USD", method="CreditCard")
    >>> await payment.initialise(); await payment.process(); await payment.complete("txn-1")
    >>> payment.state, payment.transaction_id
    ('Completed', 'txn-1')
    """

    def __init__(self, machine: Machine, entity_id: str, publisher: Publisher | None = None, **data: Any) -> None:
        super().__init__(machine, entity_id, publisher)
        declared = machine.definition.data
        self.data: dict[str, Any] = check_fields(declared, data, f"{machine.name} {entity_id}") if declared else dict(data)
        for name in machine.counters:
            self.data.setdefault(name, 0)
        for name in machine.lists:
            self.data.setdefault(name, [])
        self.history: list[StateChanged] = []

    @staticmethod
    def compile(path: str | Path, guards: Mapping[str, Guard] | None = None,
                hooks: Mapping[str, Hook] | None = None) -> Machine:
        """Load a definition file and compile it (do this once per process, then share the Machine)."""
        return Machine(load_definition(path), guards, hooks)

    def guard_context(self) -> dict[str, Any]:
        """What a guard's `when:` condition reads (docs/guards.md): the recorded data and `state`."""
        return {**self.data, "state": self.state}

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
        event = StateChanged(self.id, self.machine.name, transition.source, transition.target,
                             transition.action, utcnow(), checked)
        self.history.append(event)
        await self._finish(transition, checked, event)
        return transition

    def _verb(self, action: str) -> Callable[..., Awaitable[bool]]:
        fields = list(self.machine.action_spec(action).fields)  # type: ignore[union-attr]

        async def verb(*args: Any, **data: Any) -> bool:
            if len(args) > len(fields):
                raise InvalidCommandError(
                    f"{self.id}: {action} takes at most {len(fields)} value(s) ({', '.join(fields) or 'none'}), "
                    f"got {len(args)}")
            return await self.try_fire(action, **dict(zip(fields, args, strict=False)), **data)

        verb.__name__ = verb.__qualname__ = snake_case(action)
        verb.__doc__ = f"Fire {action!r}; True when taken, False when the machine refuses it."
        return verb

    def __getattr__(self, name: str) -> Any:
        # only called for names that are not real attributes: recorded data, then action verbs
        if name.startswith("__"):
            raise AttributeError(name)
        data = self.__dict__.get("data")
        machine = self.__dict__.get("machine")
        if data is not None and name in data:
            return data[name]
        if machine is not None:
            if name in machine.recorded:
                return None
            action = machine.action_methods.get(name)
            if action is not None:
                return self._verb(action)
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('id')!r} has no attribute or action {name!r}")


def record(spec: ActionSpec, data: Mapping[str, Any], into: dict[str, Any]) -> None:
    """Apply an action's declared effects to recorded data in place (the in-memory Workflow's way)."""
    recorded, cleared = transition_effects(spec, data, into)
    for name in cleared:
        del into[name]
    into.update(recorded)


def transition_effects(spec: ActionSpec | None, checked: Mapping[str, Any],
                       data: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What an action does to an entity's `data`: (the values it records, the names it clears).

    Fields, then constants, then clears, then counters, computed for the names the action touches only,
    before anything changes: they go into the transition's event, and
    replaying the event applies exactly these (the event, not today's definition, says what was recorded).
    """
    if spec is None or not (spec.fields or spec.sets or spec.clears or spec.increments):
        return {}, ()  # most actions record nothing: no work per command
    after: dict[str, Any] = {}
    for name, field in spec.fields.items():
        if name not in checked:
            continue
        key = field.into or name
        if field.append:
            values = after[key] if key in after else list(data.get(key) or ())
            values.append(checked[name])
            after[key] = values
        else:
            after[key] = checked[name]
    after.update(spec.sets)
    for name in spec.clears:
        after.pop(name, None)
    for name in spec.increments:
        after[name] = (after[name] if name in after else 0 if name in spec.clears else data.get(name, 0)) + 1
    return after, tuple(n for n in spec.clears if n in data and n not in after)
