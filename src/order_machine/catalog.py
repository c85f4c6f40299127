"""The catalog: every served definition, each version compiled once, side by side.

A definitions folder holds the latest version of each workflow (`ticket.yaml`) and, in its `versions/`
subfolder, the earlier versions still running (`versions/ticket.v1.yaml`, any file name: the `name:` and
`version:` inside count). New instances start on the latest version; an instance goes on with the version
it started on until a migration moves it. Imports `definition`, `machine` and `errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from .definition import Definition, definition_files, load_definition
from .errors import DefinitionError, Problem, UnknownDefinitionError
from .machine import Guard, Hook, Machine

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


def version_problems(definitions: Iterable[tuple[Path, Definition]]) -> list[Problem]:
    """Problems of a set of versions: a version number used twice, a `versions/` file whose latest is missing
    or older than it."""
    problems: list[Problem] = []
    seen: dict[tuple[str, int], Path] = {}
    for path, d in definitions:
        key = (d.name, d.version)
        if key in seen:
            problems.append(Problem(f"{d.name} version {d.version} is also defined in {seen[key]}", str(path), 1,
                                    "give each version its own `version:` number"))
        seen.setdefault(key, path)
    latest = {name: (version, path) for (name, version), path in sorted(seen.items())
              if path.parent.name != VERSIONS_FOLDER}
    for (name, version), path in seen.items():
        if path.parent.name != VERSIONS_FOLDER:
            continue
        if name not in latest:
            problems.append(Problem(f"{path.name} is a version of {name!r}, but the folder above has no {name}.yaml "
                                    "(the latest version)", str(path), 1))
        elif version >= latest[name][0]:
            problems.append(Problem(f"{name} version {version} in {VERSIONS_FOLDER}/ is not older than the latest "
                                    f"({latest[name][1].name}: version {latest[name][0]})", str(path), 1,
                                    "the top-level file holds the latest version"))
    return problems


def load_versions(folder: str | Path) -> list[tuple[Path, Definition]]:
    """Every definition in a folder and its `versions/` subfolder; every file's problems raised together."""
    folder = Path(folder)
    files = definition_files([folder])
    if (folder / VERSIONS_FOLDER).is_dir():
        files += definition_files([folder / VERSIONS_FOLDER])
    found: list[tuple[Path, Definition]] = []
    problems: list[Problem] = []
    for file in files:
        try:
            found.append((file, load_definition(file)))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    problems += version_problems(found)
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

    def _by_version(self, name: str) -> dict[int, Machine]:
        versions = self._machines.get(name)
        if versions is None:
            reason = self.unavailable.get(name)
            raise UnknownDefinitionError(name, self.names, f"definition {name!r} is not served: {reason}"
                                         if reason else "")
        return versions


__all__ = ["Catalog", "VERSIONS_FOLDER", "compile_definition", "load_versions", "version_problems"]
