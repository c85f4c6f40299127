"""SQLite read models: indexed tables in the store's own database file, one transaction per batch.

This module owns the connections, threads and transactions, and translates sqlite3's errors (once, in
`_translated`); the tables are in sqlite_schema.py, the writes in sqlite_writes.py, the queries in
sqlite_queries.py. Blocking sqlite3 runs on two private threads (writer, reader), except a small batch,
which is applied on the event loop through a connection that never waits (see `_on_loop`).
Knows rows and events; never imports the domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ..store import EventStore
from ..store.sqlite_file import is_busy
from . import sqlite_quarantine as quarantines
from . import sqlite_queries as queries
from . import sqlite_writes as writes
from .batch import Decoded, Projector
from .driver_errors import translated
from .order_projectors import ProjectedOrder
from .quarantine import Quarantine
from .queries import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, WorkflowReadModel, check_limit, created_after,
    equal_filter, updated_before,
)
from .rows import WorkflowRow
from .sqlite_schema import create_schema
from .sqlite_threads import close_threads, connect_loop

R = TypeVar("R")

#: a batch of at most this many event applications (events x projections: 100 events for the two
#: default projections) is applied on the event loop (SQLiteReadModels._on_loop); larger ones go to the
#: writer thread, where SQLite's own work runs beside the loop
LOOP_APPLY_LIMIT = 200


def store_file(store: EventStore, what: str) -> str:
    """The database file of a SQLite event store, where `what` (read models, projector tables) keeps its tables."""
    from ..store.sqlite import SQLiteEventStore

    if not isinstance(store, SQLiteEventStore):
        raise StoreError(f"SQLite {what} need a SQLiteEventStore, got {type(store).__name__}")
    return str(store.path)


class SQLiteReadModels:
    """Read models in the SQLite file at `path` (normally the event store's own file).

    `thread_batches` counts the batches applied by the writer thread rather than on the event loop (a
    large batch, a file another connection had locked, or synchronous=FULL).
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        # one thread per connection: sqlite3 objects never cross threads, and the loop never blocks
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="read-models-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="read-models-reader")
        self._connections = threading.local()
        self._schema_ready = False
        self._closed = False
        # a small batch is applied on the event loop's thread through this connection (see _on_loop)
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_thread: int | None = None
        self._attaching = False
        self.thread_batches = 0

    @classmethod
    def from_store(cls, store: EventStore, **options: Any) -> SQLiteReadModels:
        """The read models in `store`'s own database file."""
        return cls(store_file(store, "read models"), **options)

    # ----------------------------------------------------------------- plumbing

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        """sqlite3's errors as StoreError, wherever the read models' work runs (thread or loop)."""
        return translated(sqlite3.Error, f"read models in {self.path}")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._connections, "conn", None)
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            # Asking for WAL again while another connection writes fails at once with "database is
            # locked" (no busy wait for a journal-mode change): only ask when the file is not WAL yet.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._connections.conn = conn
            if not self._schema_ready:
                self._transaction(lambda c: create_schema(c, self.path))
                self._schema_ready = True
        return conn

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[..., R], *args: Any) -> R:
        if self._closed:
            raise StoreError(f"read models in {self.path}: already closed")
        with self._translated():
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def _transaction(self, work: Callable[[sqlite3.Connection], R]) -> R:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        return _finish(conn, work)

    def _snapshot(self, work: Callable[[sqlite3.Connection], R]) -> R:
        conn = self._connection()
        conn.execute("BEGIN")  # one read snapshot for the several SELECTs of a query
        try:
            return work(conn)
        finally:
            conn.execute("COMMIT")

    def _read(self, work: Callable[[sqlite3.Connection], R]) -> R:
        return work(self._connection())

    async def _write(self, work: Callable[[sqlite3.Connection], R], applications: int | None = None) -> R:
        """`work` in a write transaction: on the loop when it is a batch of at most LOOP_APPLY_LIMIT event
        applications and the loop's connection finds the file unlocked, else on the writer thread (which
        waits for the lock). `applications` is given for a batch only: those the thread applies are counted."""
        if applications is not None and applications <= LOOP_APPLY_LIMIT and await self._loop_ready():
            done, result = self._on_loop(work)
            if done:
                return result
        if applications is not None:
            self.thread_batches += 1
        return await self._run(self._writer, self._transaction, work)

    async def _loop_ready(self) -> bool:
        """Whether this thread's loop can apply a batch itself (connecting it, once, off the loop)."""
        if self._loop_conn is not None:
            return self._loop_thread == threading.get_ident()
        if self._synchronous.upper() not in ("NORMAL", "OFF") or self._attaching or self._closed:
            return False  # a commit that fsyncs stays off the loop
        self._attaching = True
        try:
            conn = await self._run(self._writer, self._connect_loop)
        finally:
            self._attaching = False
        if self._closed:
            conn.close()
            return False
        self._loop_conn, self._loop_thread = conn, threading.get_ident()
        return True

    def _connect_loop(self) -> sqlite3.Connection:
        self._connection()  # the schema exists before the loop writes
        return connect_loop(self.path, self._synchronous)

    def _on_loop(self, work: Callable[[sqlite3.Connection], R]) -> tuple[bool, R]:
        """Run `work` in a transaction on the loop's connection: (True, its result), or (False, None)
        when the file is locked (then the caller goes to the writer thread, which waits).

        A small batch costs the loop less than handing it to a thread whose every SQLite call then trades
        the GIL with the loop; larger ones (under load, and a rebuild's) go to the thread, where SQLite's own
        work runs beside the loop (docs/design-notes.md has the measurements). The connection never waits
        for a lock (busy_timeout 0) and never fsyncs (synchronous NORMAL, no automatic checkpoint: the event
        store's writer thread checkpoints the shared WAL).
        """
        conn = self._loop_conn
        assert conn is not None
        with self._translated():
            try:
                conn.execute("BEGIN IMMEDIATE")
                return True, _finish(conn, work)
            except sqlite3.Error as exc:
                if is_busy(exc) and not conn.in_transaction:  # BEGIN found the file locked: not an error here
                    return False, None  # type: ignore[return-value]
                raise

    # ----------------------------------------------------------------- projector side

    async def checkpoint(self, name: str) -> int:
        return await self._run(self._reader, self._read, lambda conn: writes.checkpoint(conn, name))

    async def apply(self, projector: Projector, events: Sequence[Decoded], after: int,
                    quarantine: Quarantine | None = None) -> int:
        return await self._write(lambda conn: writes.apply(conn, projector, events, after, quarantine), len(events))

    async def apply_together(
        self, jobs: Sequence[tuple[Projector, Sequence[Decoded], int]],
    ) -> list[int | Exception]:
        """`apply` for several projectors in one transaction and one commit.

        Each projector runs in a savepoint: one that fails is rolled back alone and its exception is
        returned in its place (the runner retries it); the others' rows and checkpoints commit.
        """
        return await self._write(lambda conn: writes.apply_together(conn, jobs),
                                 sum(len(events) for _, events, _ in jobs))

    async def reset(self, projector: Projector) -> None:
        await self._write(lambda conn: writes.reset(conn, projector))

    async def quarantined(self, *, projector: str | None = None, stream_id: str | None = None) -> list[Quarantine]:
        return await self._run(self._reader, self._read, lambda conn: quarantines.select(conn, projector, stream_id))

    async def release(self, projector: Projector, stream_id: str, events: Sequence[Decoded], checkpoint: int) -> bool:
        return await self._write(lambda conn: writes.release(conn, projector, stream_id, events, checkpoint))

    async def repair_order(self, order_id: str, projected: ProjectedOrder, checkpoint: int) -> bool:
        return await self._write(lambda conn: writes.repair_order(conn, order_id, projected, checkpoint))

    async def repair_workflow(self, stream_id: str, row: WorkflowRow | None, checkpoint: int) -> bool:
        return await self._write(lambda conn: writes.repair_workflow(conn, stream_id, row, checkpoint))

    # ----------------------------------------------------------------- queries

    async def get_order(self, order_id: str) -> OrderReadModel | None:
        return await self._run(self._reader, self._snapshot, lambda conn: queries.get_order(conn, order_id))

    async def get_summary(self, order_id: str) -> OrderSummaryReadModel | None:
        return await self._run(self._reader, self._read, lambda conn: queries.get_summary(conn, order_id))

    async def orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("?", customer_id=customer_id, status=status), limit, cursor)

    async def orders_by_status(self, status: str, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderReadModel]:
        return await self._created_page(*equal_filter("?", status=status), limit, cursor)

    async def _created_page(self, where: str, args: tuple[Any, ...], limit: int,
                            cursor: str | None) -> Page[OrderReadModel]:
        after = created_after(limit, cursor)
        return await self._run(self._reader, self._snapshot,
                               lambda conn: queries.created_orders(conn, where, args, after, limit))

    async def recently_updated(self, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderSummaryReadModel]:
        before = updated_before(limit, cursor)
        return await self._run(self._reader, self._read, lambda conn: queries.recently_updated(conn, before, limit))

    async def order_history(self, order_id: str, *, after_version: int = 0,
                            limit: int = 100) -> list[OrderHistoryEntry]:
        check_limit(limit)
        return await self._run(self._reader, self._read,
                               lambda conn: queries.order_history(conn, order_id, after_version, limit))

    async def get_workflow(self, stream_id: str) -> WorkflowReadModel | None:
        return await self._run(self._reader, self._read, lambda conn: queries.get_workflow(conn, stream_id))

    async def workflows(self, definition: str, *, state: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> Page[WorkflowReadModel]:
        after = created_after(limit, cursor)
        where, args = equal_filter("?", definition=definition, state=state)
        return await self._run(self._reader, self._read,
                               lambda conn: queries.workflows(conn, where, args, after, limit))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        await close_threads(self._connections, (self._writer, self._reader))


def _finish(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], R]) -> R:
    """`work` inside the transaction just begun on `conn`, then COMMIT; ROLLBACK if anything failed."""
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
            conn.execute("ROLLBACK")
        raise
    return result

