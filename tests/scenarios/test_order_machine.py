"""OrderMachineTest, ported: the six order scenarios of the reference, same data, same names, on each engine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_machine.order import OrderState

from ._harness import Entities, ScenarioBus, is_utc


def test_create_definition_get_valid_definition(entities: Entities) -> None:
    definition = entities.machine("order").definition
    assert definition is not None
    assert definition.initial is not None
    assert definition.initial == "Pending"
    assert OrderState(definition.initial) is OrderState.Pending


async def test_order_should_transition_through_complete_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    order = entities.order("ord-1", "customer-1", ["Laptop", "Mouse", "Keyboard"], "1299.99")
    assert order.state == OrderState.Pending

    await order.initialise()
    assert order.state == OrderState.Pending
    assert order.customer_id == "customer-1"
    assert [i.product_id for i in order.items] == ["Laptop", "Mouse", "Keyboard"]
    assert order.total_amount == Decimal("1299.99")
    assert is_utc(order.created_at)

    assert await order.confirm() is True
    assert order.state == OrderState.Confirmed
    assert await order.start_processing() is True
    assert order.state == OrderState.Processing
    assert await order.ship("TRK123456789", "123 Main St, City, State") is True
    assert order.state == OrderState.Shipped
    assert order.tracking_number == "TRK123456789"
    assert order.shipping_address == "123 Main St, City, State"
    assert await order.deliver() is True
    assert order.state == OrderState.Delivered
    assert is_utc(order.updated_at)
    assert order.updated_at >= order.created_at

    await scenario.settle()
    assert scenario.path("ord-1") == ["Pending", "Confirmed", "Processing", "Shipped", "Delivered"]
    assert len(scenario.seen) == 5  # one notice per step, nothing else


async def test_order_should_handle_cancellation_from_multiple_states(
    entities: Entities, scenario: ScenarioBus
) -> None:
    order1 = entities.order("ord-2", "customer-2", ["Book"], "29.99")
    await order1.initialise()
    assert await order1.cancel("Customer requested cancellation") is True
    assert order1.state == OrderState.Cancelled
    assert order1.cancellation_reason == "Customer requested cancellation"

    order2 = entities.order("ord-3", "customer-3", ["Phone"], "599.99")
    await order2.initialise()
    await order2.confirm()
    assert await order2.cancel("Out of stock") is True
    assert order2.state == OrderState.Cancelled
    assert order2.cancellation_reason == "Out of stock"

    order3 = entities.order("ord-4", "customer-4", ["Tablet"], "399.99")
    await order3.initialise()
    await order3.confirm()
    await order3.start_processing()
    assert await order3.cancel("Quality issue") is True
    assert order3.state == OrderState.Cancelled
    assert order3.cancellation_reason == "Quality issue"

    await scenario.settle()
    assert scenario.path("ord-4") == ["Pending", "Confirmed", "Processing", "Cancelled"]


async def test_order_should_handle_return_workflow(entities: Entities, scenario: ScenarioBus) -> None:
    order = entities.order("ord-5", "customer-5", ["Headphones", "Charger"], "199.99")
    await order.initialise()
    await order.confirm()
    await order.start_processing()
    await order.ship("TRK987654321", "456 Oak Ave, Town, State")
    await order.deliver()
    assert order.state == OrderState.Delivered

    assert await order.return_order("Defective product") is True
    assert order.state == OrderState.Returned
    assert order.return_reason == "Defective product"
    assert order.tracking_number == "TRK987654321"


async def test_order_should_throw_exception_when_not_initialized(
    entities: Entities, scenario: ScenarioBus
) -> None:
    order = entities.order("ord-6", "customer-6", ["Camera"], "799.99")

    with pytest.raises(entities.not_initialised, match="ord-6"):
        await order.confirm()
    assert order.state == OrderState.Pending
    await scenario.settle()
    assert scenario.seen == []


async def test_order_should_handle_invalid_transitions_gracefully(
    entities: Entities, scenario: ScenarioBus
) -> None:
    order = entities.order("ord-7", "customer-7", ["Watch"], "299.99")
    await order.initialise()
    version = order.version

    assert await order.ship("TRK-INVALID", "Invalid Address") is False
    assert order.state == OrderState.Pending
    assert order.tracking_number is None
    assert order.shipping_address is None
    assert order.version == version
    await scenario.settle()
    assert scenario.path("ord-7") == ["Pending"]
