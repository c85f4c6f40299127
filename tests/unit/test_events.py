"""Order events: JSON round trips, and old schema versions upcast on read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_machine.events import (
    OrderCreated, OrderItem, OrderShipped, StoredEvent, decode, encode, upcast, utcnow,
)
from order_machine.order import Order, order_machine


def stored(type_: str, data: dict[str, object], schema_version: int, version: int = 1) -> StoredEvent:
    return StoredEvent(version, "ord-1", version, type_, schema_version, data, {}, datetime.now(UTC))


def test_every_order_event_survives_a_json_round_trip() -> None:
    at = utcnow()
    for event in (
        OrderCreated("ord-1", at, "cust-1", "gift", Decimal("10.50"), (OrderItem("sku", 2, Decimal("1.25")),)),
        OrderShipped("ord-1", at, "Processing", "Shipped", "TRK", "1 Main St"),
    ):
        new = encode(event)
        assert decode(stored(new.type, dict(new.data), new.schema_version)) == event


def test_a_version_1_order_created_is_read_as_the_current_version() -> None:
    # v1 was the reference's shape: item names, a `total` and `created_at`
    v1 = {"customer_id": "customer-1", "items": ["Laptop", "Mouse"], "total": "1299.99",
          "created_at": "2024-05-01T10:00:00+00:00"}
    event = decode(stored("OrderCreated", v1, schema_version=1))
    assert isinstance(event, OrderCreated)
    assert event.amount == Decimal("1299.99")
    assert [i.product_id for i in event.items] == ["Laptop", "Mouse"]
    assert event.at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    order = Order.replay(order_machine(), [event])
    assert (order.state, order.amount, order.customer_id) == ("Pending", Decimal("1299.99"), "customer-1")


def test_an_event_newer_than_the_code_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="newer than this code knows"):
        upcast("OrderCreated", 99, {})


def test_an_unknown_event_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown event type 'OrderTeleported'"):
        decode(stored("OrderTeleported", {}, 1))


async def test_a_stored_version_1_event_reads_the_same_on_the_write_and_the_read_side() -> None:
    from order_machine.commands import ConfirmOrder
    from order_machine.events import NewEvent
    from order_machine.projections import InMemoryReadModels, ProjectionRunner
    from order_machine.service import OrderCommandService
    from order_machine.store.memory import InMemoryEventStore

    store = InMemoryEventStore()
    v1 = {"customer_id": "customer-1", "items": ["Laptop"], "total": "1299.99",
          "created_at": "2024-05-01T10:00:00+00:00"}
    await store.append("ord-1", [NewEvent("OrderCreated", v1, schema_version=1)], 0)
    commands = OrderCommandService(store, order_machine())
    result = await commands.handle(ConfirmOrder(order_id="ord-1"))  # an old order still takes commands
    read_models = InMemoryReadModels()
    assert await ProjectionRunner(store, read_models).wait_for(result.position, timeout=5)
    order = await read_models.get_order("ord-1")
    assert order is not None and (order.status, order.amount) == ("Confirmed", Decimal("1299.99"))

