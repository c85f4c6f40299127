"""Store fixtures: `store` runs a test on every backend (memory, SQLite, PostgreSQL).

The PostgreSQL param needs ORDER_MACHINE_TEST_PG_URL; tests/integration/pg_support.py gives
`pg_url()` (skip, or fail in CI) and `postgres_store(url)`: a store on a fresh schema, dropped on exit.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
        try:
            support = importlib.import_module("pg_support")
        except ModuleNotFoundError as exc:
            if exc.name != "pg_support":
                raise
            pytest.skip("tests/integration/pg_support.py (postgres_store) is not written yet")
        # pg_url() skips without ORDER_MACHINE_TEST_PG_URL, and fails instead when CI requires PostgreSQL
        async with support.postgres_store(support.pg_url()) as postgres:
            yield postgres
