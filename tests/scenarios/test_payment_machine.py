"""PaymentMachineTest, ported: eight payment scenarios run from definitions/payment.yaml alone, on each engine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ._harness import Entities, ScenarioBus


def test_create_definition_get_valid_definition(entities: Entities) -> None:
    definition = entities.machine("payment").definition
    assert definition is not None
    assert definition.initial == "Pending"


async def test_payment_should_transition_through_complete_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    payment = entities.payment("pay-1", "100.50", "USD", "CreditCard")
    assert payment.state == "Pending"
    await payment.initialise()
    assert payment.state == "Pending"
    assert (payment.amount, payment.currency, payment.method) == (Decimal("100.50"), "USD", "CreditCard")

    assert await payment.process() is True
    assert payment.state == "Processing"
    assert await payment.complete("txn-12345") is True
    assert payment.state == "Completed"
    assert payment.transaction_id == "txn-12345"

    await scenario.settle()
    assert scenario.path("pay-1") == ["Pending", "Processing", "Completed"]


async def test_payment_should_handle_failure_and_retry_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    payment = entities.payment("pay-2", "50.00", "EUR", "DebitCard")
    await payment.initialise()
    await payment.process()
    assert payment.state == "Processing"

    assert await payment.fail("Insufficient funds") is True
    assert payment.state == "Failed"
    assert payment.error_message == "Insufficient funds"

    assert await payment.retry() is True
    assert payment.state == "Pending"
    assert payment.retry_count == 1
    assert payment.error_message is None


async def test_payment_should_handle_cancellation_workflow(entities: Entities, scenario: ScenarioBus) -> None:
    payment = entities.payment("pay-3", "75.25", "GBP", "PayPal")
    await payment.initialise()

    assert await payment.cancel() is True
    assert payment.state == "Cancelled"
    assert payment.is_terminal


async def test_payment_should_handle_refund_workflow(entities: Entities, scenario: ScenarioBus) -> None:
    payment = entities.payment("pay-4", "200.00", "USD", "BankTransfer")
    await payment.initialise()
    await payment.process()
    await payment.complete("txn-67890")
    assert payment.state == "Completed"

    assert await payment.refund() is True
    assert payment.state == "Refunded"
    assert payment.transaction_id == "txn-67890"


async def test_payment_should_handle_cancellation_from_failed_state(
    entities: Entities, scenario: ScenarioBus
) -> None:
    payment = entities.payment("pay-5", "150.75", "CAD", "ApplePay")
    await payment.initialise()
    await payment.process()
    await payment.fail("Network timeout")
    assert payment.state == "Failed"

    assert await payment.cancel() is True
    assert payment.state == "Cancelled"


async def test_payment_should_throw_exception_when_not_initialized(
    entities: Entities, scenario: ScenarioBus
) -> None:
    payment = entities.payment("pay-6", "25.00", "USD", "Cash")

    with pytest.raises(entities.not_initialised, match="pay-6"):
        await payment.process()
    assert payment.state == "Pending"


async def test_payment_should_handle_invalid_transitions_gracefully(
    entities: Entities, scenario: ScenarioBus
) -> None:
    payment = entities.payment("pay-7", "300.00", "JPY", "Crypto")
    await payment.initialise()
    before = dict(payment.data)

    assert await payment.complete("txn-invalid") is False
    assert payment.state == "Pending"
    assert payment.transaction_id is None
    assert payment.data == before
