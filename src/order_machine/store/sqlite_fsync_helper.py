"""The SQLite store's fsync helper process: `python -I -S sqlite_fsync_helper.py WAL-PATH`.

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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, and the server stops this helper
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
