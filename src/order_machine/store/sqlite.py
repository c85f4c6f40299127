"""SQLite event store, the embedded default: one file, WAL, durable group commit.

Appends are committed on the event loop's own thread, a batch per transaction, through a connection
that never waits for a lock (busy_timeout=0) and never fsyncs; the callers are answered only once the
WAL is fsynced (by a helper process, sqlite_sync.py, or a sync thread where that cannot be used), and
the appends that arrive meanwhile make the next batch. When the file is locked (another process
writing, a read-model transaction), the batch goes to the writer thread's ordinary synchronous=FULL
connection instead. Reader threads have their own connections, and
a short stream load reads on the loop without waiting (sqlite_reads.LoopReader says why that is bounded).
Imports `errors`, `events` and the store port; never the domain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
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
    DURABILITY, FSYNC, OPTIONS, URL_HINT, check_header, check_not_foreign, connect, copy_error, is_busy, number,
    parse_sqlite_url, prepare_writer, rollback, translate,
)
from .sqlite_append import Append, BatchRefused, TransactionLost, append_all, append_one
from .sqlite_reads import COLUMNS as _COLUMNS
from .sqlite_reads import LoopReader, ReaderThreads, RecentEvents, to_events
from .sqlite_sync import SyncProcessLost, SyncProcess

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: what the writer answers for a batch: each append's outcome; the position its transaction began
#: after and the event rows it wrote (-1 and none when nothing committed)
Written = tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]
#: a batch committed but not yet fsynced, with each append's outcome
Unsynced = tuple[list[Append], list[AppendResult | Exception]]

_BATCH = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position"
#: checkpoint after about this many WAL pages written by the loop (SQLite's own default for autocheckpoint)
_CHECKPOINT_PAGES = 1000
_HEAD = "SELECT version, position FROM events WHERE stream_id = ? ORDER BY version DESC"
_LOAD = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? ORDER BY version"


#: what SQLite itself calls to sync the WAL on Linux: the data, and the size when it grew, not the mtime
_datasync = getattr(os, "fdatasync", os.fsync)


class WriterBusy(Exception):
    """The loop's connection found the file locked: the batch goes to the writer thread, which may wait."""


