"""In-memory read models, for tests and examples: the same projectors and queries, kept in dicts.

A batch is applied between two awaits, so it is atomic on the event loop. Imports no driver.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from typing import Any

from .batch import CheckpointMoved, Decoded, Projector, run_batch
from .changes import Changes
from .order_projectors import OrderProjector, ProjectedOrder
from .quarantine import Quarantine, run_skipping
from .queries import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, WorkflowReadModel, apply_in_turn, check_limit,
    created_after, created_page, history_model, order_model, summary_model, to_micros, updated_before, updated_page,
    workflow_model, workflow_page,
)
from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow
from .workflow_projector import WorkflowProjector


class InMemoryReadModels:
    """Read models in dicts; loses everything when the process ends."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderRow] = {}
        self._items: dict[str, list[ItemRow]] = {}
        self._history: dict[str, list[HistoryRow]] = {}
        self._checkpoints: dict[str, int] = {}
        self._workflows: dict[str, WorkflowRow] = {}
        self._quarantine: dict[str, dict[str, Quarantine]] = {}  # projector -> stream -> record

    # ----------------------------------------------------------------- projector side

    async def checkpoint(self, name: str) -> int:
        return self._checkpoints.get(name, 0)

    def _load(self, order_ids: Collection[str]) -> dict[str, OrderRow]:
        # copies, data included: a batch mutates them and must leave nothing behind if it fails
        return {i: replace(self._orders[i], data=dict(self._orders[i].data)) for i in order_ids if i in self._orders}

    def _load_workflows(self, stream_ids: Collection[str]) -> dict[str, WorkflowRow]:
        return {i: copy.deepcopy(self._workflows[i]) for i in stream_ids if i in self._workflows}

    async def apply(self, projector: Projector, events: Sequence[Decoded], after: int,
                    quarantine: Quarantine | None = None) -> int:
        current = self._checkpoints.get(projector.name, 0)
        if current != after:
            raise CheckpointMoved(projector.name, after, current)
        if not events:
            return after
        changes = Changes(self._load, self._load_workflows)
        held = self._quarantine.get(projector.name, {})
        skipped = (held.keys() | {quarantine.stream_id}) if quarantine is not None else held
        position = run_skipping(projector, changes, events, skipped)
        self._write(changes)
        if quarantine is not None:
            held.setdefault(quarantine.stream_id, quarantine)
            self._quarantine[projector.name] = held
        self._checkpoints[projector.name] = position
        return position

    async def apply_together(
        self, jobs: Sequence[tuple[Projector, Sequence[Decoded], int]],
    ) -> list[int | Exception]:
        return await apply_in_turn(self, jobs)

    def _write(self, changes: Changes) -> None:
        self._orders.update(changes.dirty)
        self._workflows.update(changes.dirty_workflows)
        for item in changes.items:
            self._items.setdefault(item.order_id, []).append(item)
        for entry in changes.history:
            self._history.setdefault(entry.order_id, []).append(entry)

    def _views(self) -> dict[str, dict[str, Any]]:
        """Each view by name, keyed by stream id."""
        return {"orders": self._orders, "order_items": self._items, "order_history": self._history,
                "workflows": self._workflows}

    async def reset(self, projector: Projector) -> None:
        views = self._views()
        for view in projector.views:
            views[view].clear()
        self._quarantine.pop(projector.name, None)
        self._checkpoints[projector.name] = 0

    async def quarantined(self, *, projector: str | None = None, stream_id: str | None = None) -> list[Quarantine]:
        return [q for name in sorted(self._quarantine) if projector is None or name == projector
                for stream, q in sorted(self._quarantine[name].items()) if stream_id is None or stream == stream_id]

    async def release(self, projector: Projector, stream_id: str, events: Sequence[Decoded], checkpoint: int) -> bool:
        if self._checkpoints.get(projector.name, 0) != checkpoint:
            return False
        changes = Changes(lambda ids: {}, lambda ids: {})  # the stream's rows, from its events alone
        run_batch(projector, changes, events)
        views = self._views()
        for view in projector.views:
            views[view].pop(stream_id, None)
        self._write(changes)
        self._quarantine.get(projector.name, {}).pop(stream_id, None)
        return True

    async def repair_order(self, order_id: str, projected: ProjectedOrder, checkpoint: int) -> bool:
        if self._checkpoints.get(OrderProjector.name, 0) != checkpoint:
            return False
        if projected.row is None:
            self._orders.pop(order_id, None)
            self._items.pop(order_id, None)
        else:
            self._orders[order_id] = replace(projected.row, data=dict(projected.row.data))
            self._items[order_id] = list(projected.items)
        return True

    async def repair_workflow(self, stream_id: str, row: WorkflowRow | None, checkpoint: int) -> bool:
        if self._checkpoints.get(WorkflowProjector.name, 0) != checkpoint:
            return False
        if row is None:
            self._workflows.pop(stream_id, None)
        else:
            self._workflows[stream_id] = copy.deepcopy(row)
        return True

    # ----------------------------------------------------------------- queries

    async def get_order(self, order_id: str) -> OrderReadModel | None:
        row = self._orders.get(order_id)
        return order_model(row, self._items.get(order_id, [])) if row is not None else None

    async def get_summary(self, order_id: str) -> OrderSummaryReadModel | None:
        row = self._orders.get(order_id)
        return summary_model(row) if row is not None else None

    async def orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> Page[OrderReadModel]:
        rows = (r for r in self._orders.values()
                if r.customer_id == customer_id and (status is None or r.status == status))
        return self._created_page(rows, limit, cursor)

    async def orders_by_status(self, status: str, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderReadModel]:
        return self._created_page((r for r in self._orders.values() if r.status == status), limit, cursor)

    async def recently_updated(self, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderSummaryReadModel]:
        key = updated_before(limit, cursor)
        rows = sorted(((to_micros(r.updated_at), r.id), r) for r in self._orders.values())
        rows.reverse()
        if key is not None:
            rows = [(k, r) for k, r in rows if k < key]
        return updated_page([r for _, r in rows[:limit + 1]], limit)

    async def order_history(self, order_id: str, *, after_version: int = 0,
                            limit: int = 100) -> list[OrderHistoryEntry]:
        check_limit(limit)
        entries = [e for e in self._history.get(order_id, []) if e.version > after_version]
        return [history_model(e) for e in entries[:limit]]

    async def get_workflow(self, stream_id: str) -> WorkflowReadModel | None:
        row = self._workflows.get(stream_id)
        return workflow_model(row) if row is not None else None

    async def workflows(self, definition: str, *, state: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> Page[WorkflowReadModel]:
        after = created_after(limit, cursor)
        rows = sorted((r for r in self._workflows.values() if r.definition == definition and r.created_position > after
                       and (state is None or r.state == state)), key=lambda r: r.created_position)
        return workflow_page(rows[:limit + 1], limit)

    async def close(self) -> None:
        pass

    def _created_page(self, rows: Iterable[OrderRow], limit: int, cursor: str | None) -> Page[OrderReadModel]:
        after = created_after(limit, cursor)
        chosen = sorted((r for r in rows if r.created_position > after), key=lambda r: r.created_position)
        return created_page(chosen[:limit + 1], limit, self._items)
