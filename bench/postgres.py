"""PostgreSQL benchmark (issue 6): commands with 1, 4 and 8 clients and projection events/s, beside eventsourcing.

Needs a server: ORDER_MACHINE_BENCH_PG_URL or ORDER_MACHINE_TEST_PG_URL (`eval "$(scripts/pg-test-server.sh)"`).
Each side works in a fresh schema of that database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import ProjectionRunner as PeerProjectionRunner
from psycopg.sql import SQL, Identifier

from . import store_peer
from ._report import Goal, Size, Table, count, goals_table, pick, ratio
from .store import ADDRESS, lifecycle

URL_VARIABLES = ("ORDER_MACHINE_BENCH_PG_URL", "ORDER_MACHINE_TEST_PG_URL")
CLIENTS = (1, 4, 8)


def unavailable() -> str | None:
    """Why this bench cannot run here (no server configured), or None."""
    if any(os.environ.get(name) for name in URL_VARIABLES):
        return None
    return (f"needs a PostgreSQL server: set {URL_VARIABLES[0]}=postgresql://... "
            "(or start a throwaway one: eval \"$(scripts/pg-test-server.sh)\")")


def server_url() -> str:
    for name in URL_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    raise RuntimeError(f"the PostgreSQL bench {unavailable()}")


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


# --------------------------------------------------------------------------- the peer


def peer_env(url: str, schema: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1", "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""), "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
    }


class PostgresOrderView(PostgresTrackingRecorder):
    """The peer's materialised view on PostgreSQL: one row per order, tracking in the same transaction."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = Identifier(self.datastore.schema), Identifier("order_view")
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (id text PRIMARY KEY, customer_id text, status text, amount text, "
            "tracking_number text, shipping_address text, updated_at text, version int)").format(*table))
        self._insert = SQL("INSERT INTO {}.{} (id, customer_id, status, amount, updated_at, version) "
                           "VALUES (%s, %s, 'Pending', %s, %s, 1)").format(*table)
        self._update = SQL("UPDATE {}.{} SET status = %s, version = %s, updated_at = %s, "
                           "tracking_number = COALESCE(%s, tracking_number), "
                           "shipping_address = COALESCE(%s, shipping_address) WHERE id = %s").format(*table)

    def created(self, order_id: uuid.UUID, customer_id: str, amount: Decimal, at: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._insert, (order_id.hex, customer_id, str(amount), at), prepare=True)
            self._insert_tracking(curs, tracking)

    def moved(self, order_id: uuid.UUID, status: str, version: int, at: str, tracking: Tracking,
              shipping: tuple[str, str] | None = None) -> None:
        tracking_number, address = shipping or (None, None)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._update, (status, version, at, tracking_number, address, order_id.hex), prepare=True)
            self._insert_tracking(curs, tracking)


def peer_projection(env: dict[str, str], events: int, timeout: float) -> float:
    """Events/s of the library's ProjectionRunner (LISTEN/NOTIFY subscription) projecting its first `events`."""
    started = time.perf_counter()
    with PeerProjectionRunner[store_peer.PeerOrders, PostgresOrderView](application_class=store_peer.PeerOrders, projection_class=store_peer.OrderViewProjection,
                              view_class=PostgresOrderView, env=env) as runner:
        runner.wait(events, timeout=timeout)
        seconds = time.perf_counter() - started
        tracked = runner.view.max_tracking_id(runner.app_name) or 0
    if tracked < events:
        raise AssertionError(f"eventsourcing projection tracked {tracked} of {events} events in {timeout} s")
    return events / seconds


# --------------------------------------------------------------------------- ours


class Ours:
    """Our command service on a PostgresEventStore in its own schema."""

    def __init__(self, url: str, schema: str) -> None:
        from order_machine import EventBus, OrderCommandService, open_store, order_machine

        self.store = open_store(url, schema=schema)
        self.service = OrderCommandService(self.store, order_machine(), EventBus())

    async def run_commands(self, first: int, orders: int, clients: int) -> float:
        handle = self.service.handle

        async def client(start: int) -> None:
            for i in range(start, first + orders, clients):
                await lifecycle(handle, f"pg-{i}", i)

        started = time.perf_counter()
        await asyncio.gather(*(client(first + c) for c in range(clients)))
        return time.perf_counter() - started

    async def projection(self) -> tuple[float, int]:
        """(events/s, events) of rebuilding the `orders` projection into the PostgreSQL read models."""
        from order_machine.projections import open_read_models
        from order_machine.projections.runner import ProjectionRunner

        read_models = open_read_models(self.store)
        try:
            report = await ProjectionRunner(self.store, read_models).rebuild("orders")
            return report.events_per_second, report.events
        finally:
            await read_models.close()


