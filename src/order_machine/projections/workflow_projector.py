"""The workflow projector: the `workflows` view, every instance of every definition with its state,
version, data and the definition version it runs on. Knows `events`, rows and the batch types; never the domain.
"""

from __future__ import annotations

from datetime import datetime

from ..events import StoredEvent, WorkflowMigrated, WorkflowStarted, split_workflow_stream
from .batch import WORKFLOW_TYPES, EventData, ProjectionConflict
from .changes import Changes
from .rows import WorkflowRow

_STARTED, _MIGRATED = WorkflowStarted.__name__, WorkflowMigrated.__name__
_parse_time = datetime.fromisoformat


class WorkflowProjector:
    """Keeps the `workflows` view: every instance of every definition, its state, version and data."""

    name = "workflows"
    views: tuple[str, ...] = ("workflows",)
    reads_orders = False
    reads_workflows = True

    def apply(self, changes: Changes, stored: StoredEvent, data: EventData) -> None:
        kind = stored.type
        if kind not in WORKFLOW_TYPES:
            return
        stream_id = stored.stream_id
        ids = split_workflow_stream(stream_id)
        if ids is None:
            raise ProjectionConflict(f"{kind} at position {stored.position} in stream {stream_id!r}, "
                                     "which is not a workflow's (<definition>/<id>)")
        row = changes.workflow(stream_id)
        at = _parse_time(data["at"])
        if kind == _STARTED:
            if row is not None or stored.version != 1:
                raise ProjectionConflict(f"workflow {stream_id!r}: WorkflowStarted at version {stored.version}, "
                                         f"but the read model has version {row.version if row else 0}")
            changes.put_workflow(WorkflowRow(
                stream_id, ids[0], ids[1], int(data["definition_version"]), str(data["state"]), 1,
                dict(data.get("data") or {}), at, at, stored.position, stored.position))
            return
        if row is None:
            raise ProjectionConflict(f"workflow {stream_id!r}: {kind} at position {stored.position} "
                                     "but the instance was never started")
        if stored.version != row.version + 1:
            raise ProjectionConflict(f"workflow {stream_id!r}: {kind} has version {stored.version}, "
                                     f"the read model is at version {row.version}")
        if kind == _MIGRATED:
            row.definition_version = int(data["to_version"])
        else:
            recorded = data.get("recorded")
            if recorded:
                row.data.update(recorded)
            for name in data.get("cleared") or ():
                row.data.pop(name, None)
        row.state = str(data["target"])
        row.version, row.position, row.updated_at = stored.version, stored.position, at
        changes.dirty_workflows[stream_id] = row
