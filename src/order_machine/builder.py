"""Build a workflow definition in Python, in the reference library's chain style.

Yields the same `Definition` the YAML loader does, with the same checks. Imports `definition`, `errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from .definition import Definition, FieldSpec, validate_definition
from .errors import DefinitionError, Problem


class _StateBuilder:
    def __init__(self, parent: DefinitionBuilder, state: str) -> None:
        self._parent, self._state = parent, state
        self._action: str | None = None
        self._options: dict[str, Any] = {}

    def on_action(self, action: str, *, guards: Sequence[str] = (), hooks: Sequence[str] = (),
                  emits: str | None = None, description: str = "") -> _StateBuilder:
        """Start a transition out of this state; finish it with to_state()."""
        if self._action is not None:
            raise DefinitionError([Problem(f"on_action({self._action!r}) from {self._state!r} has no to_state()")])
        self._action = str(action)
        self._options = {"guards": list(guards), "hooks": list(hooks), "emits": emits, "description": description}
        return self

    def to_state(self, target: str) -> _StateBuilder:
        if self._action is None:
            raise DefinitionError([Problem(f"to_state({target!r}) in {self._state!r} needs on_action() first")])
        self._parent._add_transition(self._state, self._action, str(target), self._options)
        self._action = None
        return self

    def build(self) -> DefinitionBuilder:
        if self._action is not None:
            raise DefinitionError([Problem(f"on_action({self._action!r}) from {self._state!r} has no to_state()")])
        return self._parent


class DefinitionBuilder:
    """Build a definition in Python, in the reference's chain style.

    >>> d = (DefinitionBuilder.create("simple").initial_state("Init")
    ...      .on_action("Start").to_state("Done").build()
    ...      .add_state("Done", terminal=True).build().build_definition())
    """

    def __init__(self, name: str, description: str = "", version: int = 1) -> None:
        self._head: dict[str, Any] = {"name": name, "description": description, "version": version}
        self._initial: str | None = None
        self._states: dict[str, dict[str, Any]] = {}
        self._actions: dict[str, dict[str, Any]] = {}
        self._guards: dict[str, dict[str, Any]] = {}
        self._hooks: dict[str, str] = {}
        self._data: dict[str, FieldSpec] = {}
        self._transitions: list[dict[str, Any]] = []

    @classmethod
    def create(cls, name: str, description: str = "", version: int = 1) -> DefinitionBuilder:
        return cls(name, description, version)

    def initial_state(self, state: str, *, description: str = "", terminal: bool = False) -> _StateBuilder:
        self._initial = str(state)
        return self.add_state(state, description=description, terminal=terminal)

    def add_state(self, state: str, *, description: str = "", terminal: bool = False) -> _StateBuilder:
        self._states[str(state)] = {"name": str(state), "description": description, "terminal": terminal}
        return _StateBuilder(self, str(state))

    def action(self, name: str, *, description: str = "", fields: Mapping[str, FieldSpec | Mapping[str, Any]] | None = None,
               sets: Mapping[str, Any] | None = None, clears: Sequence[str] = (),
               increments: Sequence[str] = ()) -> DefinitionBuilder:
        """Describe an action: its data fields and what it records or clears."""
        self._actions[str(name)] = {
            "name": str(name), "description": description, "fields": dict(fields or {}),
            "sets": dict(sets or {}), "clears": list(clears), "increments": list(increments),
        }
        return self

    def guard(self, name: str, description: str = "", when: str | None = None) -> DefinitionBuilder:
        """Declare a guard: registered in Python, or with `when` a CEL condition (docs/guards.md)."""
        self._guards[name] = {"name": name, "description": description, "when": when}
        return self

    def hook(self, name: str, description: str = "") -> DefinitionBuilder:
        self._hooks[name] = description
        return self

    def data(self, name: str, spec: FieldSpec | Mapping[str, Any]) -> DefinitionBuilder:
        self._data[name] = spec if isinstance(spec, FieldSpec) else FieldSpec.model_validate(spec)
        return self

    def _add_transition(self, state: str, action: str, target: str, options: dict[str, Any]) -> None:
        self._actions.setdefault(action, {"name": action})
        for t in self._transitions:  # one transition may leave several states
            if (t["action"], t["to"], t["guards"], t["hooks"], t["emits"], t["description"]) == (
                action, target, options["guards"], options["hooks"], options["emits"], options["description"]
            ) and state not in t["from"]:
                t["from"].append(state)
                return
        self._transitions.append({"action": action, "from": [state], "to": target, **options})

    def build_definition(self) -> Definition:
        """Validate and check the definition; raises DefinitionError listing every problem."""
        if self._initial is None:
            raise DefinitionError([Problem("no initial state: call initial_state() first")])
        try:
            definition = Definition.model_validate({
                **self._head,
                "initial": self._initial,
                "data": self._data,
                "states": list(self._states.values()),
                "actions": list(self._actions.values()),
                "guards": list(self._guards.values()),
                "hooks": [{"name": n, "description": d} for n, d in self._hooks.items()],
                "transitions": self._transitions,
            })
        except ValidationError as exc:
            raise DefinitionError([Problem(f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in exc.errors()]) from None
        return validate_definition(definition)
