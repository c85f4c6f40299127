"""`order-machine orders create|show|list|history|do` against a SQLite file, and its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_support import CLI, DEFINITIONS, assert_one_line_error, cli  # noqa: F401 (fixture)


def make_order(cli: CLI, order_id: str = "ord-1", *extra: str) -> None:
    run = cli("orders", "create", "--id", order_id, "--customer", "c-7", "--item", "sku-42:2:19.99",
              "--item", "sku-7:1:4.50", *extra)
    assert run.code == 0, run


def test_an_order_is_taken_to_delivery_from_the_command_line(cli: CLI) -> None:
    created = cli("orders", "create", "--id", "ord-1", "--customer", "c-7", "--item", "sku-42:2:19.99")
    assert (created.code, created.out) == (0, "created order ord-1: Pending (version 1)\n")
    assert (cli.workdir / "orders.db").exists()  # the default database, in the working directory
    assert cli("orders", "do", "ord-1", "confirm").out == "order ord-1: Confirm -> Confirmed (version 2)\n"
    assert cli("orders", "do", "ord-1", "start-processing").code == 0
    shipped = cli("orders", "do", "ord-1", "Ship", "--field", "tracking_number=1Z999",
                  "--field", "shipping_address=1 Main St")
    assert shipped.out == "order ord-1: Ship -> Shipped (version 4)\n"
    assert cli("orders", "do", "ord-1", "deliver").code == 0
    shown = cli("orders", "show", "ord-1")
    assert shown.code == 0
    lines = shown.out.splitlines()
    fields = dict(line.split(None, 1) for line in lines[:lines.index("")] if len(line.split(None, 1)) == 2)
    assert fields["status"] == "Delivered" and fields["amount"] == "39.98" and fields["version"] == "5"
    assert (fields["tracking_number"], fields["shipping_address"]) == ("1Z999", "1 Main St")
    assert any(line.split() == ["sku-42", "2", "19.99", "39.98"] for line in lines)
    assert lines[-1] == "actions allowed now: Return --field reason=..."


def test_show_list_and_history_print_json_for_scripts(cli: CLI) -> None:
    make_order(cli, "ord-1")
    make_order(cli, "ord-2")
    cli("orders", "do", "ord-2", "cancel", "--field", "reason=out of stock")
    order = cli("orders", "show", "ord-2", "--json").json()
    assert (order["status"], order["amount"], order["cancellation_reason"]) == ("Cancelled", "44.48", "out of stock")
    assert order["allowed_actions"] == []
    listed = cli("orders", "list", "--status", "Pending", "--json").json()
    assert [o["id"] for o in listed["items"]] == ["ord-1"] and listed["next_cursor"] is None
    history = cli("orders", "history", "ord-2", "--json").json()
    assert [(e["type"], e["to_state"]) for e in history] == [("OrderCreated", "Pending"),
                                                             ("OrderCancelled", "Cancelled")]
    result = cli("orders", "do", "ord-1", "confirm", "--json").json()
    assert (result["state"], result["version"], result["events"]) == ("Confirmed", 2, ["OrderConfirmed"])


def test_list_prints_a_table_and_pages_with_a_cursor(cli: CLI) -> None:
    for n in range(3):
        make_order(cli, f"ord-{n}")
    first = cli("orders", "list", "--customer", "c-7", "--limit", "2")
    rows = first.out.splitlines()
    assert rows[0].split() == ["order", "customer", "status", "amount", "items", "updated"]
    assert [r.split()[0] for r in rows[2:4]] == ["ord-0", "ord-1"]  # in the order they were placed
    cursor = rows[-1].removeprefix("more: --cursor ")
    rest = cli("orders", "list", "--customer", "c-7", "--limit", "2", "--cursor", cursor)
    assert rest.out.splitlines()[2].split()[0] == "ord-2" and "more:" not in rest.out


def test_history_prints_each_transition(cli: CLI) -> None:
    make_order(cli)
    cli("orders", "do", "ord-1", "confirm")
    rows = cli("orders", "history", "ord-1").out.splitlines()
    assert rows[0].split() == ["version", "at", "event", "action", "state"]
    assert rows[3].split()[0] == "2" and rows[3].split()[-3:] == ["Pending", "->", "Confirmed"]


def test_a_key_makes_a_command_run_at_most_once(cli: CLI) -> None:
    make_order(cli)
    assert cli("orders", "do", "ord-1", "confirm", "--key", "k1").code == 0
    again = cli("orders", "do", "ord-1", "confirm", "--key", "k1")
    assert again.code == 0 and "already done" in again.out
    assert cli("orders", "show", "ord-1", "--json").json()["version"] == 2


def test_an_unknown_order_is_one_line(cli: CLI) -> None:
    make_order(cli)
    assert_one_line_error(cli("orders", "show", "nope"), "nope", "does not exist")
    assert_one_line_error(cli("orders", "do", "nope", "confirm"), "nope", "does not exist")
    assert_one_line_error(cli("orders", "history", "nope"), "nope")


def test_a_refused_action_is_one_line_naming_what_is_allowed(cli: CLI) -> None:
    make_order(cli)
    run = cli("orders", "do", "ord-1", "deliver")
    assert_one_line_error(run, "Deliver", "Pending", "allowed now: Confirm, Cancel")
    assert_one_line_error(cli("orders", "do", "ord-1", "teleport"), "teleport", "not declared")
    assert_one_line_error(cli("orders", "do", "ord-1", "cancel"), "reason", "required")
    assert_one_line_error(cli("orders", "do", "ord-1", "confirm", "--expect-version", "5"), "expected version 5")
    assert cli("orders", "show", "ord-1", "--json").json()["version"] == 1


def test_bad_data_is_one_line_naming_the_field(cli: CLI) -> None:
    assert_one_line_error(cli("orders", "create", "--customer", "has space"), "customer_id")
    assert_one_line_error(cli("orders", "create", "--customer", "c", "--item", "p:0:1.00"), "quantity")
    # the id rule (ids.py) and stored text hold on the command line too
    assert_one_line_error(cli("orders", "create", "--customer", "c", "--id", "a\u202eb"), "order_id", "U+202E")
    assert_one_line_error(cli("orders", "create", "--customer", "c\x7f"), "customer_id")
    assert_one_line_error(cli("orders", "create", "--customer", "c", "--key", "two words"), "command_id")
    make_order(cli)
    assert_one_line_error(cli("orders", "show", "a\x01b"), "order_id")
    assert_one_line_error(cli("orders", "list", "--cursor", "WzkyMjMzNzIwMzY4NTQ3NzU4MDgsImEiXQ"), "cursor")
    usage = cli("orders", "create", "--customer", "c", "--item", "p:two:1.00")
    assert usage.code == 2 and "quantity 'two' is not a whole number" in usage.err and "Traceback" not in usage.err
    usage = cli("orders", "do", "x", "confirm", "--field", "novalue")
    assert usage.code == 2 and "NAME=VALUE" in usage.err


def test_reading_a_database_that_does_not_exist_is_one_line_and_creates_nothing(cli: CLI) -> None:
    assert_one_line_error(cli("orders", "list"), "no database", "orders.db")
    assert not (cli.workdir / "orders.db").exists()


def test_a_database_path_that_cannot_be_opened_is_one_line(cli: CLI) -> None:
    (cli.workdir / "file").write_text("a file, not a folder")
    run = cli("orders", "create", "--customer", "c", "--db", f"sqlite:///{cli.workdir}/file/orders.db")
    assert_one_line_error(run, "file/orders.db")
    assert_one_line_error(cli("orders", "create", "--customer", "c", "--db", "mysql://db/x"), "unsupported store url")


def test_a_corrupt_database_file_is_one_line_and_left_untouched(cli: CLI) -> None:
    text = "these are my notes, not a database\n" * 50
    notes = cli.workdir / "notes.db"
    notes.write_text(text)
    for argv in (("orders", "show", "x"), ("orders", "list"), ("orders", "create", "--customer", "c"),
                 ("rebuild",), ("check",)):
        assert_one_line_error(cli(*argv, "--db", f"sqlite:///{notes}"), "notes.db", "not")
    assert notes.read_text() == text


def test_a_definitions_folder_with_errors_is_one_line(cli: CLI, tmp_path: Path) -> None:
    broken = tmp_path / "defs"
    broken.mkdir()
    for source in DEFINITIONS.glob("*.yaml"):
        (broken / source.name).write_text(source.read_text())
    order = broken / "order.yaml"
    order.write_text(order.read_text().replace("initial: Pending", "initial: Pendng"))
    run = cli("orders", "create", "--customer", "c", "--definitions", str(broken))
    assert_one_line_error(run, "order.yaml", "Pendng")
    assert not (cli.workdir / "orders.db").exists()
    assert_one_line_error(cli("orders", "list", "--definitions", str(tmp_path / "missing")), "missing")


def test_output_cut_short_by_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/orders.db"
    cli = [sys.executable, "-m", "order_machine"]
    for _ in range(8):
        subprocess.run([*cli, "orders", "create", "--db", db, "--customer", "c", "--amount", "1"], check=True,
                       capture_output=True)
    lister = subprocess.Popen([*cli, "orders", "list", "--db", db, "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert lister.stdout is not None and lister.stderr is not None
    lister.stdout.read(10)
    lister.stdout.close()  # like `| head -c 10`
    assert lister.wait(timeout=30) == 0
    errors = lister.stderr.read()
    lister.stderr.close()
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors
