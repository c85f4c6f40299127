"""PostgreSQL event store (psycopg 3 async, connection pool): a global order without gaps or table locks.

Knows events and errors, never the domain's classes. The DDL and the append_events() function are in pg_schema.

Positions. Every event's position is `writing transaction id * 65536 + its ordinal in that
transaction`, computed from `pg_current_xact_id()` (a 64-bit xid8 that never wraps) when the row is
inserted. Readers (`read_batch`, `read_all`, `last_position`) see only rows whose transaction id is
below `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still in flight: every
transaction below it has committed or rolled back, and every transaction that commits later has a
larger id (at least that oldest one), so a follower that remembers the last position it read never skips a late commit and
never sees an event twice. Writers take no table lock; appends to the same stream wait on that
stream's row in `streams` (the optimistic-concurrency check), appends to different streams run in
parallel. Positions are therefore increasing in reader order but NOT dense (expect large gaps), and
they are known at append time (`AppendResult.position`), so read-your-writes can wait for them.
Costs of the choice: a long-running transaction anywhere in the cluster delays followers (never
loses events: keep idle_in_transaction_session_timeout set); at most 65,536 events per transaction;
positions stay below 2**63 until the cluster has used 2**47 transaction ids.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from ..errors import ConcurrencyError, StoreError
from ..events import NewEvent, StoredEvent
from . import AppendResult, read_in_batches
from .codec import check_stream_id, dumps, encode_event
from . import pg_schema
from .pg_schema import POSITION_SCALE

T = TypeVar("T")

Conn = psycopg.AsyncConnection[TupleRow]

_XMIN_POSITION = f"pg_snapshot_xmin(pg_current_snapshot())::text::bigint * {POSITION_SCALE}"
_EVENT_COLUMNS = "position, stream_id, version, type, schema_version, data, metadata, recorded_at"


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """Operational settings; each may also be given in the URL query (`?schema=om&pool_size=20`)."""

    schema: str = "order_machine"
    pool_size: int = 10
    pool_min_size: int = 1
    pool_timeout: float = 30.0  # seconds to wait for a free pooled connection
    connect_timeout: int = 10  # seconds
    statement_timeout_ms: int = 30_000  # 0 = none
    idle_in_transaction_timeout_ms: int = 60_000  # 0 = none
    auto_upgrade: bool = True  # create/migrate the schema on first use; False: refuse an old schema


def _parse_options(url: str, given: Mapping[str, Any]) -> tuple[str, PostgresOptions]:
    """Split our options out of the URL query (libpq would refuse them) and merge explicit ones."""
    known = {f.name: f.type for f in fields(PostgresOptions)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise StoreError(f"unknown PostgreSQL store option(s) {unknown}; known: {sorted(known)}")
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in known:
            values[key] = value
        else:
            kept.append((key, value))
    values.update(given)
    converted: dict[str, Any] = {}
    for key, value in values.items():
        kind = known[key]
        try:
            if kind == "bool" and isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                converted[key] = value.lower() in ("1", "true", "yes")
            else:
                converted[key] = {"str": str, "int": int, "float": float, "bool": bool}[str(kind)](value)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"PostgreSQL store option {key}={value!r} is not a valid {kind}") from exc
    options = PostgresOptions(**converted)
    pg_schema.quote_schema(options.schema)
    if options.pool_size < 1 or not 0 <= options.pool_min_size <= options.pool_size:
        raise StoreError(f"pool_size must be >= 1 and pool_min_size within 0..pool_size, got {options}")
    if options.statement_timeout_ms < 0 or options.idle_in_transaction_timeout_ms < 0:
        raise StoreError("statement_timeout_ms and idle_in_transaction_timeout_ms must be >= 0 (0 = none)")
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)), options


async def _append(
    store: PostgresEventStore, conn: Conn, ordinal: int, stream_id: str, events: Sequence[NewEvent],
    expected_version: int, command_id: str | None, result: Mapping[str, Any] | None,
) -> AppendResult:
    """One call of append_events() (store/pg_schema.py): the whole append in one statement."""
    n, recorded = len(events), dict(result or {})
    if ordinal + n > POSITION_SCALE:
        raise StoreError(f"at most {POSITION_SCALE} events per transaction, got {ordinal + n}")
    check_stream_id(stream_id)
    encoded = [encode_event(stream_id, e, command_id) for e in events]
    result_json = dumps(recorded, f"the result of command {command_id!r}")
    # one JSON document for all the events: far cheaper to send than five arrays (data is JSON text already)
    batch = ",".join(f'{{"t":{json.dumps(e.type)},"v":{e.schema_version},"d":{e.data},"m":{e.metadata},'
                     f'"r":"{e.recorded_at}"}}' for e in encoded)
    try:
        cur = await conn.execute(
            f"SELECT * FROM {store.quoted_schema}.append_events(%s, %s, %s, %s::jsonb, %s, %s::jsonb)",
            (stream_id, expected_version, ordinal, f"[{batch}]", command_id, result_json),
        )
        row = await cur.fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate == pg_schema.CONCURRENCY_SQLSTATE:
            raise ConcurrencyError(stream_id, expected_version, int(exc.diag.message_detail or -1)) from exc
        if isinstance(exc, psycopg.errors.UniqueViolation) and exc.diag.constraint_name == "events_stream_version_key":
            # unreachable while every writer goes through append_events(); the last line of defence
            raise ConcurrencyError(stream_id, expected_version, await store.stream_version(stream_id)) from exc
        raise
    assert row is not None
    version, position, duplicate, first = row
    return AppendResult(stream_id, int(version), int(position), bool(duplicate),
                        dict(first) if duplicate else recorded)


class PostgresTransaction:
    """Appends that commit or roll back together, in one database transaction (see `transaction()`)."""

    def __init__(self, store: PostgresEventStore, conn: Conn) -> None:
        self._store, self._conn = store, conn
        self._ordinal = 0  # next ordinal of an event in this transaction

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        command_id: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Same contract as `PostgresEventStore.append`, inside this transaction.

        A ConcurrencyError aborts the transaction: leave the block (it rolls back) and retry the whole of it.
        """
        appended = await _append(self._store, self._conn, self._ordinal, stream_id, events, expected_version,
                                 command_id, result)
        if not appended.duplicate:
            self._ordinal += len(events)
        return appended


