"""A schemathesis run over the whole API, as `st run` would do it: every documented operation (every served
definition's start, list and actions among them) with examples, boundary values, generated and invalid
requests, and chains of calls. No answer may be a server error, and every answer (status, content type,
headers, body, `Allow` on a 405) must be one the OpenAPI document describes.

In process over ASGI on a SQLite file; a fixed seed and a bounded number of examples per operation keep it
repeatable and within a minute or so on a 2-core machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from order_machine.api import create_app
from order_machine.bootstrap import bootstrap
from order_machine.config import Settings

from http_support import settings_for

pytestmark = pytest.mark.slow  # about 45 s; CI runs it with the rest

CONFIG: dict[str, Any] = {
    "seed": 20261205,
    "generation": {"mode": "all", "max-examples": 50, "deterministic": True, "database": "none"},
    "cache": {"enabled": False},
    "checks": {
        # A request can fit the schema and still be refused with 422 for what a schema cannot state: an
        # Idempotency-Key already used for another request, a cursor this server did not issue, a state the
        # definition lacks on the generic list route, an id with a symbol or an unassigned code point (the id
        # rule's "letters of any script" has no portable regex, see ids.ID_JSON_SCHEMA). Every such 422 is
        # documented, with its body, and is checked by status_code_conformance and response_schema_conformance.
        "positive_data_acceptance": {"enabled": False},
        # schemathesis' own list of refusals, and 412: If-Match is a precondition, and RFC 9110 (13.2.2) has
        # preconditions evaluated before the request content, so a stale If-Match with a bad body is a 412
        "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 412, 415, 422, 428, 429,
                                                          "5XX"]},
    },
}


async def _admin_key(settings: Settings) -> str:
    runtime = await bootstrap(settings)
    try:
        return (await runtime.keys.create("admin", "conformance")).token
    finally:
        await runtime.stop()


# without keys, every route in depth; with keys (the bearer scheme declared), fewer examples: what changes is
# the 401 of each route, which the ignored_auth check asks for with no key and with a wrong one
@pytest.mark.parametrize(("auth", "examples"), [("none", 50), ("keys", 10)])
def test_every_answer_to_generated_requests_is_documented_and_none_is_a_server_error(
        tmp_path: Path, auth: str, examples: int) -> None:
    settings = settings_for(f"sqlite:///{tmp_path}/orders.db", auth=auth)
    config = {**CONFIG, "generation": {**CONFIG["generation"], "max-examples": examples}}
    headers = {"Authorization": f"Bearer {asyncio.run(_admin_key(settings))}"} if auth == "keys" else {}
    if headers:
        config["headers"] = headers
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(config),
                                            headers=headers)
    failures: set[str] = set()
    errors: list[str] = []
    answered = 0
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, (events.NonFatalError, events.FatalError)):
                errors.append(str(getattr(event, "info", None) or getattr(event, "exception", event)))
            if not isinstance(event, events.ScenarioFinished):
                continue
            answered += sum(1 for i in event.recorder.interactions.values() if i.response is not None)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failures.add(_describe(event.recorder.label, check.name,
                                               event.recorder.interactions[case_id], check.failure_info.failure))
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan ran on schemathesis' event loop
    assert not errors, "\n\n".join(errors)
    assert not failures, "\n\n".join(sorted(failures))
    assert answered > 60 * examples  # the run reached the app (a schema that failed to load would test nothing)


def _describe(label: str, check: str, interaction: Any, failure: Any) -> str:
    """One failure as a reader can reproduce it: the request as sent, the answer, what the check said."""
    request, response = interaction.request, interaction.response
    answer = f"{response.status_code} {response.headers} {response.content[:300]!r}" if response else "no answer"
    return (f"{label}: {check}\n  {request.method} {request.uri} {request.headers} {(request.body or b'')[:300]!r}"
            f"\n  -> {answer}\n  {failure}")
