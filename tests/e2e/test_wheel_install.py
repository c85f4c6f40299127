"""The package as a user installs it: a wheel built from this checkout, installed into a fresh virtualenv,
run from an empty folder (no checkout, no ./definitions, no $ORDER_MACHINE_DEFINITIONS around it).

Catches files that exist only in the checkout, like the default definitions. The virtualenv gets the wheel
alone (--no-deps); its dependencies come from this test's own environment through a .pth line, which adds
that site-packages as a plain path entry: the editable install's own .pth in there is not processed, so no
source tree gets on the path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from processes import HAS_PROC, children, ended
from test_server_process import Server, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# the project's own files only: no VCS, caches, build output or databases in the copy that is built
NOT_BUILT_FROM = shutil.ignore_patterns(".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                        "__pycache__", "*.egg-info", "build", "dist", "*.db", "*.db-*")


def run(argv: list[str | Path], *, timeout: float, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end (bounded), which must be a success."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of this checkout (pip builds in the tree: the copy takes its build/ and egg-info)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_BUILT_FROM)  # the definitions symlink stays a link
    # pyproject asks for setuptools>=77: with it here the build needs no network; an older one means an
    # isolated build, its setuptools from the package index
    offline = ["--no-build-isolation"] if int(version("setuptools").split(".")[0]) >= 77 else []
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *offline, "-w", tmp_path / "dist", source],
        timeout=300)
    (wheel,) = (tmp_path / "dist").glob("order_machine-*.whl")
    return wheel


class InstalledServer(Server):
    """`order-machine serve` of the new virtualenv in `workdir`, on ./orders.db; waits and stops like Server.

    Sets what Server's methods use instead of calling Server.__init__, which starts this environment's script.
    """

    def __init__(self, script: Path, workdir: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log  # outside workdir, which stays empty but for the database
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [str(script), "serve", "--db", "sqlite:///orders.db", "--port", str(self.port), "--log-level", "warning"],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.wait_until_up(timeout=60.0)


def test_the_installed_wheel_serves_and_validates_from_an_empty_folder(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True).stdout
    for file in sorted((ROOT / "definitions").iterdir()):
        assert f"order_machine/definitions/{file.name}" in names, f"the wheel lacks definitions/{file.name}"
    with zipfile.ZipFile(wheel) as archive:  # the docs pages' files come with this dependency
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert re.search(r"^Requires-Dist: fastapi-offline\b", metadata, re.M), metadata

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], timeout=300)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ORDER_MACHINE_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"}
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    timeout=60, env=env).stdout.strip())
    (site / "dependencies_of_the_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    imported = run([python, "-c", "import order_machine; print(order_machine.__file__)"],
                   timeout=60, cwd=empty, env=env).stdout.strip()
    assert Path(imported).resolve().is_relative_to(site.resolve()), imported  # the wheel, not a source tree

    checked = run([venv / "bin" / "order-machine", "validate"], timeout=120, cwd=empty, env=env)
    assert f"{site}/order_machine/definitions/order.yaml: OK" in checked.stdout, checked.stdout
    assert list(empty.iterdir()) == []

    server = InstalledServer(venv / "bin" / "order-machine", empty, tmp_path / "serve.log", env)
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            created = http.post("/orders", json={"customer_id": "c1", "items": [
                {"product_id": "p", "quantity": 1, "unit_price": "1.00"}]})
            assert created.status_code == 201, created.text
            confirmed = http.post(f"/orders/{created.json()['order_id']}/confirm")
            assert confirmed.status_code == 200, confirmed.text
            assert confirmed.json()["state"] == "Confirmed"
            # the docs pages and their Swagger UI and ReDoc files come from the installed packages, no CDN
            pages = http.get("/docs").text + http.get("/redoc").text
            assets = set(re.findall(r'(?:src|href)="([^"]+)"', pages))
            assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css",
                                                              "redoc.standalone.js"}, assets
            for asset in assets:
                assert asset.startswith("/") and http.get(asset).status_code == 200, asset
        helpers = children(server.process.pid) if HAS_PROC else []
    finally:
        code = server.stop()  # SIGTERM, then SIGKILL after a bounded wait
    assert code == 0, server.log.read_text()
    assert "Traceback" not in server.log.read_text()
    assert all(ended(pid) for pid in helpers)
    assert (empty / "orders.db").exists()
