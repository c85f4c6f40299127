"""The one rule for ids and text that come from outside (HTTP, CLI, Python callers), and its pydantic types.

An id (order, customer, product, and any later entity) is 1 to 200 characters: letters and digits of any
script (with their combining marks), and the ASCII marks a URL path segment holds unescaped (RFC 3986
`pchar` without `%`): - . _ ~ : @ ! $ & ' ( ) * + , ; =. So no whitespace, no `/`, no `%`, `?` or `#`, no
control characters (NUL, C0, DEL, C1), no format characters (BOM, bidi overrides, zero-width joiners),
no symbols or emoji, no surrogates or unassigned code points, and not `.` or `..`. Ids are compared code point by code point
(not Unicode-normalised). Stored text (descriptions, reasons, action data) may hold anything a store can
keep: any character but NUL and lone surrogates.
Imports only `errors` and pydantic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from .errors import InvalidCommandError

__all__ = [
    "ID_JSON_SCHEMA", "ID_MARKS", "ID_MAX_LENGTH", "ID_RULE", "KEY_MAX_LENGTH", "KEY_RULE", "Id", "Key", "StoredText", "check_id",
    "check_stored", "id_problem", "key_problem", "quote_id", "text_problem",
]

ID_MAX_LENGTH = 200
ID_MARKS = "-._~:@!$&'()*+,;="
ID_RULE = (f"1 to {ID_MAX_LENGTH} characters: letters and digits (any script) and {' '.join(ID_MARKS)}; "
           "no spaces, slashes, control or format characters")
_ALLOWED_CATEGORIES = ("L", "M", "N")  # letters, combining marks, digits and other numbers
_PLAIN_ID = re.compile(r"[A-Za-z0-9\-._~:@!$&'()*+,;=]{1,%d}" % ID_MAX_LENGTH)  # the common case, at C speed
KEY_MAX_LENGTH = 200
KEY_RULE = f"1 to {KEY_MAX_LENGTH} visible ASCII characters (! to ~), no spaces"
_KEY = re.compile(r"[!-~]{1,%d}" % KEY_MAX_LENGTH)

# The id rule as JSON Schema, for OpenAPI and clients that validate before sending. "Letters of any script"
# has no portable regex (JSON Schema's ECMA-262 and Python's `re` disagree on \p{L}), so the pattern states
# the ASCII part exactly and refuses the characters that are never letters (controls, spaces, format
# characters); the description says the rest, and the server checks it (422 naming the field).
ID_JSON_SCHEMA: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH,
    "pattern": r'^[^\x00-\x20"#%/<>?\[\\\]^`{|}\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000'
               r'\ufeff\ufff9-\ufffb]+$',
    "description": f"an id: {ID_RULE}",
}


_KINDS = {"C": "the control or format character", "Z": "the space", "S": "the symbol", "P": "the mark"}


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    kind = _KINDS.get(unicodedata.category(char)[0], "the character")
    return f"{kind} U+{ord(char):04X}" + (f" ({name})" if name else "")


def id_problem(value: object) -> str | None:
    """Why `value` is not an id (one sentence ending with the rule), or None when it is one."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}; an id is {ID_RULE}"
    if _PLAIN_ID.fullmatch(value) and value not in (".", ".."):
        return None
    if not 1 <= len(value) <= ID_MAX_LENGTH:
        return f"has {len(value)} characters; an id is {ID_RULE}"
    if value in (".", ".."):
        return f"{value!r} is a path step, not a name; an id is {ID_RULE}"
    for position, char in enumerate(value, 1):
        if char in ID_MARKS or (char.isascii() and char.isalnum()):
            continue
        if not char.isascii() and unicodedata.category(char)[0] in _ALLOWED_CATEGORIES:
            continue
        return f"{_describe(char)} at position {position} is not allowed; an id is {ID_RULE}"
    return None


def check_id(value: object, field: str) -> str:
    """`value` when it is an id; else InvalidCommandError naming `field` (for callers outside pydantic)."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidCommandError(f"{field} {problem}", field)
    assert isinstance(value, str)
    return value


def key_problem(value: object) -> str | None:
    """Why `value` is not an idempotency key (`Idempotency-Key`, a command id), or None when it is one."""
    if isinstance(value, str) and _KEY.fullmatch(value):
        return None
    if isinstance(value, str) and not value:
        return f"is empty; a key is {KEY_RULE}"
    shown = f"has {len(value)} characters" if isinstance(value, str) else f"is {type(value).__name__}"
    return f"{shown} or characters outside the rule; a key is {KEY_RULE}"


def quote_id(value: str) -> str:
    """An id as one URL path segment: non-ASCII letters percent-encoded as UTF-8, the allowed marks kept."""
    return quote(value, safe=ID_MARKS)


def text_problem(value: str) -> str | None:
    """Why a store cannot hold `value` (NUL: PostgreSQL text refuses it; a lone surrogate is not UTF-8)."""
    for position, char in enumerate(value, 1):
        if char == "\x00":
            return f"contains NUL (U+0000) at position {position}, which cannot be stored"
        if "\ud800" <= char <= "\udfff":
            return f"contains a lone surrogate (U+{ord(char):04X}) at position {position}, which is not UTF-8"
    return None


def check_stored(value: Any, field: str) -> None:
    """Refuse (InvalidCommandError naming the field) any text inside `value` a store cannot hold.

    Walks mappings (keys too) and lists, so action data of any shape is covered.
    """
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidCommandError(f"{field} {problem}", field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_stored(key, field)
            check_stored(item, f"{field}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_stored(item, f"{field}[{i}]")


def _pydantic_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_id", "{problem}", {"problem": problem})
    return value


def _pydantic_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("unstorable_text", "{problem}", {"problem": problem})
    return value


def _pydantic_key(value: str) -> str:
    problem = key_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_key", "{problem}", {"problem": problem})
    return value


Id = Annotated[str, AfterValidator(_pydantic_id), WithJsonSchema(ID_JSON_SCHEMA)]
"""An id from outside, checked by `id_problem`; the 422 names the field and states the rule."""

StoredText = Annotated[str, AfterValidator(_pydantic_text)]
"""Free text a store can hold: anything but NUL and lone surrogates."""

Key = Annotated[str, AfterValidator(_pydantic_key)]
"""An idempotency key (command id), checked by `key_problem`."""
