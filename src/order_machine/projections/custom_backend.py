"""What the SQLite and PostgreSQL backends of user projectors share: the registry of who owns which
table and the plan that sets tables up, the batch loop that hands events to `apply`, and their Protocol.

Knows custom.py's API and projectors.py's batch types; no driver, no domain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidProjectorError, StoreError
from ..events import WORKFLOW_EVENT_TYPES, StoredEvent, current_schema_version
from .batch import Decoded, EventFailed

if TYPE_CHECKING:
    from .custom import CustomProjection, Params, ProjectorTransaction, Row

#: the registry both backends keep: which projector owns which tables, created at which version
REGISTRY = "projector_tables"

_TRANSACTION_CONTROL = re.compile(r"\s*(begin|commit|end|rollback|abort|start|savepoint|release)\b", re.I)


@dataclass(frozen=True, slots=True)
class Registered:
    """What the registry holds for one projector: the version and tables it was created with."""

    version: int
    tables: tuple[str, ...]


@dataclass(slots=True)
class SetupPlan:
    """What a backend does, in one transaction, so the tables match the projectors declared now."""

    drop: list[str] = field(default_factory=list)
    create: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (projector, table, statements)
    record: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)  # projectors whose checkpoint goes back to 0


class TablesBackend(Protocol):
    """The SQL side of ProjectorTables (custom_sqlite.SQLiteTables, custom_postgres.PostgresTables)."""

    dialect: str

    async def setup(self, projections: Sequence[CustomProjection]) -> None: ...

    async def checkpoint(self, name: str) -> int: ...

    async def apply(self, projection: CustomProjection, events: Sequence[Decoded], after: int) -> int: ...

    async def reset(self, projection: CustomProjection) -> None: ...

    async def fetch(self, sql: str, params: Params) -> list[Row]: ...

    async def close(self) -> None: ...


def plan_setup(projections: Sequence[CustomProjection], existing: Iterable[str],
               registry: Mapping[str, Registered]) -> SetupPlan:
    """The drops, creations and checkpoint resets that make the database hold each projector's tables.

    A projector seen for the first time, or whose version or tables changed, or one of whose tables is
    missing, gets all its tables (re)created empty and its checkpoint set to 0, so it is rebuilt from
    the events. A table that exists but that no projector owns, or that another projector owns, is refused.
    """
    existing = set(existing)
    owners = {table: name for name, entry in registry.items() for table in entry.tables}
    plan = SetupPlan()
    for projection in projections:
        for table in projection.table_names:
            owner = owners.get(table)
            if owner is not None and owner != projection.name:
                raise InvalidProjectorError(projection.name, f"table {table!r} belongs to projector {owner!r}")
            if owner is None and table in existing:
                raise InvalidProjectorError(
                    projection.name, f"table {table!r} already exists and no projector owns it: choose another "
                                     "name, or drop that table if it is yours to drop")
        entry = registry.get(projection.name)
        wanted = Registered(projection.version, projection.table_names)
        if entry == wanted and all(t in existing for t in wanted.tables):
            continue
        if entry is not None:
            plan.drop += [t for t in dict.fromkeys((*entry.tables, *wanted.tables)) if t in existing]
        plan.create += [(projection.name, t.name, t.statements(projection.owner.dialect)) for t in projection.tables]
        plan.record.append((projection.name, wanted.version, wanted.tables))
        plan.reset.append(projection.name)
    return plan


def check_created(plan: SetupPlan, existing: Iterable[str]) -> None:
    """Raise when a projector's DDL ran but did not create the table it declared."""
    existing = set(existing)
    for projector, table, _ in plan.create:
        if table not in existing:
            raise InvalidProjectorError(projector, f"its DDL for table {table!r} did not create a table of that name")


def refuse_transaction_control(projector: str, sql: str) -> None:
    """Raise before a projector's statement would begin, commit or roll back the batch's transaction itself."""
    if _TRANSACTION_CONTROL.match(sql):
        raise StoreError(f"projector {projector!r}: {sql.split()[0].upper()} is not a projector's to run: "
                         "each batch commits with its checkpoint")


def encode_tables(tables: Sequence[str]) -> str:
    return json.dumps(list(tables))


def decode_tables(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


async def apply_events(projection: CustomProjection, tx: ProjectorTransaction, events: Sequence[Decoded]) -> int:
    """Hand each event to the user's `apply`; raise EventFailed naming the first that failed. Returns the last position."""
    apply = projection.projector.apply
    for index, (stored, data) in enumerate(events):
        if isinstance(data, BaseException):  # the data could not be upcast: it fails here as in every projector
            raise EventFailed(index, stored.position, data)
        event = stored if data is None or data is stored.data else _upcast(stored, data)
        try:
            await apply(tx, event)
        except Exception as exc:
            raise EventFailed(index, stored.position, exc) from exc
    return events[-1][0].position


def _upcast(stored: StoredEvent, data: Mapping[str, Any]) -> StoredEvent:
    """The stored event with the data the runner upcast, at the schema version that data is at now."""
    workflow = WORKFLOW_EVENT_TYPES.get(stored.type)
    version = workflow.schema_version if workflow is not None else current_schema_version(stored.type)
    return stored._replace(data=data, schema_version=version)
