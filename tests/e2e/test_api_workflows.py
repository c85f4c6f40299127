"""Any definition served as a durable workflow over HTTP: a YAML file written here (no Python at all) is
started, acted on, read, listed, drawn and survives a restart; the shipped payment definition too."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from order_machine.config import Settings

from http_support import DEFINITIONS, app, client, db_url, serving  # noqa: F401 (fixtures)

TICKET = """\
name: ticket
version: 1
description: A support ticket nobody wrote Python for.
initial: Open
data:
  title: {type: str, required: true}
  priority: {type: int}
states:
  - {name: Open}
  - {name: Assigned}
  - {name: Waiting}
  - {name: Resolved}
  - {name: Closed, terminal: true}
actions:
  - name: Assign
    fields:
      assignee: {type: str, required: true}
  - name: AskCustomer
    fields:
      question: {type: str, required: true, into: questions, append: true}
    increments: [asked]
  - {name: Answer}
  - name: Resolve
    fields:
      resolution: {type: str, required: true}
  - name: Reopen
    clears: [resolution]
  - {name: Close}
transitions:
  - {action: Assign, from: [Open, Assigned], to: Assigned}
  - {action: AskCustomer, from: Assigned, to: Waiting}
  - {action: Answer, from: Waiting, to: Assigned}
  - {action: Resolve, from: Assigned, to: Resolved, emits: TicketResolved}
  - {action: Reopen, from: Resolved, to: Assigned}
  - {action: Close, from: Resolved, to: Closed}
