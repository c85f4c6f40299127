"""The PostgreSQL store's global order: late commits never skipped, rollbacks leave no trace, no table lock.

Transactions are held open on purpose with `store.transaction()`, so the interleavings are the ones named.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from integration.pg_support import pg_url, postgres_store
from waiting import eventually_async

from order_machine.errors import ConcurrencyError
from order_machine.events import NewEvent, StoredEvent
from order_machine.store import AppendResult
from order_machine.store.postgres import PostgresEventStore, PostgresTransaction

pytestmark = pytest.mark.postgres

Body = Callable[[PostgresTransaction], Awaitable[AppendResult]]
Hold = Callable[..., "HeldTransaction"]


@pytest.fixture
async def store() -> AsyncIterator[PostgresEventStore]:
    async with postgres_store(pool_size=12, pool_min_size=6) as pg:
        yield pg


@pytest.fixture
async def hold(store: PostgresEventStore) -> AsyncIterator[Hold]:
    """Start transactions held open; a failing test still ends them (before the schema is dropped)."""
    held: list[HeldTransaction] = []

    def start(body: Body, roll_back: bool = False) -> HeldTransaction:
        held.append(HeldTransaction(store, body, roll_back))
        return held[-1]

    yield start
    for transaction in held:
        transaction.task.cancel()
    await asyncio.gather(*(t.task for t in held), return_exceptions=True)


def event(n: int = 0) -> NewEvent:
    return NewEvent("Noted", {"n": n})


async def wait_until_blocked(store: PostgresEventStore, count: int = 1) -> None:
    """Wait until `count` of this store's statements are waiting on a lock (not merely slow)."""
    async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:

        async def blocked() -> bool:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND position(%s in query) > 0",
                (store.quoted_schema,),
            )
            row = await cur.fetchone()
            return row is not None and row[0] >= count

        await eventually_async(blocked, what=f"{count} statement(s) waiting on a lock")


class HeldTransaction:
    """Runs `body` in a store transaction in a task and keeps it open until `finish()`."""

    def __init__(self, store: PostgresEventStore, body: Body, roll_back: bool = False) -> None:
        self.ready, self.release = asyncio.Event(), asyncio.Event()
        self.roll_back = roll_back
        self.result: AppendResult | None = None
        self.task = asyncio.create_task(self._run(store, body))

    async def _run(self, store: PostgresEventStore, body: Body) -> None:
        try:
            async with store.transaction() as tx:
                self.result = await body(tx)
                self.ready.set()
                await self.release.wait()
                if self.roll_back:
                    raise _RollBack()
        except _RollBack:
            pass

    async def started(self) -> AppendResult:
        await asyncio.wait_for(self.ready.wait(), 10)
        assert self.result is not None
        return self.result

    async def finish(self) -> None:
        self.release.set()
        await asyncio.wait_for(self.task, 10)


class _RollBack(Exception):
    pass


async def drain(store: PostgresEventStore, after: int = 0) -> list[StoredEvent]:
    return [e async for e in store.read_all(after, batch_size=7)]


async def test_a_follower_never_skips_an_event_that_commits_after_a_later_one(
    store: PostgresEventStore, hold: Hold
) -> None:
    slow = hold(lambda tx: tx.append("slow", [event(1)], 0))
    slow_appended = await slow.started()
    fast = await store.append("fast", [event(2)], 0)
    # the fast one committed first, yet it sorts after the slow one: a follower must not see it yet,
    # or its checkpoint would move past the slow event, which would then be skipped forever
    assert fast.position > slow_appended.position
    assert await store.read_batch(0) == []
    assert await store.last_position() == 0
    await slow.finish()
    seen = await drain(store)
    assert [(e.stream_id, e.position) for e in seen] == [("slow", slow_appended.position), ("fast", fast.position)]
    assert await store.last_position() == fast.position
    assert await store.read_batch(fast.position) == []


