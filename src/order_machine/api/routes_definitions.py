"""Definition routes: the loaded workflow definitions, and transition diagrams (a definition's, an order's).

Diagrams come from `diagrams` (which alone imports graphviz); drawing runs in a worker thread because
Graphviz is a subprocess. Imports `definition`, `diagrams`, `errors` and the api package's modules.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from ..definition import Definition
from ..diagrams import MEDIA_TYPES, order_path_from_events, render_diagram
from ..errors import OrderNotFoundError
from .deps import RuntimeDep, etag
from ..errors import UnknownDefinitionError
from .schemas import ETAG_HEADERS, DefinitionSummary, drawing, error_responses, examples_of, ok

router = APIRouter(tags=["definitions"])

Name = Annotated[str, Path(min_length=1, max_length=100, description="a definition's name", examples=["order"])]
DiagramFormat = Literal["svg", "png", "dot", "mmd"]


def _definition(rt: RuntimeDep, name: str) -> Definition:
    try:
        return rt.definitions[name]
    except KeyError:
        raise UnknownDefinitionError(name, sorted(rt.definitions)) from None


def _summary(d: Definition) -> dict[str, Any]:
    return DefinitionSummary(name=d.name, version=d.version, description=d.description, initial=d.initial,
                             states=d.state_names, actions=d.action_names).model_dump(mode="json")


@router.get("/definitions", response_model=list[DefinitionSummary], name="list_definitions",
            summary="The workflow definitions this service loaded",
            responses=ok(None, example=examples_of(DefinitionSummary)))
async def list_definitions(rt: RuntimeDep) -> Response:
    return JSONResponse([_summary(rt.definitions[name]) for name in sorted(rt.definitions)])


_DEFINITION_EXAMPLE = {
    "name": "order", "version": 1, "description": "Lifecycle of a customer order", "initial": "Pending",
    "states": [{"name": "Pending", "description": "Placed by the customer", "terminal": False}],
    "actions": [{"name": "Confirm", "description": "Accept the order", "fields": {}}],
    "guards": [{"name": "has_value", "description": "The order has at least one item or a positive amount",
                "when": "amount > 0 || size(items) > 0"}],
    "transitions": [{"action": "Confirm", "from": ["Pending"], "to": "Confirmed", "guards": ["has_value"],
                     "emits": "OrderConfirmed"}],
}


@router.get("/definitions/{name}", name="get_definition", summary="One definition in full (as its YAML reads)",
            response_model=Definition,
            responses={**ok(None, example=_DEFINITION_EXAMPLE), **error_responses(404)})
async def get_definition(rt: RuntimeDep, name: Name) -> Response:
    definition = _definition(rt, name)
    return JSONResponse(definition.model_dump(mode="json", by_alias=True))


async def _render(request: Request, definition: Definition, fmt: str, **options: Any) -> bytes:
    # one definition always draws the same bytes: keep them for the life of the app
    cache: dict[tuple[str, int, str], bytes] = request.app.state.diagram_cache
    key = (definition.name, definition.version, fmt)
    if options or key not in cache:
        data = await asyncio.to_thread(render_diagram, definition, fmt, **options)
        if options:
            return data
        cache[key] = data
    return cache[key]


@router.get("/definitions/{name}/diagram.{fmt}", name="definition_diagram", response_class=Response,
            summary="A definition's transition diagram (svg, png, dot or mmd)",
            responses={**drawing(("svg", "png", "dot", "mmd"), {"Cache-Control": {
                "description": "drawings of a definition do not change while it is served", "required": True,
                "schema": {"type": "string"}, "example": "max-age=300"}}), **error_responses(404)})
async def definition_diagram(rt: RuntimeDep, request: Request, name: Name, fmt: DiagramFormat) -> Response:
    definition = _definition(rt, name)
    data = await _render(request, definition, fmt)
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"Cache-Control": "max-age=300"})


@router.get("/orders/{order_id}/diagram.{fmt}", name="order_diagram", tags=["orders"], response_class=Response,
            summary="One order's diagram: current state, the path it took, the actions allowed now",
            responses={**drawing(("svg", "png", "dot"), ETAG_HEADERS), **error_responses(404)})
async def order_diagram(
    rt: RuntimeDep, request: Request,
    order_id: Annotated[str, Path(min_length=1, max_length=200, examples=["ord-1001"])],
    fmt: Literal["svg", "png", "dot"],
) -> Response:
    stored = await rt.store.load(order_id)
    if not stored:
        raise OrderNotFoundError(order_id)
    definition = rt.machine.definition
    path = order_path_from_events(stored)
    current = path[-1][2] if path else definition.initial
    data = await _render(request, definition, fmt, path=path, current=current,
                         title=f"order {order_id} ({definition.name} v{definition.version})")
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"ETag": etag(stored[-1].version)})
