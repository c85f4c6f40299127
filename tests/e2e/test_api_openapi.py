"""The OpenAPI document tells the truth: every served definition's actions with their fields, the error bodies
the server writes by status, the headers it sends, examples that are real answers; and the docs pages load
nothing from outside this server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from order_machine.api import create_app
from order_machine.api.error_bodies import EXAMPLES
from order_machine.config import Settings

from http_support import ITEM, app, client, db_url, runtime_of, settings_for  # noqa: F401 (fixtures)
from test_api_order_definition import held_definitions  # noqa: F401 (fixture)

GADGET = """\
name: gadget
version: 2
description: A gadget's repair, to see each field type in the document.
initial: Received
data:
  serial: {type: str, required: true, description: Printed under the lid}
  price: {type: decimal, description: What the customer paid}
  received_at: {type: datetime}
states: [{name: Received}, {name: Repaired}, {name: Returned, terminal: true}]
actions:
  - name: Repair
    description: Record the repair
    fields:
      hours: {type: int, required: true, description: Time spent}
      parts: {type: list}
      under_warranty: {type: bool, required: true}
      notes: {type: dict}
  - {name: SendBack, description: Return it to the customer}
transitions:
  - {action: Repair, from: Received, to: Repaired}
  - {action: SendBack, from: Repaired, to: Returned}
