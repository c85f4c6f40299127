"""The peer of the store bench: the `eventsourcing` library (9.x) on SQLite, used as its docs show.

An `Aggregate` with the order's 5 commands, an `Application` that loads, applies and saves each
command, and a materialised view (a `SQLiteTrackingRecorder` subclass) projected 1 event per txn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteCursor, SQLiteTrackingRecorder

# the same graph as definitions/order.yaml, as a peer user would hand-write it
ALLOWED = {
    ("Pending", "Confirm"): "Confirmed", ("Confirmed", "StartProcessing"): "Processing",
    ("Processing", "Ship"): "Shipped", ("Shipped", "Deliver"): "Delivered",
    ("Pending", "Cancel"): "Cancelled", ("Confirmed", "Cancel"): "Cancelled",
    ("Processing", "Cancel"): "Cancelled", ("Delivered", "Return"): "Returned",
}


class PeerOrder(Aggregate):
    """The order as an eventsourcing aggregate: commands check the table, @event methods apply."""

    @event("Created")
    def __init__(self, customer_id: str, amount: Decimal, description: str = "") -> None:
        self.customer_id = customer_id
        self.amount = amount
        self.description = description
        self.status = "Pending"
        self.tracking_number: str | None = None
        self.shipping_address: str | None = None

    def _target(self, action: str) -> str:
        target = ALLOWED.get((self.status, action))
        if target is None:
            raise ValueError(f"order {self.id}: cannot {action} while {self.status}")
        return target

    def confirm(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"order {self.id}: nothing to confirm")
        self._confirmed(self._target("Confirm"))

    def start_processing(self) -> None:
        self._processing_started(self._target("StartProcessing"))

    def ship(self, tracking_number: str, shipping_address: str) -> None:
        self._shipped(self._target("Ship"), tracking_number, shipping_address)

    def deliver(self) -> None:
        self._delivered(self._target("Deliver"))

    @event("Confirmed")
    def _confirmed(self, status: str) -> None:
        self.status = status

    @event("ProcessingStarted")
    def _processing_started(self, status: str) -> None:
        self.status = status

    @event("Shipped")
    def _shipped(self, status: str, tracking_number: str, shipping_address: str) -> None:
        self.status = status
        self.tracking_number = tracking_number
        self.shipping_address = shipping_address

    @event("Delivered")
    def _delivered(self, status: str) -> None:
        self.status = status


# the event classes the @event decorators made (typed Any: mypy cannot see them)
CREATED: Any = PeerOrder.Created
SHIPPED: Any = getattr(PeerOrder, "Shipped")


class PeerOrders(Application[UUID]):
    """Each command: load the order from its events, apply, save (one transaction)."""

    def create_order(self, customer_id: str, amount: Decimal) -> UUID:
        order = PeerOrder(customer_id, amount)
        self.save(order)
        return order.id

    def act(self, order_id: UUID, action: str, **data: Any) -> None:
        order: PeerOrder = self.repository.get(order_id)
        getattr(order, action)(**data)
        self.save(order)


def open_peer(path: Path) -> PeerOrders:
    """The peer application on a SQLite file (WAL, synchronous=FULL: the library's defaults)."""
    return PeerOrders(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


def lifecycle(app: PeerOrders, i: int) -> None:
    order_id = app.create_order(f"c-{i}", Decimal("99.50"))
    app.act(order_id, "confirm")
    app.act(order_id, "start_processing")
    app.act(order_id, "ship", tracking_number=f"TRK-{i}", shipping_address="1 Harbour Road")
    app.act(order_id, "deliver")


def run_commands(app: PeerOrders, first: int, orders: int, clients: int) -> float:
    """Seconds for lifecycles first..first+orders-1 (5 commands each) shared by `clients` threads."""
    errors: list[BaseException] = []
    events_before = app.recorder.max_notification_id() or 0

    def client(start: int) -> None:
        try:
            for i in range(start, first + orders, clients):
                lifecycle(app, i)
        except BaseException as exc:  # reported after the join, never swallowed
            errors.append(exc)

    started = time.perf_counter()
    if clients == 1:
        client(first)
    else:
        threads = [threading.Thread(target=client, args=(first + c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"eventsourcing client failed: {errors[0]!r}") from errors[0]
    written = (app.recorder.max_notification_id() or 0) - events_before
    if written != orders * 5:
        raise AssertionError(f"eventsourcing recorded {written} events for {orders} lifecycles")
    return seconds


def seed(app: PeerOrders, orders: int, per_txn: int = 200) -> list[UUID]:
    """Write `orders` delivered orders (5 events each) quickly: many aggregates per save."""
    ids: list[UUID] = []
    batch: list[PeerOrder] = []
    for i in range(orders):
        order = PeerOrder(f"c-{i}", Decimal("99.50"))
        order.confirm()
        order.start_processing()
        order.ship(f"TRK-{i}", "1 Harbour Road")
        order.deliver()
        batch.append(order)
        ids.append(order.id)
        if len(batch) == per_txn:
            app.save(*batch)
            batch = []
    if batch:
        app.save(*batch)
    return ids


def load_seconds(app: PeerOrders, ids: Sequence[UUID]) -> float:
    """Seconds to load every order of `ids` (5 events each), one after another."""
    started = time.perf_counter()
    for order_id in ids:
        order: PeerOrder = app.repository.get(order_id)
        assert order.status == "Delivered"
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the projection


class OrderView(SQLiteTrackingRecorder):
    """A materialised view: one row per order, written with the tracking record in one transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                "CREATE TABLE IF NOT EXISTS order_view (id TEXT PRIMARY KEY, customer_id TEXT, status TEXT, "
                "amount TEXT, tracking_number TEXT, shipping_address TEXT, updated_at TEXT, version INTEGER)",
                "CREATE INDEX IF NOT EXISTS order_view_customer ON order_view (customer_id)",
                "CREATE INDEX IF NOT EXISTS order_view_status ON order_view (status)"]

    def created(self, order_id: UUID, customer_id: str, amount: Decimal, at: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute("INSERT INTO order_view (id, customer_id, status, amount, updated_at, version) "
                      "VALUES (?, ?, 'Pending', ?, ?, 1)", (order_id.hex, customer_id, str(amount), at))
            self._insert_tracking(c, tracking)

    def moved(self, order_id: UUID, status: str, version: int, at: str, tracking: Tracking,
              shipping: tuple[str, str] | None = None) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._update(c, order_id, status, version, at, shipping)
            self._insert_tracking(c, tracking)

    def _update(self, c: SQLiteCursor, order_id: UUID, status: str, version: int, at: str,
                shipping: tuple[str, str] | None) -> None:
        if shipping is None:
            c.execute("UPDATE order_view SET status = ?, version = ?, updated_at = ? WHERE id = ?",
                      (status, version, at, order_id.hex))
        else:
            c.execute("UPDATE order_view SET status = ?, version = ?, updated_at = ?, tracking_number = ?, "
                      "shipping_address = ? WHERE id = ?", (status, version, at, *shipping, order_id.hex))

    def rows(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM order_view")
            return int(c.fetchone()[0])


class OrderViewProjection(Projection[Any]):
    """Applies each order event to its view, SQLite or PostgreSQL (the library's Projection: one call per event)."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        at = domain_event.timestamp.isoformat()
        if isinstance(domain_event, CREATED):
            self.view.created(domain_event.originator_id, domain_event.customer_id, domain_event.amount,
                              at, tracking)
        elif isinstance(domain_event, SHIPPED):
            self.view.moved(domain_event.originator_id, domain_event.status, domain_event.originator_version,
                            at, tracking, (domain_event.tracking_number, domain_event.shipping_address))
        else:
            self.view.moved(domain_event.originator_id, domain_event.status, domain_event.originator_version,
                            at, tracking)


def rebuild(app: PeerOrders, view_path: Path, limit: int | None = None, batch: int = 500) -> tuple[float, int]:
    """Project events from notification 1 into a fresh view (all, or the first `limit`): (events/s, events).

    The SQLite recorder has no subscription, so this follower does what ProjectionRunner does
    without one: read notifications in order, map each to its domain event, process_event().
    Checks afterwards that the view tracked every event and holds a row per order created.
    """
    from eventsourcing.persistence import InfrastructureFactory

    factory = InfrastructureFactory.construct(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(view_path)}
    )
    try:
        view = cast(OrderView, factory.tracking_recorder(OrderView))
        projection = OrderViewProjection(view=view)
        position = view.max_tracking_id(app.name) or 0
        events = created = 0
        wanted = limit if limit is not None else float("inf")
        started = time.perf_counter()
        while events < wanted and (notifications := app.recorder.select_notifications(
                start=position, limit=int(min(batch, wanted - events)), inclusive_of_start=False)):
            for notification in notifications:
                domain_event = app.mapper.to_domain_event(notification)
                projection.process_event(domain_event, Tracking(app.name, notification.id))
                created += isinstance(domain_event, CREATED)
                position = notification.id
                events += 1
        seconds = time.perf_counter() - started
        if view.max_tracking_id(app.name) != position or view.rows() != created:
            raise AssertionError(f"eventsourcing view: tracked {view.max_tracking_id(app.name)} of {position}, "
                                 f"{view.rows()} rows for {created} orders")
    finally:
        factory.close()
    return events / seconds, events


__all__ = ["PeerOrders", "lifecycle", "load_seconds", "open_peer", "rebuild", "run_commands", "seed"]
