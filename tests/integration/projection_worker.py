"""A projection worker for test_projection_crash: follows a SQLite store until it has caught up.

Usage: python projection_worker.py DATABASE BATCH_SIZE. Prints "ready" once its connections are open,
then applies every event in batches; exit 0 when caught up, 1 when a projector stopped. The test kills it.
"""

from __future__ import annotations

import asyncio
import sys

from order_machine.projections import ProjectionRunner, SQLiteReadModels
from order_machine.store.sqlite import SQLiteEventStore


async def work(path: str, batch_size: int) -> int:
    async with SQLiteEventStore(path) as store:
        models = SQLiteReadModels(store.path)
        try:
            runner = ProjectionRunner(store, models, batch_size=batch_size)
            await runner.checkpoints()
            print("ready", flush=True)
            await runner.catch_up()
            return 1 if runner.failed else 0
        finally:
            await models.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(work(sys.argv[1], int(sys.argv[2]))))
