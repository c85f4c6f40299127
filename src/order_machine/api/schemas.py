"""Request and response bodies of the HTTP API, in snake_case names, with OpenAPI examples.

Money is a decimal string, times are UTC ISO 8601. Imports `commands` for the shared field types only;
the read models are converted into these models so the HTTP contract does not drift with storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..commands import ItemLine, Money, Text
from ..diagrams import MEDIA_TYPES
from ..ids import Id, StoredText
from .error_bodies import DESCRIPTIONS, EXAMPLES, schema_name


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


def _out(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(from_attributes=True, json_schema_extra={"examples": list(examples)})


# --------------------------------------------------------------------------- requests

class CreateOrderRequest(BaseModel):
    """A new order: its customer, and optionally a description, items, an amount and an id of your choice."""

    model_config = _examples(
        {"customer_id": "cust-7", "description": "Birthday gift",
         "items": [{"product_id": "sku-42", "quantity": 2, "unit_price": "19.99"}]},
        {"order_id": "ord-1001", "customer_id": "cust-7", "amount": "120.00", "description": "Bulk order"},
    )

    order_id: Id | None = Field(default=None, description="chosen by the caller; generated when absent")
    customer_id: Id
    description: StoredText = Field(default="", max_length=2000)
    amount: Money | None = Field(default=None, description="initial amount before items (decimal string)")
    items: list[ItemLine] = Field(default_factory=list, max_length=1000)
    data: dict[str, Any] = Field(default_factory=dict, description=(
        "values for the data fields order.yaml declares beyond customer_id, description, amount and items "
        "(none in the shipped one); checked against their declared types"))


class AddItemRequest(BaseModel):
    model_config = _examples({"product_id": "sku-7", "quantity": 1, "unit_price": "4.50"})

    product_id: Id
    quantity: int = Field(gt=0, le=1_000_000, strict=True)
    unit_price: Money


class ShipRequest(BaseModel):
    model_config = _examples({"tracking_number": "1Z999AA10123456784", "shipping_address": "1 Main St, Springfield"})

    tracking_number: Text
    shipping_address: Text


class ReasonRequest(BaseModel):
    model_config = _examples({"reason": "customer changed their mind"})

    reason: Text


class StatusRequest(BaseModel):
    """Move an order to a state: the target state, and the data the action leading there needs."""

    model_config = _examples(
        {"status": "Confirmed"},
        {"status": "Shipped", "data": {"tracking_number": "1Z999", "shipping_address": "1 Main St"}},
    )

    status: str = Field(min_length=1, max_length=100, description="the target state's name")
    data: dict[str, Any] = Field(default_factory=dict, description="fields of the action that leads there")


# --------------------------------------------------------------------------- responses

class CommandResponse(BaseModel):
    """What an accepted command did: the order's state and version after it, and the events it appended."""

    model_config = _out({"order_id": "ord-1001", "state": "Confirmed", "version": 2, "events": ["OrderConfirmed"]})

    order_id: str
    state: str
    version: int
    events: list[str]


class OrderItemResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    product_id: str
    quantity: int
    unit_price: Decimal
    total_price: Decimal


_ORDER_EXAMPLE: dict[str, Any] = {
    "id": "ord-1001", "customer_id": "cust-7", "amount": "39.98", "description": "Birthday gift",
    "status": "Shipped", "created_at": "2025-03-01T09:30:00Z", "updated_at": "2025-03-02T14:05:12Z",
    "items": [{"product_id": "sku-42", "quantity": 2, "unit_price": "19.99", "total_price": "39.98"}],
    "version": 4, "tracking_number": "1Z999AA10123456784", "shipping_address": "1 Main St, Springfield",
    "cancellation_reason": None, "return_reason": None,
    "data": {"tracking_number": "1Z999AA10123456784", "shipping_address": "1 Main St, Springfield"},
}


