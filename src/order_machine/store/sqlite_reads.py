"""The SQLite store's read paths: reader threads answering into asyncio futures, rows to StoredEvents,
the short, non-waiting stream read done on the event loop's own thread, and `Reads`, which owns the
connections of both.

Imports sqlite3, `events` and `codec`; sqlite.py owns the store, its writer and its connections' options.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ..errors import StoreError
from ..events import StoredEvent
from .codec import loads
from .sqlite_file import connect_with, is_busy, translated

T = TypeVar("T")

_parse_json = msgspec.json.Decoder().decode

COLUMNS = "position, stream_id, version, type, schema_version, data, metadata, recorded_at"

#: a stream of at most this many events is read on the event loop (see LoopReader)
LOOP_READ_LIMIT = 16


def to_events(rows: Iterable[tuple[Any, ...]]) -> list[StoredEvent]:
    """StoredEvents of `COLUMNS` rows; a cursor is consumed as it yields (no list of raw rows kept)."""
    new, event, time, parse = tuple.__new__, StoredEvent, datetime.fromisoformat, _parse_json
    out: list[StoredEvent] = []
    append = out.append
    for position, stream_id, version, type_, schema_version, data, metadata, recorded_at in rows:
        try:  # msgspec straight away; codec.loads (json decides) only for what msgspec refuses
            data_, metadata_ = parse(data), parse(metadata)
        except msgspec.DecodeError:
            data_, metadata_ = loads(data), loads(metadata)
        append(new(event, (position, stream_id, version, type_, schema_version, data_, metadata_, time(recorded_at))))
    return out


class ReaderThreads:
    """Reader threads fed by one queue, answering straight into the caller's asyncio future.

    Cheaper per read than run_in_executor (no concurrent Future to chain, no work item): a short
    read is dominated by the thread hop, and this halves the Python work around it.
    """

    def __init__(self, count: int, name: str) -> None:
        self.count, self.name = count, name
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.count == 0:  # shut down: nothing would ever answer
            raise RuntimeError(f"{self.name}: the reader threads are shut down")
        if len(self._threads) < self.count:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return await future

    def _start(self) -> None:
        with self._lock:
            if len(self._threads) < self.count:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            loop, future, fn, args = item
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller, like run_in_executor does
                outcome: tuple[Any, ...] = (_fail, future, exc)
            else:
                outcome = (_succeed, future, result)
            try:
                loop.call_soon_threadsafe(*outcome)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
                pass
            del item, future, outcome

    def shutdown(self) -> None:
        """Let the threads finish the reads queued so far, then stop them."""
        with self._lock:
            threads, self._threads = self._threads, []
            self.count = 0  # the store refuses reads once closed; none could start a thread again
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class LoopReader:
    """A connection for short stream reads on the event loop's thread, where they cost no thread hop.

    A thread hop costs more than the whole read of a 5-event order (tens of µs against ~10), so
    `load` tries this first. What keeps it from blocking the loop:
    - it never waits for a lock: busy_timeout is 0, and a busy or locked database (a checkpoint
      restarting the WAL, recovery after a crash) answers None at once: the read goes to a thread;
    - it reads at most LOOP_READ_LIMIT + 1 rows through the (stream_id, version) index: a longer
      stream answers None and is read whole by a reader thread;
    - it is used only from the thread that attached it, and nothing else uses its connection.
    What it still does on the loop is what any short read does: a few page reads, from SQLite's
    cache or the OS's. Decoding costs the same on either side: reader threads hold the GIL too.
    """

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.thread: int | None = None
        self.attaching = False

    def attach(self, conn: sqlite3.Connection) -> None:
        self.conn, self.thread = conn, threading.get_ident()

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """At most LOOP_READ_LIMIT rows of `sql` (whose last parameter must be LIMIT ?), or None."""
        conn = self.conn
        if conn is None or threading.get_ident() != self.thread:
            return None
        try:
            rows = conn.execute(sql, (*params, LOOP_READ_LIMIT + 1)).fetchall()
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise
        return rows if len(rows) <= LOOP_READ_LIMIT else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = self.thread = None


class RecentEvents:
    """The event rows this store committed last, a contiguous run of positions, kept on the loop's thread.

    The projection runner reads right behind the writer; serving its batch from here costs no thread
    hop and no SQLite read, and it is the very rows the transaction wrote (decoded by `to_events`, as
    a read would). Only a run without gaps is kept: when a transaction does not begin right after the
    run's last position (another process wrote in between), the run starts over at that transaction,
    so an answer from here never skips an event this process did not write.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.first = 0  # the position of rows[0]
        self.rows: list[tuple[Any, ...]] = []

    def add(self, after: int, rows: list[tuple[Any, ...]]) -> None:
        """Rows (`COLUMNS` order) of one committed transaction that began after position `after`."""
        if not rows:
            return
        if not self.rows or after != self.first + len(self.rows) - 1:
            self.first, self.rows = rows[0][0], list(rows)
            return
        self.rows += rows
        if len(self.rows) > 2 * self.capacity:
            drop = len(self.rows) - self.capacity
            self.first, self.rows = self.first + drop, self.rows[drop:]

    def after(self, position: int, limit: int) -> list[tuple[Any, ...]] | None:
        """Up to `limit` rows after `position` when the run holds the next one; None otherwise."""
        start = position + 1 - self.first
        if start < 0 or start >= len(self.rows):
            return None
        return self.rows[start:start + limit]

    def clear(self) -> None:
        self.rows = []


