"""A user's projector in the served app (create_app(settings, projectors=...)): /health and /metrics show its
lag like the built-in projections', and its failure like theirs, without the database's words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from projector_examples import Ledger

from order_machine.api import create_app
from order_machine.projections import RetryPolicy

from http_support import client, create_order, db_url, runtime_of, settings_for  # noqa: F401


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
async def app(db_url: str, ledger: Ledger) -> AsyncIterator[FastAPI]:  # noqa: F811
    """The app with the ledger, its projections driven by the test (not running in the background)."""
    application = create_app(settings_for(db_url, run_projections=False, read_your_writes=False), projectors=[ledger])
    async with application.router.lifespan_context(application):
        yield application


async def test_health_and_metrics_show_a_users_projector_lag(app: FastAPI, client: httpx.AsyncClient) -> None:
    for order_id in ("l-1", "l-2"):
        await create_order(client, order_id)
    health = (await client.get("/health")).json()
    assert health["projections"]["ledger"] == {"position": 0, "lag": 2, "failed": None, "running": False, "quarantined": []}
    assert 'order_machine_projection_lag_events{projection="ledger"} 2' in (await client.get("/metrics")).text

    await runtime_of(app).runner.catch_up()
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert {name: p["lag"] for name, p in health["projections"].items()} == {
        "orders": 0, "order_history": 0, "workflows": 0, "ledger": 0}
    assert await runtime_of(app).tables.fetch("SELECT COUNT(*) FROM ledger") == [(2,)]


async def test_a_users_projector_that_fails_is_reported_like_the_built_in_ones(
        app: FastAPI, client: httpx.AsyncClient, ledger: Ledger) -> None:
    ledger.fail_at = 2
    runtime_of(app).runner.retry = RetryPolicy(retries=0)
    for order_id in ("f-1", "f-2", "f-3"):
        await create_order(client, order_id)
    await runtime_of(app).runner.catch_up()
    health = (await client.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["projections"]["ledger"]["failed"] == (
        "projection 'ledger' stopped at position 2: RuntimeError (the server log has the details)")
    assert health["projections"]["ledger"]["position"] == 1
    assert all(p["failed"] is None for name, p in health["projections"].items() if name != "ledger")
    assert 'order_machine_projection_failed{projection="ledger"} 1' in (await client.get("/metrics")).text


def test_projectors_go_to_bootstrap_not_to_an_app_over_a_runtime_built_already() -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        create_app(runtime=object(), projectors=[Ledger()])  # type: ignore[arg-type]
