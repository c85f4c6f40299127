"""A batch of appends in one SQLite transaction: a repeated command id, the expected-version check, the
event rows and the command record of each append, in a fixed number of statements for the whole batch
(or append by append, each behind its own savepoint, when SQLite refuses the batch).

Imports sqlite3, `errors` and the store port; sqlite.py owns the connections, the threads and the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConcurrencyError, StoreError
from . import AppendResult
from .codec import EncodedEvent
from .sqlite_file import LOOP_WRITER, connect_with, copy_error, is_busy, now_text, open_writer, rollback
from .sqlite_insert import insert_rows
from .sqlite_reads import COLUMNS

logger = logging.getLogger(__name__)

#: the StoreError for a driver error, naming what was being done
ErrorOf = Callable[[str, sqlite3.Error], StoreError]
#: what writing a batch answers: each append's outcome; the position its transaction began after and
#: the event rows it wrote (-1 and none when nothing committed)
Written = tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]


@dataclass(slots=True)
class Append:
    """One caller's append waiting in the writer's queue."""

    stream_id: str
    expected_version: int
    rows: list[EncodedEvent]
    command_id: str | None
    result: str
    future: asyncio.Future[AppendResult]


class TransactionLost(Exception):
    """SQLite rolled the whole transaction back while applying one append of the batch."""

    def __init__(self, index: int, error: StoreError) -> None:
        self.index, self.error = index, error


def append_one(
    conn: sqlite3.Connection, request: Append, position: int, index: int, error_of: ErrorOf,
    inserted: list[tuple[Any, ...]],
) -> tuple[AppendResult | Exception, int]:
    """Apply one append after `position` inside the open transaction; (its outcome, the new last position).

    The event rows it wrote (`COLUMNS` order) are added to `inserted`. A stale expected version or a
    failed insert is that append's outcome (rolled back to its savepoint, nothing added); raises
    TransactionLost when SQLite rolled the whole transaction back.
    """
    if request.command_id is not None:
        first = conn.execute("SELECT stream_id, version, position, result FROM commands WHERE command_id = ?",
                             (request.command_id,)).fetchone()
        if first is not None:
            return AppendResult(first[0], first[1], first[2], True, json.loads(first[3])), position
    conn.execute("SAVEPOINT append_one")
    try:
        current = stream_version(conn, request.stream_id)
        if current != request.expected_version:
            conn.execute("RELEASE append_one")
            return ConcurrencyError(request.stream_id, request.expected_version, current), position
        rows = [(position + i, request.stream_id, request.expected_version + i, *row)
                for i, row in enumerate(request.rows, start=1)]
        conn.executemany(f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        version, last = request.expected_version + len(request.rows), position + len(request.rows)
        if request.command_id is not None:
            conn.execute("INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)",
                         (request.command_id, request.stream_id, version, last, request.result, now_text()))
        conn.execute("RELEASE append_one")
        inserted += rows
    except sqlite3.Error as exc:
        if not conn.in_transaction:
            raise TransactionLost(index, error_of(f"appending to stream {request.stream_id!r}", exc)) from exc
        conn.execute("ROLLBACK TO append_one")
        conn.execute("RELEASE append_one")
        error: Exception
        if isinstance(exc, sqlite3.IntegrityError) and "events.stream_id, events.version" in str(exc):
            error = ConcurrencyError(request.stream_id, request.expected_version,
                                     stream_version(conn, request.stream_id))
        else:
            error = error_of(f"appending to stream {request.stream_id!r}", exc)
        error.__cause__ = exc
        return error, position
    return AppendResult(request.stream_id, version, last, False, _result(request)), last


def _result(request: Append) -> dict[str, Any]:
    """The result recorded with an append: read back from its JSON only when there is one to read."""
    return json.loads(request.result) if request.result != "{}" else {}


def stream_version(conn: sqlite3.Connection, stream_id: str) -> int:
    row = conn.execute("SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
                       (stream_id,)).fetchone()
    return int(row[0]) if row else 0


class BatchRefused(Exception):
    """SQLite refused the batch's combined insert; the caller rolls back and goes append by append."""


#: rows per multi-row INSERT (8 columns each: far below SQLite's 32,766 bound parameters)
_ROWS_PER_INSERT = 500


