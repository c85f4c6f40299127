"""The application service answers its query objects (GetOrder, GetOrdersByCustomer, ...) and records why each event was written."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import eventually_async

from order_machine.bootstrap import bootstrap
from order_machine.commands import (
    ConfirmOrder, CreateOrder, GetOrder, GetOrdersByCustomer, GetOrdersByStatus, GetOrderSummary,
)
from order_machine.config import Settings
from order_machine.errors import OrderNotFoundError


async def test_the_query_objects_are_answered_from_the_read_models() -> None:
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


async def test_a_command_does_not_wait_for_the_projections_but_the_next_read_does(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/o.db", run_projections=False)  # nobody projects
    async with await bootstrap(settings) as runtime:
        await runtime.service.handle(CreateOrder(order_id="o-1", customer_id="c-1", amount="5"))
        await runtime.service.handle(ConfirmOrder(order_id="o-1"))
        assert await runtime.read_models.get_order("o-1") is None  # the command returned before any projection
        order = await runtime.service.get_order("o-1")  # the read brings the read models up to the order
        assert (order.status, order.version) == ("Confirmed", 2)
        await runtime.service.handle(CreateOrder(order_id="o-2", customer_id="c-1"))
        page = await runtime.service.get_orders_by_customer("c-1")  # a list shows this process's writes
        assert [o.id for o in page.items] == ["o-1", "o-2"]


async def test_a_read_shows_an_order_written_by_another_process_on_the_same_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    async with await bootstrap(Settings(db_url=url, run_projections=False)) as writer, \
            await bootstrap(Settings(db_url=url, projection_poll_seconds=60)) as reader:
        await reader.service.list_orders()  # the reader's runner is started and idle (no bus news from the writer)
        await writer.service.handle(CreateOrder(order_id="o-1", customer_id="c-1", amount="5"))
        await writer.service.handle(ConfirmOrder(order_id="o-1"))
        assert (await reader.service.get_order("o-1")).status == "Confirmed"  # the store's head, not a poll
        assert [e.version for e in await reader.service.get_order_history("o-1")] == [1, 2]
        assert (await reader.service.get_order_summary("o-1")).status == "Confirmed"


async def test_on_sqlite_the_projections_are_woken_by_the_stores_commits_not_the_bus(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/o.db", projection_poll_seconds=60, projection_linger_seconds=0)
    async with await bootstrap(settings) as runtime:
        assert runtime.bus.metrics().published == 0 and runtime.bus.metrics().listeners == 0  # nobody listens
        await runtime.service.list_orders()  # the runner has caught up and sleeps (for up to 60 s)
        await runtime.service.handle(CreateOrder(order_id="o-1", customer_id="c-1", amount="5"))
        # no read waits for it here: only a wake-up from the commit brings it (well before a 60 s poll)
        await eventually_async(lambda: runtime.read_models.get_order("o-1"), within=5, what="o-1 projected")
