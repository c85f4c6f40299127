"""Run by test_append_crash.py: appends to a SQLite store from 16 concurrent tasks, printing each
acknowledged append as soon as it returns, until it is killed.

Usage: python append_worker.py DATABASE RUN [events|workflows]
- events (the default): raw store appends; prints "stream version position".
- workflows: payment commands through the WorkflowEngine, each with a command id (start, then Process, Fail,
  Retry, Process, Complete); prints "command_id stream version position".
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from order_machine.events import NewEvent
from order_machine.store.sqlite import SQLiteEventStore

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
PAYMENT = {"amount": "100.50", "currency": "USD", "method": "card"}
LIFECYCLE = [("Process", {}), ("Fail", {"error_message": "timeout"}), ("Retry", {}), ("Process", {}),
             ("Complete", {"transaction_id": "txn-1"})]


def acknowledge(*fields: object) -> None:
    sys.stdout.write(" ".join(map(str, fields)) + "\n")
    sys.stdout.flush()


async def events(path: str, run: str) -> None:
    async with SQLiteEventStore(path) as store:  # durability "full", the default
        async def writer(task: int) -> None:
            for n in range(1_000_000):
                stream = f"{run}-{task}-{n // 3}"
                appended = await store.append(stream, [NewEvent("Happened", {"n": n})], n % 3)
                acknowledge(stream, appended.version, appended.position)

        await asyncio.gather(*(writer(task) for task in range(16)))


async def workflows(path: str, run: str) -> None:
    from order_machine.catalog import Catalog
    from order_machine.engine import WorkflowEngine

    async with SQLiteEventStore(path) as store:  # durability "full", the default
        engine = WorkflowEngine(store, Catalog.load(DEFINITIONS))

        async def writer(task: int) -> None:
            for n in itertools.count():
                payment = f"{run}-{task}-{n}"
                key = f"{payment}:start"
                done = await engine.start("payment", PAYMENT, workflow_id=payment, command_id=key)
                acknowledge(key, f"payment/{payment}", done.version, done.position)
                for step, (action, data) in enumerate(LIFECYCLE, 1):
                    key = f"{payment}:{step}"
                    done = await engine.act("payment", payment, action, data, command_id=key)
                    acknowledge(key, f"payment/{payment}", done.version, done.position)

        await asyncio.gather(*(writer(task) for task in range(16)))


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 else "events"
    asyncio.run({"events": events, "workflows": workflows}[mode](sys.argv[1], sys.argv[2]))
