"""A database driver's errors as the project's StoreError, translated in one place for the read side.

Each backend wraps its database work in `translated(<its driver's base error>, where, ...)`: SQLite's
modules with sqlite3.Error, PostgreSQL's with psycopg.Error. The message names what failed and the
driver's words; the HTTP API answers every StoreError with a 503 that does not repeat it (api/errors.py).
Imports no driver itself, so an optional one stays optional.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import StoreError


def store_error(where: str, exc: BaseException, doing: str | None = None, sql: str | None = None) -> StoreError:
    """`<where>: [<doing> failed: ]<driver's message>[ (in <sql>)]`."""
    failed = f"{doing} failed: " if doing is not None else ""
    statement = f" (in {sql[:200]!r})" if sql is not None else ""
    return StoreError(f"{where}: {failed}{exc}{statement}")


@contextlib.contextmanager
def translated(driver_error: type[Exception], where: str, *, doing: str | None = None,
               sql: str | None = None) -> Iterator[None]:
    """Raise a `driver_error` of the block as StoreError (from it), naming `where`, what it was `doing` and the
    user's `sql`; every other exception passes unchanged."""
    try:
        yield
    except driver_error as exc:
        raise store_error(where, exc, doing, sql) from exc