# --------------------------------------------------------------------------- the bench


def run(size: Size = "full") -> list[Table]:
    orders, rounds, projected, peer_projected = pick(size, (400, 2, 10_000, 3_000), (60, 1, 600, 300), (8, 1, 100, 100))
    url = server_url()
    tag = uuid.uuid4().hex[:8]
    our_schema, peer_schema = f"bench_om_{tag}", f"bench_es_{tag}"
    env = peer_env(url, peer_schema)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {}").format(Identifier(peer_schema)))
    ours_rates: dict[int, float] = {}
    peer_rates: dict[int, float] = {}
    try:
        app = store_peer.PeerOrders(env=env)
        with asyncio.Runner() as loop:
            ours = Ours(url, our_schema)
            try:
                per_round = max(orders // rounds, 1)
                first = 0
                for clients in CLIENTS:
                    s_ours = s_peer = 0.0
                    for r in range(rounds):
                        peer_first = r % 2 == 0
                        if peer_first:
                            s_peer += store_peer.run_commands(app, first, per_round, clients)
                        s_ours += loop.run(ours.run_commands(first, per_round, clients))
                        if not peer_first:
                            s_peer += store_peer.run_commands(app, first, per_round, clients)
                        first += per_round
                    ours_rates[clients] = per_round * rounds * 5 / s_ours
                    peer_rates[clients] = per_round * rounds * 5 / s_peer
                have = first * 5
                store_peer.seed(app, max(projected - have, 0) // 5)
                loop.run(_seed_ours(ours, max(projected - have, 0) // 5))
                peer_total = min(peer_projected, app.recorder.max_notification_id() or 0)
                app.close()
                peer_projection_rate = peer_projection(env, peer_total, timeout=600)
                ours_projection = loop.run(ours.projection())
            finally:
                loop.run(ours.store.close())
    finally:
        _drop_schema(url, our_schema)
        _drop_schema(url, peer_schema)
    return report(ours_rates, peer_rates, ours_projection, peer_projection_rate, peer_total, orders)


async def _seed_ours(ours: Ours, orders: int) -> None:
    from order_machine import Order
    from order_machine.events import encode

    machine = ours.service.machine

    async def one(i: int) -> None:
        order = Order.create(machine, f"seed-{i}", f"c-{i}", amount=Decimal("99.50"))
        for action, data in (("Confirm", {}), ("StartProcessing", {}),
                             ("Ship", {"tracking_number": f"TRK-{i}", "shipping_address": ADDRESS}), ("Deliver", {})):
            await order.fire(action, **data)
        await ours.store.append(order.id, [encode(e) for e in order.take_pending_events()], 0)

    for start in range(0, orders, 64):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 64, orders))))


def report(ours: dict[int, float], peer: dict[int, float], ours_projection: tuple[float, int],
           peer_projection_rate: float, peer_events: int, orders: int) -> list[Table]:
    table = Table("Event store on PostgreSQL, beside eventsourcing",
                  ["measure", "order-machine", "eventsourcing", "ours vs peer"])
    for clients in CLIENTS:
        table.add(f"commands/s, {clients} client{'s' if clients > 1 else ''}", count(ours[clients]),
                  count(peer[clients]), ratio(ours[clients], peer[clients]))
    table.add(f"projection, events/s ({ours_projection[1]:,} events; the peer: the first {peer_events:,})",
              count(ours_projection[0]), count(peer_projection_rate), ratio(ours_projection[0], peer_projection_rate))
    table.notes += [
        f"{orders:,} lifecycles (create + 4 actions) per client setting; ours: OrderCommandService over "
        "PostgresEventStore, clients are asyncio tasks; peer: eventsourcing Application, clients are threads",
        "projection: ours = ProjectionRunner.rebuild('orders') (batches, checkpoint in the same transaction); "
        "peer = the library's ProjectionRunner (LISTEN/NOTIFY) with a PostgresTrackingRecorder view, "
        "1 transaction per event, so its rate does not depend on the count: it projects the first events "
        "only, to bound the run",
        "both on their default connection pools (ours 10; the library's 5 + 10 overflow); the server "
        "runs on the same 2 cores as the clients",
    ]
    rising = ours[1] < ours[4] < ours[8]
    goals = [
        Goal("8 clients", ">= 4x peer", ratio(ours[8], peer[8]), ours[8] >= 4 * peer[8]),
        Goal("throughput rises with clients", "1 < 4 < 8", " < ".join(count(ours[c]) for c in CLIENTS), rising),
        Goal("projection", ">= 20,000 events/s", count(ours_projection[0]), ours_projection[0] >= 20_000),
    ]
    return [table, goals_table("PostgreSQL goals (issue 6)", goals)]
