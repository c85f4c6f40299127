"""In-memory event store: the reference implementation of the contract, for tests and examples.

Checks and copies events through `codec` exactly as the database backends store them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, AsyncIterator, Mapping, Sequence
from typing import Any

from ..errors import ConcurrencyError
from ..events import NewEvent, StoredEvent
from . import AppendResult, read_in_batches
from .codec import encode_append, parse_utc


class InMemoryEventStore:
    """Keeps every event in lists; loses everything when the process ends."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._events: list[StoredEvent] = []
        self._streams: dict[str, list[StoredEvent]] = {}
        self._commands: dict[str, AppendResult] = {}
        self._lock = asyncio.Lock()

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        command_id: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        # encoded like a database row, so data that a real backend would refuse is refused here too
        encoded, result_json = encode_append(stream_id, events, command_id, result)
        async with self._lock:
            if command_id is not None and command_id in self._commands:
                first = self._commands[command_id]
                return AppendResult(first.stream_id, first.version, first.position, True, _copied(first.result))
            stream = self._streams.get(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyError(stream_id, expected_version, len(stream))
            stored = [
                StoredEvent(len(self._events) + i + 1, stream_id, expected_version + i + 1, e.type,
                            e.schema_version, json.loads(e.data), json.loads(e.metadata), parse_utc(e.recorded_at))
                for i, e in enumerate(encoded)
            ]
            self._events.extend(stored)
            self._streams[stream_id] = stream + stored
            appended = AppendResult(stream_id, expected_version + len(stored), len(self._events), False,
                                    json.loads(result_json))
            if command_id is not None:
                self._commands[command_id] = appended
            return appended

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        return self._streams.get(stream_id, [])[max(from_version, 1) - 1:]

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        stream = self._streams.get(stream_id)
        return (stream[-1].version, stream[-1].position) if stream else (0, 0)

    async def read_batch(self, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        after = max(after, 0)
        return self._events[after:after + max(limit, 0)]

    def read_all(self, after: int = 0, batch_size: int = 500) -> AsyncIterator[StoredEvent]:
        return read_in_batches(self.read_batch, after, batch_size)

    async def last_position(self) -> int:
        return len(self._events)

    async def command_result(self, command_id: str) -> Mapping[str, Any] | None:
        first = self._commands.get(command_id)
        return _copied(first.result) if first is not None else None

    async def stream_ids(self, after: str = "", limit: int = 1000) -> list[str]:
        return sorted(s for s in self._streams if s > after)[:max(limit, 0)]

    def on_commit(self, listener: Callable[[], None]) -> bool:
        return False  # followers are woken through the bus

    def write_counters(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        pass


def _copied(result: Mapping[str, Any]) -> dict[str, Any]:
    # a fresh copy for every caller: nobody can change the recorded result through a returned dict
    copy: dict[str, Any] = json.loads(json.dumps(dict(result)))
    return copy
