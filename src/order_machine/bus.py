"""An in-process async event bus: handlers by event type (a class takes its subclasses too, or a
type name, or all), start/stop, metrics, streams.

Publishing is a wake-up call: the store stays the truth and projectors read it, not the bus.
Knows no domain class; handlers receive whatever object was published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]
_STOP = object()


@dataclass(frozen=True, slots=True)
class BusMetrics:
    published: int
    processed: int
    failed: int
    processing_seconds: float
    queue_size: int
    listeners: int = 0  # subscribed handlers and open streams

    @property
    def average_processing_seconds(self) -> float:
        return self.processing_seconds / self.processed if self.processed else 0.0


def _type_key(event: Any) -> str:
    # stored events carry their type name, an order transition the name it is stored under (its `emits:`);
    # other domain and machine events are known by class name
    name = getattr(event, "type", None)
    if not isinstance(name, str):
        name = getattr(event, "type_name", None)
    return name if isinstance(name, str) else type(event).__name__


class EventBus:
    """Delivers published events to subscribed handlers on a background task, in publish order."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self._handlers: dict[type | str | None, list[Handler]] = {}
        # the handlers of each (class, type name) delivered so far, in subscription order; cleared on (un)subscribe
        self._chosen: dict[tuple[type, str], tuple[Handler, ...]] = {}
        self._streams: list[asyncio.Queue[Any]] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._published = self._processed = self._failed = 0
        self._seconds = 0.0

    def subscribe(self, handler: Handler, event_type: type | str | None = None) -> Callable[[], None]:
        """Call `handler` for every event of that type, or for all when None.

        A class receives its subclasses' events too (`OrderTransitioned`: every transition), and the
        events whose type name is its name (a StoredEvent of that type); a string matches the type name
        only. Returns a function that unsubscribes it.
        """
        key = event_type
        self._handlers.setdefault(key, []).append(handler)
        self._chosen.clear()

        def unsubscribe() -> None:
            if handler in self._handlers.get(key, []):
                self._handlers[key].remove(handler)
                self._chosen.clear()
        return unsubscribe

    def _handlers_for(self, event: Any) -> tuple[Handler, ...]:
        cls, name = type(event), _type_key(event)
        chosen = self._chosen.get((cls, name))
        if chosen is None:  # once per kind of event, not per event
            chosen = tuple(handler for key, handlers in self._handlers.items() if key is not None and (
                key == name if isinstance(key, str) else issubclass(cls, key) or key.__name__ == name)
                for handler in handlers) + tuple(self._handlers.get(None, ()))
            self._chosen[(cls, name)] = chosen
        return chosen

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="order-machine-bus")

    async def stop(self, drain: bool = True) -> None:
        """Stop delivering; by default after every queued event has been handled."""
        if self._task is None:
            return
        if drain:
            await self._queue.put(_STOP)
            await self._task
        else:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None
        for stream in self._streams:
            stream.put_nowait(_STOP)

    async def publish(self, event: Any) -> None:
        self._published += 1
        if not self._handlers and not self._streams:
            self._processed += 1  # nobody listens: delivered to no one, at no cost
            return
        await self._queue.put(event)

    async def stream(self) -> AsyncIterator[Any]:
        """Every event handled from now on, until the bus stops."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams.append(queue)
        try:
            while (event := await queue.get()) is not _STOP:
                yield event
        finally:
            self._streams.remove(queue)

    def metrics(self) -> BusMetrics:
        return BusMetrics(self._published, self._processed, self._failed, self._seconds, self._queue.qsize(),
                          sum(map(len, self._handlers.values())) + len(self._streams))

    async def join(self) -> None:
        """Wait until every event published so far has been handled."""
        await self._queue.join()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            event = await queue.get()
            while True:  # everything already queued, in order, before waiting again (one wake-up for many)
                try:
                    if event is _STOP:
                        return
                    await self._deliver(event)
                finally:
                    queue.task_done()
                if queue.empty():
                    break
                event = queue.get_nowait()

    async def _deliver(self, event: Any) -> None:
        started = time.perf_counter()
        failed = False
        for handler in self._handlers_for(event):
            try:
                result = handler(event)
                if result is not None:
                    await result
            except Exception:
                failed = True
                logger.exception("bus handler %r failed on %s", handler, _type_key(event))
        for stream in self._streams:
            stream.put_nowait(event)
        self._seconds += time.perf_counter() - started
        if failed:
            self._failed += 1
        else:
            self._processed += 1