class OrderResponse(BaseModel):
    """An order as it is now: customer, amount, items, status and times, version, shipping data and reasons."""

    model_config = _out(_ORDER_EXAMPLE)

    id: str
    customer_id: str
    amount: Decimal
    description: str
    status: str
    created_at: datetime
    updated_at: datetime
    items: list[OrderItemResponse]
    version: int
    tracking_number: str | None = None
    shipping_address: str | None = None
    cancellation_reason: str | None = None
    return_reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description=(
        "every value the order's actions recorded, by the names order.yaml gives them (those of an order.yaml "
        "of one's own included); the four fields above repeat the shipped definition's"))


class OrderSummaryResponse(BaseModel):
    """An order in brief: customer, status, amount, item count and times."""

    model_config = _out({"id": "ord-1001", "customer_id": "cust-7", "amount": "39.98", "status": "Shipped",
                         "item_count": 1, "created_at": "2025-03-01T09:30:00Z", "updated_at": "2025-03-02T14:05:12Z"})

    id: str
    customer_id: str
    amount: Decimal
    status: str
    item_count: int
    created_at: datetime
    updated_at: datetime


class SummaryPage(BaseModel):
    """One page of order summaries; pass `next_cursor` back as `cursor` for the next one (null at the end)."""

    model_config = _out({"items": [{
        "id": "ord-1001", "customer_id": "cust-7", "amount": "39.98", "status": "Shipped", "item_count": 1,
        "created_at": "2025-03-01T09:30:00Z", "updated_at": "2025-03-02T14:05:12Z"}],
        "next_cursor": "WyIyMDI1LTAzLTAyIiwib3JkLTEwMDEiXQ"})

    items: list[OrderSummaryResponse]
    next_cursor: str | None = None


class OrderPage(BaseModel):
    """One page of orders; pass `next_cursor` back as `cursor` for the next one (null at the end)."""

    model_config = _out({"items": [_ORDER_EXAMPLE], "next_cursor": "eyJrIjoiLi4uIn0"})

    items: list[OrderResponse]
    next_cursor: str | None = None


class HistoryEntryResponse(BaseModel):
    """One event of an order's history, oldest first; `action` and the states are null when not a transition."""

    model_config = _out({"position": 17, "version": 2, "type": "OrderConfirmed", "action": "Confirm",
                         "from_state": "Pending", "to_state": "Confirmed", "at": "2025-03-01T09:31:02Z", "data": {}})

    position: int
    version: int
    type: str
    action: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class FieldInfo(BaseModel):
    type: str
    required: bool
    description: str = ""


class BlockedBy(BaseModel):
    """The guard that would refuse an allowed action right now, and what it checks."""

    guard: str
    description: str = ""


class ActionInfo(BaseModel):
    action: str
    description: str = ""
    fields: dict[str, FieldInfo] = Field(default_factory=dict)
    blocked_by: BlockedBy | None = Field(
        default=None, description="the guard that would refuse this action on the order as it is now (checked "
                                  "without the action's data); null when none would")


class ActionsResponse(BaseModel):
    """The actions the order's state allows, the data each one takes, and which of them a guard blocks now."""

    model_config = _out({"order_id": "ord-1001", "state": "Pending", "version": 1, "actions": [
        {"action": "Confirm", "description": "Accept the order", "fields": {},
         "blocked_by": {"guard": "has_value",
                        "description": "The order has at least one item or a positive amount"}},
        {"action": "Cancel", "description": "Stop the order before it ships", "fields": {
            "reason": {"type": "str", "required": True, "description": "Why it was cancelled"}},
         "blocked_by": None},
    ]})

    order_id: str
    state: str
    version: int
    actions: list[ActionInfo]


class DefinitionSummary(BaseModel):
    model_config = _out({"name": "order", "version": 1, "description": "Lifecycle of a customer order",
                         "initial": "Pending", "states": ["Pending", "Confirmed", "Processing", "Shipped",
                                                          "Delivered", "Cancelled", "Returned"],
                         "actions": ["Confirm", "StartProcessing", "Ship", "Deliver", "Cancel", "Return"]})

    name: str
    version: int
    description: str
    initial: str
    states: list[str]
    actions: list[str]


