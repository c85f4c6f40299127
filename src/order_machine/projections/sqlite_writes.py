"""The SQLite read models' writes: a projector's batch with its checkpoint, a reset, a release, a repair.

Each function runs inside a transaction its caller (sqlite.py) began on `conn`, and raises to roll it back.
Imports sqlite3 through its connection only; never the domain or the event store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence

from ..store.sqlite_insert import insert_rows
from . import sqlite_quarantine as quarantines
from .batch import CheckpointMoved, Decoded, Projector, run_batch
from .changes import Changes
from .order_projectors import OrderProjector, ProjectedOrder
from .quarantine import Quarantine, run_skipping
from .rows import ItemRow, OrderRow, WorkflowRow
from .sqlite_schema import FORMS, SELECT_ORDER, SELECT_WORKFLOW, dumps
from .tables import (
    CHECKPOINTS, HISTORY_COLUMNS, ITEM_COLUMNS, ORDER_COLUMNS, VIEW_TABLES, WORKFLOW_COLUMNS, columns, history_values,
    item_values, order_row, order_values, upsert_tail, workflow_row, workflow_values,
)
from .workflow_projector import WorkflowProjector

_INSERT_ORDERS = f"INSERT INTO read_orders ({columns(ORDER_COLUMNS)})"
_ORDERS_TAIL = upsert_tail("id", ORDER_COLUMNS)
_INSERT_ITEMS = f"INSERT INTO read_order_items ({columns(ITEM_COLUMNS)})"
_INSERT_HISTORY = f"INSERT INTO read_order_history ({columns(HISTORY_COLUMNS)})"
_INSERT_WORKFLOWS = f"INSERT INTO read_workflows ({columns(WORKFLOW_COLUMNS)})"
_WORKFLOWS_TAIL = upsert_tail("stream_id", WORKFLOW_COLUMNS)
_SET_CHECKPOINT = (f"INSERT INTO {CHECKPOINTS} (name, position) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET position = excluded.position")


def checkpoint(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(f"SELECT position FROM {CHECKPOINTS} WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def _order_loader(conn: sqlite3.Connection) -> Callable[[Collection[str]], dict[str, OrderRow]]:
    def load(order_ids: Collection[str]) -> dict[str, OrderRow]:
        rows = conn.execute(f"{SELECT_ORDER} WHERE id IN (SELECT value FROM json_each(?))", (dumps(list(order_ids)),))
        return {r[0]: order_row(r, FORMS) for r in rows}
    return load


def _workflow_loader(conn: sqlite3.Connection) -> Callable[[Collection[str]], dict[str, WorkflowRow]]:
    def load(stream_ids: Collection[str]) -> dict[str, WorkflowRow]:
        rows = conn.execute(f"{SELECT_WORKFLOW} WHERE stream_id IN (SELECT value FROM json_each(?))",
                            (dumps(list(stream_ids)),))
        return {r[0]: workflow_row(r, FORMS) for r in rows}
    return load


def _write_orders(conn: sqlite3.Connection, orders: Sequence[OrderRow], items: Sequence[ItemRow]) -> None:
    """Upsert `orders` and insert `items` (a batch's, or one repaired order's)."""
    if orders:
        insert_rows(conn, _INSERT_ORDERS, len(ORDER_COLUMNS), order_values(orders, FORMS), _ORDERS_TAIL)
    if items:
        insert_rows(conn, _INSERT_ITEMS, len(ITEM_COLUMNS), item_values(items, FORMS))


def _write_workflows(conn: sqlite3.Connection, workflows: Sequence[WorkflowRow]) -> None:
    if workflows:
        insert_rows(conn, _INSERT_WORKFLOWS, len(WORKFLOW_COLUMNS), workflow_values(workflows, FORMS), _WORKFLOWS_TAIL)


def _write_changes(conn: sqlite3.Connection, changes: Changes) -> None:
    """Write what a batch's projector recorded: orders (upserted), items, workflows, history."""
    _write_orders(conn, list(changes.dirty.values()), changes.items)
    _write_workflows(conn, list(changes.dirty_workflows.values()))
    if changes.history:
        insert_rows(conn, _INSERT_HISTORY, len(HISTORY_COLUMNS), history_values(changes.history, FORMS))


def apply(conn: sqlite3.Connection, projector: Projector, events: Sequence[Decoded], after: int,
          quarantine: Quarantine | None = None) -> int:
    """ReadModels.apply inside the caller's transaction."""
    current = checkpoint(conn, projector.name)
    if current != after:
        raise CheckpointMoved(projector.name, after, current)
    if not events:
        return after
    # read inside the transaction that moves the checkpoint: a release committed by another process is seen
    skipped = quarantines.held(conn, projector.name)
    if quarantine is not None:
        quarantines.record(conn, quarantine)
        skipped.add(quarantine.stream_id)
    changes = Changes(_order_loader(conn), _workflow_loader(conn))
    position = run_skipping(projector, changes, events, skipped)
    _write_changes(conn, changes)
    conn.execute(_SET_CHECKPOINT, (projector.name, position))
    return position


def apply_together(conn: sqlite3.Connection,
                   jobs: Sequence[tuple[Projector, Sequence[Decoded], int]]) -> list[int | Exception]:
    """`apply` for each job in a savepoint of the caller's transaction: one that fails is rolled back alone
    and its exception is returned in its place (the runner retries it); the others' rows and checkpoints stay."""
    outcomes: list[int | Exception] = []
    for projector, events, after in jobs:
        conn.execute("SAVEPOINT projector")
        try:
            outcomes.append(apply(conn, projector, events, after))
        except Exception as exc:  # handed back to the runner, which retries or stops it
            conn.execute("ROLLBACK TO projector")
            outcomes.append(exc)
        conn.execute("RELEASE projector")
    return outcomes


def reset(conn: sqlite3.Connection, projector: Projector) -> None:
    for view in projector.views:
        conn.execute(f"DELETE FROM {VIEW_TABLES[view]}")
    quarantines.forget(conn, projector.name)
    conn.execute(_SET_CHECKPOINT, (projector.name, 0))


def release(conn: sqlite3.Connection, projector: Projector, stream_id: str, events: Sequence[Decoded],
            at: int) -> bool:
    """QuarantineStorage.release inside the caller's transaction (`at`: the checkpoint it expects)."""
    if checkpoint(conn, projector.name) != at:
        return False
    changes = Changes(lambda ids: {}, lambda ids: {})  # the stream's rows, from its events alone
    run_batch(projector, changes, events)
    quarantines.delete_stream(conn, {v: VIEW_TABLES[v] for v in projector.views}, stream_id)
    _write_changes(conn, changes)
    quarantines.forget(conn, projector.name, stream_id)
    return True


def repair_order(conn: sqlite3.Connection, order_id: str, projected: ProjectedOrder, at: int) -> bool:
    if checkpoint(conn, OrderProjector.name) != at:
        return False
    conn.execute("DELETE FROM read_order_items WHERE order_id = ?", (order_id,))
    if projected.row is None:
        conn.execute("DELETE FROM read_orders WHERE id = ?", (order_id,))
        return True
    _write_orders(conn, [projected.row], projected.items)
    return True


def repair_workflow(conn: sqlite3.Connection, stream_id: str, row: WorkflowRow | None, at: int) -> bool:
    if checkpoint(conn, WorkflowProjector.name) != at:
        return False
    conn.execute("DELETE FROM read_workflows WHERE stream_id = ?", (stream_id,))
    if row is not None:
        _write_workflows(conn, [row])
    return True
