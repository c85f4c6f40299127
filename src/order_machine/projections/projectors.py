"""Projector logic, written once for every backend: stored order events -> read-model rows.

A projector writes into `Changes`, an in-memory unit of work that a backend loads from and then
writes in one transaction with the checkpoint. Knows `events`; never imports the domain, a store or a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ..events import (
    EVENT_TYPES, OrderCancelled, OrderCreated, OrderEvent, OrderItemAdded, OrderReturned, OrderShipped,
    OrderTransitioned, StoredEvent, decode, upcast,
)

INITIAL_STATE = "Pending"  # the initial state of definitions/order.yaml; projectors take it as a parameter
_ZERO = Decimal("0")


# --------------------------------------------------------------------------- rows


@dataclass(slots=True)
class OrderRow:
    """One order as the `orders` view keeps it (mutable inside a batch, copied out of storage)."""

    id: str
    customer_id: str
    description: str
    initial_amount: Decimal | None
    amount: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    version: int
    item_count: int
    created_position: int
    position: int
    tracking_number: str | None = None
    shipping_address: str | None = None
    cancellation_reason: str | None = None
    return_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One line of an order (`line` counts from 1 in the order the items were added)."""

    order_id: str
    line: int
    product_id: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One event of an order's history; `action`, `from_state`, `to_state` are None when not a transition."""

    position: int
    order_id: str
    version: int
    type: str
    action: str | None
    from_state: str | None
    to_state: str | None
    at: datetime
    data: Mapping[str, Any]


# --------------------------------------------------------------------------- the unit of work

OrderLoader = Callable[[Collection[str]], Mapping[str, OrderRow]]


class Changes:
    """What a projector may read and write inside one batch; the backend persists it in one transaction.

    `order()` reads through to the backend's `load` (which must return copies: rows are mutated here);
    `put_order`, `add_item` and `append_history` only record. Nothing reaches storage unless the
    whole batch succeeds, which is what makes a batch all-or-nothing on every backend.
    """

    __slots__ = ("_load", "orders", "dirty", "items", "history")

    def __init__(self, load: OrderLoader) -> None:
        self._load = load
        self.orders: dict[str, OrderRow | None] = {}
        self.dirty: dict[str, OrderRow] = {}
        self.items: list[ItemRow] = []
        self.history: list[HistoryRow] = []

    def prefetch(self, order_ids: Iterable[str]) -> None:
        """Load every order of a batch with one backend call instead of one per event."""
        wanted = {i for i in order_ids if i not in self.orders}
        if wanted:
            found = self._load(wanted)
            for order_id in wanted:
                self.orders[order_id] = found.get(order_id)

    def order(self, order_id: str) -> OrderRow | None:
        try:
            return self.orders[order_id]
        except KeyError:
            row = self._load((order_id,)).get(order_id)
            self.orders[order_id] = row
            return row

    def put_order(self, row: OrderRow) -> None:
        self.orders[row.id] = row
        self.dirty[row.id] = row

    def add_item(self, item: ItemRow) -> None:
        self.items.append(item)

    def append_history(self, entry: HistoryRow) -> None:
        self.history.append(entry)


# --------------------------------------------------------------------------- projectors

Decoded = tuple[StoredEvent, OrderEvent | BaseException | None]


class Projector(Protocol):
    """Turns events into read-model rows. `views` names what it owns: rebuild clears exactly those."""

    name: str
    views: tuple[str, ...]
    reads_orders: bool

    def apply(self, changes: Changes, stored: StoredEvent, event: OrderEvent) -> None: ...


class EventFailed(Exception):
    """A projector raised on one event of a batch (internal: the runner retries from `index`)."""

    def __init__(self, index: int, position: int, cause: BaseException) -> None:
        self.index, self.position, self.cause = index, position, cause
        super().__init__(f"event at position {position} failed: {cause!r}")


class CheckpointMoved(Exception):
    """Someone else advanced the projector's checkpoint since it was read (internal: the runner re-reads it)."""

    def __init__(self, projection: str, expected: int, actual: int) -> None:
        self.projection, self.expected, self.actual = projection, expected, actual
        super().__init__(f"projection {projection!r}: checkpoint is {actual}, expected {expected}")


class ProjectionConflict(ValueError):
    """An event does not fit the read model it should extend (missing order, version gap)."""


