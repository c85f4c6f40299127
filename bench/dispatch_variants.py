"""The dispatch bench's variants: our Order, per-order transitions / python-statemachine machines, the floor.

Each runs the graph of definitions/order.yaml and publishes its machine events to an EventBus.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from statemachine import State, StateMachine
from transitions import Machine as TransitionsMachine
from transitions.extensions.asyncio import AsyncMachine

from order_machine.bus import EventBus
from order_machine.events import MachineInitialised, StateChanged, utcnow
from order_machine.machine import Machine
from order_machine.order import Order, order_machine

AMOUNT = Decimal("99.50")
ADDRESS = "1 Harbour Road, Portsmouth"
ACTIONS = ("Confirm", "StartProcessing", "Ship", "Deliver")


class Variant:
    """One way to run the lifecycle. Subclasses implement create and the four actions."""

    name = ""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def create(self, i: int) -> Any: ...
    async def confirm(self, order: Any) -> None: ...
    async def start_processing(self, order: Any) -> None: ...
    async def ship(self, order: Any, i: int) -> None: ...
    async def deliver(self, order: Any) -> None: ...

    def state(self, order: Any) -> str:
        return str(order.state)


# --------------------------------------------------------------------------- ours


class Ours(Variant):
    name = "order-machine `Order` (machine compiled once)"

    def __init__(self, bus: EventBus) -> None:
        super().__init__(bus)
        self.machine: Machine = order_machine()

    async def create(self, i: int) -> Order:
        order = Order(self.machine, f"o-{i}", f"c-{i}", amount=AMOUNT, publisher=self.bus)
        await order.initialise()
        return order

    async def confirm(self, order: Order) -> None:
        assert await order.confirm()

    async def start_processing(self, order: Order) -> None:
        assert await order.start_processing()

    async def ship(self, order: Order, i: int) -> None:
        assert await order.ship(f"TRK-{i}", ADDRESS)

    async def deliver(self, order: Order) -> None:
        assert await order.deliver()
        order.take_pending_events()  # handed to the store, as the service does after saving


# --------------------------------------------------------------------------- the peers' model


class PeerOrder:
    """The order data a peer's model keeps (same fields ours keeps, no event history)."""

    def __init__(self, order_id: str, customer_id: str, amount: Decimal, bus: EventBus) -> None:
        self.id = order_id
        self.customer_id = customer_id
        self.amount = amount
        self.items: list[Any] = []
        self.tracking_number: str | None = None
        self.shipping_address: str | None = None
        self.created_at = self.updated_at = utcnow()
        self.bus = bus
        self.state: str = "Pending"
        self.last_change: StateChanged | None = None

    def has_value(self, event: Any = None) -> bool:
        return bool(self.items) or self.amount > 0


