"""The read side: projectors, read models per backend, the projection runner, queries and the consistency checker.

Knows events and the event store Protocol; never imports the domain (order, machine, workflow) or the service.
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreError
from ..store import EventStore
from .batch import Projector, run_batch
from .changes import Changes
from .consistency import ConsistencyChecker, ConsistencyReport, FieldDifference, OrderCheck
from .custom import (
    CustomProjection, ProjectorTables, ProjectorTransaction, Table, TableProjector, load_projectors,
    open_projector_tables,
)
from .memory import InMemoryReadModels
from .order_projectors import INITIAL_STATE, OrderHistoryProjector, OrderProjector, ProjectedOrder, project_order
from .progress import ProjectionStatus, RebuildReport, RetryPolicy
from .projectors import default_projectors
from .quarantine import Quarantine, QuarantineStorage, check_stream, release_quarantined, release_stream
from .queries import (
    OrderHistoryEntry, OrderItemReadModel, OrderReadModel, OrderSummaryReadModel, Page, ReadModels, WorkflowReadModel,
)
from .rows import HistoryRow, ItemRow, OrderRow
from .runner import ProjectionRunner
from .sqlite import SQLiteReadModels


def open_read_models(store: EventStore, **options: Any) -> ReadModels:
    """The read models that live beside `store`: in memory, or tables in the same database."""
    scheme = store.url.split(":", 1)[0].lower()
    if scheme == "memory":
        return InMemoryReadModels()
    if scheme == "sqlite":
        return SQLiteReadModels.from_store(store, **options)
    if scheme in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresReadModels  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise StoreError(f"PostgreSQL read models are not available: {exc}") from exc
        return PostgresReadModels.from_store(store, **options)  # type: ignore[no-any-return, unused-ignore]
    raise StoreError(f"no read models for store url {store.url!r}")


__all__ = [
    "INITIAL_STATE", "Changes", "ConsistencyChecker", "ConsistencyReport", "CustomProjection", "FieldDifference",
    "HistoryRow", "InMemoryReadModels", "ItemRow", "OrderCheck", "OrderHistoryEntry", "OrderHistoryProjector",
    "OrderItemReadModel", "OrderProjector", "OrderReadModel", "OrderRow", "OrderSummaryReadModel", "Page",
    "ProjectedOrder", "ProjectionRunner", "ProjectionStatus", "Projector", "ProjectorTables",
    "ProjectorTransaction", "Quarantine", "QuarantineStorage", "ReadModels", "RebuildReport", "RetryPolicy",
    "SQLiteReadModels", "Table", "TableProjector", "WorkflowReadModel", "check_stream", "default_projectors",
    "load_projectors", "open_projector_tables", "open_read_models", "project_order", "release_quarantined",
    "release_stream", "run_batch",
]
