"""The rows of the read-model views, as every backend keeps them and every projector writes them.

Plain data: knows nothing of events, storage or the domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple


@dataclass(slots=True)
class OrderRow:
    """One order as the `orders` view keeps it (mutable inside a batch, copied out of storage)."""

    id: str
    customer_id: str
    description: str
    initial_amount: Decimal | None
    amount: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    version: int
    item_count: int
    created_position: int
    position: int
    tracking_number: str | None = None
    shipping_address: str | None = None
    cancellation_reason: str | None = None
    return_reason: str | None = None
    #: every value the order's actions recorded (JSON form), the four above included
    data: dict[str, Any] = field(default_factory=dict)


#: the names the `orders` view also keeps in columns of their own (the shipped order.yaml's)
ORDER_COLUMNS_RECORDED = ("tracking_number", "shipping_address", "cancellation_reason", "return_reason")


@dataclass(slots=True)
class WorkflowRow:
    """One workflow instance as the `workflows` view keeps it; `data` is its recorded data in JSON form."""

    stream_id: str
    definition: str
    id: str
    definition_version: int
    state: str
    version: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_position: int
    position: int


class ItemRow(NamedTuple):
    """One line of an order (`line` counts from 1 in the order the items were added)."""

    order_id: str
    line: int
    product_id: str
    quantity: int
    unit_price: Decimal


class HistoryRow(NamedTuple):
    """One event of an order's history; `action`, `from_state`, `to_state` are None when not a transition.

    `at` is the event's ISO 8601 time as stored; `data` is the event's data without `at`, `source` and
    `target` (which have their own columns).
    """

    position: int
    order_id: str
    version: int
    type: str
    action: str | None
    from_state: str | None
    to_state: str | None
    at: str
    data: Mapping[str, Any]
