"""Workflow routes: every served definition as a durable workflow (start, read, list, act, history, diagram),
and `POST /orders/{id}/actions/{action}` so an action added to order.yaml is reachable with no new route.

Every command goes through the Runtime's WorkflowEngine (orders: OrderCommandService); reads through its
WorkflowQueries. Imports `commands`, `engine`, `errors`, `diagrams` and the api package's own modules.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..commands import PerformAction
from ..ids import Id
from ..diagrams import MEDIA_TYPES, render_diagram
from ..engine import WorkflowResult, resolve_action
from ..projections.queries import WorkflowReadModel
from .routes_orders import order_location
from .deps import READ_HEADERS, RuntimeDep, command_headers, etag, idempotency_key, if_match, not_modified, runtime_of
from .schemas import (
    ETAG_HEADERS, NOT_MODIFIED, CommandResponse, FieldInfo, body_examples, drawing, error_responses, ok,
)

router = APIRouter(tags=["workflows"])

DefinitionName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$",
                                     description="a served definition's name", examples=["payment"])]
WorkflowId = Annotated[str, Path(min_length=1, max_length=200, description="the instance's id", examples=["pay-1"])]
ActionName = Annotated[str, Path(min_length=1, max_length=100, description=(
    "a declared action, in PascalCase, snake_case or kebab-case, any letter case"), examples=["complete"])]


class StartWorkflowRequest(BaseModel):
    """Start an instance: its id (generated when left out) and the data its definition declares under `data:`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "pay-1", "data": {"amount": "100.50", "currency": "USD", "method": "CreditCard"}}]})

    id: Id | None = Field(default=None, description="chosen by the caller, or generated")
    data: dict[str, Any] = Field(default_factory=dict, description="the definition's declared data fields")


class WorkflowCommandResponse(BaseModel):
    """A started instance: its id, the definition version it runs on, its state and version, the events appended."""

    id: str
    definition: str
    definition_version: int
    state: str
    version: int
    events: list[str]


class WorkflowActionResponse(BaseModel):
    """What an accepted action did: the instance's state and version after it, and the events it appended."""

    id: str
    state: str
    version: int
    events: list[str]


class WorkflowPage(BaseModel):
    """One page of instances; pass `next_cursor` back as `cursor` for the next one (null at the end)."""

    items: list[WorkflowReadModel]
    next_cursor: str | None = None


class WorkflowAllowedAction(BaseModel):
    action: str
    description: str = ""
    fields: dict[str, FieldInfo] = Field(default_factory=dict)


class WorkflowActionsResponse(BaseModel):
    """The actions the instance's state allows now, with the fields each takes."""

    id: str
    state: str
    version: int
    actions: list[WorkflowAllowedAction]


class WorkflowHistoryEntry(BaseModel):
    """One event: its version and type; for a transition the action and the states; the data; the time."""

    model_config = ConfigDict(populate_by_name=True)

    version: int
    type: str
    action: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    data: dict[str, Any]
    at: str | None


_STARTED = {"id": "pay-1", "definition": "payment", "definition_version": 1, "state": "Pending", "version": 1,
            "events": ["WorkflowStarted"]}
_ACTED = {"id": "pay-1", "state": "Processing", "version": 2, "events": ["WorkflowTransitioned"]}
_INSTANCE = {"id": "pay-1", "definition": "payment", "definition_version": 1, "state": "Completed", "version": 3,
             "data": {"amount": "100.50", "currency": "USD", "method": "CreditCard", "retry_count": 0,
                      "transaction_id": "txn-9"},
             "created_at": "2026-12-05T10:00:00+00:00", "updated_at": "2026-12-05T10:01:00+00:00"}


def _answer(result: WorkflowResult, body: dict[str, Any], status_code: int = 200,
            location: str | None = None) -> JSONResponse:
    headers = {"ETag": etag(result.version)}
    if location:
        headers["Location"] = location
    if result.duplicate:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post("/workflows/{definition}", status_code=201, name="start_workflow", response_model=WorkflowCommandResponse,
             summary="Start an instance of a definition (201 with Location)",
             openapi_extra=command_headers(if_match=False),
             responses={**ok(WorkflowCommandResponse, 201, "Started; Location names the instance", example=_STARTED),
                        **error_responses(404, 409, 422)})
async def start_workflow(
    request: Request, definition: DefinitionName,
    body: StartWorkflowRequest = Body(default_factory=StartWorkflowRequest,
                                      openapi_examples=body_examples(StartWorkflowRequest)),
) -> Response:
    rt = runtime_of(request)
    result = await rt.engine.start(definition, body.data, workflow_id=body.id, command_id=idempotency_key(request))
    location = order_location(rt.settings.base_url, request.scope.get("root_path", ""), result.id,
                              f"workflows/{definition}")
    return _answer(result, result.body(), 201, location)


@router.post("/workflows/{definition}/{workflow_id}/actions/{action}", name="workflow_action",
             response_model=WorkflowActionResponse,
             summary="Take a declared action; the body carries the action's fields",
             openapi_extra=command_headers(),
             responses={**ok(None, example=_ACTED), **error_responses(404, 409, 412, 422)})
