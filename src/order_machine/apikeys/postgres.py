"""The api_keys table in the PostgreSQL store's schema, through the store's connection pool.

Created on first use under the schema's migration lock, so processes starting together take turns.
Imports psycopg and the PostgreSQL store; knows no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from ..store.pg_schema import LOCK_CLASS_MIGRATION
from ..store.postgres import PostgresEventStore
from . import ApiKey, check_scope

TABLE = """CREATE TABLE IF NOT EXISTS {s}.api_keys (
    name text COLLATE "C" PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_sha256 text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
)"""
_COLUMNS = "name, scope, created_at, revoked_at"


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], check_scope(row[1]), row[2], row[3])


class PostgresKeyRows:
    def __init__(self, store: Any) -> None:
        assert isinstance(store, PostgresEventStore)
        self.store = store
        self.table = f"{store.quoted_schema}.api_keys"
        self._ready = False

    async def _rows(self, doing: str, query: str, params: Sequence[Any] = ()) -> list[Any]:
        pool = await self.store.pool()
        try:
            async with pool.connection() as conn:
                if not self._ready:
                    await self._create(conn)
                cur = await conn.execute(query, params)
                return await cur.fetchall() if cur.description is not None else []
        except psycopg.Error as exc:
            raise self.store._error(exc, doing) from exc

    async def _create(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute("SELECT to_regclass(%s)", (self.table,))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                                   (LOCK_CLASS_MIGRATION, self.store.schema))
                await conn.execute(TABLE.format(s=self.store.quoted_schema))
        self._ready = True

    async def insert(self, key: ApiKey, hashed: str) -> bool:
        rows = await self._rows(
            "creating a key",
            f"INSERT INTO {self.table} (name, scope, token_sha256, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING name",
            (key.name, key.scope, hashed, key.created_at))
        return bool(rows)

    async def all(self) -> list[ApiKey]:
        return [_key(r) for r in await self._rows("listing the keys",
                                                  f"SELECT {_COLUMNS} FROM {self.table} ORDER BY created_at, name")]

    async def find(self, hashed: str) -> ApiKey | None:
        rows = await self._rows("checking a key", f"SELECT {_COLUMNS} FROM {self.table} WHERE token_sha256 = %s",
                                (hashed,))
        return _key(rows[0]) if rows else None

    async def get(self, name: str) -> ApiKey | None:
        rows = await self._rows("reading a key", f"SELECT {_COLUMNS} FROM {self.table} WHERE name = %s", (name,))
        return _key(rows[0]) if rows else None

    async def revoke(self, name: str, at: datetime) -> None:
        await self._rows("revoking a key",
                         f"UPDATE {self.table} SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL", (at, name))

    async def close(self) -> None:
        pass  # the pool is the store's: it closes it
