"""The SQLite store's file: its url and options, its schema migrations, and the checks made on opening.

Imports sqlite3 and `errors` only; sqlite.py owns the connections and threads.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: durability name -> PRAGMA synchronous. "fast" may lose the last commits on power loss (not on a crash).
DURABILITY = {"full": "FULL", "fast": "NORMAL"}
OPTIONS = ("durability", "busy_timeout", "readers", "max_batch", "fsync")
#: where the WAL's fsyncs run with durability "full" (store/sqlite_sync.py says why a process)
FSYNC = ("process", "thread")
URL_HINT = "use sqlite:///relative/orders.db or sqlite:////absolute/orders.db"
SQLITE_HEADER = b"SQLite format 3\x00"

#: (version, name, statements); a later version appends here and never edits an applied one.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "events and commands", (
        """CREATE TABLE events (
            position INTEGER PRIMARY KEY,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            data TEXT NOT NULL,
            metadata TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            UNIQUE (stream_id, version))""",
        """CREATE TABLE commands (
            command_id TEXT PRIMARY KEY,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            position INTEGER NOT NULL,
            result TEXT NOT NULL,
            recorded_at TEXT NOT NULL) WITHOUT ROWID""",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def check_choices(durability: str, fsync: str) -> None:
    """Refuse a durability or fsync the store does not know, saying what each known one means."""
    if durability not in DURABILITY:
        raise StoreError(
            f"unknown durability {durability!r}: use 'full' (the default; a committed append survives "
            "power loss) or 'fast' (synchronous=NORMAL; the last commits may be lost on power loss)"
        )
    if fsync not in FSYNC:
        raise StoreError(f"unknown fsync {fsync!r}: use 'process' (the default; a helper process fsyncs "
                         "the WAL) or 'thread' (a thread of this process does)")


def store_options(url: str, given: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """The options of the url (`given`) and the keywords together, the keywords winning; refuses unknown ones."""
    unknown = sorted((set(given) | set(options)) - set(OPTIONS))
    if unknown:
        raise StoreError(f"unknown SQLite store option(s) {', '.join(unknown)} in {url!r}; known: {', '.join(OPTIONS)}")
    return {**given, **options}


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """The file path and the options of `sqlite:///relative.db` or `sqlite:////abs.db?durability=fast`."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or not url.lower().startswith("sqlite:///") or parts.netloc:
        raise StoreError(f"not a SQLite store url: {url!r}; {URL_HINT}")
    if parts.fragment:
        raise StoreError(f"a SQLite store url has no #fragment: {url!r}; {URL_HINT}")
    path = unquote(parts.path[1:])
    if path == ":memory:" or path.startswith("file:") or "mode=memory" in parts.query:
        raise StoreError(f"{url!r}: an in-memory SQLite store is not supported; use memory:// for a throwaway store")
    if not path or path.endswith("/"):
        raise StoreError(f"{url!r} names no database file; {URL_HINT}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise StoreError(f"{url!r}: cannot read the options after '?': {exc}") from exc
    options = dict(pairs)
    if len(options) != len(pairs):
        raise StoreError(f"{url!r}: an option is given twice")
    return path, options


def check_header(path: Path) -> None:
    """Refuse, without writing a byte, a file that exists and is not SQLite."""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if header and header != SQLITE_HEADER[:len(header)]:
        raise StoreError(f"{path} is not an order-machine database (not a SQLite file); "
                         "it was left untouched: point the store url at another file")

#: every table order-machine creates in its file (the read models' come from projections/sqlite.py); a file
#: with tables, none of them one of these, belongs to another application
OWN_TABLES = frozenset({"store_migrations", "events", "commands", "read_model_schema", "projection_checkpoints",
                        "read_orders", "read_order_items", "read_order_history"})


def check_not_foreign(path: Path) -> None:
    """Refuse, without writing a byte, a SQLite file of another application (tables, none of them ours).

    An empty file, or a SQLite database with no tables, is adopted. The check reads the file through a
    read-only connection, before anything switches the journal mode or creates a table.
    """
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    with translated(lambda doing, exc: translate(path, doing, exc, 0), "opening"):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")}
        finally:
            conn.close()
    if tables and not tables & OWN_TABLES:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(f"{path} is not an order-machine database (it has other tables: {shown}); "
                         "it was left untouched: point the store url at another file")


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the store schema up to SCHEMA_VERSION; refuse tables it did not create and newer schemas."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "store_migrations" in tables:
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM store_migrations").fetchone()[0]
        elif tables - {"sqlite_sequence"} and not tables & OWN_TABLES:  # created since check_not_foreign
            raise StoreError(f"{path} is not an order-machine database (it has other tables: "
                             f"{', '.join(sorted(tables))}); point the store url at another file")
        elif tables & {"events", "commands"}:
            raise StoreError(f"{path} is not an order-machine database: it has table(s) "
                             f"{', '.join(sorted(tables & {'events', 'commands'}))} that order-machine did not create")
        else:
            current = 0
            conn.execute("CREATE TABLE store_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                         "applied_at TEXT NOT NULL)")
        if current > SCHEMA_VERSION:
            raise StoreError(f"{path} has store schema v{current}, newer than this order-machine "
                             f"knows (v{SCHEMA_VERSION}): upgrade order-machine")
        for version, name, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO store_migrations VALUES (?, ?, ?)", (version, name, now_text()))
                logger.info("%s: store schema migrated to v%d (%s)", path, version, name)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise

def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("rollback failed")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def number(name: str, value: Any, kind: Callable[[Any], T], minimum: float) -> T:
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"SQLite store option {name} must be a number, got {value!r}") from exc
    if isinstance(value, bool) or number < minimum:  # type: ignore[operator]
        raise StoreError(f"SQLite store option {name} must be at least {minimum:g}, got {value!r}")
    return number


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (the store issues BEGIN itself) that waits busy_timeout for locks."""
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(path, "opening", exc, busy_timeout) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(path, "opening", exc, busy_timeout) from exc
    return conn


def open_writer(path: Path, busy_timeout: float, durability: str) -> tuple[sqlite3.Connection, str]:
    """The writer thread's connection, on a file created (with its folder) or checked and migrated; and
    the synchronous level SQLite reports for it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of {path}: {exc}") from exc
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file; {URL_HINT}")
    check_header(path)
    check_not_foreign(path)
    conn = connect(path, busy_timeout)
    try:
        return conn, prepare_writer(conn, path, DURABILITY[durability])
    except sqlite3.Error as exc:
        conn.close()
        raise translate(path, "opening", exc, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise


def connect_with(path: Path, busy_timeout: float, pragmas: tuple[str, ...]) -> sqlite3.Connection:
    """A connection (see `connect`) with `pragmas` set, e.g. ("query_only = ON",)."""
    conn = connect(path, busy_timeout)
    try:
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(path, "opening", exc, busy_timeout) from exc
    return conn


#: the loop's writing connection never waits for a lock (a locked file sends the batch to the writer
#: thread), never fsyncs (the helper process or the sync thread fsyncs the WAL) and never checkpoints
#: on its own (a checkpoint fsyncs)
LOOP_WRITER = ("synchronous = NORMAL", "wal_autocheckpoint = 0", "foreign_keys = ON")


def prepare_writer(conn: sqlite3.Connection, path: Path, synchronous: str) -> str:
    """Set WAL, `synchronous` and foreign keys, migrate the schema; the synchronous level SQLite reports."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: SQLite would not switch to WAL (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    level = conn.execute("PRAGMA synchronous").fetchone()[0]
    migrate(conn, path)
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock (the caller may wait or go elsewhere)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextmanager
def translated(error_of: Callable[[str, sqlite3.Error], StoreError], doing: str) -> Iterator[None]:
    """The store's one way of turning a sqlite3 error of the block into the project's StoreError (by
    `error_of`, normally `translate` bound to the file); every other exception passes unchanged."""
    try:
        yield
    except sqlite3.Error as exc:
        raise error_of(doing, exc) from exc


def translate(path: Path, doing: str, exc: sqlite3.Error, busy_timeout: float) -> StoreError:
    """The StoreError for a driver error: names the file and says what to do when it can."""
    text = str(exc)
    if "unable to open database file" in text:  # SQLITE_CANTOPEN says nothing of why: find out
        return StoreError(f"cannot open sqlite:///{path}: {why_cannot_open(path)}")
    if "not a database" in text:
        return StoreError(f"{path} is not an order-machine database ({text}); it was left untouched")
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: {doing} failed: the database stayed locked by another "
                          f"connection for more than {busy_timeout:g}s ({text})")
    return StoreError(f"{path}: {doing} failed: {text}")


def why_cannot_open(path: Path) -> str:
    """Why SQLite could not open `path`, in a user's words (SQLite only says "unable to open database file")."""
    folder = path.absolute().parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return (f"the folder {folder} is on a read-only file system (SQLite must create "
                f"{path.name}-wal and {path.name}-shm beside the file, even to read it)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"permission denied: this user cannot read and write {path.name}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"permission denied: this user cannot create files in {folder} (SQLite must create "
                f"{path.name}-wal and {path.name}-shm beside the file)")
    if path.is_dir():
        return "it is a directory, not a database file"
    if not path.exists():
        return "the file does not exist"
    return "SQLite could not open the file (unable to open database file)"


def copy_error(error: StoreError) -> StoreError:
    """A copy for each caller: one shared exception object would collect everyone's tracebacks."""
    copy = StoreError(str(error))
    copy.__cause__ = error.__cause__
    return copy
