"""The definition files load and check clean, and definitions/schema.json is the model's current schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from order_machine.definition import json_schema, load_definition, load_definitions
from order_machine.errors import DefinitionError

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"

EXPECTED = {  # name: (initial, states, actions, (state, action) edges), from the reference page
    "order": ("Pending", 7, 6, 8),
    "payment": ("Pending", 6, 6, 8),
    "document": ("Draft", 7, 10, 12),
    "onboarding": ("Registration", 7, 7, 11),
    "simple": ("Init", 4, 4, 4),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shipped_definition_loads_with_the_reference_shape(name: str) -> None:
    definition = load_definition(DEFINITIONS / f"{name}.yaml")
    initial, states, actions, edges = EXPECTED[name]
    assert definition.name == name
    assert definition.initial == initial
    assert (len(definition.states), len(definition.actions)) == (states, actions)
    assert len(list(definition.edges())) == edges


def test_the_definitions_folder_loads_keyed_by_name() -> None:
    assert sorted(load_definitions(DEFINITIONS)) == sorted(EXPECTED)


def test_two_definitions_with_one_name_in_a_folder_are_refused(tmp_path: Path) -> None:
    shutil.copy(DEFINITIONS / "simple.yaml", tmp_path / "a.yaml")
    shutil.copy(DEFINITIONS / "simple.yaml", tmp_path / "b.yaml")
    with pytest.raises(DefinitionError, match="definition name 'simple' is also used by"):
        load_definitions(tmp_path)


def test_the_schema_file_is_fresh() -> None:
    on_disk = (DEFINITIONS / "schema.json").read_text(encoding="utf-8")
    assert on_disk == json_schema(), "definitions/schema.json is stale: run `order-machine validate --write-schema`"


def test_the_schema_lets_editors_write_one_source_state_or_a_list() -> None:
    schema = json.loads(json_schema())
    source = schema["$defs"]["TransitionSpec"]["properties"]["from"]
    assert {"type": "string"} in source["anyOf"]
    assert any(alt.get("type") == "array" for alt in source["anyOf"])
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "initial", "states", "actions", "transitions"}


def test_every_definition_points_editors_at_the_schema() -> None:
    for file in DEFINITIONS.glob("*.yaml"):
        assert file.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=schema.json"), file
