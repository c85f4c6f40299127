"""Fixtures for the HTTP tests: the app with its lifespan running, on memory:// and on a SQLite file,
and an httpx client over ASGITransport. Test modules import the fixtures they use from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from order_machine.api import create_app
from order_machine.bootstrap import Runtime
from order_machine.config import Settings

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
ITEM = {"product_id": "sku-42", "quantity": 2, "unit_price": "19.99"}


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(db_url=url, definitions_dir=DEFINITIONS, durability="fast", **overrides)


@pytest.fixture(params=["memory", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/orders.db"


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (Runtime bootstrapped and started), stopped after the test."""
    application = create_app(settings_for(db_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's `app` fixture (a module may define its own `app`: this one follows it)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c:
        yield c


async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One process's life as a test drives it: the app on `settings`, its lifespan running, and a client;
    `async for c in serving(settings):` twice on one database is a restart."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://testserver") as c:
            yield c


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def create_order(client: httpx.AsyncClient, order_id: str = "ord-1", **body: Any) -> httpx.Response:
    payload = {"order_id": order_id, "customer_id": "cust-7", "items": [ITEM], **body}
    response = await client.post("/orders", json=payload)
    assert response.status_code == 201, response.text
    return response


async def advance(client: httpx.AsyncClient, order_id: str, *steps: str) -> httpx.Response:
    """Take an order through action routes; ship sends a tracking number and address."""
    bodies = {"ship": {"tracking_number": "1Z999", "shipping_address": "1 Main St"}}
    response = None
    for step in steps:
        response = await client.post(f"/orders/{order_id}/{step}", json=bodies.get(step))
        assert response.status_code == 200, response.text
    assert response is not None
    return response
