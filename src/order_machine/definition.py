"""Definitions as data: the pydantic model of a workflow, its YAML loader and its JSON schema.

Owns the definition format; static checks live in `checks`, YAML-with-lines in `yaml_lines`, the
Python builder in `builder`.
Imports only `errors`, `checks`, `yaml_lines`, pydantic and PyYAML.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .checks import LineOf, check_data
from .checks_names import Loc
from .errors import DefinitionError, Problem
from .yaml_lines import YAML11_BOOLEANS, LocatedData, read_yaml, size_problem

__all__ = [
    "ActionSpec", "Definition", "FieldSpec", "GuardSpec", "HookSpec", "MigrationSpec", "StateSpec",
    "TransitionSpec", "YAML11_BOOLEANS", "check_definition", "definition_files", "json_schema",
    "load_definition", "load_definitions", "parse_definition", "validate_definition",
]

FieldType = Literal["str", "int", "decimal", "bool", "datetime", "list", "dict"]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
DEFINITION_NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
#: fields an action (or a definition's `data`) may declare: each is checked on every command that carries it
MAX_FIELDS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(_Model):
    """One piece of data an action carries (or an entity is created with)."""

    type: FieldType = Field(default="str", description="how the value is checked and converted")
    required: bool = Field(default=False, strict=True)
    description: str = ""
    into: str | None = Field(default=None, description="record under this name (default: the field's own)")
    append: bool = Field(default=False, strict=True, description="append to a list instead of replacing")

    @property
    def target(self) -> str | None:
        return self.into


class StateSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="e.g. Pending")
    description: str = ""
    terminal: bool = Field(default=False, strict=True, description="no transition may leave it")


class ActionSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="e.g. Confirm")
    description: str = ""
    fields: dict[str, FieldSpec] = Field(default_factory=dict, max_length=MAX_FIELDS,
                                         description="data the action carries")
    sets: dict[str, Any] = Field(default_factory=dict, description="constant values the action records")
    clears: list[str] = Field(default_factory=list, description="recorded fields the action clears")
    increments: list[str] = Field(default_factory=list, description="counters the action adds one to")


class GuardSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="registered in Python under this name, unless it has `when`")
    description: str = ""
    when: str | None = Field(default=None, description="a CEL condition over the instance's data, `state` and "
                             "`input` (the action's data), e.g. amount > 0 || size(items) > 0; see docs/guards.md")


class HookSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="registered in Python under this name")
    description: str = ""


def _one_or_many_schema(schema: dict[str, Any]) -> None:
    # YAML may write `from: Pending` or `from: [Pending, Confirmed]`; tell editors both are fine
    items = schema.pop("items", {"type": "string"})
    schema.pop("type", None)
    schema.pop("minItems", None)
    schema["anyOf"] = [{"type": "string"}, {"type": "array", "items": items, "minItems": 1}]


class TransitionSpec(_Model):
    action: str = Field(description="the action that takes this transition")
    source: list[str] = Field(alias="from", min_length=1, description="one state or a list of states",
                              json_schema_extra=_one_or_many_schema)
    target: str = Field(alias="to", description="the state it leads to")
    guards: list[str] = Field(default_factory=list, description="all must pass (evaluated in order)")
    hooks: list[str] = Field(default_factory=list, description="hooks run after the transition")
    description: str = ""
    emits: str | None = Field(default=None, description="past-tense event name, e.g. OrderShipped")

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class MigrationSpec(_Model):
    """How instances of an earlier version move to the version that declares this (`order-machine migrate`)."""

    from_version: int = Field(alias="from", ge=1, strict=True, description="the earlier version, e.g. 1")
    map: dict[str, str] = Field(default_factory=dict, description="state of that version -> state of this one, "
                                "e.g. {Open: New}; a state not listed keeps its name")


class Definition(_Model):
    """A whole workflow: states, actions, guards, hooks and the transitions between them."""

    name: str = Field(pattern=DEFINITION_NAME_PATTERN, description="lowercase, e.g. order")
    version: int = Field(default=1, ge=1, strict=True)  # schema.json says integer: "2" is refused
    description: str = ""
    initial: str = Field(description="the state every entity starts in")
    data: dict[str, FieldSpec] = Field(default_factory=dict, max_length=MAX_FIELDS,
                                       description="data an entity is created with")
    states: list[StateSpec] = Field(min_length=1)
    actions: list[ActionSpec] = Field(min_length=1)
    guards: list[GuardSpec] = Field(default_factory=list)
    hooks: list[HookSpec] = Field(default_factory=list)
    transitions: list[TransitionSpec] = Field(min_length=1)
    migrations: list[MigrationSpec] = Field(default_factory=list, description="how instances of earlier "
                                            "versions (in versions/) move to this one")

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
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# --------------------------------------------------------------------------- loading


def parse_definition(text: str, path: str = "<definition>") -> Definition:
    """Parse and check a definition from YAML text; raises DefinitionError listing every problem.

    Schema problems do not stop the semantic checks: those run on the raw data too, skipping only
    the parts too broken to judge.
    """
    data, located = read_yaml(text, path)
    problems = list(located.problems)
    if not isinstance(data, dict):
        problems.append(Problem(f"a definition must be a mapping (name:, initial:, states:, ...), "
                                f"not {type(data).__name__}", path, 1, "see definitions/order.yaml"))
        raise DefinitionError(problems, path)
    definition: Definition | None = None
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        schema_problems, word_locs = _schema_problems(exc, located, path)
        problems.extend(schema_problems)
        data = located.restore_words(data, word_locs)
    problems.extend(check_data(data, path, located.line_of))
    if problems or definition is None:
        problems.sort(key=lambda p: p.line or 0)
        raise DefinitionError(problems, path)
    return definition


def load_definition(path: str | Path) -> Definition:
    """Load, validate and check one YAML definition file."""
    p = Path(path)
    try:
        too_big = size_problem(p.stat().st_size, str(p))  # before reading: a huge file is never loaded
        if too_big is not None:
            raise DefinitionError([too_big], str(p))
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError([Problem(f"not UTF-8 text: {exc.reason}", str(p), None,
                                       "save the file as UTF-8")], str(p)) from None
    except OSError as exc:
        raise DefinitionError([Problem(f"cannot read: {exc.strerror or exc}", str(p))], str(p)) from None
    return parse_definition(text, str(p))


def definition_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into the definition files they hold (*.yaml, *.yml)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        else:
            files.append(p)
    return files


def load_definitions(folder: str | Path) -> dict[str, Definition]:
    """Load every definition in a folder, keyed by name; all files' problems are raised together."""
    found: dict[str, Definition] = {}
    where: dict[str, Path] = {}
    problems: list[Problem] = []
    for file in definition_files([folder]):
        try:
            d = load_definition(file)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if d.name in found:
            problems.append(Problem(f"definition name {d.name!r} is also used by {where[d.name]}", str(file), 1,
                                    "each definition in a folder needs its own name"))
        found[d.name], where[d.name] = d, file
    if problems:
        raise DefinitionError(problems, str(folder))
    return found


