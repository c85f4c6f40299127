"""Error answers: 404, 409 with the refusal's reasons, 412 on If-Match, 422 naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from http_support import ITEM, advance, app, client, create_order, db_url  # noqa: F401 (fixtures)


async def test_an_unknown_order_is_404_on_every_route(client: httpx.AsyncClient) -> None:
    for method, path, body in [("GET", "/orders/nope", None), ("GET", "/orders/nope/summary", None),
                               ("GET", "/orders/nope/history", None), ("GET", "/orders/nope/actions", None),
                               ("GET", "/orders/nope/diagram.svg", None), ("POST", "/orders/nope/confirm", None),
                               ("POST", "/orders/nope/cancel", {"reason": "x"}),
                               ("POST", "/orders/nope/items", ITEM), ("POST", "/orders/nope/status", {"status": "Confirmed"})]:
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {"error": "order_not_found", "order_id": "nope",
                                   "message": "order 'nope' does not exist"}


async def test_a_refused_action_is_409_naming_state_action_allowed_actions_and_guard(client: httpx.AsyncClient) -> None:
    await create_order(client, "o-1")
    refused = await client.post("/orders/o-1/ship", json={"tracking_number": "T", "shipping_address": "A"})
    assert refused.status_code == 409
    body = refused.json()
    assert {k: body[k] for k in ("error", "order_id", "state", "action", "allowed_actions", "guard")} == {
        "error": "transition_not_allowed", "order_id": "o-1", "state": "Pending", "action": "Ship",
        "allowed_actions": ["Confirm", "Cancel"], "guard": None}
    assert "Pending" in body["reason"] and "Ship" in body["message"]
    assert (await client.get("/orders/o-1")).json()["version"] == 1


async def test_a_guard_refusal_names_the_guard_its_description_and_its_condition(client: httpx.AsyncClient) -> None:
    await client.post("/orders", json={"order_id": "empty", "customer_id": "c"})
    refused = await client.post("/orders/empty/confirm")
    assert refused.status_code == 409
    assert (refused.json()["guard"], refused.json()["state"]) == ("has_value", "Pending")
    assert refused.json()["reason"] == ("guard 'has_value' refused: The order has at least one item or a positive "
                                        "amount (amount > 0 || size(items) > 0)")
    assert refused.json()["reason"] in refused.json()["message"]


HAS_VALUE = {"guard": "has_value", "description": "The order has at least one item or a positive amount"}


async def test_an_action_a_guard_refuses_is_listed_as_blocked_with_the_guards_reason(client: httpx.AsyncClient) -> None:
    await client.post("/orders", json={"order_id": "empty", "customer_id": "c"})
    refused = await client.post("/orders/empty/confirm")
    body = refused.json()
    assert body["allowed_actions"] == ["Confirm", "Cancel"]  # declared from Pending
    assert body["blocked_actions"] == [{"action": "Confirm", **HAS_VALUE}]
    assert body["message"] == ("empty: cannot 'Confirm' while 'Pending': guard 'has_value' refused: The order has "
                               "at least one item or a positive amount (amount > 0 || size(items) > 0); allowed now: "
                               "Cancel; blocked by a guard: Confirm (has_value: The order has at least one item "
                               "or a positive amount)")
    actions = (await client.get("/orders/empty/actions")).json()["actions"]
    assert [(a["action"], a["blocked_by"]) for a in actions] == [("Confirm", HAS_VALUE), ("Cancel", None)]
    await client.post("/orders/empty/items", json={"product_id": "p", "quantity": 1, "unit_price": "2.50"})
    actions = (await client.get("/orders/empty/actions")).json()["actions"]
    assert [(a["action"], a["blocked_by"]) for a in actions] == [("Confirm", None), ("Cancel", None)]
    shipped = (await client.post("/orders/empty/ship", json={"tracking_number": "T", "shipping_address": "A"})).json()
    assert shipped["blocked_actions"] == [] and shipped["message"].endswith("allowed now: Confirm, Cancel")


async def test_if_match_with_a_stale_version_is_412_and_changes_nothing(client: httpx.AsyncClient) -> None:
    await create_order(client, "v-1")
    await advance(client, "v-1", "confirm")
    stale = await client.post("/orders/v-1/start-processing", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json() | {"message": ""} == {"error": "version_conflict", "order_id": "v-1", "expected_version": 1,
                                              "actual_version": 2, "message": ""}
    assert (await client.get("/orders/v-1")).json()["version"] == 2
    fresh = await client.post("/orders/v-1/start-processing", headers={"If-Match": '"2"'})
    assert fresh.status_code == 200 and fresh.json()["version"] == 3
    status = await client.post("/orders/v-1/status", json={"status": "Cancelled", "data": {"reason": "x"}},
                               headers={"If-Match": '"2"'})
    assert status.status_code == 412 and status.json()["actual_version"] == 3


async def test_a_duplicate_create_is_409(client: httpx.AsyncClient) -> None:
    await create_order(client, "dup")
    again = await client.post("/orders", json={"order_id": "dup", "customer_id": "someone-else"})
    assert again.status_code == 409 and again.json()["error"] == "order_exists"
    assert (await client.get("/orders/dup")).json()["customer_id"] == "cust-7"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "customer_id"),
    ({"customer_id": "has space"}, "customer_id"),
    ({"customer_id": "c", "amount": "-1"}, "amount"),
    ({"customer_id": "c", "amount": "ten"}, "amount"),
    ({"customer_id": "c", "amount": "NaN"}, "amount"),
    ({"customer_id": "c", "amount": "1.00001"}, "amount"),
    ({"customer_id": "c", "items": [{"product_id": "p", "quantity": 0, "unit_price": "1"}]}, "items[0].quantity"),
    ({"customer_id": "c", "items": [{"product_id": "p", "quantity": "2", "unit_price": "1"}]}, "items[0].quantity"),
    ({"customer_id": "c", "items": [{"product_id": "p", "quantity": 1}]}, "items[0].unit_price"),
    ({"customer_id": "c", "colour": "red"}, "colour"),
    ([1, 2], "body"),
])
async def test_invalid_create_data_is_422_naming_the_field(client: httpx.AsyncClient, body: object, field: str) -> None:
    response = await client.post("/orders", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid"
    assert response.json()["field"] == field
    assert field in response.json()["message"]


async def test_invalid_action_data_query_and_headers_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    await create_order(client, "i-1")
    await advance(client, "i-1", "confirm", "start-processing")
    cases = [
        (client.post("/orders/i-1/ship", json={"tracking_number": "T"}), "shipping_address"),
        (client.post("/orders/i-1/ship", json={"tracking_number": " ", "shipping_address": "A"}), "tracking_number"),
        (client.post("/orders/i-1/cancel", json={}), "reason"),
        (client.post("/orders/i-1/status", json={"status": "Nowhere"}), "status"),
        (client.post("/orders/i-1/status", json={"status": "Shipped", "data": {"tracking_number": "T"}}),
         "shipping_address"),
        (client.post("/orders/i-1/deliver", headers={"If-Match": "yesterday"}), "If-Match"),
        (client.post("/orders/i-1/deliver", headers={"If-Match": '"' + "9" * 200 + '"'}), "If-Match"),
        (client.post("/orders/i-1/deliver", headers={"Idempotency-Key": "k" * 201}), "Idempotency-Key"),
        (client.post("/orders", json={"customer_id": "c"}, headers={"Idempotency-Key": "k" * 201}),
         "Idempotency-Key"),
        (client.get("/orders", params={"limit": 0}), "limit"),
        (client.get("/orders", params={"limit": "many"}), "limit"),
        (client.get("/orders", params={"status": "Lost"}), "status"),
        (client.get("/orders", params={"cursor": "not-a-cursor"}), "cursor"),
        (client.post("/orders/i-1/items", json={"product_id": "p", "quantity": 1, "unit_price": "1"}), None),
    ]
    for request, field in cases:
        response = await request
        if field is None:  # items after Pending: the service's own rule, named by its message
            assert response.status_code == 422 and "Pending" in response.json()["message"]
            continue
        assert response.status_code == 422, (field, response.text)
        assert response.json()["field"] == field, response.text
    assert (await client.get("/orders/i-1")).json()["version"] == 3


async def test_malformed_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", content=b'{"customer_id": ', headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "body"


async def test_hostile_inputs_never_cause_a_500(client: httpx.AsyncClient) -> None:
    await create_order(client, "h-1")
    long = "x" * 5000
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/orders/{long}", {}), ("POST", f"/orders/{long}/confirm", {}),
        ("POST", "/orders", {"json": {"customer_id": long}}),
        ("POST", "/orders", {"json": {"customer_id": "c", "amount": 1e308}}),
        ("POST", "/orders", {"json": {"customer_id": "c", "amount": "1e999999"}}),
        ("POST", "/orders", {"json": {"customer_id": "c", "items": [ITEM] * 2000}}),
        ("POST", "/orders/h-1/status", {"json": {"status": "Shipped", "data": {"tracking_number": ["a"]}}}),
        ("POST", "/orders/h-1/status", {"json": {"status": "Confirmed", "data": {"unexpected": 1}}}),
        ("POST", "/orders/h-1/confirm", {"headers": {"If-Match": "99999999999999999999999"}}),
        ("POST", "/orders/h-1/confirm", {"headers": {"Idempotency-Key": long}}),
        ("GET", "/orders", {"params": {"cursor": long}}), ("GET", "/orders", {"params": {"customer_id": "\x00"}}),
        ("GET", "/definitions/../../etc/passwd", {}), ("GET", "/definitions/order/diagram.exe", {}),
        ("GET", "/orders/h-1/diagram.mmd", {}), ("DELETE", "/orders/h-1", {}), ("GET", "/no-such-route", {}),
    ]
    for method, path, options in requests:
        response = await client.request(method, path, **options)
        assert response.status_code < 500, (path[:80], response.text)
        if response.status_code >= 400:
            assert set(response.json()) >= {"error", "message"}, response.text
    assert (await client.get("/orders/h-1")).json()["version"] == 1


async def test_unknown_routes_and_methods_answer_in_the_same_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await client.delete("/orders")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


async def test_if_match_on_add_item_pins_the_version(client: httpx.AsyncClient) -> None:
    await create_order(client, "v-2")
    item = {"product_id": "sku-1", "quantity": 1, "unit_price": "2.50"}
    stale = await client.post("/orders/v-2/items", json=item, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["actual_version"] == 1
    fresh = await client.post("/orders/v-2/items", json=item, headers={"If-Match": '"1"'})
    assert fresh.status_code == 200 and fresh.json()["version"] == 2


async def test_a_method_a_path_does_not_take_is_405_naming_every_method_it_takes(client: httpx.AsyncClient) -> None:
    # the command routes are tried first: Starlette alone answered `Allow: POST` for /orders
    for method, path, allow in [("DELETE", "/orders", "GET, POST"), ("PUT", "/orders/o-1", "GET"),
                                ("GET", "/orders/o-1/confirm", "POST"), ("DELETE", "/workflows/payment", "GET, POST")]:
        answer = await client.request(method, path)
        assert (answer.status_code, answer.headers["allow"]) == (405, allow), (method, path)
        assert answer.json()["error"] == "method_not_allowed"


async def test_a_body_that_is_not_utf8_json_is_400_bad_request(client: httpx.AsyncClient) -> None:
    answer = await client.post("/orders", content=b'{"customer_id": "\xff"}', headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_request")