async def test_a_follower_reading_throughout_sees_slow_and_fast_commits_exactly_once(
    store: PostgresEventStore, hold: Hold
) -> None:
    seen: list[StoredEvent] = []

    async def follow() -> None:
        after = 0
        while batch := await store.read_batch(after, 100):
            seen.extend(batch)
            after = batch[-1].position

    slow = hold(lambda tx: tx.append("slow", [event(1), event(2)], 0))
    await slow.started()
    for i in range(3):
        await store.append(f"fast-{i}", [event(i)], 0)
        await follow()
    assert seen == []
    await slow.finish()
    await store.append("after", [event(9)], 0)
    await follow()
    assert [(e.stream_id, e.version) for e in seen] == [
        ("slow", 1), ("slow", 2), ("fast-0", 1), ("fast-1", 1), ("fast-2", 1), ("after", 1)
    ]


async def test_a_rolled_back_transaction_leaves_no_event_and_releases_the_follower(
    store: PostgresEventStore, hold: Hold
) -> None:
    doomed = hold(lambda tx: tx.append("doomed", [event(1)], 0), roll_back=True)
    await doomed.started()
    kept = await store.append("kept", [event(2)], 0)
    assert await store.read_batch(0) == []
    await doomed.finish()
    assert [(e.stream_id, e.position) for e in await drain(store)] == [("kept", kept.position)]
    assert await store.load("doomed") == []
    assert await store.stream_ids() == ["kept"]
    again = await store.append("doomed", [event(3)], 0)
    assert again.version == 1 and again.position > kept.position


async def test_appends_in_one_transaction_commit_together_in_order(store: PostgresEventStore) -> None:
    async with store.transaction() as tx:
        a = await tx.append("a", [event(1), event(2)], 0)
        b = await tx.append("b", [event(3)], 0)
    with pytest.raises(_RollBack):
        async with store.transaction() as tx:
            await tx.append("c", [event(4)], 0)
            raise _RollBack()
    seen = await drain(store)
    assert [(e.stream_id, e.version) for e in seen] == [("a", 1), ("a", 2), ("b", 1)]
    assert [e.position for e in seen] == [a.position - 1, a.position, b.position]
    assert await store.load("c") == []


async def test_two_transactions_on_one_stream_let_exactly_one_win(
    store: PostgresEventStore, hold: Hold
) -> None:
    first = hold(lambda tx: tx.append("o-1", [event(1)], 0))
    await first.started()
    second = asyncio.create_task(store.append("o-1", [event(2)], 0))
    await wait_until_blocked(store)
    await first.finish()
    with pytest.raises(ConcurrencyError) as refused:
        await second
    assert (refused.value.expected, refused.value.actual) == (0, 1)
    assert [e.data for e in await store.load("o-1")] == [{"n": 1}]


async def test_the_waiting_writer_wins_when_the_first_rolls_back(
    store: PostgresEventStore, hold: Hold
) -> None:
    await store.append("o-1", [event(0)], 0)
    first = hold(lambda tx: tx.append("o-1", [event(1)], 1), roll_back=True)
    await first.started()
    second = asyncio.create_task(store.append("o-1", [event(2)], 1))
    await wait_until_blocked(store)
    await first.finish()
    assert (await second).version == 2
    assert [e.data for e in await store.load("o-1")] == [{"n": 0}, {"n": 2}]


async def test_a_command_id_sent_twice_at_once_appends_once_and_returns_the_first_result(
    store: PostgresEventStore, hold: Hold
) -> None:
    first = hold(
        lambda tx: tx.append("o-1", [event(1)], 0, command_id="cmd-1", result={"answer": 1})
    )
    appended = await first.started()
    twin = asyncio.create_task(store.append("o-1", [event(2)], 0, command_id="cmd-1", result={"answer": 2}))
    await wait_until_blocked(store)
    await first.finish()
    duplicate = await twin
    assert duplicate.duplicate and duplicate.result == {"answer": 1}
    assert (duplicate.version, duplicate.position) == (1, appended.position)
    assert [e.data for e in await store.load("o-1")] == [{"n": 1}]


