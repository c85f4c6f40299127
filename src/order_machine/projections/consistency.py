"""The consistency checker: rebuild an order's read model (or a workflow instance's row) from its events,
compare it with the stored one, report the differences and repair on request. Knows the store and read models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..events import split_workflow_stream
from ..store import EventStore
from .batch import EventFailed, decode_batch, run_batch
from .changes import Changes
from .order_projectors import INITIAL_STATE, OrderProjector, ProjectedOrder, project_order
from .workflow_projector import WorkflowProjector
from .quarantine import Quarantine
from .queries import OrderReadModel, OrderSummaryReadModel, ReadModels, order_model, workflow_model

logger = logging.getLogger(__name__)

_ATTEMPTS = 5  # the projection may advance while we compare: re-check this many times


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field that differs: `field` is dotted (`amount`, `items[2].quantity`, `exists`)."""

    field: str
    stored: Any
    expected: Any


@dataclass(frozen=True, slots=True)
class OrderCheck:
    order_id: str
    checkpoint: int
    differences: tuple[FieldDifference, ...] = ()
    repaired: bool = False
    error: str | None = None  # the events themselves do not project (the runner stops on them too)

    @property
    def consistent(self) -> bool:
        return not self.differences and self.error is None


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    checked: int
    mismatched: tuple[OrderCheck, ...]
    workflows: int = 0  # how many of the `checked` streams were workflow instances (the rest: orders)
    quarantined: tuple[Quarantine, ...] = ()  # streams set aside by a projection: known out of date, not checked

    @property
    def repaired(self) -> int:
        return sum(1 for c in self.mismatched if c.repaired)


class ConsistencyChecker:
    """Compares the `orders` read model with what the order's events say, up to the projection's checkpoint."""

    def __init__(self, store: EventStore, read_models: ReadModels, *, initial_state: str = INITIAL_STATE,
                 projection: str = OrderProjector.name) -> None:
        self.store, self.read_models = store, read_models
        self.initial_state, self.projection = initial_state, projection

    async def check_order(self, order_id: str, *, repair: bool = False) -> OrderCheck:
        """Check one order; with `repair`, write the rebuilt read model when it differs.

        A workflow instance's stream (`<definition>/<id>`) is checked against the `workflows` view instead.
        """
        if split_workflow_stream(order_id) is not None:
            return await self.check_workflow(order_id, repair=repair)
        check = OrderCheck(order_id, 0)
        for _ in range(_ATTEMPTS):
            checkpoint = await self.read_models.checkpoint(self.projection)
            events = [e for e in await self.store.load(order_id) if e.position <= checkpoint]
            try:
                projected = project_order(events, self.initial_state)
            except EventFailed as exc:
                return OrderCheck(order_id, checkpoint, error=f"event at position {exc.position}: {exc.cause}")
            stored = await self.read_models.get_order(order_id)
            summary = await self.read_models.get_summary(order_id)
            if await self.read_models.checkpoint(self.projection) != checkpoint:
                continue  # the projection moved while we read: compare again
            differences = _differences(stored, summary, projected)
            check = OrderCheck(order_id, checkpoint, differences)
            if not differences or not repair:
                return check
            if await self.read_models.repair_order(order_id, projected, checkpoint):
                logger.warning("order %r: read model repaired (%s)", order_id,
                               ", ".join(d.field for d in differences))
                return OrderCheck(order_id, checkpoint, differences, repaired=True)
        return check

    async def check_workflow(self, stream_id: str, *, repair: bool = False) -> OrderCheck:
        """Compare one instance's row in the `workflows` view with what its events say; with `repair`,
        write the row its events give (or remove a row that has no events) when they differ."""
        check = OrderCheck(stream_id, 0)
        for _ in range(_ATTEMPTS):
            checkpoint = await self.read_models.checkpoint(WorkflowProjector.name)
            events = [e for e in await self.store.load(stream_id) if e.position <= checkpoint]
            changes = Changes(lambda ids: {})
            try:
                run_batch(WorkflowProjector(), changes, decode_batch(events))
            except EventFailed as exc:
                return OrderCheck(stream_id, checkpoint, error=f"event at position {exc.position}: {exc.cause}")
            row = changes.workflows.get(stream_id)
            expected = workflow_model(row).model_dump() if row is not None else None
            found_model = await self.read_models.get_workflow(stream_id)
            if await self.read_models.checkpoint(WorkflowProjector.name) != checkpoint:
                continue
            found = found_model.model_dump() if found_model is not None else None
            differences: tuple[FieldDifference, ...]
            if found is None or expected is None:
                differences = () if found is expected else (FieldDifference("exists", found is not None,
                                                                            expected is not None),)
            else:
                differences = tuple(FieldDifference(k, found[k], v) for k, v in expected.items()
                                    if found[k] != v)
            check = OrderCheck(stream_id, checkpoint, differences)
            if not differences or not repair:
                return check
            # only if the projection has not moved since we read: else compare again on its new state
            if await self.read_models.repair_workflow(stream_id, row, checkpoint):
                logger.warning("workflow %r: read model repaired (%s)", stream_id,
                               ", ".join(d.field for d in differences))
                return OrderCheck(stream_id, checkpoint, differences, repaired=True)
        return check

    async def check_all(self, *, repair: bool = False, page_size: int = 500) -> ConsistencyReport:
        """Check every stream of the store (paged through `stream_ids`) but those a projection quarantined."""
        quarantined = tuple(await self.read_models.quarantined())
        skipped = {q.stream_id for q in quarantined}
        checked, workflows, mismatched, after = 0, 0, [], ""
        while ids := await self.store.stream_ids(after, page_size):
            for order_id in ids:
                if order_id in skipped:
                    continue
                check = await self.check_order(order_id, repair=repair)
                checked += 1
                workflows += split_workflow_stream(order_id) is not None
                if not check.consistent:
                    mismatched.append(check)
            after = ids[-1]
        return ConsistencyReport(checked, tuple(mismatched), workflows, quarantined)


def _differences(stored: OrderReadModel | None, summary: OrderSummaryReadModel | None,
                 projected: ProjectedOrder) -> tuple[FieldDifference, ...]:
    expected = order_model(projected.row, projected.items) if projected.row is not None else None
    if stored is None or expected is None:
        if stored is None and expected is None:
            return ()
        return (FieldDifference("exists", stored is not None, expected is not None),)
    found, wanted = stored.model_dump(), expected.model_dump()
    out = [FieldDifference(k, found[k], v) for k, v in wanted.items() if k != "items" and found[k] != v]
    found_items, wanted_items = found["items"], wanted["items"]
    if len(found_items) != len(wanted_items):
        out.append(FieldDifference("items", len(found_items), len(wanted_items)))
    for n, (f, w) in enumerate(zip(found_items, wanted_items, strict=False), 1):
        out.extend(FieldDifference(f"items[{n}].{k}", f[k], v) for k, v in w.items() if f[k] != v)
    if summary is not None and summary.item_count != len(wanted_items):
        out.append(FieldDifference("item_count", summary.item_count, len(wanted_items)))
    return tuple(out)
