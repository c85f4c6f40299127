"""The catalog serves a definition's versions side by side; the latest's `migrations:` say where an earlier
version's states go, and the engine's migrate follows them (a folder whose map is wrong is not served)."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.catalog import Catalog
from order_machine.definition import parse_definition
from order_machine.engine import WorkflowEngine
from order_machine.errors import DefinitionError
from order_machine.store.memory import InMemoryEventStore

V1 = """\
name: ticket
version: 1
initial: Open
states: [{name: Open}, {name: Closed, terminal: true}]
actions: [{name: Close}]
transitions: [{action: Close, from: Open, to: Closed}]
"""
V2 = V1.replace("version: 1", "version: 2").replace("Open", "New") + "migrations:\n  - {from: 1, map: {Open: New}}\n"


def test_the_declared_map_is_the_one_from_that_version_to_this_one() -> None:
    catalog = Catalog([parse_definition(V1), parse_definition(V2)])
    assert catalog.versions("ticket") == [1, 2]
    assert catalog.state_map("ticket", 1, 2) == {"Open": "New"}
    assert catalog.state_map("ticket", 2, 1) == {}  # version 1 declares nothing


async def test_migrate_moves_an_instance_by_the_declared_map_unless_told_otherwise() -> None:
    store = InMemoryEventStore()
    before = WorkflowEngine(store, Catalog([parse_definition(V1)]))
    for ticket in ("t-1", "t-2"):
        await before.start("ticket", workflow_id=ticket)
    after = WorkflowEngine(store, Catalog([parse_definition(V1), parse_definition(V2)]))
    assert (await after.migrate("ticket", "t-1", 2, {})).state == "New"
    assert (await after.migrate("ticket", "t-2", 2, {"Open": "Closed"})).state == "Closed"


def test_a_folder_whose_map_names_a_missing_state_is_not_served(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "ticket.v1.yaml").write_text(V1)
    (tmp_path / "ticket.yaml").write_text(V2.replace("{Open: New}", "{Open: Gone}"))
    with pytest.raises(DefinitionError) as refused:
        Catalog.load(tmp_path)
    assert [str(p) for p in refused.value.problems] == [
        f"{tmp_path / 'ticket.yaml'}:8: map: Open -> 'Gone', which is not a state of ticket version 2 "
        "(hint: states here: New, Closed)"]
