"""YAML read into plain Python data that remembers the line of every value, duplicate keys and the
YAML 1.1 boolean traps (`on`, `no`, ...), within limits a hostile file cannot get past: its size, its
nesting depth, its aliases and what they expand to, and no tags but the plain core ones.
Imports only `errors` and PyYAML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from .errors import DefinitionError, Problem

Loc = tuple[str | int, ...]

# PyYAML follows YAML 1.1, where these plain scalars are booleans; in a definition they are usually names
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}

# Limits on a definition file (a real one is a few KB, 6 levels deep, with a handful of aliases at most)
MAX_BYTES = 1_048_576      # 1 MiB
MAX_DEPTH = 32             # nested mappings and lists
MAX_ALIASES = 100          # `*name` references in one file
MAX_VALUES = 100_000       # values built, aliases expanded (a "billion laughs" file would build 10**9)
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class _Refused(Exception):
    """A limit or a tag refused while reading; becomes one Problem."""

    def __init__(self, message: str, line: int | None, hint: str) -> None:
        super().__init__(message)
        self.message, self.line, self.hint = message, line, hint


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe composer, counting depth and aliases as it goes and refusing tags it would ignore."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (*name)", line,
                               "write the values out; definitions allow a few aliases only")
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            raise _Refused(f"tag {_short(tag)!r} is not allowed in a definition", line,
                           "remove it: definitions hold plain text, numbers, booleans, lists and mappings")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", line, "a definition needs about 6 levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class LocatedData:
    """Data built from a YAML node tree, with the line of every path and the problems seen on the way."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.booleans: dict[Loc, str] = {}  # where YAML 1.1 read a word as a boolean, and the word
        self._constructor = yaml.constructor.SafeConstructor()
        self._built = 0

    def build(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self._built += 1
        if self._built > MAX_VALUES or len(loc) > 2 * MAX_DEPTH:  # aliases can nest and expand what they name
            raise _Refused(f"the definition expands to more than {MAX_VALUES} values or {MAX_DEPTH} levels "
                           "(aliases referring to aliases?)", node.start_mark.line + 1,
                           "write the values out instead of nesting aliases")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(Problem("merge keys (<<) are not supported in definitions", self.path,
                                                 key_node.start_mark.line + 1, "write the keys out"))
                    continue
                key = self.build(key_node, (*loc, "<key>"))
                if isinstance(key, bool) and isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(self.boolean_problem(key_node.value, key_node.start_mark.line + 1, "key"))
                    key = key_node.value
                if not isinstance(key, (str, int)):
                    self.problems.append(Problem(f"a mapping key must be a plain word, got {key!r}", self.path,
                                                 key_node.start_mark.line + 1))
                    key = str(key)
                if key in out:
                    self.problems.append(Problem(
                        f"duplicate key {key!r}", self.path, key_node.start_mark.line + 1,
                        f"each key may appear once (first on line {self.lines.get((*loc, str(key)))}); "
                        "YAML would keep only the last",
                    ))
                out[key] = self.build(value_node, (*loc, str(key)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node)
        if isinstance(value, bool) and node.style is None and node.value.lower() in YAML11_BOOLEANS:
            self.booleans[loc] = node.value
        return value

    def boolean_problem(self, word: str, line: int | None, what: str) -> Problem:
        return Problem(f"{what} {word!r} was read as a boolean (YAML 1.1), not as text",
                       self.path, line, f"quote it: '{word}'")

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        key = tuple(str(p) if not isinstance(p, int) else p for p in loc)
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key)

    def restore_words(self, data: Any, locs: Iterable[Loc]) -> Any:
        """A copy of `data` where the booleans at `locs` are the words that were written."""
        wanted = {loc: self.booleans[loc] for loc in locs if loc in self.booleans}
        if not wanted:
            return data

        def walk(value: Any, loc: Loc) -> Any:
            if loc in wanted:
                return wanted[loc]
            if isinstance(value, dict):
                return {k: walk(v, (*loc, str(k))) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, (*loc, i)) for i, v in enumerate(value)]
            return value

        return walk(data, ())


def size_problem(size: int, path: str) -> Problem | None:
    """A problem when a definition of `size` bytes is over MAX_BYTES."""
    if size <= MAX_BYTES:
        return None
    return Problem(f"the file is {size:,} bytes; a definition may be at most {MAX_BYTES:,} bytes (1 MiB)", path,
                   None, "split it into several definitions")


def _compose(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def read_yaml(text: str, path: str) -> tuple[Any, LocatedData]:
    """Parse one YAML document within the limits above; raises DefinitionError (with line) on a syntax
    error, an empty file, a limit passed or a tag."""
    too_big = size_problem(len(text.encode("utf-8", "surrogatepass")), path)
    if too_big is not None:
        raise DefinitionError([too_big], path)
    located = LocatedData(path)
    try:
        node = _compose(text)
    except _Refused as exc:
        raise DefinitionError([Problem(exc.message, path, exc.line, exc.hint)], path) from None
    except RecursionError:  # a limit above should come first; never a traceback
        raise DefinitionError([Problem("nested too deeply to read", path, None, "flatten the file")], path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.context_mark is not None and exc.problem:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise DefinitionError([Problem(f"YAML syntax error: {what}", path, line,
                                       "check indentation, colons and quoting")], path) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([Problem(f"YAML error: {exc}", path, None, "check the file's encoding")], path) from None
    if node is None:
        raise DefinitionError([Problem("the file is empty", path, 1, "start with `name:`, `initial:` and `states:`")],
                              path)
    try:
        data = located.build(node)
    except _Refused as exc:
        raise DefinitionError([Problem(exc.message, path, exc.line, exc.hint)], path) from None
    except RecursionError:
        raise DefinitionError([Problem("nested too deeply to read", path, None, "flatten the file")], path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else node.start_mark.line + 1
        raise DefinitionError([Problem(f"YAML error: {getattr(exc, 'problem', None) or exc}", path, line,
                                       "use plain values: no custom tags")], path) from None
    return data, located
