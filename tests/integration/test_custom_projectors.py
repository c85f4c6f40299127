"""A user's projector with tables of its own (projections/custom.py), on every backend: its rows commit with
its checkpoint, a failure or a crash mid-batch leaves both together, a rebuild gives the same rows, its lag
is reported, and its tables are set up, guarded and recreated as it declares."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from projector_examples import Ledger, StreamCounter
from waiting import eventually_async

from order_machine.errors import InvalidProjectorError, ProjectionError, StoreError
from order_machine.events import NewEvent, StoredEvent
from order_machine.projections import (
    ProjectionRunner, ProjectorTables, ProjectorTransaction, RetryPolicy, Table, open_projector_tables,
    open_read_models,
)
from order_machine.store import EventStore

EXAMPLES = Path(__file__).resolve().parents[1] / "projector_examples.py"
NO_WAIT = RetryPolicy(retries=1, initial_delay=0.0)


async def append_events(store: EventStore, count: int, streams: int = 3) -> list[int]:
    """`count` events round-robin over `streams` streams; returns every position of the store in order.

    Their streams are named as a workflow's (`things/0`): events of a type no built-in projector knows,
    which the runner hands on as stored (a stream without `/` holds an order's events)."""
    versions = [0] * streams
    for n in range(count):
        s = n % streams
        await store.append(f"things/{s}", [NewEvent("ThingHappened", {"n": n})], versions[s])
        versions[s] += 1

    async def all_visible() -> list[StoredEvent] | None:
        # PostgreSQL shows an event once every older transaction on the server has ended
        visible = await store.read_batch(0, 100_000)
        return visible if len(visible) >= count else None

    return [e.position for e in await eventually_async(all_visible, within=30, what=f"{count} events visible")]


async def caught_up(runner: ProjectionRunner, store: EventStore) -> None:
    assert await runner.wait_for(await store.last_position(), timeout=30)


@asynccontextmanager
async def projecting(store: EventStore, *projectors: Any, **options: Any) -> AsyncIterator[
        tuple[ProjectionRunner, ProjectorTables]]:
    """A runner of only these user projectors over `store`, and their tables; closed after use."""
    read_models = open_read_models(store)
    tables = open_projector_tables(store)
    try:
        yield ProjectionRunner(store, read_models, tables.bind(projectors), **options), tables
    finally:
        await tables.close()
        await read_models.close()


async def ledger_rows(tables: ProjectorTables) -> list[int]:
    return [r[0] for r in await tables.fetch("SELECT position FROM ledger ORDER BY position")]


async def test_each_event_reaches_the_users_table_once_in_the_transaction_of_its_checkpoint(store: EventStore) -> None:
    positions = await append_events(store, 30)
    async with projecting(store, Ledger(), batch_size=7) as (runner, tables):
        await caught_up(runner, store)
        assert await ledger_rows(tables) == positions
        assert await tables.checkpoint("ledger") == positions[-1]
        assert await runner.lag() == {"ledger": 0}
        kinds = await tables.fetch("SELECT DISTINCT stream_id, type FROM ledger ORDER BY stream_id")
        assert kinds == [(f"things/{s}", "ThingHappened") for s in range(3)]


async def test_a_failing_event_stops_the_projector_with_its_rows_and_checkpoint_together(store: EventStore) -> None:
    positions = await append_events(store, 10)
    ledger = Ledger(fail_at=positions[5])  # writes the event's row, then raises
    async with projecting(store, ledger, batch_size=50, retry=NO_WAIT) as (runner, tables):
        with pytest.raises(ProjectionError) as stopped:
            await caught_up(runner, store)
        error = runner.failed["ledger"]
        assert stopped.value is error
        assert isinstance(error, ProjectionError) and isinstance(error.cause, RuntimeError)
        assert error.position == positions[5]
        assert await ledger_rows(tables) == positions[:5]  # the batch's prefix, not the failing event's row
        assert await tables.checkpoint("ledger") == positions[4]
        assert (await runner.status())[0].error is error
        ledger.fail_at = None  # repaired
        runner.resume("ledger")
        await caught_up(runner, store)
        assert await ledger_rows(tables) == positions
        assert "ledger" not in runner.failed


class Committer:
    """Tries to commit the batch itself on its third event."""

    name = "committer"
    tables = [Table("committed", "CREATE TABLE committed (n INTEGER PRIMARY KEY)")]

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        await tx.execute("INSERT INTO committed VALUES (?)", (event.data["n"],))
        if event.data["n"] == 2:
            await tx.execute("  commit")


async def test_a_projector_cannot_commit_or_end_the_batch_itself(store: EventStore) -> None:
    await append_events(store, 5)
    async with projecting(store, Committer(), retry=NO_WAIT) as (runner, tables):
        with pytest.raises(ProjectionError):
            await caught_up(runner, store)
        assert isinstance(runner.failed["committer"].cause, StoreError)
        assert "COMMIT" in str(runner.failed["committer"].cause)
        assert await tables.fetch("SELECT n FROM committed ORDER BY n") == [(0,), (1,)]


async def test_a_rebuild_empties_the_users_tables_and_gives_the_same_rows(store: EventStore) -> None:
    positions = await append_events(store, 40, streams=4)
    async with projecting(store, Ledger(), StreamCounter(), batch_size=9) as (runner, tables):
        await caught_up(runner, store)
        counts = await tables.fetch("SELECT stream_id, events FROM stream_counts ORDER BY stream_id")
        assert counts == [(f"things/{s}", 10) for s in range(4)]
        assert (await runner.rebuild("stream_counts")).projections == ("stream_counts",)
        await caught_up(runner, store)
        assert await tables.fetch("SELECT stream_id, events FROM stream_counts ORDER BY stream_id") == counts
        await runner.rebuild()  # both, in one pass
        await caught_up(runner, store)
        assert await tables.fetch("SELECT stream_id, events FROM stream_counts ORDER BY stream_id") == counts
        assert await ledger_rows(tables) == positions
        assert await runner.lag() == {"ledger": 0, "stream_counts": 0}


async def test_lag_counts_the_events_a_users_projector_has_not_applied(store: EventStore) -> None:
    positions = await append_events(store, 6)
    async with projecting(store, Ledger(), batch_size=4) as (runner, _):
        last = await store.last_position()
        assert [(s.name, s.checkpoint, s.lag) for s in await runner.status()] == [("ledger", 0, last)]
        assert await runner.wait_for(positions[3], timeout=30)  # one batch of four, or a few shorter ones
        (status,) = await runner.status()
        assert positions[3] <= status.checkpoint < last and status.lag == last - status.checkpoint
        await caught_up(runner, store)
        assert await runner.lag() == {"ledger": 0}


# --------------------------------------------------------------------------- a process killed mid-batch


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[EventStore, str]]:
    """A store that outlives a process, and the URL another process opens it with."""
    if request.param == "sqlite":
        from order_machine.store.sqlite import SQLiteEventStore

        url = f"sqlite:///{tmp_path}/orders.db"
        async with SQLiteEventStore.from_url(url, durability="fast") as sqlite:
            yield sqlite, url
    else:
        from integration.pg_support import pg_url, postgres_store

        async with postgres_store(pg_url()) as postgres:
            yield postgres, f"{pg_url()}{'&' if '?' in pg_url() else '?'}schema={postgres.schema}"


