"""PostgreSQL read models: indexed tables in the event store's own schema, one transaction per batch.

The tables come from the store's migrations (store/pg_schema.py); their columns and row forms are
tables.py's, and this module owns their SQL. A batch locks its projector's checkpoint row first, so
workers in several processes never apply it twice. psycopg's errors become StoreError in one place
(`_connection`). Knows rows, events and the PostgreSQL store; never imports the domain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import StoreError
from ..store import EventStore
from ..store.postgres import Conn, PostgresEventStore
from .batch import CheckpointMoved, Decoded, Projector, run_batch
from .changes import Changes
from .driver_errors import translated
from .order_projectors import OrderProjector, ProjectedOrder
from .pg_checkpoints import PostgresCheckpoints
from .pg_quarantine import PostgresQuarantines
from .quarantine import Quarantine, batch_streams, run_skipping
from .queries import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, WorkflowReadModel, apply_in_turn, check_limit,
    created_after, created_page, equal_filter, from_micros, history_model, items_by_order, order_model,
    summary_model, updated_before, updated_page, workflow_model, workflow_page,
)
from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow
from .tables import (
    HISTORY_COLUMNS, ITEM_COLUMNS, ORDER_COLUMNS, VIEW_TABLES, WORKFLOW_COLUMNS, Forms, columns,
    history_row, history_values, item_row, item_values, order_row, order_values, upsert_tail, workflow_row,
    workflow_values,
)
from .workflow_projector import WorkflowProjector

#: the SQL type of each column (tables.py's order), for the arrays a many-row INSERT sends
_ORDER_TYPES = ("text", "text", "text", "numeric", "numeric", "text", "timestamptz", "timestamptz", "int", "int",
                "bigint", "bigint", "text", "text", "text", "text", "jsonb")
_ITEM_TYPES = ("text", "int", "text", "int", "numeric")
_HISTORY_TYPES = ("bigint", "text", "int", "text", "text", "text", "text", "timestamptz", "jsonb")
_WORKFLOW_TYPES = ("text", "text", "text", "int", "text", "int", "jsonb", "timestamptz", "timestamptz", "bigint",
                   "bigint")


def _same(value: Any) -> Any:
    return value


def _event_data(data: Mapping[str, Any]) -> Jsonb:
    return Jsonb(dict(data))


def _iso(at: datetime) -> str:
    return at.isoformat()


#: psycopg takes and gives Decimal and datetime as they are; `at` is kept as timestamptz (queryable by time)
#: and read back as the ISO text the projector wrote
FORMS = Forms(money=_same, time=_same, data=Jsonb, event_data=_event_data, read_money=_same, read_time=_same,
              read_data=_same, read_at=_iso)


def _bulk_insert(table: str, names: Sequence[str], types: Sequence[str], suffix: str = "") -> str:
    """One INSERT of many rows: each column arrives as one array parameter."""
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    return f"INSERT INTO {table} ({columns(names)}) SELECT * FROM unnest({arrays}){suffix}"


def _arrays(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


class PostgresReadModels:
    """Read models in the PostgreSQL schema of `store`, sharing its connection pool."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        s = store.quoted_schema
        self._t = {view: f"{s}.{table}" for view, table in VIEW_TABLES.items()}
        self._checkpoints = PostgresCheckpoints(s)
        self._quarantines = PostgresQuarantines(s)
        self._select_order = f"SELECT {columns(ORDER_COLUMNS)} FROM {self._t['orders']}"
        self._upsert_orders = _bulk_insert(self._t["orders"], ORDER_COLUMNS, _ORDER_TYPES,
                                           upsert_tail("id", ORDER_COLUMNS))
        self._insert_items = _bulk_insert(self._t["order_items"], ITEM_COLUMNS, _ITEM_TYPES)
        self._insert_history = _bulk_insert(self._t["order_history"], HISTORY_COLUMNS, _HISTORY_TYPES)
        self._select_workflow = f"SELECT {columns(WORKFLOW_COLUMNS)} FROM {self._t['workflows']}"
        self._upsert_workflows = _bulk_insert(self._t["workflows"], WORKFLOW_COLUMNS, _WORKFLOW_TYPES,
                                              upsert_tail("stream_id", WORKFLOW_COLUMNS))
        self._items_of = (f"SELECT {columns(ITEM_COLUMNS)} FROM {self._t['order_items']} "
                          "WHERE order_id = ANY(%s) ORDER BY order_id, line")

    @classmethod
    def from_store(cls, store: EventStore, **options: Any) -> PostgresReadModels:
        if not isinstance(store, PostgresEventStore):
            raise StoreError(f"PostgreSQL read models need a PostgresEventStore, got {type(store).__name__}")
        if options:
            raise StoreError(f"unknown PostgreSQL read-model option(s) {sorted(options)}")
        return cls(store)

    # ----------------------------------------------------------------- plumbing

    @asynccontextmanager
    async def _connection(self, doing: str, transaction: bool = True) -> AsyncIterator[Conn]:
        """A pooled connection (in a transaction, unless told not), psycopg's errors translated as StoreError."""
        pool = await self.store.pool()
        with translated(psycopg.Error, f"read models in {self.store!r}", doing=doing):
            async with pool.connection() as conn:
                if not transaction:
                    yield conn
                    return
                async with conn.transaction():
                    yield conn

    async def _query(self, query: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        async with self._connection(doing, transaction=False) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _load(self, conn: Conn, select: str, key: str, ids: Collection[str]) -> list[tuple[Any, ...]]:
        cur = await conn.execute(f"{select} WHERE {key} = ANY(%s)", (list(ids),))
        return await cur.fetchall()

    async def _write(self, conn: Conn, orders: Sequence[OrderRow], items: Sequence[ItemRow],
                     history: Sequence[HistoryRow] = (), workflows: Sequence[WorkflowRow] = ()) -> None:
        if orders:
            await conn.execute(self._upsert_orders, _arrays(order_values(orders, FORMS), len(ORDER_COLUMNS)))
        if items:
            await conn.execute(self._insert_items, _arrays(item_values(items, FORMS), len(ITEM_COLUMNS)))
        if history:
            await conn.execute(self._insert_history, _arrays(history_values(history, FORMS), len(HISTORY_COLUMNS)))
        if workflows:
            await conn.execute(self._upsert_workflows,
                               _arrays(workflow_values(workflows, FORMS), len(WORKFLOW_COLUMNS)))

    async def _write_changes(self, conn: Conn, changes: Changes) -> None:
        await self._write(conn, list(changes.dirty.values()), changes.items, changes.history,
                          list(changes.dirty_workflows.values()))

    # ----------------------------------------------------------------- projector side

    async def checkpoint(self, name: str) -> int:
        rows = await self._query(self._checkpoints.select, (name,), f"reading checkpoint {name!r}")
        return int(rows[0][0]) if rows else 0

    async def apply(self, projector: Projector, events: Sequence[Decoded], after: int,
                    quarantine: Quarantine | None = None) -> int:
        async with self._connection(f"applying {projector.name!r}") as conn:
            # the quarantined streams are read by a second statement, which runs once the first holds the
            # checkpoint's row lock: under READ COMMITTED it sees a release committed while we waited for
            # it (in one statement, it would not); one round trip all the same (a pipeline)
            async with conn.pipeline():
                locked = await conn.execute(self._checkpoints.lock, (projector.name,))
                held = await conn.execute(self._quarantines.held, (projector.name, batch_streams(events)))
            row = await locked.fetchone()
            assert row is not None
            if row[0] != after:
                raise CheckpointMoved(projector.name, after, row[0])
            if not events:
                return after
            skipped = {r[0] for r in await held.fetchall()}
            if quarantine is not None:
                await self._quarantines.record(conn, quarantine)
                skipped.add(quarantine.stream_id)
            orders: dict[str, OrderRow] = {}
            if projector.reads_orders:
                rows = await self._load(conn, self._select_order, "id",
                                        {s.stream_id for s, data in events if data is not None})
                orders = {r[0]: order_row(r, FORMS) for r in rows}
            workflows: dict[str, WorkflowRow] = {}
            if projector.reads_workflows:
                rows = await self._load(conn, self._select_workflow, "stream_id", [s.stream_id for s, _ in events])
                workflows = {r[0]: workflow_row(r, FORMS) for r in rows}
            changes = Changes(_Preloaded(orders, events), _Preloaded(workflows, events))
            position = run_skipping(projector, changes, events, skipped)
            await self._write_changes(conn, changes)
            await self._checkpoints.set(conn, projector.name, position)
            return position

    async def apply_together(
        self, jobs: Sequence[tuple[Projector, Sequence[Decoded], int]],
    ) -> list[int | Exception]:
        """`apply` for each projector in turn, each in its own transaction (its checkpoint row is its lock)."""
        return await apply_in_turn(self, jobs)

    async def reset(self, projector: Projector) -> None:
        async with self._connection(f"resetting {projector.name!r}") as conn:
            await self._checkpoints.locked(conn, projector.name)
            for view in projector.views:
                await conn.execute(f"DELETE FROM {self._t[view]}")
            await self._quarantines.forget(conn, projector.name)
            await self._checkpoints.set(conn, projector.name, 0)

    async def quarantined(self, *, projector: str | None = None, stream_id: str | None = None) -> list[Quarantine]:
        async with self._connection("reading quarantined streams", transaction=False) as conn:
            return await self._quarantines.select(conn, projector, stream_id)

    async def release(self, projector: Projector, stream_id: str, events: Sequence[Decoded], checkpoint: int) -> bool:
        async with self._connection(f"releasing {stream_id!r} from {projector.name!r}") as conn:
            if await self._checkpoints.locked(conn, projector.name) != checkpoint:
                return False
            changes = Changes(lambda ids: {}, lambda ids: {})  # the stream's rows, from its events alone
            run_batch(projector, changes, events)
            await self._quarantines.delete_stream(conn, {v: self._t[v] for v in projector.views}, stream_id)
            await self._write_changes(conn, changes)
            await self._quarantines.forget(conn, projector.name, stream_id)
            return True

    async def repair_order(self, order_id: str, projected: ProjectedOrder, checkpoint: int) -> bool:
        async with self._connection(f"repairing order {order_id!r}") as conn:
            if await self._checkpoints.locked(conn, OrderProjector.name) != checkpoint:
                return False
            await conn.execute(f"DELETE FROM {self._t['order_items']} WHERE order_id = %s", (order_id,))
            if projected.row is None:
                await conn.execute(f"DELETE FROM {self._t['orders']} WHERE id = %s", (order_id,))
            else:
                await self._write(conn, [projected.row], projected.items)
            return True

    async def repair_workflow(self, stream_id: str, row: WorkflowRow | None, checkpoint: int) -> bool:
        async with self._connection(f"repairing workflow {stream_id!r}") as conn:
            if await self._checkpoints.locked(conn, WorkflowProjector.name) != checkpoint:
                return False
            await conn.execute(f"DELETE FROM {self._t['workflows']} WHERE stream_id = %s", (stream_id,))
            if row is not None:
                await self._write(conn, (), (), workflows=[row])
            return True

    # ----------------------------------------------------------------- queries

    async def _items(self, order_ids: list[str]) -> dict[str, list[ItemRow]]:
        rows = await self._query(self._items_of, (order_ids,), "reading order items")
        return items_by_order(item_row(r, FORMS) for r in rows)

    async def get_order(self, order_id: str) -> OrderReadModel | None:
        # one statement: the order and its items from the same snapshot
        rows = await self._query(
            f"SELECT o.*, coalesce(i.items, '[]') FROM ({self._select_order} WHERE id = %s) o "
            f"LEFT JOIN LATERAL (SELECT json_agg(json_build_array(line, product_id, quantity, unit_price::text) "
            f"ORDER BY line) AS items FROM {self._t['order_items']} WHERE order_id = o.id) i ON true",
            (order_id,), f"reading order {order_id!r}",
        )
        if not rows:
            return None
        row = order_row(rows[0][:17], FORMS)
        items = [ItemRow(order_id, line, product, quantity, Decimal(price)) for line, product, quantity, price
                 in rows[0][17]]
        return order_model(row, items)

    async def get_summary(self, order_id: str) -> OrderSummaryReadModel | None:
        rows = await self._query(f"{self._select_order} WHERE id = %s", (order_id,), f"reading order {order_id!r}")
        return summary_model(order_row(rows[0], FORMS)) if rows else None

    async def orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("%s", customer_id=customer_id, status=status), limit, cursor)

    async def orders_by_status(self, status: str, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("%s", status=status), limit, cursor)

    async def _created_page(self, where: str, args: tuple[Any, ...], limit: int,
                            cursor: str | None) -> Page[OrderReadModel]:
        after = created_after(limit, cursor)
        rows = [order_row(r, FORMS) for r in await self._query(
            f"{self._select_order} WHERE {where} AND created_position > %s ORDER BY created_position LIMIT %s",
            (*args, after, limit + 1), "listing orders")]
        shown = rows[:limit]
        return created_page(rows, limit, await self._items([o.id for o in shown]) if shown else {})

    async def recently_updated(self, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderSummaryReadModel]:
        key = updated_before(limit, cursor)
        where, args = ("WHERE (updated_at, id) < (%s, %s)", (from_micros(key[0]), key[1])) if key else ("", ())
        rows = [order_row(r, FORMS) for r in await self._query(
            f"{self._select_order} {where} ORDER BY updated_at DESC, id DESC LIMIT %s", (*args, limit + 1),
            "listing recently updated orders")]
        return updated_page(rows, limit)

    async def order_history(self, order_id: str, *, after_version: int = 0,
                            limit: int = 100) -> list[OrderHistoryEntry]:
        check_limit(limit)
        rows = await self._query(
            f"SELECT {columns(HISTORY_COLUMNS)} FROM {self._t['order_history']} "
            "WHERE order_id = %s AND version > %s ORDER BY version LIMIT %s",
            (order_id, after_version, limit), f"reading the history of {order_id!r}")
        return [history_model(history_row(r, FORMS)) for r in rows]

    async def get_workflow(self, stream_id: str) -> WorkflowReadModel | None:
        rows = await self._query(f"{self._select_workflow} WHERE stream_id = %s", (stream_id,),
                                 f"reading workflow {stream_id!r}")
        return workflow_model(workflow_row(rows[0], FORMS)) if rows else None

    async def workflows(self, definition: str, *, state: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> Page[WorkflowReadModel]:
        after = created_after(limit, cursor)
        where, args = equal_filter("%s", definition=definition, state=state)
        rows = await self._query(
            f"{self._select_workflow} WHERE {where} AND created_position > %s ORDER BY created_position LIMIT %s",
            (*args, after, limit + 1), f"listing {definition} workflows")
        return workflow_page([workflow_row(r, FORMS) for r in rows], limit)

    async def close(self) -> None:
        """Nothing to do: the pool belongs to the store, which closes it."""


class _Preloaded:
    """The batch's orders (or workflows), loaded before the (synchronous) projector runs; hands out copies."""

    def __init__(self, rows: dict[str, Any], events: Sequence[Decoded]) -> None:
        self._rows = rows
        self._known = {stored.stream_id for stored, _ in events}

    def __call__(self, order_ids: Collection[str]) -> dict[str, Any]:
        outside = set(order_ids) - self._known
        if outside:
            raise StoreError(f"a projector asked for orders outside its batch: {sorted(outside)[:5]}")
        return {i: replace(self._rows[i]) for i in order_ids if i in self._rows}
