"""On PostgreSQL: the events of a 0.1.0 database project to the read models 0.1.0 answered, and migration 5
fills an existing orders view's `data` with exactly what replaying the events gives."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from order_machine import Settings, bootstrap
from order_machine.commands import CancelOrder, ConfirmOrder, CreateOrder, ShipOrder, StartProcessing
from order_machine.events import NewEvent
from order_machine.projections.consistency import ConsistencyChecker
from order_machine.store.pg_schema import MIGRATIONS, quote_schema
from order_machine.store.sqlite import SQLiteEventStore

from integration.pg_support import drop_schema, fresh_schema, pg_url
from integration.test_release_fixture import DEFINITIONS, FIXTURE, _answers

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema_url() -> AsyncIterator[tuple[str, str]]:
    base, schema = pg_url(), fresh_schema()
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={quote(schema)}", schema
    finally:
        await drop_schema(base, schema)


async def test_the_events_of_a_0_1_0_database_project_on_postgresql_to_what_it_answered(
        schema_url: tuple[str, str], tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "orders.db", tmp_path / "orders.db")  # the fixture itself is never opened
    old = SQLiteEventStore(tmp_path / "orders.db")
    try:
        events = [e async for e in old.read_all()]
    finally:
        await old.close()
    settings = Settings(db_url=schema_url[0], definitions_dir=DEFINITIONS)
    async with await bootstrap(settings) as rt:
        for e in events:  # as 0.1.0 stored them: its type names and schema versions
            await rt.store.append(e.stream_id, [NewEvent(e.type, e.data, e.schema_version, e.metadata,
                                                         e.recorded_at)], e.version - 1)
        assert await rt.wait_for_projections(events[-1].position, timeout=30)
        expected = json.loads((FIXTURE / "expected.json").read_text())
        ids = sorted(k for k in expected if k != "by_status")
        found = await _answers(rt, ids)
        for oid in ids:  # history positions are the PostgreSQL store's own
            for entry in found[oid]["history"] + expected[oid]["history"]:
                entry.pop("position")
        assert found == expected


async def test_migration_5_fills_the_orders_data_as_replaying_the_events_does(schema_url: tuple[str, str]) -> None:
    url, schema = schema_url
    settings = Settings(db_url=url, definitions_dir=DEFINITIONS)
    async with await bootstrap(settings) as rt:
        for oid in ("a", "b", "c"):
            await rt.service.handle(CreateOrder(order_id=oid, customer_id="c", amount="5"))
            await rt.service.handle(ConfirmOrder(order_id=oid))
        await rt.service.handle(StartProcessing(order_id="a"))
        await rt.service.handle(ShipOrder(order_id="a", tracking_number="1Z", shipping_address="1 Main St"))
        await rt.service.handle(CancelOrder(order_id="b", reason="no stock"))
        assert await rt.wait_for_projections(await rt.store.last_position(), timeout=30)
        async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:
            # the view as migration 4 left it: no data yet
            await conn.execute(f"UPDATE {quote_schema(schema)}.read_orders SET data = '{{}}'")
            migration = next(m for m in MIGRATIONS if m.version == 5)
            await conn.execute(migration.statements[1].format(s=quote_schema(schema)))
        checker = ConsistencyChecker(rt.store, rt.read_models, initial_state=rt.machine.definition.initial)
        report = await checker.check_all()
        assert report.checked == 3 and not report.mismatched, report
        assert (await rt.service.get_order("a")).data == {"tracking_number": "1Z", "shipping_address": "1 Main St"}
        assert (await rt.service.get_order("b")).data == {"cancellation_reason": "no stock"}
