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

from ..errors import ConcurrencyError, StoreError
from . import AppendResult
from .codec import EncodedEvent
from .sqlite_file import now_text
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
    conn: sqlite3.Connection, request: Append, position: int, index: int, error_of: ErrorOf
) -> tuple[AppendResult | Exception, int]:
    """Apply one append after `position` inside the open transaction; (its outcome, the new last position).

    A stale expected version or a failed insert is that append's outcome (rolled back to its savepoint);
    raises TransactionLost when SQLite rolled the whole transaction back.
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
        conn.executemany(
            f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(position + i, request.stream_id, request.expected_version + i, *row)
             for i, row in enumerate(request.rows, start=1)])
        version, last = request.expected_version + len(request.rows), position + len(request.rows)
        if request.command_id is not None:
            conn.execute("INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)",
                         (request.command_id, request.stream_id, version, last, request.result, now_text()))
        conn.execute("RELEASE append_one")
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
    return AppendResult(request.stream_id, version, last, False, json.loads(request.result)), last


def stream_version(conn: sqlite3.Connection, stream_id: str) -> int:
    row = conn.execute("SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
                       (stream_id,)).fetchone()
    return int(row[0]) if row else 0
