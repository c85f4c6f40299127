"""The order's domain events: OrderCreated, OrderItemAdded, and OrderTransitioned for every declared action.

An order's transition events are data, like a workflow's: `OrderTransitioned` records the action, from,
to, the action's checked fields and the values it left in the order's data, so a state, an action or a
field added to order.yaml needs no new class. It is stored under the transition's `emits` name
(`OrderShipped`), or `OrderTransitioned` when the definition names none. The six names of the shipped
order.yaml keep a subclass each (so `isinstance(event, OrderShipped)` and bus subscriptions by class
work) and a schema-1 form, the one-class-per-transition shape of order-machine 0.1.0, upcast on read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from .envelope import JSON_SCALARS, NewEvent, StoredEvent, to_json


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

    @property
    def type_name(self) -> str:
        """The name the event is stored and published under."""
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class OrderCreated(OrderEvent):
    schema_version: ClassVar[int] = 2
    customer_id: str
    description: str = ""
    amount: Decimal | None = None
    items: tuple[OrderItem, ...] = ()
    #: values for the data fields order.yaml declares beyond the four above (JSON form); stored only when given
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderItemAdded(OrderEvent):
    product_id: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class OrderTransitioned(OrderEvent):
    """An action took a transition of order.yaml: `data` is the action's checked fields, `recorded` the
    values it left in the order's data and `cleared` the names it removed (all JSON form); `emits` the
    name it is stored under (the transition's `emits:`, else this class's name)."""

    schema_version: ClassVar[int] = 2
    action: str
    source: str
    target: str
    data: Mapping[str, Any] = field(default_factory=dict)
    recorded: Mapping[str, Any] = field(default_factory=dict)
    cleared: tuple[str, ...] = ()
    emits: str = ""

    @property
    def type_name(self) -> str:
        return self.emits or type(self).__name__


#: the transition events of order-machine 0.1.0: name -> (action, stored field -> name recorded in the data)
LEGACY_TRANSITIONS: dict[str, tuple[str, dict[str, str]]] = {
    "OrderConfirmed": ("Confirm", {}),
    "OrderProcessingStarted": ("StartProcessing", {}),
    "OrderShipped": ("Ship", {"tracking_number": "tracking_number", "shipping_address": "shipping_address"}),
    "OrderDelivered": ("Deliver", {}),
    "OrderCancelled": ("Cancel", {"reason": "cancellation_reason"}),
    "OrderReturned": ("Return", {"reason": "return_reason"}),
}


def build_transition(cls: type[OrderTransitioned], order_id: str, at: datetime, action: str, source: str,
                     target: str, data: Mapping[str, Any], recorded: Mapping[str, Any],
                     cleared: tuple[str, ...] = (), emits: str = "") -> OrderTransitioned:
    """An OrderTransitioned (or one of its named subclasses) from its parts, whatever the class's own __init__."""
    event = object.__new__(cls)
    OrderTransitioned.__init__(event, order_id, at, action, source, target, data, recorded, cleared,
                               emits or cls.__name__)
    return event


class _Named(OrderTransitioned):
    """A transition event of the shipped order.yaml; built as in 0.1.0: `(order_id, at, source, target, *fields)`."""

    __slots__ = ()

    def __init__(self, order_id: str, at: datetime, source: str, target: str, *values: Any, **named: Any) -> None:
        action, into = LEGACY_TRANSITIONS[type(self).__name__]
        data = {**dict(zip(into, values)), **named}
        OrderTransitioned.__init__(self, order_id, at, action, source, target, data,
                                   {into.get(k, k): v for k, v in data.items()}, (), type(self).__name__)


class OrderConfirmed(_Named):
    __slots__ = ()


class OrderProcessingStarted(_Named):
    __slots__ = ()


class OrderShipped(_Named):
    __slots__ = ()

    @property
    def tracking_number(self) -> str:
        return str(self.data.get("tracking_number", ""))

    @property
    def shipping_address(self) -> str:
        return str(self.data.get("shipping_address", ""))


class OrderDelivered(_Named):
    __slots__ = ()


class _WithReason(_Named):
    __slots__ = ()

    @property
    def reason(self) -> str:
        return str(self.data.get("reason", ""))


class OrderCancelled(_WithReason):
    __slots__ = ()


class OrderReturned(_WithReason):
    __slots__ = ()


#: the order event classes by stored name; any other name on an order's stream is an OrderTransitioned
EVENT_TYPES: dict[str, type[OrderEvent]] = {
    cls.__name__: cls
    for cls in (
        OrderCreated, OrderItemAdded, OrderTransitioned, OrderConfirmed, OrderProcessingStarted,
        OrderShipped, OrderDelivered, OrderCancelled, OrderReturned,
    )
}
#: the named transition classes (an `emits:` of one of these names must be that class's action)
TRANSITION_EVENTS: dict[str, type[OrderTransitioned]] = {
    name: cls for name, cls in EVENT_TYPES.items() if issubclass(cls, _Named)
}


