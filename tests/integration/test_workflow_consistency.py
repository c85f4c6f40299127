"""The ConsistencyChecker finds a workflow instance's row that disagrees with its events and repairs it, on
every backend (memory, SQLite, PostgreSQL): a changed field, a lost row, a row no event backs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from order_machine.catalog import Catalog
from order_machine.engine import WorkflowEngine
from order_machine.events import workflow_stream
from order_machine.projections import ConsistencyChecker, FieldDifference, ProjectionRunner, ReadModels, open_read_models
from order_machine.store import EventStore

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
PAYMENT = {"amount": "100.50", "currency": "USD", "method": "card"}


@dataclass
class Side:
    store: EventStore
    models: ReadModels
    engine: WorkflowEngine
    runner: ProjectionRunner

    async def project(self, position: int) -> None:
        # the position a command answered, not the store's last: on PostgreSQL that lags behind any
        # transaction in flight on the server, and would let the projection look done too early
        assert await self.runner.wait_for(position)

    async def tamper(self, stream_id: str, **values: Any) -> None:
        """Change (or with `gone=True` delete) a stored row behind the projection's back: SQL where there is
        a database, a repair with a wrong row in memory."""
        gone = values.pop("gone", False)
        sets = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(v) if k == "data" else v for k, v in values.items()]
        statement = ("DELETE FROM read_workflows WHERE stream_id = ?" if gone
                     else f"UPDATE read_workflows SET {sets} WHERE stream_id = ?")
        scheme = self.store.url.split(":", 1)[0]
        if scheme == "sqlite":
            with closing(sqlite3.connect(getattr(self.store, "path"))) as conn, conn:
                conn.execute(statement, (*args, stream_id))
        elif scheme.startswith("postgres"):
            from integration.pg_support import pg_url
            import psycopg

            table = f"{getattr(self.store, 'quoted_schema')}.read_workflows"
            async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as pg:
                await pg.execute(statement.replace("read_workflows", table).replace("?", "%s"), (*args, stream_id))
        else:
            rows = getattr(self.models, "_workflows")
            checkpoint = await self.models.checkpoint("workflows")
            wrong = None if gone else replace(rows[stream_id], **values)
            assert await self.models.repair_workflow(stream_id, wrong, checkpoint)


@pytest.fixture
async def side(store: EventStore) -> AsyncIterator[Side]:
    models = open_read_models(store)
    engine = WorkflowEngine(store, Catalog.load(DEFINITIONS))
    yield Side(store, models, engine, ProjectionRunner(store, models))
    close = getattr(models, "close", None)
    if close is not None:
        await close()


async def two_payments(side: Side) -> None:
    done = [await side.engine.start("payment", PAYMENT, workflow_id=payment_id) for payment_id in ("pay-1", "pay-2")]
    done.append(await side.engine.act("payment", "pay-1", "process"))
    done.append(await side.engine.act("payment", "pay-1", "fail", {"error_message": "timeout"}))
    await side.project(max(d.position for d in done))


async def test_a_changed_workflow_row_is_reported_then_repaired_from_its_events(side: Side) -> None:
    await two_payments(side)
    stream = workflow_stream("payment", "pay-1")
    good = await side.models.get_workflow(stream)
    assert good is not None and good.state == "Failed"
    await side.tamper(stream, state="Completed", data={**good.data, "error_message": "tampered"})
    checker = ConsistencyChecker(side.store, side.models)

    found = await checker.check_order(stream)
    assert [(d.field, d.expected) for d in found.differences] == [("state", "Failed"), ("data", good.data)]
    assert not found.consistent and not found.repaired
    assert await side.models.get_workflow(stream) != good  # checking alone changes nothing

    fixed = await checker.check_order(stream, repair=True)
    assert fixed.repaired and fixed.differences == found.differences
    assert await side.models.get_workflow(stream) == good
    report = await checker.check_all()
    assert (report.checked, report.workflows, report.mismatched) == (2, 2, ())


async def test_a_lost_row_is_found_and_rebuilt_by_check_all(side: Side) -> None:
    await two_payments(side)
    lost = workflow_stream("payment", "pay-2")
    good = await side.models.get_workflow(lost)
    assert good is not None
    await side.tamper(lost, gone=True)
    checker = ConsistencyChecker(side.store, side.models)
    assert (await checker.check_order(lost)).differences == (FieldDifference("exists", False, True),)

    report = await checker.check_all(repair=True)
    assert (report.checked, len(report.mismatched), report.repaired) == (2, 1, 1)
    assert await side.models.get_workflow(lost) == good
    assert (await checker.check_all()).mismatched == ()


async def test_a_repair_at_a_checkpoint_the_projection_has_left_writes_nothing(side: Side) -> None:
    await two_payments(side)
    stream = workflow_stream("payment", "pay-1")
    good = await side.models.get_workflow(stream)
    checkpoint = await side.models.checkpoint("workflows")
    assert await side.models.repair_workflow(stream, None, checkpoint - 1) is False
    assert await side.models.get_workflow(stream) == good


async def test_a_repair_compares_at_the_checkpoint_and_the_projection_goes_on_over_it(side: Side) -> None:
    await two_payments(side)
    stream = workflow_stream("payment", "pay-2")
    await side.tamper(stream, version=7)
    cancelled = await side.engine.act("payment", "pay-2", "cancel")  # appended, not projected yet
    checker = ConsistencyChecker(side.store, side.models)
    found = await checker.check_order(stream, repair=True)
    assert found.repaired and found.differences == (FieldDifference("version", 7, 1),)
    await side.project(cancelled.position)  # the projection goes on from its checkpoint over the repaired row
    after = await side.models.get_workflow(stream)
    assert after is not None and (after.state, after.version) == ("Cancelled", 2)
    assert (await checker.check_all()).mismatched == ()
