"""The SQLite store's fsync helper process: `python -I -S sqlite_fsync_process.py WAL-PATH`.

Reads one byte at a time from standard input: "s" asks for an fdatasync of WAL-PATH, the end of input
stops it. Answers each "s" with one byte on standard output: 0 once the file is on disk, else the
errno of the failure (255 when there was none). Run by sqlite_sync.SyncProcess; imports only the
standard library (it runs without site-packages, so it starts in a few milliseconds).
"""

from __future__ import annotations

import os
import signal
import sys


def main(path: str) -> None:
    # Ctrl-C at a terminal, or a service manager's SIGTERM, reaches the server's whole process group: the
    # server then finishes its appends, whose fsyncs are still ours to do. The end of input stops us (the
    # server closing, or dying).
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    sync = getattr(os, "fdatasync", os.fsync)
    fd: int | None = None
    while os.read(0, 1) == b"s":
        try:
            if fd is None:
                fd = os.open(path, os.O_RDONLY)
            sync(fd)
            reply = 0
        except OSError as exc:
            reply = min(exc.errno or 255, 255)
        try:
            os.write(1, bytes([reply]))
        except BrokenPipeError:  # the server is gone (killed while this fsync ran): nobody to answer
            return


if __name__ == "__main__":
    main(sys.argv[1])
