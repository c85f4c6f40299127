"""The public projector API: a user's projector with tables of its own, applied by the runner like ours.

A `TableProjector` names the `Table`s it owns and writes them in `apply(tx, event)` through a
`ProjectorTransaction`; `ProjectorTables` commits those writes with the projector's checkpoint (one
transaction per batch), creates, empties and recreates the tables, and answers `fetch` reads. The SQL of
each backend lives in custom_sqlite.py (also memory://) and custom_postgres.py. Never imports the domain.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import InvalidProjectorError, StoreError
from ..events import StoredEvent
from ..store import EventStore
from .batch import Decoded, Projector
from .queries import ReadModels
from .quarantine import Quarantine

if TYPE_CHECKING:
    from .custom_backend import TablesBackend

Params = Sequence[Any] | Mapping[str, Any]
Row = tuple[Any, ...]

#: projector and table names: one plain lower-case SQL identifier, the same on SQLite and PostgreSQL
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# ours now or later (read models, checkpoints, the registry below, the stores' own tables), and the engines'
RESERVED_PREFIXES = ("read_", "projection_", "projector_", "store_", "schema_", "sqlite_", "pg_")
RESERVED_TABLES = frozenset({"events", "streams", "commands"})


@dataclass(frozen=True, slots=True)
class Table:
    """A table a projector owns: created from `ddl` when missing, emptied by a rebuild, recreated on a new version.

    `ddl` is one statement, or several (the table, then its indexes), written once for SQLite and
    PostgreSQL; `postgresql` replaces it on PostgreSQL when the two need different SQL.
    """

    name: str
    ddl: str | Sequence[str]
    postgresql: str | Sequence[str] | None = None

    def statements(self, dialect: str) -> list[str]:
        chosen = self.postgresql if dialect == "postgresql" and self.postgresql is not None else self.ddl
        return [chosen] if isinstance(chosen, str) else list(chosen)


class ProjectorTransaction(Protocol):
    """What `apply` writes through: one database transaction, committed with the projector's checkpoint.

    SQL takes `?` placeholders with a sequence (or `:name` with a mapping) on every backend; `dialect` is
    "sqlite" (also for memory://) or "postgresql", for the rare statement that must differ. A failing
    statement raises StoreError; the whole batch is then rolled back and the runner retries the event.
    """

    dialect: str

    async def execute(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...


class TableProjector(Protocol):
    """A user's projector: `name`, the `tables` it owns, and `apply` called for every stored event in order.

    `apply` gets each event of the store (every stream, every type) with its data as JSON (decimals as
    strings) at the current schema version, and must be idempotent only in the sense of being
    deterministic: it runs once in effect. An optional `version` attribute (default 1): change it when the
    tables change, and they are dropped, created again and rebuilt from the events.
    """

    # read-only, so that a class attribute `tables = [Table(...)]` (a list) satisfies it
    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> Sequence[Table]: ...

    async def apply(self, tx: ProjectorTransaction, event: StoredEvent) -> None: ...


class CustomProjection:
    """A user's projector as the runner runs it: its batches go to `tables`, not to the read models."""

    __slots__ = ("projector", "name", "tables", "version", "owner")
    views: tuple[str, ...] = ()

    def __init__(self, projector: TableProjector, owner: ProjectorTables) -> None:
        self.projector, self.owner = projector, owner
        self.name = _projector_name(projector)
        self.tables = _tables(self.name, projector)
        version = getattr(projector, "version", 1)
        if type(version) is not int or version < 1:
            raise InvalidProjectorError(self.name, f"version must be a whole number from 1, got {version!r}")
        self.version = version
        if not inspect.iscoroutinefunction(getattr(projector, "apply", None)):
            raise InvalidProjectorError(self.name, "needs an `async def apply(self, tx, event)` method")

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def __repr__(self) -> str:
        return f"CustomProjection({self.name!r}, tables={list(self.table_names)})"


def _projector_name(projector: object) -> str:
    name = getattr(projector, "name", None)
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidProjectorError(str(name) if isinstance(name, str) else type(projector).__name__,
                                    "`name` must be 1 to 63 lower-case letters, digits and _, "
                                    f"not starting with a digit; got {name!r}")
    return name


def _tables(name: str, projector: object) -> tuple[Table, ...]:
    tables = getattr(projector, "tables", None)
    if isinstance(tables, Table):
        tables = (tables,)
    if not isinstance(tables, Sequence) or isinstance(tables, str) or not tables \
            or not all(isinstance(t, Table) for t in tables):
        raise InvalidProjectorError(name, "`tables` must be a non-empty list of Table(name, ddl)")
    seen: set[str] = set()
    for table in tables:
        problem = _table_name_problem(table.name)
        if problem:
            raise InvalidProjectorError(name, problem)
        if table.name in seen:
            raise InvalidProjectorError(name, f"table {table.name!r} is declared twice")
        seen.add(table.name)
        for dialect in ("sqlite", "postgresql"):
            statements = table.statements(dialect)
            if not statements or not all(isinstance(s, str) and s.strip() for s in statements):
                raise InvalidProjectorError(name, f"table {table.name!r} needs its DDL (CREATE TABLE ...) as text")
    return tuple(tables)


def _table_name_problem(table: object) -> str | None:
    if not isinstance(table, str) or not NAME.match(table):
        return (f"table name {table!r} must be 1 to 63 lower-case letters, digits and _, "
                "not starting with a digit")
    if table in RESERVED_TABLES or table.startswith(RESERVED_PREFIXES):
        return (f"table name {table!r} is reserved for order-machine (names starting with "
                f"{', '.join(RESERVED_PREFIXES)} and {', '.join(sorted(RESERVED_TABLES))}); choose another")
    return None


class ProjectorTables:
    """The user's projectors' tables on the store's database: the runner applies, resets and reads checkpoints
    here; `fetch` reads the tables (read-only) from the application.

    Tables and the registry are set up on first use (or by `setup()`, which `Runtime.start()` calls so that
    a projector that cannot run fails the start).
    """

    def __init__(self, backend: TablesBackend) -> None:
        self.backend = backend
        self.projections: list[CustomProjection] = []
        self._ready = False
        self._setup_lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def bind(self, projectors: Iterable[TableProjector], taken: Iterable[str] = ()) -> list[CustomProjection]:
        """Check the projectors and wrap them for a ProjectionRunner (beside `default_projectors()`, whose
        names go in `taken`)."""
        bound = [CustomProjection(p, self) for p in projectors]
        taken = set(taken)
        names = [p.name for p in (*self.projections, *bound)]
        for name in names:
            if name in taken or names.count(name) > 1:
                raise InvalidProjectorError(name, "another projector has this name; choose another")
        claimed: dict[str, str] = {}
        for projection in (*self.projections, *bound):
            for table in projection.table_names:
                if claimed.setdefault(table, projection.name) != projection.name:
                    raise InvalidProjectorError(projection.name,
                                                f"table {table!r} is also claimed by projector {claimed[table]!r}")
        self.projections += bound
        self._ready = False
        return bound

    async def setup(self) -> None:
        """Create what is missing, recreate what changed (see plan_setup); once per process."""
        if self._ready:
            return
        async with self._setup_lock:
            if not self._ready:
                if self.projections:
                    await self.backend.setup(self.projections)
                self._ready = True

    async def checkpoint(self, name: str) -> int:
        await self.setup()
        return await self.backend.checkpoint(name)

    async def apply(self, projection: CustomProjection, events: Sequence[Decoded], after: int) -> int:
        """In one transaction: check the checkpoint is still `after`, apply `events`, store the new checkpoint."""
        await self.setup()
        return await self.backend.apply(projection, events, after)

    async def reset(self, projection: CustomProjection) -> None:
        """Empty the projector's tables and set its checkpoint to 0, in one transaction (a rebuild's start)."""
        await self.setup()
        await self.backend.reset(projection)

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows of a read-only query (`?` or `:name` placeholders) on the projectors' database."""
        await self.setup()
        return await self.backend.fetch(sql, params)

    async def close(self) -> None:
        await self.backend.close()


AnyProjector = Projector | CustomProjection  # what a ProjectionRunner runs: ours, and users' projectors


async def checkpoint_of(read_models: ReadModels, projector: AnyProjector) -> int:
    """The projector's checkpoint, wherever it keeps it (the runner's seam, with apply_batch and reset_projector)."""
    if isinstance(projector, CustomProjection):
        return await projector.owner.checkpoint(projector.name)
    return await read_models.checkpoint(projector.name)


async def apply_batch(read_models: ReadModels, projector: AnyProjector, events: Sequence[Decoded], after: int,
                      quarantine: Quarantine | None = None) -> int:
    """Apply a batch with the projector's checkpoint in one transaction: its own tables', or the read models'
    (with `quarantine`, the record of a stream set aside, committed in the same transaction)."""
    if isinstance(projector, CustomProjection):
        return await projector.owner.apply(projector, events, after)
    if quarantine is not None:
        return await read_models.apply(projector, events, after, quarantine=quarantine)
    return await read_models.apply(projector, events, after)


async def reset_projector(read_models: ReadModels, projector: AnyProjector) -> None:
    """Empty what the projector keeps and set its checkpoint to 0 (a rebuild's first step)."""
    if isinstance(projector, CustomProjection):
        await projector.owner.reset(projector)
    else:
        await read_models.reset(projector)


def open_projector_tables(store: EventStore, **options: Any) -> ProjectorTables:
    """The tables of user projectors beside `store`: its SQLite file, its PostgreSQL schema, or (memory://)
    a private in-memory SQLite database, so a projector's SQL runs the same in tests."""
    scheme = store.url.split(":", 1)[0].lower()
    if scheme in ("memory", "sqlite"):
        from .custom_sqlite import SQLiteTables
        from .sqlite import store_file

        path = store_file(store, "projector tables") if scheme == "sqlite" else None
        return ProjectorTables(SQLiteTables(path, **options))
    if scheme in ("postgres", "postgresql"):
        from .custom_postgres import PostgresTables

        return ProjectorTables(PostgresTables.from_store(store, **options))
    raise StoreError(f"no projector tables for store url {store.url!r}")


def load_projectors(specs: Iterable[str]) -> list[TableProjector]:
    """Projectors named `package.module:Name` (a class, built without arguments, or a ready object)."""
    found: list[TableProjector] = []
    for spec in specs:
        module_name, _, attribute = spec.strip().partition(":")
        if not module_name or not attribute:
            raise InvalidProjectorError(spec, "name a projector as package.module:ClassName")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise InvalidProjectorError(spec, f"cannot load it ({exc}); is its module on PYTHONPATH?") from exc
        found.append(cast(TableProjector, target() if inspect.isclass(target) else target))
    return found
