"""Transition diagrams: DOT structure, path highlighting, Mermaid, determinism, the missing-binary error.

SVG and PNG tests run the Graphviz `dot` program (scripts/setup.sh installs it); everything else is pure.
"""

from __future__ import annotations

import re
import struct
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from order_machine.builder import DefinitionBuilder
from order_machine.definition import Definition, load_definition, load_definitions
from order_machine.diagrams import (
    dot_source,
    load_order_path,
    mermaid_source,
    order_path_from_events,
    read_stamp,
    render_diagram,
    render_order_diagram,
    source_digest,
)
from order_machine.errors import DiagramError, OrderNotFoundError
from order_machine.events import (
    OrderConfirmed,
    OrderCreated,
    OrderItemAdded,
    OrderProcessingStarted,
    NewEvent,
    OrderShipped,
    StoredEvent,
    encode,
)
from order_machine.store.memory import InMemoryEventStore

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
SHIPPED = sorted(load_definitions(DEFINITIONS))
EDGE = re.compile(r"^\t(\w+) -> (\w+) \[(.*)\]$", re.M)
NODE = re.compile(r"^\t(\w+) \[(.*)\]$", re.M)
ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def attrs(text: str) -> dict[str, str]:
    return {k: v[1:-1] if v.startswith('"') else v for k, v in ATTR.findall(text)}


def edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    return [(s, t, attrs(a)) for s, t, a in EDGE.findall(dot)]


def nodes(dot: str) -> dict[str, dict[str, str]]:
    return {n: attrs(a) for n, a in NODE.findall(dot) if n not in ("graph", "node", "edge")}


@pytest.fixture(scope="module")
def order() -> Definition:
    return load_definition(DEFINITIONS / "order.yaml")


@pytest.fixture(scope="module")
def payment() -> Definition:
    return load_definition(DEFINITIONS / "payment.yaml")


# --------------------------------------------------------------------------- a definition's DOT


@pytest.mark.parametrize("name", SHIPPED)
def test_dot_draws_every_state_and_every_transition_once(name: str) -> None:
    definition = load_definition(DEFINITIONS / f"{name}.yaml")
    dot = dot_source(definition)
    assert set(nodes(dot)) == set(definition.state_names) | {"__start__"}
    drawn = sorted((s, a["label"], t) for s, t, a in edges(dot) if s != "__start__")
    declared = sorted((s, t.action + (f" [{' and '.join(t.guards)}]" if t.guards else ""), t.target)
                      for s, t in definition.edges())
    assert drawn == declared


@pytest.mark.parametrize("name", SHIPPED)
def test_the_initial_state_is_marked_by_a_start_point_and_terminal_states_by_a_double_border(name: str) -> None:
    definition = load_definition(DEFINITIONS / f"{name}.yaml")
    dot = dot_source(definition)
    assert [(s, t) for s, t, _ in edges(dot) if s == "__start__"] == [("__start__", definition.initial)]
    assert nodes(dot)["__start__"]["shape"] == "circle"
    doubled = sorted(n for n, a in nodes(dot).items() if a.get("peripheries") == "2")
    assert doubled == sorted(definition.terminal_states)
    assert doubled, f"{name} has a terminal state"


def test_a_guarded_transition_is_labelled_with_its_guard(order: Definition) -> None:
    labels = {(s, t): a.get("label", "") for s, t, a in edges(dot_source(order))}
    assert labels[("Pending", "Confirmed")] == "Confirm [has_value]"
    assert labels[("Processing", "Shipped")] == "Ship"


def test_state_and_action_descriptions_become_tooltips(order: Definition) -> None:
    dot = dot_source(order)
    assert nodes(dot)["Shipped"]["tooltip"] == "Shipped: Handed to the carrier"
    confirm = next(a for s, t, a in edges(dot) if (s, t) == ("Pending", "Confirmed"))
    assert confirm["tooltip"].startswith("Confirm: Accept the order\\nguard has_value: The order has at least")
    svg = render_diagram(order, "svg").decode()
    assert 'xlink:title="Shipped: Handed to the carrier"' in svg
    assert "Confirm: Accept the order&#10;guard has_value" in svg


def test_descriptions_with_markup_quotes_and_backslashes_are_shown_literally() -> None:
    definition = (DefinitionBuilder.create("tricky", description="<i>all</i>").initial_state("A", description='<b>"x"</b> \\n <y>')
                  .on_action("Go").to_state("B").build()
                  .add_state("B", terminal=True).build().build_definition())
    svg = render_diagram(definition, "svg").decode()
    assert 'xlink:title="A (initial): &lt;b&gt;&quot;x&quot;&lt;/b&gt; \\n &lt;y&gt;"' in svg
    assert 'xlink:title="&lt;i&gt;all&lt;/i&gt;"' in svg  # not read as an HTML label


