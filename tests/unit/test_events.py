"""Order events: JSON round trips, and old schema versions upcast on read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_machine.events import (
    TRANSITION_EVENTS, OrderCreated, OrderItem, OrderShipped, OrderTransitioned, StoredEvent, decode, encode, upcast,
    utcnow,
)
from order_machine.order import Order, order_machine


def stored(type_: str, data: Mapping[str, object], schema_version: int, version: int = 1) -> StoredEvent:
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


def test_an_old_event_of_a_name_no_release_wrote_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no upcaster for OrderTeleported v1"):
        decode(stored("OrderTeleported", {}, 1))


def test_any_other_name_on_an_order_stream_is_a_transition_stored_under_that_name() -> None:
    # what an `emits: OrderHeld` of one's own order.yaml writes: no class of its own is needed
    data = {"at": "2026-01-01T00:00:00+00:00", "action": "Hold", "source": "Confirmed", "target": "OnHold",
            "data": {"reason": "fraud check"}, "recorded": {"hold_reason": "fraud check"}}
    event = decode(stored("OrderHeld", data, 2))
    assert type(event) is OrderTransitioned
    assert (event.type_name, event.action, event.target, event.recorded) == (
        "OrderHeld", "Hold", "OnHold", {"hold_reason": "fraud check"})
    assert encode(event).type == "OrderHeld" and dict(encode(event).data) == data


@pytest.mark.parametrize(("name", "fields", "action", "recorded"), [
    ("OrderConfirmed", {}, "Confirm", {}),
    ("OrderShipped", {"tracking_number": "1Z", "shipping_address": "1 Main St"}, "Ship",
     {"tracking_number": "1Z", "shipping_address": "1 Main St"}),
    ("OrderCancelled", {"reason": "no stock"}, "Cancel", {"cancellation_reason": "no stock"}),
    ("OrderReturned", {"reason": "too big"}, "Return", {"return_reason": "too big"}),
])
def test_a_transition_event_of_release_0_1_0_is_upcast_to_the_generic_shape(
        name: str, fields: dict[str, str], action: str, recorded: dict[str, str]) -> None:
    # 0.1.0 wrote one class per transition, its fields beside from and to (schema version 1)
    v1 = {"at": "2026-01-01T00:00:00+00:00", "source": "A", "target": "B", **fields}
    event = decode(stored(name, v1, 1))
    assert isinstance(event, TRANSITION_EVENTS[name])
    assert (event.action, event.source, event.target, dict(event.data), dict(event.recorded)) == (
        action, "A", "B", fields, recorded)


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

