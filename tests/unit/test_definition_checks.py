"""Static checks: every broken definition under broken_definitions/ fails with the right message and line,
all problems of a file come at once, and schema problems do not hide the semantic ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.definition import load_definition, parse_definition
from order_machine.errors import DefinitionError, Problem

BROKEN = Path(__file__).resolve().parent / "broken_definitions"

# file, line, fragment of the message: one row per check the issue asks for, and a few more
CASES = [
    ("yaml_syntax.yaml", 5, "YAML syntax error: expected ',' or '}'"),
    ("yaml_syntax.yaml", 5, "flow mapping that starts on line 4"),
    ("unknown_key.yaml", 6, "unknown key 'termnal' in states[1]"),
    ("duplicate_state.yaml", 6, "duplicate state 'Dark'"),
    ("duplicate_action.yaml", 8, "duplicate action 'Switch'"),
    ("missing_initial.yaml", 1, "missing required key 'initial'"),
    ("unknown_initial.yaml", 2, "initial state 'Pendng' is not declared"),
    ("unknown_target_state.yaml", 11, "transition 1 goes to unknown state 'Confirmd'"),
    ("unknown_source_state.yaml", 15, "transition 2 starts from unknown state 'Confirmd'"),
    ("unknown_action.yaml", 10, "transition 2 uses unknown action 'Conform'"),
    ("unknown_guard.yaml", 14, "transition 1 names unknown guard 'is_paid'"),
    ("unreachable_state.yaml", 6, "state 'Archived' cannot be reached from the initial state 'Pending'"),
    ("dead_end.yaml", 5, "state 'Confirmed' has no way out and is not terminal"),
    ("terminal_with_exit.yaml", 5, "terminal state 'Cancelled' has outgoing transitions"),
    ("ambiguous_unguarded.yaml", 13, "'Confirm' from 'Pending' is ambiguous: transition 1 has no guard"),
    ("ambiguous_same_guards.yaml", 13, "transitions 1 and 2 have the same guards"),
    ("yaml11_boolean_name.yaml", 2, "initial: 'Off' was read as a boolean (YAML 1.1)"),
    ("yaml11_boolean_name.yaml", 9, "transitions[0].to: 'On' was read as a boolean"),
    ("yaml11_boolean_key.yaml", 9, "key 'yes' was read as a boolean"),
    ("duplicate_yaml_key.yaml", 8, "duplicate key 'initial'"),
    ("empty.yaml", 1, "the file is empty"),
    ("not_a_mapping.yaml", 1, "a definition must be a mapping"),
    ("invalid_names.yaml", 1, "name: 'Order Flow' is not a valid name"),
    ("invalid_names.yaml", 5, "states[1].name: 'Being Shipped' is not a valid name"),
    ("bad_field_type.yaml", 9, "actions[0].fields.tracking_number.type: 'string' is not allowed"),
    ("clears_unknown_field.yaml", 11, "action 'Retry' clears 'eror_message', which no action records"),
    ("unused_action.yaml", 8, "action 'Refund' is declared but no transition uses it"),
    ("schema_and_semantic.yaml", 5, "unknown key 'final' in states[1]"),
    ("schema_and_semantic.yaml", 10, "transition 2 goes to unknown state 'Shipped'"),
    ("from_wrong_type.yaml", 9, "transitions[0].from must be a list, got dict"),
    # issue 13 item 3: definitions are hostile input too
    ("yaml_alias_bomb.yaml", 3, "expands to more than 100000 values"),
    ("yaml_recursive_alias.yaml", 3, "expands to more than 100000 values"),
    ("yaml_deep_nesting.yaml", 3, "nested more than 32 levels deep"),
    ("yaml_python_tag_collection.yaml", 3, "tag '!!python/object/apply:os.system' is not allowed"),
    ("yaml_python_tag_scalar.yaml", 2, "tag '!!python/name:os.system' is not allowed"),
    ("string_version.yaml", 2, "version must be a whole number, got '2'"),
    ("string_terminal.yaml", 5, "states[1].terminal must be true or false, got 'yes'"),
    ("string_required.yaml", 9, "actions[0].fields.note.required must be true or false, got 'true'"),
    ("long_state_name.yaml", 5, "is 10001 characters long; names may have at most 100"),
    ("long_field_name.yaml", 9, "is 150 characters long; names may have at most 100"),
    ("too_many_fields.yaml", 8, "actions[0].fields declares 101 entries; at most 100 are allowed"),
    ("append_into_counter.yaml", 10, "records 'switches' as an int, but action 'Switch' (field 'note', append)"),
    ("into_collides_with_data_field.yaml", 11, "records 'customer_id' as a decimal, but data field 'customer_id'"),
    ("increments_a_text_field.yaml", 10, "records 'label' as an int, but data field 'label' records it as text"),
    ("sets_wrong_type.yaml", 10, "records 'brightness' as text (str), but data field 'brightness' records it as an int"),
    ("guard_when_syntax.yaml", 12, "guard 'has_value': `when` is not valid CEL: Syntax error"),
    ("guard_when_unknown_name.yaml", 14, "guard 'has_value' reads 'amout', which the instance never has"),
    ("guard_when_unknown_input.yaml", 12, "guard 'has_reason' reads input.reasn, but action 'Cancel'"),
    ("guard_when_reserved_name.yaml", 12, "the instance records 'state', which a condition reads as the current"),
]


def problems_of(name: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as raised:
        load_definition(BROKEN / name)
    return raised.value.problems


@pytest.mark.parametrize(("name", "line", "fragment"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_a_broken_definition_fails_with_its_message_line_and_hint(name: str, line: int, fragment: str) -> None:
    problems = problems_of(name)
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {[str(p) for p in problems]}"
    assert [p.line for p in matching] == [line] * len(matching)
    assert all(p.path == str(BROKEN / name) for p in problems)
    assert all(p.hint for p in matching)


def test_every_broken_definition_file_is_covered_by_a_case() -> None:
    assert {f.name for f in BROKEN.glob("*.yaml")} == {c[0] for c in CASES} | {"many_problems.yaml"}
    assert len({c[0] for c in CASES}) >= 15


def test_all_problems_of_a_file_are_reported_at_once_in_line_order() -> None:
    problems = problems_of("many_problems.yaml")
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [
        (6, "duplicate state 'Confirmed'"),
        (7, "unknown key 'colour' in states[3]"),
        (7, "state 'Lost' cannot be reached from the initial state 'Pending'"),
        (8, "terminal state 'Cancelled' has outgoing transitions"),
        (15, "'Cancel' from 'Pending' is ambiguous: transition 2 has no guard, so transition 3 can never be taken"),
        (16, "transition 4 uses unknown action 'Ship'"),
        (16, "transition 4 goes to unknown state 'Shipped'"),
    ]


def test_a_schema_problem_does_not_hide_semantic_problems_elsewhere() -> None:
    messages = [p.message for p in problems_of("schema_and_semantic.yaml")]
    assert any(m.startswith("unknown key 'final'") for m in messages)
    assert any("unknown state 'Shipped'" in m for m in messages)
    assert any("is ambiguous" in m for m in messages)


def test_a_misspelt_key_is_not_echoed_as_a_second_problem() -> None:
    # `termnal: true` is one mistake: the state is not also called a dead end
    assert len(problems_of("unknown_key.yaml")) == 1
    assert len(problems_of("from_wrong_type.yaml")) == 1


def test_hints_suggest_the_closest_declared_name() -> None:
    (problem,) = problems_of("unknown_initial.yaml")
    assert problem.hint.startswith("did you mean 'Pending'?")
    (problem,) = problems_of("unknown_key.yaml")
    assert "did you mean 'terminal'?" in problem.hint


def test_booleans_are_restored_to_words_so_they_cause_no_second_problem() -> None:
    # `initial: Off` and `name: Off` are both reported as booleans, never as an unknown initial state
    messages = [p.message for p in problems_of("yaml11_boolean_name.yaml")]
    assert len(messages) == 5
    assert all("read as a boolean" in m for m in messages)


def test_quoted_yaml11_words_are_plain_names() -> None:
    text = (BROKEN / "yaml11_boolean_name.yaml").read_text().replace("Off", "'Off'").replace("On", "'On'")
    definition = parse_definition(text, "switch.yaml")
    assert definition.initial == "Off"
    assert definition.state_names == ["Off", "On"]


def test_a_guard_the_earlier_transition_lacks_tells_transitions_apart() -> None:
    text = (BROKEN / "ambiguous_unguarded.yaml").read_text()
    fixed = text.replace("  - {action: Confirm, from: Pending, to: Confirmed}\n", "") + \
        "  - {action: Confirm, from: Pending, to: Confirmed}\n"  # the unguarded fallback goes last
    definition = parse_definition(fixed, "fixed.yaml")
    assert [t.target for t in definition.transitions] == ["Review", "Confirmed"]


def test_an_earlier_transition_whose_guards_are_a_subset_shadows_a_later_one() -> None:
    text = (BROKEN / "ambiguous_same_guards.yaml").read_text().replace(
        "guards: [big_order]}\n", "guards: [big_order, vip]}\n", 2).replace(
        "  - {name: big_order}\n", "  - {name: big_order}\n  - {name: vip}\n")
    text = text.replace("to: Review, guards: [big_order, vip]", "to: Review, guards: [big_order]")
    with pytest.raises(DefinitionError, match="guards \\(big_order\\) pass whenever transition 2's do"):
        parse_definition(text, "subset.yaml")


def test_an_unreadable_file_is_one_problem_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definition(missing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x")
    with pytest.raises(DefinitionError, match="not UTF-8"):
        load_definition(binary)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ndescription: |\n" + ("  " + "x" * 100 + "\n") * 11_000, encoding="utf-8")
    with pytest.raises(DefinitionError) as raised:
        load_definition(big)
    assert "a definition may be at most 1,048,576 bytes" in raised.value.problems[0].message
    with pytest.raises(DefinitionError):
        parse_definition(big.read_text(encoding="utf-8"))


def test_a_few_aliases_and_core_tags_are_still_fine() -> None:
    text = """name: lamp