def _edges() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(source, action, target, guards) of definitions/order.yaml: every variant runs the same graph."""
    return [(s, t.action, t.target, tuple(t.guards)) for s, t in order_machine().definition.edges()]


def _transitions_table(with_record: bool = True) -> list[dict[str, Any]]:
    return [
        {"trigger": a, "source": s, "dest": d, "conditions": list(g),
         **({"before": "record_data"} if with_record and a == "Ship" else {})}
        for s, a, d, g in _edges()
    ]


class TransitionsModel(PeerOrder):
    def record_data(self, event: Any) -> None:
        for key, value in event.kwargs.items():
            setattr(self, key, value)
        self.updated_at = utcnow()

    def note_change(self, event: Any) -> None:
        # the sync Machine cannot await: the driver publishes what this callback noted
        self.state_changed(event)

    def state_changed(self, event: Any) -> None:
        self.last_change = StateChanged(self.id, "order", event.transition.source, event.transition.dest,
                                        event.event.name, utcnow(), event.kwargs)

    async def publish_change(self, event: Any) -> None:
        await self.bus.publish(StateChanged(self.id, "order", event.transition.source, event.transition.dest,
                                            event.event.name, utcnow(), event.kwargs))


class TransitionsPerOrder(Variant):
    """transitions.Machine built per order with its defaults (auto_transitions=True)."""

    name = "transitions `Machine` per order (defaults)"

    def __init__(self, bus: EventBus) -> None:
        super().__init__(bus)
        self.states = order_machine().states
        self.table = _transitions_table()

    async def create(self, i: int) -> TransitionsModel:
        order = TransitionsModel(f"o-{i}", f"c-{i}", AMOUNT, self.bus)
        TransitionsMachine(model=order, states=self.states, transitions=self.table, initial="Pending",
                           after_state_change="note_change", send_event=True)
        await self.bus.publish(MachineInitialised(order.id, "order", order.state, utcnow()))
        return order

    async def _fire(self, order: Any, action: str, **data: Any) -> None:
        assert order.trigger(action, **data)
        await self.bus.publish(order.last_change)

    async def confirm(self, order: Any) -> None:
        await self._fire(order, "Confirm")

    async def start_processing(self, order: Any) -> None:
        await self._fire(order, "StartProcessing")

    async def ship(self, order: Any, i: int) -> None:
        await self._fire(order, "Ship", tracking_number=f"TRK-{i}", shipping_address=ADDRESS)

    async def deliver(self, order: Any) -> None:
        await self._fire(order, "Deliver")


class AsyncTransitionsPerOrder(TransitionsPerOrder):
    """transitions AsyncMachine per order, auto_transitions=False, an async after_state_change callback."""

    name = "transitions `AsyncMachine` per order, `auto_transitions=False`"

    async def create(self, i: int) -> TransitionsModel:
        order = TransitionsModel(f"o-{i}", f"c-{i}", AMOUNT, self.bus)
        AsyncMachine(model=order, states=self.states, transitions=self.table, initial="Pending",
                     auto_transitions=False, after_state_change="publish_change", send_event=True)
        await self.bus.publish(MachineInitialised(order.id, "order", order.state, utcnow()))
        return order

    async def _fire(self, order: Any, action: str, **data: Any) -> None:
        assert await order.trigger(action, **data)


# --------------------------------------------------------------------------- python-statemachine


class OrderStateMachine(StateMachine):
    """definitions/order.yaml written as a python-statemachine class."""

    Pending = State(initial=True)
    Confirmed = State()
    Processing = State()
    Shipped = State()
    Delivered = State()
    Cancelled = State(final=True)
    Returned = State(final=True)

    Confirm = Pending.to(Confirmed, cond="has_value")
    Cancel = Pending.to(Cancelled) | Confirmed.to(Cancelled) | Processing.to(Cancelled)
    StartProcessing = Confirmed.to(Processing)
    Ship = Processing.to(Shipped)
    Deliver = Shipped.to(Delivered)
    Return = Delivered.to(Returned)

    def on_Ship(self, tracking_number: str, shipping_address: str) -> None:
        self.model.tracking_number = tracking_number
        self.model.shipping_address = shipping_address

    async def after_transition(self, event: Any, source: State, target: State, **data: Any) -> None:
        order = self.model
        order.updated_at = utcnow()
        kwargs = data["event_data"].trigger_data.kwargs
        await order.bus.publish(StateChanged(order.id, "order", source.id, target.id, event.id, order.updated_at, kwargs))


class StatemachinePerOrder(Variant):
    name = "python-statemachine `StateMachine` per order"

    async def create(self, i: int) -> Any:
        order = PeerOrder(f"o-{i}", f"c-{i}", AMOUNT, self.bus)
        order.sm = OrderStateMachine(order)  # type: ignore[attr-defined]
        await order.sm.activate_initial_state()  # type: ignore[attr-defined]
        await self.bus.publish(MachineInitialised(order.id, "order", order.state, utcnow()))
        return order

    async def confirm(self, order: Any) -> None:
        await order.sm.send("Confirm")

    async def start_processing(self, order: Any) -> None:
        await order.sm.send("StartProcessing")

    async def ship(self, order: Any, i: int) -> None:
        await order.sm.send("Ship", tracking_number=f"TRK-{i}", shipping_address=ADDRESS)

    async def deliver(self, order: Any) -> None:
        await order.sm.send("Deliver")


# --------------------------------------------------------------------------- the floor


class PlainTable(Variant):
    """A hand-written dict lookup: no definition, no checks beyond the guard. The floor."""

    name = "plain dict `{(state, action): target}` (the floor)"

    def __init__(self, bus: EventBus) -> None:
        super().__init__(bus)
        self.table = {(s, a): (d, g) for s, a, d, g in _edges()}

    async def create(self, i: int) -> PeerOrder:
        order = PeerOrder(f"o-{i}", f"c-{i}", AMOUNT, self.bus)
        await self.bus.publish(MachineInitialised(order.id, "order", order.state, utcnow()))
        return order

    async def _fire(self, order: PeerOrder, action: str, **data: Any) -> None:
        target, guards = self.table[(order.state, action)]
        if guards and not order.has_value():
            raise RuntimeError("refused")
        source, order.state = order.state, target
        for key, value in data.items():
            setattr(order, key, value)
        order.updated_at = utcnow()
        await self.bus.publish(StateChanged(order.id, "order", source, target, action, order.updated_at, data))

    async def confirm(self, order: Any) -> None:
        await self._fire(order, "Confirm")

    async def start_processing(self, order: Any) -> None:
        await self._fire(order, "StartProcessing")

    async def ship(self, order: Any, i: int) -> None:
        await self._fire(order, "Ship", tracking_number=f"TRK-{i}", shipping_address=ADDRESS)

    async def deliver(self, order: Any) -> None:
        await self._fire(order, "Deliver")


VARIANTS: tuple[type[Variant], ...] = (
    PlainTable, Ours, TransitionsPerOrder, AsyncTransitionsPerOrder, StatemachinePerOrder,
)
