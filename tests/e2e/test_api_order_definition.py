"""order.yaml drives orders: a state, an action and a field added to a copy of it, with no Python written, are
served over HTTP, recorded in the order's read model, listed by status, drawn, and survive a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from order_machine.config import Settings

from http_support import DEFINITIONS, ITEM, serving

HOLD = """\
  - name: OnHold
    description: Held for a check before it goes on
"""
HOLD_ACTIONS = """\
  - name: Hold
    description: Stop the order for a check
    fields:
      reason: {type: str, required: true, into: hold_reason, description: Why it is held}
      until: {type: datetime, description: When the hold ends at the latest}
  - name: Release
    description: Let a held order go on
    clears: [hold_reason, until]
"""
HOLD_TRANSITIONS = """\
  - {action: Hold, from: [Confirmed, Processing], to: OnHold, emits: OrderHeld}
  - {action: Release, from: OnHold, to: Confirmed}
  - {action: Cancel, from: OnHold, to: Cancelled, emits: OrderCancelled}
"""


@pytest.fixture
def held_definitions(tmp_path: Path) -> Path:
    """A copy of the shipped order.yaml with OnHold, Hold (two fields) and Release written into it."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    text = (DEFINITIONS / "order.yaml").read_text()
    text = text.replace("actions:\n", HOLD + "actions:\n", 1).replace("guards:\n", HOLD_ACTIONS + "guards:\n", 1)
    text = text.replace("states:\n", "  channel: {type: str, required: true, description: Where it was placed}\n"
                                      "  rush: {type: bool, description: Ship first}\nstates:\n", 1)
    (folder / "order.yaml").write_text(text + HOLD_TRANSITIONS)
    shutil.copy(DEFINITIONS / "schema.json", folder / "schema.json")
    return folder


async def test_a_state_and_actions_added_to_order_yaml_are_served_recorded_listed_and_drawn(
        held_definitions: Path, tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/orders.db", definitions_dir=held_definitions,
                        durability="fast")
    async for c in serving(settings):
        for oid in ("ord-1", "ord-2"):
            created = await c.post("/orders", json={"order_id": oid, "customer_id": "cust-7", "items": [ITEM],
                                                    "data": {"channel": "web", "rush": oid == "ord-1"}})
            assert created.status_code == 201, created.text
        for bad, field in [({}, "channel"), ({"channel": "web", "rush": "maybe"}, "rush"),
                           ({"channel": "web", "colour": "red"}, "colour"), ({"channel": "w\u0000b"}, "data.channel")]:
            refused = await c.post("/orders", json={"customer_id": "cust-7", "data": bad})
            assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
        for oid in ("ord-1", "ord-2"):
            assert (await c.post(f"/orders/{oid}/confirm")).status_code == 200
        actions = (await c.get("/orders/ord-1/actions")).json()["actions"]
        hold = next(a for a in actions if a["action"] == "Hold")
        assert hold["fields"]["reason"]["required"] is True and hold["fields"]["until"]["type"] == "datetime"

        held = await c.post("/orders/ord-1/actions/hold", json={"reason": "fraud check",
                                                                "until": "2026-12-24T12:00:00Z"})
        assert held.status_code == 200, held.text
        assert held.json()["state"] == "OnHold" and held.json()["events"] == ["OrderHeld"]
        refused = await c.post("/orders/ord-1/ship", json={"tracking_number": "1Z", "shipping_address": "1 Main"})
        assert refused.status_code == 409 and refused.json()["state"] == "OnHold"
        assert sorted(refused.json()["allowed_actions"]) == ["Cancel", "Release"]
        missing = await c.post("/orders/ord-2/actions/Hold", json={})
        assert missing.status_code == 422 and missing.json()["field"] == "reason"

        order = (await c.get("/orders/ord-1")).json()
        assert order["status"] == "OnHold" and order["version"] == 3
        assert order["data"] == {"channel": "web", "rush": True, "hold_reason": "fraud check",
                                 "until": "2026-12-24T12:00:00+00:00"}
        listed = (await c.get("/orders", params={"status": "OnHold"})).json()
        assert [o["id"] for o in listed["items"]] == ["ord-1"]
        history = (await c.get("/orders/ord-1/history")).json()
        assert (history[-1]["type"], history[-1]["action"], history[-1]["from_state"], history[-1]["to_state"]) == (
            "OrderHeld", "Hold", "Confirmed", "OnHold")
        assert history[-1]["data"] == {"reason": "fraud check", "until": "2026-12-24T12:00:00+00:00"}
        svg = await c.get("/orders/ord-1/diagram.svg")
        assert svg.status_code == 200 and b"OnHold" in svg.content
        assert b"current: OnHold" in svg.content.replace(b"&#160;", b" ")

    async for c in serving(settings):  # another process on the same file
        released = await c.post("/orders/ord-1/actions/release")
        assert released.status_code == 200 and released.json()["state"] == "Confirmed", released.text
        order = (await c.get("/orders/ord-1")).json()
        assert (order["status"], order["data"]) == ("Confirmed", {"channel": "web", "rush": True})  # Release cleared
        assert [o["id"] for o in (await c.get("/orders", params={"status": "OnHold"})).json()["items"]] == []
        assert (await c.post("/orders/ord-1/actions/start-processing")).json()["state"] == "Processing"
        shipped = await c.post("/orders/ord-1/ship", json={"tracking_number": "1Z9", "shipping_address": "1 Main"})
        assert shipped.json()["events"] == ["OrderShipped"]
        order = (await c.get("/orders/ord-1")).json()
        assert order["tracking_number"] == "1Z9"
        assert order["data"] == {"channel": "web", "rush": True, "tracking_number": "1Z9", "shipping_address": "1 Main"}


async def test_an_order_yaml_whose_emits_names_another_events_name_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "definitions"
    folder.mkdir()
    text = (DEFINITIONS / "order.yaml").read_text().replace("emits: OrderDelivered", "emits: OrderCreated")
    (folder / "order.yaml").write_text(text)
    from order_machine.errors import DefinitionError
    from order_machine.order import order_machine
    with pytest.raises(DefinitionError, match="emits 'OrderCreated', the name of another kind of event"):
        order_machine(folder / "order.yaml")


def test_the_command_line_takes_and_shows_an_action_added_to_order_yaml(
        held_definitions: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_support import CLI
    monkeypatch.chdir(tmp_path)
    cli = CLI(capsys, tmp_path)
    where = ("--definitions", str(held_definitions))
    created = cli("orders", "create", "--id", "ord-1", "--customer", "c-7", "--item", "sku-1:1:5",
                  "--field", "channel=phone", "--field", "rush=yes", *where)
    assert created.code == 0, created
    assert cli("orders", "do", "ord-1", "confirm", *where).code == 0
    held = cli("orders", "do", "ord-1", "hold", "--field", "reason=address check", *where)
    assert (held.code, held.out) == (0, "order ord-1: Hold -> OnHold (version 3)\n"), held
    shown = cli("orders", "show", "ord-1", *where)
    lines = shown.out.splitlines()
    assert lines[2].split() == ["status", "OnHold"] and ["hold_reason", "address", "check"] in [
        line.split() for line in lines]
    assert "actions allowed now: Cancel --field reason=..., Release" in shown.out
    assert ["channel", "phone"] in [line.split() for line in lines] and ["rush", "True"] in [
        line.split() for line in lines]
    listed = cli("orders", "list", "--status", "OnHold", "--json", *where)
    assert [o["id"] for o in listed.json()["items"]] == ["ord-1"]
