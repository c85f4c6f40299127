"""API keys on the HTTP API (`Settings.auth == "keys"`): who is calling (401) and may they (403).

`KeyAuth`, an ASGI middleware, checks `Authorization: Bearer KEY` on every route but /health before any
body is read, and runs the request as that key (its name is the `actor` of the events it writes).
`guard_routes` wraps each route in the scope it needs, decided once when the app is built: read for
GET/HEAD, write for other methods, admin for the operations routes whatever the method.
Imports `apikeys`, `actor` and the api package's errors.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..actor import acting_as
from ..apikeys import ApiKey, Scope as KeyScope, grants
from ..errors import OrderMachineError, StoreError
from .errors import error_response

logger = logging.getLogger(__name__)

#: routes anyone may call (a load balancer's health check has no key)
PUBLIC_PATHS = frozenset({"/health"})
#: routes with one of these tags need the admin scope, whatever their method
ADMIN_TAGS = frozenset({"operations"})
READ_METHODS = frozenset({"GET", "HEAD"})
KEY_IN_SCOPE = "order_machine.api_key"
CHALLENGE = 'Bearer realm="order-machine"'
HOW_TO = "send `Authorization: Bearer KEY` with a key from `order-machine keys create`"


def route_path(scope: Scope) -> str:
    """The request's path inside this app (without the prefix it is mounted under)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root + "/") else path


def bearer_token(scope: Scope) -> tuple[str | None, str]:
    """(the key sent, "") or (None, what is wrong with the Authorization header)."""
    values = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
    if not values:
        return None, f"this route needs an API key: {HOW_TO}"
    if len(values) > 1:
        return None, "send one Authorization header, not several"
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, f"the Authorization header must read `Bearer KEY`: {HOW_TO}"
    return token, ""


async def _unauthorized(scope: Scope, receive: Receive, send: Send, message: str, *, invalid: bool) -> None:
    challenge = CHALLENGE + (', error="invalid_token"' if invalid else "")
    response = JSONResponse({"error": "unauthorized", "message": message}, status_code=401,
                            headers={"WWW-Authenticate": challenge})
    await response(scope, receive, send)


class KeyAuth:
    """Every request but PUBLIC_PATHS must carry a live key; the route checks its scope (guard_routes)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token, problem = bearer_token(scope)
        if token is None:
            await _unauthorized(scope, receive, send, problem, invalid=problem.startswith("the Authorization"))
            return
        try:
            runtime = getattr(self.state, "runtime", None)
            if runtime is None:
                raise StoreError("the service is not running: its lifespan has not started (or has ended)")
            key: ApiKey | None = await runtime.keys.authenticate(token)
        except OrderMachineError as exc:  # the keys' database is down: 503, never 500, never its address
            await error_response(exc, Request(scope))(scope, receive, send)
            return
        if key is None or key.revoked:
            message = (f"the key {key.name!r} was revoked at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key is not None
                       else "this API key is not known here (a typo, another server's key, or a made-up one)")
            await _unauthorized(scope, receive, send, message, invalid=True)
            return
        scope[KEY_IN_SCOPE] = key
        with acting_as(key.name):
            await self.app(scope, receive, send)


class ScopeGuard:
    """One route's app behind a scope check: 403 naming the scope the route needs."""

    def __init__(self, app: ASGIApp, admin: bool) -> None:
        self.app, self.admin = app, admin

    def needed(self, method: str) -> KeyScope:
        return "admin" if self.admin else "read" if method in READ_METHODS else "write"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key: ApiKey | None = scope.get(KEY_IN_SCOPE)
        if key is None:  # fail closed: a guarded route that KeyAuth let through without a key
            await _unauthorized(scope, receive, send, f"this route needs an API key: {HOW_TO}", invalid=False)
            return
        needed = self.needed(scope["method"])
        if not grants(key.scope, needed):
            body = {"error": "forbidden", "required_scope": needed, "scopes": key.scopes,
                    "message": f"{scope['method']} {route_path(scope)} needs the {needed!r} scope; the key "
                               f"{key.name!r} has {', '.join(repr(s) for s in key.scopes)}"}
            await JSONResponse(body, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def guard_routes(app: FastAPI) -> None:
    """Put every route of `app` but PUBLIC_PATHS behind the scope it needs (again: new routes only).

    Each guarded route is a copy: the route objects come from module-level routers that every app of
    the process shares, and an app without auth must not inherit another's guards.
    """
    routes = app.router.routes
    for i, route in enumerate(routes):
        inner: Any = getattr(route, "app", None)
        if inner is None or isinstance(inner, ScopeGuard) or getattr(route, "path", None) in PUBLIC_PATHS:
            continue
        admin = bool(ADMIN_TAGS & {str(t) for t in getattr(route, "tags", None) or ()})
        guarded = copy.copy(route)
        guarded.app = ScopeGuard(inner, admin)  # type: ignore[attr-defined]
        routes[i] = guarded


def install_key_auth(app: FastAPI) -> None:
    """Require API keys on `app` (before it starts): 401 without a live key, 403 without the scope."""
    app.add_middleware(KeyAuth, state=app.state)
    guard_routes(app)
