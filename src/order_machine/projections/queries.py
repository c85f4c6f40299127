"""The query side: read models (pydantic, as the HTTP API returns them), pages and cursors, and the
`ReadModels` Protocol every read-model backend satisfies. Knows rows and events, not the domain.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidCommandError
from ..ids import id_problem
from .batch import Decoded, Projector
from .order_projectors import ProjectedOrder
from .rows import HistoryRow, ItemRow, OrderRow, WorkflowRow
from .quarantine import Quarantine, QuarantineStorage

MAX_LIMIT = 1000


class OrderItemReadModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str
    quantity: int
    unit_price: Decimal
    total_price: Decimal


class OrderReadModel(BaseModel):
    """An order's detail: customer, amount, items, status and times, its version and the data its actions recorded."""

    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    amount: Decimal
    description: str
    status: str
    created_at: datetime
    updated_at: datetime
    items: list[OrderItemReadModel]
    version: int
    tracking_number: str | None = None
    shipping_address: str | None = None
    cancellation_reason: str | None = None
    return_reason: str | None = None
    #: every value the order's actions recorded, by the names order.yaml gives them (JSON form)
    data: dict[str, Any] = Field(default_factory=dict)


class OrderSummaryReadModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    amount: Decimal
    status: str
    item_count: int
    created_at: datetime
    updated_at: datetime


class OrderHistoryEntry(BaseModel):
    """One event of an order: `action`, `from_state` and `to_state` are None when it is not a transition.

    `data` is what the event recorded besides its time and states (items, reason, tracking number...).
    """

    model_config = ConfigDict(frozen=True)

    position: int
    order_id: str
    version: int
    type: str
    action: str | None
    from_state: str | None
    to_state: str | None
    at: datetime
    data: dict[str, Any]


class WorkflowReadModel(BaseModel):
    """One instance of a definition: its state, version, data and the definition version it runs on."""

    model_config = ConfigDict(frozen=True)

    id: str
    definition: str
    definition_version: int
    state: str
    version: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def workflow_model(row: WorkflowRow) -> WorkflowReadModel:
    return WorkflowReadModel(id=row.id, definition=row.definition, definition_version=row.definition_version,
                             state=row.state, version=row.version, data=dict(row.data), created_at=row.created_at,
                             updated_at=row.updated_at)


def workflow_page(rows: Sequence[WorkflowRow], limit: int) -> Page[WorkflowReadModel]:
    """A page of instances in creation order, from up to limit + 1 rows."""
    shown = rows[:limit]
    return Page[WorkflowReadModel](items=[workflow_model(r) for r in shown],
                                   next_cursor=encode_cursor(shown[-1].created_position) if len(rows) > limit else None)


T = TypeVar("T")
M = TypeVar("M")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next one (None: this was the last)."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None = None


# --------------------------------------------------------------------------- rows -> models


def item_model(item: ItemRow) -> OrderItemReadModel:
    return OrderItemReadModel(product_id=item.product_id, quantity=item.quantity, unit_price=item.unit_price,
                              total_price=item.unit_price * item.quantity)


def order_model(row: OrderRow, items: Sequence[ItemRow]) -> OrderReadModel:
    return OrderReadModel(
        id=row.id, customer_id=row.customer_id, amount=row.amount, description=row.description,
        status=row.status, created_at=row.created_at, updated_at=row.updated_at,
        items=[item_model(i) for i in items], version=row.version,
        tracking_number=row.tracking_number, shipping_address=row.shipping_address,
        cancellation_reason=row.cancellation_reason, return_reason=row.return_reason, data=dict(row.data),
    )


def summary_model(row: OrderRow) -> OrderSummaryReadModel:
    return OrderSummaryReadModel(id=row.id, customer_id=row.customer_id, amount=row.amount, status=row.status,
                                 item_count=row.item_count, created_at=row.created_at, updated_at=row.updated_at)


