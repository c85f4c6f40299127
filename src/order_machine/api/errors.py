"""The one table that turns order-machine errors into HTTP answers (status and JSON body).

Imports `errors` and FastAPI/Starlette only; routes raise domain errors and never build error bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from ..errors import (
    ConcurrencyError, DefinitionError, DiagramError, InvalidCommandError, OrderExistsError, OrderMachineError,
    OrderNotFoundError, ProjectionError, StoreError, StreamQuarantinedError, TransitionNotAllowedError,
    UnknownDefinitionError, WorkflowExistsError, WorkflowNotFoundError,
)

logger = logging.getLogger(__name__)


Body = dict[str, Any]

# A command id is the HTTP Idempotency-Key header: name the header, not the internal field.
_FIELD_NAMES = {"command_id": "Idempotency-Key", "expected_version": "If-Match"}


def _on_workflow(request: Request) -> bool:
    return str(request.scope.get("path", "")).startswith(f"{request.scope.get('root_path', '')}/workflows/")


def _refused(exc: TransitionNotAllowedError, request: Request) -> tuple[int, Body]:
    body = exc.to_dict()
    entity_id = body.pop("entity_id")
    key = "id" if _on_workflow(request) else "order_id"
    return 409, {"error": "transition_not_allowed", key: entity_id, **body, "message": str(exc)}


def _not_found(exc: OrderNotFoundError, request: Request) -> tuple[int, Body]:
    return 404, {"error": "order_not_found", "order_id": exc.order_id, "message": str(exc)}


def _unknown_definition(exc: UnknownDefinitionError, request: Request) -> tuple[int, Body]:
    return 404, {"error": "definition_not_found", "name": exc.name, "known": exc.known, "message": str(exc)}


def _workflow_not_found(exc: WorkflowNotFoundError, request: Request) -> tuple[int, Body]:
    return 404, {"error": "workflow_not_found", "definition": exc.definition, "id": exc.workflow_id,
                 "message": str(exc)}


def _workflow_exists(exc: WorkflowExistsError, request: Request) -> tuple[int, Body]:
    return 409, {"error": "workflow_exists", "definition": exc.definition, "id": exc.workflow_id,
                 "message": str(exc)}


def _exists(exc: OrderExistsError, request: Request) -> tuple[int, Body]:
    return 409, {"error": "order_exists", "order_id": exc.order_id, "message": str(exc)}


def _conflict(exc: ConcurrencyError, request: Request) -> tuple[int, Body]:
    # with If-Match the client asked for a precondition: 412; otherwise retries ran out: 409
    status = 412 if "if-match" in request.headers else 409
    key, stream = ("id", exc.stream_id.partition("/")[2]) if _on_workflow(request) else ("order_id", exc.stream_id)
    return status, {"error": "version_conflict", key: stream, "expected_version": exc.expected,
                    "actual_version": exc.actual, "message": str(exc)}


def _invalid(exc: InvalidCommandError, request: Request) -> tuple[int, Body]:
    field = _FIELD_NAMES.get(exc.field or "", exc.field)
    return 422, {"error": "invalid", "field": field, "message": str(exc)}


def _unavailable(exc: OrderMachineError, request: Request) -> tuple[int, Body]:
    # the full text (database host, port, name, schema, driver message) goes to the log only
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, DiagramError):
        return 503, {"error": "diagram_unavailable", "message": str(exc).splitlines()[0]}
    if isinstance(exc, ProjectionError):
        return 503, {"error": "projection_stopped", "projection": exc.projection, "position": exc.position,
                     "message": public_message(exc)}
    return 503, {"error": "store_unavailable",
                 "message": "the store cannot answer right now; retry later (the server log has the details)"}


def _quarantined(exc: StreamQuarantinedError, request: Request) -> tuple[int, Body]:
    # names the stream and where its projection set it aside; why (the error text) stays with operators
    return 503, {"error": "stream_quarantined", "stream": exc.stream_id, "projection": exc.projection,
                 "position": exc.position, "event_type": exc.event_type, "message": str(exc)}


def public_message(exc: BaseException) -> str:
    """What a client may read about a server-side failure: never a database's host, port, name, schema or
    a driver's text (those go to the log). Domain errors keep their first line; store and driver errors
    are named by their class only."""
    if isinstance(exc, ProjectionError):
        return f"projection {exc.projection!r} stopped at position {exc.position}: {public_message(exc.cause)}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OrderMachineError) and not isinstance(exc, StoreError):
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__} (the server log has the details)"


def _definition(exc: DefinitionError, request: Request) -> tuple[int, Body]:
    logger.error("definition error while serving %s: %s", request.url.path, exc)
    return 500, {"error": "definition_error", "message": str(exc).splitlines()[0],
                 "problems": [str(p) for p in exc.problems]}


Mapper = Callable[[Any, Request], tuple[int, Body]]

ERROR_TABLE: dict[type[OrderMachineError], Mapper] = {
    OrderNotFoundError: _not_found,                # 404
    UnknownDefinitionError: _unknown_definition,   # 404
    TransitionNotAllowedError: _refused,           # 409
    OrderExistsError: _exists,                     # 409
    WorkflowNotFoundError: _workflow_not_found,    # 404
    WorkflowExistsError: _workflow_exists,         # 409
    ConcurrencyError: _conflict,                   # 409, or 412 with If-Match
    InvalidCommandError: _invalid,                 # 422
    StoreError: _unavailable,                      # 503
    ProjectionError: _unavailable,                 # 503
    StreamQuarantinedError: _quarantined,          # 503: that stream's read model is out of date
    DiagramError: _unavailable,                    # 503
    DefinitionError: _definition,                  # 500: the server's own files are broken
}
"""Error class -> (status, body). The most specific class in an error's MRO wins."""


