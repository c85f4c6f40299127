"""The event store contract: every backend (memory, SQLite, PostgreSQL) passes these same tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from waiting import eventually_async

from order_machine.errors import ConcurrencyError, StoreError
from order_machine.events import NewEvent
from order_machine.store import AppendResult, EventStore


def event(kind: str = "Happened", **data: object) -> NewEvent:
    return NewEvent(kind, dict(data))


def single_writer(store: EventStore) -> bool:
    """Memory and SQLite number events 1, 2, 3... and show them to readers at once.

    PostgreSQL's positions only increase, and readers see an event once every older transaction in
    the cluster has ended (DESIGN 3): global reads there may lag a committed append, briefly.
    """
    return store.url.split(":", 1)[0] in ("memory", "sqlite")


async def visible(store: EventStore, position: int, timeout: float = 10.0) -> None:
    """Wait until global readers see `position`; a single-writer store must show it at once."""
    if single_writer(store):
        assert await store.last_position() >= position
        return

    async def shown() -> bool:
        return await store.last_position() >= position

    await eventually_async(shown, within=timeout, what=f"position {position} visible to readers")


async def test_an_appended_event_loads_back_with_every_field(store: EventStore) -> None:
    at = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)
    created = NewEvent("OrderCreated", {"customer_id": "c-1", "amount": str(Decimal("19.99")),
                                        "items": [{"product_id": "p-1", "quantity": 2, "unit_price": "9.995"}]},
                       schema_version=2, metadata={"correlation_id": "corr-1", "causation_id": "cause-1"},
                       recorded_at=at)
    appended = await store.append("o-1", [created], 0, command_id="cmd-1", result={"order_id": "o-1"})
    assert appended == AppendResult("o-1", 1, appended.position, False, {"order_id": "o-1"})
    [loaded] = await store.load("o-1")
    assert (loaded.position, loaded.stream_id, loaded.version) == (appended.position, "o-1", 1)
    assert (loaded.type, loaded.schema_version) == ("OrderCreated", 2)
    assert loaded.data == {"customer_id": "c-1", "amount": "19.99",
                           "items": [{"product_id": "p-1", "quantity": 2, "unit_price": "9.995"}]}
    assert Decimal(loaded.data["amount"]) == Decimal("19.99")
    assert loaded.metadata == {"correlation_id": "corr-1", "causation_id": "cause-1", "command_id": "cmd-1"}
    assert loaded.recorded_at == at and loaded.recorded_at.utcoffset() == timedelta(0)


async def test_a_time_in_another_zone_is_stored_as_the_same_instant_in_utc(store: EventStore) -> None:
    paris = datetime(2024, 5, 17, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    await store.append("o-1", [NewEvent("Happened", {}, recorded_at=paris)], 0)
    [loaded] = await store.load("o-1")
    assert loaded.recorded_at == paris
    assert loaded.recorded_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", [
    NewEvent("Happened", {"amount": Decimal("1.50")}),
    NewEvent("Happened", {"ratio": float("nan")}),
    NewEvent("Happened", {}, recorded_at=datetime(2024, 1, 1)),
    NewEvent("", {}),
    NewEvent("Happened", {}, schema_version=0),
], ids=["decimal", "nan", "naive-time", "no-type", "schema-version-0"])
async def test_an_unstorable_event_is_refused_and_nothing_of_its_append_is_written(
    store: EventStore, bad: NewEvent
) -> None:
    with pytest.raises(StoreError, match="o-1"):
        await store.append("o-1", [event("Fine"), bad], 0)
    assert await store.load("o-1") == []
    assert await store.last_position() == 0


async def test_a_stale_version_raises_and_writes_nothing(store: EventStore) -> None:
    appended = await store.append("o-1", [event("A"), event("B")], 0)
    with pytest.raises(ConcurrencyError) as refused:
        await store.append("o-1", [event("C"), event("D")], 1)
    assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == ("o-1", 1, 2)
    assert [e.type for e in await store.load("o-1")] == ["A", "B"]
    await visible(store, appended.position)
    assert await store.last_position() == appended.position


async def test_expecting_a_new_stream_fails_when_the_stream_exists(store: EventStore) -> None:
    await store.append("o-1", [event()], 0)
    with pytest.raises(ConcurrencyError):
        await store.append("o-1", [event()], 0)
    assert len(await store.load("o-1")) == 1


async def test_expecting_a_version_the_stream_has_not_reached_fails(store: EventStore) -> None:
    await store.append("o-1", [event()], 0)
    with pytest.raises(ConcurrencyError):
        await store.append("o-1", [event()], 5)
    assert [e.version for e in await store.load("o-1")] == [1]


async def test_several_events_are_appended_together_with_consecutive_versions(store: EventStore) -> None:
    await store.append("o-1", [event("A")], 0)
    appended = await store.append("o-1", [event("B"), event("C"), event("D")], 1)
    loaded = await store.load("o-1")
    assert [(e.type, e.version) for e in loaded] == [("A", 1), ("B", 2), ("C", 3), ("D", 4)]
    assert appended.version == 4 and appended.position == loaded[-1].position
    positions = [e.position for e in loaded]
    assert positions == sorted(set(positions))
    if single_writer(store):
        assert positions == [1, 2, 3, 4]


async def test_load_starts_at_the_version_asked_for(store: EventStore) -> None:
    await store.append("o-1", [event("A"), event("B"), event("C")], 0)
    assert [e.type for e in await store.load("o-1", from_version=2)] == ["B", "C"]
    assert await store.load("o-1", from_version=4) == []
    assert await store.load("unknown") == []


async def test_stream_head_is_the_version_and_position_of_the_streams_last_event(store: EventStore) -> None:
    assert await store.stream_head("nope") == (0, 0)
    await store.append("a", [event(n=i) for i in range(20)], 0)  # longer than a loop read on SQLite
    other = await store.append("b", [event()], 0)
    last = await store.append("a", [event()], 20)
    assert await store.stream_head("a") == (21, last.position)
    assert await store.stream_head("b") == (1, other.position)


async def test_read_batch_follows_the_global_order_across_streams_after_a_position(store: EventStore) -> None:
    first = await store.append("o-1", [event("A")], 0)
    await store.append("o-2", [event("B"), event("C")], 0)
    last = await store.append("o-1", [event("D")], 1)
    await visible(store, last.position)
    everything = await store.read_batch()
    assert [(e.stream_id, e.type) for e in everything] == [("o-1", "A"), ("o-2", "B"), ("o-2", "C"), ("o-1", "D")]
    assert [e.position for e in everything] == sorted({e.position for e in everything})
    assert (everything[0].position, everything[-1].position) == (first.position, last.position)
    assert [e.type for e in await store.read_batch(after=first.position, limit=2)] == ["B", "C"]
    assert await store.read_batch(after=last.position) == []


async def test_read_all_yields_every_event_in_order_across_batches(store: EventStore) -> None:
    appended = [await store.append(f"o-{i}", [event("A"), event("B")], 0) for i in range(7)]
    await visible(store, appended[-1].position)
    every = [e async for e in store.read_all(batch_size=4)]
    assert [(e.stream_id, e.type) for e in every] == [(f"o-{i}", t) for i in range(7) for t in "AB"]
    later = [e.stream_id async for e in store.read_all(after=appended[1].position, batch_size=3)]
    assert later == [f"o-{i}" for i in range(2, 7) for _ in "AB"]


async def test_last_position_is_the_highest_position_written(store: EventStore) -> None:
    assert await store.last_position() == 0
    await store.append("o-1", [event(), event()], 0)
    appended = await store.append("o-2", [event()], 0)
    await visible(store, appended.position)
    assert await store.last_position() == appended.position
    assert appended.position == [e async for e in store.read_all()][-1].position


async def test_a_repeated_command_id_returns_the_first_result_and_appends_nothing(store: EventStore) -> None:
    first = await store.append("o-1", [event()], 0, command_id="cmd-1", result={"state": "Pending"})
    again = await store.append("o-1", [event()], 1, command_id="cmd-1", result={"state": "other"})
    assert again == AppendResult("o-1", first.version, first.position, True, {"state": "Pending"})
    assert len(await store.load("o-1")) == 1
    assert await store.command_result("cmd-1") == {"state": "Pending"}
    assert await store.command_result("never-sent") is None


async def test_a_repeated_command_id_wins_over_a_stale_version(store: EventStore) -> None:
    await store.append("o-1", [event()], 0, command_id="cmd-1")
    again = await store.append("o-1", [event()], 0, command_id="cmd-1")
    assert again.duplicate and again.version == 1


async def test_a_command_refused_for_its_version_can_be_retried_under_the_same_id(store: EventStore) -> None:
    await store.append("o-1", [event()], 0)
    with pytest.raises(ConcurrencyError):
        await store.append("o-1", [event()], 0, command_id="cmd-2")
    retried = await store.append("o-1", [event()], 1, command_id="cmd-2", result={"n": 2})
    assert (retried.duplicate, retried.version) == (False, 2)
    assert await store.command_result("cmd-2") == {"n": 2}


async def test_concurrent_repeats_of_one_command_append_once(store: EventStore) -> None:
    results = await asyncio.gather(*(
        store.append("o-1", [event()], 0, command_id="cmd-1", result={"try": i}) for i in range(20)))
    originals = [r for r in results if not r.duplicate]
    assert len(originals) == 1
    assert all((r.result, r.position) == (originals[0].result, originals[0].position) for r in results)
    assert len(await store.load("o-1")) == 1


async def test_of_fifty_concurrent_appends_at_one_version_exactly_one_wins(store: EventStore) -> None:
    await store.append("o-1", [event()], 0)
    outcomes = await asyncio.gather(*(store.append("o-1", [event(n=i)], 1) for i in range(50)),
                                    return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, AppendResult)]
    assert len(won) == 1
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if o not in won)
    loaded = await store.load("o-1")
    assert [e.version for e in loaded] == [1, 2] and loaded[-1].position == won[0].position
    await visible(store, won[0].position)
    assert len([e async for e in store.read_all()]) == 2


async def test_two_hundred_concurrent_appends_to_different_streams_all_succeed_in_one_order(store: EventStore) -> None:
    results = await asyncio.gather(*(store.append(f"o-{i:03}", [event(n=i)], 0) for i in range(200)))
    await visible(store, max(r.position for r in results))
    events = [e async for e in store.read_all(batch_size=64)]
    assert [e.position for e in events] == sorted({r.position for r in results})
    assert {e.stream_id: e.position for e in events} == {r.stream_id: r.position for r in results}
    if single_writer(store):
        assert [e.position for e in events] == list(range(1, 201))


async def test_stream_ids_page_through_every_stream_in_sorted_order(store: EventStore) -> None:
    for stream_id in ["o-3", "o-1", "o-5", "o-2", "o-4"]:
        await store.append(stream_id, [event(), event()], 0)
    assert await store.stream_ids(limit=2) == ["o-1", "o-2"]
    assert await store.stream_ids(after="o-2", limit=2) == ["o-3", "o-4"]
    assert await store.stream_ids(after="o-4") == ["o-5"]
    assert await store.stream_ids(after="o-5") == []


async def test_close_can_be_called_twice(store: EventStore) -> None:
    await store.append("o-1", [event()], 0)
    await store.close()
    await store.close()
