"""`order-machine workflows start|show|history|list|do` and `order-machine migrate` against SQLite files,
and their one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_support import CLI, DEFINITIONS, assert_one_line_error, cli  # noqa: F401 (fixture)

PAYMENT = ("--field", "amount=100.50", "--field", "currency=USD", "--field", "method=card")


def start_payment(cli: CLI, payment_id: str = "pay-1", *extra: str) -> None:
    run = cli("workflows", "start", "payment", "--id", payment_id, *PAYMENT, *extra)
    assert run.code == 0, run


def test_a_payment_is_started_acted_on_and_read_back(cli: CLI) -> None:
    started = cli("workflows", "start", "payment", "--id", "pay-1", *PAYMENT)
    assert (started.code, started.out) == (0, "started payment pay-1: Pending (version 1, definition version 1)\n")
    assert (cli.workdir / "orders.db").exists()  # the default database, as `orders` uses
    assert cli("workflows", "do", "payment", "pay-1", "process").out == \
        "payment pay-1: Process -> Processing (version 2)\n"
    failed = cli("workflows", "do", "payment", "pay-1", "FAIL", "--field", "error_message=timeout")
    assert failed.out == "payment pay-1: Fail -> Failed (version 3)\n"
    assert cli("workflows", "do", "payment", "pay-1", "retry").code == 0
    assert cli("workflows", "do", "payment", "pay-1", "Process").code == 0
    done = cli("workflows", "do", "payment", "pay-1", "complete", "--field", "transaction_id=txn-9",
               "--if-version", "5")
    assert done.out == "payment pay-1: Complete -> Completed (version 6)\n"

    shown = cli("workflows", "show", "payment", "pay-1")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    head = dict(line.split(None, 1) for line in lines[:lines.index("")])
    assert (head["state"], head["version"], head["definition_version"]) == ("Completed", "6", "1")
    assert {"created", "updated"} <= set(head)
    data = dict(line.split(None, 1) for line in lines if line.startswith("  "))
    assert (data["amount"], data["transaction_id"], data["retry_count"]) == ("100.50", "txn-9", "1")
    assert "error_message" not in data  # Retry clears it
    assert lines[-1] == "actions allowed now: Refund"

    rows = cli("workflows", "history", "payment", "pay-1").out.splitlines()
    assert rows[0].split() == ["version", "at", "action", "state", "data"]
    assert len(rows) == 2 + 6  # header, rule, one line per event
    assert rows[2].split()[0] == "1" and "Pending" in rows[2] and "amount=100.50" in rows[2]
    assert rows[4].split()[:1] == ["3"] and "Processing -> Failed" in rows[4] and "error_message=timeout" in rows[4]
    assert rows[7].split()[0] == "6" and "Processing -> Completed" in rows[7] and "transaction_id=txn-9" in rows[7]

    listed = cli("workflows", "list", "payment").out.splitlines()
    assert listed[0].split() == ["id", "state", "version", "def_version", "created", "updated"]
    assert listed[2].split()[:4] == ["pay-1", "Completed", "6", "1"]


def test_json_bodies_are_the_http_apis(cli: CLI) -> None:
    body = cli("workflows", "start", "payment", "--id", "pay-1", *PAYMENT, "--json").json()
    assert body == {"id": "pay-1", "definition": "payment", "definition_version": 1, "state": "Pending",
                    "version": 1, "events": ["WorkflowStarted"]}
    acted = cli("workflows", "do", "payment", "pay-1", "process", "--json").json()
    assert acted == {"id": "pay-1", "state": "Processing", "version": 2, "events": ["WorkflowTransitioned"]}
    shown = cli("workflows", "show", "payment", "pay-1", "--json").json()
    assert set(shown) == {"id", "definition", "definition_version", "state", "version", "data", "created_at",
                          "updated_at"}
    assert (shown["state"], shown["version"], shown["data"]["amount"]) == ("Processing", 2, "100.50")
    history = cli("workflows", "history", "payment", "pay-1", "--json").json()
    assert [(e["version"], e["action"], e["from"], e["to"]) for e in history] == [
        (1, None, None, "Pending"), (2, "Process", "Pending", "Processing")]
    assert {"data", "at", "type"} <= set(history[0])
    page = cli("workflows", "list", "payment", "--json").json()
    assert set(page) == {"items", "next_cursor"} and [w["id"] for w in page["items"]] == ["pay-1"]


def test_list_filters_by_state_and_pages_with_a_cursor(cli: CLI) -> None:
    for n in range(3):
        start_payment(cli, f"pay-{n}")
    cli("workflows", "do", "payment", "pay-1", "cancel")
    pending = cli("workflows", "list", "payment", "--state", "Pending", "--json").json()
    assert [w["id"] for w in pending["items"]] == ["pay-0", "pay-2"]
    assert [w["id"] for w in cli("workflows", "list", "payment", "--state", "Cancelled", "--json").json()["items"]] \
        == ["pay-1"]
    assert cli("workflows", "list", "payment", "--state", "Refunded").out == "no payment instances in Refunded\n"
    first = cli("workflows", "list", "payment", "--limit", "2").out.splitlines()
    assert [r.split()[0] for r in first[2:4]] == ["pay-0", "pay-1"]  # in creation order
    cursor = first[-1].removeprefix("more: --cursor ")
    rest = cli("workflows", "list", "payment", "--limit", "2", "--cursor", cursor).out
    assert rest.splitlines()[2].split()[0] == "pay-2" and "more:" not in rest
    assert_one_line_error(cli("workflows", "list", "payment", "--state", "Nowhere"), "Nowhere", "Pending")


def test_json_field_values_and_typed_text(cli: CLI) -> None:
    run = cli("workflows", "start", "payment", "--id", "pay-1", "--field", "amount:=12", "--field", "currency=EUR",
              "--field", 'method:="cash"', "--json")
    assert run.code == 0, run
    assert cli("workflows", "show", "payment", "pay-1", "--json").json()["data"]["amount"] == "12"
    usage = cli("workflows", "start", "payment", "--field", "amount:=12x")
    assert usage.code == 2 and "is not JSON" in usage.err and "Traceback" not in usage.err
    usage = cli("workflows", "start", "payment", "--field", "novalue")
    assert usage.code == 2 and "NAME=VALUE or NAME:=JSON" in usage.err


def test_a_refusal_is_one_line_with_the_state_and_the_allowed_actions(cli: CLI) -> None:
    start_payment(cli)
    assert_one_line_error(cli("workflows", "do", "payment", "pay-1", "refund"),
                          "Refund", "Pending", "allowed now: Process, Cancel")
    assert_one_line_error(cli("workflows", "do", "payment", "pay-1", "teleport"), "teleport")
    cli("workflows", "do", "payment", "pay-1", "process")
    assert_one_line_error(cli("workflows", "do", "payment", "pay-1", "complete"), "transaction_id", "required")
    assert_one_line_error(cli("workflows", "do", "payment", "pay-1", "retry", "--if-version", "1"),
                          "expected version 1")
    assert cli("workflows", "show", "payment", "pay-1", "--json").json()["version"] == 2


def test_unknown_definitions_instances_and_bad_fields_are_one_line(cli: CLI) -> None:
    assert_one_line_error(cli("workflows", "start", "nope", "--field", "a=b"), "nope", "payment")
    assert_one_line_error(cli("workflows", "start", "order"), "orders")
    start_payment(cli)
    assert_one_line_error(cli("workflows", "show", "nope", "x"), "nope")
    assert_one_line_error(cli("workflows", "show", "payment", "missing"), "missing", "does not exist")
    assert_one_line_error(cli("workflows", "history", "payment", "missing"), "missing", "does not exist")
    assert_one_line_error(cli("workflows", "do", "payment", "missing", "process"), "missing", "does not exist")
    bad = cli("workflows", "start", "payment", "--field", "amount=lots", "--field", "currency=USD",
              "--field", "method=card")
    assert_one_line_error(bad, "amount", "decimal")
    assert_one_line_error(cli("workflows", "start", "payment", *PAYMENT, "--field", "colour=red"), "colour")
    assert_one_line_error(cli("workflows", "start", "payment", "--id", "pay-1", *PAYMENT), "pay-1", "already exists")


def test_a_key_replays_the_first_result(cli: CLI) -> None:
    first = cli("workflows", "start", "payment", *PAYMENT, "--key", "k-start", "--json").json()
    again = cli("workflows", "start", "payment", *PAYMENT, "--key", "k-start")
    assert again.code == 0 and "already done" in again.out and first["id"] in again.out
    assert len(cli("workflows", "list", "payment", "--json").json()["items"]) == 1
    assert cli("workflows", "do", "payment", first["id"], "process", "--key", "k-1").code == 0
    replay = cli("workflows", "do", "payment", first["id"], "process", "--key", "k-1")
    assert replay.code == 0 and "already done" in replay.out
    assert cli("workflows", "show", "payment", first["id"], "--json").json()["version"] == 2
    assert_one_line_error(cli("workflows", "do", "payment", first["id"], "cancel", "--key", "k-1"),
                          "k-1", "different request")


def test_instances_persist_across_invocations_of_one_database(cli: CLI, tmp_path: Path) -> None:
    db = ("--db", f"sqlite:///{tmp_path}/elsewhere/pay.db")
    (tmp_path / "elsewhere").mkdir()
    assert cli("workflows", "start", "payment", "--id", "pay-1", *PAYMENT, *db).code == 0
    assert cli("workflows", "do", "payment", "pay-1", "process", *db).code == 0
    assert cli("workflows", "show", "payment", "pay-1", "--json", *db).json()["state"] == "Processing"
    assert not (cli.workdir / "orders.db").exists()
    assert_one_line_error(cli("workflows", "list", "payment", "--db", f"sqlite:///{tmp_path}/none.db"),
                          "no database")


# --------------------------------------------------------------------------- migrate

TICKET_V1 = """\
name: ticket
version: 1
initial: Open
states:
  - {name: Open}
  - {name: InProgress}
  - {name: Closed, terminal: true}