def error_response(exc: OrderMachineError, request: Request) -> JSONResponse:
    """The HTTP answer for any order-machine error (unlisted ones are 500s, logged)."""
    for cls in type(exc).__mro__:
        mapper = ERROR_TABLE.get(cls)
        if mapper is not None:
            status, body = mapper(exc, request)
            return JSONResponse(body, status_code=status)
    logger.exception("unmapped error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)


def field_name(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a client names it: items[0].quantity, limit, If-Match, body."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where = parts.pop(0)
        if not parts:
            return "body" if where == "body" else str(where)
        if where == "header":
            return "-".join(p.capitalize() for p in str(parts[0]).replace("_", "-").split("-"))
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return _FIELD_NAMES.get(text, text) or "body"


def _problem(error: Any) -> dict[str, str]:
    loc, message = tuple(error.get("loc", ())), str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid":  # the location is a character offset, not a field
        where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        return {"field": "body", "message": f"the body is not valid JSON{where}: {message}"}
    return {"field": field_name(loc), "message": message}


def validation_body(errors: Sequence[Any]) -> Body:
    """422 body for pydantic errors: the first field named, every problem listed."""
    problems = [_problem(e) for e in errors]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more)"
    return {"error": "invalid", "field": first["field"], "message": message, "problems": problems}


async def _on_order_machine_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrderMachineError)
    return error_response(exc, request)


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(validation_body(list(exc.errors())), status_code=422)


async def _on_pydantic_validation(request: Request, exc: Exception) -> JSONResponse:
    # a command model built inside a route refused its data (e.g. an order id from the path)
    assert isinstance(exc, ValidationError)
    return JSONResponse(validation_body(list(exc.errors())), status_code=422)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return JSONResponse({"error": kind, "message": str(exc.detail)}, status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path, for a 405's `Allow`.

    Starlette names only the first route whose path matched, and the app tries the commands first
    (app._commands_first): a GET of /orders was told `Allow: POST`.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Route every error to the table above; nothing a client sends can reach a bare 500."""
    app.add_exception_handler(OrderMachineError, _on_order_machine_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ValidationError, _on_pydantic_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