initial: !!str Dark
states:
  - &dark {name: Dark}
  - {name: Lit, terminal: !!bool true}
actions:
  - {name: Switch, description: &words the one action}
transitions:
  - {action: Switch, from: Dark, to: Lit, description: *words}
"""
    assert parse_definition(text).transitions[0].description == "the one action"


def test_consistent_types_pass_and_the_definition_runs() -> None:
    text = """name: tally
initial: Open
data:
  notes: {type: list}
  total: {type: int}
states:
  - {name: Open}
  - {name: Done, terminal: true}
actions:
  - name: Note
    fields: {note: {type: str, append: true, into: notes}}
    increments: [total]
    sets: {total_label: many}
  - {name: Close}
transitions:
  - {action: Note, from: Open, to: Open}
  - {action: Close, from: Open, to: Done}
"""
    definition = parse_definition(text)
    from order_machine.workflow import record

    recorded: dict[str, object] = {"notes": [], "total": 0}
    record(definition.action("Note"), {"note": "a"}, recorded)
    record(definition.action("Note"), {"note": "b"}, recorded)
    assert recorded == {"notes": ["a", "b"], "total": 2, "total_label": "many"}


def test_a_guard_condition_may_read_data_recorded_names_state_and_the_input_of_its_actions() -> None:
    text = (BROKEN / "guard_when_unknown_input.yaml").read_text().replace(
        '"size(input.reasn) > 0"', '"size(input.reason) > 0 && state == \'Failed\' && retries < 3"').replace(
        "      reason: {type: str, required: true}\n",
        "      reason: {type: str, required: true}\n    increments: [retries]\n")
    (guard,) = parse_definition(text, "ok.yaml").guards
    assert guard.when == "size(input.reason) > 0 && state == 'Failed' && retries < 3"


def test_a_name_bound_by_a_macro_is_not_taken_for_a_name_of_the_instance() -> None:
    messages = [p.message for p in problems_of("guard_when_unknown_name.yaml")]
    assert len(messages) == 1 and "'amout'" in messages[0]  # `i` in items.exists(i, ...) is not reported
    (problem,) = problems_of("guard_when_unknown_name.yaml")
    assert problem.hint.startswith("did you mean 'amount'?")
