"""OrderState and OrderAction stay in step with definitions/order.yaml, and work as plain strings."""

from __future__ import annotations

from pathlib import Path

import yaml

from order_machine.order import OrderAction, OrderState

ORDER_YAML = Path(__file__).resolve().parents[2] / "definitions" / "order.yaml"


def declared(key: str) -> list[str]:
    return [entry["name"] for entry in yaml.safe_load(ORDER_YAML.read_text(encoding="utf-8"))[key]]


def test_order_state_lists_exactly_the_states_of_order_yaml_in_order() -> None:
    assert [s.value for s in OrderState] == declared("states")
    assert [s.name for s in OrderState] == declared("states")


def test_order_action_lists_exactly_the_actions_of_order_yaml_in_order() -> None:
    assert [a.value for a in OrderAction] == declared("actions")
    assert [a.name for a in OrderAction] == declared("actions")


def test_the_enums_are_plain_strings_too() -> None:
    assert OrderState.Pending == "Pending"
    assert OrderAction.StartProcessing == "StartProcessing"
    assert f"{OrderState.Shipped}" == "Shipped"
    assert {"Confirm": 1}[OrderAction.Confirm] == 1
