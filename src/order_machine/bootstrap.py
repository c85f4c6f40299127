"""The composition root: builds a running order-machine (store, bus, machine, projections, services) from Settings.

Nothing here runs at import; `bootstrap(settings)` builds, `Runtime.start()` starts the background tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .bus import EventBus
from .config import Settings
from .definition import Definition, load_definitions
from .machine import Machine
from .order import order_machine
from .projections import ProjectionRunner, ReadModels, open_read_models
from .service import OrderApplicationService, OrderCommandService
from .store import EventStore, open_store

logger = logging.getLogger(__name__)


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
    started: bool = field(default=False, init=False)

    @property
    def queries(self) -> OrderApplicationService:
        return self.service

    async def start(self) -> None:
        """Start the bus and, unless disabled, the projection runner (woken by the bus)."""
        if self.started:
            return
        await self.bus.start()
        if self.settings.run_projections:
            await self.runner.start()
        self.started = True

    async def stop(self) -> None:
        """Stop background work, then close the read models and the store."""
        if self.started:
            await self.runner.stop()
            await self.bus.stop()
            self.started = False
        await self.read_models.close()
        await self.store.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def metrics(self) -> dict[str, Any]:
        """Counters for /metrics: commands by outcome, events appended, projections, bus."""
        c = self.commands.counters
        bus = self.bus.metrics()
        statuses = await self.runner.status()
        return {
            "commands": {k: getattr(c, k) for k in ("accepted", "duplicate", "refused", "invalid", "conflict",
                                                     "not_found")},
            "events_appended": c.events_appended,
            "projections": {s.name: {"checkpoint": s.checkpoint, "last_position": s.last_position, "lag": s.lag,
                                     "failed": s.error is not None} for s in statuses},
            "bus": {"published": bus.published, "processed": bus.processed, "failed": bus.failed,
                    "queue_size": bus.queue_size, "processing_seconds": bus.processing_seconds},
        }


async def bootstrap(settings: Settings | None = None) -> Runtime:
    """Open the store named by settings.db_url and wire every part; the caller starts the Runtime."""
    settings = settings or Settings()
    definitions = load_definitions(settings.definitions_dir)
    machine = order_machine(settings.definitions_dir / "order.yaml")
    options: dict[str, Any] = {}
    scheme = settings.db_url.split(":", 1)[0].lower()
    if scheme == "sqlite" and settings.durability == "fast":
        options["durability"] = "fast"
    if scheme in ("postgres", "postgresql"):
        options.update(pool_size=settings.pg_pool_size, statement_timeout_ms=settings.pg_statement_timeout_ms,
                       idle_in_transaction_timeout_ms=settings.pg_idle_in_transaction_timeout_ms,
                       schema=settings.pg_schema)
    store = open_store(settings.db_url, **options)
    bus = EventBus()
    # Read models can always be rebuilt from the events, and each batch commits with its checkpoint:
    # on SQLite their commits need not wait for an fsync (WAL + NORMAL stays consistent; after a power
    # cut the projection resumes from its last durable checkpoint). The events stay synchronous=FULL.
    read_models = open_read_models(store, synchronous="NORMAL") if scheme == "sqlite" else open_read_models(store)
    runner = ProjectionRunner(store, read_models, batch_size=settings.projection_batch_size,
                              poll_interval=settings.projection_poll_seconds)
    bus.subscribe(runner.wake)
    commands = OrderCommandService(store, machine, bus, retries=settings.command_retries)
    service = OrderApplicationService(commands, read_models, runner, read_your_writes=settings.read_your_writes,
                                      wait_seconds=settings.read_wait_seconds)
    return Runtime(settings, store, bus, machine, definitions, read_models, runner, commands, service)