def history_model(row: HistoryRow) -> OrderHistoryEntry:
    return OrderHistoryEntry(position=row.position, order_id=row.order_id, version=row.version, type=row.type,
                             action=row.action, from_state=row.from_state, to_state=row.to_state,
                             at=datetime.fromisoformat(row.at), data=dict(row.data))


# --------------------------------------------------------------------------- time, limits and cursors

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    """UTC microseconds since the epoch: how the SQL backends store and sort times."""
    return (at - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)

def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidCommandError(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}", "limit")
    return limit


def encode_cursor(*key: int | str) -> str:
    """An opaque cursor for the last row of a page (its sort key)."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


# what a cursor may hold: SQL integers are 64-bit (a larger one overflows the driver), strings are ids
_INT64 = range(-(2**63), 2**63)
_CURSOR_LIMIT = 1000


def _fits(value: Any, kind: type) -> bool:
    if type(value) is not kind:
        return False
    if kind is int:
        return value in _INT64
    return kind is not str or id_problem(value) is None


def decode_cursor(cursor: str | None, shape: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort key inside a cursor, checked against the types (and ranges) the query expects: anything
    else, however crafted, is InvalidCommandError naming `cursor` (a 422), never a driver's error."""
    if cursor is None:
        return None
    try:
        if isinstance(cursor, str) and len(cursor) <= _CURSOR_LIMIT:
            key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if isinstance(key, list) and len(key) == len(shape) and all(
                _fits(k, t) for k, t in zip(key, shape, strict=True)
            ):
                return tuple(key)
    except (ValueError, TypeError, RecursionError):
        pass
    shown = repr(cursor) if isinstance(cursor, str) and len(cursor) <= 100 else "given"
    raise InvalidCommandError(f"cursor {shown} is not one this query returned; pass next_cursor unchanged "
                              "or leave it out for the first page", "cursor")


# --------------------------------------------------------------------------- pages, for every backend
# A backend fetches up to limit + 1 rows in the page's order (the extra one only says there is a next
# page); these helpers read the cursor before and build the page after. Only the SQL is the backend's.


def equal_filter(mark: str, **columns: str | None) -> tuple[str, tuple[str, ...]]:
    """`column = <mark> AND ...` for the columns given a value (None: not filtered), and those values."""
    given = {column: value for column, value in columns.items() if value is not None}
    return " AND ".join(f"{column} = {mark}" for column in given), tuple(given.values())


def created_after(limit: int, cursor: str | None) -> int:
    """The created_position a page in creation order starts after (0: the first page); checks limit."""
    check_limit(limit)
    key = decode_cursor(cursor, (int,))
    return key[0] if key is not None else 0


def updated_before(limit: int, cursor: str | None) -> tuple[int, str] | None:
    """The (updated_at micros, id) a page newest-first continues below (None: the first page); checks limit."""
    check_limit(limit)
    key = decode_cursor(cursor, (int, str))
    return (key[0], key[1]) if key is not None else None


def page(rows: Sequence[OrderRow], limit: int, model: Callable[[OrderRow], M],
         cursor_of: Callable[[OrderRow], str]) -> Page[M]:
    """A page from up to limit + 1 rows: the extra one only says there is a next page."""
    shown = rows[:limit]
    return Page[M](items=[model(r) for r in shown],
                   next_cursor=cursor_of(shown[-1]) if len(rows) > limit else None)


def created_page(rows: Sequence[OrderRow], limit: int,
                 items: Mapping[str, Sequence[ItemRow]]) -> Page[OrderReadModel]:
    """A page of orders in creation order; `items` holds the item rows of (at least) the orders shown."""
    return page(rows, limit, lambda r: order_model(r, items.get(r.id, ())),
                lambda r: encode_cursor(r.created_position))


def updated_page(rows: Sequence[OrderRow], limit: int) -> Page[OrderSummaryReadModel]:
    """A page of summaries, most recently updated first."""
    return page(rows, limit, summary_model, lambda r: encode_cursor(to_micros(r.updated_at), r.id))


