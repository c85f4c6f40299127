"""A SQLite service started on a new file takes commands at once, with its projections following."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from order_machine.bootstrap import bootstrap
from order_machine.commands import CreateOrder
from order_machine.config import Settings


@pytest.mark.parametrize("attempt", range(4))
async def test_a_new_database_takes_a_burst_of_commands_right_after_start(tmp_path: Path, attempt: int) -> None:
    # the store, the read models and the projection runner all open the new file at the same moment
    runtime = await bootstrap(Settings(db_url=f"sqlite:///{tmp_path}/orders.db"))
    await runtime.start()
    try:
        results = await asyncio.gather(*(
            runtime.service.handle(CreateOrder(order_id=f"o-{i}", customer_id="c", amount="1")) for i in range(60)
        ))
        assert len({r.position for r in results}) == 60
        assert (await runtime.service.get_order("o-59")).status == "Pending"
        assert runtime.runner.failed == {}
    finally:
        await runtime.stop()
