"""The real thing: `order-machine serve` as its own process on SQLite, spoken to over 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import HAS_PROC, children, ended
from waiting import eventually_blocking

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def command() -> list[str]:
    script = shutil.which("order-machine", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "order_machine"]


def wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 20.0) -> None:
    """Wait until the server at `url` answers /health with 200; fail at once if it exits."""
    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually_blocking(answers, within=timeout, every=0.1)
    except AssertionError:
        pytest.fail(f"server did not answer within {timeout}s:\n{log.read_text()}")


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
        wait_until_answering(self.process, self.url, self.log, timeout)

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


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_port_is_one_error_line_and_exit_1_with_no_banner(tmp_path: Path, workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "ORDER_MACHINE_DEFINITIONS": str(DEFINITIONS)}
        env.pop("ORDER_MACHINE_DB_URL", None)
        done = subprocess.run([*command(), "serve", "--db", "sqlite:///orders.db", "--port", str(port),
                               "--workers", str(workers)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert done.stderr == (f"error: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
                           "server?); choose another with --port\n")


def test_the_banner_comes_once_the_server_answers(tmp_path: Path) -> None:
    """The banner's port is the one listening (here chosen by the system for --port 0), and it is printed
    after the app has started: a request sent as soon as it appears is answered."""
    env = {**os.environ, "ORDER_MACHINE_DEFINITIONS": str(DEFINITIONS), "PYTHONUNBUFFERED": "1"}
    env.pop("ORDER_MACHINE_DB_URL", None)
    process = subprocess.Popen([*command(), "serve", "--db", "sqlite:///orders.db", "--port", "0",
                                "--log-level", "warning"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert banner.startswith("order-machine: serving sqlite:///orders.db on http://127.0.0.1:"), banner
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        assert httpx.get(f"{url}/health", timeout=5.0).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
