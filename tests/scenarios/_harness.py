"""What the ported reference scenarios share: a started bus that is stopped after each scenario,
and constructors shaped like the reference's entity classes (Order, Payment, Document, UserOnboarding).

Only the Order has Python of its own; the other entities are the generic Workflow run from YAML.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

from order_machine.bus import EventBus
from order_machine.events import MachineInitialised, StateChanged
from order_machine.machine import Machine
from order_machine.order import Order
from order_machine.workflow import Workflow


class ScenarioBus:
    """The reference's event bus: started before a scenario, stopped after it; remembers what it carried."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.seen: list[Any] = []
        self.bus.subscribe(self.seen.append)

    async def settle(self) -> None:
        """Wait until every event published so far has been handled."""
        await self.bus.join()

    def path(self, entity_id: str) -> list[str]:
        """The states an entity went through, as the bus saw them: initial state, then each target."""
        out: list[str] = []
        for e in self.seen:
            if isinstance(e, MachineInitialised) and e.entity_id == entity_id:
                out.append(e.state)
            elif isinstance(e, StateChanged) and e.entity_id == entity_id:
                out.append(e.target)
        return out


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
