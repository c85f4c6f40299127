"""Static checks of a definition's plain data: every semantic problem at once, each located and hinted.

Works on the dicts and lists read from YAML (or a model's dump), so it still runs when other parts of a
file fail the schema; it skips only what cannot be judged. Imports only `errors` and `expressions`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import Problem
from .expressions import ExpressionSyntaxError, compile_expression
from .checks_names import (
    Add, Loc, check_name_lengths, check_types, entries as _entries, strings as _strings,
)

_STATE_KEYS = {"name", "description", "terminal"}
LineOf = Callable[[Loc], "int | None"]


def check_data(data: Mapping[str, Any], path: str = "<definition>", line_of: LineOf | None = None) -> list[Problem]:
    """Every semantic problem of a definition's data, sorted by line.

    Checks duplicate names, the initial state, every name a transition uses, field names, what actions
    clear, guard conditions (CEL syntax and the names they read), unused actions/guards/hooks, terminal
    states with a way out, non-terminal dead ends, unreachable states and transitions no guard tells apart. Parts with the wrong shape are skipped
    (the schema reports them).
    """
    line = line_of or (lambda loc: None)
    problems: list[Problem] = []

    def add(message: str, loc: Loc, hint: str = "") -> None:
        problems.append(Problem(message, path, line(loc), hint))

    states = _unique_names(data, "states", "state", add)
    actions = _unique_names(data, "actions", "action", add)
    guards = _unique_names(data, "guards", "guard", add)
    hooks = _unique_names(data, "hooks", "hook", add)
    transitions = _transitions(data)

    initial = data.get("initial")
    if isinstance(initial, str) and states is not None and initial not in states:
        add(f"initial state {initial!r} is not declared", ("initial",), _did_you_mean(initial, states, "states"))

    # with no readable transition list, "unused" and "dead end" would only echo the schema's complaint
    readable = isinstance(data.get("transitions"), list)
    _check_references(transitions, states, actions, guards, hooks, add, report_unused=readable)
    check_name_lengths(data, add)
    recorded = _check_actions(data, add)
    check_types(data, add)
    _check_guard_conditions(data, recorded, transitions, add)
    if states is not None and readable:
        _check_states(data, states, transitions, initial if isinstance(initial, str) else None, add)
    _check_ambiguity(transitions, add)

    problems.sort(key=lambda p: p.line or 0)
    return problems


# --------------------------------------------------------------------------- reading the data


class _Edge:
    """One transition entry as far as it could be read."""

    def __init__(self, index: int, entry: Mapping[str, Any]) -> None:
        self.index = index
        self.number = index + 1
        action, target = entry.get("action"), entry.get("to")
        self.action = action if isinstance(action, str) else None
        self.target = target if isinstance(target, str) else None
        raw = entry.get("from")
        self.sources: list[tuple[str, Loc]] = []
        if isinstance(raw, str):
            self.sources = [(raw, ("transitions", index, "from"))]
        elif isinstance(raw, list):
            self.sources = [(s, ("transitions", index, "from", j)) for j, s in enumerate(raw) if isinstance(s, str)]
        # an unreadable end leaves the graph unknown: dead-end and reachability checks would only guess
        self.unreadable = self.target is None or len(self.sources) != (len(raw) if isinstance(raw, list) else 1)
        self.guards = _strings(entry.get("guards"))
        self.hooks = _strings(entry.get("hooks"))


def _unique_names(data: Mapping[str, Any], key: str, what: str, add: Add) -> dict[str, int] | None:
    """Declared names -> index of their first declaration; None when the list itself is unusable."""
    if key not in data:
        return {}
    if not isinstance(data[key], list):
        return None
    index: dict[str, int] = {}
    for i, item in _entries(data, key):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if name in index:
            add(f"duplicate {what} {name!r} (first declared as {key}[{index[name]}])", (key, i, "name"),
                f"{what} names must be unique: rename or remove one")
        else:
            index[name] = i
    return index


def _transitions(data: Mapping[str, Any]) -> list[_Edge]:
    return [_Edge(i, entry) for i, entry in _entries(data, "transitions")]


def _did_you_mean(name: str, known: Mapping[str, Any] | Sequence[str], what: str) -> str:
    names = list(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    listing = f"declared {what}: {', '.join(names) or 'none'}"
    return f"did you mean {close[0]!r}? {listing}" if close else listing


# --------------------------------------------------------------------------- the checks


def _check_references(
    transitions: list[_Edge],
    states: dict[str, int] | None,
    actions: dict[str, int] | None,
    guards: dict[str, int] | None,
    hooks: dict[str, int] | None,
    add: Add,
    report_unused: bool,
) -> None:
    used_actions: set[str] = set()
    used_guards: set[str] = set()
    used_hooks: set[str] = set()
    for t in transitions:
        base: Loc = ("transitions", t.index)
        if t.action is not None:
            used_actions.add(t.action)
            if actions is not None and t.action not in actions:
                add(f"transition {t.number} uses unknown action {t.action!r}", (*base, "action"),
                    _did_you_mean(t.action, actions, "actions") + "; declare it under actions:")
        seen_sources: set[str] = set()
        for source, loc in t.sources:
            if source in seen_sources:
                add(f"transition {t.number} lists source state {source!r} twice", loc, "list each state once")
            seen_sources.add(source)
            if states is not None and source not in states:
                add(f"transition {t.number} starts from unknown state {source!r}", loc,
                    _did_you_mean(source, states, "states"))
        if t.target is not None and states is not None and t.target not in states:
            add(f"transition {t.number} goes to unknown state {t.target!r}", (*base, "to"),
                _did_you_mean(t.target, states, "states"))
        for k, g in enumerate(t.guards):
            used_guards.add(g)
            if guards is not None and g not in guards:
                add(f"transition {t.number} names unknown guard {g!r}", (*base, "guards", k),
                    _did_you_mean(g, guards, "guards") + "; declare it under guards: and register it in Python")
        for k, h in enumerate(t.hooks):
            used_hooks.add(h)
            if hooks is not None and h not in hooks:
                add(f"transition {t.number} names unknown hook {h!r}", (*base, "hooks", k),
                    _did_you_mean(h, hooks, "hooks") + "; declare it under hooks: and register it in Python")
    if not report_unused:
        return
    for key, what, declared, used in (("actions", "action", actions, used_actions),
                                      ("guards", "guard", guards, used_guards),
                                      ("hooks", "hook", hooks, used_hooks)):
        for name, i in (declared or {}).items():
            if name not in used:
                add(f"{what} {name!r} is declared but no transition uses it", (key, i, "name"),
                    "use it in a transition or remove it")


def _check_actions(data: Mapping[str, Any], add: Add) -> set[str]:
    """Checks field names and clears; answers every name an instance may record."""
    recorded: set[str] = set()
    declared_data = data.get("data")
    if isinstance(declared_data, Mapping):
        recorded.update(k for k in declared_data if isinstance(k, str))
    for i, action in _entries(data, "actions"):
        fields = action.get("fields")
        if isinstance(fields, Mapping):
            for name, spec in fields.items():
                target = spec.get("into") if isinstance(spec, Mapping) else None
                recorded.add(target if isinstance(target, str) else str(name))
                for value, loc in ((name, ("actions", i, "fields", str(name))),
                                   (target, ("actions", i, "fields", str(name), "into"))):
                    if isinstance(value, str) and not value.isidentifier():
                        add(f"{value!r} is not a valid field name", loc, "use snake_case: letters, digits and _")
        sets = action.get("sets")
        if isinstance(sets, Mapping):
            recorded.update(str(k) for k in sets)
        recorded.update(_strings(action.get("increments")))
    for i, action in _entries(data, "actions"):
        for k, name in enumerate(_strings(action.get("clears"))):
            if name not in recorded:
                add(f"action {action.get('name')!r} clears {name!r}, which no action records", ("actions", i, "clears", k),
                    _did_you_mean(name, sorted(recorded), "recorded fields"))
    return recorded


# names every guard condition may read besides the instance's data (docs/guards.md)
CONTEXT_NAMES = ("state", "input")


def _check_guard_conditions(data: Mapping[str, Any], recorded: set[str], transitions: list[_Edge], add: Add) -> None:
    """A `when:` must be CEL that reads only names an instance can have; `input.<f>` a field of its actions."""
    fields_of: dict[str, set[str] | None] = {}  # action -> its field names (None: unreadable)
    for _, action in _entries(data, "actions"):
        name, fields = action.get("name"), action.get("fields", {})
        if isinstance(name, str):
            fields_of[name] = {str(f) for f in fields} if isinstance(fields, Mapping) else None
    readable = sorted(recorded | set(CONTEXT_NAMES))
    for i, guard in _entries(data, "guards"):
        when, name = guard.get("when"), guard.get("name")
        if not isinstance(when, str):
            continue  # absent, or the schema reports its type
        loc: Loc = ("guards", i, "when")
        try:
            expression = compile_expression(when)
        except ExpressionSyntaxError as exc:
            where = f" (line {exc.line} of the condition)" if exc.line > 1 else ""
            column = f" at column {exc.column}" if exc.column is not None else ""
            add(f"guard {name!r}: `when` is not valid CEL{where}: {exc.message}{column}", loc,
                "see docs/guards.md for the syntax; quote the whole condition in YAML")
            continue
        for clash in sorted(recorded & set(CONTEXT_NAMES)):
            add(f"guard {name!r}: the instance records {clash!r}, which a condition reads as the "
                f"{'current state' if clash == 'state' else 'action data'} instead", loc,
                f"rename the recorded field {clash!r}")
        for read in expression.reads:
            if read not in recorded and read not in CONTEXT_NAMES:
                add(f"guard {name!r} reads {read!r}, which the instance never has", loc,
                    _did_you_mean(read, readable, "names it can read").replace("declared names", "names"))
        wanted = expression.fields_of("input")
        if not wanted:
            continue
        for taker in dict.fromkeys(t.action for t in transitions if name in t.guards and t.action):
            fields = fields_of.get(taker)
            if fields is None:
                continue
            for f in wanted:
                if f not in fields:
                    add(f"guard {name!r} reads input.{f}, but action {taker!r}, whose transition uses the guard, "
                        f"has no field {f!r}", loc, _did_you_mean(f, sorted(fields), "fields"))


def _check_states(
    data: Mapping[str, Any], states: dict[str, int], transitions: list[_Edge], initial: str | None, add: Add
) -> None:
    outgoing: dict[str, list[int]] = {s: [] for s in states}
    for t in transitions:
        for source, _ in t.sources:
            if source in outgoing:
                outgoing[source].append(t.number)
    if any(t.unreadable for t in transitions) or len(transitions) != len(data.get("transitions") or []):
        return
    entries = dict(_entries(data, "states"))
    for name, i in states.items():
        if not set(entries[i]) <= _STATE_KEYS or not isinstance(entries[i].get("terminal", False), bool):
            continue  # a misspelt or mistyped `terminal` is reported by the schema; do not guess it here
        terminal = entries[i].get("terminal") is True
        if terminal and outgoing[name]:
            numbers = ", ".join(str(n) for n in outgoing[name])
            add(f"terminal state {name!r} has outgoing transitions ({numbers})", ("states", i),
                "remove `terminal: true` or the transitions leaving it")
        if not terminal and not outgoing[name]:
            add(f"state {name!r} has no way out and is not terminal", ("states", i),
                "add a transition from it or mark it `terminal: true`")
    if initial is None or initial not in states:
        return
    graph: dict[str, set[str]] = {}
    for t in transitions:
        if t.target is not None:
            for source, _ in t.sources:
                graph.setdefault(source, set()).add(t.target)
    reached, todo = {initial}, [initial]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    for name, i in states.items():
        if name not in reached:
            add(f"state {name!r} cannot be reached from the initial state {initial!r}", ("states", i),
                "add a transition into it or remove it")


def _check_ambiguity(transitions: list[_Edge], add: Add) -> None:
    """A later transition for the same (state, action) is dead when an earlier one's guards are a subset
    of its own: whenever the later one could pass, the earlier one passes first."""
    by_pair: dict[tuple[str, str], list[_Edge]] = {}
    for t in transitions:
        if t.action is None:
            continue
        for source in dict.fromkeys(s for s, _ in t.sources):
            by_pair.setdefault((source, t.action), []).append(t)
    for (state, action), edges in by_pair.items():
        for pos, later in enumerate(edges):
            for earlier in edges[:pos]:
                if not set(earlier.guards) <= set(later.guards):
                    continue
                if not earlier.guards:
                    why = f"transition {earlier.number} has no guard, so transition {later.number} can never be taken"
                elif set(earlier.guards) == set(later.guards):
                    why = f"transitions {earlier.number} and {later.number} have the same guards"
                else:
                    why = (f"transition {earlier.number}'s guards ({', '.join(earlier.guards)}) pass whenever "
                           f"transition {later.number}'s do, so it can never be taken")
                add(f"{action!r} from {state!r} is ambiguous: {why}", ("transitions", later.index),
                    "give each transition of the same state and action a guard the others lack; "
                    "an unguarded fallback goes last")
                break
