"""What a user projector's SQL and configuration turn into, with no database: placeholders as psycopg reads
them, projectors named in settings, and the plan that sets their tables up."""

from __future__ import annotations

import pytest

from order_machine.config import Settings
from order_machine.errors import InvalidProjectorError
from order_machine.projections import Table, load_projectors
from order_machine.projections.custom import ProjectorTables
from order_machine.projections.custom_backend import Registered, SetupPlan, plan_setup
from order_machine.projections.custom_postgres import pyformat


@pytest.mark.parametrize(("sql", "expected"), [
    ("INSERT INTO t VALUES (?, ?)", "INSERT INTO t VALUES (%s, %s)"),
    ("UPDATE t SET n = n + :delta WHERE k = :key", "UPDATE t SET n = n + %(delta)s WHERE k = %(key)s"),
    ("SELECT '?', \"a?\", ? -- why?\n", "SELECT '?', \"a?\", %s -- why?\n"),
    ("SELECT x::bigint, ? /* ? */", "SELECT x::bigint, %s /* ? */"),
    ("SELECT 'it''s ?', 50 % ?", "SELECT 'it''s ?', 50 %% %s"),
    ("SELECT '100%'", "SELECT '100%%'"),
])
def test_placeholders_become_psycopgs_outside_strings_names_and_comments(sql: str, expected: str) -> None:
    assert pyformat(sql) == expected


def test_settings_take_several_projectors_from_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_MACHINE_PROJECTORS", " app.projections:Totals ,app.audit:Audit,")
    assert Settings().projectors == ["app.projections:Totals", "app.audit:Audit"]
    monkeypatch.delenv("ORDER_MACHINE_PROJECTORS")
    assert Settings().projectors == []


class Counted:
    name = "counted"
    tables = [Table("counted", "CREATE TABLE counted (n INTEGER)")]

    async def apply(self, tx: object, event: object) -> None:
        return None


READY = Counted()


def test_a_projector_is_loaded_as_a_class_built_without_arguments_or_as_an_object() -> None:
    built, ready = load_projectors([f"{__name__}:Counted", f"{__name__}:READY"])
    assert isinstance(built, Counted) and built is not READY
    assert ready is READY


@pytest.mark.parametrize("spec", ["no_colon", "nowhere_at_all:Thing", f"{__name__}:Missing", ":Counted"])
def test_a_projector_that_cannot_be_loaded_is_named_in_the_error(spec: str) -> None:
    with pytest.raises(InvalidProjectorError, match=spec):
        load_projectors([spec])


def plan_for(projectors: list[object], existing: set[str], registry: dict[str, Registered]) -> SetupPlan:
    class Backend:  # only the dialect is read while planning
        dialect = "sqlite"

    tables = ProjectorTables(Backend())  # type: ignore[arg-type]
    return plan_setup(tables.bind(projectors), existing, registry)  # type: ignore[arg-type]  # plain objects


def test_the_plan_creates_a_new_projectors_tables_and_leaves_an_unchanged_one_alone() -> None:
    plan = plan_for([Counted()], {"events"}, {})
    assert plan.create == [("counted", "counted", ["CREATE TABLE counted (n INTEGER)"])]
    assert (plan.drop, plan.reset) == ([], ["counted"])
    unchanged = plan_for([Counted()], {"events", "counted"}, {"counted": Registered(1, ("counted",))})
    assert (unchanged.create, unchanged.drop, unchanged.reset) == ([], [], [])


def test_the_plan_recreates_the_tables_of_a_new_version_or_of_a_dropped_table() -> None:
    for registered, existing in ((Registered(2, ("counted",)), {"counted"}), (Registered(1, ("counted",)), set()),
                                 (Registered(1, ("counted", "old")), {"counted", "old"})):
        plan = plan_for([Counted()], existing, {"counted": registered})
        assert plan.drop == sorted(existing, key=("counted", "old").index)
        assert [t for _, t, _ in plan.create] == ["counted"]
        assert plan.reset == ["counted"]