async def workflow_action(
    request: Request, definition: DefinitionName, workflow_id: WorkflowId, action: ActionName,
    body: dict[str, Any] | None = Body(default=None, openapi_examples={
        "complete": {"summary": "payment: Complete", "value": {"transaction_id": "txn-9"}},
        "no_fields": {"summary": "an action without fields", "value": {}}}),
) -> Response:
    rt = runtime_of(request)
    result = await rt.engine.act(definition, workflow_id, action, body or {}, expected_version=if_match(request),
                                 command_id=idempotency_key(request))
    return _answer(result, {"id": result.id, "state": result.state, "version": result.version,
                            "events": list(result.events)})


@router.get("/workflows/{definition}/{workflow_id}", name="get_workflow", response_model=WorkflowReadModel,
            summary="One instance: state, version, data and the definition version it runs on (ETag: its version; "
                    "If-None-Match: 304 while current)", openapi_extra=READ_HEADERS,
            responses={**ok(None, example=_INSTANCE, headers=ETAG_HEADERS), **NOT_MODIFIED, **error_responses(404)})
async def get_workflow(rt: RuntimeDep, definition: DefinitionName, workflow_id: WorkflowId, request: Request) -> Response:
    found = await rt.workflows.get(definition, workflow_id)
    tag = etag(found.version)
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return JSONResponse(found.model_dump(mode="json"), headers={"ETag": tag})


@router.get("/workflows/{definition}", name="list_workflows", response_model=WorkflowPage,
            summary="A definition's instances in creation order, optionally in one state",
            responses={**ok(None, example={"items": [_INSTANCE], "next_cursor": None}), **error_responses(404, 422)})
async def list_workflows(
    rt: RuntimeDep, definition: DefinitionName,
    state: Annotated[str | None, Query(max_length=100, description="only instances in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")] = None,
) -> Response:
    page = await rt.workflows.list(definition, state=state, limit=limit, cursor=cursor)
    return JSONResponse(page.model_dump(mode="json"))


@router.get("/workflows/{definition}/{workflow_id}/actions", name="workflow_actions",
            response_model=WorkflowActionsResponse,
            summary="The actions allowed now, with their fields",
            responses={**ok(None, example={"id": "pay-1", "state": "Completed", "version": 3, "actions": [
                {"action": "Refund", "description": "Give the money back", "fields": {}}]}), **error_responses(404)})
async def workflow_actions(rt: RuntimeDep, definition: DefinitionName, workflow_id: WorkflowId) -> Response:
    instance = await rt.engine.load(definition, workflow_id)
    actions = await rt.engine.allowed_actions(definition, workflow_id)
    return JSONResponse({"id": workflow_id, "state": instance.state, "version": instance.version,
                         "actions": actions})


@router.get("/workflows/{definition}/{workflow_id}/history", name="workflow_history",
            response_model=list[WorkflowHistoryEntry],
            summary="Every event of the instance: version, action, from, to, data, at",
            responses={**ok(None, example=[{"version": 2, "type": "WorkflowTransitioned", "action": "Process",
                                            "from": "Pending", "to": "Processing", "data": {},
                                            "at": "2026-12-05T10:00:30+00:00"}]), **error_responses(404)})
async def workflow_history(rt: RuntimeDep, definition: DefinitionName, workflow_id: WorkflowId) -> Response:
    return JSONResponse(await rt.engine.history(definition, workflow_id))


@router.get("/workflows/{definition}/{workflow_id}/diagram.{fmt}", name="workflow_diagram", response_class=Response,
            summary="The instance's diagram: the path it took, its state, the actions allowed now",
            responses={**drawing(("svg", "png", "dot"), ETAG_HEADERS), **error_responses(404)})
async def workflow_diagram(rt: RuntimeDep, definition: DefinitionName, workflow_id: WorkflowId,
                           fmt: Literal["svg", "png", "dot"]) -> Response:
    instance = await rt.engine.load(definition, workflow_id)
    path = [(h["from"], h["action"], h["to"]) for h in await rt.engine.history(definition, workflow_id)
            if h["type"] == "WorkflowTransitioned"]
    spec = instance.machine.definition
    data = await asyncio.to_thread(render_diagram, spec, fmt, path=path, current=instance.state,
                                   title=f"{definition} {workflow_id} ({spec.name} v{spec.version})")
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"ETag": etag(instance.version)})


@router.post("/orders/{order_id}/actions/{action}", name="order_action", tags=["orders"], response_model=CommandResponse,
             summary="Take any action order.yaml declares (e.g. one you added); the body carries its fields",
             openapi_extra=command_headers(),
             responses={**ok(None, example={"order_id": "ord-1001", "state": "Confirmed", "version": 2,
                                            "events": ["OrderConfirmed"]}), **error_responses(404, 409, 412, 422)})
async def order_action(
    request: Request,
    order_id: Annotated[str, Path(min_length=1, max_length=200, examples=["ord-1001"])],
    action: ActionName,
    body: dict[str, Any] | None = Body(default=None, openapi_examples={
        "cancel": {"summary": "Cancel", "value": {"reason": "changed my mind"}},
        "confirm": {"summary": "Confirm (no fields)", "value": {}}}),
) -> Response:
    rt = runtime_of(request)
    command = PerformAction(order_id=order_id, action=resolve_action(rt.machine, action), data=body or {},
                            expected_version=if_match(request), command_id=idempotency_key(request))
    result = await rt.service.handle(command)
    headers = {"ETag": etag(result.version)}
    if result.duplicate:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"order_id": result.order_id, "state": result.state, "version": result.version,
                         "events": list(result.events)}, headers=headers)
