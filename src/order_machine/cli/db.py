"""`order-machine db upgrade` and `db status`: the database schema (PostgreSQL migrations; SQLite migrates on open).

Imports the CLI helpers, `bootstrap.store_options` and the stores (the PostgreSQL one lazily); no other command.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bootstrap import POSTGRES_SCHEMES, store_options
from ..config import Settings
from ..errors import StoreError
from ._session import DB_HELP, Failed, print_json, require_existing_database, settings_from, sqlite_path, shown_url

if TYPE_CHECKING:
    from ..store.postgres import PostgresEventStore

EPILOG = """\
examples:
  order-machine db upgrade --db postgresql://app:secret@db.internal/orders   # before starting new servers
  order-machine db status --db postgresql://app@db.internal/orders?schema=shop
  order-machine db status --check && order-machine serve ...                 # exit 1 while migrations are pending

PostgreSQL: `serve` also migrates on start (several processes take turns), unless the URL says
?auto_upgrade=false; then it refuses an old schema and `db upgrade` is the way. SQLite migrates on open.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db", help="database schema: upgrade (migrate) and status",
        description="Create or migrate the database schema, or show its version and pending migrations.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="create the schema or apply the pending migrations",
                                 description="Apply every pending migration (PostgreSQL: in one transaction, "
                                             "safe beside running servers and other upgrades).")
    upgrade.add_argument("--db", metavar="URL", help=DB_HELP)
    upgrade.set_defaults(handler=run_upgrade)
    status = actions.add_parser("status", help="show the schema version and the pending migrations",
                                description="Show the schema version and the migrations still to apply; changes nothing.")
    status.add_argument("--db", metavar="URL", help=DB_HELP)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--check", action="store_true", help="exit 1 when migrations are pending")
    status.set_defaults(handler=run_status)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.error("an action is required: upgrade or status")


def _kind(settings: Settings) -> str:
    scheme = settings.db_url.split(":", 1)[0].lower()
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    if scheme in ("sqlite", "memory"):
        return scheme
    raise Failed(f"unsupported store url {shown_url(settings.db_url)!r}: use sqlite:///path.db, postgresql://... or memory://")


def _postgres(settings: Settings) -> PostgresEventStore:
    try:
        from ..store.postgres import PostgresEventStore
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise Failed(f"PostgreSQL needs the [postgres] extra: pip install 'order-machine[postgres]' ({exc})") from exc
    return PostgresEventStore.from_url(settings.db_url, **store_options(settings))


# --------------------------------------------------------------------------- upgrade


async def run_upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    kind = _kind(settings)
    if kind == "memory":
        print("memory:// keeps nothing between runs: there is no schema to migrate")
    elif kind == "sqlite":
        versions = await _open_sqlite(settings)
        print(f"{sqlite_path(settings.db_url)}: SQLite migrates on open: store schema version {versions['store']}, "
              f"read models version {versions['read_models']} (the latest); nothing else to do")
    else:
        from ..store.pg_schema import MIGRATIONS

        store = _postgres(settings)
        before = await store.schema_version()
        applied = await store.upgrade()
        where = f"{shown_url(settings.db_url)} schema {store.schema!r}"
        if applied:
            names = {m.version: m.name for m in MIGRATIONS}
            print(f"{where}: upgraded from version {before} to {applied[-1]}")
            for version in applied:
                print(f"  applied {version}: {names[version]}")
        else:
            print(f"{where}: already at version {before}, the latest; nothing to do")
    return 0


async def _open_sqlite(settings: Settings) -> dict[str, int]:
    """Open the SQLite store and its read models (each migrates on open), then read their versions."""
    from ..projections import open_read_models
    from ..store import open_store

    store = open_store(settings.db_url, **store_options(settings))
    try:
        read_models = open_read_models(store)
        try:
            await store.last_position()
            await read_models.checkpoint("orders")
        finally:
            await read_models.close()
    finally:
        await store.close()
    path = sqlite_path(settings.db_url)
    assert path is not None
    return _sqlite_versions(path)


def _sqlite_versions(path: Path) -> dict[str, int]:
    """The store's and the read models' schema versions in a SQLite file (0: not created yet), read-only."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        found = {}
        for key, table in (("store", "store_migrations"), ("read_models", "read_model_schema")):
            row = conn.execute(f"SELECT MAX(version) FROM {table}").fetchone() if table in tables else None
            found[key] = int(row[0]) if row and row[0] is not None else 0
        return found
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the schema version of {path}: {exc}") from exc
    finally:
        conn.close()


# --------------------------------------------------------------------------- status


async def run_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    kind = _kind(settings)
    if kind == "memory":
        report: dict[str, Any] = {"database": "memory", "version": None, "latest": None, "pending": []}
        lines = ["memory:// keeps nothing between runs: there is no schema"]
    elif kind == "sqlite":
        report, lines = _sqlite_status(settings)
    else:
        report, lines = await _postgres_status(settings)
    if args.json:
        print_json(report)
    else:
        print("\n".join(lines))
    return 1 if args.check and report["pending"] else 0


def _sqlite_status(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    from ..projections.sqlite_schema import SCHEMA_VERSION as READ_MODELS_VERSION
    from ..store.sqlite_file import MIGRATIONS, SCHEMA_VERSION, check_header, check_not_foreign

    require_existing_database(settings.db_url)
    path = sqlite_path(settings.db_url)
    assert path is not None
    check_header(path)
    check_not_foreign(path)  # another application's file would never be migrated: say so, not "pending"
    versions = _sqlite_versions(path)
    pending = [{"version": v, "name": name} for v, name, _ in MIGRATIONS if v > versions["store"]]
    report = {"database": "sqlite", "path": str(path), "version": versions["store"], "latest": SCHEMA_VERSION,
              "read_models_version": versions["read_models"], "read_models_latest": READ_MODELS_VERSION,
              "pending": pending}
    lines = [f"{path}: store schema version {versions['store']} (latest {SCHEMA_VERSION}), "
             f"read models version {versions['read_models']} (latest {READ_MODELS_VERSION})"]
    if pending or versions["read_models"] != READ_MODELS_VERSION:
        lines.append("SQLite migrates on open: the next command or server start brings it up to date "
                     "(read models of another version are rebuilt from the events)")
    else:
        lines.append("up to date")
    return report, lines


async def _postgres_status(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    from ..store.pg_schema import LATEST_VERSION, MIGRATIONS

    store = _postgres(settings)
    version = await store.schema_version()
    pending = [{"version": m.version, "name": m.name} for m in MIGRATIONS if m.version > version]
    report = {"database": "postgresql", "url": shown_url(settings.db_url), "schema": store.schema, "version": version,
              "latest": LATEST_VERSION, "pending": pending}
    lines = [f"{shown_url(settings.db_url)} schema {store.schema!r}: version {version} (latest {LATEST_VERSION})"]
    if version > LATEST_VERSION:
        lines.append(f"newer than this order-machine knows ({LATEST_VERSION}): upgrade order-machine")
    elif pending:
        lines.append("pending migrations (apply with `order-machine db upgrade`):")
        lines += [f"  {p['version']}: {p['name']}" for p in pending]
    else:
        lines.append("up to date")
    return report, lines
