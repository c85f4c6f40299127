"""`order-machine demo`: the four reference order scenarios on in-memory orders, each order's path printed.

Runs the compiled order machine with a started event bus (stopped at the end) and prints the path the
bus saw for every order. Imports `order`, `bus` and `events`; touches no store.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..bus import EventBus
from ..errors import TransitionNotAllowedError
from ..events import StateChanged
from ..machine import Machine
from ..order import Order, OrderAction, default_definitions_dir, order_machine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the four reference order scenarios in memory and print each order's path",
        description="Complete workflow, cancellation from three states, return, and a refused transition, "
                    "on in-memory orders driven by the order definition. Touches no database.",
        epilog="""\
examples:
  order-machine demo                                  # the order definition found as below
  order-machine demo --definition my/order.yaml       # an order definition of your own

Without --definition: order.yaml in $ORDER_MACHINE_DEFINITIONS, else in ./definitions when it is there,
else the one shipped with order-machine.
""", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--definition", metavar="FILE", default=None,
                        help="the order definition (default: order.yaml of the definitions folder, below)")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    file = Path(args.definition) if args.definition else default_definitions_dir() / "order.yaml"
    machine = order_machine(file)
    bus = EventBus()
    paths: dict[str, list[StateChanged]] = {}
    bus.subscribe(lambda e: paths.setdefault(e.entity_id, []).append(e), StateChanged)
    await bus.start()
    try:
        notes = await _scenarios(machine, bus)
    finally:
        await bus.stop()
    print(f"order-machine demo: {machine.name} v{machine.definition.version} from {file}")
    for title, orders in notes:
        print(f"\n{title}")
        for order, note in orders:
            print(f"  {describe(order.id, order.state, paths.get(order.id, []))}{note}")
    metrics = bus.metrics()
    print(f"\n{metrics.published} machine events published, {metrics.processed} handled, {metrics.failed} failed")
    return 0


def describe(entity_id: str, final: str, changes: list[StateChanged]) -> str:
    """`ord-1: Pending -Confirm-> Confirmed -StartProcessing-> Processing`."""
    if not changes:
        return f"{entity_id}: {final}"
    text = f"{entity_id}: {changes[0].source}"
    for change in changes:
        text += f" -{change.action}-> {change.target}"
    return text


Notes = list[tuple[str, list[tuple[Order, str]]]]


async def _scenarios(machine: Machine, bus: EventBus) -> Notes:
    async def new(order_id: str, customer: str, items: list[str], amount: str) -> Order:
        order = Order(machine, order_id, customer, items=items, amount=Decimal(amount), publisher=bus)
        await order.initialise()
        return order

    async def through(order: Order, *steps: Callable[[Order], Awaitable[bool]]) -> Order:
        for step in steps:
            if not await step(order):
                raise RuntimeError(f"demo step refused for {order.id} in {order.state}")  # the demo itself is wrong
        return order

    def confirm(o: Order) -> Awaitable[bool]:
        return o.confirm()

    def start(o: Order) -> Awaitable[bool]:
        return o.start_processing()

    def ship_to(tracking: str, address: str) -> Callable[[Order], Awaitable[bool]]:
        return lambda o: o.ship(tracking, address)

    def deliver(o: Order) -> Awaitable[bool]:
        return o.deliver()

    complete = await through(await new("ord-1", "customer-1", ["Laptop", "Mouse", "Keyboard"], "1299.99"),
                             confirm, start, ship_to("TRK123456789", "123 Main St, City, State"), deliver)
    cancelled = []
    for order_id, customer, item, amount, before, reason in (
        ("ord-2", "customer-2", "Book", "29.99", (), "Customer requested cancellation"),
        ("ord-3", "customer-3", "Phone", "599.99", (confirm,), "Out of stock"),
        ("ord-4", "customer-4", "Tablet", "399.99", (confirm, start), "Quality issue"),
    ):
        order = await through(await new(order_id, customer, [item], amount), *before)
        await order.cancel(reason)
        cancelled.append((order, f"  (reason: {order.cancellation_reason})"))
    returned = await through(await new("ord-5", "customer-5", ["Headphones", "Charger"], "199.99"),
                             confirm, start, ship_to("TRK987654321", "456 Oak Ave, Town, State"), deliver)
    await returned.return_order("Defective product")
    refused = await new("ord-7", "customer-7", ["Watch"], "299.99")
    try:
        await refused.fire(OrderAction.Ship, tracking_number="TRK-INVALID", shipping_address="Invalid Address")
        refusal = "  (unexpectedly accepted)"
    except TransitionNotAllowedError as exc:
        refusal = f" -Ship-> refused: {exc.reason}; allowed now: {', '.join(exc.allowed)}"
    return [
        ("complete workflow", [(complete, f"  (tracking {complete.tracking_number})")]),
        ("cancellation from three states", cancelled),
        ("return", [(returned, f"  (reason: {returned.return_reason})")]),
        ("invalid transition", [(refused, refusal)]),
    ]
