"""Health, Prometheus metrics, OpenAPI examples, and mounting the API inside another FastAPI app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from order_machine.api import create_app

from http_support import ITEM, advance, app, client, create_order, db_url, runtime_of, settings_for  # noqa: F401

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?\d+(\.\d+)?(e[+-]?\d+)?)$')


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; fails on any line that is not valid exposition format."""
    values: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge"), line
            typed.add(name)
        elif line.startswith("# HELP "):
            assert len(line.split(maxsplit=3)) == 4, line
        else:
            found = SAMPLE.match(line)
            assert found, f"not a Prometheus sample: {line!r}"
            assert found.group(1) in typed, f"sample before its TYPE: {line!r}"
            values[line.rsplit(" ", 1)[0]] = float(found.group(4))
    return values


async def test_health_reports_the_store_and_projection_lag(client: httpx.AsyncClient) -> None:
    await create_order(client, "h-1")
    await client.get("/orders/h-1")  # a read waits until the projections show the command
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["store"], body["last_position"]) == ("ok", "ok", 1)
    assert {name: p["lag"] for name, p in body["projections"].items()} == {"orders": 0, "order_history": 0, "workflows": 0}


async def test_health_is_503_when_the_store_cannot_be_read(tmp_path: Path) -> None:
    application = create_app(settings_for(f"sqlite:///{tmp_path}/orders.db"))
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://t") as c:
            assert (await c.get("/health")).status_code == 200
            await runtime_of(application).store.close()  # the database goes away under the running service
            down = await c.get("/health")
            assert down.status_code == 503
            assert (down.json()["status"], down.json()["store"]) == ("unavailable", "unreachable")
            assert down.json()["message"]
            refused = await c.post("/orders", json={"customer_id": "c"})
            assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable"


async def test_metrics_count_commands_by_outcome_events_projections_and_bus(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_order(client, "m-1")
    await advance(client, "m-1", "confirm")
    await client.post("/orders/m-1/deliver")  # refused
    await client.post("/orders/m-1/confirm", headers={"If-Match": '"9"'})  # conflict
    await client.post("/orders/missing/confirm")  # not found
    await client.get("/orders/m-1")  # a read waits until the projections show the commands
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse_metrics(response.text)
    outcomes = {k: m[f'order_machine_commands_total{{outcome="{k}"}}'] for k in
                ("accepted", "refused", "conflict", "not_found", "duplicate", "invalid")}
    assert outcomes == {"accepted": 2, "refused": 1, "conflict": 1, "not_found": 1, "duplicate": 0, "invalid": 0}
    assert m["order_machine_events_appended_total"] == 2
    assert m['order_machine_projection_position{projection="orders"}'] == 2
    assert m['order_machine_projection_lag_events{projection="order_history"}'] == 0
    assert m['order_machine_projection_failed{projection="orders"}'] == 0
    assert m["order_machine_store_position"] == 2
    assert m["order_machine_bus_published_total"] == 2
    assert {"order_machine_bus_processed_total", "order_machine_bus_failed_total",
            "order_machine_bus_queue_size"} <= set(m)
    store = {k: m.get(f"order_machine_store_{k}_total") for k in ("commits", "fsyncs", "checkpoints")}
    if runtime_of(app).store.url.startswith("sqlite"):
        # two accepted commands, awaited one after the other: a transaction each; durability "fast" here
        assert store == {"commits": 2, "fsyncs": 0, "checkpoints": 0}
        assert m["order_machine_store_fsync_process"] == 0  # no fsyncs to do
    else:
        assert store == {"commits": None, "fsyncs": None, "checkpoints": None}
        assert "order_machine_store_fsync_process" not in m


async def test_every_route_documents_an_example_answer_and_every_body_an_example(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert (await client.get("/docs")).status_code == 200
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20
    for path, method, op in operations:
        success = next(r for code, r in op["responses"].items() if code.startswith("2"))
        for kind, media in success["content"].items():
            assert "example" in media or "examples" in media, f"{method} {path}: no example {kind} answer"
        if "requestBody" in op:
            body = op["requestBody"]["content"]["application/json"]
            assert body.get("examples"), f"{method} {path}: no request example"
    headers = {p["name"] for p in spec["paths"]["/orders/{order_id}/ship"]["post"]["parameters"] if p["in"] == "header"}
    assert headers == {"Idempotency-Key", "If-Match"}


async def test_the_api_mounts_inside_another_app_and_its_lifespan_runs_from_the_host(tmp_path: Path) -> None:
    orders = create_app(settings_for(f"sqlite:///{tmp_path}/orders.db"))

    @asynccontextmanager
    async def lifespan(host: FastAPI) -> AsyncIterator[None]:
        async with orders.router.lifespan_context(orders):
            yield

    host = FastAPI(lifespan=lifespan)

    @host.get("/ping")
    async def ping() -> dict[str, Any]:
        return {"pong": True}

    host.mount("/shop", orders)
    async with host.router.lifespan_context(host):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(host), base_url="http://host") as c:
            created = await c.post("/shop/orders", json={"order_id": "x-1", "customer_id": "c", "items": [ITEM]})
            assert created.status_code == 201
            assert created.headers["location"] == "/shop/orders/x-1"  # relative: never built from Host
            assert (await c.get(created.headers["location"])).json()["status"] == "Pending"
            assert (await c.get("/ping")).json() == {"pong": True}
    assert orders.state.runtime is None  # stopped with the host


async def test_a_request_before_the_lifespan_started_is_503_not_500() -> None:
    application = create_app(settings_for("memory://"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://t") as c:
        response = await c.get("/orders/x")
    assert response.status_code == 503 and response.json()["error"] == "store_unavailable"


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/not-a-db.txt", "nosuch://x"])
async def test_a_bad_store_fails_the_lifespan_with_the_store_error(tmp_path: Path, url: str) -> None:
    (tmp_path / "not-a-db.txt").write_text("hello, I am text\n" * 10)
    application = create_app(settings_for(url.format(tmp=tmp_path)))
    from order_machine.errors import StoreError

    with pytest.raises(StoreError):
        async with application.router.lifespan_context(application):
            pytest.fail("the app started on a store it cannot read")
