"""The workflow engine: commands on instances of any definition (start, act, migrate) and their queries.

load -> decide on the WorkflowInstance -> append(expected version) -> publish, exactly as orders do:
optimistic concurrency with retries, idempotent command ids (fingerprinted), commands on one instance
queued in-process, read-your-writes at read time. Knows the domain, the store, the bus and the read
models; nothing of HTTP or the command line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .actor import with_actor
from .bus import EventBus
from .catalog import Catalog
from .errors import (
    ConcurrencyError, InvalidCommandError, TransitionNotAllowedError, UnknownDefinitionError, WorkflowExistsError,
    WorkflowNotFoundError,
)
from .events import WorkflowEvent, decode_workflow, encode_workflow, utcnow, workflow_stream
from .ids import check_id, check_stored, key_problem
from .instance import WorkflowInstance
from .machine import Machine
from .projections.quarantine import check_stream
from .store import EventStore
from .write_path import AggregateCache, StreamQueues, decide_and_save

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

ORDER_DEFINITION = "order"  # orders have their own aggregate and routes (/orders)


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """What an accepted command did; `duplicate` is True when its command id had been seen."""

    id: str
    definition: str
    definition_version: int
    state: str
    version: int
    position: int
    events: list[str] = field(default_factory=list)
    duplicate: bool = False

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "definition": self.definition, "definition_version": self.definition_version,
                "state": self.state, "version": self.version, "events": list(self.events)}


def _key(name: str) -> str:
    return re.sub(r"[-_\s]", "", name).lower()


_ACTION_KEYS: dict[int, tuple[Machine, dict[str, str]]] = {}


def resolve_action(machine: Machine, name: str) -> str:
    """The declared action a caller named, in PascalCase, snake_case or kebab-case, any letter case.

    An unknown name is returned as given: the machine then refuses it with the actions allowed now.
    """
    cached = _ACTION_KEYS.get(id(machine))
    if cached is None or cached[0] is not machine:
        cached = _ACTION_KEYS[id(machine)] = (machine, {_key(a): a for a in machine.actions})
    return cached[1].get(_key(name), name)


def _fingerprint(command_id: str | None, kind: str, *parts: Any) -> str:
    """What a command id stands for, to refuse its reuse for another request; "" without an id (it is
    only ever compared for a repeated command id, so a command without one need not pay for it)."""
    if command_id is None:
        return ""
    raw = json.dumps([kind, *parts], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class Follower(Protocol):
    async def wait_for(self, position: int, timeout: float = 5.0) -> bool: ...


class WorkflowEngine:
    """Write side of every served definition but `order`; reads its instances from the store (the truth)."""

    def __init__(self, store: EventStore, catalog: Catalog, bus: EventBus | None = None, *,
                 clock: Clock = utcnow, retries: int = 10, id_factory: Callable[[], str] | None = None,
                 cache_size: int = 10_000) -> None:
        from .new_ids import causation_id, new_id

        self.store, self.catalog, self.bus, self.clock = store, catalog, bus, clock
        self.retries = retries
        self._new_id = id_factory or new_id
        self._causation_id = causation_id
        # the instances this process saved last (write_path.AggregateCache says why a copy is safe)
        self._cache: AggregateCache[WorkflowInstance] = AggregateCache(cache_size)
        self._locks = StreamQueues()

    # ----------------------------------------------------------------- definitions

    @staticmethod
    def _check_input(workflow_id: str | None, command_id: str | None, data: Mapping[str, Any]) -> None:
        """Ids, keys and data from outside, refused (naming the field) before anything is read or stored."""
        if workflow_id is not None:
            check_id(workflow_id, "id")
        if command_id is not None and (problem := key_problem(command_id)) is not None:
            raise InvalidCommandError(f"command_id {problem}", "command_id")
        check_stored(data, "data")

    def machine(self, definition: str, version: int | None = None) -> Machine:
        """The machine of a served definition (raises UnknownDefinitionError, naming the ones served)."""
        if definition == ORDER_DEFINITION:
            raise UnknownDefinitionError(definition, self.definitions, "orders are served at /orders and by "
                                         "`order-machine orders`, not as a generic workflow")
        return self.catalog.machine(definition, version)

    @property
    def definitions(self) -> list[str]:
        return [n for n in self.catalog.names if n != ORDER_DEFINITION]

    # ----------------------------------------------------------------- commands

    async def start(self, definition: str, data: Mapping[str, Any] | None = None, *, workflow_id: str | None = None,
                    command_id: str | None = None) -> WorkflowResult:
        """A new instance on the latest version of `definition`; WorkflowExistsError if the id is taken."""
        machine = self.machine(definition)
        data = dict(data or {})
        self._check_input(workflow_id, command_id, data)
        fingerprint = _fingerprint(command_id, "start", definition, workflow_id, data)
        if (seen := await self._seen(command_id, fingerprint)) is not None:
            return seen
        instance = WorkflowInstance.start(machine, workflow_id or self._new_id(), data, at=self.clock())
        try:
            result = await self._save(instance, 0, command_id, fingerprint)
        except ConcurrencyError:
            raise WorkflowExistsError(definition, instance.id) from None
        if not result.duplicate:
            self._cache.keep(instance.stream_id, instance)
        return result

    async def act(self, definition: str, workflow_id: str, action: str, data: Mapping[str, Any] | None = None, *,
                  expected_version: int | None = None, command_id: str | None = None) -> WorkflowResult:
        """Take an action on an instance; refusals raise TransitionNotAllowedError with the reasons."""
        machine = self.machine(definition)
        data = dict(data or {})
        self._check_input(workflow_id, command_id, data)
        name = resolve_action(machine, action)
        fingerprint = _fingerprint(command_id, "act", definition, workflow_id, name, data, expected_version)

        async def decide(instance: WorkflowInstance) -> None:
            await instance.fire(resolve_action(instance.machine, action), data, at=self.clock())
        return await self._change(definition, workflow_id, expected_version, command_id, fingerprint, decide)

    async def migrate(self, definition: str, workflow_id: str, to_version: int, state_map: Mapping[str, str], *,
                      command_id: str | None = None) -> WorkflowResult:
        """Move one instance to another version of its definition (an event); refuses a state with no place.

        States map by `state_map`, else by the target version's `migrations:` for the instance's version,
        else by name."""
        target = self.machine(definition, to_version)
        self._check_input(workflow_id, command_id, {})
        fingerprint = _fingerprint(command_id, "migrate", definition, workflow_id, to_version, dict(state_map))

        async def decide(instance: WorkflowInstance) -> None:
            if instance.definition_version == to_version:
                return  # already there: nothing to record
            declared = self.catalog.state_map(definition, instance.definition_version, to_version)
            instance.migrate(target, {**declared, **state_map}, at=self.clock())
        return await self._change(definition, workflow_id, None, command_id, fingerprint, decide)

    # ----------------------------------------------------------------- reads from the store

    async def load(self, definition: str, workflow_id: str) -> WorkflowInstance:
        """The instance rebuilt from its events; raises WorkflowNotFoundError."""
        self.machine(definition)  # an unknown definition is a 404 of its own
        check_id(workflow_id, "id")
        stored = await self.store.load(workflow_stream(definition, workflow_id))
        if not stored:
            raise WorkflowNotFoundError(definition, workflow_id)
        return WorkflowInstance.replay(lambda v: self.catalog.machine(definition, v), workflow_id,
                                       [decode_workflow(e) for e in stored])

    async def history(self, definition: str, workflow_id: str) -> list[dict[str, Any]]:
        """Every event of an instance: version, type, action, from, to, data and time (from the store)."""
        self.machine(definition)
        check_id(workflow_id, "id")
        stored = await self.store.load(workflow_stream(definition, workflow_id))
        if not stored:
            raise WorkflowNotFoundError(definition, workflow_id)
        out = []
        for e in stored:
            d = e.data
            entry: dict[str, Any] = {"version": e.version, "type": e.type, "action": d.get("action"),
                                     "from": d.get("source"), "to": d.get("target") or d.get("state"),
                                     "data": dict(d.get("data") or {}), "at": d.get("at")}
            if e.type == "WorkflowMigrated":
                entry["data"] = {"from_version": d.get("from_version"), "to_version": d.get("to_version")}
            elif e.type == "WorkflowStarted":
                entry["data"] = {**entry["data"], "definition_version": d.get("definition_version")}
            out.append(entry)
        return out

    async def allowed_actions(self, definition: str, workflow_id: str) -> list[dict[str, Any]]:
        """The actions the instance's state allows now, with their fields."""
        instance = await self.load(definition, workflow_id)
        out = []
        for action in instance.allowed_actions:
            spec = instance.machine.action_spec(action)
            fields = {n: f.model_dump(include={"type", "required", "description"}) for n, f in spec.fields.items()} \
                if spec is not None else {}
            out.append({"action": action, "description": spec.description if spec else "", "fields": fields})
        return out

    # ----------------------------------------------------------------- the write path

    async def _seen(self, command_id: str | None, fingerprint: str) -> WorkflowResult | None:
        if command_id is None:
            return None
        first = await self.store.command_result(command_id)
        if first is None:
            return None
        return self._replayed(command_id, first, fingerprint, await self.store.last_position())

    @staticmethod
    def _replayed(command_id: str, first: Mapping[str, Any], fingerprint: str, position: int) -> WorkflowResult:
        if first.get("fingerprint") != fingerprint:
            raise InvalidCommandError(f"command id {command_id!r} was already used for a different request",
                                      "command_id")
        body = {k: v for k, v in first.items() if k != "fingerprint"}
        return WorkflowResult(**body, position=position, duplicate=True)

    async def _change(self, definition: str, workflow_id: str, expected: int | None, command_id: str | None,
                      fingerprint: str, decide: Callable[[WorkflowInstance], Awaitable[None]]) -> WorkflowResult:
        stream = workflow_stream(definition, workflow_id)

        async def change() -> WorkflowResult:
            if (seen := await self._seen(command_id, fingerprint)) is not None:
                return seen
            return await decide_and_save(
                stream, self._cache, lambda: self.load(definition, workflow_id), decide,
                lambda instance, version: self._save(instance, version, command_id, fingerprint),
                expected=expected, retries=self.retries,
            )
        return await self._locks.run(stream, change)

    async def _save(self, instance: WorkflowInstance, expected: int, command_id: str | None,
                    fingerprint: str) -> WorkflowResult:
        pending: list[WorkflowEvent] = instance.take_pending_events()
        causation = command_id or self._causation_id()
        metadata = with_actor({"command_id": command_id, "causation_id": causation, "correlation_id": causation,
                               "definition_version": instance.definition_version})
        kinds = [type(e).__name__ for e in pending]
        body = {"id": instance.id, "definition": instance.definition,
                "definition_version": instance.definition_version, "state": instance.state,
                "version": instance.version, "events": kinds}
        if not pending:  # nothing to record (e.g. a migration to the version it runs on)
            version, position = await self.store.stream_head(instance.stream_id)
            if version != expected:  # no append to check the version the decision was made on: check it here
                raise ConcurrencyError(instance.stream_id, expected, version)
            return WorkflowResult(**body, position=position)  # type: ignore[arg-type]
        appended = await self.store.append(
            instance.stream_id, [encode_workflow(e, metadata) for e in pending], expected,
            command_id=command_id, result={**body, "fingerprint": fingerprint} if command_id else None,
        )
        if appended.duplicate:
            return self._replayed(command_id or "", appended.result, fingerprint, appended.position)
        if self.bus is not None:
            for event in pending:
                await self.bus.publish(event)
        return WorkflowResult(**body, position=appended.position)  # type: ignore[arg-type]