def decode_batch(batch: Sequence[StoredEvent]) -> list[Decoded]:
    """Each stored event with its domain event: None when it is not an order event, the error when it cannot be decoded."""
    out: list[Decoded] = []
    for stored in batch:
        if stored.type not in EVENT_TYPES:
            out.append((stored, None))
            continue
        try:
            out.append((stored, decode(stored)))
        except Exception as exc:  # a bad event is a projector failure at its position, reported by the runner
            out.append((stored, exc))
    return out


def run_batch(projector: Projector, changes: Changes, events: Sequence[Decoded]) -> int:
    """Apply `events` to `changes`; raise EventFailed naming the first event that failed. Returns the last position."""
    if projector.reads_orders:
        changes.prefetch({stored.stream_id for stored, event in events if event is not None})
    apply = projector.apply
    for index, (stored, event) in enumerate(events):
        if event is None:
            continue
        if isinstance(event, BaseException):
            raise EventFailed(index, stored.position, event)
        try:
            apply(changes, stored, event)
        except Exception as exc:
            raise EventFailed(index, stored.position, exc) from exc
    return events[-1][0].position if events else 0


class OrderProjector:
    """Keeps the `orders` and `order_items` views: detail, summary, by customer, by status."""

    name = "orders"
    views: tuple[str, ...] = ("orders", "order_items")
    reads_orders = True

    def __init__(self, initial_state: str = INITIAL_STATE) -> None:
        self.initial_state = initial_state

    def apply(self, changes: Changes, stored: StoredEvent, event: OrderEvent) -> None:
        order_id = stored.stream_id
        row = changes.order(order_id)
        if type(event) is OrderCreated:
            if row is not None or stored.version != 1:
                raise ProjectionConflict(f"order {order_id!r}: OrderCreated at version {stored.version}, "
                                         f"but the read model has version {row.version if row else 0}")
            self._create(changes, stored, event)
            return
        if row is None:
            raise ProjectionConflict(f"order {order_id!r}: {stored.type} at position {stored.position} "
                                     "but the order was never created")
        if stored.version != row.version + 1:
            raise ProjectionConflict(f"order {order_id!r}: {stored.type} has version {stored.version}, "
                                     f"the read model is at version {row.version}")
        row.version, row.position, row.updated_at = stored.version, stored.position, event.at
        if isinstance(event, OrderTransitioned):
            row.status = event.target
            if isinstance(event, OrderShipped):
                row.tracking_number, row.shipping_address = event.tracking_number, event.shipping_address
            elif isinstance(event, OrderCancelled):
                row.cancellation_reason = event.reason
            elif isinstance(event, OrderReturned):
                row.return_reason = event.reason
        elif isinstance(event, OrderItemAdded):
            row.item_count += 1
            row.amount += event.unit_price * event.quantity
            changes.add_item(ItemRow(order_id, row.item_count, event.product_id, event.quantity, event.unit_price))
        changes.put_order(row)

    def _create(self, changes: Changes, stored: StoredEvent, event: OrderCreated) -> None:
        amount = event.amount if event.amount is not None else _ZERO
        for line, item in enumerate(event.items, 1):
            amount += item.unit_price * item.quantity
            changes.add_item(ItemRow(stored.stream_id, line, item.product_id, item.quantity, item.unit_price))
        changes.put_order(OrderRow(
            stored.stream_id, event.customer_id, event.description, event.amount, amount, self.initial_state,
            event.at, event.at, stored.version, len(event.items), stored.position, stored.position,
        ))


class OrderHistoryProjector:
    """Keeps the `order_history` view: every event of every order, with action, from, to, time and data."""

    name = "order_history"
    views: tuple[str, ...] = ("order_history",)
    reads_orders = False

    def __init__(self, initial_state: str = INITIAL_STATE) -> None:
        self.initial_state = initial_state

    def apply(self, changes: Changes, stored: StoredEvent, event: OrderEvent) -> None:
        data = stored.data  # kept whole (its `at` too); queries show it without `at`, which has its own column
        if stored.schema_version != type(event).schema_version:
            data = upcast(stored.type, stored.schema_version, data)
        if isinstance(event, OrderTransitioned):
            action, source, target = event.action, event.source, event.target
        elif type(event) is OrderCreated:
            action, source, target = None, None, self.initial_state
        else:
            action = source = target = None
        changes.append_history(HistoryRow(
            stored.position, stored.stream_id, stored.version, stored.type, action, source, target, event.at, data,
        ))


def default_projectors(initial_state: str = INITIAL_STATE) -> list[Projector]:
    """The projectors of the order read side, in the order the runner applies them."""
    return [OrderProjector(initial_state), OrderHistoryProjector(initial_state)]


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
