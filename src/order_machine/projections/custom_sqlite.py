"""User projectors' tables on SQLite: in the store's file, or (memory://) in a private in-memory database.

A batch runs on the event loop's thread, through a connection of its own that never waits for a lock:
each of the user's statements is then a plain sqlite3 call, not a hand-off to a thread per statement
(docs/projectors.md, Speed). When another connection holds the file's write lock, the batch
goes to the writer thread instead, whose connection waits; reads (`fetch`, checkpoints) run on a reader
thread. In memory, the one connection is used on the loop. Knows custom.py's API; never the domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InvalidProjectorError, StoreError
from ..store.sqlite_file import is_busy
from .batch import CheckpointMoved, Decoded
from .custom import CustomProjection, Params, Row
from .custom_backend import (
    REGISTRY, Registered, apply_events, check_created, decode_tables, encode_tables, plan_setup,
    refuse_transaction_control,
)
from .driver_errors import translated
from .sqlite_threads import close_threads, connect_loop

R = TypeVar("R")

#: after a batch of more events than this, committed on the loop's connection (which never checkpoints the
#: WAL, so that a commit never waits for an fsync on the loop), the writer thread checkpoints the WAL
#: passively: a rebuild with no other writer to do it would otherwise grow the WAL without bound
WAL_CHECKPOINT_AFTER = 1000

_REGISTRY_DDL = (f"CREATE TABLE IF NOT EXISTS {REGISTRY} (name TEXT PRIMARY KEY, version INTEGER NOT NULL, "
                 "tables TEXT NOT NULL, position INTEGER NOT NULL) WITHOUT ROWID")
_POSITION = f"SELECT position FROM {REGISTRY} WHERE name = ?"
_SET_POSITION = f"UPDATE {REGISTRY} SET position = ? WHERE name = ?"
# every name a new table would collide with: SQLite keeps tables, views and indexes in one namespace
_NAMES = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'index')"


def _value(value: Any) -> Any:
    # sqlite3 binds neither Decimal nor (since 3.12, without a deprecated adapter) datetime: store their text,
    # exact and sortable as ISO 8601 is
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})  # bound as they are: no copy of the params


def _adapt(params: Params) -> Params:
    if isinstance(params, Mapping):
        return params if all(type(v) in _PLAIN for v in params.values()) else {
            k: _value(v) for k, v in params.items()}
    return params if all(type(v) in _PLAIN for v in params) else tuple(map(_value, params))


class SQLiteTables:
    """The tables of user projectors in the SQLite file at `path`, or in memory when `path` is None."""

    dialect = "sqlite"

    def __init__(self, path: str | None, *, busy_timeout_ms: int = 10_000, synchronous: str = "NORMAL") -> None:
        self.path = path
        self._busy_timeout_ms, self._synchronous = busy_timeout_ms, synchronous
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="projector-tables-writer") if path else None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="projector-tables-reader") if path else None
        self._local = threading.local()  # one connection per thread
        self._memory: sqlite3.Connection | None = None
        self._loop_conn: sqlite3.Connection | None = None  # the loop's, in a file (see the module docstring)
        self._lock = asyncio.Lock()  # one transaction at a time
        self._in: ThreadPoolExecutor | None = None  # where the open transaction runs (None: on the loop)
        self._loop_thread: int | None = None
        self._allowed: set[str] = set()  # statements already found not to be transaction control
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteTables({self.path or ':memory:'})"

    # ----------------------------------------------------------------- plumbing

    def _connection(self, reader: bool = False) -> sqlite3.Connection:
        if self.path is None:
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", isolation_level=None)
            return self._memory
        if threading.get_ident() == self._loop_thread and self._loop_conn is not None:
            return self._loop_conn
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            # rows that can be rebuilt from the events need no fsync per commit (as the read models')
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if reader:
                conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
        return conn

    async def _on(self, executor: ThreadPoolExecutor | None, fn: Callable[..., R], *args: Any) -> R:
        """`fn(connection, *args)` on the executor's thread (inline in memory)."""
        if self._closed:
            raise StoreError(f"projector tables in {self.path or ':memory:'}: already closed")
        reader = executor is not None and executor is self._reader
        if executor is None:
            return fn(self._connection(), *args)
        return await asyncio.get_running_loop().run_in_executor(
            executor, lambda: fn(self._connection(reader), *args))

    def _translated(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """sqlite3's errors of the tables' own work as StoreError, naming the file and what was being done."""
        return translated(sqlite3.Error, f"projector tables in {self.path or ':memory:'}", doing=doing)

    async def _write(self, doing: str, fn: Callable[..., R], *args: Any) -> R:
        with self._translated(doing):
            return await self._on(self._writer, fn, *args)

    async def _begin(self, doing: str) -> ThreadPoolExecutor | None:
        """Begin a write transaction on the loop's connection, or (file locked) on the writer thread's."""
        if self.path is None:
            await self._on(None, _begin)
            return None
        if self._loop_conn is None:
            self._loop_conn = await self._write("connecting", _connect_loop, self.path, self._synchronous)
            self._loop_thread = threading.get_ident()
        if self._loop_thread == threading.get_ident():
            with self._translated(doing):
                try:
                    self._loop_conn.execute("BEGIN IMMEDIATE")
                    return None
                except sqlite3.Error as exc:
                    if not is_busy(exc) or self._loop_conn.in_transaction:
                        raise
        await self._write(doing, _begin)  # waits for the lock (busy timeout) off the loop
        return self._writer

    @asynccontextmanager
    async def _transaction(self, doing: str) -> AsyncIterator[None]:
        async with self._lock:
            self._in = await self._begin(doing)
            try:
                yield
                await self._in_transaction(doing, _commit)
            except BaseException:
                await self._on(self._in, _rollback)
                raise

    async def _in_transaction(self, doing: str, fn: Callable[..., R], *args: Any) -> R:
        with self._translated(doing):
            return await self._on(self._in, fn, *args)

    async def user_statement(self, projector: str, fn: Callable[..., R], sql: str, *args: Any) -> R:
        """A statement of the user's `apply`, inside the batch's transaction."""
        if sql not in self._allowed:
            refuse_transaction_control(projector, sql)
            if len(self._allowed) < 4096:  # a projector's statements are a handful of texts
                self._allowed.add(sql)
        with translated(sqlite3.Error, f"projector {projector!r}", sql=sql):
            if self._in is None and not self._closed:  # on the loop: a plain call, no hand-off
                return _checked(fn)(self._connection(), sql, *args)
            return await self._on(self._in, _checked(fn), sql, *args)

    # ----------------------------------------------------------------- the runner's side

    async def setup(self, projections: Sequence[CustomProjection]) -> None:
        async with self._transaction("setting up projector tables"):
            await self._in_transaction("setting up projector tables", _setup, projections)

    async def checkpoint(self, name: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(_POSITION, (name,)).fetchone()
            return int(row[0]) if row else 0
        with self._translated(f"reading {name!r}"):
            return await self._on(self._reader, read)

    async def apply(self, projection: CustomProjection, events: Sequence[Decoded], after: int) -> int:
        doing = f"applying {projection.name!r}"
        async with self._transaction(doing):
            current = await self._in_transaction(doing, _position, projection.name)
            if current != after:
                raise CheckpointMoved(projection.name, after, current)
            if not events:
                return after
            tx = SQLiteTransaction(self, projection.name)
            try:
                position = await apply_events(projection, tx, events)
            finally:
                tx.open = False
            await self._in_transaction(doing, _set_position, projection.name, position)
            on_loop = self._in is None
        if on_loop and self._writer is not None and len(events) > WAL_CHECKPOINT_AFTER:
            await self._write("checkpointing the WAL", _wal_checkpoint)
        return position

    async def reset(self, projection: CustomProjection) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for table in projection.table_names:
                conn.execute(f'DELETE FROM "{table}"')  # a checked plain name (custom.NAME)
            conn.execute(_SET_POSITION, (0, projection.name))
        async with self._transaction(f"resetting {projection.name!r}"):
            await self._in_transaction(f"resetting {projection.name!r}", work)

    async def fetch(self, sql: str, params: Params) -> list[Row]:
        adapted = _adapt(params)
        with translated(sqlite3.Error, "projector tables", sql=sql):
            if self.path is not None:
                return await self._on(self._reader, _fetch, sql, adapted)
            async with self._lock:  # in memory, never in the middle of a batch's transaction
                return await self._on(None, _fetch_read_only, sql, adapted)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in (self._memory, self._loop_conn):
            if conn is not None:
                conn.close()
        self._memory = self._loop_conn = None
        await close_threads(self._local, (self._writer, self._reader))


class SQLiteTransaction:
    """The ProjectorTransaction of one batch on SQLite (see custom.ProjectorTransaction)."""

    dialect = "sqlite"
    __slots__ = ("_tables", "_projector", "open")

    def __init__(self, tables: SQLiteTables, projector: str) -> None:
        self._tables, self._projector, self.open = tables, projector, True

    def _check(self) -> None:
        if not self.open:
            raise StoreError(f"projector {self._projector!r}: its transaction is over (keep no tx beyond apply)")

    async def execute(self, sql: str, params: Params = ()) -> list[Row]:
        self._check()
        return await self._tables.user_statement(self._projector, _fetch, sql, _adapt(params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._check()
        await self._tables.user_statement(self._projector, _executemany, sql, [_adapt(r) for r in rows])


# --------------------------------------------------------------------------- on the connection's thread


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _connect_loop(_writer: sqlite3.Connection, path: str, synchronous: str) -> sqlite3.Connection:
    """The loop's connection (sqlite_threads.connect_loop), made on the writer's thread once it opened the file."""
    return connect_loop(path, synchronous)


def _wal_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
        conn.execute("ROLLBACK")


def _position(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(_POSITION, (name,)).fetchone()
    return int(row[0]) if row else 0


def _set_position(conn: sqlite3.Connection, name: str, position: int) -> None:
    conn.execute(_SET_POSITION, (position, name))


def _fetch(conn: sqlite3.Connection, sql: str, params: Params) -> list[Row]:
    return conn.execute(sql, params).fetchall()


def _fetch_read_only(conn: sqlite3.Connection, sql: str, params: Params) -> list[Row]:
    conn.execute("PRAGMA query_only = 1")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.execute("PRAGMA query_only = 0")


def _executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[Params]) -> None:
    conn.executemany(sql, rows)


def _checked(fn: Callable[..., R]) -> Callable[..., R]:
    def run(conn: sqlite3.Connection, *args: Any) -> R:
        result = fn(conn, *args)
        if not conn.in_transaction:  # its commit would have left rows without their checkpoint
            raise StoreError("a projector's statement ended the batch's transaction; the runner commits it")
        return result
    return run


def _setup(conn: sqlite3.Connection, projections: Sequence[CustomProjection]) -> None:
    conn.execute(_REGISTRY_DDL)
    registry = {name: Registered(version, decode_tables(tables))
                for name, version, tables in conn.execute(f"SELECT name, version, tables FROM {REGISTRY}")}
    plan = plan_setup(projections, (r[0] for r in conn.execute(_NAMES)), registry)
    for table in plan.drop:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    for projector, table, statements in plan.create:
        for statement in statements:
            try:
                conn.execute(statement)
            except sqlite3.Error as exc:
                raise InvalidProjectorError(projector, f"the DDL of table {table!r} failed: {exc}") from exc
    check_created(plan, (r[0] for r in conn.execute(_NAMES)))
    for name, version, tables in plan.record:
        conn.execute(f"INSERT INTO {REGISTRY} (name, version, tables, position) VALUES (?, ?, ?, 0) "
                     "ON CONFLICT (name) DO UPDATE SET version = excluded.version, tables = excluded.tables, "
                     "position = 0", (name, version, encode_tables(tables)))
