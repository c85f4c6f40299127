"""Definitions as data: the pydantic model of a workflow, its YAML loader, static checks and builder.

Owns the definition format and every check made on it. Imports only `errors`, pydantic and PyYAML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import DefinitionError, Problem

FieldType = Literal["str", "int", "decimal", "bool", "datetime", "list", "dict"]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
YAML11_BOOLEANS = {"y", "n", "yes", "no", "on", "off"}

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(_Model):
    """One piece of data an action carries (or an entity is created with)."""

    type: FieldType = "str"
    required: bool = False
    description: str = ""
    into: str | None = Field(default=None, description="record under this name (default: the field's own)")
    append: bool = Field(default=False, description="append to a list instead of replacing")

    @property
    def target(self) -> str | None:
        return self.into


class StateSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    terminal: bool = False


class ActionSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    fields: dict[str, FieldSpec] = Field(default_factory=dict, description="data the action carries")
    sets: dict[str, Any] = Field(default_factory=dict, description="constant values the action records")
    clears: list[str] = Field(default_factory=list, description="recorded fields the action clears")
    increments: list[str] = Field(default_factory=list, description="counters the action adds one to")


class GuardSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""


class HookSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""


class TransitionSpec(_Model):
    action: str
    source: list[str] = Field(alias="from", min_length=1)
    target: str = Field(alias="to")
    guards: list[str] = Field(default_factory=list)
    hooks: list[str] = Field(default_factory=list, description="hooks run after the transition")
    description: str = ""
    emits: str | None = Field(default=None, description="past-tense event name, e.g. OrderShipped")

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Definition(_Model):
    """A whole workflow: states, actions, guards, hooks and the transitions between them."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: int = Field(default=1, ge=1)
    description: str = ""
    initial: str
    data: dict[str, FieldSpec] = Field(default_factory=dict, description="data an entity is created with")
    states: list[StateSpec] = Field(min_length=1)
    actions: list[ActionSpec] = Field(min_length=1)
    guards: list[GuardSpec] = Field(default_factory=list)
    hooks: list[HookSpec] = Field(default_factory=list)
    transitions: list[TransitionSpec] = Field(min_length=1)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    @property
    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]

    @property
    def terminal_states(self) -> list[str]:
        return [s.name for s in self.states if s.terminal]

    def state(self, name: str) -> StateSpec:
        return next(s for s in self.states if s.name == name)

    def action(self, name: str) -> ActionSpec:
        return next(a for a in self.actions if a.name == name)

    def edges(self) -> Iterable[tuple[str, TransitionSpec]]:
        """Every (source state, transition) pair in declaration order."""
        for t in self.transitions:
            for s in t.source:
                yield s, t

    def to_yaml(self) -> str:
        data = self.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- YAML with lines


class _Located:
    """Python data built from a YAML node tree, with the line of every path and the YAML traps."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._bools: dict[Loc, yaml.Node] = {}  # scalars YAML 1.1 read as booleans (on, no, ...)

    def build(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, (*loc, "<key>"))
                if isinstance(key, bool):
                    self.problems.append(self._boolean_problem(key_node, "key"))
                    key = key_node.value
                if key in out:
                    self.problems.append(
                        Problem(f"duplicate key {key!r}", self.path, key_node.start_mark.line + 1,
                                "each key may appear once; YAML keeps only the last")
                    )
                out[key] = self.build(value_node, (*loc, str(key)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node)
        if isinstance(value, bool) and node.value.lower() in YAML11_BOOLEANS and node.style is None:
            self._bools[loc] = node
        return value

    def _boolean_problem(self, node: yaml.Node, what: str) -> Problem:
        return Problem(
            f"{what} {node.value!r} was read as a boolean (YAML 1.1)",
            self.path,
            node.start_mark.line + 1,
            f"quote it: '{node.value}'",
        )

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        loc = tuple(loc)
        while loc not in self.lines and loc:
            loc = loc[:-1]
        return self.lines.get(loc)


def _read_yaml(text: str, path: str) -> tuple[Any, _Located]:
    located = _Located(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(
            [Problem(f"YAML syntax error: {problem}", path, line, "check indentation and quoting")], path
        ) from None
    if node is None:
        raise DefinitionError([Problem("the file is empty", path, 1, "start with `name:`")], path)
    try:
        data = located.build(node)
    except yaml.YAMLError as exc:
        raise DefinitionError([Problem(f"YAML error: {exc}", path, node.start_mark.line + 1)], path) from None
    return data, located


# --------------------------------------------------------------------------- loading


def parse_definition(text: str, path: str = "<definition>") -> Definition:
    """Parse and check a definition from YAML text; raises DefinitionError with every problem."""
    data, located = _read_yaml(text, path)
    problems = list(located.problems)
    if not isinstance(data, dict):
        problems.append(Problem("a definition must be a mapping (name:, states:, ...)", path, 1))
        raise DefinitionError(problems, path)
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, located, path))
        raise DefinitionError(problems, path) from None
    problems.extend(check_definition(definition, path, located.line_of))
    if problems:
        raise DefinitionError(problems, path)
    return definition


def load_definition(path: str | Path) -> Definition:
    """Load, validate and check one YAML definition file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([Problem(f"cannot read: {exc.strerror or exc}", str(p))], str(p)) from None
    return parse_definition(text, str(p))