def transition_class(name: str) -> type[OrderTransitioned]:
    """The class an event stored under `name` is read as (OrderShipped, else OrderTransitioned)."""
    return TRANSITION_EVENTS.get(name, OrderTransitioned)


def is_transition(type_name: str) -> bool:
    """True for the stored name of an order's transition event (every name but OrderCreated and OrderItemAdded)."""
    return type_name not in _NOT_TRANSITIONS


_NOT_TRANSITIONS = frozenset({"OrderCreated", "OrderItemAdded"})


# --------------------------------------------------------------------------- encoding and upcasting


def _to_json(value: Any) -> Any:
    if type(value) in JSON_SCALARS:  # most fields: nothing to convert
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [v.to_json() if isinstance(v, OrderItem) else _to_json(v) for v in value]
    if isinstance(value, Mapping):
        return to_json(value)
    return value


_DATA_FIELDS: dict[type[OrderEvent], tuple[str, ...]] = {}


def _data_fields(cls: type[OrderEvent]) -> tuple[str, ...]:
    """The fields an event stores in its data (all but order_id), computed once per class."""
    names = _DATA_FIELDS.get(cls)
    if names is None:
        names = _DATA_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name != "order_id")
    return names


def encode(event: OrderEvent, metadata: Mapping[str, Any] | None = None) -> NewEvent:
    """The stored form of a domain event: its name, schema version and JSON data."""
    if isinstance(event, OrderTransitioned):
        data: dict[str, Any] = {"at": event.at.isoformat(), "action": event.action, "source": event.source,
                                "target": event.target, "data": to_json(event.data),
                                "recorded": to_json(event.recorded)}
        if event.cleared:
            data["cleared"] = list(event.cleared)
        return NewEvent(event.type_name, data, OrderTransitioned.schema_version, dict(metadata or {}), event.at)
    data = {name: _to_json(getattr(event, name)) for name in _data_fields(type(event))}
    if isinstance(event, OrderCreated) and not event.data:
        del data["data"]  # an order with nothing beyond the usual four is stored as 0.1.0 stored it
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


def _named_transition_v1_to_v2(name: str) -> Upcaster:
    """v1 (order-machine 0.1.0): one class per transition, its fields beside from and to; v2: the
    generic transition, the action named, its fields in `data` and what it recorded in `recorded`."""
    action, into = LEGACY_TRANSITIONS[name]

    def upcast_v1(data: dict[str, Any]) -> dict[str, Any]:
        fields_ = {k: v for k, v in data.items() if k not in ("at", "source", "target")}
        return {"at": data["at"], "action": action, "source": data["source"], "target": data["target"],
                "data": fields_, "recorded": {into.get(k, k): v for k, v in fields_.items()}}

    return upcast_v1


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("OrderCreated", 1): _order_created_v1_to_v2,
    **{(name, 1): _named_transition_v1_to_v2(name) for name in LEGACY_TRANSITIONS},
}


def current_schema_version(type_name: str) -> int:
    """The schema version this code writes for an order event stored under `type_name`."""
    return EVENT_TYPES.get(type_name, OrderTransitioned).schema_version


def upcast(type_name: str, schema_version: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """Bring an order event's stored data up to the current schema version of its name, one step at a time."""
    current, version, latest = dict(data), schema_version, current_schema_version(type_name)
    while version < latest:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise ValueError(f"no upcaster for {type_name} v{version}")
        current, version = step(current), version + 1
    if version > latest:
        raise ValueError(f"{type_name} v{version} is newer than this code knows (v{latest})")
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
    if "/" in stored.stream_id:
        raise ValueError(f"{stored.type!r} at position {stored.position} is not an order's event")
    latest = current_schema_version(stored.type)
    data = stored.data if stored.schema_version == latest else upcast(stored.type, stored.schema_version, stored.data)
    if is_transition(stored.type):
        return build_transition(
            transition_class(stored.type), stored.stream_id, datetime.fromisoformat(data["at"]), str(data["action"]),
            str(data["source"]), str(data["target"]), data.get("data") or {}, data.get("recorded") or {},
            tuple(data.get("cleared") or ()), stored.type)
    cls = EVENT_TYPES[stored.type]
    fields_ = _DECODERS.get(cls)
    if fields_ is None:
        fields_ = _DECODERS[cls] = tuple((name, _CONVERTERS.get(name)) for name in _data_fields(cls))
    kwargs: dict[str, Any] = {"order_id": stored.stream_id}
    for name, convert in fields_:
        if name in data:
            kwargs[name] = data[name] if convert is None else convert(data[name])
    return cls(**kwargs)
