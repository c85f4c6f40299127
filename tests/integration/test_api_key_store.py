"""The API keys beside every store (memory, SQLite file, PostgreSQL schema): created once, kept hashed,
found by their secret, revoked for good, names never reused."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from order_machine.apikeys import KeyStore, grants, open_key_store
from order_machine.errors import InvalidCommandError
from order_machine.store import EventStore
from order_machine.store.sqlite import SQLiteEventStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ticking_clock() -> Callable[[], datetime]:
    """A clock a second later at each reading, so a test knows every time a key records."""
    ticks = iter(range(10_000))
    return lambda: T0 + timedelta(seconds=next(ticks))


@pytest.fixture
async def keys(store: EventStore) -> AsyncIterator[KeyStore]:
    opened = open_key_store(store, clock=ticking_clock())
    yield opened
    await opened.close()


async def test_a_created_key_is_found_by_its_secret_with_its_name_and_scope(keys: KeyStore) -> None:
    created = await keys.create("write", "checkout")
    assert created.token.startswith("om_") and len(created.token) == 46
    found = await keys.authenticate(created.token)
    assert found == created.key
    assert (found.name, found.scope, found.scopes, found.created_at, found.revoked_at) == (
        "checkout", "write", ["read", "write"], T0, None)


async def test_a_made_up_or_malformed_secret_finds_nothing(keys: KeyStore) -> None:
    created = await keys.create("read", "dashboards")
    for wrong in ("om_" + "A" * 43, created.token[:-1] + ("A" if created.token[-1] != "A" else "B"),
                  created.token + "x", created.token.upper(), "", "Bearer " + created.token, "om_" + "é" * 43):
        assert await keys.authenticate(wrong) is None, wrong


async def test_a_revoked_key_is_still_found_but_marked_revoked_and_revoking_again_changes_nothing(
        keys: KeyStore) -> None:
    created = await keys.create("admin", "ops")
    revoked, now = await keys.revoke("ops")
    assert now and revoked.revoked_at == T0 + timedelta(seconds=1)
    again, now = await keys.revoke("ops")
    assert not now and again.revoked_at == revoked.revoked_at
    found = await keys.authenticate(created.token)
    assert found is not None and found.revoked


async def test_names_are_never_reused_even_after_a_revocation(keys: KeyStore) -> None:
    await keys.create("read", "ci")
    await keys.revoke("ci")
    with pytest.raises(InvalidCommandError, match="a key named 'ci' exists already") as refused:
        await keys.create("write", "ci")
    assert refused.value.field == "name"
    assert [k.name for k in await keys.list()] == ["ci"]


async def test_keys_are_listed_oldest_first_and_unnamed_ones_get_a_name(keys: KeyStore) -> None:
    first = await keys.create("read")
    await keys.create("write", "b-second")
    await keys.create("admin", "a-third")
    assert first.key.name.startswith("key-") and len(first.key.name) == 12
    assert [k.name for k in await keys.list()] == [first.key.name, "b-second", "a-third"]


@pytest.mark.parametrize("name", ["", "a/b", "-lead", "x" * 65, "sp ace", "nul\x00", "ключ"])
async def test_a_name_outside_the_rule_is_refused_naming_the_field(keys: KeyStore, name: str) -> None:
    with pytest.raises(InvalidCommandError) as refused:
        await keys.create("read", name)
    assert refused.value.field == "name"
    assert await keys.list() == []


async def test_an_unknown_scope_is_refused_and_an_unknown_name_cannot_be_revoked(keys: KeyStore) -> None:
    with pytest.raises(InvalidCommandError, match="unknown scope 'root'"):
        await keys.create("root", "x")
    for name in ("nobody", "nul\x00", "a/b"):
        with pytest.raises(InvalidCommandError, match="no key named"):
            await keys.revoke(name)


def test_each_scope_grants_the_ones_below_it_and_none_above() -> None:
    assert [(held, needed) for held in ("read", "write", "admin") for needed in ("read", "write", "admin")
            if grants(held, needed)] == [
        ("read", "read"), ("write", "read"), ("write", "write"), ("admin", "read"), ("admin", "write"),
        ("admin", "admin")]


async def test_sqlite_keeps_only_the_hash_and_the_keys_outlive_the_process(sqlite_url: str) -> None:
    async with SQLiteEventStore.from_url(sqlite_url) as store:
        keys = open_key_store(store)
        created = await keys.create("write", "checkout")
        await keys.create("read", "gone")
        await keys.revoke("gone")
        await keys.close()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, scope, token_sha256 FROM api_keys ORDER BY name").fetchall()
    assert rows[0] == ("checkout", "write", hashlib.sha256(created.token.encode()).hexdigest())
    files = [f for f in (path, Path(f"{path}-wal")) if f.exists()]
    assert all(created.token.encode() not in f.read_bytes() for f in files)
    async with SQLiteEventStore.from_url(sqlite_url) as store:  # another process, later
        keys = open_key_store(store)
        assert (await keys.authenticate(created.token)) == created.key
        assert [(k.name, k.revoked) for k in await keys.list()] == [("checkout", False), ("gone", True)]
        await keys.close()


@pytest.mark.postgres
async def test_postgres_keeps_only_the_hash_in_the_stores_schema_and_processes_share_the_keys() -> None:
    import psycopg
    from integration.pg_support import drop_schema, fresh_schema, pg_url, postgres_store

    url, schema = pg_url(), fresh_schema()
    try:
        async with postgres_store(url, schema=schema) as one, postgres_store(url, schema=schema) as other:
            created = await open_key_store(one).create("admin", "ops")
            assert await open_key_store(other).authenticate(created.token) == created.key
            await open_key_store(other).revoke("ops")
            found = await open_key_store(one).authenticate(created.token)
            assert found is not None and found.revoked
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute(f'SELECT name, token_sha256 FROM "{schema}".api_keys')
            assert await cur.fetchall() == [("ops", hashlib.sha256(created.token.encode()).hexdigest())]
    finally:
        await drop_schema(url, schema)
