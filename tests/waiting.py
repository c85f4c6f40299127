"""Waiting on a condition, never for a length of time: poll it until it holds, failing past a deadline.

A test that sleeps and then asserts passes on a quiet machine and fails on a loaded one (or proves
nothing when the sleep ends too early). Wait for what shows the step happened instead; to show that
something does *not* happen, wait for what proves the work went on elsewhere, then assert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: long enough for a loaded CI machine; a condition that holds returns at once anyway
WITHIN = 10.0
EVERY = 0.005


def _timed_out(what: str, within: float) -> AssertionError:
    return AssertionError(f"{what or 'the condition'} did not hold within {within}s")


async def eventually(check: Callable[[], T | None], *, within: float = WITHIN, what: str = "",
                     every: float = EVERY) -> T:
    """Call `check()` from the event loop until it returns something true, and return that; the loop
    runs other tasks in between."""
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise _timed_out(what, within)
        await asyncio.sleep(every)
    return result


async def eventually_async(check: Callable[[], Awaitable[T | None]], *, within: float = WITHIN, what: str = "",
                           every: float = EVERY) -> T:
    """`eventually` for a check that must be awaited (a query, an HTTP call)."""
    deadline = time.monotonic() + within
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise _timed_out(what, within)
        await asyncio.sleep(every)
    return result


def eventually_blocking(check: Callable[[], T | None], *, within: float = WITHIN, what: str = "",
                        every: float = EVERY) -> T:
    """`eventually` for code without an event loop (a subprocess, a thread): sleeps between the checks."""
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise _timed_out(what, within)
        time.sleep(every)
    return result
