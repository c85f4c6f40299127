"""A projection worker killed with SIGKILL at random points leaves read models equal to a fresh rebuild.

The worker (projection_worker.py) runs in a subprocess on a SQLite file pre-filled with a few thousand
events (orders' in one test, workflow instances' in the other); each kill must leave every checkpoint
consistent with its rows (all of a batch or none of it).
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from integration import append_worker
from integration.order_streams import READ_MODEL_TABLES
from integration.order_streams import fill as fill_orders

from order_machine.catalog import Catalog
from order_machine.engine import WorkflowEngine
from order_machine.projections import ProjectionRunner, SQLiteReadModels
from order_machine.store.sqlite import SQLiteEventStore

WORKER = Path(__file__).with_name("projection_worker.py")
ORDERS = 1200
KILLS = 6
TABLES = READ_MODEL_TABLES


async def fill(path: Path) -> int:
    """The orders' events, appended concurrently (group commit) so that streams interleave."""
    async with SQLiteEventStore(path, durability="fast") as store:
        return (await fill_orders(store, ORDERS))[0]


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}


def check_batches_are_whole(path: Path) -> tuple[int, int]:
    """Each checkpoint matches its rows exactly: every event up to it applied once, none after it."""
    with sqlite3.connect(path) as conn:
        checkpoints = dict(conn.execute("SELECT name, position FROM projection_checkpoints").fetchall())
        orders, history = checkpoints.get("orders", 0), checkpoints.get("order_history", 0)
        versions = conn.execute("SELECT COALESCE(SUM(version), 0), COALESCE(MAX(position), 0) FROM read_orders")
        assert versions.fetchone() == (orders, orders)  # every event is an order event: versions add up to it
        counted = conn.execute("SELECT COUNT(*), COALESCE(MAX(position), 0) FROM read_order_history").fetchone()
        assert counted == (history, history)
    return orders, history


async def start_worker(path: Path, batch_size: int) -> asyncio.subprocess.Process:
    worker = await asyncio.create_subprocess_exec(sys.executable, str(WORKER), str(path), str(batch_size),
                                                  stdout=asyncio.subprocess.PIPE)
    assert worker.stdout is not None
    async with asyncio.timeout(15):
        assert await worker.stdout.readline() == b"ready\n"
    return worker


async def kill_repeatedly(path: Path, last: int, whole: Callable[[Path], tuple[int, ...]], seed: int) -> None:
    """Start the worker and SIGKILL it at random moments until KILLS kills landed, then let one run to the end;
    after each run `whole` checks that every checkpoint matches its rows and returns the checkpoints."""
    rng = random.Random(seed)
    progress: list[tuple[int, ...]] = []
    done: tuple[int, ...] = ()
    kills = 0
    for _ in range(KILLS * 3):
        worker = await start_worker(path, rng.choice([5, 10, 50]))
        await asyncio.sleep(rng.uniform(0.002, 0.04))  # a random moment to kill it at, not a wait
        if worker.returncode is None:
            worker.send_signal(signal.SIGKILL)
        code = await worker.wait()
        progress.append(whole(path))
        done = (last,) * len(progress[-1])
        if code == -signal.SIGKILL:
            kills += 1
        else:
            assert code == 0, f"the worker failed with exit code {code}"
        if kills >= KILLS or progress[-1] == done:
            break
    assert kills >= KILLS, f"only {kills} kills landed before the worker caught up ({progress}); add events"
    assert progress[-1] < done, f"the kills should leave work for the last run ({progress})"
    assert all(all(x <= y for x, y in zip(a, b)) for a, b in zip(progress, progress[1:])), (
        f"a checkpoint went backwards: {progress}")

    final = await start_worker(path, 100)
    assert await final.wait() == 0
    assert whole(path) == done


async def rebuilt(path: Path) -> int:
    async with SQLiteEventStore(path) as store:
        models = SQLiteReadModels(store.path)
        report = await ProjectionRunner(store, models).rebuild()
        await models.close()
    return report.events


@pytest.mark.slow
async def test_read_models_survive_repeated_kill_minus_9_and_equal_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    last = await fill(path)
    assert last > 2000
    await kill_repeatedly(path, last, check_batches_are_whole, 20240501)
    projected = dump(path)

    assert await rebuilt(path) == last
    assert dump(path) == projected
    assert dict(projected["projection_checkpoints"]) == {"orders": last, "order_history": last, "workflows": last}


async def fill_workflows(path: Path, instances: int) -> int:
    """Payments taken part of the way through their lifecycle by the engine, concurrently so that streams
    interleave; every event in the file is a workflow's."""
    async with SQLiteEventStore(path, durability="fast") as store:
        engine = WorkflowEngine(store, Catalog.load(append_worker.DEFINITIONS))

        async def one(n: int) -> None:
            payment = f"pay-{n:05d}"
            await engine.start("payment", append_worker.PAYMENT, workflow_id=payment)
            for action, data in append_worker.LIFECYCLE[:n % (len(append_worker.LIFECYCLE) + 1)]:
                await engine.act("payment", payment, action, data)

        await asyncio.gather(*(one(n) for n in range(instances)))
        return await store.last_position()


def check_workflow_batches_are_whole(path: Path) -> tuple[int]:
    """The workflows view holds exactly the events up to its checkpoint: as every event is a workflow's, the
    versions of its rows add up to the checkpoint, and the newest row was written by the event at it."""
    with sqlite3.connect(path) as conn:
        checkpoints = dict(conn.execute("SELECT name, position FROM projection_checkpoints").fetchall())
        workflows = checkpoints.get("workflows", 0)
        counted = conn.execute("SELECT COALESCE(SUM(version), 0), COALESCE(MAX(position), 0) FROM read_workflows")
        assert counted.fetchone() == (workflows, workflows)
    return (workflows,)


@pytest.mark.slow
async def test_the_workflows_view_survives_repeated_kill_minus_9_and_equals_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "workflows.db"
    # one projection (the orders' test has three per event): more events, so the kills land before it is done
    last = await fill_workflows(path, 2400)
    assert last > 8000
    await kill_repeatedly(path, last, check_workflow_batches_are_whole, 20240502)
    with sqlite3.connect(path) as conn:
        projected = conn.execute("SELECT * FROM read_workflows ORDER BY stream_id").fetchall()

    assert await rebuilt(path) == last
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT * FROM read_workflows ORDER BY stream_id").fetchall() == projected
