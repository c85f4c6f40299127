"""`order-machine keys create | list | revoke`: the API keys `serve --auth keys` accepts.

A key is printed once, when it is created; the database keeps only its SHA-256. Opens the store and
its keys only (no definitions), so keys can be managed whatever state the definitions are in.
Imports the CLI helpers, `apikeys`, `bootstrap.store_options` and `store`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..apikeys import SCOPES, ApiKey, KeyStore, open_key_store
from ..bootstrap import store_options
from ..config import Settings
from ..store import open_store
from ._session import DB_HELP, Failed, print_json, require_existing_database, settings_from, table

EPILOG = """\
examples:
  order-machine keys create --scope write --name checkout     # prints the key, once: keep it
  KEY=$(order-machine keys create --scope read --name dashboards)
  curl -H "Authorization: Bearer $KEY" localhost:8000/orders
  order-machine keys list --json
  order-machine keys revoke checkout                          # its requests answer 401 from now on

Scopes: read (GET routes), write (read and every command), admin (everything, with /metrics and the
operations routes). Serve with `order-machine serve --auth keys` on the same --db.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help="API keys for `serve --auth keys`: create, list, revoke",
        description="Manage the API keys kept in the database beside the events (hashed: a key is shown "
                    "once, when it is created).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda _args: parser.error("an action is required: create, list or revoke"))
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (once)",
                                description="Create an API key with a scope and print it: stdout has the key "
                                            "alone, stderr says what it is. It cannot be shown again.")
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="read: GET routes; write: read + commands; admin: everything")
    create.add_argument("--name", help="a name to know it by (recorded as the actor of its events; "
                                       "default: key-<8 hex digits>); never reused")
    listing = actions.add_parser("list", help="list the keys (never the keys themselves)",
                                 description="List every key: name, scopes, when created and revoked.")
    revoke = actions.add_parser("revoke", help="revoke a key for good",
                                description="Revoke a key: requests with it answer 401 from now on.")
    revoke.add_argument("name", metavar="NAME")
    for sub, handler in ((create, run_create), (listing, run_list), (revoke, run_revoke)):
        sub.add_argument("--db", metavar="URL", help=DB_HELP)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)


@asynccontextmanager
async def _keys(settings: Settings) -> AsyncIterator[KeyStore]:
    if settings.db_url.lower().startswith("memory:"):
        raise Failed("memory:// keeps keys only inside one process: give --db sqlite:///path.db or postgresql://...")
    store = open_store(settings.db_url, **store_options(settings))
    keys = open_key_store(store)
    try:
        yield keys
    finally:
        await keys.close()
        await store.close()


def _row(key: ApiKey) -> list[str]:
    revoked = f"{key.revoked_at:%Y-%m-%d %H:%M:%S}Z" if key.revoked_at else "-"
    return [key.name, ", ".join(key.scopes), f"{key.created_at:%Y-%m-%d %H:%M:%S}Z", revoked]


async def run_create(args: argparse.Namespace) -> int:
    async with _keys(settings_from(args)) as keys:
        created = await keys.create(args.scope, args.name)
    if args.json:
        print_json({**created.key.to_dict(), "key": created.token})
    else:
        print(created.token)
        print(f"created key {created.key.name!r} (scopes: {', '.join(created.key.scopes)}); the key above is "
              "shown this once: keep it now", file=sys.stderr)
    return 0


async def run_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with _keys(settings) as keys:
        found = await keys.list()
    if args.json:
        print_json([k.to_dict() for k in found])
    elif not found:
        print("no keys yet: order-machine keys create --scope read|write|admin", file=sys.stderr)
    else:
        print(table([_row(k) for k in found], ["NAME", "SCOPES", "CREATED", "REVOKED"]))
    return 0


async def run_revoke(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with _keys(settings) as keys:
        key, revoked_now = await keys.revoke(args.name)
    if args.json:
        print_json(key.to_dict())
    elif not revoked_now:
        print(f"key {key.name!r} was already revoked ({_row(key)[3]}); nothing changed")
    else:
        print(f"revoked key {key.name!r}: its requests answer 401 from now on")
    return 0
