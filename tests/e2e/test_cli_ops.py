"""`order-machine rebuild`, `check [--repair]` and `serve`'s start-up errors, through main([...])."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from pathlib import Path

import pytest

from order_machine.cli import main

from cli_support import CLI, assert_one_line_error, cli  # noqa: F401 (fixture)


def place_orders(cli: CLI, count: int) -> None:
    for n in range(count):
        assert cli("orders", "create", "--id", f"ord-{n}", "--customer", f"c-{n % 3}", "--item", "p:1:2.50").code == 0
    assert cli("orders", "do", "ord-0", "confirm").code == 0


def tamper(db: Path, sql: str, *args: object) -> None:
    """Damage the read models behind the service's back (what `check` exists to find)."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(sql, args)


def test_rebuild_replays_every_projection_and_reports_events_per_second(cli: CLI) -> None:
    place_orders(cli, 4)
    tamper(cli.workdir / "orders.db", "DELETE FROM read_orders")
    run = cli("rebuild")
    assert run.code == 0, run
    found = re.fullmatch(r"rebuilt orders, order_history, workflows: 5 events in \d+\.\d\ds \(([\d,]+) events/s\)\n", run.out)
    assert found, run.out
    assert int(found.group(1).replace(",", "")) > 0
    assert cli("orders", "show", "ord-3", "--json").json()["amount"] == "2.50"


def test_rebuild_of_one_projection_leaves_the_others_alone(cli: CLI) -> None:
    place_orders(cli, 2)
    tamper(cli.workdir / "orders.db", "UPDATE read_orders SET description = 'tampered'")
    assert cli("rebuild", "order_history").code == 0
    assert cli("orders", "show", "ord-0", "--json").json()["description"] == "tampered"
    assert cli("rebuild", "orders").code == 0
    assert cli("orders", "show", "ord-0", "--json").json()["description"] == ""


def test_rebuild_of_an_unknown_projection_is_one_line_naming_the_known_ones(cli: CLI) -> None:
    place_orders(cli, 1)
    assert_one_line_error(cli("rebuild", "ordres"), "ordres", "orders, order_history")


def test_check_exits_1_on_a_mismatch_and_repair_fixes_it(cli: CLI) -> None:
    place_orders(cli, 3)
    clean = cli("check")
    assert (clean.code, clean.out) == (0, "checked 3 orders: 0 mismatched, 0 repaired\n")
    tamper(cli.workdir / "orders.db", "UPDATE read_orders SET amount = '999.00', status = 'Delivered' WHERE id = ?",
           "ord-1")
    found = cli("check")
    assert found.code == 1
    assert found.out.splitlines()[0] == ("MISMATCH ord-1: amount: stored Decimal('999.00'), events say "
                                         "Decimal('2.50'); status: stored 'Delivered', events say 'Pending'")
    report = cli("check", "--json").json()
    assert report["checked"] == 3 and [m["order_id"] for m in report["mismatched"]] == ["ord-1"]
    repaired = cli("check", "--repair")
    assert repaired.code == 0 and repaired.out.splitlines()[-1] == "checked 3 orders: 1 mismatched, 1 repaired"
    assert cli("check").code == 0
    assert cli("orders", "show", "ord-1", "--json").json()["status"] == "Pending"


def test_check_exits_1_on_a_workflow_row_that_disagrees_with_its_events_and_repair_fixes_it(cli: CLI) -> None:
    place_orders(cli, 1)
    assert cli("workflows", "start", "payment", "--id", "pay-1", "--field", "amount=100.50", "--field",
               "currency=USD", "--field", "method=card").code == 0
    assert cli("workflows", "do", "payment", "pay-1", "process").code == 0
    clean = cli("check")
    assert (clean.code, clean.out) == (0, "checked 1 orders and 1 workflows: 0 mismatched, 0 repaired\n")
    tamper(cli.workdir / "orders.db", "UPDATE read_workflows SET state = 'Completed', version = 9 WHERE stream_id = ?",
           "payment/pay-1")

    found = cli("check")
    assert found.code == 1
    assert found.out.splitlines()[0] == ("MISMATCH payment/pay-1: state: stored 'Completed', events say "
                                         "'Processing'; version: stored 9, events say 2")
    assert cli("workflows", "show", "payment", "pay-1", "--json").json()["state"] == "Completed"  # still wrong
    repaired = cli("check", "--repair")
    assert repaired.code == 0, repaired
    assert repaired.out.splitlines() == ["repaired payment/pay-1: state: stored 'Completed', events say "
                                         "'Processing'; version: stored 9, events say 2",
                                         "checked 1 orders and 1 workflows: 1 mismatched, 1 repaired"]
    assert cli("check").code == 0
    shown = cli("workflows", "show", "payment", "pay-1", "--json").json()
    assert (shown["state"], shown["version"]) == ("Processing", 2)


def test_rebuild_and_check_on_a_missing_database_are_one_line(cli: CLI) -> None:
    assert_one_line_error(cli("rebuild"), "no database")
    assert_one_line_error(cli("check"), "no database")
    assert not (cli.workdir / "orders.db").exists()


def test_serve_refuses_a_corrupt_database_in_one_line_before_listening(cli: CLI) -> None:
    (cli.workdir / "notes.db").write_text("not a database\n" * 100)
    assert_one_line_error(cli("serve", "--db", "sqlite:///notes.db", "--port", "1"), "notes.db")


def test_serve_refuses_a_broken_definitions_folder_in_one_line(cli: CLI) -> None:
    broken = cli.workdir / "defs"
    broken.mkdir()
    (broken / "order.yaml").write_text("name: order\ninitial: [\n")
    assert_one_line_error(cli("serve", "--definitions", str(broken), "--port", "1"), "order.yaml")


def test_serve_with_several_workers_needs_a_shared_database(cli: CLI) -> None:
    assert_one_line_error(cli("serve", "--db", "memory://", "--workers", "2"), "--workers", "memory://")


@pytest.mark.parametrize("command", ["serve", "orders", "rebuild", "check", "validate", "diagram", "demo", "db"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("sub", ["create", "show", "list", "history", "do"])
def test_every_orders_subcommand_has_help_with_an_example(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["orders", sub, "--help"])
    assert f"order-machine orders {sub}" in capsys.readouterr().out.split("example:")[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rebuild_draws_a_progress_bar_on_a_terminal(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    place_orders(cli, 3)
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    assert cli("rebuild").code == 0
    assert screen.getvalue().endswith("\r[##############################] 100% 4/4 events\n")


@pytest.mark.parametrize(("argv", "prog", "words"), [
    ([], "order-machine", "a command is required"),
    (["orders"], "order-machine orders", "SUBCOMMAND"),
    (["orders", "create"], "order-machine orders create", "--customer"),
    (["orders", "do", "x", "confirm", "--field", "novalue"], "order-machine orders do", "NAME=VALUE"),
    (["db"], "order-machine db", "upgrade or status"),
    (["serve", "--port", "99999"], "order-machine serve", "--port"),
    (["nonsense"], "order-machine", "invalid choice"),
])
def test_a_usage_error_is_one_line_naming_the_help_to_read_and_exit_2(
        cli: CLI, argv: list[str], prog: str, words: str) -> None:
    run = cli(*argv)
    assert run.code == 2 and run.out == ""
    assert len(run.err.splitlines()) == 1, run.err
    assert run.err.startswith(f"{prog}: error: ") and words in run.err
    assert run.err.endswith(f"(see `{prog} --help`)\n")
