"""User projectors' tables on PostgreSQL, in the event store's schema (its search_path inside their transactions).

A batch locks the projector's row of `projection_checkpoints` first, as the read models do, so workers in
several processes never apply it twice; leased workers run user projectors like ours. Placeholders
written `?` or `:name` become psycopg's with sqlparse's lexer. Knows custom.py and the PostgreSQL store.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import sqlparse
from psycopg.pq import TransactionStatus
from sqlparse import tokens

from ..errors import InvalidProjectorError, StoreError
from ..store import EventStore
from ..store.pg_schema import LOCK_CLASS_MIGRATION
from ..store.postgres import Conn, PostgresEventStore
from .batch import CheckpointMoved, Decoded
from .custom import CustomProjection, Params, Row
from .custom_backend import (
    REGISTRY, Registered, apply_events, check_created, decode_tables, encode_tables, plan_setup,
    refuse_transaction_control,
)
from .driver_errors import translated
from .pg_checkpoints import PostgresCheckpoints


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """`sql` with `?` as `%s` and `:name` as `%(name)s`; every other `%` doubled (psycopg reads it as a placeholder).

    A lexer, not a regular expression: a `?` or `:` inside a string, a quoted name or a comment stays as
    it is, and a cast (`x::int`) is not a placeholder.
    """
    parts = []
    for kind, text in sqlparse.lexer.tokenize(sql):  # type: ignore[no-untyped-call]
        if kind is tokens.Name.Placeholder and text == "?":
            parts.append("%s")
        elif kind is tokens.Name.Placeholder and text.startswith(":") and len(text) > 1:
            parts.append(f"%({text[1:]})s")
        else:
            parts.append(text.replace("%", "%%"))
    return "".join(parts)


class PostgresTables:
    """The tables of user projectors in the PostgreSQL schema of `store`, through its connection pool."""

    dialect = "postgresql"

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        s = store.quoted_schema
        self._search_path = f"SET LOCAL search_path TO {s}, public"
        self._registry = f"{s}.{REGISTRY}"
        self._checkpoints = PostgresCheckpoints(s)

    @classmethod
    def from_store(cls, store: EventStore, **options: Any) -> PostgresTables:
        if not isinstance(store, PostgresEventStore):
            raise StoreError(f"PostgreSQL projector tables need a PostgresEventStore, got {type(store).__name__}")
        if options:
            raise StoreError(f"unknown PostgreSQL projector-table option(s) {sorted(options)}")
        return cls(store)

    @asynccontextmanager
    async def _transaction(self, doing: str, read_only: bool = False) -> AsyncIterator[Conn]:
        pool = await self.store.pool()
        with translated(psycopg.Error, f"projector tables in {self.store!r}", doing=doing):
            async with pool.connection() as conn, conn.transaction():
                if read_only:
                    await conn.execute("SET TRANSACTION READ ONLY")
                await conn.execute(self._search_path)
                yield conn

    # ----------------------------------------------------------------- the runner's side

    async def setup(self, projections: Sequence[CustomProjection]) -> None:
        async with self._transaction("setting up projector tables") as conn:
            # processes starting together take turns (with the store's migrations too)
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS_MIGRATION, self.store.schema))
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {self._registry} (name text PRIMARY KEY, "
                               "version integer NOT NULL, tables text NOT NULL)")
            cur = await conn.execute(f"SELECT name, version, tables FROM {self._registry}")
            registry = {name: Registered(version, decode_tables(tables)) for name, version, tables in await cur.fetchall()}
            plan = plan_setup(projections, await self._names(conn), registry)
            for table in plan.drop:
                await conn.execute(f'DROP TABLE IF EXISTS {self.store.quoted_schema}."{table}"')
            for projector, table, statements in plan.create:
                for statement in statements:
                    try:
                        await conn.execute(statement)
                    except psycopg.Error as exc:
                        raise InvalidProjectorError(projector, f"the DDL of table {table!r} failed: {exc}") from exc
            check_created(plan, await self._names(conn))
            for name, version, tables in plan.record:
                await conn.execute(f"INSERT INTO {self._registry} (name, version, tables) VALUES (%s, %s, %s) "
                                   "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
                                   "tables = excluded.tables", (name, version, encode_tables(tables)))
            for name in plan.reset:
                await self._checkpoints.locked(conn, name)
                await self._checkpoints.set(conn, name, 0)

    async def _names(self, conn: Conn) -> list[str]:
        """Every relation of the schema (a new table's name must not be any of them)."""
        cur = await conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = %s", (self.store.schema,))
        return [r[0] for r in await cur.fetchall()]

    async def checkpoint(self, name: str) -> int:
        pool = await self.store.pool()
        with translated(psycopg.Error, f"projector tables in {self.store!r}", doing=f"reading {name!r}"):
            async with pool.connection() as conn:
                cur = await conn.execute(self._checkpoints.select, (name,))
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def apply(self, projection: CustomProjection, events: Sequence[Decoded], after: int) -> int:
        async with self._transaction(f"applying {projection.name!r}") as conn:
            current = await self._checkpoints.locked(conn, projection.name)
            if current != after:
                raise CheckpointMoved(projection.name, after, current)
            if not events:
                return after
            tx = PostgresTransaction(conn, projection.name)
            try:
                position = await apply_events(projection, tx, events)
            finally:
                tx.open = False
            await self._checkpoints.set(conn, projection.name, position)
            return position

    async def reset(self, projection: CustomProjection) -> None:
        async with self._transaction(f"resetting {projection.name!r}") as conn:
            await self._checkpoints.locked(conn, projection.name)
            for table in projection.table_names:
                await conn.execute(f'DELETE FROM {self.store.quoted_schema}."{table}"')  # a checked plain name
            await self._checkpoints.set(conn, projection.name, 0)

    async def fetch(self, sql: str, params: Params) -> list[Row]:
        query = pyformat(sql)
        async with self._transaction("reading", read_only=True) as conn:
            with translated(psycopg.Error, "projector tables", sql=sql):
                cur = await conn.execute(query, params)
                return await cur.fetchall() if cur.description is not None else []

    async def close(self) -> None:
        """Nothing to do: the pool belongs to the store, which closes it."""


class PostgresTransaction:
    """The ProjectorTransaction of one batch on PostgreSQL (see custom.ProjectorTransaction)."""

    dialect = "postgresql"
    __slots__ = ("_conn", "_projector", "open")

    def __init__(self, conn: Conn, projector: str) -> None:
        self._conn, self._projector, self.open = conn, projector, True

    def _check(self, sql: str) -> None:
        if not self.open:
            raise StoreError(f"projector {self._projector!r}: its transaction is over (keep no tx beyond apply)")
        refuse_transaction_control(self._projector, sql)

    def _still_in_transaction(self) -> None:
        if self._conn.info.transaction_status not in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            raise StoreError(f"projector {self._projector!r}: a statement ended the batch's transaction; "
                             "the runner commits it")

    async def execute(self, sql: str, params: Params = ()) -> list[Row]:
        self._check(sql)
        with translated(psycopg.Error, f"projector {self._projector!r}", sql=sql):
            cur = await self._conn.execute(pyformat(sql), params)
            rows = await cur.fetchall() if cur.description is not None else []
        self._still_in_transaction()
        return rows

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._check(sql)
        with translated(psycopg.Error, f"projector {self._projector!r}", sql=sql):
            async with self._conn.cursor() as cur:
                await cur.executemany(pyformat(sql), list(rows))
        self._still_in_transaction()
