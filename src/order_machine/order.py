"""The Order aggregate: event-sourced, driven by the compiled machine of definitions/order.yaml.

State, data and version come from replaying its events. Domain code: never imports a store, bus or
framework; the application service loads, fires and saves it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import DefinitionError, InvalidCommandError, Problem
from .events import (
    LEGACY_TRANSITIONS, WORKFLOW_EVENT_TYPES, OrderCreated, OrderEvent, OrderItem, OrderItemAdded, OrderTransitioned,
    build_transition, transition_class, utcnow,
)
from .definition import FieldSpec
from .instance import json_data, recorded_specs, typed_data
from .machine import Machine, Publisher, check_fields
from .workflow import StatefulEntity, transition_effects


class OrderState(StrEnum):
    """The states of the shipped definitions/order.yaml (a test keeps them in step); an order.yaml of one's
    own may declare more, and an order's `state` is then any of its states."""

    Pending = "Pending"
    Confirmed = "Confirmed"
    Processing = "Processing"
    Shipped = "Shipped"
    Delivered = "Delivered"
    Cancelled = "Cancelled"
    Returned = "Returned"


class OrderAction(StrEnum):
    """The actions of the shipped definitions/order.yaml (a test keeps them in step)."""

    Confirm = "Confirm"
    StartProcessing = "StartProcessing"
    Ship = "Ship"
    Deliver = "Deliver"
    Cancel = "Cancel"
    Return = "Return"


def default_definitions_dir() -> Path:
    """The definitions folder to use when none is given; the one rule every command and Settings follow.

    $ORDER_MACHINE_DEFINITIONS when set, else ./definitions when it holds a *.yaml file, else the definitions
    shipped in the package (order_machine/definitions: in a checkout a symlink to the top-level
    definitions/, in a wheel a copy of them), so an installed package starts from any folder.
    """
    configured = os.environ.get("ORDER_MACHINE_DEFINITIONS")
    if configured:
        return Path(configured)
    here = Path.cwd() / "definitions"
    if here.is_dir() and any(f.suffix in (".yaml", ".yml") for f in here.iterdir()):
        return here
    # installed as plain files (pip never installs zipped), so the resource is a real folder
    return packaged_definitions_dir()


def packaged_definitions_dir() -> Path:
    """The definitions shipped inside the package (order, payment, document, onboarding, simple)."""
    return Path(str(resources.files("order_machine") / "definitions"))


@lru_cache(maxsize=8)
def order_machine(path: str | Path | None = None) -> Machine:
    """The order machine, compiled once per process and definition file (its guards are in the YAML)."""
    file = Path(path) if path is not None else default_definitions_dir() / "order.yaml"
    if path is None and not file.exists():  # a folder of one's own workflows only: orders run on the packaged one
        file = packaged_definitions_dir() / "order.yaml"
    machine = Machine.from_file(file)
    check_event_names(machine)
    return machine


#: names an order's transition may not be stored under: the order's other events and the workflows'
_RESERVED_NAMES = frozenset({OrderCreated.__name__, OrderItemAdded.__name__, *WORKFLOW_EVENT_TYPES})


def check_event_names(machine: Machine) -> None:
    """Refuse an order definition whose `emits:` names would be read back as another event.

    Any other name is fine: a transition is stored under it as an OrderTransitioned (see events.orders).
    """
    problems = []
    for source, t in machine.definition.edges():
        named = LEGACY_TRANSITIONS.get(t.emits or "")
        if t.emits in _RESERVED_NAMES:
            problems.append(Problem(f"transition {t.action} from {source} emits {t.emits!r}, the name of another "
                                    "kind of event", f"<definition {machine.name}>", hint="choose another name"))
        elif named is not None and named[0] != t.action:
            problems.append(Problem(
                f"transition {t.action} from {source} emits {t.emits!r}, which names the {named[0]} "
                "action's event", f"<definition {machine.name}>", hint="choose another name"))
    if problems:
        raise DefinitionError(problems, f"<definition {machine.name}>")


#: the data every order has, kept in fields of their own; order.yaml may declare more, kept in `Order.data`
CORE_DATA = frozenset({"customer_id", "description", "amount", "items"})


@lru_cache(maxsize=32)
def _extra_fields(machine: Machine) -> dict[str, FieldSpec]:
    """The data fields order.yaml declares beyond CORE_DATA (once per machine)."""
    return {n: f for n, f in machine.definition.data.items() if n not in CORE_DATA}


