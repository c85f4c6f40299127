"""Random action sequences against every definition: the entity always agrees with the transition table,
computed here straight from the YAML (plain yaml.safe_load, not the Definition model or the Machine)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_machine.definition import Definition, load_definition
from order_machine.errors import TransitionNotAllowedError
from order_machine.machine import Machine
from order_machine.order import Order
from order_machine.workflow import Workflow

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
NAMES = ["order", "payment", "document", "onboarding", "simple"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Table:
    """The reference model: (state, action) -> [(target, guards)] in declaration order, from raw YAML."""

    def __init__(self, name: str) -> None:
        raw = yaml.safe_load((DEFINITIONS / f"{name}.yaml").read_text(encoding="utf-8"))
        self.initial: str = raw["initial"]
        self.terminal = {s["name"] for s in raw["states"] if s.get("terminal")}
        self.actions = {a["name"]: a.get("fields", {}) for a in raw["actions"]}
        self.creation = raw.get("data", {})
        self.guards = [g["name"] for g in raw.get("guards", [])]
        self.hooks = [h["name"] for h in raw.get("hooks", [])]
        self.edges: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
        for t in raw["transitions"]:
            sources = [t["from"]] if isinstance(t["from"], str) else t["from"]
            for s in sources:
                self.edges.setdefault((s, t["action"]), []).append((t["to"], t.get("guards", [])))

    def next_state(self, state: str, action: str, verdicts: Mapping[str, bool]) -> str | None:
        for target, guards in self.edges.get((state, action), []):
            if all(verdicts[g] for g in guards):
                return target
        return None

    def allowed(self, state: str) -> set[str]:
        return {a for (s, a) in self.edges if s == state}


TABLES = {name: Table(name) for name in NAMES}

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "str": st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8),
    "int": st.integers(-1000, 1000),
    "decimal": st.decimals(min_value=0, max_value=10_000, places=2).map(str),
    "bool": st.booleans(),
    "datetime": st.datetimes(timezones=st.just(UTC)),
    "list": st.lists(st.text(max_size=4), min_size=1, max_size=3),
    "dict": st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), min_size=1, max_size=3),
}


def field_values(fields: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    required = {n: VALUES[f.get("type", "str")] for n, f in fields.items() if f.get("required")}
    optional = {n: VALUES[f.get("type", "str")] for n, f in fields.items() if not f.get("required")}
    return st.fixed_dictionaries(required, optional=optional)


def steps(table: Table) -> st.SearchStrategy[list[tuple[str, dict[str, Any], dict[str, bool]]]]:
    """(action, its data, this step's guard verdicts); now and then an action no definition declares."""
    step = st.one_of(
        *[st.tuples(st.just(a), field_values(fields)) for a, fields in table.actions.items()],
        st.tuples(st.just("Teleport"), st.just({})),
    ).flatmap(lambda pair: st.tuples(
        st.just(pair[0]), st.just(pair[1]),
        st.fixed_dictionaries({g: st.booleans() for g in table.guards}),
    ))
    return st.lists(step, max_size=25)


class Verdicts:
    """Guards registered in Python whose answers the test sets before each step."""

    def __init__(self, names: list[str]) -> None:
        self.now: dict[str, bool] = {n: True for n in names}

    def guard(self, name: str) -> Any:
        return lambda subject, data: self.now[name]


def without_conditions(definition: Definition) -> Definition:
    """The definition with its guards' `when:` removed, so the test decides every guard's verdict
    (what a condition answers is tested in test_expressions.py and test_machine_guards.py)."""
    guards = [g.model_copy(update={"when": None}) for g in definition.guards]
    return definition.model_copy(update={"guards": guards})


def creation_data(table: Table) -> dict[str, Any]:
    samples = {"str": "x", "int": 1, "decimal": "1.00", "bool": True, "list": ["x"], "dict": {"k": "v"},
               "datetime": datetime(2026, 1, 1, tzinfo=UTC)}
    return {n: samples[f.get("type", "str")] for n, f in table.creation.items() if f.get("required")}


@pytest.mark.parametrize("name", NAMES)
def test_a_workflow_always_agrees_with_the_table_of_its_yaml(name: str) -> None:
    table = TABLES[name]
    verdicts = Verdicts(table.guards)
    hook_calls: list[str] = []

    async def hook(subject: Any, transition: Any, data: Any) -> None:
        hook_calls.append(transition.action)

    machine = Machine(without_conditions(load_definition(DEFINITIONS / f"{name}.yaml")),
                      guards={g: verdicts.guard(g) for g in table.guards},
                      hooks={h: hook for h in table.hooks})

    @SETTINGS
    @given(sequence=steps(table))
    def run(sequence: list[tuple[str, dict[str, Any], dict[str, bool]]]) -> None:
        hook_calls.clear()

        async def drive() -> None:
            entity = Workflow(machine, "e-1", **creation_data(table))
            await entity.initialise()
            state, taken = table.initial, 0
            for action, data, now in sequence:
                verdicts.now = now
                expected = table.next_state(state, action, now)
                before = dict(entity.data)
                accepted = await entity.try_fire(action, **data)
                assert accepted is (expected is not None), (state, action, now)
                if expected is None:
                    assert entity.data == before
                else:
                    state, taken = expected, taken + 1
                assert entity.state == state
                assert set(entity.allowed_actions) == table.allowed(state)
                assert entity.is_terminal is (state in table.terminal)
            assert len(entity.history) == taken
            if table.hooks:
                assert len(hook_calls) == taken

        asyncio.run(drive())

    run()


def test_an_order_always_agrees_with_the_table_of_order_yaml(order_machine: Machine) -> None:
    table = TABLES["order"]

    @SETTINGS
    @given(has_items=st.booleans(), sequence=steps(table))
    def run(has_items: bool, sequence: list[tuple[str, dict[str, Any], dict[str, bool]]]) -> None:
        async def drive() -> None:
            order = Order(order_machine, "ord-p", "customer-p", items=["Book"] if has_items else [])
            await order.initialise()
            state = table.initial
            for action, data, _ in sequence:
                expected = table.next_state(state, action, {"has_value": has_items})
                version = order.version
                try:
                    await order.fire(action, **data)
                except TransitionNotAllowedError as refusal:
                    assert expected is None, (state, action)
                    assert (refusal.state, refusal.action) == (state, action)
                    assert order.version == version
                else:
                    assert expected is not None, (state, action)
                    state = expected
                    assert order.version == version + 1
                assert order.state == state

        asyncio.run(drive())

    run()
