"""Shared fixtures: the compiled machine of every definition, a started-and-stopped bus, an in-memory store.

Machines are compiled once per session (as the application does); the simple machine registers its
`on_step` hook per test so each test sees only its own calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from order_machine.bus import EventBus
from order_machine.machine import Machine, Transition
from order_machine.order import order_machine as compile_order_machine
from order_machine.store.memory import InMemoryEventStore
from order_machine.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "definitions"


class Recorder:
    """A bus subscriber (or direct publisher) that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        self.events.append(event)

    async def publish(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class StepLog:
    """The simple machine's async per-transition callback: remembers every step it ran for."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, str, str]] = []

    async def __call__(self, entity: Any, transition: Transition, data: Mapping[str, Any]) -> None:
        self.steps.append((entity.id, transition.source, transition.action, transition.target))


@pytest.fixture(scope="session")
def definitions_dir() -> Path:
    return DEFINITIONS


@pytest.fixture(scope="session")
def order_machine() -> Machine:
    return compile_order_machine(DEFINITIONS / "order.yaml")


@pytest.fixture(scope="session")
def payment_machine() -> Machine:
    return Workflow.compile(DEFINITIONS / "payment.yaml")


@pytest.fixture(scope="session")
def document_machine() -> Machine:
    return Workflow.compile(DEFINITIONS / "document.yaml")


@pytest.fixture(scope="session")
def onboarding_machine() -> Machine:
    return Workflow.compile(DEFINITIONS / "onboarding.yaml")


@pytest.fixture
def step_log() -> StepLog:
    return StepLog()


@pytest.fixture
def simple_machine(step_log: StepLog) -> Machine:
    return Workflow.compile(DEFINITIONS / "simple.yaml", hooks={"on_step": step_log})


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    """A started EventBus, stopped (after handling everything queued) when the test ends."""
    event_bus = EventBus()
    await event_bus.start()
    yield event_bus
    await event_bus.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def memory_store() -> AsyncIterator[InMemoryEventStore]:
    store = InMemoryEventStore()
    yield store
    await store.close()
