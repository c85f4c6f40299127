"""`GET /health` and `/metrics` on PostgreSQL: the database's schema version, the oldest in-flight transaction's
age, 503 while the server cannot be reached (through a TCP relay the test cuts) and 200 once it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from integration.pg_support import drop_schema, fresh_schema, pg_url
from waiting import eventually_async

from order_machine.api import create_app
from order_machine.store.pg_schema import LATEST_VERSION
from test_api_ops import parse_metrics

from http_support import ITEM, runtime_of, settings_for


class Relay:
    """A TCP relay on 127.0.0.1 to the test server: `cut()` drops every connection and stops listening
    (the database is gone, as far as the app can tell); `restore()` listens on the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._open = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._open = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:  # accepted just before a cut, handled after it
            writer.transport.abort()
            return
        self._pipes.add(writer)  # before connecting on: a cut in between must drop this one too
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if writer not in self._pipes:  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._pipes.add(up_writer)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._open = False
        self._server.close()
        for pipe in self._pipes:
            pipe.transport.abort()
        self._pipes.clear()
        await self._server.wait_closed()

    restore = start


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = fresh_schema()
    try:
        yield name
    finally:
        await drop_schema(pg_url(), name)


def url_on(schema: str, host: str | None = None, port: int | None = None, **options: object) -> str:
    info = psycopg.conninfo.conninfo_to_dict(pg_url())
    query = "&".join(f"{k}={v}" for k, v in {"schema": schema, **options}.items())
    return (f"postgresql://{info['user']}:{info['password']}@{host or info['host']}:{port or info['port']}/"
            f"{info['dbname']}?{query}")


@contextlib.asynccontextmanager
async def serving(url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings_for(url))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            yield app, client


@pytest.mark.postgres
async def test_health_on_postgres_reports_the_schema_version_and_the_oldest_transaction_age(schema: str) -> None:
    async with serving(url_on(schema)) as (app, client):
        assert (await client.post("/orders", json={"order_id": "h-1", "customer_id": "c", "items": [ITEM]})
                ).status_code == 201
        async with await psycopg.AsyncConnection.connect(pg_url()) as idle, idle.transaction():
            await idle.execute("SELECT pg_current_xact_id()")  # holds a transaction id: followers wait for it

            async def aged() -> httpx.Response | None:  # the age grows while the transaction is held
                answer = await client.get("/health")
                seconds = answer.json().get("database", {}).get("oldest_transaction_seconds") or 0
                return answer if seconds >= 0.4 else None

            health = await eventually_async(aged, what="/health reporting a transaction 0.4 s old")
            metrics = parse_metrics((await client.get("/metrics")).text)
        assert health.status_code == 200, health.text
        body = health.json()
        database = body["database"]
        assert {k: database[k] for k in ("reachable", "database", "schema", "schema_version", "latest_schema_version")
                } == {"reachable": True, "database": "postgresql", "schema": schema, "schema_version": LATEST_VERSION,
                      "latest_schema_version": LATEST_VERSION}
        assert database["oldest_transaction_seconds"] >= 0.4 and database["server_version"]
        assert {n: (p["lag"], p["lease_held_here"]) for n, p in body["projections"].items()} == {
            "orders": (0, True), "order_history": (0, True), "workflows": (0, True)}  # the only process: it holds every lease
        assert metrics["order_machine_db_oldest_transaction_seconds"] >= 0.4
        worker = runtime_of(app).worker
        assert worker is not None and worker.running


@pytest.mark.postgres
async def test_health_is_503_while_postgres_cannot_be_reached_and_200_once_it_is_back(schema: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(pg_url())
    relay = Relay(str(info["host"]), int(str(info["port"])))
    await relay.start()
    try:
        async with serving(url_on(schema, "127.0.0.1", relay.port, pool_timeout=1, connect_timeout=1)) as (_, client):
            assert (await client.get("/health")).status_code == 200
            await relay.cut()
            down = await client.get("/health")
            assert down.status_code == 503, down.text
            assert (down.json()["status"], down.json()["database"]) == ("unavailable", {"reachable": False})
            assert down.json()["message"]
            await relay.restore()

            async def back() -> bool:
                return (await client.get("/health")).status_code == 200

            await eventually_async(back, within=15, every=0.2, what="/health 200 again")
            created = await client.post("/orders", json={"order_id": "back-1", "customer_id": "c", "items": [ITEM]})
            assert created.status_code == 201, created.text
            assert (await client.get("/orders/back-1")).json()["version"] == 1
    finally:
        await relay.cut()


async def test_health_on_sqlite_reports_its_schema_version_and_no_transaction_age(tmp_path: Path) -> None:
    async with serving(f"sqlite:///{tmp_path}/orders.db") as (_, client):
        body = (await client.get("/health")).json()
        metrics = (await client.get("/metrics")).text
    assert body["database"] == {"reachable": True, "database": "sqlite", "schema_version": 1}
    assert "lease_held_here" not in body["projections"]["orders"]
    assert "oldest_transaction" not in metrics
