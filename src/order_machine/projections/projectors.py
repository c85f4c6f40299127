"""Projector logic, written once for every backend: stored order events -> read-model rows.

A projector writes into `Changes`, an in-memory unit of work that a backend loads from and then
writes in one transaction with the checkpoint. Knows `events`; never imports the domain, a store or a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from ..events import (
    EVENT_TYPES, WORKFLOW_EVENT_TYPES, OrderCreated, OrderItemAdded, StoredEvent, WorkflowMigrated, WorkflowStarted,
    current_schema_version, split_workflow_stream, upcast,
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
    #: every value the order's actions recorded (JSON form), the four above included
    data: dict[str, Any] = field(default_factory=dict)


#: the names the `orders` view also keeps in columns of their own (the shipped order.yaml's)
ORDER_COLUMNS_RECORDED = ("tracking_number", "shipping_address", "cancellation_reason", "return_reason")


@dataclass(slots=True)
class WorkflowRow:
    """One workflow instance as the `workflows` view keeps it; `data` is its recorded data in JSON form."""

    stream_id: str
    definition: str
    id: str
    definition_version: int
    state: str
    version: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_position: int
    position: int


class ItemRow(NamedTuple):
    """One line of an order (`line` counts from 1 in the order the items were added)."""

    order_id: str
    line: int
    product_id: str
    quantity: int
    unit_price: Decimal


class HistoryRow(NamedTuple):
    """One event of an order's history; `action`, `from_state`, `to_state` are None when not a transition.

    `at` is the event's ISO 8601 time as stored; `data` is the event's data without `at`, `source` and
    `target` (which have their own columns).
    """

    position: int
    order_id: str
    version: int
    type: str
    action: str | None
    from_state: str | None
    to_state: str | None
    at: str
    data: Mapping[str, Any]


# --------------------------------------------------------------------------- the unit of work

OrderLoader = Callable[[Collection[str]], Mapping[str, OrderRow]]
WorkflowLoader = Callable[[Collection[str]], Mapping[str, WorkflowRow]]


def _no_workflows(stream_ids: Collection[str]) -> Mapping[str, WorkflowRow]:
    return {}


class Changes:
    """What a projector may read and write inside one batch; the backend persists it in one transaction.

    `order()` reads through to the backend's `load` (which must return copies: rows are mutated here);
    `put_order`, `add_item` and `append_history` only record. Nothing reaches storage unless the
    whole batch succeeds, which is what makes a batch all-or-nothing on every backend.
    """

    __slots__ = ("_load", "_load_workflows", "orders", "dirty", "items", "history", "workflows", "dirty_workflows")

    def __init__(self, load: OrderLoader, load_workflows: WorkflowLoader = _no_workflows) -> None:
        self._load = load
        self._load_workflows = load_workflows
        self.orders: dict[str, OrderRow | None] = {}
        self.dirty: dict[str, OrderRow] = {}
        self.items: list[ItemRow] = []
        self.history: list[HistoryRow] = []
        self.workflows: dict[str, WorkflowRow | None] = {}
        self.dirty_workflows: dict[str, WorkflowRow] = {}

    def prefetch_workflows(self, stream_ids: Iterable[str]) -> None:
        wanted = {i for i in stream_ids if i not in self.workflows}
        if wanted:
            found = self._load_workflows(wanted)
            for stream_id in wanted:
                self.workflows[stream_id] = found.get(stream_id)

    def workflow(self, stream_id: str) -> WorkflowRow | None:
        if stream_id not in self.workflows:
            self.prefetch_workflows((stream_id,))
        return self.workflows[stream_id]

    def put_workflow(self, row: WorkflowRow) -> None:
        self.workflows[row.stream_id] = row
        self.dirty_workflows[row.stream_id] = row

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

EventData = Mapping[str, Any]
Decoded = tuple[StoredEvent, EventData | BaseException | None]

_CREATED, _ITEM_ADDED = OrderCreated.__name__, OrderItemAdded.__name__
_COLUMNS_RECORDED = frozenset(ORDER_COLUMNS_RECORDED)
_WORKFLOW_TYPES = frozenset(WORKFLOW_EVENT_TYPES)
_STARTED, _MIGRATED = WorkflowStarted.__name__, WorkflowMigrated.__name__
_SCHEMA_VERSIONS: dict[str, int] = {name: cls.schema_version for name, cls in EVENT_TYPES.items()}
_SCHEMA_VERSIONS.update({name: cls.schema_version for name, cls in WORKFLOW_EVENT_TYPES.items()})
_parse_time = datetime.fromisoformat
_new_tuple = tuple.__new__


class Projector(Protocol):
    """Turns events into read-model rows. `views` names what it owns: rebuild clears exactly those.

    `apply` gets the stored envelope and its data at the current schema version of its type (the
    JSON form `events.encode` writes, upcast by `events.upcast`); it raises on data it cannot use.
    """

    name: str
    views: tuple[str, ...]
    reads_orders: bool
    reads_workflows: bool

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None: ...


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
    """An event does not fit the read model it should extend (missing order, version gap, bad data)."""


def decode_batch(batch: Sequence[StoredEvent]) -> list[Decoded]:
    """Each stored event with its data at the current schema version.

    None when it is not an order event (another workflow's: no order projector wants it), the
    error when it cannot be upcast (the projectors fail at its position, the runner reports it).
    Typed domain events are not built: projectors read the few fields they need, much faster.
    """
    versions = _SCHEMA_VERSIONS
    return [(stored, stored.data if versions.get(stored.type) == stored.schema_version else _upcast(stored))
            for stored in batch]


def _upcast(stored: StoredEvent) -> EventData | BaseException | None:
    """decode_batch's slow path: data of an older or newer version, or an order transition stored under a
    name of its definition's own (`emits: OrderHeld`); None for an event of no order or workflow."""
    if stored.type not in _SCHEMA_VERSIONS:
        if "/" in stored.stream_id:
            return None
        if stored.schema_version == current_schema_version(stored.type):
            return stored.data
    try:
        return upcast(stored.type, stored.schema_version, stored.data)
    except Exception as exc:
        return exc


def run_batch(projector: Projector, changes: Changes, events: Sequence[Decoded]) -> int:
    """Apply `events` to `changes`; raise EventFailed naming the first event that failed. Returns the last position."""
    if projector.reads_orders:
        changes.prefetch({stored.stream_id for stored, data in events if data is not None})
    if getattr(projector, "reads_workflows", False):  # projectors written before it existed lack it
        changes.prefetch_workflows({stored.stream_id for stored, _ in events if stored.type in _WORKFLOW_TYPES})
    apply = projector.apply
    index = 0
    try:  # one try around the loop, not one per event; the except clauses name the event by index
        for index, (stored, data) in enumerate(events):
            if data is None:
                continue
            if isinstance(data, BaseException):
                raise EventFailed(index, stored.position, data)
            apply(changes, stored, data)
    except EventFailed:
        raise
    except Exception as exc:
        raise EventFailed(index, events[index][0].position, exc) from exc
    return events[-1][0].position if events else 0


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
        if kind in _WORKFLOW_TYPES:  # another workflow's event: the workflows view keeps it
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
        if kind in _WORKFLOW_TYPES:  # workflows' history is read from their streams
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
        # tuple.__new__ builds the named tuple without the Python-level __new__ (a third of the cost)
        changes.history.append(_new_tuple(HistoryRow, (
            stored.position, stored.stream_id, stored.version, kind, action, source, target, at, extra,
        )))


class WorkflowProjector:
    """Keeps the `workflows` view: every instance of every definition, its state, version and data."""

    name = "workflows"
    views: tuple[str, ...] = ("workflows",)
    reads_orders = False
    reads_workflows = True

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None:
        kind = stored.type
        if kind not in _WORKFLOW_TYPES:
            return
        stream_id = stored.stream_id
        ids = split_workflow_stream(stream_id)
        if ids is None:
            raise ProjectionConflict(f"{kind} at position {stored.position} in stream {stream_id!r}, "
                                     "which is not a workflow's (<definition>/<id>)")
        row = changes.workflow(stream_id)
        at = _parse_time(data["at"])
        if kind == _STARTED:
            if row is not None or stored.version != 1:
                raise ProjectionConflict(f"workflow {stream_id!r}: WorkflowStarted at version {stored.version}, "
                                         f"but the read model has version {row.version if row else 0}")
            changes.put_workflow(WorkflowRow(
                stream_id, ids[0], ids[1], int(data["definition_version"]), str(data["state"]), 1,
                dict(data.get("data") or {}), at, at, stored.position, stored.position))
            return
        if row is None:
            raise ProjectionConflict(f"workflow {stream_id!r}: {kind} at position {stored.position} "
                                     "but the instance was never started")
        if stored.version != row.version + 1:
            raise ProjectionConflict(f"workflow {stream_id!r}: {kind} has version {stored.version}, "
                                     f"the read model is at version {row.version}")
        if kind == _MIGRATED:
            row.definition_version = int(data["to_version"])
        else:
            recorded = data.get("recorded")
            if recorded:
                row.data.update(recorded)
            for name in data.get("cleared") or ():
                row.data.pop(name, None)
        row.state = str(data["target"])
        row.version, row.position, row.updated_at = stored.version, stored.position, at
        changes.dirty_workflows[stream_id] = row


def default_projectors(initial_state: str = INITIAL_STATE) -> list[Projector]:
    """The projectors of the read side, in the order the runner applies them."""
    return [OrderProjector(initial_state), OrderHistoryProjector(initial_state), WorkflowProjector()]


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
