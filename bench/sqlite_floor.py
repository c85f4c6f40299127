"""The physical floor of one SQLite client: a bare `sqlite3` loop doing one durable commit per row.

The store's settings (WAL, synchronous=FULL, SQLite's own automatic checkpoints), its events table
(the same columns, the same UNIQUE (stream_id, version) index) and rows shaped like an order's
lifecycle (a stream per order, versions 1 to 5, JSON of about an event's size), each row committed
on its own. Nothing else: no encoding, no version check, no event loop, no command. What one client
of the store does per command can be no faster than this per row; the store bench measures the two
in alternating rounds and reports the ratio.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def events_table() -> str:
    """The store's own CREATE TABLE events (its first migration), so the floor writes the same table."""
    from order_machine.store.sqlite_file import MIGRATIONS

    return next(sql for _, _, statements in MIGRATIONS for sql in statements
                if sql.lstrip().startswith("CREATE TABLE events"))


INSERT = ("INSERT INTO events (stream_id, version, type, schema_version, data, metadata, recorded_at) "
          "VALUES (?, ?, ?, 1, ?, ?, ?)")
# about the size of an order's events as the store writes them
DATA = '{"at":"2026-01-01T12:00:00.000000+00:00","tracking_number":"TRK-1","shipping_address":"1 Harbour Road"}'
METADATA = '{"command_id":null,"causation_id":"0123456789abcdef-1","correlation_id":"0123456789abcdef-1"}'
RECORDED_AT = "2026-01-01T12:00:00.000000+00:00"


class BareLoop:
    """One connection, one durable commit per row."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute(events_table())

    def rows(self, first: int, orders: int) -> float:
        """Seconds to commit 5 rows (versions 1-5) for each of orders first..first+orders-1, one per commit."""
        execute = self.conn.execute
        started = time.perf_counter()
        for i in range(first, first + orders):
            stream = f"bare-{i}"
            for version in range(1, 6):
                execute("BEGIN IMMEDIATE")
                execute(INSERT, (stream, version, "OrderEvent", DATA, METADATA, RECORDED_AT))
                execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()
