"""The write path the order service and the workflow engine share: a queue of commands per stream, the
cache of the aggregates this process saved last, and the decide-then-append loop with its retries.

Knows aggregates only as things with a `version`; imports `errors` and nothing of the domain, the store
or the bus (the callers pass in how to load, decide and save).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Generic, Protocol, TypeVar

from .errors import ConcurrencyError, InvalidCommandError, TransitionNotAllowedError

logger = logging.getLogger(__name__)


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


class Saved(Protocol):
    @property
    def duplicate(self) -> bool: ...


A = TypeVar("A", bound=Versioned)
R = TypeVar("R")
S = TypeVar("S", bound=Saved)


@dataclass(slots=True)
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    commands: int = 0  # holding the lock or waiting for it


class StreamQueues:
    """Commands on one stream inside this process queue up instead of racing to a conflict; other
    processes are still caught by the store's expected-version check. A stream's queue lives only while
    a command holds it or waits in it, so idle streams cost nothing."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def __len__(self) -> int:
        return len(self._queues)

    async def run(self, stream: str, command: Callable[[], Awaitable[R]]) -> R:
        """`await command()` once every command queued before it on `stream` is done."""
        queue = self._queues.get(stream)
        if queue is None:
            queue = self._queues[stream] = _Queue()
        queue.commands += 1
        try:
            async with queue.lock:
                return await command()
        finally:
            queue.commands -= 1
            if queue.commands == 0:
                del self._queues[stream]


class AggregateCache(Generic[A]):
    """The aggregates this process saved last, by stream, at most `size` of them (the least recently
    saved go first; 0 keeps none).

    Safe because every append is checked against the version the aggregate had when it was decided on:
    a copy that another process made stale fails its append (or is refused), and `decide_and_save`
    then decides again on the aggregate reloaded from the store. `take` removes the entry, so a command
    that fails halfway never leaves behind a copy it may have changed.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, A] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, stream: str) -> A | None:
        return self._entries.pop(stream, None)

    def keep(self, stream: str, aggregate: A) -> None:
        if self.size <= 0:
            return
        self._entries[stream] = aggregate
        self._entries.move_to_end(stream)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


async def decide_and_save(
    stream: str,
    cache: AggregateCache[A],
    load: Callable[[], Awaitable[A]],
    decide: Callable[[A], Awaitable[object] | object],
    save: Callable[[A, int], Awaitable[S]],
    *,
    expected: int | None,
    retries: int,
    on_refused: Callable[[A, TransitionNotAllowedError], Awaitable[None]] | None = None,
) -> S:
    """Decide a command on the stream's aggregate and save its events, as one process among many.

    The aggregate comes from `cache` when this process saved it last, else from `load` (the store).
    `save(aggregate, version it was decided on)` appends with that expected version and raises
    ConcurrencyError when the stream moved. A cached copy is never trusted with a verdict: a pinned
    `expected` version that differs, a refusal, or a conflict on a cached copy are all judged again on
    the aggregate reloaded from the store. On a freshly loaded one a conflict means another writer
    came first: decide again, up to `retries` times, unless the caller pinned the version. The saved
    aggregate goes (back) into the cache, unless the store answered with the result its command id
    had the first time (then nothing of this copy was appended).
    """
    attempts = 0
    while True:
        aggregate = cache.take(stream)
        cached = aggregate is not None
        if aggregate is None:
            aggregate = await load()
        if expected is not None and aggregate.version != expected:
            if cached:
                continue
            raise ConcurrencyError(stream, expected, aggregate.version)
        decided_on = aggregate.version
        try:
            outcome = decide(aggregate)
            if isawaitable(outcome):
                await outcome
        except (TransitionNotAllowedError, InvalidCommandError) as refused:
            if cached:
                continue
            if on_refused is not None and isinstance(refused, TransitionNotAllowedError):
                await on_refused(aggregate, refused)
            raise
        try:
            result = await save(aggregate, decided_on)
        except ConcurrencyError:
            if cached:
                continue  # the copy was stale: another process wrote; nothing was appended
            attempts += 1
            if expected is not None or attempts > retries:
                raise
            logger.debug("%s changed under a command; retry %d", stream, attempts)
            # jitter, so that two writers that keep colliding stop colliding
            await asyncio.sleep(random.uniform(0, 0.001 * attempts))
            continue
        if not result.duplicate:
            cache.keep(stream, aggregate)
        return result


__all__ = ["AggregateCache", "StreamQueues", "decide_and_save"]
