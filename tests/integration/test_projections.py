"""The projection runner on real stores: wake-up, polling, read-your-writes, atomic batches, retries, rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from order_machine.bus import EventBus
from order_machine.errors import ProjectionError
from order_machine.events import (
    OrderCancelled, OrderConfirmed, OrderCreated, OrderDelivered, OrderEvent, OrderItem, OrderItemAdded,
    OrderProcessingStarted, OrderShipped, StoredEvent, encode,
)
from order_machine.projections import (
    Changes, OrderHistoryProjector, OrderProjector, ProjectionRunner, ReadModels, RetryPolicy, SQLiteReadModels,
    open_read_models,
)
from order_machine.store import EventStore
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.sqlite import SQLiteEventStore
from waiting import eventually, eventually_async

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
FAST_RETRY = RetryPolicy(retries=3, initial_delay=0.001, factor=2.0, max_delay=0.01)


@dataclass
class Backend:
    store: EventStore
    models: ReadModels
    path: Path | None = None


@contextlib.asynccontextmanager
async def open_backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if kind == "memory":
        memory = InMemoryEventStore()
        yield Backend(memory, open_read_models(memory))
        return
    async with SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db") as store:
        models = open_read_models(store)
        yield Backend(store, models, store.path)
        await models.close()


@pytest.fixture(params=["memory", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend("sqlite", tmp_path) as opened:
        yield opened


async def append(store: EventStore, *events: OrderEvent) -> int:
    """Append each order's events at its current version; returns the last position written."""
    position = 0
    for event in events:
        version = len(await store.load(event.order_id))
        position = (await store.append(event.order_id, [encode(event)], version)).position
    return position


def created(order_id: str, customer: str = "c-1", minutes: int = 0) -> OrderCreated:
    return OrderCreated(order_id, T0 + timedelta(minutes=minutes), customer, "desc", Decimal("2.50"),
                        (OrderItem("p-1", 1, Decimal("1.10")),))


def confirmed(order_id: str, minutes: int = 1) -> OrderConfirmed:
    return OrderConfirmed(order_id, T0 + timedelta(minutes=minutes), "Pending", "Confirmed")


async def random_history(store: EventStore, orders: int, seed: int) -> int:
    """Orders at random stages (with items), interleaved across streams; returns the last position."""
    rng = random.Random(seed)
    plans: dict[str, list[OrderEvent]] = {}
    for n in range(orders):
        oid, t = f"o-{n:04d}", T0 + timedelta(seconds=n)
        plan: list[OrderEvent] = [OrderCreated(oid, t, f"c-{n % 7}", f"order {n}", rng.choice([None, Decimal("3")]))]
        plan += [OrderItemAdded(oid, t, f"p-{k}", rng.randint(1, 5), Decimal(rng.randint(0, 999)) / 100)
                 for k in range(rng.randint(0, 3))]
        steps: list[OrderEvent] = [OrderConfirmed(oid, t, "Pending", "Confirmed"),
                                   OrderProcessingStarted(oid, t, "Confirmed", "Processing"),
                                   OrderShipped(oid, t, "Processing", "Shipped", f"T{n}", f"{n} Road"),
                                   OrderDelivered(oid, t, "Shipped", "Delivered")]
        done = rng.randint(0, 4)
        plan += steps[:done]
        if done <= 2 and rng.random() < 0.3:
            plan.append(OrderCancelled(oid, t, ("Pending", "Confirmed", "Processing")[done], "Cancelled", "no"))
        plans[oid] = plan
    position = 0
    while plans:
        oid = rng.choice(sorted(plans))
        take = plans[oid][:rng.randint(1, 3)]
        plans[oid] = plans[oid][len(take):]
        version = len(await store.load(oid))
        position = (await store.append(oid, [encode(e) for e in take], version)).position
        if not plans[oid]:
            del plans[oid]
    return position


async def snapshot(models: ReadModels, store: EventStore) -> dict[str, Any]:
    """Everything the queries can show, for comparing two projections."""
    out: dict[str, Any] = {}
    after = ""
    while ids := await store.stream_ids(after, 100):
        for oid in ids:
            out[oid] = (await models.get_order(oid), await models.get_summary(oid),
                        await models.order_history(oid, limit=1000))
        after = ids[-1]
    return out