class SQLiteEventStore:
    """Events in one SQLite file; concurrent appends are committed together, on the event loop (or on the
    writer thread when the file is locked).

    `path` is the database file; read models may keep their tables in it, through their own
    connections (WAL and busy_timeout let them). `commits` counts write transactions, `checkpoints`
    the WAL checkpoints it ran, `thread_batches` the batches the writer thread committed because the
    loop's connection found the file locked.
    Options: durability "full" (default: an append returns once its transaction is on disk, so it
    survives power loss) or "fast" (synchronous=NORMAL: still safe on a crash, but the last commits may
    be lost on power loss); busy_timeout in seconds; readers (reader threads); max_batch (appends per
    transaction); fsync, who fsyncs the WAL with "full": "process" (the default: a helper process, see
    sqlite_sync.py) or "thread" (a thread of this process). With "full", a batch is visible to readers
    from its commit, up to an fsync (about a millisecond) before its callers hear of it (see the
    README's design notes).
    Injected for tests (a slow or failing disk): `datasync`, what the sync thread calls with the WAL's
    file descriptor, and `fsync_helper`, the helper process (by default one for this file's WAL).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "full",
        busy_timeout: float = 5.0,
        readers: int = 2,
        max_batch: int = 1000,
        fsync: str = "process",
        url: str | None = None,
        datasync: Callable[[int], None] | None = None,
        fsync_helper: SyncProcess | None = None,
    ) -> None:
        if durability not in DURABILITY:
            raise StoreError(
                f"unknown durability {durability!r}: use 'full' (the default; a committed append survives "
                "power loss) or 'fast' (synchronous=NORMAL; the last commits may be lost on power loss)"
            )
        if fsync not in FSYNC:
            raise StoreError(f"unknown fsync {fsync!r}: use 'process' (the default; a helper process fsyncs "
                             "the WAL) or 'thread' (a thread of this process does)")
        self.busy_timeout = number("busy_timeout", busy_timeout, float, minimum=0.001)
        self.readers = number("readers", readers, int, minimum=1)
        self.max_batch = number("max_batch", max_batch, int, minimum=1)
        self.path = Path(path).expanduser().absolute()
        self.url = url if url is not None else f"sqlite:///{self.path}"
        self.durability = durability
        self.synchronous: str | None = None  # read back from the writer connection once open
        self.commits = 0  # write transactions committed (a batch of appends each)
        self.fsyncs = 0  # fsyncs of the WAL (each covers every commit before it)
        self.checkpoints = 0  # PASSIVE checkpoints run for the loop's commits
        self.thread_batches = 0  # batches handed to the writer thread (the file was locked for the loop)
        self._writer = ThreadPoolExecutor(1, "order-machine-sqlite-writer")
        self._syncer = ThreadPoolExecutor(1, "order-machine-sqlite-fsync")  # with fsync="thread", or as a fallback
        self._sync_process = (fsync_helper or SyncProcess(Path(f"{self.path}-wal"))) if fsync == "process" else None
        self._datasync = datasync or _datasync
        self._loop_writer: sqlite3.Connection | None = None  # commits on the loop; never waits, never fsyncs
        self._loop_writer_lock = threading.Lock()
        self._wal_fd: int | None = None
        self._fsync_failed: StoreError | None = None
        self._since_checkpoint = 0  # the loop connection never checkpoints (that fsyncs): the writer thread does
        self._reader_pool = ReaderThreads(self.readers, "order-machine-sqlite-reader")
        self._loop_reader = LoopReader()
        self._listeners: list[Callable[[], None]] = []
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
        self._loop_thread: int | None = None  # the thread self._loop runs in
        self._writing = False  # a batch is being committed (its flush is scheduled or running)
        self._syncing = False  # an fsync of the WAL is running (helper process or sync thread)
        self._unsynced: list[Unsynced] = []  # committed, not yet fsynced
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
                self._loop_writer = await self._call(self._writer, self._connect_loop_writer)
                self._opened = True

    async def close(self) -> None:
        """Finish the appends already queued, then stop the threads and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writing or self._syncing or self._unsynced:
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle
        async with self._open_lock:
            if self._opened:
                await self._call(self._writer, self._close_writer)
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        if self._sync_process is not None:
            self._sync_process.close()
        self._syncer.shutdown(wait=True)
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
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

    @property
    def fsync_process(self) -> int:
        """1 while durability "full" has its fsyncs done by the helper process, else 0 (for /metrics)."""
        return int(self.durability == "full" and self._sync_process is not None)

    @property
    def fsync_helper_pid(self) -> int | None:
        """The fsync helper process's id while one runs (it starts with the first fsync), else None."""
        return self._sync_process.pid if self._sync_process is not None else None

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
        """Queue the append for the next batch and wait until it is committed (and, with durability
        "full", on disk)."""
        rows, result_json = encode_append(stream_id, events, command_id, result)
        if not self._opened:
            await self.open()
        self._check_usable()
        if self._fsync_failed is not None:
            raise copy_error(self._fsync_failed)
        # while a batch is being written from this thread, its loop is the running one (asking asyncio
        # costs a getpid() system call per append on Python 3.11)
        loop = self._loop
        if not (self._writing and threading.get_ident() == self._loop_thread
                and loop is not None and loop.is_running()):
            loop = asyncio.get_running_loop()
            if self._writing and loop is not self._loop:
                raise StoreError(f"{self.path}: one store cannot be used from two event loops at once")
        assert loop is not None
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._pending.append(Append(stream_id, expected_version, rows, command_id, result_json, future))
        if not self._writing:
            # appends made in this loop iteration join the batch: the flush runs after them
            self._writing, self._loop, self._loop_thread = True, loop, threading.get_ident()
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        loop = self._loop
        assert loop is not None
        if self._since_checkpoint >= _CHECKPOINT_PAGES:
            # between two batches, so that it can complete and the WAL restart from its beginning (with
            # commits going on beside it, a checkpoint never catches up and the WAL only grows)
            self._since_checkpoint = 0
            checkpoint = self._writer.submit(self._checkpoint)
            checkpoint.add_done_callback(lambda _: loop.call_soon_threadsafe(self._next))
            return
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        # the lock only guards against a second thread's loop flushing at the same moment (unsupported,
        # but then it takes the writer thread's way rather than share the connection mid-transaction)
        if self._loop_writer is not None and self._loop_writer_lock.acquire(blocking=False):
            written: Written | Exception | None
            try:  # on the loop: no thread to wake, no GIL to hand back and forth per statement
                written = self._write_batch(batch, self._loop_writer)
            except WriterBusy:
                written = None  # the file is locked: the writer thread waits for it (busy_timeout)
            except Exception as exc:  # a bug, not a database error: fail this batch loudly, keep serving
                logger.exception("SQLite loop writer failed on %s", self.path)
                written = exc
            finally:
                self._loop_writer_lock.release()
            if isinstance(written, Exception):
                self._recent.clear()
                self._answer(batch, [StoreError(f"{self.path}: the writer failed: {written!r}") for _ in batch])
                return
            if written is not None:
                self._committed(batch, written)
                return
        self.thread_batches += 1
        done: Future[Written] = self._writer.submit(self._write_batch, batch, self._write_conn)
        done.add_done_callback(lambda finished: loop.call_soon_threadsafe(self._finish, batch, finished))

    def _committed(self, batch: list[Append], written: Written) -> None:
        """A batch the loop committed: answer now ("fast"), or once the WAL is fsynced ("full")."""
        outcomes, after, rows = written
        self._recent.add(after, rows)
        self._since_checkpoint += len(rows) + 3  # about the WAL pages it wrote: a row each, and the indexes'
        if not rows or self.durability == "fast":
            self._answer(batch, outcomes)
            return
        # the callers wait for an fsync that begins after this commit; the next batch need not wait
        self._unsynced.append((batch, outcomes))
        if not self._syncing:
            self._sync()
        self._next()

    def _sync(self) -> None:
        """fsync the WAL, for every batch committed so far (group fsync): by the helper process, else
        on the sync thread."""
        loop = self._loop
        assert loop is not None
        covered, self._unsynced = self._unsynced, []
        self._syncing = True
        if self._sync_process is not None:
            try:
                self._sync_process.sync(loop, lambda error: self._synced(covered, error))
                return
            except (OSError, NotImplementedError) as exc:
                self._without_process(f"cannot use the fsync helper process ({exc!r})")
        self._sync_on_thread(loop, covered)

    def _sync_on_thread(self, loop: asyncio.AbstractEventLoop, covered: list[Unsynced]) -> None:
        synced: Future[None] = self._syncer.submit(self._fsync_wal)
        synced.add_done_callback(lambda done: loop.call_soon_threadsafe(self._synced, covered, done.exception()))

    def _without_process(self, why: str) -> None:
        """From now on fsync on the thread: the helper process could not be used."""
        logger.warning("%s: %s; the WAL is fsynced from a thread from now on", self.path, why)
        if self._sync_process is not None:
            self._sync_process.close()
            self._sync_process = None

    def _synced(self, covered: list[Unsynced], error: BaseException | None) -> None:
        if isinstance(error, SyncProcessLost):  # its fsync may not have happened: the thread does it again
            self._without_process(str(error))
            assert self._loop is not None
            self._sync_on_thread(self._loop, covered)
            return
        self._syncing = False
        if error is None:
            self.fsyncs += 1
        if error is not None and self._fsync_failed is None:
            # committed, but maybe not on disk: say so, and take no more appends (like PostgreSQL after a
            # failed fsync) rather than acknowledge writes that a power cut could take back
            logger.error("fsync of %s-wal failed: %r; the store takes no more appends", self.path, error)
            self._fsync_failed = StoreError(
                f"{self.path}: an fsync failed ({error}); the last appends were committed but may not be on "
                "disk, and the store takes no more appends: restart the process")
        for batch, outcomes in covered:
            if self._fsync_failed is not None:
                outcomes = [copy_error(self._fsync_failed) for _ in batch]
            self._resolve(batch, outcomes)
        if self._unsynced:
            self._sync()
        self._check_idle()

    def _finish(self, batch: list[Append], finished: Future[Written]) -> None:
        """A batch the writer thread committed (synchronous=FULL: already on disk)."""
        try:
            outcomes, after, rows = finished.result()
        except Exception as exc:  # a bug in the writer, not a database error: fail loudly, keep serving
            logger.exception("SQLite writer failed on %s", self.path)
            outcomes = [StoreError(f"{self.path}: the writer failed: {exc!r}") for _ in batch]
            after, rows = -1, []
            self._recent.clear()
        self._recent.add(after, rows)  # before any caller hears of its append: a read after it finds them
        self._answer(batch, outcomes)

    def _answer(self, batch: list[Append], outcomes: list[AppendResult | Exception]) -> None:
        """Hand each caller its outcome, then write the appends that queued meanwhile (or go idle)."""
        self._resolve(batch, outcomes)
        self._next()

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener()` on the event loop after each batch whose appends were acknowledged (the
        projection runner's wake-up: once a batch, rather than once an event through the bus)."""
        self._listeners.append(listener)

    def _resolve(self, batch: list[Append], outcomes: list[AppendResult | Exception]) -> None:
        for request, outcome in zip(batch, outcomes):
            if request.future.done():  # the caller was cancelled; its append may still have committed
                continue
            if isinstance(outcome, Exception):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
        if self._listeners and any(isinstance(o, AppendResult) and not o.duplicate for o in outcomes):
            for listener in self._listeners:
                try:
                    listener()
                except Exception:  # a listener's bug must not stop the store answering the next batch
                    logger.exception("commit listener %r failed", listener)

    def _next(self) -> None:
        """After a batch is committed: write the appends that queued meanwhile, else stop writing."""
        if self._pending:
            self._flush()
            return
        self._writing = False
        self._check_idle()

    def _check_idle(self) -> None:
        """Wake close() once nothing is being written or waiting for its fsync."""
        if self._writing or self._syncing or self._unsynced:
            return
        for idle in self._idle:
            if not idle.done():
                idle.set_result(None)
        self._idle.clear()

    # ------------------------------------------------------------------ reads

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        # a short stream on the loop, with no thread hop (see LoopReader for why it cannot block)
        rows = await self._loop_rows(f"{_LOAD} LIMIT ?", (stream_id, from_version))
        if rows is not None:
            return to_events(rows)
        return await self._on_reader(self._query_events, _LOAD, (stream_id, from_version))

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        # one index seek; LoopReader binds its row limit last, and min() keeps the read to the head row
        rows = await self._loop_rows(f"{_HEAD} LIMIT min(?, 1)", (stream_id,))
        if rows is None:
            rows = await self._on_reader(self._query, f"{_HEAD} LIMIT 1", (stream_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def _loop_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows of a short read done on the loop (LoopReader.rows), or None: read it on a thread."""
        if not self._opened:
            await self.open()
        self._check_usable()
        if self._loop_reader.conn is None and not self._loop_reader.attaching:
            await self._attach_loop_reader()
        try:
            return self._loop_reader.rows(sql, params)
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from exc

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
        # a caught-up follower's read finds a few rows or none: on the loop, else on a reader thread
        rows = await self._loop_rows(f"{_BATCH} LIMIT min(?, ?)", (after, limit))
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

    def _write_batch(self, batch: list[Append], conn: sqlite3.Connection | None) -> Written:
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
                results, after, rows = self._transaction(conn, [batch[i] for i in todo], one_by_one)
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

    def _transaction(self, conn: sqlite3.Connection | None, batch: list[Append], one_by_one: bool
                     ) -> tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]:
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if conn is self._loop_writer and is_busy(exc):
                raise WriterBusy() from exc
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
        check_not_foreign(self.path)
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

    def _connect_loop_writer(self) -> sqlite3.Connection:
        """The loop's writing connection: busy_timeout 0 (a locked file sends the batch to the writer
        thread), synchronous=NORMAL (the helper process or the sync thread fsyncs the WAL), no automatic
        checkpoints (they fsync)."""
        conn = connect(self.path, 0.0)
        try:
            for pragma in ("synchronous = NORMAL", "wal_autocheckpoint = 0", "foreign_keys = ON"):
                conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("opening", exc) from exc
        return conn

    def _fsync_wal(self) -> None:
        """Put the WAL, and so every transaction committed in it so far, on disk (the sync thread)."""
        if self._wal_fd is None:  # the WAL exists from the first commit, and lives as long as our connections
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        self._datasync(self._wal_fd)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database where no reader needs it (never blocks the loop's writes)."""
        if self._write_conn is None:
            return
        try:
            self._write_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the next one will try again; the WAL only grows meanwhile
            logger.warning("checkpoint of %s failed: %s", self.path, exc)

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

