"""The compiled Machine: dispatch, refusals that explain themselves, guards and hooks registered in Python,
machine events to a bus (or none), and no transitions.Machine per entity."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import transitions.core

from order_machine.bus import EventBus
from order_machine.builder import DefinitionBuilder
from order_machine.definition import Definition
from order_machine.errors import DefinitionError, InvalidCommandError, TransitionNotAllowedError
from order_machine.events import MachineInitialised, StateChanged
from order_machine.machine import Machine
from order_machine.order import Order
from order_machine.workflow import Workflow


def review_definition() -> Definition:
    """Confirm goes to Review for big orders, else to Confirmed (the unguarded fallback comes last)."""
    return (DefinitionBuilder.create("review")
            .action("Confirm", fields={"total": {"type": "decimal", "required": True}})
            .guard("big_order").guard("in_stock")
            .initial_state("Pending")
            .on_action("Confirm", guards=["in_stock", "big_order"]).to_state("Review")
            .on_action("Confirm", guards=["in_stock"]).to_state("Confirmed")
            .on_action("Cancel").to_state("Cancelled").build()
            .add_state("Review", terminal=True).build()
            .add_state("Confirmed", terminal=True).build()
            .add_state("Cancelled", terminal=True).build()
            .build_definition())


def big_order(subject: Any, data: Mapping[str, Any]) -> bool:
    return bool(data["total"] >= Decimal("1000"))


async def in_stock(subject: Any, data: Mapping[str, Any]) -> bool:
    await asyncio.sleep(0)  # an async guard, awaited by the machine
    return not getattr(subject, "data", {}).get("out_of_stock", False)


@pytest.fixture(scope="module")
def review() -> Machine:
    return Machine(review_definition(), guards={"big_order": big_order, "in_stock": in_stock})


async def started(machine: Machine, entity_id: str = "r-1", **data: Any) -> Workflow:
    entity = Workflow(machine, entity_id, **data)
    await entity.initialise()
    return entity


async def test_a_sync_guard_picks_between_transitions_of_one_action(review: Machine) -> None:
    big, small = await started(review, "r-big"), await started(review, "r-small")
    assert (await big.fire("Confirm", total="1500.00")).target == "Review"
    assert (await small.fire("Confirm", total="20")).target == "Confirmed"


async def test_an_async_guard_that_says_no_refuses_with_its_name(review: Machine) -> None:
    entity = await started(review, "r-2", out_of_stock=True)
    with pytest.raises(TransitionNotAllowedError) as raised:
        await entity.fire("Confirm", total="20")
    refusal = raised.value
    assert (refusal.entity_id, refusal.state, refusal.action) == ("r-2", "Pending", "Confirm")
    assert refusal.guard == "in_stock"
    assert refusal.allowed == ("Confirm", "Cancel")
    assert "guard 'in_stock' refused it" in str(refusal)
    assert entity.state == "Pending"


async def test_a_refusal_names_the_entity_state_action_and_allowed_actions(order_machine: Machine) -> None:
    order = Order(order_machine, "ord-9", "customer-9", items=["Watch"], amount=Decimal("299.99"))
    await order.initialise()
    with pytest.raises(TransitionNotAllowedError) as raised:
        await order.fire("Ship", tracking_number="T", shipping_address="A")
    assert raised.value.to_dict() == {
        "entity_id": "ord-9", "state": "Pending", "action": "Ship",
        "allowed_actions": ["Confirm", "Cancel"], "blocked_actions": [], "guard": None,
        "reason": "not allowed while 'Pending'",
    }


async def test_blocked_by_names_the_guard_that_would_refuse_an_allowed_action_now(order_machine: Machine) -> None:
    empty = Order(order_machine, "ord-0", "customer-0")
    await empty.initialise()
    assert await order_machine.blocked_by("Pending", "Confirm", empty) == "has_value"
    assert await order_machine.blocked_by("Pending", "Cancel", empty) is None
    assert await order_machine.blocked_by("Pending", "Ship", empty) is None  # not allowed at all: not "blocked"
    assert order_machine.guard_description("has_value") == "The order has at least one item or a positive amount"
    full = Order(order_machine, "ord-1", "customer-1", items=["Watch"], amount=Decimal("299.99"))
    await full.initialise()
    assert await order_machine.blocked_by("Pending", "Confirm", full) is None


async def test_an_undeclared_action_is_refused_as_undeclared(order_machine: Machine) -> None:
    with pytest.raises(TransitionNotAllowedError, match="not declared in definition 'order'") as raised:
        await order_machine.select("ord-1", "Pending", "Teleport")
    assert raised.value.allowed == ("Confirm", "Cancel")


async def test_a_refusal_comes_before_complaints_about_the_data(order_machine: Machine) -> None:
    order = Order(order_machine, "ord-8", "customer-8", items=["Watch"])
    await order.initialise()
    with pytest.raises(TransitionNotAllowedError):
        await order.fire("Ship")  # missing fields, but Ship is not allowed while Pending anyway


async def test_bad_data_for_an_allowed_action_is_an_invalid_command(review: Machine) -> None:
    entity = await started(review)
    with pytest.raises(InvalidCommandError, match="field 'total' must be a decimal string or Decimal"):
        await entity.fire("Confirm", total=10.5)
    with pytest.raises(InvalidCommandError, match="unknown field 'totl'"):
        await entity.fire("Confirm", totl="10")
    with pytest.raises(InvalidCommandError, match="field 'total' is required"):
        await entity.fire("Confirm")
    assert entity.state == "Pending"


def test_a_declared_guard_that_is_not_registered_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="guard 'in_stock' is declared but not registered"):
        Machine(review_definition(), guards={"big_order": big_order})


def test_a_registered_guard_the_definition_does_not_declare_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="guard 'big_ordr' is registered but the definition does not declare"):
        Machine(review_definition(), guards={"big_order": big_order, "in_stock": in_stock, "big_ordr": big_order})


def test_a_hook_declared_in_yaml_must_be_registered(definitions_dir: Any) -> None:
    with pytest.raises(DefinitionError, match="hook 'on_step' is declared but not registered"):
        Workflow.compile(definitions_dir / "simple.yaml")


def test_a_definition_built_by_hand_is_checked_when_compiled() -> None:
    data = review_definition().model_dump(by_alias=True)
    data["transitions"].append({"action": "Cancel", "from": "Review", "to": "Cancelled"})
    with pytest.raises(DefinitionError, match="terminal state 'Review' has outgoing transitions"):
        Machine(Definition.model_validate(data), guards={"big_order": big_order, "in_stock": in_stock})


def test_the_compiled_machine_has_no_auto_transitions(order_machine: Machine) -> None:
    triggers = set(order_machine.transitions_machine.events)
    assert triggers == {"Confirm", "StartProcessing", "Ship", "Deliver", "Cancel", "Return"}
    assert not any(t.startswith("to_") for t in triggers)


def test_the_machine_answers_questions_about_its_table(order_machine: Machine) -> None:
    assert order_machine.allowed_actions("Processing") == ("Ship", "Cancel")
    assert order_machine.allowed_actions("Cancelled") == ()
    assert order_machine.is_terminal("Returned") and not order_machine.is_terminal("Delivered")
    assert order_machine.target_actions("Confirmed", "Cancelled") == ["Cancel"]
    assert [t.target for t in order_machine.transitions_from("Pending", "Confirm")] == ["Confirmed"]


class Counting:
    """Counts transitions.Machine constructions (AsyncMachine included: it calls Machine.__init__)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = transitions.core.Machine.__init__

        def counting_init(machine: Any, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            original(machine, *args, **kwargs)

        monkeypatch.setattr(transitions.core.Machine, "__init__", counting_init)


async def test_no_transitions_machine_is_built_per_entity(
    monkeypatch: pytest.MonkeyPatch, order_machine: Machine, payment_machine: Machine
) -> None:
    counter = Counting(monkeypatch)
    Machine(review_definition(), guards={"big_order": big_order, "in_stock": in_stock})
    assert counter.count == 1  # the counter sees a compile

    for i in range(100):
        order = Order(order_machine, f"ord-{i}", "customer", items=["Book"])
        await order.initialise()
        await order.confirm()
        payment = Workflow(payment_machine, f"pay-{i}", amount="1", currency="EUR", method="Card")
        await payment.initialise()
        await payment.process()
    assert counter.count == 1
    assert order_machine.transitions_machine.models == []


async def test_the_machine_emits_initialised_and_state_changed_events_to_a_bus(payment_machine: Machine) -> None:
    bus, seen = EventBus(), list[MachineInitialised | StateChanged]()
    bus.subscribe(seen.append)
    await bus.start()
    try:
        payment = Workflow(payment_machine, "pay-1", bus, amount="9.99", currency="EUR", method="Card")
        await payment.initialise()
        await payment.fire("Process")
        await payment.fire("Complete", transaction_id="txn-1")
    finally:
        await bus.stop()
    initialised, *rest = seen
    assert isinstance(initialised, MachineInitialised)
    changes = [c for c in rest if isinstance(c, StateChanged)]
    assert changes == rest  # every later event is a state change
    assert (initialised.entity_id, initialised.definition, initialised.state) == ("pay-1", "payment", "Pending")
    assert [(c.entity_id, c.source, c.action, c.target) for c in changes] == [
        ("pay-1", "Pending", "Process", "Processing"), ("pay-1", "Processing", "Complete", "Completed")]
    assert changes[1].data == {"transaction_id": "txn-1"}
    assert all(e.at.utcoffset() == timedelta(0) for e in seen)
    assert initialised.at <= changes[0].at <= changes[1].at


async def test_the_machine_runs_with_no_bus(payment_machine: Machine) -> None:
    payment = Workflow(payment_machine, "pay-2", amount="9.99", currency="EUR", method="Card")
    await payment.initialise()
    await payment.fire("Process")
    assert payment.state == "Processing"
    assert [(c.source, c.target) for c in payment.history] == [("Pending", "Processing")]
