"""Projectors fed plain events (no store, no I/O), kept by the in-memory read models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_machine.errors import InvalidCommandError
from order_machine.events import (
    OrderCancelled, OrderConfirmed, OrderCreated, OrderDelivered, OrderEvent, OrderItem, OrderItemAdded,
    OrderProcessingStarted, OrderReturned, OrderShipped, StoredEvent, encode,
)
from order_machine.projections import (
    InMemoryReadModels, OrderHistoryProjector, OrderProjector, default_projectors, project_order,
)
from order_machine.projections.projectors import EventFailed, decode_batch
from order_machine.projections.queries import order_model

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


class Feed:
    """Stored events as a store would return them: global positions, per-stream versions, JSON data."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.versions: dict[str, int] = {}

    def add(self, *events: OrderEvent) -> list[StoredEvent]:
        added = []
        for event in events:
            new = encode(event)
            version = self.versions.get(event.order_id, 0) + 1
            self.versions[event.order_id] = version
            stored = StoredEvent(len(self.events) + 1, event.order_id, version, new.type, new.schema_version,
                                 json.loads(json.dumps(new.data)), {}, new.recorded_at)
            self.events.append(stored)
            added.append(stored)
        return added

    def raw(self, order_id: str, type_: str, schema_version: int, data: dict[str, object]) -> StoredEvent:
        version = self.versions.get(order_id, 0) + 1
        self.versions[order_id] = version
        stored = StoredEvent(len(self.events) + 1, order_id, version, type_, schema_version, data, {}, T0)
        self.events.append(stored)
        return stored


def created(order_id: str = "o-1", customer: str = "c-1", amount: str | None = None, at: datetime = T0,
            items: tuple[OrderItem, ...] = ()) -> OrderCreated:
    return OrderCreated(order_id, at, customer, "a desk", Decimal(amount) if amount is not None else None, items)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def project(feed: Feed, models: InMemoryReadModels | None = None) -> InMemoryReadModels:
    models = models or InMemoryReadModels()
    for projector in default_projectors():
        after = await models.checkpoint(projector.name)
        await models.apply(projector, decode_batch([e for e in feed.events if e.position > after]), after)
    return models


async def test_a_created_order_shows_its_customer_items_and_pending_status() -> None:
    feed = Feed()
    feed.add(created(amount="10.00", items=(OrderItem("p-1", 2, Decimal("1.25")),)))
    order = await (await project(feed)).get_order("o-1")
    assert order is not None
    assert (order.customer_id, order.description, order.status, order.version) == ("c-1", "a desk", "Pending", 1)
    assert order.amount == Decimal("12.50")
    assert [(i.product_id, i.quantity, i.unit_price, i.total_price) for i in order.items] == [
        ("p-1", 2, Decimal("1.25"), Decimal("2.50"))]
    assert order.created_at == order.updated_at == T0


async def test_amount_is_the_initial_amount_or_zero_plus_every_item_total() -> None:
    feed = Feed()
    feed.add(created(), OrderItemAdded("o-1", at(1), "p-2", 3, Decimal("0.10")),
             OrderItemAdded("o-1", at(2), "p-3", 1, Decimal("7")))
    models = await project(feed)
    order, summary = await models.get_order("o-1"), await models.get_summary("o-1")
    assert order is not None and summary is not None
    assert order.amount == summary.amount == Decimal("7.30")
    assert isinstance(order.amount, Decimal)
    assert [i.product_id for i in order.items] == ["p-2", "p-3"]
    assert (summary.item_count, summary.updated_at, order.version) == (2, at(2), 3)


async def test_transitions_set_the_status_and_the_data_their_actions_record() -> None:
    feed = Feed()
    feed.add(created("o-1"), OrderConfirmed("o-1", at(1), "Pending", "Confirmed"),
             OrderProcessingStarted("o-1", at(2), "Confirmed", "Processing"),
             OrderShipped("o-1", at(3), "Processing", "Shipped", "TRK-9", "1 Main St"),
             OrderDelivered("o-1", at(4), "Shipped", "Delivered"),
             OrderReturned("o-1", at(5), "Delivered", "Returned", "too big"),
             created("o-2"), OrderCancelled("o-2", at(6), "Pending", "Cancelled", "changed my mind"))
    models = await project(feed)
    returned, cancelled = await models.get_order("o-1"), await models.get_order("o-2")
    assert returned is not None and cancelled is not None
    assert (returned.status, returned.tracking_number, returned.shipping_address, returned.return_reason) == (
        "Returned", "TRK-9", "1 Main St", "too big")
    assert (returned.version, returned.updated_at) == (6, at(5))
    assert (cancelled.status, cancelled.cancellation_reason, cancelled.tracking_number) == (
        "Cancelled", "changed my mind", None)


