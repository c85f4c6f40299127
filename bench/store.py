"""Store benchmark (issue 3): durable SQLite commands, projection rebuild and load, beside `eventsourcing`.

Ours goes through the public API (OrderCommandService, SQLiteEventStore, ProjectionRunner);
the peer (bench/store_peer.py) through the library's Application, Aggregate and Projection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ._report import Goal, Size, Table, count, goals_table, pick, ratio, us
from . import store_peer

ADDRESS = "1 Harbour Road"


@dataclass(frozen=True)
class Sizes:
    orders: int          # 5-command lifecycles per client setting
    clients: int         # the concurrent setting
    rebuild_events: int  # events in the store when the projection is rebuilt
    loads: int           # 5-event orders loaded

    @classmethod
    def of(cls, size: Size) -> Sizes:
        return pick(size, cls(2_000, 32, 50_000, 2_000), cls(300, 32, 5_000, 300), cls(16, 8, 200, 16))


@dataclass
class Figures:
    one_client: float = 0.0      # commands/s
    many_clients: float = 0.0    # commands/s
    rebuild: float = 0.0         # events/s (the comparable projection)
    rebuild_all: float = 0.0     # events/s (every projection ours keeps), 0 for the peer
    rebuild_events: int = 0
    load: float = 0.0            # seconds per 5-event order


# --------------------------------------------------------------------------- the peer


def measure_peer(path: Path, sizes: Sizes) -> Figures:
    app = store_peer.open_peer(path)
    try:
        figures = Figures()
        figures.one_client = store_peer.run_commands(app, sizes.orders, 1)
        figures.many_clients = store_peer.run_commands(app, sizes.orders, sizes.clients)
        have = sizes.orders * 2 * 5
        ids = store_peer.seed(app, max(sizes.rebuild_events - have, 0) // 5 or sizes.loads)
        figures.load = store_peer.load_seconds(app, ids[:sizes.loads])
        figures.rebuild, figures.rebuild_events = store_peer.rebuild(app, path)
        _check_peer_view(path, figures.rebuild_events // 5)
        return figures
    finally:
        app.close()


def _check_peer_view(path: Path, orders: int) -> None:
    with sqlite3.connect(path) as conn:
        delivered = conn.execute("SELECT COUNT(*) FROM order_view WHERE status = 'Delivered'").fetchone()[0]
    conn.close()
    if delivered != orders:
        raise AssertionError(f"eventsourcing view has {delivered} delivered orders, expected {orders}")


# --------------------------------------------------------------------------- ours


class Ours:
    """Our application service on a SQLite file, wired through the public API only."""

    def __init__(self, path: Path) -> None:
        from order_machine.bus import EventBus
        from order_machine.order import order_machine
        from order_machine.service import OrderCommandService
        from order_machine.store import open_store

        self.path = path
        self.machine = order_machine()
        self.store = open_store(f"sqlite:///{path}")
        self.bus = EventBus()  # no subscriber: the runner is not following during the command runs
        self.service = OrderCommandService(self.store, self.machine, self.bus)

    async def lifecycle(self, i: int, tag: str) -> None:
        from order_machine.commands import ConfirmOrder, CreateOrder, DeliverOrder, ShipOrder, StartProcessing

        handle = self.service.handle
        order_id = f"{tag}-{i}"
        await handle(CreateOrder(order_id=order_id, customer_id=f"c-{i}", amount=Decimal("99.50")))
        await handle(ConfirmOrder(order_id=order_id))
        await handle(StartProcessing(order_id=order_id))
        await handle(ShipOrder(order_id=order_id, tracking_number=f"TRK-{i}", shipping_address=ADDRESS))
        result = await handle(DeliverOrder(order_id=order_id))
        assert result.state == "Delivered" and result.version == 5, result

    async def run_commands(self, orders: int, clients: int, tag: str) -> float:
        async def client(first: int) -> None:
            for i in range(first, orders, clients):
                await self.lifecycle(i, tag)

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        return orders * 5 / (time.perf_counter() - started)

    async def seed(self, orders: int, tag: str = "seed", concurrency: int = 256) -> list[str]:
        """Append `orders` delivered orders (5 events each) through the store, many appends in flight."""
        from order_machine.events import encode
        from order_machine.order import Order

        async def one(i: int) -> str:
            order = Order.create(self.machine, f"{tag}-{i}", f"c-{i}", amount=Decimal("99.50"))
            await order.fire("Confirm")
            await order.fire("StartProcessing")
            await order.fire("Ship", tracking_number=f"TRK-{i}", shipping_address=ADDRESS)
            await order.fire("Deliver")
            await self.store.append(order.id, [encode(e) for e in order.take_pending_events()], 0)
            return order.id

        ids: list[str] = []
        for first in range(0, orders, concurrency):
            ids += await asyncio.gather(*(one(i) for i in range(first, min(first + concurrency, orders))))
        return ids

    async def load_seconds(self, ids: list[str]) -> float:
        started = time.perf_counter()
        for order_id in ids:
            order = await self.service.load(order_id)
            assert order.state == "Delivered" and order.version == 5
        return (time.perf_counter() - started) / len(ids)

    async def rebuild(self) -> tuple[float, float, int]:
        """(events/s of the `orders` projection, events/s of all projections, events) from position 0."""
        from order_machine.projections.runner import ProjectionRunner
        from order_machine.projections.sqlite import SQLiteReadModels

        read_models = SQLiteReadModels(self.path)
        try:
            runner = ProjectionRunner(self.store, read_models)
            await read_models.checkpoint("orders")  # creates the read-model tables outside the timing
            orders = await runner.rebuild("orders")
            every = await runner.rebuild()
            delivered = await read_models.orders_by_status("Delivered", limit=1)
            assert delivered.items, "the rebuilt read model has no delivered order"
            return orders.events_per_second, every.events_per_second, orders.events
        finally:
            await read_models.close()

    async def close(self) -> None:
        await self.store.close()


async def measure_ours(path: Path, sizes: Sizes) -> Figures:
    ours = Ours(path)
    try:
        figures = Figures()
        figures.one_client = await ours.run_commands(sizes.orders, 1, "one")
        figures.many_clients = await ours.run_commands(sizes.orders, sizes.clients, "many")
        have = sizes.orders * 2 * 5
        ids = await ours.seed(max(sizes.rebuild_events - have, 0) // 5 or sizes.loads)
        figures.load = await ours.load_seconds(ids[:sizes.loads])
        figures.rebuild, figures.rebuild_all, figures.rebuild_events = await ours.rebuild()
        return figures
    finally:
        await ours.close()


# --------------------------------------------------------------------------- the report


def run(size: Size = "full") -> list[Table]:
    sizes = Sizes.of(size)
    with tempfile.TemporaryDirectory(prefix="order-machine-bench-") as tmp:
        peer = measure_peer(Path(tmp) / "eventsourcing.db", sizes)
        ours = asyncio.run(measure_ours(Path(tmp) / "order-machine.db", sizes))
    return report(ours, peer, sizes)


def report(ours: Figures, peer: Figures, sizes: Sizes) -> list[Table]:
    table = Table(
        "Event store on SQLite, durable (WAL, synchronous=FULL), beside eventsourcing",
        ["measure", "order-machine", "eventsourcing", "ours vs peer"],
    )
    table.add(f"commands/s, 1 client ({sizes.orders:,} orders x 5 commands)",
              count(ours.one_client), count(peer.one_client), ratio(ours.one_client, peer.one_client))
    table.add(f"commands/s, {sizes.clients} concurrent clients",
              count(ours.many_clients), count(peer.many_clients), ratio(ours.many_clients, peer.many_clients))
    table.add(f"projection rebuild, events/s ({ours.rebuild_events:,} / {peer.rebuild_events:,} events)",
              count(ours.rebuild), count(peer.rebuild), ratio(ours.rebuild, peer.rebuild))
    table.add("rebuild of every projection ours keeps (orders + items + history), events/s",
              count(ours.rebuild_all), "–", "–")
    table.add("load one 5-event order, µs", us(ours.load), us(peer.load), ratio(ours.load, peer.load, False))
    table.notes += [
        "a command = load the order from its events, apply the action, append its event(s) in one "
        "durable transaction; each client runs whole lifecycles (create, Confirm, StartProcessing, Ship, "
        "Deliver) one command after another",
        "ours: OrderCommandService over SQLiteEventStore, concurrent clients are asyncio tasks (the store "
        "commits concurrent appends together); peer: an eventsourcing Application with an Aggregate of the "
        "same 5 commands, concurrent clients are threads (the library is synchronous)",
        "rebuild: ours = ProjectionRunner.rebuild('orders') into SQLite read models (orders + items "
        "tables) in the store's file, batches of 500 events, checkpoint in the same transaction; "
        "peer = the library's Projection over a SQLiteTrackingRecorder view (one row per order, "
        "indexed by customer and status) fed every notification in order, 1 transaction per event "
        "with its tracking record (the SQLite recorder has no subscription for ProjectionRunner)",
        "load: ours OrderCommandService.load (read + decode + replay); peer Repository.get (no cache)",
    ]
    goals = goals_table("Store goals (issue 3)", [
        Goal("1 client", ">= 3x peer", ratio(ours.one_client, peer.one_client), ours.one_client >= 3 * peer.one_client),
        Goal(f"{sizes.clients} clients", ">= 5x peer (aim 8x)", ratio(ours.many_clients, peer.many_clients),
             ours.many_clients >= 5 * peer.many_clients),
        Goal("rebuild", ">= 100,000 events/s", count(ours.rebuild), ours.rebuild >= 100_000),
        Goal("load a 5-event order", "< 60 µs", f"{us(ours.load)} µs", ours.load < 60e-6),
    ])
    return [table, goals]
