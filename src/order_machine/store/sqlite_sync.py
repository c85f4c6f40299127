"""The SQLite store's fsync helper: a small process that fdatasyncs the WAL when the event loop asks.

The loop commits a batch, then needs one fsync of the WAL covering it before it answers the callers.
Done on a thread of the server's own process, every fsync cost the loop the GIL several times: the
thread takes it back when woken, when fdatasync returns and after signalling the loop, and each time
the loop stops to hand it over (on the HTTP bench, a thread whose fsync did nothing cost 15% of the
requests/s against handing the answers over on the loop itself). A helper process has a GIL of its
own: the loop writes one byte to a pipe and, once the WAL is on disk, reads one byte back. fdatasync
syncs a file's data whoever wrote it, so the helper's fsync covers every commit made before the
request. `WalSync` uses the helper, and a thread of this process wherever the helper cannot be used.
Imports nothing of the project.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

logger = logging.getLogger(__name__)

#: the helper's script (run as a file, not imported: see its docstring for the one-byte protocol)
SCRIPT = Path(__file__).with_name("sqlite_fsync_process.py")

Done = Callable[[BaseException | None], None]

#: what SQLite itself calls to sync the WAL on Linux: the data, and the size when it grew, not the mtime
_datasync = getattr(os, "fdatasync", os.fsync)


class SyncProcessLost(Exception):
    """The helper process ended (killed?) with an fsync asked of it: whether that fsync happened is unknown."""


class SyncProcess:
    """fdatasync of one file by a helper process, one at a time; `sync` reports the end on the loop.

    `sync` raises OSError (the process cannot be started or written to, or has ended before) or
    NotImplementedError (the loop cannot watch a pipe, e.g. Windows' proactor loop): the caller then
    fsyncs from a thread. A helper that ended is not started again: one that keeps failing to start
    would otherwise cost every fsync a new process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._process: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: Done | None = None
        self._ended: str | None = None  # why the helper is gone, once it ended unasked
        self._owner = 0  # the process that started the helper: a forked child must not share its pipes

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def sync(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """Ask for an fsync of the file; `done(None)`, or `done(error)`, runs on `loop` once it is over."""
        if self._done is not None:
            raise RuntimeError("an fsync is already running")
        if self._ended is not None:
            raise OSError(self._ended)
        if self._process is not None and self._owner != os.getpid():
            self._disown()
            raise OSError("the fsync helper belongs to the process this one was forked from")
        process = self._process or self._start()
        assert process.stdin is not None and process.stdout is not None
        if loop is not self._loop:
            self._unwatch()
            loop.add_reader(process.stdout.fileno(), self._ready)
            self._loop = loop
        try:
            os.write(process.stdin.fileno(), b"s")
        except OSError as exc:  # a broken pipe: the helper has ended since the last fsync
            raise OSError(self._lost(f": {exc}")) from exc
        self._done = done

    def _start(self) -> subprocess.Popen[bytes]:
        if os.name != "posix":  # non-blocking pipes watched by the loop
            raise NotImplementedError("the fsync helper process needs a POSIX system")
        if not sys.executable or not SCRIPT.is_file():  # an embedded interpreter, a zipped install
            raise OSError(f"no Python executable or no {SCRIPT.name} to run the fsync helper with")
        process = subprocess.Popen([sys.executable, "-I", "-S", str(SCRIPT), str(self.path)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, bufsize=0)
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        self._process, self._owner = process, os.getpid()
        return process

    def _ready(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            reply = os.read(process.stdout.fileno(), 16)
        except BlockingIOError:
            return
        done, self._done = self._done, None
        error: BaseException | None = None
        if not reply:  # the helper is gone: stop watching its pipe (at its end, it is always readable)
            error = SyncProcessLost(self._lost())
        elif reply[-1]:
            error = OSError(reply[-1], os.strerror(reply[-1]) if reply[-1] != 255 else "fsync failed")
        if done is not None:
            done(error)
        elif error is not None:
            logger.warning("%s", error)

    def _lost(self, detail: str = "") -> str:
        """Reap the helper that ended unasked; why it is gone (every later `sync` raises it)."""
        self._ended = f"the fsync helper process of {self.path} ended (exit status {self._stop()}){detail}"
        return self._ended

    def _disown(self) -> None:
        """In a forked child: let go of the parent's helper (its replies would answer the parent's fsyncs)."""
        process, self._process, self._loop = self._process, None, None
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.close()  # our copies: the helper still ends when the parent closes its own
        process.stdout.close()
        process.returncode = 0  # not this process's child: never wait for it, nor warn that it runs on

    def _unwatch(self) -> None:
        if self._loop is not None and self._process is not None and self._process.stdout is not None \
                and not self._loop.is_closed():
            self._loop.remove_reader(self._process.stdout.fileno())
        self._loop = None

    def _stop(self) -> int | None:
        """End the helper (it exits at the end of its input); its exit status."""
        process = self._process
        if process is None:
            return None
        self._unwatch()
        self._process = None
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.close()
        except OSError:  # a broken pipe: it has exited already
            pass
        try:
            status = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        process.stdout.close()
        return status

    def close(self) -> None:
        """Stop the helper once its fsync (if any) is over; a `done` still waiting is never called."""
        self._done = None
        self._stop()


class WalSync:
    """fsyncs of a WAL file, one at a time: by the helper process (`process`, None once it cannot be
    used or with `use_process=False`), else by a thread of this process. A helper that ended during an
    fsync has that fsync done again on the thread: whether it happened is unknown. `datasync` (what the
    thread calls with the WAL's descriptor) and `process` (the helper) may be given, for tests."""

    def __init__(self, wal: Path, *, use_process: bool, datasync: Callable[[int], None] | None = None,
                 process: SyncProcess | None = None) -> None:
        self.wal = wal
        self.process = (process or SyncProcess(wal)) if use_process else None
        self._datasync = datasync or _datasync
        self._thread = ThreadPoolExecutor(1, "order-machine-sqlite-fsync")
        self._fd: int | None = None

    def sync(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """fsync the WAL; `done(None)`, or `done(error)`, runs on `loop` once it is over."""
        if self.process is not None:
            try:
                self.process.sync(loop, lambda error: self._after_process(loop, done, error))
                return
            except (OSError, NotImplementedError) as exc:
                self._without_process(f"cannot use the fsync helper process ({exc!r})")
        self._on_thread(loop, done)

    def _after_process(self, loop: asyncio.AbstractEventLoop, done: Done, error: BaseException | None) -> None:
        if isinstance(error, SyncProcessLost):
            self._without_process(str(error))
            self._on_thread(loop, done)
            return
        done(error)

    def _on_thread(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        synced: Future[None] = self._thread.submit(self.fsync)
        synced.add_done_callback(lambda finished: loop.call_soon_threadsafe(done, finished.exception()))

    def fsync(self) -> None:
        """Put the WAL, and so every transaction committed in it so far, on disk (on the sync thread)."""
        if self._fd is None:  # the WAL exists from the first commit, and lives as long as the store's connections
            self._fd = os.open(self.wal, os.O_RDONLY)
        self._datasync(self._fd)

    def _without_process(self, why: str) -> None:
        logger.warning("%s: %s; the WAL is fsynced from a thread from now on", self.wal, why)
        if self.process is not None:
            self.process.close()
            self.process = None

    def close(self) -> None:
        """End the helper, then wait for the thread's fsync (if any)."""
        if self.process is not None:
            self.process.close()
        self._thread.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
