"""A poison event quarantines its stream, on every backend: the projector records it (projector, stream,
position, type, error, since), skips that stream from there on, goes on with every other stream, and a
repaired stream is released (its rows rebuilt from its events) while the runner keeps going."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from integration.event_surgery import rewrite_event
from integration.projection_support import (
    FAST_RETRY, T0, Backend, FailingAt, append, confirmed, created, random_history, read_model_projectors, snapshot,
)
from waiting import eventually_async

from order_machine.errors import ReleaseError
from order_machine.events import NewEvent, OrderItemAdded, OrderProcessingStarted, OrderShipped
from order_machine.projections import (
    InMemoryReadModels, OrderHistoryProjector, OrderProjector, ProjectionRunner, Quarantine, release_quarantined,
)
from order_machine.projections.projectors import WorkflowProjector

SINCE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def clock() -> datetime:
    return SINCE


def processing(order_id: str) -> OrderProcessingStarted:
    return OrderProcessingStarted(order_id, T0 + timedelta(minutes=2), "Confirmed", "Processing")


def shipped(order_id: str) -> OrderShipped:
    return OrderShipped(order_id, T0 + timedelta(minutes=3), "Processing", "Shipped", "T-1", "1 Quay")


async def raw(backend: Backend, stream_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append an event as a buggy writer or a hand-edited database would leave it; returns its position."""
    version = len(await backend.store.load(stream_id))
    return (await backend.store.append(stream_id, [NewEvent(type_, data)], version)).position


async def reference(backend: Backend) -> dict[str, Any]:
    """What a projection of every event from scratch shows (nothing quarantined)."""
    models = InMemoryReadModels()
    runner = ProjectionRunner(backend.store, models)
    assert await runner.wait_for(await backend.store.last_position(), timeout=5)
    assert not await models.quarantined() and not runner.failed
    return await snapshot(models, backend.store)


# --------------------------------------------------------------------------- quarantine


async def test_a_stream_its_projector_keeps_failing_on_is_quarantined_and_every_other_stream_goes_on(
        backend: Backend) -> None:
    await append(backend.store, created("o-1"), created("o-2"))
    poison_at = await append(backend.store, confirmed("o-1"))
    last = await append(backend.store, confirmed("o-2"))
    poison = FailingAt(OrderProjector(), {poison_at})
    runner = ProjectionRunner(backend.store, backend.models, [poison, OrderHistoryProjector()], retry=FAST_RETRY,
                              clock=clock)
    assert await runner.wait_for(last, timeout=5)
    assert poison.attempts[poison_at] == FAST_RETRY.retries + 1  # retried with backoff first
    expected = [Quarantine("orders", "o-1", poison_at, "OrderConfirmed", f"RuntimeError: poison at {poison_at}", SINCE)]
    assert await backend.models.quarantined() == expected
    assert await backend.models.quarantined(stream_id="o-1", projector="orders") == expected
    assert await backend.models.quarantined(projector="order_history") == []

    later = await append(backend.store, processing("o-1"), created("o-3"), processing("o-2"))
    assert await runner.wait_for(later, timeout=5) and not runner.failed  # nobody waits on the poison
    o1, o2 = await backend.models.get_order("o-1"), await backend.models.get_order("o-2")
    assert o1 is not None and (o1.status, o1.version) == ("Pending", 1)  # its events from the poison on: skipped
    assert o2 is not None and (o2.status, o2.version) == ("Processing", 3)
    assert await backend.models.get_order("o-3") is not None
    assert [h.version for h in await backend.models.order_history("o-1")] == [1, 2, 3]  # another projector's view
    assert poison.attempts[poison_at] == FAST_RETRY.retries + 1  # never tried again while set aside
    statuses = {s.name: s for s in await runner.status()}
    assert statuses["orders"].quarantined == tuple(expected) and statuses["orders"].lag == 0
    assert statuses["order_history"].quarantined == ()


