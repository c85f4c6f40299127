"""The reference scenarios through the durable engine: stand-ins for the reference's entities that send
every action through a bootstrapped Runtime (WorkflowEngine for any definition, the order service for
orders) and read the outcome back from the store and read models.

When the scenario ends, `DurableEntities.close()` reads every entity back after a reload (a new engine on
the same memory store; on SQLite a new Runtime on the same file) and checks it is what the scenario last
saw, that the read models agree with the events, and that an entity never initialised left no event.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from order_machine import Settings, bootstrap
from order_machine.bootstrap import Runtime
from order_machine.commands import CreateOrder, PerformAction
from order_machine.engine import WorkflowEngine
from order_machine.errors import OrderNotFoundError, TransitionNotAllowedError, WorkflowNotFoundError
from order_machine.events import workflow_stream
from order_machine.instance import WorkflowInstance
from order_machine.machine import Hook, Machine, snake_case
from order_machine.projections import ConsistencyChecker, OrderReadModel

from ._harness import ScenarioBus


class _Entity:
    """What both stand-ins share: the reference's business methods (snake_case verbs answering True/False,
    positional arguments filling the action's fields in declared order) over `_act`."""

    def __init__(self, machine: Machine, entity_id: str) -> None:
        self.machine, self.id = machine, entity_id
        self.verbs = {snake_case(a): a for a in machine.actions}

    async def _act(self, action: str, data: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def fire(self, action: str, **data: Any) -> None:
        """Take the action; raises TransitionNotAllowedError (with the reasons) when refused."""
        await self._act(action, data)

    async def try_fire(self, action: str, **data: Any) -> bool:
        try:
            await self._act(action, data)
        except TransitionNotAllowedError:
            return False
        return True

    def _verb(self, action: str) -> Any:
        spec = self.machine.action_spec(action)
        fields = list(spec.fields) if spec is not None else []

        async def verb(*args: Any, **data: Any) -> bool:
            return await self.try_fire(action, **dict(zip(fields, args, strict=False)), **data)
        return verb


class DurableWorkflow(_Entity):
    """An instance of any served definition, run by the WorkflowEngine and read back from the store."""

    def __init__(self, runtime: Runtime, definition: str, entity_id: str, data: Mapping[str, Any]) -> None:
        super().__init__(runtime.engine.machine(definition), entity_id)
        self.runtime, self.definition, self.start_data = runtime, definition, dict(data)
        self.instance: WorkflowInstance | None = None

    @property
    def stream_id(self) -> str:
        return workflow_stream(self.definition, self.id)

    @property
    def state(self) -> str:
        return self.instance.state if self.instance is not None else self.machine.initial

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.instance.data) if self.instance is not None else {}

    @property
    def allowed_actions(self) -> tuple[str, ...]:
        return self.instance.allowed_actions if self.instance is not None else ()

    @property
    def is_terminal(self) -> bool:
        return self.machine.is_terminal(self.state)

    async def initialise(self) -> None:
        await self.runtime.engine.start(self.definition, self.start_data, workflow_id=self.id)
        self.instance = await self.runtime.engine.load(self.definition, self.id)

    async def _act(self, action: str, data: Mapping[str, Any]) -> None:
        try:
            await self.runtime.engine.act(self.definition, self.id, action, data)
        finally:
            if self.instance is not None:
                self.instance = await self.runtime.engine.load(self.definition, self.id)

    def __getattr__(self, name: str) -> Any:
        # only for names that are not real attributes: recorded data, then action verbs (as Workflow)
        instance = self.__dict__.get("instance")
        if instance is not None and name in instance.data:
            return instance.data[name]
        machine = self.__dict__.get("machine")
        if machine is not None and not name.startswith("__"):
            if name in machine.recorded:
                return None
            if name in self.__dict__.get("verbs", {}):
                return self._verb(self.verbs[name])
        raise AttributeError(f"{self.definition} {self.__dict__.get('id')!r} has no attribute or action {name!r}")


