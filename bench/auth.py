"""What API keys cost a request (issue 13): the same app with `auth="none"` and `auth="keys"`, in process.

Requests go through the whole ASGI app (httpx's ASGITransport, one at a time) so the figure is the
app's own work per request, without a network or a second process to blur it: a read of one order and
an order creation, on the memory store (the key looked up in a dict) and on a SQLite file (the key
looked up in its api_keys table, on the keys' own thread). Rounds alternate between the two apps.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from order_machine import Settings
from order_machine.api import create_app
from order_machine.apikeys import open_key_store
from order_machine.store import open_store

from ._report import Goal, Size, Table, goals_table, median, pick, us

ROOT = Path(__file__).resolve().parents[1]
ITEM = {"product_id": "sku-1", "quantity": 1, "unit_price": "9.99"}


@asynccontextmanager
async def _client(url: str, auth: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started app (with an admin key when `auth` is keys) holding one order to read."""
    settings = Settings(db_url=url, definitions_dir=ROOT / "definitions", durability="fast", auth=auth)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = (await app.state.runtime.keys.create("admin", f"bench-{auth}")).token
        headers = {"Authorization": f"Bearer {token}"} if auth == "keys" else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench",
                                     headers=headers) as client:
            created = await client.post("/orders", json={"order_id": "read-me", "customer_id": "c", "items": [ITEM]})
            assert created.status_code == 201, created.text
            yield client


async def _round(client: httpx.AsyncClient, name: str, requests: int) -> tuple[float, float]:
    """Seconds per request of `requests` reads, then of `requests` creations."""
    started = time.perf_counter()
    for _ in range(requests):
        response = await client.get("/orders/read-me")
        assert response.status_code == 200, response.text
    read = (time.perf_counter() - started) / requests
    started = time.perf_counter()
    for i in range(requests):
        response = await client.post("/orders", json={"order_id": f"{name}-{i}", "customer_id": "c", "items": [ITEM]})
        assert response.status_code == 201, response.text
    return read, (time.perf_counter() - started) / requests


async def _compare(urls: dict[str, str], requests: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per-request seconds of each round, by auth and route; rounds alternate between the two apps."""
    out: dict[str, dict[str, list[float]]] = {auth: {"read": [], "create": []} for auth in urls}
    async with _client(urls["none"], "none") as plain, _client(urls["keys"], "keys") as keyed:
        await _round(plain, "warm", 20)
        await _round(keyed, "warm", 20)
        for r in range(rounds):
            for auth, client in (("none", plain), ("keys", keyed)):
                read, create = await _round(client, f"r{r}", requests)
                out[auth]["read"].append(read)
                out[auth]["create"].append(create)
    return out


async def _check_seconds(url: str, checks: int, rounds: int) -> float:
    """Seconds per `KeyStore.authenticate` of a live key (the lookup each request makes), median of rounds."""
    store = open_store(url)
    keys = open_key_store(store)
    try:
        token = (await keys.create("read", "bench")).token
        await keys.authenticate(token)
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(checks):
                await keys.authenticate(token)
            timings.append((time.perf_counter() - started) / checks)
        return median(timings)
    finally:
        await keys.close()
        await store.close()


def run(size: Size) -> list[Table]:
    requests, rounds = pick(size, (200, 15), (100, 5), (5, 1))
    table = Table("API keys: the app's time per request, in process (µs)",
                  ["store and route", "auth none", "auth keys", "added by keys"])
    added: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for backend in ("memory", "sqlite"):
            urls = {auth: "memory://" if backend == "memory" else f"sqlite:///{folder}/{auth}.db"
                    for auth in ("none", "keys")}
            results = asyncio.run(_compare(urls, requests, rounds))
            for route, label in (("read", "GET /orders/{id}"), ("create", "POST /orders")):
                none, keys = median(results["none"][route]), median(results["keys"][route])
                added[f"{backend} {route}"] = keys - none
                table.add(f"{backend}: {label}", us(none), us(keys), us(keys - none) if keys > none else "–")
    table.notes.append("–: no difference the rounds could tell apart from noise")
    table.notes.append(f"{requests} reads and {requests} creations per round, median of {rounds} rounds, each app in "
                       "turn; one request at a time; SQLite with durability=fast so no fsync hides the difference")
    check = Table("API keys: one key check alone (µs)", ["store", "authenticate()"])
    with tempfile.TemporaryDirectory() as folder:
        for backend, url in (("memory", "memory://"), ("sqlite", f"sqlite:///{folder}/keys.db")):
            check.add(backend, us(asyncio.run(_check_seconds(url, requests * 5, rounds))))
    check.notes.append("SHA-256 of the key and one lookup by it: a dict, or the api_keys table's unique index "
                       "read on the event loop")
    worst = max(added["sqlite read"], added["sqlite create"])
    goals = [Goal("keys add at most 100 µs to a request on SQLite (parse, hash, one indexed read, scope check)",
                  "≤ 100 µs", f"{us(max(worst, 0.0))} µs", worst <= 100e-6)]
    return [table, check, goals_table("API key goals (issue 13)", goals)]
