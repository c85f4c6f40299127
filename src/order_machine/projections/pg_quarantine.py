"""PostgreSQL storage of quarantined streams (the policy is projections/quarantine.py): the
`projection_quarantine` table of the store's schema (migration 6 in store/pg_schema.py), read and written on
the read models' own connections and transactions. Imports psycopg types and the quarantine record only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

from ..store.postgres import Conn
from .quarantine import STREAM_KEYS, Quarantine
from .queries import equal_filter

_COLUMNS = "projector, stream_id, position, event_type, error, since"


class PostgresQuarantines:
    """The SQL of the quarantine table in one schema (`schema` already quoted)."""

    def __init__(self, schema: str) -> None:
        self.table = f"{schema}.projection_quarantine"
        #: the batch's streams the projector set aside: (projector, [stream ids]) -> rows of one stream id
        self.held = f"SELECT stream_id FROM {self.table} WHERE projector = %s AND stream_id = ANY(%s)"

    async def record(self, conn: Conn, q: Quarantine) -> None:
        """Insert `q`; a stream already set aside keeps its first record."""
        await conn.execute(
            f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (q.projector, q.stream_id, q.position, q.event_type, q.error, q.since))

    async def forget(self, conn: Conn, projector: str, stream_id: str | None = None) -> None:
        """Delete the projector's records (a reset), or its record of one stream (a release)."""
        where, args = equal_filter("%s", projector=projector, stream_id=stream_id)
        await conn.execute(f"DELETE FROM {self.table} WHERE {where}", args)

    async def select(self, conn: Conn, projector: str | None, stream_id: str | None) -> list[Quarantine]:
        where, args = equal_filter("%s", projector=projector, stream_id=stream_id)
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM {self.table} {'WHERE ' + where if where else ''} "
                                 "ORDER BY projector, stream_id", args)
        return [Quarantine(r[0], r[1], r[2], r[3], r[4], r[5].astimezone(UTC)) for r in await cur.fetchall()]

    async def delete_stream(self, conn: Conn, views: Mapping[str, str], stream_id: str) -> None:
        """Delete one stream's rows from the `views` (name -> table) before a release writes them again."""
        for view, table in views.items():
            await conn.execute(f"DELETE FROM {table} WHERE {STREAM_KEYS[view]} = %s", (stream_id,))
