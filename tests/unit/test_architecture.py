"""The dependency contract of DESIGN.md, checked on the source: who may import what."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "order_machine"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def direct_imports(path: Path) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def closure(start: str) -> set[str]:
    """Every module reachable by imports from `start`, external top-level names included."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in MODULES:
            todo.extend(direct_imports(MODULES[name]))
    return seen


DOMAIN = ["errors", "definition", "builder", "events", "machine", "workflow", "order"]
FORBIDDEN_FOR_DOMAIN = ["sqlite3", "psycopg", "fastapi", "uvicorn", "graphviz",
                        "order_machine.store", "order_machine.bus", "order_machine.service",
                        "order_machine.api", "order_machine.projections", "order_machine.cli"]


@pytest.mark.parametrize("module", DOMAIN)
def test_the_domain_never_imports_drivers_frameworks_or_adapters(module: str) -> None:
    reached = closure(f"order_machine.{module}")
    bad = sorted(r for r in reached for f in FORBIDDEN_FOR_DOMAIN if r == f or r.startswith(f + "."))
    assert not bad, f"order_machine.{module} reaches {bad}"


def test_only_the_machine_module_imports_transitions() -> None:
    importers = sorted(m for m, p in MODULES.items() if any(i.split(".")[0] == "transitions" for i in direct_imports(p)))
    assert importers == ["order_machine.machine"]


def test_only_the_diagram_module_imports_graphviz() -> None:
    importers = sorted(m for m, p in MODULES.items() if any(i.split(".")[0] == "graphviz" for i in direct_imports(p)))
    assert set(importers) <= {"order_machine.diagrams"} | {m for m in MODULES if m.startswith("order_machine.diagrams.")}


@pytest.mark.parametrize("adapter", ["order_machine.store", "order_machine.bus", "order_machine.projections"])
def test_store_bus_and_projections_know_events_not_the_domain(adapter: str) -> None:
    names = [m for m in MODULES if m == adapter or m.startswith(adapter + ".")]
    for name in names:
        imported = direct_imports(MODULES[name])
        bad = sorted(i for i in imported
                     for f in ("order_machine.order", "order_machine.machine", "order_machine.workflow",
                               "order_machine.service", "order_machine.api")
                     if i == f or i.startswith(f + "."))
        assert not bad, f"{name} imports {bad}"


def test_only_the_expressions_module_imports_the_cel_library() -> None:
    importers = sorted(m for m, p in MODULES.items() if any(i.split(".")[0] == "cel" for i in direct_imports(p)))
    assert importers == ["order_machine.expressions"]


@pytest.mark.parametrize("first", ["order_machine.expressions", "cel"])
def test_the_cel_library_loads_once_whichever_is_imported_first(first: str) -> None:
    # expressions loads only the library's compiled module (its package also imports a whole CLI)
    other = "cel" if first != "cel" else "order_machine.expressions"
    code = (f"import {first}, {other}, sys\n"
            "from order_machine.expressions import compile_expression\n"
            "import cel\n"
            "assert compile_expression('a > 1').evaluate({'a': 2}) is True\n"
            "assert cel.compile('1 < 2').execute() is True\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(SRC.parent)})
