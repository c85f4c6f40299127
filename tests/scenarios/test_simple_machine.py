"""SimpleMachineTest, ported: definitions/simple.yaml, whose async per-transition callback is the
`on_step` hook registered in Python (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from order_machine.events import StateChanged
from order_machine.machine import Machine
from order_machine.workflow import Workflow

from ._harness import ScenarioBus


def test_create_definition_get_valid_definition(simple_machine: Machine) -> None:
    assert simple_machine.definition is not None
    assert simple_machine.definition.initial == "Init"


async def test_machine_should_change_state_on_valid_transition(simple_machine: Machine) -> None:
    machine = Workflow(simple_machine, "simple-1")  # no bus at all
    await machine.initialise()
    assert machine.state == "Init"

    await machine.fire("Start")
    assert machine.state == "Working"
    await machine.fire("Finish")
    assert machine.state == "Finished"


async def test_machine_should_execute_async_action_on_transition(
    simple_machine: Machine, step_log: Any, scenario: ScenarioBus
) -> None:
    machine = Workflow(simple_machine, "simple-2", scenario.bus)
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
    assert [e.action for e in scenario.seen if isinstance(e, StateChanged)] == ["Start", "Pause", "Continue", "Finish"]