# --------------------------------------------------------------------------- determinism and stamps


@pytest.mark.parametrize("name", SHIPPED)
def test_the_same_definition_gives_byte_identical_dot_and_svg(name: str) -> None:
    first, second = (load_definition(DEFINITIONS / f"{name}.yaml") for _ in range(2))
    assert dot_source(first) == dot_source(second)
    assert render_diagram(first, "svg") == render_diagram(second, "svg")
    assert mermaid_source(first) == mermaid_source(second)


def test_svg_and_png_carry_the_fingerprint_of_the_dot_they_were_drawn_from(order: Definition) -> None:
    digest = source_digest(dot_source(order))
    assert read_stamp(render_diagram(order, "svg")) == digest
    assert read_stamp(render_diagram(order, "png")) == digest
    assert read_stamp(b"<svg></svg>") is None


def test_the_stamped_png_is_still_a_valid_png(order: Definition) -> None:
    data = render_diagram(order, "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[1] == b"tEXt" and kinds[-1] == b"IEND"


def test_an_unknown_format_is_refused(order: Definition) -> None:
    with pytest.raises(DiagramError, match="unknown diagram format 'gif'"):
        render_diagram(order, "gif")


# --------------------------------------------------------------------------- without Graphviz


def test_without_the_dot_program_svg_and_png_fail_with_one_line_on_how_to_install_it(
    order: Definition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` anywhere
    for fmt in ("svg", "png"):
        with pytest.raises(DiagramError) as caught:
            render_diagram(order, fmt)
        message = str(caught.value)
        assert "\n" not in message
        assert "`dot` program was not found" in message
        assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert render_diagram(order, "dot").startswith(b"digraph order {")
    assert render_diagram(order, "mmd").startswith(b"---\ntitle: order (v1)")


# --------------------------------------------------------------------------- Mermaid


@pytest.mark.parametrize("name", SHIPPED)
def test_mermaid_marks_the_initial_and_terminal_states_and_labels_every_edge(name: str) -> None:
    definition = load_definition(DEFINITIONS / f"{name}.yaml")
    lines = mermaid_source(definition).splitlines()
    assert lines[3] == "stateDiagram-v2"
    assert f"    [*] --> {definition.initial}" in lines
    assert sorted(line.strip() for line in lines if line.endswith("--> [*]")) == sorted(
        f"{s} --> [*]" for s in definition.terminal_states)
    drawn = [line.strip() for line in lines if " : " in line and not line.strip().startswith("%%")]
    assert len(drawn) == len(list(definition.edges()))
    for source, t in definition.edges():
        label = t.action + (f" [{' and '.join(t.guards)}]" if t.guards else "")
        assert f"{source} --> {t.target} : {label}" in drawn


# --------------------------------------------------------------------------- one order's path


PATH = [("Pending", "Confirm", "Confirmed"), ("Confirmed", "StartProcessing", "Processing")]


def test_an_orders_path_is_drawn_with_step_numbers_over_the_definition(order: Definition) -> None:
    dot = dot_source(order, PATH)
    by_edge = {(s, t): a for s, t, a in edges(dot)}
    assert by_edge[("Pending", "Confirmed")]["label"] == "(1) Confirm [has_value]"
    assert by_edge[("Confirmed", "Processing")]["label"] == "(2) StartProcessing"
    taken = {by_edge[e]["color"] for e in [("Pending", "Confirmed"), ("Confirmed", "Processing")]}
    not_taken = by_edge[("Shipped", "Delivered")]
    assert len(taken) == 1 and taken != {not_taken["color"]}
    assert by_edge[("Pending", "Confirmed")]["penwidth"] == "2.4"
    assert "penwidth" not in not_taken and "(" not in not_taken["label"]


def test_the_current_state_is_highlighted_and_the_actions_allowed_now_are_dashed(order: Definition) -> None:
    dot = dot_source(order, PATH)
    states = nodes(dot)
    assert states["Processing"]["penwidth"] == "3"
    now, visited, ahead = (states[n].get("fillcolor") for n in ("Processing", "Confirmed", "Shipped"))
    assert len({now, visited, ahead}) == 3
    dashed = sorted((s, t) for s, t, a in edges(dot) if a.get("style") == "dashed")
    assert dashed == [("Processing", "Cancelled"), ("Processing", "Shipped")]
    assert "current: Processing" in dot


def test_an_edge_taken_twice_shows_both_step_numbers(payment: Definition) -> None:
    path = [("Pending", "Process", "Processing"), ("Processing", "Fail", "Failed"),
            ("Failed", "Retry", "Pending"), ("Pending", "Process", "Processing")]
    labels = {(s, t): a.get("label", "") for s, t, a in edges(dot_source(payment, path))}
    assert labels[("Pending", "Processing")] == "(1,4) Process"
    assert labels[("Failed", "Pending")] == "(3) Retry"


def test_a_new_order_is_drawn_in_its_initial_state_with_its_options(order: Definition) -> None:
    dot = dot_source(order, [], current="Pending")
    assert nodes(dot)["Pending"]["penwidth"] == "3"
    assert sorted(t for s, t, a in edges(dot) if a.get("style") == "dashed") == ["Cancelled", "Confirmed"]


def test_a_path_through_a_state_the_definition_does_not_declare_is_refused(order: Definition) -> None:
    with pytest.raises(DiagramError, match="step 2 .* names state 'Lost'"):
        dot_source(order, [("Pending", "Confirm", "Confirmed"), ("Confirmed", "Misplace", "Lost")])


def test_a_step_between_declared_states_but_not_declared_is_still_drawn(order: Definition) -> None:
    dot = dot_source(order, [("Pending", "Expedite", "Shipped")])
    extra = [(s, t, a["label"]) for s, t, a in edges(dot) if a.get("label", "").endswith("Expedite")]
    assert extra == [("Pending", "Shipped", "(1) Expedite")]


AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def history(order_id: str) -> list[NewEvent]:
    """An order created, given an item, confirmed, processed and shipped, as the store receives it."""
    events = [
        OrderCreated(order_id, AT, customer_id="c-1"),
        OrderItemAdded(order_id, AT + timedelta(minutes=1), "p-1", 2, Decimal("9.50")),
        OrderConfirmed(order_id, AT + timedelta(minutes=2), source="Pending", target="Confirmed"),
        OrderProcessingStarted(order_id, AT + timedelta(minutes=3), source="Confirmed", target="Processing"),
        OrderShipped(order_id, AT + timedelta(minutes=4), source="Processing", target="Shipped",
                     tracking_number="T1", shipping_address="1 Road"),
    ]
    return [encode(e) for e in events]


def stream(order_id: str = "o-1") -> list[StoredEvent]:
    return [StoredEvent(i, order_id, i, e.type, e.schema_version, e.data, e.metadata, e.recorded_at)
            for i, e in enumerate(history(order_id), start=1)]


def test_the_path_is_read_from_the_transition_events_in_order() -> None:
    assert order_path_from_events(stream()) == [
        ("Pending", "Confirm", "Confirmed"),
        ("Confirmed", "StartProcessing", "Processing"),
        ("Processing", "Ship", "Shipped"),
    ]


def test_an_event_this_code_cannot_read_is_refused_by_name() -> None:
    odd = StoredEvent(9, "o-1", 9, "OrderTeleported", 1, {}, {}, AT)
    with pytest.raises(DiagramError, match="order 'o-1': cannot read event 'OrderTeleported' at version 9 "
                                           r"\(no upcaster for OrderTeleported v1\)"):
        order_path_from_events([*stream(), odd])


async def test_an_orders_diagram_is_drawn_from_its_stream_in_the_store(order: Definition) -> None:
    store = InMemoryEventStore()
    await store.append("o-7", history("o-7"), expected_version=0)
    path, current = await load_order_path(store, "o-7", order)
    assert current == "Shipped" and len(path) == 3
    dot = (await render_order_diagram(store, "o-7", order, "dot")).decode()
    assert "order o-7 (order v1)" in dot
    assert [(s, t) for s, t, a in edges(dot) if a.get("style") == "dashed"] == [("Shipped", "Delivered")]
    svg = await render_order_diagram(store, "o-7", order)
    assert svg.startswith(b"<?xml") and b"(3) Ship" in svg


async def test_an_unknown_order_raises_order_not_found(order: Definition) -> None:
    with pytest.raises(OrderNotFoundError, match="order 'ghost' does not exist"):
        await render_order_diagram(InMemoryEventStore(), "ghost", order)


def test_mermaid_has_no_order_view(order: Definition) -> None:
    with pytest.raises(DiagramError, match="drawn as svg, png or dot, not mmd"):
        render_diagram(order, "mmd", path=PATH)


def test_an_order_in_a_terminal_state_says_no_action_is_allowed_now(order: Definition) -> None:
    dot = dot_source(order, [("Pending", "Cancel", "Cancelled")])
    assert "current: Cancelled" in dot and "no action allowed now" in dot
    assert not [e for e in edges(dot) if e[2].get("style") == "dashed"]
