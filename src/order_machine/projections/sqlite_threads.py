"""The SQLite connections the read side's two SQLite backends (read models, projector tables) share the
shape of: one per private thread, closed on that thread, and one on the event loop that never waits.

Imports sqlite3 and asyncio only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor


def connect_loop(path: str, synchronous: str) -> sqlite3.Connection:
    """A connection for the event loop's thread: it never waits for a lock (busy_timeout 0: the caller sends
    the work to a thread instead) and never checkpoints the WAL (no fsync on the loop; the store's writer
    thread checkpoints the shared WAL). Made once the file and its schema exist."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    for pragma in ("busy_timeout = 0", f"synchronous = {synchronous}", "wal_autocheckpoint = 0"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


async def close_threads(connections: threading.local, executors: Iterable[ThreadPoolExecutor | None]) -> None:
    """Close each executor's thread's connection (`connections.conn`) on that thread, then shut it down."""
    def close_connection() -> None:
        conn = getattr(connections, "conn", None)
        if conn is not None:
            conn.close()
            connections.conn = None
    loop = asyncio.get_running_loop()
    for executor in executors:
        if executor is not None:
            await loop.run_in_executor(executor, close_connection)
            executor.shutdown(wait=True)
