"""Quarantine: the stream of an event a projector keeps failing on is set aside, so one bad stream never
stops the read side for the others (DESIGN decisions 4 and 13).

The policy lives here once: what a quarantine records, how a batch skips the streams set aside, how a
read of one stream learns its view is out of date, and how a repaired stream is released (its rows
rebuilt from its events). The runner decides when to quarantine (after its retries). Each read-model
backend only stores the records, in the same transactions as its rows, behind `QuarantineStorage`.
Knows events, projectors and the store Protocol; never the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..errors import ReleaseError, StreamQuarantinedError
from ..events import StoredEvent
from ..store import EventStore
from .batch import Decoded, EventFailed, Projector, decode_batch, run_batch
from .changes import Changes

logger = logging.getLogger(__name__)

#: the longest error text kept (a cause's text may quote the event's data, which came from outside)
ERROR_LIMIT = 2000
#: how often a release reads the stream again when the projector's checkpoint moved meanwhile
RELEASE_ATTEMPTS = 50
#: the column of each view that holds the stream id: a release deletes one stream's rows by it
STREAM_KEYS = {"orders": "id", "order_items": "order_id", "order_history": "order_id", "workflows": "stream_id"}


@dataclass(frozen=True, slots=True)
class Quarantine:
    """One stream a projector set aside: where it failed (position, event type), why, and since when (UTC)."""

    projector: str
    stream_id: str
    position: int
    event_type: str
    error: str
    since: datetime


def quarantine_of(projector: str, stored: StoredEvent, cause: BaseException, since: datetime) -> Quarantine:
    """The record for `stored`'s stream; the error text is bounded and holds no NUL (PostgreSQL text cannot)."""
    text = f"{type(cause).__name__}: {cause}".replace("\x00", "\\x00")
    if len(text) > ERROR_LIMIT:
        text = text[:ERROR_LIMIT - 3] + "..."
    return Quarantine(projector, stored.stream_id, stored.position, stored.type, text, since)


class QuarantineStorage(Protocol):
    """What a read-model backend stores for quarantines; the policy above and in the runner uses it.

    Besides these, the backend's `apply(projector, events, after, quarantine=None)` reads the batch's
    quarantined streams of that projector inside its transaction (after the checkpoint is locked, so a
    release committed meanwhile is seen) and runs the batch with `run_skipping`; given a `quarantine`, it
    inserts that record in the same transaction (its stream is then skipped too). `reset(projector)`
    deletes the projector's records with its rows.
    """

    async def checkpoint(self, name: str) -> int: ...

    async def quarantined(self, *, projector: str | None = None, stream_id: str | None = None) -> list[Quarantine]:
        """The records, by projector then stream, optionally of one projector or one stream."""
        ...

    async def release(self, projector: Projector, stream_id: str, events: Sequence[Decoded], checkpoint: int) -> bool:
        """In one transaction, if the projector's checkpoint is still `checkpoint` (else False): delete the
        stream's rows from the projector's views, write those `run_batch(projector, ...)` builds from `events`
        (the stream's, up to the checkpoint), delete the record. EventFailed when they still do not apply."""
        ...


def run_skipping(projector: Projector, changes: Changes, events: Sequence[Decoded],
                 quarantined: Collection[str]) -> int:
    """`run_batch` without the events of `quarantined` streams; returns the batch's last position all the same
    (the checkpoint moves past the skipped events: they are recorded, not lost) and names a failing event by
    its index in `events`."""
    if not quarantined:
        return run_batch(projector, changes, events)
    kept = [n for n, (stored, _) in enumerate(events) if stored.stream_id not in quarantined]
    try:
        run_batch(projector, changes, [events[n] for n in kept])
    except EventFailed as exc:
        raise EventFailed(kept[exc.index], exc.position, exc.cause) from exc.cause
    return events[-1][0].position if events else 0


def batch_streams(events: Sequence[Decoded]) -> list[str]:
    """The distinct streams of a batch (what a backend looks up among the quarantined)."""
    return list({stored.stream_id: None for stored, _ in events})


async def check_stream(storage: QuarantineStorage, stream_id: str, projector: str) -> None:
    """Raise StreamQuarantinedError when `projector` set `stream_id` aside (its view of it is out of date)."""
    found = await storage.quarantined(projector=projector, stream_id=stream_id)
    if found:
        q = found[0]
        raise StreamQuarantinedError(q.stream_id, q.projector, q.position, q.event_type)


async def release_stream(store: EventStore, storage: QuarantineStorage, projector: Projector, stream_id: str) -> int:
    """Rebuild `projector`'s rows of `stream_id` from its events and lift the quarantine; returns how many of
    its events were re-applied. Later events of the stream are the runner's again once this commits.

    Raises ReleaseError when the stream is not quarantined by that projector, or its events still fail or
    cannot be written (then nothing changes: the record stays as it was).
    """
    if not await storage.quarantined(projector=projector.name, stream_id=stream_id):
        raise ReleaseError(f"stream {stream_id!r} is not quarantined by projection {projector.name!r}")
    for _ in range(RELEASE_ATTEMPTS):
        # every event up to a checkpoint was visible when the checkpoint was read, so loading after it
        # finds them all; the release then commits only if the checkpoint has not moved since
        checkpoint = await storage.checkpoint(projector.name)
        events = [e for e in await store.load(stream_id) if e.position <= checkpoint]
        try:
            released = await storage.release(projector, stream_id, decode_batch(events), checkpoint)
        except EventFailed as exc:
            raise ReleaseError(f"stream {stream_id!r} still fails in projection {projector.name!r} at position "
                               f"{exc.position}: {type(exc.cause).__name__}: {exc.cause}; it stays quarantined"
                               ) from exc
        except Exception as exc:  # the rows it builds cannot be written (a value the database cannot hold)
            raise ReleaseError(f"stream {stream_id!r} could not be released from projection {projector.name!r}: "
                               f"{type(exc).__name__}: {exc}; it stays quarantined") from exc
        if released:
            logger.info("projection %r: stream %r released, %d events re-applied", projector.name, stream_id,
                        len(events))
            return len(events)
    raise ReleaseError(f"projection {projector.name!r} kept moving while stream {stream_id!r} was being released "
                       f"({RELEASE_ATTEMPTS} tries); try again")


async def release_quarantined(store: EventStore, storage: QuarantineStorage, projectors: Sequence[Projector],
                              stream_id: str, name: str | None = None) -> dict[str, int]:
    """Release `stream_id` from every projector that quarantined it, or from the one named; returns the
    events re-applied per projector. ReleaseError when there is nothing to release (or it still fails)."""
    known = {p.name: p for p in projectors}
    if name is not None and name not in known:
        raise ReleaseError(f"no projection named {name!r}; known: {', '.join(known)}")
    held = [q.projector for q in await storage.quarantined(stream_id=stream_id)
            if q.projector in known and (name is None or q.projector == name)]
    if not held:
        where = f"projection {name!r}" if name is not None else "any projection"
        raise ReleaseError(f"stream {stream_id!r} is not quarantined by {where}")
    return {p: await release_stream(store, storage, known[p], stream_id) for p in held}
