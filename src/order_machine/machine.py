"""Compile a Definition once into a `transitions` machine and a dispatch table; fire actions on it.

The only module that imports `transitions`. Per-entity state is a plain string: no machine is built
per entity. Imports `definition`, `errors`, `events` and `expressions`; never a store, bus or web framework.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from transitions.extensions.asyncio import AsyncMachine

from .definition import ActionSpec, Definition, FieldSpec, GuardSpec, check_definition, load_definition
from .errors import DefinitionError, InvalidCommandError, Problem, TransitionNotAllowedError
from .expressions import EvaluationError, Expression, compile_expression

Guard = Callable[[Any, Mapping[str, Any]], "bool | Awaitable[bool]"]
Hook = Callable[[Any, "Transition", Mapping[str, Any]], "Awaitable[None] | None"]

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Anything with an async publish(event): the event bus, or a test's recorder."""

    async def publish(self, event: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Transition:
    """One compiled edge of the machine."""

    action: str
    source: str
    target: str
    guards: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    emits: str | None = None


_NO_DATA: Mapping[str, Any] = {}


class ExpressionGuard:
    """A guard compiled from its `when:` condition (CEL), run against the subject's data.

    The condition reads the mapping `subject.guard_context()` returns (the instance's data and `state`),
    and `input`, the action's checked data. Raises EvaluationError when the condition cannot be evaluated.
    """

    __slots__ = ("expression",)

    def __init__(self, expression: Expression) -> None:
        self.expression = expression

    def __call__(self, subject: Any, data: Mapping[str, Any]) -> bool:
        own = getattr(subject, "guard_context", None)
        context = dict(own()) if own is not None else {}
        context["input"] = data
        return self.expression.evaluate(context)

    def __repr__(self) -> str:
        return f"ExpressionGuard({self.expression.source!r})"


class Machine:
    """A definition compiled once: who may go where, by which action, under which guards."""

    def __init__(
        self,
        definition: Definition,
        guards: Mapping[str, Guard] | None = None,
        hooks: Mapping[str, Hook] | None = None,
    ) -> None:
        self.definition = definition
        self.name = definition.name
        self.initial = definition.initial
        self._guards = dict(guards or {})
        self._hooks = dict(hooks or {})
        where = f"<definition {self.name}>"
        problems = check_definition(definition, where)  # a Definition built by hand gets the same checks
        conditions = [g for g in definition.guards if g.when is not None]
        problems += [Problem(f"guard {g.name!r} has a `when:` condition and is also registered in Python", where,
                             hint="keep one: remove `when:` from the YAML or the Python registration")
                     for g in conditions if g.name in self._guards]
        problems += _registration_problems(
            "guard", [g.name for g in definition.guards], self._guards, where,
            conditions={g.name for g in conditions})
        problems += _registration_problems("hook", [h.name for h in definition.hooks], self._hooks, where)
        if problems:
            raise DefinitionError(problems, where)
        # checked above, so every condition compiles; compiled here once, never per evaluation
        for g in conditions:
            self._guards[g.name] = ExpressionGuard(compile_expression(g.when or ""))
        self._guard_refusals = {g.name: _refusal_reason(g) for g in definition.guards}
        # The transitions library holds the graph; we read its compiled events into a flat table so a
        # dispatch is a dict lookup and no per-entity model is ever registered with it.
        self.transitions_machine = AsyncMachine(
            model=None,
            states=definition.state_names,
            initial=definition.initial,
            transitions=[
                {"trigger": t.action, "source": s, "dest": t.target, "conditions": list(t.guards)}
                for s, t in definition.edges()
            ],
            auto_transitions=False,
            send_event=True,
        )
        specs = {(s, t.action, t.target, tuple(t.guards)): t for s, t in definition.edges()}
        table: dict[tuple[str, str], list[Transition]] = {}
        for action, event in self.transitions_machine.events.items():
            for source, compiled in event.transitions.items():
                for tr in compiled:
                    guard_names = tuple(str(c.func) for c in tr.conditions)
                    dest = source if tr.dest is None else tr.dest  # None only for internal transitions
                    spec = specs[(source, action, dest, guard_names)]
                    table.setdefault((source, action), []).append(
                        Transition(action, source, dest, guard_names, tuple(spec.hooks), spec.emits)
                    )
        self._table: dict[tuple[str, str], tuple[Transition, ...]] = {k: tuple(v) for k, v in table.items()}
        self._unguarded = {k: v[0] for k, v in self._table.items() if len(v) == 1 and not v[0].guards}
        # allowed actions are listed in the order the definition declares its actions
        self._allowed: dict[str, tuple[str, ...]] = {
            s: tuple(a for a in definition.action_names if (s, a) in self._table) for s in definition.state_names
        }
        self._actions: dict[str, ActionSpec] = {a.name: a for a in definition.actions}
        self._terminal = frozenset(definition.terminal_states)
        self.action_methods: dict[str, str] = {snake_case(a): a for a in definition.action_names}
        self.counters, self.lists, self.recorded = _recorded_names(definition)

    @classmethod
    def from_file(cls, path: str | Path, guards: Mapping[str, Guard] | None = None,
                  hooks: Mapping[str, Hook] | None = None) -> Machine:
        return cls(load_definition(path), guards, hooks)

    # ----------------------------------------------------------------- questions

    @property
    def states(self) -> list[str]:
        return self.definition.state_names

    @property
    def actions(self) -> list[str]:
        return self.definition.action_names

    def allowed_actions(self, state: str) -> tuple[str, ...]:
        """Actions declared from this state (guards not evaluated)."""
        return self._allowed.get(state, ())

    def is_terminal(self, state: str) -> bool:
        return state in self._terminal

    def transitions_from(self, state: str, action: str) -> tuple[Transition, ...]:
        return self._table.get((state, action), ())

    def target_actions(self, state: str, target: str) -> list[str]:
        """Actions that lead from `state` to `target` (for 'update status' commands)."""
        return [a for a in self.allowed_actions(state) if any(t.target == target for t in self._table[(state, a)])]

    def declares(self, action: str) -> bool:
        return action in self._actions

    def action_spec(self, action: str) -> ActionSpec | None:
        return self._actions.get(action)

    # ----------------------------------------------------------------- dispatch

    def unguarded(self, state: str, action: str) -> Transition | None:
        """The transition when it is the only one for (state, action) and has no guard, else None."""
        return self._unguarded.get((state, action))

    def require_allowed(self, entity_id: str, state: str, action: str) -> None:
        """Refuse (with reasons) an action that is undeclared or has no transition from `state`."""
        if (state, action) not in self._table:
            raise self._refusal(entity_id, state, action)

    def _refusal(self, entity_id: str, state: str, action: str) -> TransitionNotAllowedError:
        if action not in self._actions:
            return TransitionNotAllowedError(
                entity_id, action, state, self.allowed_actions(state),
                reason=f"action {action!r} is not declared in definition {self.name!r}",
            )
        return TransitionNotAllowedError(entity_id, action, state, self.allowed_actions(state))

    async def select(
        self, entity_id: str, state: str, action: str, subject: Any = None,
        data: Mapping[str, Any] = _NO_DATA,
    ) -> Transition:
        """The transition `action` takes from `state`, after its guards; refuses with reasons."""
        options = self._table.get((state, action))
        if options is None:
            raise self._refusal(entity_id, state, action)
        refused_by = reason = None
        for option in options:
            for name in option.guards:
                try:
                    verdict = self._guards[name](subject, data)
                except EvaluationError as exc:  # a condition that cannot be evaluated says no, and why
                    logger.warning("%s %s: %s from %s: guard %r could not be evaluated: %s",
                                   self.name, entity_id, action, state, name, exc)
                    refused_by, reason = name, f"guard {name!r} could not be evaluated: {exc}"
                    break
                if verdict.__class__ is not bool and inspect.isawaitable(verdict):  # most guards are sync
                    verdict = await verdict
                if not verdict:
                    refused_by, reason = name, self._guard_refusals.get(name)
                    break
            else:
                return option
        raise TransitionNotAllowedError(entity_id, action, state, self.allowed_actions(state),
                                        guard=refused_by, reason=reason)

    async def blocked_by(self, state: str, action: str, subject: Any = None,
                         data: Mapping[str, Any] = _NO_DATA) -> str | None:
        """The guard that would refuse `action` from `state` now (read-only), None when one transition passes.

        For telling a caller why an allowed action would be refused; dispatch goes through select().
        Guards are asked about `subject` as it is, with `data` (none by default: the action's fields are
        not known yet). An action with no transition from `state` is not "blocked": it is not allowed.
        """
        refused_by = None
        for option in self._table.get((state, action), ()):
            for name in option.guards:
                verdict = self._guards[name](subject, data)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
                if not verdict:
                    refused_by = name
                    break
            else:
                return None
        return refused_by

    def guard_description(self, name: str) -> str:
        """What a guard checks, from the definition (empty when it says nothing)."""
        return next((g.description for g in self.definition.guards if g.name == name), "")

    async def run_hooks(self, transition: Transition, subject: Any, data: Mapping[str, Any]) -> None:
        for name in transition.hooks:
            result = self._hooks[name](subject, transition, data)
            if inspect.isawaitable(result):
                await result

    def check_data(self, action: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """The action's data, checked against its declared fields and converted to their types."""
        spec = self._actions.get(action)
        if spec is None:
            return dict(data)
        if not spec.fields:
            if data:
                raise InvalidCommandError(f"action {action!r} takes no data, got {', '.join(data)}", next(iter(data)))
            return {}
        return check_fields(spec.fields, data, f"action {action!r}")


def snake_case(name: str) -> str:
    """StartProcessing -> start_processing: the Python verb of an action."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", name).lower()


def _refusal_reason(guard: GuardSpec) -> str | None:
    """What a refusal by this guard says: its description and its condition, when it has them."""
    said = [guard.description] if guard.description else []
    if guard.when is not None:
        said.append(f"({guard.when.strip()})")
    return f"guard {guard.name!r} refused: {' '.join(said)}" if said else None


def _registration_problems(kind: str, declared: list[str], registered: Mapping[str, Any], where: str,
                           conditions: set[str] | frozenset[str] = frozenset()) -> list[Problem]:
    or_when = ", or give it a CEL condition with `when:` in the YAML" if kind == "guard" else ""
    problems = [Problem(f"{kind} {name!r} is declared but not registered", where,
                        hint=f"pass it to Machine(..., {kind}s={{{name!r}: ...}}) or Workflow.compile(){or_when}")
                for name in declared if name not in registered and name not in conditions]
    problems += [Problem(f"{kind} {name!r} is registered but the definition does not declare it", where,
                         hint=f"declare it under {kind}s: in the YAML, or check its spelling "
                              f"(declared: {', '.join(declared) or 'none'})")
                 for name in registered if name not in declared]
    for name, fn in registered.items():
        if not callable(fn):
            problems.append(Problem(f"{kind} {name!r} is registered as {fn!r}, which is not callable", where))
    return problems


def _recorded_names(definition: Definition) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """Counters (start at 0), appended lists (start empty) and every name an entity may record."""
    counters: list[str] = []
    lists: list[str] = []
    recorded = set(definition.data)
    for a in definition.actions:
        for name, f in a.fields.items():
            target = f.into or name
            recorded.add(target)
            if f.append and target not in lists:
                lists.append(target)
        recorded.update(a.sets)
        recorded.update(a.clears)
        for name in a.increments:
            recorded.add(name)
            if name not in counters:
                counters.append(name)
    return tuple(counters), tuple(lists), frozenset(recorded)


def check_fields(specs: Mapping[str, FieldSpec], data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Validate `data` against declared fields: unknown and missing names, and each value's type."""
    unknown = [k for k in data if k not in specs]
    if unknown:
        raise InvalidCommandError(
            f"{what}: unknown field {unknown[0]!r}; declared: {', '.join(specs) or 'none'}", unknown[0]
        )
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        value = data.get(name)
        if value is None or value == "":
            if spec.required:
                raise InvalidCommandError(f"{what}: field {name!r} is required", name)
            continue
        out[name] = _convert(value, spec, name, what)
    return out


def _convert(value: Any, spec: FieldSpec, name: str, what: str) -> Any:
    def bad(expected: str) -> InvalidCommandError:
        return InvalidCommandError(f"{what}: field {name!r} must be {expected}, got {value!r}", name)

    kind = spec.type
    if kind == "str":
        if not isinstance(value, str):
            raise bad("text")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad("an integer")
        try:
            return int(value)
        except ValueError:
            raise bad("an integer") from None
    if kind == "decimal":
        if isinstance(value, (bool, float)):
            raise bad("a decimal string or Decimal (floats lose cents)")
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise bad("a decimal") from None
        if not result.is_finite():
            raise bad("a finite decimal")
        return result
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "datetime":
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value))
            except ValueError:
                raise bad("an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise bad("a time with a UTC offset")
        return parsed
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return list(value)
    if not isinstance(value, Mapping):
        raise bad("a mapping")
    return dict(value)


def convert_value(value: Any, spec: FieldSpec, name: str, what: str) -> Any:
    """One value converted to its declared field type (JSON forms accepted: decimal and time strings);
    raises InvalidCommandError naming the field."""
    return _convert(value, spec, name, what)
