"""What only the SQLite store promises: a durable file, WAL, group commit, clear errors on bad files and urls."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from order_machine.errors import ConcurrencyError, StoreError
from order_machine.events import NewEvent
from order_machine.store import AppendResult, open_store
from order_machine.store.sqlite import SQLiteEventStore
from waiting import eventually


def event(kind: str = "Happened", **data: object) -> NewEvent:
    return NewEvent(kind, dict(data))


def path_of(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection on the store's file, as a projector would open one."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


async def test_the_file_and_its_directories_are_created_on_first_use_in_wal_mode(sqlite_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_url)
    assert not store.path.exists()  # building the store touches nothing
    async with store:
        await store.append("o-1", [event()], 0)
        assert store.path == path_of(sqlite_url)
        with connection(store.path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT stream_id FROM events").fetchall() == [("o-1",)]


async def test_open_store_picks_sqlite_from_the_url(sqlite_url: str) -> None:
    store = open_store(sqlite_url, durability="fast")
    assert isinstance(store, SQLiteEventStore) and store.durability == "fast"
    await store.close()


async def test_events_and_command_ids_survive_closing_and_reopening(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [event("A", amount="9.99"), event("B")], 0, command_id="cmd-1", result={"v": 2})
    async with SQLiteEventStore.from_url(sqlite_url) as reopened:
        assert [(e.type, e.data) for e in await reopened.load("o-1")] == [("A", {"amount": "9.99"}), ("B", {})]
        again = await reopened.append("o-1", [event("A")], 0, command_id="cmd-1")
        assert again == AppendResult("o-1", 2, 2, True, {"v": 2})
        assert (await reopened.append("o-1", [event("C")], 2)).position == 3


async def test_concurrent_appends_are_committed_together(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("warm-up", [event()], 0)
        before = store.commits
        results = await asyncio.gather(*(store.append(f"o-{i}", [event()], 0) for i in range(100)))
        assert store.commits - before < len(results)
        assert sorted(r.position for r in results) == list(range(2, 102))


async def test_a_batch_without_command_ids_is_written_in_four_statements_whatever_its_size(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-0", [event(), event()], 0)
        assert store._loop_writer is not None
        for size in (1, 50):
            statements: list[str] = []
            store._loop_writer.set_trace_callback(statements.append)
            results = await asyncio.gather(*(store.append(f"o-{size}-{i}", [event()], 0) for i in range(size)))
            store._loop_writer.set_trace_callback(None)
            # BEGIN IMMEDIATE, the last position and the streams' versions in one query, one INSERT, COMMIT
            assert len(statements) == 4, statements
            assert [r.version for r in results] == [1] * size
        stale = await asyncio.gather(store.append("o-0", [event()], 1), store.append("o-0", [event()], 2),
                                     return_exceptions=True)  # versions read by that one query
        assert isinstance(stale[0], ConcurrencyError) and stale[1] == AppendResult("o-0", 3, 54, False, {})


async def test_a_batch_is_capped_at_max_batch_appends(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url, max_batch=10) as store:
        await asyncio.gather(*(store.append(f"o-{i}", [event()], 0) for i in range(30)))
        assert store.commits == 3


async def test_a_stale_append_fails_alone_and_its_batch_still_commits(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [event()], 0)
        before = store.commits
        outcomes = await asyncio.gather(
            store.append("o-2", [event()], 0),
            store.append("o-1", [event()], 0),  # stale
            store.append("o-3", [event()], 0, command_id="cmd-3"),
            store.append("o-3", [event()], 0, command_id="cmd-3"),  # the same command, same batch
            return_exceptions=True)
        assert store.commits == before + 1
        assert isinstance(outcomes[1], ConcurrencyError)
        assert outcomes[0] == AppendResult("o-2", 1, 2, False, {})
        assert outcomes[2] == AppendResult("o-3", 1, 3, False, {})
        assert outcomes[3] == AppendResult("o-3", 1, 3, True, {})
        assert await store.last_position() == 3


async def test_an_append_the_database_refuses_fails_alone(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.stream_id = 'refused' "
                         "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
        outcomes = await asyncio.gather(
            store.append("o-1", [event()], 0),
            store.append("refused", [event(), event()], 0, command_id="cmd-r"),
            store.append("o-2", [event()], 0),
            return_exceptions=True)
        assert isinstance(outcomes[1], StoreError) and "refused by a test trigger" in str(outcomes[1])
        assert isinstance(outcomes[1].__cause__, sqlite3.IntegrityError)
        assert [o.position for o in outcomes if isinstance(o, AppendResult)] == [1, 2]
        assert await store.load("refused") == [] and await store.command_result("cmd-r") is None


async def test_an_append_that_makes_sqlite_roll_back_the_batch_fails_alone(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:  # like SQLITE_FULL: SQLite drops the whole transaction
            conn.execute("CREATE TRIGGER drop_all BEFORE INSERT ON events WHEN NEW.stream_id = 'doomed' "
                         "BEGIN SELECT RAISE(ROLLBACK, 'rolled back by a test trigger'); END")
        outcomes = await asyncio.gather(
            store.append("o-1", [event()], 0),
            store.append("doomed", [event()], 0),
            store.append("o-2", [event()], 0),
            return_exceptions=True)
        assert isinstance(outcomes[1], StoreError) and "rolled back by a test trigger" in str(outcomes[1])
        assert [(o.stream_id, o.position) for o in outcomes if isinstance(o, AppendResult)] == [("o-1", 1), ("o-2", 2)]
        assert [e.stream_id for e in await store.read_batch()] == ["o-1", "o-2"]


async def test_a_version_conflict_the_database_reports_becomes_a_concurrency_error(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:  # a foreign writer slips in the same version first
            conn.execute("CREATE TRIGGER intrude BEFORE INSERT ON events WHEN NEW.stream_id = 'raced' BEGIN "
                         "INSERT INTO events VALUES (NEW.position + 1000, NEW.stream_id, NEW.version, 'Intruder', "
                         "1, '{}', '{}', NEW.recorded_at); END")
        with pytest.raises(ConcurrencyError) as refused:
            await store.append("raced", [event()], 0)
        assert isinstance(refused.value.__cause__, sqlite3.IntegrityError)
        assert await store.last_position() == 0


async def test_a_failed_commit_fails_every_append_of_the_batch_and_writes_nothing(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:  # a deferred foreign key is only checked at COMMIT
            conn.executescript(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
                "CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.stream_id = 'poison' "
                "BEGIN INSERT INTO child VALUES (42); END;")
        outcomes = await asyncio.gather(
            store.append("o-1", [event()], 0),
            store.append("poison", [event()], 0),
            store.append("o-2", [event()], 0, command_id="cmd-2"),
            return_exceptions=True)
        assert all(isinstance(o, StoreError) and "commit" in str(o) for o in outcomes)
        assert await store.last_position() == 0 and await store.command_result("cmd-2") is None
        assert (await store.append("o-1", [event()], 0)).position == 1  # the writer goes on


async def test_an_append_waits_for_another_connection_holding_the_write_lock(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:
            conn.execute("BEGIN IMMEDIATE")  # a projector writing its read model
            pending = asyncio.create_task(store.append("o-1", [event()], 0))
            await eventually(lambda: store.thread_batches == 1, what="the batch handed to the writer thread")
            assert not pending.done()  # which waits for the lock
            conn.execute("COMMIT")
        assert (await pending).position == 1


async def test_a_write_lock_held_past_busy_timeout_gives_a_store_error(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url, busy_timeout=0.1) as store:
        await store.open()
        with connection(store.path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                await store.append("o-1", [event()], 0)
            conn.execute("ROLLBACK")
        assert (await store.append("o-1", [event()], 0)).version == 1


async def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    path.write_bytes(b"customer,amount\nc-1,19.99\n" * 100)
    with pytest.raises(StoreError, match="is not an order-machine database"):
        await SQLiteEventStore.from_url(f"sqlite:///{path}").open()
    assert path.read_bytes() == b"customer,amount\nc-1,19.99\n" * 100


def another_application_file(path: Path) -> bytes:
    """A SQLite file of another application: one table `t` with a row; its bytes, to compare later."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    return path.read_bytes()


