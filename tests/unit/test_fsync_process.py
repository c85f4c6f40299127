"""The fsync helper process's one-byte protocol (store/sqlite_fsync_process.py), spoken to directly."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

from order_machine.store.sqlite_sync import SCRIPT


def spawn(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-I", "-S", str(SCRIPT), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_each_request_is_answered_zero_once_the_file_is_synced_and_the_end_of_input_stops_it(tmp_path: Path) -> None:
    wal = tmp_path / "orders.db-wal"
    wal.write_bytes(b"x" * 4096)
    process = spawn(wal)
    out, err = process.communicate(b"sss", timeout=20)
    assert (out, err, process.returncode) == (b"\0\0\0", b"", 0)


def test_a_file_it_cannot_sync_is_answered_with_the_errno(tmp_path: Path) -> None:
    process = spawn(tmp_path / "missing-wal")
    out, err = process.communicate(b"s", timeout=20)
    assert (out, err, process.returncode) == (bytes([errno.ENOENT]), b"", 0)


def test_a_server_gone_before_the_answer_leaves_the_helper_to_exit_quietly(tmp_path: Path) -> None:
    wal = tmp_path / "orders.db-wal"
    wal.write_bytes(b"x")
    process = spawn(wal)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as when the server is killed during an fsync
    process.stdin.write(b"s")
    process.stdin.close()
    assert process.wait(20) == 0
    assert process.stderr.read() == b""  # no traceback on the terminal
    process.stderr.close()
