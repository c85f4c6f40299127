"""CEL expressions in definitions (a guard's `when:`): compiled once, the names they read, evaluated safely.

The only module that imports the CEL library (`cel`, from the common-expression-language package; see
docs/guards.md for why). Imports nothing from the project: `checks` and `machine` turn its errors into
Problems and refusals.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any


def _load_cel() -> ModuleType:
    """The library's compiled module alone: `import cel` also imports its command line (typer, rich,
    prompt_toolkit), ~170 ms at every start of ours. Falls back to the plain import if the layout changes."""
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:  # already imported (through `import cel`): an extension never initialises twice
        return loaded
    try:
        spec = importlib.util.find_spec("cel")  # finds the package without running its __init__
        folder = Path((spec.submodule_search_locations or [])[0]) if spec is not None else None
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if folder is not None and (folder / f"cel{suffix}").is_file():
                loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(folder / f"cel{suffix}"))
                native = importlib.util.spec_from_file_location("cel.cel", loader.path, loader=loader)
                if native is not None:
                    module = importlib.util.module_from_spec(native)
                    loader.exec_module(module)
                    # a later `import cel` finds it here: an extension module may not initialise twice
                    sys.modules.setdefault("cel.cel", module)
                    if callable(getattr(module, "compile", None)) and hasattr(module, "Context"):
                        return module
    except (ImportError, OSError, IndexError):
        pass
    import cel as package

    return package


if TYPE_CHECKING:
    import cel
else:
    cel = _load_cel()

__all__ = ["EvaluationError", "Expression", "ExpressionSyntaxError", "compile_expression", "to_cel"]


class ExpressionSyntaxError(ValueError):
    """The text is not a CEL expression; `line` and `column` are within the expression (1-based)."""

    def __init__(self, message: str, line: int = 1, column: int | None = None) -> None:
        self.message, self.line, self.column = message, line, column
        where = f"line {line}, column {column}: " if column is not None else ""
        super().__init__(where + message)


class EvaluationError(Exception):
    """An expression could not be evaluated against a context (missing key, wrong type, not a bool...)."""


# CEL string literals (raw, triple-quoted or not) are skipped before looking for names by pattern
_STRINGS = re.compile(r"""[rRbB]{0,2}('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
                      re.DOTALL)
# the comprehension macros bind a variable: `items.all(i, i.quantity > 0)` reads `items`, not `i`
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|existsOne|map|filter|transformList|transformMap)\s*\(\s*"
                    r"([A-Za-z_]\w*)\s*,(?:\s*([A-Za-z_]\w*)\s*,)?")
_PARSE_ERROR = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the top-level names it reads."""

    source: str
    reads: tuple[str, ...]
    _program: cel.Program = field(repr=False, compare=False)

    def fields_of(self, name: str) -> tuple[str, ...]:
        """The fields the expression selects on `name` (`input.reason` -> reason), in order, once each."""
        text = _STRINGS.sub('""', self.source)
        found = re.findall(rf"(?<![\w.]){re.escape(name)}\s*\.\s*([A-Za-z_]\w*)", text)
        return tuple(dict.fromkeys(found))

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """True or False for this context; raises EvaluationError for anything else.

        A value is converted (see `to_cel`) only when the evaluation reaches it, so `amount > 0 ||
        size(items) > 0` never converts the items of an order with an amount. A name the context lacks,
        or holds as None, reads as null.
        """
        converted: dict[str, Any] = {}
        failed: list[EvaluationError] = []

        def resolve(name: str) -> Any:
            # the library swallows a resolver's exception (as "undefined variable"): keep ours aside
            if name not in converted:
                try:
                    converted[name] = to_cel(context.get(name))
                except EvaluationError as exc:
                    failed.append(exc)
                    converted[name] = None
            return converted[name]

        variables = cel.Context()
        for name in self.reads:
            if context.get(name) is None:  # the resolver's None means "not mine": nulls are declared
                variables.add_variable(name, None)
        variables.set_variable_resolver(resolve)
        try:
            result = self._program.execute(variables)
        except KeyError as exc:  # the library says only the key
            raise failed[0] if failed else EvaluationError(
                f"no such key: {exc.args[0]!r}" if exc.args else "no such key") from None
        except Exception as exc:  # the library's errors have no common base: any of them is a failed evaluation
            # its messages go on with general advice after the first sentence; the first says what went wrong
            raise failed[0] if failed else EvaluationError(
                str(exc).split(". ", 1)[0].rstrip(".") or type(exc).__name__) from None
        if failed:
            raise failed[0]
        if result is not True and result is not False:
            raise EvaluationError(f"the condition must be true or false, got {result!r}")
        return result


def compile_expression(source: str) -> Expression:
    """Parse `source` once; raises ExpressionSyntaxError with the line and column of the first error."""
    try:
        program = cel.compile(source)
    except ValueError as exc:
        match = _PARSE_ERROR.search(str(exc))
        if match is None:
            raise ExpressionSyntaxError(str(exc)) from None
        raise ExpressionSyntaxError(_shorten(match.group(3)), int(match.group(1)), int(match.group(2))) from None
    bound = {name for pair in _BOUND.findall(_STRINGS.sub('""', source)) for name in pair if name}
    reads = tuple(name for name in program.variables() if name not in bound)
    return Expression(source, reads, program)


def _shorten(message: str) -> str:
    # "mismatched input '<EOF>' expecting {'[', '{', ... IDENTIFIER}": the list of every token helps nobody
    return re.sub(r" expecting \{[^}]*\}", "", message)


def to_cel(value: Any) -> Any:
    """A Python value as CEL sees it. Decimals become the CEL double nearest to them, but only when that
    double reads back as the same decimal (at most 15 significant digits always do): then comparing
    two such values, or one with a literal written as a decimal, gives the same answer as comparing the
    Decimals. Any other Decimal raises EvaluationError rather than compare approximately.
    """
    if value is None or isinstance(value, (bool, int, str, float, datetime)):
        return value
    if isinstance(value, Decimal):
        as_double = float(value)
        if not value.is_finite() or Decimal(repr(as_double)) != value:
            raise EvaluationError(f"the decimal {value} cannot be compared exactly as a CEL double "
                                  "(more than 15 significant digits, or out of range)")
        return as_double
    if isinstance(value, Mapping):
        return {str(k): to_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_cel(v) for v in value]
    return value