actions:
  - {name: Start}
  - {name: Close}
transitions:
  - {action: Start, from: Open, to: InProgress}
  - {action: Close, from: [Open, InProgress], to: Closed}
"""

TICKET_V2 = TICKET_V1.replace("version: 1", "version: 2").replace("Open", "New")


def ticket_folder(cli: CLI, tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """A definitions folder where tickets t-1 (Open), t-2 (InProgress) and t-3 (Closed) started on v1,
    then v2 (Open renamed New) became the latest, v1 kept in versions/."""
    folder = tmp_path / "defs"
    folder.mkdir()
    shutil.copy(DEFINITIONS / "order.yaml", folder / "order.yaml")
    (folder / "ticket.yaml").write_text(TICKET_V1)
    opts = ("--definitions", str(folder), "--db", f"sqlite:///{tmp_path}/tickets.db")
    for n in (1, 2, 3):
        assert cli("workflows", "start", "ticket", "--id", f"t-{n}", *opts).code == 0
    assert cli("workflows", "do", "ticket", "t-2", "start", *opts).code == 0
    assert cli("workflows", "do", "ticket", "t-3", "close", *opts).code == 0
    (folder / "versions").mkdir()
    (folder / "ticket.yaml").rename(folder / "versions" / "ticket.v1.yaml")
    (folder / "ticket.yaml").write_text(TICKET_V2)
    return folder, opts


def shown(cli: CLI, opts: tuple[str, ...], ticket: str) -> tuple[int, str, int]:
    body = cli("workflows", "show", "ticket", ticket, "--json", *opts).json()
    return body["definition_version"], body["state"], body["version"]


def test_migrate_moves_in_flight_instances_all_or_none(cli: CLI, tmp_path: Path) -> None:
    _folder, opts = ticket_folder(cli, tmp_path)
    before = {t: shown(cli, opts, t) for t in ("t-1", "t-2", "t-3")}
    assert before == {"t-1": (1, "Open", 1), "t-2": (1, "InProgress", 2), "t-3": (1, "Closed", 2)}

    dry = cli("migrate", "ticket", "--to", "2", "--map", "Open=New", "--dry-run", *opts)
    assert dry.code == 0, dry
    assert dry.out.splitlines() == [
        "t-1: v1 Open -> v2 New", "t-2: v1 InProgress -> v2 InProgress",
        "would move 2 ticket instance(s) to version 2; 1 in a terminal state left alone (dry run: nothing changed)"]
    assert {t: shown(cli, opts, t) for t in before} == before

    refused = cli("migrate", "ticket", "--to", "2", *opts)
    assert_one_line_error(refused, "nothing moved", "Open", "--map")
    assert refused.out.splitlines() == ["t-1: v1 Open has no place in v2"]
    assert {t: shown(cli, opts, t) for t in before} == before

    assert_one_line_error(cli("migrate", "ticket", "--to", "2", "--map", "Open=Nowhere", *opts), "Nowhere", "New")
    assert_one_line_error(cli("migrate", "ticket", "--to", "3", "--map", "Open=New", *opts), "version 3")

    moved = cli("migrate", "ticket", "--to", "2", "--map", "Open=New", "--json", *opts)
    assert moved.code == 0, moved
    report = moved.json()
    assert [(m["id"], m["from_state"], m["to_state"]) for m in report["moved"]] == [
        ("t-1", "Open", "New"), ("t-2", "InProgress", "InProgress")]
    assert report["terminal"] == ["t-3"] and report["refused"] == []
    assert shown(cli, opts, "t-1") == (2, "New", 2)
    assert shown(cli, opts, "t-2") == (2, "InProgress", 3)
    assert shown(cli, opts, "t-3") == (1, "Closed", 2)  # terminal: left alone
    history = cli("workflows", "history", "ticket", "t-1", "--json", *opts).json()
    assert history[-1]["type"] == "WorkflowMigrated" and history[-1]["data"] == {"from_version": 1, "to_version": 2}
    # the moved instance runs on v2 now
    assert cli("workflows", "do", "ticket", "t-1", "start", *opts).code == 0
    again = cli("migrate", "ticket", "--to", "2", *opts)
    assert again.code == 0 and again.out.startswith("moved 0 ticket instance(s)") and "2 already on v2" in again.out


def test_migrate_follows_the_map_the_new_version_declares_and_map_wins_over_it(cli: CLI, tmp_path: Path) -> None:
    folder, opts = ticket_folder(cli, tmp_path)
    (folder / "ticket.yaml").write_text(TICKET_V2 + "migrations:\n  - {from: 1, map: {Open: New}}\n")
    assert cli("validate", "-q", str(folder)).code == 0

    dry = cli("migrate", "ticket", "--to", "2", "--dry-run", *opts)
    assert dry.code == 0, dry
    assert dry.out.splitlines()[:2] == ["t-1: v1 Open -> v2 New", "t-2: v1 InProgress -> v2 InProgress"]
    overridden = cli("migrate", "ticket", "--to", "2", "--map", "InProgress=New", "--dry-run", *opts)
    assert overridden.out.splitlines()[:2] == ["t-1: v1 Open -> v2 New", "t-2: v1 InProgress -> v2 New"]

    moved = cli("migrate", "ticket", "--to", "2", "--map", "Open=InProgress", *opts)
    assert moved.code == 0, moved
    assert shown(cli, opts, "t-1") == (2, "InProgress", 2)  # --map wins over the declared map
    assert shown(cli, opts, "t-2") == (2, "InProgress", 3)


def test_migrate_without_a_map_uses_the_declared_one(cli: CLI, tmp_path: Path) -> None:
    folder, opts = ticket_folder(cli, tmp_path)
    (folder / "ticket.yaml").write_text(TICKET_V2 + "migrations:\n  - {from: 1, map: {Open: New}}\n")
    moved = cli("migrate", "ticket", "--to", "2", *opts)
    assert moved.code == 0, moved
    assert shown(cli, opts, "t-1") == (2, "New", 2)
