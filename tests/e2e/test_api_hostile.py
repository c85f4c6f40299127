"""Issue 13's hostile requests, on every backend: ids outside the rule, NUL in any stored string, crafted
cursors and empty idempotency keys answer 422 naming the field; nothing is committed, the read side keeps
working, `Location` is percent-encoded and never built from `Host`, and no error names the database."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI

from order_machine.api import create_app

from http_support import ITEM, client, create_order, runtime_of, settings_for  # noqa: F401 (client: a fixture)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/orders.db"
    else:
        from integration.pg_support import drop_schema, fresh_schema, pg_url

        schema = fresh_schema()
        url = pg_url()
        yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
        await drop_schema(url, schema)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings_for(db_url))
    async with application.router.lifespan_context(application):
        yield application


def assert_invalid(response: httpx.Response, field: str, db_url: str = "") -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("invalid", field), body
    assert "pattern" not in body["message"] and "^[" not in body["message"], body["message"]
    assert_no_database_details(response, db_url)


def assert_no_database_details(response: httpx.Response, db_url: str) -> None:
    if db_url.startswith("postgres"):
        info = httpx.URL(db_url.split("?")[0])
        for secret in (info.host, str(info.port or ""), info.path.strip("/"), info.password or "", "om_test_"):
            if len(secret) > 2:
                assert secret not in response.text, (secret, response.text)


async def assert_read_side_works(client: httpx.AsyncClient) -> None:
    """A fresh order is created, read and listed: nothing stopped the projections."""
    await create_order(client, "after-1")
    assert (await client.post("/orders/after-1/confirm")).status_code == 200
    assert (await client.get("/orders/after-1")).json()["status"] == "Confirmed"
    assert any(o["id"] == "after-1" for o in (await client.get("/orders")).json()["items"])
    health = (await client.get("/health")).json()
    assert health["status"] == "ok", health


async def test_a_nul_in_the_order_id_is_422_commits_nothing_and_the_read_side_keeps_working(
        app: FastAPI, client: httpx.AsyncClient, db_url: str) -> None:
    before = await runtime_of(app).store.last_position()
    created = await client.post("/orders", json={"order_id": "a\u0000b", "customer_id": "c", "items": [ITEM]})
    assert_invalid(created, "order_id", db_url)
    assert "U+0000" in created.json()["message"]
    assert await runtime_of(app).store.last_position() == before
    assert_invalid(await client.post("/orders/a%00b/confirm"), "order_id", db_url)
    assert_invalid(await client.get("/orders/a%00b"), "order_id", db_url)
    assert_invalid(await client.get("/customers/a%00b/orders"), "customer_id", db_url)
    assert_invalid(await client.get("/orders", params={"customer_id": "a\x00b"}), "customer_id", db_url)
    assert await runtime_of(app).store.last_position() == before
    await assert_read_side_works(client)


@pytest.mark.parametrize("field", ["customer_id", "description", "items[0].product_id"])
async def test_a_nul_in_any_string_of_a_create_is_422_naming_it(
        app: FastAPI, client: httpx.AsyncClient, db_url: str, field: str) -> None:
    body: dict[str, Any] = {"order_id": "n-1", "customer_id": "c", "items": [dict(ITEM)]}
    if field.startswith("items"):
        body["items"][0]["product_id"] = "p\x00"
    else:
        body[field] = "x\x00y"
    assert_invalid(await client.post("/orders", json=body), field, db_url)
    assert (await client.get("/orders/n-1")).status_code == 404
    await assert_read_side_works(client)


async def test_a_nul_or_lone_surrogate_in_action_data_is_422_naming_the_field(
        client: httpx.AsyncClient, db_url: str) -> None:
    await create_order(client, "d-1")
    assert_invalid(await client.post("/orders/d-1/cancel", json={"reason": "no\x00"}), "reason", db_url)
    surrogate = b'{"reason": "bad \\ud800 half"}'
    assert_invalid(await client.post("/orders/d-1/cancel", content=surrogate,
                                     headers={"content-type": "application/json"}), "reason", db_url)
    status = await client.post("/orders/d-1/status", json={"status": "Cancelled", "data": {"reason": "a\x00"}})
    assert_invalid(status, "data.reason", db_url)
    item = await client.post("/orders/d-1/items", json={**ITEM, "product_id": "p\x00"})
    assert_invalid(item, "product_id", db_url)
    assert (await client.get("/orders/d-1")).json()["version"] == 1
    await assert_read_side_works(client)


async def test_a_non_latin_id_is_created_with_a_percent_encoded_location_and_replays_the_same(
        client: httpx.AsyncClient) -> None:
    body = {"order_id": "заказ-1", "customer_id": "клиент", "items": [ITEM]}
    first = await client.post("/orders", json=body, headers={"Idempotency-Key": "k-cyr"})
    assert first.status_code == 201, first.text
    location = first.headers["location"]
    assert location == "/orders/%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7-1" and unquote(location) == "/orders/заказ-1"
    again = await client.post("/orders", json=body, headers={"Idempotency-Key": "k-cyr"})
    assert (again.status_code, again.json(), again.headers["location"]) == (201, first.json(), location)
    read = await client.get(location)
    assert read.status_code == 200 and read.json()["id"] == "заказ-1"
    assert (await client.post(f"{location}/confirm")).json()["state"] == "Confirmed"
    listed = await client.get("/customers/клиент/orders")
    assert [o["id"] for o in listed.json()["items"]] == ["заказ-1"]


@pytest.mark.parametrize("order_id", ["box-\U0001F4E6", "a\u202eb", "\ufeffbom", "zero\u200bwidth", "tab\there",
                                      "del\x7f", "c1\x85", "a/b", "..", "", "x" * 201])
async def test_an_id_outside_the_rule_is_422_and_the_same_on_a_replay(
        app: FastAPI, client: httpx.AsyncClient, db_url: str, order_id: str) -> None:
    before = await runtime_of(app).store.last_position()
    body = {"order_id": order_id, "customer_id": "c"}
    answers = [await client.post("/orders", json=body, headers={"Idempotency-Key": "same"}) for _ in range(2)]
    for answer in answers:
        assert_invalid(answer, "order_id", db_url)
    assert answers[0].json() == answers[1].json()
    assert "letters and digits" in answers[0].json()["message"]
    assert await runtime_of(app).store.last_position() == before


@pytest.mark.parametrize("key", ["", " ", "two words", "caf\u00e9"])
async def test_an_empty_or_non_ascii_idempotency_key_is_422_naming_the_header(
        app: FastAPI, client: httpx.AsyncClient, key: str) -> None:
    before = await runtime_of(app).store.last_position()
    response = await client.post("/orders", json={"customer_id": "c"},
                                 headers={b"Idempotency-Key": key.encode("latin-1")})
    assert_invalid(response, "Idempotency-Key")
    assert await runtime_of(app).store.last_position() == before


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CRAFTED = [[2**63, "a"], [2**63], [-(2**63) - 1, "a"], [10**30, "a"], [1, "a\x00"], [1, "a/b"], ["1"], [1.5],
           [True], [None], {"k": 1}, "text", [], [[1]], [1, 2, 3]]


async def test_a_crafted_cursor_is_422_naming_cursor_on_every_list(client: httpx.AsyncClient, db_url: str) -> None:
    await create_order(client, "c-1")
    cursors = [_cursor(c) for c in CRAFTED] + ["%%%", "!", "A" * 2000, "WyJhIl0"]
    for path, params in [("/orders", {}), ("/orders", {"status": "Pending"}),
                         ("/orders", {"customer_id": "cust-7"}), ("/customers/cust-7/orders", {})]:
        for cursor in cursors:
            response = await client.get(path, params={**params, "cursor": cursor})
            if response.status_code == 200:  # a well-formed key of the other list's shape is just a position
                continue
            assert_invalid(response, "cursor", db_url)
    await assert_read_side_works(client)


async def test_location_ignores_the_host_header_and_uses_the_configured_base_url(db_url: str) -> None:
    if not db_url.startswith("memory"):
        pytest.skip("the Location rule does not depend on the backend")
    application = create_app(settings_for(db_url, base_url="https://shop.example/api"))
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://t") as c:
            created = await c.post("/orders", json={"order_id": "ё-1", "customer_id": "c"},
                                   headers={"Host": "evil.example"})
    assert created.headers["location"] == "https://shop.example/api/orders/%D1%91-1"


async def test_relative_location_never_echoes_the_host_header(client: httpx.AsyncClient) -> None:
    created = await client.post("/orders", json={"order_id": "h-1", "customer_id": "c"},
                                headers={"Host": "evil.example"})
    assert created.headers["location"] == "/orders/h-1"


async def test_a_store_failure_answers_503_without_the_database_address(
        app: FastAPI, client: httpx.AsyncClient, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from order_machine.errors import ProjectionError, StoreError

    secret = "PostgreSQL db.internal:5432/orders (schema shop, password hunter2): connection failed"
    rt = runtime_of(app)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError(secret)

    async def stopped(*args: Any, **kwargs: Any) -> Any:
        raise ProjectionError("orders", 7, StoreError(secret))

    monkeypatch.setattr(rt.service, "get_order", broken)
    monkeypatch.setattr(rt.service, "list_orders", stopped)
    monkeypatch.setattr(rt, "database", broken)
    answers = [await client.get("/orders/x"), await client.get("/orders"), await client.get("/health")]
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert answers[1].json()["error"] == "projection_stopped" and "position 7" in answers[1].json()["message"]
    for answer in answers:
        for word in ("db.internal", "5432", "shop", "hunter2", "connection failed"):
            assert word not in answer.text, answer.text
