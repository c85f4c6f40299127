"""FastAPI dependencies: the Runtime the app's lifespan put on app.state, and the HTTP headers commands use.

Imports `bootstrap` for the Runtime type and `errors`; never builds anything itself.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request

from ..bootstrap import Runtime
from ..errors import InvalidCommandError, StoreError
from ..ids import KEY_MAX_LENGTH, KEY_RULE, key_problem


def runtime_of(request: Request) -> Runtime:
    """The running Runtime; a 503 (StoreError) while the app is starting or stopping.

    The command routes call it themselves: as a dependency it costs FastAPI a nested solve per request.
    """
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise StoreError("the service is not running: its lifespan has not started (or has ended)")
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """`runtime_of` as a dependency; async so FastAPI calls it on the loop, not through its thread pool."""
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# The command headers are read from the request by the routes (`idempotency_key`, `if_match`), not
# declared as Header() parameters: FastAPI's per-request solving of header parameters cost more than
# the whole command does on the memory store. `command_headers` documents them in OpenAPI instead.
_KEY_LIMIT, _IF_MATCH_LIMIT = KEY_MAX_LENGTH, 100

_IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any unique string per intended change; a repeat returns the first response and changes nothing. "
                   f"{KEY_RULE[0].upper()}{KEY_RULE[1:]}; an empty key is refused (422).",
    "schema": {"type": "string", "minLength": 1, "maxLength": _KEY_LIMIT, "pattern": "^[!-~]+$",
               "title": "Idempotency-Key"},
    "example": "5f1c2a9e-create-ord-1001",
}
_IF_MATCH_DOC = {
    "name": "If-Match", "in": "header", "required": False,
    "description": 'The order version you read (its ETag, e.g. "3"): refused with 412 if the order has moved on.',
    "schema": {"type": "string", "maxLength": _IF_MATCH_LIMIT, "title": "If-Match"},
    "example": '"3"',
}


_IF_NONE_MATCH_DOC = {
    "name": "If-None-Match", "in": "header", "required": False,
    "description": 'The ETag of the copy you hold (e.g. "3", or several separated by commas): 304 with no body '
                   "while it is current.",
    "schema": {"type": "string", "title": "If-None-Match"},
    "example": '"3"',
}
READ_HEADERS = {"parameters": [_IF_NONE_MATCH_DOC]}
"""`openapi_extra` of a read answered with an ETag: its If-None-Match header parameter."""


def not_modified(request: Request, tag: str) -> bool:
    """Whether the request's If-None-Match names `tag` (or is `*`): the client's copy is current.

    Compared weakly, as RFC 9110 asks for If-None-Match: `W/"3"` matches `"3"`.
    """
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    return header.strip() == "*" or any(t.strip().removeprefix("W/") == tag for t in header.split(","))


def command_headers(*, if_match: bool = True) -> dict[str, Any]:
    """`openapi_extra` of a command route: its Idempotency-Key (and If-Match) header parameters."""
    return {"parameters": [_IDEMPOTENCY_KEY_DOC, *([_IF_MATCH_DOC] if if_match else [])]}


def _header(request: Request, name: str, limit: int) -> str | None:
    value = request.headers.get(name)
    if value is not None and len(value) > limit:
        raise InvalidCommandError(f"{name} must be at most {limit} characters, got {len(value)}", name)
    return value


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key header (None when absent); 422 naming it when empty, too long or not
    visible ASCII (an empty key would be one key shared by every client)."""
    value = _header(request, "Idempotency-Key", _KEY_LIMIT)
    if value is not None and (problem := key_problem(value)) is not None:
        raise InvalidCommandError(f"Idempotency-Key {problem}", "Idempotency-Key")
    return value


def if_match(request: Request) -> int | None:
    """The order version the request's If-Match header names (None when absent or `*`); 422 when malformed."""
    return expected_version(_header(request, "If-Match", _IF_MATCH_LIMIT))


_ETAG = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names; None when absent or `*`."""
    if if_match is None or if_match.strip() == "*":
        return None
    found = _ETAG.match(if_match.strip())
    if not found:
        raise InvalidCommandError(f'If-Match must be one order version such as "3", got {if_match!r}', "If-Match")
    return int(found.group(1))


def etag(version: int) -> str:
    return f'"{version}"'
