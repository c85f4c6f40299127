"""The read-model contract's backends (memory, SQLite, PostgreSQL) and the order events its tests append.

tests/integration/conftest.py turns `open_backend` into the `backend` fixture (every kind) and the
`database` fixture (SQLite and PostgreSQL: what needs SQL or a second process's read models).
Positions on PostgreSQL are sparse (store/postgres.py says why): tests use the positions appends return
and count events by reading them, never by hand.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from order_machine.events import (
    OrderCancelled, OrderConfirmed, OrderCreated, OrderDelivered, OrderEvent, OrderItem, OrderItemAdded,
    OrderProcessingStarted, OrderShipped, StoredEvent, encode,
)
from order_machine.projections import (
    Changes, CustomProjection, OrderHistoryProjector, OrderProjector, ProjectionRunner, Projector, ReadModels,
    RetryPolicy, open_read_models,
)
from order_machine.store import EventStore
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.sqlite import SQLiteEventStore

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
FAST_RETRY = RetryPolicy(retries=3, initial_delay=0.001, factor=2.0, max_delay=0.01)


@dataclass
class Backend:
    """An event store and the read models beside it, of one kind."""

    kind: str
    store: EventStore
    models: ReadModels

    def more_models(self) -> ReadModels:
        """Other read models on the same database, as another process would open them (not in memory)."""
        if self.kind == "memory":
            raise ValueError("in-memory read models cannot be shared")
        return open_read_models(self.store)

    async def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the database behind the store's back, in its own transaction; its rows.

        Write `{s}` before table names (the PostgreSQL schema, nothing on SQLite) and `%s` for parameters."""
        if isinstance(self.store, SQLiteEventStore):
            with contextlib.closing(sqlite3.connect(self.store.path)) as conn, conn:
                return conn.execute(statement.replace("{s}", "").replace("%s", "?"), args).fetchall()
        import psycopg
        from integration.pg_support import pg_url

        from order_machine.store.postgres import PostgresEventStore

        assert isinstance(self.store, PostgresEventStore), f"no SQL on a {self.kind} store"
        async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as pg:
            cur = await pg.execute(statement.replace("{s}", f"{self.store.quoted_schema}."), args)
            return await cur.fetchall() if cur.description else []

    async def event_count(self) -> int:
        return len([e async for e in self.store.read_all()])


@contextlib.asynccontextmanager
async def open_backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, empty store of `kind` with its read models; closed (its PostgreSQL schema dropped) on exit."""
    if kind == "memory":
        memory = InMemoryEventStore()
        yield Backend(kind, memory, open_read_models(memory))
        return
    if kind == "sqlite":
        async with SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db") as store:
            models = open_read_models(store)
            try:
                yield Backend(kind, store, models)
            finally:
                await models.close()
        return
    from integration.pg_support import postgres_store

    async with postgres_store(pool_size=6) as pg:
        yield Backend(kind, pg, open_read_models(pg))


def read_model_projectors(runner: ProjectionRunner) -> list[Projector]:
    """The runner's projectors that keep read models, the ones that quarantine (a user's projector commits its
    tables apart and stops instead); what `release_quarantined` takes."""
    return [p for p in runner.projectors if not isinstance(p, CustomProjection)]


async def append(store: EventStore, *events: OrderEvent) -> int:
    """Append each order's events at its current version; returns the last position written."""
    position = 0
    for event in events:
        version = len(await store.load(event.order_id))
        position = (await store.append(event.order_id, [encode(event)], version)).position
    return position


def created(order_id: str, customer: str = "c-1", minutes: int = 0) -> OrderCreated:
    return OrderCreated(order_id, T0 + timedelta(minutes=minutes), customer, "desc", Decimal("2.50"),
                        (OrderItem("p-1", 1, Decimal("1.10")),))


def confirmed(order_id: str, minutes: int = 1) -> OrderConfirmed:
    return OrderConfirmed(order_id, T0 + timedelta(minutes=minutes), "Pending", "Confirmed")


async def random_history(store: EventStore, orders: int, seed: int) -> int:
    """Orders at random stages (with items), interleaved across streams; returns the last position."""
    rng = random.Random(seed)
    plans: dict[str, list[OrderEvent]] = {}
    for n in range(orders):
        oid, t = f"o-{n:04d}", T0 + timedelta(seconds=n)
        plan: list[OrderEvent] = [OrderCreated(oid, t, f"c-{n % 7}", f"order {n}", rng.choice([None, Decimal("3")]))]
        plan += [OrderItemAdded(oid, t, f"p-{k}", rng.randint(1, 5), Decimal(rng.randint(0, 999)) / 100)
                 for k in range(rng.randint(0, 3))]
        steps: list[OrderEvent] = [OrderConfirmed(oid, t, "Pending", "Confirmed"),
                                   OrderProcessingStarted(oid, t, "Confirmed", "Processing"),
                                   OrderShipped(oid, t, "Processing", "Shipped", f"T{n}", f"{n} Road"),
                                   OrderDelivered(oid, t, "Shipped", "Delivered")]
        done = rng.randint(0, 4)
        plan += steps[:done]
        if done <= 2 and rng.random() < 0.3:
            plan.append(OrderCancelled(oid, t, ("Pending", "Confirmed", "Processing")[done], "Cancelled", "no"))
        plans[oid] = plan
    position = 0
    while plans:
        oid = rng.choice(sorted(plans))
        take = plans[oid][:rng.randint(1, 3)]
        plans[oid] = plans[oid][len(take):]
        version = len(await store.load(oid))
        position = (await store.append(oid, [encode(e) for e in take], version)).position
        if not plans[oid]:
            del plans[oid]
    return position


async def snapshot(models: ReadModels, store: EventStore) -> dict[str, Any]:
    """Everything the queries can show, for comparing two projections."""
    out: dict[str, Any] = {}
    after = ""
    while ids := await store.stream_ids(after, 100):
        for oid in ids:
            out[oid] = (await models.get_order(oid), await models.get_summary(oid),
                        await models.order_history(oid, limit=1000))
        after = ids[-1]
    return out


class FailingAt:
    """A projector that raises on chosen positions, `times` times each (None: forever)."""

    def __init__(self, inner: OrderProjector | OrderHistoryProjector, positions: set[int],
                 times: int | None = None) -> None:
        self.inner, self.positions, self.times = inner, positions, times
        self.name, self.views, self.reads_orders = inner.name, inner.views, inner.reads_orders
        self.reads_workflows = inner.reads_workflows
        self.attempts: dict[int, int] = {}

    def apply(self, changes: Changes, stored: StoredEvent, data: Mapping[str, Any]) -> None:
        if stored.position in self.positions:
            self.attempts[stored.position] = self.attempts.get(stored.position, 0) + 1
            if self.times is None or self.attempts[stored.position] <= self.times:
                raise RuntimeError(f"poison at {stored.position}")
        self.inner.apply(changes, stored, data)
