"""Events: the machine's own notifications, the order's domain events, and the stored envelope.

Owns event names, schema versions, JSON encoding and upcasting. Imports only `errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- machine notifications


@dataclass(frozen=True, slots=True)
class MachineInitialised:
    """An entity's machine was initialised in its initial state."""

    entity_id: str
    definition: str
    state: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StateChanged:
    """An entity moved from one state to another by an action."""

    entity_id: str
    definition: str
    source: str
    target: str
    action: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the stored envelope


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: its type, JSON data and metadata."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=utcnow)


class StoredEvent(NamedTuple):
    """An event as the store returns it, with its stream version and global position.

    Immutable; a named tuple because stores build thousands per batch and a tuple is the cheapest
    immutable record Python builds (a frozen dataclass costs 5x more per event on a rebuild).
    """

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    recorded_at: datetime


# --------------------------------------------------------------------------- order domain events


@dataclass(frozen=True, slots=True)
class OrderItem:
    product_id: str
    quantity: int = 1
    unit_price: Decimal = Decimal("0")

    @property
    def total_price(self) -> Decimal:
        return self.unit_price * self.quantity

    def to_json(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "quantity": self.quantity, "unit_price": str(self.unit_price)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderItem:
        return cls(str(data["product_id"]), int(data["quantity"]), Decimal(str(data["unit_price"])))


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """Base of the order's domain events; `order_id` and `at` (UTC) on every one."""

    schema_version: ClassVar[int] = 1
    order_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderCreated(OrderEvent):
    schema_version: ClassVar[int] = 2
    customer_id: str
    description: str = ""
    amount: Decimal | None = None
    items: tuple[OrderItem, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderItemAdded(OrderEvent):
    product_id: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class OrderTransitioned(OrderEvent):
    """Base of the events a declared transition emits (`emits:` in definitions/order.yaml)."""

    action: ClassVar[str] = ""
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class OrderConfirmed(OrderTransitioned):
    action: ClassVar[str] = "Confirm"


@dataclass(frozen=True, slots=True)
class OrderProcessingStarted(OrderTransitioned):
    action: ClassVar[str] = "StartProcessing"


@dataclass(frozen=True, slots=True)
class OrderShipped(OrderTransitioned):
    action: ClassVar[str] = "Ship"
    tracking_number: str = ""
    shipping_address: str = ""


@dataclass(frozen=True, slots=True)
class OrderDelivered(OrderTransitioned):
    action: ClassVar[str] = "Deliver"


@dataclass(frozen=True, slots=True)
class OrderCancelled(OrderTransitioned):
    action: ClassVar[str] = "Cancel"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderReturned(OrderTransitioned):
    action: ClassVar[str] = "Return"
    reason: str = ""


EVENT_TYPES: dict[str, type[OrderEvent]] = {
    cls.__name__: cls
    for cls in (
        OrderCreated, OrderItemAdded, OrderConfirmed, OrderProcessingStarted,
        OrderShipped, OrderDelivered, OrderCancelled, OrderReturned,
    )
}
TRANSITION_EVENTS: dict[str, type[OrderTransitioned]] = {
    name: cls for name, cls in EVENT_TYPES.items() if issubclass(cls, OrderTransitioned)
}


# --------------------------------------------------------------------------- encoding and upcasting


#: the types JSON writes as they are (no conversion, no choice of spelling)
JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _to_json(value: Any) -> Any:
    if type(value) in JSON_SCALARS:  # most fields: nothing to convert
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [v.to_json() if isinstance(v, OrderItem) else _to_json(v) for v in value]
    return value


_DATA_FIELDS: dict[type[OrderEvent], tuple[str, ...]] = {}


def _data_fields(cls: type[OrderEvent]) -> tuple[str, ...]:
    """The fields an event stores in its data (all but order_id), computed once per class."""
    names = _DATA_FIELDS.get(cls)
    if names is None:
        names = _DATA_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name != "order_id")
    return names


def encode(event: OrderEvent, metadata: Mapping[str, Any] | None = None) -> NewEvent:
    """The stored form of a domain event: its class name, schema version and JSON data."""
    data = {name: _to_json(getattr(event, name)) for name in _data_fields(type(event))}
    return NewEvent(type(event).__name__, data, type(event).schema_version, dict(metadata or {}), event.at)


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _order_created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # v1 (the reference's shape) had item names and a `total`; v2 has priced items and an `amount`.
    return {
        "at": data["created_at"],
        "customer_id": data["customer_id"],
        "description": data.get("description", ""),
        "amount": data.get("total"),
        "items": [{"product_id": name, "quantity": 1, "unit_price": "0"} for name in data.get("items", [])],
    }


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("OrderCreated", 1): _order_created_v1_to_v2,
}


