"""Read-your-writes waiters of a projection runner: who waits for which position, released after each batch.

One future per waiter, kept in a heap by position: a batch that commits wakes exactly the waiters it
satisfied, and nobody polls. Imports asyncio only.
"""

from __future__ import annotations

import asyncio
import heapq


class PositionWaiters:
    """Futures waiting for a position, resolved once every projector has applied it."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []  # (position, sequence, future)
        self._count = 0

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, position: int) -> asyncio.Future[None]:
        """A future resolved once `position` is reached (or the runner gives up on it: check again then)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._count += 1
        heapq.heappush(self._heap, (position, self._count, future))
        return future

    def release(self, reached: int, everyone: bool = False) -> None:
        """Resolve the waiters of positions up to `reached`; with `everyone`, all of them (a projector stopped:
        they learn it when they check again)."""
        heap = self._heap
        while heap and heap[0][0] <= reached:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
        if everyone:
            for _, _, future in heap:
                if not future.done():
                    future.set_result(None)
            heap.clear()
