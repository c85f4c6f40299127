"""`order-machine rebuild` with the application's own projectors, named in ORDER_MACHINE_PROJECTORS."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from cli_support import CLI, assert_one_line_error, cli  # noqa: F401 (fixture)


def totals(cli: CLI) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(cli.workdir / "orders.db")) as conn:
        return conn.execute("SELECT customer_id, orders, amount FROM customer_totals ORDER BY customer_id").fetchall()


def test_rebuild_clears_and_rebuilds_a_projector_named_in_the_environment(cli: CLI,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for customer, item in (("cust-7", "p:2:1.25"), ("cust-7", "p:1:0.50"), ("cust-8", "q:3:2.00")):
        assert cli("orders", "create", "--customer", customer, "--item", item).code == 0
    monkeypatch.setenv("ORDER_MACHINE_PROJECTORS", "projector_examples:CustomerTotals, projector_examples:Ledger")
    run = cli("rebuild", "customer_totals")
    assert run.code == 0, run
    assert run.out.startswith("rebuilt customer_totals: 3 events in ")
    expected = [("cust-7", 2, "3.00"), ("cust-8", 1, "6.00")]
    assert totals(cli) == expected
    run = cli("rebuild")  # every projection, the environment's too, in one pass
    assert run.out.startswith("rebuilt orders, order_history, workflows, customer_totals, ledger: 3 events"), run
    assert totals(cli) == expected
    assert_one_line_error(cli("rebuild", "customer_total"), "customer_total", "customer_totals, ledger")


def test_a_projector_that_cannot_be_loaded_is_one_line_naming_it(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("orders", "create", "--customer", "cust-7").code == 0
    monkeypatch.setenv("ORDER_MACHINE_PROJECTORS", "projector_examples:Nothing")
    assert_one_line_error(cli("rebuild"), "projector_examples:Nothing", "cannot load it")