@lru_cache(maxsize=32)
def _recorded_names(machine: Machine) -> tuple[str, ...]:
    return tuple(recorded_specs(machine)[0])


def _items(items: Iterable[OrderItem | str | Mapping[str, Any]]) -> tuple[OrderItem, ...]:
    out = []
    for item in items:
        if isinstance(item, OrderItem):
            out.append(item)
        elif isinstance(item, str):  # the reference's orders list product names with a total
            out.append(OrderItem(item))
        else:
            out.append(OrderItem(str(item["product_id"]), int(item.get("quantity", 1)),
                                 Decimal(str(item.get("unit_price", "0")))))
    for i in out:
        _check_item(i.product_id, i.quantity, i.unit_price)
    return tuple(out)


def _check_item(product_id: str, quantity: int, unit_price: Decimal) -> None:
    if not product_id:
        raise InvalidCommandError("an item needs a product_id", "product_id")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidCommandError(f"quantity must be a whole number above 0, got {quantity!r}", "quantity")
    if not isinstance(unit_price, Decimal) or not unit_price.is_finite() or unit_price < 0:
        raise InvalidCommandError(f"unit_price must be a Decimal of 0 or more, got {unit_price!r}", "unit_price")


class Order(StatefulEntity):
    """An order. Business methods answer True/False like the reference; `fire()` raises with reasons."""

    def __init__(
        self,
        machine: Machine,
        order_id: str,
        customer_id: str = "",
        items: Sequence[OrderItem | str | Mapping[str, Any]] = (),
        amount: Decimal | None = None,
        description: str = "",
        *,
        publisher: Publisher | None = None,
    ) -> None:
        super().__init__(machine, order_id, publisher)
        self.customer_id = customer_id
        self.description = description
        self.initial_amount = amount
        self.items: list[OrderItem] = list(_items(items))
        self.version = 0
        self.pending_events: list[OrderEvent] = []
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None
        # what the order's actions recorded, by the names order.yaml gives them (tracking_number, ...)
        self.data: dict[str, Any] = {}

    # ----------------------------------------------------------------- building

    @classmethod
    def create(cls, machine: Machine, order_id: str, customer_id: str,
               items: Sequence[OrderItem | str | Mapping[str, Any]] = (), amount: Decimal | None = None,
               description: str = "", *, data: Mapping[str, Any] | None = None) -> Order:
        """A new order with its OrderCreated event pending (no bus notification); `data` fills the data
        fields order.yaml declares beyond customer_id, description, amount and items."""
        order = cls(machine, order_id, customer_id, items, amount, description)
        order._start(data or {})
        return order

    @classmethod
    def replay(cls, machine: Machine, events: Iterable[OrderEvent]) -> Order:
        """Rebuild an order from its history."""
        events = iter(events)
        first = next(events, None)
        if not isinstance(first, OrderCreated):
            raise ValueError("an order's history starts with OrderCreated")
        order = cls(machine, first.order_id)
        order._apply(first)
        order.version = 1
        for event in events:
            order._apply(event)
            order.version += 1
        return order

    async def initialise(self) -> None:
        """Start the order's machine in Pending (records OrderCreated); the reference's InitializeAsync."""
        if self.initialised:
            return
        self._start()
        await self._notify_initialised(self.created_at)

    def _start(self, data: Mapping[str, Any] | None = None) -> None:
        if not self.customer_id:
            raise InvalidCommandError("an order needs a customer_id", "customer_id")
        if self.initial_amount is not None:
            amount = self.initial_amount
            if isinstance(amount, float) or not isinstance(amount, (Decimal, int)):
                raise InvalidCommandError(f"amount must be a Decimal, got {amount!r}", "amount")
            if not Decimal(amount).is_finite() or amount < 0:
                raise InvalidCommandError(f"amount must be 0 or more, got {amount!r}", "amount")
            self.initial_amount = Decimal(amount)
        declared = _extra_fields(self.machine)
        extra: dict[str, Any] = {}
        if declared or data or self.machine.counters or self.machine.lists:  # the shipped order.yaml: none
            what = f"order {self.id}"
            extra = check_fields(declared, data or {}, what) if declared or data else {}
            for name in self.machine.counters:
                extra.setdefault(name, 0)
            for name in self.machine.lists:
                extra.setdefault(name, [])
            extra = json_data(extra, what)
        self._record(OrderCreated(self.id, utcnow(), self.customer_id, self.description,
                                  self.initial_amount, tuple(self.items), extra))

    # ----------------------------------------------------------------- reading

    @property
    def amount(self) -> Decimal:
        """The initial amount plus every item's quantity x unit price."""
        total = self.initial_amount or Decimal("0")
        for item in self.items:
            total += item.unit_price * item.quantity
        return total

    total_amount = amount

    @property
    def tracking_number(self) -> str | None:
        return self.data.get("tracking_number")

    @property
    def shipping_address(self) -> str | None:
        return self.data.get("shipping_address")

    @property
    def cancellation_reason(self) -> str | None:
        return self.data.get("cancellation_reason")

    @property
    def return_reason(self) -> str | None:
        return self.data.get("return_reason")

    def guard_context(self) -> dict[str, Any]:
        """What a guard's `when:` condition reads (docs/guards.md): every name the order records (None until
        recorded), its customer, description, items and state, and `amount`, the total."""
        context: dict[str, Any] = dict.fromkeys(_recorded_names(self.machine))
        context.update(self.data)
        context.update({
            "customer_id": self.customer_id, "description": self.description, "amount": self.amount,
            "items": [{"product_id": i.product_id, "quantity": i.quantity, "unit_price": i.unit_price}
                      for i in self.items],
            "state": self.state,
        })
        return context

    @property
    def status(self) -> str:
        """The order's state (one of order.yaml's states; `OrderState` names the shipped ones)."""
        return self.state

    # ----------------------------------------------------------------- commands

    def add_item(self, product_id: str, quantity: int, unit_price: Decimal) -> OrderItemAdded:
        """Add an item while the order is Pending."""
        self._require_initialised()
        if self.state != OrderState.Pending:
            raise InvalidCommandError(f"order {self.id}: items can only be added while Pending, not {self.state}", "state")
        _check_item(product_id, quantity, unit_price)
        event = OrderItemAdded(self.id, utcnow(), product_id, quantity, unit_price)
        self._record(event)
        return event

    async def fire(self, action: str, **data: Any) -> OrderTransitioned:
        """Take an action; raises TransitionNotAllowedError (with reasons) when refused."""
        transition, checked = await self._choose(action, data)
        recorded, cleared = transition_effects(self.machine.action_spec(transition.action), checked, self.data)
        at = utcnow()
        what = f"order {self.id}: {transition.action}" if checked or recorded else ""  # only errors read it
        event = build_transition(transition_class(transition.emits or ""), self.id, at, transition.action,
                                 transition.source, transition.target, json_data(checked, what),
                                 json_data(recorded, what), cleared, transition.emits or "")
        self._record(event, recorded)
        await self._finish(transition, checked, at=at)
        return event

    async def confirm(self) -> bool:
        return await self.try_fire(OrderAction.Confirm)

    async def start_processing(self) -> bool:
        return await self.try_fire(OrderAction.StartProcessing)

    async def ship(self, tracking_number: str, shipping_address: str) -> bool:
        return await self.try_fire(OrderAction.Ship, tracking_number=tracking_number,
                                   shipping_address=shipping_address)

    async def deliver(self) -> bool:
        return await self.try_fire(OrderAction.Deliver)

    async def cancel(self, reason: str) -> bool:
        return await self.try_fire(OrderAction.Cancel, reason=reason)

    async def return_order(self, reason: str) -> bool:
        return await self.try_fire(OrderAction.Return, reason=reason)

    # ----------------------------------------------------------------- events

    def _record(self, event: OrderEvent, recorded: Mapping[str, Any] | None = None) -> None:
        self._apply(event, recorded)
        self.version += 1
        self.pending_events.append(event)

    def _apply(self, event: OrderEvent, recorded: Mapping[str, Any] | None = None) -> None:
        """Apply one event; `recorded` is its values already in their types (an event just taken, not replayed)."""
        self.updated_at = event.at
        if isinstance(event, OrderTransitioned):
            self.state = event.target
            if event.recorded:
                self.data.update(recorded if recorded is not None else typed_data(self.machine, event.recorded))
            for name in event.cleared:
                self.data.pop(name, None)
        elif isinstance(event, OrderItemAdded):
            self.items.append(OrderItem(event.product_id, event.quantity, event.unit_price))
        elif isinstance(event, OrderCreated):
            self.customer_id, self.description = event.customer_id, event.description
            self.initial_amount, self.items = event.amount, list(event.items)
            self.data = typed_data(self.machine, event.data)
            self.created_at = event.at
            self.state = self.machine.initial
            self.initialised = True

    def take_pending_events(self) -> list[OrderEvent]:
        events, self.pending_events = self.pending_events, []
        return events


__all__ = ["Order", "OrderAction", "OrderState", "order_machine"]
