"""Projection worker processes on PostgreSQL quarantine a poison stream and go on with the others; the record
is durable (the worker that takes over after a kill -9 keeps skipping it), `order-machine projections` run
from another process lists it, and `projections release` there is followed by the running workers."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import psycopg
import pytest
from integration.event_surgery import rewrite_event
from integration.pg_support import pg_url, postgres_store, shared_schema
from integration.test_postgres_workers import BOTH, Worker, fill, wait_for_checkpoints, workers  # noqa: F401 (fixture)

from order_machine.events import NewEvent, OrderCreated, OrderProcessingStarted, OrderShipped, encode
from order_machine.projections import ProjectionRunner
from order_machine.projections.postgres import PostgresReadModels

pytestmark = pytest.mark.postgres

AT = "2024-01-01T00:00:00+00:00"
BAD = {"at": AT, "product_id": "p-9", "quantity": 2, "unit_price": "12,50"}


async def rows(schema: str, sql: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        cur = await conn.execute(sql.replace("{s}", f'"{schema}"'))
        return await cur.fetchall()


async def order_machine(schema: str, *argv: str) -> tuple[int, str, str]:
    """`order-machine ARGV --db <the schema>` in a process of its own: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "order_machine", *argv, "--db", f"{pg_url()}?schema={schema}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_worker_processes_quarantine_a_poison_stream_keep_skipping_it_after_a_kill_and_follow_a_release(
        workers: list[Worker]) -> None:
    async with shared_schema() as schema, postgres_store(schema=schema) as store:
        await fill(store, 40)
        version = len(await store.load("o-00001"))
        bad = (await store.append("o-00001", [NewEvent("OrderItemAdded", BAD)], version)).position
        more = await store.append("o-99998", [encode(OrderCreated("o-99998", datetime.now(UTC), "c-1"))], 0)
        first = await Worker.start(schema, batch_size=5)
        workers.append(first)
        await first.expect_leases(BOTH)
        second = await Worker.start(schema, batch_size=5)
        workers.append(second)
        # the worker retries with its default policy (seconds of backoff), then sets o-00001 aside and goes on
        await wait_for_checkpoints(schema, more.position, timeout=60)
        assert await rows(schema, "SELECT projector, stream_id, position, event_type FROM {s}.projection_quarantine"
                          ) == [("orders", "o-00001", bad, "OrderItemAdded")]
        assert await rows(schema, "SELECT version FROM {s}.read_orders WHERE id = 'o-00001'") == [(version,)]

        await first.kill()
        await second.expect_leases(BOTH)
        skipped = await store.append("o-00001", [encode(OrderProcessingStarted("o-00001", datetime.now(UTC),
                                                                                "Confirmed", "Processing"))],
                                     version + 1)
        after = await store.append("o-99999", [encode(OrderCreated("o-99999", datetime.now(UTC), "c-1"))], 0)
        await wait_for_checkpoints(schema, after.position, timeout=30)
        assert await rows(schema, "SELECT id, version FROM {s}.read_orders WHERE id IN ('o-00001', 'o-99999') "
                                  "ORDER BY id") == [("o-00001", version), ("o-99999", 1)]

        code, out, err = await order_machine(schema, "projections", "--json")
        assert code == 0, err
        listed = {p["name"]: p for p in json.loads(out)["projections"]}
        assert [(q["stream"], q["position"]) for q in listed["orders"]["quarantined"]] == [("o-00001", bad)]
        assert "12,50" in listed["orders"]["quarantined"][0]["error"] and listed["orders"]["lag"] == 0
        code, out, err = await order_machine(schema, "check")
        assert code == 1 and "QUARANTINED o-00001 by orders" in out, out + err

        await rewrite_event(store, bad, {**BAD, "unit_price": "12.50"})
        code, out, err = await order_machine(schema, "projections", "release", "o-00001")
        assert (code, out, err) == (0, f"released o-00001 from orders: {version + 2} events re-applied\n", "")
        last = await store.append("o-00001", [encode(OrderShipped("o-00001", datetime.now(UTC), "Processing",
                                                                  "Shipped", "T-1", "1 Quay"))], version + 2)
        await wait_for_checkpoints(schema, last.position, timeout=30)  # the running worker follows it again
        assert await rows(schema, "SELECT status, version FROM {s}.read_orders WHERE id = 'o-00001'") == [
            ("Shipped", version + 3)]
        assert skipped.position < last.position
        await second.kill()

        projected = await rows(schema, "SELECT * FROM {s}.read_orders ORDER BY id")
        items = await rows(schema, "SELECT * FROM {s}.read_order_items ORDER BY order_id, line")
        await ProjectionRunner(store, PostgresReadModels(store)).rebuild("orders")
        assert await rows(schema, "SELECT * FROM {s}.read_orders ORDER BY id") == projected
        assert await rows(schema, "SELECT * FROM {s}.read_order_items ORDER BY order_id, line") == items
        assert await rows(schema, "SELECT count(*) FROM {s}.projection_quarantine") == [(0,)]
