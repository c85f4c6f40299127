"""A user's projector on PostgreSQL takes part in the leases: one worker applies it, another takes it over
when the first gives its leases back, each event exactly once; bootstrap wires it into a Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from integration.pg_support import pg_url, shared_schema
from projector_examples import CustomerTotals, Ledger
from waiting import eventually

from order_machine import CreateOrder, Settings, bootstrap
from order_machine.events import NewEvent
from order_machine.projections import ProjectorTables, default_projectors, open_projector_tables
from order_machine.projections.workers import LeasedProjectionWorker
from order_machine.store.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with shared_schema() as name:
        yield name


async def owns(worker: LeasedProjectionWorker, name: str) -> None:
    await eventually(lambda: name in worker.owned, within=30, what=f"the lease of {name}")


async def append(store: PostgresEventStore, stream: str, count: int, version: int = 0) -> int:
    """The position of the last event appended (last_position() may not show it yet: another transaction
    on the server can hold back what readers see)."""
    position = 0
    for n in range(count):
        position = (await store.append(stream, [NewEvent("ThingHappened", {"n": n})], version + n)).position
    return position


async def ledger(tables: ProjectorTables) -> list[int]:
    return [r[0] for r in await tables.fetch("SELECT position FROM ledger ORDER BY position")]


async def test_leased_workers_share_a_users_projector_and_hand_it_over_without_applying_twice(schema: str) -> None:
    stores = [PostgresEventStore.from_url(pg_url(), schema=schema) for _ in range(2)]
    tables = [open_projector_tables(store) for store in stores]
    workers = [LeasedProjectionWorker(store, projectors=[*default_projectors(), *t.bind([Ledger()])],
                                      poll_interval=0.05, lease_interval=0.05) for store, t in zip(stores, tables)]
    first, second = workers
    try:
        await first.start()
        await owns(first, "ledger")
        await second.start()
        last = await append(stores[0], "things/1", 20)
        assert await second.wait_for(last, timeout=30)  # projected by the first, followed by the second
        assert "ledger" not in second.owned
        assert len(await ledger(tables[1])) == 20

        await first.stop()  # gives its leases back
        await owns(second, "ledger")
        last = await append(stores[1], "things/1", 15, version=20)
        assert await second.wait_for(last, timeout=30)
        rows = await ledger(tables[1])
        assert len(rows) == 35 and rows[-1] == last  # the key is the position: none applied twice
        assert {s.name: s.lag for s in await second.status()}["ledger"] == 0
    finally:
        for worker in workers:
            await worker.stop()
        for store in stores:
            await store.close()


async def test_bootstrap_runs_a_users_projector_under_the_lease_and_rebuilds_it(schema: str) -> None:
    settings = Settings(db_url=f"{pg_url()}{'&' if '?' in pg_url() else '?'}schema={schema}")
    async with await bootstrap(settings, projectors=[CustomerTotals()]) as runtime:
        for amount in ("10.00", "5.50"):
            await runtime.service.handle(CreateOrder(customer_id="cust-7", amount=amount))
        last = await runtime.service.handle(CreateOrder(customer_id="cust-8", items=[
            {"product_id": "sku-1", "quantity": 3, "unit_price": "0.10"}]))
        assert await runtime.wait_for_projections(last.position, timeout=30)
        assert runtime.worker is not None and "customer_totals" in runtime.worker.owned
        totals = await runtime.tables.fetch("SELECT customer_id, orders, amount FROM customer_totals ORDER BY 1")
        assert totals == [("cust-7", 2, Decimal("15.50")), ("cust-8", 1, Decimal("0.30"))]
        assert {s.name: s.lag for s in await runtime.projection_status()}["customer_totals"] == 0
        assert last.position <= await runtime.tables.checkpoint("customer_totals")

        await runtime.runner.rebuild("customer_totals")
        assert await runtime.runner.wait_for(last.position, timeout=30)  # what the rebuild could not see yet
        assert await runtime.tables.fetch("SELECT customer_id, orders, amount FROM customer_totals ORDER BY 1") == totals
