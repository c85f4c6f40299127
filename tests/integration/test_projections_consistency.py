"""The ConsistencyChecker finds read models that disagree with the events, reports how, and repairs them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from integration.projection_support import Backend, append, confirmed, created, random_history

from order_machine.projections import (
    ConsistencyChecker, FieldDifference, ProjectedOrder, ProjectionRunner, project_order,
)


async def tamper(backend: Backend, order_id: str, *, amount: str | None = None, drop_items: bool = False,
                 drop_order: bool = False) -> None:
    """Change a stored read model behind the projection's back (SQL on a database, a bad repair in memory)."""
    if backend.kind != "memory":
        if amount is not None:
            await backend.sql("UPDATE {s}read_orders SET amount = %s WHERE id = %s", amount, order_id)
        if drop_items:
            await backend.sql("DELETE FROM {s}read_order_items WHERE order_id = %s", order_id)
        if drop_order:
            await backend.sql("DELETE FROM {s}read_orders WHERE id = %s", order_id)
        return
    checkpoint = await backend.models.checkpoint("orders")
    right = project_order(await backend.store.load(order_id))
    assert right.row is not None
    row = replace(right.row, amount=Decimal(amount)) if amount is not None else right.row
    wrong = ProjectedOrder(None if drop_order else row, [] if drop_items else right.items)
    assert await backend.models.repair_order(order_id, wrong, checkpoint)


async def test_a_tampered_amount_is_reported_and_repaired(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models)
    await runner.wait_for(await append(backend.store, created("o-1"), confirmed("o-1"), created("o-2")))
    good = await backend.models.get_order("o-1")
    await tamper(backend, "o-1", amount="999.99")
    checker = ConsistencyChecker(backend.store, backend.models)

    found = await checker.check_order("o-1")
    assert found.differences == (FieldDifference("amount", Decimal("999.99"), Decimal("3.60")),)
    assert not found.consistent and not found.repaired
    assert (await backend.models.get_order("o-1")) != good  # checking alone changes nothing

    fixed = await checker.check_order("o-1", repair=True)
    assert fixed.repaired and fixed.differences == found.differences
    assert await backend.models.get_order("o-1") == good
    assert (await checker.check_order("o-1")).consistent
    assert (await checker.check_order("o-2")).consistent


async def test_lost_items_and_a_lost_order_are_found_and_rebuilt(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models)
    await runner.wait_for(await append(backend.store, created("o-1"), created("o-2")))
    good = await backend.models.get_order("o-1")
    await tamper(backend, "o-1", drop_items=True)
    await tamper(backend, "o-2", drop_order=True)
    checker = ConsistencyChecker(backend.store, backend.models)
    lost_items = await checker.check_order("o-1")
    assert [d.field for d in lost_items.differences] == ["items"]
    assert (lost_items.differences[0].stored, lost_items.differences[0].expected) == (0, 1)
    assert (await checker.check_order("o-2")).differences == (FieldDifference("exists", False, True),)

    report = await checker.check_all(repair=True)
    assert (report.checked, len(report.mismatched), report.repaired) == (2, 2, 2)
    assert await backend.models.get_order("o-1") == good
    assert (await backend.models.get_order("o-2")) is not None
    assert (await checker.check_all()).mismatched == ()


async def test_check_all_pages_through_every_order_and_counts(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models)
    await runner.wait_for(await random_history(backend.store, 30, seed=4))
    await tamper(backend, "o-0007", amount="0")
    await tamper(backend, "o-0021", amount="1234")
    report = await ConsistencyChecker(backend.store, backend.models).check_all(page_size=4)
    assert report.checked == 30 and report.repaired == 0
    assert [c.order_id for c in report.mismatched] == ["o-0007", "o-0021"]
    assert all(c.differences[0].field == "amount" for c in report.mismatched)


async def test_a_projection_that_is_merely_behind_is_not_reported(backend: Backend) -> None:
    runner = ProjectionRunner(backend.store, backend.models)
    await runner.wait_for(await append(backend.store, created("o-1")))
    last = await append(backend.store, confirmed("o-1"), created("o-2"))  # not projected yet
    report = await ConsistencyChecker(backend.store, backend.models).check_all(repair=True)
    assert (report.checked, report.mismatched) == (2, ())
    order = await backend.models.get_order("o-1")
    assert order is not None and order.status == "Pending"
    assert await runner.wait_for(last)  # and the projection still goes on from its checkpoint
    order = await backend.models.get_order("o-1")
    assert order is not None and order.status == "Confirmed"
