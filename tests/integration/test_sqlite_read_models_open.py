"""SQLite read models open beside a busy event store without failing on its write lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from order_machine.events import NewEvent
from order_machine.projections import SQLiteReadModels
from order_machine.store import open_store


async def test_read_models_open_while_the_store_is_committing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/orders.db")  # opened by the first append below
    stop = asyncio.Event()

    async def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            await asyncio.gather(*(store.append(f"s-{n}-{i}", [NewEvent("X", {})], 0) for i in range(20)))
            n += 1

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0)  # the store is opening (creating its file and schema) right now
    try:
        for _ in range(15):  # each opens a fresh connection while group commits run
            read_models = SQLiteReadModels(tmp_path / "orders.db")
            assert await read_models.checkpoint("orders") == 0
            await read_models.close()
    finally:
        stop.set()
        await writer
        await store.close()
