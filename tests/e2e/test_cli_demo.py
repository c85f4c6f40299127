"""`order-machine demo` through main(["demo"]): the four order scenarios and each order's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_machine.cli import main


def test_the_demo_prints_each_orders_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    expected = [
        "ord-1: Pending -Confirm-> Confirmed -StartProcessing-> Processing -Ship-> Shipped -Deliver-> Delivered",
        "ord-2: Pending -Cancel-> Cancelled  (reason: Customer requested cancellation)",
        "ord-3: Pending -Confirm-> Confirmed -Cancel-> Cancelled  (reason: Out of stock)",
        "ord-4: Pending -Confirm-> Confirmed -StartProcessing-> Processing -Cancel-> Cancelled  (reason: Quality issue)",
        "ord-5: Pending -Confirm-> Confirmed -StartProcessing-> Processing -Ship-> Shipped -Deliver-> Delivered "
        "-Return-> Returned  (reason: Defective product)",
        "ord-7: Pending -Ship-> refused: not allowed while 'Pending'; allowed now: Confirm, Cancel",
    ]
    for line in expected:
        assert line in out
    for title in ("complete workflow", "cancellation from three states", "return", "invalid transition"):
        assert f"\n{title}\n" in out
    assert "21 machine events published, 21 handled, 0 failed" in out


def test_the_demo_refuses_a_broken_definition_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "order.yaml"
    broken.write_text("name: order\ninitial: Nowhere\n", encoding="utf-8")
    assert main(["demo", "--definition", str(broken)]) == 1
    captured = capsys.readouterr()
    assert "missing required key 'states'" in captured.err
    assert "Traceback" not in captured.err
