"""PostgreSQL read models: indexed tables in the event store's own schema, one transaction per batch.

The tables come from the store's migrations (store/pg_schema.py); this module owns their SQL. A batch
locks its projector's checkpoint row first, so workers in several processes never apply it twice.
Knows rows, events and the PostgreSQL store; never imports the domain.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import StoreError
from ..store import EventStore
from ..store.postgres import Conn, PostgresEventStore
from .pg_quarantine import PostgresQuarantines
from .batch import CheckpointMoved, Decoded, Projector, run_batch
from .changes import Changes
from .order_projectors import ProjectedOrder
from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow
from .quarantine import Quarantine, batch_streams, run_skipping
from .queries import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, WorkflowReadModel, check_limit, created_after,
    created_page, equal_filter, from_micros, history_model, items_by_order, order_model, summary_model,
    updated_before, updated_page, workflow_model, workflow_page,
)

VIEW_TABLES = {"orders": "read_orders", "order_items": "read_order_items", "order_history": "read_order_history",
               "workflows": "read_workflows"}

_ORDER_COLUMNS = ("id", "customer_id", "description", "initial_amount", "amount", "status", "created_at",
                  "updated_at", "version", "item_count", "created_position", "position", "tracking_number",
                  "shipping_address", "cancellation_reason", "return_reason", "data")
_ORDER_TYPES = ("text", "text", "text", "numeric", "numeric", "text", "timestamptz", "timestamptz", "int", "int",
                "bigint", "bigint", "text", "text", "text", "text", "jsonb")
_ITEM_COLUMNS = ("order_id", "line", "product_id", "quantity", "unit_price")
_ITEM_TYPES = ("text", "int", "text", "int", "numeric")
_HISTORY_COLUMNS = ("position", "order_id", "version", "type", "action", "from_state", "to_state", "at", "data")
_HISTORY_TYPES = ("bigint", "text", "int", "text", "text", "text", "text", "timestamptz", "jsonb")
_WORKFLOW_COLUMNS = ("stream_id", "definition", "id", "definition_version", "state", "version", "data", "created_at",
                     "updated_at", "created_position", "position")
_WORKFLOW_TYPES = ("text", "text", "text", "int", "text", "int", "jsonb", "timestamptz", "timestamptz", "bigint",
                   "bigint")


def _bulk_insert(table: str, columns: Sequence[str], types: Sequence[str], suffix: str = "") -> str:
    """One INSERT of many rows: each column arrives as one array parameter."""
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {suffix}"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _order_values(o: OrderRow) -> tuple[Any, ...]:
    return (o.id, o.customer_id, o.description, o.initial_amount, o.amount, o.status, o.created_at, o.updated_at,
            o.version, o.item_count, o.created_position, o.position, o.tracking_number, o.shipping_address,
            o.cancellation_reason, o.return_reason, Jsonb(o.data))


def _item_values(i: ItemRow) -> tuple[Any, ...]:
    return (i.order_id, i.line, i.product_id, i.quantity, i.unit_price)


def _workflow_values(w: WorkflowRow) -> tuple[Any, ...]:
    return (w.stream_id, w.definition, w.id, w.definition_version, w.state, w.version, Jsonb(w.data), w.created_at,
            w.updated_at, w.created_position, w.position)


class PostgresReadModels:
    """Read models in the PostgreSQL schema of `store`, sharing its connection pool."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        s = store.quoted_schema
        self._t = {view: f"{s}.{table}" for view, table in VIEW_TABLES.items()}
        self._checkpoints = f"{s}.projection_checkpoints"
        self._lock = (f"INSERT INTO {self._checkpoints} (name, position) VALUES (%s, 0) "
                      f"ON CONFLICT (name) DO UPDATE SET position = {self._checkpoints}.position RETURNING position")
        self._quarantines = PostgresQuarantines(s)
        self._select_order = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM {s}.read_orders"
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ORDER_COLUMNS[1:])
        self._upsert_orders = _bulk_insert(f"{s}.read_orders", _ORDER_COLUMNS, _ORDER_TYPES,
                                           f"ON CONFLICT (id) DO UPDATE SET {updates}")
        self._insert_items = _bulk_insert(f"{s}.read_order_items", _ITEM_COLUMNS, _ITEM_TYPES)
        self._insert_history = _bulk_insert(f"{s}.read_order_history", _HISTORY_COLUMNS, _HISTORY_TYPES)
        self._select_workflow = f"SELECT {', '.join(_WORKFLOW_COLUMNS)} FROM {s}.read_workflows"
        wf_updates = ", ".join(f"{c} = excluded.{c}" for c in _WORKFLOW_COLUMNS[1:])
        self._upsert_workflows = _bulk_insert(f"{s}.read_workflows", _WORKFLOW_COLUMNS, _WORKFLOW_TYPES,
                                              f"ON CONFLICT (stream_id) DO UPDATE SET {wf_updates}")
        self._items_of = (f"SELECT {', '.join(_ITEM_COLUMNS)} FROM {s}.read_order_items "
                          "WHERE order_id = ANY(%s) ORDER BY order_id, line")

    @classmethod
    def from_store(cls, store: EventStore, **options: Any) -> PostgresReadModels:
        if not isinstance(store, PostgresEventStore):
            raise StoreError(f"PostgreSQL read models need a PostgresEventStore, got {type(store).__name__}")
        if options:
            raise StoreError(f"unknown PostgreSQL read-model option(s) {sorted(options)}")
        return cls(store)

    # ----------------------------------------------------------------- plumbing

    async def _query(self, query: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: {doing} failed: {exc}") from exc

    async def _lock_checkpoint(self, conn: Conn, name: str) -> int:
        """Lock the projector's checkpoint row until commit (creating it at 0) and return its position."""
        cur = await conn.execute(self._lock, (name,))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _set_checkpoint(self, conn: Conn, name: str, position: int) -> None:
        await conn.execute(f"UPDATE {self._checkpoints} SET position = %s WHERE name = %s", (position, name))

    async def _load_orders(self, conn: Conn, order_ids: Collection[str]) -> dict[str, OrderRow]:
        cur = await conn.execute(f"{self._select_order} WHERE id = ANY(%s)", (list(order_ids),))
        return {r[0]: OrderRow(*r) for r in await cur.fetchall()}

    async def _write(self, conn: Conn, orders: Sequence[OrderRow], items: Sequence[ItemRow],
                     history: Sequence[HistoryRow] = ()) -> None:
        if orders:
            await conn.execute(self._upsert_orders, _columns([_order_values(o) for o in orders], 16))
        if items:
            await conn.execute(self._insert_items, _columns([_item_values(i) for i in items], 5))
        if history:
            rows = [(h.position, h.order_id, h.version, h.type, h.action, h.from_state, h.to_state, h.at,
                     Jsonb(dict(h.data))) for h in history]
            await conn.execute(self._insert_history, _columns(rows, 9))

    # ----------------------------------------------------------------- projector side

    async def checkpoint(self, name: str) -> int:
        rows = await self._query(f"SELECT position FROM {self._checkpoints} WHERE name = %s", (name,),
                                 f"reading checkpoint {name!r}")
        return int(rows[0][0]) if rows else 0

    async def apply(self, projector: Projector, events: Sequence[Decoded], after: int,
                    quarantine: Quarantine | None = None) -> int:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                # the quarantined streams are read by a second statement, which runs once the first holds the
                # checkpoint's row lock: under READ COMMITTED it sees a release committed while we waited for
                # it (in one statement, it would not); one round trip all the same (a pipeline)
                async with conn.pipeline():
                    locked = await conn.execute(self._lock, (projector.name,))
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
                loaded: dict[str, OrderRow] = {}
                if projector.reads_orders:
                    loaded = await self._load_orders(conn, {s.stream_id for s, data in events if data is not None})
                workflows: dict[str, WorkflowRow] = {}
                if projector.reads_workflows:
                    cur = await conn.execute(f"{self._select_workflow} WHERE stream_id = ANY(%s)",
                                             ([s.stream_id for s, _ in events],))
                    workflows = {r[0]: WorkflowRow(*r) for r in await cur.fetchall()}
                changes = Changes(_Preloaded(loaded, events), _Preloaded(workflows, events))
                position = run_skipping(projector, changes, events, skipped)
                await self._write_changes(conn, changes)
                await self._set_checkpoint(conn, projector.name, position)
                return position
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: applying {projector.name!r} failed: {exc}") from exc

    async def _write_changes(self, conn: Conn, changes: Changes) -> None:
        await self._write(conn, list(changes.dirty.values()), changes.items, changes.history)
        if changes.dirty_workflows:
            rows = [_workflow_values(w) for w in changes.dirty_workflows.values()]
            await conn.execute(self._upsert_workflows, _columns(rows, 11))

    async def reset(self, projector: Projector) -> None:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                await self._lock_checkpoint(conn, projector.name)
                for view in projector.views:
                    await conn.execute(f"DELETE FROM {self._t[view]}")
                await self._quarantines.forget(conn, projector.name)
                await self._set_checkpoint(conn, projector.name, 0)
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: resetting {projector.name!r} failed: {exc}") from exc

    async def quarantined(self, *, projector: str | None = None, stream_id: str | None = None) -> list[Quarantine]:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn:
                return await self._quarantines.select(conn, projector, stream_id)
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: reading quarantined streams failed: {exc}") from exc

    async def release(self, projector: Projector, stream_id: str, events: Sequence[Decoded], checkpoint: int) -> bool:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                if await self._lock_checkpoint(conn, projector.name) != checkpoint:
                    return False
                changes = Changes(lambda ids: {}, lambda ids: {})  # the stream's rows, from its events alone
                run_batch(projector, changes, events)
                await self._quarantines.delete_stream(conn, {v: self._t[v] for v in projector.views}, stream_id)
                await self._write_changes(conn, changes)
                await self._quarantines.forget(conn, projector.name, stream_id)
                return True
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: releasing {stream_id!r} from {projector.name!r} "
                             f"failed: {exc}") from exc

    async def repair_order(self, order_id: str, projected: ProjectedOrder, checkpoint: int) -> bool:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                if await self._lock_checkpoint(conn, "orders") != checkpoint:
                    return False
                await conn.execute(f"DELETE FROM {self._t['order_items']} WHERE order_id = %s", (order_id,))
                if projected.row is None:
                    await conn.execute(f"DELETE FROM {self._t['orders']} WHERE id = %s", (order_id,))
                else:
                    await self._write(conn, [projected.row], projected.items)
                return True
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: repairing order {order_id!r} failed: {exc}") from exc

    async def repair_workflow(self, stream_id: str, row: WorkflowRow | None, checkpoint: int) -> bool:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                if await self._lock_checkpoint(conn, "workflows") != checkpoint:
                    return False
                await conn.execute(f"DELETE FROM {self._t['workflows']} WHERE stream_id = %s", (stream_id,))
                if row is not None:
                    await conn.execute(self._upsert_workflows, _columns([_workflow_values(row)], 11))
                return True
        except psycopg.Error as exc:
            raise StoreError(f"read models in {self.store!r}: repairing workflow {stream_id!r} failed: {exc}") from exc

    # ----------------------------------------------------------------- queries

    async def _items(self, order_ids: list[str]) -> dict[str, list[ItemRow]]:
        return items_by_order(ItemRow(*r) for r in await self._query(self._items_of, (order_ids,),
                                                                     "reading order items"))

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
        row = OrderRow(*rows[0][:17])
        items = [ItemRow(order_id, line, product, quantity, Decimal(price)) for line, product, quantity, price
                 in rows[0][17]]
        return order_model(row, items)

    async def get_summary(self, order_id: str) -> OrderSummaryReadModel | None:
        rows = await self._query(f"{self._select_order} WHERE id = %s", (order_id,), f"reading order {order_id!r}")
        return summary_model(OrderRow(*rows[0])) if rows else None

    async def orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("%s", customer_id=customer_id, status=status), limit, cursor)

    async def orders_by_status(self, status: str, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("%s", status=status), limit, cursor)

    async def _created_page(self, where: str, args: tuple[Any, ...], limit: int,
                            cursor: str | None) -> Page[OrderReadModel]:
        after = created_after(limit, cursor)
        rows = [OrderRow(*r) for r in await self._query(
            f"{self._select_order} WHERE {where} AND created_position > %s ORDER BY created_position LIMIT %s",
            (*args, after, limit + 1), "listing orders")]
        shown = rows[:limit]
        return created_page(rows, limit, await self._items([o.id for o in shown]) if shown else {})

    async def recently_updated(self, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderSummaryReadModel]:
        key = updated_before(limit, cursor)
        where, args = ("WHERE (updated_at, id) < (%s, %s)", (from_micros(key[0]), key[1])) if key else ("", ())
        rows = [OrderRow(*r) for r in await self._query(
            f"{self._select_order} {where} ORDER BY updated_at DESC, id DESC LIMIT %s", (*args, limit + 1),
            "listing recently updated orders")]
        return updated_page(rows, limit)

    async def order_history(self, order_id: str, *, after_version: int = 0,
                            limit: int = 100) -> list[OrderHistoryEntry]:
        check_limit(limit)
        rows = await self._query(
            f"SELECT {', '.join(_HISTORY_COLUMNS)} FROM {self._t['order_history']} "
            "WHERE order_id = %s AND version > %s ORDER BY version LIMIT %s",
            (order_id, after_version, limit), f"reading the history of {order_id!r}")
        # `at` is kept as timestamptz (queryable by time); rows carry it as ISO text, like the projector writes it
        return [history_model(HistoryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7].isoformat(), r[8]))
                for r in rows]

    async def get_workflow(self, stream_id: str) -> WorkflowReadModel | None:
        rows = await self._query(f"{self._select_workflow} WHERE stream_id = %s", (stream_id,),
                                 f"reading workflow {stream_id!r}")
        return workflow_model(WorkflowRow(*rows[0])) if rows else None

    async def workflows(self, definition: str, *, state: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> Page[WorkflowReadModel]:
        after = created_after(limit, cursor)
        where, args = equal_filter("%s", definition=definition, state=state)
        rows = await self._query(
            f"{self._select_workflow} WHERE {where} AND created_position > %s ORDER BY created_position LIMIT %s",
            (*args, after, limit + 1), f"listing {definition} workflows")
        return workflow_page([WorkflowRow(*r) for r in rows], limit)

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
