"""PostgreSQL test support: the test server's URL, and stores on fresh schemas dropped after each test.

Start a server with `eval "$(scripts/pg-test-server.sh)"`; without ORDER_MACHINE_TEST_PG_URL the
PostgreSQL tests skip, unless ORDER_MACHINE_REQUIRE_PG=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

PG_URL_VARIABLE = "ORDER_MACHINE_TEST_PG_URL"
SCHEMA_PREFIX = "om_test_"


def pg_url() -> str:
    """The test server's URL; skips the test without one (fails it when ORDER_MACHINE_REQUIRE_PG=1)."""
    url = os.environ.get(PG_URL_VARIABLE, "")
    if not url:
        message = f"set {PG_URL_VARIABLE} (eval \"$(scripts/pg-test-server.sh)\") to run the PostgreSQL tests"
        if os.environ.get("ORDER_MACHINE_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


def fresh_schema() -> str:
    """A schema name no other test (or concurrent test run) uses."""
    return f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"


async def drop_schema(url: str, schema: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SET lock_timeout = '20s'")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@asynccontextmanager
async def postgres_store(url: str | None = None, **options: Any) -> AsyncIterator[Any]:
    """A PostgresEventStore on a fresh, empty schema; closed and its schema dropped on exit.

    Pass `schema=` to share a schema between stores (the caller then drops it).
    """
    from order_machine.store.postgres import PostgresEventStore

    url = url or pg_url()
    own_schema = "schema" not in options
    schema = options.pop("schema", None) or fresh_schema()
    store = PostgresEventStore.from_url(url, schema=schema, **options)
    try:
        yield store
    finally:
        await store.close()
        if own_schema:
            await drop_schema(url, schema)


@asynccontextmanager
async def shared_schema(url: str | None = None) -> AsyncIterator[str]:
    """A fresh schema name for several stores (as several processes would use), dropped on exit."""
    url = url or pg_url()
    schema = fresh_schema()
    try:
        yield schema
    finally:
        await drop_schema(url, schema)
