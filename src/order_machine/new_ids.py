"""Ids this process makes: new order and instance ids (UUIDv7 layout, time-ordered) and causation ids for
commands that came without one. No I/O but os.urandom."""

from __future__ import annotations

import itertools
import os
import threading
import time


_random = bytearray()
_random_lock = threading.Lock()  # two threads must never take the same bytes


def _random_bytes(n: int) -> bytes:
    """`n` bytes from os.urandom, drawn 4 KiB at a time (one system call per 400 ids, not per id)."""
    with _random_lock:
        if len(_random) < n:
            _random[:] = os.urandom(4096)
        taken = bytes(_random[-n:])
        del _random[-n:]
    return taken


# a forked child must not hand out the parent's next ids
os.register_at_fork(after_in_child=_random.clear)


def new_id() -> str:
    """32 hex digits laid out as a UUIDv7 (RFC 9562): the Unix time in milliseconds, then random bits.

    Ids made later sort later, so a new order's rows land at the right-hand end of every index keyed
    by order id (the store's stream index, the read models' tables) instead of on a random page each:
    a commit then rewrites a page or two, not one page per order. 74 random bits keep ids unique.
    """
    rand = int.from_bytes(_random_bytes(10), "big")
    return "%012x7%03x%016x" % (time.time_ns() // 1_000_000, rand >> 64 & 0xFFF,
                                (rand & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000)


_PROCESS = os.urandom(8).hex()
_SEQUENCE = itertools.count(1)


def causation_id() -> str:
    """An id for a command that came without one: unique across processes (a random prefix drawn
    once) and cheap (no system call per command); it is metadata, never guessed at by clients."""
    return f"{_PROCESS}-{next(_SEQUENCE)}"


__all__ = ["causation_id", "new_id"]
