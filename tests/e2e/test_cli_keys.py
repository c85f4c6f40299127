"""`order-machine keys create | list | revoke` through main([...]), and `serve`'s refusal to listen beyond
loopback without choosing --auth."""

from __future__ import annotations

import asyncio
import socket

import pytest

from order_machine.apikeys import open_key_store
from order_machine.cli.serve import is_loopback
from order_machine.store import open_store

from cli_support import CLI, assert_one_line_error, cli  # noqa: F401 (fixture)

DB = "sqlite:///keys.db"


def authenticate(token: str) -> tuple[str, bool] | None:
    async def check() -> tuple[str, bool] | None:
        store = open_store(DB)
        keys = open_key_store(store)
        try:
            found = await keys.authenticate(token)
            return (found.name, found.revoked) if found else None
        finally:
            await keys.close()
            await store.close()
    return asyncio.run(check())


def test_create_prints_the_key_alone_on_stdout_and_what_it_is_on_stderr(cli: CLI) -> None:
    created = cli("keys", "create", "--scope", "write", "--name", "checkout", "--db", DB)
    assert created.code == 0, created
    token = created.out.strip()
    assert created.out == token + "\n" and token.startswith("om_")
    assert created.err == ("created key 'checkout' (scopes: read, write); the key above is shown this once: "
                           "keep it now\n")
    assert authenticate(token) == ("checkout", False)


def test_create_json_holds_the_key_once_and_list_never_shows_it(cli: CLI) -> None:
    made = cli("keys", "create", "--scope", "admin", "--name", "ops", "--db", DB, "--json").json()
    assert set(made) == {"name", "scopes", "created_at", "revoked_at", "key"}
    assert (made["name"], made["scopes"], made["revoked_at"]) == ("ops", ["read", "write", "admin"], None)
    listed = cli("keys", "list", "--db", DB, "--json")
    assert listed.code == 0 and made["key"] not in listed.out
    assert listed.json() == [{k: v for k, v in made.items() if k != "key"}]
    table = cli("keys", "list", "--db", DB)
    assert table.out.splitlines()[0].split() == ["NAME", "SCOPES", "CREATED", "REVOKED"]
    assert made["key"] not in table.out and table.out.splitlines()[2].startswith("ops   read, write, admin")


def test_revoke_makes_the_key_fail_and_a_second_revoke_says_so(cli: CLI) -> None:
    token = cli("keys", "create", "--scope", "read", "--name", "ci", "--db", DB).out.strip()
    revoked = cli("keys", "revoke", "ci", "--db", DB)
    assert (revoked.code, revoked.out) == (0, "revoked key 'ci': its requests answer 401 from now on\n")
    assert authenticate(token) == ("ci", True)
    again = cli("keys", "revoke", "ci", "--db", DB)
    assert again.code == 0 and again.out.startswith("key 'ci' was already revoked (")
    assert cli("keys", "revoke", "ci", "--db", DB, "--json").json()["revoked_at"] is not None
    assert cli("keys", "list", "--db", DB).out.splitlines()[2].split()[-2:] != ["-"]


@pytest.mark.parametrize("argv, words", [
    (["keys", "revoke", "nobody"], ["no key named 'nobody'"]),
    (["keys", "create", "--scope", "read", "--name", "a b"], ["key name 'a b' is not allowed"]),
    (["keys", "create", "--scope", "read", "--name", "taken"], ["a key named 'taken' exists already"]),
    (["keys", "list", "--db", "memory://"], ["memory://"]),
    (["keys", "list", "--db", "sqlite:///elsewhere.db"], ["no database at 'elsewhere.db'"]),
    (["keys", "create", "--scope", "read", "--db", "postgresql://app:s3cret@127.0.0.1:1/orders"], ["127.0.0.1"]),
])
def test_a_failing_keys_command_is_one_line_and_exit_1(cli: CLI, argv: list[str], words: list[str]) -> None:
    assert cli("keys", "create", "--scope", "read", "--name", "taken", "--db", DB).code == 0
    run = cli(*argv, *([] if "--db" in argv else ["--db", DB]))
    assert_one_line_error(run, *words)
    assert "s3cret" not in run.err


@pytest.mark.parametrize("argv", [["keys"], ["keys", "create"], ["keys", "create", "--scope", "root"]])
def test_a_keys_usage_error_is_one_line_and_exit_2(cli: CLI, argv: list[str]) -> None:
    run = cli(*argv)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1 and "--help" in run.err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10"])
def test_serve_on_a_non_loopback_host_without_auth_refuses_to_start_with_exit_2(cli: CLI, host: str) -> None:
    run = cli("serve", "--host", host, "--port", "1")
    assert run.code == 2, run
    assert run.err.count("\n") == 1 and "reachable from other machines: choose --auth keys" in run.err
    assert "or say --auth none" in run.err


def test_serve_on_a_non_loopback_host_from_the_environment_refuses_too(
        cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_MACHINE_HOST", "0.0.0.0")
    assert cli("serve", "--port", "1").code == 2


def test_serve_with_auth_keys_on_memory_refuses_to_start(cli: CLI) -> None:
    run = cli("serve", "--auth", "keys", "--db", "memory://", "--port", "1")
    assert run.code == 2 and "memory:// starts with none" in run.err


def test_serve_with_auth_keys_and_no_live_key_warns_before_anything_else(cli: CLI) -> None:
    assert cli("keys", "create", "--scope", "admin", "--name", "old", "--db", DB).code == 0
    assert cli("keys", "revoke", "old", "--db", DB).code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = cli("serve", "--auth", "keys", "--port", str(taken.getsockname()[1]), "--db", DB)
    warning, error = run.err.splitlines()
    assert warning.startswith("order-machine: warning: no API key on sqlite:///keys.db yet")
    assert run.code == 1 and error.startswith("error: cannot listen on 127.0.0.1:")


def test_serve_with_an_explicit_auth_choice_gets_past_the_check(cli: CLI) -> None:
    # a taken port: the refusal is then about listening, not about auth
    assert cli("keys", "create", "--scope", "admin", "--db", DB).code == 0
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for auth in ("none", "keys"):
            run = cli("serve", "--host", "0.0.0.0", "--auth", auth, "--port", port, "--db", DB)
            assert_one_line_error(run, "cannot listen on 0.0.0.0")


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.1", False), ("203.0.113.9", False),
])
def test_loopback_is_every_address_a_host_names_being_a_loopback_one(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
