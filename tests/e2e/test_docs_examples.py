"""Every example of README.md and docs/*.md that can run offline, run as a user would run it.

- Each ```python block is a whole program: it runs in a subprocess, in a temporary folder holding a
  copy of the repository's definitions/ (so `./definitions` is found as on a fresh clone).
- Each ```sh block runs as one bash script (`set -e`, same temporary folder) with `order-machine` on
  the PATH; of its lines, those that start with `order-machine` run, except `serve` (it runs until
  stopped: tests/e2e/test_server_process.py starts real servers) and lines naming a postgresql://
  server (tests/e2e/test_postgres_*.py run them when one is configured). Other lines are set-up and
  benchmark commands (`bash scripts/*.sh`, `python -m bench`): CI runs the first (.ci/run), and
  tests/integration/test_bench_smoke.py runs every bench at its smallest size.
- Transcripts (fences without a language: the curl session, the synopsis, the `$ ...` error lines)
  are not executed; the HTTP and CLI tests check the answers they show.
- A block opts out with `<!-- not-run: reason -->` on the line before its fence; keep that rare.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?:<!-- not-run: (?P<reason>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    lang: str
    body: str
    opt_out: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(lang: str) -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["lang"] == lang:
                line = text.count("\n", 0, match.start("body"))
                found.append(Example(page, line, lang, match["body"], match["reason"]))
    return found


def runnable_shell(body: str) -> str:
    """The lines of a sh block that run offline and end by themselves (see the module docstring)."""
    keep = []
    for line in body.splitlines():
        command = line.split(" # ", 1)[0].strip()
        if not command.startswith("order-machine "):
            continue
        if command.split()[1] == "serve" or "postgresql://" in command:
            continue
        keep.append(command)
    return "\n".join(keep)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "definitions", tmp_path / "definitions")
    return tmp_path


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_MACHINE_")}
    env["ORDER_MACHINE_DURABILITY"] = "fast"  # no fsync per commit: the examples' data is thrown away
    source = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    bin_dir = workdir / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "order-machine"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m order_machine "$@"\n')
    wrapper.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_pages_have_examples_of_each_kind() -> None:
    assert len(examples("python")) >= 4
    assert sum(1 for e in examples("sh") if runnable_shell(e.body)) >= 2


@pytest.mark.parametrize("example", examples("python"), ids=str)
def test_a_python_example_runs(example: Example, workdir: Path) -> None:
    if example.opt_out:
        pytest.skip(f"{example}: {example.opt_out}")
    assert not re.search(r"^await ", example.body, re.M), f"{example}: top-level await; use asyncio.run(main())"
    done = subprocess.run([sys.executable, "-c", example.body], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("example", [e for e in examples("sh") if runnable_shell(e.body)], ids=str)
def test_a_shell_example_runs(example: Example, workdir: Path) -> None:
    if example.opt_out:
        pytest.skip(f"{example}: {example.opt_out}")
    script = runnable_shell(example.body)
    if "order-machine diagram" in script and shutil.which("dot") is None:
        pytest.skip("SVG and PNG diagrams need Graphviz's dot")
    done = subprocess.run(["bash", "-e", "-c", script], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{example} failed:\n{script}\n{done.stdout}\n{done.stderr}"