class DurableOrder(_Entity):
    """An order run by the order service's commands and read from its read model (read-your-writes)."""

    _READ_AS = {"state": "status", "total_amount": "amount"}

    def __init__(self, runtime: Runtime, order_id: str, customer_id: str, items: list[str], total: str) -> None:
        super().__init__(runtime.machine, order_id)
        self.verbs["return_order"] = "Return"  # `return` is Python's: the aggregate says return_order()
        self.runtime, self.stream_id = runtime, order_id
        self.create = CreateOrder(order_id=order_id, customer_id=customer_id, amount=Decimal(total),
                                  items=[{"product_id": name, "quantity": 1, "unit_price": "0"} for name in items])
        self.model: Any = None

    async def initialise(self) -> None:
        await self.runtime.service.handle(self.create)
        self.model = await self.runtime.service.get_order(self.id)

    async def _act(self, action: str, data: Mapping[str, Any]) -> None:
        try:
            await self.runtime.service.handle(PerformAction(order_id=self.id, action=action, data=dict(data)))
        finally:
            if self.model is not None:
                self.model = await self.runtime.service.get_order(self.id)

    def __getattr__(self, name: str) -> Any:
        # only for names that are not real attributes: the read model's fields, then action verbs
        model = self.__dict__.get("model")
        field = self._READ_AS.get(name, name)
        if field in OrderReadModel.model_fields:
            if model is not None:
                return getattr(model, field)
            return self.machine.initial if field == "status" else None  # as an order not yet initialised
        if name in self.__dict__.get("verbs", {}):
            return self._verb(self.verbs[name])
        raise AttributeError(f"order {self.__dict__.get('id')!r} has no attribute or action {name!r}")


E = TypeVar("E", "DurableWorkflow", "DurableOrder")


class DurableEntities:
    """The scenario's entities on a Runtime over `db_url`; `close()` checks what a reload reads back."""

    not_initialised: tuple[type[Exception], ...] = (WorkflowNotFoundError, OrderNotFoundError)

    def __init__(self, mode: str, db_url: str, definitions: Path, hooks: Mapping[str, Hook]) -> None:
        self.mode = mode
        self.settings = Settings(db_url=db_url, definitions_dir=definitions, durability="fast")
        self.hooks = dict(hooks)
        self.entities: list[DurableWorkflow | DurableOrder] = []

    async def open(self) -> DurableEntities:
        self.runtime = await bootstrap(self.settings, hooks=self.hooks)
        await self.runtime.start()
        self.scenario = ScenarioBus(self.runtime.bus)
        return self

    def machine(self, definition: str) -> Machine:
        """The machine the running engine serves under that name."""
        return self.runtime.machine if definition == "order" else self.runtime.engine.machine(definition)

    def _add(self, entity: E) -> E:
        self.scenario.initial[entity.id] = entity.machine.initial
        self.entities.append(entity)
        return entity

    def order(self, order_id: str, customer_id: str, items: list[str], total: str) -> DurableOrder:
        return self._add(DurableOrder(self.runtime, order_id, customer_id, items, total))

    def payment(self, payment_id: str, amount: str, currency: str, method: str) -> DurableWorkflow:
        return self.workflow("payment", payment_id, amount=amount, currency=currency, method=method)

    def document(self, document_id: str, title: str, content: str, author: str) -> DurableWorkflow:
        return self.workflow("document", document_id, title=title, content=content, author=author)

    def onboarding(self, user_id: str, email: str) -> DurableWorkflow:
        return self.workflow("onboarding", user_id, email=email)

    def workflow(self, definition: str, entity_id: str, *, bus: bool = True, **data: Any) -> DurableWorkflow:
        """An instance of any served definition (`bus` is for the in-memory objects: the engine always has one)."""
        return self._add(DurableWorkflow(self.runtime, definition, entity_id, data))

    async def close(self) -> None:
        """Stop, then read every entity back after a reload and check it against what the scenario saw."""
        await self.runtime.bus.join()
        failed = self.runtime.bus.metrics().failed
        if self.mode == "sqlite":
            await self.runtime.stop()
            self.runtime = await bootstrap(self.settings, hooks=self.hooks)  # a new process would do the same
            await self.runtime.start()
        try:
            await self._check_reloaded()
        finally:
            await self.runtime.stop()
        assert failed == 0, "a bus handler failed during the scenario"

    async def _check_reloaded(self) -> None:
        runtime = self.runtime
        engine = WorkflowEngine(runtime.store, runtime.engine.catalog)  # rebuilds from the events, nothing cached
        for entity in self.entities:
            if isinstance(entity, DurableWorkflow) and entity.instance is not None:
                reloaded = await engine.load(entity.definition, entity.id)
                assert reloaded.snapshot() == entity.instance.snapshot(), entity.id
                view = await runtime.workflows.get(entity.definition, entity.id)
                assert view.model_dump() == reloaded.snapshot(), entity.id
            elif isinstance(entity, DurableOrder) and entity.model is not None:
                assert await runtime.service.get_order(entity.id) == entity.model, entity.id
            else:  # never initialised: nothing may have been written
                assert await runtime.store.load(entity.stream_id) == [], entity.id
        assert await runtime.wait_for_projections(await runtime.store.last_position())
        report = await ConsistencyChecker(runtime.store, runtime.read_models).check_all()
        assert report.mismatched == (), report.mismatched
