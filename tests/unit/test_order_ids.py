"""Generated order ids: UUIDv7 hex, unique, and in time order (so new orders append to every index)."""

from __future__ import annotations

import time
import uuid

from order_machine.new_ids import new_id
from waiting import eventually_blocking


def test_a_generated_order_id_is_a_uuid7_in_32_hex_digits() -> None:
    order_id = new_id()
    assert len(order_id) == 32 and int(order_id, 16) >= 0
    parsed = uuid.UUID(order_id)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    made_at_ms = int(order_id[:12], 16)
    assert abs(made_at_ms - time.time() * 1000) < 5_000


def test_ids_made_in_a_later_millisecond_sort_after_and_none_repeat() -> None:
    first = [new_id() for _ in range(20_000)]
    last_ms = int(max(first)[:12], 16)
    eventually_blocking(lambda: time.time_ns() // 1_000_000 > last_ms, every=0.0005, what="the next millisecond")
    later = new_id()
    assert len(set(first)) == len(first)
    assert later > max(first)
    # within a millisecond the order is random, across milliseconds it is time order
    assert sorted(first, key=lambda i: i[:12]) == first


def test_a_forked_child_draws_its_own_ids() -> None:
    import os

    new_id()  # the parent has random bytes in hand
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, new_id().encode())
        os._exit(0)
    try:  # never hang the suite on a stuck child
        eventually_blocking(lambda: os.waitpid(child, os.WNOHANG) != (0, 0), what="the forked child's answer")
    except AssertionError:
        os.kill(child, 9)
        os.waitpid(child, 0)
        raise
    from_child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert from_child[12:] != new_id()[12:]  # not the parent's next random bits
