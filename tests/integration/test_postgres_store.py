"""The PostgreSQL store's own behaviour: URL and options, migrations, timeouts and driver errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from integration.pg_support import drop_schema, pg_url, postgres_store, shared_schema
from waiting import eventually_async

from order_machine.errors import StoreError
from order_machine.events import NewEvent
from order_machine.store import open_store
from order_machine.store import pg_schema
from order_machine.store.postgres import PostgresEventStore


def event(n: int = 0) -> NewEvent:
    return NewEvent("Noted", {"n": n})


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = (parts.username or "postgres")
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, ""))


# ---------------------------------------------------------------------------- URL and options (no server)


def test_options_come_from_the_url_query_and_keyword_arguments_override_them() -> None:
    store = open_store("postgres://u:pw@db.example:5433/orders?schema=shop&pool_size=3&sslmode=disable",
                       pool_size=7, statement_timeout_ms=500)
    assert isinstance(store, PostgresEventStore)
    assert (store.schema, store.options.pool_size, store.options.statement_timeout_ms) == ("shop", 7, 500)
    assert "pw" not in repr(store) and "db.example:5433/orders" in repr(store)


@pytest.mark.parametrize(
    ("url", "options", "named"),
    [
        ("postgresql://h/db", {"pool_sise": 3}, "pool_sise"),
        ("postgresql://h/db?pool_size=many", {}, "pool_size"),
        ("postgresql://h/db", {"schema": "Orders; DROP"}, "schema"),
        ("postgresql://h/db", {"pool_size": 0}, "pool_size"),
        ("postgresql://h/db", {"statement_timeout_ms": -1}, "statement_timeout_ms"),
        ("postgresql://h/db?auto_upgrade=perhaps", {}, "auto_upgrade"),
    ],
)
def test_bad_options_are_refused_naming_the_option(url: str, options: dict[str, object], named: str) -> None:
    with pytest.raises(StoreError, match=named):
        PostgresEventStore.from_url(url, **options)


async def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    store = PostgresEventStore.from_url("postgresql://nobody@127.0.0.1:1/nothing", connect_timeout=2)
    started = time.perf_counter()
    with pytest.raises(StoreError, match="127.0.0.1:1/nothing"):
        await store.append("o-1", [event()], 0)
    assert time.perf_counter() - started < 5
    await store.close()


# ---------------------------------------------------------------------------- with a server


@pytest.fixture
async def store() -> AsyncIterator[PostgresEventStore]:
    async with postgres_store(pool_size=4) as pg:
        yield pg


@pytest.mark.postgres
async def test_a_wrong_password_is_a_store_error_that_does_not_show_the_password() -> None:
    async with PostgresEventStore.from_url(with_password(pg_url(), "not-the-password-5up3r")) as store:
        with pytest.raises(StoreError, match="password") as failed:
            await store.last_position()
    assert "5up3r" not in str(failed.value)


@pytest.mark.postgres
async def test_the_schema_is_created_on_first_use_and_its_migrations_recorded(store: PostgresEventStore) -> None:
    assert await store.schema_version() == 0
    await store.append("o-1", [event()], 0)
    assert await store.schema_version() == pg_schema.LATEST_VERSION
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        cur = await conn.execute(f"SELECT version, name FROM {store.quoted_schema}.schema_migrations ORDER BY version")
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [m.version for m in pg_schema.MIGRATIONS]
    assert await store.upgrade() == []


@pytest.mark.postgres
async def test_several_processes_upgrading_at_once_apply_each_migration_once() -> None:
    async with shared_schema() as schema:
        stores = [PostgresEventStore.from_url(pg_url(), schema=schema) for _ in range(4)]
        applied = await asyncio.gather(*(s.upgrade() for s in stores))
        assert sorted(applied) == [[], [], [], [m.version for m in pg_schema.MIGRATIONS]]
        await asyncio.gather(*(s.close() for s in stores))


@pytest.mark.postgres
async def test_without_auto_upgrade_an_old_schema_is_refused_with_the_command_to_run() -> None:
    async with postgres_store(auto_upgrade=False) as store:
        with pytest.raises(StoreError, match="order-machine db upgrade"):
            await store.last_position()
        await store.upgrade()
        await store.append("o-1", [event()], 0)
        assert len(await store.load("o-1")) == 1


@pytest.mark.postgres
async def test_a_schema_newer_than_this_code_is_refused(store: PostgresEventStore) -> None:
    await store.upgrade()
    async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:
        await conn.execute(f"INSERT INTO {store.quoted_schema}.schema_migrations VALUES (999, 'from the future')")
    with pytest.raises(StoreError, match="newer than this order-machine"):
        await store.upgrade()


@pytest.mark.postgres
async def test_two_schemas_in_one_database_are_independent_stores() -> None:
    async with postgres_store() as one, postgres_store() as other:
        await one.append("o-1", [event(1)], 0)
        assert await other.load("o-1") == []
        assert await other.stream_ids() == []


@pytest.mark.postgres
async def test_more_events_than_one_transaction_can_number_are_refused(store: PostgresEventStore) -> None:
    with pytest.raises(StoreError, match="at most 65536 events per transaction"):
        await store.append("o-1", [event()] * (pg_schema.POSITION_SCALE + 1), 0)
    assert await store.load("o-1") == []


@pytest.mark.postgres
async def test_a_statement_blocked_past_the_statement_timeout_is_a_store_error() -> None:
    async with shared_schema() as schema, postgres_store(schema=schema) as holder, \
            postgres_store(schema=schema, statement_timeout_ms=200) as impatient:
        await holder.append("o-1", [event(1)], 0)
        async with holder.transaction() as tx:
            await tx.append("o-1", [event(2)], 1)  # holds the stream's row until the block ends
            started = time.perf_counter()
            with pytest.raises(StoreError, match="statement timeout"):
                await impatient.append("o-1", [event(3)], 1)
            assert time.perf_counter() - started < 2
        assert [e.data["n"] for e in await holder.load("o-1")] == [1, 2]


@pytest.mark.postgres
async def test_a_transaction_left_idle_past_its_timeout_is_ended_and_writes_nothing() -> None:
    async with postgres_store(idle_in_transaction_timeout_ms=200) as store, \
            await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as watcher:

        async def ended_by_the_server() -> bool:
            cur = await watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                                        "AND position(%s in query) > 0", (store.quoted_schema,))
            row = await cur.fetchone()
            return row is not None and row[0] == 0

        with pytest.raises(StoreError):
            async with store.transaction() as tx:
                await tx.append("o-1", [event(1)], 0)
                await eventually_async(ended_by_the_server, what="the idle transaction's session ended")
                await tx.append("o-2", [event(2)], 0)
        assert await store.load("o-1") == []
        await store.append("o-3", [event(3)], 0)  # the pool replaced the killed connection
        assert await store.stream_ids() == ["o-3"]


@pytest.mark.postgres
async def test_waiting_too_long_for_a_pooled_connection_is_a_store_error() -> None:
    async with postgres_store(pool_size=1, pool_timeout=0.2) as store:
        async with store.transaction() as tx:
            await tx.append("o-1", [event(1)], 0)
            with pytest.raises(StoreError, match="connection"):
                await store.last_position()


@pytest.mark.postgres
async def test_a_dropped_schema_is_reported_as_a_store_error_not_a_driver_error(store: PostgresEventStore) -> None:
    await store.append("o-1", [event(1)], 0)
    await drop_schema(pg_url(), store.schema)
    with pytest.raises(StoreError, match="does not exist"):
        await store.load("o-1")

