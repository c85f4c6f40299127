"""Workflow benchmark (issue 12): a generic workflow's lifecycle beside the order's, in one runtime.

The workflow is bench/definitions/parcel.yaml, the order's graph under another name, run by the
WorkflowEngine: start + Confirm, StartProcessing, Ship, Deliver. The order runs the same lifecycle through
the OrderApplicationService (bench.store.lifecycle). Both go through one runtime built by bootstrap, so on
one store; rounds alternate between the two (and who goes first), and each side's figure is its median.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._report import Goal, Size, Table, goals_table, median, pick, us
from .store import ADDRESS, lifecycle

DEFINITIONS = Path(__file__).with_name("definitions")
STORES = ("memory", "sqlite")
GOAL = 1.5  # the workflow's lifecycle at most this many times the order's


@dataclass(frozen=True)
class Sizes:
    lifecycles: dict[str, int]  # per round, by store kind
    rounds: int

    @classmethod
    def of(cls, size: Size) -> Sizes:
        # many short rounds: a neighbour's burst on the shared machine then spoils a few rounds, not a side
        return pick(size, cls({"memory": 200, "sqlite": 25}, 25), cls({"memory": 100, "sqlite": 10}, 8),
                    cls({"memory": 5, "sqlite": 2}, 2))


async def order_lifecycles(runtime: Any, first: int, n: int) -> float:
    """Seconds per order lifecycle, over orders first..first+n-1."""
    handle = runtime.service.handle
    started = time.perf_counter()
    for i in range(first, first + n):
        await lifecycle(handle, f"order-{i}", i)
    return (time.perf_counter() - started) / n


async def workflow_lifecycles(runtime: Any, first: int, n: int) -> float:
    """Seconds per parcel lifecycle (the same five commands on the generic engine), over first..first+n-1."""
    engine = runtime.engine
    started = time.perf_counter()
    for i in range(first, first + n):
        parcel = f"parcel-{i}"
        await engine.start("parcel", {"customer_id": f"c-{i}", "amount": Decimal("99.50"), "items": []},
                           workflow_id=parcel)
        await engine.act("parcel", parcel, "Confirm")
        await engine.act("parcel", parcel, "StartProcessing")
        await engine.act("parcel", parcel, "Ship", {"tracking_number": f"TRK-{i}", "shipping_address": ADDRESS})
        result = await engine.act("parcel", parcel, "Deliver")
        assert result.state == "Delivered" and result.version == 5, result
    return (time.perf_counter() - started) / n


async def measure(url: str, n: int, rounds: int) -> tuple[float, float]:
    """(order, workflow) median seconds per lifecycle on the store at `url`."""
    from order_machine import Settings, bootstrap

    # as the store bench: commands only, the projections not following
    settings = Settings(db_url=url, definitions_dir=DEFINITIONS, run_projections=False, read_your_writes=False)
    runtime = await bootstrap(settings)
    await runtime.start()
    try:
        warm = max(n, 20)
        await order_lifecycles(runtime, -warm, warm)
        await workflow_lifecycles(runtime, -warm, warm)
        orders: list[float] = []
        workflows: list[float] = []
        for r in range(max(rounds, 1)):
            first = r * n
            sides = [(orders, order_lifecycles), (workflows, workflow_lifecycles)]
            for figures, run_round in sides if r % 2 == 0 else reversed(sides):
                gc.collect()
                figures.append(await run_round(runtime, first, n))
    finally:
        await runtime.stop()
    return median(orders), median(workflows)


def run(size: Size = "full") -> list[Table]:
    sizes = Sizes.of(size)
    figures: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="order-machine-bench-") as tmp:
        for kind in STORES:
            url = "memory://" if kind == "memory" else f"sqlite:///{tmp}/workflows.db"
            figures[kind] = asyncio.run(measure(url, sizes.lifecycles[kind], sizes.rounds))
    return report(figures, sizes)


def report(figures: dict[str, tuple[float, float]], sizes: Sizes) -> list[Table]:
    names = {"memory": "memory://", "sqlite": "SQLite, durable (WAL, synchronous=FULL), 1 client"}
    table = Table("Lifecycle (create + Confirm, StartProcessing, Ship, Deliver): generic workflow beside the order",
                  ["store", "order µs", "workflow µs", "workflow / order"])
    for kind, (order, workflow) in figures.items():
        table.add(names[kind], us(order), us(workflow), f"{workflow / order:.2f}x")
    table.notes += [
        f"medians of {sizes.rounds} alternating rounds (who goes first alternates too) of "
        + " / ".join(f"{sizes.lifecycles[k]:,} lifecycles ({k})" for k in figures)
        + "; both sides in one runtime from bootstrap, on one store, projections not following",
        "order: OrderApplicationService.handle(CreateOrder, ConfirmOrder, StartProcessing, ShipOrder, DeliverOrder); "
        "workflow: WorkflowEngine.start + act on bench/definitions/parcel.yaml (the order's graph, its YAML "
        "guard, Ship's two fields), generic WorkflowStarted/WorkflowTransitioned events",
        "'workflow / order' above 1x: the workflow's lifecycle takes that many times the order's",
    ]
    goals = goals_table("Workflow goals (issue 12)", [
        Goal(f"workflow lifecycle, {kind}", f"<= {GOAL}x the order's", f"{workflow / order:.2f}x",
             workflow <= GOAL * order)
        for kind, (order, workflow) in figures.items()
    ])
    return [table, goals]
