"""FastAPI dependencies: the Runtime the app's lifespan put on app.state, and the HTTP headers commands use.

Imports `bootstrap` for the Runtime type and `errors`; never builds anything itself.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request

from ..bootstrap import Runtime
from ..errors import InvalidCommandError, StoreError


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

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="Any unique string per intended change; a repeat returns the first response and changes nothing.",
    examples=["5f1c2a9e-create-ord-1001"],
)]

IfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=100,
    description='The order version you read (its ETag, e.g. "3"): refused with 412 if the order has moved on.',
    examples=['"3"'],
)]

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
