"""`order-machine validate` checks a folder's earlier versions (`versions/`) with it, as `serve` loads them:
names, version numbers, and the `migrations:` maps; every problem as path:line: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.cli import main

TICKET = """\
name: {name}
version: {version}
initial: {open}
states:
  - {{name: {open}}}
  - {{name: InProgress}}
  - {{name: Closed, terminal: true}}
actions:
  - {{name: Start}}
  - {{name: Close}}
transitions:
  - {{action: Start, from: {open}, to: InProgress}}
  - {{action: Close, from: [{open}, InProgress], to: Closed}}
"""


def ticket(version: int, *, name: str = "ticket", open_state: str = "Open", migrations: str = "") -> str:
    return TICKET.format(name=name, version=version, open=open_state) + migrations


V2 = ticket(2, open_state="New", migrations="migrations:\n  - from: 1\n    map: {Open: New}\n")


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_folder_and_its_versions_are_valid_together(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = write(tmp_path, {"ticket.yaml": V2, "versions/ticket.v1.yaml": ticket(1)})
    assert main(["validate", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{folder / 'ticket.yaml'}: OK (ticket v2: 3 states, 2 actions, 3 transitions)",
        f"{folder / 'versions' / 'ticket.v1.yaml'}: OK (ticket v1: 3 states, 2 actions, 3 transitions)"]


# case -> (files, the file, line and words of the one problem expected)
BROKEN_SETS: dict[str, tuple[dict[str, str], tuple[str, int, str]]] = {
    "a version number used twice": (
        {"ticket.yaml": ticket(3), "versions/ticket.v1.yaml": ticket(1), "versions/ticket.v1b.yaml": ticket(1)},
        ("versions/ticket.v1b.yaml", 2, "ticket version 1 is also defined in")),
    "a version newer than the latest": (
        {"ticket.yaml": ticket(2), "versions/ticket.v3.yaml": ticket(3)},
        ("versions/ticket.v3.yaml", 2, "ticket version 3 in versions/ is not older than the latest")),
    "the same version as the latest": (
        {"ticket.yaml": ticket(2), "versions/ticket.v2.yaml": ticket(2)},
        ("versions/ticket.v2.yaml", 2, "ticket version 2 is also defined in")),
    "a version whose name has no latest": (
        {"ticket.yaml": ticket(2), "versions/tiket.v1.yaml": ticket(1, name="tiket")},
        ("versions/tiket.v1.yaml", 1, "a version of 'tiket', but the folder above has no tiket.yaml (the latest "
                                      "version) (hint: did you mean 'ticket'?)")),
    "a map onto a state the new version lacks": (
        {"ticket.yaml": V2.replace("{Open: New}", "{Open: Nowhere}"), "versions/ticket.v1.yaml": ticket(1)},
        ("ticket.yaml", 16, "map: Open -> 'Nowhere', which is not a state of ticket version 2 (hint: states here: "
                            "New, InProgress, Closed)")),
    "a map from a state the old version lacks": (
        {"ticket.yaml": V2.replace("{Open: New}", "{Opne: New}"), "versions/ticket.v1.yaml": ticket(1)},
        ("ticket.yaml", 16, "map: 'Opne' is not a state of ticket version 1 (hint: states there: Open, InProgress, "
                            "Closed)")),
    "a migration from a version nowhere in the set": (
        {"ticket.yaml": V2},
        ("ticket.yaml", 15, "ticket has no version 1 to migrate from (earlier versions here: none) (hint: keep "
                            "version 1 in versions/, or remove this migration)")),
    "a migration from a version that is not earlier": (
        {"ticket.yaml": V2.replace("from: 1", "from: 2"), "versions/ticket.v1.yaml": ticket(1)},
        ("ticket.yaml", 15, "migrations bring earlier versions to this one (version 2); from: 2 is not earlier")),
    "two migrations from one version": (
        {"ticket.yaml": V2 + "  - {from: 1, map: {InProgress: New}}\n", "versions/ticket.v1.yaml": ticket(1)},
        ("ticket.yaml", 17, "a second migration from version 1")),
}


@pytest.mark.parametrize("case", list(BROKEN_SETS))
def test_a_broken_version_set_exits_1_with_the_located_problem(
        case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files, (where, line, words) = BROKEN_SETS[case]
    folder = write(tmp_path, files)
    assert main(["validate", "-q", str(folder)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{folder / where}:{line}: "), lines
    assert words in lines[0]
    assert "1 problem(s) in 1 file(s)" in captured.err and "Traceback" not in captured.err


def test_a_file_given_alone_is_checked_with_the_versions_beside_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = write(tmp_path, {"ticket.yaml": V2.replace("{Open: New}", "{Open: Nowhere}"),
                              "versions/ticket.v1.yaml": ticket(1), "versions/broken.yaml": "name: [",
                              "other.yaml": ticket(1, name="other"), "versions/other.v5.yaml": ticket(5, name="other")})
    assert main(["validate", "-q", str(folder / "ticket.yaml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{folder / 'ticket.yaml'}:16: map: Open -> 'Nowhere'")  # other's
    # versions and the unreadable file are another definition's business: validating the folder reports them
    assert main(["validate", "-q", str(folder)]) == 1
    reported = {line.split(":")[0] for line in capsys.readouterr().out.splitlines()}
    assert reported == {str(folder / "ticket.yaml"), str(folder / "versions" / "broken.yaml"),
                        str(folder / "versions" / "other.v5.yaml")}


def test_versions_of_a_latest_that_cannot_be_read_are_not_called_orphans(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = write(tmp_path, {"ticket.yaml": V2.replace("initial: New", "initial: [New"),
                              "versions/ticket.v1.yaml": ticket(1)})
    assert main(["validate", "-q", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{folder / 'ticket.yaml'}:4: YAML syntax error") and "no ticket.yaml" not in out
