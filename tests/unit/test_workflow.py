"""The generic Workflow: any definition, the data its actions declare, verbs that answer True/False."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_machine.errors import InvalidCommandError, NotInitialisedError, TransitionNotAllowedError
from order_machine.machine import Machine
from order_machine.workflow import Workflow


async def new_payment(machine: Machine, payment_id: str = "pay-1") -> Workflow:
    payment = Workflow(machine, payment_id, amount="10.00", currency="EUR", method="Card")
    await payment.initialise()
    return payment


async def test_creation_data_is_checked_and_converted(payment_machine: Machine) -> None:
    payment = await new_payment(payment_machine)
    assert payment.amount == Decimal("10.00")
    with pytest.raises(InvalidCommandError, match="field 'currency' is required"):
        Workflow(payment_machine, "pay-2", amount="1", method="Card")
    with pytest.raises(InvalidCommandError, match="unknown field 'colour'"):
        Workflow(payment_machine, "pay-3", amount="1", currency="EUR", method="Card", colour="red")


async def test_counters_start_at_zero_and_appended_lists_start_empty(
    payment_machine: Machine, document_machine: Machine
) -> None:
    payment = await new_payment(payment_machine)
    document = Workflow(document_machine, "doc-1", title="T", author="a")
    assert payment.retry_count == 0
    assert document.reviewers == []


async def test_actions_record_fields_constants_clears_and_counters(payment_machine: Machine) -> None:
    payment = await new_payment(payment_machine)
    await payment.fire("Process")
    await payment.fire("Fail", error_message="Declined")
    assert payment.error_message == "Declined"
    await payment.fire("Retry")
    await payment.fire("Process")
    await payment.fire("Retry")
    assert payment.retry_count == 2
    assert "error_message" not in payment.data and payment.error_message is None


async def test_appending_fields_keep_every_value(document_machine: Machine) -> None:
    document = Workflow(document_machine, "doc-2", title="T", author="a")
    await document.initialise()
    await document.submit()
    await document.reject("reviewer-1", "Too short")
    await document.revise()
    await document.submit()
    await document.approve("reviewer-2")
    assert document.reviewers == ["reviewer-1", "reviewer-2"]


async def test_verbs_fill_fields_in_declared_order_or_by_name(document_machine: Machine) -> None:
    document = Workflow(document_machine, "doc-3", title="T", author="a")
    await document.initialise()
    await document.submit()
    assert await document.reject(reason="Needs sources", reviewer="reviewer-9") is True
    assert (document.rejection_reason, document.reviewers) == ("Needs sources", ["reviewer-9"])
    with pytest.raises(InvalidCommandError, match="takes at most 0 value"):
        await document.revise("extra")


async def test_unknown_attributes_are_still_attribute_errors(payment_machine: Machine) -> None:
    payment = await new_payment(payment_machine)
    with pytest.raises(AttributeError, match="has no attribute or action 'teleport'"):
        payment.teleport  # noqa: B018
    assert not hasattr(payment, "__deepcopy_me__")


async def test_a_refused_action_answers_false_and_changes_nothing(payment_machine: Machine) -> None:
    payment = await new_payment(payment_machine)
    before = (payment.state, dict(payment.data), list(payment.history))
    assert await payment.refund() is False
    assert await payment.try_fire("Teleport") is False
    assert (payment.state, dict(payment.data), list(payment.history)) == before
    with pytest.raises(TransitionNotAllowedError):
        await payment.fire("Refund")


async def test_an_entity_answers_nothing_before_it_is_initialised(payment_machine: Machine) -> None:
    payment = Workflow(payment_machine, "pay-4", amount="1", currency="EUR", method="Card")
    assert not payment.allowed_actions
    with pytest.raises(NotInitialisedError, match="pay-4"):
        await payment.try_fire("Process")
    await payment.initialise()
    assert payment.allowed_actions == ("Process", "Cancel")


async def test_initialising_twice_keeps_the_state_and_notifies_once(payment_machine: Machine) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.events: list[object] = []

        async def publish(self, event: object) -> None:
            self.events.append(event)

    recorder = Recorder()
    payment = Workflow(payment_machine, "pay-5", recorder, amount="1", currency="EUR", method="Card")
    await payment.initialise()
    await payment.process()
    await payment.initialise()
    assert payment.state == "Processing"
    assert len(recorder.events) == 2


async def test_a_definition_without_declared_data_takes_any_creation_data(simple_machine: Machine) -> None:
    entity = Workflow(simple_machine, "s-1", label="anything")
    await entity.initialise()
    assert await entity.start() is True
    assert entity.label == "anything"
