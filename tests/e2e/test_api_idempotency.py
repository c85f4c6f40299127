"""Idempotency-Key on every POST: a repeat returns the first response, same status, and appends nothing."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from http_support import ITEM, app, client, create_order, db_url, runtime_of  # noqa: F401 (fixtures)


async def test_a_repeated_create_returns_the_first_response_and_appends_nothing(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    body = {"customer_id": "cust-7", "items": [ITEM]}  # no order id: the first call generates one
    first = await client.post("/orders", json=body, headers={"Idempotency-Key": "create-1"})
    position = await runtime_of(app).store.last_position()
    again = await client.post("/orders", json=body, headers={"Idempotency-Key": "create-1"})
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (201, first.json())
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await runtime_of(app).store.last_position() == position
    assert (await client.get("/orders", params={"customer_id": "cust-7"})).json()["items"].__len__() == 1


async def test_every_post_route_honours_the_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_order(client, "k-1")
    steps = [("items", {"product_id": "p", "quantity": 1, "unit_price": "2.50"}), ("confirm", None),
             ("start-processing", None), ("ship", {"tracking_number": "T", "shipping_address": "A"}),
             ("deliver", None), ("return", {"reason": "broken"})]
    for n, (route, body) in enumerate(steps):
        key = {"Idempotency-Key": f"k-1-{n}"}
        first = await client.post(f"/orders/k-1/{route}", json=body, headers=key)
        assert first.status_code == 200, first.text
        position = await runtime_of(app).store.last_position()
        again = await client.post(f"/orders/k-1/{route}", json=body, headers=key)
        assert (again.status_code, again.json()) == (200, first.json()), route
        assert await runtime_of(app).store.last_position() == position
    assert (await client.get("/orders/k-1")).json()["version"] == 7


async def test_a_key_is_honoured_even_after_the_order_moved_on(client: httpx.AsyncClient) -> None:
    await create_order(client, "k-2")
    first = await client.post("/orders/k-2/confirm", headers={"Idempotency-Key": "confirm-k-2"})
    await client.post("/orders/k-2/start-processing")
    late = await client.post("/orders/k-2/confirm", headers={"Idempotency-Key": "confirm-k-2"})
    assert (late.status_code, late.json()) == (200, first.json())  # not a 409: it already happened
    assert (await client.get("/orders/k-2")).json()["status"] == "Processing"


async def test_reusing_a_key_for_a_different_request_is_422_naming_the_header(client: httpx.AsyncClient) -> None:
    await client.post("/orders", json={"order_id": "k-3", "customer_id": "c", "items": [ITEM]},
                      headers={"Idempotency-Key": "same"})
    other = await client.post("/orders", json={"order_id": "k-4", "customer_id": "c"}, headers={"Idempotency-Key": "same"})
    assert other.status_code == 422
    assert other.json()["field"] == "Idempotency-Key"
    assert (await client.get("/orders/k-4")).status_code == 404


async def test_concurrent_repeats_of_one_key_create_one_order(app: FastAPI, client: httpx.AsyncClient) -> None:
    body = {"customer_id": "cust-c", "items": [ITEM]}
    answers = await asyncio.gather(*[client.post("/orders", json=body, headers={"Idempotency-Key": "race"})
                                     for _ in range(8)])
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert await runtime_of(app).store.last_position() == 1


async def test_a_refused_command_is_not_remembered_under_its_key(client: httpx.AsyncClient) -> None:
    await client.post("/orders", json={"order_id": "k-5", "customer_id": "c"})
    refused = await client.post("/orders/k-5/confirm", headers={"Idempotency-Key": "try"})
    assert refused.status_code == 409  # guard has_value: the order is empty
    await client.post("/orders/k-5/items", json=ITEM)
    retried = await client.post("/orders/k-5/confirm", headers={"Idempotency-Key": "try"})
    assert retried.status_code == 200 and retried.json()["state"] == "Confirmed"
