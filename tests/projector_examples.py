"""Projectors a user might write, for the tests of the public projector API (projections/custom.py).

Also a worker process for the crash tests: `python projector_examples.py URL BATCH_SIZE STALL_AT` runs the
Ledger projector on the store at URL and, once it is in the middle of the batch holding position
STALL_AT (its rows written, not committed), prints "stalled" and waits there to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from order_machine.events import StoredEvent
from order_machine.projections import ProjectorTransaction, Table


class Ledger:
    """One row per event (its position is the key): an event applied twice or missed shows at once."""

    name = "ledger"
    tables = [Table("ledger", "CREATE TABLE ledger (position BIGINT PRIMARY KEY, stream_id TEXT NOT NULL, "
                              "type TEXT NOT NULL)")]

    def __init__(self, fail_at: int | None = None, stall_at: int | None = None) -> None:
        self.fail_at, self.stall_at = fail_at, stall_at
        self.calls = 0

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        self.calls += 1
        await tx.execute("INSERT INTO ledger (position, stream_id, type) VALUES (?, ?, ?)",
                         (event.position, event.stream_id, event.type))
        if event.position == self.fail_at:
            raise RuntimeError(f"ledger cannot take the event at {event.position}")
        if event.position == self.stall_at:
            print("stalled", flush=True)
            await asyncio.Event().wait()  # until killed


class StreamCounter:
    """Events per stream, counted by upsert: a rebuild that did not empty the table first would double them."""

    name = "stream_counts"
    tables = [Table("stream_counts", "CREATE TABLE stream_counts (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL)")]

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        await tx.execute("INSERT INTO stream_counts VALUES (?, 1) ON CONFLICT (stream_id) "
                         "DO UPDATE SET events = stream_counts.events + 1", (event.stream_id,))


class CustomerTotals:
    """Orders and money per customer: reads its own row back and writes a Decimal (text on SQLite)."""

    name = "customer_totals"
    tables = [Table(
        "customer_totals",
        ["CREATE TABLE customer_totals (customer_id TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount TEXT NOT NULL)",
         "CREATE INDEX customer_totals_by_orders ON customer_totals (orders)"],
        postgresql=["CREATE TABLE customer_totals (customer_id TEXT PRIMARY KEY, orders INTEGER NOT NULL, "
                    "amount NUMERIC NOT NULL)",
                    "CREATE INDEX customer_totals_by_orders ON customer_totals (orders)"],
    )]

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        if event.type != "OrderCreated":
            return
        customer = event.data["customer_id"]
        amount = Decimal(event.data.get("amount") or "0") + sum(
            (Decimal(i["unit_price"]) * i["quantity"] for i in event.data.get("items") or ()), Decimal(0))
        found = await tx.execute("SELECT orders, amount FROM customer_totals WHERE customer_id = :customer",
                                 {"customer": customer})
        if found:
            await tx.execute("UPDATE customer_totals SET orders = ?, amount = ? WHERE customer_id = ?",
                             (found[0][0] + 1, Decimal(str(found[0][1])) + amount, customer))
        else:
            await tx.execute("INSERT INTO customer_totals VALUES (?, 1, ?)", (customer, amount))


async def _stall(url: str, batch_size: int, stall_at: int) -> None:
    from order_machine.projections import ProjectionRunner, open_projector_tables, open_read_models
    from order_machine.store import open_store

    store = open_store(url)
    read_models = open_read_models(store)
    tables = open_projector_tables(store)
    runner = ProjectionRunner(store, read_models, tables.bind([Ledger(stall_at=stall_at)]), batch_size=batch_size)
    await runner.checkpoints()
    await runner.catch_up()  # stalls at stall_at; the test kills the process there


if __name__ == "__main__":
    asyncio.run(_stall(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