async def test_history_lists_every_event_with_action_from_to_time_and_data() -> None:
    feed = Feed()
    feed.add(created(amount="5"), OrderItemAdded("o-1", at(1), "p-2", 1, Decimal("2.50")),
             OrderConfirmed("o-1", at(2), "Pending", "Confirmed"),
             OrderCancelled("o-1", at(3), "Confirmed", "Cancelled", "no stock"))
    history = await (await project(feed)).order_history("o-1")
    assert [(h.position, h.version, h.type, h.action, h.from_state, h.to_state, h.at) for h in history] == [
        (1, 1, "OrderCreated", None, None, "Pending", T0),
        (2, 2, "OrderItemAdded", None, None, None, at(1)),
        (3, 3, "OrderConfirmed", "Confirm", "Pending", "Confirmed", at(2)),
        (4, 4, "OrderCancelled", "Cancel", "Confirmed", "Cancelled", at(3)),
    ]
    assert history[1].data == {"product_id": "p-2", "quantity": 1, "unit_price": "2.50"}
    assert history[3].data["reason"] == "no stock"


async def test_history_pages_by_version() -> None:
    feed = Feed()
    feed.add(created(), *(OrderItemAdded("o-1", at(n), f"p-{n}", 1, Decimal("1")) for n in range(1, 6)))
    models = await project(feed)
    assert [h.version for h in await models.order_history("o-1", after_version=2, limit=2)] == [3, 4]
    assert await models.order_history("o-unknown") == []


async def test_history_of_a_version_1_order_created_shows_the_upcast_data() -> None:
    feed = Feed()
    feed.raw("o-1", "OrderCreated", 1, {"created_at": T0.isoformat(), "customer_id": "c-9",
                                        "items": ["lamp"], "total": "30"})
    models = await project(feed)
    order, history = await models.get_order("o-1"), await models.order_history("o-1")
    assert order is not None and (order.customer_id, order.amount, order.items[0].product_id) == (
        "c-9", Decimal("30"), "lamp")
    assert history[0].data["amount"] == "30" and "total" not in history[0].data


async def test_an_event_for_an_order_never_created_fails_at_its_position() -> None:
    feed = Feed()
    feed.add(created("o-1"), OrderConfirmed("o-2", at(1), "Pending", "Confirmed"))
    models = InMemoryReadModels()
    with pytest.raises(EventFailed) as failure:
        await models.apply(OrderProjector(), decode_batch(feed.events), 0)
    assert (failure.value.index, failure.value.position) == (1, 2)
    assert "never created" in str(failure.value.cause)


async def test_a_version_gap_fails_instead_of_guessing() -> None:
    feed = Feed()
    feed.add(created("o-1"))
    feed.versions["o-1"] = 2  # version 2 is missing
    feed.add(OrderConfirmed("o-1", at(1), "Pending", "Confirmed"))
    with pytest.raises(EventFailed, match="version 3"):
        await InMemoryReadModels().apply(OrderProjector(), decode_batch(feed.events), 0)


async def test_a_failed_batch_leaves_read_models_and_checkpoint_untouched() -> None:
    feed = Feed()
    feed.add(created("o-1"))
    models = await project(feed)
    feed.add(OrderConfirmed("o-1", at(1), "Pending", "Confirmed"), created("o-3"),
             OrderConfirmed("o-2", at(2), "Pending", "Confirmed"))
    with pytest.raises(EventFailed):
        await models.apply(OrderProjector(), decode_batch(feed.events[1:]), 1)
    order = await models.get_order("o-1")
    assert order is not None and (order.status, order.version) == ("Pending", 1)
    assert await models.get_order("o-3") is None
    assert await models.checkpoint("orders") == 1


