"""How the SQLite store reads: short loads on the loop that never wait, everything else on reader threads,
JSON read exactly as the standard library reads it, and a rebuild that leaves the garbage collector as it was."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from order_machine.events import NewEvent, StoredEvent
from order_machine.projections import ProjectionRunner, SQLiteReadModels
from order_machine.store.codec import loads
from order_machine.store.sqlite import SQLiteEventStore
from order_machine.store.sqlite_file import connect
from order_machine.store.sqlite_reads import COLUMNS, LOOP_READ_LIMIT, LoopReader


def events(count: int) -> list[NewEvent]:
    return [NewEvent("Happened", {"n": n}) for n in range(1, count + 1)]


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Another connection holding a rollback-journal file in exclusive locking mode: readers get SQLITE_BUSY."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")  # exclusive mode keeps the lock until the connection closes
        yield


async def test_a_stream_longer_than_the_loop_read_limit_loads_whole(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        count = LOOP_READ_LIMIT * 2 + 3
        await store.append("o-1", events(count), 0)
        loaded = await store.load("o-1")
        assert [e.version for e in loaded] == list(range(1, count + 1))
        assert [e.data["n"] for e in await store.load("o-1", count - 2)] == [count - 2, count - 1, count]
        assert len(await store.load("o-1", count - LOOP_READ_LIMIT + 1)) == LOOP_READ_LIMIT  # at the limit


def test_the_loop_reader_never_waits_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as setup:
        setup.execute(f"CREATE TABLE events (n, {COLUMNS})")
    reader = LoopReader()
    reader.attach(connect(path, busy_timeout=0.0))  # what the store attaches: busy_timeout 0
    with exclusive_lock(path):  # a rollback-journal file: the lock keeps every reader out
        started = time.perf_counter()
        assert reader.rows(f"SELECT {COLUMNS} FROM events LIMIT ?", ()) is None  # the store reads on a thread
        assert time.perf_counter() - started < 0.1
    assert reader.rows(f"SELECT {COLUMNS} FROM events LIMIT ?", ()) == []
    reader.close()


async def test_a_store_used_from_a_second_thread_reads_through_its_reader_threads(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", events(2), 0)
        assert len(await store.load("o-1")) == 2  # attaches the loop reader to this thread
        seen: list[list[StoredEvent]] = []
        other = threading.Thread(target=lambda: seen.append(asyncio.run(store.load("o-1"))))
        other.start()
        await asyncio.to_thread(other.join)
        assert [e.version for e in seen[0]] == [1, 2]


async def test_a_loaded_event_is_an_immutable_record_equal_to_one_built_by_hand(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [NewEvent("Happened", {"a": 1}, metadata={"m": "x"})], 0)
        [loaded] = await store.load("o-1")
    same = StoredEvent(1, "o-1", 1, "Happened", 1, {"a": 1}, {"m": "x"}, loaded.recorded_at)
    assert loaded == same and loaded.recorded_at.utcoffset() is not None
    with pytest.raises(AttributeError):
        setattr(loaded, "version", 2)


@pytest.mark.parametrize("text", [
    '{"big": 123456789012345678901234567890, "neg": -99999999999999999999}',  # integers past 64 bits stay exact
    '{"x": 1.7976931348623157e308, "y": 5e-324, "z": -0.0, "w": 0.1}',
    '{"s": "\\u00e9\\ud83d\\ude00 \\"q\\" \\n", "l": [1, [2, {}]], "t": true, "n": null}',
    '{"a": 1, "a": 2}',  # the last duplicate wins, as in json
    '{"nan": NaN, "inf": Infinity}',  # not JSON, but json.loads reads it: so does loads
    '"\\ud800"',  # a lone surrogate escape
])
def test_stored_json_reads_exactly_as_the_standard_library_reads_it(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


def test_text_that_is_not_json_fails_as_the_standard_library_fails() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": ')


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_rebuild_leaves_the_garbage_collector_as_it_found_it(sqlite_url: str, enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        async with SQLiteEventStore.from_url(sqlite_url) as store:
            await store.append("o-1", events(3), 0)
            read_models = SQLiteReadModels(store.path)
            try:
                runner = ProjectionRunner(store, read_models, rebuild_batch_size=2)
                await asyncio.gather(runner.rebuild(), ProjectionRunner(store, read_models).rebuild("orders"))
                assert gc.isenabled() is enabled
            finally:
                await read_models.close()
    finally:
        (gc.enable if was else gc.disable)()


async def test_a_follower_right_behind_this_stores_writes_reads_them_without_a_query(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("a", events(3), 0)
        await store.append("b", events(2), 0)
        async with SQLiteEventStore.from_url(sqlite_url) as fresh:  # no writes of its own to remember
            from_disk = await fresh.read_batch(0, 100)
        with closing(sqlite3.connect(store.path)) as conn, conn:  # an edit that any query would see
            conn.execute("UPDATE events SET data = '{\"edited\": true}'")
        assert await store.read_batch(0, 100) == from_disk  # the same records a read gives, rows and all
        assert [e.position for e in await store.read_batch(3, 1)] == [4]


async def test_recent_writes_never_hide_what_another_process_wrote_in_between(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as mine, SQLiteEventStore.from_url(sqlite_url) as other:
        await mine.append("a", events(2), 0)     # positions 1, 2
        await other.append("b", events(2), 0)    # 3, 4: not in mine's memory
        await mine.append("a", events(1), 2)     # 5
        for after in range(6):
            got = [(e.position, e.stream_id) for e in await mine.read_batch(after, 100)]
            assert got == [(p, "a" if p in (1, 2, 5) else "b") for p in range(after + 1, 6)], after
