"""Static checks of a definition's names and types: names bounded in length, and every recorded name holding
one type wherever it is given (a data field, an action's field or its `into`, an `append`, a counter, a
`sets` constant). Part of `checks.check_data`; works on the plain data read from YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Loc = tuple[str | int, ...]
Add = Callable[[str, Loc, str], None]
MAX_NAME = 100            # states, actions, guards, hooks, fields, events
MAX_DEFINITION_NAME = 64


def strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def entries(data: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = data.get(key)
    if isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, Mapping):
                yield i, entry


def _too_long(name: str, limit: int) -> str:
    return f"{name[:40]!r}... is {len(name)} characters long; names may have at most {limit}"


def check_name_lengths(data: Mapping[str, Any], add: Add) -> None:
    """Names end up in events, URLs and logs: bounded, whatever the schema's patterns allow."""
    name = data.get("name")
    if isinstance(name, str) and len(name) > MAX_DEFINITION_NAME:
        add(_too_long(name, MAX_DEFINITION_NAME), ("name",), "shorten the definition's name")
    for key in ("states", "actions", "guards", "hooks"):
        for i, entry in entries(data, key):
            value = entry.get("name")
            if isinstance(value, str) and len(value) > MAX_NAME:
                add(_too_long(value, MAX_NAME), (key, i, "name"), "shorten it")
    for i, entry in entries(data, "transitions"):
        emits = entry.get("emits")
        if isinstance(emits, str) and len(emits) > MAX_NAME:
            add(_too_long(emits, MAX_NAME), ("transitions", i, "emits"), "shorten the event name")
    named: list[tuple[Any, Loc]] = []
    if isinstance(data.get("data"), Mapping):
        named += [(k, ("data", str(k))) for k in data["data"]]
    for i, action in entries(data, "actions"):
        fields = action.get("fields")
        if isinstance(fields, Mapping):
            for k, spec in fields.items():
                named.append((k, ("actions", i, "fields", str(k))))
                if isinstance(spec, Mapping):
                    named.append((spec.get("into"), ("actions", i, "fields", str(k), "into")))
        for key in ("sets", "clears", "increments"):
            value = action.get(key)
            names = list(value) if isinstance(value, Mapping) else strings(value)
            named += [(k, ("actions", i, key)) for k in names]
    for value, loc in named:
        if isinstance(value, str) and len(value) > MAX_NAME:
            add(_too_long(value, MAX_NAME), loc, "shorten the field name")


_KINDS = {"str", "int", "decimal", "bool", "datetime", "list", "dict"}


def _kind_of_constant(value: Any) -> str | None:
    """The field type a `sets:` constant records (None: one no field type names, e.g. null)."""
    if isinstance(value, bool):
        return "bool"
    for kind, types in (("int", (int,)), ("decimal", (float,)), ("str", (str,)), ("list", (list,)),
                        ("dict", (Mapping,))):
        if isinstance(value, types):
            return kind
    return None


def check_types(data: Mapping[str, Any], add: Add) -> None:
    """Every recorded name holds one type: a declared data field, an action's field (or its `into`), an
    `append` (a list), a counter (`increments`, an int) and a `sets` constant must agree, or the entity
    would hold a value of the wrong type (or fail) at run time."""
    first: dict[str, tuple[str, str]] = {}  # recorded name -> (kind, where it was first given that kind)

    def record(name: str, kind: str, where: str, loc: Loc, hint: str) -> None:
        if kind not in _KINDS:
            return  # an unknown type is the schema's to report
        known = first.get(name)
        if known is None:
            first[name] = (kind, where)
        elif known[0] != kind:
            add(f"{where} records {name!r} as {_a(kind)}, but {known[1]} records it as {_a(known[0])}",
                loc, hint)

    declared = data.get("data")
    if isinstance(declared, Mapping):
        for name, spec in declared.items():
            kind = spec.get("type", "str") if isinstance(spec, Mapping) else None
            if isinstance(name, str) and isinstance(kind, str):
                record(name, kind, f"data field {name!r}", ("data", name), "")
    for i, action in entries(data, "actions"):
        label = f"action {action.get('name')!r}"
        fields = action.get("fields")
        if isinstance(fields, Mapping):
            for name, spec in fields.items():
                if not isinstance(spec, Mapping):
                    continue
                into, kind, append = spec.get("into"), spec.get("type", "str"), spec.get("append", False)
                target = into if isinstance(into, str) else str(name)
                loc: Loc = ("actions", i, "fields", str(name))
                if append is True:
                    record(target, "list", f"{label} (field {name!r}, append)", loc,
                           "append needs a list: declare it `type: list` everywhere or record it elsewhere")
                elif isinstance(kind, str):
                    record(target, kind, f"{label} (field {name!r})", loc,
                           "give the field the same type, or record it under another name with `into:`")
        sets = action.get("sets")
        if isinstance(sets, Mapping):
            for name, value in sets.items():
                kind = _kind_of_constant(value)
                if kind is not None:
                    record(str(name), kind, f"{label} (sets)", ("actions", i, "sets", str(name)),
                           "set a value of the declared type (quote text, write decimals as text)")
        for k, name in enumerate(strings(action.get("increments"))):
            record(name, "int", f"{label} (increments)", ("actions", i, "increments", k),
                   "a counter is an int: count into a name nothing else records")


def _a(kind: str) -> str:
    return {"int": "an int", "str": "text (str)", "list": "a list", "dict": "a mapping (dict)",
            "decimal": "a decimal", "bool": "a bool", "datetime": "a datetime"}.get(kind, kind)
