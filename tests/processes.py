"""What the tests ask of other processes (the fsync process, a server's children), from /proc and kill(pid, 0)."""

from __future__ import annotations

import os
from pathlib import Path

from waiting import eventually_blocking

HAS_PROC = Path("/proc/self/stat").exists()


def _state(pid: int) -> str | None:
    """The /proc state letter of `pid` ("Z" for an exited child not yet reaped); None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """Whether `pid` is alive; a zombie counts as gone where /proc tells, as running where it cannot."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) != "Z" if HAS_PROC else True


def ended(pid: int, within: float = 10.0) -> bool:
    """Whether `pid` ends (or is a zombie) within `within` seconds."""
    try:
        eventually_blocking(lambda: not is_running(pid), within=within, every=0.05)
    except AssertionError:
        return False
    return True


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (needs /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # ended meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.parent.name))
    return found
