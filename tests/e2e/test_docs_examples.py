"""Every example of README.md and docs/*.md that can run offline, run as a user would run it.

- Each ```python block is a whole program: it runs in a subprocess, in a temporary folder holding a
  copy of the repository's definitions/ (so `./definitions` is found as on a fresh clone).
- Each ```sh block runs as one bash script (`set -e`, same temporary folder, so `sqlite:///orders.db` is a
  new file there) with `order-machine` on the PATH. Every line of it runs, but those NOT_RUN names with its
  reason (a running server, PostgreSQL, the network, setting up a machine, benchmarks); a line that is
  neither fails the test, so a new example is run or says why not.
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


#: the lines of ```sh blocks that are not run, and why (the only place that says so)
NOT_RUN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\.venv/bin/)?order-machine serve\b"),
     "a server runs until stopped: tests/e2e/test_server_process.py starts real ones"),
    (re.compile(r"postgres(ql)?://"),
     "needs a PostgreSQL server: tests/e2e/test_postgres_*.py run these commands on the test server"),
    (re.compile(r"\bcurl\b|https?://"), "needs a running server or the network"),
    (re.compile(r"\bpip install\b"), "installs packages from the network"),
    (re.compile(r"^(eval \"\$\()?(bash )?scripts/"),
     "sets the machine up (apt-get, .venv, PostgreSQL): CI runs scripts/test.sh (.ci/run)"),
    (re.compile(r"-m bench\b|\bbench/"),
     "benchmarks take minutes: tests/integration/test_bench_smoke.py runs each at its smallest size"),
]
#: what a line that runs starts with: the command line (as installed, or from the .venv) or an export
RUNS = re.compile(r"^(\.venv/bin/)?order-machine |^export ")


def shell_lines(body: str) -> list[str]:
    """A sh block's commands: comments dropped, lines continued with a backslash joined."""
    lines, pending = [], ""
    for raw in body.splitlines():
        line = pending + raw.split(" # ", 1)[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def not_run(line: str) -> str | None:
    """Why `line` of a sh block is not run, or None when it runs."""
    return next((why for pattern, why in NOT_RUN if pattern.search(line)), None)


def runnable_shell(body: str) -> str:
    """The lines of a sh block that run offline and end by themselves, as a script."""
    return "\n".join(line.removeprefix(".venv/bin/") for line in shell_lines(body) if not_run(line) is None)


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


def test_every_fence_is_of_a_kind_this_test_knows() -> None:
    """A ```bash or ```console block would escape both the runs and the NOT_RUN list."""
    known = {"", "python", "sh", "yaml", "json", "mermaid", "toml"}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            where = f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start('body'))}"
            assert match["lang"] in known, f"{where}: a ```{match['lang']} block: use ```sh (or add the kind here)"


def test_every_shell_line_runs_or_says_why_not() -> None:
    for example in examples("sh"):
        for line in shell_lines(example.body):
            assert RUNS.match(line) or not_run(line), (
                f"{example}: {line!r} neither runs (an `order-machine` command) nor is in NOT_RUN with a reason")


@pytest.mark.parametrize("example", examples("python"), ids=str)
def test_a_python_example_runs(example: Example, workdir: Path) -> None:
    if example.opt_out:
        pytest.skip(f"{example}: {example.opt_out}")
    assert not re.search(r"^await ", example.body, re.M), f"{example}: top-level await; use asyncio.run(main())"
    done = subprocess.run([sys.executable, "-c", example.body], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("example", examples("sh"), ids=str)
def test_a_shell_example_runs(example: Example, workdir: Path) -> None:
    if example.opt_out:
        pytest.skip(f"{example}: {example.opt_out}")
    script = runnable_shell(example.body)
    if not script:
        pytest.skip("; ".join(sorted({f"{why}" for line in shell_lines(example.body) if (why := not_run(line))})))
    if "order-machine diagram" in script and shutil.which("dot") is None:
        pytest.skip("SVG and PNG diagrams need Graphviz's dot")
    done = subprocess.run(["bash", "-e", "-c", script], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{example} failed:\n{script}\n{done.stdout}\n{done.stderr}"
