"""ProjectionRunner: follows the event store from each projector's checkpoint and applies batches.

Woken by the bus (a hint only), polls as a fallback, retries a failing event with backoff and, if it
keeps failing, quarantines its stream and goes on with the others (quarantine.py). Knows the store
Protocol, events and read models; never the domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from ..errors import ProjectionError
from ..events import StoredEvent, utcnow
from ..store import EventStore
from .batch import CheckpointMoved, Decoded, EventFailed, decode_batch
from .collector import collector_paused
from .custom import AnyProjector, CustomProjection, apply_batch, checkpoint_of, reset_projector
from .progress import ProjectionStatus, RebuildReport, RetryPolicy
from .projectors import default_projectors
from .quarantine import Quarantine, quarantine_of
from .queries import ReadModels
from .waiters import PositionWaiters

logger = logging.getLogger(__name__)


class ProjectionRunner:
    """Applies the store's events to every projector, in batches, exactly once in effect.

    Subscribe it to a bus with `bus.subscribe(runner.wake)`; without a bus it polls every
    `poll_interval` seconds. `wait_for(position)` gives read-your-writes after a command.
    """

    def __init__(
        self,
        store: EventStore,
        read_models: ReadModels,
        projectors: Sequence[AnyProjector] | None = None,
        *,
        batch_size: int = 500,
        rebuild_batch_size: int = 5000,
        poll_interval: float = 1.0,
        linger: float = 0.0,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store, self.read_models, self.clock = store, read_models, clock
        self.projectors: list[AnyProjector] = [*(default_projectors() if projectors is None else projectors)]
        names = [p.name for p in self.projectors]
        if len(set(names)) != len(names):
            raise ValueError(f"projector names must be unique, got {names}")
        if batch_size < 1 or rebuild_batch_size < 1 or poll_interval <= 0 or linger < 0:
            raise ValueError("batch sizes must be at least 1, poll_interval above 0 and linger at least 0")
        self.batch_size, self.rebuild_batch_size = batch_size, rebuild_batch_size
        self.poll_interval, self.linger, self.retry = poll_interval, linger, retry
        self.failed: dict[str, ProjectionError] = {}
        self._checkpoints: dict[str, int] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # somebody waits for a position: no lingering
        self._waiters = PositionWaiters()  # read-your-writes, resolved after each batch commits
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if not self.running:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="order-machine-projections")

    async def stop(self) -> None:
        """Stop after the batch in progress (a batch is never cut in half)."""
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        self._urgent.set()
        await self._task
        self._task = None

    def wake(self, _event: object = None) -> None:
        """Tell the runner there may be new events (the bus calls it after an append commits)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                applied = await self.step()
            except Exception:  # the store itself failed: keep the loop alive, try again later
                logger.exception("projection runner could not read the event store")
                applied = 0
            if applied:
                if applied < self.batch_size and self.linger and not self._waiters:
                    # a short batch and nobody waiting on a position: let the next batch grow for a
                    # moment (fewer, larger transactions); a waiter ends the pause at once
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), self.linger)
                self._urgent.clear()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    # ----------------------------------------------------------------- progress

    async def checkpoints(self) -> dict[str, int]:
        if self._checkpoints is None:
            self._checkpoints = {p.name: await checkpoint_of(self.read_models, p) for p in self.projectors}
        return dict(self._checkpoints)

    async def status(self) -> list[ProjectionStatus]:
        last = await self.store.last_position()
        checkpoints = await self.checkpoints()
        held = await self.read_models.quarantined()
        return [ProjectionStatus(p.name, checkpoints[p.name], last, self.failed.get(p.name),
                                 tuple(q for q in held if q.projector == p.name)) for p in self.projectors]

    async def lag(self) -> dict[str, int]:
        """Events each projector still has to apply: last_position - checkpoint."""
        return {s.name: s.lag for s in await self.status()}

    def resume(self, name: str) -> None:
        """Clear a stopped projector's failure so the runner tries its event again (after a fix)."""
        self.failed.pop(name, None)
        self.wake()

    async def step(self) -> int:
        """Read one batch after the slowest active checkpoint and apply it to every projector behind it.

        Returns how many events were read (0: nothing new or every projector stopped).
        """
        async with self._lock:
            checkpoints = await self.checkpoints()
            active = [p for p in self.projectors if p.name not in self.failed]
            if not active:
                return 0
            batch = await self.store.read_batch(min(checkpoints[p.name] for p in active), self.batch_size)
            if not batch:
                return 0
            await self._apply_all(active, batch)
        self._release_waiters()
        return len(batch)

    async def catch_up(self) -> int:
        """Apply everything in the store now, then return how many events were read."""
        total = 0
        while applied := await self.step():
            total += applied
        return total

    async def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """Wait until every projector has applied `position` (read-your-writes after a command).

        Drives the projection itself when the runner is not started. Returns False on timeout;
        raises the ProjectionError of a projector that stopped before reaching `position`.
        """
        if self._checkpoints is not None and self._reached(position):
            return True  # the usual case for a read: no task, no timer
        try:
            await asyncio.wait_for(self._reach(position), timeout)
        except TimeoutError:
            return False
        return True

    run_until = wait_for

    async def _reach(self, position: int) -> None:
        await self.checkpoints()
        while True:
            if self._reached(position):
                return
            if not self.running:
                if not await self.step():
                    await asyncio.sleep(min(self.poll_interval, 0.01))  # position not visible yet
                continue
            future = self._waiters.add(position)
            self._urgent.set()
            self.wake()
            try:
                await asyncio.wait_for(asyncio.shield(future), self.poll_interval)
            except TimeoutError:
                pass  # check again (the runner may have stopped); wait_for's caller bounds the whole wait

    def _release_waiters(self) -> None:
        """Resolve the waiters every projector has now passed; fail those a stopped projector never will."""
        if not self._waiters or self._checkpoints is None:
            return
        # waiters a stopped projector will never satisfy see its ProjectionError when they check again
        self._waiters.release(min(self._checkpoints.values()), everyone=bool(self.failed))

    def _reached(self, position: int) -> bool:
        assert self._checkpoints is not None
        for name, error in self.failed.items():
            if self._checkpoints[name] < position:
                raise error
        return all(c >= position for c in self._checkpoints.values())

    # ----------------------------------------------------------------- applying with retries

    async def _apply_all(self, projectors: Sequence[AnyProjector], batch: Sequence[StoredEvent]) -> None:
        events = decode_batch(batch)  # once for every projector
        assert self._checkpoints is not None
        jobs: list[tuple[AnyProjector, list[Decoded], int]] = []
        for projector in projectors:
            after = self._checkpoints[projector.name]
            # positions rise through a batch: usually every event is past the checkpoint, and none is copied
            todo = events if not events or events[0][0].position > after else [
                e for e in events if e[0].position > after]
            jobs.append((projector, todo, after))
        # the read models' projectors (a user's has tables of its own)
        shared = [(p, todo, after) for p, todo, after in jobs if not isinstance(p, CustomProjection)]
        if len(shared) > 1:
            # every projector's first attempt at once (on SQLite, ONE transaction and one commit per batch
            # instead of one per projector); a projector that fails there goes the careful way below, with
            # that failure counted as its first attempt
            outcomes = await self.read_models.apply_together(shared)
            for (projector, todo, after), outcome in zip(shared, outcomes):
                if isinstance(outcome, Exception):
                    await self._apply(projector, todo, after, first_error=outcome)
                else:
                    self._checkpoints[projector.name] = outcome
            jobs = [job for job in jobs if isinstance(job[0], CustomProjection)]
        for projector, todo, after in jobs:
            await self._apply(projector, todo, after)

    async def _apply(self, projector: AnyProjector, events: list[Decoded], after: int,
                     first_error: Exception | None = None) -> None:
        """Apply `events` in as few transactions as possible; retry a failing event, then quarantine its stream.

        `first_error` is the outcome of a first attempt already made (applying together with the
        other projectors): it is handled as this loop's first try, so no event is tried more often.
        A quarantine is recorded in the transaction that applies the events after it (record and checkpoint
        commit together); if even that fails, the storage is at fault, not the event: the projector stops.
        """
        name, attempt, limit = projector.name, 0, len(events)
        failure: EventFailed | None = None  # an event that failed after a prefix that did not
        pending: Quarantine | None = None  # to record with the next transaction
        assert self._checkpoints is not None
        while events:
            chunk = events[:limit]
            try:
                if first_error is not None:
                    error, first_error = first_error, None
                    raise error
                after = await apply_batch(self.read_models, projector, chunk, after, pending)
            except CheckpointMoved as moved:
                # another worker (or a rebuild elsewhere) moved it: adopt its checkpoint and read again from there
                self._checkpoints[name] = moved.actual
                return
            except EventFailed as exc:
                if exc.index > 0:  # the events before the failing one are fine: commit them first
                    limit, failure = exc.index, exc
                    continue
                poison, cause = chunk[0][0], exc.cause
            except Exception as exc:  # storage failed
                if len(chunk) > 1:  # it names no event: halve the chunk (at once) until it is one event
                    limit = len(chunk) // 2
                    continue
                if pending is not None:  # the one event was skipped: the quarantine itself cannot commit
                    self._stop(name, pending.position, exc)
                    return
                poison, cause = chunk[0][0], exc
            else:
                self._checkpoints[name] = after
                events, limit, pending = events[len(chunk):], len(events) - len(chunk), None
                if failure is None:
                    attempt = 0
                    continue
                # that was the failing event's first attempt: back off before the next
                poison, cause, failure, attempt = events[0][0], failure.cause, None, 0
            attempt += 1
            if attempt <= self.retry.retries:
                if not await self._back_off(name, attempt, poison, cause):
                    return  # stopping
                continue
            if isinstance(projector, CustomProjection):
                # a user projector's tables commit apart from the quarantine records: it stops, reported as failed
                self.failed[name] = ProjectionError(name, poison.position, cause)
                logger.error("projection %r stopped at position %d: %r", name, poison.position, cause)
                return
            pending, attempt, limit = self._quarantine(name, poison, cause), 0, len(events)

    async def _back_off(self, name: str, attempt: int, stored: StoredEvent, cause: BaseException) -> bool:
        """Wait before the next attempt; False when the runner is stopping meanwhile."""
        delay = self.retry.delay(attempt)
        logger.warning("projection %r failed at position %d (attempt %d, retry in %.2fs): %r",
                       name, stored.position, attempt, delay, cause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        return not self._stopping.is_set()

    def _quarantine(self, name: str, stored: StoredEvent, cause: BaseException) -> Quarantine:
        record = quarantine_of(name, stored, cause, self.clock())
        logger.error("projection %r quarantines stream %r after %d attempts at position %d (%s): %s; its other "
                     "streams go on (see `order-machine projections`)", name, stored.stream_id,
                     self.retry.retries + 1, stored.position, stored.type, record.error)
        return record

    def _stop(self, name: str, position: int, cause: BaseException) -> None:
        self.failed[name] = ProjectionError(name, position, cause)
        logger.error("projection %r stopped at position %d: its storage fails even without the quarantined "
                     "stream: %r", name, position, cause)

    # ----------------------------------------------------------------- rebuild

    async def _replay(self, chosen: Sequence[AnyProjector]) -> int:
        """Apply every event to `chosen` in large batches (one read serves them all)."""
        assert self._checkpoints is not None
        count = 0
        # one batch at a time: reading the next while applying this one only trades the GIL between the two
        while active := [p for p in chosen if p.name not in self.failed]:
            with collector_paused():
                batch = await self._read(min(self._checkpoints[p.name] for p in active))
                if not batch:
                    break
                await self._apply_all(active, batch)
                count += len(batch)
                del batch
        return count

    async def _read(self, after: int) -> list[StoredEvent]:
        return await self.store.read_batch(after, self.rebuild_batch_size)

    async def rebuild(self, name: str | None = None) -> RebuildReport:
        """Clear a projector's read models and checkpoint (one transaction each), then replay from 0.

        With no name, every projector, in one pass over the store. Clears their previous failures;
        a projector that fails during the rebuild stops there as usual (see `failed`).
        """
        chosen = [p for p in self.projectors if name is None or p.name == name]
        if not chosen:
            raise ValueError(f"no projector named {name!r}; known: {', '.join(p.name for p in self.projectors)}")
        async with self._lock:
            started = time.perf_counter()
            await self.checkpoints()
            assert self._checkpoints is not None
            for projector in chosen:
                await reset_projector(self.read_models, projector)
                self._checkpoints[projector.name] = 0
                self.failed.pop(projector.name, None)
            count = await self._replay(chosen)
            report = RebuildReport(tuple(p.name for p in chosen), count, time.perf_counter() - started)
        logger.info("rebuilt %s: %d events in %.3fs (%.0f events/s)", ", ".join(report.projections),
                    report.events, report.seconds, report.events_per_second)
        self._release_waiters()
        return report