class HealthResponse(BaseModel):
    model_config = _out({"status": "ok", "store": "ok", "last_position": 42,
                         "projections": {"orders": {"position": 42, "lag": 0, "failed": None}}})

    status: str
    store: str
    last_position: int | None = None
    projections: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


# --------------------------------------------------------------------------- errors and headers (for the docs)

def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can answer: each status's bodies
    (`ErrorNNN` in the document's components, see error_bodies.py) with a real example."""
    return {status: {"description": DESCRIPTIONS[status], "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema_name(status)}"}, "example": EXAMPLES[status]}}}
        for status in statuses}


ETAG_HEADER: dict[str, Any] = {"description": 'The version as an entity tag, e.g. "3": send it back in If-Match (commands) '
                              'or If-None-Match (reads)',
               "required": True, "schema": {"type": "string", "pattern": '^"[0-9]+"$'}, "example": '"3"'}
ETAG_HEADERS = {"ETag": ETAG_HEADER}
COMMAND_HEADERS = {
    "ETag": ETAG_HEADER,
    "Idempotent-Replayed": {"description": "`true` when this is the first answer to an earlier request with the "
                                           "same Idempotency-Key, replayed: nothing changed this time",
                            "required": False, "schema": {"type": "string", "enum": ["true"]}},
}
"""Headers of a command's answer."""
CREATED_HEADERS = {
    **COMMAND_HEADERS,
    "Location": {"description": "Where the new resource is read (e.g. /orders/ord-1001, /workflows/payment/pay-1): "
                                "under ORDER_MACHINE_BASE_URL when set, else relative to this server; the id "
                                "percent-encoded",
                 "required": True, "schema": {"type": "string"}},
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "If-None-Match named the current version: nothing changed since", "headers": ETAG_HEADERS}}


# --------------------------------------------------------------------------- OpenAPI helpers

def examples_of(model: type[BaseModel]) -> list[dict[str, Any]]:
    extra = model.model_config.get("json_schema_extra")
    return list(extra.get("examples", [])) if isinstance(extra, dict) else []  # type: ignore[arg-type]


def body_examples(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_examples` for a request body: the model's examples, named for the docs' drop-down."""
    return {f"example_{i + 1}": {"summary": ", ".join(sorted(ex))[:60], "value": ex}
            for i, ex in enumerate(examples_of(model))}


def ok(model: type[BaseModel] | None, status: int = 200, description: str = "OK", *, example: Any = None,
       media_type: str = "application/json", headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI `responses=` entry for the success answer, with an example (and its headers)."""
    if example is None and model is not None:
        example = examples_of(model)[0]
    entry: dict[str, Any] = {"description": description, "content": {media_type: {"example": example}}}
    if headers:
        entry["headers"] = headers
    return {status: entry}


SVG_EXAMPLE = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<svg width="720pt" height="260pt" ...>...</svg>'
_DRAWINGS = {"svg": SVG_EXAMPLE, "png": "(a PNG image)", "dot": 'digraph order {\n\tPending -> Confirmed [label=Confirm]\n\t...\n}',
             "mmd": "stateDiagram-v2\n    [*] --> Pending\n    Pending --> Confirmed: Confirm\n    ..."}


def drawing(formats: Iterable[str], headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The success entry of a diagram route: one media type per format it draws (the path picks it)."""
    content: dict[str, Any] = {MEDIA_TYPES[f]: {"schema": {"type": "string", **({"format": "binary"} if f == "png"
                                                                              else {})}, "example": _DRAWINGS[f]}
                               for f in formats}
    entry: dict[str, Any] = {"description": "The drawing, in the format the path's extension names", "content": content}
    if headers:
        entry["headers"] = headers
    return {200: entry}