async def test_a_sqlite_file_of_another_application_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    before = another_application_file(path)
    with pytest.raises(StoreError, match=r"other.db is not an order-machine database \(it has other tables: t\)"):
        await SQLiteEventStore.from_url(f"sqlite:///{path}").open()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal or -shm left beside it


@pytest.mark.parametrize("content", ["zero bytes", "no tables"])
async def test_an_empty_file_is_adopted(tmp_path: Path, content: str) -> None:
    path = tmp_path / "orders.db"
    if content == "zero bytes":
        path.touch()
    else:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA user_version = 7")  # a SQLite header, but no table
    async with SQLiteEventStore.from_url(f"sqlite:///{path}") as store:
        assert (await store.append("o-1", [event()], 0)).version == 1


async def test_a_file_that_cannot_be_opened_says_why_in_a_users_words(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "orders.db"
    store = SQLiteEventStore.from_url(f"sqlite:///{missing}")
    (tmp_path / "gone").write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="cannot create the directory"):
        await store.open()
    from order_machine.store.sqlite_file import why_cannot_open

    assert why_cannot_open(missing) == f"the folder {missing.parent} does not exist"
    assert why_cannot_open(tmp_path / "absent.db") == "the file does not exist"


async def test_a_damaged_database_gives_a_store_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    async with SQLiteEventStore.from_url(f"sqlite:///{path}") as store:
        await store.append("o-1", [event()], 0)
    damaged = bytearray(path.read_bytes())
    damaged[100:4096] = b"\xff" * (4096 - 100)  # wreck the first page's b-tree under the header
    path.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match=str(path)):
        async with SQLiteEventStore.from_url(f"sqlite:///{path}") as reopened:
            await reopened.load("o-1")
    assert path.read_bytes() == bytes(damaged)