class FailingAt:
    """A projector that raises on chosen positions, `times` times each (None: forever)."""

    def __init__(self, inner: OrderProjector | OrderHistoryProjector, positions: set[int],
                 times: int | None = None) -> None:
        self.inner, self.positions, self.times = inner, positions, times
        self.name, self.views, self.reads_orders = inner.name, inner.views, inner.reads_orders
        self.attempts: dict[int, int] = {}

    def apply(self, changes: Changes, stored: StoredEvent, data: Mapping[str, Any]) -> None:
        if stored.position in self.positions:
            self.attempts[stored.position] = self.attempts.get(stored.position, 0) + 1
            if self.times is None or self.attempts[stored.position] <= self.times:
                raise RuntimeError(f"poison at {stored.position}")
        self.inner.apply(changes, stored, data)


# --------------------------------------------------------------------------- following the store


async def test_the_bus_wakes_the_runner_without_waiting_for_a_poll(backend: Backend) -> None:
    bus = EventBus()
    runner = ProjectionRunner(backend.store, backend.models, poll_interval=60)
    bus.subscribe(runner.wake)
    await bus.start()
    await runner.start()
    try:
        await runner.wait_for(0)
        position = await append(backend.store, created("o-1"))
        await bus.publish(position)

        async def projected() -> bool:
            return (await backend.models.checkpoint("order_history") >= position
                    and await backend.models.checkpoint("orders") >= position)

        await eventually_async(projected, within=5, what="both projections at the new position")
        assert (await backend.models.get_order("o-1")) is not None
    finally:
        await runner.stop()
        await bus.stop()


async def test_the_runner_polls_when_nobody_wakes_it(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, poll_interval=0.02)
    await runner.start()
    try:
        position = await append(backend.store, created("o-1"), confirmed("o-1"))

        async def projected() -> bool:
            return await backend.models.checkpoint("orders") >= position

        await eventually_async(projected, within=5, what="the orders projection at the new position")
        order = await backend.models.get_order("o-1")
        assert order is not None and order.status == "Confirmed"
    finally:
        await runner.stop()
    assert not runner.running


async def test_wait_for_gives_read_your_writes_with_or_without_a_started_runner(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, poll_interval=60)
    position = await append(backend.store, created("o-1"))
    assert await runner.wait_for(position, timeout=5)
    assert (await backend.models.get_order("o-1")) is not None
    await runner.start()
    try:
        position = await append(backend.store, confirmed("o-1"))
        assert await runner.wait_for(position, timeout=5)  # no bus: wait_for wakes the runner itself
        order = await backend.models.get_order("o-1")
        assert order is not None and order.status == "Confirmed"
    finally:
        await runner.stop()


async def test_wait_for_a_position_not_written_yet_times_out_with_false(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, poll_interval=0.01)
    await append(backend.store, created("o-1"))
    assert not await runner.wait_for(50, timeout=0.1)
    assert await runner.checkpoints() == {"orders": 1, "order_history": 1, "workflows": 1}


async def test_lag_is_the_last_position_minus_each_checkpoint(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, batch_size=2)
    await append(backend.store, created("o-1"), confirmed("o-1"), created("o-2"), created("o-3"), created("o-4"))
    assert await runner.lag() == {"orders": 5, "order_history": 5, "workflows": 5}
    assert await runner.step() == 2
    assert await runner.lag() == {"orders": 3, "order_history": 3, "workflows": 3}
    assert await runner.catch_up() == 3
    statuses = await runner.status()
    assert [(s.name, s.checkpoint, s.last_position, s.lag, s.error) for s in statuses] == [
        ("orders", 5, 5, 0, None), ("order_history", 5, 5, 0, None), ("workflows", 5, 5, 0, None)]


# --------------------------------------------------------------------------- failures


async def test_a_failure_that_passes_is_retried_and_applied_once(backend: Backend) -> None:
    flaky = FailingAt(OrderHistoryProjector(), {2}, times=2)
    runner = ProjectionRunner(backend.store, backend.models, [OrderProjector(), flaky], retry=FAST_RETRY)
    last = await append(backend.store, created("o-1"), confirmed("o-1"), created("o-2"))
    assert await runner.wait_for(last, timeout=5)
    assert flaky.attempts[2] == 3 and not runner.failed
    assert [h.version for h in await backend.models.order_history("o-1")] == [1, 2]


