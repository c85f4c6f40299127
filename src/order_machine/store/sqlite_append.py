"""One append inside the SQLite writer's transaction: a repeated command id, the expected-version check,
the event rows and the command record, each append behind its own savepoint.

Imports sqlite3, `errors` and the store port; sqlite.py owns the transaction, the thread and the queue.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConcurrencyError, StoreError
from . import AppendResult
from .codec import EncodedEvent
from .sqlite_file import now_text
from .sqlite_insert import insert_rows
from .sqlite_reads import COLUMNS

#: the StoreError for a driver error, naming what was being done
ErrorOf = Callable[[str, sqlite3.Error], StoreError]


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
    conn: sqlite3.Connection, batch: list[Append], position: int,
) -> tuple[list[AppendResult | Exception], list[tuple[Any, ...]]]:
    """Apply a whole batch after `position` with a fixed number of statements, whatever its size.

    Each SQLite call lets go of the GIL and has to win it back from the busy event loop, so a batch
    costs one query for the streams' versions, one for the command ids, and one multi-row INSERT per
    table, instead of four or five statements per append. The expected-version checks and repeated
    command ids (the same rules as `append_one`, including a repeat inside the batch) are decided in
    Python on what those queries read, inside the transaction that holds the write lock. Returns each
    append's outcome and the event rows written; raises BatchRefused if SQLite refuses an insert.
    """
    streams = list({request.stream_id for request in batch})
    versions: dict[str, int] = dict(conn.execute(
        f"SELECT stream_id, max(version) FROM events WHERE stream_id IN ({','.join('?' * len(streams))})"
        " GROUP BY stream_id", streams).fetchall())
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
    return results, events