"""


async def _spec(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = await client.get("/openapi.json", headers=headers)
    assert answer.status_code == 200
    spec: dict[str, Any] = answer.json()
    return spec


@pytest.fixture
async def gadget_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "gadget.yaml").write_text(GADGET)
    application = create_app(Settings(db_url="memory://", definitions_dir=folder))
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://testserver") as c:
            yield c


async def test_each_action_of_a_definition_is_an_operation_with_its_fields_typed_from_the_yaml(
        gadget_client: httpx.AsyncClient) -> None:
    spec = await _spec(gadget_client)
    repair = spec["paths"]["/workflows/gadget/{workflow_id}/actions/repair"]["post"]
    assert repair["tags"] == ["gadget"] and repair["summary"] == "Record the repair"
    body = repair["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and body["required"] == ["hours", "under_warranty"]
    fields = body["properties"]
    assert fields["hours"] == {"type": "integer", "description": "Time spent (an integer)"}
    assert fields["under_warranty"] == {"type": "boolean", "description": "True or false"}
    assert fields["parts"]["type"] == ["array", "null"] and fields["notes"]["type"] == ["object", "null"]
    assert {p["name"] for p in repair["parameters"]} == {"workflow_id", "Idempotency-Key", "If-Match"}
    assert "requestBody" not in spec["paths"]["/workflows/gadget/{workflow_id}/actions/send-back"]["post"]

    start = spec["paths"]["/workflows/gadget"]["post"]["requestBody"]["content"]["application/json"]
    data = start["schema"]["properties"]["data"]
    assert data["required"] == ["serial"] and start["schema"]["required"] == ["data"]
    assert data["properties"]["price"]["type"] == ["string", "null"]  # a decimal travels as a string
    assert data["properties"]["price"]["format"] == "decimal"
    assert data["properties"]["received_at"]["format"] == "date-time"
    assert data["properties"]["serial"]["description"] == "Printed under the lid (text)"
    listing = spec["paths"]["/workflows/gadget"]["get"]
    state = next(p for p in listing["parameters"] if p["name"] == "state")
    assert state["schema"]["enum"] == ["Received", "Repaired", "Returned"]
    assert {"name": "gadget", "description": "A gadget's repair, to see each field type in the document."} \
        in spec["tags"]


async def test_a_documented_action_is_served_as_documented(gadget_client: httpx.AsyncClient) -> None:
    spec = await _spec(gadget_client)
    start = spec["paths"]["/workflows/gadget"]["post"]
    example = start["requestBody"]["content"]["application/json"]["examples"]["example"]["value"]
    started = await gadget_client.post("/workflows/gadget", json=example)
    assert started.status_code == 201, started.text
    assert started.json() == start["responses"]["201"]["content"]["application/json"]["example"]
    assert {h.lower() for h in start["responses"]["201"]["headers"]} == {"etag", "location", "idempotent-replayed"}
    assert {"etag", "location"} <= set(started.headers.keys())
    repair = spec["paths"]["/workflows/gadget/{workflow_id}/actions/repair"]["post"]
    example = repair["requestBody"]["content"]["application/json"]["examples"]["example"]["value"]
    repaired = await gadget_client.post(f"/workflows/gadget/{started.json()['id']}/actions/repair", json=example)
    assert repaired.status_code == 200, repaired.text
    assert repaired.json() == repair["responses"]["200"]["content"]["application/json"]["example"]


async def test_order_yaml_actions_are_documented_under_the_orders_action_route(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    cancel = spec["paths"]["/orders/{order_id}/actions/cancel"]["post"]
    schema = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["reason"]
    assert schema["properties"]["reason"] == {"type": "string", "minLength": 1, "description": "Why it was cancelled (text)"}
    assert cancel["responses"]["200"]["content"]["application/json"]["example"]["events"] == ["OrderCancelled"]
    assert "/orders/{order_id}/actions/start-processing" in spec["paths"]
    assert "/workflows/order" not in spec["paths"]  # orders are served at /orders


async def test_actions_and_data_fields_added_to_order_yaml_are_documented(held_definitions: Path) -> None:
    application = create_app(Settings(db_url="memory://", definitions_dir=held_definitions))
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://testserver") as c:
            spec = await _spec(c)
    hold = spec["paths"]["/orders/{order_id}/actions/hold"]["post"]
    fields = hold["requestBody"]["content"]["application/json"]["schema"]
    assert fields["required"] == ["reason"] and fields["properties"]["until"]["format"] == "date-time"
    assert "requestBody" not in spec["paths"]["/orders/{order_id}/actions/release"]["post"]
    create = spec["components"]["schemas"]["CreateOrderRequest"]
    data = create["properties"]["data"]
    assert (data["required"], set(data["properties"]), data["additionalProperties"]) == (["channel"], {"channel", "rush"},
                                                                                          False)
    assert data["properties"]["rush"]["type"] == ["boolean", "null"] and "data" in create["required"]


async def test_every_operation_documents_the_errors_it_can_answer_with_the_bodies_the_server_writes(
        client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    text = str(spec)
    assert "HTTPValidationError" not in text and "ValidationError'" not in text
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert "503" in codes, (method, path)
            assert ({"401", "403"} <= codes) is (path != "/health"), (method, path)
            if "requestBody" in operation:
                assert {"400", "408", "413", "422"} <= codes, (method, path)
            assert "431" in codes, (method, path)
            for code, response in operation["responses"].items():
                if code >= "400" and path != "/health":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == f"#/components/schemas/Error{code}", (method, path, code)
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    invalid = spec["components"]["schemas"]["Invalid"]
    assert invalid["properties"]["error"]["const"] == "invalid" and "field" in invalid["required"]


def _resolver(spec: dict[str, Any]) -> Any:
    def validator(schema: dict[str, Any]) -> Any:
        return jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})
    return validator


async def test_every_example_in_the_document_fits_its_schema(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    validator = _resolver(spec)
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            contents = [(code, r.get("content", {})) for code, r in operation["responses"].items()]
            if "requestBody" in operation:
                contents.append(("body", operation["requestBody"]["content"]))
            for code, content in contents:
                media = content.get("application/json", {})
                if "schema" not in media:
                    continue
                examples = [media["example"]] if "example" in media else []
                examples += [e["value"] for e in media.get("examples", {}).values()]
                for example in examples:
                    errors = [e.message for e in validator(media["schema"]).iter_errors(example)]
                    assert not errors, (method, path, code, example, errors)
                    checked += 1
    assert checked > 150


async def test_the_error_examples_are_the_answers_the_server_gives(client: httpx.AsyncClient) -> None:
    assert (await client.get("/orders/ord-404")).json() == EXAMPLES[404]
    await client.post("/orders", json={"order_id": "ord-1001", "customer_id": "cust-7"})
    refused = await client.post("/orders/ord-1001/confirm")
    assert (refused.status_code, refused.json()) == (409, EXAMPLES[409])
    await client.post("/orders/ord-1001/items", json=ITEM, headers={"If-Match": '"1"'})
    stale = await client.post("/orders/ord-1001/confirm", headers={"If-Match": '"1"'})
    assert (stale.status_code, stale.json()) == (412, EXAMPLES[412])
    invalid = await client.post("/orders", json={"customer_id": "c", "items": [{**ITEM, "quantity": 0}]})
    assert (invalid.status_code, invalid.json()) == (422, EXAMPLES[422])
    unreadable = await client.post("/orders", content=b'{"customer_id": "\xff"}',
                                   headers={"content-type": "application/json"})
    assert (unreadable.status_code, unreadable.json()) == (400, EXAMPLES[400])


async def test_the_key_and_limit_examples_are_the_answers_a_server_with_keys_gives(tmp_path: Path) -> None:
    application = create_app(settings_for(f"sqlite:///{tmp_path}/orders.db", auth="keys"))
    async with application.router.lifespan_context(application):
        reporting = (await runtime_of(application).keys.create("read", "reporting")).token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://testserver") as c:
            spec = await _spec(c, headers={"Authorization": f"Bearer {reporting}"})
            anonymous = await c.post("/orders", json={"customer_id": "c"})
            assert (anonymous.status_code, anonymous.json()) == (401, EXAMPLES[401])
            assert anonymous.headers["www-authenticate"].startswith('Bearer realm="order-machine"')
            read_only = await c.post("/orders", json={"customer_id": "c"},
                                     headers={"Authorization": f"Bearer {reporting}"})
            assert (read_only.status_code, read_only.json()) == (403, EXAMPLES[403])
            huge = await c.post("/orders", content=b"x" * 1_048_577, headers={
                "content-type": "application/json", "Authorization": f"Bearer {reporting}"})
            assert (huge.status_code, huge.json()) == (413, EXAMPLES[413])
            long = await c.get("/health", headers={"X-Padding": "p" * 20_000})
            body = long.json()
            assert (long.status_code, {**body, "message": re.sub(r"take \d+ bytes", "take 20512 bytes",
                                                                    body["message"])}) == (431, EXAMPLES[431])
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert spec["security"] == [{"apiKey": []}] and spec["paths"]["/health"]["get"]["security"] == []
    assert "WWW-Authenticate" in spec["paths"]["/orders"]["post"]["responses"]["401"]["headers"]


async def test_without_keys_the_document_declares_no_security_scheme(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    assert "security" not in spec and "securitySchemes" not in spec["components"]


async def test_success_examples_are_the_answers_the_server_gives(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    create = spec["paths"]["/orders"]["post"]
    body = create["requestBody"]["content"]["application/json"]["examples"]["example_2"]["value"]
    created = await client.post("/orders", json=body)
    assert created.json() == create["responses"]["201"]["content"]["application/json"]["example"]
    assert set(create["responses"]["201"]["headers"]) == {"ETag", "Location", "Idempotent-Replayed"}
    assert created.headers["location"] == "/orders/ord-1001" and created.headers["etag"] == '"1"'
    confirm = spec["paths"]["/orders/{order_id}/confirm"]["post"]["responses"]["200"]
    confirmed = await client.post("/orders/ord-1001/confirm")
    assert confirmed.json() == confirm["content"]["application/json"]["example"]
    assert set(confirm["headers"]) == {"ETag", "Idempotent-Replayed"}
    get_order = spec["paths"]["/orders/{order_id}"]["get"]
    assert {p["name"] for p in get_order["parameters"]} == {"order_id", "If-None-Match"}
    assert get_order["responses"]["304"]["headers"]["ETag"]["required"] is True


async def test_the_docs_pages_load_only_files_this_server_serves(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "://" not in html.replace("window.location.origin", ""), page  # no CDN, no fonts, no validator
        urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert len(urls) >= 3, (page, urls)
        for url in urls:
            assert url.startswith("/"), (page, url)
            answer = await client.get(url)
            assert answer.status_code == 200, (page, url)
            assert len(answer.content) > 1000, (page, url)


async def test_before_the_app_runs_its_document_has_the_routes_but_no_definitions_operations(
        gadget_client: httpx.AsyncClient, tmp_path: Path) -> None:
    idle = create_app(Settings(db_url="memory://", definitions_dir=tmp_path / "definitions"))
    paths = idle.openapi()["paths"]
    assert "/workflows/{definition}/{workflow_id}/actions/{action}" in paths
    assert not any(p.startswith("/workflows/gadget") for p in paths)
    assert any(p.startswith("/workflows/gadget") for p in (await _spec(gadget_client))["paths"])
