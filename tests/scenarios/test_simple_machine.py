"""SimpleMachineTest, ported: definitions/simple.yaml, whose async per-transition callback is the
`on_step` hook registered in Python (tests/conftest.py), on each engine."""

from __future__ import annotations

from typing import Any

from ._harness import Entities, ScenarioBus


def test_create_definition_get_valid_definition(entities: Entities) -> None:
    definition = entities.machine("simple").definition
    assert definition is not None
    assert definition.initial == "Init"


async def test_machine_should_change_state_on_valid_transition(entities: Entities) -> None:
    machine = entities.workflow("simple", "simple-1", bus=False)  # no bus at all (the durable engine has its own)
    await machine.initialise()
    assert machine.state == "Init"

    await machine.fire("Start")
    assert machine.state == "Working"
    await machine.fire("Finish")
    assert machine.state == "Finished"


async def test_machine_should_execute_async_action_on_transition(
    entities: Entities, step_log: Any, scenario: ScenarioBus
) -> None:
    machine = entities.workflow("simple", "simple-2")
    await machine.initialise()

    for action in ("Start", "Pause", "Continue", "Finish"):
        await machine.fire(action)
    assert machine.state == "Finished"

    assert step_log.steps == [
        ("simple-2", "Init", "Start", "Working"),
        ("simple-2", "Working", "Pause", "Paused"),
        ("simple-2", "Paused", "Continue", "Working"),
        ("simple-2", "Working", "Finish", "Finished"),
    ]
    await scenario.settle()
    assert scenario.actions("simple-2") == ["Start", "Pause", "Continue", "Finish"]
