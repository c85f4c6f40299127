"""SagaPatternTest, ported: an order and its payment (tests/scenarios/definitions, YAML only) driven by the
reference's saga, a flow of steps each naming the next, with compensation; on each engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from ._harness import Entities, ScenarioBus

Step = Callable[[], Awaitable[str | None]]


async def run_saga(entities: Entities, saga_id: str, amount: str, description: str, credit_limit: str,
                   can_pay: bool) -> tuple[Any, Any]:
    """The reference's six steps; each returns the name of the next one (None: the end)."""
    order = entities.workflow("saga_order", f"{saga_id}-order", amount=amount, description=description)
    payment = entities.workflow("saga_payment", f"{saga_id}-payment", amount=amount)

    async def create_order() -> str | None:
        await order.initialise()
        assert await order.validate()
        return "pre_authorize_payment"

    async def pre_authorize_payment() -> str | None:
        await payment.initialise()
        if Decimal(credit_limit) >= Decimal(amount):
            assert await payment.pre_authorize()
            return "confirm_payment"
        assert await payment.deny()
        return "cancel_payment"

    async def confirm_payment() -> str | None:
        if can_pay:
            assert await payment.confirm()
            return "confirm_order"
        return "cancel_payment"  # the reference cancels here and again in the next step; once is enough

    async def confirm_order() -> str | None:
        assert await order.confirm()
        return None

    async def cancel_payment() -> str | None:
        assert await payment.cancel()
        return "cancel_order"

    async def cancel_order() -> str | None:
        assert await order.cancel()
        return None

    steps: dict[str, Step] = {s.__name__: s for s in (create_order, pre_authorize_payment, confirm_payment,
                                                        confirm_order, cancel_payment, cancel_order)}
    next_step: str | None = "create_order"
    while next_step is not None:
        next_step = await steps[next_step]()
    return order, payment


async def test_saga_pattern_when_invoke_with_credit_should_return_order_confirmed_payment_confirmed(
        entities: Entities, scenario: ScenarioBus) -> None:
    order, payment = await run_saga(entities, "saga-1", "10.0", "Operation with credit", "20.0", can_pay=True)
    assert (order.state, payment.state) == ("Confirmed", "Confirmed")
    assert (order.amount, order.description, payment.amount) == (Decimal("10.0"), "Operation with credit",
                                                                  Decimal("10.0"))
    await scenario.settle()
    assert scenario.path("saga-1-payment") == ["New", "PreAuthorized", "Confirmed"]


async def test_saga_pattern_when_invoke_without_credit_should_return_order_cancelled_payment_cancelled(
        entities: Entities, scenario: ScenarioBus) -> None:
    order, payment = await run_saga(entities, "saga-2", "50.0", "Operation without credit", "20.0", can_pay=True)
    assert (order.state, payment.state) == ("Cancelled", "Cancelled")
    await scenario.settle()
    assert scenario.path("saga-2-payment") == ["New", "Denied", "Cancelled"]
    assert scenario.path("saga-2-order") == ["New", "Pending", "Cancelled"]


async def test_a_payment_that_cannot_be_made_is_compensated_once(entities: Entities, scenario: ScenarioBus) -> None:
    order, payment = await run_saga(entities, "saga-3", "10.0", "Operation that fails", "20.0", can_pay=False)
    assert (order.state, payment.state) == ("Cancelled", "Cancelled")
    await scenario.settle()
    assert scenario.path("saga-3-payment") == ["New", "PreAuthorized", "Cancelled"]
