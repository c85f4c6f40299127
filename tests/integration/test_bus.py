"""The in-process event bus: delivery by type (subclasses too) and to all, isolation of failing handlers,
metrics, streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from order_machine.bus import EventBus
from order_machine.events import StateChanged, StoredEvent, utcnow
from waiting import eventually


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class LoudPing(Ping):
    volume: int = 11


@dataclass(frozen=True)
class Pong:
    n: int


async def test_a_hundred_events_published_concurrently_are_all_processed_and_streamed() -> None:
    bus = EventBus()
    handled: list[int] = []
    bus.subscribe(lambda e: handled.append(e.n), Ping)
    streamed: list[int] = []

    async def follow() -> None:
        async for event in bus.stream():
            streamed.append(event.n)

    await bus.start()
    follower = asyncio.create_task(follow())
    await eventually(lambda: bus.metrics().listeners == 2, what="the stream listening")  # before anything is published
    await asyncio.gather(*(bus.publish(Ping(i)) for i in range(100)))
    await bus.stop()
    await follower
    metrics = bus.metrics()
    assert sorted(handled) == list(range(100)) and sorted(streamed) == list(range(100))
    assert (metrics.published, metrics.processed, metrics.failed, metrics.queue_size) == (100, 100, 0, 0)
    assert metrics.processing_seconds >= 0


async def test_a_failing_handler_is_counted_and_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    async def working(event: object) -> None:
        seen.append(type(event).__name__)

    bus.subscribe(broken, "Ping")
    bus.subscribe(working)  # every event
    await bus.start()
    await bus.publish(Ping(1))
    await bus.publish(StateChanged("o-1", "order", "Pending", "Confirmed", "Confirm", utcnow()))
    await bus.stop()
    assert seen == ["Ping", "StateChanged"]
    metrics = bus.metrics()
    assert (metrics.published, metrics.processed, metrics.failed) == (2, 1, 1)


async def test_handlers_are_chosen_by_event_type_and_can_unsubscribe() -> None:
    bus = EventBus()
    pings: list[int] = []
    unsubscribe = bus.subscribe(lambda e: pings.append(e.n), Ping)
    await bus.start()
    await bus.publish(Ping(1))
    await bus.publish(StateChanged("o-1", "order", "Pending", "Confirmed", "Confirm", utcnow()))
    await bus.join()
    unsubscribe()
    await bus.publish(Ping(2))
    await bus.stop()
    assert pings == [1]


async def test_events_published_before_start_are_delivered_once_it_starts() -> None:
    bus = EventBus()
    got: list[int] = []
    bus.subscribe(lambda e: got.append(e.n), Ping)
    await bus.publish(Ping(7))
    assert got == [] and bus.metrics().queue_size == 1
    await bus.start()
    await bus.stop()
    assert got == [7]


async def test_publishing_with_no_subscriber_costs_nothing_but_is_counted() -> None:
    bus = EventBus()
    await bus.publish(Ping(1))
    assert (bus.metrics().published, bus.metrics().processed, bus.metrics().queue_size) == (1, 1, 0)


async def test_a_handler_of_a_base_class_receives_its_subclasses_events_and_no_others() -> None:
    bus = EventBus()
    pings: list[str] = []
    loud: list[int] = []
    unsubscribe = bus.subscribe(lambda e: pings.append(f"{type(e).__name__} {e.n}"), Ping)
    bus.subscribe(lambda e: loud.append(e.n), LoudPing)
    await bus.start()
    for event in (Ping(1), LoudPing(2), Pong(3), StateChanged("o-1", "order", "Pending", "Confirmed", "Confirm",
                                                              utcnow())):
        await bus.publish(event)
    await bus.join()
    unsubscribe()  # the cached choice of handlers is forgotten with it
    await bus.publish(LoudPing(4))
    await bus.stop()
    assert pings == ["Ping 1", "LoudPing 2"]
    assert loud == [2, 4]


async def test_a_class_and_its_name_both_reach_an_event_known_by_its_type_name() -> None:
    bus = EventBus()
    by_class: list[int] = []
    by_name: list[int] = []
    bus.subscribe(lambda e: by_class.append(e.position), Ping)  # a stored event names its type, it is no Ping
    bus.subscribe(lambda e: by_name.append(e.position), "LoudPing")  # a name matches that name only
    await bus.start()
    for position, kind in enumerate(("Ping", "LoudPing", "Pong"), 1):
        await bus.publish(StoredEvent(position, "s-1", position, kind, 1, {}, {}, utcnow()))
    await bus.stop()
    assert by_class == [1]
    assert by_name == [2]


async def test_order_transitions_reach_the_base_class_and_the_name_they_are_stored_under() -> None:
    from order_machine.events import OrderConfirmed, OrderTransitioned, build_transition

    bus = EventBus()
    every: list[str] = []
    held: list[str] = []
    bus.subscribe(lambda e: every.append(e.action), OrderTransitioned)
    bus.subscribe(lambda e: held.append(e.target), "OrderHeld")  # the transition's `emits:` in order.yaml
    await bus.start()
    await bus.publish(OrderConfirmed("o-1", utcnow(), "Pending", "Confirmed"))
    await bus.publish(build_transition(OrderTransitioned, "o-1", utcnow(), "Hold", "Confirmed", "OnHold", {}, {},
                                       emits="OrderHeld"))
    await bus.stop()
    assert every == ["Confirm", "Hold"]
    assert held == ["OnHold"]
