"""`order-machine validate` through main([...]): exit codes, path:line: message lines, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.cli import main
from order_machine.definition import json_schema

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
BROKEN = ROOT / "tests" / "unit" / "broken_definitions"


def test_valid_definitions_print_an_ok_line_each_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DEFINITIONS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5
    assert f"{DEFINITIONS / 'order.yaml'}: OK (order v1: 7 states, 6 actions, 8 transitions)" in out


def test_the_default_path_is_the_definitions_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate"]) == 0
    assert "definitions/simple.yaml: OK" in capsys.readouterr().out


@pytest.mark.parametrize("broken", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.name)
def test_each_broken_definition_exits_1_with_located_problems_and_no_traceback(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(broken)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines, "no problem printed"
    assert all(line.startswith(f"{broken}:") for line in lines)
    assert all(line.split(":")[1].isdigit() for line in lines), lines
    assert "Traceback" not in captured.out + captured.err
    assert "problem(s) in 1 file(s)" in captured.err


def test_a_folder_with_broken_files_reports_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-q", str(BROKEN), str(DEFINITIONS / "order.yaml")]) == 1
    out = capsys.readouterr().out
    reported = {line.split(":")[0] for line in out.splitlines()}
    assert reported == {str(p) for p in BROKEN.glob("*.yaml")}


def test_a_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_a_folder_without_definitions_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "no *.yaml or *.yml files" in capsys.readouterr().err


def test_write_schema_regenerates_the_schema_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert main(["validate", "--write-schema", "--schema", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == json_schema()
    assert main(["validate", "-q", "--check-schema", "--schema", str(target), str(DEFINITIONS)]) == 0


def test_check_schema_fails_on_a_stale_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["validate", "-q", "--check-schema", "--schema", str(stale), str(DEFINITIONS)]) == 1
    assert "stale" in capsys.readouterr().out


def test_a_billion_laughs_file_fails_fast_in_bounded_memory(capsys: pytest.CaptureFixture[str]) -> None:
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    assert main(["validate", str(BROKEN / "yaml_alias_bomb.yaml")]) == 1
    assert time.monotonic() - started < 10  # loose: it takes well under a second; the bomb took minutes
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, grown_mb  # the unbounded expansion ate 3.6 GB
    out = capsys.readouterr().out
    assert "expands to more than" in out and "Traceback" not in out


def test_a_file_over_1_mib_is_one_problem_line_naming_size_and_limit(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: big\n" + b"# padding\n" * 120_000)
    assert main(["validate", str(big)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{big}: the file is 1,200,010 bytes; a definition may be at most 1,048,576 bytes (1 MiB) "
                   "(hint: split it into several definitions)"]
