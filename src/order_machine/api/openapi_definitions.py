"""OpenAPI operations for each served definition: start and list it, and one operation per action with the
action's fields typed from the YAML, so /docs offers a form per action.

They document concrete paths (`/workflows/payment/{workflow_id}/actions/complete`) that the generic routes
of `routes_workflows` serve: nothing new is routed, the documents only say what each action takes.
Imports `definition` and the api package's own modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..definition import ActionSpec, Definition, FieldSpec
from ..ids import ID_JSON_SCHEMA
from .deps import command_headers
from .schemas import COMMAND_HEADERS, CREATED_HEADERS

REF = "#/components/schemas/{model}"

# JSON forms the server takes for each declared field type (machine.check_fields converts them); money and
# other decimals travel as strings, so no binary float ever rounds a cent
_TYPES: dict[str, tuple[dict[str, Any], Any, str]] = {
    "str": ({"type": "string"}, "text", "text"),
    "int": ({"type": "integer"}, 1, "an integer"),
    "decimal": ({"type": "string", "format": "decimal", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, "10.00",
                'a decimal number as a string, e.g. "10.00"'),
    "bool": ({"type": "boolean"}, True, "true or false"),
    "datetime": ({"type": "string", "format": "date-time"}, "2026-01-31T09:30:00Z",
                 "an ISO 8601 time with its UTC offset"),
    "list": ({"type": "array"}, [], "a list"),
    "dict": ({"type": "object"}, {}, "an object"),
}


def kebab(action: str) -> str:
    """StartProcessing -> start-processing: the action as a path segment (any spelling is accepted)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", action).replace("_", "-").lower()


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    schema, _, kind = _TYPES[spec.type]
    out = dict(schema)
    if spec.required and spec.type == "str":
        out["minLength"] = 1  # an empty text counts as missing
    if not spec.required:  # null (or leaving it out) records nothing
        out["type"] = [out["type"], "null"]
    text = spec.description.rstrip(".")
    out["description"] = f"{text} ({kind})" if text else kind.capitalize()
    return out


