"""Run by test_workflow_engine_cache.py as one of several processes: an engine (with its cache) on the
store at URL assigns ticket T-1 COUNT times, each command on top of whatever the other processes wrote."""

from __future__ import annotations

import asyncio
import sys

from order_machine.catalog import Catalog
from order_machine.engine import WorkflowEngine
from order_machine.store import open_store


async def main(url: str, definitions: str, tag: str, count: int) -> None:
    store = open_store(url)
    # retries enough that contention never gives up: the test is about what is recorded, not about patience
    engine = WorkflowEngine(store, Catalog.load(definitions), retries=1_000)
    try:
        for i in range(count):
            await engine.act("ticket", "T-1", "Assign", {"assignee": f"{tag}-{i}"})
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
