"""The application service: load -> fire -> append -> publish, and the queries over the read models.

The only orchestrator. Wires the domain (`order`, `machine`) to the store, the bus and the projections;
knows nothing of HTTP or the command line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from .actor import with_actor
from .bus import EventBus
from .new_ids import causation_id, new_id
from .commands import (
    ACTION_COMMANDS, AddOrderItem, CommandResult, CreateOrder, GetOrder, GetOrdersByCustomer, GetOrdersByStatus,
    GetOrderSummary, PerformAction, Query, UpdateOrderStatus, Command,
)
from .errors import (
    ConcurrencyError, InvalidCommandError, OrderExistsError, OrderNotFoundError, TransitionNotAllowedError,
)
from .events import OrderEvent, decode, encode
from .ids import check_id
from .machine import Machine
from .order import Order
from .projections import (
    OrderHistoryEntry, OrderReadModel, OrderSummaryReadModel, Page, ReadModels, check_stream,
)
from .store import EventStore
from .write_path import AggregateCache, StreamQueues, decide_and_save

logger = logging.getLogger(__name__)


@dataclass
class CommandCounters:
    """Commands by outcome, for /metrics."""

    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    invalid: int = 0
    conflict: int = 0
    not_found: int = 0
    events_appended: int = 0

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def _fingerprint(command: Command) -> str:
    body = command.model_dump(mode="json", exclude={"command_id"})
    raw = json.dumps([type(command).__name__, body], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class OrderCommandService:
    """Write side: every accepted command appends its events atomically, then publishes them."""

    def __init__(
        self,
        store: EventStore,
        machine: Machine,
        bus: EventBus | None = None,
        *,
        retries: int = 10,
        cache_size: int = 10_000,
        max_items: int = 1000,
    ) -> None:
        self.store, self.machine, self.bus = store, machine, bus
        self.retries = retries
        self.max_items = max_items
        self.counters = CommandCounters()
        # the orders this process saved last (write_path.AggregateCache says why a copy is safe)
        self._cache: AggregateCache[Order] = AggregateCache(cache_size)
        self._order_locks = StreamQueues()
        self._handlers: dict[type[Command], Callable[[Any], Awaitable[CommandResult]]] = {
            CreateOrder: self._create, AddOrderItem: self._add_item, PerformAction: self._perform,
            UpdateOrderStatus: self._update_status}

    @property
    def orders_in_flight(self) -> int:
        """Orders with a command of this process running or queued (each holds a lock until the last ends)."""
        return len(self._order_locks)

    async def load(self, order_id: str) -> Order:
        """The order rebuilt from its events; raises OrderNotFoundError."""
        stored = await self.store.load(order_id)
        if not stored:
            raise OrderNotFoundError(order_id)
        return Order.replay(self.machine, [decode(e) for e in stored])

    async def handle(self, command: Command) -> CommandResult:
        """Run any command model; the one entry point the API and CLI use."""
        try:
            result = await self._dispatch(command)
        except TransitionNotAllowedError:
            self.counters.count("refused")
            raise
        except InvalidCommandError:
            self.counters.count("invalid")
            raise
        except (ConcurrencyError, OrderExistsError):
            self.counters.count("conflict")
            raise
        except OrderNotFoundError:
            self.counters.count("not_found")
            raise
        self.counters.count("duplicate" if result.duplicate else "accepted")
        return result

    async def _dispatch(self, command: Command) -> CommandResult:
        # one table from command type to handler, not a chain of isinstance tests: a command type of the
        # order's lifecycle (ConfirmOrder, ShipOrder, ...) is one action of order.yaml with its data
        handler = self._handlers.get(type(command))
        if handler is not None:
            return await handler(command)
        action = ACTION_COMMANDS.get(type(command))
        if action is None:
            raise InvalidCommandError(f"unknown command {type(command).__name__}")
        data = command.model_dump(exclude={"command_id", "order_id"})
        order_id = getattr(command, "order_id")
        return await self._change(command, order_id, None, lambda o: o.fire(action, **data))

    async def _add_item(self, command: AddOrderItem) -> CommandResult:
        return await self._change(command, command.order_id, command.expected_version,
                                  lambda o: _add_item(o, command, self.max_items))

    async def _perform(self, command: PerformAction) -> CommandResult:
        return await self._change(command, command.order_id, command.expected_version,
                                  lambda o: o.fire(command.action, **command.data))

    async def _update_status(self, command: UpdateOrderStatus) -> CommandResult:
        return await self._change(command, command.order_id, command.expected_version,
                                  lambda o: self._to_status(o, command))

    async def _seen(self, command: Command) -> CommandResult | None:
        if command.command_id is None:
            return None
        first = await self.store.command_result(command.command_id)
        if first is None:
            return None
        # any later position is as good for read-your-writes as the first one
        return self._replayed(command, first, await self.store.last_position())

    def _replayed(self, command: Command, first: Mapping[str, Any], position: int) -> CommandResult:
        if first.get("fingerprint") != _fingerprint(command):
            raise InvalidCommandError(
                f"command id {command.command_id!r} was already used for a different request", "command_id"
            )
        body = {k: v for k, v in first.items() if k != "fingerprint"}
        return CommandResult(**body, position=position, duplicate=True)

    async def _create(self, command: CreateOrder) -> CommandResult:
        if (seen := await self._seen(command)) is not None:
            return seen
        if len(command.items) > self.max_items:
            raise InvalidCommandError(f"an order may hold at most {self.max_items} items, got {len(command.items)}",
                                      "items")
        order_id = command.order_id or new_id()
        order = Order.create(self.machine, order_id, command.customer_id,
                             [i.model_dump() for i in command.items], command.amount, command.description,
                             data=command.data)
        try:
            result = await self._save(command, order, 0)
        except ConcurrencyError:
            raise OrderExistsError(order_id) from None
        if not result.duplicate:  # else the store holds another command's order, not this copy
            self._cache.keep(order_id, order)
        return result

    async def _change(self, command: Command, order_id: str, expected: int | None, act: Any) -> CommandResult:
        async def change() -> CommandResult:
            if (seen := await self._seen(command)) is not None:
                return seen
            return await decide_and_save(
                order_id, self._cache, lambda: self.load(order_id), act,
                lambda order, version: self._save(command, order, version),
                expected=expected, retries=self.retries, on_refused=self._explain,
            )
        return await self._order_locks.run(order_id, change)

    async def _explain(self, order: Order, refused: TransitionNotAllowedError) -> None:
        refused.note_blocked(await blocked_actions(self.machine, order))

    async def _save(self, command: Command, order: Order, expected_version: int) -> CommandResult:
        pending: Sequence[OrderEvent] = order.take_pending_events()
        # causation: the command that caused these events; correlation: the conversation it belongs to
        # (the caller's command id when given, so retries of one request correlate)
        causation = command.command_id or causation_id()
        metadata = with_actor({"command_id": command.command_id, "causation_id": causation,
                               "correlation_id": causation})
        new_events = [encode(e, {**metadata, "command": type(command).__name__}) for e in pending]
        kinds = [e.type_name for e in pending]
        body = {"order_id": order.id, "state": order.state, "version": order.version, "events": kinds}
        # the result is only ever read back for a repeated command id: no id, nothing to record
        recorded = {**body, "fingerprint": _fingerprint(command)} if command.command_id is not None else None
        appended = await self.store.append(
            order.id, new_events, expected_version, command_id=command.command_id, result=recorded,
        )
        if appended.duplicate:
            return self._replayed(command, appended.result, appended.position)
        self.counters.events_appended += len(new_events)
        if self.bus is not None:
            for event in pending:
                await self.bus.publish(event)
        # every field comes from the order and the store, already of its type: no validation to run
        return CommandResult.model_construct(order_id=order.id, state=order.state, version=order.version,
                                             position=appended.position, events=kinds, duplicate=False)

    def _to_status(self, order: Order, command: UpdateOrderStatus) -> Any:
        target = command.status
        if target not in self.machine.states:
            raise InvalidCommandError(
                f"unknown status {target!r}; states: {', '.join(self.machine.states)}", "status"
            )
        actions = self.machine.target_actions(order.state, target)
        if not actions:
            raise TransitionNotAllowedError(
                order.id, f"move to {target}", order.state, order.allowed_actions,
                reason=f"no declared action leads from {order.state!r} to {target!r}",
            )
        if len(actions) > 1:
            raise InvalidCommandError(
                f"several actions lead to {target!r} ({', '.join(actions)}); name the action instead", "status"
            )
        return order.fire(actions[0], **command.data)


def _add_item(order: Order, command: AddOrderItem, max_items: int) -> None:
    if len(order.items) >= max_items:
        raise InvalidCommandError(f"order {order.id} holds {len(order.items)} items, the most an order may hold",
                                  "items")
    order.add_item(command.product_id, command.quantity, Decimal(command.unit_price))


class ProjectionFollower(Protocol):
    """What read-your-writes waits on: a ProjectionRunner, or on PostgreSQL the leased projection worker."""

    async def wait_for(self, position: int, timeout: float = 5.0) -> bool: ...


class OrderApplicationService:
    """The application service: commands through the write side, queries on the read models.

    Read-your-writes (on by default) is kept where it is needed, at read time: a command returns as soon
    as its events are durable, and a query waits (at most `wait_seconds`) until the read models show
    what it must: a query about one order, every event the store held for that order when the query
    began (whichever process wrote them); a list, every event this process appended before it.
    So commands never wait for the projections, and a read waits only when it would be stale.
    """

    def __init__(
        self,
        commands: OrderCommandService,
        read_models: ReadModels,
        runner: ProjectionFollower | None = None,
        *,
        read_your_writes: bool = True,
        wait_seconds: float = 2.0,
    ) -> None:
        self.commands, self.read_models, self.runner = commands, read_models, runner
        self.read_your_writes, self.wait_seconds = read_your_writes, wait_seconds
        self.machine = commands.machine
        self.written = 0  # the last position this process appended (what a list must show)

    async def handle(self, command: Command) -> CommandResult:
        result = await self.commands.handle(command)
        if result.position > self.written:
            self.written = result.position
        return result

    async def _show(self, position: int) -> None:
        """Wait until the read models applied `position` (read-your-writes), at most wait_seconds."""
        if position and self.read_your_writes and self.runner is not None:
            if not await self.runner.wait_for(position, self.wait_seconds):
                logger.warning("projections did not reach position %d within %.1fs; answering from the "
                               "read models as they are", position, self.wait_seconds)

    async def _show_order(self, order_id: str) -> int | None:
        """Wait until the read models applied every event the store holds for this order now; returns the
        order's version then (None when reads do not wait)."""
        if self.read_your_writes and self.runner is not None:
            version, position = await self.commands.store.stream_head(order_id)
            await self._show(position)
            return version
        return None

    async def _not_quarantined(self, order_id: str, projection: str, shown: int | None, version: int | None) -> None:
        """StreamQuarantinedError when `projection` set this order aside. Only a view behind the order's events
        can be, so a view that shows the version the store has costs no lookup."""
        if shown is None or version is None or shown < version:
            await check_stream(self.read_models, order_id, projection)

    # ----------------------------------------------------------------- queries

    async def ask(self, query: Query) -> Any:
        """Answer a query object (GetOrder, GetOrdersByCustomer, ...)."""
        if isinstance(query, GetOrder):
            return await self.get_order(query.order_id)
        if isinstance(query, GetOrderSummary):
            return await self.get_order_summary(query.order_id)
        if isinstance(query, GetOrdersByCustomer):
            return await self.get_orders_by_customer(query.customer_id, limit=query.limit, cursor=query.cursor)
        if isinstance(query, GetOrdersByStatus):
            return await self.list_orders(status=query.status, limit=query.limit, cursor=query.cursor)
        raise InvalidCommandError(f"unknown query {type(query).__name__}")

    async def get_order(self, order_id: str) -> OrderReadModel:
        check_id(order_id, "order_id")  # Python callers too: a NUL must never reach a store's query
        version = await self._show_order(order_id)
        order = await self.read_models.get_order(order_id)
        await self._not_quarantined(order_id, "orders", order.version if order else None, version)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    async def get_order_summary(self, order_id: str) -> OrderSummaryReadModel:
        check_id(order_id, "order_id")
        version = await self._show_order(order_id)
        summary = await self.read_models.get_summary(order_id)
        await self._not_quarantined(order_id, "orders", None, version)  # a summary shows no version to compare
        if summary is None:
            raise OrderNotFoundError(order_id)
        return summary

    async def get_orders_by_customer(self, customer_id: str, *, status: str | None = None, limit: int = 50,
                                     cursor: str | None = None) -> Page[OrderReadModel]:
        check_id(customer_id, "customer_id")
        await self._show(self.written)
        return await self.read_models.orders_by_customer(customer_id, status=status, limit=limit, cursor=cursor)

    async def get_orders_by_status(self, status: str, *, limit: int = 50,
                                   cursor: str | None = None) -> Page[OrderReadModel]:
        await self._show(self.written)
        return await self.read_models.orders_by_status(status, limit=limit, cursor=cursor)

    async def list_orders(self, *, customer_id: str | None = None, status: str | None = None, limit: int = 50,
                          cursor: str | None = None) -> Page[OrderReadModel] | Page[OrderSummaryReadModel]:
        """Orders of a customer, in a status, or (neither given) the most recently updated."""
        if status is not None and status not in self.machine.states:
            raise InvalidCommandError(f"unknown status {status!r}; states: {', '.join(self.machine.states)}", "status")
        if customer_id is not None:
            return await self.get_orders_by_customer(customer_id, status=status, limit=limit, cursor=cursor)
        if status is not None:
            return await self.get_orders_by_status(status, limit=limit, cursor=cursor)
        await self._show(self.written)
        return await self.read_models.recently_updated(limit=limit, cursor=cursor)

    async def get_order_history(self, order_id: str, *, after_version: int = 0,
                                limit: int = 100) -> list[OrderHistoryEntry]:
        check_id(order_id, "order_id")
        if after_version == 0:  # the first page; the next ones follow it
            await self._show_order(order_id)
            await self._not_quarantined(order_id, "order_history", None, None)
        history = await self.read_models.order_history(order_id, after_version=after_version, limit=limit)
        if not history and after_version == 0:
            raise OrderNotFoundError(order_id)
        return history

    async def allowed_actions(self, order_id: str) -> list[dict[str, Any]]:
        """The actions the order's state allows (from its events), with their data fields, and for each the
        guard that would refuse it right now (`blocked_by`, None when none would)."""
        check_id(order_id, "order_id")
        order = await self.commands.load(order_id)
        out = []
        for action in order.allowed_actions:
            spec = self.machine.action_spec(action)
            fields = {n: f.model_dump(include={"type", "required", "description"}) for n, f in spec.fields.items()} \
                if spec is not None else {}
            guard = await self.machine.blocked_by(order.state, action, order)
            blocked = None if guard is None else {"guard": guard, "description": self.machine.guard_description(guard)}
            out.append({"action": action, "description": spec.description if spec else "", "fields": fields,
                        "blocked_by": blocked})
        return out


async def blocked_actions(machine: Machine, order: Order) -> list[tuple[str, str, str]]:
    """The order's allowed actions that a guard refuses right now: (action, guard, its description)."""
    found = []
    for action in order.allowed_actions:
        guard = await machine.blocked_by(order.state, action, order)
        if guard is not None:
            found.append((action, guard, machine.guard_description(guard)))
    return found
