"""Dispatch benchmark (issue 2): an order's lifecycle on our compiled machine beside per-order peers.

Lifecycle = create + Confirm, StartProcessing, Ship(tracking, address), Deliver; every variant
publishes its machine events (initialised + 4 state changes) to an EventBus with no subscriber.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from decimal import Decimal
from typing import Any

from statemachine import State, StateMachine
from transitions import Machine as TransitionsMachine
from transitions.extensions.asyncio import AsyncMachine

from order_machine.bus import EventBus
from order_machine.events import MachineInitialised, StateChanged, utcnow
from order_machine.machine import Machine
from order_machine.order import Order, order_machine

from ._report import Goal, Size, Table, goals_table, median, pick, ratio, us

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


# --------------------------------------------------------------------------- measuring


async def _lifecycles(variant: Variant, first: int, n: int, keep: list[Any] | None = None) -> list[float]:
    """Run n lifecycles; seconds spent in [create, Confirm, StartProcessing, Ship, Deliver]."""
    clock = time.perf_counter
    sums = [0.0] * 5
    for i in range(first, first + n):
        t0 = clock()
        order = await variant.create(i)
        t1 = clock()
        await variant.confirm(order)
        t2 = clock()
        await variant.start_processing(order)
        t3 = clock()
        await variant.ship(order, i)
        t4 = clock()
        await variant.deliver(order)
        t5 = clock()
        sums[0] += t1 - t0
        sums[1] += t2 - t1
        sums[2] += t3 - t2
        sums[3] += t4 - t3
        sums[4] += t5 - t4
        if keep is not None:
            keep.append(order)
        elif i == first and variant.state(order) != "Delivered":
            raise AssertionError(f"{variant.name}: ended in {variant.state(order)}, not Delivered")
    return sums


async def _bytes_per_order(variant: Variant, n: int) -> float:
    live: list[Any] = []
    await _lifecycles(variant, 0, 2)  # warm caches and lazy imports outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await _lifecycles(variant, 10_000_000, n, keep=live)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    bad = [variant.state(o) for o in live if variant.state(o) != "Delivered"]
    if bad:
        raise AssertionError(f"{variant.name}: {len(bad)} orders did not reach Delivered")
    return (after - before) / n


async def measure(sizes: tuple[int, int, int, int, int]) -> dict[type[Variant], dict[str, Any]]:
    """Every variant's phases (median over rounds) and bytes per live order.

    Rounds are interleaved (each round runs every variant once) so that noise from a shared
    machine falls on all variants alike, and the ratios stay put.
    """
    fast_n, rounds, fast_live, slow_n, slow_live = sizes
    variants = {cls: cls(EventBus()) for cls in VARIANTS}
    batch = {cls: fast_n if cls in (PlainTable, Ours) else slow_n for cls in VARIANTS}
    per_round: dict[type[Variant], list[list[float]]] = {cls: [] for cls in VARIANTS}
    for cls, variant in variants.items():
        await _lifecycles(variant, 0, min(batch[cls], 200))  # warm-up
    for r in range(rounds):
        for cls, variant in variants.items():
            gc.collect()
            sums = await _lifecycles(variant, (r + 1) * batch[cls], batch[cls])
            per_round[cls].append([s / batch[cls] for s in sums])
    results = {}
    for cls, variant in variants.items():
        expected = 5 * (min(batch[cls], 200) + rounds * batch[cls])
        published = variant.bus.metrics().published
        if published != expected:
            raise AssertionError(f"{variant.name}: published {published} machine events, expected {expected}")
        phases = [median(run[k] for run in per_round[cls]) for k in range(5)]
        memory = await _bytes_per_order(variant, fast_live if batch[cls] == fast_n else slow_live)
        results[cls] = {"name": variant.name, "create": phases[0], "actions": phases[1:],
                        "dispatch": sum(phases[1:]) / 4, "lifecycle": sum(phases), "bytes": memory}
    return results


def _sizes(size: Size) -> tuple[int, int, int, int, int]:
    # (orders per round, rounds, live orders measured) for ours/floor, and (orders, live) for the peers
    return pick(size, (3_000, 7, 10_000, 300, 1_000), (500, 2, 1_500, 50, 150), (30, 1, 30, 5, 5))


async def run_async(size: Size = "full") -> list[Table]:
    fast_n, rounds, fast_live, slow_n, slow_live = _sizes(size)
    results = await measure(_sizes(size))
    ours, peer = results[Ours], results[AsyncTransitionsPerOrder]

    table = Table(
        "Dispatch: create + Confirm, StartProcessing, Ship, Deliver (publishing to an EventBus with no subscriber)",
        ["variant", "create µs", *(f"{a} µs" for a in ACTIONS), "dispatch µs (mean)", "lifecycle µs",
         "bytes / live order", "lifecycle vs ours"],
    )
    for cls in VARIANTS:
        r = results[cls]
        table.add(r["name"], us(r["create"]), *(us(a) for a in r["actions"]), us(r["dispatch"]),
                  us(r["lifecycle"]), f"{r['bytes']:,.0f}",
                  "1.0x" if cls is Ours else _relative(r["lifecycle"], ours["lifecycle"]))
    table.notes += [
        f"medians of {rounds} interleaved rounds; ours and the floor run {fast_n:,} orders a round, the per-order peers "
        f"{slow_n:,}; bytes measured with tracemalloc over {fast_live:,} (ours, floor) / {slow_live:,} "
        "(peers) live orders that went through the lifecycle, divided",
        "every variant runs the graph of definitions/order.yaml, checks the has_value guard on Confirm, "
        "records Ship's data and publishes 1 MachineInitialised + 4 StateChanged per order",
        "ours also records 5 typed domain events per order (OrderCreated ... OrderDelivered) and checks "
        "each action's data against the definition; the peers keep no event history",
        "'lifecycle vs ours' > 1x means the variant is that many times slower than ours",
    ]
    goals = goals_table("Dispatch goals (issue 2)", [
        Goal("lifecycle", "< 25 µs", f"{us(ours['lifecycle'])} µs", ours["lifecycle"] < 25e-6),
        Goal("lifecycle vs transitions `AsyncMachine` per order", ">= 10x faster",
             ratio(ours["lifecycle"], peer["lifecycle"], higher_is_better=False),
             peer["lifecycle"] >= 10 * ours["lifecycle"]),
        Goal("dispatch (per action)", "< 10 µs", f"{us(ours['dispatch'])} µs", ours["dispatch"] < 10e-6),
        Goal("memory", "< 2 KB per live order", f"{ours['bytes']:,.0f} B", ours["bytes"] < 2048),
    ])
    return [table, goals]


def _relative(theirs: float, ours: float) -> str:
    return f"{theirs / ours:.2f}x" if theirs < ours * 10 else f"{theirs / ours:,.0f}x"


def run(size: Size = "full") -> list[Table]:
    return asyncio.run(run_async(size))

