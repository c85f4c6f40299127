"""Rewrite a stored event's data in place, on any backend: what an operator repairing a corrupt row does
before releasing its quarantined stream. Test support only (the event store itself never rewrites)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from typing import Any

from order_machine.store import EventStore
from order_machine.store.memory import InMemoryEventStore
from order_machine.store.sqlite import SQLiteEventStore


async def rewrite_event(store: EventStore, position: int, data: dict[str, Any]) -> None:
    if isinstance(store, InMemoryEventStore):
        old = store._events[position - 1]
        store._events[position - 1] = new = old._replace(data=data)
        stream = store._streams[old.stream_id]
        stream[stream.index(old)] = new
    elif isinstance(store, SQLiteEventStore):
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute("UPDATE events SET data = ? WHERE position = ?", (json.dumps(data), position))
        store._recent.clear()  # this process's copy of the rows it wrote last: the edit came from outside
    else:
        from order_machine.store.postgres import PostgresEventStore

        assert isinstance(store, PostgresEventStore)
        pg = await store.connect()
        try:
            await pg.execute(f"UPDATE {store.quoted_schema}.events SET data = %s::jsonb WHERE position = %s",
                             (json.dumps(data), position))
        finally:
            await pg.close()
