"""The error bodies the API answers, by HTTP status, as models for the OpenAPI document, each with a real example.

`errors.py` builds these bodies; this module only describes them (tests/e2e/test_api_openapi_truth.py
checks that the examples are what the server answers). Imports pydantic only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Error(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="for people; `error` is the stable code to act on")


class _OpenError(_Error):
    # written by middleware that may add fields of its own (authentication, limits)
    model_config = ConfigDict(extra="allow")


class BadRequest(_Error):
    """The body could not be read at all (e.g. JSON text that is not UTF-8)."""

    error: Literal["bad_request"]


class Unauthorized(_OpenError):
    """No API key, or one the server does not know (the server runs with API keys)."""

    error: Literal["unauthorized"]


class Forbidden(_OpenError):
    """The API key lacks the scope this route needs."""

    error: Literal["forbidden"]
    scope: str | None = Field(default=None, description="the scope the route needs: read, write or admin")


class OrderNotFound(_Error):
    error: Literal["order_not_found"]
    order_id: str


class DefinitionNotFound(_Error):
    error: Literal["definition_not_found"]
    name: str
    known: list[str] = Field(description="the definitions served here")


class WorkflowNotFound(_Error):
    error: Literal["workflow_not_found"]
    definition: str
    id: str


class RouteNotFound(_Error):
    """No route has this path (e.g. an id holding a `/`)."""

    error: Literal["not_found"]


class BlockedAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    guard: str
    description: str


class TransitionRefused(_Error):
    """The action is not allowed in the current state, or a guard said no; nothing was written."""

    error: Literal["transition_not_allowed"]
    order_id: str | None = Field(default=None, description="on /orders routes")
    id: str | None = Field(default=None, description="on /workflows routes")
    state: str
    action: str
    allowed_actions: list[str] = Field(description="declared from the current state")
    blocked_actions: list[BlockedAction] = Field(description="allowed actions a guard refuses right now")
    guard: str | None = Field(description="the guard that refused, if one did")
    reason: str | None


class OrderExists(_Error):
    error: Literal["order_exists"]
    order_id: str


class WorkflowExists(_Error):
    error: Literal["workflow_exists"]
    definition: str
    id: str


class VersionConflict(_Error):
    """Another write came first: 412 when `If-Match` named the old version, 409 when retries ran out."""

    error: Literal["version_conflict"]
    order_id: str | None = Field(default=None, description="on /orders routes")
    id: str | None = Field(default=None, description="on /workflows routes")
    expected_version: int
    actual_version: int


class TooLarge(_OpenError):
    """The request body is larger than the server accepts."""

    error: Literal["too_large"]


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    message: str


class Invalid(_Error):
    """A field (body, path, query or header) broke its rule; `field` names the first one."""

    error: Literal["invalid"]
    field: str | None = Field(description="e.g. items[0].quantity, order_id, cursor, If-Match, Idempotency-Key")
    problems: list[Problem] = Field(default_factory=list, description="every problem found, when there are several")


class Unavailable(_Error):
    """The store, a projection or Graphviz cannot answer now; retry later. Never names a host or a database."""

    error: Literal["store_unavailable", "projection_stopped", "diagram_unavailable"]
    projection: str | None = None
    position: int | None = None


BY_STATUS: dict[int, tuple[type[BaseModel], ...]] = {
    400: (BadRequest,),
    401: (Unauthorized,),
    403: (Forbidden,),
    404: (OrderNotFound, DefinitionNotFound, WorkflowNotFound, RouteNotFound),
    409: (TransitionRefused, OrderExists, WorkflowExists, VersionConflict),
    412: (VersionConflict,),
    413: (TooLarge,),
    422: (Invalid,),
    503: (Unavailable,),
}
"""Every body each error status can carry."""

DESCRIPTIONS = {
    400: "The body could not be read", 401: "An API key is needed", 403: "The API key lacks the scope",
    404: "Not found", 409: "Refused: not allowed now, already exists, or a conflicting write",
    412: "If-Match named a version the instance has moved past", 413: "The body is too large",
    422: "A field broke its rule; `field` names it", 503: "Unavailable; retry later",
}

_REFUSAL_MESSAGE = ("ord-1001: cannot 'Confirm' while 'Pending': guard 'has_value' refused: The order has at least one "
                    "item or a positive amount (amount > 0 || size(items) > 0); allowed now: Cancel; blocked by a "
                    "guard: Confirm (has_value: The order has at least one item or a positive amount)")

EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"error": "bad_request", "message": "There was an error parsing the body"},
    401: {"error": "unauthorized", "message": "this route needs an API key: Authorization: Bearer KEY"},
    403: {"error": "forbidden", "scope": "write", "message": "this API key lacks the scope 'write'"},
    404: {"error": "order_not_found", "order_id": "ord-404", "message": "order 'ord-404' does not exist"},
    409: {"error": "transition_not_allowed", "order_id": "ord-1001", "state": "Pending", "action": "Confirm",
          "allowed_actions": ["Confirm", "Cancel"],
          "blocked_actions": [{"action": "Confirm", "guard": "has_value",
                               "description": "The order has at least one item or a positive amount"}],
          "guard": "has_value",
          "reason": "guard 'has_value' refused: The order has at least one item or a positive amount "
                    "(amount > 0 || size(items) > 0)",
          "message": _REFUSAL_MESSAGE},
    412: {"error": "version_conflict", "order_id": "ord-1001", "expected_version": 1, "actual_version": 2,
          "message": "stream 'ord-1001': expected version 1, found 2; reload and retry"},
    413: {"error": "too_large", "message": "the request body is larger than 1048576 bytes"},
    422: {"error": "invalid", "field": "items[0].quantity", "message": "items[0].quantity: Input should be greater than 0",
          "problems": [{"field": "items[0].quantity", "message": "Input should be greater than 0"}]},
    503: {"error": "store_unavailable",
          "message": "the store cannot answer right now; retry later (the server log has the details)"},
}
"""One real answer per status (401, 403 and 413 as the authentication and limits middleware word them)."""


def schema_name(status: int) -> str:
    return f"Error{status}"


def component_schemas(ref_template: str) -> dict[str, Any]:
    """`components.schemas` entries: each error model, and per status `ErrorNNN`: one of its bodies, told
    apart by `error` (each code belongs to one model)."""
    from pydantic.json_schema import models_json_schema

    models = sorted({m for ms in BY_STATUS.values() for m in ms}, key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template=ref_template)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for status, members in BY_STATUS.items():
        refs = {m.__name__: ref_template.format(model=m.__name__) for m in members}
        if len(members) == 1:
            schemas[schema_name(status)] = {"$ref": refs[members[0].__name__]}
            continue
        mapping = {code: refs[m.__name__] for m in members for code in _codes(m)}
        schemas[schema_name(status)] = {"oneOf": [{"$ref": r} for r in refs.values()],
                                        "discriminator": {"propertyName": "error", "mapping": mapping}}
    return schemas


def _codes(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields["error"].annotation.__args__)  # type: ignore[union-attr]
