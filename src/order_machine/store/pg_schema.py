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
