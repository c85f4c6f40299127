"""The shared write path: the aggregate cache, the per-stream queue and the decide-then-save loop, on fakes."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

import pytest

from order_machine.errors import ConcurrencyError
from order_machine.write_path import AggregateCache, StreamQueues, decide_and_save


@dataclass
class Counter:
    version: int = 1


@dataclass
class Saved:
    version: int
    duplicate: bool = False


def test_the_cache_drops_the_least_recently_saved_first() -> None:
    cache: AggregateCache[Counter] = AggregateCache(2)
    for stream in ("a", "b", "a", "c"):
        cache.keep(stream, Counter())
    assert (cache.take("b"), len(cache)) == (None, 2)
    assert cache.take("a") is not None and cache.take("c") is not None


def test_taking_an_entry_removes_it_and_a_cache_of_size_zero_keeps_nothing() -> None:
    cache: AggregateCache[Counter] = AggregateCache(1)
    cache.keep("a", Counter())
    assert cache.take("a") is not None and cache.take("a") is None
    empty: AggregateCache[Counter] = AggregateCache(0)
    empty.keep("a", Counter())
    assert len(empty) == 0


async def test_a_result_the_store_had_recorded_before_leaves_no_copy_in_the_cache() -> None:
    cache: AggregateCache[Counter] = AggregateCache(10)

    async def load() -> Counter:
        return Counter()

    async def save(counter: Counter, version: int) -> Saved:
        return Saved(version + 1, duplicate=True)  # the command id was seen: nothing of this copy was appended

    await decide_and_save("s", cache, load, lambda c: None, save, expected=None, retries=3)
    assert len(cache) == 0


async def test_a_conflict_on_a_stored_aggregate_is_decided_again_then_given_up() -> None:
    cache: AggregateCache[Counter] = AggregateCache(10)
    loads = 0

    async def load() -> Counter:
        nonlocal loads
        loads += 1
        return Counter()

    async def save(counter: Counter, version: int) -> Saved:
        raise ConcurrencyError("s", version, version + 1)

    with pytest.raises(ConcurrencyError):
        await decide_and_save("s", cache, load, lambda c: None, save, expected=None, retries=2)
    assert loads == 3
    loads = 0
    with pytest.raises(ConcurrencyError):  # a version the caller pinned is never decided again
        await decide_and_save("s", cache, load, lambda c: None, save, expected=1, retries=2)
    assert loads == 1


async def test_commands_on_one_stream_run_one_at_a_time_and_leave_no_queue_behind() -> None:
    queues = StreamQueues()
    running: list[str] = []
    overlapped = False

    async def command(name: str) -> str:
        nonlocal overlapped
        overlapped |= bool(running)
        running.append(name)
        await asyncio.sleep(0)
        running.remove(name)
        return name

    done = await asyncio.gather(*(queues.run("s", functools.partial(command, f"c{n}")) for n in range(5)))
    assert done == [f"c{n}" for n in range(5)] and not overlapped and len(queues) == 0
