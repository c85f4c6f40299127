"""The SQLite read models' queries: an order, a summary, pages of orders and workflows, an order's history.

Each function reads through `conn` (sqlite.py chooses the connection and any read snapshot) and returns the
models the HTTP API serves. Imports sqlite3 through its connection only; never the domain or the event store.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .queries import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, WorkflowReadModel, created_page, history_model,
    items_by_order, order_model, summary_model, updated_page, workflow_model, workflow_page,
)
from .sqlite_schema import FORMS, SELECT_ORDER, SELECT_WORKFLOW, dumps
from .tables import HISTORY_COLUMNS, ITEM_COLUMNS, columns, history_row, item_row, order_row, workflow_row

_ITEMS_OF = (f"SELECT {columns(ITEM_COLUMNS)} FROM read_order_items "
             "WHERE order_id IN (SELECT value FROM json_each(?)) ORDER BY order_id, line")
_HISTORY = (f"SELECT {columns(HISTORY_COLUMNS)} FROM read_order_history "
            "WHERE order_id = ? AND version > ? ORDER BY version LIMIT ?")


def get_order(conn: sqlite3.Connection, order_id: str) -> OrderReadModel | None:
    """The order and its items (the caller reads both in one snapshot)."""
    row = conn.execute(f"{SELECT_ORDER} WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return None
    items = conn.execute(_ITEMS_OF, (dumps([order_id]),)).fetchall()
    return order_model(order_row(row, FORMS), [item_row(i, FORMS) for i in items])


def get_summary(conn: sqlite3.Connection, order_id: str) -> OrderSummaryReadModel | None:
    row = conn.execute(f"{SELECT_ORDER} WHERE id = ?", (order_id,)).fetchone()
    return summary_model(order_row(row, FORMS)) if row is not None else None


def created_orders(conn: sqlite3.Connection, where: str, args: tuple[Any, ...], after: int,
                   limit: int) -> Page[OrderReadModel]:
    """A page of the orders matching `where`, in creation order after `after` (orders and items in one snapshot)."""
    rows = [order_row(r, FORMS) for r in conn.execute(
        f"{SELECT_ORDER} WHERE {where} AND created_position > ? ORDER BY created_position LIMIT ?",
        (*args, after, limit + 1))]
    items = conn.execute(_ITEMS_OF, (dumps([o.id for o in rows[:limit]]),))
    return created_page(rows, limit, items_by_order(item_row(r, FORMS) for r in items))


def recently_updated(conn: sqlite3.Connection, before: tuple[int, str] | None,
                     limit: int) -> Page[OrderSummaryReadModel]:
    """A page of summaries, newest first, below the (updated_at micros, id) `before` (None: the first page)."""
    where, args = ("WHERE (updated_at, id) < (?, ?)", before) if before is not None else ("", ())
    rows = [order_row(r, FORMS) for r in conn.execute(
        f"{SELECT_ORDER} {where} ORDER BY updated_at DESC, id DESC LIMIT ?", (*args, limit + 1))]
    return updated_page(rows, limit)


def order_history(conn: sqlite3.Connection, order_id: str, after_version: int, limit: int) -> list[OrderHistoryEntry]:
    rows = conn.execute(_HISTORY, (order_id, after_version, limit))
    return [history_model(history_row(r, FORMS)) for r in rows]


def get_workflow(conn: sqlite3.Connection, stream_id: str) -> WorkflowReadModel | None:
    row = conn.execute(f"{SELECT_WORKFLOW} WHERE stream_id = ?", (stream_id,)).fetchone()
    return workflow_model(workflow_row(row, FORMS)) if row is not None else None


def workflows(conn: sqlite3.Connection, where: str, args: tuple[Any, ...], after: int,
              limit: int) -> Page[WorkflowReadModel]:
    rows = [workflow_row(r, FORMS) for r in conn.execute(
        f"{SELECT_WORKFLOW} WHERE {where} AND created_position > ? ORDER BY created_position LIMIT ?",
        (*args, after, limit + 1))]
    return workflow_page(rows, limit)
