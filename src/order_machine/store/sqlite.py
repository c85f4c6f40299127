"""SQLite event store, the embedded default: one file, WAL, synchronous=FULL, group commit.

One writer thread owns the only writing connection; reader threads have their own connections, and a
short stream load reads on the event loop without waiting (sqlite_reads.LoopReader says why that is bounded).
Imports `errors`, `events` and the store port; never the domain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import StoreError
from ..events import NewEvent, StoredEvent
from . import AppendResult, read_in_batches
from .codec import encode_append
from .sqlite_file import (
    DURABILITY, OPTIONS, URL_HINT, check_header, connect, copy_error, number, parse_sqlite_url,
    prepare_writer, rollback, translate,
)
from .sqlite_append import Append, BatchRefused, TransactionLost, append_all, append_one
from .sqlite_reads import COLUMNS as _COLUMNS
from .sqlite_reads import LoopReader, ReaderThreads, RecentEvents, to_events

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: what the writer answers for a batch: each append's outcome; the position its transaction began
#: after and the event rows it wrote (-1 and none when nothing committed)
Written = tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]

_BATCH = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position"
_HEAD = "SELECT version, position FROM events WHERE stream_id = ? ORDER BY version DESC"
_LOAD = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? ORDER BY version"


class SQLiteEventStore:
    """Events in one SQLite file, appended by one writer thread that commits concurrent appends together.

    `path` is the database file; read models may keep their tables in it, through their own
    connections (WAL and busy_timeout let them). `commits` counts write transactions.
    Options: durability "full" (default, synchronous=FULL: a committed append survives power loss)
    or "fast" (synchronous=NORMAL: still safe on a crash, but the last commits may be lost on power
    loss); busy_timeout in seconds; readers (reader threads); max_batch (appends per transaction).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "full",
        busy_timeout: float = 5.0,
        readers: int = 2,
        max_batch: int = 1000,
        url: str | None = None,
    ) -> None:
        if durability not in DURABILITY:
            raise StoreError(
                f"unknown durability {durability!r}: use 'full' (the default; a committed append survives "
                "power loss) or 'fast' (synchronous=NORMAL; the last commits may be lost on power loss)"
            )
        self.busy_timeout = number("busy_timeout", busy_timeout, float, minimum=0.001)
        self.readers = number("readers", readers, int, minimum=1)
        self.max_batch = number("max_batch", max_batch, int, minimum=1)
        self.path = Path(path).expanduser().absolute()
        self.url = url if url is not None else f"sqlite:///{self.path}"
        self.durability = durability
        self.synchronous: str | None = None  # read back from the writer connection once open
        self.commits = 0
        self._writer = ThreadPoolExecutor(1, "order-machine-sqlite-writer")
        self._reader_pool = ReaderThreads(self.readers, "order-machine-sqlite-reader")
        self._loop_reader = LoopReader()
        self._recent = RecentEvents()  # what this store committed last, for the projections (loop thread only)
        self._write_conn: sqlite3.Connection | None = None
        self._read_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._conn_lock = threading.Lock()
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._pending: list[Append] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self._idle: list[asyncio.Future[None]] = []

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteEventStore:
        """A store for `sqlite:///path.db`; options come as keywords or as `?name=value` in the url."""
        path, given = parse_sqlite_url(url)
        unknown = sorted((set(given) | set(options)) - set(OPTIONS))
        if unknown:
            raise StoreError(f"unknown SQLite store option(s) {', '.join(unknown)} in {url!r}; known: {', '.join(OPTIONS)}")
        return cls(path, url=url, **{**given, **options})

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the file, its directories and the schema if needed; done by the first operation anyway."""
        if self._opened:
            return
        async with self._open_lock:
            self._check_usable()
            if not self._opened:
                await self._call(self._writer, self._open_writer)
                self._opened = True

    async def close(self) -> None:
        """Finish the appends already queued, then stop the threads and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writing:
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle
        async with self._open_lock:
            if self._opened:
                await self._call(self._writer, self._close_writer)
        self._writer.shutdown(wait=True)
        self._reader_pool.shutdown()
        self._loop_reader.close()
        with self._conn_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    async def __aenter__(self) -> SQLiteEventStore:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------------ writes

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        command_id: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Queue the append for the writer's next transaction and wait until it has committed."""
        rows, result_json = encode_append(stream_id, events, command_id, result)
        await self.open()
        self._check_usable()
        loop = asyncio.get_running_loop()
        if self._writing and loop is not self._loop:
            raise StoreError(f"{self.path}: one store cannot be used from two event loops at once")
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._pending.append(Append(stream_id, expected_version, rows, command_id, result_json, future))
        if not self._writing:
            # appends made in this loop iteration join the batch: the flush runs after them
            self._writing, self._loop = True, loop
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        loop = self._loop
        assert loop is not None
        done: Future[Written] = self._writer.submit(self._write_batch, batch)
        done.add_done_callback(lambda finished: loop.call_soon_threadsafe(self._finish, batch, finished))

    def _finish(self, batch: list[Append], finished: Future[Written]) -> None:
        try:
            outcomes, after, rows = finished.result()
        except Exception as exc:  # a bug in the writer, not a database error: fail loudly, keep serving
            logger.exception("SQLite writer failed on %s", self.path)
            outcomes = [StoreError(f"{self.path}: the writer failed: {exc!r}") for _ in batch]
            after, rows = -1, []
            self._recent.clear()
        self._recent.add(after, rows)  # before any caller hears of its append: a read after it finds them
        for request, outcome in zip(batch, outcomes):
            if request.future.done():  # the caller was cancelled; its append may still have committed
                continue
            if isinstance(outcome, Exception):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
        if self._pending:
            self._flush()
            return
        self._writing = False
        for idle in self._idle:
            if not idle.done():
                idle.set_result(None)
        self._idle.clear()

    # ------------------------------------------------------------------ reads

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        if not self._opened:
            await self.open()
        self._check_usable()
        loop_reader = self._loop_reader
        if loop_reader.conn is None and not loop_reader.attaching:
            await self._attach_loop_reader()
        try:  # a short stream on the loop, with no thread hop (see LoopReader for why it cannot block)
            rows = loop_reader.rows(f"{_LOAD} LIMIT ?", (stream_id, from_version))
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc
        if rows is not None:
            return to_events(rows)
        return await self._on_reader(self._query_events, _LOAD, (stream_id, from_version))

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        if not self._opened:
            await self.open()
        self._check_usable()
        if self._loop_reader.conn is None and not self._loop_reader.attaching:
            await self._attach_loop_reader()
        try:  # one index seek: on the loop like a short load, else on a reader thread
            # LoopReader binds its row limit last; min() keeps the read to the one head row
            rows = self._loop_reader.rows(f"{_HEAD} LIMIT min(?, 1)", (stream_id,))
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc
        if rows is None:
            rows = await self._on_reader(self._query, f"{_HEAD} LIMIT 1", (stream_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def _attach_loop_reader(self) -> None:
        """Open the loop's read connection on a reader thread (opening a file may wait) and attach it here."""
        self._loop_reader.attaching = True
        try:
            conn = await self._on_reader(self._connect_reader, 0.0)
            if self._closed or self._loop_reader.conn is not None:  # closed, or another loop attached first
                conn.close()
            else:
                self._loop_reader.attach(conn)
        finally:
            self._loop_reader.attaching = False

    async def read_batch(self, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        limit = max(limit, 0)
        recent = self._recent.after(after, limit) if limit else None
        if recent is not None:  # the projections following this process's own writes: no read at all
            return to_events(recent)
        if not self._opened:
            await self.open()
        self._check_usable()
        if self._loop_reader.conn is None and not self._loop_reader.attaching:
            await self._attach_loop_reader()
        try:  # a caught-up follower's read finds a few rows or none: on the loop, else on a reader thread
            rows = self._loop_reader.rows(f"{_BATCH} LIMIT min(?, ?)", (after, limit))
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc
        if rows is not None:
            return to_events(rows)
        return await self._on_reader(self._query_events, f"{_BATCH} LIMIT ?", (after, limit))

    def read_all(self, after: int = 0, batch_size: int = 500) -> AsyncIterator[StoredEvent]:
        return read_in_batches(self.read_batch, after, batch_size)

    async def last_position(self) -> int:
        rows = await self._read("SELECT position FROM events ORDER BY position DESC LIMIT 1", ())
        return int(rows[0][0]) if rows else 0

    async def command_result(self, command_id: str) -> Mapping[str, Any] | None:
        rows = await self._read("SELECT result FROM commands WHERE command_id = ?", (command_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    async def stream_ids(self, after: str = "", limit: int = 1000) -> list[str]:
        # every stream has a version 1, so this walks the (stream_id, version) index without DISTINCT
        rows = await self._read(
            "SELECT stream_id FROM events WHERE stream_id > ? AND version = 1 ORDER BY stream_id LIMIT ?",
            (after, max(limit, 0)))
        return [str(row[0]) for row in rows]

    async def _read_events(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        if not self._opened:
            await self.open()
        self._check_usable()
        return await self._on_reader(self._query_events, sql, params)

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self._opened:
            await self.open()
        self._check_usable()
        return await self._on_reader(self._query, sql, params)

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a reader thread; refused once the store is closed (an await before this
        call may have let close() run, and a closed store's reader threads answer no more)."""
        self._check_usable()
        return await self._reader_pool.call(fn, *args)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc

    def _query_events(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        try:
            return to_events(self._reader().execute(sql, params))
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect_reader(self.busy_timeout)
            with self._conn_lock:
                self._read_conns.append(conn)
        return conn

    def _connect_reader(self, busy_timeout: float) -> sqlite3.Connection:
        conn = connect(self.path, busy_timeout)
        try:
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("opening", exc) from exc
        return conn

    # ------------------------------------------------------------------ the writer thread

    def _write_batch(self, batch: list[Append]) -> Written:
        """Apply a batch in one transaction; an append SQLite aborted is dropped and the rest retried.

        Returns each append's outcome, and the position the committed transaction began after with
        the event rows it wrote (-1 and none when nothing committed).
        """
        outcomes: dict[int, AppendResult | Exception] = {}
        todo = list(range(len(batch)))
        after, rows = -1, list[tuple[Any, ...]]()
        one_by_one = False  # first the whole batch in a few statements; append by append if SQLite refuses it
        while todo:
            try:
                results, after, rows = self._transaction([batch[i] for i in todo], one_by_one)
            except BatchRefused:
                one_by_one = True  # rolled back: find which append SQLite refuses, each behind a savepoint
                continue
            except TransactionLost as lost:
                outcomes[todo.pop(lost.index)] = lost.error
                continue
            except StoreError as exc:
                for i in todo:
                    outcomes[i] = copy_error(exc)
                break
            outcomes.update(zip(todo, results))
            break
        return [outcomes[i] for i in range(len(batch))], after, rows

    def _transaction(self, batch: list[Append], one_by_one: bool
                     ) -> tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]:
        conn = self._write_conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error("starting a write", exc) from exc
        try:
            row = conn.execute("SELECT position FROM events ORDER BY position DESC LIMIT 1").fetchone()
            position = after = row[0] if row else 0
            results: list[AppendResult | Exception] = []
            inserted: list[tuple[Any, ...]] = []
            if one_by_one:
                for index, request in enumerate(batch):
                    outcome, position = append_one(conn, request, position, index, self._error, inserted)
                    results.append(outcome)
            else:
                results, inserted = append_all(conn, batch, position)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            raise self._error("committing (nothing was written)", exc) from exc
        except BaseException:
            rollback(conn)
            raise
        self.commits += 1
        return results, after, inserted

    def _open_writer(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self.path}: {exc}") from exc
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a database file; {URL_HINT}")
        check_header(self.path)
        conn = connect(self.path, self.busy_timeout)
        try:
            self.synchronous = prepare_writer(conn, self.path, DURABILITY[self.durability])
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("opening", exc) from exc
        except BaseException:
            conn.close()
            raise
        self._write_conn = conn

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    # ------------------------------------------------------------------ helpers

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")

    def _error(self, doing: str, exc: sqlite3.Error) -> StoreError:
        return translate(self.path, doing, exc, self.busy_timeout)

    async def _call(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

