"""With durability "full", the SQLite store answers an append only once an fsync of the WAL covers it.

The fsyncs run in a helper process (store/sqlite_sync.py says why), or on a thread (`fsync=thread`, and
whenever the helper cannot be used): both are proven here, with the helper stopped, killed and failing.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from order_machine.errors import StoreError
from order_machine.events import NewEvent
from order_machine.store.sqlite import SQLiteEventStore
from order_machine.store.sqlite_sync import SyncProcess
from processes import is_running
from waiting import eventually

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="stops and kills the helper with POSIX signals")


def event() -> NewEvent:
    return NewEvent("Happened", {})


def sync_pid(store: SQLiteEventStore) -> int:
    pid = store.fsync_helper_pid
    assert pid is not None, "no fsync helper process is running"
    return pid


async def committed(store: SQLiteEventStore, commits: int) -> None:
    """Wait until the store has committed `commits` transactions (visible to readers, maybe not fsynced)."""
    await eventually(lambda: store.commits >= commits, what=f"commit {commits}")


def rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_the_helper_process_fsyncs_and_an_append_waits_for_it(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-0", [event()], 0)  # starts the helper
        pid = sync_pid(store)
        os.kill(pid, signal.SIGSTOP)  # an fsync that takes as long as we like
        try:
            pending = asyncio.create_task(store.append("o-1", [event()], 0))
            await committed(store, 2)
            assert not pending.done()  # committed on the loop, but the caller waits for its fsync
            appended_meanwhile = asyncio.create_task(store.append("o-2", [event()], 0))  # the next batch goes on
            await committed(store, 3)
            assert rows(store.path) == 3 and not appended_meanwhile.done()
        finally:
            os.kill(pid, signal.SIGCONT)
        assert (await pending).position == 2 and (await appended_meanwhile).position == 3
        assert (store.commits, store.fsyncs) == (3, 3)  # the second batch's own fsync (counted for /metrics)
        assert sync_pid(store) == pid and store.fsync_process == 1  # one helper for the store's life


async def test_on_a_thread_an_append_waits_for_its_fsync_too(tmp_path: Path) -> None:
    released = threading.Event()

    def slow_disk(fd: int) -> None:  # an fsync that takes as long as we like
        released.wait(10)
        os.fsync(fd)

    async with SQLiteEventStore(tmp_path / "orders.db", fsync="thread", datasync=slow_disk) as store:
        try:
            pending = asyncio.create_task(store.append("o-1", [event()], 0))
            await committed(store, 1)
            assert not pending.done()
            appended_meanwhile = asyncio.create_task(store.append("o-2", [event()], 0))
            await committed(store, 2)
            assert rows(store.path) == 2 and not appended_meanwhile.done()
        finally:
            released.set()
        assert (await pending).position == 1 and (await appended_meanwhile).position == 2
        assert (store.commits, store.fsyncs) == (2, 2)
        assert store.fsync_helper_pid is None and store.fsync_process == 0


async def test_a_helper_killed_while_idle_is_replaced_by_the_thread(sqlite_url: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [event()], 0)
        pid = sync_pid(store)
        os.kill(pid, signal.SIGKILL)
        # the loop sees its pipe end and reaps it; nothing was waiting on it
        await eventually(lambda: store.fsync_helper_pid is None, what="the loop noticing the helper's end")
        with caplog.at_level(logging.WARNING):
            assert (await store.append("o-2", [event()], 0)).position == 2
            assert (await store.append("o-3", [event()], 0)).position == 3
        assert store.fsyncs == 3 and store.fsync_process == 0  # for /metrics
        assert "fsynced from a thread" in caplog.text
        assert not is_running(pid)  # reaped, not left a zombie


async def test_a_helper_killed_during_an_fsync_has_that_fsync_done_again_on_the_thread(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-0", [event()], 0)
        pid = sync_pid(store)
        os.kill(pid, signal.SIGSTOP)
        pending = asyncio.create_task(store.append("o-1", [event()], 0))
        await committed(store, 2)
        assert not pending.done()
        with caplog.at_level(logging.WARNING):
            os.kill(pid, signal.SIGKILL)  # whether it synced is unknown: the append is answered after another fsync
            assert (await pending).position == 2
        assert "ended (exit status -9)" in caplog.text and store.fsync_process == 0
        assert store.fsyncs == 2


@pytest.mark.parametrize("fsync", ["process", "thread"])
async def test_a_failed_fsync_fails_its_appends_and_the_store_takes_no_more(fsync: str, tmp_path: Path) -> None:
    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    # a helper whose file cannot be opened reports the errno; the thread's fsync raises it
    says = "No such file" if fsync == "process" else "Input/output error"
    async with SQLiteEventStore(tmp_path / "orders.db", fsync=fsync, datasync=broken_disk,
                                fsync_helper=SyncProcess(tmp_path / "no-such-wal")) as store:
        with pytest.raises(StoreError, match=f"fsync failed.*{says}.*restart"):
            await store.append("o-1", [event()], 0)
        with pytest.raises(StoreError, match="fsync failed"):
            await store.append("o-2", [event()], 0)
        assert store.fsyncs == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_stop_signal_sent_to_the_process_group_leaves_the_helper_to_the_store(sqlite_url: str,
                                                                                      stop: int) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [event()], 0)
        pid = sync_pid(store)
        os.kill(pid, stop)  # a terminal's Ctrl-C, a service manager's stop: the whole group gets it
        # it ignores them, so the kernel drops them at once (and a signal it handled would be delivered before
        # it read the next request): the fsync asked for next shows whether it is still there
        assert (await store.append("o-2", [event()], 0)).position == 2
        assert sync_pid(store) == pid and store.fsyncs == 2


async def test_closing_the_store_ends_its_helper(sqlite_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_url)
    await store.append("o-1", [event()], 0)
    pid = sync_pid(store)
    await store.close()
    assert not is_running(pid)


async def test_fast_durability_starts_no_helper(tmp_path: Path) -> None:
    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync called")

    async with SQLiteEventStore(tmp_path / "orders.db", durability="fast", datasync=no_fsync) as store:
        assert (await store.append("o-1", [event()], 0)).position == 1
        assert store.fsync_helper_pid is None and store.fsyncs == 0 and store.fsync_process == 0


async def test_a_loop_that_cannot_watch_a_pipe_fsyncs_on_the_thread(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    def unsupported(*_: object) -> None:
        raise NotImplementedError  # as on Windows' proactor loop

    monkeypatch.setattr(asyncio.get_running_loop(), "add_reader", unsupported)
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        with caplog.at_level(logging.WARNING):
            assert (await store.append("o-1", [event()], 0)).position == 1
        assert store.fsync_process == 0 and store.fsyncs == 1
        assert "cannot use the fsync helper process" in caplog.text


async def test_the_helper_follows_the_store_to_another_event_loop(sqlite_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_url)
    await store.append("o-1", [event()], 0)

    def in_another_loop() -> int:
        return asyncio.run(store.append("o-2", [event()], 0)).position

    assert await asyncio.to_thread(in_another_loop) == 2  # this loop is idle meanwhile, as the store requires
    assert (await store.append("o-3", [event()], 0)).position == 3
    assert store.fsyncs == 3 and store.fsync_process == 1
    await store.close()


async def test_a_forked_child_never_shares_its_parents_helper(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        await store.append("o-1", [event()], 0)
        parent = sync_pid(store)
        real_pid = os.getpid()
        monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # as the store's code sees it after a fork
        with caplog.at_level(logging.WARNING):
            assert (await store.append("o-2", [event()], 0)).position == 2  # fsynced by a thread of its own
        assert "forked from" in caplog.text and store.fsync_process == 0 and store.fsyncs == 2
        monkeypatch.undo()
        # here the "parent" is this same process: letting go of the helper ended it (a real parent keeps
        # its own end of the pipe); it is reaped rather than left a zombie
        assert os.waitpid(parent, 0)[0] == parent


async def test_without_a_python_executable_to_run_the_helper_the_thread_fsyncs(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("sys.executable", "")  # an embedded interpreter
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        with caplog.at_level(logging.WARNING):
            assert (await store.append("o-1", [event()], 0)).position == 1
        assert store.fsync_process == 0 and store.fsyncs == 1
        assert "no Python executable" in caplog.text
