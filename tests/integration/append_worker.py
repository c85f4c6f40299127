"""Run by test_append_crash.py: appends to a SQLite store from 16 concurrent tasks, printing each
acknowledged append ("stream version position") as soon as append() returns, until it is killed."""

from __future__ import annotations

import asyncio
import sys

from order_machine.events import NewEvent
from order_machine.store.sqlite import SQLiteEventStore


async def main(path: str, run: str) -> None:
    async with SQLiteEventStore(path) as store:  # durability "full", the default
        async def writer(task: int) -> None:
            for n in range(1_000_000):
                stream = f"{run}-{task}-{n // 3}"
                appended = await store.append(stream, [NewEvent("Happened", {"n": n})], n % 3)
                sys.stdout.write(f"{stream} {appended.version} {appended.position}\n")
                sys.stdout.flush()

        await asyncio.gather(*(writer(task) for task in range(16)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
