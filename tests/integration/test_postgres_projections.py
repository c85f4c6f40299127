"""PostgreSQL read models: the same answers as the in-memory ones, whole batches, exactly once across runners.

Positions on PostgreSQL are sparse (see store/postgres.py), so these tests compare read models with each
other and with the events, never with hand-counted positions.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pg_support import pg_url, postgres_store
from test_projections import FAST_RETRY, append, confirmed, created, random_history, snapshot

from order_machine.errors import StoreError
from order_machine.projections import (
    ConsistencyChecker, InMemoryReadModels, OrderProjector, ProjectionRunner, open_read_models,
)
from order_machine.projections.postgres import PostgresReadModels
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store() -> AsyncIterator[PostgresEventStore]:
    async with postgres_store(pool_size=6) as pg:
        yield pg


async def sql(store: PostgresEventStore, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:
        cur = await conn.execute(statement.replace("{s}", store.quoted_schema), args)
        return await cur.fetchall() if cur.description else []


async def test_postgres_read_models_answer_every_query_like_the_in_memory_ones(store: PostgresEventStore) -> None:
    pg, memory = open_read_models(store), InMemoryReadModels()
    assert isinstance(pg, PostgresReadModels)
    pg_runner = ProjectionRunner(store, pg, batch_size=13)
    memory_runner = ProjectionRunner(store, memory, batch_size=500)
    rng = random.Random(4)
    for batch in range(3):  # projection follows while events keep arriving
        await append(store, *(created(f"x-{batch}-{n}", f"c-{n % 4}", n) for n in range(rng.randint(1, 9))))
        await pg_runner.step()
    await random_history(store, 50, seed=4)
    await pg_runner.catch_up()
    await memory_runner.catch_up()
    expected = await snapshot(memory, store)
    assert len(expected) > 40 and await snapshot(pg, store) == expected
    for customer in ("c-0", "c-3"):
        assert await pg.orders_by_customer(customer, limit=1000) == await memory.orders_by_customer(customer, limit=1000)
        for status in ("Pending", "Delivered"):
            assert (await pg.orders_by_customer(customer, status=status, limit=5)
                    == await memory.orders_by_customer(customer, status=status, limit=5))
    assert await pg.orders_by_status("Cancelled", limit=1000) == await memory.orders_by_status("Cancelled", limit=1000)
    assert await pg.recently_updated(limit=7) == await memory.recently_updated(limit=7)
    assert await pg.get_order("missing") is None and await pg.get_summary("missing") is None


async def test_pages_walk_every_order_once_in_the_same_order_as_in_memory(store: PostgresEventStore) -> None:
    pg, memory = PostgresReadModels(store), InMemoryReadModels()
    await random_history(store, 45, seed=9)
    for models in (pg, memory):
        await ProjectionRunner(store, models).catch_up()

    async def walk(models: Any, fetch: str, *args: Any) -> list[str]:
        ids, cursor = [], None
        while True:
            page = await getattr(models, fetch)(*args, limit=4, cursor=cursor)
            ids += [o.id for o in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor

    for fetch, args in [("orders_by_customer", ("c-2",)), ("orders_by_status", ("Pending",)),
                        ("recently_updated", ())]:
        walked = await walk(pg, fetch, *args)
        assert walked == await walk(memory, fetch, *args) and len(walked) == len(set(walked)) > 4


async def test_a_rebuild_equals_the_incremental_projection(store: PostgresEventStore) -> None:
    models = PostgresReadModels(store)
    runner = ProjectionRunner(store, models, batch_size=7, rebuild_batch_size=50)
    await random_history(store, 80, seed=5)
    await runner.catch_up()
    incremental = await snapshot(models, store)
    events = len([e async for e in store.read_all()])
    report = await runner.rebuild()
    assert report.events == events
    assert await snapshot(models, store) == incremental
    assert (await runner.rebuild("order_history")).events == events
    assert await snapshot(models, store) == incremental


async def test_a_storage_failure_mid_batch_leaves_read_models_and_checkpoint_where_they_were(
        store: PostgresEventStore) -> None:
    models = PostgresReadModels(store)
    runner = ProjectionRunner(store, models, [OrderProjector()], retry=FAST_RETRY)
    first = await append(store, created("o-1"))
    await runner.catch_up()
    last = await append(store, confirmed("o-1"), created("o-2"), created("o-3"))
    await sql(store, "CREATE FUNCTION {s}.on_fire() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$")
    await sql(store, "CREATE TRIGGER no_checkpoint BEFORE UPDATE OF position ON {s}.projection_checkpoints "
                     "FOR EACH ROW WHEN (NEW.position <> OLD.position) EXECUTE FUNCTION {s}.on_fire()")
    await runner.catch_up()
    assert "disk on fire" in str(runner.failed["orders"].cause)
    assert isinstance(runner.failed["orders"].cause, StoreError)
    assert await models.quarantined() == []  # the storage is at fault, not an event: nothing set aside
    assert await models.checkpoint("orders") == first
    o1 = await models.get_order("o-1")
    assert o1 is not None and o1.status == "Pending"  # the rows written before the failure were rolled back
    assert await models.get_order("o-2") is None
    await sql(store, "DROP TRIGGER no_checkpoint ON {s}.projection_checkpoints")
    runner.resume("orders")
    assert await runner.wait_for(last, timeout=5)
    assert [o.id for o in (await models.orders_by_customer("c-1")).items] == ["o-1", "o-2", "o-3"]


async def test_runners_racing_on_one_schema_apply_each_event_once(store: PostgresEventStore) -> None:
    await random_history(store, 60, seed=3)
    runners = [ProjectionRunner(store, PostgresReadModels(store), batch_size=5, retry=FAST_RETRY) for _ in range(3)]
    await asyncio.gather(*(r.catch_up() for r in runners))
    assert not any(r.failed for r in runners)
    events = len([e async for e in store.read_all()])
    assert await sql(store, "SELECT sum(version)::int, (SELECT count(*)::int FROM {s}.read_order_history) "
                            "FROM {s}.read_orders") == [(events, events)]
    reference = InMemoryReadModels()
    await ProjectionRunner(store, reference).catch_up()
    assert await snapshot(runners[0].read_models, store) == await snapshot(reference, store)


async def test_a_tampered_read_model_is_found_and_repaired(store: PostgresEventStore) -> None:
    models = PostgresReadModels(store)
    runner = ProjectionRunner(store, models)
    await runner.wait_for(await append(store, created("o-1"), confirmed("o-1"), created("o-2")))
    good = await models.get_order("o-1")
    await sql(store, "UPDATE {s}.read_orders SET amount = 999.99 WHERE id = 'o-1'")
    await sql(store, "DELETE FROM {s}.read_order_items WHERE order_id = 'o-2'")
    checker = ConsistencyChecker(store, models)
    found = await checker.check_order("o-1")
    assert [(d.field, d.stored, d.expected) for d in found.differences] == [
        ("amount", Decimal("999.99"), Decimal("3.60"))]
    assert (await checker.check_order("o-1", repair=True)).repaired
    assert (await checker.check_order("o-2", repair=True)).repaired
    assert await models.get_order("o-1") == good
    assert (await checker.check_order("o-2")).consistent


async def test_postgres_read_models_refuse_another_backends_store() -> None:
    with pytest.raises(StoreError, match="PostgresEventStore"):
        PostgresReadModels.from_store(InMemoryEventStore())