def items_by_order(rows: Iterable[ItemRow]) -> dict[str, list[ItemRow]]:
    """Item rows grouped by order id, in the order given."""
    items: dict[str, list[ItemRow]] = {}
    for item in rows:
        items.setdefault(item.order_id, []).append(item)
    return items


# --------------------------------------------------------------------------- the backend port


class ReadModels(QuarantineStorage, Protocol):
    """Read-model storage: applies projector batches atomically with checkpoints, and answers queries.

    For the projectors, a backend implements (memory.py, sqlite.py, postgres.py are the three):
    - `apply(projector, events, after)`: in ONE transaction, check the projector's checkpoint is still
      `after` (else raise CheckpointMoved), build a `Changes` whose loader reads `orders` rows (copies),
      `run_batch(projector, changes, events)`, write `changes.dirty` (upsert), `changes.items` and
      `changes.history` (insert) and the new checkpoint; return it. Any exception: roll back, re-raise.
    - `apply_together(jobs)`: `apply` for several projectors, each job's exception returned in its place
      (the runner retries that projector alone). SQLite commits them in one transaction (a savepoint each);
      a backend with nothing to gain from that applies them in turn (`apply_in_turn`).
    - `reset(projector)`: clear the projector's `views` and set its checkpoint to 0, in one transaction.
    - `repair_order(order_id, projected, checkpoint)`: replace one order's rows, in one transaction,
      only if OrderProjector's checkpoint is still `checkpoint` (else return False).
    - `repair_workflow(stream_id, row, checkpoint)`: the same for one row of the `workflows` view (None:
      remove it), only if WorkflowProjector's checkpoint is still `checkpoint`.
    - `checkpoint(name)`: the projector's position (0 when it never ran).
    - the storage of quarantined streams (`QuarantineStorage`, projections/quarantine.py): `apply` skips
      them and records a new one in its transaction, `reset` forgets the projector's, `release` lifts one.
    """

    async def checkpoint(self, name: str) -> int: ...

    async def apply(self, projector: Projector, events: Sequence[Decoded], after: int,
                    quarantine: Quarantine | None = None) -> int: ...

    async def apply_together(
        self, jobs: Sequence[tuple[Projector, Sequence[Decoded], int]],
    ) -> list[int | Exception]: ...

    async def reset(self, projector: Projector) -> None: ...

    async def repair_order(self, order_id: str, projected: ProjectedOrder, checkpoint: int) -> bool: ...

    async def repair_workflow(self, stream_id: str, row: WorkflowRow | None, checkpoint: int) -> bool: ...

    async def get_order(self, order_id: str) -> OrderReadModel | None: ...

    async def get_summary(self, order_id: str) -> OrderSummaryReadModel | None: ...

    async def orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> Page[OrderReadModel]: ...

    async def orders_by_status(self, status: str, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderReadModel]: ...

    async def recently_updated(self, *, limit: int = 50,
                               cursor: str | None = None) -> Page[OrderSummaryReadModel]: ...

    async def order_history(self, order_id: str, *, after_version: int = 0,
                            limit: int = 100) -> list[OrderHistoryEntry]: ...

    async def get_workflow(self, stream_id: str) -> WorkflowReadModel | None: ...

    async def workflows(self, definition: str, *, state: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> Page[WorkflowReadModel]: ...

    async def close(self) -> None: ...


async def apply_in_turn(read_models: ReadModels,
                        jobs: Sequence[tuple[Projector, Sequence[Decoded], int]]) -> list[int | Exception]:
    """`apply_together` as one `apply` per job, in turn: each job's new checkpoint, or the exception it raised."""
    outcomes: list[int | Exception] = []
    for projector, events, after in jobs:
        try:
            outcomes.append(await read_models.apply(projector, events, after))
        except Exception as exc:  # handed back to the runner, which retries or stops that projector
            outcomes.append(exc)
    return outcomes
