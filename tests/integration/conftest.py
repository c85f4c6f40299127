"""Backend fixtures: `store` runs a test on every event store (memory, SQLite, PostgreSQL), `backend` on
every store with its read models, `database` on those with SQL (SQLite, PostgreSQL).

The PostgreSQL params need ORDER_MACHINE_TEST_PG_URL; tests/integration/pg_support.py gives
`pg_url()` (skip, or fail in CI) and `postgres_store(url)`: a store on a fresh schema, dropped on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from integration.pg_support import pg_url, postgres_store
from integration.projection_support import Backend, open_backend

from order_machine.store import EventStore
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.sqlite import SQLiteEventStore


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The url of a SQLite file that does not exist yet, in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path}/data/orders.db"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[EventStore]:
    """A fresh, empty store of each backend, closed after the test."""
    if request.param == "memory":
        memory = InMemoryEventStore()
        yield memory
        await memory.close()
    elif request.param == "sqlite":
        async with SQLiteEventStore.from_url(sqlite_url) as sqlite:
            yield sqlite
    else:
        # pg_url() skips without ORDER_MACHINE_TEST_PG_URL, and fails instead when CI requires PostgreSQL
        async with postgres_store(pg_url()) as postgres:
            yield postgres


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A store with its read models, of each kind: the read-model contract runs on every one."""
    async with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """`backend` on a database only: for tests that write SQL or open a second process's read models."""
    async with open_backend(request.param, tmp_path) as opened:
        yield opened
