"""Several real `order-machine serve` processes on one PostgreSQL schema, spoken to over 127.0.0.1.

Concurrent commands on the same orders through all of them lose no update and write no event twice; a
read after a command shows it, whichever process answers; the projection work is shared by leases (a
killed holder is taken over) and the read models equal a rebuild.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from integration.pg_support import pg_url, postgres_store, shared_schema
from waiting import eventually_async

from order_machine.projections import ProjectionRunner
from order_machine.projections.postgres import PostgresReadModels

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
TABLES = {"read_orders": "id", "read_order_items": "order_id, line", "read_order_history": "position",
          "projection_checkpoints": "name"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def order_machine_command() -> list[str]:
    script = shutil.which("order-machine", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "order_machine"]


class Server:
    """One `order-machine serve` (with its uvicorn workers) in a process group of its own."""

    def __init__(self, db_url: str, workdir: Path, workers: int = 1, definitions: Path = DEFINITIONS) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ORDER_MACHINE_READ_WAIT_SECONDS": "10",
               "ORDER_MACHINE_PROJECTION_POLL_SECONDS": "0.2"}
        env.pop("ORDER_MACHINE_DB_URL", None)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*order_machine_command(), "serve", "--db", db_url, "--definitions", str(definitions),
                 "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    async def health(self, http: httpx.AsyncClient) -> dict[str, Any]:
        answer = await http.get(f"{self.url}/health")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def up(self, http: httpx.AsyncClient, timeout: float = 25.0) -> None:
        async def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                return (await http.get(f"{self.url}/health")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually_async(answers, within=timeout, every=0.1, what=f"serve answering on {self.url}")

    def signal(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)  # the group holds serve and its uvicorn workers

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not end within 15 s; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
        with_children = self.process.returncode
        try:  # uvicorn workers left behind by a killed supervisor
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return with_children


class Cluster:
    def __init__(self, schema: str, workdir: Path) -> None:
        base = pg_url()
        self.schema = schema
        self.db_url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
        self.workdir = workdir
        self.servers: list[Server] = []

    def start(self, workers: int = 1, definitions: Path = DEFINITIONS) -> Server:
        server = Server(self.db_url, self.workdir, workers, definitions)
        self.servers.append(server)
        return server

    def logs(self) -> str:
        return "\n".join(f"--- {s.log.name}\n{s.log.read_text()}" for s in self.servers)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Serve processes on a fresh schema; every process is stopped (killed if need be) before the schema goes."""
    async with shared_schema() as schema:
        running = Cluster(schema, tmp_path)
        try:
            yield running
        finally:
            for server in running.servers:
                server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=20.0, limits=limits) as client:
        yield client


async def events_of(schema: str) -> dict[str, list[tuple[int, str, dict[str, Any], dict[str, Any]]]]:
    """Every stream's events straight from the table: (version, type, data, metadata) in version order."""
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        cur = await conn.execute(f'SELECT stream_id, version, type, data, metadata FROM "{schema}".events '
                                 "ORDER BY stream_id, version")
        streams: dict[str, list[tuple[int, str, dict[str, Any], dict[str, Any]]]] = {}
        for stream, version, kind, data, metadata in await cur.fetchall():
            streams.setdefault(stream, []).append((version, kind, data, metadata))
        return streams


