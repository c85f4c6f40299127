"""`order-machine db upgrade / db status` on PostgreSQL (and what they say on SQLite), and one-line errors
for a wrong password, a server that is down and a bad URL."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import parse_qs
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from integration.pg_support import drop_schema, fresh_schema, pg_url
from order_machine.store.pg_schema import LATEST_VERSION, MIGRATIONS

from cli_support import CLI, assert_one_line_error, cli  # noqa: F401


@pytest.fixture
def schema_url() -> Iterator[str]:
    """The test server's URL on a schema that does not exist yet (dropped after the test)."""
    base, schema = pg_url(), fresh_schema()
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        asyncio.run(drop_schema(base, schema))


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port  # nothing listens on it once the socket is closed


@pytest.mark.postgres
def test_db_status_lists_pending_migrations_and_upgrade_applies_them_once(cli: CLI, schema_url: str) -> None:
    password = urlsplit(schema_url).password or ""
    before = cli("db", "status", "--db", schema_url)
    assert before.code == 0, before
    assert f"version 0 (latest {LATEST_VERSION})" in before.out and "apply with `order-machine db upgrade`" in before.out
    assert [line.split(":")[0].strip() for line in before.out.splitlines()[2:]] == [str(m.version) for m in MIGRATIONS]
    assert cli("db", "status", "--check", "--db", schema_url).code == 1

    upgraded = cli("db", "upgrade", "--db", schema_url)
    assert upgraded.code == 0, upgraded
    assert f"upgraded from version 0 to {LATEST_VERSION}" in upgraded.out
    assert upgraded.out.count("  applied ") == LATEST_VERSION
    again = cli("db", "upgrade", "--db", schema_url)
    assert (again.code, f"already at version {LATEST_VERSION}" in again.out) == (0, True)

    after = cli("db", "status", "--json", "--check", "--db", schema_url)
    assert after.code == 0, after
    assert {k: after.json()[k] for k in ("database", "version", "latest", "pending")} == {
        "database": "postgresql", "version": LATEST_VERSION, "latest": LATEST_VERSION, "pending": []}
    for run in (before, upgraded, again, after):
        assert password not in run.out + run.err and "***" in run.out


@pytest.mark.postgres
def test_db_and_serve_say_in_one_line_what_is_wrong_with_the_server_or_the_url(cli: CLI) -> None:
    url = pg_url()
    parts = urlsplit(url)
    wrong = with_password(url, "not-the-password")
    assert_one_line_error(cli("db", "upgrade", "--db", wrong), "password authentication failed")
    down = f"postgresql://{parts.username}:secret@127.0.0.1:{closed_port()}/orders"
    assert_one_line_error(cli("db", "status", "--db", down), "127.0.0.1", "Connection refused")
    assert_one_line_error(cli("serve", "--db", down, "--port", "0"), "Connection refused")
    assert_one_line_error(cli("db", "upgrade", "--db", "postgresql://u:secret@127.0.0.1:notaport/db"), "port")
    assert_one_line_error(cli("db", "upgrade", "--db", f"{url}?pool_sise=3"), "invalid PostgreSQL URL", "pool_sise")
    assert_one_line_error(cli("db", "status", "--db", f"{url}?schema=Orders-1"), "invalid PostgreSQL schema name")
    assert_one_line_error(cli("db", "status", "--db", "mysql://u:secret@db/orders"), "unsupported store url")
    for run in (cli("db", "upgrade", "--db", wrong), cli("db", "status", "--db", down)):
        assert "not-the-password" not in run.err and "secret" not in run.err


def test_db_on_sqlite_says_it_migrates_on_open_and_status_shows_the_versions(cli: CLI) -> None:
    assert_one_line_error(cli("db", "status"), "no database at 'orders.db'")
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0, upgraded
    assert "SQLite migrates on open: store schema version 1" in upgraded.out
    status = cli("db", "status", "--check")
    assert (status.code, status.out.splitlines()[-1]) == (0, "up to date")
    assert cli("db", "status", "--json").json()["pending"] == []
    assert "no schema" in cli("db", "status", "--db", "memory://").out
    usage = cli("db")
    assert usage.code == 2 and "upgrade or status" in usage.err


@pytest.mark.postgres
def test_check_repairs_a_workflow_row_that_disagrees_with_its_events(cli: CLI, schema_url: str) -> None:
    db = ("--db", schema_url)
    assert cli("workflows", "start", "document", "--id", "doc-1", "--field", "title=T", "--field", "author=a",
               *db).code == 0
    assert cli("workflows", "do", "document", "doc-1", "submit", *db).code == 0
    assert cli("check", *db).out == "checked 0 orders and 1 workflows: 0 mismatched, 0 repaired\n"
    schema = parse_qs(urlsplit(schema_url).query)["schema"][0]

    async def tamper() -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(pg_url(), autocommit=True) as conn:
            await conn.execute(f'DELETE FROM "{schema}".read_workflows WHERE stream_id = %s', ("document/doc-1",))
    asyncio.run(tamper())

    found = cli("check", "--json", *db)
    assert found.code == 1
    assert found.json()["mismatched"] == [{"order_id": "document/doc-1", "repaired": False, "error": None,
                                           "differences": [{"field": "exists", "stored": False, "expected": True}]}]
    repaired = cli("check", "--repair", *db)
    assert (repaired.code, repaired.out.splitlines()[-1]) == (0, "checked 0 orders and 1 workflows: 1 mismatched, "
                                                                 "1 repaired")
    assert cli("check", *db).code == 0
    assert cli("workflows", "show", "document", "doc-1", "--json", *db).json()["state"] == "UnderReview"