async def test_a_second_poison_behind_a_quarantined_stream_is_set_aside_too_and_nothing_between_is_lost(
        backend: Backend) -> None:
    await append(backend.store, created("o-1"), created("o-2"), created("o-3"))
    first = await append(backend.store, confirmed("o-1"))
    await append(backend.store, confirmed("o-2"), processing("o-1"))
    second = await append(backend.store, confirmed("o-3"))
    last = await append(backend.store, processing("o-2"))
    runner = ProjectionRunner(backend.store, backend.models, [FailingAt(OrderProjector(), {first, second})],
                              retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(last, timeout=5)  # one batch: the second poison after a skipped event of the first
    assert [(q.stream_id, q.position) for q in await backend.models.quarantined()] == [("o-1", first),
                                                                                       ("o-3", second)]
    assert await backend.models.checkpoint("orders") == last
    o2 = await backend.models.get_order("o-2")
    assert o2 is not None and o2.status == "Processing"


async def test_an_event_of_an_order_never_created_is_quarantined_by_the_orders_projection_only(
        backend: Backend) -> None:
    await append(backend.store, created("o-1"))
    ghost = await append(backend.store, confirmed("ghost"))  # a stream whose OrderCreated never was
    last = await append(backend.store, confirmed("o-1"))
    runner = ProjectionRunner(backend.store, backend.models, retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(last, timeout=5)
    [q] = await backend.models.quarantined()
    assert (q.projector, q.stream_id, q.position, q.event_type) == ("orders", "ghost", ghost, "OrderConfirmed")
    assert "never created" in q.error and q.since == SINCE
    o1 = await backend.models.get_order("o-1")
    assert o1 is not None and o1.status == "Confirmed"


async def test_a_workflow_event_of_an_instance_never_started_is_quarantined_by_the_workflows_projection(
        backend: Backend) -> None:
    orphan = await raw(backend, "ticket/T-9", "WorkflowTransitioned", {
        "at": T0.isoformat(), "action": "Assign", "source": "Open", "target": "Assigned", "recorded": {}})
    last = await append(backend.store, created("o-1"))
    runner = ProjectionRunner(backend.store, backend.models, [WorkflowProjector(), OrderProjector()],
                              retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(last, timeout=5)
    assert [(q.projector, q.stream_id, q.position) for q in await backend.models.quarantined()] == [
        ("workflows", "ticket/T-9", orphan)]
    assert await backend.models.get_order("o-1") is not None


async def test_a_bad_decimal_is_quarantined_then_released_once_the_event_is_repaired(backend: Backend) -> None:
    await append(backend.store, created("o-1"), created("o-2"))
    bad = await raw(backend, "o-1", "OrderItemAdded", {"at": T0.isoformat(), "product_id": "p-9", "quantity": 2,
                                                       "unit_price": "12,50"})
    last = await append(backend.store, confirmed("o-2"))
    runner = ProjectionRunner(backend.store, backend.models, retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(last, timeout=5)
    [q] = await backend.models.quarantined()
    assert (q.projector, q.stream_id, q.position) == ("orders", "o-1", bad) and "12,50" in q.error

    with pytest.raises(ReleaseError, match="still fails .* at position"):  # not repaired yet: it stays
        await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1")
    assert await backend.models.quarantined() == [q]

    await rewrite_event(backend.store, bad, {"at": T0.isoformat(), "product_id": "p-9", "quantity": 2,
                                             "unit_price": "12.50"})
    assert await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1") == {"orders": 2}
    assert await backend.models.quarantined() == []
    last = await append(backend.store, confirmed("o-1"))  # followed again from where the runner is
    assert await runner.wait_for(last, timeout=5)
    o1 = await backend.models.get_order("o-1")
    assert o1 is not None and (o1.status, o1.version, o1.amount) == ("Confirmed", 3, Decimal("28.60"))
    # the orders view equals a projection from scratch (order_history kept the event as it was: it never failed)
    assert {k: v[:2] for k, v in (await snapshot(backend.models, backend.store)).items()} == {
        k: v[:2] for k, v in (await reference(backend)).items()}


async def test_a_released_stream_is_rebuilt_from_its_events_and_followed_again(backend: Backend) -> None:
    await append(backend.store, created("o-1"), created("o-2"))
    poison_at = await append(backend.store, confirmed("o-1"))
    poison = FailingAt(OrderProjector(), {poison_at})
    runner = ProjectionRunner(backend.store, backend.models, [poison, OrderHistoryProjector()], retry=FAST_RETRY)
    assert await runner.wait_for(poison_at, timeout=5)
    assert await runner.wait_for(await append(backend.store, processing("o-1"), confirmed("o-2")), timeout=5)

    with pytest.raises(ReleaseError, match="not quarantined by projection 'order_history'"):
        await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1", "order_history")
    with pytest.raises(ReleaseError, match="no projection named 'invoices'"):
        await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1", "invoices")
    with pytest.raises(ReleaseError, match="'o-2' is not quarantined"):
        await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-2")

    poison.times = 0  # the projector's bug is fixed
    assert await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1", "orders") == {
        "orders": 3}
    o1 = await backend.models.get_order("o-1")
    assert o1 is not None and (o1.status, o1.version) == ("Processing", 3)
    last = await append(backend.store, shipped("o-1"))
    assert await runner.wait_for(last, timeout=5)
    assert await snapshot(backend.models, backend.store) == await reference(backend)


async def test_a_rebuild_forgets_the_quarantines_and_sets_a_still_failing_stream_aside_again(
        backend: Backend) -> None:
    await append(backend.store, created("o-1"))
    ghost = await append(backend.store, confirmed("ghost"))
    runner = ProjectionRunner(backend.store, backend.models, retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(ghost, timeout=5)
    assert [q.stream_id for q in await backend.models.quarantined()] == ["ghost"]
    runner.clock = lambda: SINCE + timedelta(days=1)
    await runner.rebuild("order_history")  # another projector's rebuild leaves it alone
    assert [q.since for q in await backend.models.quarantined()] == [SINCE]
    await runner.rebuild()
    [q] = await backend.models.quarantined()
    assert (q.stream_id, q.position, q.since) == ("ghost", ghost, SINCE + timedelta(days=1))


# --------------------------------------------------------------------------- the database's own limits


async def test_a_value_the_database_cannot_hold_is_quarantined_not_a_stopped_projection(database: Backend) -> None:
    backend = database
    await append(backend.store, created("o-1"), created("o-2"))
    huge = await raw(backend, "o-1", "OrderItemAdded", {"at": T0.isoformat(), "product_id": "p-9",
                                                        "quantity": 10**20, "unit_price": "1"})
    last = await append(backend.store, confirmed("o-2"), created("o-3"))
    runner = ProjectionRunner(backend.store, backend.models, [OrderProjector()], retry=FAST_RETRY, clock=clock)
    assert await runner.wait_for(last, timeout=5)  # the projector accepts it; the database refuses that row alone
    assert not runner.failed
    [q] = await backend.models.quarantined()
    assert (q.stream_id, q.position, q.event_type) == ("o-1", huge, "OrderItemAdded")
    assert await backend.models.checkpoint("orders") == last
    o2 = await backend.models.get_order("o-2")
    assert o2 is not None and o2.status == "Confirmed" and await backend.models.get_order("o-3") is not None
    with pytest.raises(ReleaseError, match="could not be released from projection 'orders'.*stays quarantined"):
        await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "o-1")
    assert await backend.models.quarantined() == [q]


async def test_a_release_racing_the_running_runner_and_new_events_of_that_stream_loses_nothing(
        database: Backend) -> None:
    backend = database
    await random_history(backend.store, 20, seed=2)
    await append(backend.store, created("hot"))
    poison_at = await append(backend.store, OrderItemAdded("hot", T0, "p-1", 1, Decimal("2")))
    poison = FailingAt(OrderProjector(), {poison_at})
    runner = ProjectionRunner(backend.store, backend.models, [poison, OrderHistoryProjector()], batch_size=3,
                              poll_interval=0.01, retry=FAST_RETRY)
    await runner.start()
    try:
        await eventually_async(backend.models.quarantined, what="the hot stream quarantined")
        poison.times = 0
        under_way = asyncio.Event()

        async def writer() -> int:
            last = 0
            for n in range(30):  # events of the released stream and of others, while it is released
                oid = f"w-{n}"
                last = await append(backend.store, created(oid),
                                    OrderItemAdded("hot", T0, f"p-{n}", 1, Decimal("1.25")))
                under_way.set()
            return last

        writing = asyncio.create_task(writer())
        await under_way.wait()
        assert await release_quarantined(backend.store, backend.models, read_model_projectors(runner), "hot")
        last = await writing
        assert await runner.wait_for(last, timeout=10)
    finally:
        await runner.stop()
    assert await backend.models.quarantined() == [] and not runner.failed
    assert await snapshot(backend.models, backend.store) == await reference(backend)


@pytest.mark.postgres
async def test_a_batch_waiting_on_the_checkpoint_lock_sees_the_release_that_held_it() -> None:
    """PostgreSQL: the quarantined streams are read after the checkpoint's row lock is granted, not with the
    snapshot of the statement that waited for it, so a release committed meanwhile is never missed."""
    import psycopg
    from integration.pg_support import pg_url, postgres_store

    from order_machine.projections.postgres import PostgresReadModels

    async with postgres_store(pool_size=4) as store:
        models = PostgresReadModels(store)
        await append(store, created("o-1"))
        poison_at = await append(store, confirmed("o-1"))
        poison = FailingAt(OrderProjector(), {poison_at})
        runner = ProjectionRunner(store, models, [poison], retry=FAST_RETRY)
        assert await runner.wait_for(poison_at, timeout=5)
        assert [q.stream_id for q in await models.quarantined()] == ["o-1"]
        last = await append(store, processing("o-1"))
        s = store.quoted_schema
        async with await psycopg.AsyncConnection.connect(pg_url()) as release:
            # a release in flight: the checkpoint row locked, the stream's rows rebuilt, its record deleted
            await release.execute(f"SELECT position FROM {s}.projection_checkpoints WHERE name = 'orders' FOR UPDATE")
            await release.execute(f"UPDATE {s}.read_orders SET status = 'Confirmed', version = 2 WHERE id = 'o-1'")
            await release.execute(f"DELETE FROM {s}.projection_quarantine WHERE stream_id = 'o-1'")
            step = asyncio.create_task(runner.step())

            async def batch_waits() -> bool:
                waiting = await (await release.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND a.query LIKE %s", (f"%{s}.projection_checkpoints%",))).fetchone()
                return bool(waiting and waiting[0])

            await eventually_async(batch_waits, what="the batch waiting for the checkpoint's lock")
            await release.commit()
            await step
        assert await models.checkpoint("orders") == last
        o1 = await models.get_order("o-1")
        assert o1 is not None and (o1.status, o1.version) == ("Processing", 3)
