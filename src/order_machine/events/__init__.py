"""Events: the stored envelope, the machine's own notifications, the order's and the workflows' events.

Owns event names, schema versions, JSON encoding and upcasting. Imports nothing of the project's.
"""

from .envelope import JSON_SCALARS, MachineInitialised, NewEvent, StateChanged, StoredEvent, to_json, utcnow
from .orders import (
    EVENT_TYPES, LEGACY_TRANSITIONS, TRANSITION_EVENTS, UPCASTERS, OrderCancelled, OrderConfirmed, OrderCreated,
    OrderDelivered, OrderEvent, OrderItem, OrderItemAdded, OrderProcessingStarted, OrderReturned, OrderShipped,
    OrderTransitioned, build_transition, current_schema_version, decode, encode, is_transition, transition_class,
    upcast,
)
from .workflows import (
    WORKFLOW_EVENT_TYPES, WorkflowEvent, WorkflowMigrated, WorkflowStarted, WorkflowTransitioned, decode_workflow,
    encode_workflow, split_workflow_stream, workflow_stream,
)

__all__ = [
    "EVENT_TYPES", "JSON_SCALARS", "LEGACY_TRANSITIONS", "TRANSITION_EVENTS", "UPCASTERS", "WORKFLOW_EVENT_TYPES",
    "MachineInitialised", "NewEvent", "OrderCancelled", "OrderConfirmed", "OrderCreated", "OrderDelivered",
    "OrderEvent", "OrderItem", "OrderItemAdded", "OrderProcessingStarted", "OrderReturned", "OrderShipped",
    "OrderTransitioned", "StateChanged", "StoredEvent", "WorkflowEvent", "WorkflowMigrated", "WorkflowStarted",
    "WorkflowTransitioned", "build_transition", "current_schema_version", "decode", "decode_workflow", "encode",
    "encode_workflow", "is_transition", "split_workflow_stream", "to_json", "transition_class", "upcast", "utcnow",
    "workflow_stream",
]