def append_all(
    conn: sqlite3.Connection, batch: list[Append],
) -> tuple[list[AppendResult | Exception], int, list[tuple[Any, ...]]]:
    """Apply a whole batch with a fixed number of statements, whatever its size.

    Each SQLite call costs its own round of the driver (and lets go of the GIL, to win it back from
    the busy event loop), so a batch costs one query for the last position and the streams' versions
    together, one for the command ids (only when there are any), and one multi-row INSERT per table,
    instead of four or five statements per append. The expected-version checks and repeated command
    ids (the same rules as `append_one`, including a repeat inside the batch) are decided in Python on
    what those queries read, inside the transaction that holds the write lock. Returns each append's
    outcome, the last position before the batch and the event rows written; raises BatchRefused if
    SQLite refuses an insert.
    """
    streams = list({request.stream_id for request in batch})
    # the first row is (NULL, the last position); a stream id is never NULL
    heads = conn.execute(
        "SELECT NULL, max(position) FROM events UNION ALL SELECT stream_id, max(version) FROM events"
        f" WHERE stream_id IN ({','.join('?' * len(streams))}) GROUP BY stream_id", streams).fetchall()
    position = after = heads[0][1] or 0
    versions: dict[str, int] = dict(heads[1:])
    ids = list({request.command_id for request in batch if request.command_id is not None})
    first: dict[str, tuple[str, int, int, str]] = {}
    if ids:
        first = {row[0]: row[1:] for row in conn.execute(
            "SELECT command_id, stream_id, version, position, result FROM commands"
            f" WHERE command_id IN ({','.join('?' * len(ids))})", ids)}
    results: list[AppendResult | Exception] = []
    events: list[tuple[Any, ...]] = []
    commands: list[tuple[Any, ...]] = []
    recorded_at = now_text() if ids else ""
    for request in batch:
        stream_id, command_id = request.stream_id, request.command_id
        if command_id is not None and (seen := first.get(command_id)) is not None:
            results.append(AppendResult(seen[0], seen[1], seen[2], True, json.loads(seen[3])))
            continue
        current = versions.get(stream_id, 0)
        if current != request.expected_version:
            results.append(ConcurrencyError(stream_id, request.expected_version, current))
            continue
        events += [(position + i, stream_id, current + i, *row) for i, row in enumerate(request.rows, start=1)]
        version, position = current + len(request.rows), position + len(request.rows)
        versions[stream_id] = version
        if command_id is not None:
            commands.append((command_id, stream_id, version, position, request.result, recorded_at))
            first[command_id] = (stream_id, version, position, request.result)
        results.append(AppendResult(stream_id, version, position, False, _result(request)))
    try:
        insert_rows(conn, f"INSERT INTO events ({COLUMNS})", 8, events, max_rows=_ROWS_PER_INSERT)
        insert_rows(conn, "INSERT INTO commands", 6, commands, max_rows=_ROWS_PER_INSERT)
    except sqlite3.Error as exc:
        raise BatchRefused() from exc
    return results, after, events


class WriterBusy(Exception):
    """A connection that never waits found the file locked: the batch goes to one that may wait."""


def write_batch(conn: sqlite3.Connection, batch: list[Append], error_of: ErrorOf, *, never_waits: bool) -> Written:
    """Apply a batch in one transaction; an append SQLite aborted is dropped and the rest retried.

    Raises WriterBusy when `never_waits` and another connection holds the write lock.
    """
    outcomes: dict[int, AppendResult | Exception] = {}
    todo = list(range(len(batch)))
    after, rows = -1, list[tuple[Any, ...]]()
    one_by_one = False  # first the whole batch in a few statements; append by append if SQLite refuses it
    while todo:
        try:
            results, after, rows = _transaction(conn, [batch[i] for i in todo], one_by_one, error_of, never_waits)
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


def _transaction(conn: sqlite3.Connection, batch: list[Append], one_by_one: bool, error_of: ErrorOf,
                 never_waits: bool) -> Written:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        if never_waits and is_busy(exc):
            raise WriterBusy() from exc
        raise error_of("starting a write", exc) from exc
    try:
        results: list[AppendResult | Exception] = []
        inserted: list[tuple[Any, ...]] = []
        if one_by_one:
            row = conn.execute("SELECT position FROM events ORDER BY position DESC LIMIT 1").fetchone()
            position = after = row[0] if row else 0
            for index, request in enumerate(batch):
                outcome, position = append_one(conn, request, position, index, error_of, inserted)
                results.append(outcome)
        else:
            results, after, inserted = append_all(conn, batch)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback(conn)
        raise error_of("committing (nothing was written)", exc) from exc
    except BaseException:
        rollback(conn)
        raise
    return results, after, inserted


class WriterThread:
    """The store's writer thread and its connection (synchronous as the durability asks, waiting up to
    busy_timeout for a lock): it opens and migrates the file, writes the batches the loop's connection
    cannot (the file locked), and runs the checkpoints, so that none of that waits on the loop."""

    def __init__(self, path: Path, busy_timeout: float, durability: str, error_of: ErrorOf) -> None:
        self.path, self.busy_timeout, self.durability, self._error = path, busy_timeout, durability, error_of
        self.synchronous: str | None = None  # read back from the connection once open
        self.checkpoints = 0  # PASSIVE checkpoints run
        self.executor = ThreadPoolExecutor(1, "order-machine-sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> sqlite3.Connection:
        """Open the file (created, checked, migrated), then a connection for the loop to write through:
        it never waits for a lock, never fsyncs and never checkpoints (LOOP_WRITER)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._open)
        return await loop.run_in_executor(self.executor, connect_with, self.path, 0.0, LOOP_WRITER)

    def _open(self) -> None:
        self._conn, self.synchronous = open_writer(self.path, self.busy_timeout, self.durability)

    def write(self, batch: list[Append]) -> Future[Written]:
        return self.executor.submit(self._write, batch)

    def _write(self, batch: list[Append]) -> Written:
        assert self._conn is not None
        return write_batch(self._conn, batch, self._error, never_waits=False)

    def checkpoint(self) -> Future[None]:
        """Copy the WAL into the database where no reader needs it (never blocks the loop's writes)."""
        return self.executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the next one will try again; the WAL only grows meanwhile
            logger.warning("checkpoint of %s failed: %s", self.path, exc)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self._close)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
