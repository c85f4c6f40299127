"""The unit of work of one batch: what a projector reads and writes, persisted by a backend in one transaction.

Knows the rows; never a store, a driver or the domain.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow

OrderLoader = Callable[[Collection[str]], Mapping[str, OrderRow]]
WorkflowLoader = Callable[[Collection[str]], Mapping[str, WorkflowRow]]


def _no_workflows(stream_ids: Collection[str]) -> Mapping[str, WorkflowRow]:
    return {}


class Changes:
    """What a projector may read and write inside one batch; the backend persists it in one transaction.

    `order()` reads through to the backend's `load` (which must return copies: rows are mutated here);
    `put_order`, `add_item` and `append_history` only record. Nothing reaches storage unless the
    whole batch succeeds, which is what makes a batch all-or-nothing on every backend.
    """

    __slots__ = ("_load", "_load_workflows", "orders", "dirty", "items", "history", "workflows", "dirty_workflows")

    def __init__(self, load: OrderLoader, load_workflows: WorkflowLoader = _no_workflows) -> None:
        self._load = load
        self._load_workflows = load_workflows
        self.orders: dict[str, OrderRow | None] = {}
        self.dirty: dict[str, OrderRow] = {}
        self.items: list[ItemRow] = []
        self.history: list[HistoryRow] = []
        self.workflows: dict[str, WorkflowRow | None] = {}
        self.dirty_workflows: dict[str, WorkflowRow] = {}

    def prefetch_workflows(self, stream_ids: Iterable[str]) -> None:
        wanted = {i for i in stream_ids if i not in self.workflows}
        if wanted:
            found = self._load_workflows(wanted)
            for stream_id in wanted:
                self.workflows[stream_id] = found.get(stream_id)

    def workflow(self, stream_id: str) -> WorkflowRow | None:
        if stream_id not in self.workflows:
            self.prefetch_workflows((stream_id,))
        return self.workflows[stream_id]

    def put_workflow(self, row: WorkflowRow) -> None:
        self.workflows[row.stream_id] = row
        self.dirty_workflows[row.stream_id] = row

    def prefetch(self, order_ids: Iterable[str]) -> None:
        """Load every order of a batch with one backend call instead of one per event."""
        wanted = {i for i in order_ids if i not in self.orders}
        if wanted:
            found = self._load(wanted)
            for order_id in wanted:
                self.orders[order_id] = found.get(order_id)

    def order(self, order_id: str) -> OrderRow | None:
        try:
            return self.orders[order_id]
        except KeyError:
            row = self._load((order_id,)).get(order_id)
            self.orders[order_id] = row
            return row

    def put_order(self, row: OrderRow) -> None:
        self.orders[row.id] = row
        self.dirty[row.id] = row

    def add_item(self, item: ItemRow) -> None:
        self.items.append(item)

    def append_history(self, entry: HistoryRow) -> None:
        self.history.append(entry)
