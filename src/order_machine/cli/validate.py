"""`order-machine validate [PATH ...]`: check definition files; `--write-schema` regenerates schema.json.

Prints `path:line: message (hint: ...)` per problem. Exit 0 all valid, 1 problems found, 2 usage error.
Imports `definition` only (and `order` to find the default folder): validating needs no store or bus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..definition import Definition, definition_files, json_schema, load_definition
from ..errors import DefinitionError, Problem

DEFAULT_PATH = "definitions"
SCHEMA_FILE = "schema.json"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check definition files (YAML syntax, schema, references, reachability, ambiguity)",
        description="Check workflow definitions and print every problem as path:line: message. "
                    "Exit 0 when all are valid, 1 when any has a problem, 2 on a usage error.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help=f"definition files or folders of *.yaml (default: {DEFAULT_PATH}/, else the "
                             "folder $ORDER_MACHINE_DEFINITIONS names, else the definitions shipped in the package)")
    parser.add_argument("--write-schema", action="store_true",
                        help=f"write the JSON Schema of the format to {DEFAULT_PATH}/{SCHEMA_FILE} "
                             "(or to --schema) instead of validating")
    parser.add_argument("--check-schema", action="store_true",
                        help="also fail when the schema file is missing or stale")
    parser.add_argument("--schema", metavar="FILE", default=None,
                        help=f"schema file for --write-schema/--check-schema (default: {DEFAULT_PATH}/{SCHEMA_FILE})")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only, no OK lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.write_schema:  # into ./definitions, never into the installed package
        return write_schema(Path(args.schema) if args.schema else Path(DEFAULT_PATH) / SCHEMA_FILE)
    folder = _default_folder()
    schema_file = Path(args.schema) if args.schema else folder / SCHEMA_FILE
    paths = args.paths or [str(folder)]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        for p in missing:
            print(f"order-machine validate: no such file or folder: {p}", file=sys.stderr)
        return 2
    files = list(dict.fromkeys(definition_files(paths)))
    if not files:
        print(f"order-machine validate: no *.yaml or *.yml files in {', '.join(paths)}", file=sys.stderr)
        return 2
    problems = validate_files(files, quiet=args.quiet)
    if args.check_schema:
        problems += _schema_staleness(schema_file)
    for problem in problems:
        print(problem)
    if problems:
        bad_files = len({p.path for p in problems})
        print(f"{len(problems)} problem(s) in {bad_files} file(s); {len(files)} file(s) checked", file=sys.stderr)
        return 1
    return 0


def _default_folder() -> Path:
    """./definitions when it exists (whatever it holds), else the folder the other commands would use."""
    if Path(DEFAULT_PATH).exists():
        return Path(DEFAULT_PATH)
    from ..order import default_definitions_dir

    return default_definitions_dir()


def validate_files(files: list[Path], quiet: bool = False) -> list[Problem]:
    """Every problem of every file, plus names used twice in one folder; prints an OK line per valid file."""
    problems: list[Problem] = []
    names: dict[tuple[Path, str], Path] = {}
    for file in files:
        try:
            definition = load_definition(file)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        key = (file.resolve().parent, definition.name)
        if key in names:
            problems.append(Problem(f"definition name {definition.name!r} is also used by {names[key]}", str(file), 1,
                                    "each definition in a folder needs its own name"))
            continue
        names[key] = file
        if not quiet:
            print(f"{file}: OK ({summary(definition)})")
    return problems


def summary(definition: Definition) -> str:
    return (f"{definition.name} v{definition.version}: {len(definition.states)} states, "
            f"{len(definition.actions)} actions, {sum(1 for _ in definition.edges())} transitions")


def write_schema(target: Path) -> int:
    if not target.parent.is_dir():
        print(f"order-machine validate: folder {target.parent} does not exist", file=sys.stderr)
        return 2
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
