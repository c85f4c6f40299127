"""Two apps on one PostgreSQL schema in one process, as two servers would be: the projection work goes to one
of them by lease, and each still reads its own writes, even one told not to project at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from integration.pg_support import drop_schema, fresh_schema, pg_url

from order_machine.api import create_app

from http_support import ITEM, runtime_of, settings_for

pytestmark = pytest.mark.postgres


@pytest.fixture
async def url() -> AsyncIterator[str]:
    base, schema = pg_url(), fresh_schema()
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        await drop_schema(base, schema)


async def test_an_app_that_does_not_project_reads_its_own_writes_projected_by_the_other(url: str) -> None:
    projecting = create_app(settings_for(url))
    following = create_app(settings_for(url, run_projections=False))
    async with projecting.router.lifespan_context(projecting), following.router.lifespan_context(following):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(following), base_url="http://b") as b:
            for n in range(5):
                created = await b.post("/orders", json={"order_id": f"f-{n}", "customer_id": "c", "items": [ITEM]})
                assert created.status_code == 201, created.text
                added = await b.post(f"/orders/f-{n}/items", json={**ITEM, "product_id": f"extra-{n}"})
                assert added.status_code == 200, added.text
                order = (await b.get(f"/orders/f-{n}")).json()
                assert (order["version"], len(order["items"])) == (2, 2)
            health = (await b.get("/health")).json()
        worker, follower = runtime_of(projecting).worker, runtime_of(following).worker
        assert worker is not None and follower is not None
        assert (worker.owned, follower.owned) == (["orders", "order_history", "workflows"], [])
        assert {p["lease_held_here"] for p in health["projections"].values()} == {False}


async def test_only_one_of_two_projecting_apps_holds_each_lease_and_both_read_their_writes(url: str) -> None:
    one, two = create_app(settings_for(url)), create_app(settings_for(url))
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(one), base_url="http://1") as a, \
                httpx.AsyncClient(transport=httpx.ASGITransport(two), base_url="http://2") as b:
            for n, (writer, reader) in enumerate([(a, b), (b, a), (b, b), (a, a)]):
                created = await writer.post("/orders", json={"order_id": f"t-{n}", "customer_id": "c",
                                                             "items": [ITEM]})
                assert created.status_code == 201, created.text
                confirmed = await writer.post(f"/orders/t-{n}/confirm")
                assert confirmed.status_code == 200, confirmed.text
                assert (await writer.get(f"/orders/t-{n}")).json()["status"] == "Confirmed"
                assert (await reader.get(f"/orders/t-{n}")).json()["status"] == "Confirmed"
        owners = [runtime_of(app).worker for app in (one, two)]
        assert owners[0] is not None and owners[1] is not None
        assert sorted(owners[0].owned + owners[1].owned) == ["order_history", "orders", "workflows"]
