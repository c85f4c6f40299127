"""Projection workers share the projectors by advisory-lock leases; a worker killed with -9 is taken over
and the read models still equal a rebuild."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from integration.order_streams import READ_MODEL_TABLES
from integration.order_streams import fill as fill_orders
from integration.pg_support import pg_url, postgres_store, shared_schema
from waiting import eventually, eventually_async

from order_machine.events import OrderCreated, encode
from order_machine.projections import ProjectionRunner
from order_machine.projections.postgres import PostgresReadModels
from order_machine.projections.workers import LeasedProjectionWorker
from order_machine.store.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

BOTH = {"orders", "order_history", "workflows"}  # every default projector
TABLES = READ_MODEL_TABLES


async def fill(store: PostgresEventStore, orders: int) -> tuple[int, int]:
    return await fill_orders(store, orders, concurrency=8)  # within the connection pool


async def dump(schema: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        out = {}
        for table, key in TABLES.items():
            cur = await conn.execute(f'SELECT * FROM "{schema}".{table} ORDER BY {key}')
            out[table] = await cur.fetchall()
        return out


async def checkpoints(schema: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        cur = await conn.execute(f'SELECT name, position FROM "{schema}".projection_checkpoints')
        return {name: position for name, position in await cur.fetchall()}


class Worker:
    """A worker process (`python -m order_machine.projections.workers`) and the lease lines it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.leases: set[str] = set()

    @classmethod
    async def start(cls, schema: str, batch_size: int) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "order_machine.projections.workers", "--db", pg_url(), "--schema", schema,
            "--batch-size", str(batch_size), "--poll", "0.05", "--lease", "0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        worker = cls(process)
        assert await worker.line(15) == "ready"
        return worker

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            return (await self.process.stdout.readline()).decode().strip()

    async def expect_leases(self, names: set[str], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not names <= self.leases:
                verb, name = (await self.line(timeout)).split()
                assert verb == "lease", f"unexpected line {verb} {name}"
                self.leases.add(name)

    async def takes_no_lease_for(self, seconds: float) -> bool:
        try:
            await self.line(seconds)
        except TimeoutError:
            return True
        return False

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


async def wait_for_checkpoints(schema: str, done: bool | int, timeout: float = 30) -> dict[str, int]:
    """Wait until every checkpoint has moved (`done=True`) or all are at position `done`."""
    async def reached() -> dict[str, int] | None:
        found = await checkpoints(schema)
        if isinstance(done, bool):
            return found if found and min(found.values()) > 0 else None
        return found if set(found) == BOTH and all(p == done for p in found.values()) else None

    return await eventually_async(reached, within=timeout, every=0.02, what=f"checkpoints at {done}")


@pytest.mark.slow
async def test_a_killed_worker_is_taken_over_and_the_read_models_equal_a_rebuild(workers: list[Worker]) -> None:
    async with shared_schema() as schema, postgres_store(schema=schema) as store:
        last, events = await fill(store, 900)
        assert events > 2500
        first = await Worker.start(schema, batch_size=5)
        workers.append(first)
        await first.expect_leases(BOTH)
        second = await Worker.start(schema, batch_size=5)
        workers.append(second)
        assert await second.takes_no_lease_for(0.5), "a lease was given twice"

        await wait_for_checkpoints(schema, True)
        await first.kill()  # mid-run, most likely mid-batch: its transaction dies with it
        progress = await checkpoints(schema)
        assert min(progress.values()) < last, "the first worker finished before the kill; add events"
        await second.expect_leases(BOTH)

        third = await Worker.start(schema, batch_size=50)
        workers.append(third)
        await second.kill()
        await third.expect_leases(BOTH)
        assert await wait_for_checkpoints(schema, last) == {"orders": last, "order_history": last, "workflows": last}

        projected = await dump(schema)
        assert sum(row[8] for row in projected["read_orders"]) == events  # versions add up: each event once
        assert len(projected["read_order_history"]) == events
        await third.kill()
        report = await ProjectionRunner(store, PostgresReadModels(store)).rebuild()
        assert report.events == events
        assert await dump(schema) == projected


async def test_two_workers_in_one_process_split_nothing_twice_and_hand_over_on_release() -> None:
    async with shared_schema() as schema, postgres_store(schema=schema) as store:
        last, events = await fill(store, 60)
        one = LeasedProjectionWorker(store, batch_size=7, poll_interval=0.01, lease_interval=0.05)
        two = LeasedProjectionWorker(store, batch_size=7, poll_interval=0.01, lease_interval=0.05)
        assert await one.acquire() == ["orders", "order_history", "workflows"]
        assert await two.acquire() == []
        await one.start()
        await two.start()
        try:
            await wait_for_checkpoints(schema, last, timeout=10)
            assert two.owned == []
            await one.stop()  # releases its leases: the other takes them within a lease interval
            await eventually(lambda: set(two.owned) == BOTH, within=5, what="the other worker's leases")
            more = await store.append("o-99999", [encode(OrderCreated("o-99999", datetime.now(UTC), "c-1"))], 0)
            await wait_for_checkpoints(schema, more.position, timeout=10)
        finally:
            await one.stop()
            await two.stop()
        history = (await dump(schema))["read_order_history"]
        assert len(history) == events + 1


async def test_a_worker_can_own_one_projector_while_another_owns_the_rest() -> None:
    async with shared_schema() as schema, postgres_store(schema=schema) as store:
        last, _ = await fill(store, 20)
        models = PostgresReadModels(store)
        orders_only = LeasedProjectionWorker(store, models, [p for p in ProjectionRunner(store, models).projectors
                                                              if p.name == "orders"])
        everything = LeasedProjectionWorker(store, models)
        try:
            assert await orders_only.acquire() == ["orders"]
            assert await everything.acquire() == ["order_history", "workflows"]
            for worker in (orders_only, everything):
                assert worker.runner is not None
                await worker.runner.catch_up()
            assert await checkpoints(schema) == {"orders": last, "order_history": last, "workflows": last}
        finally:
            await orders_only.release()
            await everything.release()