def upcast(type_name: str, schema_version: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """Bring stored data up to the current schema version of its event type, one step at a time."""
    cls = EVENT_TYPES.get(type_name)
    current = dict(data)
    if cls is None:
        return current
    version = schema_version
    while version < cls.schema_version:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise ValueError(f"no upcaster for {type_name} v{version}")
        current, version = step(current), version + 1
    if version > cls.schema_version:
        raise ValueError(f"{type_name} v{version} is newer than this code knows (v{cls.schema_version})")
    return current


def _decimal(value: Any) -> Decimal | None:
    return Decimal(value) if value is not None else None


def _items(value: Any) -> tuple[OrderItem, ...]:
    return tuple(OrderItem.from_json(i) for i in value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "at": datetime.fromisoformat, "amount": _decimal, "unit_price": _decimal, "items": _items,
}
_DECODERS: dict[type[OrderEvent], tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def decode(stored: StoredEvent) -> OrderEvent:
    """The domain event of a stored order event, upcast to the current schema version."""
    cls = EVENT_TYPES.get(stored.type)
    if cls is None:
        raise ValueError(f"unknown event type {stored.type!r} at position {stored.position}")
    # data already at the current version is only read here, never changed: no copy needed
    data = stored.data if stored.schema_version == cls.schema_version else upcast(
        stored.type, stored.schema_version, stored.data)
    fields_ = _DECODERS.get(cls)
    if fields_ is None:
        fields_ = _DECODERS[cls] = tuple((name, _CONVERTERS.get(name)) for name in _data_fields(cls))
    kwargs: dict[str, Any] = {"order_id": stored.stream_id}
    for name, convert in fields_:
        if name in data:
            kwargs[name] = data[name] if convert is None else convert(data[name])
    return cls(**kwargs)


# --------------------------------------------------------------------------- workflow events (any definition)
# Every durable instance of a definition is one stream, `<definition>/<id>` (a definition name has no
# `/` and neither has an id, so the split is unambiguous and no instance stream is an order's). Its
# events are the same three types for every definition: the store, the projectors and the followers
# read them without knowing the definition, and a new YAML file needs no new event class.


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """Base of the events of a workflow instance; `workflow_id`, `definition` and `at` (UTC) on every one."""

    schema_version: ClassVar[int] = 1
    workflow_id: str
    definition: str
    at: datetime

    @property
    def stream_id(self) -> str:
        return workflow_stream(self.definition, self.workflow_id)


@dataclass(frozen=True, slots=True)
class WorkflowStarted(WorkflowEvent):
    """An instance began in its definition's initial state, with its checked data (JSON form)."""

    definition_version: int
    state: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkflowTransitioned(WorkflowEvent):
    """An action took a declared transition: `data` is the action's checked input, `recorded` the values
    it left in the instance's data, `cleared` the names it removed (both JSON form); `emits` is the
    event name the definition gives the transition, if any."""

    action: str
    source: str
    target: str
    data: Mapping[str, Any] = field(default_factory=dict)
    recorded: Mapping[str, Any] = field(default_factory=dict)
    cleared: tuple[str, ...] = ()
    emits: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowMigrated(WorkflowEvent):
    """An instance moved to another version of its definition, its state mapped (`source` -> `target`)."""

    from_version: int
    to_version: int
    source: str
    target: str


WORKFLOW_EVENT_TYPES: dict[str, type[WorkflowEvent]] = {
    cls.__name__: cls for cls in (WorkflowStarted, WorkflowTransitioned, WorkflowMigrated)
}


def workflow_stream(definition: str, workflow_id: str) -> str:
    """The stream id of one instance of a definition."""
    return f"{definition}/{workflow_id}"


def split_workflow_stream(stream_id: str) -> tuple[str, str] | None:
    """(definition, id) of a workflow instance's stream; None for any other stream (an order's)."""
    definition, slash, workflow_id = stream_id.partition("/")
    return (definition, workflow_id) if slash else None


def to_json(value: Any) -> Any:
    """A value as JSON stores it: Decimal as its string, datetime in ISO 8601, containers recursively.

    Raises TypeError for anything JSON cannot hold exactly (a float is kept: JSON has numbers).
    """
    if type(value) in JSON_SCALARS or isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def encode_workflow(event: WorkflowEvent, metadata: Mapping[str, Any] | None = None) -> NewEvent:
    """The stored form of a workflow event (everything but the ids, which the stream id holds)."""
    data: dict[str, Any] = {"at": event.at.isoformat()}
    for f in fields(event):
        if f.name not in ("workflow_id", "definition", "at"):
            data[f.name] = to_json(getattr(event, f.name))
    return NewEvent(type(event).__name__, data, type(event).schema_version, dict(metadata or {}), event.at)


def decode_workflow(stored: StoredEvent) -> WorkflowEvent:
    """The workflow event of a stored one; raises ValueError for another kind of event or stream."""
    cls = WORKFLOW_EVENT_TYPES.get(stored.type)
    ids = split_workflow_stream(stored.stream_id)
    if cls is None or ids is None:
        raise ValueError(f"{stored.type!r} at position {stored.position} is not a workflow event")
    if stored.schema_version > cls.schema_version:
        raise ValueError(f"{stored.type} v{stored.schema_version} is newer than this code knows "
                         f"(v{cls.schema_version})")
    data = dict(stored.data)
    kwargs: dict[str, Any] = {"definition": ids[0], "workflow_id": ids[1],
                              "at": datetime.fromisoformat(data.pop("at"))}
    names = {f.name for f in fields(cls)}
    for name, value in data.items():
        if name in names:
            kwargs[name] = tuple(value) if name == "cleared" else value
    return cls(**kwargs)
