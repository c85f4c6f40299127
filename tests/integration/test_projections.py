"""The read-model contract, run on every backend (memory, SQLite, PostgreSQL): the projection runner's wake-up,
polling, read-your-writes, atomic batches, retries, rebuild, and every query answered alike."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from integration.projection_support import (
    FAST_RETRY, Backend, FailingAt, append, confirmed, created, random_history, read_model_projectors, snapshot,
)
from waiting import eventually, eventually_async

from order_machine.bus import EventBus
from order_machine.errors import ProjectionError, StoreError
from order_machine.projections import (
    InMemoryReadModels, OrderHistoryProjector, OrderProjector, ProjectionRunner, RetryPolicy,
)

ALL = ("orders", "order_history", "workflows")


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
    position = await append(backend.store, created("o-1"))
    assert not await runner.wait_for(position + 50, timeout=0.1)
    assert await runner.checkpoints() == dict.fromkeys(ALL, position)


async def test_lag_is_the_last_position_minus_each_checkpoint(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models, batch_size=2)
    positions = [await append(backend.store, e)
                 for e in (created("o-1"), confirmed("o-1"), created("o-2"), created("o-3"), created("o-4"))]
    last = positions[-1]
    assert await runner.lag() == dict.fromkeys(ALL, last)
    assert await runner.step() == 2
    assert await runner.lag() == dict.fromkeys(ALL, last - positions[1])
    assert await runner.catch_up() == 3
    statuses = await runner.status()
    assert [(s.name, s.checkpoint, s.last_position, s.lag, s.error) for s in statuses] == [
        (name, last, last, 0, None) for name in ALL]


# --------------------------------------------------------------------------- failures


async def test_a_failure_that_passes_is_retried_and_applied_once(backend: Backend) -> None:
    second = await append(backend.store, created("o-1"), confirmed("o-1"))
    last = await append(backend.store, created("o-2"))
    flaky = FailingAt(OrderHistoryProjector(), {second}, times=2)
    runner = ProjectionRunner(backend.store, backend.models, [OrderProjector(), flaky], retry=FAST_RETRY)
    assert await runner.wait_for(last, timeout=5)
    assert flaky.attempts[second] == 3 and not runner.failed
    assert [h.version for h in await backend.models.order_history("o-1")] == [1, 2]


@asynccontextmanager
async def checkpoint_writes_fail(backend: Backend) -> AsyncIterator[None]:
    """While the block runs, moving a checkpoint (a batch's last statement) fails, as a full disk would."""
    if backend.kind == "sqlite":
        await backend.sql("CREATE TRIGGER no_checkpoint BEFORE UPDATE ON projection_checkpoints "
                          "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        drop = "DROP TRIGGER no_checkpoint"
    else:
        await backend.sql("CREATE FUNCTION {s}on_fire() RETURNS trigger LANGUAGE plpgsql AS "
                          "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$")
        await backend.sql("CREATE TRIGGER no_checkpoint BEFORE UPDATE OF position ON {s}projection_checkpoints "
                          "FOR EACH ROW WHEN (NEW.position <> OLD.position) EXECUTE FUNCTION {s}on_fire()")
        drop = "DROP TRIGGER no_checkpoint ON {s}projection_checkpoints"
    try:
        yield
    finally:
        await backend.sql(drop)


async def test_a_storage_failure_mid_batch_leaves_read_models_and_checkpoint_where_they_were(
        database: Backend) -> None:
    backend = database
    runner = ProjectionRunner(backend.store, backend.models, [OrderProjector()], retry=FAST_RETRY)
    first = await append(backend.store, created("o-1"))
    await runner.catch_up()
    failing_at = await append(backend.store, confirmed("o-1"))
    last = await append(backend.store, created("o-2"), created("o-3"))
    async with checkpoint_writes_fail(backend):
        await runner.catch_up()
        failure = runner.failed["orders"]
        assert failure.position == failing_at and "disk on fire" in str(failure.cause)
        assert isinstance(failure.cause, StoreError)
        assert await backend.models.quarantined() == []  # the storage is at fault, not the event: nothing set aside
        assert await backend.models.checkpoint("orders") == first
        with pytest.raises(ProjectionError, match=f"'orders' stopped at position {failing_at}"):
            await runner.wait_for(last, timeout=1)
        assert await runner.wait_for(first, timeout=1)  # positions before it are still served
        o1 = await backend.models.get_order("o-1")
        assert o1 is not None and o1.status == "Pending"  # the rows written before the failure were rolled back
        assert await backend.models.get_order("o-2") is None
    runner.resume("orders")
    assert await runner.wait_for(last, timeout=5)
    assert [o.id for o in (await backend.models.orders_by_customer("c-1")).items] == ["o-1", "o-2", "o-3"]


async def rows_per_event(backend: Backend) -> tuple[int, int]:
    """(the sum of the orders' versions, the history rows): both the number of events when each was applied once."""
    [(versions, history)] = await backend.sql(
        "SELECT sum(version), (SELECT count(*) FROM {s}read_order_history) FROM {s}read_orders")
    return int(versions), int(history)


async def test_runners_of_several_processes_on_one_database_apply_each_event_once(database: Backend) -> None:
    backend = database
    last = await random_history(backend.store, 60, seed=3)
    models = [backend.models, backend.more_models(), backend.more_models()]
    runners = [ProjectionRunner(backend.store, m, batch_size=5, retry=FAST_RETRY) for m in models]
    try:
        await asyncio.gather(*(r.catch_up() for r in runners))
        assert [await r.wait_for(last, timeout=5) for r in runners] == [True] * 3
        assert not any(r.failed for r in runners)
        events = await backend.event_count()
        assert await rows_per_event(backend) == (events, events)
        reference = InMemoryReadModels()
        await ProjectionRunner(backend.store, reference).catch_up()
        assert await snapshot(models[1], backend.store) == await snapshot(reference, backend.store)
    finally:
        for other in models[1:]:
            await other.close()


async def test_stop_interrupts_a_retry_backoff_promptly(backend: Backend) -> None:
    slow = RetryPolicy(retries=5, initial_delay=30, max_delay=30)
    position = await append(backend.store, created("o-1"))
    failing = FailingAt(OrderProjector(), {position})
    runner = ProjectionRunner(backend.store, backend.models, [failing], retry=slow)
    await runner.start()
    await eventually(lambda: failing.attempts.get(position), what="the first failure, then a 30 s backoff")
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
    events = await backend.event_count()
    assert report.projections == ALL and report.events == events
    assert report.events_per_second > 0
    assert await snapshot(backend.models, backend.store) == incremental
    assert (await runner.rebuild("order_history")).events == events
    assert await snapshot(backend.models, backend.store) == incremental
    assert await runner.checkpoints() == dict.fromkeys(ALL, last)


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
        AddOrderItem, CancelOrder, Command, ConfirmOrder, CreateOrder, DeliverOrder, ReturnOrder, ShipOrder,
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
    commands: list[Callable[[str], Command]] = [
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


async def test_a_checkpoint_reset_by_another_process_is_followed_from_where_it_now_is(database: Backend) -> None:
    backend = database
    theirs = backend.more_models()
    runner = ProjectionRunner(backend.store, backend.models, batch_size=4)
    await runner.wait_for(await random_history(backend.store, 10, seed=1))
    for projector in read_model_projectors(runner):  # e.g. `rebuild` started from the CLI, then interrupted
        await theirs.reset(projector)
    last = await append(backend.store, created("late-1"), confirmed("late-1"))
    assert await runner.wait_for(last, timeout=5) and not runner.failed
    events = await backend.event_count()
    assert await rows_per_event(backend) == (events, events)
    await theirs.close()
    await theirs.close()  # closing twice is harmless


async def test_database_read_models_answer_every_query_like_the_in_memory_ones(database: Backend) -> None:
    backend, memory = database, InMemoryReadModels()
    runner = ProjectionRunner(backend.store, backend.models, batch_size=13)
    memory_runner = ProjectionRunner(backend.store, memory, batch_size=500)
    rng = random.Random(4)
    for batch in range(3):  # projection follows while events keep arriving
        await append(backend.store, *(created(f"x-{batch}-{n}", f"c-{n % 4}", n) for n in range(rng.randint(1, 9))))
        await runner.step()
    await random_history(backend.store, 50, seed=4)
    await runner.catch_up()
    await memory_runner.catch_up()
    expected = await snapshot(memory, backend.store)
    models = backend.models
    assert len(expected) > 40 and await snapshot(models, backend.store) == expected
    for customer in ("c-0", "c-3"):
        assert await models.orders_by_customer(customer, limit=1000) == await memory.orders_by_customer(customer,
                                                                                                       limit=1000)
        for status in ("Pending", "Delivered"):
            assert (await models.orders_by_customer(customer, status=status, limit=5)
                    == await memory.orders_by_customer(customer, status=status, limit=5))
    assert await models.orders_by_status("Cancelled", limit=1000) == await memory.orders_by_status("Cancelled",
                                                                                                   limit=1000)
    assert await models.recently_updated(limit=7) == await memory.recently_updated(limit=7)
    assert await models.get_order("missing") is None and await models.get_summary("missing") is None
