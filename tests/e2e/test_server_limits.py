"""`order-machine serve --auth keys` as its own process, spoken to over raw sockets: keys, long headers and a
client trickling its body, where uvicorn's own parsing and timeouts are in play."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from order_machine.apikeys import open_key_store
from order_machine.store import open_store

from test_server_process import DEFINITIONS, command, free_port, wait_until_answering

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, db: Path, workdir: Path) -> None:
        self.port, self.db = free_port(), db
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ORDER_MACHINE_DEFINITIONS": str(DEFINITIONS), "PYTHONUNBUFFERED": "1",
               "ORDER_MACHINE_BODY_TIMEOUT_SECONDS": "0.5", "ORDER_MACHINE_MAX_HEADER_BYTES": "4096",
               "ORDER_MACHINE_HEADER_TIMEOUT_SECONDS": "0.5",
               "ORDER_MACHINE_DURABILITY": "fast"}
        self.log = workdir / "server.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command(), "serve", "--db", f"sqlite:///{db}", "--port", str(self.port), "--auth", "keys",
                 "--log-level", "warning"], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until_answering(self.process, self.url, self.log)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture
def key(tmp_path: Path) -> str:
    async def create() -> str:
        store = open_store(f"sqlite:///{tmp_path}/orders.db")
        keys = open_key_store(store)
        try:
            return (await keys.create("write", "test-client")).token
        finally:
            await keys.close()
            await store.close()
    return asyncio.run(create())


@pytest.fixture
def server(tmp_path: Path, key: str) -> Iterator[Server]:
    running = Server(tmp_path / "orders.db", tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_the_server_takes_a_command_only_with_a_key_and_records_who_sent_it(server: Server, key: str) -> None:
    order = {"order_id": "ord-1", "customer_id": "c-1"}
    assert httpx.post(f"{server.url}/orders", json=order).status_code == 401
    created = httpx.post(f"{server.url}/orders", json=order, headers={"Authorization": f"Bearer {key}"})
    assert created.status_code == 201, created.text
    assert httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 403
    with sqlite3.connect(server.db) as conn:
        (metadata,), = conn.execute("SELECT metadata FROM events WHERE stream_id = 'ord-1'").fetchall()
    assert json.loads(metadata)["actor"] == "test-client"


def test_a_body_trickled_slower_than_the_timeout_is_answered_408_and_the_connection_closed(
        server: Server, key: str) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        answer = read_until_closed(sock)  # one byte of 100, then nothing: the server ends it
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"error":"body_timeout"' in answer and b"connection: close" in answer.lower()
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_headers_past_the_limit_are_refused_and_the_connection_closed(server: Server, key: str) -> None:
    with server.connect() as sock:  # in one piece: the app's limit answers
        sock.sendall(b"GET /orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode()
                     + b"\r\nX-Padding: " + b"a" * 5000 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b'"error":"headers_too_large"' in answer
    with server.connect() as sock:  # an endless head in pieces: h11 stops buffering it at the same size
        sock.sendall(b"GET /orders HTTP/1.1\r\nHost: t\r\nX-Padding: ")
        try:
            for _ in range(64):
                sock.sendall(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: refused, as it should be
        try:
            answer = read_until_closed(sock)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), answer
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_connection_whose_head_never_completes_is_closed_without_an_answer(server: Server) -> None:
    with server.connect() as silent, server.connect() as trickling:
        trickling.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # and never the rest
        assert read_until_closed(silent) == b""
        assert read_until_closed(trickling) == b""


def test_a_kept_alive_connection_serves_request_after_request(server: Server, key: str) -> None:
    request = b"GET /orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() + b"\r\n\r\n"
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = b""
            while b"next_cursor" not in answer:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 "), answer