def fields_schema(fields: dict[str, FieldSpec]) -> dict[str, Any]:
    """An object of exactly these fields: an undeclared one is refused (422 naming it)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {name: field_schema(spec) for name, spec in fields.items()}}
    required = [name for name, spec in fields.items() if spec.required]
    if required:
        schema["required"] = required
    return schema


def fields_example(fields: dict[str, FieldSpec]) -> dict[str, Any]:
    return {name: (f"{name.replace('_', ' ')}" if spec.type == "str" else _TYPES[spec.type][1])
            for name, spec in fields.items()}


def _ok(status: int, model: str, example: dict[str, Any], headers: dict[str, Any],
        description: str) -> dict[str, Any]:
    return {str(status): {"description": description, "headers": headers, "content": {"application/json": {
        "schema": {"$ref": REF.format(model=model)}, "example": example}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    # the content is filled by openapi.complete(), like every other operation's errors
    return {str(s): {"description": ""} for s in statuses}


def _body(fields: dict[str, FieldSpec], summary: str, *, wrap: bool = False,
          definition: Definition | None = None) -> dict[str, Any]:
    schema, example = fields_schema(fields), fields_example(fields)
    required = bool(schema.get("required"))
    if wrap:  # start: {"id": optional, "data": {...}}
        schema = {"type": "object", "additionalProperties": False, "properties": {
            "id": {**ID_JSON_SCHEMA, "description": "chosen by the caller; generated when left out"},
            "data": {**schema, "description": "the data the definition declares under `data:`"}}}
        if required:
            schema["required"] = ["data"]
        assert definition is not None
        example = {"id": f"{definition.name}-1", "data": example}
    return {"required": required, "content": {"application/json": {
        "schema": schema, "examples": {"example": {"summary": summary, "value": example}}}}}


def _targets(definition: Definition, action: str) -> list[str]:
    return [t.target for t in definition.transitions if t.action == action]


def workflow_paths(definition: Definition) -> dict[str, dict[str, Any]]:
    """Start, list and each action of one definition (its latest version), under `/workflows/{name}`."""
    name, tag = definition.name, definition.name
    base = f"/workflows/{name}"
    started = {"id": f"{name}-1", "definition": name, "definition_version": definition.version,
               "state": definition.initial, "version": 1, "events": ["WorkflowStarted"]}
    paths: dict[str, dict[str, Any]] = {base: {
        "post": {
            "tags": [tag], "operationId": f"workflow_{name}_start", "summary": f"Start a new {name} (201 with Location)",
            "description": f"{definition.description}\n\nServed by `POST /workflows/{{definition}}`.".strip(),
            "parameters": command_headers(if_match=False)["parameters"],
            "requestBody": _body(definition.data, f"a new {name}", wrap=True, definition=definition),
            "responses": {**_ok(201, "WorkflowCommandResponse", started, CREATED_HEADERS,
                                f"Started; Location names the {name}"), **_errors(409, 422)},
        },
        "get": {
            "tags": [tag], "operationId": f"workflow_{name}_list", "summary": f"List {name} instances, optionally in one state",
            "description": f"Served by `GET /workflows/{{definition}}`.",
            "parameters": [
                {"name": "state", "in": "query", "required": False, "description": "only instances in this state",
                 "schema": {"type": "string", "enum": definition.state_names}},
                {"name": "limit", "in": "query", "required": False, "description": "page size",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                {"name": "cursor", "in": "query", "required": False,
                 "description": "`next_cursor` of the previous page", "schema": {"type": "string", "maxLength": 500}},
            ],
            "responses": {"200": {"description": "One page of instances", "content": {"application/json": {
                "schema": {"$ref": REF.format(model="WorkflowPage")}, "example": {"items": [], "next_cursor": None}}}},
                **_errors(422)},
        },
    }}
    workflow_id = {"name": "workflow_id", "in": "path", "required": True,
                   "schema": {**ID_JSON_SCHEMA, "description": f"the {name}'s id"}, "example": f"{name}-1"}
    for action in definition.actions:
        acted = {"id": f"{name}-1", "state": (_targets(definition, action.name) or [definition.initial])[0],
                 "version": 2, "events": ["WorkflowTransitioned"]}
        paths[f"{base}/{{workflow_id}}/actions/{kebab(action.name)}"] = {"post": _action_operation(
            action, tag, f"workflow_{name}_action_{kebab(action.name).replace('-', '_')}", workflow_id,
            _ok(200, "WorkflowActionResponse", acted, COMMAND_HEADERS, f"Done: the {name}'s state and version now"),
            f"POST /workflows/{{definition}}/{{workflow_id}}/actions/{{action}}")}
    return paths


def order_paths(definition: Definition) -> dict[str, dict[str, Any]]:
    """Each action order.yaml declares, under `/orders/{order_id}/actions/`."""
    order_id = {"name": "order_id", "in": "path", "required": True,
                "schema": {**ID_JSON_SCHEMA, "description": "the order's id"}, "example": "ord-1001"}
    paths: dict[str, dict[str, Any]] = {}
    for action in definition.actions:
        transition = next((t for t in definition.transitions if t.action == action.name), None)
        acted = {"order_id": "ord-1001", "state": transition.target if transition else definition.initial,
                 "version": 2, "events": [(transition.emits if transition else None) or "OrderTransitioned"]}
        paths[f"/orders/{{order_id}}/actions/{kebab(action.name)}"] = {"post": _action_operation(
            action, "orders", f"order_action_{kebab(action.name).replace('-', '_')}", order_id,
            _ok(200, "CommandResponse", acted, COMMAND_HEADERS, "Done: the order's state and version now"),
            "POST /orders/{order_id}/actions/{action}")}
    return paths


def _action_operation(action: ActionSpec, tag: str, operation_id: str, target: dict[str, Any],
                      ok: dict[str, Any], served_by: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [tag], "operationId": operation_id, "summary": action.description or action.name,
        "description": f"The action `{action.name}`. Served by `{served_by}`.",
        "parameters": [target, *command_headers()["parameters"]],
        "responses": {**ok, **_errors(404, 409, 412, 422)},
    }
    if action.fields:  # an action without fields takes no body
        operation["requestBody"] = _body(action.fields, action.name)
    return operation


def definition_tags(definitions: Iterable[Definition]) -> list[dict[str, str]]:
    return [{"name": d.name, "description": d.description or f"The {d.name} workflow"} for d in definitions]
