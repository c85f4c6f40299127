"""transition_effects computes, for the names an action touches, exactly what applying the action's effects to a
whole copy of the data in their declared order (fields, constants, clears, counters) gives: the same values
recorded and the same names cleared, whatever the action combines (a hypothesis search over small actions and
data); `record`, built on it, leaves that copy."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from order_machine.definition import ActionSpec, FieldSpec
from order_machine.workflow import record, transition_effects

NAMES = st.sampled_from(["a", "b", "c", "n"])


@st.composite
def actions(draw: st.DrawFn) -> tuple[ActionSpec, dict[str, Any], dict[str, Any]]:
    fields = {}
    for name in draw(st.lists(st.sampled_from(["x", "y", "z"]), unique=True, max_size=3)):
        append = draw(st.booleans())
        fields[name] = FieldSpec(type="list" if append else "str", into=draw(st.one_of(st.none(), NAMES)),
                                 append=append)
    spec = ActionSpec(name="Act", fields=fields, sets=draw(st.dictionaries(NAMES, st.integers(0, 3), max_size=2)),
                      clears=draw(st.lists(NAMES, unique=True, max_size=2)),
                      increments=draw(st.lists(NAMES, unique=True, max_size=2)))
    checked = {n: draw(st.text(max_size=2)) for n in fields if draw(st.booleans())}
    data: dict[str, Any] = {n: draw(st.one_of(st.integers(0, 3), st.lists(st.text(max_size=1), max_size=2)))
                            for n in draw(st.lists(NAMES, unique=True, max_size=4))}
    return spec, checked, data


def _apply_in_order(spec: ActionSpec, checked: dict[str, Any], after: dict[str, Any]) -> None:
    """The effects one by one on the whole data: the model transition_effects must agree with."""
    for name, field in spec.fields.items():
        if name in checked:
            key = field.into or name
            if field.append:
                after.setdefault(key, []).append(checked[name])
            else:
                after[key] = checked[name]
    after.update(spec.sets)
    for name in spec.clears:
        after.pop(name, None)
    for name in spec.increments:
        after[name] = after.get(name, 0) + 1


def _whole_copy(spec: ActionSpec, checked: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    after = {k: (list(v) if isinstance(v, list) else v) for k, v in data.items()}
    _apply_in_order(spec, checked, after)
    touched = {(f.into or n) for n, f in spec.fields.items() if n in checked} | set(spec.sets) | set(spec.increments)
    recorded = {n: after[n] for n in touched if n in after}
    return recorded, {n for n in spec.clears if n in data and n not in recorded}


@settings(max_examples=300, deadline=None)
@given(actions())
def test_the_effects_of_an_action_are_those_record_gives_on_a_whole_copy(
        case: tuple[ActionSpec, dict[str, Any], dict[str, Any]]) -> None:
    spec, checked, data = case
    # what validate lets through: appended names hold lists, counters ints
    appended = {(f.into or n) for n, f in spec.fields.items() if f.append}
    counters = set(spec.increments)
    replaced = {(f.into or n) for n, f in spec.fields.items() if not f.append}
    if appended & replaced or appended & counters or appended & set(spec.sets) or any(
            (n in appended and not isinstance(v, list)) or (n in counters and not isinstance(v, int))
            for n, v in data.items()) or any((f.into or n) in counters for n, f in spec.fields.items()) \
            or counters & set(spec.sets):
        return
    recorded, cleared = transition_effects(spec, checked, data)
    expected, expected_cleared = _whole_copy(spec, checked, data)
    assert recorded == expected
    assert set(cleared) == expected_cleared
    whole = {k: (list(v) if isinstance(v, list) else v) for k, v in data.items()}
    _apply_in_order(spec, checked, whole)
    in_place = {k: (list(v) if isinstance(v, list) else v) for k, v in data.items()}
    record(spec, checked, in_place)
    assert in_place == whole