"""


@pytest.fixture
def ticket_definitions(tmp_path: Path) -> Path:
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "ticket.yaml").write_text(TICKET)
    return folder


async def test_a_yaml_only_definition_is_served_durably_and_survives_a_restart(
        ticket_definitions: Path, tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/tickets.db", definitions_dir=ticket_definitions,
                        durability="fast")
    async for c in serving(settings):
        started = await c.post("/workflows/ticket", json={"id": "T-1", "data": {"title": "Printer on fire",
                                                                                 "priority": "2"}})
        assert started.status_code == 201, started.text
        assert started.headers["location"] == "/workflows/ticket/T-1"
        assert started.headers["etag"] == '"1"'
        assert started.json() == {"id": "T-1", "definition": "ticket", "definition_version": 1, "state": "Open",
                                  "version": 1, "events": ["WorkflowStarted"]}
        for action, body in [("assign", {"assignee": "ana"}), ("ask-customer", {"question": "model?"}),
                             ("ANSWER", None), ("AskCustomer", {"question": "serial?"}), ("answer", None),
                             ("resolve", {"resolution": "paper jam"}), ("reopen", None)]:
            answer = await c.post(f"/workflows/ticket/T-1/actions/{action}", json=body)
            assert answer.status_code == 200, (action, answer.text)
        assert answer.json() == {"id": "T-1", "state": "Assigned", "version": 8, "events": ["WorkflowTransitioned"]}

    async for c in serving(settings):  # a new process on the same file: nothing lost
        shown = await c.get("/workflows/ticket/T-1")
        assert shown.status_code == 200 and shown.headers["etag"] == '"8"'
        body = shown.json()
        assert (body["state"], body["version"], body["definition_version"]) == ("Assigned", 8, 1)
        assert body["data"] == {"title": "Printer on fire", "priority": 2, "assignee": "ana",
                                "questions": ["model?", "serial?"], "asked": 2}  # resolution cleared by Reopen
        history = (await c.get("/workflows/ticket/T-1/history")).json()
        assert [(h["version"], h["action"], h["from"], h["to"]) for h in history] == [
            (1, None, None, "Open"), (2, "Assign", "Open", "Assigned"), (3, "AskCustomer", "Assigned", "Waiting"),
            (4, "Answer", "Waiting", "Assigned"), (5, "AskCustomer", "Assigned", "Waiting"),
            (6, "Answer", "Waiting", "Assigned"), (7, "Resolve", "Assigned", "Resolved"),
            (8, "Reopen", "Resolved", "Assigned")]
        assert history[6]["data"] == {"resolution": "paper jam"}
        actions = (await c.get("/workflows/ticket/T-1/actions")).json()
        assert [a["action"] for a in actions["actions"]] == ["Assign", "AskCustomer", "Resolve"]
        assert actions["actions"][0]["fields"]["assignee"]["required"] is True
        svg = await c.get("/workflows/ticket/T-1/diagram.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert b"current: Assigned" in svg.content.replace(b"&#160;", b" ")
        # and it goes on after the restart
        resolved = await c.post("/workflows/ticket/T-1/actions/resolve", json={"resolution": "new drum"})
        assert resolved.json()["state"] == "Resolved"


async def test_instances_are_listed_by_state_page_by_page(ticket_definitions: Path, tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/t.db", definitions_dir=ticket_definitions, durability="fast")
    async for c in serving(settings):
        for n in range(5):
            assert (await c.post("/workflows/ticket", json={"id": f"T-{n}", "data": {"title": "t"}})).status_code == 201
        for n in (1, 3, 4):
            await c.post(f"/workflows/ticket/T-{n}/actions/assign", json={"assignee": "bo"})
        first = (await c.get("/workflows/ticket", params={"state": "Assigned", "limit": 2})).json()
        assert [i["id"] for i in first["items"]] == ["T-1", "T-3"] and first["next_cursor"]
        rest = (await c.get("/workflows/ticket", params={"state": "Assigned", "limit": 2,
                                                          "cursor": first["next_cursor"]})).json()
        assert ([i["id"] for i in rest["items"]], rest["next_cursor"]) == (["T-4"], None)
        everything = (await c.get("/workflows/ticket")).json()
        assert [i["id"] for i in everything["items"]] == [f"T-{n}" for n in range(5)]
        unknown = await c.get("/workflows/ticket", params={"state": "Nowhere"})
        assert (unknown.status_code, unknown.json()["field"]) == (422, "state")


async def test_refusals_conflicts_and_bad_input_answer_like_orders(client: httpx.AsyncClient) -> None:
    data = {"amount": "100.50", "currency": "USD", "method": "CreditCard"}
    started = await client.post("/workflows/payment", json={"id": "pay-1", "data": data},
                                headers={"Idempotency-Key": "k-1"})
    assert started.status_code == 201
    again = await client.post("/workflows/payment", json={"id": "pay-1", "data": data},
                              headers={"Idempotency-Key": "k-1"})
    assert (again.status_code, again.headers.get("idempotent-replayed"), again.json()) == (201, "true", started.json())
    taken = await client.post("/workflows/payment", json={"id": "pay-1", "data": data})
    assert (taken.status_code, taken.json()["error"]) == (409, "workflow_exists")

    refused = await client.post("/workflows/payment/pay-1/actions/refund")
    assert refused.status_code == 409
    assert {k: refused.json()[k] for k in ("id", "state", "action", "allowed_actions", "guard")} == {
        "id": "pay-1", "state": "Pending", "action": "Refund", "allowed_actions": ["Process", "Cancel"], "guard": None}

    missing = await client.post("/workflows/payment", json={"data": {"amount": "1", "currency": "USD"}})
    assert (missing.status_code, missing.json()["field"]) == (422, "method")
    bad = await client.post("/workflows/payment", json={"data": {**data, "amount": "lots"}})
    assert (bad.status_code, bad.json()["field"]) == (422, "amount")
    await client.post("/workflows/payment/pay-1/actions/process")
    no_field = await client.post("/workflows/payment/pay-1/actions/complete", json={})
    assert (no_field.status_code, no_field.json()["field"]) == (422, "transaction_id")
    stale = await client.post("/workflows/payment/pay-1/actions/complete", json={"transaction_id": "t"},
                              headers={"If-Match": '"1"'})
    assert (stale.status_code, stale.json()["actual_version"]) == (412, 2)
    done = await client.post("/workflows/payment/pay-1/actions/complete", json={"transaction_id": "t"},
                             headers={"If-Match": '"2"'})
    assert done.json()["state"] == "Completed"

    for path in ("/workflows/nope/x", "/workflows/payment/nope", "/workflows/order/ord-1"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.get("/workflows/nope/x")).json()["error"] == "definition_not_found"
    assert (await client.get("/workflows/payment/nope")).json()["error"] == "workflow_not_found"


async def test_a_definition_that_needs_unregistered_python_is_not_served_and_says_why(
        ticket_definitions: Path, tmp_path: Path) -> None:
    shutil.copy(DEFINITIONS / "simple.yaml", ticket_definitions / "simple.yaml")
    settings = Settings(db_url="memory://", definitions_dir=ticket_definitions)
    async for c in serving(settings):
        answer = await c.post("/workflows/simple", json={})
        assert answer.status_code == 404
        assert "hook 'on_step' is declared but not registered" in answer.json()["message"]
        assert (await c.post("/workflows/ticket", json={"data": {"title": "x"}})).status_code == 201


async def test_an_order_action_is_reachable_by_name(client: httpx.AsyncClient) -> None:
    created = await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c",
                                                  "items": [{"product_id": "p", "quantity": 1, "unit_price": "2"}]})
    assert created.status_code == 201
    confirmed = await client.post("/orders/ord-1/actions/confirm")
    assert confirmed.json() == {"order_id": "ord-1", "state": "Confirmed", "version": 2, "events": ["OrderConfirmed"]}
    started = await client.post("/orders/ord-1/actions/start_processing", headers={"If-Match": '"2"'})
    assert started.json()["state"] == "Processing"
    shipped = await client.post("/orders/ord-1/actions/Ship", json={"tracking_number": "1Z", "shipping_address": "x"})
    assert shipped.json()["state"] == "Shipped"
    refused = await client.post("/orders/ord-1/actions/cancel", json={"reason": "late"})
    assert (refused.status_code, refused.json()["order_id"]) == (409, "ord-1")


async def test_a_read_with_if_none_match_of_the_current_version_is_304_without_a_body(
        client: httpx.AsyncClient) -> None:
    data = {"amount": "100.50", "currency": "USD", "method": "CreditCard"}
    await client.post("/workflows/payment", json={"id": "pay-1", "data": data})
    current = await client.get("/workflows/payment/pay-1", headers={"If-None-Match": '"1"'})
    assert (current.status_code, current.headers["etag"], current.content) == (304, '"1"', b"")
    for header in ('W/"1"', '"7", "1"', "*"):
        assert (await client.get("/workflows/payment/pay-1", headers={"If-None-Match": header})).status_code == 304
    await client.post("/workflows/payment/pay-1/actions/process")
    moved = await client.get("/workflows/payment/pay-1", headers={"If-None-Match": '"1"'})
    assert (moved.status_code, moved.headers["etag"], moved.json()["state"]) == (200, '"2"', "Processing")
    gone = await client.get("/workflows/payment/nope", headers={"If-None-Match": "*"})
    assert gone.status_code == 404
