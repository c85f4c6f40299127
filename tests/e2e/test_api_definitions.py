"""Definition routes and the transition diagrams served over HTTP (a definition's and one order's)."""

from __future__ import annotations

import re

import httpx

from order_machine.diagrams import dot_source, read_stamp, source_digest
from order_machine.definition import load_definition

from http_support import DEFINITIONS, advance, app, client, create_order, db_url  # noqa: F401 (fixtures)


async def test_definitions_lists_every_loaded_workflow(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/definitions")).json()
    assert [d["name"] for d in listed] == sorted(p.stem for p in DEFINITIONS.glob("*.yaml"))
    order = next(d for d in listed if d["name"] == "order")
    assert order["initial"] == "Pending" and "Delivered" in order["states"] and "Ship" in order["actions"]


async def test_one_definition_reads_as_its_yaml_does(client: httpx.AsyncClient) -> None:
    body = (await client.get("/definitions/order")).json()
    assert body == load_definition(DEFINITIONS / "order.yaml").model_dump(mode="json", by_alias=True)
    assert {"action": "Confirm", "from": ["Pending"], "to": "Confirmed"}.items() <= body["transitions"][0].items()


async def test_an_unknown_definition_is_404_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    for path in ("/definitions/nope", "/definitions/nope/diagram.svg"):
        missing = await client.get(path)
        assert missing.status_code == 404
        assert missing.json()["error"] == "definition_not_found" and "order" in missing.json()["known"]


async def test_a_definition_diagram_is_svg_drawn_from_its_dot_source(client: httpx.AsyncClient) -> None:
    response = await client.get("/definitions/order/diagram.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    definition = load_definition(DEFINITIONS / "order.yaml")
    assert read_stamp(response.content) == source_digest(dot_source(definition))
    text = response.text
    assert text.lstrip().startswith("<?xml") and "</svg>" in text
    assert all(f">{state}<" in text for state in definition.state_names)
    mermaid = await client.get("/definitions/order/diagram.mmd")
    assert mermaid.text.startswith("---") and "stateDiagram-v2" in mermaid.text
    assert (await client.get("/definitions/order/diagram.svg")).content == response.content  # deterministic


async def test_an_order_diagram_draws_the_path_it_took_and_where_it_is(client: httpx.AsyncClient) -> None:
    await create_order(client, "d-1")
    await advance(client, "d-1", "confirm", "start-processing")
    response = await client.get("/orders/d-1/diagram.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert response.headers["etag"] == '"3"'
    definition = load_definition(DEFINITIONS / "order.yaml")
    path = [("Pending", "Confirm", "Confirmed"), ("Confirmed", "StartProcessing", "Processing")]
    expected = dot_source(definition, path, "Processing", title="order d-1 (order v1)")
    assert read_stamp(response.content) == source_digest(expected)
    dot = await client.get("/orders/d-1/diagram.dot")
    assert dot.text == expected
    await advance(client, "d-1", "ship")
    later = await client.get("/orders/d-1/diagram.svg")
    assert later.headers["etag"] == '"4"' and read_stamp(later.content) != read_stamp(response.content)


async def test_an_unknown_diagram_format_is_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/definitions/order/diagram.gif")
    assert response.status_code == 422 and response.json()["field"] == "fmt"
    assert re.search(r"svg.*png.*dot.*mmd", response.json()["message"])