#: the StoreError for a driver error, naming what was being done
ErrorOf = Callable[[str, sqlite3.Error], StoreError]


class Reads:
    """The store's reading connections, all `query_only`: one per reader thread, opened on first use,
    and the loop's own (LoopReader) for short reads.

    `check` raises when the store is closed; it runs right before a read goes to a thread, since an
    await before it may have let close() run, and a closed store's reader threads answer no more.
    """

    def __init__(self, path: Path, busy_timeout: float, readers: int, error_of: ErrorOf,
                 check: Callable[[], None]) -> None:
        self.path, self.busy_timeout, self._error, self._check = path, busy_timeout, error_of, check
        self.pool = ReaderThreads(readers, "order-machine-sqlite-reader")
        self.loop_reader = LoopReader()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def on_loop(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows of a short read done on the loop (LoopReader.rows), or None: read it on a thread."""
        if self.loop_reader.conn is None and not self.loop_reader.attaching:
            await self._attach_loop_reader()
        with translated(self._error, "reading"):
            return self.loop_reader.rows(sql, params)

    async def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of `sql`, read on a reader thread."""
        return await self._on_thread(self._query, sql, params)

    async def events(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        """The StoredEvents of `sql` (selecting COLUMNS), read and decoded on a reader thread."""
        return await self._on_thread(self._query_events, sql, params)

    async def _attach_loop_reader(self) -> None:
        """Open the loop's read connection on a reader thread (opening a file may wait) and attach it here."""
        self.loop_reader.attaching = True
        try:
            conn = await self._on_thread(self.connect, 0.0)
            try:
                self._check()  # closed meanwhile
            except StoreError:
                conn.close()
                raise
            if self.loop_reader.conn is not None:  # another loop attached first
                conn.close()
            else:
                self.loop_reader.attach(conn)
        finally:
            self.loop_reader.attaching = False

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        self._check()
        return await self.pool.call(fn, *args)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with translated(self._error, "reading"):
            return self._reader().execute(sql, params).fetchall()

    def _query_events(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        with translated(self._error, "reading"):
            return to_events(self._reader().execute(sql, params))

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect(self.busy_timeout)
            with self._lock:
                self._conns.append(conn)
        return conn

    def connect(self, busy_timeout: float) -> sqlite3.Connection:
        return connect_with(self.path, busy_timeout, ("query_only = ON",))

    def close(self) -> None:
        """Let the threads finish the reads queued so far, then close every connection."""
        self.pool.shutdown()
        self.loop_reader.close()
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
