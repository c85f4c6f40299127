"""The OpenAPI document as the server behaves, and the docs pages (Swagger UI, ReDoc) served from the package.

FastAPI's own document is completed here, in one place: the error bodies `errors.py` writes, by status (no
HTTPValidationError: a 422 is `{"error": "invalid", "field": ...}`); 401 and 403 on every route but auth's
PUBLIC_PATHS (and a bearer scheme when the server runs with keys); 400, 408 and 413 on every route with a
body; 404 on every route with a path parameter; 431 and 503 everywhere; the headers of commands' answers. Each served definition's actions get operations of their own
(`openapi_definitions`). Imports `bootstrap` for the Runtime type and the api package's modules.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .error_bodies import BY_STATUS, component_schemas
from ..definition import Definition
from ..order import CORE_DATA
from .auth import PUBLIC_PATHS
from .openapi_definitions import REF, definition_tags, fields_schema, order_paths, workflow_paths
from .schemas import COMMAND_HEADERS, CREATED_HEADERS, error_responses

if TYPE_CHECKING:
    from ..bootstrap import Runtime

AUTH_ERRORS = (401, 403)  # on every route but auth.PUBLIC_PATHS, the routes KeyAuth lets through without a key
BODY_ERRORS = (400, 408, 413, 422)
ALWAYS = (431, 503)
SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key from `order-machine keys "
                   "create --scope read|write|admin`, sent as `Authorization: Bearer KEY`"}
CHALLENGE_HEADER = {"WWW-Authenticate": {"description": 'How to authenticate: Bearer realm="order-machine"',
                                         "required": True, "schema": {"type": "string"}}}

# the docs pages ask for nothing outside this server (fastapi-offline ships the Swagger UI and ReDoc files)
SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "tryItOutEnabled": True, "displayRequestDuration": True}


def docs_app_options() -> dict[str, Any]:
    """FastAPIOffline options: the docs at /docs and /redoc, their files under /docs-assets."""
    return {"docs_url": "/docs", "redoc_url": "/redoc", "static_url": "/docs-assets",
            "swagger_ui_parameters": SWAGGER_UI_PARAMETERS}


def install_openapi(app: FastAPI, runtime: Runtime | None = None, *, keys: bool = False) -> None:
    """Replace `app.openapi` by the completed document, built once per set of served definitions.

    The definitions come from the running Runtime (the app's lifespan, or `runtime` when the caller owns
    it); before one runs the document has only the generic routes and is not kept. With `keys` (the
    server checks API keys) the document declares the bearer scheme every route but /health needs.
    """
    built: list[tuple[object, dict[str, Any]]] = []  # (the catalog it was built from, the document)

    def openapi() -> dict[str, Any]:
        rt: Runtime | None = getattr(app.state, "runtime", None) or runtime
        if rt is None:
            return build_openapi(app, None, keys=keys)
        if not built or built[0][0] is not rt.engine.catalog:
            built[:] = [(rt.engine.catalog, build_openapi(app, rt, keys=keys))]
        return built[0][1]

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI, runtime: Runtime | None, *, keys: bool = False) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                           description=app.description, routes=app.routes, tags=app.openapi_tags, servers=app.servers)
    if runtime is not None:
        definitions = [runtime.engine.machine(name).definition for name in runtime.engine.definitions]
        for definition in definitions:
            document["paths"].update(workflow_paths(definition))
        document["paths"].update(order_paths(runtime.machine.definition))
        _order_data(document, runtime.machine.definition)
        document["tags"] = [*document.get("tags", []), *definition_tags(definitions)]
    complete(document)
    if keys:
        document["components"]["securitySchemes"] = {"apiKey": SECURITY_SCHEME}
        document["security"] = [{"apiKey": []}]
        for path in PUBLIC_PATHS:
            for operation in document["paths"].get(path, {}).values():
                operation["security"] = []
    return document


def _order_data(document: dict[str, Any], definition: Definition) -> None:
    """`POST /orders`' `data`: the fields order.yaml declares beyond the four every order has, typed."""
    extra = {name: spec for name, spec in definition.data.items() if name not in CORE_DATA}
    create = document["components"]["schemas"].get("CreateOrderRequest")
    if create is not None:
        data = create["properties"]["data"]
        create["properties"]["data"] = {**fields_schema(extra), "description": data.get("description", "")}
        if any(spec.required for spec in extra.values()):
            create["required"] = [*create.get("required", []), "data"]


def complete(document: dict[str, Any]) -> None:
    """Every operation's errors, with the bodies the server writes, and its command headers."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for fastapi_only in ("HTTPValidationError", "ValidationError"):  # never answered: errors.py writes 422s
        schemas.pop(fastapi_only, None)
    schemas.update(component_schemas(REF))
    errors = {str(status): entry for status, entry in error_responses(*BY_STATUS).items()}
    for path, item in document["paths"].items():
        for operation in item.values():
            responses: dict[str, Any] = operation["responses"]
            parameters = operation.get("parameters", [])
            statuses = set(ALWAYS)
            if path not in PUBLIC_PATHS:
                statuses.update(AUTH_ERRORS)
            if "requestBody" in operation:
                statuses.update(BODY_ERRORS)
            if parameters:
                statuses.add(422)
            if any(p["in"] == "path" for p in parameters):
                statuses.add(404)  # an unknown id, or a path no route has (an id holding a `/`)
            for code in sorted(statuses):
                responses.setdefault(str(code), {})
            for status, response in responses.items():
                if status in errors and not _custom(response):
                    response.update(errors[status])
            if "401" in responses:
                responses["401"]["headers"] = CHALLENGE_HEADER
            _command_headers(responses, parameters)


_OURS_OR_FASTAPIS = re.compile(r"/(HTTPValidationError|Error[0-9]{3})$")


def _custom(response: dict[str, Any]) -> bool:
    """A route that wrote its own error body (e.g. /health's 503) keeps it."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema) and not _OURS_OR_FASTAPIS.search(schema.get("$ref", ""))


def _command_headers(responses: dict[str, Any], parameters: list[dict[str, Any]]) -> None:
    """A command (an operation taking Idempotency-Key) answers with ETag and Idempotent-Replayed; a 201 with
    Location too."""
    if not any(p["name"] == "Idempotency-Key" for p in parameters):
        return
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {}).update(CREATED_HEADERS if status == "201" else COMMAND_HEADERS)
