"""The application service answers the seed's query objects and records why each event was written."""

from __future__ import annotations

import pytest

from order_machine.bootstrap import bootstrap
from order_machine.commands import (
    ConfirmOrder, CreateOrder, GetOrder, GetOrdersByCustomer, GetOrdersByStatus, GetOrderSummary,
)
from order_machine.config import Settings
from order_machine.errors import OrderNotFoundError


async def test_the_seeds_queries_answer_from_the_read_models() -> None:
    async with await bootstrap(Settings(db_url="memory://")) as runtime:
        service = runtime.service
        for n, customer in enumerate(["c-1", "c-1", "c-2"]):
            await service.handle(CreateOrder(order_id=f"o-{n}", customer_id=customer,
                                             items=[{"product_id": "p", "quantity": 2, "unit_price": "1.50"}]))
        await service.handle(ConfirmOrder(order_id="o-1"))
        assert (await service.ask(GetOrder(order_id="o-1"))).status == "Confirmed"
        summary = await service.ask(GetOrderSummary(order_id="o-0"))
        assert (summary.item_count, str(summary.amount)) == (1, "3.00")
        assert [o.id for o in (await service.ask(GetOrdersByCustomer(customer_id="c-1"))).items] == ["o-0", "o-1"]
        assert [o.id for o in (await service.ask(GetOrdersByStatus(status="Pending"))).items] == ["o-0", "o-2"]
        with pytest.raises(OrderNotFoundError):
            await service.ask(GetOrder(order_id="nope"))


async def test_each_event_records_the_command_that_caused_it() -> None:
    async with await bootstrap(Settings(db_url="memory://")) as runtime:
        await runtime.service.handle(CreateOrder(order_id="o-1", customer_id="c", amount="5", command_id="req-1"))
        await runtime.service.handle(ConfirmOrder(order_id="o-1"))
        first, second = await runtime.store.load("o-1")
        assert first.metadata["command_id"] == "req-1" and first.metadata["causation_id"] == "req-1"
        assert first.metadata["correlation_id"] == "req-1"
        assert second.metadata["causation_id"] and second.metadata["causation_id"] != "req-1"
        assert second.metadata["command"] == "ConfirmOrder"
