"""API keys: scopes, secrets shown once and kept only as SHA-256 hashes, and the table they live in.

A key is `om_` and 43 URL-safe characters (32 random bytes). Its holder sends it as `Authorization:
Bearer KEY`; the store keeps its name, scope, times and the SHA-256 of the key, never the key.
The keys live beside the events, in an `api_keys` table of their own: in the SQLite file (sqlite.py),
in the PostgreSQL schema (postgres.py), or in memory for memory://. This package owns that table: it is
not one of the event store's migrations, because keys are not events. Imports `errors` only (the
backends also the store they sit beside); nothing of HTTP: api/auth.py checks requests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from ..errors import InvalidCommandError, StoreError

if TYPE_CHECKING:
    from ..store import EventStore

Scope = Literal["read", "write", "admin"]
#: each scope grants the ones before it: read = GET routes; write = read + commands; admin = everything
SCOPES: tuple[Scope, ...] = get_args(Scope)

TOKEN_PREFIX = "om_"
TOKEN_BYTES = 32
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43  # 32 bytes in unpadded base64url
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOKEN_BODY = re.compile(r"[A-Za-z0-9_-]+")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def grants(held: Scope, needed: Scope) -> bool:
    """Whether a key with scope `held` may call a route that needs `needed`."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def check_scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise InvalidCommandError(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}", "scope")
    return scope


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidCommandError(f"key name {name[:80]!r} is not allowed: a name is {NAME_RULE}", "name")
    return name


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 of a key, as stored. A fast hash is enough for 256 random bits (docs/security.md)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def looks_like_token(token: str) -> bool:
    """Shape only (prefix, length, characters): anything else is refused without a database read."""
    return (len(token) == TOKEN_LENGTH and token.startswith(TOKEN_PREFIX)
            and _TOKEN_BODY.fullmatch(token, len(TOKEN_PREFIX)) is not None)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but the secret."""

    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def scopes(self) -> list[Scope]:
        """Every scope the key grants (its own and the ones below it)."""
        return list(SCOPES[:SCOPES.index(self.scope) + 1])

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scopes": self.scopes, "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its secret: the only time the secret exists outside its holder's hands."""

    key: ApiKey
    token: str


class KeyRows(Protocol):
    """The api_keys table of one backend: rows in, rows out, no rules."""

    async def insert(self, key: ApiKey, hashed: str) -> bool:
        """Add a row; False (nothing written) when the name is taken."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every key, oldest first."""
        ...

    async def find(self, hashed: str) -> ApiKey | None: ...

    async def get(self, name: str) -> ApiKey | None: ...

    async def revoke(self, name: str, at: datetime) -> None:
        """Set revoked_at where it is not set yet."""
        ...

    async def close(self) -> None: ...


class KeyStore:
    """Create, list, revoke and check API keys; the rules over one backend's rows."""

    def __init__(self, rows: KeyRows, clock: Clock = utcnow) -> None:
        self.rows, self.clock = rows, clock

    async def create(self, scope: str, name: str | None = None) -> CreatedKey:
        """A new key with `scope`, named `name` (or key-<8 hex digits>); the secret is in the result only.

        Names stay taken after a revocation: the name is what events record as their actor.
        """
        granted = check_scope(scope)
        for _ in range(3):
            chosen = check_name(name) if name is not None else f"key-{secrets.token_hex(4)}"
            token = new_token()
            key = ApiKey(chosen, granted, self.clock())
            if await self.rows.insert(key, token_hash(token)):
                return CreatedKey(key, token)
            if name is not None:
                raise InvalidCommandError(f"a key named {name!r} exists already (names are never reused, "
                                          "revoked or not): choose another --name", "name")
        raise StoreError("could not choose an unused key name; pass --name")  # pragma: no cover - 2**-96

    async def list(self) -> list[ApiKey]:
        return await self.rows.all()

    async def revoke(self, name: str) -> tuple[ApiKey, bool]:
        """Revoke a key for good (a revoked key answers 401): the key, and False if it was revoked already."""
        before = await self.rows.get(name) if _NAME.fullmatch(name) else None
        if before is None:
            raise InvalidCommandError(f"no key named {name[:80]!r} (`order-machine keys list` shows them)", "name")
        await self.rows.revoke(name, self.clock())
        after = await self.rows.get(name)
        assert after is not None
        return after, before.revoked_at is None

    async def authenticate(self, token: str) -> ApiKey | None:
        """The key a request's secret belongs to (revoked ones too: the caller tells them apart), or None."""
        if not looks_like_token(token):
            return None
        return await self.rows.find(token_hash(token))

    async def close(self) -> None:
        await self.rows.close()


class MemoryKeyRows:
    """Keys in a dict, for memory:// stores: gone with the process, like the events."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._names_by_hash: dict[str, str] = {}

    async def insert(self, key: ApiKey, hashed: str) -> bool:
        if key.name in self._keys:
            return False
        self._keys[key.name], self._names_by_hash[hashed] = key, key.name
        return True

    async def all(self) -> list[ApiKey]:
        return list(self._keys.values())

    async def find(self, hashed: str) -> ApiKey | None:
        name = self._names_by_hash.get(hashed)
        return self._keys[name] if name is not None else None

    async def get(self, name: str) -> ApiKey | None:
        return self._keys.get(name)

    async def revoke(self, name: str, at: datetime) -> None:
        key = self._keys.get(name)
        if key is not None and key.revoked_at is None:
            self._keys[name] = replace(key, revoked_at=at)

    async def close(self) -> None:
        pass


def open_key_store(store: EventStore, clock: Clock = utcnow) -> KeyStore:
    """The keys that live beside `store`: in memory, or the api_keys table of its database (opened on first use)."""
    scheme = store.url.split(":", 1)[0].lower()
    if scheme == "memory":
        return KeyStore(MemoryKeyRows(), clock)
    if scheme == "sqlite":
        from .sqlite import SQLiteKeyRows

        return KeyStore(SQLiteKeyRows(store), clock)
    if scheme in ("postgres", "postgresql"):
        from .postgres import PostgresKeyRows

        return KeyStore(PostgresKeyRows(store), clock)
    raise StoreError(f"no API keys for a store of scheme {scheme!r}")


__all__ = ["SCOPES", "ApiKey", "CreatedKey", "KeyRows", "KeyStore", "MemoryKeyRows", "Scope", "grants",
           "open_key_store", "token_hash"]
