"""`order-machine diagram` through main([...]): writing files, the stale check, one order, no Graphviz."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from order_machine.cli import main
from order_machine.diagrams import read_stamp
from order_machine.events import OrderConfirmed, OrderCreated, OrderProcessingStarted, encode
from order_machine.store import open_store

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "definitions").glob("*.yaml"))


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    """A private copy of the shipped definitions, safe to edit."""
    folder = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", folder)
    return folder


def diagram(*args: str | Path) -> int:
    return main(["diagram", *map(str, args)])


def test_it_writes_svg_png_and_mermaid_for_every_definition_by_default(definitions: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert diagram("--definitions", definitions, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{f}" for n in SHIPPED for f in ("mmd", "png", "svg"))
    assert (out / "order.svg").read_bytes().startswith(b"<?xml")
    assert (out / "order.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "order.mmd").read_text().splitlines()[3] == "stateDiagram-v2"
    assert f"wrote {out / 'order.svg'}" in capsys.readouterr().out


def test_it_writes_only_the_named_definitions_in_the_asked_formats(definitions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert diagram("payment", definitions / "simple.yaml", "--format", "dot", "-f", "mmd",
                   "--definitions", definitions, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["payment.dot", "payment.mmd", "simple.dot", "simple.mmd"]
    assert (out / "payment.dot").read_text().startswith("digraph payment {")


def test_an_unknown_name_is_one_line_naming_the_known_ones(definitions: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert diagram("shipping", "--definitions", definitions, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no definition named 'shipping'" in err and "document, onboarding, order, payment, simple" in err


def test_the_check_passes_on_freshly_written_diagrams(definitions: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert diagram("--definitions", definitions, "--out", out) == 0
    capsys.readouterr()
    assert diagram("--check", "--definitions", definitions, "--out", out) == 0
    assert "up to date with 5 definition(s)" in capsys.readouterr().out


def test_the_check_names_every_stale_missing_or_orphaned_file(definitions: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert diagram("--definitions", definitions, "--out", out) == 0
    order = definitions / "order.yaml"
    order.write_text(order.read_text().replace("Hand the order to the carrier", "Give it to the courier"))
    (out / "payment.png").unlink()
    (out / "legacy.svg").write_text("<svg/>")
    capsys.readouterr()
    assert diagram("--check", "--definitions", definitions, "--out", out) == 1
    report = capsys.readouterr()
    stale = sorted(line.split()[1] for line in report.out.splitlines() if line.startswith("stale: "))
    assert stale == sorted(str(out / n) for n in ("order.svg", "order.png", "legacy.svg", "payment.png"))
    assert "order.mmd" not in report.out  # a tooltip text changed: the Mermaid text did not
    assert "run `order-machine diagram` to regenerate" in report.err


def test_the_check_compares_mermaid_text_exactly(definitions: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert diagram("--definitions", definitions, "--out", out, "-f", "mmd") == 0
    (out / "simple.mmd").write_text((out / "simple.mmd").read_text().replace("Pause", "Hold"))
    assert diagram("--check", "--definitions", definitions, "--out", out, "-f", "mmd") == 1
    assert f"stale: {out / 'simple.mmd'} (differs from the definition)" in capsys.readouterr().out


def test_the_check_accepts_an_svg_drawn_by_another_graphviz_version(definitions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert diagram("--definitions", definitions, "--out", out) == 0
    svg = out / "order.svg"
    stamp = read_stamp(svg.read_bytes())
    assert stamp is not None
    # what another Graphviz build writes: a different banner and layout, the same DOT fingerprint
    svg.write_text(f'<?xml version="1.0"?>\n<!-- Generated by graphviz version 99.0 -->\n'
                   f"<!-- order_machine_source: {stamp} -->\n<svg/>\n")
    assert diagram("--check", "--definitions", definitions, "--out", out) == 0


def test_the_committed_diagrams_match_the_shipped_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    code = diagram("--check", "--definitions", ROOT / "definitions", "--out", ROOT / "diagrams")
    assert code == 0, capsys.readouterr().out


def test_without_graphviz_svg_fails_in_one_line_and_mermaid_still_works(
    definitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "out"
    assert diagram("order", "--definitions", definitions, "--out", out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: cannot draw svg: the Graphviz `dot` program was not found; install Graphviz: "
                          "apt-get install graphviz")
    assert diagram("order", "-f", "mmd", "-f", "dot", "--definitions", definitions, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["order.dot", "order.mmd"]


AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_an_unknown_order_is_one_line_and_exit_1(definitions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert diagram("--order", "ghost", "--db", "memory://", "--definitions", definitions) == 1
    assert capsys.readouterr().err == "error: order 'ghost' does not exist\n"


def test_order_takes_no_definition_names(definitions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        diagram("order", "--order", "o-1", "--db", "memory://")
    assert exited.value.code == 2
    assert "--order draws one order" in capsys.readouterr().err


async def seed(url: str) -> None:
    store = open_store(url)
    events = [
        OrderCreated("o-1", AT, customer_id="c-1"),
        OrderConfirmed("o-1", AT + timedelta(minutes=1), source="Pending", target="Confirmed"),
        OrderProcessingStarted("o-1", AT + timedelta(minutes=2), source="Confirmed", target="Processing"),
    ]
    try:
        await store.append("o-1", [encode(e) for e in events], expected_version=0)
    finally:
        await store.close()


@pytest.mark.skipif(importlib.util.find_spec("order_machine.store.sqlite") is None,
                    reason="order_machine.store.sqlite (the SQLite event store) is not written yet")
def test_an_orders_diagram_is_drawn_from_a_sqlite_store(definitions: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    asyncio.run(seed(url))
    out = tmp_path / "out"
    assert diagram("--order", "o-1", "--db", url, "--definitions", definitions, "--out", out,
                   "-f", "svg", "-f", "dot") == 0
    dot = (out / "order-o-1.dot").read_text()
    assert "(1) Confirm [has_value]" in dot and "(2) StartProcessing" in dot and "current: Processing" in dot
    assert (out / "order-o-1.svg").read_bytes().startswith(b"<?xml")
    capsys.readouterr()
    assert diagram("--order", "o-1", "--db", url, "--definitions", definitions) == 0
    assert capsys.readouterr().out.startswith("<?xml")  # no --out: the SVG goes to stdout
