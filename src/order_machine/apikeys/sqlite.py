"""The api_keys table in the SQLite store's own file, through connections of its own.

The event store opens (and checks) the file first, so keys never create a database nor adopt another
application's. Changes and lists run on a thread of their own; the lookup every request makes runs on
the event loop, as the store's short reads do (store/sqlite_reads.py, LoopReader): one indexed row costs
a fraction of the hop to a thread and back (docs/security.md has the figures), and a busy file sends it
to the thread instead of making the loop wait. Imports sqlite3 and the SQLite
store's file helpers; knows no event.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from ..store.sqlite import SQLiteEventStore
from ..store.sqlite_file import connect, is_busy, rollback, translate
from . import ApiKey, check_scope

T = TypeVar("T")

TABLE = """CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) WITHOUT ROWID"""
_COLUMNS = "name, scope, created_at, revoked_at"


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], check_scope(row[1]), datetime.fromisoformat(row[2]),
                  datetime.fromisoformat(row[3]) if row[3] is not None else None)


class SQLiteKeyRows:
    """Every statement runs on one thread with one connection: a lookup costs a thread hop, not the loop."""

    def __init__(self, store: Any) -> None:
        assert isinstance(store, SQLiteEventStore)
        self.store = store
        self._thread = ThreadPoolExecutor(1, "order-machine-api-keys")
        self._conn: sqlite3.Connection | None = None
        self._opened = False
        self._loop_conn: sqlite3.Connection | None = None  # busy_timeout 0, query_only: never waits
        self._loop_thread: int | None = None

    async def _run(self, doing: str, work: Callable[[sqlite3.Connection], T]) -> T:
        if not self._opened:
            await self.store.last_position()  # the store checks, creates and migrates the file first
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._on_thread, doing, work)

    def _on_thread(self, doing: str, work: Callable[[sqlite3.Connection], T]) -> T:
        path, timeout = self.store.path, self.store.busy_timeout
        try:
            if self._conn is None:
                conn = connect(path, timeout)
                try:
                    # a revocation must survive power loss whatever the store's durability
                    conn.execute("PRAGMA synchronous = FULL")
                    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'api_keys'").fetchone() is None:
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            conn.execute(TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
                            conn.execute("COMMIT")
                        except BaseException:
                            rollback(conn)
                            raise
                except BaseException:
                    conn.close()
                    raise
                self._conn, self._opened = conn, True
            return work(self._conn)
        except sqlite3.Error as exc:
            raise translate(path, doing, exc, timeout) from exc

    async def insert(self, key: ApiKey, hashed: str) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute("INSERT INTO api_keys (name, scope, token_sha256, created_at) VALUES (?, ?, ?, ?)",
                             (key.name, key.scope, hashed, key.created_at.isoformat()))
            except sqlite3.IntegrityError:
                return False
            return True
        return await self._run("creating a key", insert)

    async def all(self) -> list[ApiKey]:
        rows = await self._run("listing the keys", lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, name").fetchall())
        return [_key(r) for r in rows]

    async def find(self, hashed: str) -> ApiKey | None:
        query = f"SELECT {_COLUMNS} FROM api_keys WHERE token_sha256 = ?"
        if self._loop_conn is None:
            await self._attach_loop_reader()
        rows = self._on_loop(query, (hashed,))
        if rows is None:
            rows = await self._run("checking a key", lambda conn: conn.execute(query, (hashed,)).fetchall())
        return _key(rows[0]) if rows else None

    async def _attach_loop_reader(self) -> None:
        def connect_reader(conn: sqlite3.Connection) -> sqlite3.Connection:
            reader = connect(self.store.path, 0.0)
            reader.execute("PRAGMA query_only = ON")
            return reader
        reader = await self._run("opening the keys", connect_reader)  # after the table exists
        if self._loop_conn is None:
            self._loop_conn, self._loop_thread = reader, threading.get_ident()
        else:
            reader.close()

    def _on_loop(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows, read on the loop's thread; None when the file is busy or this is another thread."""
        conn = self._loop_conn
        if conn is None or threading.get_ident() != self._loop_thread:
            return None
        try:
            return conn.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            if is_busy(exc):
                return None
            raise translate(self.store.path, "checking a key", exc, 0.0) from exc

    async def get(self, name: str) -> ApiKey | None:
        rows = await self._run("reading a key", lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE name = ?", (name,)).fetchall())
        return _key(rows[0]) if rows else None

    async def revoke(self, name: str, at: datetime) -> None:
        await self._run("revoking a key", lambda conn: conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (at.isoformat(), name)))

    async def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        conn, self._conn = self._conn, None
        loop = asyncio.get_running_loop()
        if conn is not None:
            await loop.run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=False)
