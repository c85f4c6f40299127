"""The order projectors: `orders` and `order_items` (detail, summary, by customer, by status) and
`order_history` (every event of every order), and one order's rows rebuilt from its events alone.

Knows `events`, rows and the batch types; never a store, a driver or the domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..events import OrderCreated, OrderItemAdded, StoredEvent
from .batch import WORKFLOW_TYPES, EventData, ProjectionConflict, decode_batch, run_batch
from .changes import Changes
from .rows import ORDER_COLUMNS_RECORDED, HistoryRow, ItemRow, OrderRow

INITIAL_STATE = "Pending"  # the initial state of definitions/order.yaml; projectors take it as a parameter
_ZERO = Decimal("0")
_CREATED, _ITEM_ADDED = OrderCreated.__name__, OrderItemAdded.__name__
_COLUMNS_RECORDED = frozenset(ORDER_COLUMNS_RECORDED)
_parse_time = datetime.fromisoformat
_new_tuple = tuple.__new__


def _money(value: Any, name: str) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ProjectionConflict(f"{name} must be a decimal string, got {value!r}")
    try:
        amount = Decimal(value)
    except ArithmeticError:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise ProjectionConflict(f"{name} must be a finite decimal, got {value!r}")
    return amount


def _quantity(value: Any) -> int:
    if type(value) is not int:
        raise ProjectionConflict(f"quantity must be a whole number, got {value!r}")
    return value


class OrderProjector:
    """Keeps the `orders` and `order_items` views: detail, summary, by customer, by status."""

    name = "orders"
    views: tuple[str, ...] = ("orders", "order_items")
    reads_orders = True
    reads_workflows = False

    def __init__(self, initial_state: str = INITIAL_STATE) -> None:
        self.initial_state = initial_state

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None:
        order_id, kind = stored.stream_id, stored.type
        if kind in WORKFLOW_TYPES:  # another workflow's event: the workflows view keeps it
            return
        orders = changes.orders
        row = orders[order_id] if order_id in orders else changes.order(order_id)
        if kind == _CREATED:
            if row is not None or stored.version != 1:
                raise ProjectionConflict(f"order {order_id!r}: OrderCreated at version {stored.version}, "
                                         f"but the read model has version {row.version if row else 0}")
            self._create(changes, stored, data)
            return
        if row is None:
            raise ProjectionConflict(f"order {order_id!r}: {kind} at position {stored.position} "
                                     "but the order was never created")
        if stored.version != row.version + 1:
            raise ProjectionConflict(f"order {order_id!r}: {kind} has version {stored.version}, "
                                     f"the read model is at version {row.version}")
        row.updated_at = _parse_time(data["at"])
        row.version, row.position = stored.version, stored.position
        if kind == _ITEM_ADDED:
            quantity, price = _quantity(data["quantity"]), _money(data["unit_price"], "unit_price")
            row.item_count += 1
            row.amount += price * quantity
            changes.add_item(ItemRow(order_id, row.item_count, str(data["product_id"]), quantity, price))
        else:  # a transition (every other order event type): its state, and what it recorded or cleared
            row.status = str(data["target"])
            recorded, cleared = data.get("recorded"), data.get("cleared")
            if recorded:
                row.data.update(recorded)
                for name in _COLUMNS_RECORDED.intersection(recorded):
                    value = recorded[name]
                    setattr(row, name, None if value is None else str(value))
            if cleared:
                for name in cleared:
                    row.data.pop(name, None)
                    if name in _COLUMNS_RECORDED:
                        setattr(row, name, None)
        changes.dirty[order_id] = row  # put_order, inline: the row is already in changes.orders

    def _create(self, changes: Changes, stored: StoredEvent, data: EventData) -> None:
        initial = data.get("amount")
        initial_amount = _money(initial, "amount") if initial is not None else None
        amount = initial_amount if initial_amount is not None else _ZERO
        items = data.get("items") or ()
        for line, item in enumerate(items, 1):
            quantity, price = _quantity(item["quantity"]), _money(item["unit_price"], "unit_price")
            amount += price * quantity
            changes.add_item(ItemRow(stored.stream_id, line, str(item["product_id"]), quantity, price))
        at = _parse_time(data["at"])
        changes.put_order(OrderRow(
            stored.stream_id, str(data["customer_id"]), str(data.get("description", "")), initial_amount, amount,
            self.initial_state, at, at, stored.version, len(items), stored.position, stored.position,
            data=dict(data.get("data") or {}),
        ))


class OrderHistoryProjector:
    """Keeps the `order_history` view: every event of every order, with action, from, to, time and data."""

    name = "order_history"
    views: tuple[str, ...] = ("order_history",)
    reads_orders = False
    reads_workflows = False

    def __init__(self, initial_state: str = INITIAL_STATE) -> None:
        self.initial_state = initial_state

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None:
        kind = stored.type
        if kind in WORKFLOW_TYPES:  # workflows' history is read from their streams
            return
        action: str | None
        if kind == _CREATED or kind == _ITEM_ADDED:
            action, source, target = None, None, (self.initial_state if kind == _CREATED else None)
            extra = dict(data)
            extra.pop("at")
        else:  # a transition: its action's fields are the entry's data
            action, source, target = str(data["action"]), str(data["source"]), str(data["target"])
            extra = data.get("data") or {}
        at = data["at"]
        if type(at) is not str:
            raise ProjectionConflict(f"at must be an ISO 8601 time, got {at!r}")
        # tuple.__new__ builds the named tuple without its Python-level __new__: one row per event, the hot path
        changes.history.append(_new_tuple(HistoryRow, (
            stored.position, stored.stream_id, stored.version, kind, action, source, target, at, extra,
        )))


@dataclass(slots=True)
class ProjectedOrder:
    """An order's rows rebuilt from its events alone (what the consistency checker compares against)."""

    row: OrderRow | None
    items: list[ItemRow] = field(default_factory=list)


def project_order(events: Sequence[StoredEvent], initial_state: str = INITIAL_STATE) -> ProjectedOrder:
    """Rebuild one order's `orders`/`order_items` rows in memory from its stored events.

    Raises EventFailed when the events do not project (the same failure the runner would stop on).
    """
    projector = OrderProjector(initial_state)
    changes = Changes(lambda ids: {})
    run_batch(projector, changes, decode_batch(events))
    order_id = events[0].stream_id if events else ""
    return ProjectedOrder(changes.orders.get(order_id), sorted(changes.items, key=lambda i: i.line))
