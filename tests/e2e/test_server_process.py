"""The real thing: `order-machine serve` as its own process on SQLite, spoken to over 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import HAS_PROC, children, ended

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def command() -> list[str]:
    script = shutil.which("order-machine", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "order_machine"]


class Server:
    def __init__(self, db: Path, workdir: Path, *, own_group: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ORDER_MACHINE_DEFINITIONS": str(DEFINITIONS), "PYTHONUNBUFFERED": "1"}
        env.pop("ORDER_MACHINE_DB_URL", None)
        self.log = workdir / f"server-{self.port}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command(), "serve", "--db", f"sqlite:///{db}", "--port", str(self.port), "--log-level", "warning"],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=own_group)
        self.wait_until_up()

    def wait_until_up(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"server did not answer within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "orders.db", tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_the_server_takes_an_order_to_delivery_over_loopback_and_keeps_it_after_a_restart(
        server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        created = http.post("/orders", json={"customer_id": "cust-7", "items": [
            {"product_id": "sku-42", "quantity": 2, "unit_price": "19.99"}]}, headers={"Idempotency-Key": "first"})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location.startswith("/orders/")  # relative to the server, whatever Host said
        order_id = created.json()["order_id"]
        for step, body in [("confirm", None), ("start-processing", None),
                           ("ship", {"tracking_number": "1Z999", "shipping_address": "1 Main St"}), ("deliver", None)]:
            answer = http.post(f"/orders/{order_id}/{step}", json=body)
            assert answer.status_code == 200, answer.text
            assert http.get(location).json()["status"] == answer.json()["state"]  # read-your-writes across HTTP
        refused = http.post(f"/orders/{order_id}/cancel", json={"reason": "late"})
        assert refused.status_code == 409 and refused.json()["allowed_actions"] == ["Return"]
        metrics = http.get("/metrics").text
        assert "order_machine_commands_total" in metrics
        # durability "full" by default: a helper process fsyncs the write-ahead log before each answer
        assert "order_machine_store_fsync_process 1" in metrics and "order_machine_store_fsyncs_total 0" not in metrics
        assert http.get("/docs").status_code == 200
    helpers = children(server.process.pid) if HAS_PROC else []
    assert len(helpers) == (1 if HAS_PROC else 0)  # the store's fsync process
    assert server.stop() == 0  # SIGTERM: a clean shutdown
    assert "Traceback" not in server.log.read_text()
    assert all(ended(pid) for pid in helpers)

    again = Server(tmp_path / "orders.db", tmp_path)
    try:
        with httpx.Client(base_url=again.url, timeout=10.0) as http:
            order = http.get(f"/orders/{order_id}").json()
            assert (order["status"], order["version"], order["amount"]) == ("Delivered", 5, "39.98")
            repeat = http.post("/orders", json={"customer_id": "cust-7", "items": [
                {"product_id": "sku-42", "quantity": 2, "unit_price": "19.99"}]}, headers={"Idempotency-Key": "first"})
            assert (repeat.status_code, repeat.json()["order_id"]) == (201, order_id)  # across processes
    finally:
        assert again.stop() == 0


@pytest.mark.skipif(not HAS_PROC, reason="finds the fsync process through /proc")
def test_a_killed_server_leaves_no_fsync_process_behind(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        assert http.post("/orders", json={"customer_id": "cust-7", "amount": "5.00"}).status_code == 201
    helpers = children(server.process.pid)
    assert len(helpers) == 1  # the store's fsync helper
    server.process.kill()  # SIGKILL: no shutdown code runs; the helper sees its input end and exits
    server.process.wait()
    assert ended(helpers[0])


@pytest.mark.skipif(not HAS_PROC, reason="finds the fsync process through /proc")
def test_ctrl_c_stops_the_server_and_its_helper_cleanly(tmp_path: Path) -> None:
    server = Server(tmp_path / "orders.db", tmp_path, own_group=True)  # a terminal's foreground group, alone
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            assert http.post("/orders", json={"customer_id": "cust-7", "amount": "5.00"}).status_code == 201
        helpers = children(server.process.pid)
        assert len(helpers) == 1
        os.killpg(server.process.pid, signal.SIGINT)  # Ctrl-C: every process of the group gets it
        assert server.process.wait(15) == 0
        assert all(ended(pid) for pid in helpers)
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
