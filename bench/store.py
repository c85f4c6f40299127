"""Store benchmark (issue 3): durable SQLite commands, projection rebuild and load, beside `eventsourcing`.

Ours goes through the public API (bootstrap, OrderApplicationService, the runner's rebuild); the peer
(bench/store_peer.py) through the library's Application, Aggregate and Projection. Phases alternate
between the two in rounds, so a busy neighbour on the machine slows both alike.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ._report import Goal, Size, Table, count, goals_table, median, pick, ratio, us
from . import store_peer
from .sqlite_floor import BareLoop

ADDRESS = "1 Harbour Road"


async def lifecycle(handle: Callable[[Any], Awaitable[Any]], order_id: str, i: int) -> None:
    """One order through create, Confirm, StartProcessing, Ship and Deliver by `handle` (a command service's)."""
    from order_machine import ConfirmOrder, CreateOrder, DeliverOrder, ShipOrder, StartProcessing

    await handle(CreateOrder(order_id=order_id, customer_id=f"c-{i}", amount=Decimal("99.50")))
    await handle(ConfirmOrder(order_id=order_id))
    await handle(StartProcessing(order_id=order_id))
    await handle(ShipOrder(order_id=order_id, tracking_number=f"TRK-{i}", shipping_address=ADDRESS))
    result = await handle(DeliverOrder(order_id=order_id))
    assert result.state == "Delivered" and result.version == 5, result


@dataclass(frozen=True)
class Sizes:
    orders: int          # 5-command lifecycles per client setting
    clients: int         # the concurrent setting
    rebuild_events: int  # events in the store when the projection is rebuilt
    loads: int           # 5-event orders loaded
    rounds: int          # each measure alternates peer and ours this many times
    peer_rebuild: int    # events the peer projects (1 transaction each: its rate does not depend on the count)
    floor_orders: int    # lifecycles (5 commands; the bare loop: 5 rows) per round beside the bare loop
    floor_rounds: int    # rounds of each, alternating

    @classmethod
    def of(cls, size: Size) -> Sizes:
        return pick(size, cls(2_000, 32, 50_000, 2_000, 4, 10_000, 60, 16), cls(160, 32, 3_000, 200, 2, 1_000, 20, 6),
                    cls(16, 8, 200, 16, 1, 200, 2, 2))


@dataclass
class Figures:
    one_client: float = 0.0      # commands/s
    many_clients: float = 0.0    # commands/s
    rebuild: float = 0.0         # events/s (the comparable projection)
    rebuild_all: float = 0.0     # events/s (every projection ours keeps), 0 for the peer
    rebuild_events: int = 0
    load: float = 0.0            # seconds per 5-event order
    served_clients: float = 0.0  # commands/s with the projections following, as serve runs (ours only)
    floor_one_client: float = 0.0  # commands/s (median of the rounds beside the bare loop), ours only
    floor: float = 0.0             # rows/s of the bare sqlite3 loop (median of its rounds)


# --------------------------------------------------------------------------- ours


class Ours:
    """Our runtime on a SQLite file, built by the composition root as a user would (bootstrap)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.service = runtime.service  # OrderApplicationService
        self.machine = runtime.machine
        self.store = runtime.store

    @classmethod
    async def open(cls, path: Path, *, projections: bool = False) -> Ours:
        """Without projections: the same workload as the peer (commands only, the runner not following).

        With projections: what `order-machine serve` runs, the runner following in the same process
        (read-your-writes is kept at read time: commands do not wait for it).
        """
        from order_machine import Settings, bootstrap

        settings = Settings(db_url=f"sqlite:///{path}", run_projections=projections, read_your_writes=projections)
        runtime = await bootstrap(settings)
        await runtime.start()
        return cls(runtime)

    async def lifecycle(self, i: int, tag: str) -> None:
        await lifecycle(self.service.handle, f"{tag}-{i}", i)

    async def run_commands(self, first: int, orders: int, clients: int, tag: str) -> float:
        """Seconds for lifecycles first..first+orders-1 shared by `clients` concurrent tasks."""
        async def client(start: int) -> None:
            for i in range(start, first + orders, clients):
                await self.lifecycle(i, tag)

        started = time.perf_counter()
        await asyncio.gather(*(client(first + c) for c in range(clients)))
        return time.perf_counter() - started

    async def seed(self, orders: int, tag: str = "seed", concurrency: int = 256) -> list[str]:
        """Append `orders` delivered orders (5 events each) through the store, many appends in flight."""
        from order_machine import Order
        from order_machine.events import encode

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
        load = self.runtime.commands.load  # OrderCommandService.load: read, decode, replay
        started = time.perf_counter()
        for order_id in ids:
            order = await load(order_id)
            assert order.state == "Delivered" and order.version == 5
        return time.perf_counter() - started

    async def rebuild(self) -> tuple[float, float, int]:
        """(events/s of the `orders` projection, events/s of all projections, events) from position 0."""
        runner, read_models = self.runtime.runner, self.runtime.read_models
        await read_models.checkpoint("orders")  # creates the read-model tables outside the timing
        orders = await runner.rebuild("orders")
        every = await runner.rebuild()
        delivered = await read_models.orders_by_status("Delivered", limit=1)
        assert delivered.items, "the rebuilt read model has no delivered order"
        return orders.events_per_second, every.events_per_second, orders.events

    async def close(self) -> None:
        await self.runtime.stop()


class Alternate:
    """Runs a measure in rounds, peer and ours taking turns (who goes first alternates too)."""

    def __init__(self, loop: asyncio.Runner, rounds: int) -> None:
        self.loop, self.rounds = loop, max(rounds, 1)

    def seconds(self, peer: Callable[[int], float],
                ours: Callable[[int], Coroutine[Any, Any, float]]) -> tuple[float, float]:
        """(ours, peer) total seconds; each callable gets the round number and returns its seconds."""
        total_ours = total_peer = 0.0
        for r in range(self.rounds):
            if r % 2 == 0:
                total_peer += peer(r)
                total_ours += self.loop.run(ours(r))
            else:
                total_ours += self.loop.run(ours(r))
                total_peer += peer(r)
        return total_ours, total_peer


def beside_the_floor(loop: asyncio.Runner, ours: Ours, bare: BareLoop, sizes: Sizes) -> tuple[float, float]:
    """(ours commands/s, bare rows/s), each the median of its rounds; rounds alternate bare, ours, bare, ours."""
    n = sizes.floor_orders
    mine: list[float] = []
    floor: list[float] = []
    bare.rows(-n, n)  # warm both: the files' first pages, the statement caches
    loop.run(ours.run_commands(-n, n, 1, "floor"))
    for r in range(sizes.floor_rounds):
        floor.append(5 * n / bare.rows(r * n, n))
        mine.append(5 * n / loop.run(ours.run_commands(r * n, n, 1, "floor")))
    return median(mine), median(floor)


def measure(folder: Path, sizes: Sizes) -> tuple[Figures, Figures]:
    """(ours, peer) on two SQLite files in `folder`."""
    mine, peer = Figures(), Figures()
    per_round = max(sizes.orders // sizes.rounds, 1)
    commands = per_round * sizes.rounds * 5
    peer_path = folder / "eventsourcing.db"
    app = store_peer.open_peer(peer_path)
    with asyncio.Runner() as loop:
        ours = loop.run(Ours.open(folder / "order-machine.db"))
        try:
            bare = BareLoop(folder / "bare-sqlite3.db")
            try:
                mine.floor_one_client, mine.floor = beside_the_floor(loop, ours, bare, sizes)
            finally:
                bare.close()
            turns = Alternate(loop, sizes.rounds)
            one = turns.seconds(
                lambda r: store_peer.run_commands(app, r * per_round, per_round, 1),
                lambda r: ours.run_commands(r * per_round, per_round, 1, "one"),
            )
            many = turns.seconds(
                lambda r: store_peer.run_commands(app, (sizes.rounds + r) * per_round, per_round, sizes.clients),
                lambda r: ours.run_commands(r * per_round, per_round, sizes.clients, "many"),
            )
            mine.one_client, peer.one_client = commands / one[0], commands / one[1]
            mine.many_clients, peer.many_clients = commands / many[0], commands / many[1]

            # fill both stores up to the rebuild size with delivered orders (fast, untimed)
            extra = max(sizes.rebuild_events - 2 * commands, 0) // 5 or sizes.loads
            peer_ids = store_peer.seed(app, extra)
            our_ids = loop.run(ours.seed(extra))

            loads = min(sizes.loads, extra)
            chunk = max(loads // sizes.rounds, 1)
            s_ours, s_peer = turns.seconds(
                lambda r: store_peer.load_seconds(app, peer_ids[r * chunk:(r + 1) * chunk]),
                lambda r: ours.load_seconds(our_ids[r * chunk:(r + 1) * chunk]),
            )
            mine.load, peer.load = s_ours / (chunk * turns.rounds), s_peer / (chunk * turns.rounds)

            mine.rebuild, mine.rebuild_all, mine.rebuild_events = loop.run(ours.rebuild())
            peer.rebuild, peer.rebuild_events = store_peer.rebuild(app, peer_path, limit=sizes.peer_rebuild)
        finally:
            loop.run(ours.close())
            app.close()

        served = loop.run(Ours.open(folder / "order-machine-served.db", projections=True))
        try:
            mine.served_clients = commands / loop.run(served.run_commands(0, per_round * sizes.rounds,
                                                                         sizes.clients, "served"))
        finally:
            loop.run(served.close())
    return mine, peer


# --------------------------------------------------------------------------- the report


def run(size: Size = "full") -> list[Table]:
    sizes = Sizes.of(size)
    with tempfile.TemporaryDirectory(prefix="order-machine-bench-") as tmp:
        ours, peer = measure(Path(tmp), sizes)
    return report(ours, peer, sizes)


def report(ours: Figures, peer: Figures, sizes: Sizes) -> list[Table]:
    table = Table(
        "Event store on SQLite, durable (WAL, synchronous=FULL), beside eventsourcing",
        ["measure", "order-machine", "eventsourcing", "ours vs peer"],
    )
    table.add(f"commands/s, 1 client ({sizes.orders // sizes.rounds * sizes.rounds:,} orders x 5 commands)",
              count(ours.one_client), count(peer.one_client), ratio(ours.one_client, peer.one_client))
    table.add(f"commands/s, {sizes.clients} concurrent clients",
              count(ours.many_clients), count(peer.many_clients), ratio(ours.many_clients, peer.many_clients))
    table.add(f"commands/s, {sizes.clients} clients, projections following (as `serve` runs)",
              count(ours.served_clients), "–", "–")
    table.add(f"projection rebuild, events/s ({ours.rebuild_events:,} events; the peer: the first "
              f"{peer.rebuild_events:,} of as many)",
              count(ours.rebuild), count(peer.rebuild), ratio(ours.rebuild, peer.rebuild))
    table.add("rebuild of every projection ours keeps (orders + items + history), events/s",
              count(ours.rebuild_all), "–", "–")
    table.add("load one 5-event order, µs", us(ours.load), us(peer.load), ratio(ours.load, peer.load, False))
    table.notes += [
        "a command = load the order from its events, apply the action, append its event(s) in one "
        "durable transaction; each client runs whole lifecycles (create, Confirm, StartProcessing, Ship, "
        "Deliver) one command after another",
        "ours: OrderApplicationService from bootstrap(Settings(db_url='sqlite:///...')), projections not "
        "following (the peer has none), concurrent clients are asyncio tasks (the store commits concurrent "
        "appends together); peer: an eventsourcing Application with an Aggregate of the "
        "same 5 commands, concurrent clients are threads (the library is synchronous)",
        "rebuild: ours = ProjectionRunner.rebuild('orders') into SQLite read models (orders + items "
        "tables) in the store's file, batches of 500 events, checkpoint in the same transaction; "
        "peer = the library's Projection over a SQLiteTrackingRecorder view (one row per order, "
        "indexed by customer and status) fed every notification in order, 1 transaction per event "
        "with its tracking record (the SQLite recorder has no subscription for ProjectionRunner); the peer "
        "projects the first events of its store only, to bound the run: one transaction per event "
        "makes its rate independent of the count",
        "load: ours OrderCommandService.load (read + decode + replay); peer Repository.get (no cache)",
    ]
    floor = Table(
        "One client beside the physical floor: a bare sqlite3 loop, one durable commit per row",
        ["measure", "order-machine", "bare sqlite3", "ours vs floor"],
    )
    floor.add(f"commands/s against rows/s, 1 client (median of {sizes.floor_rounds} alternating rounds of "
              f"{sizes.floor_orders * 5:,} each)",
              count(ours.floor_one_client), count(ours.floor), ratio(ours.floor_one_client, ours.floor))
    floor.notes += [
        "bare sqlite3 (bench/sqlite_floor.py): one connection, WAL, synchronous=FULL, the store's events table "
        "and index, BEGIN IMMEDIATE + INSERT + COMMIT per row, rows shaped like a lifecycle's (5 versions a "
        "stream); no encoding, no version check, no event loop: what a disk and SQLite allow one client",
        "ours: the same 1-client lifecycles as above (a command = decide + append + one fsync of the WAL); "
        "rounds alternate bare, ours, bare, ours... on files in the same folder",
    ]
    goals = goals_table("Store goals (issues 3, 12)", [
        Goal("1 client", ">= 0.7x a bare sqlite3 loop (1 durable commit per row)",
             ratio(ours.floor_one_client, ours.floor), ours.floor_one_client >= 0.7 * ours.floor),
        Goal(f"{sizes.clients} clients", ">= 5x peer (aim 8x)", ratio(ours.many_clients, peer.many_clients),
             ours.many_clients >= 5 * peer.many_clients),
        Goal("rebuild", ">= 100,000 events/s", count(ours.rebuild), ours.rebuild >= 100_000),
        Goal("load a 5-event order", "< 60 µs", f"{us(ours.load)} µs", ours.load < 60e-6),
    ])
    return [table, floor, goals]