def definition_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into the definition files they hold (*.yaml, *.yml)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
        else:
            files.append(p)
    return files


def load_definitions(folder: str | Path) -> dict[str, Definition]:
    """Load every definition in a folder, keyed by name; all files' problems are raised together."""
    found: dict[str, Definition] = {}
    problems: list[Problem] = []
    for file in definition_files([folder]):
        try:
            d = load_definition(file)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if d.name in found:
            problems.append(Problem(f"definition name {d.name!r} is used twice", str(file), 1))
        found[d.name] = d
    if problems:
        raise DefinitionError(problems, str(folder))
    return found


def _schema_problems(exc: ValidationError, located: _Located, path: str) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = _yaml_loc(err["loc"])
        where = ".".join(str(x) for x in loc) or "<top>"
        node = located._bools.get(loc)
        if node is not None and err["type"].startswith("string"):
            out.append(located._boolean_problem(node, f"{where}:"))
            continue
        kind = err["type"]
        if kind == "extra_forbidden":
            msg, hint = f"unknown key {where!r}", _known_keys_hint(loc)
        elif kind == "missing":
            msg, hint = f"missing required key {where!r}", ""
        else:
            msg, hint = f"{where}: {err['msg']}", ""
        out.append(Problem(msg, path, located.line_of(loc), hint))
    return out


def _yaml_loc(loc: Sequence[str | int]) -> Loc:
    # pydantic reports aliases already; lists of one-or-many sources keep their index
    return tuple(loc)


def _known_keys_hint(loc: Loc) -> str:
    models: dict[str, type[BaseModel]] = {
        "states": StateSpec, "actions": ActionSpec, "guards": GuardSpec, "hooks": HookSpec,
        "transitions": TransitionSpec, "fields": FieldSpec, "data": FieldSpec,
    }
    model: type[BaseModel] = Definition
    for part in loc[:-1]:
        if isinstance(part, str) and part in models:
            model = models[part]
    keys = [f.alias or n for n, f in model.model_fields.items()]
    return "known keys: " + ", ".join(keys)


# --------------------------------------------------------------------------- static checks