class WorkflowQueries:
    """The read side of workflows: the `workflows` view, with read-your-writes like the orders' queries.

    A read of one instance waits (at most `wait_seconds`) until the view shows every event its stream
    held when the read began; a list waits for everything this process appended before it.
    """

    def __init__(self, engine: WorkflowEngine, read_models: Any, follower: Follower | None = None, *,
                 wait_seconds: float = 2.0) -> None:
        self.engine, self.read_models, self.follower, self.wait_seconds = engine, read_models, follower, wait_seconds

    async def _show(self, position: int) -> None:
        if position and self.follower is not None:
            if not await self.follower.wait_for(position, self.wait_seconds):
                logger.warning("the workflows view did not reach position %d within %.1fs", position,
                               self.wait_seconds)

    async def get(self, definition: str, workflow_id: str) -> Any:
        """The instance as the view shows it (a WorkflowReadModel); WorkflowNotFoundError if it has no events."""
        self.engine.machine(definition)
        check_id(workflow_id, "id")
        stream = workflow_stream(definition, workflow_id)
        version, position = await self.engine.store.stream_head(stream)
        if not position:
            raise WorkflowNotFoundError(definition, workflow_id)
        await self._show(position)
        found = await self.read_models.get_workflow(stream)
        if found is None or found.version < version:  # behind its events: set aside by the projection?
            await check_stream(self.read_models, stream, "workflows")
        if found is None:
            raise WorkflowNotFoundError(definition, workflow_id)
        return found

    async def list(self, definition: str, *, state: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> Any:
        """A page of a definition's instances in creation order, optionally in one state."""
        machine = self.engine.machine(definition)
        if state is not None and state not in machine.states:
            raise InvalidCommandError(f"unknown state {state!r} of {definition}; states: {', '.join(machine.states)}",
                                      "state")
        await self._show(await self.engine.store.last_position())
        return await self.read_models.workflows(definition, state=state, limit=limit, cursor=cursor)


__all__ = ["WorkflowEngine", "WorkflowQueries", "WorkflowResult", "resolve_action"]
