"""Every scenario runs with a started event bus and stops it at the end (as the reference does), once per
engine: the in-memory objects (`workflow`), and the durable engine on the memory store and on a SQLite file,
read back after a reload (`memory`, `sqlite`). The engine serves the shipped definitions and the reference's
machines that only its tests define (tests/scenarios/definitions: the saga's order and payment)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import shutil

import pytest

from order_machine.machine import Machine
from order_machine.workflow import Workflow

from ._durable import DurableEntities
from ._harness import Entities, InMemoryEntities, ScenarioBus, running_bus

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
REFERENCE_ONLY = Path(__file__).resolve().parent / "definitions"


@pytest.fixture(scope="session")
def served_definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with the shipped definitions and the reference-only ones, as a user's folder would be."""
    folder = tmp_path_factory.mktemp("definitions")
    for file in [*DEFINITIONS.glob("*.yaml"), *REFERENCE_ONLY.glob("*.yaml")]:
        shutil.copy(file, folder / file.name)
    return folder


@pytest.fixture(scope="session")
def reference_only_machines() -> dict[str, Machine]:
    return {f.stem: Workflow.compile(f) for f in REFERENCE_ONLY.glob("*.yaml")}


@pytest.fixture(params=["workflow", "memory", "sqlite"])
async def entities(request: pytest.FixtureRequest, tmp_path: Path, step_log: Any, served_definitions: Path,
                   order_machine: Machine, payment_machine: Machine, document_machine: Machine,
                   onboarding_machine: Machine, simple_machine: Machine,
                   reference_only_machines: dict[str, Machine]) -> AsyncIterator[Entities]:
    if request.param == "workflow":
        machines = {"order": order_machine, "payment": payment_machine, "document": document_machine,
                    "onboarding": onboarding_machine, "simple": simple_machine, **reference_only_machines}
        async with running_bus() as bus:
            yield InMemoryEntities(machines, bus)
        return
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/scenarios.db"
    durable = await DurableEntities(request.param, url, served_definitions, {"on_step": step_log}).open()
    try:
        yield durable
    finally:
        await durable.close()


@pytest.fixture
def scenario(entities: Entities) -> ScenarioBus:
    """The bus the scenario's entities publish on, started before it and stopped after it."""
    return entities.scenario


@pytest.fixture
async def memory_bus() -> AsyncIterator[ScenarioBus]:
    """A started bus for the in-memory objects alone (the departures from the reference)."""
    async with running_bus() as started:
        yield started