async def test_another_applications_events_table_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with connection(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT)")
    with pytest.raises(StoreError, match="did not create"):
        await SQLiteEventStore.from_url(f"sqlite:///{path}").open()
    with connection(path) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["events"]


async def test_a_database_from_a_newer_version_is_refused(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
    with connection(path_of(sqlite_url)) as conn:
        conn.execute("INSERT INTO store_migrations VALUES (99, 'from the future', '2099-01-01')")
    with pytest.raises(StoreError, match="newer than this order-machine"):
        await SQLiteEventStore.from_url(sqlite_url).open()


async def test_the_schema_version_is_recorded(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.open()
        with connection(store.path) as conn:
            assert conn.execute("SELECT version, name FROM store_migrations").fetchall() == [(1, "events and commands")]


@pytest.mark.parametrize(("url", "says"), [
    ("sqlite:///:memory:", "memory://"),
    ("sqlite://", "sqlite:////absolute"),
    ("sqlite:///", "names no database file"),
    ("sqlite:///data/", "names no database file"),
    ("sqlite://host/orders.db", "sqlite:////absolute"),
    ("sqlite:orders.db", "sqlite:////absolute"),
    ("postgresql:///orders.db", "not a SQLite store url"),
    ("sqlite:///orders.db#x", "fragment"),
    ("sqlite:///orders.db?cache=shared", "unknown SQLite store option"),
    ("sqlite:///orders.db?durability=fast&durability=full", "given twice"),
    ("sqlite:///orders.db?readers=many", "readers must be a number"),
    ("sqlite:///orders.db?max_batch=0", "max_batch must be at least 1"),
    ("sqlite:///orders.db?fsync=disk", "unknown fsync 'disk'"),
])
def test_a_url_it_cannot_use_gets_a_clear_error(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says.replace("?", r"\?")):
        SQLiteEventStore.from_url(url)


def test_relative_and_absolute_paths_follow_the_usual_sqlite_url_form(tmp_path: Path) -> None:
    assert SQLiteEventStore.from_url("sqlite:///orders.db").path == Path.cwd() / "orders.db"
    assert SQLiteEventStore.from_url(f"sqlite:///{tmp_path}/orders.db").path == tmp_path / "orders.db"


async def test_full_durability_is_the_default(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        assert (store.durability, store.synchronous) == ("full", "FULL")


@pytest.mark.parametrize("ask", [{"durability": "fast"}, {}], ids=["keyword", "url"])
async def test_fast_durability_is_given_when_asked_for_by_name(sqlite_url: str, ask: dict[str, str]) -> None:
    url = sqlite_url if ask else f"{sqlite_url}?durability=fast"
    async with SQLiteEventStore.from_url(url, **ask) as store:
        assert (store.durability, store.synchronous) == ("fast", "NORMAL")


@pytest.mark.parametrize("ask", [{"durability": "normal"}, {"durability": "off"}, {"synchronous": "OFF"}])
def test_other_durability_settings_are_refused(sqlite_url: str, ask: dict[str, str]) -> None:
    with pytest.raises(StoreError, match="durability"):
        SQLiteEventStore.from_url(sqlite_url, **ask)


async def test_a_closed_store_refuses_work(sqlite_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_url)
    await store.append("o-1", [event()], 0)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.load("o-1")
    with pytest.raises(StoreError, match="closed"):
        await store.append("o-1", [event()], 1)


async def test_close_finishes_the_appends_already_queued(sqlite_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_url)
    await store.open()
    appends = [asyncio.create_task(store.append(f"o-{i}", [event()], 0)) for i in range(20)]
    await asyncio.sleep(0)  # one turn of the loop, not a wait: each task has queued its append
    await store.close()
    assert all(task.result().version == 1 for task in appends)
    async with SQLiteEventStore.from_url(sqlite_url) as reopened:
        assert await reopened.last_position() == 20


async def test_the_wal_is_checkpointed_though_the_loop_connection_never_does_it(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url, durability="fast") as store:
        for n in range(700):
            await store.append(f"o-{n}", [event(pad="x" * 2000)], 0)
        # one after about 1,000 WAL pages (4 a commit here), run by the writer thread
        await eventually(lambda: store.checkpoints >= 2, what="two checkpoints")
        assert store.checkpoints == 2
        wal = store.path.with_name(store.path.name + "-wal").stat().st_size
        assert wal < 300 * 4 * 4120  # the WAL restarts after each checkpoint: 700 commits would need 11.5 MB


async def test_commit_listeners_hear_of_each_acknowledged_batch_but_not_of_repeats(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        heard: list[int] = []
        store.on_commit(lambda: heard.append(len(heard)))
        await asyncio.gather(*(store.append(f"o-{n}", [event()], 0) for n in range(10)))  # one batch
        await store.append("o-10", [event()], 0, command_id="k")
        await store.append("o-10", [event()], 0, command_id="k")  # a repeat appends nothing
        assert heard == [0, 1]