async def test_an_event_newer_than_this_code_fails_every_projector_and_a_foreign_event_is_passed_over() -> None:
    feed = Feed()
    feed.add(created("o-1"))
    # on a workflow's stream, a name that is none of the workflow events: no projector's business
    feed.raw("billing/p-1", "PaymentAuthorised", 1, {"amount": "3"})
    newer = feed.raw("o-1", "OrderItemAdded", 9, {"at": T0.isoformat(), "product_id": "p", "quantity": 1,
                                                  "unit_price": "1"})
    models = InMemoryReadModels()
    for projector in default_projectors():
        with pytest.raises(EventFailed, match="newer than this code knows") as failure:
            await models.apply(projector, decode_batch(feed.events), 0)
        assert failure.value.position == newer.position
    assert await models.apply(OrderHistoryProjector(), decode_batch(feed.events[:2]), 0) == 2
    assert [h.order_id for h in await models.order_history("o-1")] == ["o-1"]


@pytest.mark.parametrize(("field", "value"), [("unit_price", "not money"), ("unit_price", "NaN"),
                                               ("unit_price", 1.5), ("quantity", "2"), ("quantity", True)])
async def test_an_item_with_bad_data_fails_at_its_position_naming_the_field(field: str, value: object) -> None:
    feed = Feed()
    feed.add(created("o-1"))
    data: dict[str, object] = {"at": T0.isoformat(), "product_id": "p", "quantity": 1, "unit_price": "1"}
    bad = feed.raw("o-1", "OrderItemAdded", 1, {**data, field: value})
    with pytest.raises(EventFailed) as failure:
        await InMemoryReadModels().apply(OrderProjector(), decode_batch(feed.events), 0)
    assert failure.value.position == bad.position
    assert field in str(failure.value.cause)


async def test_project_order_rebuilds_the_same_read_model_as_the_projection() -> None:
    feed = Feed()
    feed.add(created("o-1", amount="3"), created("o-2"), OrderItemAdded("o-1", at(1), "p", 4, Decimal("0.5")),
             OrderConfirmed("o-1", at(2), "Pending", "Confirmed"))
    models = await project(feed)
    projected = project_order([e for e in feed.events if e.stream_id == "o-1"])
    assert projected.row is not None
    assert order_model(projected.row, projected.items) == await models.get_order("o-1")
    assert project_order([]).row is None


async def test_orders_by_customer_and_status_page_in_creation_order() -> None:
    feed = Feed()
    for n in range(7):
        feed.add(created(f"o-{n}", customer="c-1" if n % 2 == 0 else "c-2", at=at(10 - n)))
    feed.add(OrderConfirmed("o-2", at(20), "Pending", "Confirmed"))
    models = await project(feed)
    first = await models.orders_by_customer("c-1", limit=2)
    assert [o.id for o in first.items] == ["o-0", "o-2"] and first.next_cursor is not None
    second = await models.orders_by_customer("c-1", limit=2, cursor=first.next_cursor)
    assert [o.id for o in second.items] == ["o-4", "o-6"] and second.next_cursor is None
    pending = await models.orders_by_customer("c-1", status="Pending")
    assert [o.id for o in pending.items] == ["o-0", "o-4", "o-6"]
    assert [o.id for o in (await models.orders_by_status("Confirmed")).items] == ["o-2"]
    assert (await models.orders_by_status("Shipped")).items == []


async def test_recently_updated_pages_from_the_latest_change() -> None:
    feed = Feed()
    for n in range(5):
        feed.add(created(f"o-{n}", at=at(n)))
    feed.add(OrderConfirmed("o-1", at(30), "Pending", "Confirmed"))
    models = await project(feed)
    first = await models.recently_updated(limit=3)
    assert [s.id for s in first.items] == ["o-1", "o-4", "o-3"]
    rest = await models.recently_updated(limit=3, cursor=first.next_cursor)
    assert [s.id for s in rest.items] == ["o-2", "o-0"] and rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMl0", "W10"])
async def test_a_cursor_the_query_did_not_return_is_refused_by_name(cursor: str) -> None:
    with pytest.raises(InvalidCommandError, match="cursor") as refusal:
        await InMemoryReadModels().orders_by_status("Pending", cursor=cursor)
    assert refusal.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
async def test_a_limit_out_of_range_is_refused_by_name(limit: int) -> None:
    with pytest.raises(InvalidCommandError, match="limit"):
        await InMemoryReadModels().orders_by_customer("c-1", limit=limit)
