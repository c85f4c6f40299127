"""The package's public names are deliberate: adding or removing one is a visible change; and every name
the README and docs/ import from order_machine is there."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import order_machine

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

EXPECTED = {
    "Runtime", "Settings", "bootstrap", "create_app", "EventBus", "EventStore", "open_store",
    "AddOrderItem", "CancelOrder", "CommandResult", "ConfirmOrder", "CreateOrder", "DeliverOrder", "PerformAction",
    "ReturnOrder", "ShipOrder", "StartProcessing", "UpdateOrderStatus", "GetOrder", "GetOrderSummary",
    "GetOrdersByCustomer", "GetOrdersByStatus", "OrderApplicationService", "OrderCommandService",
    "OrderHistoryEntry", "OrderItemReadModel", "OrderReadModel", "OrderSummaryReadModel", "Page", "ReadModels",
    "WorkflowReadModel", "ConsistencyChecker", "ConsistencyReport",
    "MachineInitialised", "NewEvent", "OrderCancelled", "OrderConfirmed", "OrderCreated", "OrderDelivered",
    "OrderEvent", "OrderItem", "OrderItemAdded", "OrderProcessingStarted", "OrderReturned", "OrderShipped",
    "OrderTransitioned", "StateChanged", "StoredEvent", "WorkflowEvent", "WorkflowMigrated", "WorkflowStarted",
    "WorkflowTransitioned",
    "ProjectorTables", "ProjectorTransaction", "Table", "TableProjector",
    "Definition", "DefinitionBuilder", "Machine", "Order", "OrderAction", "OrderState", "Transition", "Workflow",
    "load_definition", "load_definitions", "order_machine", "parse_definition", "validate_definition",
    "ConcurrencyError", "DefinitionError", "InvalidCommandError", "InvalidProjectorError", "NotInitialisedError",
    "OrderExistsError", "OrderMachineError", "OrderNotFoundError", "ProjectionError", "StoreError",
    "StreamQuarantinedError",
    "TransitionNotAllowedError",
}


def test_the_public_api_is_pinned() -> None:
    assert set(order_machine.__all__) == EXPECTED
    assert len(order_machine.__all__) == len(EXPECTED)  # none listed twice
    assert all(hasattr(order_machine, name) for name in EXPECTED)


def test_importing_the_package_connects_to_nothing_and_loads_no_driver_or_framework() -> None:
    code = ("import sys, order_machine; "
            "print(sorted(m for m in ('psycopg', 'fastapi', 'uvicorn', 'graphviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_create_app_is_the_api_packages_once_asked_for() -> None:
    from order_machine import create_app
    from order_machine.api import create_app as the_api_one

    assert create_app is the_api_one
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        getattr(order_machine, "nothing_here")


def documented_imports() -> list[tuple[str, str, str]]:
    """(page, module, name) of every `from order_machine... import name` in the pages' Python examples."""
    found = []
    for page in PAGES:
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("order_machine"):
                    found += [(page.name, node.module or "", alias.name) for alias in node.names]
    return found


def test_every_name_the_docs_import_from_order_machine_exists() -> None:
    imports = documented_imports()
    assert any(page == "README.md" for page, _, _ in imports)
    for page, module, name in imports:
        assert hasattr(importlib.import_module(module), name), f"{page}: from {module} import {name}"
        if module == "order_machine":
            assert name in order_machine.__all__, f"{page} imports {name}, which order_machine does not export"
