"""The package's public names are deliberate: adding or removing one is a visible change."""

import subprocess
import sys

import order_machine

EXPECTED = {
    "AddOrderItem", "CancelOrder", "CommandResult", "ConcurrencyError", "ConfirmOrder", "CreateOrder",
    "Definition", "DefinitionBuilder", "DefinitionError", "DeliverOrder", "EventBus", "EventStore",
    "InvalidCommandError", "Machine", "NotInitialisedError", "Order", "OrderAction", "OrderApplicationService",
    "OrderCommandService", "OrderExistsError", "OrderItem", "OrderMachineError", "OrderNotFoundError",
    "OrderState", "PerformAction", "ProjectionError", "ReturnOrder", "Runtime", "Settings", "ShipOrder",
    "StartProcessing", "StoreError", "StoredEvent", "Transition", "TransitionNotAllowedError",
    "UpdateOrderStatus", "Workflow", "bootstrap", "load_definition", "load_definitions", "open_store",
    "order_machine", "parse_definition", "validate_definition",
}


def test_the_public_api_is_pinned() -> None:
    assert set(order_machine.__all__) == EXPECTED
    assert all(hasattr(order_machine, name) for name in EXPECTED)


def test_importing_the_package_connects_to_nothing_and_loads_no_driver_or_framework() -> None:
    code = ("import sys, order_machine; "
            "print(sorted(m for m in ('psycopg', 'fastapi', 'uvicorn', 'graphviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
