"""An append the SQLite store acknowledged survives the process being killed with SIGKILL.

The store commits on the event loop and answers only after the WAL's fsync (store/sqlite.py): a
worker process appends from 16 tasks and prints every acknowledgement; each kill at a random moment
must leave every acknowledged event in the file, at its version and position, with no gap.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

WORKER = Path(__file__).with_name("append_worker.py")


def acknowledged_then_killed(path: Path, run: int, seconds: float) -> list[tuple[str, int, int]]:
    process = subprocess.Popen([sys.executable, str(WORKER), str(path), f"run{run}"], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    acks: list[tuple[str, int, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or not acks:
        line = process.stdout.readline()
        if not line:
            break
        stream, version, position = line.split()
        acks.append((stream, int(version), int(position)))
    process.send_signal(signal.SIGKILL)
    process.wait()
    acks += [(s, int(v), int(p)) for s, v, p in (line.split() for line in process.stdout.read().splitlines())]
    process.stdout.close()
    return acks


def test_every_acknowledged_append_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    rng = random.Random(5)
    for kill in range(3):
        acks = acknowledged_then_killed(path, kill, rng.uniform(0.3, 1.2))
        assert acks, "the worker acknowledged nothing before the kill"
        with closing(sqlite3.connect(path)) as conn:
            stored = {(s, v): p for s, v, p in conn.execute("SELECT stream_id, version, position FROM events")}
            positions = [p for (p,) in conn.execute("SELECT position FROM events ORDER BY position")]
        missing = [a for a in acks if stored.get((a[0], a[1])) != a[2]]
        assert not missing, f"kill {kill}: {len(missing)} acknowledged appends lost, e.g. {missing[:3]}"
        assert positions == list(range(1, len(positions) + 1))  # no gap, nothing half-written
