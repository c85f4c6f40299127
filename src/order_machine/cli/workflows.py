"""`order-machine workflows start|show|history|list|do`: instances of any served
definition (payment, document, onboarding ...) from a terminal, as `/workflows/{definition}` serves them.

Commands go through the Runtime's WorkflowEngine; reads of one instance and lists come from the
workflows view (caught up first), history from the store (`migrate` is in cli/migrate.py). Imports
`engine`, `errors` and the CLI helpers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..definition import FieldSpec
from ..engine import WorkflowResult, resolve_action
from ._session import (
    add_store_options, print_json, reading, require_existing_database, running, settings_from, table,
)
from .orders import _list
from .orders import _time as _format_time

FIELD_HELP = ("data, repeat for several: NAME=VALUE passes text (true/false for a bool field, a,b or a JSON "
              "list for a list field); NAME:=JSON passes a JSON value, e.g. amount:=12, items:='[\"a\"]', "
              "urgent:=true")

EPILOG = """\
examples:
  order-machine workflows start payment --id pay-1 --field amount=100.50 --field currency=USD --field method=card
  order-machine workflows start payment --field amount:=12 --field currency=EUR --field method=cash --key k-1
  order-machine workflows show payment pay-1
  order-machine workflows list payment --state Pending --limit 20
  order-machine workflows history payment pay-1 --json
  order-machine workflows do payment pay-1 process
  order-machine workflows do payment pay-1 complete --field transaction_id=txn-9 --if-version 2

