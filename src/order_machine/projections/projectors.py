"""The read side's built-in projectors, in the order the runner applies them.

The projector Protocol and the batch it runs on are in batch.py, the unit of work in changes.py, the rows
in rows.py, the projectors in order_projectors.py and workflow_projector.py. The few names tests import
from here stay importable here.
"""

from __future__ import annotations

from .batch import EventFailed, Projector, decode_batch
from .order_projectors import INITIAL_STATE, OrderHistoryProjector, OrderProjector, project_order
from .workflow_projector import WorkflowProjector


def default_projectors(initial_state: str = INITIAL_STATE) -> list[Projector]:
    """The projectors of the read side, in the order the runner applies them."""
    return [OrderProjector(initial_state), OrderHistoryProjector(initial_state), WorkflowProjector()]


__all__ = ["EventFailed", "WorkflowProjector", "decode_batch", "default_projectors", "project_order"]