async def test_a_storage_failure_mid_batch_leaves_read_models_and_checkpoint_where_they_were(
        sqlite_backend: Backend) -> None:
    backend = sqlite_backend
    assert backend.path is not None
    runner = ProjectionRunner(backend.store, backend.models, [OrderProjector()], retry=FAST_RETRY)
    first = await append(backend.store, created("o-1"))
    await runner.catch_up()
    last = await append(backend.store, confirmed("o-1"), created("o-2"), created("o-3"))
    with sqlite3.connect(backend.path) as conn:  # the checkpoint write, the batch's last statement, fails
        conn.execute("CREATE TRIGGER no_checkpoint BEFORE UPDATE ON projection_checkpoints "
                     "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    await runner.catch_up()
    assert runner.failed["orders"].position == first + 1 and "disk on fire" in str(runner.failed["orders"].cause)
    assert await backend.models.quarantined() == []  # the storage is at fault, not the event: nothing set aside
    assert await backend.models.checkpoint("orders") == first
    with pytest.raises(ProjectionError, match="'orders' stopped at position 2"):
        await runner.wait_for(last, timeout=1)
    assert await runner.wait_for(first, timeout=1)  # positions before it are still served
    o1 = await backend.models.get_order("o-1")
    assert o1 is not None and o1.status == "Pending"  # the rows written before the failure were rolled back
    assert await backend.models.get_order("o-2") is None
    with sqlite3.connect(backend.path) as conn:
        conn.execute("DROP TRIGGER no_checkpoint")
    runner.resume("orders")
    assert await runner.wait_for(last, timeout=5)
    assert [o.id for o in (await backend.models.orders_by_customer("c-1")).items] == ["o-1", "o-2", "o-3"]


async def test_two_runners_on_one_database_apply_each_event_once(tmp_path: Path) -> None:
    async with SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db") as store:
        last = await random_history(store, 60, seed=3)
        one, two = SQLiteReadModels(store.path), SQLiteReadModels(store.path)
        runners = [ProjectionRunner(store, m, batch_size=5, retry=FAST_RETRY) for m in (one, two)]
        await asyncio.gather(*(r.catch_up() for r in runners))
        assert [await r.wait_for(last, timeout=5) for r in runners] == [True, True]
        assert not any(r.failed for r in runners)
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT SUM(version) FROM read_orders").fetchone()[0] == last
            assert conn.execute("SELECT COUNT(*) FROM read_order_history").fetchone()[0] == last
        await one.close()
        await two.close()


async def test_stop_interrupts_a_retry_backoff_promptly(backend: Backend) -> None:
    slow = RetryPolicy(retries=5, initial_delay=30, max_delay=30)
    failing = FailingAt(OrderProjector(), {1})
    runner = ProjectionRunner(backend.store, backend.models, [failing], retry=slow)
    await append(backend.store, created("o-1"))
    await runner.start()
    await eventually(lambda: failing.attempts.get(1), what="the first failure, then a 30 s backoff")
    async with asyncio.timeout(2):
        await runner.stop()
    assert not runner.failed and await backend.models.checkpoint("orders") == 0


# --------------------------------------------------------------------------- rebuild and queries


async def test_a_rebuild_equals_the_incremental_projection(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, batch_size=7, rebuild_batch_size=50)
    rng = random.Random(11)
    for seed in range(4):  # projections follow while events keep arriving, in small uneven batches
        await append(backend.store, *(created(f"x-{seed}-{n}", f"c-{n % 3}", n) for n in range(rng.randint(1, 9))))
        await runner.step()
    last = await random_history(backend.store, 80, seed=5)
    await runner.catch_up()
    incremental = await snapshot(backend.models, backend.store)
    report = await runner.rebuild()
    assert report.projections == ("orders", "order_history", "workflows") and report.events == last
    assert report.events_per_second > 0
    assert await snapshot(backend.models, backend.store) == incremental
    assert (await runner.rebuild("order_history")).events == last
    assert await snapshot(backend.models, backend.store) == incremental
    assert await runner.checkpoints() == {"orders": last, "order_history": last, "workflows": last}


async def test_rebuild_of_an_unknown_projection_names_the_known_ones(backend: Backend) -> None:
    with pytest.raises(ValueError, match="orders, order_history"):
        await ProjectionRunner(backend.store, backend.models).rebuild("invoices")


async def test_pages_by_customer_status_and_update_time_return_each_order_once(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models)
    last = await random_history(backend.store, 45, seed=9)
    await runner.wait_for(last)
    everything = sorted((await snapshot(backend.models, backend.store)).values(), key=lambda m: m[2][0].position)
    by_customer: dict[str, list[str]] = {}
    by_status: dict[str, list[str]] = {}
    for order, _, _ in everything:  # in creation order, the order of the pages
        by_customer.setdefault(order.customer_id, []).append(order.id)
        by_status.setdefault(order.status, []).append(order.id)

    async def walk(fetch: Any) -> list[str]:
        ids, cursor = [], None
        while True:
            page = await fetch(cursor)
            ids += [o.id for o in page.items]
            if page.next_cursor is None:
                return ids
            assert len(page.items) == 4
            cursor = page.next_cursor

    for customer, ids in by_customer.items():
        assert await walk(lambda c, k=customer: backend.models.orders_by_customer(k, limit=4, cursor=c)) == ids
    for status, ids in by_status.items():
        assert await walk(lambda c, s=status: backend.models.orders_by_status(s, limit=4, cursor=c)) == ids
    recent = await walk(lambda c: backend.models.recently_updated(limit=4, cursor=c))
    expected = sorted(everything, key=lambda m: (m[0].updated_at, m[0].id), reverse=True)
    assert recent == [m[0].id for m in expected]


async def test_the_read_model_says_what_the_aggregate_says_after_random_commands(backend: Backend) -> None:
    from order_machine.commands import (
        AddOrderItem, CancelOrder, ConfirmOrder, CreateOrder, DeliverOrder, ReturnOrder, ShipOrder,
    )
    from order_machine.commands import StartProcessing as StartProcessingCommand
    from order_machine.errors import InvalidCommandError, TransitionNotAllowedError
    from order_machine.order import order_machine
    from order_machine.service import OrderCommandService

    service = OrderCommandService(backend.store, order_machine())
    rng = random.Random(7)
    ids = [f"o-{n}" for n in range(12)]
    for oid in ids:
        await service.handle(CreateOrder(
            order_id=oid, customer_id=f"c-{rng.randint(1, 3)}", description=rng.choice(["", "gift"]),
            amount=rng.choice([None, Decimal("0"), Decimal("12.5")]),
            items=[{"product_id": f"p-{k}", "quantity": rng.randint(1, 4),
                    "unit_price": Decimal(rng.randint(0, 500)) / 100} for k in range(rng.randint(0, 2))]))
    commands = [
        lambda oid: AddOrderItem(order_id=oid, product_id="extra", quantity=rng.randint(1, 3),
                                 unit_price=Decimal("1.05")),
        lambda oid: ConfirmOrder(order_id=oid), lambda oid: StartProcessingCommand(order_id=oid),
        lambda oid: ShipOrder(order_id=oid, tracking_number=f"T-{oid}", shipping_address="2 Quay"),
        lambda oid: DeliverOrder(order_id=oid), lambda oid: CancelOrder(order_id=oid, reason="late"),
        lambda oid: ReturnOrder(order_id=oid, reason="broken"),
    ]
    for _ in range(150):
        command = rng.choices(commands, weights=[3, 4, 4, 4, 4, 1, 3])[0]
        try:
            await service.handle(command(rng.choice(ids)))
        except (TransitionNotAllowedError, InvalidCommandError):
            pass
    runner = ProjectionRunner(backend.store, backend.models, batch_size=13)
    assert await runner.wait_for(await backend.store.last_position(), timeout=5)
    for oid in ids:
        order, read = await service.load(oid), await backend.models.get_order(oid)
        assert read is not None
        assert (read.status, read.version, read.amount, read.customer_id, read.description) == (
            order.state, order.version, order.amount, order.customer_id, order.description)
        assert [(i.product_id, i.quantity, i.unit_price) for i in read.items] == [
            (i.product_id, i.quantity, i.unit_price) for i in order.items]
        assert (read.tracking_number, read.shipping_address, read.cancellation_reason, read.return_reason) == (
            order.tracking_number, order.shipping_address, order.cancellation_reason, order.return_reason)
        assert (read.created_at, read.updated_at) == (order.created_at, order.updated_at)


async def test_a_checkpoint_reset_by_another_process_is_followed_from_where_it_now_is(tmp_path: Path) -> None:
    async with SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db") as store:
        ours, theirs = SQLiteReadModels(store.path), SQLiteReadModels(store.path)
        runner = ProjectionRunner(store, ours, batch_size=4)
        await runner.wait_for(await random_history(store, 10, seed=1))
        for projector in runner.projectors:  # e.g. `rebuild` started from the CLI, then interrupted
            await theirs.reset(projector)
        last = await append(store, created("late-1"), confirmed("late-1"))
        assert await runner.wait_for(last, timeout=5) and not runner.failed
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT SUM(version) FROM read_orders").fetchone()[0] == last
            assert conn.execute("SELECT COUNT(*) FROM read_order_history").fetchone()[0] == last
        await ours.close()
        await theirs.close()
        await ours.close()  # closing twice is harmless
