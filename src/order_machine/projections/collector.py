"""A pause of Python's cyclic garbage collector around rebuild batches, shared by every runner of a process.

Imports nothing of order-machine.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_pause_lock = threading.Lock()
_pauses = 0
_resume_collector = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while one rebuild batch is in flight (tens of ms).

    A batch is thousands of events and rows alive at once; they form no reference cycles and are
    freed by reference counting when the batch ends, but while alive the collector would scan them
    again and again (docs/design-notes.md has what that cost). Nested and concurrent pauses count; the
    collector is re-enabled only if it was enabled when the first pause began.
    """
    global _pauses, _resume_collector
    with _pause_lock:
        if _pauses == 0:
            _resume_collector = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume_collector:
                gc.enable()
