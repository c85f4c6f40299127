"""The request limits of Settings over HTTP: bodies (413), headers (431), a body that never finishes (408),
items per order and fields per action (422 naming the field); what is within them is served as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from order_machine.api import create_app

from http_support import ITEM, client, db_url, runtime_of, settings_for  # noqa: F401 (fixtures)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings_for(db_url, max_body_bytes=4096, max_header_bytes=2048,
                                          max_items_per_order=3, body_timeout_seconds=0.2))
    async with application.router.lifespan_context(application):
        yield application


def order(**extra: Any) -> dict[str, Any]:
    return {"order_id": "ord-1", "customer_id": "c-1", **extra}


async def test_a_body_over_the_limit_is_413_too_large_and_commits_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    big = order(description="x" * 5000)
    response = await client.post("/orders", json=big)
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "max_bytes": 4096,
                               "message": "the request body is larger than 4096 bytes, the most this server takes"}
    assert response.headers["connection"] == "close"
    assert await runtime_of(app).store.last_position() == 0


async def test_a_body_without_a_length_is_cut_off_once_it_passes_the_limit(client: httpx.AsyncClient) -> None:
    sent = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 100 KiB offered, in 1 KiB pieces
            sent.append(1)
            yield b" " * 1024

    response = await client.post("/orders", content=chunks(), headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (413, "too_large")
    assert len(sent) <= 6  # read up to the limit, not to the end


async def test_a_command_route_without_a_body_parameter_is_413_too(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders/ord-1/confirm", content=b"{" + b" " * 5000 + b"}",
                                 headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (413, "too_large")


async def test_a_body_at_the_limit_is_served(client: httpx.AsyncClient) -> None:
    body = json.dumps(order(items=[ITEM]))
    padded = body[:-1] + " " * (4096 - len(body)) + "}"
    assert len(padded) == 4096
    response = await client.post("/orders", content=padded, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


async def test_a_body_that_stops_arriving_is_408_body_timeout(app: FastAPI, client: httpx.AsyncClient) -> None:
    never = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"customer_id": '
        await never.wait()  # the client stalls; the server must not wait with it
        yield b'"c-1"}'

    response = await client.post("/orders", content=trickle(), headers={"content-type": "application/json"})
    assert response.status_code == 408
    assert response.json() == {"error": "body_timeout", "received_bytes": 16,
                               "message": "the request body did not arrive within 0.2s (it has 16 bytes so far)"}
    assert response.headers["connection"] == "close"
    assert await runtime_of(app).store.last_position() == 0


async def test_headers_over_the_limit_are_431_and_under_it_are_served(client: httpx.AsyncClient) -> None:
    refused = await client.get("/orders", headers={"X-Padding": "a" * 2100})
    assert refused.status_code == 431
    assert refused.json()["error"] == "headers_too_large" and refused.json()["max_bytes"] == 2048
    long_query = await client.get("/orders", params={"customer_id": "c" * 2100})
    assert long_query.status_code == 431
    assert (await client.get("/orders", headers={"X-Padding": "a" * 1500})).status_code == 200


async def test_an_order_may_not_be_created_with_more_items_than_the_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", json=order(items=[ITEM] * 4))
    assert response.status_code == 422
    assert response.json() == {"error": "invalid", "field": "items",
                               "message": "an order may hold at most 3 items, got 4"}
    assert (await client.post("/orders", json=order(items=[ITEM] * 3))).status_code == 201


async def test_an_item_past_the_limit_is_422_and_the_order_keeps_its_items(client: httpx.AsyncClient) -> None:
    assert (await client.post("/orders", json=order(items=[ITEM] * 2))).status_code == 201
    assert (await client.post("/orders/ord-1/items", json=ITEM)).status_code == 200
    response = await client.post("/orders/ord-1/items", json=ITEM)
    assert response.status_code == 422
    assert response.json()["field"] == "items"
    assert response.json()["message"] == "order ord-1 holds 3 items, the most an order may hold"
    assert len((await client.get("/orders/ord-1")).json()["items"]) == 3


@pytest.mark.parametrize("path, body, field", [
    ("/orders/ord-1/cancel", {"reason": "changed my mind", "refund_to": "elsewhere"}, "refund_to"),
    ("/orders/ord-1/actions/cancel", {"reason": "changed my mind", "refund_to": "elsewhere"}, "refund_to"),
])
async def test_a_field_the_action_does_not_declare_is_422_naming_it(
        client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str) -> None:
    assert (await client.post("/orders", json=order(items=[ITEM]))).status_code == 201
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await client.get("/orders/ord-1")).json()["status"] == "Pending"


async def test_a_workflow_action_with_an_undeclared_field_is_422_naming_it(client: httpx.AsyncClient) -> None:
    started = await client.post("/workflows/payment", json={
        "id": "pay-1", "data": {"amount": "10.00", "currency": "EUR", "method": "card"}})
    assert started.status_code == 201, started.text
    assert (await client.post("/workflows/payment/pay-1/actions/process")).status_code == 200
    response = await client.post("/workflows/payment/pay-1/actions/complete",
                                 json={"transaction_id": "t-1", "note": "extra"})
    assert (response.status_code, response.json()["field"]) == (422, "note")
