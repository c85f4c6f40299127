"""The workflow engine keeps the instances it saved last, and never lets a stale copy decide anything.

Two engines, each with its own store object on one database, stand for two processes: on SQLite two
connections to one file, on PostgreSQL two pools on one schema, in memory one shared store.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from order_machine.catalog import Catalog
from order_machine.engine import WorkflowEngine
from order_machine.errors import ConcurrencyError, TransitionNotAllowedError
from order_machine.events import StoredEvent, workflow_stream
from order_machine.store import EventStore
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.sqlite import SQLiteEventStore

TICKET = """\
name: ticket
version: {version}
initial: Open
data:
  title: {{type: str, required: true}}
states: [{{name: Open}}, {{name: Assigned}}, {{name: Resolved, terminal: true}}]
actions:
  - name: Assign
    fields: {{assignee: {{type: str, required: true, into: assignees, append: true}}}}
  - name: Resolve
  - name: Close
transitions:
  - {{action: Assign, from: [Open, Assigned], to: Assigned}}
  - {{action: Resolve, from: Assigned, to: Resolved}}
  - {{action: Close, from: Open, to: Resolved}}
"""


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    """ticket v2 (the latest) and v1 (in versions/), the same graph."""
    folder = tmp_path / "definitions"
    (folder / "versions").mkdir(parents=True)
    (folder / "ticket.yaml").write_text(TICKET.format(version=2))
    (folder / "versions" / "ticket.v1.yaml").write_text(TICKET.format(version=1))
    return folder


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[EventStore, EventStore]]:
    """Two store objects on one database, as two processes would have."""
    if request.param == "memory":
        memory = InMemoryEventStore()
        yield memory, memory
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/workflows.db"
        async with SQLiteEventStore.from_url(url) as one, SQLiteEventStore.from_url(url) as other:
            yield one, other
    else:
        support = importlib.import_module("pg_support")
        async with support.shared_schema() as schema, support.postgres_store(schema=schema) as one, \
                support.postgres_store(schema=schema) as other:
            yield one, other


@pytest.fixture
def engines(stores: tuple[EventStore, EventStore], definitions: Path) -> tuple[WorkflowEngine, WorkflowEngine]:
    catalog = Catalog.load(definitions)
    return WorkflowEngine(stores[0], catalog), WorkflowEngine(stores[1], catalog)


async def stored(engine: WorkflowEngine, workflow_id: str = "T-1") -> list[StoredEvent]:
    return await engine.store.load(workflow_stream("ticket", workflow_id))


async def test_a_stale_cached_instance_never_decides_a_refusal(engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    mine, other = engines
    await mine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")  # `mine` keeps it: Open, v1
    await other.act("ticket", "T-1", "Assign", {"assignee": "ana"})
    result = await mine.act("ticket", "T-1", "Resolve")  # refused on the copy (Open), allowed on the store
    assert (result.state, result.version) == ("Resolved", 3)


async def test_a_stale_cached_instance_never_decides_an_acceptance(
        engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    mine, other = engines
    await mine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
    await other.act("ticket", "T-1", "Close")
    with pytest.raises(TransitionNotAllowedError) as refused:
        await mine.act("ticket", "T-1", "Assign", {"assignee": "ana"})  # allowed on the copy (Open)
    assert refused.value.state == "Resolved"
    assert [e.type for e in await stored(mine)] == ["WorkflowStarted", "WorkflowTransitioned"]


async def test_a_stale_cached_instance_is_decided_again_on_the_stored_one(
        engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    mine, other = engines
    await mine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
    await other.act("ticket", "T-1", "Assign", {"assignee": "ana"})
    result = await mine.act("ticket", "T-1", "Assign", {"assignee": "bo"})  # the copy's append conflicts
    assert result.version == 3
    assert (await mine.load("ticket", "T-1")).data["assignees"] == ["ana", "bo"]


async def test_a_pinned_version_is_judged_against_the_store_not_the_cache(
        engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    mine, other = engines
    await mine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
    await other.act("ticket", "T-1", "Assign", {"assignee": "ana"})
    result = await mine.act("ticket", "T-1", "Assign", {"assignee": "bo"}, expected_version=2)
    assert result.version == 3
    with pytest.raises(ConcurrencyError):  # and a pinned version the store has moved past is refused
        await other.act("ticket", "T-1", "Resolve", expected_version=2)


async def test_a_command_that_records_nothing_is_checked_against_the_store(
        engines: tuple[WorkflowEngine, WorkflowEngine], definitions: Path, tmp_path: Path) -> None:
    mine, other = engines
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "ticket.yaml").write_text(TICKET.format(version=1))
    before_v2 = WorkflowEngine(mine.store, Catalog.load(tmp_path / "v1"))  # a process from before version 2
    await before_v2.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
    await mine.migrate("ticket", "T-1", 2, {})                 # `mine` keeps it: on v2, at version 2
    await other.act("ticket", "T-1", "Assign", {"assignee": "ana"})
    result = await mine.migrate("ticket", "T-1", 2, {})        # the copy says "already there": nothing to append
    assert (result.state, result.version, result.events) == ("Assigned", 3, [])
    assert [e.type for e in await stored(mine)] == ["WorkflowStarted", "WorkflowMigrated", "WorkflowTransitioned"]


async def test_two_engines_on_one_store_retry_conflicts_and_lose_nothing(
        engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    mine, other = engines
    await mine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
    await asyncio.gather(*(engine.act("ticket", "T-1", "Assign", {"assignee": f"{n}-{i}"})
                           for i in range(8) for n, engine in enumerate(engines)))
    events = await stored(mine)
    assert [e.version for e in events] == list(range(1, 18))
    assignees = (await other.load("ticket", "T-1")).data["assignees"]
    assert sorted(assignees) == sorted(f"{n}-{i}" for i in range(8) for n in range(2))


WORKER = Path(__file__).with_name("workflow_worker.py")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The url of one database several processes write to."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    support = importlib.import_module("pg_support")
    base = support.pg_url()
    async with support.shared_schema() as schema:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"


async def test_processes_with_their_caches_on_one_database_lose_no_command(shared_url: str,
                                                                             definitions: Path) -> None:
    from order_machine.store import open_store

    store = open_store(shared_url)
    try:
        engine = WorkflowEngine(store, Catalog.load(definitions))
        await engine.start("ticket", {"title": "Printer on fire"}, workflow_id="T-1")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        workers = [subprocess.Popen([sys.executable, str(WORKER), shared_url, str(definitions), tag, "15"], env=env)
                   for tag in ("a", "b", "c")]
        assert [await asyncio.to_thread(w.wait, 120) for w in workers] == [0, 0, 0]
        events = await stored(engine)
        assert [e.version for e in events] == list(range(1, 47))  # every command recorded, none twice
        assignees = (await engine.load("ticket", "T-1")).data["assignees"]
        assert sorted(assignees) == sorted(f"{tag}-{i}" for tag in "abc" for i in range(15))
        for tag in "abc":  # and each process's commands in the order it sent them
            assert [a for a in assignees if a.startswith(tag)] == [f"{tag}-{i}" for i in range(15)]
    finally:
        await store.close()


class CountingStore(InMemoryEventStore):
    """The in-memory store, counting the streams it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        self.loads += 1
        return await super().load(stream_id, from_version)


