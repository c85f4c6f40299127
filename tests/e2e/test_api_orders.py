"""The order routes through httpx with the app's lifespan running, on memory:// and SQLite."""

from __future__ import annotations

from datetime import datetime

import httpx

from http_support import ITEM, advance, app, client, create_order, db_url  # noqa: F401 (fixtures)


async def test_an_order_goes_from_creation_to_delivery_and_every_read_shows_each_step(client: httpx.AsyncClient) -> None:
    created = await create_order(client, "ord-1", description="Birthday gift")
    assert created.json() == {"order_id": "ord-1", "state": "Pending", "version": 1, "events": ["OrderCreated"]}
    assert created.headers["location"] == "/orders/ord-1"
    assert created.headers["etag"] == '"1"'
    expected = [("confirm", "Confirmed"), ("start-processing", "Processing"), ("ship", "Shipped"),
                ("deliver", "Delivered")]
    for version, (step, state) in enumerate(expected, start=2):
        answer = await advance(client, "ord-1", step)
        assert (answer.json()["state"], answer.json()["version"]) == (state, version)
        read = await client.get("/orders/ord-1")  # read-your-writes: no sleep, no retry
        assert (read.json()["status"], read.json()["version"]) == (state, version)
        assert read.headers["etag"] == f'"{version}"'
    order = (await client.get("/orders/ord-1")).json()
    assert order["amount"] == "39.98" and order["description"] == "Birthday gift"
    assert order["items"] == [{**ITEM, "total_price": "39.98"}]
    assert (order["tracking_number"], order["shipping_address"]) == ("1Z999", "1 Main St")
    assert order["created_at"].endswith("Z") and datetime.fromisoformat(order["updated_at"]).utcoffset() is not None


async def test_reads_follow_writes_for_many_orders_without_waiting(client: httpx.AsyncClient) -> None:
    for n in range(15):
        await create_order(client, f"rw-{n}")
        assert (await client.get(f"/orders/rw-{n}")).status_code == 200
        await client.post(f"/orders/rw-{n}/items", json={"product_id": "extra", "quantity": 1, "unit_price": "1.00"})
        assert len((await client.get(f"/orders/rw-{n}")).json()["items"]) == 2
        await client.post(f"/orders/rw-{n}/cancel", json={"reason": "test"})
        assert (await client.get(f"/orders/rw-{n}/summary")).json()["status"] == "Cancelled"


async def test_money_is_a_decimal_string_and_keeps_its_cents(client: httpx.AsyncClient) -> None:
    await create_order(client, "m-1", amount="0.10", items=[{"product_id": "a", "quantity": 3, "unit_price": "0.10"}])
    await client.post("/orders/m-1/items", json={"product_id": "b", "quantity": 1, "unit_price": "0.20"})
    order = (await client.get("/orders/m-1")).json()
    assert order["amount"] == "0.60"  # 0.10 + 3 x 0.10 + 0.20, exactly
    assert [i["total_price"] for i in order["items"]] == ["0.30", "0.20"]


async def test_cancel_and_return_record_their_reasons(client: httpx.AsyncClient) -> None:
    await create_order(client, "c-1")
    await client.post("/orders/c-1/cancel", json={"reason": "changed my mind"})
    assert (await client.get("/orders/c-1")).json()["cancellation_reason"] == "changed my mind"
    await create_order(client, "r-1")
    await advance(client, "r-1", "confirm", "start-processing", "ship", "deliver")
    returned = await client.post("/orders/r-1/return", json={"reason": "too small"})
    assert returned.json()["state"] == "Returned"
    order = (await client.get("/orders/r-1")).json()
    assert (order["status"], order["return_reason"]) == ("Returned", "too small")


async def test_the_status_route_moves_to_a_target_state_through_its_action(client: httpx.AsyncClient) -> None:
    await create_order(client, "s-1")
    assert (await client.post("/orders/s-1/status", json={"status": "Confirmed"})).json()["state"] == "Confirmed"
    refused = await client.post("/orders/s-1/status", json={"status": "Delivered"})
    assert refused.status_code == 409 and refused.json()["state"] == "Confirmed"
    await client.post("/orders/s-1/status", json={"status": "Processing"})
    shipped = await client.post("/orders/s-1/status", json={
        "status": "Shipped", "data": {"tracking_number": "T-9", "shipping_address": "2 Side St"}})
    assert shipped.json()["state"] == "Shipped"
    assert (await client.get("/orders/s-1")).json()["tracking_number"] == "T-9"


async def test_history_lists_every_event_with_the_states_it_moved_between(client: httpx.AsyncClient) -> None:
    await create_order(client, "h-1")
    await advance(client, "h-1", "confirm", "start-processing")
    history = (await client.get("/orders/h-1/history")).json()
    assert [(e["version"], e["type"], e["action"], e["from_state"], e["to_state"]) for e in history] == [
        (1, "OrderCreated", None, None, "Pending"),
        (2, "OrderConfirmed", "Confirm", "Pending", "Confirmed"),
        (3, "OrderProcessingStarted", "StartProcessing", "Confirmed", "Processing"),
    ]
    assert all(e["at"].endswith("Z") for e in history)


async def test_actions_lists_what_is_allowed_now_with_the_fields_each_takes(client: httpx.AsyncClient) -> None:
    await create_order(client, "a-1")
    await advance(client, "a-1", "confirm", "start-processing")
    body = (await client.get("/orders/a-1/actions")).json()
    assert (body["state"], body["version"]) == ("Processing", 3)
    actions = {a["action"]: a["fields"] for a in body["actions"]}
    assert set(actions) == {"Ship", "Cancel"}
    assert actions["Ship"]["tracking_number"] == {"type": "str", "required": True,
                                                   "description": "Carrier tracking number"}


async def test_orders_list_by_status_and_by_customer_in_pages(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await client.post("/orders", json={"order_id": f"p-{n}", "customer_id": "cust-a" if n < 3 else "cust-b",
                                           "items": [ITEM]})
    await advance(client, "p-0", "confirm")
    pending = (await client.get("/orders", params={"status": "Pending"})).json()
    assert {o["id"] for o in pending["items"]} == {"p-1", "p-2", "p-3", "p-4"}
    assert all(o["item_count"] == 1 and o["amount"] == "39.98" for o in pending["items"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/customers/cust-a/orders", params=params)).json()
        seen += [o["id"] for o in page["items"]]
        assert all("items" in o and o["customer_id"] == "cust-a" for o in page["items"])  # full read models
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["p-0", "p-1", "p-2"] and len(seen) == 3
    mine = (await client.get("/orders", params={"customer_id": "cust-b", "status": "Pending"})).json()
    assert {o["id"] for o in mine["items"]} == {"p-3", "p-4"}
    recent = (await client.get("/orders", params={"limit": 1})).json()
    assert len(recent["items"]) == 1 and recent["next_cursor"]


async def test_a_read_with_the_current_etag_answers_304(client: httpx.AsyncClient) -> None:
    await create_order(client, "e-1")
    assert (await client.get("/orders/e-1", headers={"If-None-Match": '"1"'})).status_code == 304
    await advance(client, "e-1", "confirm")
    assert (await client.get("/orders/e-1", headers={"If-None-Match": '"1"'})).status_code == 200


async def test_an_order_id_is_generated_when_none_is_given(client: httpx.AsyncClient) -> None:
    created = await client.post("/orders", json={"customer_id": "cust-9", "amount": "5.00"})
    order_id = created.json()["order_id"]
    assert created.status_code == 201 and len(order_id) >= 16
    assert (await client.get(created.headers["location"])).json()["customer_id"] == "cust-9"
