"""The composition root: builds a running order-machine (store, bus, machine, projections, services) from Settings.

Nothing here runs at import; `bootstrap(settings)` builds, `Runtime.start()` starts the background tasks.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .apikeys import KeyStore, MemoryKeyRows, open_key_store
from .bus import EventBus
from .catalog import Catalog
from .config import Settings
from .definition import Definition, load_definitions
from .engine import WorkflowEngine, WorkflowQueries
from .machine import Guard, Hook, Machine
from .order import order_machine, packaged_definitions_dir
from .projections import (
    ProjectionRunner, ProjectionStatus, ProjectorTables, ReadModels, RetryPolicy, TableProjector, default_projectors,
    load_projectors, open_projector_tables, open_read_models,
)
from .service import OrderApplicationService, OrderCommandService
from .store import EventStore, open_store

if TYPE_CHECKING:
    from .projections.workers import LeasedProjectionWorker

logger = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgres", "postgresql")


@dataclass
class Runtime:
    """Everything one process needs to serve orders; start() and stop() it around its use."""

    settings: Settings
    store: EventStore
    bus: EventBus
    machine: Machine
    definitions: dict[str, Definition]
    read_models: ReadModels
    runner: ProjectionRunner
    commands: OrderCommandService
    service: OrderApplicationService
    engine: WorkflowEngine
    workflows: WorkflowQueries
    # PostgreSQL: the projectors run under leases shared with every other process on the database (the
    # runner above then only serves rebuild and check); it follows their progress for read-your-writes
    worker: LeasedProjectionWorker | None = None
    # the API keys, beside the events (api_keys table; in memory for memory://)
    keys: KeyStore = field(default_factory=lambda: KeyStore(MemoryKeyRows()))
    # the tables of the application's own projectors (bootstrap(projectors=...)): `tables.fetch(sql)` reads them
    tables: ProjectorTables = field(kw_only=True)
    started: bool = field(default=False, init=False)

    @property
    def queries(self) -> OrderApplicationService:
        return self.service

    @property
    def projections(self) -> ProjectionRunner | LeasedProjectionWorker:
        """What keeps the read models up to date in this process: the leased worker, else the runner."""
        return self.worker if self.worker is not None else self.runner

    async def start(self) -> None:
        """Start the bus and the projections (the runner unless disabled; on PostgreSQL, the leased worker)."""
        if self.started:
            return
        # open the store (its file, schema and journal mode) before anything else touches the database
        await self.store.last_position()
        await self.tables.setup()  # a user's projector that cannot run (its tables, its DDL) fails the start
        await self.bus.start()
        if self.worker is not None:
            await self.worker.start()  # with run_projections off it only follows the others' progress
        elif self.settings.run_projections:
            await self.runner.start()
        self.started = True

    async def stop(self) -> None:
        """Stop background work (giving leases back), then close the read models and the store."""
        if self.started:
            await self.projections.stop()
            await self.bus.stop()
            self.started = False
        await self.tables.close()
        await self.read_models.close()
        await self.keys.close()
        await self.store.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_projections(self, position: int, timeout: float | None = None) -> bool:
        """Wait until the read models (whoever projects them) applied `position`; False on timeout."""
        wait = self.settings.read_wait_seconds if timeout is None else timeout
        return await self.projections.wait_for(position, wait)

    async def projection_status(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint against the store's last position (from the database on PostgreSQL)."""
        return await self.projections.status()

    async def database(self) -> dict[str, Any]:
        """For /health: the database and its schema version; on PostgreSQL also the server version and the
        age of the oldest in-flight transaction (followers wait for it). Raises when it cannot be reached."""
        scheme = self.store.url.split(":", 1)[0].lower()
        if scheme in POSTGRES_SCHEMES:
            from .store.pg_schema import LATEST_VERSION
            from .store.postgres import PostgresEventStore

            assert isinstance(self.store, PostgresEventStore)
            return {**await self.store.health(), "latest_schema_version": LATEST_VERSION}
        await self.store.last_position()
        if scheme == "sqlite":
            from .store.sqlite_file import SCHEMA_VERSION

            return {"database": "sqlite", "schema_version": SCHEMA_VERSION}  # migrated when the store opened
        return {"database": scheme}

    async def metrics(self) -> dict[str, Any]:
        """Counters for /metrics: commands by outcome, events appended, projections, bus (and the database)."""
        c = self.commands.counters
        bus = self.bus.metrics()
        statuses = await self.projection_status()
        extra: dict[str, Any] = {}
        if self.worker is not None:
            extra["oldest_transaction_seconds"] = (await self.database())["oldest_transaction_seconds"]
        store = self.store.write_counters()
        if store:  # SQLite: how appends were grouped into transactions and fsyncs
            extra["store"] = store
        return {**extra,
            "commands": {k: getattr(c, k) for k in ("accepted", "duplicate", "refused", "invalid", "conflict",
                                                     "not_found")},
            "events_appended": c.events_appended,
            "projections": {s.name: {"checkpoint": s.checkpoint, "last_position": s.last_position, "lag": s.lag,
                                     "failed": s.error is not None, "quarantined": len(s.quarantined)}
                            for s in statuses},
            "bus": {"published": bus.published, "processed": bus.processed, "failed": bus.failed,
                    "queue_size": bus.queue_size, "processing_seconds": bus.processing_seconds},
        }


