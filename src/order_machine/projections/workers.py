"""Projection workers that share the projectors by PostgreSQL advisory-lock leases, in any number of processes.

A worker holds one session connection; each projector's lease is a session advisory lock on it, so a
worker that dies (even `kill -9`) drops its connection and the server frees its leases for another.
Leases only share the work: exactly-once comes from the read models' checkpoint check. Never the domain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence

import psycopg

from ..errors import OrderMachineError
from ..store.pg_schema import LOCK_CLASS_LEASE
from ..store.postgres import Conn, PostgresEventStore
from .postgres import PostgresReadModels
from .projectors import Projector, default_projectors
from .runner import ProjectionRunner, RetryPolicy

logger = logging.getLogger(__name__)

LeaseListener = Callable[[str, bool], None]  # (projector name, True: acquired / False: lost)

# the server drops a vanished worker's session (and so its leases) after about idle + interval * count seconds
_KEEPALIVE = ("SELECT set_config('tcp_keepalives_idle', '10', false), "
              "set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)")


class LeasedProjectionWorker:
    """Runs the projectors whose lease it holds, and keeps trying to take the others' (every `lease_interval`).

    Several workers on one schema split the projectors between them; when one dies, another takes its
    projectors over at their checkpoints. Call `run()` (until `stop()`), or `start()`/`stop()`.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        read_models: PostgresReadModels | None = None,
        projectors: Sequence[Projector] | None = None,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        lease_interval: float = 1.0,
        retry: RetryPolicy = RetryPolicy(),
        on_lease: LeaseListener | None = None,
    ) -> None:
        self.store = store
        self.read_models = read_models if read_models is not None else PostgresReadModels(store)
        self.projectors = list(projectors) if projectors is not None else default_projectors()
        self.batch_size, self.poll_interval, self.lease_interval = batch_size, poll_interval, lease_interval
        self.retry = retry
        self.on_lease = on_lease
        self.owned: list[str] = []
        self.runner: ProjectionRunner | None = None
        self._conn: Conn | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- leases

    def _key(self, projector: Projector) -> str:
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

    def _lose_all(self) -> None:
        for name in self.owned:
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
                batch_size=self.batch_size, poll_interval=self.poll_interval, retry=self.retry,
            )
            for name in gained:
                logger.info("projection worker took the lease of %r", name)
                if self.on_lease is not None:
                    self.on_lease(name, True)
        return list(self.owned)

    async def release(self) -> None:
        """Give every lease back (closing the session releases them all)."""
        conn, self._conn = self._conn, None
        self._lose_all()
        if conn is not None:
            await conn.close()

    # ----------------------------------------------------------------- running

    def wake(self, _event: object = None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Take leases, apply batches for the projectors held, poll when idle; until `stop()`."""
        loop = asyncio.get_running_loop()
        next_lease = 0.0
        try:
            while not self._stopping.is_set():
                applied = 0
                try:
                    if loop.time() >= next_lease:
                        await self.acquire()
                        next_lease = loop.time() + self.lease_interval
                    if self.runner is not None:
                        applied = await self.runner.step()
                except (OrderMachineError, psycopg.Error, OSError) as exc:
                    logger.warning("projection worker: %s; retrying in %.1fs", exc, self.lease_interval)
                    next_lease = loop.time() + self.lease_interval
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.lease_interval)
                    continue
                if applied:
                    continue
                wait = min(self.poll_interval, max(next_lease - loop.time(), 0.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
        finally:
            await self.release()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="order-machine-leased-projections")

    async def stop(self) -> None:
        """Stop after the batch in progress and release the leases."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None


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