def check_definition(
    definition: Definition,
    path: str = "<definition>",
    line_of: Any = None,
) -> list[Problem]:
    """Every semantic problem of a schema-valid definition, in file order."""
    line = line_of or (lambda loc: None)
    problems: list[Problem] = []

    def add(message: str, loc: Loc, hint: str = "") -> None:
        problems.append(Problem(message, path, line(loc), hint))

    states = _index_unique(definition.states, "state", "states", add)
    actions = _index_unique(definition.actions, "action", "actions", add)
    guards = _index_unique(definition.guards, "guard", "guards", add)
    hooks = _index_unique(definition.hooks, "hook", "hooks", add)
    known_states = ", ".join(states) or "none"

    if definition.initial not in states:
        add(f"initial state {definition.initial!r} is not declared", ("initial",), f"declared states: {known_states}")

    for i, t in enumerate(definition.transitions):
        if t.action not in actions:
            add(f"transition {i + 1} uses unknown action {t.action!r}", ("transitions", i, "action"),
                f"declare it under actions: or use one of {', '.join(actions) or 'none'}")
        for j, s in enumerate(t.source):
            if s not in states:
                add(f"transition {i + 1} starts from unknown state {s!r}", ("transitions", i, "from", j),
                    f"declared states: {known_states}")
        if t.target not in states:
            add(f"transition {i + 1} goes to unknown state {t.target!r}", ("transitions", i, "to"),
                f"declared states: {known_states}")
        for g in t.guards:
            if g not in guards:
                add(f"transition {i + 1} names unknown guard {g!r}", ("transitions", i, "guards"),
                    "declare it under guards: (and register it in Python)")
        for h in t.hooks:
            if h not in hooks:
                add(f"transition {i + 1} names unknown hook {h!r}", ("transitions", i, "hooks"),
                    "declare it under hooks: (and register it in Python)")

    for k, a in enumerate(definition.actions):
        for field_name in list(a.fields) + a.clears + a.increments + list(a.sets):
            if not field_name.isidentifier():
                add(f"action {a.name!r}: {field_name!r} is not a valid field name", ("actions", k), "use snake_case")

    outgoing: dict[str, list[int]] = {s: [] for s in states}
    for i, t in enumerate(definition.transitions):
        for s in t.source:
            if s in outgoing:
                outgoing[s].append(i)

    for s, spec_index in states.items():
        spec = definition.states[spec_index]
        if spec.terminal and outgoing[s]:
            add(f"terminal state {s!r} has outgoing transitions", ("states", spec_index),
                "remove `terminal: true` or the transitions leaving it")
        if not spec.terminal and not outgoing[s]:
            add(f"state {s!r} has no way out and is not terminal", ("states", spec_index),
                "add a transition from it or mark it `terminal: true`")

    if definition.initial in states:
        reached = _reachable(definition, definition.initial)
        for s, spec_index in states.items():
            if s not in reached:
                add(f"state {s!r} cannot be reached from {definition.initial!r}", ("states", spec_index),
                    "add a transition into it or remove it")

    seen: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(definition.transitions):
        for s in t.source:
            seen.setdefault((s, t.action), []).append(i)
    for (s, a), indexes in seen.items():
        if len(indexes) < 2:
            continue
        for pos, i in enumerate(indexes):
            t = definition.transitions[i]
            later = indexes[pos + 1:]
            if not t.guards and later:
                add(f"{a!r} from {s!r} is ambiguous: transition {i + 1} has no guard, so transitions "
                    f"{', '.join(str(j + 1) for j in later)} can never be taken", ("transitions", i),
                    "give every transition of the same state and action a guard, the unguarded one last")
                break
            dupes = [j for j in later if set(definition.transitions[j].guards) == set(t.guards) and t.guards]
            if dupes:
                add(f"{a!r} from {s!r} is ambiguous: transitions {i + 1} and {dupes[0] + 1} have the same guards",
                    ("transitions", dupes[0]), "guards must tell transitions of the same state and action apart")
                break

    problems.sort(key=lambda p: (p.line or 0))
    return problems


def _index_unique(items: Sequence[Any], what: str, key: str, add: Any) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in index:
            add(f"duplicate {what} {item.name!r}", (key, i, "name"), f"{what} names must be unique")
        else:
            index[item.name] = i
    return index


def _reachable(definition: Definition, start: str) -> set[str]:
    graph: dict[str, set[str]] = {}
    for s, t in definition.edges():
        graph.setdefault(s, set()).add(t.target)
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def validate_definition(definition: Definition) -> Definition:
    """Run the static checks on a definition built in Python; raise DefinitionError if any fail."""
    problems = check_definition(definition, f"<definition {definition.name}>")
    if problems:
        raise DefinitionError(problems, f"<definition {definition.name}>")
    return definition


def json_schema() -> str:
    """The JSON Schema of the definition format, as written to definitions/schema.json."""
    schema = Definition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "order-machine workflow definition"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- builder


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
        self._guards: dict[str, str] = {}
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

    def guard(self, name: str, description: str = "") -> DefinitionBuilder:
        self._guards[name] = description
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
                "guards": [{"name": n, "description": d} for n, d in self._guards.items()],
                "hooks": [{"name": n, "description": d} for n, d in self._hooks.items()],
                "transitions": self._transitions,
            })
        except ValidationError as exc:
            raise DefinitionError([Problem(f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in exc.errors()]) from None
        return validate_definition(definition)