# --------------------------------------------------------------------------- schema problems

_CHILDREN: dict[type[BaseModel], dict[str, type[BaseModel]]] = {
    Definition: {"states": StateSpec, "actions": ActionSpec, "guards": GuardSpec, "hooks": HookSpec,
                 "transitions": TransitionSpec, "data": FieldSpec, "migrations": MigrationSpec},
    ActionSpec: {"fields": FieldSpec},
}
_MISSING_HINTS = {
    "name": "add `name: <lowercase-name>`",
    "initial": "add `initial: <state>`, the state every entity starts in",
    "states": "list them: `states: [{name: Pending}, ...]`",
    "actions": "list them: `actions: [{name: Confirm}, ...]`",
    "transitions": "list them: `transitions: [{action: Confirm, from: Pending, to: Confirmed}]`",
    "action": "name the action that takes this transition",
    "from": "name the state(s) it leaves",
    "to": "name the state it leads to",
}


def _where(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the definition"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel]:
    """The model that holds the last key of `loc` (pydantic reports unknown keys that way)."""
    model: type[BaseModel] = Definition
    parts = list(loc[:-1])
    i = 0
    while i < len(parts):
        child = _CHILDREN.get(model, {}).get(str(parts[i]))
        if child is None:
            break
        model, i = child, i + 2  # skip the list index or the mapping key
    return model


def _schema_problems(exc: ValidationError, located: LocatedData, path: str) -> tuple[list[Problem], list[Loc]]:
    """Problems for pydantic's errors, and where YAML 1.1 booleans stood in for words."""
    out: list[Problem] = []
    words: list[Loc] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        where, kind, got = _where(loc), err["type"], err.get("input")
        line = located.line_of(loc)
        if loc in located.booleans and kind != "missing":
            words.append(loc)
            out.append(located.boolean_problem(located.booleans[loc], line, f"{where}:"))
            continue
        hint = ""
        if kind == "extra_forbidden":
            known = [f.alias or n for n, f in _model_at(loc).model_fields.items()]
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = f"unknown key {loc[-1]!r} in {_where(loc[:-1])}"
            hint = (f"did you mean {close[0]!r}? " if close else "") + "known keys: " + ", ".join(known)
        elif kind == "missing":
            msg = f"missing required key {loc[-1]!r}" + (f" in {_where(loc[:-1])}" if len(loc) > 1 else "")
            hint = _MISSING_HINTS.get(str(loc[-1]), "")
        elif kind == "string_pattern_mismatch":
            msg = f"{where}: {got!r} is not a valid name"
            hint = ("lowercase letters, digits, - and _, starting with a letter" if loc == ("name",)
                    else "start with a letter; use letters, digits and _ only (e.g. StartProcessing)")
        elif kind == "literal_error":
            msg = f"{where}: {got!r} is not allowed"
            hint = f"use {err.get('ctx', {}).get('expected', '')}"
        elif kind == "too_short":
            msg, hint = f"{where} must not be empty", "list at least one"
        elif kind == "string_type":
            msg, hint = f"{where} must be text, got {got!r}", "quote it"
        elif kind in ("list_type", "dict_type", "model_type"):
            shape = {"list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}[kind]
            msg = f"{where} must be {shape}, got {type(got).__name__}"
            hint = "a state name or a list of them" if loc[-1] == "from" else ""
        elif kind.startswith("bool"):
            msg, hint = f"{where} must be true or false, got {got!r}", "write true or false, unquoted"
        elif kind.startswith("int"):
            msg, hint = f"{where} must be a whole number, got {got!r}", "write it unquoted, e.g. 2"
        elif kind == "too_long":
            ctx = err.get("ctx", {})
            count = len(got) if isinstance(got, (dict, list)) else "too many"  # pydantic stops counting a dict
            msg = f"{where} declares {count} entries; at most {ctx.get('max_length')} are allowed"
            hint = "split it into smaller actions or workflows"
        else:
            msg = f"{where}: {err['msg']}"
        out.append(Problem(msg, path, line, hint))
    return out, words


# --------------------------------------------------------------------------- checks and schema


def check_definition(definition: Definition, path: str = "<definition>", line_of: LineOf | None = None) -> list[Problem]:
    """Every semantic problem of a schema-valid definition, in file order."""
    return check_data(definition.model_dump(by_alias=True), path, line_of)


def validate_definition(definition: Definition) -> Definition:
    """Run the static checks on a definition built in Python; raise DefinitionError if any fail."""
    where = f"<definition {definition.name}>"
    problems = check_definition(definition, where)
    if problems:
        raise DefinitionError(problems, where)
    return definition


def json_schema() -> str:
    """The JSON Schema of the definition format, as written to definitions/schema.json."""
    schema = Definition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "order-machine workflow definition"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
