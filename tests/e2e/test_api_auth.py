"""`auth="keys"` over HTTP: 401 without a live key, 403 without the scope a route needs (naming it), /health
open to all, and the key's name recorded as the actor of every event its requests write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount, Route

from order_machine.api import create_app
from order_machine.api.auth import ScopeGuard
from order_machine.errors import StoreError

from http_support import ITEM, db_url, runtime_of, settings_for  # noqa: F401 (fixtures)


@dataclass
class Keys:
    read: str
    write: str
    admin: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings_for(db_url, auth="keys"))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def keys(app: FastAPI) -> Keys:
    store = runtime_of(app).keys
    made = [await store.create(scope, f"{scope}-key") for scope in ("read", "write", "admin")]
    return Keys(*(m.token for m in made))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
    {"Authorization": "om_" + "A" * 43},
])
async def test_a_request_without_a_bearer_key_is_401_saying_how_to_send_one(
        client: httpx.AsyncClient, keys: Keys, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/orders"), ("POST", "/orders"), ("GET", "/metrics"), ("GET", "/docs"),
                         ("GET", "/openapi.json"), ("GET", "/no-such-route")):
        response = await client.request(method, path, headers=headers, json={"customer_id": "c-1"})
        assert response.status_code == 401, (method, path, response.text)
        body = response.json()
        assert body["error"] == "unauthorized" and "Authorization: Bearer KEY" in body["message"]
        assert response.headers["www-authenticate"].startswith('Bearer realm="order-machine"')


async def test_an_unknown_key_is_401_invalid_token_and_reads_nothing(client: httpx.AsyncClient, keys: Keys) -> None:
    for token in ("om_" + "A" * 43, keys.admin[:-2], "not-a-key", "om_" + "é" * 43):
        response = await client.get("/orders", headers={b"Authorization": f"Bearer {token}".encode()})
        assert response.status_code == 401, token
        assert response.json() == {"error": "unauthorized", "message": "this API key is not known here (a typo, "
                                                                       "another server's key, or a made-up one)"}
        assert response.headers["www-authenticate"] == 'Bearer realm="order-machine", error="invalid_token"'


async def test_two_authorization_headers_are_401(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/orders", headers=[("Authorization", f"Bearer {keys.admin}"),
                                                    ("Authorization", f"Bearer {keys.read}")])
    assert (response.status_code, response.json()["message"]) == (401, "send one Authorization header, not several")


async def test_a_revoked_key_is_401_from_its_next_request(app: FastAPI, client: httpx.AsyncClient, keys: Keys) -> None:
    assert (await client.get("/orders", headers=bearer(keys.write))).status_code == 200
    await runtime_of(app).keys.revoke("write-key")
    response = await client.get("/orders", headers=bearer(keys.write))
    assert response.status_code == 401
    assert response.json()["message"].startswith("the key 'write-key' was revoked at ")


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert (response.status_code, response.json()["status"]) == (200, "ok")


async def test_a_read_key_reads_everything_but_operations_and_changes_nothing(
        client: httpx.AsyncClient, keys: Keys) -> None:
    writer, reader = bearer(keys.write), bearer(keys.read)
    created = await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1", "items": [ITEM]},
                                headers=writer)
    assert created.status_code == 201, created.text
    for path in ("/orders", "/orders/ord-1", "/orders/ord-1/history", "/orders/ord-1/actions", "/definitions",
                 "/openapi.json", "/docs", "/customers/c-1/orders", "/workflows/payment"):
        assert (await client.get(path, headers=reader)).status_code == 200, path
    for path, body in (("/orders", {"customer_id": "c-2"}), ("/orders/ord-1/confirm", None),
                       ("/workflows/payment", {"data": {}}), ("/orders/ord-1/actions/confirm", {})):
        response = await client.post(path, json=body, headers=reader)
        assert response.status_code == 403, path
        assert response.json() == {
            "error": "forbidden", "required_scope": "write", "scopes": ["read"],
            "message": f"POST {path} needs the 'write' scope; the key 'read-key' has 'read'"}
    assert (await client.get("/orders/ord-1", headers=reader)).json()["status"] == "Pending"


async def test_a_write_key_runs_commands_but_only_an_admin_key_reads_the_operations_routes(
        client: httpx.AsyncClient, keys: Keys) -> None:
    created = await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1", "items": [ITEM]},
                                headers=bearer(keys.write))
    assert created.status_code == 201
    assert (await client.post("/orders/ord-1/confirm", headers=bearer(keys.write))).status_code == 200
    refused = await client.get("/metrics", headers=bearer(keys.write))
    assert (refused.status_code, refused.json()["required_scope"]) == (403, "admin")
    assert refused.json()["scopes"] == ["read", "write"]
    assert (await client.get("/metrics", headers=bearer(keys.admin))).status_code == 200
    assert (await client.post("/orders/ord-1/start-processing", headers=bearer(keys.admin))).status_code == 200


async def test_each_event_records_the_name_of_the_key_that_caused_it(
        app: FastAPI, client: httpx.AsyncClient, keys: Keys) -> None:
    await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1", "items": [ITEM]},
                      headers=bearer(keys.write))
    assert (await client.post("/orders/ord-1/confirm", headers=bearer(keys.admin))).status_code == 200
    started = await client.post("/workflows/payment", headers=bearer(keys.write), json={
        "id": "pay-1", "data": {"amount": "10.00", "currency": "EUR", "method": "card"}})
    assert started.status_code == 201, started.text
    store = runtime_of(app).store
    assert [e.metadata["actor"] for e in await store.load("ord-1")] == ["write-key", "admin-key"]
    assert [e.metadata["actor"] for e in await store.load("payment/pay-1")] == ["write-key"]


async def test_a_refused_or_unauthenticated_request_writes_nothing(
        app: FastAPI, client: httpx.AsyncClient, keys: Keys) -> None:
    await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1"})
    await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1"}, headers=bearer(keys.read))
    assert await runtime_of(app).store.last_position() == 0


async def test_every_route_but_health_is_guarded_by_the_scope_it_needs(app: FastAPI) -> None:
    guarded = {}
    for route in app.router.routes:
        assert isinstance(route, (Route, Mount))
        if route.path == "/health":
            assert not isinstance(route.app, ScopeGuard)
            continue
        assert isinstance(route.app, ScopeGuard), route.path
        for method in getattr(route, "methods", None) or {"GET"}:
            guarded[(method, route.path)] = route.app.needed(method)
    assert guarded[("GET", "/metrics")] == "admin"
    assert guarded[("GET", "/orders/{order_id}")] == "read"
    assert guarded[("POST", "/orders/{order_id}/cancel")] == "write"
    assert guarded[("GET", "/openapi.json")] == "read"


async def test_without_auth_the_same_routes_need_no_key_and_events_name_no_actor(db_url: str) -> None:
    application = create_app(settings_for(db_url))
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://t") as client:
            assert (await client.post("/orders", json={"order_id": "o-1", "customer_id": "c"})).status_code == 201
            assert (await client.get("/metrics")).status_code == 200
        assert all(isinstance(r, (Route, Mount)) and not isinstance(r.app, ScopeGuard)
                   for r in application.router.routes)
        assert "actor" not in (await runtime_of(application).store.load("o-1"))[0].metadata


async def test_a_key_store_that_cannot_answer_is_503_without_the_database_address(
        app: FastAPI, client: httpx.AsyncClient, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(token: str) -> None:
        raise StoreError("PostgreSQL db.internal:5432/orders (schema shop): checking a key failed: timeout")
    monkeypatch.setattr(runtime_of(app).keys, "authenticate", down)
    response = await client.get("/orders", headers=bearer(keys.read))
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable" and "db.internal" not in response.text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/orders.db"
    else:
        from integration.pg_support import drop_schema, fresh_schema, pg_url

        url, schema = pg_url(), fresh_schema()
        yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
        await drop_schema(url, schema)


async def test_a_key_made_in_one_process_works_in_another_until_revoked_there(shared_url: str) -> None:
    one, other = create_app(settings_for(shared_url, auth="keys")), create_app(settings_for(shared_url, auth="keys"))
    async with one.router.lifespan_context(one), other.router.lifespan_context(other):
        token = (await runtime_of(one).keys.create("write", "shared")).token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url="http://t",
                                     headers=bearer(token)) as client:
            created = await client.post("/orders", json={"order_id": "ord-1", "customer_id": "c-1"})
            assert created.status_code == 201, created.text
            await runtime_of(one).keys.revoke("shared")
            assert (await client.get("/orders/ord-1")).status_code == 401
        assert (await runtime_of(one).store.load("ord-1"))[0].metadata["actor"] == "shared"