@pytest.mark.slow
async def test_a_process_killed_mid_batch_leaves_the_table_and_checkpoint_together(
        durable: tuple[EventStore, str]) -> None:
    store, url = durable
    positions = await append_events(store, 120)
    worker = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLES), url, "50", str(positions[74]),
                                                  stdout=asyncio.subprocess.PIPE)
    assert worker.stdout is not None
    async with asyncio.timeout(60):
        assert await worker.stdout.readline() == b"stalled\n"  # rows 51..75 written, not committed
    worker.send_signal(signal.SIGKILL)
    assert await worker.wait() == -signal.SIGKILL
    async with projecting(store, Ledger(), batch_size=50) as (runner, tables):
        # whole batches up to the checkpoint, none of the batch in flight (batches are 50 events, or fewer
        # on PostgreSQL while another transaction on the server holds its snapshot horizon back)
        checkpoint = await tables.checkpoint("ledger")
        assert 0 < checkpoint < positions[74]
        assert await ledger_rows(tables) == [p for p in positions if p <= checkpoint]
        await caught_up(runner, store)  # resumes after the checkpoint: a row applied twice would break the key
        assert await ledger_rows(tables) == positions


# --------------------------------------------------------------------------- tables: set up, guarded, recreated


class LedgerV2(Ledger):
    """The ledger with one more column: its version says its tables changed."""

    version = 2
    tables = [Table("ledger", "CREATE TABLE ledger (position BIGINT PRIMARY KEY, stream_id TEXT NOT NULL, "
                              "type TEXT NOT NULL, n INTEGER)")]

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        await tx.execute("INSERT INTO ledger VALUES (?, ?, ?, ?)",
                         (event.position, event.stream_id, event.type, event.data["n"]))


