"""`serve` tunes the garbage collector of its own process; 0 leaves it alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from order_machine.bootstrap import tune_gc


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_what_startup_built_and_collects_the_young_less_often() -> None:
    tune_gc(10_000)
    assert gc.get_threshold() == (10_000, 10, 10)
    assert gc.get_freeze_count() > 1000  # modules, classes, validators: never scanned again


def test_zero_leaves_the_collector_as_python_set_it() -> None:
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
