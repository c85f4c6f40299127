"""The whole exception hierarchy of order-machine.

Imports nothing from the project: every other module may raise these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class OrderMachineError(Exception):
    """Base class of every error order-machine raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located in its file."""

    message: str
    path: str = "<definition>"
    line: int | None = None
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        text = f"{where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class DefinitionError(OrderMachineError):
    """A definition is malformed: bad YAML, bad schema or inconsistent references."""

    def __init__(self, problems: Sequence[Problem], path: str = "<definition>") -> None:
        self.problems = list(problems)
        self.path = path
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s) in definition\n{lines}")


class TransitionNotAllowedError(OrderMachineError):
    """An action is not declared, not allowed in the current state, or a guard said no."""

    def __init__(
        self,
        entity_id: str,
        action: str,
        state: str,
        allowed: Sequence[str] = (),
        guard: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.entity_id, self.action, self.state = entity_id, action, state
        self.allowed = tuple(allowed)
        self.guard = guard
        if reason is None:
            reason = f"guard {guard!r} refused it" if guard else f"not allowed while {state!r}"
        self.reason = reason
        #: allowed actions a guard refuses right now: (action, guard, the guard's description); see note_blocked()
        self.blocked: tuple[tuple[str, str, str], ...] = ()
        super().__init__(self._message())

    def note_blocked(self, blocked: Sequence[tuple[str, str, str]]) -> None:
        """Record which allowed actions a guard refuses right now, so the message does not offer them."""
        self.blocked = tuple(blocked)
        self.args = (self._message(),)

    def _message(self) -> str:
        blocked = {action for action, _, _ in self.blocked}
        allowed_text = ", ".join(a for a in self.allowed if a not in blocked) or "none"
        text = f"{self.entity_id}: cannot {self.action!r} while {self.state!r}: {self.reason}; allowed now: {allowed_text}"
        if self.blocked:
            text += "; blocked by a guard: " + ", ".join(
                f"{action} ({guard}{': ' + description if description else ''})"
                for action, guard, description in self.blocked)
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "entity_id": self.entity_id,
            "state": self.state,
            "action": self.action,
            "allowed_actions": list(self.allowed),
            "blocked_actions": [{"action": action, "guard": guard, "description": description}
                                for action, guard, description in self.blocked],
            "guard": self.guard,
            "reason": self.reason,
        }


class NotInitialisedError(OrderMachineError):
    """An entity was used before its machine was initialised (the reference's InvalidOperation)."""

    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        super().__init__(f"{entity_id}: the state machine is not initialised; call initialise() first")


class InvalidCommandError(OrderMachineError):
    """A command's data breaks an invariant (negative quantity, unknown field, items after Pending)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class OrderNotFoundError(OrderMachineError):
    """No stream exists for that order id."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id!r} does not exist")


class OrderExistsError(OrderMachineError):
    """A create command named an order id that already has events."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id!r} already exists")


class UnknownDefinitionError(OrderMachineError):
    """No served definition has that name (or that version)."""

    def __init__(self, name: str, known: Sequence[str], reason: str = "") -> None:
        self.name, self.known = name, list(known)
        super().__init__(reason or f"no definition named {name!r}; known: {', '.join(self.known) or 'none'}")


class WorkflowNotFoundError(OrderMachineError):
    """No instance of that definition has that id."""

    def __init__(self, definition: str, workflow_id: str) -> None:
        self.definition, self.workflow_id = definition, workflow_id
        super().__init__(f"{definition} {workflow_id!r} does not exist")


class WorkflowExistsError(OrderMachineError):
    """A start command named an instance id that already has events."""

    def __init__(self, definition: str, workflow_id: str) -> None:
        self.definition, self.workflow_id = definition, workflow_id
        super().__init__(f"{definition} {workflow_id!r} already exists")


class ConcurrencyError(OrderMachineError):
    """An append's expected version did not match the stream: someone else wrote first."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, found {actual}; reload and retry"
        )


class StoreError(OrderMachineError):
    """The storage backend failed or could not be opened; raised from the driver's error."""


class ProjectionError(OrderMachineError):
    """A projector kept failing on one event and stopped there."""

    def __init__(self, projection: str, position: int, cause: BaseException) -> None:
        self.projection, self.position, self.cause = projection, position, cause
        super().__init__(f"projection {projection!r} stopped at position {position}: {cause!r}")


class InvalidProjectorError(OrderMachineError):
    """A user's projector cannot run: a bad name, a table it cannot own, DDL that does not create its table."""

    def __init__(self, projector: str, problem: str) -> None:
        self.projector, self.problem = projector, problem
        super().__init__(f"projector {projector!r}: {problem}")


class StreamQuarantinedError(OrderMachineError):
    """A projection set one stream aside (it could not apply one of its events): that stream's read model
    is out of date until an operator releases it (`order-machine projections release`)."""

    def __init__(self, stream_id: str, projection: str, position: int, event_type: str) -> None:
        self.stream_id, self.projection, self.position, self.event_type = stream_id, projection, position, event_type
        super().__init__(
            f"stream {stream_id!r} is quarantined by projection {projection!r} at position {position} "
            f"({event_type}): its read model is out of date until it is repaired and released "
            "(see `order-machine projections`)"
        )


class ReleaseError(OrderMachineError):
    """A quarantined stream was not released: it is not quarantined there, or its events still fail."""


class DiagramError(OrderMachineError):
    """A diagram could not be drawn: Graphviz is missing or failed, or an order's path does not fit."""
