"""A poison event over HTTP, on memory, SQLite and PostgreSQL: reads of its order or workflow answer 503
stream_quarantined (naming the stream, never the database), every other order and every list is served,
/health is degraded with the list, /metrics counts it, and after a repair and a release all is well again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from integration.event_surgery import rewrite_event
from integration.projection_support import read_model_projectors

from order_machine.api import create_app
from order_machine.bootstrap import Runtime
from order_machine.events import NewEvent
from order_machine.projections import release_quarantined
from test_api_ops import parse_metrics

from http_support import ITEM, create_order, runtime_of, settings_for

AT = "2024-05-01T09:30:00+00:00"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FastAPI]:
    schema = None
    if request.param == "postgres":
        from integration.pg_support import drop_schema, fresh_schema, pg_url
        from test_postgres_ops import url_on

        schema = fresh_schema()
        url = url_on(schema)
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/orders.db"
    application = create_app(settings_for(url, projection_retries=1))  # one retry, 0.1 s later
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        if schema is not None:
            await drop_schema(pg_url(), schema)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c:
        yield c


async def poison(rt: Runtime, stream_id: str, type_: str, data: dict[str, Any]) -> int:
    """An event as a buggy writer or a hand-edited database would leave it; returns its position."""
    version, _ = await rt.store.stream_head(stream_id)
    return (await rt.store.append(stream_id, [NewEvent(type_, data)], version)).position


def no_database_in(body: str) -> None:
    for word in ("sqlite", "postgres", "127.0.0.1", "orders.db", "order_machine_test", "om_test_", "12,50"):
        assert word not in body.lower(), body


async def test_a_poison_event_makes_its_order_503_while_every_other_read_is_served_until_it_is_released(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    rt = runtime_of(app)
    await create_order(client, "ord-1")
    await create_order(client, "ord-2")
    bad = await poison(rt, "ord-1", "OrderItemAdded",
                       {"at": AT, "product_id": "p-9", "quantity": 2, "unit_price": "12,50"})

    refused = await client.get("/orders/ord-1")
    assert refused.status_code == 503, refused.text
    body = refused.json()
    assert {k: body[k] for k in ("error", "stream", "projection", "position", "event_type")} == {
        "error": "stream_quarantined", "stream": "ord-1", "projection": "orders", "position": bad,
        "event_type": "OrderItemAdded"}
    assert "ord-1" in body["message"] and "order-machine projections" in body["message"]
    no_database_in(refused.text)
    assert (await client.get("/orders/ord-1/summary")).json()["error"] == "stream_quarantined"
    assert (await client.get("/orders/ord-1/history")).status_code == 200  # that view applied it

    assert (await client.post("/orders/ord-2/confirm")).status_code == 200
    ord2 = await client.get("/orders/ord-2")
    assert ord2.status_code == 200 and ord2.json()["status"] == "Confirmed"
    listed = await client.get("/orders", params={"customer_id": "cust-7"})
    assert listed.status_code == 200 and {o["id"] for o in listed.json()["items"]} == {"ord-1", "ord-2"}
    assert (await client.get("/orders")).status_code == 200

    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    projections = health.json()["projections"]
    assert [(q["stream"], q["position"], q["event_type"]) for q in projections["orders"]["quarantined"]] == [
        ("ord-1", bad, "OrderItemAdded")]
    assert projections["orders"]["failed"] is None and projections["order_history"]["quarantined"] == []
    assert "12,50" not in health.text  # the error text may quote the event's data: the CLI shows it, not /health
    metrics = parse_metrics((await client.get("/metrics")).text)
    assert {n: metrics[f'order_machine_projection_quarantined_streams{{projection="{n}"}}']
            for n in ("orders", "order_history", "workflows")} == {"orders": 1, "order_history": 0, "workflows": 0}

    await rewrite_event(rt.store, bad, {"at": AT, "product_id": "p-9", "quantity": 2, "unit_price": "12.50"})
    assert await release_quarantined(rt.store, rt.read_models, read_model_projectors(rt.runner), "ord-1") == {"orders": 2}
    healed = await client.get("/orders/ord-1")
    assert healed.status_code == 200, healed.text
    assert (healed.json()["amount"], healed.json()["version"]) == ("64.98", 2)
    assert (await client.get("/health")).json()["status"] == "ok"
    metrics = parse_metrics((await client.get("/metrics")).text)
    assert metrics['order_machine_projection_quarantined_streams{projection="orders"}'] == 0


async def test_a_workflow_event_of_an_instance_never_started_makes_that_instance_503(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    rt = runtime_of(app)
    started = await client.post("/workflows/payment", json={"id": "P-1", "data": {
        "amount": "10.00", "currency": "EUR", "method": "card"}})
    assert started.status_code == 201, started.text
    orphan = await poison(rt, "payment/P-9", "WorkflowTransitioned",
                          {"at": AT, "action": "Complete", "source": "Pending", "target": "Completed"})
    refused = await client.get("/workflows/payment/P-9")
    assert refused.status_code == 503, refused.text
    assert {k: refused.json()[k] for k in ("error", "stream", "projection", "position")} == {
        "error": "stream_quarantined", "stream": "payment/P-9", "projection": "workflows", "position": orphan}
    no_database_in(refused.text)
    assert (await client.get("/workflows/payment/P-1")).status_code == 200
    assert [w["id"] for w in (await client.get("/workflows/payment")).json()["items"]] == ["P-1"]
    assert (await client.get("/workflows/payment/P-2")).status_code == 404  # no events at all: not found