async def dump(schema: str) -> dict[str, list[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        out = {}
        for table, key in TABLES.items():
            cur = await conn.execute(f'SELECT * FROM "{schema}".{table} ORDER BY {key}')
            out[table] = await cur.fetchall()
        return out


async def caught_up(server: Server, http: httpx.AsyncClient, timeout: float = 10.0) -> int:
    """Wait until no projection lags behind the store; returns the store's last position."""
    async def no_lag() -> dict[str, Any] | None:
        health = await server.health(http)
        return health if all(p["lag"] == 0 for p in health["projections"].values()) else None

    health = await eventually_async(no_lag, within=timeout, every=0.05, what=f"{server.url}'s projections caught up")
    return int(health["last_position"])


def item(product: str) -> dict[str, Any]:
    return {"product_id": product, "quantity": 1, "unit_price": "1.25"}


async def create(http: httpx.AsyncClient, server: Server, order_id: str) -> None:
    answer = await http.post(f"{server.url}/orders", json={"order_id": order_id, "customer_id": "c-1",
                                                           "items": [item("first")]})
    assert answer.status_code == 201, answer.text


async def test_concurrent_commands_on_the_same_orders_through_three_serve_processes_lose_nothing_and_apply_once(
        cluster: Cluster, http: httpx.AsyncClient) -> None:
    first = cluster.start()
    await first.up(http)
    others = [cluster.start(), cluster.start(workers=2)]  # the last one is `serve --workers 2`
    await asyncio.gather(*(s.up(http) for s in others))
    servers = [first, *others]
    orders = ["o-1", "o-2", "o-3"]
    for n, order_id in enumerate(orders):
        await create(http, servers[n], order_id)

    accepted: dict[str, set[str]] = {o: set() for o in orders}
    stale_reads: list[str] = []
    replayed: list[str] = []
    outcomes: list[tuple[str, int, str]] = []
    gate = asyncio.Semaphore(12)

    async def add(k: int, order_id: str, through: Server, key: str) -> None:
        product = f"p-{k}"
        async with gate:
            answer = await http.post(f"{through.url}/orders/{order_id}/items", json=item(product),
                                     headers={"Idempotency-Key": key})
            outcomes.append((order_id, answer.status_code, answer.json().get("error", "")))
            if answer.status_code != 200:
                return
            accepted[order_id].add(product)
            if answer.headers.get("Idempotent-Replayed") == "true":
                replayed.append(key)
            for reader in (through, servers[(servers.index(through) + 1) % len(servers)]):
                shown = (await http.get(f"{reader.url}/orders/{order_id}")).json()
                if product not in {i["product_id"] for i in shown["items"]}:
                    stale_reads.append(f"{product} missing from {order_id} read on {reader.url} after 200 from "
                                       f"{through.url}")

    async def cancel(order_id: str, through: Server, delay: float) -> None:
        await asyncio.sleep(delay)  # a cancel at a chosen moment of the race, not a wait for something
        answer = await http.post(f"{through.url}/orders/{order_id}/cancel", json={"reason": "race"})
        outcomes.append((order_id, answer.status_code, answer.json().get("error", "cancel")))
        assert answer.status_code in (200, 409), answer.text

    tasks = []
    for k in range(90):
        order_id, through = orders[k % 3], servers[(k // 3) % 3]
        tasks.append(add(k, order_id, through, f"add-{k}"))
        if k % 10 == 0:  # the same request, same key, at the same time through another process
            tasks.append(add(k, order_id, servers[(k // 3 + 1) % 3], f"add-{k}"))
    # two cancels race each other (and the adds) on o-3: one wins, the other is refused
    tasks += [cancel("o-3", servers[0], 0.05), cancel("o-3", servers[2], 0.05)]
    async with asyncio.timeout(25):
        await asyncio.gather(*tasks)

    assert stale_reads == [], cluster.logs()
    # a conflict that outlasts the retries is an honest 409; on o-3, adds after the cancel are refused (422)
    assert {(status, error) for o, status, error in outcomes if o != "o-3"} <= {(200, ""), (409, "version_conflict")}
    assert {(status, error) for o, status, error in outcomes if o == "o-3"} <= {
        (200, ""), (200, "cancel"), (409, "transition_not_allowed"), (409, "version_conflict"), (422, "invalid")}
    assert len(replayed) >= 3 and len(set(replayed)) == len(replayed), replayed  # same key twice: one replay
    assert [c for c in outcomes if c[1:] == (200, "cancel")] == [("o-3", 200, "cancel")], "exactly one cancel wins"
    assert min(len(accepted["o-1"]), len(accepted["o-2"])) >= 24, outcomes  # retries absorb nearly every race

    streams = await events_of(cluster.schema)
    for order_id in orders:
        events = streams[order_id]
        assert [e[0] for e in events] == list(range(1, len(events) + 1)), f"{order_id}: versions not dense"
        added = [e[2]["product_id"] for e in events if e[1] == "OrderItemAdded"]
        assert len(added) == len(set(added)), f"{order_id}: an item was added twice"
        assert set(added) == accepted[order_id], f"{order_id}: a 200 without its event, or an event without a 200"
        command_ids = [e[3]["command_id"] for e in events if e[3].get("command_id")]
        assert len(command_ids) == len(set(command_ids)), f"{order_id}: one command id wrote twice"
    kinds = [e[1] for e in streams["o-3"]]
    assert kinds.count("OrderCancelled") == 1 and kinds[-1] == "OrderCancelled", kinds

    last = await caught_up(servers[1], http)
    read = {o: (await http.get(f"{servers[2].url}/orders/{o}")).json() for o in orders}
    for order_id in orders:
        assert read[order_id]["version"] == len(streams[order_id])
        assert {i["product_id"] for i in read[order_id]["items"]} == accepted[order_id] | {"first"}
    assert read["o-3"]["status"] == "Cancelled"

    for server in servers:
        assert server.stop() == 0, cluster.logs()
    assert "Traceback" not in cluster.logs(), cluster.logs()
    projected = await dump(cluster.schema)
    assert {row[0]: row[1] for row in projected["projection_checkpoints"]} == {"orders": last, "order_history": last, "workflows": last}
    assert len(projected["read_order_history"]) == sum(len(e) for e in streams.values())
    async with postgres_store(schema=cluster.schema) as store:
        report = await ProjectionRunner(store, PostgresReadModels(store)).rebuild()
    assert report.events == sum(len(e) for e in streams.values())
    assert await dump(cluster.schema) == projected


async def test_when_the_projecting_serve_process_is_killed_another_takes_over_and_reads_follow_writes(
        cluster: Cluster, http: httpx.AsyncClient) -> None:
    holder = cluster.start()
    await holder.up(http)
    survivor = cluster.start()
    await survivor.up(http)
    leases = {s.url: {n: p["lease_held_here"] for n, p in (await s.health(http))["projections"].items()}
              for s in (holder, survivor)}
    assert leases == {holder.url: {"orders": True, "order_history": True, "workflows": True},
                      survivor.url: {"orders": False, "order_history": False, "workflows": False}}

    await create(http, survivor, "k-1")  # projected by the other process, read here
    assert (await http.get(f"{survivor.url}/orders/k-1")).json()["version"] == 1

    holder.signal(signal.SIGKILL)
    holder.process.wait()
    for k in itertools.count():
        answer = await http.post(f"{survivor.url}/orders/k-1/items", json=item(f"after-{k}"))
        assert answer.status_code == 200, answer.text
        shown = (await http.get(f"{survivor.url}/orders/k-1")).json()
        assert f"after-{k}" in {i["product_id"] for i in shown["items"]}
        health = await survivor.health(http)
        if all(p["lease_held_here"] for p in health["projections"].values()) or k >= 20:
            break
    assert all(p["lease_held_here"] for p in health["projections"].values()), json.dumps(health)
    assert health["database"]["reachable"] and health["database"]["schema_version"] >= 3
