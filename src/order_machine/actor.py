"""Who is acting: the name of the API key a request came with, recorded as `actor` in its events' metadata.

A context variable, set by the HTTP edge (api/auth.py) around one request, so that neither the command
models, whose fingerprints decide idempotency, nor every service and engine call carry one more argument.
Imports nothing of order_machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

current_actor: ContextVar[str | None] = ContextVar("order_machine_actor", default=None)


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """Commands run inside the block record `actor` in their events' metadata."""
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)


def with_actor(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` with the current actor added; unchanged when nobody is named (no key, the CLI, Python)."""
    actor = current_actor.get()
    if actor is not None:
        metadata["actor"] = actor
    return metadata
