"""Helpers for the command-line tests: run `order-machine` in-process through main([...]) in a temporary
working directory, and capture its exit code, stdout and stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from order_machine.cli import main

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class CLI:
    """`order-machine` as a test calls it: in-process, with the repository's definitions."""

    def __init__(self, capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
        self.capsys, self.workdir = capsys, workdir

    def __call__(self, *argv: str) -> Run:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse exits on a usage error
            code = exc.code if isinstance(exc.code, int) else 2
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """Runs in an empty working directory, so the default database is ./orders.db there."""
    for name in ("ORDER_MACHINE_DB_URL", "ORDER_MACHINE_DEFINITIONS", "ORDER_MACHINE_DEFINITIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORDER_MACHINE_DEFINITIONS", str(DEFINITIONS))
    monkeypatch.setenv("ORDER_MACHINE_DURABILITY", "fast")  # tests need no fsync per commit
    monkeypatch.chdir(tmp_path)
    return CLI(capsys, tmp_path)


def assert_one_line_error(run: Run, *words: str) -> None:
    """Failed with exit 1, printing exactly one line on stderr (no traceback) that names `words`."""
    assert run.code == 1, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("error: ") and "Traceback" not in run.err
    for word in words:
        assert word in lines[0], (word, lines[0])