--field NAME=VALUE passes text; --field NAME:=JSON passes a JSON value (number, list, true/false, object).
Actions may be named in any case: Complete, complete, start-review, start_review, StartReview.
every subcommand takes --db URL (default: $ORDER_MACHINE_DB_URL, else sqlite:///orders.db) and --json
"""

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "workflows", help="start, show, list and act on instances of any definition",
        description="Operate on instances of a served definition (not `order`: see `order-machine orders`) "
                    "in the store a --db URL names.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    add_store_options(common)
    common.add_argument("--json", action="store_true", help="print JSON (the HTTP API's bodies) instead of text")
    sub = parser.add_subparsers(dest="workflows_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str, *examples: str) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text + ".",
            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        child.add_argument("definition", metavar="DEFINITION", help="a served definition's name, e.g. payment")
        return child

    p = add("start", "start an instance on the latest version of a definition",
            "order-machine workflows start payment --id pay-1 --field amount=100.50 --field currency=USD "
            "--field method=card",
            "order-machine workflows start onboarding --field documents:='[\"passport\"]' --key start-42")
    p.add_argument("--id", metavar="ID", help="the instance's id (default: generated)")
    p.add_argument("--field", dest="fields", action="append", type=field_arg, default=[],
                   metavar="NAME=VALUE|NAME:=JSON", help=FIELD_HELP)
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY", help="run at most once for this key")
    p.set_defaults(handler=start)

    p = add("show", "show one instance: state, version, definition version, data, allowed actions",
            "order-machine workflows show payment pay-1", "order-machine workflows show payment pay-1 --json")
    p.add_argument("workflow_id", metavar="ID")
    p.set_defaults(handler=show)

    p = add("history", "every event of an instance, oldest first",
            "order-machine workflows history payment pay-1")
    p.add_argument("workflow_id", metavar="ID")
    p.set_defaults(handler=history)

    p = add("list", "list a definition's instances in creation order, optionally in one state",
            "order-machine workflows list payment --state Failed --limit 20",
            "order-machine workflows list payment --json --cursor CURSOR")
    p.add_argument("--state", metavar="S", help="only instances in this state")
    p.add_argument("--limit", type=_page_size, default=50, metavar="N", help="page size, 1 to 500 (default: 50)")
    p.add_argument("--cursor", metavar="C", help="the next_cursor a previous page printed")
    p.set_defaults(handler=list_workflows)

    p = add("do", "take an action on an instance",
            "order-machine workflows do payment pay-1 process",
            "order-machine workflows do payment pay-1 complete --field transaction_id=txn-9 --if-version 2")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("action", metavar="ACTION",
                   help="the action, in any case: Complete, complete, start-review, start_review")
    p.add_argument("--field", dest="fields", action="append", type=field_arg, default=[],
                   metavar="NAME=VALUE|NAME:=JSON", help=FIELD_HELP)
    p.add_argument("--if-version", type=int, metavar="N", help="refuse unless the instance is at version N")
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY", help="run at most once for this key")
    p.set_defaults(handler=do)


# --------------------------------------------------------------------------- argument types


@dataclass(frozen=True)
class FieldArg:
    """One --field: text (NAME=VALUE) or an already parsed JSON value (NAME:=JSON)."""

    name: str
    value: Any
    is_json: bool


def field_arg(text: str) -> FieldArg:
    name, sep, value = text.partition("=")
    is_json = name.endswith(":")
    name = name.removesuffix(":").strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a field is NAME=VALUE or NAME:=JSON, e.g. currency=USD or amount:=12; "
                                         f"got {text!r}")
    if not is_json:
        return FieldArg(name, value, False)
    try:
        return FieldArg(name, json.loads(value), True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"field {name!r}: {value!r} is not JSON ({exc}); "
                                         f"use {name}=TEXT for plain text") from None


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 500:
        raise argparse.ArgumentTypeError(f"a page size is 1 to 500; got {value}")
    return value


def typed_fields(declared: Mapping[str, FieldSpec], fields: list[FieldArg]) -> dict[str, Any]:
    """--field values in the types the definition declares: text as given (true/false for a bool, a,b or a
    JSON list for a list), JSON values as parsed. The engine checks the rest and names a bad field."""
    data: dict[str, Any] = {}
    for f in fields:
        kind = declared[f.name].type if f.name in declared else "str"
        text = f.value
        if f.is_json or not isinstance(text, str):
            data[f.name] = text
        elif kind == "bool" and text.lower() in ("true", "yes", "1", "false", "no", "0"):
            data[f.name] = text.lower() in ("true", "yes", "1")
        elif kind == "list":
            data[f.name] = _list(f.name, text)
        else:
            data[f.name] = text
    return data


# --------------------------------------------------------------------------- handlers


async def start(args: argparse.Namespace) -> int:
    async with running(settings_from(args)) as rt:
        machine = rt.engine.machine(args.definition)
        data = typed_fields(machine.definition.data, args.fields)
        result = await rt.engine.start(args.definition, data, workflow_id=args.id, command_id=args.key)
    if args.json:
        print_json(result.body())
    else:
        print(f"started {result.definition} {result.id}: {result.state} (version {result.version}, "
              f"definition version {result.definition_version}){_again(result)}")
    return 0


async def show(args: argparse.Namespace) -> int:
    async with reading(args) as rt:
        found = await rt.workflows.get(args.definition, args.workflow_id)
        actions = await rt.engine.allowed_actions(args.definition, args.workflow_id)
    if args.json:
        print_json(found.model_dump(mode="json"))
        return 0
    rows: list[tuple[str, Any]] = [
        ("workflow", found.id), ("definition", found.definition), ("state", found.state),
        ("version", found.version), ("definition_version", found.definition_version),
        ("created", _time(found.created_at)), ("updated", _time(found.updated_at))]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    if found.data:
        print("\ndata:")
        data_width = max(len(k) for k in found.data)
        print("\n".join(f"  {k.ljust(data_width)}  {_value(v)}" for k, v in found.data.items()))
    allowed = ", ".join(_action_usage(a) for a in actions) or "none"
    print(f"\nactions allowed now: {allowed}")
    return 0


async def history(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings, start=False) as rt:  # read from the store: no projection needed
        entries = await rt.engine.history(args.definition, args.workflow_id)
    if args.json:
        print_json(entries)
        return 0
    rows = [(e["version"], _time(e["at"]), e["action"] or e["type"],
             " -> ".join(s for s in (e["from"], e["to"]) if s), _data(e["data"])) for e in entries]
    print(table(rows, ("version", "at", "action", "state", "data")))
    return 0


async def list_workflows(args: argparse.Namespace) -> int:
    async with reading(args) as rt:
        page = await rt.workflows.list(args.definition, state=args.state, limit=args.limit, cursor=args.cursor)
    if args.json:
        print_json(page.model_dump(mode="json"))
        return 0
    rows = [(w.id, w.state, w.version, w.definition_version, _time(w.created_at), _time(w.updated_at))
            for w in page.items]
    print(table(rows, ("id", "state", "version", "def_version", "created", "updated")) if rows
          else f"no {args.definition} instances" + (f" in {args.state}" if args.state else ""))
    if page.next_cursor:
        print(f"\nmore: --cursor {page.next_cursor}")
    return 0


async def do(args: argparse.Namespace) -> int:
    async with running(settings_from(args)) as rt:
        machine = rt.engine.machine(args.definition)
        action = resolve_action(machine, args.action)
        spec = machine.action_spec(action)
        data = typed_fields(spec.fields if spec is not None else {}, args.fields)
        result = await rt.engine.act(args.definition, args.workflow_id, args.action, data,
                                     expected_version=args.if_version, command_id=args.key)
    if args.json:
        print_json({"id": result.id, "state": result.state, "version": result.version, "events": result.events})
    else:
        print(f"{result.definition} {result.id}: {action} -> {result.state} (version {result.version})"
              f"{_again(result)}")
    return 0


# --------------------------------------------------------------------------- helpers


def _time(value: Any) -> str:
    """A time as `orders` prints it; history's ISO strings too."""
    if isinstance(value, str):
        try:
            return _format_time(datetime.fromisoformat(value))
        except ValueError:
            return value
    return _format_time(value)


def _again(result: WorkflowResult) -> str:
    return " (already done: same --key)" if result.duplicate else ""


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _data(data: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in data.items())


def _action_usage(action: dict[str, Any]) -> str:
    fields = " ".join(f"--field {n}=..." for n, f in action.get("fields", {}).items() if f.get("required"))
    return f"{action['action']} {fields}".strip()


__all__ = ["register", "field_arg", "typed_fields"]
