"""Dispatch benchmark (issue 2): an order's lifecycle on our compiled machine beside per-order peers.

Lifecycle = create + Confirm, StartProcessing, Ship(tracking, address), Deliver; every variant
publishes its machine events (initialised + 4 state changes) to an EventBus with no subscriber.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

from order_machine.bus import EventBus

from ._report import Goal, Size, Table, goals_table, median, pick, ratio, us
from .dispatch_variants import ACTIONS, VARIANTS, AsyncTransitionsPerOrder, Ours, PlainTable, Variant

# --------------------------------------------------------------------------- measuring


async def _lifecycles(variant: Variant, first: int, n: int, keep: list[Any] | None = None) -> list[float]:
    """Run n lifecycles; seconds spent in [create, Confirm, StartProcessing, Ship, Deliver]."""
    clock = time.perf_counter
    sums = [0.0] * 5
    for i in range(first, first + n):
        t0 = clock()
        order = await variant.create(i)
        t1 = clock()
        await variant.confirm(order)
        t2 = clock()
        await variant.start_processing(order)
        t3 = clock()
        await variant.ship(order, i)
        t4 = clock()
        await variant.deliver(order)
        t5 = clock()
        sums[0] += t1 - t0
        sums[1] += t2 - t1
        sums[2] += t3 - t2
        sums[3] += t4 - t3
        sums[4] += t5 - t4
        if keep is not None:
            keep.append(order)
        elif i == first and variant.state(order) != "Delivered":
            raise AssertionError(f"{variant.name}: ended in {variant.state(order)}, not Delivered")
    return sums


async def _bytes_per_order(variant: Variant, n: int) -> float:
    live: list[Any] = []
    await _lifecycles(variant, 0, 2)  # warm caches and lazy imports outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await _lifecycles(variant, 10_000_000, n, keep=live)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    bad = [variant.state(o) for o in live if variant.state(o) != "Delivered"]
    if bad:
        raise AssertionError(f"{variant.name}: {len(bad)} orders did not reach Delivered")
    return (after - before) / n


async def measure(sizes: tuple[int, int, int, int, int]) -> dict[type[Variant], dict[str, Any]]:
    """Every variant's phases (median over rounds) and bytes per live order.

    Rounds are interleaved (each round runs every variant once) so that noise from a shared
    machine falls on all variants alike, and the ratios stay put.
    """
    fast_n, rounds, fast_live, slow_n, slow_live = sizes
    variants = {cls: cls(EventBus()) for cls in VARIANTS}
    batch = {cls: fast_n if cls in (PlainTable, Ours) else slow_n for cls in VARIANTS}
    per_round: dict[type[Variant], list[list[float]]] = {cls: [] for cls in VARIANTS}
    for cls, variant in variants.items():
        await _lifecycles(variant, 0, min(batch[cls], 200))  # warm-up
    for r in range(rounds):
        for cls, variant in variants.items():
            gc.collect()
            sums = await _lifecycles(variant, (r + 1) * batch[cls], batch[cls])
            per_round[cls].append([s / batch[cls] for s in sums])
    results = {}
    for cls, variant in variants.items():
        expected = 5 * (min(batch[cls], 200) + rounds * batch[cls])
        published = variant.bus.metrics().published
        if published != expected:
            raise AssertionError(f"{variant.name}: published {published} machine events, expected {expected}")
        phases = [median(run[k] for run in per_round[cls]) for k in range(5)]
        memory = await _bytes_per_order(variant, fast_live if batch[cls] == fast_n else slow_live)
        results[cls] = {"name": variant.name, "create": phases[0], "actions": phases[1:],
                        "dispatch": sum(phases[1:]) / 4, "lifecycle": sum(phases), "bytes": memory}
    return results


def _sizes(size: Size) -> tuple[int, int, int, int, int]:
    # (orders per round, rounds, live orders measured) for ours/floor, and (orders, live) for the peers
    return pick(size, (3_000, 7, 10_000, 300, 1_000), (500, 2, 1_500, 50, 150), (30, 1, 30, 5, 5))


async def run_async(size: Size = "full") -> list[Table]:
    fast_n, rounds, fast_live, slow_n, slow_live = _sizes(size)
    results = await measure(_sizes(size))
    ours, peer = results[Ours], results[AsyncTransitionsPerOrder]

    table = Table(
        "Dispatch: create + Confirm, StartProcessing, Ship, Deliver (publishing to an EventBus with no subscriber)",
        ["variant", "create µs", *(f"{a} µs" for a in ACTIONS), "dispatch µs (mean)", "lifecycle µs",
         "bytes / live order", "lifecycle vs ours"],
    )
    for cls in VARIANTS:
        r = results[cls]
        table.add(r["name"], us(r["create"]), *(us(a) for a in r["actions"]), us(r["dispatch"]),
                  us(r["lifecycle"]), f"{r['bytes']:,.0f}",
                  "1.0x" if cls is Ours else _relative(r["lifecycle"], ours["lifecycle"]))
    table.notes += [
        f"medians of {rounds} interleaved rounds; ours and the floor run {fast_n:,} orders a round, the per-order peers "
        f"{slow_n:,}; bytes measured with tracemalloc over {fast_live:,} (ours, floor) / {slow_live:,} "
        "(peers) live orders that went through the lifecycle, divided",
        "every variant runs the graph of definitions/order.yaml, checks the has_value guard on Confirm, "
        "records Ship's data and publishes 1 MachineInitialised + 4 StateChanged per order",
        "ours also records 5 typed domain events per order (OrderCreated ... OrderDelivered) and checks "
        "each action's data against the definition; the peers keep no event history",
        "'lifecycle vs ours' > 1x means the variant is that many times slower than ours",
    ]
    goals = goals_table("Dispatch goals (issue 2)", [
        Goal("lifecycle", "< 25 µs", f"{us(ours['lifecycle'])} µs", ours["lifecycle"] < 25e-6),
        Goal("lifecycle vs transitions `AsyncMachine` per order", ">= 10x faster",
             ratio(ours["lifecycle"], peer["lifecycle"], higher_is_better=False),
             peer["lifecycle"] >= 10 * ours["lifecycle"]),
        Goal("dispatch (per action)", "< 10 µs", f"{us(ours['dispatch'])} µs", ours["dispatch"] < 10e-6),
        Goal("memory", "< 2 KB per live order", f"{ours['bytes']:,.0f} B", ours["bytes"] < 2048),
    ])
    return [table, goals]


def _relative(theirs: float, ours: float) -> str:
    return f"{theirs / ours:.2f}x" if theirs < ours * 10 else f"{theirs / ours:,.0f}x"


def run(size: Size = "full") -> list[Table]:
    return asyncio.run(run_async(size))

