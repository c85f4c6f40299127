"""order-machine: order workflows as explicit, event-sourced state machines.

The public API; everything else is an implementation detail. Importing it connects to nothing, and
loads neither FastAPI nor a database driver (`create_app` imports FastAPI when first asked for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bootstrap import Runtime, bootstrap
from .bus import EventBus
from .commands import (
    AddOrderItem, CancelOrder, CommandResult, ConfirmOrder, CreateOrder, DeliverOrder, GetOrder, GetOrdersByCustomer,
    GetOrdersByStatus, GetOrderSummary, PerformAction, ReturnOrder, ShipOrder, StartProcessing, UpdateOrderStatus,
)
from .config import Settings
from .builder import DefinitionBuilder
from .definition import Definition, load_definition, load_definitions, parse_definition, validate_definition
from .errors import (
    ConcurrencyError, DefinitionError, InvalidCommandError, InvalidProjectorError, NotInitialisedError,
    OrderExistsError, OrderMachineError, OrderNotFoundError, ProjectionError, StoreError, StreamQuarantinedError,
    TransitionNotAllowedError,
)
from .events import (
    MachineInitialised, NewEvent, OrderCancelled, OrderConfirmed, OrderCreated, OrderDelivered, OrderEvent, OrderItem,
    OrderItemAdded, OrderProcessingStarted, OrderReturned, OrderShipped, OrderTransitioned, StateChanged, StoredEvent,
    WorkflowEvent, WorkflowMigrated, WorkflowStarted, WorkflowTransitioned,
)
from .machine import Machine, Transition
from .order import Order, OrderAction, OrderState, order_machine
from .projections import (
    ConsistencyChecker, ConsistencyReport, OrderHistoryEntry, OrderItemReadModel, OrderReadModel,
    OrderSummaryReadModel, Page, ProjectorTables, ProjectorTransaction, ReadModels, Table, TableProjector,
    WorkflowReadModel,
)
from .service import OrderApplicationService, OrderCommandService
from .store import EventStore, open_store
from .workflow import Workflow

if TYPE_CHECKING:
    from .api import create_app


def __getattr__(name: str) -> Any:
    # the HTTP API needs FastAPI: imported on first use, so `import order_machine` stays without it
    if name == "create_app":
        from .api import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # running it
    "Runtime", "Settings", "bootstrap", "create_app", "EventBus", "EventStore", "open_store",
    # commands, queries and what they answer
    "AddOrderItem", "CancelOrder", "CommandResult", "ConfirmOrder", "CreateOrder", "DeliverOrder", "PerformAction",
    "ReturnOrder", "ShipOrder", "StartProcessing", "UpdateOrderStatus", "GetOrder", "GetOrderSummary",
    "GetOrdersByCustomer", "GetOrdersByStatus", "OrderApplicationService", "OrderCommandService",
    "OrderHistoryEntry", "OrderItemReadModel", "OrderReadModel", "OrderSummaryReadModel", "Page", "ReadModels",
    "WorkflowReadModel", "ConsistencyChecker", "ConsistencyReport",
    # events
    "MachineInitialised", "NewEvent", "OrderCancelled", "OrderConfirmed", "OrderCreated", "OrderDelivered",
    "OrderEvent", "OrderItem", "OrderItemAdded", "OrderProcessingStarted", "OrderReturned", "OrderShipped",
    "OrderTransitioned", "StateChanged", "StoredEvent", "WorkflowEvent", "WorkflowMigrated", "WorkflowStarted",
    "WorkflowTransitioned",
    # your own projectors
    "ProjectorTables", "ProjectorTransaction", "Table", "TableProjector",
    # definitions, machines, the domain
    "Definition", "DefinitionBuilder", "Machine", "Order", "OrderAction", "OrderState", "Transition", "Workflow",
    "load_definition", "load_definitions", "order_machine", "parse_definition", "validate_definition",
    # errors
    "ConcurrencyError", "DefinitionError", "InvalidCommandError", "InvalidProjectorError", "NotInitialisedError",
    "OrderExistsError", "OrderMachineError", "OrderNotFoundError", "ProjectionError", "StoreError",
    "StreamQuarantinedError",
    "TransitionNotAllowedError",
]
