"""The PostgreSQL schema of order-machine and its versioned migrations (`schema_migrations` table).

Owns the DDL, schema-name checks and advisory-lock keys. Imports psycopg and `errors` only, no domain module.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from ..errors import StoreError

logger = logging.getLogger(__name__)

# Advisory-lock key space (two-int form: class, object). The class keeps our locks apart from the
# application's; the object is hashtext() of the schema name (plus the projector name for leases).
LOCK_CLASS_MIGRATION = 0x6F6D0001
LOCK_CLASS_LEASE = 0x6F6D0002

# Events get position = transaction id * POSITION_SCALE + ordinal in that transaction (see postgres.py).
POSITION_SCALE = 65536

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_schema(schema: str) -> str:
    """The schema name as a quoted SQL identifier, after checking it is a plain lower-case name."""
    if not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"invalid PostgreSQL schema name {schema!r}: use lower-case letters, digits and _ (at most 63)"
        )
    return f'"{schema}"'


# SQLSTATE raised by append_events() when the stream is not at the expected version (DETAIL: actual version)
CONCURRENCY_SQLSTATE = "OM409"

# The whole append in one statement (so one round trip, and one implicit transaction in autocommit):
# claim the command id first (a concurrent twin waits on it, then returns the first result), check and
# lock the stream's row, insert the events at xid * 65536 + ordinal. A conflict raises, undoing the claim.
# p_events: [{"t": type, "v": schema version, "d": data, "m": metadata, "r": recorded at (ISO text)}, ...]
APPEND_FUNCTION = """
CREATE FUNCTION {s}.append_events(
    p_stream text, p_expected integer, p_ordinal integer, p_events jsonb, p_command_id text, p_result jsonb
) RETURNS TABLE (version integer, last_position bigint, duplicate boolean, result jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := jsonb_array_length(p_events);
    actual integer;
    pos bigint;
BEGIN
    IF n = 0 THEN
        SELECT s.version INTO actual FROM {s}.streams s WHERE s.stream_id = p_stream;
        IF coalesce(actual, 0) <> p_expected THEN
            RAISE EXCEPTION 'stream % is at version %', p_stream, coalesce(actual, 0)
                USING ERRCODE = 'OM409', DETAIL = coalesce(actual, 0)::text;
        END IF;
        SELECT coalesce(max(e.position), 0) INTO pos FROM {s}.events e
            WHERE e.position < pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 65536;
    ELSE
        pos := pg_current_xact_id()::text::bigint * 65536 + p_ordinal + n - 1;
    END IF;
    IF p_command_id IS NOT NULL THEN
        INSERT INTO {s}.commands (command_id, stream_id, version, position, result)
            VALUES (p_command_id, p_stream, p_expected + n, pos, p_result)
            ON CONFLICT (command_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT c.version, c.position, true, c.result
                FROM {s}.commands c WHERE c.command_id = p_command_id;
            RETURN;
        END IF;
    END IF;
    IF n > 0 THEN
        IF p_expected = 0 THEN
            INSERT INTO {s}.streams (stream_id, version) VALUES (p_stream, n) ON CONFLICT (stream_id) DO NOTHING;
        ELSE
            UPDATE {s}.streams s SET version = p_expected + n
                WHERE s.stream_id = p_stream AND s.version = p_expected;
        END IF;
        IF NOT FOUND THEN
            SELECT s.version INTO actual FROM {s}.streams s WHERE s.stream_id = p_stream;
            RAISE EXCEPTION 'stream % is at version %', p_stream, coalesce(actual, 0)
                USING ERRCODE = 'OM409', DETAIL = coalesce(actual, 0)::text;
        END IF;
        INSERT INTO {s}.events (position, stream_id, version, type, schema_version, data, metadata, recorded_at)
            SELECT pos - n + u.i, p_stream, p_expected + u.i, u.e ->> 't', (u.e ->> 'v')::integer, u.e -> 'd',
                   u.e -> 'm', (u.e ->> 'r')::timestamptz
            FROM jsonb_array_elements(p_events) WITH ORDINALITY AS u(e, i);
    END IF;
    RETURN QUERY SELECT p_expected + n, pos, false, p_result;
END
$$
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]  # `{s}` stands for the quoted schema name


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event store: streams, events, command records", (
        """CREATE TABLE {s}.streams (
            stream_id text COLLATE "C" PRIMARY KEY,
            version integer NOT NULL CHECK (version >= 0)
        )""",
        # position = pg_current_xact_id() * 65536 + ordinal within the writing transaction
        """CREATE TABLE {s}.events (
            position bigint PRIMARY KEY CHECK (position > 0),
            stream_id text COLLATE "C" NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            type text NOT NULL,
            schema_version integer NOT NULL,
            data jsonb NOT NULL,
            metadata jsonb NOT NULL,
            recorded_at timestamptz NOT NULL,
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
        )""",
        """CREATE TABLE {s}.commands (
            command_id text PRIMARY KEY,
            stream_id text NOT NULL,
            version integer NOT NULL,
            position bigint NOT NULL,
            result jsonb NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )""",
    )),
    Migration(2, "read models: orders, items, history, projection checkpoints", (
        """CREATE TABLE {s}.projection_checkpoints (
            name text PRIMARY KEY,
            position bigint NOT NULL
        )""",
        """CREATE TABLE {s}.read_orders (
            id text COLLATE "C" PRIMARY KEY,
            customer_id text NOT NULL,
            description text NOT NULL,
            initial_amount numeric,
            amount numeric NOT NULL,
            status text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL,
            item_count integer NOT NULL,
            created_position bigint NOT NULL,
            position bigint NOT NULL,
            tracking_number text,
            shipping_address text,
            cancellation_reason text,
            return_reason text
        )""",
        "CREATE INDEX read_orders_by_customer ON {s}.read_orders (customer_id, created_position)",
        "CREATE INDEX read_orders_by_status ON {s}.read_orders (status, created_position)",
        "CREATE INDEX read_orders_by_updated ON {s}.read_orders (updated_at, id)",
        """CREATE TABLE {s}.read_order_items (
            order_id text COLLATE "C" NOT NULL,
            line integer NOT NULL,
            product_id text NOT NULL,
            quantity integer NOT NULL,
            unit_price numeric NOT NULL,
            PRIMARY KEY (order_id, line)
        )""",
        """CREATE TABLE {s}.read_order_history (
            position bigint PRIMARY KEY,
            order_id text COLLATE "C" NOT NULL,
            version integer NOT NULL,
            type text NOT NULL,
            action text,
            from_state text,
            to_state text,
            at timestamptz NOT NULL,
            data jsonb NOT NULL
        )""",
        "CREATE UNIQUE INDEX read_order_history_by_order ON {s}.read_order_history (order_id, version)",
    )),
    Migration(3, "append_events(): one round trip per append", (APPEND_FUNCTION,)),
    Migration(4, "read models: workflow instances of every definition", (
        """CREATE TABLE {s}.read_workflows (
            stream_id text COLLATE "C" PRIMARY KEY,
            definition text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            definition_version integer NOT NULL,
            state text NOT NULL,
            version integer NOT NULL,
            data jsonb NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            created_position bigint NOT NULL,
            position bigint NOT NULL
        )""",
        "CREATE INDEX read_workflows_by_state ON {s}.read_workflows (definition, state, created_position)",
        "CREATE INDEX read_workflows_by_created ON {s}.read_workflows (definition, created_position)",
    )),
    # what an order's actions recorded, whatever order.yaml names it; filled here from the four columns
    # that held it before, which is what replaying the orders' events gives
    Migration(5, "read models: an order's recorded data", (
        "ALTER TABLE {s}.read_orders ADD COLUMN data jsonb NOT NULL DEFAULT '{{}}'",
        """UPDATE {s}.read_orders SET data = jsonb_strip_nulls(jsonb_build_object(
            'tracking_number', tracking_number, 'shipping_address', shipping_address,
            'cancellation_reason', cancellation_reason, 'return_reason', return_reason))""",
    )),
    Migration(6, "read models: streams a projector quarantined", (
        """CREATE TABLE {s}.projection_quarantine (
            projector text NOT NULL,
            stream_id text COLLATE "C" NOT NULL,
            position bigint NOT NULL,
            event_type text NOT NULL,
            error text NOT NULL,
            since timestamptz NOT NULL,
            PRIMARY KEY (projector, stream_id)
        )""",
        "CREATE INDEX projection_quarantine_by_stream ON {s}.projection_quarantine (stream_id)",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version


async def schema_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """The highest migration applied in `schema` (0 when the schema or its migration table is missing)."""
    quoted = quote_schema(schema)
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{quoted}.schema_migrations",))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return 0
    cur = await conn.execute(f"SELECT coalesce(max(version), 0) FROM {quoted}.schema_migrations")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def upgrade(conn: psycopg.AsyncConnection[Any], schema: str) -> list[int]:
    """Apply the missing migrations in one transaction; returns the versions applied ([] if up to date).

    Safe to run from several processes at once: an advisory lock makes them take turns.
    """
    quoted = quote_schema(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS_MIGRATION, schema))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        current = await schema_version(conn, schema)
        if current > LATEST_VERSION:
            raise StoreError(
                f"schema {schema!r} is at version {current}, newer than this order-machine knows "
                f"({LATEST_VERSION}): upgrade order-machine"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                await conn.execute(statement.format(s=quoted))
            await conn.execute(
                f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    if applied:
        logger.info("schema %s upgraded to version %d (applied %s)", schema, LATEST_VERSION, applied)
    return applied
