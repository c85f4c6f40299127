"""The departures from the reference listed in docs/reference-departures.md, pinned so that page stays true."""

from __future__ import annotations

from pathlib import Path

from order_machine.machine import Machine

from ._harness import ScenarioBus, new_document, new_order

DEPARTURES = Path(__file__).resolve().parents[2] / "docs" / "reference-departures.md"


def test_the_departures_page_lists_each_one_pinned_here() -> None:
    text = DEPARTURES.read_text(encoding="utf-8")
    for words in ("`has_value`", "`Revise` clears `rejection_reason`", "`append: true`"):
        assert words in text


async def test_an_order_with_no_items_and_no_amount_cannot_be_confirmed(
    order_machine: Machine, memory_bus: ScenarioBus
) -> None:
    order = new_order(order_machine, "ord-0", "customer-0", [], "0", memory_bus.bus)
    await order.initialise()
    assert await order.confirm() is False  # the reference answers True
    assert order.state == "Pending"
    assert await order_machine.blocked_by("Pending", "Confirm", order) == "has_value"
    assert await order.cancel("nothing to send") is True


async def test_revise_clears_the_rejection_reason(document_machine: Machine, memory_bus: ScenarioBus) -> None:
    document = new_document(document_machine, "doc-r", "T", "C", "author", memory_bus.bus)
    await document.initialise()
    await document.submit()
    await document.reject("reviewer-2", "Needs more detail")
    assert await document.revise() is True
    assert document.rejection_reason is None  # the reference keeps "Needs more detail"
    assert [e.data for e in document.history if e.action == "Reject"] == [
        {"reviewer": "reviewer-2", "reason": "Needs more detail"}]  # kept in the history


async def test_a_reviewer_who_reviews_twice_is_recorded_twice(document_machine: Machine, memory_bus: ScenarioBus) -> None:
    document = new_document(document_machine, "doc-t", "T", "C", "author", memory_bus.bus)
    await document.initialise()
    await document.submit()
    await document.reject("reviewer-2", "Needs more detail")
    await document.revise()
    await document.submit()
    await document.approve("reviewer-2")
    assert document.reviewers == ["reviewer-2", "reviewer-2"]  # the reference records reviewer-2 once
