"""The stored form of an event, shared by every backend: checks, JSON text and UTC time text.

Imports only `errors` and `events`; never a database driver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from ..errors import StoreError
from ..events import JSON_SCALARS, NewEvent


class EncodedEvent(NamedTuple):
    """A NewEvent ready for a row: JSON text for data and metadata, ISO UTC text for the time."""

    type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: str


_encode_json = msgspec.json.Encoder().encode
# the careful way, built once (json.dumps with options builds a new encoder on every call)
_encode_careful = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _plain(value: Any) -> bool:
    """Only strings, integers, booleans, None, lists and str-keyed dicts of them: JSON that msgspec
    writes byte for byte as json.dumps does (no floats, whose spelling differs, and no NaN)."""
    kind = type(value)
    if kind in JSON_SCALARS:
        return True
    if kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(_plain, value.values()))
    return False


def dumps(value: Mapping[str, Any], what: str) -> str:
    """Compact JSON text of a mapping; StoreError naming `what` when it is not plain JSON."""
    try:
        plain = type(value) is dict and _plain(value)
    except RecursionError:  # nested deeper than Python recurses: the careful way refuses it by name
        plain = False
    if plain:
        # the usual event: strings, integers, lists and objects of them, which msgspec writes byte for
        # byte as json.dumps below does, five times faster; anything else (floats, other types) goes
        # the careful way
        try:
            return _encode_json(value).decode()
        except UnicodeEncodeError:
            pass  # a lone surrogate: json.dumps decides, as it always did
    if not isinstance(value, Mapping):
        raise StoreError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        return _encode_careful(dict(value))
    except RecursionError:
        raise StoreError(f"{what} is nested too deeply to store as JSON") from None
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"{what} is not plain JSON ({exc}); store money as strings and times as ISO text"
        ) from exc


_decode_json = msgspec.json.Decoder().decode


def loads(text: str | bytes) -> Any:
    """JSON text to Python values, exactly as `json.loads` reads it, about 5x faster.

    msgspec parses what `dumps` writes (big integers stay exact integers); anything it refuses
    (NaN, a lone surrogate escape) is read again by the standard library, which decides.
    """
    try:
        return _decode_json(text)
    except msgspec.DecodeError:
        return json.loads(text)


def utc_text(at: datetime, what: str) -> str:
    """ISO text of an aware datetime in UTC, always with microseconds so the text sorts as time."""
    if type(at) is datetime and at.tzinfo is UTC:  # what utcnow() makes: no conversion to do
        return at.isoformat(timespec="microseconds")
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise StoreError(f"{what}: recorded_at must be a timezone-aware datetime (UTC), got {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def encode_event(stream_id: str, event: NewEvent, command_id: str | None) -> EncodedEvent:
    """Check and encode one event of `stream_id`; the command id joins its metadata when given."""
    what = f"stream {stream_id!r}, event {getattr(event, 'type', event)!r}"
    if not isinstance(event, NewEvent):
        raise StoreError(f"{what}: expected a NewEvent, got {type(event).__name__}")
    if not isinstance(event.type, str) or not event.type:
        raise StoreError(f"{what}: the event type must be a non-empty string")
    if isinstance(event.schema_version, bool) or not isinstance(event.schema_version, int) or event.schema_version < 1:
        raise StoreError(f"{what}: schema_version must be an integer >= 1, got {event.schema_version!r}")
    metadata = event.metadata
    if command_id is not None and isinstance(metadata, Mapping):
        metadata = {**metadata, "command_id": command_id}
    return EncodedEvent(
        event.type,
        event.schema_version,
        dumps(event.data, f"{what}: data"),
        dumps(metadata, f"{what}: metadata"),
        utc_text(event.recorded_at, what),
    )


def encode_append(
    stream_id: str, events: Sequence[NewEvent], command_id: str | None, result: Mapping[str, Any] | None,
) -> tuple[list[EncodedEvent], str]:
    """Check and encode what one append writes: its events, and the command result as JSON text."""
    check_stream_id(stream_id)
    encoded = [encode_event(stream_id, event, command_id) for event in events]
    return encoded, dumps(result, f"stream {stream_id!r}: command result") if result else "{}"


def check_stream_id(stream_id: str) -> None:
    if not isinstance(stream_id, str) or not stream_id:
        raise StoreError(f"a stream id must be a non-empty string, got {stream_id!r}")
