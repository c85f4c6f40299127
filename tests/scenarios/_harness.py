"""What the ported reference scenarios share: a started bus that is stopped after each scenario, and
`entities`: constructors shaped like the reference's entity classes (Order, Payment, Document,
UserOnboarding), whose objects a scenario drives the same way whichever engine is behind them.

`InMemoryEntities` gives the in-memory objects (the Order aggregate, the generic Workflow run from YAML);
`_durable.DurableEntities` gives stand-ins with the same methods that send every action through the durable
engine (memory or SQLite store) and read the result back from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from order_machine.bus import EventBus
from order_machine.errors import NotInitialisedError
from order_machine.machine import Machine
from order_machine.order import Order
from order_machine.workflow import Workflow


def _entity_of(event: Any) -> str | None:
    return getattr(event, "entity_id", None) or getattr(event, "workflow_id", None) or getattr(event, "order_id", None)


class ScenarioBus:
    """The reference's event bus: started before a scenario, stopped after it; remembers what it carried.

    It understands the in-memory machines' notices (MachineInitialised, StateChanged) and the durable
    engine's events (an instance's or order's first event, then one per transition with its `target`).
    """

    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = bus or EventBus()
        self.seen: list[Any] = []
        self.bus.subscribe(self.seen.append)
        self.initial: dict[str, str] = {}  # entity id -> the initial state of its machine

    async def settle(self) -> None:
        """Wait until every event published so far has been handled."""
        await self.bus.join()

    def of(self, entity_id: str) -> list[Any]:
        return [e for e in self.seen if _entity_of(e) == entity_id]

    def path(self, entity_id: str) -> list[str]:
        """The states an entity went through, as the bus saw them: initial state, then each target."""
        out: list[str] = []
        for n, event in enumerate(self.of(entity_id)):
            state = getattr(event, "target", None) or getattr(event, "state", None)
            if state is None and n == 0:  # a creation event that does not name the state: the initial one
                state = self.initial.get(entity_id)
            if state is not None:
                out.append(state)
        return out

    def actions(self, entity_id: str) -> list[str]:
        """The actions of the transitions the bus carried for an entity, in order."""
        return [e.action for e in self.of(entity_id) if getattr(e, "target", None) is not None]


@asynccontextmanager
async def running_bus() -> AsyncIterator[ScenarioBus]:
    scenario = ScenarioBus()
    await scenario.bus.start()
    try:
        yield scenario
    finally:
        await scenario.bus.stop()
        assert not scenario.bus.running
        assert scenario.bus.metrics().failed == 0


class Entities(Protocol):
    """What a scenario asks of the engine it runs on."""

    mode: str
    scenario: ScenarioBus
    not_initialised: tuple[type[Exception], ...]  # what acting on an entity never initialised raises

    def machine(self, definition: str) -> Machine: ...

    def order(self, order_id: str, customer_id: str, items: list[str], total: str) -> Any: ...

    def payment(self, payment_id: str, amount: str, currency: str, method: str) -> Any: ...

    def document(self, document_id: str, title: str, content: str, author: str) -> Any: ...

    def onboarding(self, user_id: str, email: str) -> Any: ...

    def workflow(self, definition: str, entity_id: str, *, bus: bool = True, **data: Any) -> Any: ...


class InMemoryEntities:
    """The in-memory objects, publishing on the scenario's own bus."""

    mode = "workflow"
    not_initialised: tuple[type[Exception], ...] = (NotInitialisedError,)

    def __init__(self, machines: Mapping[str, Machine], scenario: ScenarioBus) -> None:
        self.machines, self.scenario = machines, scenario

    def machine(self, definition: str) -> Machine:
        return self.machines[definition]

    def order(self, order_id: str, customer_id: str, items: list[str], total: str) -> Order:
        return new_order(self.machines["order"], order_id, customer_id, items, total, self.scenario.bus)

    def payment(self, payment_id: str, amount: str, currency: str, method: str) -> Workflow:
        return new_payment(self.machines["payment"], payment_id, amount, currency, method, self.scenario.bus)

    def document(self, document_id: str, title: str, content: str, author: str) -> Workflow:
        return new_document(self.machines["document"], document_id, title, content, author, self.scenario.bus)

    def onboarding(self, user_id: str, email: str) -> Workflow:
        return new_onboarding(self.machines["onboarding"], user_id, email, self.scenario.bus)

    def workflow(self, definition: str, entity_id: str, *, bus: bool = True, **data: Any) -> Workflow:
        return Workflow(self.machines[definition], entity_id, self.scenario.bus if bus else None, **data)


def new_order(machine: Machine, order_id: str, customer_id: str, items: list[str], total: str,
              bus: EventBus | None = None) -> Order:
    """The reference's `new Order(id, customer, items, total, eventBus)`."""
    return Order(machine, order_id, customer_id, items=items, amount=Decimal(total), publisher=bus)


def new_payment(machine: Machine, payment_id: str, amount: str, currency: str, method: str,
                bus: EventBus | None = None) -> Workflow:
    """The reference's `new Payment(id, amount, currency, method, eventBus)`."""
    return Workflow(machine, payment_id, bus, amount=Decimal(amount), currency=currency, method=method)


def new_document(machine: Machine, document_id: str, title: str, content: str, author: str,
                 bus: EventBus | None = None) -> Workflow:
    """The reference's `new Document(id, title, content, author, eventBus)`."""
    return Workflow(machine, document_id, bus, title=title, content=content, author=author)


def new_onboarding(machine: Machine, user_id: str, email: str, bus: EventBus | None = None) -> Workflow:
    """The reference's `new UserOnboarding(userId, email, eventBus)`."""
    return Workflow(machine, user_id, bus, email=email)


def is_utc(moment: Any) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)
