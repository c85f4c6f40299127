"""The read-model tables both SQL backends keep: each view's table, its columns in one order, and rows to
and from values in that order.

A backend says how its driver takes and gives back money, times and JSON (`Forms`): SQLite keeps them as
text, microseconds and JSON text, PostgreSQL as numeric, timestamptz and jsonb. The DDL is each backend's
(sqlite_schema.py; the store's migrations in store/pg_schema.py). Knows the rows only: no driver, no domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow

#: the table of each view (what a projector's `views` name)
VIEW_TABLES = {"orders": "read_orders", "order_items": "read_order_items", "order_history": "read_order_history",
               "workflows": "read_workflows"}
#: the projectors' checkpoints (name, position), beside the views
CHECKPOINTS = "projection_checkpoints"

ORDER_COLUMNS = ("id", "customer_id", "description", "initial_amount", "amount", "status", "created_at",
                 "updated_at", "version", "item_count", "created_position", "position", "tracking_number",
                 "shipping_address", "cancellation_reason", "return_reason", "data")
ITEM_COLUMNS = ("order_id", "line", "product_id", "quantity", "unit_price")
HISTORY_COLUMNS = ("position", "order_id", "version", "type", "action", "from_state", "to_state", "at", "data")
WORKFLOW_COLUMNS = ("stream_id", "definition", "id", "definition_version", "state", "version", "data", "created_at",
                    "updated_at", "created_position", "position")


@dataclass(frozen=True, slots=True)
class Forms:
    """How one backend's driver takes the values SQL has no single form for, and how it gives them back."""

    money: Callable[[Decimal], Any]
    time: Callable[[datetime], Any]
    data: Callable[[Mapping[str, Any]], Any]  # a row's recorded data
    event_data: Callable[[Mapping[str, Any]], Any]  # a history entry's data (its event's, parsed from JSON)
    read_money: Callable[[Any], Decimal]
    read_time: Callable[[Any], datetime]
    read_data: Callable[[Any], dict[str, Any]]
    read_at: Callable[[Any], str]  # a history entry's time, back as the ISO 8601 text the projector wrote


def columns(names: Sequence[str]) -> str:
    """`a, b, c`: the column list of a SELECT or an INSERT."""
    return ", ".join(names)


def upsert_tail(key: str, names: Sequence[str]) -> str:
    """` ON CONFLICT (key) DO UPDATE SET` every other column to the new row's value."""
    return f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in names if c != key)


# --------------------------------------------------------------------------- rows -> values (column order)


def order_values(orders: Iterable[OrderRow], f: Forms) -> list[tuple[Any, ...]]:
    money, time, data = f.money, f.time, f.data
    return [(o.id, o.customer_id, o.description, money(o.initial_amount) if o.initial_amount is not None else None,
             money(o.amount), o.status, time(o.created_at), time(o.updated_at), o.version, o.item_count,
             o.created_position, o.position, o.tracking_number, o.shipping_address, o.cancellation_reason,
             o.return_reason, data(o.data)) for o in orders]


def item_values(items: Iterable[ItemRow], f: Forms) -> list[tuple[Any, ...]]:
    money = f.money
    return [(i.order_id, i.line, i.product_id, i.quantity, money(i.unit_price)) for i in items]


def history_values(history: Iterable[HistoryRow], f: Forms) -> list[tuple[Any, ...]]:
    data = f.event_data
    return [(position, order_id, version, type_, action, from_state, to_state, at, data(d))
            for position, order_id, version, type_, action, from_state, to_state, at, d in history]


def workflow_values(workflows: Iterable[WorkflowRow], f: Forms) -> list[tuple[Any, ...]]:
    time, data = f.time, f.data
    return [(w.stream_id, w.definition, w.id, w.definition_version, w.state, w.version, data(w.data),
             time(w.created_at), time(w.updated_at), w.created_position, w.position) for w in workflows]


# --------------------------------------------------------------------------- values -> rows


def order_row(r: Sequence[Any], f: Forms) -> OrderRow:
    money, time = f.read_money, f.read_time
    return OrderRow(r[0], r[1], r[2], money(r[3]) if r[3] is not None else None, money(r[4]), r[5], time(r[6]),
                    time(r[7]), r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15], f.read_data(r[16]))


def item_row(r: Sequence[Any], f: Forms) -> ItemRow:
    return ItemRow(r[0], r[1], r[2], r[3], f.read_money(r[4]))


def history_row(r: Sequence[Any], f: Forms) -> HistoryRow:
    return HistoryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], f.read_at(r[7]), f.read_data(r[8]))


def workflow_row(r: Sequence[Any], f: Forms) -> WorkflowRow:
    time = f.read_time
    return WorkflowRow(r[0], r[1], r[2], r[3], r[4], r[5], f.read_data(r[6]), time(r[7]), time(r[8]), r[9], r[10])
