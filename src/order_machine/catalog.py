"""The catalog: every served definition, each version compiled once, side by side.

A definitions folder holds the latest version of each workflow (`ticket.yaml`) and, in its `versions/`
subfolder, the earlier versions still running (`versions/ticket.v1.yaml`, any file name: the `name:` and
`version:` inside count). New instances start on the latest version; an instance goes on with the version
it started on until a migration moves it (the latest file's `migrations:` say how its states map).
Imports `definition`, `machine`, `yaml_lines` and `errors`.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from .definition import Definition, definition_files, load_definition
from .errors import DefinitionError, Problem, UnknownDefinitionError
from .machine import Guard, Hook, Machine
from .yaml_lines import LocatedData, read_yaml

logger = logging.getLogger(__name__)

VERSIONS_FOLDER = "versions"


def _for(definition: Definition, registered: Mapping[str, object], declared: Iterable[str]) -> dict[str, object]:
    """The registrations meant for one definition: `name` for any definition declaring it, or
    `definition.name` for that definition only (which wins)."""
    names = set(declared)
    chosen = {k: v for k, v in registered.items() if "." not in k and k in names}
    prefix = f"{definition.name}."
    chosen.update({k[len(prefix):]: v for k, v in registered.items() if k.startswith(prefix) and k[len(prefix):] in names})
    return chosen


def compile_definition(definition: Definition, guards: Mapping[str, Guard] | None = None,
                       hooks: Mapping[str, Hook] | None = None) -> Machine:
    """A Machine for one definition, given the guards and hooks registered for any of them."""
    g = _for(definition, guards or {}, (x.name for x in definition.guards))
    h = _for(definition, hooks or {}, (x.name for x in definition.hooks))
    return Machine(definition, g, h)  # type: ignore[arg-type]


class _Lines:
    """The line of a key in a definition file (read again only when a problem needs it)."""

    def __init__(self) -> None:
        self._read: dict[Path, LocatedData | None] = {}

    def __call__(self, path: Path, *loc: str | int) -> int:
        if path not in self._read:
            try:
                self._read[path] = read_yaml(path.read_text(encoding="utf-8"), str(path))[1]
            except (OSError, UnicodeDecodeError, DefinitionError):
                self._read[path] = None
        located = self._read[path]
        return (located.line_of(loc) if located is not None else None) or 1


def version_problems(definitions: Iterable[tuple[Path, Definition]], unreadable: Iterable[Path] = ()) -> list[Problem]:
    """Problems of a set of versions (a folder's definitions and its `versions/`): a version number used twice,
    a `versions/` file whose latest is missing or not newer than it, and `migrations:` that name a version,
    or map a state, that is not there. A missing latest is not reported while a top-level file of the set is
    `unreadable` (it may be that latest; its own problems say what is wrong with it)."""
    pairs = list(definitions)
    line = _Lines()
    problems: list[Problem] = []
    seen: dict[tuple[str, int], Path] = {}
    for path, d in pairs:
        key = (d.name, d.version)
        if key in seen:
            problems.append(Problem(f"{d.name} version {d.version} is also defined in {seen[key]}", str(path),
                                    line(path, "version"), "give each version its own `version:` number"))
        else:
            seen[key] = path
    latest = {name: (version, path) for (name, version), path in seen.items() if path.parent.name != VERSIONS_FOLDER}
    for (name, version), path in seen.items():
        if path.parent.name != VERSIONS_FOLDER:
            continue
        if name not in latest:
            if any(f.parent == path.parent.parent for f in unreadable):
                continue
            close = difflib.get_close_matches(name, list(latest), n=1)
            problems.append(Problem(
                f"{path.name} is a version of {name!r}, but the folder above has no {name}.yaml (the latest version)",
                str(path), line(path, "name"), f"did you mean {close[0]!r}?" if close else
                f"put the latest version of {name} in {path.parent.parent / (name + '.yaml')}"))
        elif version >= latest[name][0]:
            problems.append(Problem(f"{name} version {version} in {VERSIONS_FOLDER}/ is not older than the latest "
                                    f"({latest[name][1].name}: version {latest[name][0]})", str(path),
                                    line(path, "version"), "the top-level file holds the latest version"))
    versions: dict[str, dict[int, Definition]] = {}
    for path, d in pairs:
        if seen[(d.name, d.version)] == path:
            versions.setdefault(d.name, {})[d.version] = d
    for path, d in pairs:
        if seen[(d.name, d.version)] == path:
            problems += _migration_problems(path, d, versions[d.name], line)
    return problems


def _migration_problems(path: Path, d: Definition, versions: Mapping[int, Definition], line: _Lines) -> list[Problem]:
    """A definition's `migrations:`: each from an earlier version of the set, mapping its states onto this one's."""
    problems: list[Problem] = []
    declared: set[int] = set()
    for n, migration in enumerate(d.migrations):
        old = migration.from_version
        at = line(path, "migrations", n, "from")
        if old in declared:
            problems.append(Problem(f"a second migration from version {old}", str(path), at,
                                    "declare one `from:` per earlier version"))
            continue
        declared.add(old)
        if old >= d.version:
            problems.append(Problem(f"migrations bring earlier versions to this one (version {d.version}); "
                                    f"from: {old} is not earlier", str(path), at))
            continue
        source = versions.get(old)
        if source is None:
            earlier = ", ".join(str(v) for v in sorted(versions) if v < d.version) or "none"
            problems.append(Problem(f"{d.name} has no version {old} to migrate from (earlier versions here: "
                                    f"{earlier})", str(path), at,
                                    f"keep version {old} in {VERSIONS_FOLDER}/, or remove this migration"))
            continue
        for state, target in migration.map.items():
            where = line(path, "migrations", n, "map", state)
            if state not in source.state_names:
                problems.append(Problem(f"map: {state!r} is not a state of {d.name} version {old}", str(path), where,
                                        f"states there: {', '.join(source.state_names)}"))
            if target not in d.state_names:
                problems.append(Problem(f"map: {state} -> {target!r}, which is not a state of {d.name} version "
                                        f"{d.version}", str(path), where, f"states here: {', '.join(d.state_names)}"))
    return problems


def load_versions(folder: str | Path) -> list[tuple[Path, Definition]]:
    """Every definition in a folder and its `versions/` subfolder; every file's problems raised together."""
    folder = Path(folder)
    files = definition_files([folder])
    if (folder / VERSIONS_FOLDER).is_dir():
        files += definition_files([folder / VERSIONS_FOLDER])
    found: list[tuple[Path, Definition]] = []
    problems: list[Problem] = []
    unreadable: list[Path] = []
    for file in files:
        try:
            found.append((file, load_definition(file)))
        except DefinitionError as exc:
            problems.extend(exc.problems)
            unreadable.append(file)
    problems += version_problems(found, unreadable)
    if problems:
        raise DefinitionError(problems, str(folder))
    return found


class Catalog:
    """The definitions an engine serves, by name and version, each compiled once.

    A definition that needs Python guards or hooks nobody registered is not served (`unavailable` says why),
    so one such file does not stop the others.
    """

    def __init__(self, definitions: Iterable[Definition], guards: Mapping[str, Guard] | None = None,
                 hooks: Mapping[str, Hook] | None = None) -> None:
        self._machines: dict[str, dict[int, Machine]] = {}
        self.unavailable: dict[str, str] = {}
        for definition in definitions:
            try:
                machine = compile_definition(definition, guards, hooks)
            except DefinitionError as exc:
                reason = "; ".join(p.message for p in exc.problems)
                self.unavailable[definition.name] = reason
                logger.info("definition %s v%d is not served: %s", definition.name, definition.version, reason)
                continue
            self._machines.setdefault(definition.name, {})[definition.version] = machine
        for name in self.unavailable:
            self._machines.pop(name, None)  # every version or none: an instance must find its own

    @classmethod
    def load(cls, folder: str | Path, guards: Mapping[str, Guard] | None = None,
             hooks: Mapping[str, Hook] | None = None) -> Catalog:
        return cls((d for _, d in load_versions(folder)), guards, hooks)

    @property
    def names(self) -> list[str]:
        return sorted(self._machines)

    def __contains__(self, name: object) -> bool:
        return name in self._machines

    def versions(self, name: str) -> list[int]:
        return sorted(self._by_version(name))

    def latest(self, name: str) -> Machine:
        versions = self._by_version(name)
        return versions[max(versions)]

    def machine(self, name: str, version: int | None = None) -> Machine:
        """The machine of one version (the latest when None); raises UnknownDefinitionError."""
        versions = self._by_version(name)
        if version is None:
            return versions[max(versions)]
        machine = versions.get(version)
        if machine is None:
            raise UnknownDefinitionError(name, self.names, f"{name} has no version {version}; versions: "
                                         f"{', '.join(map(str, sorted(versions)))}")
        return machine

    def state_map(self, name: str, from_version: int, to_version: int) -> dict[str, str]:
        """The states map that version `to_version` declares (`migrations:`) for instances of `from_version`;
        empty when it declares none (states then keep their names)."""
        for migration in self.machine(name, to_version).definition.migrations:
            if migration.from_version == from_version:
                return dict(migration.map)
        return {}

    def _by_version(self, name: str) -> dict[int, Machine]:
        versions = self._machines.get(name)
        if versions is None:
            reason = self.unavailable.get(name)
            raise UnknownDefinitionError(name, self.names, f"definition {name!r} is not served: {reason}"
                                         if reason else "")
        return versions


__all__ = ["Catalog", "VERSIONS_FOLDER", "compile_definition", "load_versions", "version_problems"]
