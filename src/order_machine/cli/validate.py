"""`order-machine validate [PATH ...]`: check definition files; `--write-schema` regenerates schema.json.

Prints `path:line: message (hint: ...)` per problem. Exit 0 all valid, 1 problems found, 2 usage error.
A folder's earlier versions (`versions/`) are checked with it as a set, as `serve` loads them.
Imports `definition`, `catalog` (the version-set rules) and `order` (the default folder): validating needs no
machine, store or bus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..catalog import VERSIONS_FOLDER, version_problems
from ..definition import Definition, definition_files, json_schema, load_definition
from ..errors import DefinitionError, Problem
from ..order import default_definitions_dir

SCHEMA_FILE = "schema.json"

EPILOG = """\
examples:
  order-machine validate                          # the definitions folder (see below)
  order-machine validate definitions/order.yaml   # one file
  order-machine validate my-flows/ other.yaml     # folders of *.yaml (and their versions/) and files
  order-machine validate -q --check-schema        # problems only; also fail if schema.json is stale
  order-machine validate --write-schema           # regenerate schema.json beside the definitions

Without PATH: $ORDER_MACHINE_DEFINITIONS, else ./definitions when it holds a *.yaml file, else the definitions
shipped with order-machine. A folder's versions/ subfolder (earlier versions still running) is checked with
it: each version's number unique and older than the top-level file's, each `migrations:` entry naming a version
there and mapping its states onto states of the new one. A file given alone is checked with its versions.
Exit 0 when all are valid, 1 when any has a problem, 2 on a usage error.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check definition files (YAML syntax, schema, references, reachability, ambiguity)",
        description="Check workflow definitions and print every problem as path:line: message. "
                    "Exit 0 when all are valid, 1 when any has a problem, 2 on a usage error.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="definition files or folders of *.yaml (default: the definitions folder, below)")
    parser.add_argument("--write-schema", action="store_true",
                        help=f"write the JSON Schema of the format to {SCHEMA_FILE} in the definitions folder "
                             "(or to --schema) instead of validating")
    parser.add_argument("--check-schema", action="store_true",
                        help="also fail when the schema file is missing or stale")
    parser.add_argument("--schema", metavar="FILE", default=None,
                        help=f"schema file for --write-schema/--check-schema (default: {SCHEMA_FILE} in the "
                             "definitions folder)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only, no OK lines")
    parser.set_defaults(handler=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    folder = default_definitions_dir()
    schema_file = Path(args.schema) if args.schema else folder / SCHEMA_FILE
    if args.write_schema:
        return write_schema(schema_file, args.parser)
    paths = args.paths or [str(folder)]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        args.parser.error(f"no such file or folder: {', '.join(missing)}")
    files = list(dict.fromkeys(definition_files(paths)))
    if not files:
        args.parser.error(f"no *.yaml or *.yml files in {', '.join(paths)}")
    versions = [Path(p) / VERSIONS_FOLDER for p in paths if (Path(p) / VERSIONS_FOLDER).is_dir()]
    files += [f for f in definition_files(versions) if f not in files]
    loaded: dict[Path, Definition] = {}
    problems = validate_files(files, quiet=args.quiet, loaded=loaded)
    problems += version_set_problems(files, loaded)
    if args.check_schema:
        problems += _schema_staleness(schema_file)
    for problem in problems:
        print(problem)
    if problems:
        bad_files = len({p.path for p in problems})
        print(f"{len(problems)} problem(s) in {bad_files} file(s); {len(files)} file(s) checked", file=sys.stderr)
        return 1
    return 0


def validate_files(files: list[Path], quiet: bool = False,
                   loaded: dict[Path, Definition] | None = None) -> list[Problem]:
    """Every problem of every file, plus names used twice in one folder; prints an OK line per valid file.

    The definitions that loaded go into `loaded` (when given), by file.
    """
    problems: list[Problem] = []
    names: dict[tuple[Path, str], Path] = {}
    for file in files:
        try:
            definition = load_definition(file)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if loaded is not None:
            loaded[file] = definition
        key = (file.resolve().parent, definition.name)
        if file.parent.name == VERSIONS_FOLDER:
            pass  # versions of one definition share its name; their numbers are checked as a set
        elif key in names:
            problems.append(Problem(f"definition name {definition.name!r} is also used by {names[key]}", str(file), 1,
                                    "each definition in a folder needs its own name"))
            continue
        names[key] = file
        if not quiet:
            print(f"{file}: OK ({summary(definition)})")
    return problems


def version_set_problems(files: list[Path], loaded: dict[Path, Definition]) -> list[Problem]:
    """The version-set problems of every folder the files are in (with its `versions/`), as `serve` would see
    them; a folder's other definitions join the set when they share a name with a checked one."""
    homes: dict[Path, list[Path]] = {}
    for file in files:
        home = file.parent.parent if file.parent.name == VERSIONS_FOLDER else file.parent
        homes.setdefault(home, []).append(file)
    problems: list[Problem] = []
    for home, checked in homes.items():
        names = {loaded[f].name for f in checked if f in loaded}
        members = {f.resolve(): (f, loaded[f]) for f in checked if f in loaded}
        unreadable = [f for f in checked if f not in loaded]
        beside = definition_files([home])
        if (home / VERSIONS_FOLDER).is_dir():
            beside += definition_files([home / VERSIONS_FOLDER])
        for file in beside:
            if file.resolve() in members or file in unreadable:
                continue
            try:
                definition = load_definition(file)
            except DefinitionError:
                unreadable.append(file)  # its own problems are reported when its folder is validated
                continue
            if definition.name in names:
                members[file.resolve()] = (file, definition)
        problems += version_problems(members.values(), unreadable)
    return problems


def summary(definition: Definition) -> str:
    return (f"{definition.name} v{definition.version}: {len(definition.states)} states, "
            f"{len(definition.actions)} actions, {sum(1 for _ in definition.edges())} transitions")


def write_schema(target: Path, parser: argparse.ArgumentParser) -> int:
    if not target.parent.is_dir():
        parser.error(f"folder {target.parent} does not exist")
    target.write_text(json_schema(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _schema_staleness(schema_file: Path) -> list[Problem]:
    hint = "run `order-machine validate --write-schema`"
    if not schema_file.exists():
        return [Problem("the JSON Schema file is missing", str(schema_file), None, hint)]
    if schema_file.read_text(encoding="utf-8") != json_schema():
        return [Problem("the JSON Schema file is stale: the definition model changed", str(schema_file), None, hint)]
    return []
