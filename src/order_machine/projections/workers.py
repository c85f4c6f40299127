"""Projection workers that share the projectors by PostgreSQL advisory-lock leases, in any number of processes.

A worker holds one session connection; each projector's lease is a session advisory lock on it, so a
worker that dies (even `kill -9`) drops its connection and the server frees its leases for another.
Leases only share the work: exactly-once comes from the read models' checkpoint check. Workers tell
each other about new events, progress and released leases with LISTEN/NOTIFY (a hint: they poll too),
so `wait_for` gives read-your-writes whichever process holds the leases. Never imports the domain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import psycopg

from ..errors import OrderMachineError, ProjectionError
from ..events import utcnow
from ..store.pg_schema import LOCK_CLASS_LEASE
from ..store.postgres import Conn, PostgresEventStore
from .custom import AnyProjector, checkpoint_of
from .postgres import PostgresReadModels
from .progress import ProjectionStatus, RetryPolicy
from .projectors import default_projectors
from .runner import ProjectionRunner

logger = logging.getLogger(__name__)

LeaseListener = Callable[[str, bool], None]  # (projector name, True: acquired / False: lost)

# the server drops a vanished worker's session (and so its leases) after about idle + interval * count seconds
_KEEPALIVE = ("SELECT set_config('tcp_keepalives_idle', '10', false), "
              "set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)")

# One channel for every schema; a payload is "<kind> <schema>[ <projector>=<position> ...]" with kind
# appended (a process without the leases wrote events), progressed (checkpoints after a batch), released.
CHANNEL = "order_machine"


class LeasedProjectionWorker:
    """Runs the projectors whose lease it holds, and keeps trying to take the others' (every `lease_interval`).

    Several workers on one schema split the projectors between them; when one dies, another takes its
    projectors over at their checkpoints. Call `run()` (until `stop()`), or `start()`/`stop()`.
    With `take_leases=False` it never projects, only follows the others' progress for `wait_for`.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        read_models: PostgresReadModels | None = None,
        projectors: Sequence[AnyProjector] | None = None,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        lease_interval: float = 1.0,
        retry: RetryPolicy = RetryPolicy(),
        on_lease: LeaseListener | None = None,
        take_leases: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store, self.clock = store, clock
        self.read_models = read_models if read_models is not None else PostgresReadModels(store)
        self.projectors: list[AnyProjector] = [*(default_projectors() if projectors is None else projectors)]
        self.batch_size, self.poll_interval, self.lease_interval = batch_size, poll_interval, lease_interval
        self.retry = retry
        self.on_lease, self.take_leases = on_lease, take_leases
        self.owned: list[str] = []
        self.runner: ProjectionRunner | None = None
        self._conn: Conn | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tell_others = False  # events were appended here: wake the lease holders elsewhere
        self._lease_now = False  # a lease was released elsewhere: try to take it without waiting
        self._listening = False
        self._seen: dict[str, int] = {}  # highest checkpoint known of each projector, wherever it runs
        self._progress = asyncio.Event()  # set (and replaced) whenever `_seen` moves

    # ----------------------------------------------------------------- leases

    def _key(self, projector: AnyProjector) -> str:
        return f"{self.store.schema}:{projector.name}"

    async def _lease_connection(self) -> Conn:
        if self._conn is not None and not self._conn.closed:
            try:
                await self._conn.execute("SELECT 1")
                return self._conn
            except psycopg.Error as exc:
                logger.warning("projection worker lost its lease connection: %s", exc)
        self._lose_all()
        if self._conn is not None:
            await self._conn.close()
        self._conn = None
        conn = await self.store.connect()
        await conn.execute(_KEEPALIVE)
        self._conn = conn
        return conn

    def _lose_all(self, given_back: bool = False) -> None:
        for name in self.owned:
            if given_back:
                logger.info("projection worker released the lease of %r", name)
            else:
                logger.warning("projection worker lost the lease of %r", name)
            if self.on_lease is not None:
                self.on_lease(name, False)
        if self.owned:
            self.owned, self.runner = [], None

    async def acquire(self) -> list[str]:
        """Try to take the lease of every projector not owned yet; returns the names owned now."""
        conn = await self._lease_connection()
        gained = []
        for projector in self.projectors:
            if projector.name in self.owned:
                continue
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                     (LOCK_CLASS_LEASE, self._key(projector)))
            row = await cur.fetchone()
            if row is not None and row[0]:
                gained.append(projector.name)
        if gained:
            self.owned = [p.name for p in self.projectors if p.name in self.owned or p.name in gained]
            # a new runner reads the checkpoints afresh: the previous holder may have moved them
            self.runner = ProjectionRunner(
                self.store, self.read_models, [p for p in self.projectors if p.name in self.owned],
                batch_size=self.batch_size, poll_interval=self.poll_interval, retry=self.retry, clock=self.clock,
            )
            for name in gained:
                logger.info("projection worker took the lease of %r", name)
                if self.on_lease is not None:
                    self.on_lease(name, True)
        return list(self.owned)

    async def release(self) -> None:
        """Give every lease back (closing the session releases them all) and tell the other workers."""
        conn, self._conn = self._conn, None
        held = bool(self.owned)
        self._lose_all(given_back=True)
        if conn is None:
            return
        try:
            if held and not conn.closed:
                await conn.execute("SELECT pg_advisory_unlock_all()")
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"released {self.store.schema}"))
        except psycopg.Error as exc:  # the leases go with the session anyway; the others just learn later
            logger.info("projection worker could not announce its released leases: %s", exc)
        finally:
            await conn.close()

    # ----------------------------------------------------------------- running

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def failed(self) -> dict[str, ProjectionError]:
        """The projectors held here that stopped at an event they cannot apply."""
        return dict(self.runner.failed) if self.runner is not None else {}

    def wake(self, _event: object = None) -> None:
        """Events were appended in this process (the bus calls it): project them, or wake whoever holds the leases."""
        self._tell_others = True
        self._wake.set()

    async def run(self) -> None:
        """Take leases, apply batches for the projectors held, poll when idle; until `stop()`."""
        loop = asyncio.get_running_loop()
        next_lease = 0.0
        listener = asyncio.create_task(self._listen(), name="order-machine-projection-listener")
        try:
            while not self._stopping.is_set():
                applied, tell = 0, self._tell_others
                self._tell_others = False
                try:
                    if self.take_leases and (self._lease_now or loop.time() >= next_lease):
                        self._lease_now = False
                        await self.acquire()
                        next_lease = loop.time() + self.lease_interval
                    if self.runner is not None:
                        applied = await self.runner.step()
                        checkpoints = await self.runner.checkpoints()
                        self._saw(checkpoints)
                        if applied:
                            await self._notify("progressed", checkpoints)
                    if tell and len(self.owned) < len(self.projectors):
                        await self._notify("appended")
                except (OrderMachineError, psycopg.Error, OSError) as exc:
                    logger.warning("projection worker: %s; retrying in %.1fs", exc, self.lease_interval)
                    next_lease = loop.time() + self.lease_interval
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.lease_interval)
                    continue
                if applied:
                    continue
                wait = self.poll_interval
                if self.take_leases:
                    wait = min(wait, max(next_lease - loop.time(), 0.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
        finally:
            await self.release()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def start(self) -> None:
        if not self.running:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="order-machine-leased-projections")

    async def stop(self) -> None:
        """Stop after the batch in progress and release the leases."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    # ----------------------------------------------------------------- following every worker's progress

    async def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """Wait until every projector, in whichever process holds it, has applied `position`.

        Read-your-writes after a command. Returns False on timeout; raises the ProjectionError of a
        projector held here that stopped before `position`.
        """
        if self._reached(position):
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._reach(position)
        except TimeoutError:
            return False
        return True

    async def _reach(self, position: int) -> None:
        loop = asyncio.get_running_loop()
        # news comes by notification (or from our own runner); without it, read the checkpoints briskly
        next_poll = loop.time() + (self.poll_interval if self._informed() else 0.0)
        while True:
            progress = self._progress
            if self._reached(position):
                return
            if loop.time() >= next_poll:
                self.wake()  # a nudge, in case the holder missed the news
                await self._refresh()
                next_poll = loop.time() + (self.poll_interval if self._informed() else min(self.poll_interval, 0.05))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), max(next_poll - loop.time(), 0.0))

    def _informed(self) -> bool:
        return self._listening or (self.running and len(self.owned) == len(self.projectors))

    def _reached(self, position: int) -> bool:
        for name, error in self.failed.items():
            if self._seen.get(name, 0) < position:
                raise error
        return all(self._seen.get(p.name, 0) >= position for p in self.projectors)

    def _saw(self, checkpoints: Mapping[str, int]) -> None:
        moved = False
        for name, position in checkpoints.items():
            if position > self._seen.get(name, 0):
                self._seen[name], moved = position, True
        if moved:
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def _refresh(self) -> None:
        """Read every projector's checkpoint from the database."""
        self._saw({p.name: await checkpoint_of(self.read_models, p) for p in self.projectors})

    async def status(self) -> list[ProjectionStatus]:
        """Each projector's checkpoint in the database (whoever holds it) against the store's last position."""
        last = await self.store.last_position()
        checkpoints = {p.name: await checkpoint_of(self.read_models, p) for p in self.projectors}
        self._saw(checkpoints)
        failed, held = self.failed, await self.read_models.quarantined()
        return [ProjectionStatus(name, position, last, failed.get(name), tuple(q for q in held if q.projector == name))
                for name, position in checkpoints.items()]

    async def _notify(self, kind: str, checkpoints: Mapping[str, int] | None = None) -> None:
        payload = " ".join([kind, self.store.schema, *(f"{n}={p}" for n, p in (checkpoints or {}).items())])
        pool = await self.store.pool()
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def _heard(self, payload: str) -> None:
        kind, schema, *rest = payload.split(" ")
        if schema != self.store.schema:
            return
        if kind == "appended" and self.owned:
            self._wake.set()
        elif kind == "released" and self.take_leases:
            self._lease_now = True
            self._wake.set()
        elif kind == "progressed":
            self._saw({name: int(position) for name, position in (item.split("=", 1) for item in rest)})

    async def _listen(self) -> None:
        """Follow the other workers' notifications on a connection of its own; reconnect when it drops."""
        while True:
            conn: Conn | None = None
            try:
                conn = await self.store.connect()
                await conn.execute(_KEEPALIVE)
                await conn.execute(f"LISTEN {CHANNEL}")
                self._listening = True
                await self._refresh()  # whatever moved before we listened
                async for note in conn.notifies():
                    try:
                        self._heard(note.payload)
                    except ValueError:
                        logger.warning("projection worker: unreadable notification %r", note.payload)
            except (OrderMachineError, psycopg.Error, OSError) as exc:
                logger.warning("projection worker: notifications interrupted (%s); polling meanwhile", exc)
            finally:
                self._listening = False
                if conn is not None:
                    await conn.close()
            await asyncio.sleep(self.lease_interval)


# --------------------------------------------------------------------------- a worker process


async def _serve(url: str, schema: str, batch_size: int, poll: float, lease: float) -> int:
    def report(name: str, acquired: bool) -> None:
        print(f"{'lease' if acquired else 'lost'} {name}", flush=True)

    async with PostgresEventStore.from_url(url, schema=schema) as store:
        worker = LeasedProjectionWorker(store, batch_size=batch_size, poll_interval=poll, lease_interval=lease,
                                        on_lease=report)
        await store.pool()
        print("ready", flush=True)
        await worker.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m order_machine.projections.workers --db postgresql://...`: one worker process, until killed."""
    parser = argparse.ArgumentParser(prog="python -m order_machine.projections.workers", description=main.__doc__)
    parser.add_argument("--db", required=True, help="postgresql://user:password@host:port/db")
    parser.add_argument("--schema", default="order_machine")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls when idle")
    parser.add_argument("--lease", type=float, default=1.0, help="seconds between attempts to take free leases")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(_serve(args.db, args.schema, args.batch_size, args.poll, args.lease))
    except OrderMachineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
