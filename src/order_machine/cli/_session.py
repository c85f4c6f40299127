"""Shared by the `serve`, `orders` and operations commands: the --db/--definitions options, Settings
from them, a started Runtime for one command, and one-line error messages.

Imports `bootstrap`, `config` and `errors`; knows no command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..bootstrap import Runtime, bootstrap
from ..config import Settings
from ..errors import DefinitionError, OrderMachineError, StoreError

DB_HELP = "store URL: sqlite:///path.db, postgresql://user@host/db or memory:// (default: $ORDER_MACHINE_DB_URL, else sqlite:///orders.db)"


class Failed(OrderMachineError):
    """A command failed for a reason already said in one line."""


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help=DB_HELP)
    parser.add_argument("--definitions", metavar="DIR",
                        help="definitions folder (default: $ORDER_MACHINE_DEFINITIONS, else ./definitions when it "
                             "holds a *.yaml file, else the definitions shipped with order-machine)")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from ORDER_MACHINE_* variables, with the command line's options on top."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "db", None):
        given["db_url"] = args.db
    if getattr(args, "definitions", None):
        folder = Path(args.definitions)
        if not folder.is_dir():
            raise Failed(f"definitions folder {str(folder)!r} does not exist or is not a folder")
        given["definitions_dir"] = folder
    return Settings(**given)


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def sqlite_path(url: str) -> Path | None:
    """The file a sqlite:/// URL names (None for other backends)."""
    if not url.lower().startswith("sqlite:"):
        return None
    from ..store.sqlite_file import parse_sqlite_url

    return Path(parse_sqlite_url(url)[0])


def require_existing_database(url: str) -> None:
    """Reading commands must not create an empty SQLite file by accident."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise Failed(f"no database at {str(path)!r}: create an order first, or pass --db URL")


def one_line(exc: BaseException) -> str:
    """An error as one line: a definition error names its first problem and how to see them all."""
    if isinstance(exc, DefinitionError) and exc.problems:
        more = f" (+{len(exc.problems) - 1} more; run `order-machine validate` to see all)" if len(exc.problems) > 1 else ""
        return f"definition error: {exc.problems[0]}{more}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@asynccontextmanager
async def running(settings: Settings, *, start: bool = True) -> AsyncIterator[Runtime]:
    """A bootstrapped (and, by default, started) Runtime for one command; stopped and closed after."""
    try:
        runtime = await bootstrap(settings)
    except DefinitionError as exc:
        raise Failed(one_line(exc)) from None
    except OSError as exc:
        raise StoreError(f"cannot open {shown_url(settings.db_url)!r}: {exc}") from exc
    try:
        # open the store now: a bad or corrupt database fails here, in one line, before any task starts
        await runtime.store.last_position()
        if start:
            await runtime.start()
        yield runtime
    finally:
        await runtime.stop()


@asynccontextmanager
async def reading(args: argparse.Namespace) -> AsyncIterator[Runtime]:
    """A started Runtime on an existing database (never created by a read), its read models caught up with
    every event the store held when the command began: what `show` and `list` commands answer from."""
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings) as rt:
        position = await rt.store.last_position()
        if not await rt.wait_for_projections(position):
            print(f"warning: the read models are behind the store (position {position}); "
                  "results may be stale", file=sys.stderr)
        yield rt


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
