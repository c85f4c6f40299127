"""An append the SQLite store acknowledged survives the process being killed with SIGKILL.

The store commits on the event loop and answers only after the WAL's fsync (store/sqlite.py): a
worker process appends from 16 tasks and prints every acknowledgement; each kill at a random moment
must leave every acknowledged event in the file, at its version and position, with no gap. The same
holds for workflow commands through the WorkflowEngine, whose command ids (idempotency) and read models
must survive too.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from integration import append_worker

from order_machine.catalog import Catalog
from order_machine.engine import WorkflowEngine
from order_machine.projections import ConsistencyChecker, ConsistencyReport, ProjectionRunner, SQLiteReadModels
from order_machine.store.sqlite import SQLiteEventStore

WORKER = Path(__file__).with_name("append_worker.py")


def acknowledged_then_killed(path: Path, run: int, seconds: float, mode: str = "events") -> list[list[str]]:
    """Start the worker, read its acknowledgements for `seconds` (at least one), SIGKILL it; every line it
    printed, split into fields."""
    process = subprocess.Popen([sys.executable, str(WORKER), str(path), f"run{run}", mode], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    acks: list[list[str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or not acks:
        line = process.stdout.readline()
        if not line:
            break
        acks.append(line.split())
    process.send_signal(signal.SIGKILL)
    process.wait()
    acks += [line.split() for line in process.stdout.read().splitlines()]
    process.stdout.close()
    return acks


def test_every_acknowledged_append_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    rng = random.Random(5)
    for kill in range(3):
        acks = [(s, int(v), int(p)) for s, v, p in acknowledged_then_killed(path, kill, rng.uniform(0.3, 1.2))]
        assert acks, "the worker acknowledged nothing before the kill"
        with closing(sqlite3.connect(path)) as conn:
            stored = {(s, v): p for s, v, p in conn.execute("SELECT stream_id, version, position FROM events")}
            positions = [p for (p,) in conn.execute("SELECT position FROM events ORDER BY position")]
        missing = [a for a in acks if stored.get((a[0], a[1])) != a[2]]
        assert not missing, f"kill {kill}: {len(missing)} acknowledged appends lost, e.g. {missing[:3]}"
        assert positions == list(range(1, len(positions) + 1))  # no gap, nothing half-written


async def reopened(path: Path, keys: list[str]) -> tuple[list[str], int, ConsistencyReport]:
    """After a kill, on a new engine: every instance rebuilt from its events, the read models caught up and
    checked against them. Returns the `keys` whose command result the store lost, how many instances there
    are, and the consistency report."""
    async with SQLiteEventStore(path) as store:
        engine = WorkflowEngine(store, Catalog.load(append_worker.DEFINITIONS))
        streams: list[str] = []
        while page := await store.stream_ids(streams[-1] if streams else "", 500):
            streams += page
        for stream in streams:
            definition, _, workflow_id = stream.partition("/")
            instance = await engine.load(definition, workflow_id)  # replays: nothing half-written
            assert instance.version == len(await store.load(stream))
        forgotten = [key for key in keys if await store.command_result(key) is None]
        models = SQLiteReadModels(store.path)
        try:
            await ProjectionRunner(store, models).catch_up()
            report = await ConsistencyChecker(store, models).check_all()
        finally:
            await models.close()
        return forgotten, len(streams), report


def test_every_acknowledged_workflow_command_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "workflows.db"
    rng = random.Random(12)
    for kill in range(3):
        acks = acknowledged_then_killed(path, kill, rng.uniform(0.5, 1.5), "workflows")
        assert acks, "the worker acknowledged nothing before the kill"
        with closing(sqlite3.connect(path)) as conn:
            stored = {(s, v): p for s, v, p in conn.execute("SELECT stream_id, version, position FROM events")}
            positions = [p for (p,) in conn.execute("SELECT position FROM events ORDER BY position")]
        missing = [a for a in acks if stored.get((a[1], int(a[2]))) != int(a[3])]
        assert not missing, f"kill {kill}: {len(missing)} acknowledged commands lost, e.g. {missing[:3]}"
        assert positions == list(range(1, len(positions) + 1))  # no gap, nothing half-written

        forgotten, instances, report = asyncio.run(reopened(path, [a[0] for a in acks]))
        assert not forgotten, f"kill {kill}: the store forgot acknowledged command ids, e.g. {forgotten[:3]}"
        assert instances >= len({a[1] for a in acks})
        assert report.mismatched == () and report.workflows == instances, report.mismatched
