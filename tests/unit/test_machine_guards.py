"""Guards declared with a CEL `when:` in the YAML: compiled with the machine, no Python needed; they pass,
refuse with their description and condition, sit beside async Python guards, and a condition that cannot
be evaluated refuses (and is logged) instead of raising."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from order_machine.definition import parse_definition
from order_machine.errors import DefinitionError, TransitionNotAllowedError
from order_machine.machine import Machine
from order_machine.order import Order, order_machine
from order_machine.workflow import Workflow

REVIEW = """
name: review
initial: Pending
data:
  out_of_stock: {type: bool}
  limit: {type: decimal}
states:
  - {name: Pending}
  - {name: Review, terminal: true}
  - {name: Confirmed, terminal: true}
  - {name: Cancelled, terminal: true}
actions:
  - name: Confirm
    fields:
      total: {type: decimal, required: true}
  - name: Cancel
    fields:
      reason: {type: str}
guards:
  - name: in_stock
    description: Nothing ordered is out of stock
    when: "out_of_stock != true"
  - name: big_order
    description: The total reaches the review limit
    when: "input.total >= limit"
  - name: said_why
    when: "has(input.reason) && size(input.reason) > 2"
transitions:
  - {action: Confirm, from: Pending, to: Review, guards: [in_stock, big_order]}
  - {action: Confirm, from: Pending, to: Confirmed, guards: [in_stock]}
  - {action: Cancel, from: Pending, to: Cancelled, guards: [said_why]}