class PostgresEventStore:
    """The event store in a PostgreSQL schema; safe for many processes on many hosts at once."""

    def __init__(self, url: str, conninfo: str, options: PostgresOptions) -> None:
        self.url = url
        self.options = options
        self.schema = options.schema
        self.quoted_schema = pg_schema.quote_schema(options.schema)
        self._conninfo = conninfo
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
        self._where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._open_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresEventStore:
        """A store for `postgresql://user:password@host:port/db[?schema=...]`; connects on first use."""
        try:
            conninfo, parsed = _parse_options(url, options)
            return cls(url, conninfo, parsed)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"invalid PostgreSQL URL: {exc}") from exc

    def __repr__(self) -> str:
        return f"PostgresEventStore({self._where}, schema={self.schema!r})"

    # ------------------------------------------------------------------ connections and schema

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        return StoreError(f"PostgreSQL {self._where} (schema {self.schema}): {doing} failed: {exc}".strip())

    async def connect(self) -> Conn:
        """A new autocommit connection outside the pool (for session state such as advisory-lock leases)."""
        with self._translated("connecting"):
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=self.options.connect_timeout,
                application_name="order-machine",
            )

    async def upgrade(self) -> list[int]:
        """Create or migrate the schema to the latest version; returns the migration versions applied."""
        return await self._on_own_connection(pg_schema.upgrade, "upgrading the schema")

    async def schema_version(self) -> int:
        """The schema version in the database (0 when the schema does not exist yet)."""
        return await self._on_own_connection(pg_schema.schema_version, "reading the schema version")

    async def _on_own_connection(self, work: Callable[[Conn, str], Awaitable[T]], doing: str) -> T:
        """`work(conn, schema)` on a connection of its own (outside the pool, which needs the schema ready)."""
        conn = await self.connect()
        try:
            with self._translated(doing):
                return await work(conn, self.schema)
        finally:
            await conn.close()

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """The one place this store's driver errors become the project's (StoreError, no password, no host
        for clients: see _error); concurrency is told apart where an append is decided, in _append."""
        try:
            yield
        except psycopg.Error as exc:
            raise self._error(exc, doing) from exc

    async def _configure(self, conn: Conn) -> None:
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false), set_config('timezone', 'UTC', false)",
            (str(self.options.statement_timeout_ms), str(self.options.idle_in_transaction_timeout_ms)),
        )

    async def _open(self) -> AsyncConnectionPool[Conn]:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                if self.options.auto_upgrade:
                    await self.upgrade()
                else:
                    found = await self.schema_version()
                    if found != pg_schema.LATEST_VERSION:
                        raise StoreError(
                            f"PostgreSQL schema {self.schema!r} is at version {found}, this order-machine needs "
                            f"{pg_schema.LATEST_VERSION}: run `order-machine db upgrade`"
                        )
                pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                    self._conninfo, open=False, min_size=self.options.pool_min_size,
                    max_size=self.options.pool_size, timeout=self.options.pool_timeout,
                    kwargs={"autocommit": True, "connect_timeout": self.options.connect_timeout,
                            "application_name": "order-machine"},
                    configure=self._configure, name=f"order-machine:{self.schema}",
                )
                try:
                    await pool.open(wait=True, timeout=max(float(self.options.connect_timeout), 1.0))
                except psycopg.Error as exc:
                    await pool.close()
                    raise self._error(exc, "opening the connection pool") from exc
                self._pool = pool
        assert self._pool is not None
        return self._pool

    async def pool(self) -> AsyncConnectionPool[Conn]:
        """The open connection pool (schema ready), for the read models that live in the same schema."""
        return await self._open()

    def on_commit(self, listener: Callable[[], None]) -> bool:
        return False  # followers are woken through the bus

    def write_counters(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        """Close the pool; the store reconnects if used again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ writing

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """Several appends in one transaction: all commit at the end of the block, or none if it raises.

        Append to several streams in a stable (sorted) order so two such blocks cannot deadlock.
        """
        pool = await self._open()
        with self._translated("appending"):
            async with pool.connection() as conn, conn.transaction():
                yield PostgresTransaction(self, conn)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        command_id: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append atomically if the stream is at `expected_version` (0 = new stream); see EventStore.

        One statement in autocommit: its own transaction, one round trip.
        """
        pool = await self._open()
        with self._translated("appending"):
            async with pool.connection() as conn:
                return await _append(self, conn, 0, stream_id, events, expected_version, command_id, result)

    # ------------------------------------------------------------------ reading

    async def _rows(self, query: str, params: Sequence[Any], doing: str) -> list[TupleRow]:
        pool = await self._open()
        with self._translated(doing):
            async with pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()

    async def load(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        rows = await self._rows(
            f"SELECT {_EVENT_COLUMNS} FROM {self.quoted_schema}.events"
            " WHERE stream_id = %s AND version >= %s ORDER BY version",
            (stream_id, from_version), f"loading stream {stream_id!r}",
        )
        return [StoredEvent(*row) for row in rows]

    async def read_batch(self, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        if limit <= 0:
            return []
        rows = await self._rows(
            f"SELECT {_EVENT_COLUMNS} FROM {self.quoted_schema}.events"
            f" WHERE position > %s AND position < {_XMIN_POSITION} ORDER BY position LIMIT %s",
            (after, limit), "reading events",
        )
        return [StoredEvent(*row) for row in rows]

    def read_all(self, after: int = 0, batch_size: int = 500) -> AsyncIterator[StoredEvent]:
        return read_in_batches(self.read_batch, after, batch_size)

    async def last_position(self) -> int:
        rows = await self._rows(
            f"SELECT coalesce(max(position), 0) FROM {self.quoted_schema}.events WHERE position < {_XMIN_POSITION}",
            (), "reading the last position",
        )
        return int(rows[0][0])

    async def stream_head(self, stream_id: str) -> tuple[int, int]:
        rows = await self._rows(
            f"SELECT version, position FROM {self.quoted_schema}.events"
            " WHERE stream_id = %s ORDER BY version DESC LIMIT 1",
            (stream_id,), f"reading the head of stream {stream_id!r}",
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        rows = await self._rows(
            f"SELECT version FROM {self.quoted_schema}.streams WHERE stream_id = %s",
            (stream_id,), f"reading the version of stream {stream_id!r}",
        )
        return int(rows[0][0]) if rows else 0

    async def health(self) -> dict[str, Any]:
        """For `GET /health`: server version, schema version, and the age in seconds of the oldest transaction
        holding an id (followers wait for it). Other roles' sessions count only with pg_read_all_stats."""
        rows = await self._rows(
            f"SELECT current_setting('server_version'),"
            f" (SELECT coalesce(max(version), 0) FROM {self.quoted_schema}.schema_migrations),"
            " (SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0)::float8"
            "  FROM pg_stat_activity WHERE backend_xid IS NOT NULL)",
            (), "checking health",
        )
        version, schema_version, oldest = rows[0]
        return {"database": "postgresql", "server_version": version, "schema": self.schema,
                "schema_version": int(schema_version), "oldest_transaction_seconds": round(float(oldest), 3)}

    async def command_result(self, command_id: str) -> Mapping[str, Any] | None:
        rows = await self._rows(
            f"SELECT result FROM {self.quoted_schema}.commands WHERE command_id = %s",
            (command_id,), "reading a command result",
        )
        return dict(rows[0][0]) if rows else None

    async def stream_ids(self, after: str = "", limit: int = 1000) -> list[str]:
        rows = await self._rows(
            f"SELECT stream_id FROM {self.quoted_schema}.streams WHERE stream_id > %s ORDER BY stream_id LIMIT %s",
            (after, max(limit, 0)), "listing streams",
        )
        return [str(row[0]) for row in rows]
