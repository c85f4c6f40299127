"""PostgreSQL read models: what only they do. The read-model contract (tests/integration/test_projections.py,
test_projections_consistency.py, test_projection_quarantine.py) runs on them as on memory and SQLite."""

from __future__ import annotations

import pytest

from order_machine.errors import StoreError
from order_machine.projections.postgres import PostgresReadModels
from order_machine.store.memory import InMemoryEventStore


def test_postgres_read_models_refuse_another_backends_store() -> None:
    with pytest.raises(StoreError, match="PostgresEventStore"):
        PostgresReadModels.from_store(InMemoryEventStore())
