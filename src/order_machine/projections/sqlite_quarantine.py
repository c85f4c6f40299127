"""SQLite storage of quarantined streams (the policy is projections/quarantine.py): the
`projection_quarantine` table, read and written on the read models' own connections and transactions.
Imports sqlite3 and the quarantine record; never the domain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from .quarantine import STREAM_KEYS, Quarantine
from .queries import equal_filter, from_micros, to_micros

SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_quarantine (
    projector TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (projector, stream_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS projection_quarantine_by_stream ON projection_quarantine (stream_id);
"""
TABLE = "projection_quarantine"

_COLUMNS = "projector, stream_id, position, event_type, error, since"


def held(conn: sqlite3.Connection, projector: str) -> set[str]:
    """The streams `projector` set aside (read in the transaction that applies its batch)."""
    return {r[0] for r in conn.execute(f"SELECT stream_id FROM {TABLE} WHERE projector = ?", (projector,))}


def record(conn: sqlite3.Connection, q: Quarantine) -> None:
    """Insert `q`; a stream already set aside keeps its first record."""
    conn.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 (q.projector, q.stream_id, q.position, q.event_type, q.error, to_micros(q.since)))


def forget(conn: sqlite3.Connection, projector: str, stream_id: str | None = None) -> None:
    """Delete the projector's records (a reset), or its record of one stream (a release)."""
    where, args = equal_filter("?", projector=projector, stream_id=stream_id)
    conn.execute(f"DELETE FROM {TABLE} WHERE {where}", args)


def select(conn: sqlite3.Connection, projector: str | None, stream_id: str | None) -> list[Quarantine]:
    where, args = equal_filter("?", projector=projector, stream_id=stream_id)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} {'WHERE ' + where if where else ''} "
                        "ORDER BY projector, stream_id", args)
    return [Quarantine(r[0], r[1], r[2], r[3], r[4], from_micros(r[5])) for r in rows]


def delete_stream(conn: sqlite3.Connection, views: Mapping[str, str], stream_id: str) -> None:
    """Delete one stream's rows from the `views` (name -> table) before a release writes them again."""
    for view, table in views.items():
        conn.execute(f"DELETE FROM {table} WHERE {STREAM_KEYS[view]} = ?", (stream_id,))