async def test_a_new_version_recreates_the_tables_and_rebuilds_them(durable: tuple[EventStore, str]) -> None:
    store, _ = durable
    positions = await append_events(store, 8)
    async with projecting(store, Ledger()) as (runner, _tables):
        await caught_up(runner, store)
    async with projecting(store, LedgerV2()) as (runner, tables):
        assert await tables.checkpoint("ledger") == 0
        await caught_up(runner, store)
        assert await tables.fetch("SELECT position, n FROM ledger ORDER BY position") == [
            (p, n) for n, p in enumerate(positions)]


class Squatter:
    name = "squatter"
    tables = [Table("ledger", "CREATE TABLE ledger (x INTEGER)")]

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None:
        return None


async def create_foreign_table(store: EventStore) -> None:
    """A table of the application's own, made outside any projector."""
    if store.url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(getattr(store, "path")) as conn:
            conn.execute("CREATE TABLE foreign_table (x INTEGER)")
        return
    import psycopg
    from integration.pg_support import pg_url

    async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:
        await conn.execute(f'CREATE TABLE "{getattr(store, "schema")}".foreign_table (x integer)')


async def test_a_table_owned_by_another_projector_or_by_nobody_is_refused(durable: tuple[EventStore, str]) -> None:
    store, _ = durable
    await append_events(store, 2)
    async with projecting(store, Ledger()) as (runner, _tables):
        await caught_up(runner, store)
    async with projecting(store, Squatter()) as (_runner, tables):
        with pytest.raises(InvalidProjectorError, match="'ledger' belongs to projector 'ledger'"):
            await tables.setup()
    await create_foreign_table(store)
    foreign = named("p", [Table("foreign_table", "CREATE TABLE foreign_table (x INTEGER)")])
    async with projecting(store, foreign) as (_runner, tables):
        with pytest.raises(InvalidProjectorError, match="'foreign_table' already exists and no projector owns it"):
            await tables.setup()
    async with projecting(store, Ledger()) as (runner, tables):
        assert await tables.checkpoint("ledger") == await store.last_position()  # the owner keeps its table
        assert len(await ledger_rows(tables)) == 2


def named(name: str, tables: Sequence[Table], apply: Any = None) -> Any:
    async def default(tx: ProjectorTransaction, event: StoredEvent) -> None:
        return None
    return type("P", (), {"name": name, "tables": list(tables), "apply": staticmethod(apply or default)})()