def tune_gc(threshold: int) -> None:
    """For a serving process, once started: fewer, cheaper garbage collections.

    Under load, Python's default thresholds run full collections often, each over everything startup
    built (modules, the app, pydantic's validators) and the cached orders. Startup's objects are frozen
    out of every collection, and the young generation is collected every `threshold` allocations (so the
    older generations much less often). Cycles are still collected. 0: leave the GC alone.
    docs/design-notes.md has what the default cost and what this saves.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 10, 10)


def store_options(settings: Settings) -> dict[str, Any]:
    """The store options Settings give for its URL's backend.

    PostgreSQL settings count only when set (argument or ORDER_MACHINE_PG_* variable): otherwise the
    URL's own `?schema=...&pool_size=...` (or the store's defaults) apply.
    """
    scheme = settings.db_url.split(":", 1)[0].lower()
    if scheme == "sqlite" and settings.durability == "fast":
        return {"durability": "fast"}
    if scheme in POSTGRES_SCHEMES:
        names = {"pg_pool_size": "pool_size", "pg_statement_timeout_ms": "statement_timeout_ms",
                 "pg_idle_in_transaction_timeout_ms": "idle_in_transaction_timeout_ms", "pg_schema": "schema"}
        return {option: getattr(settings, field) for field, option in names.items() if field in settings.model_fields_set}
    return {}


async def bootstrap(settings: Settings | None = None, *, guards: Mapping[str, Guard] | None = None,
                    hooks: Mapping[str, Hook] | None = None, projectors: Sequence[TableProjector] = ()) -> Runtime:
    """Open the store named by settings.db_url and wire every part; the caller starts the Runtime.

    `guards` and `hooks` register Python callables by name for the definitions that declare them
    (`"name"` for any definition, `"definition.name"` for one); YAML guards (`when:`) need none.
    `projectors` are the application's own (projections.custom.TableProjector), run beside the built-in
    ones after those named in settings.projectors.
    """
    settings = settings or Settings()
    definitions = load_definitions(settings.definitions_dir)
    catalog = Catalog.load(settings.definitions_dir, guards, hooks)
    # a folder of one's own workflows needs no order.yaml: orders then run on the packaged one
    order_file = settings.definitions_dir / "order.yaml"
    machine = order_machine(order_file if order_file.exists() else packaged_definitions_dir() / "order.yaml")
    scheme = settings.db_url.split(":", 1)[0].lower()
    store = open_store(settings.db_url, **store_options(settings))
    bus = EventBus()
    # Read models can always be rebuilt from the events, and each batch commits with its checkpoint:
    # on SQLite their commits need not wait for an fsync (WAL + NORMAL stays consistent; after a power
    # cut the projection resumes from its last durable checkpoint). The events stay synchronous=FULL.
    read_models = open_read_models(store, synchronous="NORMAL") if scheme == "sqlite" else open_read_models(store)
    tables = open_projector_tables(store) if scheme in POSTGRES_SCHEMES else open_projector_tables(store, synchronous="NORMAL")
    builtin = default_projectors()
    custom = tables.bind([*load_projectors(settings.projectors), *projectors], taken=[p.name for p in builtin])
    retry = RetryPolicy(retries=settings.projection_retries)
    runner = ProjectionRunner(store, read_models, [*builtin, *custom], batch_size=settings.projection_batch_size,
                              poll_interval=settings.projection_poll_seconds,
                              linger=settings.projection_linger_seconds, retry=retry)
    worker: LeasedProjectionWorker | None = None
    if scheme in POSTGRES_SCHEMES:
        # several processes share one database: a plain runner in each would compete for every batch
        from .projections.postgres import PostgresReadModels
        from .projections.workers import LeasedProjectionWorker
        from .store.postgres import PostgresEventStore

        assert isinstance(store, PostgresEventStore) and isinstance(read_models, PostgresReadModels)
        worker = LeasedProjectionWorker(store, read_models, runner.projectors,
                                        batch_size=settings.projection_batch_size,
                                        poll_interval=settings.projection_poll_seconds, retry=retry,
                                        take_leases=settings.run_projections)
    follower = worker if worker is not None else runner
    # SQLite: the runner is woken once a committed batch, not once an event through the bus
    if worker is not None or not store.on_commit(runner.wake):
        bus.subscribe(follower.wake)
    commands = OrderCommandService(store, machine, bus, retries=settings.command_retries,
                                   cache_size=settings.order_cache_size, max_items=settings.max_items_per_order)
    service = OrderApplicationService(commands, read_models, follower, read_your_writes=settings.read_your_writes,
                                      wait_seconds=settings.read_wait_seconds)
    engine = WorkflowEngine(store, catalog, bus, retries=settings.command_retries,
                            cache_size=settings.workflow_cache_size)
    workflows = WorkflowQueries(engine, read_models, follower if settings.read_your_writes else None,
                                wait_seconds=settings.read_wait_seconds)
    return Runtime(settings, store, bus, machine, definitions, read_models, runner, commands, service, engine,
                   workflows, worker, open_key_store(store), tables=tables)
