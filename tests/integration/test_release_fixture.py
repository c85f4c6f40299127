"""A database written by order-machine 0.1.0 (one event class per order transition, read-model schema 3) opens
with today's code: its orders load and take commands, and its read models, rebuilt from the old events through
the upcasters, answer what 0.1.0 answered (tests/fixtures/release_0_1_0: how it was made and what it held)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from order_machine import Settings, bootstrap
from order_machine.commands import ConfirmOrder, ShipOrder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_0_1_0"
DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    copy = tmp_path / "orders.db"
    shutil.copy(FIXTURE / "orders.db", copy)
    return copy


def _as_0_1_0(order: dict[str, Any]) -> dict[str, Any]:
    """An order as 0.1.0 answered it: what the read model added since (`data`) set aside."""
    return {k: v for k, v in order.items() if k != "data"}


async def _answers(rt: Any, ids: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for oid in ids:
        found[oid] = {
            "order": _as_0_1_0((await rt.service.get_order(oid)).model_dump(mode="json")),
            "summary": (await rt.service.get_order_summary(oid)).model_dump(mode="json"),
            "history": [h.model_dump(mode="json") for h in await rt.service.get_order_history(oid)],
        }
    found["by_status"] = {s: [o.id for o in (await rt.service.get_orders_by_status(s)).items]
                          for s in rt.machine.states}
    return found


async def test_a_0_1_0_database_rebuilds_to_the_read_models_it_answered(old_db: Path) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())
    ids = sorted(k for k in expected if k != "by_status")
    settings = Settings(db_url=f"sqlite:///{old_db}", definitions_dir=DEFINITIONS)
    async with await bootstrap(settings) as rt:  # read-model schema 3 -> 4: rebuilt from the events on open
        assert await _answers(rt, ids) == expected
        report = await rt.runner.rebuild()  # and again, on purpose
        assert report is not None
        assert await _answers(rt, ids) == expected
        shipped = await rt.service.get_order("ord-3-shipped")
        assert shipped.data == {"tracking_number": "1Z3", "shipping_address": "3 Main St"}
        returned = await rt.service.get_order("ord-6-returned")
        assert returned.data["return_reason"] == "too small"
        assert (await rt.workflows.get("payment", "pay-1")).state == "Processing"


async def test_a_0_1_0_order_takes_commands_and_replays_with_its_old_events(old_db: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{old_db}", definitions_dir=DEFINITIONS)
    async with await bootstrap(settings) as rt:
        await rt.service.handle(ShipOrder(order_id="ord-2-processing", tracking_number="1Z-new",
                                          shipping_address="2 New St"))
        order = await rt.commands.load("ord-2-processing")
        assert (order.state, order.version, order.tracking_number) == ("Shipped", 5, "1Z-new")
        assert (await rt.commands.load("ord-6-returned")).return_reason == "too small"
        await rt.service.handle(ConfirmOrder(order_id="ord-0-pending"))
        assert (await rt.service.get_order("ord-0-pending")).status == "Confirmed"
        stored = await rt.store.load("ord-2-processing")
    assert [(e.type, e.schema_version) for e in stored][-2:] == [("OrderProcessingStarted", 1), ("OrderShipped", 2)]
