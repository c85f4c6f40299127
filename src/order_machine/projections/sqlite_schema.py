"""The SQLite read models' schema: their tables (rebuilt from the events when the schema version changes)
and the forms values take in them. Imports sqlite3; never the domain or the event store.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from . import sqlite_quarantine as quarantines
from .queries import from_micros, to_micros
from .tables import CHECKPOINTS, ORDER_COLUMNS, VIEW_TABLES, WORKFLOW_COLUMNS, Forms, columns

logger = logging.getLogger(__name__)

#: bump when a read-model table changes: older tables are dropped and rebuilt from the events on open
SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS read_workflows (
    stream_id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    id TEXT NOT NULL,
    definition_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    created_position INTEGER NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS read_workflows_by_state ON read_workflows (definition, state, created_position);
CREATE INDEX IF NOT EXISTS read_workflows_by_created ON read_workflows (definition, created_position);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS read_orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    description TEXT NOT NULL,
    initial_amount TEXT,
    amount TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    item_count INTEGER NOT NULL,
    created_position INTEGER NOT NULL,
    position INTEGER NOT NULL,
    tracking_number TEXT,
    shipping_address TEXT,
    cancellation_reason TEXT,
    return_reason TEXT,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS read_orders_by_customer ON read_orders (customer_id, created_position);
CREATE INDEX IF NOT EXISTS read_orders_by_status ON read_orders (status, created_position);
CREATE INDEX IF NOT EXISTS read_orders_by_updated ON read_orders (updated_at, id);
CREATE TABLE IF NOT EXISTS read_order_items (
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_order_history (
    position INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT,
    from_state TEXT,
    to_state TEXT,
    at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS read_order_history_by_order ON read_order_history (order_id, version);
"""

#: every table a new schema version drops (the quarantine records go with the views they describe)
TABLES = (*VIEW_TABLES.values(), CHECKPOINTS, quarantines.TABLE)

SELECT_ORDER = f"SELECT {columns(ORDER_COLUMNS)} FROM read_orders"
SELECT_WORKFLOW = f"SELECT {columns(WORKFLOW_COLUMNS)} FROM read_workflows"

#: compact JSON text for the rows' data and the loaders' lists of ids
dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False, ensure_ascii=False).encode
# history data was parsed from stored JSON, which never holds NaN (the store refuses it): msgspec writes the
# same JSON as `dumps` there, for less (floats may be spelled 1e16 for 1e+16: the same number)
_encode_json = msgspec.json.Encoder().encode


def _event_data(data: Mapping[str, Any]) -> str:
    return _encode_json(data).decode() if data else "{}"


def _same(value: Any) -> Any:
    return value


#: money as decimal text (exact), times as UTC microseconds (sortable integers), data as JSON text
FORMS = Forms(money=str, time=to_micros, data=dumps, event_data=_event_data, read_money=Decimal,
              read_time=from_micros, read_data=json.loads, read_at=_same)


def create_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables, inside the caller's transaction; drop them first when they are of another version."""
    conn.execute("CREATE TABLE IF NOT EXISTS read_model_schema (version INTEGER NOT NULL)")
    found = conn.execute("SELECT MAX(version) FROM read_model_schema").fetchone()[0]
    if found != SCHEMA_VERSION:
        if found is not None:
            logger.warning("%s: read models have schema v%s, this code v%d: they are dropped and will be "
                           "rebuilt from the events", path, found, SCHEMA_VERSION)
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("DELETE FROM read_model_schema")
        conn.execute("INSERT INTO read_model_schema VALUES (?)", (SCHEMA_VERSION,))
    for statement in (SCHEMA + quarantines.SCHEMA).split(";"):
        if statement.strip():
            conn.execute(statement)
