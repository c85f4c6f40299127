"""A hypothesis state machine drives the command service and checks it against a plain reference model."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from order_machine.commands import AddOrderItem, CreateOrder, PerformAction
from order_machine.errors import InvalidCommandError, TransitionNotAllowedError
from order_machine.order import order_machine
from order_machine.service import OrderCommandService
from order_machine.store.memory import InMemoryEventStore

# the reference model: the transition table of the reference page, written out by hand
TABLE = {
    ("Pending", "Confirm"): "Confirmed", ("Pending", "Cancel"): "Cancelled",
    ("Confirmed", "StartProcessing"): "Processing", ("Confirmed", "Cancel"): "Cancelled",
    ("Processing", "Ship"): "Shipped", ("Processing", "Cancel"): "Cancelled",
    ("Shipped", "Deliver"): "Delivered", ("Delivered", "Return"): "Returned",
}
DATA = {"Ship": {"tracking_number": "T", "shipping_address": "A"}, "Cancel": {"reason": "r"}, "Return": {"reason": "r"}}
ORDERS = ["a", "b", "c"]

T = TypeVar("T")


@dataclass
class Expected:
    """What the reference model says of one order."""

    state: str = "Pending"
    amount: Decimal = Decimal(0)
    items: int = 0
    version: int = 1


class ServiceAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.service = OrderCommandService(InMemoryEventStore(), order_machine())
        self.model: dict[str, Expected] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @initialize()
    def create_orders(self) -> None:
        for order_id in ORDERS:
            self.run(self.service.handle(CreateOrder(order_id=order_id, customer_id="c")))
            self.model[order_id] = Expected()

    @rule(order_id=st.sampled_from(ORDERS), action=st.sampled_from(sorted({a for _, a in TABLE})))
    def act(self, order_id: str, action: str) -> None:
        m = self.model[order_id]
        target = TABLE.get((m.state, action))
        if action == "Confirm" and m.items == 0:
            target = None  # the has_value guard
        try:
            self.run(self.service.handle(PerformAction(order_id=order_id, action=action, data=DATA.get(action, {}))))
        except TransitionNotAllowedError:
            assert target is None
            return
        assert target is not None
        m.state, m.version = target, m.version + 1

    @rule(order_id=st.sampled_from(ORDERS), quantity=st.integers(1, 5),
          price=st.decimals(min_value=0, max_value=100, places=2))
    def add_item(self, order_id: str, quantity: int, price: Decimal) -> None:
        m = self.model[order_id]
        try:
            self.run(self.service.handle(AddOrderItem(order_id=order_id, product_id="p", quantity=quantity,
                                                      unit_price=price)))
        except InvalidCommandError:
            assert m.state != "Pending"
            return
        assert m.state == "Pending"
        m.amount += price * quantity
        m.items += 1
        m.version += 1

    @invariant()
    def aggregates_agree_with_the_model(self) -> None:
        for order_id, m in self.model.items():
            order = self.run(self.service.load(order_id))
            assert (order.state, order.amount, len(order.items), order.version) == (
                m.state, m.amount, m.items, m.version)

    def teardown(self) -> None:
        self.loop.close()


ServiceAgainstModel.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_service_agrees_with_the_reference_model = ServiceAgainstModel.TestCase
