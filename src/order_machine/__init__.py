"""order-machine: order workflows as explicit, event-sourced state machines.

The public API; everything else is an implementation detail. Importing it connects to nothing.
"""

from __future__ import annotations

from .bootstrap import Runtime, bootstrap
from .bus import EventBus
from .commands import (
    AddOrderItem, CancelOrder, CommandResult, ConfirmOrder, CreateOrder, DeliverOrder, PerformAction, ReturnOrder,
    ShipOrder, StartProcessing, UpdateOrderStatus,
)
from .config import Settings
from .builder import DefinitionBuilder
from .definition import Definition, load_definition, load_definitions, parse_definition, validate_definition
from .errors import (
    ConcurrencyError, DefinitionError, InvalidCommandError, NotInitialisedError, OrderExistsError,
    OrderMachineError, OrderNotFoundError, ProjectionError, StoreError, TransitionNotAllowedError,
)
from .events import OrderItem, StoredEvent
from .machine import Machine, Transition
from .order import Order, OrderAction, OrderState, order_machine
from .service import OrderApplicationService, OrderCommandService
from .store import EventStore, open_store
from .workflow import Workflow

__all__ = [
    "AddOrderItem", "CancelOrder", "CommandResult", "ConcurrencyError", "ConfirmOrder", "CreateOrder",
    "Definition", "DefinitionBuilder", "DefinitionError", "DeliverOrder", "EventBus", "EventStore",
    "InvalidCommandError", "Machine", "NotInitialisedError", "Order", "OrderAction", "OrderApplicationService",
    "OrderCommandService", "OrderExistsError", "OrderItem", "OrderMachineError", "OrderNotFoundError",
    "OrderState", "PerformAction", "ProjectionError", "ReturnOrder", "Runtime", "Settings", "ShipOrder",
    "StartProcessing", "StoreError", "StoredEvent", "Transition", "TransitionNotAllowedError",
    "UpdateOrderStatus", "Workflow", "bootstrap", "load_definition", "load_definitions", "open_store",
    "order_machine", "parse_definition", "validate_definition",
]
