"""SQLite read models apply a small batch on the event loop's own thread, and go to their writer
thread when the file is locked or the batch is large (a rebuild)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from order_machine.events import OrderCreated, encode, utcnow
from order_machine.projections import ProjectionRunner, SQLiteReadModels
from order_machine.projections.sqlite import LOOP_APPLY_LIMIT
from order_machine.store.sqlite import SQLiteEventStore
from waiting import eventually


async def orders(store: SQLiteEventStore, first: int, count: int) -> int:
    last = 0
    for n in range(first, first + count):
        created = await store.append(f"o-{n}", [encode(OrderCreated(f"o-{n}", utcnow(), "c", "", None, ()))], 0)
        last = created.position
    return last


async def test_a_small_batch_is_applied_on_the_loop_without_the_writer_thread(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "o.db") as store:
        read_models = SQLiteReadModels(store.path, synchronous="NORMAL")
        runner = ProjectionRunner(store, read_models)
        assert await runner.wait_for(await orders(store, 0, 5))  # the first batch connects the loop
        assert await runner.wait_for(await orders(store, 5, 20))
        assert read_models.thread_batches == 0
        assert (await read_models.get_order("o-24")) is not None
        await read_models.close()


async def test_a_locked_file_sends_the_batch_to_the_writer_thread_which_waits(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "o.db") as store:
        read_models = SQLiteReadModels(store.path, synchronous="NORMAL")
        runner = ProjectionRunner(store, read_models)
        assert await runner.wait_for(await orders(store, 0, 5))
        last = await orders(store, 5, 5)
        assert read_models.thread_batches == 0
        with closing(sqlite3.connect(store.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the file
            waiting = asyncio.create_task(runner.wait_for(last, timeout=10))
            # the loop did not wait for the lock (this wait runs on it): the writer thread does
            await eventually(lambda: read_models.thread_batches >= 1, what="a batch handed to the writer thread")
            assert not waiting.done()
            other.execute("COMMIT")
        assert await waiting
        await read_models.close()


async def test_a_rebuild_applies_its_large_batches_on_the_writer_thread(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "o.db") as store:
        read_models = SQLiteReadModels(store.path, synchronous="NORMAL")
        runner = ProjectionRunner(store, read_models, batch_size=10)
        assert await runner.wait_for(await orders(store, 0, LOOP_APPLY_LIMIT + 50))  # small batches, on the loop
        assert read_models.thread_batches == 0
        report = await runner.rebuild("orders")
        assert report.events == LOOP_APPLY_LIMIT + 50 and read_models.thread_batches >= 1
        await read_models.close()
