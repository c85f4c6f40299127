"""SQLite event store, the embedded default: one file, WAL, durable group commit.

Appends are committed on the event loop's own thread, a batch per transaction, through a connection
that never waits for a lock (busy_timeout=0) and never fsyncs; the callers are answered only once the
WAL is fsynced (by a helper process, sqlite_sync.py, or a sync thread where that cannot be used), and
the appends that arrive meanwhile make the next batch. When the file is locked (another process
writing, a read-model transaction), the batch goes to the writer thread's ordinary synchronous=FULL
connection instead. Reader threads have their own connections, and a short stream load reads on the
loop without waiting (sqlite_reads.LoopReader says why that is bounded). This module owns the queue of
appends and the order of commit, fsync and answer; the transaction and the writer thread are in
sqlite_append.py, the fsyncs in sqlite_sync.py, the read connections in sqlite_reads.py, the file and
its schema in sqlite_file.py, the reads in sqlite_event_reads.py. Imports `errors`, `events` and the store
port; never the domain.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import StoreError
from ..events import NewEvent
from . import AppendResult
from .codec import encode_append
from .sqlite_file import check_choices, copy_error, number, parse_sqlite_url, store_options, translate
from .sqlite_append import Append, WriterBusy, WriterThread, Written, write_batch
from .sqlite_event_reads import EventReads
from .sqlite_reads import Reads, RecentEvents
from .sqlite_sync import SyncProcess, WalSync

logger = logging.getLogger(__name__)

#: a batch committed but not yet fsynced, with each append's outcome
Unsynced = tuple[list[Append], list[AppendResult | Exception]]

#: checkpoint after about this many WAL pages written by the loop (SQLite's own default for autocheckpoint)
_CHECKPOINT_PAGES = 1000


class SQLiteEventStore(EventReads):
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
        check_choices(durability, fsync)
        self.busy_timeout = number("busy_timeout", busy_timeout, float, minimum=0.001)
        self.readers = number("readers", readers, int, minimum=1)
        self.max_batch = number("max_batch", max_batch, int, minimum=1)
        self.path = Path(path).expanduser().absolute()
        self.url = url if url is not None else f"sqlite:///{self.path}"
        self.durability = durability
        self.commits = 0  # write transactions committed (a batch of appends each)
        self.fsyncs = 0  # fsyncs of the WAL (each covers every commit before it)
        self.thread_batches = 0  # batches handed to the writer thread (the file was locked for the loop)
        self._writer = WriterThread(self.path, self.busy_timeout, durability, self._error)
        self._wal_sync = WalSync(Path(f"{self.path}-wal"), use_process=fsync == "process",
                                 datasync=datasync, process=fsync_helper)
        self._loop_writer: sqlite3.Connection | None = None  # commits on the loop; never waits, never fsyncs
        self._loop_writer_lock = threading.Lock()
        self._fsync_failed: StoreError | None = None
        self._since_checkpoint = 0  # the loop connection never checkpoints (that fsyncs): the writer thread does
        self._reads = Reads(self.path, self.busy_timeout, self.readers, self._error, self._check_usable)
        self._listeners: list[Callable[[], None]] = []
        self._recent = RecentEvents()  # what this store committed last, for the projections (loop thread only)
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
        return cls(path, url=url, **store_options(url, given, options))

    @property
    def synchronous(self) -> str | None:
        """The synchronous level SQLite reports for the writer's connection, once open."""
        return self._writer.synchronous

    @property
    def checkpoints(self) -> int:
        """PASSIVE checkpoints run for the loop's commits."""
        return self._writer.checkpoints

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the file, its directories and the schema if needed; done by the first operation anyway."""
        if self._opened:
            return
        async with self._open_lock:
            self._check_usable()
            if not self._opened:
                self._loop_writer = await self._writer.open()
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
                await self._writer.close()
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        self._wal_sync.close()
        self._writer.shutdown()
        self._reads.close()

    async def __aenter__(self) -> SQLiteEventStore:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def fsync_process(self) -> int:
        """1 while durability "full" has its fsyncs done by the helper process, else 0 (for /metrics)."""
        return int(self.durability == "full" and self._wal_sync.process is not None)

    @property
    def fsync_helper_pid(self) -> int | None:
        """The fsync helper process's id while one runs (it starts with the first fsync), else None."""
        process = self._wal_sync.process
        return process.pid if process is not None else None

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
            checkpoint = self._writer.checkpoint()
            checkpoint.add_done_callback(lambda _: loop.call_soon_threadsafe(self._next))
            return
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        # the lock only guards against a second thread's loop flushing at the same moment (unsupported,
        # but then it takes the writer thread's way rather than share the connection mid-transaction)
        if self._loop_writer is not None and self._loop_writer_lock.acquire(blocking=False):
            written: Written | Exception | None
            try:  # on the loop: no thread to wake, no GIL to hand back and forth per statement
                written = write_batch(self._loop_writer, batch, self._error, never_waits=True)
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
        done: Future[Written] = self._writer.write(batch)
        done.add_done_callback(lambda finished: loop.call_soon_threadsafe(self._finish, batch, finished))

    def _committed(self, batch: list[Append], written: Written) -> None:
        """A batch the loop committed: answer now ("fast"), or once the WAL is fsynced ("full")."""
        outcomes, after, rows = written
        self.commits += after >= 0  # -1: nothing committed
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
        """fsync the WAL, for every batch committed so far (group fsync)."""
        loop = self._loop
        assert loop is not None
        covered, self._unsynced = self._unsynced, []
        self._syncing = True
        self._wal_sync.sync(loop, lambda error: self._synced(covered, error))

    def _synced(self, covered: list[Unsynced], error: BaseException | None) -> None:
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
        self.commits += after >= 0
        self._recent.add(after, rows)  # before any caller hears of its append: a read after it finds them
        self._answer(batch, outcomes)

    def _answer(self, batch: list[Append], outcomes: list[AppendResult | Exception]) -> None:
        """Hand each caller its outcome, then write the appends that queued meanwhile (or go idle)."""
        self._resolve(batch, outcomes)
        self._next()

    def on_commit(self, listener: Callable[[], None]) -> bool:
        """Call `listener()` on the event loop after each batch whose appends were acknowledged (the
        projection runner's wake-up: once a batch, rather than once an event through the bus)."""
        self._listeners.append(listener)
        return True

    def write_counters(self) -> dict[str, int]:
        return {"commits": self.commits, "fsyncs": self.fsyncs, "checkpoints": self.checkpoints,
                "fsync_process": self.fsync_process}

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

    async def _usable(self) -> None:
        if not self._opened:
            await self.open()
        self._check_usable()

    # ------------------------------------------------------------------ helpers

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")

    def _error(self, doing: str, exc: sqlite3.Error) -> StoreError:
        return translate(self.path, doing, exc, self.busy_timeout)

