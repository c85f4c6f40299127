"""The Python builder reads like the reference chain and yields the same Definition as the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.builder import DefinitionBuilder
from order_machine.definition import Definition, FieldSpec, load_definition
from order_machine.errors import DefinitionError
from order_machine.order import OrderAction, OrderState

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


def build_order_definition() -> Definition:
    """OrderStateMachineDefinition, written the reference's way."""
    s, a = OrderState, OrderAction
    text = FieldSpec(type="str", required=True)
    return (
        DefinitionBuilder.create(
            "order", "Lifecycle of a customer order, from placement to delivery, cancellation or return.")
        .data("customer_id", FieldSpec(type="str", required=True, description="Who placed the order"))
        .data("description", {"type": "str", "description": "Free text shown on the order"})
        .data("amount", {"type": "decimal", "description": "Initial amount before items are added"})
        .data("items", {"type": "list", "description": "Items ordered"})
        .action(a.Confirm, description="Accept the order")
        .action(a.StartProcessing, description="Start picking and packing")
        .action(a.Ship, description="Hand the order to the carrier", fields={
            "tracking_number": text.model_copy(update={"description": "Carrier tracking number"}),
            "shipping_address": text.model_copy(update={"description": "Where the parcel goes"}),
        })
        .action(a.Deliver, description="Record the delivery")
        .action(a.Cancel, description="Stop the order before it ships", fields={
            "reason": {"type": "str", "required": True, "into": "cancellation_reason",
                       "description": "Why it was cancelled"}})
        .action(a.Return, description="Take a delivered order back", fields={
            "reason": {"type": "str", "required": True, "into": "return_reason", "description": "Why it came back"}})
        .guard("has_value", "The order has at least one item or a positive amount",
               when="amount > 0 || size(items) > 0")
        .initial_state(s.Pending, description="Placed by the customer, not yet accepted")
            .on_action(a.Confirm, guards=["has_value"], emits="OrderConfirmed").to_state(s.Confirmed)
            .on_action(a.Cancel, emits="OrderCancelled").to_state(s.Cancelled)
            .build()
        .add_state(s.Confirmed, description="Accepted; stock and payment are committed")
            .on_action(a.StartProcessing, emits="OrderProcessingStarted").to_state(s.Processing)
            .on_action(a.Cancel, emits="OrderCancelled").to_state(s.Cancelled)
            .build()
        .add_state(s.Processing, description="Being picked and packed")
            .on_action(a.Ship, emits="OrderShipped").to_state(s.Shipped)
            .on_action(a.Cancel, emits="OrderCancelled").to_state(s.Cancelled)
            .build()
        .add_state(s.Shipped, description="Handed to the carrier")
            .on_action(a.Deliver, emits="OrderDelivered").to_state(s.Delivered)
            .build()
        .add_state(s.Delivered, description="Received by the customer; may still be returned")
            .on_action(a.Return, emits="OrderReturned").to_state(s.Returned)
            .build()
        .add_state(s.Cancelled, description="Stopped before shipping", terminal=True).build()
        .add_state(s.Returned, description="Sent back by the customer after delivery", terminal=True).build()
        .build_definition()
    )


def test_the_builder_and_order_yaml_give_equal_definitions() -> None:
    assert build_order_definition() == load_definition(DEFINITIONS / "order.yaml")


def test_the_builder_merges_one_action_from_several_states_into_one_transition() -> None:
    cancel = [t for t in build_order_definition().transitions if t.action == "Cancel"]
    assert len(cancel) == 1
    assert cancel[0].source == ["Pending", "Confirmed", "Processing"]


def test_the_builder_runs_the_same_static_checks_as_the_loader() -> None:
    builder = (DefinitionBuilder.create("broken").initial_state("Init")
               .on_action("Start").to_state("Working").build()
               .add_state("Working").build()
               .add_state("Orphan", terminal=True).build())
    with pytest.raises(DefinitionError) as raised:
        builder.build_definition()
    messages = [p.message for p in raised.value.problems]
    assert any("'Working' has no way out" in m for m in messages)
    assert any("'Orphan' cannot be reached" in m for m in messages)


def test_the_builder_refuses_a_transition_to_an_undeclared_state() -> None:
    builder = DefinitionBuilder.create("simple").initial_state("Init").on_action("Start").to_state("Nowhere").build()
    with pytest.raises(DefinitionError, match="unknown state 'Nowhere'"):
        builder.build_definition()


def test_the_builder_refuses_an_action_without_a_target() -> None:
    with pytest.raises(DefinitionError, match="has no to_state"):
        DefinitionBuilder.create("simple").initial_state("Init").on_action("Start").build()


def test_the_builder_needs_an_initial_state() -> None:
    with pytest.raises(DefinitionError, match="initial state"):
        DefinitionBuilder.create("simple").add_state("Done", terminal=True).build().build_definition()


def test_a_built_definition_round_trips_through_yaml(tmp_path: Path) -> None:
    definition = build_order_definition()
    file = tmp_path / "order.yaml"
    file.write_text(definition.to_yaml(), encoding="utf-8")
    assert load_definition(file) == definition
