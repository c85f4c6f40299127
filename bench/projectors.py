"""A user's projector (projections.custom: one INSERT per event through ProjectorTransaction) rebuilt by the
runner, beside the loop a user would write by hand: bare sqlite3 reading the events table and inserting
the same rows, one transaction per batch of the same size. Rounds alternate in one run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from ._report import Goal, Size, Table, count, goals_table, pick, ratio

BATCH = 500
DDL = "CREATE TABLE ledger (position BIGINT PRIMARY KEY, stream_id TEXT NOT NULL, type TEXT NOT NULL)"
INSERT = "INSERT INTO ledger (position, stream_id, type) VALUES (?, ?, ?)"


class Ledger:
    """One row per event: the least a projector can do, so the figure is the API's own cost."""

    name = "ledger"

    def __init__(self) -> None:
        from order_machine import Table as OwnTable

        self.tables = [OwnTable("ledger", DDL)]

    async def apply(self, tx: object, event: object) -> None:
        await tx.execute(INSERT, (event.position, event.stream_id, event.type))  # type: ignore[attr-defined]


async def fill(url: str, events: int) -> None:
    from order_machine.events import NewEvent
    from order_machine.store import open_store

    store = open_store(url, durability="fast") if url.startswith("sqlite") else open_store(url)
    per_stream, last = 50, 0
    try:
        for s in range(events // per_stream):
            last = (await store.append(f"things/{s}", [NewEvent("ThingHappened", {"n": n})
                                                        for n in range(per_stream)], 0)).position
        async with asyncio.timeout(60):
            # PostgreSQL shows the events once every older transaction on the server has ended
            while await store.last_position() < last:
                await asyncio.sleep(0.01)
    finally:
        await store.close()


async def ours(url: str) -> tuple[float, int]:
    """(seconds, events) of one rebuild of the user's projector, through bootstrap as an application runs it."""
    from order_machine import Settings, bootstrap

    runtime = await bootstrap(Settings(db_url=url, projection_batch_size=BATCH), projectors=[Ledger()])
    try:
        await runtime.tables.setup()
        runtime.runner.rebuild_batch_size = BATCH
        started = time.perf_counter()
        report = await runtime.runner.rebuild("ledger")
        return time.perf_counter() - started, report.events
    finally:
        await runtime.stop()


def peer(path: Path) -> tuple[float, int]:
    """(seconds, events) of the hand-written loop into a table of its own in the same file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(DDL.replace("ledger", "IF NOT EXISTS hand_ledger"))
        conn.execute("DELETE FROM hand_ledger")
        started, after, total = time.perf_counter(), 0, 0
        while rows := conn.execute("SELECT position, stream_id, type FROM events WHERE position > ? "
                                   "ORDER BY position LIMIT ?", (after, BATCH)).fetchall():
            conn.execute("BEGIN IMMEDIATE")
            for row in rows:
                conn.execute(INSERT.replace("ledger", "hand_ledger"), row)
            conn.execute("COMMIT")
            after, total = rows[-1][0], total + len(rows)
        return time.perf_counter() - started, total
    finally:
        conn.close()


def run(size: Size = "full") -> list[Table]:
    events, rounds = pick(size, full=(50_000, 4), quick=(10_000, 2), smoke=(500, 1))
    table = Table("A user's projector (one INSERT per event), rebuilt, beside a hand-written sqlite3 loop",
                  ["store", "order-machine, events/s", "bare sqlite3 loop, events/s", "ours vs peer"])
    with tempfile.TemporaryDirectory(prefix="order-machine-bench-") as tmp:
        path = Path(tmp) / "orders.db"
        url = f"sqlite:///{path}"
        asyncio.run(fill(url, events))
        mine = theirs = 0.0
        done = 0
        for r in range(rounds):  # alternating who goes first
            if r % 2:
                seconds, done = asyncio.run(ours(url))
                mine += seconds
                theirs += peer(path)[0]
            else:
                theirs += peer(path)[0]
                seconds, done = asyncio.run(ours(url))
                mine += seconds
        table.add(f"SQLite file ({done:,} events, batches of {BATCH})", count(done * rounds / mine),
                  count(done * rounds / theirs), ratio(theirs, mine))
        goal = Goal("user projector rebuild on SQLite", ">= 0.3x a bare sqlite3 loop", ratio(theirs, mine),
                    theirs >= 0.3 * mine)
    seconds, done = asyncio.run(_memory(events))
    table.add(f"memory:// (a private in-memory SQLite; {done:,} events)", count(done / seconds), "–", "–")
    pg = os.environ.get("ORDER_MACHINE_BENCH_PG_URL") or os.environ.get("ORDER_MACHINE_TEST_PG_URL")
    if pg:
        seconds, done = asyncio.run(_postgres(pg, events))
        table.add(f"PostgreSQL ({done:,} events)", count(done / seconds), "–", "–")
    table.notes += [
        "ours: bootstrap(settings, projectors=[Ledger()]) and runner.rebuild('ledger'): the table emptied, then "
        "every event handed to `async apply(tx, event)`, which runs one INSERT; each batch commits with the "
        "projector's checkpoint. On SQLite a batch runs on the event loop through a connection of its own "
        "(a plain sqlite3 call per statement); on PostgreSQL each statement is one round trip to the server",
        "peer: the same INSERT per event with sqlite3 on one connection, one transaction per batch, no "
        "checkpoint, no thread: the floor a user writing the loop by hand would reach",
    ]
    return [table, goals_table("Projector goals (issue 12)", [goal])]


async def _memory(events: int) -> tuple[float, int]:
    from order_machine import Settings, bootstrap
    from order_machine.events import NewEvent

    runtime = await bootstrap(Settings(db_url="memory://"), projectors=[Ledger()])
    try:
        for s in range(events // 50):
            await runtime.store.append(f"things/{s}", [NewEvent("ThingHappened", {"n": n}) for n in range(50)], 0)
        runtime.runner.rebuild_batch_size = BATCH
        started = time.perf_counter()
        report = await runtime.runner.rebuild("ledger")
        return time.perf_counter() - started, report.events
    finally:
        await runtime.stop()


async def _postgres(base: str, events: int) -> tuple[float, int]:
    import uuid

    import psycopg

    schema = f"om_bench_{uuid.uuid4().hex[:12]}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    try:
        await fill(url, events)
        return await ours(url)
    finally:
        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
