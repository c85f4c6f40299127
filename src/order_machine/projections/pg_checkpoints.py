"""PostgreSQL projector checkpoints: the `projection_checkpoints` rows the read models and the user
projectors' tables both keep in the store's schema, and the row lock that makes a batch exactly-once
across processes. Imports the PostgreSQL store's connection type only.
"""

from __future__ import annotations

from ..store.postgres import Conn
from .tables import CHECKPOINTS


class PostgresCheckpoints:
    """The SQL of the checkpoints in one schema (`schema` already quoted)."""

    def __init__(self, schema: str) -> None:
        table = f"{schema}.{CHECKPOINTS}"
        #: (name,) -> the position, the row locked until commit (created at 0 when missing)
        self.lock = (f"INSERT INTO {table} (name, position) VALUES (%s, 0) "
                     f"ON CONFLICT (name) DO UPDATE SET position = {table}.position RETURNING position")
        #: (name,) -> the position, without a lock (no row: never ran)
        self.select = f"SELECT position FROM {table} WHERE name = %s"
        self._update = f"UPDATE {table} SET position = %s WHERE name = %s"

    async def locked(self, conn: Conn, name: str) -> int:
        """Lock the projector's checkpoint row until commit (creating it at 0) and return its position."""
        cur = await conn.execute(self.lock, (name,))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def set(self, conn: Conn, name: str, position: int) -> None:
        """Move the checkpoint (its row locked by `locked` in the same transaction)."""
        await conn.execute(self._update, (position, name))
