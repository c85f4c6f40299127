"""Order streams shared by the projection tests that need many interleaved orders (crash, leased workers)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order_machine.events import (
    OrderConfirmed, OrderCreated, OrderDelivered, OrderEvent, OrderItem, OrderItemAdded, OrderProcessingStarted,
    OrderShipped, encode,
)
from order_machine.store import EventStore

#: every read-model table, with the key that orders its rows for a comparison
READ_MODEL_TABLES = {
    "read_orders": "id", "read_order_items": "order_id, line", "read_order_history": "position",
    "projection_checkpoints": "name",
}


def lifecycle(n: int) -> list[list[OrderEvent]]:
    """An order's events in three appends: created with an item, more items, then part of the way to delivery."""
    oid, t = f"o-{n:05d}", datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    steps: list[OrderEvent] = [
        OrderConfirmed(oid, t, "Pending", "Confirmed"), OrderProcessingStarted(oid, t, "Confirmed", "Processing"),
        OrderShipped(oid, t, "Processing", "Shipped", f"T-{n}", f"{n} High St"), OrderDelivered(oid, t, "Shipped", "Delivered")]
    return [
        [OrderCreated(oid, t, f"c-{n % 13}", f"order {n}", None, (OrderItem("p-0", 1, Decimal("9.99")),))],
        [OrderItemAdded(oid, t, f"p-{k}", k, Decimal(n % 50) / 4) for k in range(1, n % 3 + 1)],
        steps[:n % 5],
    ]


async def fill(store: EventStore, orders: int, concurrency: int | None = None) -> tuple[int, int]:
    """Append `orders` lifecycles round by round, concurrently (at most `concurrency` appends at once),
    so that streams interleave; returns (last position, events appended)."""
    plans = {n: lifecycle(n) for n in range(orders)}
    versions = dict.fromkeys(plans, 0)
    limit = asyncio.Semaphore(concurrency) if concurrency else None

    async def append(n: int, chunk: list[OrderEvent]) -> None:
        async with limit or contextlib.nullcontext():
            await store.append(f"o-{n:05d}", [encode(e) for e in chunk], versions[n])
        versions[n] += len(chunk)

    for round_ in range(3):
        await asyncio.gather(*(append(n, plan[round_]) for n, plan in plans.items() if plan[round_]))
    return await store.last_position(), sum(versions.values())
