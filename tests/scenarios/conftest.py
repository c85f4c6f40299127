"""Every scenario runs with a started event bus and stops it at the end (as the reference does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._harness import ScenarioBus, running_bus


@pytest.fixture
async def scenario() -> AsyncIterator[ScenarioBus]:
    async with running_bus() as started:
        yield started
