"""`order-machine migrate DEFINITION --to N [--map OLD=NEW ...] [--dry-run]`: move a definition's in-flight
instances to another version of it, all or none; states map by --map, else by version N's `migrations:`,
else by name. Each move is one WorkflowMigrated event written by the Runtime's WorkflowEngine.
Imports `instance` and the CLI helpers.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from ..instance import WorkflowInstance
from ._session import Failed, add_store_options, print_json, require_existing_database, running, settings_from

MIGRATE_EPILOG = """\
examples:
  order-machine migrate ticket --to 2 --dry-run              # what would move, nothing changed
  order-machine migrate ticket --to 2 --map Open=New         # a state renamed in version 2
  order-machine migrate ticket --to 2 --map Open=New --map Waiting=Blocked --json

Every in-flight instance (not in a terminal state) on another version moves, or none does: an instance
whose state is neither a state of version N nor mapped (by --map, else by version N's `migrations:`) is
listed and the command exits 1. Each move is recorded as a WorkflowMigrated event. Earlier versions live in definitions/versions/.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "migrate", help="move a definition's in-flight instances to another version of it",
        description="Move every in-flight instance of DEFINITION that runs on another version to version N "
                    "(all of them, or none).",
        epilog=MIGRATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("definition", metavar="DEFINITION")
    p.add_argument("--to", type=int, required=True, metavar="N", help="the target version")
    p.add_argument("--map", dest="state_map", action="append", type=map_arg, default=[], metavar="OLD=NEW",
                   help="put instances in state OLD into state NEW of the target (repeat for several); "
                        "it wins over the target's `migrations:` map; other states keep their name")
    p.add_argument("--dry-run", action="store_true", help="print what would move and change nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_store_options(p)
    p.set_defaults(handler=migrate)


def map_arg(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"a mapping is OLD=NEW, e.g. Open=New; got {text!r}")
    return old.strip(), new.strip()


# --------------------------------------------------------------------------- migrate


@dataclass(frozen=True)
class Move:
    id: str
    from_version: int
    from_state: str
    to_version: int
    to_state: str

    def line(self) -> str:
        return f"{self.id}: v{self.from_version} {self.from_state} -> v{self.to_version} {self.to_state}"

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "from_version": self.from_version, "from_state": self.from_state,
                "to_version": self.to_version, "to_state": self.to_state}


async def migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    definition, to = args.definition, args.to
    state_map = dict(args.state_map)
    async with running(settings) as rt:
        target = rt.engine.machine(definition, to)  # an unknown definition or version: one line
        for old, new in state_map.items():
            if new not in target.states:
                raise Failed(f"--map {old}={new}: {new!r} is not a state of {definition} v{to}; "
                             f"states there: {', '.join(target.states)}")
        instances = await _instances(rt, definition)
        moves: list[Move] = []
        refused: list[WorkflowInstance] = []
        terminal: list[str] = []
        current = 0
        for instance in instances:
            if instance.machine.is_terminal(instance.state):
                terminal.append(instance.id)
            elif instance.definition_version == to:
                current += 1
            else:
                declared = rt.engine.catalog.state_map(definition, instance.definition_version, to)
                new_state = {**declared, **state_map}.get(instance.state, instance.state)
                if new_state in target.states:
                    moves.append(Move(instance.id, instance.definition_version, instance.state, to, new_state))
                else:
                    refused.append(instance)
        report: dict[str, Any] = {"definition": definition, "to_version": to, "dry_run": args.dry_run,
                                  "moved": [], "refused": [{"id": i.id, "version": i.definition_version,
                                                            "state": i.state} for i in refused],
                                  "terminal": terminal, "already_on_target": current}
        if refused:
            if args.json:
                print_json(report)
            else:
                for i in refused:
                    print(f"{i.id}: v{i.definition_version} {i.state} has no place in v{to}")
            print(f"error: nothing moved: {len(refused)} {definition} instance(s) in a state that {definition} "
                  f"v{to} does not have ({', '.join(sorted({i.state for i in refused}))}); map them with "
                  f"--map STATE=<one of {', '.join(target.states)}>", file=sys.stderr)
            return 1
        if not args.dry_run:
            for move in moves:
                await rt.engine.migrate(definition, move.id, to, state_map)
    report["moved"] = [m.body() for m in moves]
    if args.json:
        print_json(report)
        return 0
    for move in moves:
        print(move.line())
    verb = "would move" if args.dry_run else "moved"
    tail = f"; {len(terminal)} in a terminal state left alone" if terminal else ""
    tail += f"; {current} already on v{to}" if current else ""
    print(f"{verb} {len(moves)} {definition} instance(s) to version {to}{tail}"
          + (" (dry run: nothing changed)" if args.dry_run else ""))
    return 0


async def _instances(rt: Any, definition: str) -> list[WorkflowInstance]:
    """Every instance of a definition, from the store (the truth, never a lagging view): its streams are
    `<definition>/<id>`, contiguous in the store's sorted stream ids."""
    prefix = f"{definition}/"
    found: list[WorkflowInstance] = []
    after = prefix
    while True:
        streams = await rt.store.stream_ids(after, 500)
        ours = [s for s in streams if s.startswith(prefix)]
        for stream in ours:
            found.append(await rt.engine.load(definition, stream[len(prefix):]))
        if len(ours) < len(streams) or len(streams) < 500:
            return found
        after = streams[-1]


__all__ = ["map_arg", "register"]
