"""The FastAPI app factory: `create_app(settings)` builds the app; its lifespan bootstraps and runs the Runtime.

Nothing is built at import. Mount the app in another FastAPI app and run its lifespan there (see
`create_app`). Imports `bootstrap`, `config` and the api package's own modules.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from ..bootstrap import Runtime, bootstrap, tune_gc
from ..config import Settings
from ..projections.custom import TableProjector
from . import routes_definitions, routes_ops, routes_orders, routes_workflows
from .auth import guard_routes, install_key_auth
from .errors import install_error_handlers
from .limits import RequestLimits
from .openapi import docs_app_options, install_openapi

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Orders as explicit, event-sourced state machines.

* Every `POST` takes an **`Idempotency-Key`** header: a repeat returns the first response (with
  `Idempotent-Replayed: true`) and changes nothing.
* Action routes take **`If-Match: "<version>"`** (the `ETag` of an order read): 412 if the order moved on.
* A refused action answers **409** naming the state, the action, the actions allowed now and the guard.
* Reads with an `ETag` take **`If-None-Match`**: 304 with no body while your copy is current.
* Every served definition has its own operations below (a tag each): its start, list, and one form per action
  with the action's fields; the generic `/workflows/{definition}/...` routes serve them.
* Money is a decimal string, times are UTC ISO 8601. After a 2xx command, a read of that order shows its effect.
"""

TAGS = [
    {"name": "orders", "description": "Create orders, take them through their actions, and read them"},
    {"name": "workflows", "description": "Every other definition as a durable workflow: start, act, read, list"},
    {"name": "definitions", "description": "Workflow definitions and their transition diagrams"},
    {"name": "operations", "description": "Health and Prometheus metrics"},
]


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               projectors: Sequence[TableProjector] = ()) -> FastAPI:
    """The HTTP API over one Runtime.

    Without `runtime`, the lifespan bootstraps one from `settings` (default: `Settings()`, i.e. the
    ORDER_MACHINE_* environment) with your `projectors`, starts it and stops it at shutdown. With
    `runtime`, the caller owns its start and stop (and gave bootstrap the projectors). The settings'
    limits apply to every request, and `auth="keys"` requires API keys (the runtime's `keys`). To mount
    inside another app, run this app's lifespan from the host's:

        orders = create_app(settings)
        @asynccontextmanager
        async def lifespan(host):
            async with orders.router.lifespan_context(orders):
                yield
        host = FastAPI(lifespan=lifespan); host.mount("/orders-api", orders)
    """
    if runtime is not None and projectors:
        raise ValueError("a runtime you built has its projectors already: pass them to bootstrap(projectors=...)")

    config = settings if settings is not None else runtime.settings if runtime is not None else Settings()

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        # `app` (not the argument) receives the state: a host app may run this lifespan for us
        owned = runtime is None
        rt = runtime if runtime is not None else await bootstrap(config, projectors=projectors)
        if config.auth == "keys":
            guard_routes(app)  # routes added since create_app returned get their scope too
        try:
            if owned:
                await rt.store.last_position()  # a missing or corrupt database fails the startup, not each request
                await rt.start()
            app.state.runtime = rt
            app.state.settings = rt.settings
            app.state.commands, app.state.queries = rt.commands, rt.queries
            yield
        finally:
            app.state.runtime = None
            if owned:
                await rt.stop()

    # Swagger UI and ReDoc from the installed fastapi-offline package: /docs works with no network
    app = FastAPIOffline(
        title="order-machine", version=_version(), description=DESCRIPTION, openapi_tags=TAGS,
        lifespan=lifespan, **docs_app_options(),
    )
    app.state.runtime = None
    app.state.diagram_cache = {}
    install_error_handlers(app)
    for module in (routes_orders, routes_workflows, routes_definitions, routes_ops):
        _add_routes(app, module.router)
    _commands_first(app)
    install_openapi(app, runtime, keys=config.auth == "keys")
    app.add_middleware(RequestLimits, max_bytes=config.max_body_bytes, timeout=config.body_timeout_seconds,
                       max_header_bytes=config.max_header_bytes)
    if config.auth == "keys":
        install_key_auth(app)  # outermost: a caller without a key is refused before its body is read
    return app


def _commands_first(app: FastAPI) -> None:
    """Order the routes so the commands, the bulk of the traffic, are matched first.

    Starlette tries the routes in order until one matches, and the docs' own routes come first. Only the
    order of trying changes: no two routes share a method and a path pattern, so every request still
    reaches the same route.
    """
    routes = app.router.routes
    routes[:] = [r for r in routes if "POST" in (getattr(r, "methods", None) or ())] + \
                [r for r in routes if "POST" not in (getattr(r, "methods", None) or ())]


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes on the app itself, as `@app.post` would put them.

    `include_router` keeps a router as one nested route that FastAPI matches twice per request (see
    docs/design-notes.md); these routers have no prefix or dependencies of their own, so their routes
    need nothing from the inclusion.
    """
    if router.prefix or router.dependencies:
        raise ValueError("a router with a prefix or dependencies of its own needs include_router")
    app.router.routes.extend(router.routes)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("order-machine")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0"


def app_from_environment() -> FastAPI:
    """An app configured from ORDER_MACHINE_* variables (uvicorn --factory, one per worker process).

    Used by `order-machine serve --workers N`: the worker process is ours, so its GC is tuned like serve's.
    """
    settings = Settings()
    app = create_app(settings)
    tune_gc(settings.gc_threshold)
    return app
