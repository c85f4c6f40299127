"""Many rows in few statements on SQLite: the multi-row INSERT that the store's appends and the read models'
batches both write with. Imports sqlite3 only.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any


def insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]], tail: str = "",
                *, max_rows: int = 200) -> None:
    """What executemany(`head` VALUES (?, ...) `tail`, rows) does, in one statement per up to `max_rows` rows.

    `head` is the statement up to VALUES (`INSERT INTO t (a, b)`), `tail` what follows the rows (an `ON
    CONFLICT` clause), `width` the number of values in a row. Fewer rows go in a statement when SQLite's
    bound on parameters needs it. One statement for many rows costs one step, one reset and one hand-back
    of the GIL instead of one per row: that is why it is not executemany.
    """
    per = max(1, min(max_rows, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    values = "(" + ", ".join("?" * width) + ")"
    flat = itertools.chain.from_iterable
    whole = len(rows) - len(rows) % per
    if whole:
        sql = f"{head} VALUES {', '.join([values] * per)}{tail}"
        for start in range(0, whole, per):
            conn.execute(sql, list(flat(rows[start:start + per])))
    if whole < len(rows):
        conn.execute(f"{head} VALUES {', '.join([values] * (len(rows) - whole))}{tail}", list(flat(rows[whole:])))
