"""The error bodies the API answers, by HTTP status, as models for the OpenAPI document, each with a real example.

`errors.py`, `auth.py` and `limits.py` build these bodies; this module only describes them (tests/e2e/test_api_openapi_truth.py
checks that the examples are what the server answers). Imports pydantic only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Error(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="for people; `error` is the stable code to act on")


class BadRequest(_Error):
    """The body could not be read at all (e.g. JSON text that is not UTF-8)."""

    error: Literal["bad_request"]


class Unauthorized(_Error):
    """No API key, or one the server does not know or has revoked (a server run with `--auth keys`)."""

    error: Literal["unauthorized"]


class Forbidden(_Error):
    """The API key lacks the scope this route needs."""

    error: Literal["forbidden"]
    required_scope: Literal["read", "write", "admin"] = Field(description="the scope this route needs")
    scopes: list[str] = Field(description="the scopes the key has")


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


class BodyTimeout(_Error):
    """The request body did not arrive whole in time (`Settings.body_timeout_seconds`)."""

    error: Literal["body_timeout"]
    received_bytes: int


class TooLarge(_Error):
    """The request body is larger than the server takes (`Settings.max_body_bytes`)."""

    error: Literal["too_large"]
    max_bytes: int


class HeadersTooLarge(_Error):
    """The request's target and headers are longer than the server takes (`Settings.max_header_bytes`)."""

    error: Literal["headers_too_large"]
    max_bytes: int


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
    408: (BodyTimeout,),
    412: (VersionConflict,),
    413: (TooLarge,),
    422: (Invalid,),
    431: (HeadersTooLarge,),
    503: (Unavailable,),
}
"""Every body each error status can carry."""

DESCRIPTIONS = {
    400: "The body could not be read", 401: "An API key is needed", 403: "The API key lacks the scope",
    404: "Not found", 408: "The body did not arrive in time",
    409: "Refused: not allowed now, already exists, or a conflicting write",
    412: "If-Match named a version the instance has moved past", 413: "The body is too large",
    422: "A field broke its rule; `field` names it", 431: "The headers are too large", 503: "Unavailable; retry later",
}

_REFUSAL_MESSAGE = ("ord-1001: cannot 'Confirm' while 'Pending': guard 'has_value' refused: The order has at least one "
                    "item or a positive amount (amount > 0 || size(items) > 0); allowed now: Cancel; blocked by a "
                    "guard: Confirm (has_value: The order has at least one item or a positive amount)")

EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"error": "bad_request", "message": "There was an error parsing the body"},
    401: {"error": "unauthorized", "message": "this route needs an API key: send `Authorization: Bearer KEY` with a "
                                              "key from `order-machine keys create`"},
    403: {"error": "forbidden", "required_scope": "write", "scopes": ["read"],
          "message": "POST /orders needs the 'write' scope; the key 'reporting' has 'read'"},
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
    408: {"error": "body_timeout", "received_bytes": 512,
          "message": "the request body did not arrive within 10s (it has 512 bytes so far)"},
    413: {"error": "too_large", "max_bytes": 1048576,
          "message": "the request body is larger than 1048576 bytes, the most this server takes"},
    422: {"error": "invalid", "field": "items[0].quantity", "message": "items[0].quantity: Input should be greater than 0",
          "problems": [{"field": "items[0].quantity", "message": "Input should be greater than 0"}]},
    431: {"error": "headers_too_large", "max_bytes": 16384,
          "message": "the request's target and headers take 20512 bytes; this server takes at most 16384"},
    503: {"error": "store_unavailable",
          "message": "the store cannot answer right now; retry later (the server log has the details)"},
}
"""One real answer per status, on the default settings."""


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