async def test_writers_on_different_streams_do_not_wait_for_each_other(store: PostgresEventStore) -> None:
    all_appended = asyncio.Barrier(4)

    async def writer(i: int) -> None:
        async with store.transaction() as tx:
            await tx.append(f"w-{i}", [event(i)], 0)
            # each commits only once all four have appended: were one append waiting for another's commit (a
            # table lock), none would get past this
            async with asyncio.timeout(10):
                await all_appended.wait()

    await asyncio.gather(*(writer(i) for i in range(4)))
    assert len(await drain(store)) == 4


async def test_many_writers_and_a_follower_see_every_committed_event_exactly_once(store: PostgresEventStore) -> None:
    rng = random.Random(6)
    plans = [[(rng.randint(1, 3), rng.random() < 0.2, rng.random() * 0.004) for _ in range(20)] for _ in range(8)]
    committed: dict[int, tuple[str, int]] = {}
    done = asyncio.Event()

    async def writer(w: int) -> None:
        versions = [0, 0, 0]
        for i, (count, roll_back, pause) in enumerate(plans[w]):
            stream = f"w{w}-{i % 3}"
            try:
                async with store.transaction() as tx:
                    appended = await tx.append(stream, [event(i)] * count, versions[i % 3])
                    await asyncio.sleep(pause)  # held open a random while: interleaves the writers
                    if roll_back:
                        raise _RollBack()
            except _RollBack:
                continue
            versions[i % 3] = appended.version
            for k in range(count):
                committed[appended.position - count + 1 + k] = (stream, appended.version - count + 1 + k)

    seen: list[StoredEvent] = []

    async def follower() -> None:
        after = 0
        while True:
            finished = done.is_set()  # read before the batch: events committed before `done` are then visible
            batch = await store.read_batch(after, 25)
            seen.extend(batch)
            if batch:
                after = batch[-1].position
            elif finished:
                return
            else:
                await asyncio.sleep(0.002)  # a follower's idle poll

    following = asyncio.create_task(follower())
    await asyncio.gather(*(writer(w) for w in range(8)))
    done.set()
    await asyncio.wait_for(following, 30)

    positions = [e.position for e in seen]
    assert positions == sorted(set(positions)), "the follower saw an event twice or out of order"
    assert {e.position: (e.stream_id, e.version) for e in seen} == committed
    expected_total = sum(count for plan in plans for count, roll_back, _ in plan if not roll_back)
    assert len(seen) == expected_total
    for stream in await store.stream_ids():
        loaded = await store.load(stream)
        assert [e.version for e in loaded] == list(range(1, len(loaded) + 1))


async def test_concurrent_writers_on_the_same_streams_lose_no_update(store: PostgresEventStore) -> None:
    async def increment(stream: str, times: int) -> None:
        for _ in range(times):
            while True:
                version = len(await store.load(stream))
                try:
                    await store.append(stream, [event(version + 1)], version)
                    break
                except ConcurrencyError:
                    continue

    await asyncio.gather(*(increment(f"shared-{w % 2}", 10) for w in range(6)))
    for stream in ("shared-0", "shared-1"):
        assert [e.data["n"] for e in await store.load(stream)] == list(range(1, 31))
    assert len(await drain(store)) == 60


async def test_health_reports_the_age_of_the_transaction_followers_wait_for(
    store: PostgresEventStore, hold: Hold
) -> None:
    assert (await store.health())["schema_version"] >= 1
    held = hold(lambda tx: tx.append("slow", [event(1)], 0))
    await held.started()

    async def aged() -> bool:
        return bool((await store.health())["oldest_transaction_seconds"] >= 0.3)

    await eventually_async(aged, what="an oldest transaction of 0.3 s")  # the age grows while it is held
    await held.finish()
