"""The read half of the SQLite event store's port (load, stream_head, read_batch, read_all, last_position,
command_result, stream_ids): the statements and where each runs (on the loop when short, else on a reader
thread; the projections following this process's own writes from memory). Mixed into SQLiteEventStore,
whose writing half is in sqlite.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..events import StoredEvent
from . import read_in_batches
from .sqlite_reads import COLUMNS, Reads, RecentEvents, to_events

_BATCH = f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position"
_HEAD = "SELECT version, position FROM events WHERE stream_id = ? ORDER BY version DESC"
_LOAD = f"SELECT {COLUMNS} FROM events WHERE stream_id = ? AND version >= ? ORDER BY version"


class EventReads:
    """Reads of the store's events and command records, through `_reads` once `_usable()` says so."""

    _reads: Reads
    _recent: RecentEvents

    async def _usable(self) -> None:
        raise NotImplementedError

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        # a short stream on the loop, with no thread hop (see LoopReader for why it cannot block)
        await self._usable()
        rows = await self._reads.on_loop(f"{_LOAD} LIMIT ?", (stream_id, from_version))
        if rows is not None:
            return to_events(rows)
        return await self._reads.events(_LOAD, (stream_id, from_version))

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        # one index seek; LoopReader binds its row limit last, and min() keeps the read to the head row
        await self._usable()
        rows = await self._reads.on_loop(f"{_HEAD} LIMIT min(?, 1)", (stream_id,))
        if rows is None:
            rows = await self._reads.rows(f"{_HEAD} LIMIT 1", (stream_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def read_batch(self, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        limit = max(limit, 0)
        recent = self._recent.after(after, limit) if limit else None
        if recent is not None:  # the projections following this process's own writes: no read at all
            return to_events(recent)
        # a caught-up follower's read finds a few rows or none: on the loop, else on a reader thread
        await self._usable()
        rows = await self._reads.on_loop(f"{_BATCH} LIMIT min(?, ?)", (after, limit))
        if rows is not None:
            return to_events(rows)
        return await self._reads.events(f"{_BATCH} LIMIT ?", (after, limit))

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

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        await self._usable()
        return await self._reads.rows(sql, params)
