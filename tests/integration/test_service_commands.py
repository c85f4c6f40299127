"""The write side through OrderCommandService on the in-memory store: commands, refusals, idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from order_machine.bus import EventBus
from order_machine.commands import (
    AddOrderItem, CancelOrder, ConfirmOrder, CreateOrder, DeliverOrder, PerformAction,
    ShipOrder, StartProcessing, UpdateOrderStatus,
)
from order_machine.errors import (
    ConcurrencyError, InvalidCommandError, OrderExistsError, OrderNotFoundError, TransitionNotAllowedError,
)
from order_machine.order import order_machine
from order_machine.service import OrderCommandService
from order_machine.store import open_store
from order_machine.store.memory import InMemoryEventStore


@pytest.fixture(params=["memory", "sqlite"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OrderCommandService]:
    store = InMemoryEventStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path}/orders.db")
    yield OrderCommandService(store, order_machine())
    await store.close()


async def create(service: OrderCommandService, order_id: str = "o-1", **kw: object) -> None:
    await service.handle(CreateOrder(order_id=order_id, customer_id="c-1",
                                     items=[{"product_id": "p", "quantity": 2, "unit_price": "5.25"}], **kw))


async def test_an_order_goes_from_creation_to_delivery(service: OrderCommandService) -> None:
    await create(service)
    for command in (ConfirmOrder(order_id="o-1"), StartProcessing(order_id="o-1"),
                    ShipOrder(order_id="o-1", tracking_number="T1", shipping_address="1 Road"),
                    DeliverOrder(order_id="o-1")):
        result = await service.handle(command)
    assert (result.state, result.version) == ("Delivered", 5)
    order = await service.load("o-1")
    assert order.amount == Decimal("10.50")
    assert (order.tracking_number, order.shipping_address) == ("T1", "1 Road")


async def test_items_can_be_added_only_while_pending(service: OrderCommandService) -> None:
    await create(service)
    await service.handle(AddOrderItem(order_id="o-1", product_id="q", quantity=1, unit_price=Decimal("1")))
    assert (await service.load("o-1")).amount == Decimal("11.50")
    await service.handle(ConfirmOrder(order_id="o-1"))
    with pytest.raises(InvalidCommandError, match="only be added while Pending"):
        await service.handle(AddOrderItem(order_id="o-1", product_id="q", quantity=1, unit_price=Decimal("1")))
    assert (await service.load("o-1")).version == 3


async def test_a_refused_action_names_state_action_and_allowed_actions(service: OrderCommandService) -> None:
    await create(service)
    with pytest.raises(TransitionNotAllowedError) as refused:
        await service.handle(ShipOrder(order_id="o-1", tracking_number="T", shipping_address="A"))
    assert refused.value.to_dict()["allowed_actions"] == ["Confirm", "Cancel"]
    assert refused.value.state == "Pending"
    assert len(await service.store.load("o-1")) == 1


async def test_an_empty_order_cannot_be_confirmed_and_the_guard_is_named() -> None:
    service = OrderCommandService(InMemoryEventStore(), order_machine())
    await service.handle(CreateOrder(order_id="e", customer_id="c"))
    with pytest.raises(TransitionNotAllowedError) as refused:
        await service.handle(ConfirmOrder(order_id="e"))
    assert refused.value.guard == "has_value"


async def test_unknown_orders_and_duplicate_creates_are_errors(service: OrderCommandService) -> None:
    with pytest.raises(OrderNotFoundError):
        await service.handle(ConfirmOrder(order_id="nope"))
    await create(service)
    with pytest.raises(OrderExistsError):
        await create(service)


async def test_a_repeated_command_id_returns_the_first_result_and_appends_nothing(service: OrderCommandService) -> None:
    await create(service)
    first = await service.handle(ConfirmOrder(order_id="o-1", command_id="k-1"))
    again = await service.handle(ConfirmOrder(order_id="o-1", command_id="k-1"))
    assert again.duplicate and not first.duplicate
    assert (again.state, again.version) == (first.state, first.version)
    assert len(await service.store.load("o-1")) == 2


async def test_a_command_id_reused_for_another_request_is_refused(service: OrderCommandService) -> None:
    await create(service, command_id="k-1")
    with pytest.raises(InvalidCommandError, match="different request"):
        await service.handle(CancelOrder(order_id="o-1", reason="x", command_id="k-1"))


async def test_update_status_finds_the_one_action_leading_there(service: OrderCommandService) -> None:
    await create(service)
    result = await service.handle(UpdateOrderStatus(order_id="o-1", status="Confirmed"))
    assert result.events == ["OrderConfirmed"]
    with pytest.raises(TransitionNotAllowedError, match="no declared action"):
        await service.handle(UpdateOrderStatus(order_id="o-1", status="Delivered"))
    with pytest.raises(InvalidCommandError, match="unknown status"):
        await service.handle(UpdateOrderStatus(order_id="o-1", status="Lost"))
    result = await service.handle(UpdateOrderStatus(order_id="o-1", status="Cancelled", data={"reason": "r"}))
    assert result.state == "Cancelled"


async def test_a_pinned_stale_version_is_a_conflict(service: OrderCommandService) -> None:
    await create(service)
    with pytest.raises(ConcurrencyError):
        await service.handle(PerformAction(order_id="o-1", action="Confirm", expected_version=7))


async def test_missing_action_data_is_named(service: OrderCommandService) -> None:
    await create(service)
    with pytest.raises(InvalidCommandError) as bad:
        await service.handle(PerformAction(order_id="o-1", action="Cancel"))
    assert bad.value.field == "reason"


async def test_concurrent_commands_on_one_order_lose_no_update(service: OrderCommandService) -> None:
    await create(service)
    results = await asyncio.gather(
        *(service.handle(AddOrderItem(order_id="o-1", product_id=f"p{i}", quantity=1, unit_price=Decimal(1)))
          for i in range(20)),
    )
    versions = sorted(r.version for r in results)
    assert versions == list(range(2, 22))
    order = await service.load("o-1")
    assert len(order.items) == 21 and order.amount == Decimal("30.50")


async def test_the_per_order_queue_is_dropped_once_its_commands_are_done(service: OrderCommandService) -> None:
    await asyncio.gather(*(service.handle(CreateOrder(order_id=f"q-{n}", customer_id="c", amount="1"))
                           for n in range(20)))
    await asyncio.gather(*(service.handle(ConfirmOrder(order_id=f"q-{n % 20}")) for n in range(40)),
                         return_exceptions=True)  # two per order: the second is refused, after the first
    assert service.orders_in_flight == 0  # no lock kept for an order nobody is commanding


async def test_only_one_of_many_concurrent_cancels_and_returns_wins(service: OrderCommandService) -> None:
    await create(service)
    outcomes = await asyncio.gather(
        *(service.handle(CancelOrder(order_id="o-1", reason=f"r{i}")) for i in range(10)), return_exceptions=True,
    )
    accepted = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(accepted) == 1
    # every loser was refused on fresh state after its append conflicted, never silently dropped
    assert all(isinstance(o, TransitionNotAllowedError) for o in outcomes if isinstance(o, Exception))
    stored = await service.store.load("o-1")
    assert [e.type for e in stored] == ["OrderCreated", "OrderCancelled"]


async def test_accepted_events_are_published_after_the_append() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(type(e).__name__))
    await bus.start()
    service = OrderCommandService(InMemoryEventStore(), order_machine(), bus)
    await create(service)
    await service.handle(ConfirmOrder(order_id="o-1"))
    await bus.stop()
    assert seen == ["OrderCreated", "OrderConfirmed"]
    assert service.counters.accepted == 2


async def test_two_services_on_one_store_retry_conflicts_and_lose_nothing(service: OrderCommandService) -> None:
    other = OrderCommandService(service.store, order_machine())  # as a second process would
    await create(service)
    await asyncio.gather(*(
        s.handle(AddOrderItem(order_id="o-1", product_id=f"p{n}-{i}", quantity=1, unit_price=Decimal(1)))
        for i in range(10) for n, s in enumerate((service, other))
    ))
    stored = await service.store.load("o-1")
    assert [e.version for e in stored] == list(range(1, 22))
    assert len({e.data["product_id"] for e in stored[1:]}) == 20


async def test_a_stale_cached_order_never_decides_a_refusal(service: OrderCommandService) -> None:
    other = OrderCommandService(service.store, order_machine())  # another process
    await create(service)                                       # `service` now holds a copy at version 1
    await other.handle(ConfirmOrder(order_id="o-1"))
    result = await service.handle(StartProcessing(order_id="o-1"))  # refused on the copy, accepted on the store
    assert (result.state, result.version) == ("Processing", 3)


async def test_a_stale_cached_order_never_decides_an_acceptance(service: OrderCommandService) -> None:
    other = OrderCommandService(service.store, order_machine())
    await create(service)
    await other.handle(CancelOrder(order_id="o-1", reason="gone"))
    with pytest.raises(TransitionNotAllowedError) as refused:
        await service.handle(ConfirmOrder(order_id="o-1"))    # allowed on the copy, refused on the store
    assert refused.value.state == "Cancelled"
    assert [e.type for e in await service.store.load("o-1")] == ["OrderCreated", "OrderCancelled"]


async def test_a_pinned_version_is_judged_against_the_store_not_the_cache(service: OrderCommandService) -> None:
    other = OrderCommandService(service.store, order_machine())
    await create(service)
    await other.handle(ConfirmOrder(order_id="o-1"))
    result = await service.handle(PerformAction(order_id="o-1", action="StartProcessing", expected_version=2))
    assert result.version == 3