@pytest.mark.parametrize(("projector", "problem"), [
    (named("Bad Name", [Table("t", "CREATE TABLE t (x INTEGER)")]), "`name` must be"),
    (named("p", []), "non-empty list"),
    (named("p", [Table("read_orders", "CREATE TABLE read_orders (x INTEGER)")]), "reserved"),
    (named("p", [Table("events", "CREATE TABLE events (x INTEGER)")]), "reserved"),
    (named("p", [Table("t; DROP TABLE x", "CREATE TABLE t (x INTEGER)")]), "lower-case letters"),
    (named("p", [Table("t", "")]), "needs its DDL"),
    (named("p", [Table("t", "CREATE TABLE t (x INTEGER)"), Table("t", "CREATE TABLE t (x INTEGER)")]), "twice"),
    (named("orders", [Table("t", "CREATE TABLE t (x INTEGER)")]), "another projector has this name"),
    (named("p", [Table("t", "CREATE TABLE t (x INTEGER)")], apply=lambda tx, event: None), "async def apply"),
])
async def test_a_projector_that_cannot_run_is_refused_when_bound(projector: Any, problem: str) -> None:
    from order_machine.store.memory import InMemoryEventStore

    tables = open_projector_tables(InMemoryEventStore())
    with pytest.raises(InvalidProjectorError, match=problem):
        tables.bind([projector], taken=["orders", "order_history", "workflows"])
    await tables.close()


async def test_two_projectors_cannot_claim_one_table(store: EventStore) -> None:
    tables = open_projector_tables(store)
    with pytest.raises(InvalidProjectorError, match="also claimed by projector 'ledger'"):
        tables.bind([Ledger(), named("other", [Table("ledger", "CREATE TABLE ledger (x INTEGER)")])])
    await tables.close()


@pytest.mark.parametrize(("ddl", "problem"), [
    ("CREATE TABLE elsewhere (x INTEGER)", "did not create a table of that name"),
    ("CREATE TABEL t (x INTEGER)", "the DDL of table 't' failed"),
])
async def test_ddl_that_does_not_create_the_declared_table_fails_the_setup(store: EventStore, ddl: str,
                                                                          problem: str) -> None:
    async with projecting(store, named("p", [Table("t", ddl)])) as (_, tables):
        with pytest.raises(InvalidProjectorError, match=problem):
            await tables.setup()
        with pytest.raises(StoreError):  # its DDL was rolled back with the rest of the setup
            await tables.backend.fetch("SELECT * FROM elsewhere", ())


async def test_fetch_reads_the_tables_and_never_writes_them(store: EventStore) -> None:
    await append_events(store, 3)
    async with projecting(store, Ledger()) as (runner, tables):
        await caught_up(runner, store)
        assert await tables.fetch("SELECT COUNT(*) FROM ledger WHERE type = ?", ("ThingHappened",)) == [(3,)]
        with pytest.raises(StoreError):
            await tables.fetch("DELETE FROM ledger")
        assert await tables.fetch("SELECT COUNT(*) FROM ledger WHERE type = :kind", {"kind": "ThingHappened"}) == [(3,)]


async def test_a_runtime_whose_projector_cannot_run_fails_to_start() -> None:
    from order_machine import Settings, bootstrap

    broken = named("broken", [Table("totals", "CREATE TABLE elsewhere (x INTEGER)")])
    runtime = await bootstrap(Settings(db_url="memory://"), projectors=[broken])
    try:
        with pytest.raises(InvalidProjectorError, match="'broken'.*did not create"):
            await runtime.start()
    finally:
        await runtime.stop()


async def test_on_sqlite_a_batch_waits_off_the_loop_while_another_connection_holds_the_lock(tmp_path: Path) -> None:
    import sqlite3

    from order_machine.store.sqlite import SQLiteEventStore

    async with SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db", durability="fast") as store:
        positions = await append_events(store, 5)
        async with projecting(store, Ledger()) as (runner, tables):
            await tables.setup()
            blocker = sqlite3.connect(tmp_path / "orders.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the write lock, held by someone else
            # released by the loop while the batch waits for it on the writer thread: were the batch waiting on
            # the loop, this callback could not run and the lock would never come free
            asyncio.get_running_loop().call_later(0.05, blocker.execute, "COMMIT")
            await caught_up(runner, store)
            blocker.close()
            assert await ledger_rows(tables) == positions
