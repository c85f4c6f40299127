"""The event store port: the Protocol every backend satisfies, open_store(url) to pick one, and
read_in_batches, the `read_all` every backend shares.

Knows events (`events.NewEvent`, `events.StoredEvent`), never the domain's classes.
Backends: memory.py (tests, examples), sqlite.py (the embedded default), postgres.py (scale-out).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import StoreError
from ..events import NewEvent, StoredEvent


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: the stream's new version and the last global position written.

    `duplicate` is True when the command id had been seen before: nothing was appended and
    `result` is the result recorded the first time.
    """

    stream_id: str
    version: int
    position: int
    duplicate: bool = False
    result: Mapping[str, Any] = field(default_factory=dict)


class EventStore(Protocol):
    """The truth: append-only streams with optimistic concurrency and a global order."""

    url: str

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        command_id: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append atomically if the stream is at `expected_version` (0 = new stream).

        Raises ConcurrencyError (writing nothing) when it is not. With a `command_id` already
        recorded, appends nothing and returns the first result with duplicate=True.
        """
        ...

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """A stream's events in version order ([] when the stream does not exist)."""
        ...

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        """(version, position) of the stream's last event; (0, 0) when the stream does not exist."""
        ...

    async def read_batch(self, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        """Up to `limit` events with position > `after`, in global order, never skipping one."""
        ...

    def read_all(self, after: int = 0, batch_size: int = 500) -> AsyncIterator[StoredEvent]:
        """Every event after `after` in global order, fetched in batches."""
        ...

    async def last_position(self) -> int:
        """The highest position a reader can see now (0 when empty)."""
        ...

    async def command_result(self, command_id: str) -> Mapping[str, Any] | None:
        """The result recorded for a command id, or None if it was never seen."""
        ...

    async def stream_ids(self, after: str = "", limit: int = 1000) -> list[str]:
        """Stream ids in sorted order after `after` (for checks and rebuilds over all orders)."""
        ...

    def on_commit(self, listener: Callable[[], None]) -> bool:
        """Have `listener()` called on the loop after each committed batch; False when this store cannot
        (its followers are woken through the bus instead)."""
        ...

    def write_counters(self) -> dict[str, int]:
        """How appends were grouped (SQLite: commits, fsyncs, checkpoints, the fsync process); {} when not kept."""
        ...

    async def close(self) -> None: ...


async def read_in_batches(
    read_batch: Callable[[int, int], Awaitable[list[StoredEvent]]], after: int, batch_size: int,
) -> AsyncIterator[StoredEvent]:
    """`read_all` for every backend: `read_batch` after the last position seen, until a batch is empty."""
    while batch := await read_batch(after, batch_size):
        for event in batch:
            yield event
        after = batch[-1].position


def open_store(url: str, **options: Any) -> EventStore:
    """The backend a URL names: memory://, sqlite:///path.db, postgresql://user@host/db."""
    scheme = url.split(":", 1)[0].lower()
    # adapters are imported here: optional drivers stay optional, and there are no import cycles
    if scheme == "memory":
        from .memory import InMemoryEventStore

        return InMemoryEventStore(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteEventStore

        return SQLiteEventStore.from_url(url, **options)
    if scheme in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresEventStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreError(f"PostgreSQL needs the [postgres] extra: pip install 'order-machine[postgres]' ({exc})") from exc
        return PostgresEventStore.from_url(url, **options)
    raise StoreError(f"unsupported store url {without_password(url)!r}: "
                     "use memory://, sqlite:///path.db or postgresql://...")


def without_password(url: str) -> str:
    """`url` with any `user:password@` password masked, whatever the scheme (for messages and logs)."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


__all__ = ["AppendResult", "EventStore", "open_store"]