async def lifecycle(engine: WorkflowEngine, workflow_id: str) -> Any:
    await engine.start("ticket", {"title": "Printer on fire"}, workflow_id=workflow_id)
    for assignee in ("ana", "bo", "cy"):
        await engine.act("ticket", workflow_id, "Assign", {"assignee": assignee})
    return await engine.act("ticket", workflow_id, "Resolve")


async def test_an_instance_this_process_saved_is_not_reloaded_for_its_next_command(definitions: Path) -> None:
    store = CountingStore()
    result = await lifecycle(WorkflowEngine(store, Catalog.load(definitions)), "T-1")
    assert (result.state, result.version, store.loads) == ("Resolved", 5, 0)


async def test_without_a_cache_every_command_reloads_the_instance(definitions: Path) -> None:
    store = CountingStore()
    result = await lifecycle(WorkflowEngine(store, Catalog.load(definitions), cache_size=0), "T-1")
    assert (result.state, result.version, store.loads) == ("Resolved", 5, 4)


async def test_the_cache_keeps_only_the_instances_saved_last(definitions: Path) -> None:
    store = CountingStore()
    engine = WorkflowEngine(store, Catalog.load(definitions), cache_size=2)
    for n in range(3):
        await engine.start("ticket", {"title": "t"}, workflow_id=f"T-{n}")
    await engine.act("ticket", "T-2", "Close")  # saved last: kept
    await engine.act("ticket", "T-1", "Close")  # kept
    assert store.loads == 0
    await engine.act("ticket", "T-0", "Close")  # saved first: dropped for T-2
    assert store.loads == 1