"""


@pytest.fixture(scope="module")
def review() -> Machine:
    return Machine(parse_definition(REVIEW, "review.yaml"))  # no Python registrations at all


async def started(machine: Machine, **data: Any) -> Workflow:
    entity = Workflow(machine, "r-1", **data)
    await entity.initialise()
    return entity


async def test_a_definition_with_only_yaml_guards_compiles_and_runs_with_no_python(review: Machine) -> None:
    big = await started(review, limit="1000.00")
    await big.fire("Confirm", total="1000.00")
    assert big.state == "Review"
    small = await started(review, limit="1000.00")
    await small.fire("Confirm", total="999.99")
    assert small.state == "Confirmed"


async def test_a_yaml_guard_refusal_gives_its_description_and_condition(review: Machine) -> None:
    entity = await started(review, limit="1000.00", out_of_stock=True)
    with pytest.raises(TransitionNotAllowedError) as refused:
        await entity.fire("Confirm", total="5")
    assert refused.value.guard == "in_stock"
    assert refused.value.reason == "guard 'in_stock' refused: Nothing ordered is out of stock (out_of_stock != true)"
    assert refused.value.reason in str(refused.value)
    assert entity.state == "Pending" and entity.history == []


async def test_a_guard_without_description_still_shows_its_condition(review: Machine) -> None:
    entity = await started(review, limit="1")
    assert await entity.cancel() is False  # an optional field not given is absent from input: has() sees it
    with pytest.raises(TransitionNotAllowedError) as refused:
        await entity.fire("Cancel", reason="no")
    assert refused.value.reason == "guard 'said_why' refused: (has(input.reason) && size(input.reason) > 2)"
    assert await entity.cancel(reason="changed my mind") is True


async def test_a_condition_that_cannot_be_evaluated_refuses_names_the_error_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    machine = Machine(parse_definition(REVIEW.replace("has(input.reason) && ", ""), "review.yaml"))
    entity = await started(machine)
    with caplog.at_level(logging.WARNING, logger="order_machine.machine"):
        with pytest.raises(TransitionNotAllowedError) as refused:
            await entity.fire("Cancel")  # no reason given: `input.reason` has no such key
    assert refused.value.guard == "said_why"
    assert refused.value.reason == "guard 'said_why' could not be evaluated: no such key: 'reason'"
    assert entity.state == "Pending"
    assert any("said_why" in r.getMessage() and "could not be evaluated" in r.getMessage() for r in caplog.records)


async def test_an_undecidable_guard_says_no_so_the_next_transition_is_tried(review: Machine) -> None:
    entity = await started(review)  # no limit recorded: `input.total >= null` has no meaning
    await entity.fire("Confirm", total="5000")
    assert entity.state == "Confirmed"


async def test_yaml_and_async_python_guards_share_a_transition() -> None:
    text = REVIEW.replace("[in_stock, big_order]", "[in_stock, manager_ok, big_order]").replace(
        "guards:\n", "guards:\n  - name: manager_ok\n", 1)
    calls: list[Mapping[str, Any]] = []

    async def manager_ok(subject: Any, data: Mapping[str, Any]) -> bool:
        await asyncio.sleep(0)
        calls.append(data)
        return bool(subject.data.get("limit", 0) > 10)

    machine = Machine(parse_definition(text, "review.yaml"), guards={"manager_ok": manager_ok})
    high = await started(machine, limit="100")
    await high.fire("Confirm", total="100")
    assert high.state == "Review" and calls == [{"total": Decimal("100")}]
    low = await started(machine, limit="5")
    await low.fire("Confirm", total="100")  # manager_ok says no: the fallback without it is taken
    assert low.state == "Confirmed"


def test_a_guard_with_a_condition_and_a_python_registration_is_refused_as_ambiguous() -> None:
    with pytest.raises(DefinitionError, match="guard 'in_stock' has a `when:` condition and is also registered"):
        Machine(parse_definition(REVIEW, "review.yaml"), guards={"in_stock": lambda subject, data: True})


def test_a_guard_with_neither_condition_nor_registration_is_still_declared_but_not_registered() -> None:
    text = REVIEW.replace('    when: "out_of_stock != true"\n', "")
    with pytest.raises(DefinitionError, match="guard 'in_stock' is declared but not registered") as raised:
        Machine(parse_definition(text, "review.yaml"))
    assert "when:" in str(raised.value)  # the hint offers a condition as the other way


def test_a_condition_is_compiled_once_with_the_machine(review: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiling(source: str) -> Any:
        raise AssertionError("compiled at evaluation time")

    monkeypatch.setattr("order_machine.expressions.cel.compile", no_compiling)

    async def confirm() -> str:
        entity = await started(review, limit="1")
        await entity.fire("Confirm", total="2")
        return entity.state

    assert asyncio.run(confirm()) == "Review"


# ----------------------------------------------------------------- the order's has_value, now in its YAML


def test_the_order_machine_needs_no_python_guard() -> None:
    machine = order_machine()
    assert [g.when for g in machine.definition.guards] == ["amount > 0 || size(items) > 0"]


@pytest.mark.parametrize(("amount", "items", "confirmed"), [
    ("0.01", [], True), ("0", [], False), (None, [], False),
    (None, ["Laptop"], True),                                          # a reference item: a name, no price
    (None, [{"product_id": "p", "quantity": 1, "unit_price": "0.01"}], True),
])
async def test_an_order_is_confirmed_only_with_a_positive_amount_or_an_item(
        amount: str | None, items: list[Any], confirmed: bool) -> None:
    order = Order(order_machine(), "o-1", "c-1", items=items, amount=None if amount is None else Decimal(amount))
    await order.initialise()
    assert await order.confirm() is confirmed
    assert order.state == ("Confirmed" if confirmed else "Pending")


def test_the_order_guard_context_holds_its_data_with_the_total_as_amount() -> None:
    order = Order(order_machine(), "o-1", "c-1", items=[{"product_id": "p", "quantity": 2, "unit_price": "1.50"}],
                  amount=Decimal("10"))
    context = order.guard_context()
    assert context["amount"] == Decimal("13.00") and context["state"] == "Pending"
    assert context["items"] == [{"product_id": "p", "quantity": 2, "unit_price": Decimal("1.50")}]
    assert set(context) >= {"customer_id", "description", "tracking_number", "shipping_address",
                            "cancellation_reason", "return_reason"}
