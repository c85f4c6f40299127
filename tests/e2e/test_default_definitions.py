"""Where definitions are found when none are named: one rule (order.default_definitions_dir) for the library,
Settings and the commands, ending at the definitions shipped in the package (a link to definitions/)."""

from __future__ import annotations

import shutil
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

import order_machine
from order_machine.cli import main
from order_machine.config import Settings
from order_machine.order import default_definitions_dir, order_machine as compiled_order_machine

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
PACKAGED = Path(order_machine.__file__).parent / "definitions"


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no variable naming a definitions folder."""
    for name in ("ORDER_MACHINE_DEFINITIONS", "ORDER_MACHINE_DEFINITIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_packaged_definitions_are_the_top_level_folder_itself() -> None:
    # one copy that cannot drift: the package's folder is a symlink the build follows
    link = ROOT / "src" / "order_machine" / "definitions"
    assert link.is_symlink() and link.resolve() == DEFINITIONS.resolve()


def test_the_wheel_takes_every_file_of_the_definitions_folder() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["order_machine"]
    left_out = [p.name for p in DEFINITIONS.iterdir() if not any(fnmatch(f"definitions/{p.name}", g) for g in patterns)]
    assert left_out == []


def test_without_a_variable_or_a_local_folder_the_packaged_definitions_are_used(empty: Path) -> None:
    assert default_definitions_dir() == PACKAGED
    assert (PACKAGED / "order.yaml").is_file()
    assert Settings().definitions_dir == PACKAGED


def test_a_local_folder_with_order_yaml_comes_before_the_packaged_one(empty: Path) -> None:
    shutil.copytree(DEFINITIONS, empty / "definitions")
    assert default_definitions_dir().resolve() == (empty / "definitions").resolve()


def test_a_local_folder_of_ones_own_workflows_is_used_and_orders_run_on_the_packaged_order_yaml(
        empty: Path) -> None:
    (empty / "definitions").mkdir()
    shutil.copy(DEFINITIONS / "payment.yaml", empty / "definitions")
    assert default_definitions_dir().resolve() == (empty / "definitions").resolve()
    compiled_order_machine.cache_clear()
    assert compiled_order_machine().definition.name == "order"  # from the package: the folder has no order.yaml


def test_an_empty_local_folder_is_passed_over(empty: Path) -> None:
    (empty / "definitions").mkdir()
    assert default_definitions_dir() == PACKAGED


def test_the_variable_comes_first(empty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(DEFINITIONS, empty / "definitions")
    monkeypatch.setenv("ORDER_MACHINE_DEFINITIONS", str(empty / "elsewhere"))
    assert default_definitions_dir() == empty / "elsewhere"
    assert Settings().definitions_dir == empty / "elsewhere"


def test_validate_demo_and_diagram_fall_back_to_the_packaged_definitions(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate"]) == 0
    assert f"{PACKAGED / 'order.yaml'}: OK" in capsys.readouterr().out
    assert main(["demo"]) == 0
    assert f"from {PACKAGED / 'order.yaml'}" in capsys.readouterr().out
    assert main(["diagram", "order", "--format", "mmd", "--out", "out"]) == 0
    assert (empty / "out" / "order.mmd").is_file()


def test_validate_still_checks_a_local_definitions_folder_whatever_it_holds(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (empty / "definitions").mkdir()
    shutil.copy(DEFINITIONS / "payment.yaml", empty / "definitions")
    assert main(["validate"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("definitions/payment.yaml: OK (payment v1: 6 states, 6 actions, 8 transitions)")
