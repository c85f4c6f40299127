"""`order-machine projections [--json]`, `projections release`, `check` and `rebuild` with a quarantined stream,
through main([...]) on a SQLite file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from integration.event_surgery import rewrite_event

from order_machine.events import NewEvent
from order_machine.projections import ProjectionRunner, RetryPolicy, SQLiteReadModels
from order_machine.store.sqlite import SQLiteEventStore

from cli_support import CLI, assert_one_line_error, cli  # noqa: F401 (fixture)

AT = "2024-05-01T09:30:00+00:00"
SINCE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
BAD = {"at": AT, "product_id": "p-9", "quantity": 2, "unit_price": "12,50"}


def quarantine_one(cli: CLI) -> int:
    """ord-1 gets an item whose price does not parse; a projection run quarantines ord-1. Its position."""
    for n in (1, 2):
        assert cli("orders", "create", "--id", f"ord-{n}", "--customer", "c-1", "--item", "p:1:2.50").code == 0

    async def run() -> int:
        async with SQLiteEventStore(cli.workdir / "orders.db") as store:
            bad = (await store.append("ord-1", [NewEvent("OrderItemAdded", BAD)], 1)).position
            models = SQLiteReadModels(store.path)
            runner = ProjectionRunner(store, models, retry=RetryPolicy(retries=1, initial_delay=0.001),
                                      clock=lambda: SINCE)
            assert await runner.wait_for(bad, timeout=5)
            await models.close()
            return bad
    return asyncio.run(run())


def confirm_behind_the_projections(cli: CLI, order_id: str) -> int:
    """Append an event with no projection running (the command line's own runs would apply it)."""
    async def run() -> int:
        async with SQLiteEventStore(cli.workdir / "orders.db") as store:
            event = NewEvent("OrderConfirmed", {"at": AT, "source": "Pending", "target": "Confirmed"})
            return (await store.append(order_id, [event], 1)).position
    return asyncio.run(run())


def repair(cli: CLI, position: int) -> None:
    async def run() -> None:
        async with SQLiteEventStore(cli.workdir / "orders.db") as store:
            await rewrite_event(store, position, {**BAD, "unit_price": "12.50"})
    asyncio.run(run())


def test_projections_lists_checkpoints_lag_and_the_quarantined_streams_with_their_error(cli: CLI) -> None:
    bad = quarantine_one(cli)
    confirm_behind_the_projections(cli, "ord-2")
    run = cli("projections")
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0].split() == ["PROJECTION", "CHECKPOINT", "LAG", "QUARANTINED"]
    assert lines[2].split() == ["orders", str(bad), "1", "1"]  # the confirm is not applied: this command only looks
    assert lines[3].split() == ["order_history", str(bad), "1", "0"]
    assert "release each once repaired: order-machine projections release STREAM" in run.out
    row = next(line for line in lines if line.startswith("orders ") and "ord-1" in line)
    assert row.split()[:5] == ["orders", "ord-1", str(bad), "OrderItemAdded", "2030-01-02T03:04:05+00:00"]
    assert "ProjectionConflict: unit_price must be a finite decimal, got '12,50'" in row

    listed = cli("projections", "--json").json()["projections"]
    assert [(p["name"], p["checkpoint"], p["lag"], p["failed"]) for p in listed] == [
        ("orders", bad, 1, None), ("order_history", bad, 1, None), ("workflows", bad, 1, None)]
    assert listed[0]["quarantined"] == [{
        "stream": "ord-1", "position": bad, "event_type": "OrderItemAdded", "since": "2030-01-02T03:04:05+00:00",
        "error": "ProjectionConflict: unit_price must be a finite decimal, got '12,50'"}]


def test_check_reports_a_quarantined_stream_and_exits_1_until_it_is_repaired_and_released(cli: CLI) -> None:
    bad = quarantine_one(cli)
    found = cli("check")
    assert found.code == 1, found
    assert found.out.splitlines() == [
        f"QUARANTINED ord-1 by orders at position {bad} (OrderItemAdded) since 2030-01-02T03:04:05+00:00: "
        "ProjectionConflict: unit_price must be a finite decimal, got '12,50'",
        "checked 1 orders: 0 mismatched, 0 repaired, 1 quarantined (see `order-machine projections`)"]
    report = cli("check", "--json").json()
    assert (report["checked"], report["mismatched"]) == (1, [])
    assert [(q["projection"], q["stream"], q["position"]) for q in report["quarantined"]] == [("orders", "ord-1", bad)]
    assert cli("check", "--repair").code == 1  # not a read-model difference: `release` is the way

    assert_one_line_error(cli("projections", "release", "ord-1"), "ord-1", "still fails", "stays quarantined")
    repair(cli, bad)
    assert_one_line_error(cli("projections", "release", "ord-1", "--projector", "invoices"),
                          "no projection named 'invoices'", "orders, order_history, workflows")
    assert_one_line_error(cli("projections", "release", "ord-2"), "'ord-2' is not quarantined")
    released = cli("projections", "release", "ord-1", "--projector", "orders")
    assert (released.code, released.out) == (0, "released ord-1 from orders: 2 events re-applied\n")
    assert cli("check").out == "checked 2 orders: 0 mismatched, 0 repaired\n"
    assert cli("orders", "show", "ord-1", "--json").json()["amount"] == "27.50"
    assert cli("projections", "--json").json()["projections"][0]["quarantined"] == []
    assert_one_line_error(cli("projections", "release", "ord-1"), "'ord-1' is not quarantined")


def test_rebuild_names_a_stream_it_quarantined_again_and_exits_1(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = quarantine_one(cli)
    monkeypatch.setenv("ORDER_MACHINE_PROJECTION_RETRIES", "0")  # its events still fail: no need to wait
    run = cli("rebuild")
    assert run.code == 1 and run.out.startswith(f"rebuilt orders, order_history, workflows: {bad} events in "), run
    assert (f"error: orders quarantined stream 'ord-1' at position {bad} (OrderItemAdded): ProjectionConflict: "
            "unit_price must be a finite decimal, got '12,50' (see `order-machine projections`)") in run.err
    assert cli("orders", "show", "ord-2", "--json").json()["status"] == "Pending"


def test_projections_on_a_missing_database_is_one_line(cli: CLI) -> None:
    assert_one_line_error(cli("projections"), "no database")
    assert_one_line_error(cli("projections", "release", "ord-1"), "no database")
    assert not (cli.workdir / "orders.db").exists()
