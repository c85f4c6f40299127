"""Order routes: create, read, list, by customer, items, and one route per
other action, and the queries (list, summary, history, allowed actions).

Every command goes through `OrderCommandService.handle`; every read through the Runtime's query side.
Imports `commands`, `errors` and the api package's own modules; never a store or the domain directly.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..commands import AddOrderItem, CommandResult, CreateOrder, PerformAction, UpdateOrderStatus, Command
from ..ids import ID_MARKS, ID_MAX_LENGTH, Id, quote_id
from ..projections import OrderReadModel
from .deps import READ_HEADERS, RuntimeDep, command_headers, etag, idempotency_key, if_match, not_modified, runtime_of
from .schemas import (
    ETAG_HEADERS, NOT_MODIFIED, ActionsResponse, AddItemRequest, CommandResponse, CreateOrderRequest,
    HistoryEntryResponse, OrderPage, OrderResponse, OrderSummaryResponse, ReasonRequest, ShipRequest, StatusRequest,
    SummaryPage, body_examples, error_responses, examples_of, ok,
)

router = APIRouter(tags=["orders"])
_encode = msgspec.json.Encoder().encode

# the id rule (ids.py) on every id a path or query carries: 422 naming it, before any store sees it
OrderId = Annotated[Id, Path(max_length=ID_MAX_LENGTH, description="the order's id", examples=["ord-1001"])]
CustomerId = Annotated[Id, Path(max_length=ID_MAX_LENGTH, examples=["cust-7"])]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")]


def _json(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)


def _execute(request: Request, command: Command) -> Awaitable[CommandResult]:
    """The command through the application service (no coroutine of its own: one frame less to resume)."""
    return runtime_of(request).service.handle(command)


def _answer(result: CommandResult, status_code: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": etag(result.version)}
    if location:
        headers["Location"] = location
    if result.duplicate:
        headers["Idempotent-Replayed"] = "true"
    # CommandResponse's fields, all plain JSON already: no model to build and dump on the hot path
    body = {"order_id": result.order_id, "state": result.state, "version": result.version,
            "events": list(result.events)}
    # the same compact UTF-8 JSON JSONResponse writes, encoded by msgspec (strings and ints only here)
    return Response(_encode(body), status_code=status_code, headers=headers, media_type="application/json")


# --------------------------------------------------------------------------- create and read


@router.post(
    "/orders", status_code=201, response_model=CommandResponse, name="create_order",
    summary="Create an order (201 with Location)", openapi_extra=command_headers(if_match=False),
    responses={**ok(CommandResponse, 201, "Created; Location names the order",
                    example={"order_id": "ord-1001", "state": "Pending", "version": 1, "events": ["OrderCreated"]}),
               **error_responses(409, 422)},
)
async def create_order(
    request: Request,
    body: CreateOrderRequest = Body(openapi_examples=body_examples(CreateOrderRequest)),
) -> Response:
    command = CreateOrder(command_id=idempotency_key(request), **body.model_dump())
    runtime = runtime_of(request)
    result = await runtime.service.handle(command)
    return _answer(result, 201, order_location(runtime.settings.base_url, request.scope.get("root_path", ""),
                                               result.order_id))


def order_location(base_url: str | None, root_path: str, order_id: str, collection: str = "orders") -> str:
    """The `Location` of an order (or of what `collection` names, e.g. `workflows/payment`): under the
    configured base URL (ORDER_MACHINE_BASE_URL) when set, else relative to this server (RFC 9110 allows
    it) under the app's own root path; never from the `Host` header, which any client can set. The id is
    percent-encoded as one path segment."""
    prefix = base_url.rstrip("/") if base_url else quote(root_path.rstrip("/"), safe="/" + ID_MARKS)
    return f"{prefix}/{collection}/{quote_id(order_id)}"


@router.get(
    "/orders/{order_id}", response_model=OrderResponse, name="get_order",
    summary="Read an order (ETag: its version; If-None-Match: 304 while current)", openapi_extra=READ_HEADERS,
    responses={**ok(OrderResponse, headers=ETAG_HEADERS), **NOT_MODIFIED, **error_responses(404)},
)
async def get_order(rt: RuntimeDep, order_id: OrderId, request: Request) -> Response:
    order = await rt.service.get_order(order_id)
    tag = etag(order.version)
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return _json(OrderResponse.model_validate(order, from_attributes=True), headers={"ETag": tag})


def _summary(item: Any) -> OrderSummaryResponse:
    if isinstance(item, OrderReadModel):  # by customer or status the read side answers full orders
        return OrderSummaryResponse(id=item.id, customer_id=item.customer_id, amount=item.amount, status=item.status,
                                    item_count=len(item.items), created_at=item.created_at, updated_at=item.updated_at)
    return OrderSummaryResponse.model_validate(item, from_attributes=True)


@router.get(
    "/orders", response_model=SummaryPage, name="list_orders",
    summary="List order summaries: by customer or status (oldest first), else the most recently updated first",
    responses={**ok(SummaryPage), **error_responses(422)},
)
async def list_orders(
    rt: RuntimeDep,
    status: Annotated[str | None, Query(max_length=100, examples=["Pending"])] = None,
    customer_id: Annotated[Id | None, Query(max_length=ID_MAX_LENGTH, examples=["cust-7"])] = None,
    limit: Limit = 50, cursor: Cursor = None,
) -> Response:
    page = await rt.service.list_orders(customer_id=customer_id, status=status, limit=limit, cursor=cursor)
    items = [_summary(item) for item in page.items]
    return _json(SummaryPage(items=items, next_cursor=page.next_cursor))


@router.get(
    "/customers/{customer_id}/orders", response_model=OrderPage, name="customer_orders",
    summary="A customer's orders in full, oldest first",
    responses={**ok(OrderPage), **error_responses(422)},
)
async def customer_orders(rt: RuntimeDep, customer_id: CustomerId, limit: Limit = 50, cursor: Cursor = None) -> Response:
    page = await rt.service.get_orders_by_customer(customer_id, limit=limit, cursor=cursor)
    return _json(OrderPage.model_validate(page, from_attributes=True))


@router.get(
    "/orders/{order_id}/summary", response_model=OrderSummaryResponse, name="order_summary",
    summary="An order in brief: customer, status, amount, item count and times",
    responses={**ok(OrderSummaryResponse), **error_responses(404)},
)
async def order_summary(rt: RuntimeDep, order_id: OrderId) -> Response:
    summary = await rt.service.get_order_summary(order_id)
    return _json(OrderSummaryResponse.model_validate(summary, from_attributes=True))


_HISTORY_PAGE = 1000


@router.get(
    "/orders/{order_id}/history", response_model=list[HistoryEntryResponse], name="order_history",
    summary="Every event of an order, oldest first",
    responses={**ok(None, example=[
        {"position": 11, "version": 1, "type": "OrderCreated", "action": None, "from_state": None,
         "to_state": "Pending", "at": "2025-03-01T09:30:00Z", "data": {"customer_id": "cust-7"}},
        *examples_of(HistoryEntryResponse)]), **error_responses(404)},
)
async def order_history(rt: RuntimeDep, order_id: OrderId) -> Response:
    entries = await rt.service.get_order_history(order_id, limit=_HISTORY_PAGE)
    while len(entries) % _HISTORY_PAGE == 0 and entries:  # a long history: read on until a short page
        more = await rt.service.get_order_history(order_id, after_version=entries[-1].version, limit=_HISTORY_PAGE)
        if not more:
            break
        entries += more
    body = [HistoryEntryResponse.model_validate(e, from_attributes=True).model_dump(mode="json") for e in entries]
    return JSONResponse(body)


@router.get(
    "/orders/{order_id}/actions", response_model=ActionsResponse, name="order_actions",
    summary="Actions allowed now, with the data fields each takes",
    responses={**ok(ActionsResponse, headers=ETAG_HEADERS), **error_responses(404)},
)
async def order_actions(rt: RuntimeDep, order_id: OrderId) -> Response:
    order = await rt.service.get_order(order_id)
    actions = await rt.service.allowed_actions(order_id)
    body = ActionsResponse.model_validate(
        {"order_id": order_id, "state": order.status, "version": order.version, "actions": actions})
    return _json(body, headers={"ETag": etag(order.version)})


# --------------------------------------------------------------------------- commands on one order


@router.post(
    "/orders/{order_id}/items", response_model=CommandResponse, name="add_item",
    summary="Add an item (only while Pending)", openapi_extra=command_headers(),
    responses={**ok(None, example={"order_id": "ord-1001", "state": "Pending", "version": 2,
                                   "events": ["OrderItemAdded"]}), **error_responses(404, 409, 412, 422)},
)
async def add_item(
    request: Request, order_id: OrderId,
    body: AddItemRequest = Body(openapi_examples=body_examples(AddItemRequest)),
) -> Response:
    command = AddOrderItem(order_id=order_id, command_id=idempotency_key(request),
                           expected_version=if_match(request),
                           **body.model_dump())
    return _answer(await _execute(request, command))


async def _act(request: Request, order_id: str, action: str, data: dict[str, Any]) -> Response:
    command = PerformAction(order_id=order_id, action=action, data=data, command_id=idempotency_key(request),
                            expected_version=if_match(request))
    return _answer(await _execute(request, command))


_ACTION_ERRORS = error_responses(404, 409, 412, 422)
_HEADERS = command_headers()


def _result(state: str, version: int, event: str) -> dict[int | str, dict[str, Any]]:
    return ok(None, example={"order_id": "ord-1001", "state": state, "version": version, "events": [event]})


@router.post("/orders/{order_id}/confirm", response_model=CommandResponse, openapi_extra=_HEADERS, name="confirm_order",
             summary="Confirm (guard: the order has items or an amount)",
             responses={**_result("Confirmed", 2, "OrderConfirmed"), **_ACTION_ERRORS})
async def confirm_order(request: Request, order_id: OrderId) -> Response:
    return await _act(request, order_id, "Confirm", {})


@router.post("/orders/{order_id}/start-processing", response_model=CommandResponse, openapi_extra=_HEADERS, name="start_processing",
             summary="Start processing a confirmed order",
             responses={**_result("Processing", 3, "OrderProcessingStarted"), **_ACTION_ERRORS})
async def start_processing(request: Request, order_id: OrderId) -> Response:
    return await _act(request, order_id, "StartProcessing", {})


@router.post("/orders/{order_id}/ship", response_model=CommandResponse, openapi_extra=_HEADERS, name="ship_order",
             summary="Ship with a tracking number and address",
             responses={**_result("Shipped", 4, "OrderShipped"), **_ACTION_ERRORS})
async def ship_order(request: Request, order_id: OrderId,
                     body: ShipRequest = Body(openapi_examples=body_examples(ShipRequest))) -> Response:
    return await _act(request, order_id, "Ship", body.model_dump())


@router.post("/orders/{order_id}/deliver", response_model=CommandResponse, openapi_extra=_HEADERS, name="deliver_order",
             summary="Record the delivery",
             responses={**_result("Delivered", 5, "OrderDelivered"), **_ACTION_ERRORS})
async def deliver_order(request: Request, order_id: OrderId) -> Response:
    return await _act(request, order_id, "Deliver", {})


@router.post("/orders/{order_id}/cancel", response_model=CommandResponse, openapi_extra=_HEADERS, name="cancel_order",
             summary="Cancel with a reason (before shipping)",
             responses={**_result("Cancelled", 2, "OrderCancelled"), **_ACTION_ERRORS})
async def cancel_order(request: Request, order_id: OrderId,
                       body: ReasonRequest = Body(openapi_examples=body_examples(ReasonRequest))) -> Response:
    return await _act(request, order_id, "Cancel", body.model_dump())


@router.post("/orders/{order_id}/return", response_model=CommandResponse, openapi_extra=_HEADERS, name="return_order",
             summary="Take a delivered order back, with a reason",
             responses={**_result("Returned", 6, "OrderReturned"), **_ACTION_ERRORS})
async def return_order(request: Request, order_id: OrderId,
                       body: ReasonRequest = Body(openapi_examples=body_examples(ReasonRequest))) -> Response:
    return await _act(request, order_id, "Return", body.model_dump())


@router.post("/orders/{order_id}/status", response_model=CommandResponse, openapi_extra=_HEADERS, name="update_status",
             summary="Move to a target state through the one action that leads there",
             responses={**_result("Confirmed", 2, "OrderConfirmed"), **_ACTION_ERRORS})
async def update_status(request: Request, order_id: OrderId,
                        body: StatusRequest = Body(openapi_examples=body_examples(StatusRequest))) -> Response:
    command = UpdateOrderStatus(order_id=order_id, status=body.status, data=body.data,
                                command_id=idempotency_key(request), expected_version=if_match(request))
    return _answer(await _execute(request, command))
